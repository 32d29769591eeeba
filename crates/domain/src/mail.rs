//! Mail (the notifications issue): what Gatehouse sends, queued in the outbox with the
//! change that caused it and sent by the dispatcher over SMTP. The texts are in
//! [`crate::templates`].

use chrono::{DateTime, Utc};

/// Why a mail is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    /// To an admin: users wait for approval (at most one per admin per interval).
    AdminDigest,
    /// To an applicant: their registration was approved or rejected.
    Decision,
    /// To an invitation's email: the code and the link.
    Invitation,
    /// From `gatehouse mail test` (sent at once, never queued).
    Test,
    /// To a user who forgot their password: the code that sets a new one.
    PasswordReset,
    /// To a user who registered: the code that verifies the address.
    EmailVerification,
}

impl MailKind {
    /// The name in storage and logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AdminDigest => "admin_digest",
            Self::Decision => "decision",
            Self::Invitation => "invitation",
            Self::Test => "test",
            Self::PasswordReset => "password_reset",
            Self::EmailVerification => "email_verification",
        }
    }

    /// The kind named `name`, if any.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::AdminDigest,
            Self::Decision,
            Self::Invitation,
            Self::Test,
            Self::PasswordReset,
            Self::EmailVerification,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }
}

/// A mail to queue with the change that causes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMail {
    /// Why.
    pub kind: MailKind,
    /// The recipient's address.
    pub to: String,
    /// The subject: says what happened.
    pub subject: String,
    /// Plain UTF-8 text.
    pub body: String,
    /// When it was queued (due at once).
    pub at: DateTime<Utc>,
}

/// A mail claimed by a dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueMail {
    /// The mail.
    pub id: i64,
    /// Why.
    pub kind: MailKind,
    /// The recipient's address.
    pub to: String,
    /// The subject.
    pub subject: String,
    /// The text.
    pub body: String,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// How Gatehouse mails, when a mailer is configured (`GATEHOUSE_SMTP_URL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailPolicy {
    /// The console's address, for links (`GATEHOUSE_PUBLIC_URL`).
    pub public_url: Option<String>,
    /// At most one digest per admin per this long (`GATEHOUSE_ADMIN_DIGEST_INTERVAL`).
    pub digest_interval: chrono::Duration,
}

/// The setting naming when the last admin digest was queued (and whom it saw: see
/// `UserService::queue_admin_digest`).
pub const DIGEST_SETTING: &str = "admin_digest_queued_at";
