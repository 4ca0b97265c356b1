//! Job messages: the versioned `monteur.job.v1` (process),
//! `monteur.purge.v1` (delete a tenant's or project's artifacts) and
//! `monteur.cancel.v1` (stop a job, queued or running) schemas, their
//! HMAC-SHA256 signature, and every check made before a single byte of
//! footage is read or deleted.
//!
//! A message is a JSON envelope `{"schema", "key_id", "signature", "job"}`.
//! The signature is HMAC-SHA256 (hex) over the exact bytes of the `job`
//! value as sent, made with the signing secret named by `key_id`, so secrets
//! rotate by adding a new id before retiring the old one. The worker verifies
//! the signature first (constant time), then the job: identifiers, the
//! tenant's object prefix, the region, tasks and options. Every refusal is a
//! [`Rejection`] with a stable machine-readable reason that dead-lettered
//! messages carry.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::crypto::KeyProvider;
use crate::reason::Reason;
use crate::tasks::TaskSet;

pub const JOB_SCHEMA: &str = "monteur.job.v1";
pub const PURGE_SCHEMA: &str = "monteur.purge.v1";
pub const CANCEL_SCHEMA: &str = "monteur.cancel.v1";
const SCHEMAS: [&str; 3] = [JOB_SCHEMA, PURGE_SCHEMA, CANCEL_SCHEMA];

/// Why a message was refused. `code()` is the dead-letter reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("message is not a monteur job envelope: {0}")]
    Malformed(String),
    #[error(
        "unsupported schema `{0}` (expected monteur.job.v1, monteur.purge.v1 or monteur.cancel.v1)"
    )]
    Schema(String),
    #[error("message is not signed")]
    Unsigned,
    #[error("signing key `{0}` is unknown")]
    UnknownSigningKey(String),
    #[error("signature does not match")]
    BadSignature,
    #[error("invalid job field `{field}`: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("object `{field}` lies outside the tenant's prefix")]
    ForeignObject { field: &'static str },
    #[error("job is for region `{job}`, this worker serves `{worker}`")]
    WrongRegion { job: String, worker: String },
}

impl Rejection {
    /// Why, among the worker's reasons.
    pub fn reason(&self) -> Reason {
        match self {
            Rejection::Malformed(_) => Reason::Malformed,
            Rejection::Schema(_) => Reason::UnsupportedSchema,
            Rejection::Unsigned => Reason::Unsigned,
            Rejection::UnknownSigningKey(_) => Reason::UnknownSigningKey,
            Rejection::BadSignature => Reason::BadSignature,
            Rejection::InvalidField { .. } => Reason::InvalidField,
            Rejection::ForeignObject { .. } => Reason::ForeignObject,
            Rejection::WrongRegion { .. } => Reason::WrongRegion,
        }
    }

    /// Stable reason code for dead-lettered messages and metrics labels.
    pub fn code(&self) -> &'static str {
        self.reason().code()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    schema: String,
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    #[serde(borrow)]
    job: &'a RawValue,
}

/// How outputs are encrypted at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encryption {
    /// S3 encrypts with the tenant key sent on every request (SSE-C).
    SseC,
    /// The worker encrypts (segmented AES-256-GCM) before upload.
    Client,
}

/// A validated job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub job_id: String,
    pub tenant: String,
    pub region: String,
    /// Object key of the input, under `tenants/{tenant}/`.
    pub input: String,
    /// Prefix the outputs go under, also under `tenants/{tenant}/`.
    pub output_prefix: String,
    pub tasks: Vec<String>,
    pub encryption: Encryption,
    #[serde(default)]
    pub options: JobOptions,
}

/// Per-job options, bounded so a message cannot ask for absurd work.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobOptions {
    /// Caption language (`auto`, `en`, `fr`, ...).
    pub language: Option<String>,
    /// Fit the edit to this many seconds.
    pub target_s: Option<f64>,
    /// Burn captions into the render.
    pub burn_captions: Option<bool>,
}

impl Job {
    /// The tasks, parsed.
    pub fn task_set(&self) -> Result<TaskSet, Rejection> {
        self.tasks
            .join(",")
            .parse()
            .map_err(|e: crate::tasks::TaskError| Rejection::InvalidField {
                field: "tasks",
                reason: e.to_string(),
            })
    }

    /// The prefix every object of this tenant lives under.
    pub fn tenant_prefix(&self) -> String {
        tenant_prefix(&self.tenant)
    }
}

fn tenant_prefix(tenant: &str) -> String {
    format!("tenants/{tenant}/")
}

/// A validated purge: delete every object under `prefix` (the tenant's own
/// prefix or a folder inside it, such as one project), unfinished multipart
/// uploads included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Purge {
    pub job_id: String,
    pub tenant: String,
    pub region: String,
    pub prefix: String,
}

/// A validated cancel: stop job `job_id` wherever it is (queued or
/// running) and make sure it never runs later. `output_prefix` is the job's:
/// the worker leaves a write-once marker there that any later delivery of
/// the job finds before it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelJob {
    pub job_id: String,
    pub tenant: String,
    pub region: String,
    pub output_prefix: String,
}

/// A verified message: what to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Process(Job),
    Purge(Purge),
    Cancel(CancelJob),
}

impl Request {
    pub fn job_id(&self) -> &str {
        match self {
            Request::Process(j) => &j.job_id,
            Request::Purge(p) => &p.job_id,
            Request::Cancel(c) => &c.job_id,
        }
    }

    pub fn tenant(&self) -> &str {
        match self {
            Request::Process(j) => &j.tenant,
            Request::Purge(p) => &p.tenant,
            Request::Cancel(c) => &c.tenant,
        }
    }

    /// The `kind` metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Process(_) => "process",
            Request::Purge(_) => "purge",
            Request::Cancel(_) => "cancel",
        }
    }

    /// Identifiers that must never reach a diagnostic while it is handled.
    pub fn identifiers(&self) -> Vec<&str> {
        match self {
            Request::Process(j) => vec![&j.job_id, &j.tenant, &j.input, &j.output_prefix],
            Request::Purge(p) => vec![&p.job_id, &p.tenant, &p.prefix],
            Request::Cancel(c) => vec![&c.job_id, &c.tenant, &c.output_prefix],
        }
    }
}

/// A refused message: why, and the job's id when the signature held (so the
/// producer can tell which of its jobs the `failed` event is about; an
/// unsigned message's claims are not echoed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rejection}")]
pub struct Refusal {
    pub rejection: Rejection,
    pub job_id: Option<String>,
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        self.rejection.code()
    }
}

impl From<Rejection> for Refusal {
    fn from(rejection: Rejection) -> Self {
        Self {
            rejection,
            job_id: None,
        }
    }
}

fn identifier(field: &'static str, v: &str, max: usize) -> Result<(), Rejection> {
    let ok = !v.is_empty()
        && v.len() <= max
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Rejection::InvalidField {
            field,
            reason: format!("must be 1 to {max} of [A-Za-z0-9_-]"),
        })
    }
}

/// An object key inside `prefix`: no `..`, no empty or dot segments, no
/// control characters, at most 1024 bytes (S3's limit).
fn object_key(field: &'static str, key: &str, prefix: &str) -> Result<(), Rejection> {
    if key.len() > 1024 || key.chars().any(char::is_control) {
        return Err(Rejection::InvalidField {
            field,
            reason: "not a valid object key".into(),
        });
    }
    let Some(rest) = key.strip_prefix(prefix) else {
        return Err(Rejection::ForeignObject { field });
    };
    if rest.split('/').any(|s| s == ".." || s == ".") || rest.starts_with('/') {
        return Err(Rejection::ForeignObject { field });
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Signs `job` (its JSON text) with `key`: what a producer puts in the
/// envelope. Tests and tools use it; the worker only verifies.
pub fn sign(job_json: &str, key: &crate::crypto::Key) -> String {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.bytes());
    hex(aws_lc_rs::hmac::sign(&k, job_json.as_bytes()).as_ref())
}

/// Builds a signed envelope for `job` (tests and tools).
pub fn envelope(job: &Job, key: &crate::crypto::Key) -> String {
    signed(
        JOB_SCHEMA,
        &serde_json::to_string(job).unwrap_or_default(),
        key,
    )
}

/// Builds a signed purge envelope (tests and tools).
pub fn purge_envelope(purge: &Purge, key: &crate::crypto::Key) -> String {
    signed(
        PURGE_SCHEMA,
        &serde_json::to_string(purge).unwrap_or_default(),
        key,
    )
}

/// Builds a signed cancel envelope (tests and tools).
pub fn cancel_envelope(cancel: &CancelJob, key: &crate::crypto::Key) -> String {
    signed(
        CANCEL_SCHEMA,
        &serde_json::to_string(cancel).unwrap_or_default(),
        key,
    )
}

fn signed(schema: &str, text: &str, key: &crate::crypto::Key) -> String {
    format!(
        r#"{{"schema":"{schema}","key_id":{},"signature":"{}","job":{text}}}"#,
        serde_json::Value::String(key.id.clone()),
        sign(text, key)
    )
}

/// Parses, authenticates and validates one message for a worker in `region`.
pub fn verify(body: &[u8], keys: &dyn KeyProvider, region: &str) -> Result<Request, Refusal> {
    let env: Envelope<'_> =
        serde_json::from_slice(body).map_err(|e| Rejection::Malformed(e.to_string()))?;
    if !SCHEMAS.contains(&env.schema.as_str()) {
        return Err(Rejection::Schema(env.schema.chars().take(64).collect()).into());
    }
    let (Some(key_id), Some(signature)) = (env.key_id, env.signature) else {
        return Err(Rejection::Unsigned.into());
    };
    let key = keys
        .signing_key(&key_id)
        .map_err(|_| Rejection::UnknownSigningKey(key_id.chars().take(64).collect()))?;
    let tag = (0..signature.len())
        .step_by(2)
        .map(|i| {
            signature
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or(Rejection::BadSignature)?;
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.bytes());
    aws_lc_rs::hmac::verify(&k, env.job.get().as_bytes(), &tag)
        .map_err(|_| Rejection::BadSignature)?;
    let text = env.job.get();
    let checked = match env.schema.as_str() {
        PURGE_SCHEMA => verify_purge(text, region).map(Request::Purge),
        CANCEL_SCHEMA => verify_cancel(text, region).map(Request::Cancel),
        _ => verify_job(text, region).map(Request::Process),
    };
    checked.map_err(|rejection| Refusal {
        rejection,
        job_id: signed_job_id(text),
    })
}

/// The `job_id` of a signed job, when it is a well-formed identifier.
fn signed_job_id(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        job_id: String,
    }
    let id: Id = serde_json::from_str(text).ok()?;
    identifier("job_id", &id.job_id, 64).ok()?;
    Some(id.job_id)
}

/// The checks every request shares: identifiers and the region.
fn common(job_id: &str, tenant: &str, job_region: &str, region: &str) -> Result<(), Rejection> {
    identifier("job_id", job_id, 64)?;
    identifier("tenant", tenant, 64)?;
    identifier("region", job_region, 32)?;
    if job_region != region {
        return Err(Rejection::WrongRegion {
            job: job_region.to_string(),
            worker: region.to_string(),
        });
    }
    Ok(())
}

fn verify_purge(text: &str, region: &str) -> Result<Purge, Rejection> {
    let purge: Purge =
        serde_json::from_str(text).map_err(|e| Rejection::Malformed(format!("job: {e}")))?;
    common(&purge.job_id, &purge.tenant, &purge.region, region)?;
    object_key("prefix", &purge.prefix, &tenant_prefix(&purge.tenant))?;
    if !purge.prefix.ends_with('/') {
        return Err(Rejection::InvalidField {
            field: "prefix",
            reason: "must end with /".into(),
        });
    }
    Ok(purge)
}

fn verify_cancel(text: &str, region: &str) -> Result<CancelJob, Rejection> {
    let cancel: CancelJob =
        serde_json::from_str(text).map_err(|e| Rejection::Malformed(format!("job: {e}")))?;
    common(&cancel.job_id, &cancel.tenant, &cancel.region, region)?;
    object_key(
        "output_prefix",
        &cancel.output_prefix,
        &tenant_prefix(&cancel.tenant),
    )?;
    if !cancel.output_prefix.ends_with('/') {
        return Err(Rejection::InvalidField {
            field: "output_prefix",
            reason: "must end with /".into(),
        });
    }
    Ok(cancel)
}

fn verify_job(text: &str, region: &str) -> Result<Job, Rejection> {
    let job: Job =
        serde_json::from_str(text).map_err(|e| Rejection::Malformed(format!("job: {e}")))?;
    common(&job.job_id, &job.tenant, &job.region, region)?;
    let prefix = job.tenant_prefix();
    object_key("input", &job.input, &prefix)?;
    object_key("output_prefix", &job.output_prefix, &prefix)?;
    if !job.output_prefix.ends_with('/') {
        return Err(Rejection::InvalidField {
            field: "output_prefix",
            reason: "must end with /".into(),
        });
    }
    job.task_set()?;
    if let Some(t) = job.options.target_s
        && !(t.is_finite() && (1.0..=86_400.0).contains(&t))
    {
        return Err(Rejection::InvalidField {
            field: "options.target_s",
            reason: "must be 1 to 86400 s".into(),
        });
    }
    if let Some(l) = &job.options.language {
        identifier("options.language", l, 8)?;
    }
    Ok(job)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::crypto::{Key, Keyring};

    fn keys() -> Keyring {
        let mut r = Keyring::default();
        r.add_signing_key(Key::new("sig-2026", [5; 32]));
        r.add_signing_key(Key::new("sig-2025", [6; 32]));
        r
    }

    fn job() -> Job {
        Job {
            job_id: "job-1".into(),
            tenant: "acme".into(),
            region: "eu-west".into(),
            input: "tenants/acme/in/talk.mp4".into(),
            output_prefix: "tenants/acme/out/job-1/".into(),
            tasks: vec!["scenes".into(), "captions".into()],
            encryption: Encryption::Client,
            options: JobOptions::default(),
        }
    }

    fn send(j: &Job) -> String {
        envelope(j, &Key::new("sig-2026", [5; 32]))
    }

    #[test]
    fn a_signed_valid_job_passes_with_either_live_key() {
        let r = keys();
        assert_eq!(
            verify(send(&job()).as_bytes(), &r, "eu-west").unwrap(),
            Request::Process(job())
        );
        let old = envelope(&job(), &Key::new("sig-2025", [6; 32]));
        assert!(verify(old.as_bytes(), &r, "eu-west").is_ok());
    }

    fn reason(body: &str) -> &'static str {
        verify(body.as_bytes(), &keys(), "eu-west")
            .unwrap_err()
            .code()
    }

    #[test]
    fn every_bad_message_is_refused_with_its_reason() {
        assert_eq!(reason("not json"), "malformed");
        assert_eq!(reason(r#"{"schema":"monteur.job.v1"}"#), "malformed");
        let good = send(&job());
        assert_eq!(
            reason(&good.replace("monteur.job.v1", "monteur.job.v9")),
            "unsupported_schema"
        );
        let v: serde_json::Value = serde_json::from_str(&good).unwrap();
        let unsigned = format!(
            r#"{{"schema":"monteur.job.v1","job":{}}}"#,
            serde_json::to_string(&v["job"]).unwrap()
        );
        assert_eq!(reason(&unsigned), "unsigned");
        assert_eq!(
            reason(&envelope(&job(), &Key::new("sig-x", [5; 32]))),
            "unknown_signing_key"
        );
        assert_eq!(
            reason(&envelope(&job(), &Key::new("sig-2026", [9; 32]))),
            "bad_signature"
        );
        // Any edit of the signed job breaks the signature, even whitespace.
        assert_eq!(reason(&good.replace("job-1\"", "job-2\"")), "bad_signature");
        assert_eq!(
            reason(&good.replace("\"tenant\"", " \"tenant\"")),
            "bad_signature"
        );

        let mut other = job();
        other.input = "tenants/globex/in/talk.mp4".into();
        assert_eq!(reason(&send(&other)), "foreign_object");
        other.input = "tenants/acme/../globex/talk.mp4".into();
        assert_eq!(reason(&send(&other)), "foreign_object");
        let mut region = job();
        region.region = "us-east".into();
        assert_eq!(reason(&send(&region)), "wrong_region");
        let mut bad = job();
        bad.tenant = "acme/../x".into();
        assert_eq!(reason(&send(&bad)), "invalid_field");
        let mut tasks = job();
        tasks.tasks = vec!["mine-bitcoin".into()];
        assert_eq!(reason(&send(&tasks)), "invalid_field");
        let mut absurd = job();
        absurd.options.target_s = Some(1e12);
        assert_eq!(reason(&send(&absurd)), "invalid_field");
    }

    #[test]
    fn purges_are_confined_to_the_tenant() {
        let purge = |prefix: &str| Purge {
            job_id: "purge-1".into(),
            tenant: "acme".into(),
            region: "eu-west".into(),
            prefix: prefix.into(),
        };
        let key = Key::new("sig-2026", [5; 32]);
        let ok = purge("tenants/acme/projects/p1/");
        assert_eq!(
            verify(purge_envelope(&ok, &key).as_bytes(), &keys(), "eu-west").unwrap(),
            Request::Purge(ok)
        );
        let whole = purge("tenants/acme/");
        assert!(verify(purge_envelope(&whole, &key).as_bytes(), &keys(), "eu-west").is_ok());
        for (prefix, code) in [
            ("tenants/", "foreign_object"),
            ("tenants/acme", "foreign_object"),
            ("tenants/acmecorp/", "foreign_object"),
            ("tenants/acme/../globex/", "foreign_object"),
            ("tenants/acme/projects/p1", "invalid_field"),
            ("", "foreign_object"),
        ] {
            let body = purge_envelope(&purge(prefix), &key);
            assert_eq!(reason(&body), code, "{prefix}");
        }
        // A purge signed with an unknown key, or for another region, is refused.
        let forged = purge_envelope(&purge("tenants/acme/"), &Key::new("sig-2026", [1; 32]));
        assert_eq!(reason(&forged), "bad_signature");
        let mut far = purge("tenants/acme/");
        far.region = "us-east".into();
        assert_eq!(reason(&purge_envelope(&far, &key)), "wrong_region");
    }

    #[test]
    fn refusals_name_the_job_only_when_the_signature_held() {
        let mut far = job();
        far.region = "us-east".into();
        let r = verify(send(&far).as_bytes(), &keys(), "eu-west").unwrap_err();
        assert_eq!(r.code(), "wrong_region");
        assert_eq!(r.job_id.as_deref(), Some("job-1"));
        let forged = envelope(&far, &Key::new("sig-2026", [9; 32]));
        let r = verify(forged.as_bytes(), &keys(), "eu-west").unwrap_err();
        assert_eq!((r.code(), r.job_id), ("bad_signature", None));
    }

    #[test]
    fn cancels_are_signed_and_confined_to_the_tenant() {
        let key = Key::new("sig-2026", [5; 32]);
        let c = CancelJob {
            job_id: "job-1".into(),
            tenant: "acme".into(),
            region: "eu-west".into(),
            output_prefix: "tenants/acme/out/job-1/".into(),
        };
        assert_eq!(
            verify(cancel_envelope(&c, &key).as_bytes(), &keys(), "eu-west").unwrap(),
            Request::Cancel(c.clone())
        );
        let foreign = CancelJob {
            output_prefix: "tenants/globex/out/job-1/".into(),
            ..c.clone()
        };
        assert_eq!(reason(&cancel_envelope(&foreign, &key)), "foreign_object");
        let forged = cancel_envelope(&c, &Key::new("sig-2026", [1; 32]));
        assert_eq!(reason(&forged), "bad_signature");
    }

    #[test]
    fn rejections_do_not_echo_long_input() {
        let long = "x".repeat(10_000);
        let msg = format!(r#"{{"schema":"{long}","job":{{}}}}"#);
        let e = verify(msg.as_bytes(), &keys(), "eu-west").unwrap_err();
        assert!(e.to_string().len() < 200);
    }
}
