//! Client-side encryption of objects: a segmented AEAD (the STREAM
//! construction of Hoang, Reyhanitabar, Rogaway and Vizár, as in Tink's
//! streaming AEAD) with AES-256-GCM, so a ranged read decrypts and
//! authenticates only the segments it touches.
//!
//! ```text
//! object  = header ‖ segment_0 ‖ … ‖ segment_{n-1}
//! header  = "MNTR" ‖ version (2) ‖ key-id length (1) ‖ key id
//!         ‖ wrap nonce (12) ‖ wrapped data key (32 + 16)
//!         ‖ nonce prefix (7) ‖ segment size (u32 BE)
//! wrapped = AES-256-GCM(wrapping key, aad = "monteur object v2" ‖ key id
//!                       ‖ bucket ‖ object key ‖ tenant, each length-prefixed)
//! segment = AES-256-GCM(data key, nonce = prefix ‖ i (u32 BE) ‖ last (1 byte),
//!                       aad = header, plaintext of `segment size` bytes,
//!                       fewer in the last) ‖ tag (16)
//! ```
//!
//! Each object gets a fresh random data key, wrapped by the tenant's
//! wrapping key, so rotating a tenant key never re-encrypts footage. The
//! wrapping key is derived from the tenant key for that purpose alone
//! ([`super::derive`]): the SSE-C key, which the storage side sees, is
//! another. The wrapped key is bound to where the object lives (bucket,
//! object key, tenant): an object copied or swapped to another key, even of
//! the same tenant, does not open there. The segment index in the nonce
//! makes reordered segments fail; the last-segment flag makes a truncated
//! object fail (its new final segment was sealed as "not last"); the header
//! as associated data binds every segment to its object's key and layout.
//!
//! Version 1 objects (the tenant key itself wrapped the data key, bound to
//! the key id only) are still read, as what the worker wrote before this
//! format; everything written now is version 2. A rollback of an object to
//! an older object at the same key is not detected by the format: outputs
//! are write-once per job (the manifest names them).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use super::CryptoError;
use super::keyring::{Key, KeyProvider};

const MAGIC: &[u8; 4] = b"MNTR";
/// What is written; version 1 is still read.
const VERSION: u8 = 2;
const LEGACY: u8 = 1;

/// Where an object lives: what its wrapped data key is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Location<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub tenant: &'a str,
}

/// The associated data of a version 2 wrapped data key.
fn wrap_aad(key_id: &str, at: &Location<'_>) -> Vec<u8> {
    let mut out = b"monteur object v2".to_vec();
    for part in [key_id, at.bucket, at.key, at.tenant] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}
const TAG: usize = 16;
const PREFIX: usize = 7;
/// Plaintext bytes per segment unless asked otherwise: large enough that the
/// 16-byte tag costs nothing, small enough that a ranged read stays cheap.
pub const DEFAULT_SEGMENT: u32 = 1 << 20;
const MAX_SEGMENT: u32 = 64 << 20;

fn random(buf: &mut [u8]) -> Result<(), CryptoError> {
    aws_lc_rs::rand::fill(buf).map_err(|_| CryptoError::Random)
}

fn gcm(key: &[u8; 32]) -> Result<LessSafeKey, CryptoError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::Random)
}

fn segment_nonce(prefix: &[u8; PREFIX], index: u32, last: bool) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[..PREFIX].copy_from_slice(prefix);
    n[PREFIX..PREFIX + 4].copy_from_slice(&index.to_be_bytes());
    n[NONCE_LEN - 1] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

/// The key id a header names, read without unwrapping anything.
pub fn key_id_of(object: &[u8]) -> Result<String, CryptoError> {
    let bad = |what: &str| CryptoError::Corrupt(format!("header: {what}"));
    if object.len() < 6 || &object[..4] != MAGIC {
        return Err(bad("not a monteur encrypted object"));
    }
    let id_len = usize::from(object[5]);
    let id = object.get(6..6 + id_len).ok_or_else(|| bad("truncated"))?;
    std::str::from_utf8(id)
        .map(str::to_string)
        .map_err(|_| bad("key id is not UTF-8"))
}

/// The parsed header of an encrypted object.
pub struct Header {
    bytes: Vec<u8>,
    pub key_id: String,
    prefix: [u8; PREFIX],
    pub segment_size: u32,
    data_key: LessSafeKey,
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Header")
            .field("key_id", &self.key_id)
            .field("segment_size", &self.segment_size)
            .finish_non_exhaustive()
    }
}

impl Header {
    /// Bytes of the header at the start of the object.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Reads a header from the start of `object` (it may hold more than the
    /// header) and unwraps the data key with the key of `place.tenant` named
    /// in it, for the object at `place`.
    pub fn parse(
        object: &[u8],
        place: &Location<'_>,
        keys: &dyn KeyProvider,
    ) -> Result<Self, CryptoError> {
        let bad = |what: &str| CryptoError::Corrupt(format!("header: {what}"));
        if object.len() < 6 || &object[..4] != MAGIC {
            return Err(bad("not a monteur encrypted object"));
        }
        let version = object[4];
        if version != VERSION && version != LEGACY {
            return Err(bad("unknown version"));
        }
        let id_len = usize::from(object[5]);
        let len = 6 + id_len + NONCE_LEN + 32 + TAG + PREFIX + 4;
        if object.len() < len {
            return Err(bad("truncated"));
        }
        let key_id = std::str::from_utf8(&object[6..6 + id_len])
            .map_err(|_| bad("key id is not UTF-8"))?
            .to_string();
        let mut at = 6 + id_len;
        let wrap_nonce: [u8; NONCE_LEN] = object[at..at + NONCE_LEN]
            .try_into()
            .map_err(|_| bad("nonce"))?;
        at += NONCE_LEN;
        let mut wrapped = Zeroizing::new(object[at..at + 32 + TAG].to_vec());
        at += 32 + TAG;
        let prefix: [u8; PREFIX] = object[at..at + PREFIX]
            .try_into()
            .map_err(|_| bad("prefix"))?;
        at += PREFIX;
        let segment_size = u32::from_be_bytes(
            object[at..at + 4]
                .try_into()
                .map_err(|_| bad("segment size"))?,
        );
        if segment_size == 0 || segment_size > MAX_SEGMENT {
            return Err(bad("segment size out of range"));
        }
        if version == LEGACY && !keys.reads_legacy_objects() {
            return Err(CryptoError::Corrupt(
                "a version 1 object (bound to no place; readable only while storage.read_v1_objects is set for a migration)".into(),
            ));
        }
        let tenant_key = keys.tenant_key(place.tenant, &key_id)?;
        let (wrapping, aad) = if version == LEGACY {
            (gcm(tenant_key.bytes())?, key_id.as_bytes().to_vec())
        } else {
            let wrap = super::derive(tenant_key, super::Purpose::Wrap)?;
            (gcm(wrap.bytes())?, wrap_aad(&key_id, place))
        };
        let dek = wrapping
            .open_in_place(
                Nonce::assume_unique_for_key(wrap_nonce),
                Aad::from(aad.as_slice()),
                &mut wrapped,
            )
            .map_err(|_| {
                CryptoError::Corrupt(
                    "the data key does not unwrap (another object, place or key)".into(),
                )
            })?;
        let dek: Zeroizing<[u8; 32]> =
            Zeroizing::new(dek.try_into().map_err(|_| bad("data key length"))?);
        Ok(Self {
            bytes: object[..len].to_vec(),
            key_id,
            prefix,
            segment_size,
            data_key: gcm(&dek)?,
        })
    }

    /// Plaintext length of an object of `total` bytes, or why that size is
    /// impossible (a torn segment).
    pub fn plaintext_len(&self, total: u64) -> Result<u64, CryptoError> {
        let body = total
            .checked_sub(self.len() as u64)
            .ok_or_else(|| CryptoError::Corrupt("shorter than its header".into()))?;
        let seg = u64::from(self.segment_size) + TAG as u64;
        let (full, rest) = (body / seg, body % seg);
        if rest != 0 && rest < TAG as u64 {
            return Err(CryptoError::Corrupt("torn last segment".into()));
        }
        if body == 0 {
            return Err(CryptoError::Corrupt("no segment".into()));
        }
        Ok(full * u64::from(self.segment_size) + rest.saturating_sub(TAG as u64))
    }

    /// Number of segments in an object of `total` bytes.
    pub fn segments(&self, total: u64) -> u64 {
        let body = total.saturating_sub(self.len() as u64);
        body.div_ceil(u64::from(self.segment_size) + TAG as u64)
    }

    /// Byte range `[start, end)` of segment `i` in the object.
    pub fn segment_range(&self, i: u64, total: u64) -> (u64, u64) {
        let seg = u64::from(self.segment_size) + TAG as u64;
        let start = self.len() as u64 + i * seg;
        (start, (start + seg).min(total))
    }

    /// Decrypts segment `index` (its ciphertext and tag in `segment`); `last`
    /// says whether it ends the object.
    pub fn open_segment(
        &self,
        index: u64,
        last: bool,
        segment: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let index = u32::try_from(index)
            .map_err(|_| CryptoError::Corrupt("segment index out of range".into()))?;
        let plain = self
            .data_key
            .open_in_place(
                segment_nonce(&self.prefix, index, last),
                Aad::from(self.bytes.as_slice()),
                segment,
            )
            .map_err(|_| {
                CryptoError::Corrupt(format!(
                    "segment {index} fails authentication (tampered, reordered or truncated)"
                ))
            })?
            .len();
        segment.truncate(plain);
        Ok(())
    }
}

/// Encrypts one object as it is produced: header first, then a segment each
/// time `segment_size` bytes have arrived; [`Encryptor::finish`] seals the
/// last (possibly empty) segment.
pub struct Encryptor {
    header: Vec<u8>,
    prefix: [u8; PREFIX],
    data_key: LessSafeKey,
    segment_size: usize,
    index: u32,
    pending: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor")
            .field("segment_size", &self.segment_size)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    /// A new object at `at` under `tenant_key`, with a fresh data key and
    /// prefix.
    pub fn new(
        tenant_key: &Key,
        segment_size: u32,
        at: &Location<'_>,
    ) -> Result<Self, CryptoError> {
        if segment_size == 0 || segment_size > MAX_SEGMENT {
            return Err(CryptoError::Corrupt("segment size out of range".into()));
        }
        let id = tenant_key.id.as_bytes();
        let id_len = u8::try_from(id.len())
            .map_err(|_| CryptoError::Keyring("key id longer than 255 bytes".into()))?;
        let mut dek = Zeroizing::new([0u8; 32]);
        random(dek.as_mut())?;
        let mut wrap_nonce = [0u8; NONCE_LEN];
        random(&mut wrap_nonce)?;
        let mut prefix = [0u8; PREFIX];
        random(&mut prefix)?;
        let mut wrapped = Zeroizing::new(dek.to_vec());
        let wrap = super::derive(tenant_key, super::Purpose::Wrap)?;
        gcm(wrap.bytes())?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(wrap_nonce),
                Aad::from(wrap_aad(&tenant_key.id, at).as_slice()),
                &mut *wrapped,
            )
            .map_err(|_| CryptoError::Random)?;
        let mut header = Vec::with_capacity(6 + id.len() + NONCE_LEN + 48 + PREFIX + 4);
        header.extend_from_slice(MAGIC);
        header.push(VERSION);
        header.push(id_len);
        header.extend_from_slice(id);
        header.extend_from_slice(&wrap_nonce);
        header.extend_from_slice(&wrapped);
        header.extend_from_slice(&prefix);
        header.extend_from_slice(&segment_size.to_be_bytes());
        Ok(Self {
            header,
            prefix,
            data_key: gcm(&dek)?,
            segment_size: segment_size as usize,
            index: 0,
            pending: Zeroizing::new(Vec::with_capacity(segment_size as usize + TAG)),
        })
    }

    /// The header: the first bytes of the object.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// Seals `plain` as the next segment straight into `out` (one copy).
    fn seal_into(
        &mut self,
        plain: &[u8],
        last: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let nonce = segment_nonce(&self.prefix, self.index, last);
        let start = out.len();
        out.extend_from_slice(plain);
        let tag = self
            .data_key
            .seal_in_place_separate_tag(nonce, Aad::from(self.header.as_slice()), &mut out[start..])
            .map_err(|_| CryptoError::Random)?;
        out.extend_from_slice(tag.as_ref());
        self.index = self
            .index
            .checked_add(1)
            .ok_or_else(|| CryptoError::Corrupt("object too large for 2^32 segments".into()))?;
        Ok(())
    }

    fn seal_pending(&mut self, last: bool, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let pending = std::mem::take(&mut *self.pending);
        let result = self.seal_into(&pending, last, out);
        *self.pending = pending;
        self.pending.clear();
        result
    }

    /// Adds plaintext; whole segments are appended to `out` as they fill.
    /// A segment is sealed only once more data follows it, so the last one
    /// is known to be last.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        while !data.is_empty() {
            if self.pending.len() == self.segment_size {
                self.seal_pending(false, out)?;
            }
            // Whole segments with more data after them skip the staging buffer.
            if self.pending.is_empty() && data.len() > self.segment_size {
                let (segment, rest) = data.split_at(self.segment_size);
                self.seal_into(segment, false, out)?;
                data = rest;
                continue;
            }
            let take = (self.segment_size - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Seals the final segment.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        self.seal_pending(true, out)
    }
}

/// Encrypts a whole buffer (header included) in one call, for `at`.
pub fn seal(
    tenant_key: &Key,
    segment_size: u32,
    plain: &[u8],
    at: &Location<'_>,
) -> Result<Vec<u8>, CryptoError> {
    let mut e = Encryptor::new(tenant_key, segment_size, at)?;
    let mut out = e.header().to_vec();
    out.reserve(plain.len() + plain.len() / segment_size as usize * TAG + TAG);
    e.push(plain, &mut out)?;
    e.finish(&mut out)?;
    Ok(out)
}

/// Decrypts and authenticates a whole object read from `at`.
pub fn open(
    object: &[u8],
    at: &Location<'_>,
    keys: &dyn KeyProvider,
) -> Result<Vec<u8>, CryptoError> {
    let header = Header::parse(object, at, keys)?;
    let total = object.len() as u64;
    let mut plain = Vec::with_capacity(header.plaintext_len(total)? as usize);
    let n = header.segments(total);
    let mut segment = Vec::new();
    for i in 0..n {
        let (a, b) = header.segment_range(i, total);
        segment.clear();
        segment.extend_from_slice(&object[a as usize..b as usize]);
        header.open_segment(i, i + 1 == n, &mut segment)?;
        plain.extend_from_slice(&segment);
    }
    Ok(plain)
}

/// Decrypts plaintext bytes `[start, end)` of an object of `total` bytes,
/// reading only the segments that hold them through `read(range)`: what a
/// ranged GET does.
pub fn open_range(
    header: &Header,
    total: u64,
    start: u64,
    end: u64,
    read: &mut dyn FnMut(u64, u64) -> Result<Vec<u8>, CryptoError>,
) -> Result<Vec<u8>, CryptoError> {
    let len = header.plaintext_len(total)?;
    let end = end.min(len);
    if start >= end {
        return Ok(Vec::new());
    }
    let seg = u64::from(header.segment_size);
    let n = header.segments(total);
    let (first, last) = (start / seg, (end - 1) / seg);
    let mut out = Vec::with_capacity((end - start) as usize);
    for i in first..=last {
        let (a, b) = header.segment_range(i, total);
        let mut segment = read(a, b)?;
        header.open_segment(i, i + 1 == n, &mut segment)?;
        let base = i * seg;
        let from = start.saturating_sub(base) as usize;
        let to = ((end - base) as usize).min(segment.len());
        out.extend_from_slice(&segment[from..to]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::crypto::keyring::Keyring;

    fn ring() -> Keyring {
        let mut r = Keyring::default();
        r.add_tenant_key("acme", Key::new("acme-1", [1; 32]), true)
            .unwrap();
        r.add_tenant_key("other", Key::new("other-1", [2; 32]), true)
            .unwrap();
        r
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    const AT: Location<'static> = Location {
        bucket: "b",
        key: "tenants/acme/out/j1/render.mp4",
        tenant: "acme",
    };

    fn at(tenant: &'static str) -> Location<'static> {
        Location { tenant, ..AT }
    }

    #[test]
    fn round_trips_at_every_boundary() {
        let r = ring();
        let key = r.active_key("acme").unwrap();
        for n in [0, 1, 63, 64, 65, 128, 1000] {
            let plain = data(n);
            let sealed = seal(key, 64, &plain, &AT).unwrap();
            assert_eq!(open(&sealed, &AT, &r).unwrap(), plain, "{n} bytes");
            let h = Header::parse(&sealed, &AT, &r).unwrap();
            assert_eq!(h.plaintext_len(sealed.len() as u64).unwrap(), n as u64);
        }
    }

    #[test]
    fn streaming_in_odd_pieces_equals_one_call_layout() {
        let r = ring();
        let key = r.active_key("acme").unwrap();
        let plain = data(1000);
        let mut e = Encryptor::new(key, 100, &AT).unwrap();
        let mut out = e.header().to_vec();
        for piece in plain.chunks(37) {
            e.push(piece, &mut out).unwrap();
        }
        e.finish(&mut out).unwrap();
        assert_eq!(open(&out, &AT, &r).unwrap(), plain);
    }

    #[test]
    fn ranged_reads_touch_only_their_segments() {
        let r = ring();
        let plain = data(10_000);
        let sealed = seal(r.active_key("acme").unwrap(), 256, &plain, &AT).unwrap();
        let h = Header::parse(&sealed, &AT, &r).unwrap();
        let total = sealed.len() as u64;
        for (a, b) in [(0, 1), (255, 257), (1000, 5000), (9990, 20_000)] {
            let mut reads = 0;
            let got = open_range(&h, total, a, b, &mut |x, y| {
                reads += 1;
                Ok(sealed[x as usize..y as usize].to_vec())
            })
            .unwrap();
            let b = b.min(10_000);
            assert_eq!(got, plain[a as usize..b as usize]);
            assert_eq!(reads, ((b - 1) / 256 - a / 256 + 1) as usize);
        }
    }

    #[test]
    fn tampering_truncation_reordering_and_foreign_keys_all_fail() {
        let r = ring();
        let plain = data(1000);
        let sealed = seal(r.active_key("acme").unwrap(), 100, &plain, &AT).unwrap();
        let h = Header::parse(&sealed, &AT, &r).unwrap().len();
        let seg = 116;

        let mut flipped = sealed.clone();
        flipped[h + 5] ^= 1;
        assert!(open(&flipped, &AT, &r).is_err(), "bit flip");

        let mut header_flip = sealed.clone();
        header_flip[h - 1] ^= 1; // segment size
        assert!(open(&header_flip, &AT, &r).is_err(), "header edit");

        // Cut at a segment boundary: the new last segment was sealed "not last".
        let cut = &sealed[..h + 5 * seg];
        assert!(open(cut, &AT, &r).is_err(), "truncated");
        assert!(open(&sealed[..sealed.len() - 3], &AT, &r).is_err());

        let mut swapped = sealed.clone();
        let (a, b) = (h, h + seg);
        let first = sealed[a..b].to_vec();
        swapped.copy_within(b..b + seg, a);
        swapped[b..b + seg].copy_from_slice(&first);
        assert!(open(&swapped, &AT, &r).is_err(), "reordered");

        // Another tenant cannot open it, even holding a key of the same id.
        assert!(open(&sealed, &at("other"), &r).is_err(), "other tenant");
        let mut impostor = Keyring::default();
        impostor
            .add_tenant_key("acme", Key::new("acme-1", [9; 32]), true)
            .unwrap();
        assert!(open(&sealed, &AT, &impostor).is_err(), "wrong key");
    }

    #[test]
    fn every_object_gets_its_own_data_key_and_nonces() {
        let r = ring();
        let key = r.active_key("acme").unwrap();
        let a = seal(key, 64, &data(200), &AT).unwrap();
        let b = seal(key, 64, &data(200), &AT).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), b.len());
    }

    #[test]
    fn an_object_opens_only_where_it_was_written() {
        let r = ring();
        let key = r.active_key("acme").unwrap();
        let sealed = seal(key, 64, &data(300), &AT).unwrap();
        // Swapped to another key of the same tenant, or another bucket.
        let elsewhere = Location {
            key: "tenants/acme/out/j2/render.mp4",
            ..AT
        };
        assert!(open(&sealed, &elsewhere, &r).is_err(), "moved");
        assert!(
            open(&sealed, &Location { bucket: "c", ..AT }, &r).is_err(),
            "other bucket"
        );
        assert_eq!(open(&sealed, &AT, &r).unwrap(), data(300));
    }

    #[test]
    fn the_sse_c_key_cannot_unwrap_a_client_mode_object() {
        // What the storage side sees of a tenant key in SSE-C mode, used as
        // if it were the tenant key.
        let r = ring();
        let tenant = r.active_key("acme").unwrap();
        let sealed = seal(tenant, 64, &data(100), &AT).unwrap();
        let sse = super::super::derive(tenant, super::super::Purpose::SseC).unwrap();
        let mut captured = Keyring::default();
        captured
            .add_tenant_key("acme", Key::new("acme-1", *sse.bytes()), true)
            .unwrap();
        assert!(open(&sealed, &AT, &captured).is_err());
    }

    #[test]
    fn version_one_objects_open_only_while_a_migration_allows_them() {
        // Built as the worker built them before version 2: the tenant key
        // wraps the data key, the key id is the only associated data.
        let mut r = ring();
        let tenant = r.active_key("acme").unwrap();
        let mut e = Encryptor::new(tenant, 64, &AT).unwrap();
        let dek = [7u8; 32];
        let mut wrapped = dek.to_vec();
        let nonce = [3u8; NONCE_LEN];
        gcm(tenant.bytes())
            .unwrap()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(b"acme-1".as_slice()),
                &mut wrapped,
            )
            .unwrap();
        let id_len = 6;
        e.header[4] = LEGACY;
        e.header[6 + id_len..6 + id_len + NONCE_LEN].copy_from_slice(&nonce);
        e.header[6 + id_len + NONCE_LEN..6 + id_len + NONCE_LEN + 48].copy_from_slice(&wrapped);
        e.data_key = gcm(&dek).unwrap();
        let mut out = e.header().to_vec();
        e.push(&data(150), &mut out).unwrap();
        e.finish(&mut out).unwrap();
        // Refused by default: anyone who saw the raw tenant key as an SSE-C
        // key could have made it.
        let err = open(&out, &AT, &r).unwrap_err().to_string();
        assert!(err.contains("version 1"), "{err}");
        r.read_legacy_objects(true);
        assert_eq!(open(&out, &AT, &r).unwrap(), data(150));
        // Version 1 was bound to nothing but the key: it opens anywhere.
        let elsewhere = Location {
            key: "tenants/acme/x",
            ..AT
        };
        assert_eq!(open(&out, &elsewhere, &r).unwrap(), data(150));
    }
}
