//! Device tokens (OWASP "Slow Down Online Guessing Attacks with Device Cookies"): an opaque
//! token per (account, device), handed out at each successful login and presented at the
//! next one. A login that presents a valid token of the account is throttled on that
//! device's own failures only, so an attacker's failures from elsewhere cannot lock the
//! owner out. Stored as their SHA-256 only: a copy of the database holds no usable token.

use std::fmt;

use crate::random::{random_hex, sha256_hex};
use crate::Error;

/// A device token as the client holds it: 256 random bits, hex-encoded. Its `Debug`
/// hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceToken(String);

impl DeviceToken {
    /// The longest text taken as a device token (anything longer is no token of ours).
    pub const MAX_LEN: usize = 128;

    /// A new random token.
    ///
    /// # Errors
    /// [`Error::Internal`] when the system has no randomness to give.
    pub fn generate() -> Result<Self, Error> {
        random_hex(32).map(Self)
    }

    /// A token a client presented; `None` for text that cannot be one (empty, too long, or
    /// not printable ASCII), which is then treated as no token at all.
    #[must_use]
    pub fn presented(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        (!raw.is_empty() && raw.len() <= Self::MAX_LEN && raw.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| Self(raw.to_owned()))
    }

    /// The token itself, for the login response.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hex SHA-256 under which the token is stored and its failures counted.
    #[must_use]
    pub fn hash(&self) -> String {
        sha256_hex(&self.0)
    }
}

impl fmt::Debug for DeviceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceToken(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hashed_and_hidden() {
        let a = DeviceToken::generate().unwrap();
        let b = DeviceToken::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 64);
        assert_eq!(a.hash().len(), 64);
        assert_ne!(a.hash(), a.expose());
        assert_eq!(a.hash(), DeviceToken::presented(a.expose()).unwrap().hash());
        assert_eq!(format!("{a:?}"), "DeviceToken(***)");
        assert_eq!(
            DeviceToken::presented("abc").unwrap().hash(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn junk_is_no_token() {
        for junk in ["", "   ", "a b", "é", &"x".repeat(129), "nul\0"] {
            assert!(DeviceToken::presented(junk).is_none(), "{junk:?}");
        }
    }
}
