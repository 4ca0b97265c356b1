//! Encryption of customer footage and artifacts with per-tenant keys.
//!
//! - [`keyring`]: where keys come from ([`KeyProvider`]; a local keyring file
//!   for development, an interface for KMS/HSM), zeroized, never printed.
//! - [`signing`]: Ed25519 job signatures; workers hold public keys only.
//! - [`stream`]: client-side segmented AEAD (AES-256-GCM, STREAM
//!   construction) with authenticated random access for ranged reads.
//! - [`sse_c`]: the headers that make S3 encrypt with the tenant's key
//!   server-side (SSE-C), the other mode.

pub mod keyring;
pub mod signing;
pub mod stream;

use base64::Engine as _;
use thiserror::Error;
use zeroize::Zeroizing;

pub use keyring::{Key, KeyProvider, Keyring};
pub use signing::{Action, Signer, VerifyingKey};

/// Why encryption or decryption failed. Messages name key ids at most.
#[derive(Debug, Error)]
pub enum CryptoError {
    #[error("keyring: {0}")]
    Keyring(String),
    /// No key for this tenant and id: the job names a key it may not use.
    #[error("no such key for this tenant")]
    UnknownKey,
    /// The ciphertext does not authenticate: tampered, truncated, reordered,
    /// or under another key. Never retried.
    #[error("encrypted object is corrupt: {0}")]
    Corrupt(String),
    #[error("the system random generator failed")]
    Random,
}

/// What a key derived from a tenant key is for. Each purpose gets its own
/// key (HKDF-SHA256, the purpose as `info`), so the key one purpose reveals
/// opens nothing of another: the SSE-C key, which travels to the storage
/// side with every request, cannot unwrap a client-mode object's data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Sent to S3 with SSE-C requests.
    SseC,
    /// Wraps client-mode objects' data keys (format version 2).
    Wrap,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::SseC => b"monteur sse-c key v1",
            Purpose::Wrap => b"monteur client-mode wrapping key v2",
        }
    }
}

/// The key for `purpose` derived from a tenant key.
pub fn derive(tenant_key: &Key, purpose: Purpose) -> Result<Key, CryptoError> {
    use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
    let prk = Salt::new(HKDF_SHA256, &[]).extract(tenant_key.bytes());
    let info = [purpose.label()];
    let okm = prk
        .expand(&info, HKDF_SHA256)
        .map_err(|_| CryptoError::Random)?;
    let mut out = Zeroizing::new([0u8; 32]);
    okm.fill(out.as_mut()).map_err(|_| CryptoError::Random)?;
    Ok(Key::new(tenant_key.id.clone(), *out))
}

/// SSE-C request headers for a tenant key: algorithm, the derived SSE-C key
/// (never the tenant key itself), and its MD5, base64 as S3 expects
/// (`x-amz-server-side-encryption-customer-*`). The returned strings hold
/// key material: they are wiped when dropped.
pub fn sse_c(tenant_key: &Key) -> Result<(&'static str, Zeroizing<String>, String), CryptoError> {
    use md5::Digest as _;
    let key = derive(tenant_key, Purpose::SseC)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let digest = md5::Md5::digest(key.bytes());
    Ok((
        "AES256",
        Zeroizing::new(b64.encode(key.bytes())),
        b64.encode(digest),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_c_headers_carry_a_derived_key_and_its_md5() {
        let tenant = Key::new("k", [0u8; 32]);
        let (alg, key, md5) = sse_c(&tenant).unwrap();
        assert_eq!(alg, "AES256");
        let b64 = base64::engine::general_purpose::STANDARD;
        let sent = b64.decode(key.as_bytes()).unwrap();
        // Not the tenant key, not the wrapping key; MD5 of what is sent.
        assert_ne!(sent, vec![0u8; 32]);
        assert_ne!(
            sent.as_slice(),
            derive(&tenant, Purpose::Wrap).unwrap().bytes().as_slice()
        );
        use md5::Digest as _;
        assert_eq!(md5, b64.encode(md5::Md5::digest(&sent)));
        // Deterministic: the same tenant key gives the same SSE-C key.
        assert_eq!(sse_c(&tenant).unwrap().1.as_str(), key.as_str());
    }
}
