//! Self-service recovery and verified emails (the recovery issue, "Account recovery and
//! email verification" in API.md): a forgotten password is reset with a one-time code sent
//! by mail, and an address is verified the same way.
//!
//! - Every route needs a mailer ([`Error::NotEnabled`] without one) and counts against the
//!   client address's hourly limit of registrations ([`CounterScope::RecoveryAddress`],
//!   the same limit as registrations, counted apart).
//! - Asking for a code answers the same whether or not the account exists: the code is
//!   made either way, and the count, the lookup and (for an account that may have one) the
//!   code and its mail are one write transaction; the mail goes out through the outbox,
//!   never inline.
//! - A wrong code, an unknown email, a spent, expired or dead code: one answer,
//!   [`Error::InvalidCode`].

use chrono::{DateTime, Duration, Utc};

use super::{audit, raise, set_password, throttled, Origin, UserService, RAISED};
use crate::{
    address_key, templates, AuditAction, CodePurpose, CounterScope, Email, Error, MailKind,
    MailPolicy, NewCode, NewMail, OneTimeCode, Password, PasswordHash, User, UserId, UserRepo,
    UserStatus, UserStoreExt, MAX_CODES_PER_HOUR, VERIFICATION_TTL,
};

/// How recovery and verification behave (`GATEHOUSE_RESET_CODE_TTL`,
/// `GATEHOUSE_REQUIRE_VERIFIED_EMAIL`, `GATEHOUSE_AUTO_APPROVE_DOMAINS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPolicy {
    /// How long a password reset code lives.
    pub reset_code_ttl: Duration,
    /// Whether an unverified user's login is refused (`email_unverified`).
    pub require_verified_email: bool,
    /// Domains (lower case) whose self-registered users are approved on verifying.
    pub auto_approve_domains: Vec<String>,
}

impl RecoveryPolicy {
    /// `GATEHOUSE_RESET_CODE_TTL`'s default.
    pub const DEFAULT_RESET_CODE_TTL: Duration = Duration::minutes(15);
}

impl Default for RecoveryPolicy {
    fn default() -> Self {
        Self {
            reset_code_ttl: Self::DEFAULT_RESET_CODE_TTL,
            require_verified_email: false,
            auto_approve_domains: Vec::new(),
        }
    }
}

/// An id no user has (ids count up from 1), for the lookups an unknown email makes.
const NOBODY: UserId = UserId::MAX;

/// Why recovery answers 404 without a mailer.
const NO_MAILER: &str =
    "Recovery and email verification need a mailer: GATEHOUSE_SMTP_URL is not set";

impl UserService {
    /// The same, recovering and verifying as `policy` says.
    #[must_use]
    pub fn with_recovery(mut self, policy: RecoveryPolicy) -> Self {
        self.recovery = policy;
        self
    }

    /// How recovery behaves.
    #[must_use]
    pub fn recovery(&self) -> &RecoveryPolicy {
        &self.recovery
    }

    /// Whether the recovery routes work (a mailer is configured).
    #[must_use]
    pub fn recovery_enabled(&self) -> bool {
        self.mail.is_some()
    }

    fn mail_policy(&self) -> Result<&MailPolicy, Error> {
        self.mail.as_ref().ok_or(Error::NotEnabled(NO_MAILER))
    }

    /// `POST /password/forgot`: for a registered account that is not disabled, a reset
    /// code goes by mail (at most [`MAX_CODES_PER_HOUR`] an hour; beyond that, silently
    /// none). Answers the same for any well-formed email.
    ///
    /// # Errors
    /// [`Error::NotEnabled`], [`Error::Throttled`]; store failures.
    pub fn forgot_password(&self, email: &Email, origin: &Origin) -> Result<(), Error> {
        self.send_code(email, CodePurpose::PasswordReset, origin)
    }

    /// `POST /email/verify/resend`: for a registered, unverified account that is not
    /// disabled, a new verification code goes by mail (the same cap). Answers the same for
    /// any well-formed email.
    ///
    /// # Errors
    /// [`Error::NotEnabled`], [`Error::Throttled`]; store failures.
    pub fn resend_verification(&self, email: &Email, origin: &Origin) -> Result<(), Error> {
        self.send_code(email, CodePurpose::EmailVerification, origin)
    }

    fn send_code(&self, email: &Email, purpose: CodePurpose, origin: &Origin) -> Result<(), Error> {
        let mail = self.mail_policy()?;
        // Made whether or not it is sent: the answer takes the same work either way.
        let code = OneTimeCode::generate()?;
        let now = crate::now();
        self.write_raising(|repo| {
            if let Err(refused) = self.count_recovery(repo, origin, now)? {
                return Ok(Err(refused));
            }
            let user = repo.find_by_email(email)?.filter(|user| {
                user.status != UserStatus::Disabled
                    && (purpose == CodePurpose::PasswordReset || !user.email_verified)
            });
            match user {
                Some(user) => {
                    self.queue_code(repo, &user, purpose, &code, now, mail)?;
                }
                // The same statements as an account's hourly count, so that the answer
                // takes as many round trips whether or not the account exists.
                None => {
                    repo.count_codes_since(NOBODY, purpose, now - Duration::hours(1))?;
                }
            }
            Ok(Ok(()))
        })?
    }

    /// Counts a recovery request against the client address's hourly limit; the inner
    /// error is the refusal (whose count commits).
    fn count_recovery(
        &self,
        repo: &mut dyn UserRepo,
        origin: &Origin,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Error>, Error> {
        let Some(key) = origin.address.as_deref().map(address_key) else {
            return Ok(Ok(()));
        };
        let counter = repo.counter(CounterScope::RecoveryAddress, &key)?;
        match self.throttle.register_attempt(counter, now) {
            Ok(Some(counter)) => {
                repo.save_counter(CounterScope::RecoveryAddress, &key, &counter)?;
                Ok(Ok(()))
            }
            Ok(None) => Ok(Ok(())),
            Err(refused) => Ok(Err(throttled(refused))),
        }
    }

    /// Stores `code` for `user` and queues its mail, unless the user was sent
    /// [`MAX_CODES_PER_HOUR`] of `purpose` within the hour. Returns whether it was.
    fn queue_code(
        &self,
        repo: &mut dyn UserRepo,
        user: &User,
        purpose: CodePurpose,
        code: &OneTimeCode,
        now: DateTime<Utc>,
        mail: &MailPolicy,
    ) -> Result<bool, Error> {
        if repo.count_codes_since(user.id, purpose, now - Duration::hours(1))? >= MAX_CODES_PER_HOUR
        {
            return Ok(false);
        }
        let (ttl, kind, text) = match purpose {
            CodePurpose::PasswordReset => (
                self.recovery.reset_code_ttl,
                MailKind::PasswordReset,
                templates::password_reset(
                    code,
                    &in_words(self.recovery.reset_code_ttl),
                    mail.public_url.as_deref(),
                ),
            ),
            CodePurpose::EmailVerification => (
                VERIFICATION_TTL,
                MailKind::EmailVerification,
                templates::email_verification(code, mail.public_url.as_deref()),
            ),
        };
        repo.insert_code(&NewCode {
            user_id: user.id,
            purpose,
            code_hash: code.hash(user.id, purpose),
            created_at: now,
            expires_at: now + ttl,
        })?;
        repo.append_mail(&NewMail {
            kind,
            to: user.email.as_str().to_owned(),
            subject: text.subject,
            body: text.body,
            at: now,
        })?;
        RAISED.with(|raised| raised.set(true));
        Ok(true)
    }

    /// Sends a freshly registered user their verification code, in the registration's
    /// transaction (with a mailer, for an unverified address).
    pub(super) fn verify_new_user(
        &self,
        repo: &mut dyn UserRepo,
        user: &User,
    ) -> Result<(), Error> {
        let Some(mail) = &self.mail else {
            return Ok(());
        };
        if user.email_verified {
            return Ok(());
        }
        let code = OneTimeCode::generate()?;
        self.queue_code(
            repo,
            user,
            CodePurpose::EmailVerification,
            &code,
            crate::now(),
            mail,
        )
        .map(|_| ())
    }

    /// `POST /password/reset`: with a live reset code of the account, sets `new` as its
    /// password, ends every session of the user and audits `password_recovered`
    /// ([`begin_password_recovery`](Self::begin_password_recovery), the hash, then
    /// [`finish_password_recovery`](Self::finish_password_recovery)).
    ///
    /// # Errors
    /// [`Error::InvalidCode`] (wrong, spent, expired or dead code; unknown or disabled
    /// account; malformed email or code), [`Error::NotEnabled`], [`Error::Throttled`];
    /// store failures.
    pub fn reset_password_with_code(
        &self,
        email: &str,
        code: &str,
        new: &Password,
        origin: &Origin,
    ) -> Result<(), Error> {
        let user = self.begin_password_recovery(email, code, origin)?;
        let password_hash = self.hash_password(new)?;
        self.finish_password_recovery(user, &password_hash, origin)
    }

    /// The first step of a recovery: counts the request against the address, and checks
    /// and spends the code (a short write, no hashing: a wrong code costs none). Returns
    /// whose it was.
    ///
    /// # Errors
    /// As [`reset_password_with_code`](Self::reset_password_with_code).
    pub fn begin_password_recovery(
        &self,
        email: &str,
        code: &str,
        origin: &Origin,
    ) -> Result<UserId, Error> {
        self.mail_policy()?;
        let now = crate::now();
        let email = Email::parse(email).ok();
        let code = OneTimeCode::presented(code);
        self.store.write_with(|repo| {
            if let Err(refused) = self.count_recovery(repo, origin, now)? {
                return Ok(Err(refused));
            }
            Ok(spend(
                repo,
                email.as_ref(),
                code.as_ref(),
                CodePurpose::PasswordReset,
                now,
            )?
            .map(|user| user.id)
            .ok_or(Error::InvalidCode))
        })?
    }

    /// The last step: stores the new hash, ends every session of the user and audits
    /// `password_recovered` (unless the account was disabled meanwhile).
    ///
    /// # Errors
    /// [`Error::InvalidCode`] for an account gone or disabled since its code was spent;
    /// store failures.
    pub fn finish_password_recovery(
        &self,
        user: UserId,
        password_hash: &PasswordHash,
        origin: &Origin,
    ) -> Result<(), Error> {
        self.write_raising(|repo| {
            let Some(user) = repo
                .find_by_id(user)?
                .filter(|found| found.status != UserStatus::Disabled)
            else {
                return Err(Error::InvalidCode);
            };
            let user = set_password(repo, user, password_hash)?;
            repo.append_audit(&audit(
                AuditAction::PasswordRecovered,
                Some(user.id),
                Some(user.id),
                origin,
                None,
            ))?;
            Ok(())
        })
    }

    /// `gatehouse users verify-email`: the operator marks `target`'s email verified, as
    /// a code would (auto-approval included).
    ///
    /// # Errors
    /// [`Error::UserNotFound`]; store failures.
    pub fn mark_email_verified(&self, target: UserId) -> Result<User, Error> {
        self.write_raising(|repo| {
            let user = repo.find_by_id(target)?.ok_or(Error::UserNotFound)?;
            self.mark_verified(repo, user, None, crate::now())
        })
    }

    /// `POST /email/verify`: with a live verification code of the account, marks its email
    /// verified (audit `email_verified`); a pending self-registered user whose domain is
    /// auto-approved is approved at once (`approved_by` none, audit `user_auto_approved`,
    /// the `user.approved` event and the decision mail).
    ///
    /// # Errors
    /// As [`reset_password_with_code`](Self::reset_password_with_code).
    pub fn verify_email(&self, email: &str, code: &str, origin: &Origin) -> Result<(), Error> {
        self.mail_policy()?;
        let now = crate::now();
        let email = Email::parse(email).ok();
        let code = OneTimeCode::presented(code);
        self.write_raising(|repo| {
            if let Err(refused) = self.count_recovery(repo, origin, now)? {
                return Ok(Err(refused));
            }
            let Some(user) = spend(
                repo,
                email.as_ref(),
                code.as_ref(),
                CodePurpose::EmailVerification,
                now,
            )?
            else {
                return Ok(Err(Error::InvalidCode));
            };
            self.mark_verified(repo, user, Some(origin), now)?;
            Ok(Ok(()))
        })?
    }

    /// Marks `user`'s email verified in `repo` (see [`verify_email`](Self::verify_email));
    /// `origin` is `None` for the operator's CLI.
    pub(super) fn mark_verified(
        &self,
        repo: &mut dyn UserRepo,
        user: User,
        origin: Option<&Origin>,
        now: DateTime<Utc>,
    ) -> Result<User, Error> {
        if user.email_verified {
            return Ok(user);
        }
        // The operator's CLI acts as nobody.
        let actor = origin.map(|_| user.id);
        let origin = origin.cloned().unwrap_or_default();
        let before = user.clone();
        let mut after = user;
        after.email_verified = true;
        let auto = after.status == UserStatus::Pending
            && self.recovery.auto_approve_domains.iter().any(|domain| {
                after
                    .email
                    .as_str()
                    .rsplit_once('@')
                    .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain))
            });
        if auto {
            after.status = UserStatus::Approved;
            after.approved_at = Some(now);
            after.approved_by = None;
        }
        let after = repo.update(&after)?;
        repo.append_audit(&audit(
            AuditAction::EmailVerified,
            actor,
            Some(after.id),
            &origin,
            None,
        ))?;
        if auto {
            repo.append_audit(&audit(
                AuditAction::UserAutoApproved,
                None,
                Some(after.id),
                &origin,
                None,
            ))?;
            raise(repo, AuditAction::UserAutoApproved, &after, None)?;
            self.mail_applicant(repo, &before, &after)?;
        } else if self.recovery.require_verified_email && after.status == UserStatus::Pending {
            // Admins hear of a pending user once verified: the digest may be due.
            RAISED.with(|raised| raised.set(true));
        }
        Ok(after)
    }
}

/// The user whose live code of `purpose` `code` is, spent (with their other live codes of
/// it); `None` for anything else, a wrong try counted on the account's live codes.
fn spend(
    repo: &mut dyn UserRepo,
    email: Option<&Email>,
    code: Option<&OneTimeCode>,
    purpose: CodePurpose,
    now: DateTime<Utc>,
) -> Result<Option<User>, Error> {
    let Some(email) = email else {
        return Ok(None);
    };
    let Some(user) = repo
        .find_by_email(email)?
        .filter(|user| user.status != UserStatus::Disabled)
    else {
        return Ok(None);
    };
    // A malformed code is a wrong try like any other.
    let hash = code.map_or_else(String::new, |code| code.hash(user.id, purpose));
    Ok(repo
        .spend_code(user.id, purpose, &hash, now)?
        .then_some(user))
}

/// A lifetime in words for a mail ("15 minutes", "1 hour", "90 seconds").
fn in_words(ttl: Duration) -> String {
    let seconds = ttl.num_seconds();
    let (n, unit) = if seconds % 3600 == 0 {
        (seconds / 3600, "hour")
    } else if seconds % 60 == 0 {
        (seconds / 60, "minute")
    } else {
        (seconds, "second")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_read_as_words() {
        assert_eq!(in_words(Duration::minutes(15)), "15 minutes");
        assert_eq!(in_words(Duration::hours(1)), "1 hour");
        assert_eq!(in_words(Duration::hours(24)), "24 hours");
        assert_eq!(in_words(Duration::seconds(90)), "90 seconds");
    }
}
