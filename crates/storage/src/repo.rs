//! [`UserRepo`] over one diesel connection inside a transaction.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use gatehouse_domain::{
    Attempt, AuditAction, AuditEntry, AuditQuery, Counter, CounterScope, Delivery, DueDelivery,
    DueMail, Email, Error, FoundRefreshToken, Invitation, InvitationQuery, InvitationStatus,
    Listing, NewAuditEntry, NewEvent, NewInvitation, NewMail, NewSession, NewUser, NewWebhook,
    Page, PageQuery, SessionQuery, SessionState, StoredSession, User, UserId, UserQuery, UserRepo,
    UserStatus, Webhook,
};

use crate::conn::AnyConnection;
use crate::errors::from_diesel;
use crate::mails;
use crate::outbox;
use crate::prepared::KeepPrepared;
use crate::rows::{
    session_state, AuditRow, CounterRow, InvitationRow, NewUserRow, SessionRow, SessionStateRow,
    UserChangeset, UserRow, INVITATION_COLUMNS, SESSION_COLUMNS, USER_COLUMNS,
};
use crate::schema::{
    audit_log, device_tokens, invitations, refresh_tokens, sessions, throttle_counters,
    user_tallies, users,
};
use crate::stream::each_row;
use crate::{Backend, Conn};

/// The repository as seen from inside one transaction on `conn`.
pub(crate) struct SqlUserRepo<'c> {
    pub(crate) conn: &'c mut Conn,
}

fn to_user(row: UserRow) -> Result<User, Error> {
    User::try_from(row)
}

/// A stored count as the domain's (a negative one, impossible, as 0).
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// How [`filtered`] finds the users whose email holds a substring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Search {
    /// `email LIKE '%needle%'` alone; on PostgreSQL its planner serves that from the
    /// trigram index `users_email_trgm_idx` itself when it pays.
    Like,
    /// SQLite: candidates from the FTS5 trigram index `users_email_search`, each then
    /// checked with the same `LIKE` (so the results are exactly `Like`'s).
    Trigram,
}

/// `users` filtered as `query` says (without order or paging).
fn filtered(query: &UserQuery, search: Search) -> users::BoxedQuery<'static, Backend> {
    use diesel::dsl::sql;
    use diesel::sql_types::{Bool, Text};

    let mut select = users::table.into_boxed();
    if let Some(status) = query.status {
        select = select.filter(users::status.eq(status.as_str()));
    }
    if let Some(is_admin) = query.is_admin {
        select = select.filter(users::is_admin.eq(is_admin));
    }
    if let Some(needle) = &query.email_contains {
        if search == Search::Trigram {
            select = select.filter(
                sql::<Bool>(
                    "users.id IN (SELECT rowid FROM users_email_search \
                     WHERE users_email_search MATCH ",
                )
                .bind::<Text, _>(fts_phrase(needle))
                .sql(")"),
            );
        }
        // Written out rather than `users::email.like(..).escape(..)` because diesel keeps
        // no prepared statement for SQL it did not write: PostgreSQL then plans every
        // search for its own needle. A prepared statement settles after five runs on one
        // generic plan, the index for every needle, and for a needle most users match
        // that reads the whole trigram index: several times slower than the table.
        select = select.filter(
            sql::<Bool>("users.email LIKE ")
                .bind::<Text, _>(like_pattern(needle))
                .sql(" ESCAPE ")
                .bind::<Text, _>("\\"),
        );
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

/// An FTS5 query for `needle` as one phrase: with the trigram tokenizer, the rows holding
/// it anywhere (case-folded: a superset of `like_pattern`'s matches). Between double
/// quotes everything is literal but the double quote, which is doubled.
fn fts_phrase(needle: &str) -> String {
    format!("\"{}\"", needle.to_lowercase().replace('"', "\"\""))
}

/// The trigram index finds nothing in a needle shorter than one trigram.
const TRIGRAM: usize = 3;
/// How many of the newest users [`SqlUserRepo::search_for`] looks at …
const SAMPLE: i64 = 1000;
/// … and how many of them must match for the needle to count as common.
const COMMON: i64 = SAMPLE / 10;

/// `audit_log` filtered as `query` says (without order or paging).
fn audit_filtered(query: &AuditQuery) -> audit_log::BoxedQuery<'static, Backend> {
    let mut select = audit_log::table.into_boxed();
    if let Some(action) = query.action {
        select = select.filter(audit_log::action.eq(action.as_str()));
    }
    if let Some(actor) = query.actor_id {
        select = select.filter(audit_log::actor_id.eq(actor.get()));
    }
    if let Some(target) = query.target_id {
        select = select.filter(audit_log::target_id.eq(target.get()));
    }
    select
}

/// Invitations with the query's status at `now` (all without one).
fn invitations_filtered(
    query: &InvitationQuery,
    now: DateTime<Utc>,
) -> invitations::BoxedQuery<'static, Backend> {
    let now = now.naive_utc();
    let select = invitations::table.into_boxed();
    let live = invitations::revoked_at.is_null();
    let left = invitations::uses.lt(invitations::max_uses);
    match query.status {
        None => select,
        Some(InvitationStatus::Active) => select
            .filter(live)
            .filter(left)
            .filter(invitations::expires_at.gt(now)),
        Some(InvitationStatus::Used) => select
            .filter(live)
            .filter(invitations::uses.ge(invitations::max_uses)),
        Some(InvitationStatus::Expired) => select
            .filter(live)
            .filter(left)
            .filter(invitations::expires_at.le(now)),
        Some(InvitationStatus::Revoked) => select.filter(invitations::revoked_at.is_not_null()),
    }
}

/// `LIMIT`/`OFFSET` values for a page, `None` for every row from the first. SQLite has no
/// OFFSET without LIMIT, so "no limit" with an offset is the largest limit.
pub(crate) fn page_bounds(limit: Option<u64>, offset: u64) -> Option<(i64, i64)> {
    (offset > 0 || limit.is_some()).then(|| {
        let limit = limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
        (limit, i64::try_from(offset).unwrap_or(i64::MAX))
    })
}

/// The SQL type of a [`UserRow`] as selected.
type UserRowSql = diesel::dsl::SqlTypeOf<diesel::dsl::AsSelect<UserRow, Backend>>;

/// Users matching `query` (which has no email search), newest first within `bounds`, each
/// row carrying how many users match in all, summed from the tallies the triggers keep (a
/// few rows, where counting the users reads them all: 100 000 rows took ~10 ms of
/// PostgreSQL's time a page). One statement, so one snapshot for page and total.
fn tallied(
    query: &UserQuery,
    bounds: Option<(i64, i64)>,
) -> users::BoxedQuery<'static, Backend, (UserRowSql, diesel::sql_types::BigInt)> {
    use diesel::dsl::sql;
    use diesel::sql_types::{BigInt, Bool, Nullable, Text};

    let status = query.status.map(|s| s.as_str());
    let total =
        sql::<BigInt>("(SELECT CAST(COALESCE(SUM(t.n), 0) AS BIGINT) FROM user_tallies t WHERE (")
            .bind::<Nullable<Text>, _>(status)
            .sql(" IS NULL OR t.status = ")
            .bind::<Nullable<Text>, _>(status)
            .sql(") AND (")
            .bind::<Nullable<Bool>, _>(query.is_admin)
            .sql(" IS NULL OR t.is_admin = ")
            .bind::<Nullable<Bool>, _>(query.is_admin)
            .sql("))");
    let mut select = filtered(query, Search::Like)
        .select((UserRow::as_select(), total))
        .order(users::id.desc());
    if let Some((limit, offset)) = bounds {
        select = select.limit(limit).offset(offset);
    }
    select
}

impl SqlUserRepo<'_> {
    /// A listing without an email search: the page, its total coming with the first row
    /// (one statement, so the service lists without an explicit transaction). An empty
    /// page (past the end, or `limit=0`) takes its total from the first match instead; no
    /// match at all means none.
    fn each_tallied(
        &mut self,
        query: &UserQuery,
        into: &mut dyn Listing<User>,
    ) -> Result<(), Error> {
        let mut told = false;
        if query.limit != Some(0) {
            let statement = tallied(query, page_bounds(query.limit, query.offset));
            each_row(self.conn, statement, query.limit, &mut |(row, total): (
                UserRow,
                i64,
            )| {
                if !told {
                    into.total(count(total))?;
                    told = true;
                }
                into.item(to_user(row)?)
            })?;
        }
        if !told {
            let total = tallied(query, Some((1, 0)))
                .load::<(UserRow, i64)>(self.conn)
                .map_err(from_diesel)?
                .first()
                .map_or(0, |(_, total)| *total);
            into.total(count(total))?;
        }
        Ok(())
    }

    /// Folds the tallies into one row per status and role (dropping groups that sum to
    /// zero). Both statements see the transaction's snapshot, so rows that other
    /// transactions add meanwhile are neither summed nor deleted: the sums stay exact.
    /// Stores an unspent refresh token (by its SHA-256) of session `session_id`.
    fn insert_refresh_token(
        &mut self,
        session_id: i64,
        token_hash: &str,
        issued_at: chrono::NaiveDateTime,
    ) -> Result<(), Error> {
        diesel::insert_into(refresh_tokens::table)
            .values((
                refresh_tokens::token_hash.eq(token_hash),
                refresh_tokens::session_id.eq(session_id),
                refresh_tokens::issued_at.eq(issued_at),
            ))
            .execute(self.conn)
            .map(drop)
            .map_err(from_diesel)
    }

    fn compact_tallies(&mut self) -> Result<(), Error> {
        use diesel::sql_types::BigInt;

        let Some(last) = user_tallies::table
            .select(diesel::dsl::max(user_tallies::id))
            .get_result::<Option<i64>>(self.conn)
            .map_err(from_diesel)?
        else {
            return Ok(());
        };
        diesel::sql_query(
            "INSERT INTO user_tallies (status, is_admin, n) \
             SELECT status, is_admin, SUM(n) FROM user_tallies WHERE id <= $1 \
             GROUP BY status, is_admin HAVING SUM(n) <> 0",
        )
        .bind::<BigInt, _>(last)
        .execute(self.conn)
        .map_err(from_diesel)?;
        diesel::delete(user_tallies::table.filter(user_tallies::id.le(last)))
            .execute(self.conn)
            .map_err(from_diesel)?;
        Ok(())
    }

    /// Whether to ask SQLite's trigram index for the users matching `query`'s substring.
    ///
    /// The index costs a lookup per candidate: for a needle most users match (their common
    /// domain, say) reading the table is several times faster for the count, and the newest
    /// page comes straight off the primary key. The newest users tell which case it is.
    fn search_for(&mut self, query: &UserQuery) -> Result<Search, Error> {
        let Some(needle) = query.email_contains.as_deref() else {
            return Ok(Search::Like);
        };
        if !matches!(*self.conn, AnyConnection::Sqlite(_))
            || needle.to_lowercase().chars().count() < TRIGRAM
        {
            return Ok(Search::Like);
        }
        // NULL, and so no match, with fewer than SAMPLE users: the index then, cheap anyway.
        let sample = diesel::alias!(users as sample);
        let oldest_sampled = sample
            .select(sample.field(users::id))
            .order(sample.field(users::id).desc())
            .limit(1)
            .offset(SAMPLE - 1)
            .single_value();
        let matching = users::table
            .filter(users::id.nullable().ge(oldest_sampled))
            .filter(users::email.like(like_pattern(needle)).escape('\\'))
            .count()
            .get_result::<i64>(self.conn)
            .map_err(from_diesel)?;
        Ok(if matching >= COMMON {
            Search::Like
        } else {
            Search::Trigram
        })
    }
}

impl UserRepo for SqlUserRepo<'_> {
    fn count_users(&mut self) -> Result<u64, Error> {
        users::table
            .count()
            .get_result::<i64>(self.conn)
            .map(count)
            .map_err(from_diesel)
    }

    fn any_user_exists(&mut self) -> Result<bool, Error> {
        // One row through the primary-key index: PostgreSQL then predicate-locks an index
        // page, not the whole table, and later registrations stop conflicting with each
        // other; on an empty table two first registrations still conflict.
        users::table
            .select(users::id)
            .order(users::id.asc())
            .first::<i64>(self.conn)
            .optional()
            .map(|first| first.is_some())
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

    fn count_pending_unverified(&mut self) -> Result<u64, Error> {
        users::table
            .filter(users::status.eq(UserStatus::Pending.as_str()))
            .filter(users::email_verified.eq(false))
            .count()
            .get_result::<i64>(self.conn)
            .map(count)
            .map_err(from_diesel)
    }

    fn insert(&mut self, user: NewUser) -> Result<User, Error> {
        diesel::insert_into(users::table)
            .values(NewUserRow::from(&user))
            .returning(USER_COLUMNS)
            .get_result::<UserRow>(self.conn)
            .map_err(from_diesel)
            .and_then(to_user)
    }

    // Lookups by a unique key use `get_result`, not `first`: `first` adds `LIMIT ?`, and
    // SQLite prepares a statement again whenever a bound LIMIT is rebound (measured: 17 µs
    // instead of 5 µs a lookup).
    fn find_by_id(&mut self, id: UserId) -> Result<Option<User>, Error> {
        users::table
            .find(id.get())
            .select(UserRow::as_select())
            .get_result(self.conn)
            .optional()
            .map_err(from_diesel)?
            .map(to_user)
            .transpose()
    }

    fn find_by_email(&mut self, email: &Email) -> Result<Option<User>, Error> {
        users::table
            .filter(users::email.eq(email.as_str()))
            .select(UserRow::as_select())
            .get_result(self.conn)
            .optional()
            .map_err(from_diesel)?
            .map(to_user)
            .transpose()
    }

    fn find_by_email_skeleton(
        &mut self,
        email: &Email,
        except: Option<UserId>,
    ) -> Result<Option<User>, Error> {
        // Through `users_email_skeleton_idx`; `except` as 0 (no id) keeps one statement.
        users::table
            .filter(users::email_skeleton.eq(email.skeleton()))
            .filter(users::id.ne(except.map_or(0, UserId::get)))
            .order(users::id.asc())
            .select(UserRow::as_select())
            .first(self.conn)
            .optional()
            .map_err(from_diesel)?
            .map(to_user)
            .transpose()
    }

    fn each_user(&mut self, query: &UserQuery, into: &mut dyn Listing<User>) -> Result<(), Error> {
        if query
            .email_contains
            .as_deref()
            .is_some_and(|needle| needle.contains('\0'))
        {
            // No email holds a NUL (and PostgreSQL cannot even compare text with one).
            return into.total(0);
        }
        if query.email_contains.is_none() {
            return self.each_tallied(query, into);
        }
        let search = self.search_for(query)?;
        let total = filtered(query, search)
            .count()
            .get_result::<i64>(self.conn)
            .map_err(from_diesel)?;
        into.total(count(total))?;
        if query.limit == Some(0) {
            return Ok(());
        }
        let mut select = filtered(query, search)
            .select(UserRow::as_select())
            .order(users::id.desc());
        if let Some((limit, offset)) = page_bounds(query.limit, query.offset) {
            select = select.limit(limit).offset(offset);
        }
        each_row(self.conn, select, query.limit, &mut |row: UserRow| {
            into.item(to_user(row)?)
        })
    }

    fn update(&mut self, user: &User) -> Result<User, Error> {
        diesel::update(users::table.find(user.id.get()))
            .set(UserChangeset::from(user))
            .returning(USER_COLUMNS)
            .keep_prepared()
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

    fn find_session_user(
        &mut self,
        id: UserId,
        session_id: i64,
    ) -> Result<Option<(User, Option<SessionState>)>, Error> {
        // A join rather than a subquery: diesel keeps this statement prepared (it does not
        // cache subselects), and this is the statement of every `/me`. At most one row:
        // `users.id` and `sessions.id` are primary keys.
        macro_rules! query {
            () => {
                users::table
                    .left_join(
                        sessions::table.on(sessions::id
                            .eq(session_id)
                            .and(sessions::user_id.eq(users::id))),
                    )
                    .filter(users::id.eq(id.get()))
                    .select((
                        UserRow::as_select(),
                        (
                            sessions::revoked_at.nullable(),
                            sessions::idle_expires_at.nullable(),
                            sessions::expires_at.nullable(),
                        ),
                    ))
            };
        }
        // On the backend's own connection: there diesel finds the prepared statement by
        // the query's type, where through `AnyConnection` it builds the SQL text each time
        // to look it up (a sixth of the CPU of a `/me` on SQLite, measured with perf).
        let row = match &mut *self.conn {
            AnyConnection::Sqlite(c) => query!().get_result::<(UserRow, SessionStateRow)>(c),
            AnyConnection::Postgres(c) => query!().get_result::<(UserRow, SessionStateRow)>(c),
        }
        .optional()
        .map_err(from_diesel)?;
        row.map(|(user, session)| Ok((to_user(user)?, session_state(session))))
            .transpose()
    }

    fn insert_session(
        &mut self,
        session: &NewSession,
        refresh_hash: &str,
    ) -> Result<StoredSession, Error> {
        let created_at = session.created_at.naive_utc();
        let stored = diesel::insert_into(sessions::table)
            .values((
                sessions::user_id.eq(session.user_id.get()),
                sessions::created_at.eq(created_at),
                sessions::last_used_at.eq(created_at),
                sessions::idle_expires_at.eq(session.idle_expires_at.naive_utc()),
                sessions::expires_at.eq(session.expires_at.naive_utc()),
                sessions::address.eq(session.address.as_deref()),
                sessions::user_agent.eq(session.user_agent.as_deref()),
            ))
            .returning(SESSION_COLUMNS)
            .get_result::<SessionRow>(self.conn)
            .map_err(from_diesel)
            .and_then(StoredSession::try_from)?;
        self.insert_refresh_token(stored.id, refresh_hash, created_at)?;
        Ok(stored)
    }

    fn find_session(&mut self, id: i64) -> Result<Option<StoredSession>, Error> {
        sessions::table
            .find(id)
            .select(SESSION_COLUMNS)
            .get_result::<SessionRow>(self.conn)
            .optional()
            .map_err(from_diesel)?
            .map(StoredSession::try_from)
            .transpose()
    }

    fn find_refresh_token(&mut self, token_hash: &str) -> Result<Option<FoundRefreshToken>, Error> {
        refresh_tokens::table
            .inner_join(sessions::table.inner_join(users::table))
            .filter(refresh_tokens::token_hash.eq(token_hash))
            .select((
                SESSION_COLUMNS,
                refresh_tokens::spent_at,
                UserRow::as_select(),
            ))
            .get_result::<(SessionRow, Option<crate::stored_time::StoredTime>, UserRow)>(self.conn)
            .optional()
            .map_err(from_diesel)?
            .map(|(session, spent, user)| {
                Ok((
                    StoredSession::try_from(session)?,
                    spent.map(|at| at.0.and_utc()),
                    to_user(user)?,
                ))
            })
            .transpose()
    }

    fn spend_refresh_token(&mut self, token_hash: &str, now: DateTime<Utc>) -> Result<bool, Error> {
        diesel::update(
            refresh_tokens::table
                .find(token_hash)
                .filter(refresh_tokens::spent_at.is_null()),
        )
        .set(refresh_tokens::spent_at.eq(Some(now.naive_utc())))
        .returning(refresh_tokens::session_id)
        .keep_prepared()
        .load::<i64>(self.conn)
        .map(|spent| !spent.is_empty())
        .map_err(from_diesel)
    }

    fn discard_session_refresh_tokens(&mut self, session_id: i64) -> Result<(), Error> {
        diesel::delete(
            refresh_tokens::table
                .filter(refresh_tokens::session_id.eq(session_id))
                .filter(refresh_tokens::spent_at.is_null()),
        )
        .execute(self.conn)
        .map(drop)
        .map_err(from_diesel)
    }

    fn renew_session(
        &mut self,
        session_id: i64,
        refresh_hash: &str,
        now: DateTime<Utc>,
        idle_expires_at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let now = now.naive_utc();
        let renewed = diesel::update(
            sessions::table
                .find(session_id)
                .filter(sessions::revoked_at.is_null()),
        )
        .set((
            sessions::last_used_at.eq(now),
            sessions::idle_expires_at.eq(idle_expires_at.naive_utc()),
        ))
        .returning(sessions::id)
        .keep_prepared()
        .load::<i64>(self.conn)
        .map_err(from_diesel)?;
        if renewed.is_empty() {
            return Ok(false);
        }
        self.insert_refresh_token(session_id, refresh_hash, now)?;
        Ok(true)
    }

    fn revoke_session(
        &mut self,
        id: i64,
        user: Option<UserId>,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let mut target = sessions::table
            .filter(sessions::id.eq(id))
            .filter(sessions::revoked_at.is_null())
            .into_boxed();
        if let Some(user) = user {
            target = target.filter(sessions::user_id.eq(user.get()));
        }
        // A boxed query cannot be the target of an update: select the id, then update it.
        let Some(found) = target
            .select(sessions::id)
            .get_result::<i64>(self.conn)
            .optional()
            .map_err(from_diesel)?
        else {
            return Ok(false);
        };
        diesel::update(
            sessions::table
                .find(found)
                .filter(sessions::revoked_at.is_null()),
        )
        .set(sessions::revoked_at.eq(Some(at.naive_utc())))
        .execute(self.conn)
        .map(|n| n > 0)
        .map_err(from_diesel)
    }

    fn revoke_sessions(
        &mut self,
        user: UserId,
        except: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<u64, Error> {
        diesel::update(
            sessions::table
                .filter(sessions::user_id.eq(user.get()))
                .filter(sessions::revoked_at.is_null())
                // No session has id 0: with no exception, nothing is spared.
                .filter(sessions::id.ne(except.unwrap_or(0))),
        )
        .set(sessions::revoked_at.eq(Some(at.naive_utc())))
        .returning(sessions::id)
        .keep_prepared()
        .load::<i64>(self.conn)
        .map(|revoked| revoked.len() as u64)
        .map_err(from_diesel)
    }

    fn list_sessions(
        &mut self,
        user: UserId,
        now: DateTime<Utc>,
        query: &SessionQuery,
    ) -> Result<Page<StoredSession>, Error> {
        let now = now.naive_utc();
        let live = || {
            sessions::table
                .filter(sessions::user_id.eq(user.get()))
                .filter(sessions::revoked_at.is_null())
                .filter(sessions::idle_expires_at.gt(now))
                .filter(sessions::expires_at.gt(now))
        };
        let total = live()
            .count()
            .get_result::<i64>(self.conn)
            .map_err(from_diesel)?;
        let mut select = live()
            .select(SESSION_COLUMNS)
            .order(sessions::id.desc())
            .into_boxed();
        if let Some((limit, offset)) = page_bounds(query.limit, query.offset) {
            select = select.limit(limit).offset(offset);
        }
        let items = select
            .load::<SessionRow>(self.conn)
            .map_err(from_diesel)?
            .into_iter()
            .map(StoredSession::try_from)
            .collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            total: count(total),
        })
    }

    fn prune_sessions(&mut self, now: DateTime<Utc>) -> Result<u64, Error> {
        let now = now.naive_utc();
        // Their refresh tokens go with them (ON DELETE CASCADE).
        diesel::delete(
            sessions::table.filter(
                sessions::revoked_at
                    .is_not_null()
                    .or(sessions::idle_expires_at.le(now))
                    .or(sessions::expires_at.le(now)),
            ),
        )
        .execute(self.conn)
        .map(|n| n as u64)
        .map_err(from_diesel)
    }

    fn device_owner(&mut self, token_hash: &str) -> Result<Option<UserId>, Error> {
        device_tokens::table
            .find(token_hash)
            .select(device_tokens::user_id)
            .get_result::<i64>(self.conn)
            .optional()
            .map_err(from_diesel)?
            .map(|id| UserId::new(id).map_err(|e| Error::internal("device token owner", e)))
            .transpose()
    }

    fn save_device(
        &mut self,
        token_hash: &str,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let now = now.naive_utc();
        // One upsert. An update that finds nothing (a new token: every login's) followed
        // by an insert read the index page where the token would be, under PostgreSQL's
        // serializable isolation, and the next login inserted its own token there: two
        // concurrent logins were a read-write cycle, and one of them was retried (then
        // 503). The upsert's check for a conflicting row takes no such read lock.
        let upsert = diesel::insert_into(device_tokens::table)
            .values((
                device_tokens::token_hash.eq(token_hash),
                device_tokens::user_id.eq(user.get()),
                device_tokens::created_at.eq(now),
                device_tokens::last_used_at.eq(now),
            ))
            .on_conflict(device_tokens::token_hash)
            .do_update()
            .set(device_tokens::last_used_at.eq(now));
        match &mut *self.conn {
            AnyConnection::Sqlite(c) => upsert.execute(c),
            AnyConnection::Postgres(c) => upsert.execute(c),
        }
        .map(drop)
        .map_err(from_diesel)
    }

    fn latest_audit(
        &mut self,
        action: AuditAction,
        target: Option<UserId>,
        address: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<Option<(i64, Option<String>)>, Error> {
        let mut query = audit_log::table
            .filter(audit_log::action.eq(action.as_str()))
            .filter(audit_log::at.ge(since.naive_utc()))
            .select((audit_log::id, audit_log::detail))
            .order(audit_log::id.desc())
            .limit(1)
            .into_boxed::<Backend>();
        query = match target {
            Some(target) => query.filter(audit_log::target_id.eq(target.get())),
            None => query.filter(audit_log::target_id.is_null()),
        };
        query = match address {
            Some(address) => query.filter(audit_log::address.eq(address.to_owned())),
            None => query.filter(audit_log::address.is_null()),
        };
        query
            .get_result::<(i64, Option<String>)>(self.conn)
            .optional()
            .map_err(from_diesel)
    }

    fn set_audit_detail(&mut self, id: i64, detail: &str) -> Result<(), Error> {
        diesel::update(audit_log::table.find(id))
            .set(audit_log::detail.eq(detail))
            .execute(self.conn)
            .map(drop)
            .map_err(from_diesel)
    }

    fn prune_audit(&mut self, before: DateTime<Utc>, at_most: u64) -> Result<u64, Error> {
        if at_most == 0 {
            return Ok(0);
        }
        let before = before.naive_utc();
        // The id of the `at_most`-th oldest entry due (none: fewer are due, all go).
        let last = audit_log::table
            .select(audit_log::id)
            .filter(audit_log::at.lt(before))
            .order(audit_log::id.asc())
            .offset(i64::try_from(at_most.saturating_sub(1)).unwrap_or(i64::MAX))
            .first::<i64>(self.conn)
            .optional()
            .map_err(from_diesel)?;
        let due = audit_log::table.filter(audit_log::at.lt(before));
        match last {
            Some(last) => diesel::delete(due.filter(audit_log::id.le(last))).execute(self.conn),
            None => diesel::delete(due).execute(self.conn),
        }
        .map(|n| n as u64)
        .map_err(from_diesel)
    }

    fn insert_invitation(&mut self, new: &NewInvitation) -> Result<Invitation, Error> {
        diesel::insert_into(invitations::table)
            .values((
                invitations::code_hash.eq(&new.code_hash),
                invitations::email.eq(new.email.as_ref().map(Email::as_str)),
                invitations::is_admin.eq(new.is_admin),
                invitations::note.eq(new.note.as_deref()),
                invitations::created_at.eq(new.created_at.naive_utc()),
                invitations::created_by.eq(new.created_by.map(UserId::get)),
                invitations::expires_at.eq(new.expires_at.naive_utc()),
                invitations::max_uses.eq(i64::from(new.max_uses)),
                invitations::uses.eq(0_i64),
            ))
            .returning(INVITATION_COLUMNS)
            .get_result::<InvitationRow>(self.conn)
            .map_err(from_diesel)
            .and_then(Invitation::try_from)
    }

    fn find_invitation(&mut self, id: i64) -> Result<Option<Invitation>, Error> {
        invitations::table
            .find(id)
            .select(INVITATION_COLUMNS)
            .get_result::<InvitationRow>(self.conn)
            .optional()
            .map_err(from_diesel)?
            .map(Invitation::try_from)
            .transpose()
    }

    fn find_invitation_by_code(&mut self, code_hash: &str) -> Result<Option<Invitation>, Error> {
        invitations::table
            .filter(invitations::code_hash.eq(code_hash))
            .select(INVITATION_COLUMNS)
            .get_result::<InvitationRow>(self.conn)
            .optional()
            .map_err(from_diesel)?
            .map(Invitation::try_from)
            .transpose()
    }

    fn list_invitations(
        &mut self,
        query: &InvitationQuery,
        now: DateTime<Utc>,
    ) -> Result<Page<Invitation>, Error> {
        let total = invitations_filtered(query, now)
            .count()
            .get_result::<i64>(self.conn)
            .map_err(from_diesel)?;
        let mut select = invitations_filtered(query, now)
            .select(INVITATION_COLUMNS)
            .order(invitations::id.desc());
        if let Some((limit, offset)) = page_bounds(query.limit, query.offset) {
            select = select.limit(limit).offset(offset);
        }
        let items = select
            .load::<InvitationRow>(self.conn)
            .map_err(from_diesel)?
            .into_iter()
            .map(Invitation::try_from)
            .collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            total: count(total),
        })
    }

    fn spend_invitation(
        &mut self,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Invitation>, Error> {
        // `Invitation::status` == Active, as SQL: one statement finds, checks and counts.
        diesel::update(
            invitations::table
                .filter(invitations::code_hash.eq(code_hash))
                .filter(invitations::revoked_at.is_null())
                .filter(invitations::uses.lt(invitations::max_uses))
                .filter(invitations::expires_at.gt(now.naive_utc())),
        )
        .set(invitations::uses.eq(invitations::uses + 1_i64))
        .returning(INVITATION_COLUMNS)
        .keep_prepared()
        .get_result::<InvitationRow>(self.conn)
        .optional()
        .map_err(from_diesel)?
        .map(Invitation::try_from)
        .transpose()
    }

    fn revoke_invitation(
        &mut self,
        id: i64,
        at: DateTime<Utc>,
    ) -> Result<Option<Invitation>, Error> {
        diesel::update(
            invitations::table
                .find(id)
                .filter(invitations::revoked_at.is_null()),
        )
        .set(invitations::revoked_at.eq(Some(at.naive_utc())))
        .execute(self.conn)
        .map_err(from_diesel)?;
        self.find_invitation(id)
    }

    fn prune_devices(&mut self, unused_since: DateTime<Utc>) -> Result<u64, Error> {
        diesel::delete(
            device_tokens::table.filter(device_tokens::last_used_at.lt(unused_since.naive_utc())),
        )
        .execute(self.conn)
        .map(|n| n as u64)
        .map_err(from_diesel)
    }

    fn counter(&mut self, scope: CounterScope, key: &str) -> Result<Option<Counter>, Error> {
        throttle_counters::table
            .find((scope.as_str(), key))
            .select((
                throttle_counters::count,
                throttle_counters::since,
                throttle_counters::locked_until,
            ))
            .get_result::<CounterRow>(self.conn)
            .optional()
            .map(|row| row.map(Counter::from))
            .map_err(from_diesel)
    }

    fn save_counter(
        &mut self,
        scope: CounterScope,
        key: &str,
        counter: &Counter,
    ) -> Result<(), Error> {
        let values = (
            throttle_counters::count.eq(counter.count),
            throttle_counters::since.eq(counter.since.naive_utc()),
            throttle_counters::locked_until.eq(counter.locked_until.map(|at| at.naive_utc())),
        );
        // An update, else an insert: portable, and safe inside the serialized transaction.
        let updated = diesel::update(throttle_counters::table.find((scope.as_str(), key)))
            .set(values)
            .returning(throttle_counters::count)
            .keep_prepared()
            .load::<i64>(self.conn)
            .map_err(from_diesel)?;
        if updated.is_empty() {
            diesel::insert_into(throttle_counters::table)
                .values((
                    throttle_counters::scope.eq(scope.as_str()),
                    throttle_counters::counter_key.eq(key),
                    values.0,
                    values.1,
                    values.2,
                ))
                .execute(self.conn)
                .map_err(from_diesel)?;
        }
        Ok(())
    }

    fn delete_counter(&mut self, scope: CounterScope, key: &str) -> Result<(), Error> {
        diesel::delete(throttle_counters::table.find((scope.as_str(), key)))
            .execute(self.conn)
            .map(drop)
            .map_err(from_diesel)
    }

    fn append_audit(&mut self, entry: &NewAuditEntry) -> Result<(), Error> {
        diesel::insert_into(audit_log::table)
            .values((
                audit_log::at.eq(entry.at.naive_utc()),
                audit_log::action.eq(entry.action.as_str()),
                audit_log::actor_id.eq(entry.actor_id.map(UserId::get)),
                audit_log::target_id.eq(entry.target_id.map(UserId::get)),
                audit_log::address.eq(entry.address.as_deref()),
                audit_log::detail.eq(entry.detail.as_deref()),
            ))
            .execute(self.conn)
            .map(drop)
            .map_err(from_diesel)
    }

    fn each_audit_entry(
        &mut self,
        query: &AuditQuery,
        into: &mut dyn Listing<AuditEntry>,
    ) -> Result<(), Error> {
        let total = audit_filtered(query)
            .count()
            .get_result::<i64>(self.conn)
            .map_err(from_diesel)?;
        into.total(count(total))?;
        if query.limit == Some(0) {
            return Ok(());
        }
        let mut select = audit_filtered(query)
            .select((
                audit_log::id,
                audit_log::at,
                audit_log::action,
                audit_log::actor_id,
                audit_log::target_id,
                audit_log::address,
                audit_log::detail,
            ))
            .order(audit_log::id.desc());
        if let Some((limit, offset)) = page_bounds(query.limit, query.offset) {
            select = select.limit(limit).offset(offset);
        }
        each_row(self.conn, select, query.limit, &mut |row: AuditRow| {
            into.item(AuditEntry::try_from(row)?)
        })
    }

    // The webhook outbox: see `outbox.rs`.

    fn insert_webhook(&mut self, new: &NewWebhook) -> Result<Webhook, Error> {
        outbox::insert_webhook(self.conn, new)
    }

    fn find_webhook(&mut self, id: i64) -> Result<Option<Webhook>, Error> {
        outbox::find_webhook(self.conn, id)
    }

    fn list_webhooks(&mut self, query: &PageQuery) -> Result<Page<Webhook>, Error> {
        outbox::list_webhooks(self.conn, query)
    }

    fn save_webhook(&mut self, webhook: &Webhook) -> Result<bool, Error> {
        outbox::save_webhook(self.conn, webhook)
    }

    fn delete_webhook(&mut self, id: i64) -> Result<bool, Error> {
        outbox::delete_webhook(self.conn, id)
    }

    fn append_event(&mut self, event: &NewEvent) -> Result<u64, Error> {
        outbox::append_event(self.conn, event)
    }

    fn list_deliveries(
        &mut self,
        webhook: i64,
        query: &PageQuery,
    ) -> Result<Page<Delivery>, Error> {
        outbox::list_deliveries(self.conn, webhook, query)
    }

    fn claim_deliveries(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<DueDelivery>, Error> {
        outbox::claim_deliveries(self.conn, now, lease_until, limit)
    }

    fn record_attempt(&mut self, id: i64, attempt: &Attempt) -> Result<bool, Error> {
        outbox::record_attempt(self.conn, id, attempt)
    }

    fn record_attempts(&mut self, done: &[(i64, Attempt)]) -> Result<u64, Error> {
        outbox::record_attempts(self.conn, done)
    }

    fn due_deliveries(
        &mut self,
        now: DateTime<Utc>,
        limit: u64,
        skip: &[i64],
    ) -> Result<gatehouse_domain::DueDeliveries, Error> {
        outbox::due_deliveries(self.conn, now, limit, skip)
    }

    fn fail_inactive_deliveries(&mut self) -> Result<u64, Error> {
        outbox::fail_inactive_deliveries(self.conn)
    }

    fn outbox_backlog(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<(u64, Option<DateTime<Utc>>), Error> {
        outbox::outbox_backlog(self.conn, now)
    }

    fn prune_deliveries(&mut self, before: DateTime<Utc>) -> Result<u64, Error> {
        outbox::prune_deliveries(self.conn, before)
    }

    // The mail outbox and the settings: see `mails.rs`.

    fn append_mail(&mut self, mail: &NewMail) -> Result<(), Error> {
        mails::append_mail(self.conn, mail)
    }

    fn claim_mails(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<DueMail>, Error> {
        mails::claim_mails(self.conn, now, lease_until, limit)
    }

    fn record_mail_attempt(&mut self, id: i64, attempt: &Attempt) -> Result<bool, Error> {
        mails::record_mail_attempt(self.conn, id, attempt)
    }

    fn mail_backlog(&mut self) -> Result<u64, Error> {
        mails::mail_backlog(self.conn)
    }

    fn setting(&mut self, name: &str) -> Result<Option<String>, Error> {
        mails::setting(self.conn, name)
    }

    fn put_setting(&mut self, name: &str, value: &str) -> Result<(), Error> {
        mails::put_setting(self.conn, name, value)
    }

    fn insert_code(&mut self, code: &gatehouse_domain::NewCode) -> Result<(), Error> {
        crate::codes::insert_code(self.conn, code)
    }

    fn count_codes_since(
        &mut self,
        user: UserId,
        purpose: gatehouse_domain::CodePurpose,
        since: DateTime<Utc>,
    ) -> Result<u64, Error> {
        crate::codes::count_codes_since(self.conn, user, purpose, since)
    }

    fn spend_code(
        &mut self,
        user: UserId,
        purpose: gatehouse_domain::CodePurpose,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        crate::codes::spend_code(self.conn, user, purpose, code_hash, now)
    }

    fn totp(&mut self, user: UserId) -> Result<Option<gatehouse_domain::StoredTotp>, Error> {
        crate::mfa::totp(self.conn, user)
    }

    fn put_totp(&mut self, totp: &gatehouse_domain::StoredTotp) -> Result<(), Error> {
        crate::mfa::put_totp(self.conn, totp)
    }

    fn confirm_totp(&mut self, user: UserId, step: i64, at: DateTime<Utc>) -> Result<bool, Error> {
        crate::mfa::confirm_totp(self.conn, user, step, at)
    }

    fn use_totp_step(&mut self, user: UserId, step: i64) -> Result<bool, Error> {
        crate::mfa::use_totp_step(self.conn, user, step)
    }

    fn delete_totp(&mut self, user: UserId) -> Result<bool, Error> {
        crate::mfa::delete_totp(self.conn, user)
    }

    fn replace_recovery_codes(
        &mut self,
        user: UserId,
        hashes: &[String],
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        crate::mfa::replace_recovery_codes(self.conn, user, hashes, at)
    }

    fn spend_recovery_code(
        &mut self,
        user: UserId,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        crate::mfa::spend_recovery_code(self.conn, user, hash, now)
    }

    fn count_recovery_codes(&mut self, user: UserId) -> Result<u64, Error> {
        crate::mfa::count_recovery_codes(self.conn, user)
    }

    fn insert_challenge(
        &mut self,
        challenge: &gatehouse_domain::NewChallenge,
    ) -> Result<(), Error> {
        crate::mfa::insert_challenge(self.conn, challenge)
    }

    fn find_challenge(
        &mut self,
        token_hash: &str,
        purpose: gatehouse_domain::ChallengePurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<gatehouse_domain::Challenge>, Error> {
        crate::mfa::find_challenge(self.conn, token_hash, purpose, now)
    }

    fn challenge_wrong_try(&mut self, id: i64) -> Result<(), Error> {
        crate::mfa::challenge_wrong_try(self.conn, id)
    }

    fn spend_challenge(&mut self, id: i64, now: DateTime<Utc>) -> Result<bool, Error> {
        crate::mfa::spend_challenge(self.conn, id, now)
    }

    fn find_user_challenge(
        &mut self,
        user: UserId,
        purpose: gatehouse_domain::ChallengePurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<gatehouse_domain::Challenge>, Error> {
        crate::passkeys::find_user_challenge(self.conn, user, purpose, now)
    }

    fn delete_user_challenges(
        &mut self,
        user: UserId,
        purpose: gatehouse_domain::ChallengePurpose,
    ) -> Result<u64, Error> {
        crate::passkeys::delete_user_challenges(self.conn, user, purpose)
    }

    fn insert_passkey(
        &mut self,
        passkey: &gatehouse_domain::NewPasskey,
    ) -> Result<gatehouse_domain::StoredPasskey, Error> {
        crate::passkeys::insert_passkey(self.conn, passkey)
    }

    fn list_passkeys(
        &mut self,
        user: UserId,
    ) -> Result<Vec<gatehouse_domain::StoredPasskey>, Error> {
        crate::passkeys::list_passkeys(self.conn, user)
    }

    fn find_passkey_by_credential(
        &mut self,
        credential_id: &str,
    ) -> Result<Option<gatehouse_domain::StoredPasskey>, Error> {
        crate::passkeys::find_passkey_by_credential(self.conn, credential_id)
    }

    fn record_passkey_use(
        &mut self,
        id: i64,
        data: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        crate::passkeys::record_passkey_use(self.conn, id, data, at)
    }

    fn delete_passkey(&mut self, user: UserId, id: i64) -> Result<bool, Error> {
        crate::passkeys::delete_passkey(self.conn, user, id)
    }

    fn count_passkeys(&mut self, user: UserId) -> Result<u64, Error> {
        crate::passkeys::count_passkeys(self.conn, user)
    }

    fn count_all_passkeys(&mut self) -> Result<u64, Error> {
        crate::passkeys::count_all_passkeys(self.conn)
    }

    fn delete_mfa(&mut self, user: UserId) -> Result<(), Error> {
        crate::mfa::delete_mfa(self.conn, user)
    }

    fn prune(&mut self, now: DateTime<Utc>, idle_before: DateTime<Utc>) -> Result<u64, Error> {
        // Codes an hour past their expiry (the hourly cap counts the last hour's).
        let codes = crate::codes::prune_codes(self.conn, now - chrono::Duration::hours(1))?;
        let challenges = crate::mfa::prune_challenges(self.conn, now)?;
        let now = now.naive_utc();
        let counters = diesel::delete(
            throttle_counters::table
                .filter(throttle_counters::since.lt(idle_before.naive_utc()))
                .filter(
                    throttle_counters::locked_until
                        .is_null()
                        .or(throttle_counters::locked_until.le(now)),
                ),
        )
        .execute(self.conn)
        .map_err(from_diesel)?;
        self.compact_tallies()?;
        Ok(counters as u64 + codes + challenges)
    }
}

#[cfg(test)]
mod tests {
    use diesel::query_builder::QueryFragment;

    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("Ab"), "%ab%");
        assert_eq!(like_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }

    #[test]
    fn fts_phrases_quote_double_quotes() {
        assert_eq!(fts_phrase("Ab\"c%"), "\"ab\"\"c%\"");
    }

    /// See `filtered`: PostgreSQL must plan each search for its own needle.
    #[test]
    fn searches_are_not_kept_prepared() {
        let query = UserQuery {
            email_contains: Some("ser5".into()),
            ..UserQuery::default()
        };
        let pg = Backend::Postgres(diesel::pg::Pg);
        for statement in [
            filtered(&query, Search::Like).count(),
            filtered(&query, Search::Like).select(users::id).limit(50),
        ] {
            let cached = QueryFragment::<Backend>::is_safe_to_cache_prepared(&statement, &pg);
            assert!(!cached.expect("walks"));
        }
    }
}
