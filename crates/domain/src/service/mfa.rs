//! Multi-factor sign-in (the MFA issue, "Multi-factor sign-in" in API.md): TOTP with
//! recovery codes, the login's second step, the admin's reset, and the rule that admins
//! must have a second factor when the service says so.
//!
//! - Enrolment, turning TOTP off and new recovery codes need the current password: the
//!   attempt is counted on the account as a password change is
//!   ([`UserService::begin_password_change`]), checked by bcrypt, then the change is made.
//! - A TOTP secret is kept sealed ([`crate::MfaKeys`]); a code is accepted at most once
//!   (the last step used is kept, and moved on by one conditional update).
//! - The second step of a login costs no bcrypt: one write transaction counts the attempt
//!   on the account (429 beyond the limits, like logins), checks the code, and either
//!   counts a wrong try on the `mfa_token` or spends it and starts the session.

use chrono::{DateTime, Utc};

use super::{audit, audit_throttled, still_current, throttled, Origin, Session, UserService};
use crate::totp::TotpSecret;
use crate::{
    rules, Actor, AuditAction, ChallengePurpose, CounterScope, DeviceToken, Error, LoginSuccess,
    MfaKeys, MfaToken, NewChallenge, PasswordChange, RecoveryCode, RefreshToken, StoredTotp, User,
    UserId, UserRepo, UserStoreExt, MFA_TOKEN_TTL, RECOVERY_CODE_COUNT,
};

/// How the second factor behaves.
#[derive(Debug, Clone)]
pub struct MfaPolicy {
    /// The keys derived from the service's secret material.
    pub keys: MfaKeys,
    /// The issuer authenticator apps show (`GATEHOUSE_PUBLIC_URL`'s host, or "Gatehouse").
    pub issuer: String,
    /// `GATEHOUSE_REQUIRE_MFA_FOR_ADMINS`.
    pub require_for_admins: bool,
}

/// A TOTP enrolment begun: what the user puts into their authenticator app.
#[derive(Debug, Clone)]
pub struct TotpEnrolment {
    /// The secret in base 32.
    pub secret: String,
    /// The `otpauth://` URI (for a QR code).
    pub otpauth_uri: String,
}

/// A login whose password was right and that now waits for its second step.
#[derive(Debug, Clone)]
pub struct MfaChallenge {
    /// The token that names it (single-use).
    pub token: MfaToken,
    /// The second factors it takes (`totp`, `recovery_code`).
    pub methods: Vec<&'static str>,
    /// Seconds it lives.
    pub expires_in: u64,
}

/// What a login's password step leads to.
#[derive(Debug, Clone)]
pub enum LoginStep {
    /// Signed in.
    Done(LoginSuccess),
    /// The second step is due.
    MfaRequired(MfaChallenge),
}

impl LoginStep {
    /// The session, or [`Error::MfaRequired`] when the second step is due.
    ///
    /// # Errors
    /// [`Error::MfaRequired`].
    pub fn done(self) -> Result<LoginSuccess, Error> {
        match self {
            Self::Done(success) => Ok(success),
            Self::MfaRequired(_) => Err(Error::MfaRequired),
        }
    }
}

/// Which second factor a code was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Factor {
    Totp,
    RecoveryCode,
}

const NO_KEYS: &str = "Multi-factor sign-in needs the service's secret material";

impl UserService {
    /// The same, with multi-factor sign-in as `policy` says.
    #[must_use]
    pub fn with_mfa(mut self, policy: MfaPolicy) -> Self {
        self.mfa = Some(policy);
        self
    }

    fn mfa_policy(&self) -> Result<&MfaPolicy, Error> {
        self.mfa.as_ref().ok_or(Error::NotEnabled(NO_KEYS))
    }

    /// `GATEHOUSE_REQUIRE_MFA_FOR_ADMINS`: whether `user`, an admin, may use the admin
    /// routes (an admin without a second factor may only enrol).
    ///
    /// # Errors
    /// [`Error::MfaEnrollmentRequired`].
    pub fn ensure_admin_may_act(&self, user: &User) -> Result<(), Error> {
        let required = self.mfa.as_ref().is_some_and(|mfa| mfa.require_for_admins);
        if required && user.is_admin && !user.mfa_enabled {
            return Err(Error::MfaEnrollmentRequired);
        }
        Ok(())
    }

    /// Verifies the current password of a password-gated MFA change (bcrypt, no store
    /// access; the attempt was counted by [`begin_password_change`](Self::begin_password_change)).
    ///
    /// # Errors
    /// Hashing failures.
    pub fn check_current_password(
        &self,
        change: &PasswordChange,
        current: &str,
    ) -> Result<bool, Error> {
        self.hasher.verify(current, &change.current_hash)
    }

    /// Runs `action` for the change's user once their password was verified (the counted
    /// guess forgiven, in the action's transaction); a wrong password is recorded as a
    /// failure and refused. `action` must refuse before it writes.
    fn with_current_password<T>(
        &self,
        change: PasswordChange,
        verified: bool,
        mut action: impl FnMut(&mut dyn UserRepo, User, &Origin) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let PasswordChange {
            session,
            key,
            origin,
            ..
        } = change;
        let id = Some(session.user.id);
        if !verified {
            let entry = audit(
                AuditAction::LoginFailed,
                id,
                id,
                &origin,
                Some("wrong current password".into()),
            );
            self.store.write_with(|repo| repo.append_audit(&entry))?;
            return Err(Error::WrongCurrentPassword);
        }
        self.write_raising(|repo| {
            let user = still_current(repo, &session)?;
            self.forgive_guess(repo, CounterScope::LoginAccount, &key, &origin)?;
            action(repo, user, &origin)
        })
    }

    /// `POST /me/mfa/totp`, after the password check: a new pending TOTP secret (replacing
    /// a pending one), to be confirmed with a first code.
    ///
    /// # Errors
    /// [`Error::WrongCurrentPassword`], [`Error::MfaAlreadyEnabled`],
    /// [`Error::Unauthenticated`]; store failures.
    pub fn begin_totp_enrolment(
        &self,
        change: PasswordChange,
        verified: bool,
    ) -> Result<TotpEnrolment, Error> {
        let mfa = self.mfa_policy()?;
        let secret = TotpSecret::generate()?;
        self.with_current_password(change, verified, |repo, user, _| {
            if totp_on(repo, user.id)? {
                return Err(Error::MfaAlreadyEnabled);
            }
            repo.put_totp(&StoredTotp {
                user_id: user.id,
                secret: mfa.keys.seal_totp(user.id, &secret)?,
                confirmed_at: None,
                last_step: None,
                created_at: crate::now(),
            })?;
            Ok(TotpEnrolment {
                secret: secret.base32(),
                otpauth_uri: secret.otpauth_uri(&mfa.issuer, user.email.as_str()),
            })
        })
    }

    /// `POST /me/mfa/totp/confirm`: the first code from the authenticator app turns TOTP
    /// on (`mfa_enabled` true, audit `mfa_enabled`) and makes the first recovery codes,
    /// returned for showing once.
    ///
    /// # Errors
    /// [`Error::InvalidCode`] (a wrong code), [`Error::MfaNotEnabled`] (nothing pending),
    /// [`Error::MfaAlreadyEnabled`], [`Error::Unauthenticated`]; store failures.
    pub fn confirm_totp(
        &self,
        session: &Session,
        code: &str,
        origin: &Origin,
    ) -> Result<Vec<String>, Error> {
        let mfa = self.mfa_policy()?;
        let codes = recovery_codes()?;
        let now = crate::now();
        self.write_raising(|repo| {
            let mut user = still_current(repo, session)?;
            let totp = match repo.totp(user.id)? {
                None => return Err(Error::MfaNotEnabled),
                Some(totp) if totp.confirmed_at.is_some() => return Err(Error::MfaAlreadyEnabled),
                Some(totp) => totp,
            };
            let secret = mfa.keys.open_totp(user.id, &totp.secret)?;
            let step = secret.verify(code, now, None).ok_or(Error::InvalidCode)?;
            if !repo.confirm_totp(user.id, step, now)? {
                return Err(Error::MfaAlreadyEnabled);
            }
            store_recovery_codes(repo, &mfa.keys, user.id, &codes, now)?;
            if !user.mfa_enabled {
                user.mfa_enabled = true;
                repo.update(&user)?;
            }
            repo.append_audit(&audit(
                AuditAction::MfaEnabled,
                Some(user.id),
                Some(user.id),
                origin,
                Some("totp".into()),
            ))?;
            Ok(())
        })?;
        Ok(codes.iter().map(RecoveryCode::display).collect())
    }

    /// `DELETE /me/mfa/totp`, after the password check: with a current code (TOTP or
    /// recovery code), turns TOTP off and deletes the recovery codes (audit
    /// `mfa_disabled`); `mfa_enabled` stays true while the user has a passkey.
    ///
    /// # Errors
    /// [`Error::WrongCurrentPassword`], [`Error::InvalidCode`], [`Error::MfaNotEnabled`],
    /// [`Error::Unauthenticated`]; store failures.
    pub fn disable_totp(
        &self,
        change: PasswordChange,
        verified: bool,
        code: &str,
    ) -> Result<(), Error> {
        let mfa = self.mfa_policy()?;
        let now = crate::now();
        self.with_current_password(change, verified, |repo, mut user, origin| {
            let Some(totp) = repo.totp(user.id)?.filter(|t| t.confirmed_at.is_some()) else {
                return Err(Error::MfaNotEnabled);
            };
            if second_factor(repo, &mfa.keys, &totp, code, now)?.is_none() {
                return Err(Error::InvalidCode);
            }
            repo.delete_totp(user.id)?;
            let enabled = self.has_other_factor(repo, user.id)?;
            if user.mfa_enabled != enabled {
                user.mfa_enabled = enabled;
                repo.update(&user)?;
            }
            repo.append_audit(&audit(
                AuditAction::MfaDisabled,
                Some(user.id),
                Some(user.id),
                origin,
                Some("totp".into()),
            ))
        })
    }

    /// `POST /me/mfa/recovery-codes`, after the password check: a new set of recovery
    /// codes; the old set is dead.
    ///
    /// # Errors
    /// [`Error::WrongCurrentPassword`], [`Error::MfaNotEnabled`],
    /// [`Error::Unauthenticated`]; store failures.
    pub fn renew_recovery_codes(
        &self,
        change: PasswordChange,
        verified: bool,
    ) -> Result<Vec<String>, Error> {
        let mfa = self.mfa_policy()?;
        let codes = recovery_codes()?;
        let now = crate::now();
        self.with_current_password(change, verified, |repo, user, _| {
            if !totp_on(repo, user.id)? {
                return Err(Error::MfaNotEnabled);
            }
            store_recovery_codes(repo, &mfa.keys, user.id, &codes, now)
        })?;
        Ok(codes.iter().map(RecoveryCode::display).collect())
    }

    /// How many of the signed-in user's recovery codes are unspent (`None` without TOTP).
    ///
    /// # Errors
    /// [`Error::Unauthenticated`]; store failures.
    pub fn recovery_codes_left(&self, session: &Session) -> Result<Option<u64>, Error> {
        self.store.read_with(|repo| {
            let user = still_current(repo, session)?;
            if totp_on(repo, user.id)? {
                repo.count_recovery_codes(user.id).map(Some)
            } else {
                Ok(None)
            }
        })
    }

    /// Whether `user` keeps a second factor besides TOTP: a passkey.
    #[allow(clippy::unused_self)]
    fn has_other_factor(&self, repo: &mut dyn UserRepo, user: UserId) -> Result<bool, Error> {
        super::passkeys::has_passkey(repo, user)
    }

    /// In a login's transaction, once the password was right: the second step it needs,
    /// if `user` has TOTP on (a challenge stored, named by the returned token).
    pub(super) fn mfa_challenge(
        &self,
        repo: &mut dyn UserRepo,
        user: &User,
    ) -> Result<Option<MfaChallenge>, Error> {
        if !user.mfa_enabled {
            return Ok(None);
        }
        if !totp_on(repo, user.id)? {
            return Ok(None);
        }
        let token = MfaToken::generate()?;
        let now = crate::now();
        repo.insert_challenge(&NewChallenge {
            token_hash: token.hash(),
            purpose: ChallengePurpose::LoginMfa,
            user_id: Some(user.id),
            state: None,
            created_at: now,
            expires_at: now + MFA_TOKEN_TTL,
        })?;
        Ok(Some(MfaChallenge {
            token,
            methods: vec!["totp", "recovery_code"],
            expires_in: u64::try_from(MFA_TOKEN_TTL.num_seconds()).unwrap_or(300),
        }))
    }

    /// `POST /login/mfa`: the second step of a login, with a TOTP code or a recovery code
    /// (no bcrypt). Counted on the account like a login (429 beyond the limits); a wrong
    /// code counts a wrong try on the token (dead after 5) and is audited
    /// `login_mfa_failed`; the right one spends the token and starts the session.
    ///
    /// # Errors
    /// [`Error::InvalidMfaCode`] (a wrong or used code; an unknown, spent, expired or dead
    /// token), [`Error::Throttled`], [`Error::AccountDisabled`] and the other refusals of
    /// a login when the account changed meanwhile; store failures.
    pub fn finish_login_mfa(
        &self,
        token: &str,
        code: &str,
        origin: &Origin,
    ) -> Result<LoginSuccess, Error> {
        let mfa = self.mfa_policy()?;
        let token = MfaToken::presented(token);
        let device = DeviceToken::generate()?;
        let refresh = RefreshToken::generate()?;
        let now = crate::now();
        let (user, session) = self.store.write_with(|repo| {
            let Some(challenge) =
                repo.find_challenge(&token.hash(), ChallengePurpose::LoginMfa, now)?
            else {
                return Ok(Err(Error::InvalidMfaCode));
            };
            let Some(user) = challenge
                .user_id
                .map(|id| repo.find_by_id(id))
                .transpose()?
                .flatten()
            else {
                return Ok(Err(Error::InvalidMfaCode));
            };
            let key = user.email.as_str().to_owned();
            let guess = match self.check_guess(repo, CounterScope::LoginAccount, &key, origin)? {
                Ok(guess) => guess,
                Err(refused) => {
                    audit_throttled(repo, Some(user.id), origin)?;
                    return Ok(Err(throttled(refused)));
                }
            };
            let factor = match repo.totp(user.id)?.filter(|t| t.confirmed_at.is_some()) {
                Some(totp) => second_factor(repo, &mfa.keys, &totp, code, now)?,
                None => None,
            };
            let Some(factor) = factor else {
                Self::count_guess(repo, &guess)?;
                repo.challenge_wrong_try(challenge.id)?;
                repo.append_audit(&audit(
                    AuditAction::LoginMfaFailed,
                    None,
                    Some(user.id),
                    origin,
                    Some("wrong code".into()),
                ))?;
                return Ok(Err(Error::InvalidMfaCode));
            };
            if !repo.spend_challenge(challenge.id, now)? {
                // Spent by a racing request: nothing of this one stays.
                return Err(Error::InvalidMfaCode);
            }
            // The account may have changed since its password was checked.
            rules::ensure_can_log_in(&user)?;
            // The earlier failures of the account are forgiven (the address's stay).
            repo.delete_counter(CounterScope::LoginAccount, &key)?;
            let detail = match factor {
                Factor::Totp => "second factor: totp",
                Factor::RecoveryCode => "second factor: recovery code",
            };
            let session = self.start_signed_in(repo, &user, origin, (&device, &refresh), detail)?;
            Ok(Ok((user, session)))
        })??;
        self.signed_in(&user, &session, refresh, device)
    }

    /// The end of a login that needs no more steps (a second factor's, a passkey's), in
    /// its transaction: the device token saved, `login_succeeded` audited with `detail`,
    /// the session started with `refresh`.
    pub(super) fn start_signed_in(
        &self,
        repo: &mut dyn UserRepo,
        user: &User,
        origin: &Origin,
        (device, refresh): (&DeviceToken, &RefreshToken),
        detail: &str,
    ) -> Result<crate::StoredSession, Error> {
        repo.save_device(&device.hash(), user.id, crate::now())?;
        repo.append_audit(&audit(
            AuditAction::LoginSucceeded,
            Some(user.id),
            Some(user.id),
            origin,
            Some(detail.to_owned()),
        ))?;
        self.start_session(repo, user.id, origin, refresh)
    }

    /// The answer of such a login, once its transaction committed.
    pub(super) fn signed_in(
        &self,
        user: &User,
        session: &crate::StoredSession,
        refresh: RefreshToken,
        device: DeviceToken,
    ) -> Result<LoginSuccess, Error> {
        Ok(LoginSuccess {
            tokens: self.session_tokens(user, session, refresh)?,
            device_token: device,
        })
    }

    /// `DELETE /users/{id}/mfa` and `gatehouse users reset-mfa`: removes every second
    /// factor of `target` (TOTP, recovery codes, passkeys), ends every session of theirs
    /// and audits `mfa_reset`. The lockout recovery: they sign in with their password
    /// alone, and enrol again.
    ///
    /// # Errors
    /// [`Error::UserNotFound`]; the actor's refusals; store failures.
    pub fn reset_mfa(&self, actor: Actor, target: UserId, origin: &Origin) -> Result<User, Error> {
        self.write_raising(|repo| {
            let admin = super::authorize(repo, actor)?;
            let mut user = repo.find_by_id(target)?.ok_or(Error::UserNotFound)?;
            repo.delete_mfa(user.id)?;
            if user.mfa_enabled {
                user.mfa_enabled = false;
                user = repo.update(&user)?;
            }
            let ended = repo.revoke_sessions(user.id, None, crate::now())?;
            repo.append_audit(&audit(
                AuditAction::MfaReset,
                admin,
                Some(user.id),
                origin,
                Some(super::sessions_detail(ended, "")),
            ))?;
            Ok(user)
        })
    }
}

/// A fresh set of recovery codes.
fn recovery_codes() -> Result<Vec<RecoveryCode>, Error> {
    (0..RECOVERY_CODE_COUNT)
        .map(|_| RecoveryCode::generate())
        .collect()
}

fn store_recovery_codes(
    repo: &mut dyn UserRepo,
    keys: &MfaKeys,
    user: UserId,
    codes: &[RecoveryCode],
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let hashes: Vec<String> = codes
        .iter()
        .map(|code| keys.recovery_code_hash(user, code))
        .collect();
    repo.replace_recovery_codes(user, &hashes, now)
}

/// Checks `code` against `totp` (a TOTP code, accepted once) or the user's recovery codes
/// (each spent once); which it was, or `None` for a wrong or used code.
fn second_factor(
    repo: &mut dyn UserRepo,
    keys: &MfaKeys,
    totp: &StoredTotp,
    code: &str,
    now: DateTime<Utc>,
) -> Result<Option<Factor>, Error> {
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() == crate::totp::DIGITS as usize && digits.bytes().all(|b| b.is_ascii_digit()) {
        let secret = keys.open_totp(totp.user_id, &totp.secret)?;
        let used = match secret.verify(&digits, now, totp.last_step) {
            Some(step) => repo.use_totp_step(totp.user_id, step)?,
            None => false,
        };
        return Ok(used.then_some(Factor::Totp));
    }
    let Some(code) = RecoveryCode::presented(code) else {
        return Ok(None);
    };
    let hash = keys.recovery_code_hash(totp.user_id, &code);
    Ok(repo
        .spend_recovery_code(totp.user_id, &hash, now)?
        .then_some(Factor::RecoveryCode))
}

/// Whether `user` has TOTP on (confirmed).
fn totp_on(repo: &mut dyn UserRepo, user: UserId) -> Result<bool, Error> {
    Ok(repo.totp(user)?.is_some_and(|t| t.confirmed_at.is_some()))
}
