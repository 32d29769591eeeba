use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::rules;
use crate::{
    AccessToken, AuditAction, AuditEntry, AuditQuery, CounterScope, Email, Error, NewAuditEntry,
    NewUser, Page, Password, PasswordHasher, ThrottlePolicy, Throttled, TokenClaims, TokenService,
    User, UserChanges, UserId, UserQuery, UserRepo, UserStatus, UserStore, UserStoreExt,
};

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
}

impl Origin {
    /// A request from `address`.
    #[must_use]
    pub fn address(address: impl Into<String>) -> Self {
        Self {
            address: Some(address.into()),
            note: None,
        }
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
    key: String,
    user: Option<User>,
    origin: Origin,
}

/// The use cases. Every method is synchronous and may block (database, bcrypt): call it
/// off any async executor. Each runs its reads, rule checks and writes in one unit of work
/// (login and password changes in two: the attempt is counted before the slow password
/// check, and its outcome recorded after).
#[derive(Clone)]
pub struct UserService {
    store: Arc<dyn UserStore>,
    hasher: Arc<dyn PasswordHasher>,
    tokens: Arc<dyn TokenService>,
    throttle: ThrottlePolicy,
}

impl fmt::Debug for UserService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserService")
            .field("throttle", &self.throttle)
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
        }
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
        if let Some(address) = &origin.address {
            let now = crate::now();
            self.store
                .write_with(|repo| {
                    let counter = repo.counter(CounterScope::RegisterAddress, address)?;
                    Ok(match self.throttle.register_attempt(counter, now) {
                        Ok(Some(counter)) => {
                            repo.save_counter(CounterScope::RegisterAddress, address, &counter)?;
                            Ok(())
                        }
                        Ok(None) => Ok(()),
                        Err(throttled) => Err(throttled),
                    })
                })?
                .map_err(throttled)?;
        }
        let password_hash = self.hasher.hash(password)?;
        self.store.write_with(|repo| {
            ensure_email_free(repo, &email, None)?;
            let existing = u64::from(repo.any_user_exists()?);
            let role = rules::role_for_new_user(existing);
            let now = crate::now();
            let user = repo.insert(NewUser {
                email: email.clone(),
                password_hash: password_hash.clone(),
                is_admin: role.is_admin,
                status: role.status,
                created_at: now,
                approved_at: (role.status == UserStatus::Approved).then_some(now),
                approved_by: None,
            })?;
            repo.append_audit(&audit(
                AuditAction::UserRegistered,
                Some(user.id),
                Some(user.id),
                origin,
                None,
            ))?;
            Ok(user)
        })
    }

    /// Checks an email and password and issues a token.
    ///
    /// The attempt is counted first (per account and per address), so parallel guesses
    /// cannot outrun the limits; a locked account or a spent address budget is refused
    /// without checking the password. Anything that cannot be a registered email or
    /// password is simply wrong and costs one bcrypt verification like any other wrong
    /// guess. Pending and disabled accounts are told so only after their password was
    /// verified. A successful login clears the account's failures.
    ///
    /// # Errors
    /// [`Error::Throttled`], [`Error::InvalidCredentials`], [`Error::AccountPending`],
    /// [`Error::AccountDisabled`]; store and hashing failures.
    pub fn login(
        &self,
        email: &str,
        password: &str,
        origin: &Origin,
    ) -> Result<AccessToken, Error> {
        let attempt = self.begin_login(email, origin)?;
        self.finish_login(attempt, password)
    }

    /// The first half of [`login`](Self::login): counts the attempt (a short write
    /// transaction, no hashing), so a throttled attempt is refused before it costs any
    /// bcrypt work or waits for a hashing thread.
    ///
    /// # Errors
    /// [`Error::Throttled`]; store failures.
    pub fn begin_login(&self, email: &str, origin: &Origin) -> Result<LoginAttempt, Error> {
        let key = account_key(email);
        let parsed = Email::parse(email).ok();
        let user = self
            .store
            .write_with(|repo| {
                let user = match &parsed {
                    Some(email) => repo.find_by_email(email)?,
                    None => None,
                };
                let reserved = self.reserve_guess(repo, &key, origin)?;
                if reserved.is_err() {
                    let target = user.as_ref().map(|u| u.id);
                    repo.append_audit(&audit(
                        AuditAction::LoginThrottled,
                        None,
                        target,
                        origin,
                        None,
                    ))?;
                }
                Ok(reserved.map(|()| user))
            })?
            .map_err(throttled)?;
        Ok(LoginAttempt {
            key,
            user,
            origin: origin.clone(),
        })
    }

    /// The second half of [`login`](Self::login): verifies the password (bcrypt: run it
    /// on a bounded pool), records the outcome and issues the token.
    ///
    /// # Errors
    /// [`Error::InvalidCredentials`], [`Error::AccountPending`], [`Error::AccountDisabled`];
    /// store and hashing failures.
    pub fn finish_login(
        &self,
        attempt: LoginAttempt,
        password: &str,
    ) -> Result<AccessToken, Error> {
        let LoginAttempt { key, user, origin } = attempt;
        let origin = &origin;
        let verified = match &user {
            Some(user) => self.hasher.verify(password, &user.password_hash)?,
            None => {
                self.hasher.verify_dummy(password);
                false
            }
        };
        let outcome = match &user {
            Some(user) if verified => rules::ensure_can_log_in(user).map(|()| user),
            _ => Err(Error::InvalidCredentials),
        };
        self.store.write_with(|repo| {
            let target = user.as_ref().map(|u| u.id);
            if verified {
                // The password was right: this was no guess, whatever the account's state.
                self.forgive_guess(repo, &key, origin)?;
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
            repo.append_audit(&entry)
        })?;
        self.tokens.issue(outcome?)
    }

    /// Counts one password guess against the account and the address, or says how long to
    /// wait. Nothing is counted when refused.
    fn reserve_guess(
        &self,
        repo: &mut dyn UserRepo,
        account: &str,
        origin: &Origin,
    ) -> Result<Result<(), Throttled>, Error> {
        let now = crate::now();
        let account_counter = match self
            .throttle
            .account_attempt(repo.counter(CounterScope::LoginAccount, account)?, now)
        {
            Ok(counter) => counter,
            Err(throttled) => return Ok(Err(throttled)),
        };
        let address_counter = match &origin.address {
            Some(address) => match self
                .throttle
                .address_attempt(repo.counter(CounterScope::LoginAddress, address)?, now)
            {
                Ok(counter) => Some((address, counter)),
                Err(throttled) => return Ok(Err(throttled)),
            },
            None => None,
        };
        repo.save_counter(CounterScope::LoginAccount, account, &account_counter)?;
        if let Some((address, counter)) = address_counter {
            repo.save_counter(CounterScope::LoginAddress, address, &counter)?;
        }
        Ok(Ok(()))
    }

    /// Undoes a reserved guess that turned out to be the right password.
    fn forgive_guess(
        &self,
        repo: &mut dyn UserRepo,
        account: &str,
        origin: &Origin,
    ) -> Result<(), Error> {
        repo.delete_counter(CounterScope::LoginAccount, account)?;
        if let Some(address) = &origin.address {
            if let Some(mut counter) = repo.counter(CounterScope::LoginAddress, address)? {
                counter.count = (counter.count - 1).max(0);
                repo.save_counter(CounterScope::LoginAddress, address, &counter)?;
            }
        }
        Ok(())
    }

    /// The session a token opens, if the token is valid, not revoked, and its user still
    /// approved with no password change since it was issued.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`]; store failures.
    pub fn current_user(&self, token: &str) -> Result<Session, Error> {
        let claims = self.tokens.verify(token)?;
        let found = self
            .store
            .read_single_with(|repo| repo.find_session_user(claims.user_id, &claims.id))?;
        session(found, claims)
    }

    /// [`current_user`](Self::current_user) on the calling thread when it needs no waiting:
    /// a token that does not verify is refused at once, and the user is read only if the
    /// store can answer right away (an embedded database). `None` when it cannot: call
    /// `current_user` off the async executor then. The same checks either way.
    #[must_use]
    pub fn current_user_now(&self, token: &str) -> Option<Result<Session, Error>> {
        let claims = match self.tokens.verify(token) {
            Ok(claims) => claims,
            Err(e) => return Some(Err(e)),
        };
        let found = self
            .store
            .try_read_single_now_with(|repo| repo.find_session_user(claims.user_id, &claims.id))?;
        Some(found.and_then(|found| session(found, claims)))
    }

    /// [`current_user`](Self::current_user) for a store that
    /// [batches session lookups](UserStore::batches_session_lookups): the token is verified
    /// at once and `done` gets the session later, from the store's thread, without a thread
    /// of the caller's waiting on the database. The same checks as `current_user`; the
    /// user is read after this call. `Err(done)` when the store does not batch: call
    /// `current_user` off the async executor then.
    ///
    /// # Errors
    /// `done` receives [`Error::Unauthenticated`] or store failures.
    pub fn current_user_deferred<F>(&self, token: &str, done: F) -> Result<(), F>
    where
        F: FnOnce(Result<Session, Error>) + Send + 'static,
    {
        if !self.store.batches_session_lookups() {
            return Err(done);
        }
        match self.tokens.verify(token) {
            Ok(claims) => {
                let (id, token_id) = (claims.user_id, claims.id.clone());
                self.store.lookup_session_user(
                    id,
                    &token_id,
                    Box::new(move |found| done(found.and_then(|found| session(found, claims)))),
                );
            }
            Err(e) => done(Err(e)),
        }
        Ok(())
    }

    /// Revokes the session's token.
    ///
    /// # Errors
    /// Store failures.
    pub fn logout(&self, session: &Session, origin: &Origin) -> Result<(), Error> {
        self.store.write_with(|repo| {
            repo.revoke_token(
                &session.claims.id,
                session.user.id,
                session.claims.expires_at,
            )?;
            let id = Some(session.user.id);
            repo.append_audit(&audit(AuditAction::Logout, id, id, origin, None))
        })
    }

    /// Changes the signed-in user's own password, revoking every token issued before and
    /// returning a fresh one. The current password is checked like a login (and counted
    /// against the account's failures, so a stolen token cannot brute-force it).
    ///
    /// # Errors
    /// [`Error::Throttled`], [`Error::WrongCurrentPassword`], [`Error::Unauthenticated`]
    /// (the user vanished meanwhile); store and hashing failures.
    pub fn change_password(
        &self,
        session: &Session,
        current: &str,
        new: &Password,
        origin: &Origin,
    ) -> Result<AccessToken, Error> {
        let key = session.user.email.as_str().to_owned();
        self.store
            .write_with(|repo| self.reserve_guess(repo, &key, origin))?
            .map_err(throttled)?;
        if !self.hasher.verify(current, &session.user.password_hash)? {
            let id = Some(session.user.id);
            let entry = audit(
                AuditAction::LoginFailed,
                id,
                id,
                origin,
                Some("wrong current password".into()),
            );
            self.store.write_with(|repo| repo.append_audit(&entry))?;
            return Err(Error::WrongCurrentPassword);
        }
        let password_hash = self.hasher.hash(new)?;
        let user = self.store.write_with(|repo| {
            self.forgive_guess(repo, &key, origin)?;
            let mut user = repo
                .find_by_id(session.user.id)?
                .ok_or(Error::Unauthenticated)?;
            user.password_hash = password_hash.clone();
            user.token_version += 1;
            let user = repo.update(&user)?;
            let id = Some(user.id);
            repo.append_audit(&audit(AuditAction::PasswordChanged, id, id, origin, None))?;
            Ok(user)
        })?;
        self.tokens.issue(&user)
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
        self.store
            .read_with(|repo| authorize(repo, actor).map(drop))?;
        let password_hash = self.hasher.hash(&request.password)?;
        self.store.write_with(|repo| {
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

    /// The users matching `query`, newest first.
    ///
    /// # Errors
    /// [`Error::AdminRequired`] or [`Error::Unauthenticated`] for a non-admin actor; store
    /// failures.
    pub fn list_users(&self, actor: Actor, query: &UserQuery) -> Result<Page<User>, Error> {
        let work = |repo: &mut dyn UserRepo| {
            authorize(repo, actor)?;
            repo.list(query)
        };
        if query.email_contains.is_none() {
            // Stores answer a page and its total in one statement without a search (see
            // `UserRepo::list`); the actor's check is a read of its own. No transaction
            // needed: its BEGIN and COMMIT were two of a PostgreSQL listing's five round
            // trips.
            self.store.read_single_with(work)
        } else {
            self.store.read_with(work)
        }
    }

    /// How many users wait for approval.
    ///
    /// # Errors
    /// As [`list_users`](Self::list_users).
    pub fn pending_count(&self, actor: Actor) -> Result<u64, Error> {
        self.store.read_with(|repo| {
            authorize(repo, actor)?;
            repo.count_with_status(UserStatus::Pending)
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

    /// The audit entries matching `query`, newest first.
    ///
    /// # Errors
    /// As [`list_users`](Self::list_users).
    pub fn list_audit(&self, actor: Actor, query: &AuditQuery) -> Result<Page<AuditEntry>, Error> {
        self.store.read_with(|repo| {
            authorize(repo, actor)?;
            repo.list_audit(query)
        })
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
        self.store.write_with(|repo| {
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
            for (action, detail) in changes_audited(&before, &after) {
                repo.append_audit(&audit(action, acting_admin, Some(target), origin, detail))?;
            }
            Ok(stored)
        })
    }

    /// Deletes a user, unless that would leave no active admin.
    ///
    /// # Errors
    /// [`Error::UserNotFound`], [`Error::LastAdmin`]; the actor's refusals; store failures.
    pub fn delete_user(&self, actor: Actor, target: UserId, origin: &Origin) -> Result<(), Error> {
        self.store.write_with(|repo| {
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
            ))
        })
    }

    /// Sets a user's password, revokes every token issued to them before, and clears
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
        let password_hash = self.hasher.hash(password)?;
        self.store.write_with(|repo| {
            let acting_admin = authorize(repo, actor)?;
            let mut user = repo.find_by_id(target)?.ok_or(Error::UserNotFound)?;
            user.password_hash = password_hash.clone();
            user.token_version += 1;
            let user = repo.update(&user)?;
            repo.delete_counter(CounterScope::LoginAccount, user.email.as_str())?;
            repo.append_audit(&audit(
                AuditAction::PasswordReset,
                acting_admin,
                Some(target),
                origin,
                None,
            ))?;
            Ok(user)
        })
    }

    /// Forgets revocations of expired tokens and idle throttling counters.
    ///
    /// # Errors
    /// Store failures.
    pub fn prune(&self, now: DateTime<Utc>) -> Result<u64, Error> {
        let idle_before = now - ThrottlePolicy::FAILURE_MEMORY;
        self.store.write_with(|repo| repo.prune(now, idle_before))
    }

    /// Whether the store answers.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    pub fn ping(&self) -> Result<(), Error> {
        self.store.ping()
    }
}

/// The session of a verified token, from what the store found for it.
fn session(found: Option<(User, bool)>, claims: TokenClaims) -> Result<Session, Error> {
    let (user, revoked) = found.ok_or(Error::Unauthenticated)?;
    if revoked {
        return Err(Error::Unauthenticated);
    }
    rules::ensure_token_still_valid(&user, &claims)?;
    Ok(Session { user, claims })
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
            (_, UserStatus::Disabled) => AuditAction::UserDisabled,
            // Back to pending: access is withdrawn as by disabling.
            (_, UserStatus::Pending) => AuditAction::UserDisabled,
        };
        entries.push((
            action,
            Some(format!("{} -> {}", before.status, after.status)),
        ));
    }
    entries
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
