//! Encryption of customer footage and artifacts with per-tenant keys.
//!
//! - [`keyring`]: where keys come from ([`KeyProvider`]; a local keyring file
//!   for development, an interface for KMS/HSM), zeroized, never printed.
//! - [`stream`]: client-side segmented AEAD (AES-256-GCM, STREAM
//!   construction) with authenticated random access for ranged reads.
//! - [`sse_c`]: the headers that make S3 encrypt with the tenant's key
//!   server-side (SSE-C), the other mode.

pub mod keyring;
pub mod stream;

use base64::Engine as _;
use thiserror::Error;
use zeroize::Zeroizing;

pub use keyring::{Key, KeyProvider, Keyring};

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

/// SSE-C request headers for `key`: algorithm, the key, and its MD5, base64
/// as S3 expects (`x-amz-server-side-encryption-customer-*`). The returned
/// strings hold key material: they are wiped when dropped.
pub fn sse_c(key: &Key) -> (&'static str, Zeroizing<String>, String) {
    use md5::Digest as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let digest = md5::Md5::digest(key.bytes());
    (
        "AES256",
        Zeroizing::new(b64.encode(key.bytes())),
        b64.encode(digest),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_c_headers_are_base64_key_and_its_md5() {
        let (alg, key, md5) = sse_c(&Key::new("k", [0u8; 32]));
        assert_eq!(alg, "AES256");
        assert_eq!(key.as_str(), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        // MD5 of 32 zero bytes.
        assert_eq!(md5, "cLyPS3KoaSFGi/joRB3OUQ==");
    }
}
