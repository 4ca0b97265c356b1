//! The worker's own records in storage, under `_monteur/` (outside every
//! tenant's prefix, so a purge of a tenant cannot erase them), each a small
//! write-once object encrypted with the tenant's key and found by a plain
//! HEAD. Being in storage, they hold across restarts and for every worker of
//! the fleet, which a worker's memory cannot:
//!
//! - **nonces**: `_monteur/nonces/<tenant>/<nonce>`, the claim, looked for
//!   and then written (with `If-None-Match: *`, which Garage ignores, so
//!   the lookup is what catches a later copy there) before a message does
//!   anything; a message whose claim is
//!   there is a replay and is refused, whether the first copy finished,
//!   failed or still runs. Only the broker's own redelivery of the message
//!   (a flag producers and attackers cannot set) goes past a claim, as
//!   at-least-once delivery needs: then `_monteur/spent/<tenant>/<nonce>`,
//!   written once the effect is done (a manifest, a purge's completion, a
//!   lift), says whether to redo the work (idempotently) or only announce
//!   it again. Markers older than the longest message lifetime may be
//!   expired by a bucket lifecycle rule: such a message is refused as
//!   expired anyway.
//! - **tombstones**: `_monteur/tombstones/<tenant>/<sha256 of the prefix>`,
//!   written by a purge before it deletes anything; while one is there no
//!   job writes under that prefix. A signed, audited lift removes it.
//! - **cancels**: `_monteur/cancelled/<tenant>/<job id>`, written when a
//!   cancel is recorded; a delivery of that job is dropped before any work.

use serde::Serialize;

use crate::crypto::Key;
use crate::job::Encryption;
use crate::storage::{Protection, Storage, StorageError};

const ROOT: &str = "_monteur/";

pub(crate) fn nonce(tenant: &str, nonce: &str) -> String {
    format!("{ROOT}nonces/{tenant}/{nonce}")
}

pub(crate) fn spent(tenant: &str, nonce: &str) -> String {
    format!("{ROOT}spent/{tenant}/{nonce}")
}

pub(crate) fn tombstone(tenant: &str, prefix: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, prefix.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{ROOT}tombstones/{tenant}/{hex}")
}

pub(crate) fn cancel(tenant: &str, job_id: &str) -> String {
    format!("{ROOT}cancelled/{tenant}/{job_id}")
}

#[derive(Serialize)]
struct Marker<'a> {
    schema: &'static str,
    kind: &'a str,
    job_id: &'a str,
    /// Unix milliseconds.
    at_ms: u64,
}

/// Writes marker `key` (once; an existing one is left as it is, and the
/// answer is `false`), encrypted client-side with `tenant_key` whatever the
/// job's mode, so a HEAD without SSE-C headers finds it.
pub(crate) async fn put(
    storage: &Storage,
    key: &str,
    kind: &str,
    job_id: &str,
    tenant: &str,
    tenant_key: &Key,
    segment_bytes: u32,
) -> Result<bool, StorageError> {
    let body = serde_json::to_vec(&Marker {
        schema: "monteur.marker.v1",
        kind,
        job_id,
        at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    })
    .unwrap_or_default();
    let p = Protection {
        mode: Encryption::Client,
        tenant,
        key: tenant_key,
        segment_bytes,
    };
    storage.put_once(key, &body, p).await
}

/// Whether a purge's tombstone covers `prefix`: its own, or any folder
/// above it within the tenant's prefix.
pub(crate) async fn under_tombstone(
    storage: &Storage,
    tenant: &str,
    prefix: &str,
) -> Result<bool, StorageError> {
    let root = format!("tenants/{tenant}/");
    let Some(rest) = prefix.strip_prefix(&root) else {
        return Ok(false);
    };
    let mut candidate = root.clone();
    if storage.exists_plain(&tombstone(tenant, &candidate)).await? {
        return Ok(true);
    }
    for part in rest.split_terminator('/') {
        candidate.push_str(part);
        candidate.push('/');
        if storage.exists_plain(&tombstone(tenant, &candidate)).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_live_outside_every_tenant_prefix() {
        for k in [
            nonce("acme", "0123456789abcdef"),
            spent("acme", "0123456789abcdef"),
            tombstone("acme", "tenants/acme/p/"),
            cancel("acme", "j1"),
        ] {
            assert!(
                k.starts_with("_monteur/") && !k.starts_with("tenants/"),
                "{k}"
            );
        }
        assert_ne!(
            tombstone("acme", "tenants/acme/a/"),
            tombstone("acme", "tenants/acme/b/")
        );
    }
}
