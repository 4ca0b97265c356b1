//! Diagnostics without identifiers: what every log line, error chain and
//! panic message passes through before it leaves the process.
//!
//! Fail closed: an event field whose name is not on [`ALLOWED`] is dropped.
//! Fields naming an identifier that operators need to correlate (`job_id`,
//! `tenant`) become keyed pseudonyms (HMAC-SHA256 under a per-process secret,
//! first 12 hex digits: stable within a run, unlinkable across runs).
//! Free text (messages, errors) is scrubbed token by token: e-mail addresses,
//! IP addresses, URLs, object keys and paths, bearer tokens and anything that
//! looks like key material are replaced by a marker naming what was there.

use std::fmt::Write as _;

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
#[derive(Clone)]
pub struct Scrubber {
    key: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrubber").finish_non_exhaustive()
    }
}

impl Default for Scrubber {
    fn default() -> Self {
        Self::new()
    }
}

impl Scrubber {
    /// A scrubber with a fresh random pseudonym secret.
    pub fn new() -> Self {
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        // Without randomness the pseudonyms only lose their unlinkability
        // across runs; the scrubbing itself does not depend on it.
        let _ = aws_lc_rs::rand::fill(secret.as_mut());
        Self::with_secret(&secret)
    }

    pub fn with_secret(secret: &[u8; 32]) -> Self {
        Self {
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
        }
    }

    /// A stable, keyed stand-in for an identifier.
    pub fn pseudonym(&self, value: &str) -> String {
        let tag = aws_lc_rs::hmac::sign(&self.key, value.as_bytes());
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

/// Free text with every identifying token replaced by `<kind>`.
pub fn scrub_text(text: &str) -> String {
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
        assert_eq!(
            s.field("error", "input tenants/acme/x.mkv unreadable")
                .unwrap(),
            "input <path> unreadable"
        );
    }
}
