use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::{
    Email, Error, NewUser, Page, User, UserId, UserQuery, UserRepo, UserStatus, UserStore,
};

/// A store in a mutex: every unit of work runs on a copy of the state under the lock and
/// replaces the state only when it succeeds, so it is serializable and rolls back like a
/// database transaction. Passes the contract suite; meant for tests.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Clone, Default)]
struct State {
    users: BTreeMap<i64, User>,
    last_id: i64,
}

impl InMemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, Error> {
        self.state
            .lock()
            .map_err(|_| Error::internal("in-memory store", "a unit of work panicked"))
    }
}

impl UserStore for InMemoryStore {
    fn read(&self, work: &mut crate::ports::Work<'_>) -> Result<(), Error> {
        let mut copy = self.lock()?.clone();
        work(&mut copy)
    }

    fn write(&self, work: &mut crate::ports::Work<'_>) -> Result<(), Error> {
        let mut guard = self.lock()?;
        let mut copy = guard.clone();
        work(&mut copy)?;
        *guard = copy;
        Ok(())
    }

    fn ping(&self) -> Result<(), Error> {
        self.lock().map(drop)
    }
}

impl State {
    fn email_taken(&self, email: &Email, except: Option<UserId>) -> bool {
        self.users
            .values()
            .any(|u| &u.email == email && Some(u.id) != except)
    }
}

impl UserRepo for State {
    fn count_users(&mut self) -> Result<u64, Error> {
        Ok(self.users.len() as u64)
    }

    fn count_active_admins(&mut self) -> Result<u64, Error> {
        Ok(self.users.values().filter(|u| u.is_active_admin()).count() as u64)
    }

    fn count_with_status(&mut self, status: UserStatus) -> Result<u64, Error> {
        Ok(self.users.values().filter(|u| u.status == status).count() as u64)
    }

    fn insert(&mut self, new: NewUser) -> Result<User, Error> {
        if self.email_taken(&new.email, None) {
            return Err(Error::EmailTaken);
        }
        let id = self.last_id + 1;
        let user = User {
            id: UserId::new(id).map_err(|e| Error::internal("in-memory id", e))?,
            email: new.email,
            password_hash: new.password_hash,
            is_admin: new.is_admin,
            status: new.status,
            created_at: new.created_at,
            approved_at: new.approved_at,
            approved_by: new.approved_by,
            token_version: 0,
        };
        self.last_id = id;
        self.users.insert(id, user.clone());
        Ok(user)
    }

    fn find_by_id(&mut self, id: UserId) -> Result<Option<User>, Error> {
        Ok(self.users.get(&id.get()).cloned())
    }

    fn find_by_email(&mut self, email: &Email) -> Result<Option<User>, Error> {
        Ok(self.users.values().find(|u| &u.email == email).cloned())
    }

    fn list(&mut self, query: &UserQuery) -> Result<Page<User>, Error> {
        let needle = query.email_contains.as_deref().map(str::to_lowercase);
        let matching: Vec<&User> = self
            .users
            .values()
            .rev()
            .filter(|u| query.status.is_none_or(|s| u.status == s))
            .filter(|u| {
                needle
                    .as_deref()
                    .is_none_or(|n| u.email.as_str().contains(n))
            })
            .collect();
        let total = matching.len() as u64;
        let offset = usize::try_from(query.offset).unwrap_or(usize::MAX);
        let limit = query
            .limit
            .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        let items = matching
            .into_iter()
            .skip(offset)
            .take(limit)
            .cloned()
            .collect();
        Ok(Page { items, total })
    }

    fn update(&mut self, user: &User) -> Result<User, Error> {
        if !self.users.contains_key(&user.id.get()) {
            return Err(Error::UserNotFound);
        }
        if self.email_taken(&user.email, Some(user.id)) {
            return Err(Error::EmailTaken);
        }
        let stored = self
            .users
            .get_mut(&user.id.get())
            .ok_or(Error::UserNotFound)?;
        let created_at = stored.created_at;
        *stored = User {
            created_at,
            ..user.clone()
        };
        Ok(stored.clone())
    }

    fn delete(&mut self, id: UserId) -> Result<bool, Error> {
        let existed = self.users.remove(&id.get()).is_some();
        for user in self.users.values_mut() {
            if user.approved_by == Some(id) {
                user.approved_by = None;
            }
        }
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    crate::user_store_contract_tests!(Box::new(super::InMemoryStore::new()));
}
