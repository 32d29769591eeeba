use std::fmt;
use std::sync::Arc;

use crate::rules;
use crate::{
    AccessToken, Email, Error, NewUser, Page, Password, PasswordHasher, TokenService, User,
    UserChanges, UserId, UserQuery, UserRepo, UserStatus, UserStore, UserStoreExt,
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

/// The use cases. Every method is synchronous and may block (database, bcrypt): call it
/// off any async executor. Each runs its reads, rule checks and writes in one unit of work.
#[derive(Clone)]
pub struct UserService {
    store: Arc<dyn UserStore>,
    hasher: Arc<dyn PasswordHasher>,
    tokens: Arc<dyn TokenService>,
}

impl fmt::Debug for UserService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserService").finish_non_exhaustive()
    }
}

impl UserService {
    /// Wires the use cases to their ports.
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
        }
    }

    /// Registers a user: the first one ever becomes an approved admin, later ones wait as
    /// pending non-admins. Hashes the password (slow) before taking the write lock.
    ///
    /// # Errors
    /// [`Error::EmailTaken`]; store and hashing failures.
    pub fn register(&self, email: Email, password: &Password) -> Result<User, Error> {
        let password_hash = self.hasher.hash(password)?;
        self.store.write_with(|repo| {
            if repo.find_by_email(&email)?.is_some() {
                return Err(Error::EmailTaken);
            }
            let role = rules::role_for_new_user(repo.count_users()?);
            let now = crate::now();
            repo.insert(NewUser {
                email: email.clone(),
                password_hash: password_hash.clone(),
                is_admin: role.is_admin,
                status: role.status,
                created_at: now,
                approved_at: (role.status == UserStatus::Approved).then_some(now),
                approved_by: None,
            })
        })
    }

    /// Checks an email and password and issues a token.
    ///
    /// Takes the raw strings: anything that cannot be a registered email or password is
    /// simply wrong, and costs one bcrypt verification like any other wrong guess. Pending
    /// and disabled accounts are told so only after their password was verified.
    ///
    /// # Errors
    /// [`Error::InvalidCredentials`], [`Error::AccountPending`], [`Error::AccountDisabled`];
    /// store and hashing failures.
    pub fn login(&self, email: &str, password: &str) -> Result<AccessToken, Error> {
        let user = match Email::parse(email) {
            Ok(email) => self.store.read_with(|repo| repo.find_by_email(&email))?,
            Err(_) => None,
        };
        let Some(user) = user else {
            self.hasher.verify_dummy(password);
            return Err(Error::InvalidCredentials);
        };
        if !self.hasher.verify(password, &user.password_hash)? {
            return Err(Error::InvalidCredentials);
        }
        rules::ensure_can_log_in(&user)?;
        self.tokens.issue(&user)
    }

    /// The user a token belongs to, if the token is valid and still grants access.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`]; store failures.
    pub fn current_user(&self, token: &str) -> Result<User, Error> {
        let claims = self.tokens.verify(token)?;
        let user = self
            .store
            .read_with(|repo| repo.find_by_id(claims.user_id))?
            .ok_or(Error::Unauthenticated)?;
        rules::ensure_token_still_valid(&user, &claims)?;
        Ok(user)
    }

    /// The users matching `query`, newest first.
    ///
    /// # Errors
    /// [`Error::AdminRequired`] or [`Error::Unauthenticated`] for a non-admin actor; store
    /// failures.
    pub fn list_users(&self, actor: Actor, query: &UserQuery) -> Result<Page<User>, Error> {
        self.store.read_with(|repo| {
            authorize(repo, actor)?;
            repo.list(query)
        })
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
    ) -> Result<User, Error> {
        self.store.write_with(|repo| {
            let acting_admin = authorize(repo, actor)?;
            let before = repo.find_by_id(target)?.ok_or(Error::UserNotFound)?;
            let after = rules::apply_changes(&before, changes, acting_admin, crate::now());
            if after == before {
                return Ok(before);
            }
            if after.email != before.email && repo.find_by_email(&after.email)?.is_some() {
                return Err(Error::EmailTaken);
            }
            let active_admins = if rules::loses_active_admin(&before, Some(&after)) {
                repo.count_active_admins()?
            } else {
                0
            };
            rules::ensure_active_admin_remains(&before, Some(&after), active_admins)?;
            repo.update(&after)
        })
    }

    /// Deletes a user, unless that would leave no active admin.
    ///
    /// # Errors
    /// [`Error::UserNotFound`], [`Error::LastAdmin`]; the actor's refusals; store failures.
    pub fn delete_user(&self, actor: Actor, target: UserId) -> Result<(), Error> {
        self.store.write_with(|repo| {
            authorize(repo, actor)?;
            let before = repo.find_by_id(target)?.ok_or(Error::UserNotFound)?;
            let active_admins = if rules::loses_active_admin(&before, None) {
                repo.count_active_admins()?
            } else {
                0
            };
            rules::ensure_active_admin_remains(&before, None, active_admins)?;
            if repo.delete(target)? {
                Ok(())
            } else {
                Err(Error::UserNotFound)
            }
        })
    }

    /// Sets a user's password and revokes every token issued to them before.
    ///
    /// # Errors
    /// [`Error::UserNotFound`]; the actor's refusals; store and hashing failures.
    pub fn reset_password(
        &self,
        actor: Actor,
        target: UserId,
        password: &Password,
    ) -> Result<User, Error> {
        let password_hash = self.hasher.hash(password)?;
        self.store.write_with(|repo| {
            authorize(repo, actor)?;
            let mut user = repo.find_by_id(target)?.ok_or(Error::UserNotFound)?;
            user.password_hash = password_hash.clone();
            user.token_version += 1;
            repo.update(&user)
        })
    }

    /// Whether the store answers.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    pub fn ping(&self) -> Result<(), Error> {
        self.store.ping()
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
