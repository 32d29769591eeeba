//! Passkeys (WebAuthn discoverable credentials; the MFA issue, "Multi-factor sign-in" in
//! API.md): what the store keeps of one, its name, the user handle the authenticator
//! keeps, and the port behind which a WebAuthn library runs the ceremonies (the domain
//! knows no WebAuthn: it passes the browser's JSON through and stores what it is given).

use std::fmt;

use chrono::{DateTime, Utc};
use sha2::Digest;

use crate::{Error, UserId};

/// A passkey as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPasskey {
    /// The store's id (what `DELETE /me/passkeys/{id}` names).
    pub id: i64,
    /// Whose it is.
    pub user_id: UserId,
    /// The credential id, base 64 (URL-safe, unpadded): unique across users.
    pub credential_id: String,
    /// The name its user gave it.
    pub name: String,
    /// The WebAuthn library's record of it (public key, counter, backup state), as JSON.
    pub data: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it last signed someone in.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A passkey to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPasskey {
    /// Whose it is.
    pub user_id: UserId,
    /// The credential id, base 64 (URL-safe, unpadded).
    pub credential_id: String,
    /// Its name.
    pub name: String,
    /// The WebAuthn library's record of it, as JSON.
    pub data: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

/// The name of a passkey: 1 to [`PasskeyName::MAX_CHARS`] characters once trimmed, no
/// control characters, no bidirectional overrides (the rules of [`crate::FreeText`],
/// on one line).
#[derive(Clone, PartialEq, Eq)]
pub struct PasskeyName(String);

/// Why a passkey name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPasskeyName {
    /// Nothing but whitespace.
    #[error("must not be empty")]
    Empty,
    /// Longer than [`PasskeyName::MAX_CHARS`] once trimmed.
    #[error("must be at most 64 characters")]
    TooLong,
    /// A control character (a line break too).
    #[error("must not contain control characters")]
    ControlCharacter,
    /// A bidirectional embedding, override or isolate.
    #[error("must not contain bidirectional override or isolate characters")]
    BidiOverride,
}

impl PasskeyName {
    /// The longest name, in characters (Unicode scalar values), once trimmed.
    pub const MAX_CHARS: usize = 64;

    /// Checks `raw` as sent, and trims it.
    ///
    /// # Errors
    /// [`InvalidPasskeyName`].
    pub fn parse(raw: &str) -> Result<Self, InvalidPasskeyName> {
        if raw.chars().any(char::is_control) {
            return Err(InvalidPasskeyName::ControlCharacter);
        }
        if raw
            .chars()
            .any(|c| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
        {
            return Err(InvalidPasskeyName::BidiOverride);
        }
        let name = raw.trim();
        if name.is_empty() {
            return Err(InvalidPasskeyName::Empty);
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(InvalidPasskeyName::TooLong);
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasskeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// The WebAuthn user handle of `user` (`user.id` in the creation options, `userHandle` in
/// an assertion): the first 16 bytes of SHA-256("gatehouse webauthn user handle:" + id),
/// derived, not stored. It names the account to the authenticator; it is no secret.
#[must_use]
pub fn user_handle(user: UserId) -> [u8; 16] {
    let digest = sha2::Sha256::digest(format!("gatehouse webauthn user handle:{}", user.get()));
    let mut handle = [0u8; 16];
    handle.copy_from_slice(&digest[..16]);
    handle
}

/// A passkey registration begun by a WebAuthn library.
#[derive(Debug, Clone)]
pub struct PasskeyRegistrationStart {
    /// The creation options for `navigator.credentials.create` (`{"publicKey": {...}}`).
    pub options: serde_json::Value,
    /// The ceremony's state, kept until its finish (not secret).
    pub state: String,
}

/// A passkey login begun by a WebAuthn library.
#[derive(Debug, Clone)]
pub struct PasskeyLoginStart {
    /// The request options for `navigator.credentials.get` (the `publicKey` object).
    pub public_key: serde_json::Value,
    /// The ceremony's state, kept until its finish (not secret).
    pub state: String,
}

/// A passkey a registration made.
#[derive(Debug, Clone)]
pub struct RegisteredPasskey {
    /// Its credential id, base 64 (URL-safe, unpadded).
    pub credential_id: String,
    /// The library's record of it, as JSON.
    pub data: String,
}

/// Who an assertion says it is, before it is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyAssertion {
    /// The user handle the authenticator returned.
    pub user_handle: Vec<u8>,
    /// The credential id, base 64 (URL-safe, unpadded).
    pub credential_id: String,
}

/// The WebAuthn ceremonies of one relying party (a WebAuthn library behind a port). Every
/// method is pure computation: no store, no network. A credential that does not verify,
/// or is not even a credential, is [`Error::InvalidCredential`]; a state that does not
/// read back is [`Error::Internal`].
pub trait PasskeyCeremonies: Send + Sync + fmt::Debug {
    /// Begins a registration of a discoverable credential (resident key required, user
    /// verification required) for the user with `handle` and `email`, excluding the
    /// credentials `exclude` (base 64, URL-safe) the user has already.
    ///
    /// # Errors
    /// [`Error::Internal`].
    fn start_registration(
        &self,
        handle: [u8; 16],
        email: &str,
        exclude: &[String],
    ) -> Result<PasskeyRegistrationStart, Error>;

    /// Verifies `credential` (the browser's JSON) against the registration's `state`.
    ///
    /// # Errors
    /// [`Error::InvalidCredential`], [`Error::Internal`].
    fn finish_registration(
        &self,
        credential: &serde_json::Value,
        state: &str,
    ) -> Result<RegisteredPasskey, Error>;

    /// Begins a login with a discoverable credential (no credentials named, user
    /// verification required).
    ///
    /// # Errors
    /// [`Error::Internal`].
    fn start_login(&self) -> Result<PasskeyLoginStart, Error>;

    /// Reads who `credential` (an assertion) says it is, without verifying it.
    ///
    /// # Errors
    /// [`Error::InvalidCredential`].
    fn identify(&self, credential: &serde_json::Value) -> Result<PasskeyAssertion, Error>;

    /// Verifies `credential` against the login's `state` and the stored passkey `data`
    /// (challenge, origin, relying party, user presence and verification, signature,
    /// counter); the passkey's new record when it changed (counter, backup state).
    ///
    /// # Errors
    /// [`Error::InvalidCredential`], [`Error::Internal`].
    fn finish_login(
        &self,
        credential: &serde_json::Value,
        state: &str,
        data: &str,
    ) -> Result<Option<String>, Error>;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn handles_are_stable_and_differ() {
        let one = UserId::new(1).unwrap();
        let two = UserId::new(2).unwrap();
        assert_eq!(user_handle(one), user_handle(one));
        assert_ne!(user_handle(one), user_handle(two));
    }

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(PasskeyName::parse("  Laptop ").unwrap().as_str(), "Laptop");
        assert_eq!(PasskeyName::parse("   "), Err(InvalidPasskeyName::Empty));
        assert_eq!(PasskeyName::parse(""), Err(InvalidPasskeyName::Empty));
        assert!(PasskeyName::parse(&"é".repeat(64)).is_ok());
        assert_eq!(
            PasskeyName::parse(&"x".repeat(65)),
            Err(InvalidPasskeyName::TooLong)
        );
        assert_eq!(
            PasskeyName::parse("a\nb"),
            Err(InvalidPasskeyName::ControlCharacter)
        );
        assert_eq!(
            PasskeyName::parse("a\u{202e}b"),
            Err(InvalidPasskeyName::BidiOverride)
        );
    }
}
