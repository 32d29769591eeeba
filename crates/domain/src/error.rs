use std::fmt;

use crate::UserId;

/// A boxed error from an adapter (storage, hashing, tokens), kept as the cause of an
/// [`Error`] for logging; never shown to a client.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a use case or a port can refuse or fail with.
///
/// The `Display` of the refusals is the sentence a client may be shown; the infrastructure
/// variants (`Unavailable`, `Conflict`, `Internal`) describe the failure for logs only and
/// carry their cause as `source`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A one-time code that is wrong, spent, expired or dead, or an email with no such
    /// account (the recovery issue: one answer for all).
    #[error("The code is invalid or has expired")]
    InvalidCode,
    /// A second-step code (TOTP or recovery code) that is wrong or already used, or an
    /// `mfa_token` that is unknown, spent, expired or dead (the MFA issue): 401.
    #[error("The code is invalid, or this sign-in has expired; sign in again if it has")]
    InvalidMfaCode,
    /// The password was right and the account has TOTP on: the login needs its second
    /// step (only from the one-call [`crate::UserService::login`]; the HTTP login answers
    /// `mfa_required` with a token instead).
    #[error("This account needs a second factor to sign in")]
    MfaRequired,
    /// TOTP is on already: turn it off first.
    #[error("Two-step sign-in with an authenticator app is on already")]
    MfaAlreadyEnabled,
    /// There is no TOTP factor to confirm, turn off or make recovery codes for.
    #[error("Two-step sign-in with an authenticator app is not on")]
    MfaNotEnabled,
    /// A stored TOTP secret does not open with the service's keys: its secret material
    /// (the JWT secret) changed since the user enrolled. Only an admin's reset helps.
    #[error("The second factor of this account cannot be checked: the service's secret changed since it was set up; an admin must reset it")]
    MfaUnreadable,
    /// A passkey registration whose credential does not verify, or with no registration
    /// under way (400 `invalid_credential`).
    #[error("The passkey could not be verified; start the registration again")]
    InvalidCredential,
    /// A passkey login that fails: an unknown, spent or expired challenge, an unknown
    /// credential, a user handle that is not the passkey's, a bad signature (401
    /// `invalid_credential`, one answer for all).
    #[error("The passkey could not be verified, or this sign-in has expired")]
    PasskeyLoginFailed,
    /// The signed-in user has no passkey with this id.
    #[error("Passkey not found")]
    PasskeyNotFound,
    /// `GATEHOUSE_REQUIRE_MFA_FOR_ADMINS`: an admin without a second factor may only enrol.
    #[error("Admins must turn on a second factor (an authenticator app or a passkey) first")]
    MfaEnrollmentRequired,
    /// A feature that needs a setting that is not set (recovery without a mailer).
    #[error("{0}")]
    NotEnabled(&'static str),
    /// The password was right but the email is not verified, and verification is
    /// required (`GATEHOUSE_REQUIRE_VERIFIED_EMAIL`).
    #[error("Verify your email first: use the code sent to it")]
    EmailUnverified,
    /// Another user already has this email address.
    #[error("Email already registered")]
    EmailTaken,
    /// No user has this id.
    #[error("User not found")]
    UserNotFound,
    /// No session of this user has this id (the sessions issue).
    #[error("Session not found")]
    SessionNotFound,
    /// A refresh token that opens nothing: unknown, expired, revoked or spent (a spent one
    /// also ends its session), or its user may no longer sign in.
    #[error("The refresh token is invalid, expired or revoked")]
    InvalidGrant,
    /// No invitation has this id.
    #[error("Invitation not found")]
    InvitationNotFound,
    /// An invitation code that admits nobody, or not this email: unknown, expired, used
    /// up or revoked, all alike.
    #[error("Invalid invitation")]
    InvalidInvitation,
    /// No webhook endpoint has this id (the notifications issue).
    #[error("Webhook not found")]
    WebhookNotFound,
    /// A webhook URL that may not be used: not http(s), with credentials, or pointing to
    /// a non-public address; the message says which.
    #[error("{0}")]
    InvalidUrl(String),
    /// A self-registration the registration mode does not allow.
    #[error("Registration is closed")]
    RegistrationClosed,
    /// The change would leave no active admin.
    #[error("{0}")]
    LastAdmin(LastAdminChange),
    /// Unknown email or wrong password: deliberately the same error for both.
    #[error("Incorrect email or password")]
    InvalidCredentials,
    /// The password was right but the account still waits for approval.
    #[error("Account pending approval")]
    AccountPending,
    /// The password was right but the account is disabled.
    #[error("Account disabled")]
    AccountDisabled,
    /// The password was right but an admin turned the registration down; `note` is what
    /// they wrote, for the applicant.
    #[error("Registration rejected")]
    AccountRejected {
        /// The admin's note, if they left one.
        note: Option<String>,
    },
    /// Some users of a bulk decision do not exist; nothing was decided.
    #[error("User not found")]
    UsersNotFound(Vec<UserId>),
    /// Some users of a bulk decision are not pending; nothing was decided.
    #[error("Only pending users can be decided on")]
    NotPending(Vec<UserId>),
    /// A missing, malformed, forged, expired or revoked token, or a token whose user can no
    /// longer use it (deleted, not approved).
    #[error("Could not validate credentials")]
    Unauthenticated,
    /// The actor is authenticated but not an active admin.
    #[error("Admin access required")]
    AdminRequired,
    /// Too many attempts (failed logins of an account or from an address, registrations
    /// from an address); try again after `retry_after` seconds.
    #[error("Too many attempts; try again in {retry_after} second{}", if *retry_after == 1 { "" } else { "s" })]
    Throttled {
        /// Seconds to wait, at least 1.
        retry_after: u64,
    },
    /// A password change named the wrong current password.
    #[error("Current password is incorrect")]
    WrongCurrentPassword,
    /// The store cannot be reached or is too busy to answer in time; worth retrying later.
    #[error("the database is unavailable")]
    Unavailable(#[source] BoxError),
    /// Too much is queued already (session lookups while the database stalls): refused at
    /// once rather than left to pile up; worth retrying later.
    #[error("the service is overloaded")]
    Overloaded,
    /// The transaction lost a race with a concurrent one and was rolled back; the store
    /// retries these itself, so a caller sees this only when retries ran out.
    #[error("the transaction conflicted with a concurrent one")]
    Conflict,
    /// A bug or an unexpected failure of an adapter.
    #[error("internal failure: {context}")]
    Internal {
        /// What was being done.
        context: &'static str,
        /// Why it failed.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// Wraps an adapter failure that the caller cannot do anything about.
    pub fn internal(context: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Internal {
            context,
            source: source.into(),
        }
    }

    /// Wraps a failure to reach the store.
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Self::Unavailable(source.into())
    }
}

/// Which change the last-active-admin rule refused; its `Display` is the client's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LastAdminChange {
    /// Taking away the admin flag.
    Demote,
    /// Setting the status to `disabled` or back to `pending`.
    Deactivate,
    /// Deleting the user.
    Delete,
}

impl fmt::Display for LastAdminChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Demote => "Cannot remove last admin",
            Self::Deactivate => "Cannot disable last active admin",
            Self::Delete => "Cannot delete last admin",
        })
    }
}
