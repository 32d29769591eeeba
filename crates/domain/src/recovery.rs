//! One-time codes sent by mail (the recovery issue, "Account recovery and email
//! verification" in API.md): the code that resets a forgotten password and the code that
//! shows an address is its user's.
//!
//! A code is 8 characters of Crockford's base 32 (no `I`, `L`, `O`, `U`; typed `i`/`l`
//! read as `1`, `o` as `0`, case, spaces and hyphens forgiven): 40 random bits. It is
//! stored only as a SHA-256 bound to its user and purpose, spent once, dies after
//! [`MAX_WRONG_TRIES`] wrong tries or at its expiry, and an account is sent at most
//! [`MAX_CODES_PER_HOUR`] of one purpose per hour. What the store does with them (one
//! conditional update spends a code, so 16 racing tries of the right code succeed once) is
//! the repository's job; this module holds what a code *is*.

use std::fmt;

use chrono::{DateTime, Duration, Utc};

use crate::random::sha256_hex;
use crate::{Error, UserId};

/// A code dies after this many wrong tries.
pub const MAX_WRONG_TRIES: i64 = 5;

/// At most this many codes of one purpose are sent to an account per hour; beyond that,
/// silently none.
pub const MAX_CODES_PER_HOUR: u64 = 3;

/// How long a verification code lives.
pub const VERIFICATION_TTL: Duration = Duration::hours(24);

/// What a code is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodePurpose {
    /// `POST /password/reset`.
    PasswordReset,
    /// `POST /email/verify`.
    EmailVerification,
}

impl CodePurpose {
    /// The name in storage.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset",
            Self::EmailVerification => "email_verification",
        }
    }
}

/// A one-time code as its user holds it. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct OneTimeCode(String);

impl OneTimeCode {
    /// The characters of a code.
    pub const LEN: usize = 8;

    /// A new random code (40 bits).
    ///
    /// # Errors
    /// [`Error::Internal`] when the system has no randomness to give.
    pub fn generate() -> Result<Self, Error> {
        let mut bytes = [0u8; 5];
        getrandom::fill(&mut bytes).map_err(|e| Error::internal("system randomness", e))?;
        let bits = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        Ok(Self(
            crate::invitation::crockford_digits(bits, Self::LEN).to_ascii_uppercase(),
        ))
    }

    /// A code as someone typed it: surrounding space, spaces and hyphens inside, and
    /// lower case are forgiven, as are `I`/`L` for `1` and `O` for `0`. `None` for text
    /// that cannot be a code (answered as any wrong code).
    #[must_use]
    pub fn presented(raw: &str) -> Option<Self> {
        crate::invitation::read_crockford(raw, Self::LEN)
            .map(|code| Self(code.to_ascii_uppercase()))
    }

    /// The code itself, for the mail that carries it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The code for reading: two groups of four (`ABCD-EFGH`).
    #[must_use]
    pub fn display(&self) -> String {
        format!("{}-{}", &self.0[..4], &self.0[4..])
    }

    /// The hex SHA-256 the code is stored under, bound to its user and purpose (a code
    /// can be tried only against the account it was sent for, and a copy of the database
    /// holds no usable code while it lives).
    #[must_use]
    pub fn hash(&self, user: UserId, purpose: CodePurpose) -> String {
        sha256_hex(&format!("{}:{}:{}", purpose.as_str(), user.get(), self.0))
    }
}

impl fmt::Debug for OneTimeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneTimeCode(***)")
    }
}

/// A code to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCode {
    /// Whose it is.
    pub user_id: UserId,
    /// What it is for.
    pub purpose: CodePurpose,
    /// [`OneTimeCode::hash`].
    pub code_hash: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it dies.
    pub expires_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Crockford's base 32, upper case: how codes are shown.
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

    #[test]
    fn codes_are_eight_characters_of_the_alphabet_and_differ() {
        let codes: Vec<OneTimeCode> = (0..200).map(|_| OneTimeCode::generate().unwrap()).collect();
        for code in &codes {
            assert_eq!(code.expose().len(), OneTimeCode::LEN);
            assert!(code.expose().bytes().all(|b| ALPHABET.contains(&b)));
        }
        let distinct: std::collections::HashSet<&str> =
            codes.iter().map(OneTimeCode::expose).collect();
        assert!(distinct.len() > 195, "{}", distinct.len());
    }

    #[test]
    fn a_typed_code_is_forgiven_case_hyphens_and_look_alikes() {
        let code = OneTimeCode::presented("AB1D-0FGH").unwrap();
        assert_eq!(OneTimeCode::presented(" abid-ofgh ").unwrap(), code);
        assert_eq!(OneTimeCode::presented("ab l d 0 f g h").unwrap(), code);
        assert_eq!(code.display(), "AB1D-0FGH");
        assert!(OneTimeCode::presented("AB1D0FG").is_none(), "too short");
        assert!(OneTimeCode::presented("AB1D0FGHJ").is_none(), "too long");
        assert!(
            OneTimeCode::presented("AB1D0FGU").is_none(),
            "U is not in the alphabet"
        );
        assert!(OneTimeCode::presented("ÄB1D0FGH").is_none());
        assert!(OneTimeCode::presented(&"A".repeat(100)).is_none());
    }

    #[test]
    fn the_hash_is_bound_to_the_user_and_the_purpose() {
        let code = OneTimeCode::presented("ABCD2345").unwrap();
        let (one, two) = (UserId::new(1).unwrap(), UserId::new(2).unwrap());
        let hash = code.hash(one, CodePurpose::PasswordReset);
        assert_eq!(hash.len(), 64);
        assert_ne!(hash, code.hash(two, CodePurpose::PasswordReset));
        assert_ne!(hash, code.hash(one, CodePurpose::EmailVerification));
        assert!(!hash.contains("ABCD2345"));
        assert_eq!(format!("{code:?}"), "OneTimeCode(***)");
    }
}
