//! Sessions (the sessions issue): one per login, with a short-lived access token and a
//! rotating, single-use refresh token.
//!
//! A session starts at a login and ends at logout, at revocation (by the user, an admin, or
//! the rules: a password change ends the others, a reset, disable, rejection, return to
//! pending or delete ends them all) or when it expires: it idles out
//! [`SessionPolicy::idle`] after its last refresh and ends for good
//! [`SessionPolicy::max_age`] after the login. Every access token names its session (`sid`),
//! and every authenticated request checks the session in the read that loads the user, so
//! an ended session's access tokens stop working at once.
//!
//! Refresh tokens are 256 random bits, stored as their SHA-256 only, and single use: a
//! refresh spends the presented one and hands out the next. The spent ones are kept with
//! the session, so a spent token presented again is recognised as a replay (the OAuth 2
//! security BCP's reuse detection, RFC 9700 §4.14.2): the whole session ends at once.

use std::fmt;

use chrono::{DateTime, Duration, Utc};

use crate::random::{random_hex, sha256_hex};
use crate::{Error, TokenTtl, UserId};

/// How long sessions live (an access token's lifetime is its [`crate::TokenService`]'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// How long a session lives after its last refresh (`GATEHOUSE_SESSION_IDLE_TTL`,
    /// default 30 days).
    pub idle: TokenTtl,
    /// How long a session lives at most after its login (`GATEHOUSE_SESSION_MAX_AGE`,
    /// default 90 days).
    pub max_age: TokenTtl,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle: TokenTtl::DEFAULT_SESSION_IDLE,
            max_age: TokenTtl::DEFAULT_SESSION_MAX_AGE,
        }
    }
}

fn duration(ttl: TokenTtl) -> Duration {
    // At most 366 days: always within chrono's range.
    Duration::seconds(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 1000))
}

impl SessionPolicy {
    /// When a session started at `now` ends for good.
    #[must_use]
    pub fn expires_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + duration(self.max_age)
    }

    /// When a session used at `now` idles out: [`idle`](Self::idle) from now, never past
    /// its end for good.
    #[must_use]
    pub fn idle_expires_at(&self, now: DateTime<Utc>, expires_at: DateTime<Utc>) -> DateTime<Utc> {
        (now + duration(self.idle)).min(expires_at)
    }
}

/// A refresh token as the client holds it: 256 random bits, hex-encoded. Its `Debug` hides
/// it.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl RefreshToken {
    /// The longest text taken as a refresh token.
    pub const MAX_LEN: usize = 256;

    /// A new random token.
    ///
    /// # Errors
    /// [`Error::Internal`] when the system has no randomness to give.
    pub fn generate() -> Result<Self, Error> {
        random_hex(32).map(Self)
    }

    /// A token a client presented; `None` for text that cannot be one of ours (empty, too
    /// long, not printable ASCII).
    #[must_use]
    pub fn presented(raw: &str) -> Option<Self> {
        (!raw.is_empty() && raw.len() <= Self::MAX_LEN && raw.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| Self(raw.to_owned()))
    }

    /// The token itself, for the token response.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hex SHA-256 under which the token is stored.
    #[must_use]
    pub fn hash(&self) -> String {
        sha256_hex(&self.0)
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(***)")
    }
}

/// A session to store at a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// Whose session it is.
    pub user_id: UserId,
    /// When it started (the login).
    pub created_at: DateTime<Utc>,
    /// When it idles out unless refreshed.
    pub idle_expires_at: DateTime<Utc>,
    /// When it ends for good.
    pub expires_at: DateTime<Utc>,
    /// The client's address at the login.
    pub address: Option<String>,
    /// The client's `User-Agent` at the login (bounded, without control characters).
    pub user_agent: Option<String>,
}

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// Its id (the access tokens' `sid`).
    pub id: i64,
    /// Whose session it is.
    pub user_id: UserId,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it was last refreshed (the login, before any refresh).
    pub last_used_at: DateTime<Utc>,
    /// When it idles out unless refreshed.
    pub idle_expires_at: DateTime<Utc>,
    /// When it ends for good.
    pub expires_at: DateTime<Utc>,
    /// When it was ended, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The client's address at the login.
    pub address: Option<String>,
    /// The client's `User-Agent` at the login.
    pub user_agent: Option<String>,
}

impl StoredSession {
    /// Whether the session still works at `now`: not ended, not idled out, not past its
    /// end for good.
    #[must_use]
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        SessionState {
            revoked: self.revoked_at.is_some(),
            idle_expires_at: self.idle_expires_at,
            expires_at: self.expires_at,
        }
        .is_live(now)
    }
}

/// A refresh token as found: its session, when the token was spent (`None`: it is the
/// session's current one), and the session's user (read in the same statement).
pub type FoundRefreshToken = (StoredSession, Option<DateTime<Utc>>, crate::User);

/// What every authenticated request needs to know of its session (read with the user, in
/// one statement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionState {
    /// Whether it was ended.
    pub revoked: bool,
    /// When it idles out unless refreshed.
    pub idle_expires_at: DateTime<Utc>,
    /// When it ends for good.
    pub expires_at: DateTime<Utc>,
}

impl SessionState {
    /// Whether the session still works at `now`.
    #[must_use]
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        !self.revoked && now < self.idle_expires_at && now < self.expires_at
    }
}

/// Which sessions to list: a page of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionQuery {
    /// At most this many; all when `None`.
    pub limit: Option<u64>,
    /// Skip this many first.
    pub offset: u64,
}

/// What a login, a refresh or a password change hands out: an access token and the
/// session's next refresh token.
#[derive(Debug, Clone)]
pub struct SessionTokens {
    /// The access token (it names the session).
    pub access: crate::AccessToken,
    /// The refresh token to present next.
    pub refresh_token: RefreshToken,
    /// Seconds until the session idles out unless refreshed.
    pub refresh_expires_in: u64,
    /// The session's id.
    pub session_id: i64,
}

/// A `User-Agent` as a session records it: at most 256 characters, control characters
/// dropped, `None` when nothing is left.
#[must_use]
pub fn clean_user_agent(raw: &str) -> Option<String> {
    let cleaned: String = raw.chars().filter(|c| !c.is_control()).take(256).collect();
    let cleaned = cleaned.trim();
    (!cleaned.is_empty()).then(|| cleaned.to_owned())
}

/// Seconds from `now` until `at`, at least 0.
#[must_use]
pub fn seconds_until(now: DateTime<Utc>, at: DateTime<Utc>) -> u64 {
    u64::try_from((at - now).num_seconds()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn refresh_tokens_are_random_hashed_and_hidden() {
        let a = RefreshToken::generate().unwrap();
        let b = RefreshToken::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 64, "256 bits in hex");
        assert_eq!(
            a.hash(),
            RefreshToken::presented(a.expose()).unwrap().hash()
        );
        assert_ne!(a.hash(), a.expose());
        assert_eq!(format!("{a:?}"), "RefreshToken(***)");
        for junk in ["", "a b", "é", &"x".repeat(257), "nul\0"] {
            assert!(RefreshToken::presented(junk).is_none(), "{junk:?}");
        }
    }

    #[test]
    fn a_session_idles_out_but_never_outlives_its_max_age() {
        let policy = SessionPolicy {
            idle: TokenTtl::from_secs(100).unwrap(),
            max_age: TokenTtl::from_secs(250).unwrap(),
        };
        let start = at(0);
        let end = policy.expires_at(start);
        assert_eq!(end, at(250));
        assert_eq!(policy.idle_expires_at(start, end), at(100));
        assert_eq!(policy.idle_expires_at(at(90), end), at(190));
        assert_eq!(policy.idle_expires_at(at(200), end), at(250), "capped");
        let state = |revoked, idle| SessionState {
            revoked,
            idle_expires_at: idle,
            expires_at: end,
        };
        assert!(state(false, at(100)).is_live(at(99)));
        assert!(
            !state(false, at(100)).is_live(at(100)),
            "idle expiry is exclusive"
        );
        assert!(!state(true, at(100)).is_live(at(0)), "revoked");
        assert!(!state(false, at(400)).is_live(at(250)), "max age");
    }

    #[test]
    fn user_agents_are_bounded_and_clean() {
        assert_eq!(clean_user_agent("  "), None);
        assert_eq!(
            clean_user_agent("Mozilla/5.0\r\n(evil)").as_deref(),
            Some("Mozilla/5.0(evil)")
        );
        assert_eq!(
            clean_user_agent(&"é".repeat(1000)).unwrap().chars().count(),
            256
        );
    }

    #[test]
    fn seconds_until_never_goes_negative() {
        assert_eq!(seconds_until(at(10), at(70)), 60);
        assert_eq!(seconds_until(at(70), at(10)), 0);
    }
}
