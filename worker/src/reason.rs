//! Every reason a message is refused, once: the `x-monteur-reason` header of
//! dead letters, the `reason` of `failed` events and the `reason` label of
//! `monteur_dead_letters_total`. Producers and alerts match on these codes,
//! so they never change meaning.

/// Why a message was refused (dead-lettered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Not a JSON envelope, or fields missing.
    Malformed,
    UnsupportedSchema,
    Unsigned,
    UnknownSigningKey,
    BadSignature,
    InvalidField,
    /// An object key outside the tenant's prefix.
    ForeignObject,
    WrongRegion,
    /// The signing key may not sign this kind of message for this tenant.
    KeyNotAllowed,
    /// Past its `expires_at`.
    Expired,
    /// `issued_at` further in the future than clocks drift.
    NotYetValid,
    /// A message this worker fleet has already acted on (its nonce).
    Replayed,
    /// A write under a prefix that a purge emptied (until a lift).
    PurgedPrefix,
    /// No active key for the job's tenant on this worker.
    UnknownTenantKey,
    /// The input failed authentication (tampered, or another object's).
    CorruptInput,
    InputTooLarge,
    /// Missing or denied in storage.
    InputUnreadable,
    /// The input's streams cannot be decoded (or it is not media at all).
    BadMedia,
    /// Decoding ends well before the duration the container declares.
    TruncatedInput,
    /// The job ran past `worker.job_deadline_s` and was stopped.
    DeadlineExceeded,
    WorkerPanic,
    PurgeRefused,
}

impl Reason {
    pub const ALL: [Reason; 22] = [
        Reason::Malformed,
        Reason::UnsupportedSchema,
        Reason::Unsigned,
        Reason::UnknownSigningKey,
        Reason::BadSignature,
        Reason::InvalidField,
        Reason::ForeignObject,
        Reason::WrongRegion,
        Reason::KeyNotAllowed,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::Replayed,
        Reason::PurgedPrefix,
        Reason::UnknownTenantKey,
        Reason::CorruptInput,
        Reason::InputTooLarge,
        Reason::InputUnreadable,
        Reason::BadMedia,
        Reason::TruncatedInput,
        Reason::DeadlineExceeded,
        Reason::WorkerPanic,
        Reason::PurgeRefused,
    ];

    /// The stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::UnsupportedSchema => "unsupported_schema",
            Reason::Unsigned => "unsigned",
            Reason::UnknownSigningKey => "unknown_signing_key",
            Reason::BadSignature => "bad_signature",
            Reason::InvalidField => "invalid_field",
            Reason::ForeignObject => "foreign_object",
            Reason::WrongRegion => "wrong_region",
            Reason::KeyNotAllowed => "key_not_allowed",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::Replayed => "replayed",
            Reason::PurgedPrefix => "purged_prefix",
            Reason::UnknownTenantKey => "unknown_tenant_key",
            Reason::CorruptInput => "corrupt_input",
            Reason::InputTooLarge => "input_too_large",
            Reason::InputUnreadable => "input_unreadable",
            Reason::BadMedia => "bad_media",
            Reason::TruncatedInput => "truncated_input",
            Reason::DeadlineExceeded => "deadline_exceeded",
            Reason::WorkerPanic => "worker_panic",
            Reason::PurgeRefused => "purge_refused",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_documented() {
        let mut seen = std::collections::HashSet::new();
        let read = |f: &str| {
            std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(f))
                .unwrap_or_default()
        };
        let (doc, metrics) = (read("../README.md"), read("../docs/metrics.md"));
        for r in Reason::ALL {
            let c = r.code();
            assert!(seen.insert(c), "{c} twice");
            assert!(c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!(doc.contains(&format!("`{c}`")), "{c} is not in the README");
            assert!(
                metrics.contains(&format!("`{c}`")),
                "{c} is not in docs/metrics.md"
            );
        }
    }
}
