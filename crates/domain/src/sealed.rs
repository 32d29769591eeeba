//! Secrets the service must read back but a copy of the database must not give away (the
//! MFA issue: TOTP secrets), sealed with XChaCha20-Poly1305 under a key derived with
//! HKDF-SHA256 from the service's own secret material (its JWT secret or signing key).
//!
//! A sealed value is a fresh 24-byte random nonce followed by the ciphertext and its tag.
//! What it belongs to (a user's id and the purpose) is bound in as associated data, so a
//! sealed value moved to another row does not open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::Error;

/// Bytes of a nonce.
const NONCE_BYTES: usize = 24;

/// The key that seals and opens; derived, never stored. Its `Debug` hides it.
#[derive(Clone)]
pub struct SealingKey(XChaCha20Poly1305);

impl SealingKey {
    /// The key for `purpose` (a fixed label, such as `"mfa secrets v1"`) derived from the
    /// service's secret material `ikm`.
    ///
    /// # Errors
    /// [`Error::Internal`] when no key can be derived (cannot happen for 32 bytes).
    pub fn derive(ikm: &[u8], purpose: &str) -> Result<Self, Error> {
        let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"gatehouse sealing"), ikm);
        let mut key = [0u8; 32];
        hkdf.expand(purpose.as_bytes(), &mut key)
            .map_err(|e| Error::internal("deriving a sealing key", e.to_string()))?;
        XChaCha20Poly1305::new_from_slice(&key)
            .map(Self)
            .map_err(|e| Error::internal("a sealing key", e.to_string()))
    }

    /// `plaintext` sealed, bound to `context` (what it belongs to).
    ///
    /// # Errors
    /// [`Error::Internal`] without system randomness.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| Error::internal("system randomness", e))?;
        let sealed = self
            .0
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|e| Error::internal("sealing", e.to_string()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The plaintext of `sealed`, if it was sealed with this key and `context`.
    ///
    /// # Errors
    /// [`Error::Internal`] for anything else (another key, another context, a changed
    /// byte): the service's secret material changed, or the row was tampered with.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, Error> {
        if sealed.len() < NONCE_BYTES {
            return Err(Error::internal("opening a sealed value", "too short"));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let mut fixed = [0u8; NONCE_BYTES];
        fixed.copy_from_slice(nonce);
        self.0
            .decrypt(
                &XNonce::from(fixed),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| {
                Error::internal(
                    "opening a sealed value",
                    "it was sealed with other secret material or changed since",
                )
            })
    }
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context() {
        let key = SealingKey::derive(&[7u8; 32], "mfa secrets v1").unwrap();
        let sealed = key.seal(b"12345678901234567890", b"user 1").unwrap();
        assert_eq!(sealed.len(), 24 + 20 + 16, "nonce, ciphertext, tag");
        assert!(!sealed.windows(20).any(|w| w == b"12345678901234567890"));
        assert_eq!(
            key.open(&sealed, b"user 1").unwrap(),
            b"12345678901234567890"
        );
        assert!(key.open(&sealed, b"user 2").is_err(), "another row");
        let other = SealingKey::derive(&[8u8; 32], "mfa secrets v1").unwrap();
        assert!(other.open(&sealed, b"user 1").is_err(), "other material");
        let purpose = SealingKey::derive(&[7u8; 32], "something else").unwrap();
        assert!(purpose.open(&sealed, b"user 1").is_err(), "another purpose");
        let mut changed = sealed.clone();
        changed[30] ^= 1;
        assert!(key.open(&changed, b"user 1").is_err(), "a changed byte");
        assert!(key.open(&sealed[..10], b"user 1").is_err());
        assert_ne!(
            key.seal(b"same", b"x").unwrap(),
            key.seal(b"same", b"x").unwrap(),
            "a fresh nonce each time"
        );
        assert_eq!(format!("{key:?}"), "SealingKey(***)");
    }
}
