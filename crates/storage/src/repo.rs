//! [`UserRepo`] over one diesel connection inside a transaction.

use diesel::prelude::*;
use gatehouse_domain::{
    Email, Error, NewUser, Page, User, UserId, UserQuery, UserRepo, UserStatus,
};

use crate::errors::from_diesel;
use crate::rows::{NewUserRow, UserChangeset, UserRow};
use crate::schema::users;
use crate::{Backend, Conn};

/// The repository as seen from inside one transaction on `conn`.
pub(crate) struct SqlUserRepo<'c> {
    pub(crate) conn: &'c mut Conn,
}

fn to_user(row: UserRow) -> Result<User, Error> {
    User::try_from(row)
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// `users` filtered as `query` says (without order or paging).
fn filtered(query: &UserQuery) -> users::BoxedQuery<'static, Backend> {
    let mut select = users::table.into_boxed();
    if let Some(status) = query.status {
        select = select.filter(users::status.eq(status.as_str()));
    }
    if let Some(needle) = &query.email_contains {
        select = select.filter(users::email.like(like_pattern(needle)).escape('\\'));
    }
    select
}

/// A LIKE pattern matching `needle` literally anywhere, lower-cased as emails are stored.
fn like_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl UserRepo for SqlUserRepo<'_> {
    fn count_users(&mut self) -> Result<u64, Error> {
        users::table
            .count()
            .get_result::<i64>(self.conn)
            .map(count)
            .map_err(from_diesel)
    }

    fn count_active_admins(&mut self) -> Result<u64, Error> {
        users::table
            .filter(users::is_admin.eq(true))
            .filter(users::status.eq(UserStatus::Approved.as_str()))
            .count()
            .get_result::<i64>(self.conn)
            .map(count)
            .map_err(from_diesel)
    }

    fn count_with_status(&mut self, status: UserStatus) -> Result<u64, Error> {
        users::table
            .filter(users::status.eq(status.as_str()))
            .count()
            .get_result::<i64>(self.conn)
            .map(count)
            .map_err(from_diesel)
    }

    fn insert(&mut self, user: NewUser) -> Result<User, Error> {
        diesel::insert_into(users::table)
            .values(NewUserRow::from(&user))
            .get_result::<UserRow>(self.conn)
            .map_err(from_diesel)
            .and_then(to_user)
    }

    fn find_by_id(&mut self, id: UserId) -> Result<Option<User>, Error> {
        users::table
            .find(id.get())
            .select(UserRow::as_select())
            .first(self.conn)
            .optional()
            .map_err(from_diesel)?
            .map(to_user)
            .transpose()
    }

    fn find_by_email(&mut self, email: &Email) -> Result<Option<User>, Error> {
        users::table
            .filter(users::email.eq(email.as_str()))
            .select(UserRow::as_select())
            .first(self.conn)
            .optional()
            .map_err(from_diesel)?
            .map(to_user)
            .transpose()
    }

    fn list(&mut self, query: &UserQuery) -> Result<Page<User>, Error> {
        let total = filtered(query)
            .count()
            .get_result::<i64>(self.conn)
            .map_err(from_diesel)?;
        let mut select = filtered(query)
            .select(UserRow::as_select())
            .order(users::id.desc());
        if query.offset > 0 || query.limit.is_some() {
            // SQLite has no OFFSET without LIMIT; "no limit" is the largest one.
            let limit = query
                .limit
                .map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
            select = select
                .limit(limit)
                .offset(i64::try_from(query.offset).unwrap_or(i64::MAX));
        }
        let items = select
            .load(self.conn)
            .map_err(from_diesel)?
            .into_iter()
            .map(to_user)
            .collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            total: count(total),
        })
    }

    fn update(&mut self, user: &User) -> Result<User, Error> {
        diesel::update(users::table.find(user.id.get()))
            .set(UserChangeset::from(user))
            .get_result::<UserRow>(self.conn)
            .optional()
            .map_err(from_diesel)?
            .ok_or(Error::UserNotFound)
            .and_then(to_user)
    }

    fn delete(&mut self, id: UserId) -> Result<bool, Error> {
        diesel::delete(users::table.find(id.get()))
            .execute(self.conn)
            .map(|deleted| deleted > 0)
            .map_err(from_diesel)
    }
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("Ab"), "%ab%");
        assert_eq!(like_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }
}
