//! Every mail Gatehouse sends, as plain UTF-8 text: one function per mail, its subject
//! saying what happened. Change the wording here; nothing else builds mail text.
//!
//! Links are made from `GATEHOUSE_PUBLIC_URL` (the console's address) when it is set;
//! without it the mails say what to do without a link.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::{Invitation, InvitationCode, OneTimeCode, User, UserStatus};

/// A subject and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailText {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// To an admin: `waiting` users registered since the last digest and wait for approval
/// (`total` wait in all).
#[must_use]
pub fn admin_digest(waiting: &[User], total: u64, public_url: Option<&str>) -> MailText {
    let subject = match waiting {
        [one] => format!("{} is waiting for approval", one.email),
        _ => format!("{} new users are waiting for approval", waiting.len()),
    };
    let mut body = String::from("New registrations are waiting for an admin's decision:\n\n");
    for user in waiting {
        let _ = write!(
            body,
            "  - {} (registered {})",
            user.email,
            time(user.created_at)
        );
        if let Some(reason) = &user.reason {
            let reason: String = reason.split_whitespace().collect::<Vec<_>>().join(" ");
            let _ = write!(body, "\n    \"{reason}\"");
        }
        body.push('\n');
    }
    let _ = write!(body, "\n{total} in all wait for approval.\n");
    match public_url {
        Some(base) => {
            let _ = writeln!(body, "Review them: {base}/#/pending");
        }
        None => body.push_str("Review them in the Gatehouse console or with `gatehouse users list --status pending`.\n"),
    }
    body.push_str("\nYou get this because you are an admin of Gatehouse; at most one such mail is sent per interval.\n");
    MailText { subject, body }
}

/// To an applicant whose registration was just approved or rejected; `None` for any
/// other status.
#[must_use]
pub fn decision(user: &User, public_url: Option<&str>) -> Option<MailText> {
    let note = user
        .decision_note
        .as_deref()
        .map(|note| format!("\nThe admin's note:\n\n  {}\n", note.replace('\n', "\n  ")))
        .unwrap_or_default();
    match user.status {
        UserStatus::Approved => {
            let sign_in = match public_url {
                Some(base) => format!("You can sign in now: {base}/\n"),
                None => "You can sign in now.\n".to_owned(),
            };
            Some(MailText {
                subject: "Your registration was approved".to_owned(),
                body: format!(
                    "Hello,\n\nyour registration as {} was approved.\n{note}\n{sign_in}",
                    user.email
                ),
            })
        }
        UserStatus::Rejected => Some(MailText {
            subject: "Your registration was not approved".to_owned(),
            body: format!(
                "Hello,\n\nyour registration as {} was not approved.\n{note}\nIf you think this is a mistake, contact the people who run this service.\n",
                user.email
            ),
        }),
        _ => None,
    }
}

/// To the email an invitation is bound to: the code (shown nowhere else but to the admin
/// who made it) and, with a public URL, the link that fills it in.
#[must_use]
pub fn invitation(invitation: &Invitation, code: &InvitationCode, link: Option<&str>) -> MailText {
    let mut body = String::from("Hello,\n\nyou are invited to register");
    if invitation.is_admin {
        body.push_str(" as an admin");
    }
    body.push_str(".\n\n");
    if let Some(note) = &invitation.note {
        let _ = write!(
            body,
            "A note from who invited you:\n\n  {}\n\n",
            note.replace('\n', "\n  ")
        );
    }
    if let Some(link) = link {
        let _ = write!(body, "Register here: {link}\n\n");
    }
    let _ = write!(
        body,
        "Your invitation code: {}\n\nIt works for this address only and expires {}.\n",
        code.expose(),
        time(invitation.expires_at)
    );
    MailText {
        subject: "You are invited to register".to_owned(),
        body,
    }
}

/// To a user who asked for a password reset: the code, and how long it lives.
#[must_use]
pub fn password_reset(code: &OneTimeCode, valid_for: &str, public_url: Option<&str>) -> MailText {
    let where_ = match public_url {
        Some(base) => format!("on the sign-in page ({base}/), under \"Forgot password?\""),
        None => "where you asked for it".to_owned(),
    };
    MailText {
        subject: "Your password reset code".to_owned(),
        body: format!(
            "Hello,\n\nsomeone (we hope you) asked to set a new password for this address.\n\nYour code: {}\n\nEnter it {where_} with your new password. It works once and expires in {valid_for}.\nSetting a new password signs you out everywhere.\n\nIf you did not ask for this, ignore this mail: your password stays as it is.\n",
            code.display()
        ),
    }
}

/// To a user who registered: the code that verifies the address.
#[must_use]
pub fn email_verification(code: &OneTimeCode, public_url: Option<&str>) -> MailText {
    let where_ = match public_url {
        Some(base) => {
            format!("in the console ({base}/) after you register, or on its sign-in page")
        }
        None => "where you registered".to_owned(),
    };
    MailText {
        subject: "Verify your email address".to_owned(),
        body: format!(
            "Hello,\n\nplease confirm that this address is yours.\n\nYour code: {}\n\nEnter it {where_}. It works once and expires in 24 hours.\n\nIf you did not register, ignore this mail.\n",
            code.display()
        ),
    }
}

/// `gatehouse mail test`: proves the mailer works.
#[must_use]
pub fn test(host: &str) -> MailText {
    MailText {
        subject: "Gatehouse mail test".to_owned(),
        body: format!(
            "This is a test mail from Gatehouse ({host}).\n\nIf you can read it, mail works: admins will hear about new registrations and applicants about decisions.\n"
        ),
    }
}
