//! The audit trail: who did what to whom, when, and from where.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::UserId;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditAction {
    /// Someone registered.
    UserRegistered,
    /// A login succeeded.
    LoginSucceeded,
    /// A login failed (wrong credentials, or an account not allowed in).
    LoginFailed,
    /// A login was refused by throttling.
    LoginThrottled,
    /// A user logged out (revoking the token).
    Logout,
    /// A user changed their own password.
    PasswordChanged,
    /// An admin (or the operator) reset a user's password.
    PasswordReset,
    /// An admin (or the operator) created a user.
    UserCreated,
    /// A user was approved.
    UserApproved,
    /// An admin turned a registration down (the approval issue).
    UserRejected,
    /// A user was disabled.
    UserDisabled,
    /// A user was enabled again, or set back to pending.
    UserEnabled,
    /// A user became an admin.
    UserPromoted,
    /// A user stopped being an admin.
    UserDemoted,
    /// A user's email changed.
    UserEmailChanged,
    /// A user was deleted.
    UserDeleted,
    /// An admin (or the operator) created an invitation.
    InvitationCreated,
    /// An admin (or the operator) revoked an invitation.
    InvitationRevoked,
    /// Someone registered with an invitation.
    InvitationUsed,
    /// A session was ended by its user (one of their others) (the sessions issue).
    SessionRevoked,
    /// Several sessions were ended at once: a user's others, or an admin signing a user out
    /// everywhere.
    SessionsRevoked,
    /// A spent refresh token came back; its session was ended.
    RefreshTokenReused,
    /// An admin (or the operator) added a webhook endpoint (the notifications issue).
    WebhookCreated,
    /// An admin changed a webhook endpoint (address, events, active, description).
    WebhookUpdated,
    /// An admin removed a webhook endpoint.
    WebhookDeleted,
    /// An admin gave a webhook endpoint a new signing secret.
    WebhookSecretRotated,
    /// A user set a new password with a code sent by mail (the recovery issue).
    PasswordRecovered,
    /// A user showed with a code sent by mail that the address is theirs (or an operator
    /// marked it so).
    EmailVerified,
    /// A pending user whose email's domain is auto-approved was approved on verifying it.
    UserAutoApproved,
    /// A user turned on TOTP (the MFA issue).
    MfaEnabled,
    /// A user turned off TOTP.
    MfaDisabled,
    /// An admin or the operator removed every second factor of a user.
    MfaReset,
    /// A user registered a passkey.
    PasskeyAdded,
    /// A user removed a passkey.
    PasskeyRemoved,
    /// A login's second step was given a wrong code.
    LoginMfaFailed,
}

impl AuditAction {
    /// Every action.
    pub const ALL: [Self; 35] = [
        Self::UserRegistered,
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::LoginThrottled,
        Self::Logout,
        Self::PasswordChanged,
        Self::PasswordReset,
        Self::UserCreated,
        Self::UserApproved,
        Self::UserRejected,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::UserPromoted,
        Self::UserDemoted,
        Self::UserEmailChanged,
        Self::UserDeleted,
        Self::InvitationCreated,
        Self::InvitationRevoked,
        Self::InvitationUsed,
        Self::SessionRevoked,
        Self::SessionsRevoked,
        Self::RefreshTokenReused,
        Self::WebhookCreated,
        Self::WebhookUpdated,
        Self::WebhookDeleted,
        Self::WebhookSecretRotated,
        Self::PasswordRecovered,
        Self::EmailVerified,
        Self::UserAutoApproved,
        Self::MfaEnabled,
        Self::MfaDisabled,
        Self::MfaReset,
        Self::PasskeyAdded,
        Self::PasskeyRemoved,
        Self::LoginMfaFailed,
    ];

    /// The snake_case name used on the wire and in storage.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserRegistered => "user_registered",
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::LoginThrottled => "login_throttled",
            Self::Logout => "logout",
            Self::PasswordChanged => "password_changed",
            Self::PasswordReset => "password_reset",
            Self::UserCreated => "user_created",
            Self::UserApproved => "user_approved",
            Self::UserRejected => "user_rejected",
            Self::UserDisabled => "user_disabled",
            Self::UserEnabled => "user_enabled",
            Self::UserPromoted => "user_promoted",
            Self::UserDemoted => "user_demoted",
            Self::UserEmailChanged => "user_email_changed",
            Self::UserDeleted => "user_deleted",
            Self::InvitationCreated => "invitation_created",
            Self::InvitationRevoked => "invitation_revoked",
            Self::InvitationUsed => "invitation_used",
            Self::SessionRevoked => "session_revoked",
            Self::SessionsRevoked => "sessions_revoked",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::WebhookCreated => "webhook_created",
            Self::WebhookUpdated => "webhook_updated",
            Self::WebhookDeleted => "webhook_deleted",
            Self::WebhookSecretRotated => "webhook_secret_rotated",
            Self::PasswordRecovered => "password_recovered",
            Self::EmailVerified => "email_verified",
            Self::UserAutoApproved => "user_auto_approved",
            Self::MfaEnabled => "mfa_enabled",
            Self::MfaDisabled => "mfa_disabled",
            Self::MfaReset => "mfa_reset",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyRemoved => "passkey_removed",
            Self::LoginMfaFailed => "login_mfa_failed",
        }
    }
}

/// Why a string is not an audit action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Action must be one of the audit actions, such as user_approved or login_failed")]
pub struct InvalidAuditAction;

impl FromStr for AuditAction {
    type Err = InvalidAuditAction;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == raw)
            .ok_or(InvalidAuditAction)
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An entry about to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// What.
    pub action: AuditAction,
    /// Who did it (`None`: anonymous, or the operator at the command line).
    pub actor_id: Option<UserId>,
    /// To whom.
    pub target_id: Option<UserId>,
    /// From which client address (`None` for the command line).
    pub address: Option<String>,
    /// A short note, never a secret (`"cli"`, `"account pending"`, a new email).
    pub detail: Option<String>,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Increasing with time.
    pub id: i64,
    /// The entry itself.
    pub entry: NewAuditEntry,
}

/// Which entries to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this action.
    pub action: Option<AuditAction>,
    /// Only by this actor.
    pub actor_id: Option<UserId>,
    /// Only about this target.
    pub target_id: Option<UserId>,
    /// At most this many; all when `None`.
    pub limit: Option<u64>,
    /// Skip this many first.
    pub offset: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip() {
        for action in AuditAction::ALL {
            assert_eq!(action.as_str().parse(), Ok(action));
        }
        assert_eq!(
            "User_Approved".parse::<AuditAction>(),
            Err(InvalidAuditAction)
        );
    }
}
