//! Diagnostics without identifiers: what every log line, error chain and
//! panic message passes through before it leaves the process.
//!
//! Fail closed: an event field whose name is not on [`ALLOWED`] is dropped.
//! Fields naming an identifier that operators need to correlate (`job_id`,
//! `tenant`) become keyed pseudonyms (HMAC-SHA256 under a random secret that
//! is replaced at every start and every rotation period, first 12 hex digits:
//! stable within a period, unlinkable across periods and runs).
//! Free text (messages, errors) is scrubbed in two passes. First, the
//! identifiers of the jobs in flight ([`KnownIdentifiers`]: job ids, tenant
//! names, object keys and their file names), which no pattern could tell
//! from ordinary words, are replaced by `<id>` wherever they appear. Then,
//! token by token, e-mail addresses, IP addresses, URLs, object keys and
//! paths, bearer tokens and anything that looks like key material are
//! replaced by a marker naming what was there.

use std::fmt::Write as _;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Identifiers of the jobs in flight, each with the id of the guard that
/// registered it.
static KNOWN: RwLock<Vec<(u64, String)>> = RwLock::new(Vec::new());
static NEXT_GUARD: AtomicU64 = AtomicU64::new(0);

/// Shorter values are not redacted: they would eat ordinary words.
const MIN_KNOWN_LEN: usize = 3;

/// While this guard lives, its values are redacted from all free text. The
/// daemon holds one per job, around the whole job, so a panic message (the
/// hook runs before unwinding drops the guard) is covered too.
#[derive(Debug)]
pub struct KnownIdentifiers {
    id: u64,
}

impl KnownIdentifiers {
    /// Registers `values` (and, for object keys, their last segment: a file
    /// name is an identifier on its own).
    pub fn register<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let id = NEXT_GUARD.fetch_add(1, Ordering::Relaxed);
        let mut known = KNOWN.write().unwrap_or_else(|e| e.into_inner());
        for v in values {
            let last = v.trim_end_matches('/').rsplit('/').next().unwrap_or(v);
            for part in [v, last] {
                if part.len() >= MIN_KNOWN_LEN && !known.iter().any(|(g, k)| *g == id && k == part)
                {
                    known.push((id, part.to_string()));
                }
            }
        }
        // Longest first, so a key is replaced whole before its parts.
        known.sort_by_key(|k| std::cmp::Reverse(k.1.len()));
        Self { id }
    }
}

impl Drop for KnownIdentifiers {
    fn drop(&mut self) {
        let mut known = KNOWN.write().unwrap_or_else(|e| e.into_inner());
        known.retain(|(g, _)| *g != self.id);
    }
}

fn redact_known(text: &str) -> std::borrow::Cow<'_, str> {
    let known = KNOWN.read().unwrap_or_else(|e| e.into_inner());
    let mut out = std::borrow::Cow::Borrowed(text);
    for (_, k) in known.iter() {
        if out.contains(k.as_str()) {
            out = std::borrow::Cow::Owned(out.replace(k.as_str(), "<id>"));
        }
    }
    out
}

/// Event fields that may leave the process, and how.
pub const ALLOWED: &[(&str, Kind)] = &[
    ("message", Kind::Text),
    ("error", Kind::Text),
    ("detail", Kind::Text),
    ("problem", Kind::Text),
    ("note", Kind::Text),
    ("reason", Kind::Text),
    ("job_id", Kind::Pseudonym),
    ("tenant", Kind::Pseudonym),
    ("task", Kind::Plain),
    ("mode", Kind::Plain),
    ("encoder", Kind::Plain),
    ("backend", Kind::Plain),
    ("container", Kind::Plain),
    ("provider", Kind::Plain),
    ("queue", Kind::Plain),
    ("region", Kind::Plain),
    ("addr", Kind::Plain),
    ("duplicate", Kind::Plain),
    ("cuda_provider", Kind::Plain),
    ("attempts", Kind::Plain),
    ("resumes", Kind::Plain),
    ("received", Kind::Plain),
    ("start", Kind::Plain),
    ("pid", Kind::Plain),
    ("concurrency", Kind::Plain),
    ("in_flight", Kind::Plain),
    ("left", Kind::Plain),
    ("pause_s", Kind::Plain),
    ("elapsed_s", Kind::Plain),
    ("duration_s", Kind::Plain),
    ("source_s", Kind::Plain),
    ("kept_s", Kind::Plain),
    ("percent", Kind::Plain),
    ("frames", Kind::Plain),
    ("cues", Kind::Plain),
    ("phrases", Kind::Plain),
    ("ranges", Kind::Plain),
    ("seeks", Kind::Plain),
    ("transitions", Kind::Plain),
    ("video_streams", Kind::Plain),
    ("audio_streams", Kind::Plain),
    ("run", Kind::Plain),
    ("start_s", Kind::Plain),
    ("stop_s", Kind::Plain),
    ("objects", Kind::Plain),
    ("uploads", Kind::Plain),
    ("removed", Kind::Plain),
    ("width", Kind::Plain),
    ("lane", Kind::Plain),
    ("waiting", Kind::Plain),
    ("running", Kind::Plain),
    ("stage", Kind::Plain),
    ("device", Kind::Plain),
];

/// How an allowed field is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Counts, durations, enum-like names: passed as they are, but still
    /// scrubbed if they turn out to be text.
    Plain,
    /// An identifier: replaced by a keyed pseudonym.
    Pseudonym,
    /// Free text: scrubbed.
    Text,
}

/// The rules and the pseudonym secret of one process.
pub struct Scrubber {
    /// The rotation period this key belongs to, and the key.
    key: std::sync::Mutex<(u64, aws_lc_rs::hmac::Key)>,
    /// Seconds between secrets; 0 never rotates (tests).
    rotation_s: u64,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrubber").finish_non_exhaustive()
    }
}

impl Default for Scrubber {
    fn default() -> Self {
        Self::new(86_400)
    }
}

fn random_key() -> aws_lc_rs::hmac::Key {
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    // The kernel's generator (getrandom(2)) first, not aws-lc's: the first
    // draw from aws-lc seeds its DRBG through a CPU-jitter entropy
    // self-test, about 25 ms of CPU (`perf`) that every `monteur process`
    // paid before its first frame, for a key the kernel's generator serves
    // as well; aws-lc's only if the kernel's fails. With neither the key
    // stays all zeros: the scrubbing still removes every identifier, but
    // its pseudonyms could be reversed by hashing guessed identifiers. Not
    // logged here: this runs inside the telemetry layer (at start and at
    // each rotation), and a machine whose kernel and aws-lc both lack
    // randomness cannot open the TLS connections the worker needs either.
    if getrandom::fill(secret.as_mut()).is_err() {
        let _ = aws_lc_rs::rand::fill(secret.as_mut());
    }
    aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_ref())
}

fn period(rotation_s: u64) -> u64 {
    if rotation_s == 0 {
        return 0;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / rotation_s)
        .unwrap_or(0)
}

impl Scrubber {
    /// A scrubber whose random pseudonym secret is replaced every
    /// `rotation_s` seconds (wall-clock periods, so a fleet rotates together).
    pub fn new(rotation_s: u64) -> Self {
        Self {
            key: std::sync::Mutex::new((period(rotation_s), random_key())),
            rotation_s,
        }
    }

    /// A fixed secret that never rotates (tests, benchmarks).
    pub fn with_secret(secret: &[u8; 32]) -> Self {
        Self {
            key: std::sync::Mutex::new((
                0,
                aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
            )),
            rotation_s: 0,
        }
    }

    /// A stable, keyed stand-in for an identifier.
    pub fn pseudonym(&self, value: &str) -> String {
        let now = period(self.rotation_s);
        let tag = match self.key.lock() {
            Ok(mut k) => {
                if k.0 != now {
                    *k = (now, random_key());
                }
                aws_lc_rs::hmac::sign(&k.1, value.as_bytes())
            }
            // A poisoned lock (a panic while signing) must not let the raw
            // value through: a fresh key still hides it.
            Err(_) => aws_lc_rs::hmac::sign(&random_key(), value.as_bytes()),
        };
        let mut out = String::from("p:");
        for b in &tag.as_ref()[..6] {
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    /// How `name = value` may appear in a diagnostic, or `None` to drop it.
    pub fn field(&self, name: &str, value: &str) -> Option<String> {
        let kind = ALLOWED.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)?;
        Some(match kind {
            Kind::Pseudonym => self.pseudonym(value),
            Kind::Plain | Kind::Text => scrub_text(value),
        })
    }
}

/// What a token is, if it must not appear.
fn classify(token: &str) -> Option<&'static str> {
    let t = token.trim_matches(|c: char| {
        matches!(
            c,
            '"' | '\'' | '`' | '(' | ')' | '[' | ']' | '{' | '}' | '<' | '>' | ',' | ';' | ':'
        ) || (c == '.')
    });
    if t.is_empty() {
        return None;
    }
    if t.contains("://") {
        return Some("url");
    }
    if let Some((user, domain)) = t.split_once('@')
        && !user.is_empty()
        && domain.contains('.')
    {
        return Some("email");
    }
    if t.parse::<std::net::IpAddr>().is_ok()
        || t.rsplit_once(':')
            .is_some_and(|(h, p)| h.parse::<std::net::IpAddr>().is_ok() && p.parse::<u16>().is_ok())
    {
        return Some("ip");
    }
    if t.contains('/') {
        return Some("path");
    }
    // Key material, signatures, tokens: long runs of hex or base64.
    let secretish = t.len() >= 20
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_'))
        && ((t.chars().any(|c| c.is_ascii_digit()) && t.chars().any(|c| c.is_ascii_alphabetic()))
            || token.contains('=')
            || t.len() >= 32);
    if secretish {
        return Some("secret");
    }
    None
}

/// Free text with the known identifiers replaced by `<id>` and every other
/// identifying token by `<kind>`.
pub fn scrub_text(text: &str) -> String {
    let text = redact_known(text);
    let mut out = String::with_capacity(text.len());
    let mut after_bearer = false;
    for (i, token) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if after_bearer {
            out.push_str("<secret>");
            after_bearer = false;
            continue;
        }
        if token.eq_ignore_ascii_case("bearer") {
            after_bearer = true;
        }
        match classify(token) {
            Some(kind) => {
                let _ = write!(out, "<{kind}>");
            }
            None => out.push_str(token),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // One snapshot per rule: input and the exact text that may leave.
    #[test]
    fn every_rule_has_its_snapshot() {
        let cases = [
            ("mail john.doe@example.com now", "mail <email> now"),
            ("from 10.1.2.3 and 10.1.2.3:5672", "from <ip> and <ip>"),
            ("at [2001:db8::1]", "at <ip>"),
            (
                "GET https://s3.eu/bucket/key?x=1 failed",
                "GET <url> failed",
            ),
            (
                "object \"tenants/acme/in/talk.mp4\" missing",
                "object <path> missing",
            ),
            (
                "reading /tmp/x/y.mkv: no such file",
                "reading <path> no such file",
            ),
            (
                "Authorization: Bearer abc.def",
                "Authorization: Bearer <secret>",
            ),
            (
                "key AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= is wrong",
                "key <secret> is wrong",
            ),
            (
                "signature 3f9a0c1b2d3e4f5061728394a5b6c7d8 rejected",
                "signature <secret> rejected",
            ),
            ("decoding failed: 720 frames", "decoding failed: 720 frames"),
        ];
        for (input, want) in cases {
            assert_eq!(scrub_text(input), want, "{input}");
        }
    }

    #[test]
    fn known_identifiers_are_redacted_while_registered() {
        let text = "cannot open clip-q7.mkv for tenant zq81corp (job zq81job-1)";
        assert_eq!(scrub_text(text), text, "nothing registered yet");
        let guard = KnownIdentifiers::register([
            "zq81job-1",
            "zq81corp",
            "tenants/zq81corp/in/clip-q7.mkv",
        ]);
        assert_eq!(
            scrub_text(text),
            "cannot open <id> for tenant <id> (job <id>)"
        );
        assert_eq!(
            scrub_text("reading tenants/zq81corp/in/clip-q7.mkv failed"),
            "reading <id> failed"
        );
        drop(guard);
        assert_eq!(scrub_text(text), text, "released with the job");
    }

    #[test]
    fn fields_fail_closed_and_identifiers_become_pseudonyms() {
        let s = Scrubber::with_secret(&[7; 32]);
        assert_eq!(s.field("caption_text", "hello world"), None);
        assert_eq!(s.field("object_key", "x"), None);
        let a = s.field("job_id", "job-42").unwrap();
        assert_eq!(a, s.field("job_id", "job-42").unwrap(), "stable in a run");
        assert!(a.starts_with("p:") && a.len() == 14 && !a.contains("42"));
        let other = Scrubber::with_secret(&[8; 32]);
        assert_ne!(a, other.field("job_id", "job-42").unwrap(), "keyed");
        assert_eq!(s.field("frames", "720").unwrap(), "720");
        let rotating = Scrubber::new(3600);
        assert_eq!(
            rotating.pseudonym("job-42"),
            rotating.pseudonym("job-42"),
            "stable within a period"
        );
        assert_ne!(
            rotating.pseudonym("job-42"),
            Scrubber::new(3600).pseudonym("job-42"),
            "each process draws its own secret"
        );
        assert_eq!(
            s.field("error", "input tenants/acme/x.mkv unreadable")
                .unwrap(),
            "input <path> unreadable"
        );
    }
}
