//! What a token says: the claims Gatehouse signs, what a verified token tells the domain,
//! and how long a token lives. A leaf: both token flavours ([`crate::Hs256Tokens`],
//! [`crate::Ed25519Tokens`]) and the JWKS verifier build on it, and it knows neither.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::random::random_hex;
use crate::{Error, User, UserId};

/// How long an access token stays valid: 1 second to 366 days.
///
/// Parsed from a number of seconds (`3600`) or a number with one unit: `s`, `m`, `h`, `d`
/// (`90s`, `15m`, `12h`, `7d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenTtl(u64);

/// Why a string is not a token lifetime.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a duration from 1s to 366d, such as 3600, 90s, 15m, 12h or 7d")]
pub struct InvalidTokenTtl;

impl TokenTtl {
    /// Fifteen minutes: an access token's default lifetime (sessions live on through their
    /// refresh tokens).
    pub const DEFAULT: Self = Self(15 * 60);
    /// Thirty days: how long a session lives after its last refresh by default.
    pub const DEFAULT_SESSION_IDLE: Self = Self(30 * 24 * 3600);
    /// Ninety days: how long a session lives at most by default.
    pub const DEFAULT_SESSION_MAX_AGE: Self = Self(90 * 24 * 3600);
    const MAX_SECONDS: u64 = 366 * 24 * 3600;

    /// A lifetime in seconds.
    ///
    /// # Errors
    /// [`InvalidTokenTtl`] outside 1 second to 366 days.
    pub fn from_secs(seconds: u64) -> Result<Self, InvalidTokenTtl> {
        if (1..=Self::MAX_SECONDS).contains(&seconds) {
            Ok(Self(seconds))
        } else {
            Err(InvalidTokenTtl)
        }
    }

    /// The lifetime in seconds.
    #[must_use]
    pub fn as_secs(self) -> u64 {
        self.0
    }
}

impl FromStr for TokenTtl {
    type Err = InvalidTokenTtl;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let raw = raw.trim();
        let (digits, unit) = match raw.char_indices().last() {
            Some((at, c)) if c.is_ascii_alphabetic() => (&raw[..at], &raw[at..]),
            _ => (raw, "s"),
        };
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 24 * 3600,
            _ => return Err(InvalidTokenTtl),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidTokenTtl);
        }
        let count: u64 = digits.parse().map_err(|_| InvalidTokenTtl)?;
        Self::from_secs(count.checked_mul(scale).ok_or(InvalidTokenTtl)?)
    }
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// Whose token it is (`sub`).
    pub user_id: UserId,
    /// The user's token version when it was issued (`ver`).
    pub token_version: i64,
    /// When it was issued (`iat`).
    pub issued_at: DateTime<Utc>,
    /// When it expires (`exp`).
    pub expires_at: DateTime<Utc>,
    /// Its unique id (`jti`).
    pub id: String,
    /// The session it belongs to (`sid`).
    pub session_id: i64,
}

/// How far in the future a token's `iat` may lie (another instance's clock may run ahead).
pub const MAX_CLOCK_SKEW_SECS: i64 = 60;

/// The JWT claims Gatehouse signs.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
    jti: String,
    ver: i64,
    sid: i64,
}

impl Claims {
    /// Fresh claims for `user` in session `session_id`, valid for `ttl` from now, with a
    /// random `jti`.
    pub(crate) fn for_user(user: &User, session_id: i64, ttl: TokenTtl) -> Result<Self, Error> {
        let issued_at = Utc::now().timestamp();
        let ttl = i64::try_from(ttl.as_secs()).map_err(|e| Error::internal("token lifetime", e))?;
        Ok(Self {
            sub: user.id.to_string(),
            iat: issued_at,
            exp: issued_at + ttl,
            jti: random_hex(16)?,
            ver: user.token_version,
            sid: session_id,
        })
    }

    /// What verified claims say, in domain types. The signature library lets a token
    /// through while `exp` equals the current second and ignores `iat`; here a token is
    /// expired from its `exp` second on, and one issued more than
    /// [`MAX_CLOCK_SKEW_SECS`] in the future is refused.
    pub(crate) fn into_token_claims(self) -> Result<TokenClaims, Error> {
        self.into_token_claims_at(Utc::now().timestamp())
    }

    fn into_token_claims_at(self, now: i64) -> Result<TokenClaims, Error> {
        if self.exp <= now || self.iat > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
            return Err(Error::Unauthenticated);
        }
        Ok(TokenClaims {
            user_id: self.sub.parse().map_err(|_| Error::Unauthenticated)?,
            token_version: self.ver,
            issued_at: DateTime::from_timestamp(self.iat, 0).ok_or(Error::Unauthenticated)?,
            expires_at: DateTime::from_timestamp(self.exp, 0).ok_or(Error::Unauthenticated)?,
            id: self.jti,
            session_id: self.sid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ttl_parsing() {
        assert_eq!("15m".parse(), Ok(TokenTtl::DEFAULT));
        assert_eq!("30d".parse(), Ok(TokenTtl::DEFAULT_SESSION_IDLE));
        assert_eq!("90d".parse(), Ok(TokenTtl::DEFAULT_SESSION_MAX_AGE));
        assert_eq!("3600".parse::<TokenTtl>().map(TokenTtl::as_secs), Ok(3600));
        assert_eq!("15m".parse::<TokenTtl>().map(TokenTtl::as_secs), Ok(900));
        assert_eq!("12h".parse::<TokenTtl>().map(TokenTtl::as_secs), Ok(43200));
        assert_eq!("90s".parse::<TokenTtl>().map(TokenTtl::as_secs), Ok(90));
        for bad in [
            "",
            "0",
            "0s",
            "-5",
            "7w",
            "d",
            "1.5h",
            "367d",
            "99999999999999999999d",
            "7 d",
        ] {
            assert_eq!(bad.parse::<TokenTtl>(), Err(InvalidTokenTtl), "{bad:?}");
        }
    }

    #[test]
    fn exp_is_exclusive_and_iat_may_not_lie_in_the_future() {
        let claims = |iat: i64, exp: i64| Claims {
            sub: "42".into(),
            iat,
            exp,
            jti: "j".into(),
            ver: 0,
            sid: 1,
        };
        let now = 1_800_000_000;
        assert!(claims(now - 10, now).into_token_claims_at(now).is_err());
        assert!(claims(now - 10, now + 1).into_token_claims_at(now).is_ok());
        assert!(claims(now + 60, now + 120)
            .into_token_claims_at(now)
            .is_ok());
        assert!(claims(now + 61, now + 120)
            .into_token_claims_at(now)
            .is_err());
    }

    proptest! {
        #[test]
        fn ttl_parsing_never_panics_and_stays_in_range(raw in "\\PC{0,12}") {
            if let Ok(ttl) = raw.parse::<TokenTtl>() {
                prop_assert!((1..=366 * 24 * 3600).contains(&ttl.as_secs()));
            }
        }
    }
}
