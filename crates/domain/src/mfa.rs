//! What the second factor is made of (the MFA issue, "Multi-factor sign-in" in API.md):
//! the keys that protect TOTP secrets and recovery codes at rest, recovery codes, the
//! `mfa_token` of a login that waits for its second step, and the rows the store keeps.
//!
//! - A TOTP secret is stored sealed ([`SealingKey`]) and bound to its user, so a copy of
//!   the database without the service's secret material holds no usable secret.
//! - A recovery code is 10 characters of Crockford's base 32 (50 bits), stored as an
//!   HMAC-SHA256 under a key derived from the same material, bound to its user.
//! - An `mfa_token` is 32 random bytes, stored as its SHA-256; single-use, it dies after
//!   [`MAX_MFA_WRONG_CODES`] wrong codes or [`MFA_TOKEN_TTL`].

use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, KeyInit, Mac};

use crate::random::sha256_hex;
use crate::sealed::SealingKey;
use crate::totp::TotpSecret;
use crate::{Error, UserId};

/// Recovery codes in a set.
pub const RECOVERY_CODE_COUNT: usize = 10;

/// How long a login may wait for its second step.
pub const MFA_TOKEN_TTL: Duration = Duration::minutes(5);

/// An `mfa_token` dies after this many wrong codes.
pub const MAX_MFA_WRONG_CODES: i64 = 5;

/// The keys of the second factor, derived from the service's secret material. Its
/// `Debug` hides them.
#[derive(Clone)]
pub struct MfaKeys {
    sealing: SealingKey,
    mac: [u8; 32],
}

impl fmt::Debug for MfaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MfaKeys(***)")
    }
}

impl MfaKeys {
    /// The keys derived from `ikm` (the service's JWT secret).
    ///
    /// # Errors
    /// [`Error::Internal`] when no key can be derived (cannot happen).
    pub fn derive(ikm: &[u8]) -> Result<Self, Error> {
        let sealing = SealingKey::derive(ikm, "mfa secrets v1")?;
        let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"gatehouse mac"), ikm);
        let mut mac = [0u8; 32];
        hkdf.expand(b"mfa recovery codes v1", &mut mac)
            .map_err(|e| Error::internal("deriving the recovery code key", e.to_string()))?;
        Ok(Self { sealing, mac })
    }

    /// `secret` sealed for `user`, as stored (base 64).
    ///
    /// # Errors
    /// [`Error::Internal`] without system randomness.
    pub fn seal_totp(&self, user: UserId, secret: &TotpSecret) -> Result<String, Error> {
        let sealed = self.sealing.seal(secret.expose(), &totp_context(user))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(sealed))
    }

    /// The TOTP secret `stored` for `user`.
    ///
    /// # Errors
    /// [`Error::MfaUnreadable`] when it does not open: the service's secret material
    /// changed since it was sealed (the user's MFA must then be reset), or the row was
    /// tampered with; [`Error::Internal`] for a value that is not base 64.
    pub fn open_totp(&self, user: UserId, stored: &str) -> Result<TotpSecret, Error> {
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(stored)
            .map_err(|e| Error::internal("a stored TOTP secret", e))?;
        self.sealing
            .open(&sealed, &totp_context(user))
            .map(TotpSecret::from_bytes)
            .map_err(|_| Error::MfaUnreadable)
    }

    /// The hash `code` of `user` is stored under.
    #[must_use]
    pub fn recovery_code_hash(&self, user: UserId, code: &RecoveryCode) -> String {
        let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(&self.mac) else {
            // HMAC takes a key of any length; this cannot happen (and an empty hash
            // matches no stored one).
            return String::new();
        };
        mac.update(format!("{}:{}", user.get(), code.0).as_bytes());
        crate::random::hex(&mac.finalize().into_bytes())
    }
}

fn totp_context(user: UserId) -> Vec<u8> {
    format!("totp:{}", user.get()).into_bytes()
}

/// A recovery code as its user holds it. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl RecoveryCode {
    /// The characters of a code.
    pub const LEN: usize = 10;

    /// A new random code (50 bits).
    ///
    /// # Errors
    /// [`Error::Internal`] when the system has no randomness to give.
    pub fn generate() -> Result<Self, Error> {
        let mut bytes = [0u8; 5];
        getrandom::fill(&mut bytes).map_err(|e| Error::internal("system randomness", e))?;
        let mut more = [0u8; 2];
        getrandom::fill(&mut more).map_err(|e| Error::internal("system randomness", e))?;
        let mut bits = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        bits = (bits << 10) | (u64::from(u16::from_be_bytes(more)) & 0x3ff);
        Ok(Self(
            crate::invitation::crockford_digits(bits, Self::LEN).to_ascii_uppercase(),
        ))
    }

    /// A code as someone typed it (case, spaces, hyphens and look-alikes forgiven).
    /// `None` for text that cannot be a recovery code.
    #[must_use]
    pub fn presented(raw: &str) -> Option<Self> {
        crate::invitation::read_crockford(raw, Self::LEN)
            .map(|code| Self(code.to_ascii_uppercase()))
    }

    /// The code for reading: two groups of five (`ABCDE-FGHJK`).
    #[must_use]
    pub fn display(&self) -> String {
        format!("{}-{}", &self.0[..5], &self.0[5..])
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(***)")
    }
}

/// The token that carries a login from its password to its second step. Its `Debug`
/// hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct MfaToken(String);

impl MfaToken {
    /// A new token: 32 random bytes, base 64 (URL-safe, unpadded).
    ///
    /// # Errors
    /// [`Error::Internal`] when the system has no randomness to give.
    pub fn generate() -> Result<Self, Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| Error::internal("system randomness", e))?;
        Ok(Self(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        ))
    }

    /// A token as presented.
    #[must_use]
    pub fn presented(raw: &str) -> Self {
        Self(raw.trim().chars().take(128).collect())
    }

    /// The token, for the client.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hex SHA-256 it is stored under.
    #[must_use]
    pub fn hash(&self) -> String {
        sha256_hex(&self.0)
    }
}

impl fmt::Debug for MfaToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MfaToken(***)")
    }
}

/// A user's TOTP factor as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTotp {
    /// Whose it is.
    pub user_id: UserId,
    /// The secret, sealed ([`MfaKeys::seal_totp`]).
    pub secret: String,
    /// When it was confirmed with a first code; `None` while pending.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// The last step a code was accepted for (a code is accepted at most once).
    pub last_step: Option<i64>,
    /// When enrolment began.
    pub created_at: DateTime<Utc>,
}

/// What a challenge is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChallengePurpose {
    /// A login that waits for its second step (`mfa_token`).
    LoginMfa,
    /// A passkey being registered (the ceremony's state).
    PasskeyRegistration,
    /// A passkey login under way (the ceremony's state).
    PasskeyLogin,
}

impl ChallengePurpose {
    /// The name in storage.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginMfa => "login_mfa",
            Self::PasskeyRegistration => "passkey_registration",
            Self::PasskeyLogin => "passkey_login",
        }
    }

    /// The purpose named `name` in storage.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::LoginMfa,
            Self::PasskeyRegistration,
            Self::PasskeyLogin,
        ]
        .into_iter()
        .find(|purpose| purpose.as_str() == name)
    }
}

/// A challenge to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChallenge {
    /// The hex SHA-256 of the token that names it.
    pub token_hash: String,
    /// What it is for.
    pub purpose: ChallengePurpose,
    /// Whose login or registration it is (`None` for a passkey login: nobody is named yet).
    pub user_id: Option<UserId>,
    /// State kept for its finish (a ceremony's state), if any.
    pub state: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it dies.
    pub expires_at: DateTime<Utc>,
}

/// A live challenge as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The store's id.
    pub id: i64,
    /// What it is for.
    pub purpose: ChallengePurpose,
    /// Whose it is.
    pub user_id: Option<UserId>,
    /// Its state.
    pub state: Option<String>,
    /// Wrong codes tried with it so far.
    pub wrong_tries: i64,
    /// When it dies.
    pub expires_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn user(id: i64) -> UserId {
        UserId::new(id).unwrap()
    }

    #[test]
    fn recovery_codes_read_back_and_differ() {
        let codes: Vec<RecoveryCode> = (0..100)
            .map(|_| RecoveryCode::generate().unwrap())
            .collect();
        for code in &codes {
            assert_eq!(code.0.len(), RecoveryCode::LEN);
            let shown = code.display();
            assert_eq!(shown.len(), RecoveryCode::LEN + 1);
            assert_eq!(RecoveryCode::presented(&shown).as_ref(), Some(code));
            assert_eq!(
                RecoveryCode::presented(&shown.to_lowercase()).as_ref(),
                Some(code)
            );
        }
        let distinct: std::collections::HashSet<_> = codes.iter().map(|c| c.0.clone()).collect();
        assert_eq!(distinct.len(), codes.len());
        assert!(RecoveryCode::presented("123456").is_none());
        assert!(RecoveryCode::presented("ABCDE-FGHJ!").is_none());
    }

    #[test]
    fn recovery_code_hashes_are_keyed_and_bound_to_the_user() {
        let keys = MfaKeys::derive(b"0123456789abcdef0123456789abcdef").unwrap();
        let other = MfaKeys::derive(b"another secret, another service!").unwrap();
        let code = RecoveryCode::generate().unwrap();
        let hash = keys.recovery_code_hash(user(1), &code);
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, keys.recovery_code_hash(user(1), &code));
        assert_ne!(hash, keys.recovery_code_hash(user(2), &code));
        assert_ne!(hash, other.recovery_code_hash(user(1), &code));
    }

    #[test]
    fn totp_secrets_open_only_for_their_user_and_key() {
        let keys = MfaKeys::derive(b"0123456789abcdef0123456789abcdef").unwrap();
        let other = MfaKeys::derive(b"another secret, another service!").unwrap();
        let secret = TotpSecret::generate().unwrap();
        let sealed = keys.seal_totp(user(7), &secret).unwrap();
        assert!(!sealed.contains(&secret.base32()));
        assert_eq!(
            keys.open_totp(user(7), &sealed).unwrap().expose(),
            secret.expose()
        );
        assert!(keys.open_totp(user(8), &sealed).is_err());
        assert!(other.open_totp(user(7), &sealed).is_err());
        assert!(keys.open_totp(user(7), "not base 64!").is_err());
    }

    #[test]
    fn mfa_tokens_are_long_random_and_hashed() {
        let a = MfaToken::generate().unwrap();
        let b = MfaToken::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert_eq!(MfaToken::presented(a.expose()).hash(), a.hash());
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn purposes_round_trip() {
        for purpose in [
            ChallengePurpose::LoginMfa,
            ChallengePurpose::PasskeyRegistration,
            ChallengePurpose::PasskeyLogin,
        ] {
            assert_eq!(ChallengePurpose::parse(purpose.as_str()), Some(purpose));
        }
        assert_eq!(ChallengePurpose::parse("other"), None);
    }
}
