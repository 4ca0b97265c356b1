//! Property loops over what hostile bytes reach first: the message parser
//! and verifier, the job validation behind a valid signature (a compromised
//! producer key), the encrypted-object header parser, and ranged
//! decryption. Cases are mutated valid inputs (bit flips, cuts, inserted
//! bytes, fields replaced by odd JSON), noise, or job-shaped values built by
//! `arbitrary`. A case passes when the code under test returns (Ok or a
//! typed error) without panicking, and the answers that can be checked are
//! right: only the message as signed verifies, an accepted job stays inside
//! its tenant's prefix and this worker's region, and an uncorrupted ranged
//! read returns exactly its plaintext.
//!
//! Shared by `cargo bench -p monteur-worker --bench fuzz` (100 000 cases per
//! target) and a small slice in `cargo test -p monteur-worker --test fuzz`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use monteur_worker::crypto::stream::{self, Header, Location};
use monteur_worker::crypto::{Action, Key, Keyring, Signer, VerifyingKey};
use monteur_worker::job::{self, Checks, Encryption, Job, JobOptions, Lifetimes, Stamp};

/// A small deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// What a target's run found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub cases: u64,
    pub panics: u64,
    /// Cases the code under test accepted (verified, parsed, decrypted).
    pub accepted: u64,
    /// Accepted answers that were wrong (must stay 0).
    pub wrong: u64,
}

/// Mutates `input` once, in one of several ways.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    match rng.below(7) {
        0 => {
            // Flip a few bits.
            for _ in 0..1 + rng.below(4) {
                if !out.is_empty() {
                    let i = rng.below(out.len());
                    out[i] ^= 1 << rng.below(8);
                }
            }
        }
        1 => out.truncate(rng.below(out.len() + 1)),
        2 => {
            let at = rng.below(out.len() + 1);
            let n = 1 + rng.below(32);
            let extra = rng.bytes(n);
            out.splice(at..at, extra);
        }
        3 => {
            // Overwrite a run with noise.
            if !out.is_empty() {
                let at = rng.below(out.len());
                let n = (1 + rng.below(16)).min(out.len() - at);
                let noise = rng.bytes(n);
                out[at..at + n].copy_from_slice(&noise);
            }
        }
        4 => {
            let n = rng.below(512);
            out = rng.bytes(n);
        }
        5 => {
            // Duplicate a slice (repeated fields, segments).
            if !out.is_empty() {
                let a = rng.below(out.len());
                let b = (a + 1 + rng.below(64)).min(out.len());
                let dup = out[a..b].to_vec();
                let at = rng.below(out.len() + 1);
                out.splice(at..at, dup);
            }
        }
        _ => {
            // A JSON-ish edit: a quoted value swapped for an odd one.
            let odd: [&[u8]; 8] = [
                b"null",
                b"-1",
                b"1e309",
                b"[]",
                b"{}",
                b"\"\\u0000\"",
                b"\"tenants/../../etc\"",
                b"18446744073709551616",
            ];
            if let Some(q) = out.iter().position(|&b| b == b':') {
                let start = q + 1 + rng.below(8).min(out.len().saturating_sub(q + 1));
                let end = (start + rng.below(24)).min(out.len());
                let with = odd[rng.below(odd.len())].to_vec();
                out.splice(start..end, with);
            }
        }
    }
    out
}

fn keys() -> (Signer, Keyring) {
    let (signer, _) = match Signer::generate("prod-1") {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let mut ring = Keyring::default();
    if let Err(e) = ring.add_verifying_key(VerifyingKey::new(
        "prod-1",
        signer.public_key(),
        vec![Action::Process, Action::Purge, Action::Cancel],
        vec!["*".into()],
    )) {
        panic!("{e}");
    }
    let _ = ring.add_tenant_key("acme", Key::new("acme-1", [7; 32]), true);
    (signer, ring)
}

/// The message verifier on mutated and random envelopes.
pub fn verifier(cases: u64, seed: u64) -> Tally {
    let (signer, ring) = keys();
    let job = Job {
        job_id: "j1".into(),
        tenant: "acme".into(),
        region: "eu".into(),
        input: "tenants/acme/in/a.mp4".into(),
        output_prefix: "tenants/acme/out/j1/".into(),
        tasks: vec!["scenes".into(), "render".into()],
        encryption: Encryption::Client,
        options: JobOptions {
            language: Some("fr".into()),
            target_s: Some(30.0),
            burn_captions: Some(true),
            autocut_mode: Some(monteur_pipelines::CutMode::Transcript),
            burn_style: Some(monteur_pipelines::render::BurnStyle::Karaoke),
            drop: Some(vec![(1.0, 2.5)]),
        },
        stamp: Stamp::fresh(3600),
    };
    let good = job::envelope(&job, &signer).into_bytes();
    let checks = Checks {
        region: "eu",
        lifetimes: Lifetimes::default(),
        now: job::now_s(),
    };
    let mut rng = Rng::new(seed);
    let mut t = Tally::default();
    for _ in 0..cases {
        let body = mutate(&mut rng, &good);
        t.cases += 1;
        match catch_unwind(AssertUnwindSafe(|| job::verify(&body, &ring, &checks))) {
            Err(_) => t.panics += 1,
            Ok(Ok(_)) => {
                t.accepted += 1;
                // Only the bytes signed verify (a mutation may leave them
                // as they were, or touch only insignificant whitespace
                // outside the signed job).
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                if v["job"] != serde_json::to_value(&job).unwrap_or_default() {
                    t.wrong += 1;
                }
            }
            Ok(Err(_)) => {}
        }
    }
    t
}

/// Validation behind the signature: mutated job texts signed with a
/// trusted key (a compromised or buggy producer). Accepted jobs must stay
/// inside their tenant's prefix and this worker's region.
pub fn signed_jobs(cases: u64, seed: u64) -> Tally {
    let (signer, ring) = keys();
    let job = Job {
        job_id: "j1".into(),
        tenant: "acme".into(),
        region: "eu".into(),
        input: "tenants/acme/in/a.mp4".into(),
        output_prefix: "tenants/acme/out/j1/".into(),
        tasks: vec!["scenes".into(), "captions".into(), "render".into()],
        encryption: Encryption::Client,
        options: JobOptions {
            language: Some("fr".into()),
            target_s: Some(30.0),
            burn_captions: Some(true),
            autocut_mode: Some(monteur_pipelines::CutMode::Transcript),
            burn_style: Some(monteur_pipelines::render::BurnStyle::Karaoke),
            drop: Some(vec![(1.0, 2.5)]),
        },
        stamp: Stamp::fresh(3600),
    };
    let good = serde_json::to_vec(&job).unwrap_or_default();
    let checks = Checks {
        region: "eu",
        lifetimes: Lifetimes::default(),
        now: job::now_s(),
    };
    let mut rng = Rng::new(seed);
    let mut t = Tally::default();
    for _ in 0..cases {
        let text = String::from_utf8_lossy(&mutate(&mut rng, &good)).into_owned();
        let body = job::signed(job::JOB_SCHEMA, &text, &signer);
        t.cases += 1;
        match catch_unwind(AssertUnwindSafe(|| {
            job::verify(body.as_bytes(), &ring, &checks)
        })) {
            Err(_) => t.panics += 1,
            Ok(Ok(request)) => {
                t.accepted += 1;
                if !contained(&request) {
                    t.wrong += 1;
                }
            }
            Ok(Err(_)) => {}
        }
    }
    t
}

/// A job-shaped value built by `arbitrary` from noise: each field either
/// arbitrary text or one of the values that matter (other tenants, `..`,
/// foreign regions, huge or empty strings), the stamp's times anywhere.
#[derive(arbitrary::Arbitrary, Debug)]
struct HostileJob {
    job_id: Field,
    tenant: Field,
    region: Field,
    input: Field,
    output_prefix: Field,
    tasks: Vec<Field>,
    encryption: Field,
    language: Option<Field>,
    target_s: Option<f64>,
    burn_captions: Option<bool>,
    issued_from_now: i16,
    lifetime: u16,
    nonce: Field,
    extra: Option<(String, Field)>,
}

/// Mostly the field's usual value (so whole jobs often pass and the checks
/// behind the first refusal run too), else a known-bad value or noise.
#[derive(arbitrary::Arbitrary, Debug)]
struct Field {
    pick: u8,
    text: String,
}

const KNOWN: [&str; 24] = [
    "acme",
    "acme2",
    "eu",
    "us",
    "tenants/acme/in/a.mp4",
    "tenants/acme/out/j1/",
    "tenants/acme/../globex/in/a.mp4",
    "tenants/acme/./in/a.mp4",
    "tenants/acme2/in/a.mp4",
    "tenants/acme",
    "/tenants/acme/in/a.mp4",
    "tenants/acme//in/a.mp4",
    "tenants/globex/out/",
    "scenes",
    "captions",
    "cuts",
    "render",
    "client",
    "sse-c",
    "none",
    "",
    "\u{0}",
    "nonce-0123456789abcdef",
    "j1",
];

impl Field {
    fn value(&self, usual: &str) -> serde_json::Value {
        match self.pick {
            0..200 => usual.into(),
            200..230 => KNOWN[usize::from(self.pick) % KNOWN.len()].into(),
            _ => self.text.clone().into(),
        }
    }
}

fn hostile_json(h: &HostileJob, now: u64) -> serde_json::Value {
    let issued = now as i64 + i64::from(h.issued_from_now);
    let mut v = serde_json::json!({
        "job_id": h.job_id.value("j1"),
        "tenant": h.tenant.value("acme"),
        "region": h.region.value("eu"),
        "input": h.input.value("tenants/acme/in/a.mp4"),
        "output_prefix": h.output_prefix.value("tenants/acme/out/j1/"),
        "tasks": h.tasks.iter().map(|t| t.value("scenes")).collect::<Vec<_>>(),
        "encryption": h.encryption.value("client"),
        "issued_at": issued,
        "expires_at": issued + i64::from(h.lifetime),
        "nonce": h.nonce.value("nonce-0123456789abcdef"),
    });
    if let Some(map) = v.as_object_mut() {
        let mut options = serde_json::Map::new();
        if let Some(l) = &h.language {
            options.insert("language".into(), l.value("fr"));
        }
        if let Some(t) = h.target_s {
            options.insert("target_s".into(), serde_json::json!(t));
        }
        if let Some(b) = h.burn_captions {
            options.insert("burn_captions".into(), b.into());
        }
        if !options.is_empty() {
            map.insert("options".into(), options.into());
        }
        if let Some((k, val)) = &h.extra
            && val.pick >= 200
        {
            map.insert(k.clone(), val.value("x"));
        }
    }
    v
}

/// Accepted requests stay inside their tenant's prefix and this worker's
/// region (`eu`); anything else counts as a wrong answer.
fn contained(request: &job::Request) -> bool {
    match request {
        job::Request::Process(j) => {
            let home = format!("tenants/{}/", j.tenant);
            let inside =
                |k: &str| k.starts_with(&home) && !k.split('/').any(|s| s == ".." || s == ".");
            j.region == "eu" && inside(&j.input) && inside(&j.output_prefix)
        }
        _ => false,
    }
}

/// Structured hostile jobs from `arbitrary`, signed with a trusted key.
pub fn arbitrary_jobs(cases: u64, seed: u64) -> Tally {
    let (signer, ring) = keys();
    let now = job::now_s();
    let checks = Checks {
        region: "eu",
        lifetimes: Lifetimes::default(),
        now,
    };
    let mut rng = Rng::new(seed);
    let mut t = Tally::default();
    for _ in 0..cases {
        let n = 16 + rng.below(400);
        let noise = rng.bytes(n);
        let Ok(h) = arbitrary::Unstructured::new(&noise).arbitrary::<HostileJob>() else {
            continue;
        };
        let text = hostile_json(&h, now).to_string();
        let body = job::signed(job::JOB_SCHEMA, &text, &signer);
        t.cases += 1;
        match catch_unwind(AssertUnwindSafe(|| {
            job::verify(body.as_bytes(), &ring, &checks)
        })) {
            Err(_) => t.panics += 1,
            Ok(Ok(request)) => {
                t.accepted += 1;
                if !contained(&request) {
                    t.wrong += 1;
                }
            }
            Ok(Err(_)) => {}
        }
    }
    t
}

fn object(rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
    let n = 20_000 + rng.below(5_000);
    let plain = rng.bytes(n);
    let key = Key::new("acme-1", [7; 32]);
    let sealed = stream::seal(&key, 1024, &plain, &AT).unwrap_or_default();
    (plain, sealed)
}

const AT: Location<'static> = Location {
    bucket: "b",
    key: "tenants/acme/in/a.mp4",
    tenant: "acme",
};

/// The encrypted-object header parser on mutated and random headers.
pub fn headers(cases: u64, seed: u64) -> Tally {
    let (_, ring) = keys();
    let mut rng = Rng::new(seed);
    let (_, sealed) = object(&mut rng);
    let head = &sealed[..sealed.len().min(200)];
    let mut t = Tally::default();
    for _ in 0..cases {
        let bytes = mutate(&mut rng, head);
        t.cases += 1;
        let r = catch_unwind(AssertUnwindSafe(|| {
            let _ = stream::key_id_of(&bytes);
            Header::parse(&bytes, &AT, &ring).map(|h| {
                // Derived sizes of a parsed header never panic either.
                let total = bytes.len() as u64 + rng_len(&bytes);
                let _ = h.plaintext_len(total);
                let _ = h.segments(total);
            })
        }));
        match r {
            Err(_) => t.panics += 1,
            Ok(Ok(())) => t.accepted += 1,
            Ok(Err(_)) => {}
        }
    }
    t
}

fn rng_len(bytes: &[u8]) -> u64 {
    bytes.iter().map(|&b| u64::from(b)).sum::<u64>() * 97
}

/// Ranged decryption: random ranges of an object, some segments corrupted.
pub fn ranges(cases: u64, seed: u64) -> Tally {
    let (_, ring) = keys();
    let mut rng = Rng::new(seed);
    let (plain, sealed) = object(&mut rng);
    let header = match Header::parse(&sealed, &AT, &ring) {
        Ok(h) => h,
        Err(e) => panic!("{e}"),
    };
    let total = sealed.len() as u64;
    let mut t = Tally::default();
    for _ in 0..cases {
        let mut object = sealed.clone();
        let corrupt = rng.below(3) == 0;
        if corrupt {
            let i = header.len() + rng.below(object.len() - header.len());
            object[i] ^= 1 << rng.below(8);
        }
        let a = rng.below(plain.len() + 100) as u64;
        let b = a + rng.below(8_000) as u64;
        t.cases += 1;
        let r = catch_unwind(AssertUnwindSafe(|| {
            stream::open_range(&header, total, a, b, &mut |x, y| {
                Ok(object[x as usize..y as usize].to_vec())
            })
        }));
        match r {
            Err(_) => t.panics += 1,
            Ok(Ok(got)) => {
                t.accepted += 1;
                let (a, b) = ((a as usize).min(plain.len()), (b as usize).min(plain.len()));
                let want = if a < b { &plain[a..b] } else { &[][..] };
                if got != want {
                    t.wrong += 1;
                }
            }
            Ok(Err(_)) if !corrupt => t.wrong += 1,
            Ok(Err(_)) => {}
        }
    }
    t
}
