//! Where keys come from: per-tenant AES-256 keys (from which the segmented
//! AEAD's and SSE-C's keys are derived) and the producers' public keys that
//! job signatures are checked with, behind [`KeyProvider`] so a KMS or HSM
//! can stand in for the development keyring file. A worker holds no key that
//! can sign a job.
//!
//! Keys are held in [`Zeroizing`] buffers (wiped when dropped) and never
//! implement `Debug` with their bytes: a log line can name a key id, never a
//! key.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::CryptoError;
use super::signing::{Action, VerifyingKey};

/// A 256-bit key and the id that names it (in headers, logs and job messages).
pub struct Key {
    pub id: String,
    bytes: Zeroizing<[u8; 32]>,
}

impl Key {
    pub fn new(id: impl Into<String>, bytes: [u8; 32]) -> Self {
        Self {
            id: id.into(),
            bytes: Zeroizing::new(bytes),
        }
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("bytes", &"<redacted>")
            .finish()
    }
}

/// Supplies keys. Implementations: [`Keyring`] (a local file, for
/// development and tests); a KMS client would unwrap data keys remotely.
pub trait KeyProvider: Send + Sync {
    /// The key new objects of `tenant` are encrypted with.
    fn active_key(&self, tenant: &str) -> Result<&Key, CryptoError>;
    /// A tenant key by id, for reading what an older key wrote. Only keys of
    /// `tenant` are returned: a header naming another tenant's key fails.
    fn tenant_key(&self, tenant: &str, id: &str) -> Result<&Key, CryptoError>;
    /// A producer's public key by id (several stay valid while keys rotate).
    fn verifying_key(&self, id: &str) -> Result<&VerifyingKey, CryptoError>;
    /// Whether version 1 client-mode objects may be read. Their data keys
    /// are wrapped with the raw tenant key (which was also the SSE-C key
    /// then) and bound to no place: whoever saw an old SSE-C request can
    /// forge one. Off unless a migration turns it on.
    fn reads_legacy_objects(&self) -> bool {
        false
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringFile {
    tenants: Vec<TenantEntry>,
    verify: Vec<VerifyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantEntry {
    tenant: String,
    id: String,
    /// Base64 of 32 random bytes.
    key: String,
    #[serde(default)]
    active: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyEntry {
    id: String,
    /// Base64 of the 32-byte Ed25519 public key.
    public_key: String,
    actions: Vec<Action>,
    /// Tenants the key may sign for; `*` for any.
    tenants: Vec<String>,
}

/// Keys from a JSON file:
/// `{"tenants": [{"tenant", "id", "key" (base64, 32 bytes), "active"}],
///   "verify": [{"id", "public_key" (base64, 32 bytes), "actions", "tenants"}]}`;
/// one active key per tenant.
#[derive(Debug, Default)]
pub struct Keyring {
    tenants: HashMap<String, Vec<(Key, bool)>>,
    verify: HashMap<String, VerifyingKey>,
    legacy_objects: bool,
}

fn decode_key(id: &str, b64: &str) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    let raw = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| CryptoError::Keyring(format!("key `{id}` is not base64")))?,
    );
    raw.as_slice()
        .try_into()
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Keyring(format!("key `{id}` is not 32 bytes")))
}

impl Keyring {
    /// Reads a keyring file; every problem names the key id, never its bytes.
    pub fn load(path: &Path) -> Result<Self, CryptoError> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| CryptoError::Keyring(format!("{}: {e}", path.display())))?,
        );
        let file: KeyringFile = serde_json::from_str(&text)
            .map_err(|e| CryptoError::Keyring(format!("{}: {e}", path.display())))?;
        let mut ring = Keyring::default();
        for t in file.tenants {
            let key = Key::new(t.id.clone(), *decode_key(&t.id, &t.key)?);
            ring.add_tenant_key(&t.tenant, key, t.active)?;
        }
        for v in file.verify {
            let public = *decode_key(&v.id, &v.public_key)?;
            if v.actions.is_empty() || v.tenants.is_empty() {
                return Err(CryptoError::Keyring(format!(
                    "verifying key `{}` allows no action or no tenant",
                    v.id
                )));
            }
            ring.add_verifying_key(VerifyingKey::new(v.id, public, v.actions, v.tenants))?;
        }
        Ok(ring)
    }

    /// Lets version 1 client-mode objects be read (`storage.read_v1_objects`,
    /// for a migration only; see [`KeyProvider::reads_legacy_objects`]).
    pub fn read_legacy_objects(&mut self, allow: bool) {
        self.legacy_objects = allow;
    }

    pub fn add_tenant_key(
        &mut self,
        tenant: &str,
        key: Key,
        active: bool,
    ) -> Result<(), CryptoError> {
        let keys = self.tenants.entry(tenant.to_string()).or_default();
        // A second entry under one id would shadow the first, or be
        // shadowed, depending on lookup order: refused.
        if keys.iter().any(|(k, _)| k.id == key.id) {
            return Err(CryptoError::Keyring(format!(
                "tenant `{tenant}` has key id `{}` twice",
                key.id
            )));
        }
        if active && keys.iter().any(|(_, a)| *a) {
            return Err(CryptoError::Keyring(format!(
                "tenant `{tenant}` has more than one active key"
            )));
        }
        keys.push((key, active));
        Ok(())
    }

    /// Adds a producer's public key; an id given twice is refused (the
    /// second entry would silently replace the first's scope).
    pub fn add_verifying_key(&mut self, key: VerifyingKey) -> Result<(), CryptoError> {
        if self.verify.contains_key(&key.id) {
            return Err(CryptoError::Keyring(format!(
                "verifying key `{}` is listed twice",
                key.id
            )));
        }
        self.verify.insert(key.id.clone(), key);
        Ok(())
    }
}

impl KeyProvider for Keyring {
    fn active_key(&self, tenant: &str) -> Result<&Key, CryptoError> {
        self.tenants
            .get(tenant)
            .and_then(|keys| keys.iter().find(|(_, a)| *a))
            .map(|(k, _)| k)
            .ok_or(CryptoError::UnknownKey)
    }

    fn tenant_key(&self, tenant: &str, id: &str) -> Result<&Key, CryptoError> {
        self.tenants
            .get(tenant)
            .and_then(|keys| keys.iter().find(|(k, _)| k.id == id))
            .map(|(k, _)| k)
            .ok_or(CryptoError::UnknownKey)
    }

    fn verifying_key(&self, id: &str) -> Result<&VerifyingKey, CryptoError> {
        self.verify.get(id).ok_or(CryptoError::UnknownKey)
    }

    fn reads_legacy_objects(&self) -> bool {
        self.legacy_objects
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn loads_a_keyring_and_never_prints_key_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let k = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        std::fs::write(
            &path,
            format!(
                r#"{{"tenants": [{{"tenant": "acme", "id": "acme-1", "key": "{k}", "active": true}},
                               {{"tenant": "acme", "id": "acme-0", "key": "{k}"}}],
                    "verify": [{{"id": "sig-1", "public_key": "{k}", "actions": ["process"], "tenants": ["*"]}}]}}"#
            ),
        )
        .unwrap();
        let ring = Keyring::load(&path).unwrap();
        assert_eq!(ring.active_key("acme").unwrap().id, "acme-1");
        assert_eq!(ring.tenant_key("acme", "acme-0").unwrap().id, "acme-0");
        assert!(ring.tenant_key("other", "acme-0").is_err());
        assert!(ring.verifying_key("sig-1").is_ok());
        let shown = format!("{ring:?}");
        assert!(shown.contains("acme-1") && !shown.contains(&k) && !shown.contains("7, 7"));
    }

    #[test]
    fn refuses_short_keys_and_two_active_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        std::fs::write(
            &path,
            r#"{"tenants": [{"tenant": "a", "id": "a-1", "key": "c2hvcnQ="}], "verify": []}"#,
        )
        .unwrap();
        let err = Keyring::load(&path).unwrap_err().to_string();
        assert!(err.contains("a-1") && err.contains("32 bytes"), "{err}");
        let mut ring = Keyring::default();
        ring.add_tenant_key("a", Key::new("1", [1; 32]), true)
            .unwrap();
        assert!(
            ring.add_tenant_key("a", Key::new("2", [2; 32]), true)
                .is_err()
        );
        // One id twice: refused, for tenant keys and verifying keys alike.
        assert!(
            ring.add_tenant_key("a", Key::new("1", [3; 32]), false)
                .is_err()
        );
        let vk = |tenants: Vec<String>| {
            VerifyingKey::new("p", [9; 32], vec![crate::crypto::Action::Process], tenants)
        };
        ring.add_verifying_key(vk(vec!["a".into()])).unwrap();
        let err = ring.add_verifying_key(vk(vec!["*".into()])).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
        assert!(
            !ring
                .verifying_key("p")
                .unwrap()
                .allows(crate::crypto::Action::Process, "b")
        );
    }
}
