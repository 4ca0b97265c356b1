//! Job signatures: Ed25519. Producers hold the private keys and sign; a
//! worker holds only public keys, so a compromised worker (a demuxer bug
//! reached through hostile media, say) cannot sign a purge or a job for
//! anyone: forging needs a private key it never has.
//!
//! What is signed is the message's schema, the signing key's id and the
//! job's bytes exactly as sent, each length-prefixed after a domain tag, so
//! no part can be moved to another message or another field.

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use base64::Engine as _;
use zeroize::Zeroizing;

use super::CryptoError;

/// Separates monteur's signatures from any other use of the same key.
const DOMAIN: &[u8] = b"monteur job signature v2\0";

/// The bytes a signature covers.
pub fn signed_bytes(schema: &str, key_id: &str, job: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(DOMAIN.len() + 24 + schema.len() + key_id.len() + job.len());
    out.extend_from_slice(DOMAIN);
    for part in [schema.as_bytes(), key_id.as_bytes(), job] {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// What a signing key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `monteur.job.v2`.
    Process,
    /// `monteur.purge.v2` and `monteur.lift.v2` (deleting, and allowing
    /// writes again under a purged prefix).
    Purge,
    /// `monteur.cancel.v2`.
    Cancel,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Process => "process",
            Action::Purge => "purge",
            Action::Cancel => "cancel",
        }
    }
}

/// A producer's public key, as a worker knows it: its id, and the actions
/// and tenants it may sign for (`*` for any tenant).
#[derive(Clone)]
pub struct VerifyingKey {
    pub id: String,
    public: [u8; 32],
    pub actions: Vec<Action>,
    pub tenants: Vec<String>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("id", &self.id)
            .field("actions", &self.actions)
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    pub fn new(
        id: impl Into<String>,
        public: [u8; 32],
        actions: Vec<Action>,
        tenants: Vec<String>,
    ) -> Self {
        Self {
            id: id.into(),
            public,
            actions,
            tenants,
        }
    }

    /// Whether `signature` is this key's over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public)
            .verify(message, signature)
            .is_ok()
    }

    /// Whether the key may sign `action` for `tenant`.
    pub fn allows(&self, action: Action, tenant: &str) -> bool {
        self.actions.contains(&action) && self.tenants.iter().any(|t| t == "*" || t == tenant)
    }
}

/// A producer's private key (PKCS#8, as `monteur keys generate` writes it).
/// Workers never load one.
pub struct Signer {
    pub key_id: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A new key pair: the signer and its PKCS#8 document (to store, secret).
    pub fn generate(key_id: impl Into<String>) -> Result<(Self, Zeroizing<Vec<u8>>), CryptoError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| CryptoError::Random)?;
        let der = Zeroizing::new(doc.as_ref().to_vec());
        Ok((Self::from_pkcs8(key_id, &der)?, der))
    }

    pub fn from_pkcs8(key_id: impl Into<String>, der: &[u8]) -> Result<Self, CryptoError> {
        let pair = Ed25519KeyPair::from_pkcs8(der)
            .map_err(|_| CryptoError::Keyring("not an Ed25519 PKCS#8 private key".into()))?;
        Ok(Self {
            key_id: key_id.into(),
            pair,
        })
    }

    /// The public key, for the workers' keyrings.
    pub fn public_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    /// The base64 signature over `schema`, this key's id and `job`.
    pub fn sign(&self, schema: &str, job: &[u8]) -> String {
        let sig = self.pair.sign(&signed_bytes(schema, &self.key_id, job));
        base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_signature_covers_schema_key_id_and_bytes_and_nothing_else_verifies() {
        let (signer, der) = Signer::generate("prod-1").unwrap();
        let public = VerifyingKey::new(
            "prod-1",
            signer.public_key(),
            vec![Action::Process],
            vec!["acme".into()],
        );
        let b64 = base64::engine::general_purpose::STANDARD;
        let sig = b64
            .decode(signer.sign("monteur.job.v2", b"{\"a\":1}"))
            .unwrap();
        let msg = |schema: &str, id: &str, job: &[u8]| signed_bytes(schema, id, job);
        assert!(public.verify(&msg("monteur.job.v2", "prod-1", b"{\"a\":1}"), &sig));
        assert!(!public.verify(&msg("monteur.purge.v2", "prod-1", b"{\"a\":1}"), &sig));
        assert!(!public.verify(&msg("monteur.job.v2", "prod-2", b"{\"a\":1}"), &sig));
        assert!(!public.verify(&msg("monteur.job.v2", "prod-1", b"{\"a\":2}"), &sig));
        // Moving bytes between fields changes the message too.
        assert_ne!(msg("ab", "c", b"d"), msg("a", "bc", b"d"));
        // The same PKCS#8 document signs the same way again.
        let again = Signer::from_pkcs8("prod-1", &der).unwrap();
        assert_eq!(again.public_key(), signer.public_key());
        assert!(public.allows(Action::Process, "acme"));
        assert!(!public.allows(Action::Purge, "acme"));
        assert!(!public.allows(Action::Process, "globex"));
    }
}
