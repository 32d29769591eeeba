use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

mod mfa;
mod passkeys;
mod recovery;
mod webhooks;

pub use mfa::{LoginStep, MfaChallenge, MfaPolicy, TotpEnrolment};
pub use passkeys::{PasskeyLogin, PasskeyRegistration};
pub use recovery::RecoveryPolicy;
pub use webhooks::WebhookRequest;

use crate::rules;
use crate::templates;
use crate::{
    address_key, ensure_may_self_register, AuditAction, AuditEntry, AuditQuery, BulkIds,
    CounterScope, Decision, DeviceToken, Email, Error, FreeText, Invitation, InvitationCode,
    InvitationQuery, Listing, NewAuditEntry, NewInvitation, NewSession, NewUser, Page, Password,
    PasswordHash, PasswordHasher, RefreshToken, RegistrationMode, SessionPolicy, SessionQuery,
    SessionState, SessionTokens, StoredSession, ThrottlePolicy, Throttled, TokenClaims,
    TokenService, User, UserChanges, UserId, UserQuery, UserRepo, UserStatus, UserStore,
    UserStoreExt, ValidInvitationRequest,
};
use crate::{DueMail, EventType, MailKind, MailPolicy, NewEvent, NewMail, DIGEST_SETTING};

/// How long a device token lasts without being used.
pub const DEVICE_MEMORY: chrono::Duration = chrono::Duration::days(180);

/// How long a settled delivery (delivered or failed) stays in the deliveries log after it
/// was written; a pending one stays until it settles.
pub const DELIVERY_MEMORY: chrono::Duration = chrono::Duration::days(30);

/// Audit entries deleted per transaction when pruning: on PostgreSQL and SQLite alike a
/// batch takes well under a second.
pub const AUDIT_PRUNE_BATCH: u64 = 10_000;

/// Within this long, repeated `login_throttled` entries for one account and address are
/// one entry with a count.
pub const THROTTLED_AUDIT_WINDOW: chrono::Duration = chrono::Duration::minutes(1);

/// Who asks for an admin action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in user, who must be an active admin at the moment the action commits.
    User(UserId),
    /// The operator at the command line, who has the database itself and needs no account;
    /// the rules still hold for them.
    Operator,
}

/// Where a request comes from, for throttling and the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client's address; `None` at the command line (no per-address limits then).
    pub address: Option<String>,
    /// A note for the audit log's `detail` (the command line writes `"cli"`).
    pub note: Option<String>,
    /// The client's `User-Agent`, cleaned ([`crate::clean_user_agent`]), for the session a
    /// login starts.
    pub user_agent: Option<String>,
}

impl Origin {
    /// A request from `address`.
    #[must_use]
    pub fn address(address: impl Into<String>) -> Self {
        Self {
            address: Some(address.into()),
            note: None,
            user_agent: None,
        }
    }

    /// The same, from a client that says it is `user_agent` (cleaned and bounded here).
    #[must_use]
    pub fn with_user_agent(mut self, user_agent: Option<&str>) -> Self {
        self.user_agent = user_agent.and_then(crate::clean_user_agent);
        self
    }
}

/// A user an admin or the operator creates directly.
#[derive(Debug, Clone)]
pub struct NewUserRequest {
    /// The new user's email.
    pub email: Email,
    /// Their initial password.
    pub password: Password,
    /// Whether they start as an admin.
    pub is_admin: bool,
    /// Their initial status (the API and the CLI default to approved).
    pub status: UserStatus,
}

/// How the operator names a user: by id or by email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserKey {
    /// By id.
    Id(UserId),
    /// By email.
    Email(Email),
}

impl std::str::FromStr for UserKey {
    type Err = String;

    /// A positive integer is an id; anything else must be an email address.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
            return raw
                .parse()
                .map(Self::Id)
                .map_err(|e: crate::InvalidUserId| e.to_string());
        }
        Email::parse(raw)
            .map(Self::Email)
            .map_err(|e| e.to_string())
    }
}

/// A verified token and the user it belongs to, as loaded for this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The user, fresh from the store.
    pub user: User,
    /// What the token says.
    pub claims: TokenClaims,
}

/// A login attempt that was counted and may now check its password.
#[derive(Debug, Clone)]
pub struct LoginAttempt {
    /// The counter the guess went on: the account's, or the device's.
    scope: CounterScope,
    key: String,
    user: Option<User>,
    origin: Origin,
    /// The device token presented, when it is one of this account's.
    device: Option<DeviceToken>,
}

/// A successful login.
#[derive(Debug, Clone)]
pub struct LoginSuccess {
    /// The new session's access and refresh tokens.
    pub tokens: SessionTokens,
    /// The device token to present at the account's next login.
    pub device_token: DeviceToken,
}

/// A password change whose attempt was counted, with the hash to check the current
/// password against (read inside that transaction, after any earlier reset).
#[derive(Debug, Clone)]
pub struct PasswordChange {
    session: Session,
    key: String,
    current_hash: PasswordHash,
    origin: Origin,
}

/// The use cases. Every method is synchronous and may block (database, bcrypt): call it
/// off any async executor. Each runs its reads, rule checks and writes in one unit of work
/// (login and password changes in two: the attempt is counted before the slow password
/// check, and its outcome recorded after). The use cases that hash also come in steps
/// (`begin_…`, the bcrypt step, `finish_…`), so that a server runs the database steps
/// where database work runs and only bcrypt where hashing runs; the one-call methods
/// (`login`, `register`, `change_password`, …) run the same steps in turn.
#[derive(Clone)]
pub struct UserService {
    store: Arc<dyn UserStore>,
    hasher: Arc<dyn PasswordHasher>,
    tokens: Arc<dyn TokenService>,
    throttle: ThrottlePolicy,
    audit_retention: Option<chrono::Duration>,
    registration: RegistrationMode,
    sessions: SessionPolicy,
    /// Called after a write that raised events committed (the dispatcher's wake-up).
    outbox_wake: Option<Arc<dyn Fn() + Send + Sync>>,
    /// How to mail, when a mailer is configured.
    mail: Option<MailPolicy>,
    /// How recovery and verification behave (with a mailer).
    recovery: RecoveryPolicy,
    /// How the second factor behaves (`None`: not set up, the MFA routes answer 404).
    mfa: Option<MfaPolicy>,
    /// The WebAuthn ceremonies (`None`: no relying party, the passkey routes answer 404).
    passkeys: Option<Arc<dyn crate::PasskeyCeremonies>>,
}

impl fmt::Debug for UserService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserService")
            .field("throttle", &self.throttle)
            .field("audit_retention", &self.audit_retention)
            .finish_non_exhaustive()
    }
}

/// The account key of a login attempt: the normalised email when it parses, else the
/// trimmed, lower-cased text (bounded), so that junk is throttled like anything else.
/// Control characters become U+FFFD: no email holds one, and some stores (PostgreSQL)
/// cannot keep a NUL in text at all.
fn account_key(raw: &str) -> String {
    match Email::parse(raw) {
        Ok(email) => email.as_str().to_owned(),
        Err(_) => raw
            .trim()
            .to_lowercase()
            .chars()
            .take(254)
            .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
            .collect(),
    }
}

fn audit(
    action: AuditAction,
    actor: Option<UserId>,
    target: Option<UserId>,
    origin: &Origin,
    detail: Option<String>,
) -> NewAuditEntry {
    NewAuditEntry {
        at: crate::now(),
        action,
        actor_id: actor,
        target_id: target,
        address: origin.address.clone(),
        // The note says who acted when no user did (the command line): keep it beside
        // whatever the action itself records.
        detail: match (detail, &origin.note) {
            (Some(detail), Some(note)) => Some(format!("{note}: {detail}")),
            (detail, note) => detail.or_else(|| note.clone()),
        },
    }
}

impl UserService {
    /// Wires the use cases to their ports, with the default throttling limits.
    #[must_use]
    pub fn new(
        store: Arc<dyn UserStore>,
        hasher: Arc<dyn PasswordHasher>,
        tokens: Arc<dyn TokenService>,
    ) -> Self {
        Self {
            store,
            hasher,
            tokens,
            throttle: ThrottlePolicy::default(),
            audit_retention: None,
            registration: RegistrationMode::default(),
            sessions: SessionPolicy::default(),
            outbox_wake: None,
            mail: None,
            recovery: RecoveryPolicy::default(),
            mfa: None,
            passkeys: None,
        }
    }

    /// How long sessions live ([`SessionPolicy::default`] unless set).
    #[must_use]
    pub fn with_session_policy(mut self, sessions: SessionPolicy) -> Self {
        self.sessions = sessions;
        self
    }

    /// Queues mails (applicants' decisions, invitations, admin digests) with the changes
    /// that cause them: only with a mailer configured (without one, nothing is mailed).
    #[must_use]
    pub fn with_mail(mut self, policy: MailPolicy) -> Self {
        self.mail = Some(policy);
        self
    }

    /// Calls `wake` after each committed write that raised events (so the dispatcher
    /// sends them at once instead of at its next poll).
    #[must_use]
    pub fn with_outbox_wake(mut self, wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        self.outbox_wake = Some(wake);
        self
    }

    /// [`UserStoreExt::write_with`] for a use case that may raise events: once the write
    /// committed with events in it, the outbox's dispatcher is woken.
    fn write_raising<T>(
        &self,
        f: impl FnMut(&mut dyn UserRepo) -> Result<T, Error>,
    ) -> Result<T, Error> {
        RAISED.with(|raised| raised.set(false));
        let outcome = self.store.write_with(f);
        let raised = RAISED.with(|raised| raised.replace(false));
        if raised && outcome.is_ok() {
            if let Some(wake) = &self.outbox_wake {
                wake();
            }
        }
        outcome
    }

    /// Who may register on their own ([`RegistrationMode::Open`] unless set).
    #[must_use]
    pub fn with_registration_mode(mut self, mode: RegistrationMode) -> Self {
        self.registration = mode;
        self
    }

    /// Prunes audit entries older than `retention` (`None`: keeps everything, the default
    /// here; the service's configuration defaults to 365 days).
    #[must_use]
    pub fn with_audit_retention(mut self, retention: Option<chrono::Duration>) -> Self {
        self.audit_retention = retention;
        self
    }

    /// The same, with other throttling limits.
    #[must_use]
    pub fn with_throttle(mut self, throttle: ThrottlePolicy) -> Self {
        self.throttle = throttle;
        self
    }

    /// The token service (for the JWKS document).
    #[must_use]
    pub fn tokens(&self) -> &Arc<dyn TokenService> {
        &self.tokens
    }

    /// Registers a user: the first one ever becomes an approved admin, later ones wait as
    /// pending non-admins. Counts the attempt against the address's hourly limit first,
    /// then hashes the password (slow) before taking the write lock.
    ///
    /// # Errors
    /// [`Error::Throttled`], [`Error::EmailTaken`]; store and hashing failures.
    pub fn register(
        &self,
        email: Email,
        password: &Password,
        origin: &Origin,
    ) -> Result<User, Error> {
        self.begin_register(origin)?;
        let password_hash = self.hash_password(password)?;
        self.finish_register(email, &password_hash, origin)
    }

    /// The first step of [`register`](Self::register): counts the attempt against the
    /// address's hourly limit (a short write, no hashing).
    ///
    /// # Errors
    /// [`Error::Throttled`]; store failures.
    pub fn begin_register(&self, origin: &Origin) -> Result<(), Error> {
        self.begin_register_invited(origin, None)
    }

    /// [`begin_register`](Self::begin_register) for a registration that brings an
    /// invitation: in the same short write, and still before any hashing, the code must
    /// admit `email` now (checked again, and its use counted, in the registration's own
    /// transaction). The attempt counts against the address whatever the code's fate, so
    /// trying codes is throttled like any registration.
    ///
    /// # Errors
    /// [`Error::Throttled`], [`Error::InvalidInvitation`]; store failures.
    pub fn begin_register_invited(
        &self,
        origin: &Origin,
        invitation: Option<(&InvitationCode, &Email)>,
    ) -> Result<(), Error> {
        let key = origin.address.as_deref().map(address_key);
        if key.is_none() && invitation.is_none() {
            return Ok(());
        }
        let now = crate::now();
        // The outer error rolls back; the inner one is a refusal whose count commits.
        self.store.write_with(|repo| {
            if let Some(key) = &key {
                let counter = repo.counter(CounterScope::RegisterAddress, key)?;
                match self.throttle.register_attempt(counter, now) {
                    Ok(Some(counter)) => {
                        repo.save_counter(CounterScope::RegisterAddress, key, &counter)?;
                    }
                    Ok(None) => {}
                    Err(refused) => return Ok(Err(throttled(refused))),
                }
            }
            if let Some((code, email)) = invitation {
                let admits = repo
                    .find_invitation_by_code(&code.hash())?
                    .is_some_and(|found| found.admits(email, now).is_ok());
                if !admits {
                    return Ok(Err(Error::InvalidInvitation));
                }
            }
            Ok(Ok(()))
        })?
    }

    /// Whether the registration mode lets every registration in (`open`, or `invite_only`
    /// with an invitation) without asking the store; when not, ask
    /// [`ensure_registration_open`](Self::ensure_registration_open) before hashing.
    #[must_use]
    pub fn registration_may_be_open(&self, with_invitation: bool) -> bool {
        ensure_may_self_register(self.registration, false, with_invitation).is_ok()
    }

    /// Refuses, with a read and before any hashing, a registration the mode does not let
    /// in (the very first user always may). The registration's own transaction checks
    /// again.
    ///
    /// # Errors
    /// [`Error::RegistrationClosed`]; store failures.
    pub fn ensure_registration_open(&self, with_invitation: bool) -> Result<(), Error> {
        if self.registration_may_be_open(with_invitation) {
            return Ok(());
        }
        let first = !self.store.read_with(|repo| repo.any_user_exists())?;
        ensure_may_self_register(self.registration, first, with_invitation)
            .map_err(|_| Error::RegistrationClosed)
    }

    /// Hashes a new password (bcrypt: slow; run it where hashing belongs).
    ///
    /// # Errors
    /// Hashing failures.
    pub fn hash_password(&self, password: &Password) -> Result<PasswordHash, Error> {
        self.hasher.hash(password)
    }

    /// The last step of [`register`](Self::register): stores the user (a write, no
    /// hashing).
    ///
    /// # Errors
    /// [`Error::EmailTaken`]; store failures.
    pub fn finish_register(
        &self,
        email: Email,
        password_hash: &PasswordHash,
        origin: &Origin,
    ) -> Result<User, Error> {
        self.finish_register_invited(email, password_hash, None, None, origin)
    }

    /// [`finish_register`](Self::finish_register) with the invitation code the registrant
    /// presented, if any. In one write transaction: the registration mode is applied (the
    /// very first user always registers), a presented code must admit this email now and
    /// its use is counted (so N registrations racing on a one-use code give one account),
    /// and an invited user starts approved by the inviter (an admin if the invitation
    /// says so; with a verified email when the invitation names it), with the audit
    /// entries `user_registered` and `invitation_used`. `reason` is the applicant's word
    /// to the admins.
    ///
    /// # Errors
    /// [`Error::RegistrationClosed`], [`Error::InvalidInvitation`] (whatever is wrong
    /// with the code), [`Error::EmailTaken`]; store failures.
    pub fn finish_register_invited(
        &self,
        email: Email,
        password_hash: &PasswordHash,
        invitation: Option<&InvitationCode>,
        reason: Option<&FreeText>,
        origin: &Origin,
    ) -> Result<User, Error> {
        self.write_raising(|repo| {
            let existing = u64::from(repo.any_user_exists()?);
            ensure_may_self_register(self.registration, existing == 0, invitation.is_some())
                .map_err(|_| Error::RegistrationClosed)?;
            let now = crate::now();
            let invited = match invitation {
                Some(code) => Some(use_invitation(repo, code, &email, now)?),
                None => None,
            };
            ensure_email_free(repo, &email, None)?;
            let role = rules::role_for_invited_user(existing, invited.as_ref());
            let user = repo.insert(NewUser {
                email: email.clone(),
                password_hash: password_hash.clone(),
                is_admin: role.is_admin,
                status: role.status,
                created_at: now,
                approved_at: (role.status == UserStatus::Approved).then_some(now),
                approved_by: invited
                    .as_ref()
                    .filter(|_| existing > 0)
                    .and_then(|i| i.created_by),
                reason: reason.map(|r| r.as_str().to_owned()),
                email_verified: invited.as_ref().is_some_and(|i| i.email.is_some()),
            })?;
            repo.append_audit(&audit(
                AuditAction::UserRegistered,
                Some(user.id),
                Some(user.id),
                origin,
                None,
            ))?;
            raise(repo, AuditAction::UserRegistered, &user, None)?;
            self.verify_new_user(repo, &user)?;
            if self.mail.is_some() && user.status == UserStatus::Pending {
                // The admin digest may be due: the dispatcher looks at once.
                RAISED.with(|raised| raised.set(true));
            }
            if let Some(invitation) = &invited {
                repo.append_audit(&audit(
                    AuditAction::InvitationUsed,
                    Some(user.id),
                    Some(user.id),
                    origin,
                    Some(invitation_detail(invitation)),
                ))?;
                raise(repo, AuditAction::InvitationUsed, &user, None)?;
            }
            Ok(user)
        })
    }

    /// Checks an email and password and issues a token (without a device token: see
    /// [`login_on_device`](Self::login_on_device)).
    ///
    /// # Errors
    /// As [`login_on_device`](Self::login_on_device).
    pub fn login(
        &self,
        email: &str,
        password: &str,
        origin: &Origin,
    ) -> Result<SessionTokens, Error> {
        self.login_on_device(email, password, None, origin)
            .map(|success| success.tokens)
    }

    /// Checks an email and password and issues a token and a device token.
    ///
    /// The attempt is counted first, so parallel guesses cannot outrun the limits: on the
    /// presented device token's own counter when it is a device token of this account,
    /// else on the account and the address. A locked account (or device) or a spent
    /// address budget is refused without checking the password. Anything that cannot be a
    /// registered email or password is simply wrong and costs one bcrypt verification like
    /// any other wrong guess. Pending and disabled accounts are told so only after their
    /// password was verified. A successful login clears the counter it was counted on.
    ///
    /// # Errors
    /// [`Error::Throttled`], [`Error::InvalidCredentials`], [`Error::AccountPending`],
    /// [`Error::AccountDisabled`]; store and hashing failures.
    pub fn login_on_device(
        &self,
        email: &str,
        password: &str,
        device: Option<&str>,
        origin: &Origin,
    ) -> Result<LoginSuccess, Error> {
        self.login_in_steps(email, password, device, origin)?.done()
    }

    /// The same, for an account that may need a second step: its password opens either
    /// the session or the second step ([`finish_login_mfa`](Self::finish_login_mfa)).
    ///
    /// # Errors
    /// As [`login_on_device`](Self::login_on_device).
    pub fn login_in_steps(
        &self,
        email: &str,
        password: &str,
        device: Option<&str>,
        origin: &Origin,
    ) -> Result<LoginStep, Error> {
        let attempt = self.begin_login(email, device, origin)?;
        let verified = self.check_login_password(&attempt, password)?;
        self.finish_login(attempt, verified)
    }

    /// The first step of a login: counts the attempt (a short write transaction, no
    /// hashing), so a throttled attempt is refused before it costs any bcrypt work or
    /// waits for a hashing thread. Repeated refusals for one account and address within
    /// [`THROTTLED_AUDIT_WINDOW`] make one audit entry with a count.
    ///
    /// # Errors
    /// [`Error::Throttled`]; store failures.
    pub fn begin_login(
        &self,
        email: &str,
        device: Option<&str>,
        origin: &Origin,
    ) -> Result<LoginAttempt, Error> {
        let parsed = Email::parse(email).ok();
        let presented = device.and_then(DeviceToken::presented);
        let account = account_key(email);
        let (user, device, scope, key) = self
            .store
            .write_with(|repo| {
                let user = match &parsed {
                    Some(email) => repo.find_by_email(email)?,
                    None => None,
                };
                let device = match (&user, &presented) {
                    (Some(user), Some(token))
                        if repo.device_owner(&token.hash())? == Some(user.id) =>
                    {
                        Some(token.clone())
                    }
                    _ => None,
                };
                let (scope, key) = match &device {
                    Some(token) => (CounterScope::LoginDevice, token.hash()),
                    None => (CounterScope::LoginAccount, account.clone()),
                };
                let reserved = self.reserve_guess(repo, scope, &key, origin)?;
                if reserved.is_err() {
                    audit_throttled(repo, user.as_ref().map(|u| u.id), origin)?;
                }
                Ok(reserved.map(|()| (user, device, scope, key)))
            })?
            .map_err(throttled)?;
        Ok(LoginAttempt {
            scope,
            key,
            user,
            origin: origin.clone(),
            device,
        })
    }

    /// The second step of a login: verifies the password (bcrypt: run it on a bounded
    /// pool); no store access.
    ///
    /// # Errors
    /// Hashing failures.
    pub fn check_login_password(
        &self,
        attempt: &LoginAttempt,
        password: &str,
    ) -> Result<bool, Error> {
        match &attempt.user {
            Some(user) => self.hasher.verify(password, &user.password_hash),
            None => {
                self.hasher.verify_dummy(password);
                Ok(false)
            }
        }
    }

    /// The last step of a login: records the outcome and, when it succeeded, starts a
    /// session (a short write, no hashing), then issues the tokens; for an account with
    /// TOTP on, a right password stores a challenge instead and answers
    /// [`LoginStep::MfaRequired`] (the session waits for
    /// [`finish_login_mfa`](Self::finish_login_mfa)).
    ///
    /// # Errors
    /// [`Error::InvalidCredentials`], [`Error::AccountPending`], [`Error::AccountDisabled`];
    /// store failures.
    pub fn finish_login(&self, attempt: LoginAttempt, verified: bool) -> Result<LoginStep, Error> {
        let LoginAttempt {
            scope,
            key,
            user,
            origin,
            device,
        } = attempt;
        let origin = &origin;
        let outcome = match &user {
            // After the password check, so only the address's owner learns it is
            // unverified; a disabled or rejected account is told that first.
            Some(user)
                if verified
                    && self.recovery.require_verified_email
                    && !user.email_verified
                    && matches!(user.status, UserStatus::Pending | UserStatus::Approved) =>
            {
                Err(Error::EmailUnverified)
            }
            Some(user) if verified => rules::ensure_can_log_in(user).map(|()| user),
            _ => Err(Error::InvalidCredentials),
        };
        let device = match (&outcome, device) {
            (Ok(_), Some(device)) => Some(device),
            (Ok(_), None) => Some(DeviceToken::generate()?),
            (Err(_), _) => None,
        };
        let refresh_token = match &outcome {
            Ok(_) => Some(RefreshToken::generate()?),
            Err(_) => None,
        };
        let started = self.store.write_with(|repo| {
            let target = user.as_ref().map(|u| u.id);
            if let Ok(user) = &outcome {
                // With TOTP on, the password opens only the second step. Its guess is
                // given back, but the account's earlier failures (wrong codes among
                // them) stay counted until the second step succeeds: a right password
                // does not buy more guesses at the code.
                if let Some(challenge) = self.mfa_challenge(repo, user)? {
                    if let Some(counter) = repo.counter(scope, &key)? {
                        let back = self.throttle.uncount_right_guess(counter);
                        repo.save_counter(scope, &key, &back)?;
                    }
                    give_back_address_guess(repo, scope, origin)?;
                    return Ok(Err(challenge));
                }
            }
            if verified {
                // The password was right: this was no guess, whatever the account's state.
                self.forgive_guess(repo, scope, &key, origin)?;
            }
            if let (Ok(user), Some(device)) = (&outcome, &device) {
                repo.save_device(&device.hash(), user.id, crate::now())?;
            }
            let entry = match &outcome {
                Ok(user) => audit(
                    AuditAction::LoginSucceeded,
                    Some(user.id),
                    Some(user.id),
                    origin,
                    None,
                ),
                Err(Error::AccountPending) => audit(
                    AuditAction::LoginFailed,
                    None,
                    target,
                    origin,
                    Some("account pending".into()),
                ),
                Err(Error::AccountDisabled) => audit(
                    AuditAction::LoginFailed,
                    None,
                    target,
                    origin,
                    Some("account disabled".into()),
                ),
                Err(Error::EmailUnverified) => audit(
                    AuditAction::LoginFailed,
                    None,
                    target,
                    origin,
                    Some("email unverified".into()),
                ),
                Err(Error::AccountRejected { .. }) => audit(
                    AuditAction::LoginFailed,
                    None,
                    target,
                    origin,
                    Some("account rejected".into()),
                ),
                Err(_) if user.is_some() => audit(
                    AuditAction::LoginFailed,
                    None,
                    target,
                    origin,
                    Some("wrong password".into()),
                ),
                Err(_) => audit(
                    AuditAction::LoginFailed,
                    None,
                    None,
                    origin,
                    Some("unknown account".into()),
                ),
            };
            repo.append_audit(&entry)?;
            match (&outcome, &refresh_token) {
                (Ok(user), Some(refresh)) => self
                    .start_session(repo, user.id, origin, refresh)
                    .map(|session| Ok(Some(session))),
                _ => Ok(Ok(None)),
            }
        })?;
        let session = match started {
            Ok(session) => session,
            Err(challenge) => return Ok(LoginStep::MfaRequired(challenge)),
        };
        let user = outcome?;
        let (Some(session), Some(refresh_token)) = (session, refresh_token) else {
            return Err(Error::internal(
                "login",
                "a successful login without a session",
            ));
        };
        let tokens = self.session_tokens(user, &session, refresh_token)?;
        let device_token = device
            .ok_or_else(|| Error::internal("login", "a successful login without a device token"))?;
        Ok(LoginStep::Done(LoginSuccess {
            tokens,
            device_token,
        }))
    }

    /// Stores a new session of `user` started now from `origin`, with its first refresh
    /// token.
    fn start_session(
        &self,
        repo: &mut dyn UserRepo,
        user: UserId,
        origin: &Origin,
        refresh: &RefreshToken,
    ) -> Result<StoredSession, Error> {
        let now = crate::now();
        let expires_at = self.sessions.expires_at(now);
        repo.insert_session(
            &NewSession {
                user_id: user,
                created_at: now,
                idle_expires_at: self.sessions.idle_expires_at(now, expires_at),
                expires_at,
                address: origin.address.clone(),
                user_agent: origin.user_agent.clone(),
            },
            &refresh.hash(),
        )
    }

    /// Renews `session` at `now` with its next refresh token `next`: it idles out
    /// [`SessionPolicy::idle`] from now (never past its end for good). The session as
    /// renewed, or `None` when it had ended (nothing stored).
    fn renew(
        &self,
        repo: &mut dyn UserRepo,
        session: StoredSession,
        next: &RefreshToken,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredSession>, Error> {
        let idle_expires_at = self.sessions.idle_expires_at(now, session.expires_at);
        Ok(repo
            .renew_session(session.id, &next.hash(), now, idle_expires_at)?
            .then_some(StoredSession {
                last_used_at: now,
                idle_expires_at,
                ..session
            }))
    }

    /// The tokens handed out for `session` of `user`: a new access token naming it, and
    /// the refresh token just stored for it.
    fn session_tokens(
        &self,
        user: &User,
        session: &StoredSession,
        refresh_token: RefreshToken,
    ) -> Result<SessionTokens, Error> {
        Ok(SessionTokens {
            access: self.tokens.issue(user, session.id)?,
            refresh_token,
            // From the moment the session was last used (this login, refresh or password
            // change), so that a fresh session says its whole idle lifetime.
            refresh_expires_in: crate::seconds_until(session.last_used_at, session.idle_expires_at),
            session_id: session.id,
        })
    }

    /// For a guess checked inside the transaction that counts it (a second step, a passkey
    /// login): the counters a wrong guess leaves (on `key` in `scope` and, for an account,
    /// on the address), or how long to wait when one is at its limit. Nothing is written
    /// here: a right guess leaves the counters as they were, a wrong one saves these
    /// ([`count_guess`](Self::count_guess)). Within one serializable (or, on
    /// SQLite, exclusive) transaction that is the same as counting first and giving back
    /// on success, without rewriting the address's counter on every success: one row for
    /// every user behind a proxy or a NAT, which made concurrent second steps conflict on
    /// PostgreSQL (retried, then 503).
    pub(crate) fn check_guess(
        &self,
        repo: &mut dyn UserRepo,
        scope: CounterScope,
        key: &str,
        origin: &Origin,
    ) -> Result<Result<WrongGuess, Throttled>, Error> {
        let now = crate::now();
        let key_counter = match self
            .throttle
            .account_attempt(repo.counter(scope, key)?, now)
        {
            Ok(counter) => counter,
            Err(throttled) => return Ok(Err(throttled)),
        };
        // A device is throttled on its own failures only.
        let address = origin
            .address
            .as_deref()
            .filter(|_| scope == CounterScope::LoginAccount)
            .map(address_key);
        let address = match address {
            Some(address) => match self
                .throttle
                .address_attempt(repo.counter(CounterScope::LoginAddress, &address)?, now)
            {
                Ok(counter) => Some((address, counter)),
                Err(throttled) => return Ok(Err(throttled)),
            },
            None => None,
        };
        Ok(Ok(WrongGuess {
            scope,
            key: key.to_owned(),
            key_counter,
            address,
        }))
    }

    /// Counts a guess: saves the counters [`check_guess`](Self::check_guess) computed.
    pub(crate) fn count_guess(repo: &mut dyn UserRepo, guess: &WrongGuess) -> Result<(), Error> {
        repo.save_counter(guess.scope, &guess.key, &guess.key_counter)?;
        if let Some((address, counter)) = &guess.address {
            repo.save_counter(CounterScope::LoginAddress, address, counter)?;
        }
        Ok(())
    }

    /// Counts one password guess on `key` in `scope` (an account, or a device) and, for
    /// an account, against the address; or says how long to wait. Nothing is counted when
    /// refused.
    fn reserve_guess(
        &self,
        repo: &mut dyn UserRepo,
        scope: CounterScope,
        key: &str,
        origin: &Origin,
    ) -> Result<Result<(), Throttled>, Error> {
        Ok(match self.check_guess(repo, scope, key, origin)? {
            Ok(guess) => Self::count_guess(repo, &guess).map(Ok)?,
            Err(throttled) => Err(throttled),
        })
    }

    /// Gives back the guess a login attempt counted, for an attempt that is dropped before
    /// its password is checked (the hashing queue was full): it counts as no failure.
    ///
    /// # Errors
    /// Store failures.
    pub fn cancel_login(&self, attempt: &LoginAttempt) -> Result<(), Error> {
        self.store.write_with(|repo| {
            self.give_back_guess(repo, attempt.scope, &attempt.key, &attempt.origin)
        })
    }

    /// Gives back the guess a password change counted (as [`cancel_login`](Self::cancel_login)).
    ///
    /// # Errors
    /// Store failures.
    pub fn cancel_password_change(&self, change: &PasswordChange) -> Result<(), Error> {
        self.store.write_with(|repo| {
            self.give_back_guess(
                repo,
                CounterScope::LoginAccount,
                &change.key,
                &change.origin,
            )
        })
    }

    /// One counted guess fewer on `key` in `scope` and, for an account, on the address.
    fn give_back_guess(
        &self,
        repo: &mut dyn UserRepo,
        scope: CounterScope,
        key: &str,
        origin: &Origin,
    ) -> Result<(), Error> {
        if let Some(counter) = repo.counter(scope, key)? {
            repo.save_counter(scope, key, &self.throttle.uncount_attempt(counter))?;
        }
        give_back_address_guess(repo, scope, origin)
    }

    /// Undoes a reserved guess that turned out to be the right password.
    fn forgive_guess(
        &self,
        repo: &mut dyn UserRepo,
        scope: CounterScope,
        key: &str,
        origin: &Origin,
    ) -> Result<(), Error> {
        repo.delete_counter(scope, key)?;
        give_back_address_guess(repo, scope, origin)
    }

    /// The session a token opens, if the token is valid, its session live (not ended, not
    /// expired), and its user still approved with no password change since it was issued.
    /// A token that does not verify is refused before any read; the user and the session
    /// are read in one go through the store's [`SessionSource`](crate::SessionSource),
    /// after this call, without blocking the caller.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`]; store failures.
    pub async fn current_user(&self, token: &str) -> Result<Session, Error> {
        let claims = self.tokens.verify(token)?;
        let found = self
            .store
            .find_session_user(claims.user_id, claims.session_id)
            .await?;
        session(found, claims, crate::now())
    }

    /// Ends the session (its refresh token and every access token of it).
    ///
    /// # Errors
    /// Store failures.
    pub fn logout(&self, session: &Session, origin: &Origin) -> Result<(), Error> {
        self.store.write_with(|repo| {
            repo.revoke_session(
                session.claims.session_id,
                Some(session.user.id),
                crate::now(),
            )?;
            let id = Some(session.user.id);
            repo.append_audit(&audit(AuditAction::Logout, id, id, origin, None))
        })
    }

    /// Trades a refresh token for a new access token and the session's next refresh token
    /// (`POST /token`), in one write: the presented token is spent, the next one stored,
    /// and the session marked used (it idles out [`SessionPolicy::idle`] from now, never
    /// past its end for good). Of concurrent refreshes with one token exactly one
    /// succeeds. A spent token presented again ends its whole session at once and is
    /// audited as `refresh_token_reused`.
    ///
    /// # Errors
    /// [`Error::InvalidGrant`] for a token that is unknown, spent, of an ended or expired
    /// session, or of a user who may no longer sign in; store failures.
    pub fn refresh(&self, presented: &str, origin: &Origin) -> Result<SessionTokens, Error> {
        let hash = RefreshToken::presented(presented)
            .ok_or(Error::InvalidGrant)?
            .hash();
        let next = RefreshToken::generate()?;
        // Guarded by its rows (see `UserStore::write_rows`): the spend is a conditional
        // update of the token's row, the renewal one of the session's, and the user's
        // status only ever leaves `approved` together with ending every session (in that
        // change's own transaction), which the renewal's condition sees.
        let granted = self.store.write_rows_with(|repo| {
            let now = crate::now();
            // Spend first: of concurrent refreshes with one token exactly one gets here
            // with `true`; the others find it spent (below), as any later replay does.
            let spent_now = repo.spend_refresh_token(&hash, now)?;
            let Some((session, _, user)) = repo.find_refresh_token(&hash)? else {
                return Ok(None);
            };
            if !spent_now {
                if repo.revoke_session(session.id, None, now)? {
                    repo.append_audit(&audit(
                        AuditAction::RefreshTokenReused,
                        None,
                        Some(session.user_id),
                        origin,
                        Some(format!("session {} ended", session.id)),
                    ))?;
                }
                return Ok(None);
            }
            if !session.is_live(now) {
                return Ok(None);
            }
            if rules::ensure_can_log_in(&user).is_err() {
                return Ok(None);
            }
            // `None`: ended meanwhile (a sign-out everywhere, a disable committed first).
            Ok(self
                .renew(repo, session, &next, now)?
                .map(|renewed| (user, renewed)))
        })?;
        // The refusal (and a reuse's revocation) committed; the client learns nothing more.
        let (user, session) = granted.ok_or(Error::InvalidGrant)?;
        self.session_tokens(&user, &session, next)
    }

    /// The live sessions of the signed-in user, newest first (`GET /me/sessions`).
    ///
    /// # Errors
    /// Store failures.
    pub fn my_sessions(
        &self,
        session: &Session,
        query: &SessionQuery,
    ) -> Result<Page<StoredSession>, Error> {
        self.store
            .read_with(|repo| repo.list_sessions(session.user.id, crate::now(), query))
    }

    /// Ends one of the signed-in user's own sessions (the current one too, if named), and
    /// audits it as `session_revoked`.
    ///
    /// # Errors
    /// [`Error::SessionNotFound`] for a session that is not theirs or not live; store
    /// failures.
    pub fn end_my_session(&self, session: &Session, id: i64, origin: &Origin) -> Result<(), Error> {
        let user = session.user.id;
        self.store.write_with(|repo| {
            let now = crate::now();
            match repo.find_session(id)? {
                Some(found) if found.user_id == user && found.is_live(now) => {}
                _ => return Err(Error::SessionNotFound),
            }
            repo.revoke_session(id, Some(user), now)?;
            repo.append_audit(&audit(
                AuditAction::SessionRevoked,
                Some(user),
                Some(user),
                origin,
                Some(format!("session {id}")),
            ))
        })
    }

    /// Ends every session of the signed-in user but the current one; audited as
    /// `sessions_revoked` when any ended. Returns how many.
    ///
    /// # Errors
    /// Store failures.
    pub fn end_other_sessions(&self, session: &Session, origin: &Origin) -> Result<u64, Error> {
        let user = session.user.id;
        self.store.write_with(|repo| {
            let ended =
                repo.revoke_sessions(user, Some(session.claims.session_id), crate::now())?;
            if ended > 0 {
                repo.append_audit(&audit(
                    AuditAction::SessionsRevoked,
                    Some(user),
                    Some(user),
                    origin,
                    Some(sessions_detail(ended, "other ")),
                ))?;
            }
            Ok(ended)
        })
    }

    /// A user's live sessions, newest first, for an admin (`GET /users/{id}/sessions`).
    ///
    /// # Errors
    /// [`Error::UserNotFound`]; the actor's refusals; store failures.
    pub fn user_sessions(
        &self,
        actor: Actor,
        target: UserId,
        query: &SessionQuery,
    ) -> Result<Page<StoredSession>, Error> {
        self.store.read_with(|repo| {
            authorize(repo, actor)?;
            repo.find_by_id(target)?.ok_or(Error::UserNotFound)?;
            repo.list_sessions(target, crate::now(), query)
        })
    }

    /// Signs a user out everywhere: ends every session of theirs, audited as
    /// `sessions_revoked` (also when none was live: the admin asked). Returns how many.
    ///
    /// # Errors
    /// [`Error::UserNotFound`]; the actor's refusals; store failures.
    pub fn end_user_sessions(
        &self,
        actor: Actor,
        target: UserId,
        origin: &Origin,
    ) -> Result<u64, Error> {
        self.store.write_with(|repo| {
            let acting_admin = authorize(repo, actor)?;
            repo.find_by_id(target)?.ok_or(Error::UserNotFound)?;
            let ended = repo.revoke_sessions(target, None, crate::now())?;
            repo.append_audit(&audit(
                AuditAction::SessionsRevoked,
                acting_admin,
                Some(target),
                origin,
                Some(sessions_detail(ended, "")),
            ))?;
            Ok(ended)
        })
    }

    /// Changes the signed-in user's own password, ending every other session and every
    /// access token issued before, and returning a fresh pair for the current session. The current password is checked like a login (and counted
    /// against the account's failures, so a stolen token cannot brute-force it) against
    /// the hash as it is when the attempt is counted; the change commits only if the user
    /// is still approved and the token still current then, so an admin's reset that came
    /// in between always wins.
    ///
    /// # Errors
    /// [`Error::Throttled`], [`Error::WrongCurrentPassword`], [`Error::Unauthenticated`]
    /// (the user vanished, was taken out of service or had their password reset
    /// meanwhile); store and hashing failures.
    pub fn change_password(
        &self,
        session: &Session,
        current: &str,
        new: &Password,
        origin: &Origin,
    ) -> Result<SessionTokens, Error> {
        let change = self.begin_password_change(session, origin)?;
        let new_hash = self.check_password_change(&change, current, new)?;
        self.finish_password_change(change, new_hash.as_ref())
    }

    /// The first step of a password change: counts the attempt on the account and reads
    /// the current hash, both in one short write (no hashing).
    ///
    /// # Errors
    /// [`Error::Throttled`], [`Error::Unauthenticated`]; store failures.
    pub fn begin_password_change(
        &self,
        session: &Session,
        origin: &Origin,
    ) -> Result<PasswordChange, Error> {
        let key = session.user.email.as_str().to_owned();
        let current_hash = self
            .store
            .write_with(|repo| {
                let user = still_current(repo, session)?;
                Ok(self
                    .reserve_guess(repo, CounterScope::LoginAccount, &key, origin)?
                    .map(|()| user.password_hash))
            })?
            .map_err(throttled)?;
        Ok(PasswordChange {
            session: session.clone(),
            key,
            current_hash,
            origin: origin.clone(),
        })
    }

    /// The second step: verifies the current password and hashes the new one (bcrypt, no
    /// store access). `None` when the current password is wrong.
    ///
    /// # Errors
    /// Hashing failures.
    pub fn check_password_change(
        &self,
        change: &PasswordChange,
        current: &str,
        new: &Password,
    ) -> Result<Option<PasswordHash>, Error> {
        if self.hasher.verify(current, &change.current_hash)? {
            self.hasher.hash(new).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The last step: with the new hash, stores it if the token is still current, ends
    /// the user's other sessions and renews the current one (a short write), and issues a
    /// fresh pair; without one (a wrong current password), records the failure.
    ///
    /// # Errors
    /// [`Error::WrongCurrentPassword`], [`Error::Unauthenticated`]; store failures.
    pub fn finish_password_change(
        &self,
        change: PasswordChange,
        new_hash: Option<&PasswordHash>,
    ) -> Result<SessionTokens, Error> {
        let PasswordChange {
            session,
            key,
            origin,
            ..
        } = change;
        let id = Some(session.user.id);
        let Some(new_hash) = new_hash else {
            let entry = audit(
                AuditAction::LoginFailed,
                id,
                id,
                &origin,
                Some("wrong current password".into()),
            );
            self.store.write_with(|repo| repo.append_audit(&entry))?;
            return Err(Error::WrongCurrentPassword);
        };
        let next = RefreshToken::generate()?;
        let sid = session.claims.session_id;
        let (user, renewed) = self.store.write_with(|repo| {
            let mut user = still_current(repo, &session)?;
            self.forgive_guess(repo, CounterScope::LoginAccount, &key, &origin)?;
            user.password_hash = new_hash.clone();
            user.token_version += 1;
            let user = repo.update(&user)?;
            let now = crate::now();
            repo.revoke_sessions(user.id, Some(sid), now)?;
            let current = repo.find_session(sid)?.ok_or(Error::Unauthenticated)?;
            // The current session goes on with a new refresh token. The old one is
            // discarded, not spent: presented later it opens nothing (`invalid_grant`), but
            // it was never used, so it is no replay and does not end the session.
            repo.discard_session_refresh_tokens(sid)?;
            let renewed = self
                .renew(repo, current, &next, now)?
                .ok_or(Error::Unauthenticated)?;
            repo.append_audit(&audit(AuditAction::PasswordChanged, id, id, &origin, None))?;
            Ok((user, renewed))
        })?;
        self.session_tokens(&user, &renewed, next)
    }

    /// Creates a user on an admin's or the operator's behalf, with the status and admin
    /// flag asked for. The first-user rule holds here too: into an empty store the new
    /// user goes as an approved admin, whatever was asked, so nobody is ever locked out.
    ///
    /// # Errors
    /// [`Error::EmailTaken`]; the actor's refusals; store and hashing failures.
    pub fn create_user(
        &self,
        actor: Actor,
        request: NewUserRequest,
        origin: &Origin,
    ) -> Result<User, Error> {
        // Refuse a non-admin before spending a hash on them; checked again below.
        self.authorize(actor)?;
        let password_hash = self.hash_password(&request.password)?;
        self.create_user_hashed(actor, &request, &password_hash, origin)
    }

    /// Checks that `actor` may administer users right now (a read; each admin use case
    /// checks again inside its own transaction). For refusing a non-admin before any
    /// hashing.
    ///
    /// # Errors
    /// [`Error::AdminRequired`], [`Error::Unauthenticated`]; store failures.
    pub fn authorize(&self, actor: Actor) -> Result<(), Error> {
        self.store
            .read_with(|repo| authorize(repo, actor).map(drop))
    }

    /// [`create_user`](Self::create_user) with the password already hashed (a write, no
    /// hashing); `request.password` is not used.
    ///
    /// # Errors
    /// As [`create_user`](Self::create_user).
    pub fn create_user_hashed(
        &self,
        actor: Actor,
        request: &NewUserRequest,
        password_hash: &PasswordHash,
        origin: &Origin,
    ) -> Result<User, Error> {
        self.write_raising(|repo| {
            let acting_admin = authorize(repo, actor)?;
            ensure_email_free(repo, &request.email, None)?;
            let (is_admin, status) = if repo.any_user_exists()? {
                (request.is_admin, request.status)
            } else {
                let role = rules::role_for_new_user(0);
                (role.is_admin, role.status)
            };
            let now = crate::now();
            let approved = status == UserStatus::Approved;
            let user = repo.insert(NewUser {
                email: request.email.clone(),
                password_hash: password_hash.clone(),
                is_admin,
                status,
                created_at: now,
                approved_at: approved.then_some(now),
                approved_by: if approved { acting_admin } else { None },
                reason: None,
                // An admin vouches for the address they typed (API.md, recovery issue).
                email_verified: true,
            })?;
            let detail = format!(
                "{}{}",
                user.status,
                if user.is_admin { ", admin" } else { "" }
            );
            repo.append_audit(&audit(
                AuditAction::UserCreated,
                acting_admin,
                Some(user.id),
                origin,
                Some(detail),
            ))?;
            raise(repo, AuditAction::UserCreated, &user, acting_admin)?;
            Ok(user)
        })
    }

    /// One user, by id or by email.
    ///
    /// # Errors
    /// [`Error::UserNotFound`]; the actor's refusals; store failures.
    pub fn find_user(&self, actor: Actor, key: &UserKey) -> Result<User, Error> {
        self.store.read_with(|repo| {
            authorize(repo, actor)?;
            match key {
                UserKey::Id(id) => repo.find_by_id(*id),
                UserKey::Email(email) => repo.find_by_email(email),
            }?
            .ok_or(Error::UserNotFound)
        })
    }

    /// The users matching `query`, newest first, handed to `into` as the store reads them
    /// (see [`Listing`]): how many match in all, then each user of the page. Nothing reaches
    /// `into` unless the actor may administer users.
    ///
    /// # Errors
    /// [`Error::AdminRequired`] or [`Error::Unauthenticated`] for a non-admin actor; store
    /// failures; an error of `into`, as it was returned.
    pub fn each_user(
        &self,
        actor: Actor,
        query: &UserQuery,
        into: &mut dyn Listing<User>,
    ) -> Result<(), Error> {
        let mut work = |repo: &mut dyn UserRepo| {
            authorize(repo, actor)?;
            repo.each_user(query, &mut *into)
        };
        if query.email_contains.is_none() {
            // Stores answer a page and its total in one statement without a search (see
            // `UserRepo::each_user`); the actor's check is a read of its own. No transaction
            // needed: its BEGIN and COMMIT were two of a PostgreSQL listing's five round
            // trips.
            self.store.read_single(&mut work)
        } else {
            self.store.read(&mut work)
        }
    }

    /// [`each_user`](Self::each_user) collected into a page (the command line's table,
    /// tests); a server streams with `each_user`.
    ///
    /// # Errors
    /// As [`each_user`](Self::each_user).
    pub fn list_users(&self, actor: Actor, query: &UserQuery) -> Result<Page<User>, Error> {
        let mut page = Page::default();
        self.each_user(actor, query, &mut page)?;
        Ok(page)
    }

    /// How many users wait for approval.
    ///
    /// # Errors
    /// As [`list_users`](Self::list_users).
    pub fn pending_count(&self, actor: Actor) -> Result<u64, Error> {
        self.store.read_with(|repo| {
            authorize(repo, actor)?;
            let pending = repo.count_with_status(UserStatus::Pending)?;
            // With verification required, an unverified user does not wait yet.
            if self.mail.is_some() && self.recovery.require_verified_email {
                Ok(pending.saturating_sub(repo.count_pending_unverified()?))
            } else {
                Ok(pending)
            }
        })
    }

    /// How many users have each status, for monitoring (no actor: the numbers say nothing
    /// about anyone in particular).
    ///
    /// # Errors
    /// Store failures.
    pub fn user_counts(&self) -> Result<Vec<(UserStatus, u64)>, Error> {
        self.store.read_with(|repo| {
            UserStatus::ALL
                .iter()
                .map(|&status| Ok((status, repo.count_with_status(status)?)))
                .collect()
        })
    }

    /// The audit entries matching `query`, newest first, handed to `into` as the store
    /// reads them (see [`Listing`]), in one read transaction.
    ///
    /// # Errors
    /// As [`each_user`](Self::each_user).
    pub fn each_audit_entry(
        &self,
        actor: Actor,
        query: &AuditQuery,
        into: &mut dyn Listing<AuditEntry>,
    ) -> Result<(), Error> {
        self.store.read(&mut |repo| {
            authorize(repo, actor)?;
            repo.each_audit_entry(query, &mut *into)
        })
    }

    /// [`each_audit_entry`](Self::each_audit_entry) collected into a page (tests).
    ///
    /// # Errors
    /// As [`each_user`](Self::each_user).
    pub fn list_audit(&self, actor: Actor, query: &AuditQuery) -> Result<Page<AuditEntry>, Error> {
        let mut page = Page::default();
        self.each_audit_entry(actor, query, &mut page)?;
        Ok(page)
    }

    /// Changes a user's email, admin flag or status, keeping an active admin in place.
    ///
    /// # Errors
    /// [`Error::UserNotFound`], [`Error::EmailTaken`], [`Error::LastAdmin`]; the actor's
    /// refusals; store failures.
    pub fn update_user(
        &self,
        actor: Actor,
        target: UserId,
        changes: &UserChanges,
        origin: &Origin,
    ) -> Result<User, Error> {
        self.write_raising(|repo| {
            let acting_admin = authorize(repo, actor)?;
            let before = repo.find_by_id(target)?.ok_or(Error::UserNotFound)?;
            let after = rules::apply_changes(&before, changes, acting_admin, crate::now());
            if after == before {
                return Ok(before);
            }
            if after.email != before.email {
                ensure_email_free(repo, &after.email, Some(target))?;
            }
            let active_admins = if rules::loses_active_admin(&before, Some(&after)) {
                repo.count_active_admins()?
            } else {
                0
            };
            rules::ensure_active_admin_remains(&before, Some(&after), active_admins)?;
            let stored = repo.update(&after)?;
            end_sessions_if_tokens_ended(repo, &before, &stored)?;
            for (action, detail) in changes_audited(&before, &after) {
                repo.append_audit(&audit(action, acting_admin, Some(target), origin, detail))?;
                raise_for_change(repo, action, &before, &stored, acting_admin)?;
            }
            self.mail_applicant(repo, &before, &stored)?;
            Ok(stored)
        })
    }

    /// Decides about many waiting users at once (`POST /users/decisions`): approves or
    /// rejects every one of `ids`, with `note`, in one transaction, and writes one audit
    /// entry per user. All or nothing: when any id names no user, or a user who is not
    /// pending, nothing changes. Returns the users as decided, in the order of `ids`.
    ///
    /// # Errors
    /// [`Error::UsersNotFound`] naming every unknown id, else [`Error::NotPending`] naming
    /// every user who is not pending; the actor's refusals; store failures.
    pub fn decide(
        &self,
        actor: Actor,
        ids: &BulkIds,
        decision: Decision,
        note: Option<&FreeText>,
        origin: &Origin,
    ) -> Result<Vec<User>, Error> {
        let changes = UserChanges {
            status: Some(decision.status()),
            note: note.map(|n| n.as_str().to_owned()),
            ..UserChanges::default()
        };
        self.write_raising(|repo| {
            let acting_admin = authorize(repo, actor)?;
            let mut found = Vec::with_capacity(ids.ids().len());
            let mut missing = Vec::new();
            for &raw in ids.ids() {
                let id = UserId::new(raw).map_err(|e| Error::internal("bulk ids", e))?;
                match repo.find_by_id(id)? {
                    Some(user) => found.push(user),
                    None => missing.push(id),
                }
            }
            if !missing.is_empty() {
                return Err(Error::UsersNotFound(missing));
            }
            let not_pending: Vec<UserId> = found
                .iter()
                .filter(|user| !rules::may_decide_in_bulk(user))
                .map(|user| user.id)
                .collect();
            if !not_pending.is_empty() {
                return Err(Error::NotPending(not_pending));
            }
            let now = crate::now();
            let mut decided = Vec::with_capacity(found.len());
            for before in found {
                let after = rules::apply_changes(&before, &changes, acting_admin, now);
                // Pending users are no active admins: no decision can lose one.
                rules::ensure_active_admin_remains(&before, Some(&after), 0)?;
                let stored = repo.update(&after)?;
                end_sessions_if_tokens_ended(repo, &before, &stored)?;
                for (action, detail) in changes_audited(&before, &stored) {
                    repo.append_audit(&audit(
                        action,
                        acting_admin,
                        Some(stored.id),
                        origin,
                        detail,
                    ))?;
                    raise_for_change(repo, action, &before, &stored, acting_admin)?;
                }
                self.mail_applicant(repo, &before, &stored)?;
                decided.push(stored);
            }
            Ok(decided)
        })
    }

    /// Deletes a user, unless that would leave no active admin.
    ///
    /// # Errors
    /// [`Error::UserNotFound`], [`Error::LastAdmin`]; the actor's refusals; store failures.
    pub fn delete_user(&self, actor: Actor, target: UserId, origin: &Origin) -> Result<(), Error> {
        self.write_raising(|repo| {
            let acting_admin = authorize(repo, actor)?;
            let before = repo.find_by_id(target)?.ok_or(Error::UserNotFound)?;
            let active_admins = if rules::loses_active_admin(&before, None) {
                repo.count_active_admins()?
            } else {
                0
            };
            rules::ensure_active_admin_remains(&before, None, active_admins)?;
            if !repo.delete(target)? {
                return Err(Error::UserNotFound);
            }
            let detail = Some(before.email.as_str().to_owned());
            repo.append_audit(&audit(
                AuditAction::UserDeleted,
                acting_admin,
                Some(target),
                origin,
                detail,
            ))?;
            raise(repo, AuditAction::UserDeleted, &before, acting_admin)
        })
    }

    /// Sets a user's password, ends every session and token of theirs, and clears
    /// their failed logins (so a locked-out user gets back in with the new password).
    ///
    /// # Errors
    /// [`Error::UserNotFound`]; the actor's refusals; store and hashing failures.
    pub fn reset_password(
        &self,
        actor: Actor,
        target: UserId,
        password: &Password,
        origin: &Origin,
    ) -> Result<User, Error> {
        self.authorize(actor)?;
        let password_hash = self.hash_password(password)?;
        self.reset_password_hashed(actor, target, &password_hash, origin)
    }

    /// [`reset_password`](Self::reset_password) with the password already hashed (a
    /// write, no hashing).
    ///
    /// # Errors
    /// As [`reset_password`](Self::reset_password).
    pub fn reset_password_hashed(
        &self,
        actor: Actor,
        target: UserId,
        password_hash: &PasswordHash,
        origin: &Origin,
    ) -> Result<User, Error> {
        self.write_raising(|repo| {
            let acting_admin = authorize(repo, actor)?;
            let user = repo.find_by_id(target)?.ok_or(Error::UserNotFound)?;
            let user = set_password(repo, user, password_hash)?;
            repo.append_audit(&audit(
                AuditAction::PasswordReset,
                acting_admin,
                Some(target),
                origin,
                None,
            ))?;
            raise(repo, AuditAction::PasswordReset, &user, acting_admin)?;
            Ok(user)
        })
    }

    /// Creates an invitation as `actor` (an active admin, or the operator) asks: a new code,
    /// stored only as its hash, and the audit entry `invitation_created`. Returns the
    /// invitation and its code, which nothing can show again.
    ///
    /// # Errors
    /// The actor's refusals; store failures.
    pub fn create_invitation(
        &self,
        actor: Actor,
        request: &ValidInvitationRequest,
        origin: &Origin,
    ) -> Result<(Invitation, InvitationCode), Error> {
        let request = request.get();
        self.write_raising(|repo| {
            let inviter = authorize(repo, actor)?;
            let now = crate::now();
            // Made inside the unit of work: should a code's hash ever be stored already,
            // the retried unit makes another.
            let code = InvitationCode::generate()?;
            let invitation = repo.insert_invitation(&NewInvitation {
                code_hash: code.hash(),
                email: request.email.clone(),
                is_admin: request.is_admin,
                note: request.note.clone(),
                created_at: now,
                created_by: inviter,
                expires_at: now + request.expires_in,
                max_uses: request.max_uses,
            })?;
            repo.append_audit(&audit(
                AuditAction::InvitationCreated,
                inviter,
                None,
                origin,
                Some(invitation_detail(&invitation)),
            ))?;
            if let (Some(mail), Some(email)) = (&self.mail, &invitation.email) {
                let link = mail
                    .public_url
                    .as_deref()
                    .map(|base| crate::invitation_link(base, &code));
                let text = templates::invitation(&invitation, &code, link.as_deref());
                repo.append_mail(&NewMail {
                    kind: MailKind::Invitation,
                    to: email.as_str().to_owned(),
                    subject: text.subject,
                    body: text.body,
                    at: now,
                })?;
                RAISED.with(|raised| raised.set(true));
            }
            Ok((invitation, code))
        })
    }

    /// The invitations matching `query`, newest first, their status taken now.
    ///
    /// # Errors
    /// The actor's refusals; store failures.
    pub fn list_invitations(
        &self,
        actor: Actor,
        query: &InvitationQuery,
    ) -> Result<Page<Invitation>, Error> {
        self.store.read_with(|repo| {
            authorize(repo, actor)?;
            repo.list_invitations(query, crate::now())
        })
    }

    /// Invitation `id`.
    ///
    /// # Errors
    /// [`Error::InvitationNotFound`]; the actor's refusals; store failures.
    pub fn find_invitation(&self, actor: Actor, id: i64) -> Result<Invitation, Error> {
        self.store.read_with(|repo| {
            authorize(repo, actor)?;
            repo.find_invitation(id)?.ok_or(Error::InvitationNotFound)
        })
    }

    /// Revokes invitation `id` as `actor`: it admits nobody from now on and is kept for the
    /// record. Revoking it again changes nothing and writes no second audit entry.
    ///
    /// # Errors
    /// [`Error::InvitationNotFound`]; the actor's refusals; store failures.
    pub fn revoke_invitation(
        &self,
        actor: Actor,
        id: i64,
        origin: &Origin,
    ) -> Result<Invitation, Error> {
        self.store.write_with(|repo| {
            let admin = authorize(repo, actor)?;
            let before = repo.find_invitation(id)?.ok_or(Error::InvitationNotFound)?;
            let after = repo
                .revoke_invitation(id, crate::now())?
                .ok_or(Error::InvitationNotFound)?;
            if before.revoked_at.is_none() {
                repo.append_audit(&audit(
                    AuditAction::InvitationRevoked,
                    admin,
                    None,
                    origin,
                    Some(invitation_detail(&after)),
                ))?;
            }
            Ok(after)
        })
    }

    /// Forgets ended and expired sessions (with their refresh tokens), idle throttling
    /// counters, device tokens unused for [`DEVICE_MEMORY`], settled webhook deliveries
    /// older than [`DELIVERY_MEMORY`] and audit entries older than the retention.
    ///
    /// # Errors
    /// Store failures.
    pub fn prune(&self, now: DateTime<Utc>) -> Result<u64, Error> {
        let idle_before = now - ThrottlePolicy::FAILURE_MEMORY;
        let mut pruned = self.store.write_with(|repo| {
            Ok(repo.prune(now, idle_before)?
                + repo.prune_devices(now - DEVICE_MEMORY)?
                + repo.prune_sessions(now)?
                + repo.prune_deliveries(now - DELIVERY_MEMORY)?)
        })?;
        if let Some(retention) = self.audit_retention {
            // In batches, each its own transaction: a backlog of millions of entries (the
            // first prune after retention was set) would otherwise be one statement that
            // holds the write lock, and outlasts a database call's time limit, every time.
            loop {
                let batch = self
                    .store
                    .write_with(|repo| repo.prune_audit(now - retention, AUDIT_PRUNE_BATCH))?;
                pruned += batch;
                if batch < AUDIT_PRUNE_BATCH {
                    break;
                }
            }
        }
        Ok(pruned)
    }

    /// Whether the store answers.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    pub fn ping(&self) -> Result<(), Error> {
        self.store.ping()
    }
}

/// The session of a verified token, from what the store found for it: the user exists,
/// the session is theirs and live at `now`, and the rules accept the token.
fn session(
    found: Option<(User, Option<SessionState>)>,
    claims: TokenClaims,
    now: DateTime<Utc>,
) -> Result<Session, Error> {
    let (user, state) = found.ok_or(Error::Unauthenticated)?;
    if !state.is_some_and(|state| state.is_live(now)) {
        return Err(Error::Unauthenticated);
    }
    rules::ensure_token_still_valid(&user, &claims)?;
    Ok(Session { user, claims })
}

/// The session's user as it is now, if the session's token is still good for a change:
/// the user exists, is approved, the token's version is current and its session live.
fn still_current(repo: &mut dyn UserRepo, session: &Session) -> Result<User, Error> {
    let found = repo.find_session_user(session.user.id, session.claims.session_id)?;
    Ok(self::session(found, session.claims.clone(), crate::now())?.user)
}

/// Ends every session of a user whose change ended their tokens (leaving `approved`: a
/// disable, a rejection, a return to pending), in the change's transaction.
fn end_sessions_if_tokens_ended(
    repo: &mut dyn UserRepo,
    before: &User,
    after: &User,
) -> Result<(), Error> {
    if after.token_version != before.token_version {
        repo.revoke_sessions(after.id, None, crate::now())?;
    }
    Ok(())
}

/// An audit detail for sessions ended at once (`which`: "" or "other ").
fn sessions_detail(ended: u64, which: &str) -> String {
    format!(
        "{ended} {which}session{} ended",
        if ended == 1 { "" } else { "s" }
    )
}

/// The counters a guess leaves if it turns out wrong (see [`UserService::check_guess`]).
#[derive(Debug)]
pub(crate) struct WrongGuess {
    scope: CounterScope,
    key: String,
    key_counter: crate::Counter,
    address: Option<(String, crate::Counter)>,
}

/// One guess fewer on the address's budget, for a guess counted on an account (a device's
/// guesses never touch the address).
fn give_back_address_guess(
    repo: &mut dyn UserRepo,
    scope: CounterScope,
    origin: &Origin,
) -> Result<(), Error> {
    let address = origin
        .address
        .as_deref()
        .filter(|_| scope == CounterScope::LoginAccount)
        .map(address_key);
    if let Some(address) = address {
        if let Some(mut counter) = repo.counter(CounterScope::LoginAddress, &address)? {
            counter.count = (counter.count - 1).max(0);
            repo.save_counter(CounterScope::LoginAddress, &address, &counter)?;
        }
    }
    Ok(())
}

/// The detail of a coalesced `login_throttled` entry: `{"count":N}`.
fn throttled_detail(count: u64) -> String {
    serde_json::json!({ "count": count }).to_string()
}

/// Records a throttled login: one entry per account and address per
/// [`THROTTLED_AUDIT_WINDOW`], whose detail counts the refusals.
fn audit_throttled(
    repo: &mut dyn UserRepo,
    target: Option<UserId>,
    origin: &Origin,
) -> Result<(), Error> {
    let now = crate::now();
    let since = now - THROTTLED_AUDIT_WINDOW;
    let address = origin.address.as_deref();
    if let Some((id, detail)) =
        repo.latest_audit(AuditAction::LoginThrottled, target, address, since)?
    {
        let count = detail
            .as_deref()
            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .and_then(|d| d.get("count").and_then(serde_json::Value::as_u64))
            .unwrap_or(1);
        return repo.set_audit_detail(id, &throttled_detail(count.saturating_add(1)));
    }
    repo.append_audit(&audit(
        AuditAction::LoginThrottled,
        None,
        target,
        origin,
        Some(throttled_detail(1)),
    ))
}

fn throttled(throttled: Throttled) -> Error {
    Error::Throttled {
        retry_after: throttled.retry_after,
    }
}

/// The audit entries an edit makes: one per kind of change.
fn changes_audited(before: &User, after: &User) -> Vec<(AuditAction, Option<String>)> {
    let mut entries = Vec::new();
    if before.email != after.email {
        entries.push((
            AuditAction::UserEmailChanged,
            Some(format!("{} -> {}", before.email, after.email)),
        ));
    }
    if before.is_admin != after.is_admin {
        let action = if after.is_admin {
            AuditAction::UserPromoted
        } else {
            AuditAction::UserDemoted
        };
        entries.push((action, None));
    }
    if before.status != after.status {
        let action = match (before.status, after.status) {
            (UserStatus::Pending, UserStatus::Approved) => AuditAction::UserApproved,
            (_, UserStatus::Approved) => AuditAction::UserEnabled,
            (_, UserStatus::Rejected) => AuditAction::UserRejected,
            (_, UserStatus::Disabled) => AuditAction::UserDisabled,
            // Back to pending: access is withdrawn as by disabling.
            (_, UserStatus::Pending) => AuditAction::UserDisabled,
        };
        let noted = if after.decision_note.is_some() {
            ", with a note"
        } else {
            ""
        };
        entries.push((
            action,
            Some(format!("{} -> {}{noted}", before.status, after.status)),
        ));
    } else if before.decision_note != after.decision_note {
        // The same decision again with another note.
        let action = match after.status {
            UserStatus::Rejected => AuditAction::UserRejected,
            _ => AuditAction::UserApproved,
        };
        entries.push((action, Some(format!("{} note changed", after.status))));
    }
    entries
}

impl UserService {
    /// Queues the applicant's mail when `before` -> `after` decided their registration
    /// (approved from pending or rejected, or rejected), with a mailer configured.
    fn mail_applicant(
        &self,
        repo: &mut dyn UserRepo,
        before: &User,
        after: &User,
    ) -> Result<(), Error> {
        let Some(mail) = &self.mail else {
            return Ok(());
        };
        let decided = before.status != after.status
            && match after.status {
                UserStatus::Rejected => true,
                UserStatus::Approved => {
                    matches!(before.status, UserStatus::Pending | UserStatus::Rejected)
                }
                _ => false,
            };
        if !decided {
            return Ok(());
        }
        if let Some(text) = templates::decision(after, mail.public_url.as_deref()) {
            repo.append_mail(&NewMail {
                kind: MailKind::Decision,
                to: after.email.as_str().to_owned(),
                subject: text.subject,
                body: text.body,
                at: crate::now(),
            })?;
            RAISED.with(|raised| raised.set(true));
        }
        Ok(())
    }

    /// Queues the admin digest when it is due: users registered since the last one wait
    /// for approval, and the last was queued at least the interval ago. One mail per
    /// active admin, listing the newcomers (at most 50 named). Safe to race across
    /// instances: the check and the queueing are one serialized write. Returns how many
    /// mails were queued (0 without a mailer).
    ///
    /// # Errors
    /// Store failures.
    pub fn queue_admin_digest(&self, now: DateTime<Utc>) -> Result<u64, Error> {
        let Some(mail) = &self.mail else {
            return Ok(0);
        };
        // A read first: most calls find nothing due and write nothing.
        let due = |repo: &mut dyn UserRepo| -> Result<Option<DueDigest>, Error> {
            let last = repo
                .setting(DIGEST_SETTING)?
                .and_then(|text| DigestMark::parse(&text));
            if last
                .as_ref()
                .is_some_and(|last| now - last.at < mail.digest_interval)
            {
                return Ok(None);
            }
            // Newest first: the new ones are among the first.
            let pending = repo.list(&UserQuery {
                status: Some(UserStatus::Pending),
                limit: Some(50),
                ..UserQuery::default()
            })?;
            // Who is new: registered since the last digest, or up to a margin before it
            // and not seen by it (a registration stamped before the last digest but
            // committed after it). With verification required, admins hear of a user once
            // verified: the margin is then the verification code's life (a day), and only
            // verified users are named or seen.
            let verified_only = self.recovery.require_verified_email;
            let margin = if verified_only {
                DIGEST_MARGIN + crate::VERIFICATION_TTL
            } else {
                DIGEST_MARGIN
            };
            let counted = |user: &&User| !verified_only || user.email_verified;
            let new: Vec<User> = pending
                .items
                .iter()
                .filter(counted)
                .filter(|user| {
                    last.as_ref().is_none_or(|last| {
                        user.created_at > last.at - margin && !last.seen.contains(&user.id.get())
                    })
                })
                .cloned()
                .collect();
            let seen = pending
                .items
                .iter()
                .filter(counted)
                .filter(|user| user.created_at > now - margin)
                .map(|user| user.id.get())
                .collect();
            let total = if verified_only {
                pending
                    .total
                    .saturating_sub(repo.count_pending_unverified()?)
            } else {
                pending.total
            };
            Ok((!new.is_empty()).then_some((new, total, seen)))
        };
        if self.store.read_with(due)?.is_none() {
            return Ok(0);
        }
        self.write_raising(|repo| {
            let Some((new, total, seen)) = due(repo)? else {
                return Ok(0);
            };
            let admins = repo.list(&UserQuery {
                status: Some(UserStatus::Approved),
                is_admin: Some(true),
                ..UserQuery::default()
            })?;
            let text = templates::admin_digest(&new, total, mail.public_url.as_deref());
            for admin in &admins.items {
                repo.append_mail(&NewMail {
                    kind: MailKind::AdminDigest,
                    to: admin.email.as_str().to_owned(),
                    subject: text.subject.clone(),
                    body: text.body.clone(),
                    at: now,
                })?;
            }
            repo.put_setting(DIGEST_SETTING, &DigestMark { at: now, seen }.to_stored())?;
            if !admins.items.is_empty() {
                RAISED.with(|raised| raised.set(true));
            }
            Ok(admins.items.len() as u64)
        })
    }

    /// Mails claimed for sending (see `UserRepo::claim_mails`).
    ///
    /// # Errors
    /// Store failures.
    pub fn claim_mails(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<DueMail>, Error> {
        self.store
            .write_rows_with(|repo| repo.claim_mails(now, lease_until, limit))
    }

    /// How many mails wait to be sent.
    ///
    /// # Errors
    /// Store failures.
    pub fn mail_backlog(&self) -> Result<u64, Error> {
        self.store.read_with(|repo| repo.mail_backlog())
    }
}

/// Stores `password_hash` as `user`'s password, with a new token version: every session
/// of theirs ends and their tokens stop working; their failed logins are forgotten.
fn set_password(
    repo: &mut dyn UserRepo,
    mut user: User,
    password_hash: &PasswordHash,
) -> Result<User, Error> {
    user.password_hash = password_hash.clone();
    user.token_version += 1;
    let user = repo.update(&user)?;
    repo.revoke_sessions(user.id, None, crate::now())?;
    repo.delete_counter(CounterScope::LoginAccount, user.email.as_str())?;
    Ok(user)
}

/// Writes the event `action` raises about `user` (if any: see [`EventType::for_audit`]),
/// with its deliveries, in the change's own transaction.
fn raise(
    repo: &mut dyn UserRepo,
    action: AuditAction,
    user: &User,
    actor: Option<UserId>,
) -> Result<(), Error> {
    if let Some(event_type) = EventType::for_audit(action) {
        let deliveries =
            repo.append_event(&NewEvent::about(event_type, user, actor, crate::now())?)?;
        // Nothing to send without a subscribed endpoint: the dispatcher sleeps on.
        if deliveries > 0 {
            RAISED.with(|raised| raised.set(true));
        }
    }
    Ok(())
}

/// A digest to queue: who is new, how many wait in all, and whom it sees (see
/// [`DigestMark`]).
type DueDigest = (Vec<User>, u64, Vec<i64>);

/// How far before the last digest a registration may be stamped and still be new to the
/// next one: longer than a write waits for its turn and commits (the store's timeout).
const DIGEST_MARGIN: chrono::Duration = chrono::Duration::minutes(1);

/// What the last admin digest leaves for the next: when it was queued, and the pending
/// users it saw registered within [`DIGEST_MARGIN`] of then (named then or before), so that
/// the next names a registration committed late exactly once.
struct DigestMark {
    at: DateTime<Utc>,
    seen: Vec<i64>,
}

impl DigestMark {
    /// Stored as `{"at": RFC 3339, "seen": [ids]}`; before, the time alone was stored.
    fn parse(text: &str) -> Option<Self> {
        let time = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|at| at.with_timezone(&Utc))
        };
        if let Some(at) = time(text) {
            return Some(Self {
                at,
                seen: Vec::new(),
            });
        }
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        Some(Self {
            at: time(value.get("at")?.as_str()?)?,
            seen: value
                .get("seen")
                .and_then(serde_json::Value::as_array)
                .map(|ids| ids.iter().filter_map(serde_json::Value::as_i64).collect())
                .unwrap_or_default(),
        })
    }

    fn to_stored(&self) -> String {
        serde_json::json!({
            "at": self.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "seen": self.seen,
        })
        .to_string()
    }
}

thread_local! {
    /// Whether the unit of work running on this thread raised an event (units of work run
    /// on their caller's thread: see [`UserService::write_raising`]).
    static RAISED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// [`raise`] for an audited change of a user from `before` to `after`: a decision taken
/// again with only another note is audited but raises no event (nothing happened to the
/// user that a receiver has not heard of).
fn raise_for_change(
    repo: &mut dyn UserRepo,
    action: AuditAction,
    before: &User,
    after: &User,
    actor: Option<UserId>,
) -> Result<(), Error> {
    let note_only = before.status == after.status
        && matches!(
            action,
            AuditAction::UserApproved | AuditAction::UserRejected
        );
    if note_only {
        return Ok(());
    }
    raise(repo, action, after, actor)
}

/// Refuses, inside the unit of work, an email that another user has or that looks like
/// theirs (the same confusable skeleton: `admin@exаmple.com` with a Cyrillic а beside
/// `admin@example.com`), so no two accounts read the same in the console or the audit log.
/// Serialized writes make the check race-free; the unique index backs the exact case.
fn ensure_email_free(
    repo: &mut dyn UserRepo,
    email: &Email,
    except: Option<UserId>,
) -> Result<(), Error> {
    match repo.find_by_email_skeleton(email, except)? {
        Some(_) => Err(Error::EmailTaken),
        None => Ok(()),
    }
}

/// The invitation `code` names, if it admits `email` at `now`, with one more use counted
/// (one statement: the store finds it active and counts the use). An invitation for another
/// email refuses after the use is counted: the refusal rolls the unit of work back, the use
/// with it.
fn use_invitation(
    repo: &mut dyn UserRepo,
    code: &InvitationCode,
    email: &Email,
    now: DateTime<Utc>,
) -> Result<Invitation, Error> {
    let spent = repo
        .spend_invitation(&code.hash(), now)?
        .ok_or(Error::InvalidInvitation)?;
    // The rule's own word, on the invitation as it was before this use.
    let before = Invitation {
        uses: spent.uses.saturating_sub(1),
        ..spent.clone()
    };
    before
        .admits(email, now)
        .map_err(|_| Error::InvalidInvitation)?;
    Ok(spent)
}

/// How an invitation is named in the audit log: `invitation 7` and, as they apply, `for
/// ann@example.com`, `as admin`, `2 uses`.
fn invitation_detail(invitation: &Invitation) -> String {
    let mut detail = format!("invitation {}", invitation.id);
    if let Some(email) = &invitation.email {
        detail.push_str(" for ");
        detail.push_str(email.as_str());
    }
    if invitation.is_admin {
        detail.push_str(" as admin");
    }
    if invitation.max_uses > 1 {
        detail.push_str(&format!(", {} uses", invitation.max_uses));
    }
    detail
}

/// Checks, inside the unit of work, that the actor may administer users right now; returns
/// the acting admin's id (none for the operator).
fn authorize(repo: &mut dyn UserRepo, actor: Actor) -> Result<Option<UserId>, Error> {
    match actor {
        Actor::Operator => Ok(None),
        Actor::User(id) => {
            rules::ensure_admin(repo.find_by_id(id)?.as_ref())?;
            Ok(Some(id))
        }
    }
}
