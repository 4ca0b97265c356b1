//! Job messages, version 2: `monteur.job.v2` (process), `monteur.purge.v2`
//! (delete a tenant's or project's artifacts), `monteur.cancel.v2` (stop a
//! job) and `monteur.lift.v2` (allow writes again under a purged prefix),
//! their Ed25519 signature, and every check made before a single byte of
//! footage is read or deleted.
//!
//! A message is a JSON envelope `{"schema", "key_id", "signature", "job"}`.
//! The signature is the producer's Ed25519 signature (base64) over the
//! schema, the key id and the exact bytes of the `job` value as sent
//! ([`crate::crypto::signing::signed_bytes`]); workers hold only public
//! keys, each limited to actions and tenants. Every job carries `issued_at`
//! and `expires_at` (Unix seconds; the lifetime is capped per kind, short for
//! purges) and a random `nonce`: an expired message is refused, and the
//! daemon refuses a message whose nonce it has already acted on (the replay
//! store is the tenant's storage). Version 1 (HMAC with secrets every worker
//! held, no expiry, no nonce) is refused. Every refusal is a [`Rejection`]
//! with a stable reason code.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::crypto::KeyProvider;
use crate::crypto::signing::{Action, Signer, signed_bytes};
use crate::reason::Reason;
use crate::tasks::TaskSet;

pub const JOB_SCHEMA: &str = "monteur.job.v2";
pub const PURGE_SCHEMA: &str = "monteur.purge.v2";
pub const CANCEL_SCHEMA: &str = "monteur.cancel.v2";
pub const LIFT_SCHEMA: &str = "monteur.lift.v2";
const SCHEMAS: [&str; 4] = [JOB_SCHEMA, PURGE_SCHEMA, CANCEL_SCHEMA, LIFT_SCHEMA];

/// A producer's clock may run this far ahead of the worker's.
const CLOCK_SKEW_S: u64 = 60;

/// Why a message was refused. `code()` is the dead-letter reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("message is not a monteur job envelope: {0}")]
    Malformed(String),
    #[error(
        "unsupported schema `{0}` (expected monteur.job.v2, monteur.purge.v2, monteur.cancel.v2 or monteur.lift.v2; v1 is no longer accepted)"
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
    #[error("signing key `{key}` may not sign {action} messages for this tenant")]
    KeyNotAllowed { key: String, action: &'static str },
    #[error("message expired {0} s ago")]
    Expired(u64),
    #[error("message is issued {0} s in the future")]
    NotYetValid(u64),
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
            Rejection::KeyNotAllowed { .. } => Reason::KeyNotAllowed,
            Rejection::Expired(_) => Reason::Expired,
            Rejection::NotYetValid(_) => Reason::NotYetValid,
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

/// A validated job. (Unknown fields are refused by [`strict`]: serde's own
/// check does not work with the flattened [`Stamp`].)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    #[serde(flatten)]
    pub stamp: Stamp,
}

/// When a message was issued, when it stops being valid (Unix seconds), and
/// a random value that makes it unique: what makes a captured message
/// useless later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub issued_at: u64,
    pub expires_at: u64,
    /// 16 to 64 characters of `[A-Za-z0-9_-]`: 128 random bits or more.
    pub nonce: String,
}

impl Stamp {
    /// Issued now, valid `lifetime_s`, with a fresh random nonce.
    pub fn fresh(lifetime_s: u64) -> Self {
        let now = now_s();
        let mut n = [0u8; 16];
        // A failing system RNG leaves zeros: the nonce would repeat and the
        // second use be refused as a replay, never accepted wrongly.
        let _ = aws_lc_rs::rand::fill(&mut n);
        Self {
            issued_at: now,
            expires_at: now + lifetime_s,
            nonce: n.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// The current Unix time in seconds.
pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How long each kind of message may be valid (`worker.max_*_lifetime_s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    pub job_s: u64,
    pub purge_s: u64,
    pub cancel_s: u64,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            job_s: 7 * 86_400,
            purge_s: 3600,
            cancel_s: 86_400,
        }
    }
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
    /// How burned-in captions look (`plain`, `karaoke`).
    pub burn_style: Option<monteur_pipelines::render::BurnStyle>,
    /// How the edit is decided (`silence`, `speech`, `transcript`).
    pub autocut_mode: Option<monteur_pipelines::CutMode>,
    /// Transcript edits: source time ranges `[start_s, end_s]` whose words
    /// the editor deleted.
    pub drop: Option<Vec<(f64, f64)>>,
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
pub struct Purge {
    pub job_id: String,
    pub tenant: String,
    pub region: String,
    pub prefix: String,
    #[serde(flatten)]
    pub stamp: Stamp,
}

/// A validated lift: writes under `prefix`, refused since a purge of it,
/// are allowed again (an administrative act, audited; signed with a key
/// allowed to purge).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lift {
    pub job_id: String,
    pub tenant: String,
    pub region: String,
    pub prefix: String,
    #[serde(flatten)]
    pub stamp: Stamp,
}

/// A validated cancel: stop job `job_id` wherever it is (queued or
/// running) and make sure it never runs later. `output_prefix` is the job's:
/// the worker leaves a write-once marker there that any later delivery of
/// the job finds before it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelJob {
    pub job_id: String,
    pub tenant: String,
    pub region: String,
    pub output_prefix: String,
    #[serde(flatten)]
    pub stamp: Stamp,
}

/// A verified message: what to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Process(Job),
    Purge(Purge),
    Cancel(CancelJob),
    Lift(Lift),
}

impl Request {
    pub fn job_id(&self) -> &str {
        match self {
            Request::Process(j) => &j.job_id,
            Request::Purge(p) => &p.job_id,
            Request::Cancel(c) => &c.job_id,
            Request::Lift(l) => &l.job_id,
        }
    }

    pub fn stamp(&self) -> &Stamp {
        match self {
            Request::Process(j) => &j.stamp,
            Request::Purge(p) => &p.stamp,
            Request::Cancel(c) => &c.stamp,
            Request::Lift(l) => &l.stamp,
        }
    }

    pub fn tenant(&self) -> &str {
        match self {
            Request::Process(j) => &j.tenant,
            Request::Purge(p) => &p.tenant,
            Request::Cancel(c) => &c.tenant,
            Request::Lift(l) => &l.tenant,
        }
    }

    /// The `kind` metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Process(_) => "process",
            Request::Purge(_) => "purge",
            Request::Cancel(_) => "cancel",
            Request::Lift(_) => "lift",
        }
    }

    /// Identifiers that must never reach a diagnostic while it is handled.
    pub fn identifiers(&self) -> Vec<&str> {
        match self {
            Request::Process(j) => vec![&j.job_id, &j.tenant, &j.input, &j.output_prefix],
            Request::Purge(p) => vec![&p.job_id, &p.tenant, &p.prefix],
            Request::Cancel(c) => vec![&c.job_id, &c.tenant, &c.output_prefix],
            Request::Lift(l) => vec![&l.job_id, &l.tenant, &l.prefix],
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

/// A signed envelope for `job` (its JSON text as given): what a producer
/// sends. `monteur sign`, tests and tools use it; the worker only verifies.
pub fn signed(schema: &str, job_json: &str, signer: &Signer) -> String {
    format!(
        r#"{{"schema":"{schema}","key_id":{},"signature":"{}","job":{job_json}}}"#,
        serde_json::Value::String(signer.key_id.clone()),
        signer.sign(schema, job_json.as_bytes())
    )
}

/// A signed process envelope (tests and tools).
pub fn envelope(job: &Job, signer: &Signer) -> String {
    signed(
        JOB_SCHEMA,
        &serde_json::to_string(job).unwrap_or_default(),
        signer,
    )
}

/// A signed purge envelope (tests and tools).
pub fn purge_envelope(purge: &Purge, signer: &Signer) -> String {
    signed(
        PURGE_SCHEMA,
        &serde_json::to_string(purge).unwrap_or_default(),
        signer,
    )
}

/// A signed cancel envelope (tests and tools).
pub fn cancel_envelope(cancel: &CancelJob, signer: &Signer) -> String {
    signed(
        CANCEL_SCHEMA,
        &serde_json::to_string(cancel).unwrap_or_default(),
        signer,
    )
}

/// A signed lift envelope (tests and tools).
pub fn lift_envelope(lift: &Lift, signer: &Signer) -> String {
    signed(
        LIFT_SCHEMA,
        &serde_json::to_string(lift).unwrap_or_default(),
        signer,
    )
}

/// What a worker checks a message against besides its keys.
#[derive(Debug, Clone, Copy)]
pub struct Checks<'a> {
    /// The region this worker serves.
    pub region: &'a str,
    pub lifetimes: Lifetimes,
    /// Unix seconds now.
    pub now: u64,
}

/// Parses, authenticates and validates one message.
pub fn verify(
    body: &[u8],
    keys: &dyn KeyProvider,
    checks: &Checks<'_>,
) -> Result<Request, Refusal> {
    let env: Envelope<'_> =
        serde_json::from_slice(body).map_err(|e| Rejection::Malformed(e.to_string()))?;
    if !SCHEMAS.contains(&env.schema.as_str()) {
        return Err(Rejection::Schema(env.schema.chars().take(64).collect()).into());
    }
    let (Some(key_id), Some(signature)) = (env.key_id, env.signature) else {
        return Err(Rejection::Unsigned.into());
    };
    let key = keys
        .verifying_key(&key_id)
        .map_err(|_| Rejection::UnknownSigningKey(key_id.chars().take(64).collect()))?;
    use base64::Engine as _;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(signature.as_bytes())
        .map_err(|_| Rejection::BadSignature)?;
    let text = env.job.get();
    if !key.verify(&signed_bytes(&env.schema, &key_id, text.as_bytes()), &sig) {
        return Err(Rejection::BadSignature.into());
    }
    let refused = |rejection| Refusal {
        rejection,
        job_id: signed_job_id(text),
    };
    let request = match env.schema.as_str() {
        PURGE_SCHEMA => verify_purge(text, checks).map(Request::Purge),
        CANCEL_SCHEMA => verify_cancel(text, checks).map(Request::Cancel),
        LIFT_SCHEMA => verify_lift(text, checks).map(Request::Lift),
        _ => verify_job(text, checks).map(Request::Process),
    }
    .map_err(refused)?;
    let action = match &request {
        Request::Process(_) => Action::Process,
        Request::Purge(_) | Request::Lift(_) => Action::Purge,
        Request::Cancel(_) => Action::Cancel,
    };
    if !key.allows(action, request.tenant()) {
        return Err(refused(Rejection::KeyNotAllowed {
            key: key_id.chars().take(64).collect(),
            action: action.name(),
        }));
    }
    let lifetime = match action {
        Action::Process => checks.lifetimes.job_s,
        Action::Purge => checks.lifetimes.purge_s,
        Action::Cancel => checks.lifetimes.cancel_s,
    };
    fresh(request.stamp(), lifetime, checks.now).map_err(refused)?;
    Ok(request)
}

/// The stamp's checks: a well-formed nonce, issued not in the future,
/// not expired, and valid no longer than `lifetime` seconds.
fn fresh(stamp: &Stamp, lifetime: u64, now: u64) -> Result<(), Rejection> {
    let n = &stamp.nonce;
    if !(16..=64).contains(&n.len())
        || !n
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Rejection::InvalidField {
            field: "nonce",
            reason: "must be 16 to 64 of [A-Za-z0-9_-]".into(),
        });
    }
    if stamp.expires_at <= stamp.issued_at || stamp.expires_at - stamp.issued_at > lifetime {
        return Err(Rejection::InvalidField {
            field: "expires_at",
            reason: format!("must be after issued_at, by at most {lifetime} s"),
        });
    }
    if stamp.issued_at > now + CLOCK_SKEW_S {
        return Err(Rejection::NotYetValid(stamp.issued_at - now));
    }
    if stamp.expires_at <= now {
        return Err(Rejection::Expired(now - stamp.expires_at));
    }
    Ok(())
}

/// Parses `text` as `T`, refusing fields outside `allowed` (serde's own
/// check does not work with flattened fields).
fn strict<T: serde::de::DeserializeOwned>(text: &str, allowed: &[&str]) -> Result<T, Rejection> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Rejection::Malformed(format!("job: {e}")))?;
    if let Some(map) = value.as_object()
        && let Some(unknown) = map
            .keys()
            .find(|k| !allowed.contains(&k.as_str()) && !STAMP_FIELDS.contains(&k.as_str()))
    {
        return Err(Rejection::Malformed(format!(
            "job: unknown field `{}`",
            unknown.chars().take(32).collect::<String>()
        )));
    }
    serde_json::from_value(value).map_err(|e| Rejection::Malformed(format!("job: {e}")))
}

const STAMP_FIELDS: [&str; 3] = ["issued_at", "expires_at", "nonce"];

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

fn verify_purge(text: &str, checks: &Checks<'_>) -> Result<Purge, Rejection> {
    let purge: Purge = strict(text, &["job_id", "tenant", "region", "prefix"])?;
    common(&purge.job_id, &purge.tenant, &purge.region, checks.region)?;
    object_key("prefix", &purge.prefix, &tenant_prefix(&purge.tenant))?;
    if !purge.prefix.ends_with('/') {
        return Err(Rejection::InvalidField {
            field: "prefix",
            reason: "must end with /".into(),
        });
    }
    Ok(purge)
}

fn verify_lift(text: &str, checks: &Checks<'_>) -> Result<Lift, Rejection> {
    let lift: Lift = strict(text, &["job_id", "tenant", "region", "prefix"])?;
    common(&lift.job_id, &lift.tenant, &lift.region, checks.region)?;
    object_key("prefix", &lift.prefix, &tenant_prefix(&lift.tenant))?;
    if !lift.prefix.ends_with('/') {
        return Err(Rejection::InvalidField {
            field: "prefix",
            reason: "must end with /".into(),
        });
    }
    Ok(lift)
}

fn verify_cancel(text: &str, checks: &Checks<'_>) -> Result<CancelJob, Rejection> {
    let cancel: CancelJob = strict(text, &["job_id", "tenant", "region", "output_prefix"])?;
    common(
        &cancel.job_id,
        &cancel.tenant,
        &cancel.region,
        checks.region,
    )?;
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

fn verify_job(text: &str, checks: &Checks<'_>) -> Result<Job, Rejection> {
    let job: Job = strict(
        text,
        &[
            "job_id",
            "tenant",
            "region",
            "input",
            "output_prefix",
            "tasks",
            "encryption",
            "options",
        ],
    )?;
    common(&job.job_id, &job.tenant, &job.region, checks.region)?;
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
    if let Some(d) = &job.options.drop
        && (d.len() > 10_000
            || d.iter().any(|&(a, b)| {
                !(a.is_finite() && b.is_finite() && 0.0 <= a && a < b && b <= 86_400.0)
            }))
    {
        return Err(Rejection::InvalidField {
            field: "options.drop",
            reason: "at most 10000 ranges, each 0 <= start < end <= 86400 s".into(),
        });
    }
    Ok(job)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::crypto::{Keyring, VerifyingKey};

    struct Producer {
        prod: Signer,
        old: Signer,
        purger: Signer,
    }

    fn producer() -> Producer {
        Producer {
            prod: Signer::generate("prod-2026").unwrap().0,
            old: Signer::generate("prod-2025").unwrap().0,
            purger: Signer::generate("purger").unwrap().0,
        }
    }

    fn keys(p: &Producer) -> Keyring {
        let mut r = Keyring::default();
        let all = vec![Action::Process, Action::Cancel];
        for s in [&p.prod, &p.old] {
            r.add_verifying_key(VerifyingKey::new(
                s.key_id.clone(),
                s.public_key(),
                all.clone(),
                vec!["*".into()],
            ))
            .unwrap();
        }
        // A purge key limited to one tenant.
        r.add_verifying_key(VerifyingKey::new(
            "purger",
            p.purger.public_key(),
            vec![Action::Purge],
            vec!["acme".into()],
        ))
        .unwrap();
        r
    }

    fn checks() -> Checks<'static> {
        Checks {
            region: "eu-west",
            lifetimes: Lifetimes::default(),
            now: now_s(),
        }
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
            stamp: Stamp::fresh(3600),
        }
    }

    fn reason(p: &Producer, body: &str) -> &'static str {
        verify(body.as_bytes(), &keys(p), &checks())
            .unwrap_err()
            .code()
    }

    #[test]
    fn a_signed_valid_job_passes_with_either_live_key() {
        let p = producer();
        let j = job();
        assert_eq!(
            verify(envelope(&j, &p.prod).as_bytes(), &keys(&p), &checks()).unwrap(),
            Request::Process(j.clone())
        );
        assert!(verify(envelope(&j, &p.old).as_bytes(), &keys(&p), &checks()).is_ok());
    }

    #[test]
    fn every_bad_message_is_refused_with_its_reason() {
        let p = producer();
        assert_eq!(reason(&p, "not json"), "malformed");
        assert_eq!(reason(&p, r#"{"schema":"monteur.job.v2"}"#), "malformed");
        let good = envelope(&job(), &p.prod);
        assert_eq!(
            reason(&p, &good.replace("monteur.job.v2", "monteur.job.v9")),
            "unsupported_schema"
        );
        let v: serde_json::Value = serde_json::from_str(&good).unwrap();
        let unsigned = format!(
            r#"{{"schema":"monteur.job.v2","job":{}}}"#,
            serde_json::to_string(&v["job"]).unwrap()
        );
        assert_eq!(reason(&p, &unsigned), "unsigned");
        let stranger = Signer::generate("stranger").unwrap().0;
        assert_eq!(
            reason(&p, &envelope(&job(), &stranger)),
            "unknown_signing_key"
        );
        // A key the worker knows, but another key's signature.
        let impostor = Signer::generate("prod-2026").unwrap().0;
        assert_eq!(reason(&p, &envelope(&job(), &impostor)), "bad_signature");
        // Any edit of the signed job breaks the signature, even whitespace.
        assert_eq!(
            reason(&p, &good.replace("job-1\"", "job-2\"")),
            "bad_signature"
        );
        assert_eq!(
            reason(&p, &good.replace("\"tenant\"", " \"tenant\"")),
            "bad_signature"
        );
        // So does moving it to another schema or naming another key id.
        let as_purge = good.replace("\"monteur.job.v2\"", "\"monteur.purge.v2\"");
        assert_eq!(reason(&p, &as_purge), "bad_signature");
        let as_old = good.replace("\"prod-2026\"", "\"prod-2025\"");
        assert_eq!(reason(&p, &as_old), "bad_signature");

        let mut other = job();
        other.input = "tenants/globex/in/talk.mp4".into();
        assert_eq!(reason(&p, &envelope(&other, &p.prod)), "foreign_object");
        other.input = "tenants/acme/../globex/talk.mp4".into();
        assert_eq!(reason(&p, &envelope(&other, &p.prod)), "foreign_object");
        let mut region = job();
        region.region = "us-east".into();
        assert_eq!(reason(&p, &envelope(&region, &p.prod)), "wrong_region");
        let mut bad = job();
        bad.tenant = "acme/../x".into();
        assert_eq!(reason(&p, &envelope(&bad, &p.prod)), "invalid_field");
        let mut tasks = job();
        tasks.tasks = vec!["mine-bitcoin".into()];
        assert_eq!(reason(&p, &envelope(&tasks, &p.prod)), "invalid_field");
        let mut absurd = job();
        absurd.options.target_s = Some(1e12);
        assert_eq!(reason(&p, &envelope(&absurd, &p.prod)), "invalid_field");
        // Unknown fields are refused though the stamp is flattened.
        let extra = serde_json::to_string(&job())
            .unwrap()
            .replacen('{', r#"{"admin":true,"#, 1);
        assert_eq!(
            reason(&p, &signed(JOB_SCHEMA, &extra, &p.prod)),
            "malformed"
        );
    }

    #[test]
    fn version_one_is_refused() {
        let p = producer();
        let v2 = envelope(&job(), &p.prod);
        assert_eq!(
            reason(&p, &v2.replace("monteur.job.v2", "monteur.job.v1")),
            "unsupported_schema"
        );
    }

    #[test]
    fn expired_future_and_overlong_messages_are_refused() {
        let p = producer();
        let now = now_s();
        let mut old = job();
        old.stamp = Stamp {
            issued_at: now - 7200,
            expires_at: now - 3600,
            nonce: "0123456789abcdef0123".into(),
        };
        assert_eq!(reason(&p, &envelope(&old, &p.prod)), "expired");
        let mut future = job();
        future.stamp.issued_at = now + 600;
        future.stamp.expires_at = now + 1200;
        assert_eq!(reason(&p, &envelope(&future, &p.prod)), "not_yet_valid");
        let mut forever = job();
        forever.stamp.expires_at = now + 365 * 86_400;
        assert_eq!(reason(&p, &envelope(&forever, &p.prod)), "invalid_field");
        let mut weak = job();
        weak.stamp.nonce = "1".into();
        assert_eq!(reason(&p, &envelope(&weak, &p.prod)), "invalid_field");
        // Purges live an hour at most.
        let purge = Purge {
            job_id: "p1".into(),
            tenant: "acme".into(),
            region: "eu-west".into(),
            prefix: "tenants/acme/".into(),
            stamp: Stamp::fresh(2 * 3600),
        };
        assert_eq!(
            reason(&p, &purge_envelope(&purge, &p.purger)),
            "invalid_field"
        );
    }

    #[test]
    fn keys_are_limited_to_their_actions_and_tenants() {
        let p = producer();
        let purge = |tenant: &str, prefix: &str| Purge {
            job_id: "purge-1".into(),
            tenant: tenant.into(),
            region: "eu-west".into(),
            prefix: prefix.into(),
            stamp: Stamp::fresh(600),
        };
        let ok = purge("acme", "tenants/acme/projects/p1/");
        assert_eq!(
            verify(
                purge_envelope(&ok, &p.purger).as_bytes(),
                &keys(&p),
                &checks()
            )
            .unwrap(),
            Request::Purge(ok.clone())
        );
        // The process key may not purge; the purge key may not for globex.
        assert_eq!(reason(&p, &purge_envelope(&ok, &p.prod)), "key_not_allowed");
        let far = purge("globex", "tenants/globex/");
        assert_eq!(
            reason(&p, &purge_envelope(&far, &p.purger)),
            "key_not_allowed"
        );
        assert_eq!(reason(&p, &envelope(&job(), &p.purger)), "key_not_allowed");
        for (prefix, code) in [
            ("tenants/", "foreign_object"),
            ("tenants/acme", "foreign_object"),
            ("tenants/acmecorp/", "foreign_object"),
            ("tenants/acme/../globex/", "foreign_object"),
            ("tenants/acme/projects/p1", "invalid_field"),
            ("", "foreign_object"),
        ] {
            assert_eq!(
                reason(&p, &purge_envelope(&purge("acme", prefix), &p.purger)),
                code,
                "{prefix}"
            );
        }
    }

    #[test]
    fn refusals_name_the_job_only_when_the_signature_held() {
        let p = producer();
        let mut far = job();
        far.region = "us-east".into();
        let r = verify(envelope(&far, &p.prod).as_bytes(), &keys(&p), &checks()).unwrap_err();
        assert_eq!(r.code(), "wrong_region");
        assert_eq!(r.job_id.as_deref(), Some("job-1"));
        let forged = envelope(&far, &Signer::generate("prod-2026").unwrap().0);
        let r = verify(forged.as_bytes(), &keys(&p), &checks()).unwrap_err();
        assert_eq!((r.code(), r.job_id), ("bad_signature", None));
    }

    #[test]
    fn cancels_and_lifts_are_signed_and_confined_to_the_tenant() {
        let p = producer();
        let c = CancelJob {
            job_id: "job-1".into(),
            tenant: "acme".into(),
            region: "eu-west".into(),
            output_prefix: "tenants/acme/out/job-1/".into(),
            stamp: Stamp::fresh(600),
        };
        assert_eq!(
            verify(
                cancel_envelope(&c, &p.prod).as_bytes(),
                &keys(&p),
                &checks()
            )
            .unwrap(),
            Request::Cancel(c.clone())
        );
        let foreign = CancelJob {
            output_prefix: "tenants/globex/out/job-1/".into(),
            ..c.clone()
        };
        assert_eq!(
            reason(&p, &cancel_envelope(&foreign, &p.prod)),
            "foreign_object"
        );
        let lift = Lift {
            job_id: "lift-1".into(),
            tenant: "acme".into(),
            region: "eu-west".into(),
            prefix: "tenants/acme/projects/p1/".into(),
            stamp: Stamp::fresh(600),
        };
        assert!(
            verify(
                lift_envelope(&lift, &p.purger).as_bytes(),
                &keys(&p),
                &checks()
            )
            .is_ok()
        );
        assert_eq!(
            reason(&p, &lift_envelope(&lift, &p.prod)),
            "key_not_allowed"
        );
    }

    #[test]
    fn rejections_do_not_echo_long_input() {
        let p = producer();
        let long = "x".repeat(10_000);
        let msg = format!(r#"{{"schema":"{long}","job":{{}}}}"#);
        let e = verify(msg.as_bytes(), &keys(&p), &checks()).unwrap_err();
        assert!(e.to_string().len() < 300);
    }
}
