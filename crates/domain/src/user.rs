use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::Email;

/// A user's id: a positive 64-bit integer. Ids are never reused, so a token naming a
/// deleted user's id can never come to name somebody else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(i64);

/// Why a value is not a user id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("User id must be a positive 64-bit integer")]
pub struct InvalidUserId;

impl UserId {
    /// The largest id (no user has it in practice: ids count up from 1).
    pub const MAX: Self = Self(i64::MAX);

    /// Checks that `raw` is positive.
    ///
    /// # Errors
    /// [`InvalidUserId`] for zero and negative numbers.
    pub fn new(raw: i64) -> Result<Self, InvalidUserId> {
        if raw > 0 {
            Ok(Self(raw))
        } else {
            Err(InvalidUserId)
        }
    }

    /// The number itself.
    #[must_use]
    pub fn get(self) -> i64 {
        self.0
    }
}

impl FromStr for UserId {
    type Err = InvalidUserId;

    /// Parses decimal digits only: no sign, no spaces, nothing beyond `i64::MAX`.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidUserId);
        }
        raw.parse::<i64>()
            .map_err(|_| InvalidUserId)
            .and_then(Self::new)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a user stands: waiting for approval, allowed in, turned down, or shut out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserStatus {
    /// Registered, waiting for an admin's approval; cannot log in.
    Pending,
    /// May log in and use tokens.
    Approved,
    /// Shut out by an admin; cannot log in.
    Disabled,
    /// Turned down by an admin (the approval issue): cannot log in, is told so with the
    /// admin's note, and no longer waits in the queue.
    Rejected,
}

/// Why a string is not a user status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Status must be one of pending, approved, disabled, rejected")]
pub struct InvalidUserStatus;

impl UserStatus {
    /// Every status, in the order of a user's life.
    pub const ALL: [Self; 4] = [
        Self::Pending,
        Self::Approved,
        Self::Disabled,
        Self::Rejected,
    ];

    /// The lower-case name used on the wire and in storage.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Disabled => "disabled",
            Self::Rejected => "rejected",
        }
    }
}

impl FromStr for UserStatus {
    type Err = InvalidUserStatus;

    /// Accepts exactly `pending`, `approved`, `disabled` or `rejected`.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == raw)
            .ok_or(InvalidUserStatus)
    }
}

impl fmt::Display for UserStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bcrypt hash in its modular-crypt form. Never leaves the server: it has no `Display`
/// and its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a hash produced by a [`crate::PasswordHasher`] or read back from storage.
    #[must_use]
    pub fn new(hash: String) -> Self {
        Self(hash)
    }

    /// The hash, for storage and verification.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

/// A registered user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Assigned by the store; never reused.
    pub id: UserId,
    /// Unique among users.
    pub email: Email,
    /// The bcrypt hash of the password.
    pub password_hash: PasswordHash,
    /// Whether the user may administer others (only while `approved`).
    pub is_admin: bool,
    /// Pending, approved or disabled.
    pub status: UserStatus,
    /// When the user registered or was created.
    pub created_at: DateTime<Utc>,
    /// When the user was first approved.
    pub approved_at: Option<DateTime<Utc>>,
    /// The admin who first approved the user, while that admin exists.
    pub approved_by: Option<UserId>,
    /// Bumped whenever every token issued so far must stop working (a password reset).
    pub token_version: i64,
    /// Why the user asked to join, as they wrote it at registration.
    pub reason: Option<String>,
    /// Whether the user has shown they hold the email address (an email-bound invitation,
    /// an admin's creation; the recovery issue adds codes by mail).
    pub email_verified: bool,
    /// Whether sign-in asks for a second factor (the MFA issue; false until then).
    pub mfa_enabled: bool,
    /// When the user was last rejected, while they stay rejected.
    pub rejected_at: Option<DateTime<Utc>>,
    /// The admin who rejected them, while they stay rejected and that admin exists.
    pub rejected_by: Option<UserId>,
    /// The note of the admin's last decision (approve or reject), shown to a rejected user.
    pub decision_note: Option<String>,
}

impl User {
    /// An admin who is approved: the kind of user that must never run out.
    #[must_use]
    pub fn is_active_admin(&self) -> bool {
        self.is_admin && self.status == UserStatus::Approved
    }
}

/// A user about to be inserted; the store assigns the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Unique among users; the store MUST refuse a duplicate with [`crate::Error::EmailTaken`].
    pub email: Email,
    /// The bcrypt hash of the password.
    pub password_hash: PasswordHash,
    /// Whether the user is an admin.
    pub is_admin: bool,
    /// The initial status.
    pub status: UserStatus,
    /// The creation time.
    pub created_at: DateTime<Utc>,
    /// Set when the user starts out approved.
    pub approved_at: Option<DateTime<Utc>>,
    /// The approving admin, when one approved the user at creation.
    pub approved_by: Option<UserId>,
    /// Why the user asks to join (self-registration only).
    pub reason: Option<String>,
    /// Whether the email is known to be the user's from the start.
    pub email_verified: bool,
}

/// An admin's edit of a user: each field present is set, each absent one kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChanges {
    /// A new email address.
    pub email: Option<Email>,
    /// Promote (`true`) or demote (`false`).
    pub is_admin: Option<bool>,
    /// Approve, reject, disable, enable or set back to pending.
    pub status: Option<UserStatus>,
    /// The note beside a decision (a status change to approved or rejected); see
    /// [`crate::rules::apply_changes`].
    pub note: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_positive_decimal_i64() {
        assert_eq!("1".parse::<UserId>().map(UserId::get), Ok(1));
        assert_eq!(
            "9223372036854775807".parse::<UserId>().map(UserId::get),
            Ok(i64::MAX)
        );
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            " 1",
            "1 ",
            "abc",
            "1.0",
            "0x10",
            "99999999999999999999",
            "١",
        ] {
            assert_eq!(bad.parse::<UserId>(), Err(InvalidUserId), "{bad:?}");
        }
        assert_eq!(UserId::new(0), Err(InvalidUserId));
        assert_eq!(UserId::new(-5), Err(InvalidUserId));
    }

    #[test]
    fn statuses_round_trip_and_are_exact() {
        for status in UserStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
        }
        for bad in ["Approved", "APPROVED", " approved", "active", ""] {
            assert_eq!(bad.parse::<UserStatus>(), Err(InvalidUserStatus));
        }
    }

    proptest::proptest! {
        #[test]
        fn user_ids_parse_exactly_the_positive_i64s(raw in "\\PC{0,25}") {
            let expected = raw.bytes().all(|b| b.is_ascii_digit())
                && raw.parse::<i64>().is_ok_and(|n| n > 0);
            proptest::prop_assert_eq!(raw.parse::<UserId>().is_ok(), expected);
        }

        #[test]
        fn user_ids_round_trip(n in 1i64..=i64::MAX) {
            proptest::prop_assert_eq!(n.to_string().parse::<UserId>().map(UserId::get), Ok(n));
        }
    }

    #[test]
    fn hash_debug_is_redacted() {
        let hash = PasswordHash::new("$2b$04$abcdefghijklmnopqrstuv".into());
        assert_eq!(format!("{hash:?}"), "PasswordHash(***)");
    }
}
