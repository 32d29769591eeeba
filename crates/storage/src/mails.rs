//! The mail outbox (the notifications issue), as `UserRepo` writes and reads it (`repo.rs`
//! delegates here), and the settings the mailer keeps (when the last admin digest went).
//!
//! A mail is queued `pending` in the transaction of the change that causes it. Dispatchers
//! claim due mails for a lease exactly as they claim webhook deliveries (see `outbox.rs`:
//! PostgreSQL's `FOR UPDATE SKIP LOCKED`, SQLite's one writer at a time), send them, and
//! record each attempt, which releases the claim.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use diesel::upsert::excluded;
use gatehouse_domain::{Attempt, AttemptNext, DueMail, Error, MailKind, NewMail};

use crate::conn::AnyConnection;
use crate::errors::from_diesel;
use crate::prepared::KeepPrepared;
use crate::repo::count;
use crate::schema::{mails, settings};
use crate::stored_time::StoredTime;
use crate::Conn;

/// Queued, due at `next_attempt_at` (the claim and the backlog write it out as a literal).
const PENDING: &str = "pending";
/// Sent, at `sent_at`.
const SENT: &str = "sent";
/// Given up on.
const FAILED: &str = "failed";

/// [`UserRepo::append_mail`](gatehouse_domain::UserRepo::append_mail).
pub(crate) fn append_mail(conn: &mut Conn, mail: &NewMail) -> Result<(), Error> {
    let at = mail.at.naive_utc();
    diesel::insert_into(mails::table)
        .values((
            mails::kind.eq(mail.kind.as_str()),
            mails::recipient.eq(&mail.to),
            mails::subject.eq(&mail.subject),
            mails::body.eq(&mail.body),
            mails::status.eq(PENDING),
            mails::attempts.eq(0_i64),
            mails::next_attempt_at.eq(Some(at)),
            mails::created_at.eq(at),
        ))
        .execute(conn)
        .map(drop)
        .map_err(from_diesel)
}

/// A mail as the claim returns it.
#[derive(Debug, QueryableByName)]
struct ClaimedRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    recipient: String,
    #[diesel(sql_type = Text)]
    subject: String,
    #[diesel(sql_type = Text)]
    body: String,
    #[diesel(sql_type = BigInt)]
    attempts: i64,
    /// For the order only (`RETURNING` keeps none).
    #[diesel(sql_type = Nullable<Timestamp>)]
    next_attempt_at: Option<StoredTime>,
}

impl TryFrom<ClaimedRow> for DueMail {
    type Error = Error;

    fn try_from(row: ClaimedRow) -> Result<Self, Error> {
        Ok(DueMail {
            id: row.id,
            kind: MailKind::parse(&row.kind)
                .ok_or_else(|| Error::internal("stored mail kind", format!("{:?}", row.kind)))?,
            to: row.recipient,
            subject: row.subject,
            body: row.body,
            attempts: u32::try_from(row.attempts)
                .map_err(|e| Error::internal("stored mail attempts", e))?,
        })
    }
}

/// [`UserRepo::claim_mails`](gatehouse_domain::UserRepo::claim_mails).
pub(crate) fn claim_mails(
    conn: &mut Conn,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<DueMail>, Error> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    // As `outbox::claim_deliveries`. PostgreSQL: rows another dispatcher is claiming right
    // now are skipped, not waited for; a row claimed and committed meanwhile is re-checked
    // (READ COMMITTED) and left out, its lease not run out. SQLite: writers run one at a
    // time. `'pending'` is written out, not bound, so that the planners see the partial
    // index `mails_due_idx` serves the statement.
    let locking = match &*conn {
        AnyConnection::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        AnyConnection::Sqlite(_) => "",
    };
    let mut claimed = diesel::sql_query(format!(
        "UPDATE mails SET claimed_until = $1 WHERE id IN (\
         SELECT id FROM mails \
         WHERE status = 'pending' AND next_attempt_at <= $2 \
         AND (claimed_until IS NULL OR claimed_until < $2) \
         ORDER BY next_attempt_at, id LIMIT $3{locking}) \
         RETURNING id, kind, recipient, subject, body, attempts, next_attempt_at"
    ))
    .bind::<Timestamp, _>(lease_until.naive_utc())
    .bind::<Timestamp, _>(now.naive_utc())
    .bind::<BigInt, _>(i64::try_from(limit).unwrap_or(i64::MAX))
    .keep_prepared()
    .load::<ClaimedRow>(conn)
    .map_err(from_diesel)?;
    // Oldest due first, as claimed.
    claimed.sort_by_key(|row| (row.next_attempt_at.map(|at| at.0), row.id));
    claimed.into_iter().map(DueMail::try_from).collect()
}

/// [`UserRepo::record_mail_attempt`](gatehouse_domain::UserRepo::record_mail_attempt).
pub(crate) fn record_mail_attempt(
    conn: &mut Conn,
    id: i64,
    attempt: &Attempt,
) -> Result<bool, Error> {
    let at = attempt.at.naive_utc();
    let (status, next, sent_at) = match attempt.next {
        AttemptNext::Delivered => (SENT, None, Some(at)),
        AttemptNext::RetryAt(next) => (PENDING, Some(next.naive_utc()), None),
        // No endpoint to disable: a mail's `Gone` is a final failure.
        AttemptNext::Failed | AttemptNext::Gone => (FAILED, None, None),
    };
    if status != PENDING {
        // Settled: the text (an invitation's code among others) is not kept.
        diesel::update(mails::table.find(id))
            .set(mails::body.eq(""))
            .execute(conn)
            .map_err(from_diesel)?;
    }
    diesel::update(mails::table.find(id))
        .set((
            mails::attempts.eq(mails::attempts + 1_i64),
            mails::last_attempt_at.eq(Some(at)),
            mails::last_status_code.eq(attempt.status_code.map(i64::from)),
            mails::last_error.eq(attempt.error.as_deref()),
            mails::claimed_until.eq(None::<NaiveDateTime>),
            mails::status.eq(status),
            mails::next_attempt_at.eq(next),
            mails::sent_at.eq(sent_at),
        ))
        .execute(conn)
        .map(|n| n > 0)
        .map_err(from_diesel)
}

/// What [`mail_backlog`] reads.
#[derive(Debug, QueryableByName)]
struct Backlog {
    #[diesel(sql_type = BigInt)]
    pending: i64,
}

/// [`UserRepo::mail_backlog`](gatehouse_domain::UserRepo::mail_backlog).
pub(crate) fn mail_backlog(conn: &mut Conn) -> Result<u64, Error> {
    // `'pending'` written out, not bound: the partial index `mails_due_idx` counts them.
    diesel::sql_query("SELECT COUNT(*) AS pending FROM mails WHERE status = 'pending'")
        .keep_prepared()
        .get_result::<Backlog>(conn)
        .map(|backlog| count(backlog.pending))
        .map_err(from_diesel)
}

/// [`UserRepo::setting`](gatehouse_domain::UserRepo::setting).
pub(crate) fn setting(conn: &mut Conn, name: &str) -> Result<Option<String>, Error> {
    settings::table
        .find(name)
        .select(settings::value)
        .get_result::<String>(conn)
        .optional()
        .map_err(from_diesel)
}

/// [`UserRepo::put_setting`](gatehouse_domain::UserRepo::put_setting).
pub(crate) fn put_setting(conn: &mut Conn, name: &str, value: &str) -> Result<(), Error> {
    // `INSERT … ON CONFLICT (name) DO UPDATE SET value = excluded.value`, one statement
    // both backends run (an upsert is backend-specific to diesel, hence the match).
    let upsert = diesel::insert_into(settings::table)
        .values((settings::name.eq(name), settings::value.eq(value)))
        .on_conflict(settings::name)
        .do_update()
        .set(settings::value.eq(excluded(settings::value)));
    match conn {
        AnyConnection::Sqlite(c) => upsert.execute(c),
        AnyConnection::Postgres(c) => upsert.execute(c),
    }
    .map(drop)
    .map_err(from_diesel)
}
