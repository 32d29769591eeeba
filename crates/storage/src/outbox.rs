//! The webhook outbox (the notifications issue): endpoints and the deliveries of events, as
//! `UserRepo` reads and writes them (`repo.rs` delegates here).
//!
//! An event is written as one `pending` delivery per endpoint it goes to, each carrying the
//! event's id, type and payload (no table of events: see the migration `lean_outbox`), in
//! the transaction of the change that raised it. Dispatchers claim due deliveries for a lease
//! (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so that concurrent dispatchers never wait for
//! each other nor claim one delivery twice; SQLite serializes writers anyway), attempt
//! them, and record each attempt, which releases the claim.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use gatehouse_domain::{
    Attempt, AttemptNext, Delivery, DeliveryStatus, DueDeliveries, DueDelivery, Error, NewEvent,
    NewWebhook, Page, PageQuery, Webhook,
};

use crate::conn::AnyConnection;
use crate::errors::from_diesel;
use crate::prepared::KeepPrepared;
use crate::repo::{count, page_bounds};
use crate::rows::{
    ClaimedRow, DeliveryRow, DueRow, WebhookRow, DELIVERY_COLUMNS, DUE_COLUMNS, WEBHOOK_COLUMNS,
};
use crate::schema::{webhook_deliveries, webhooks};
use crate::stored_time::StoredTime;
use crate::Conn;

/// Why a delivery failed without an attempt: its endpoint was turned off.
const DISABLED: &str = "the endpoint was disabled";

const PENDING: &str = "pending";

/// The ids of the oldest due deliveries, at most `$limit` of them: pending, due at `$now`,
/// not leased (or the lease run out), of an active endpoint; oldest due first, then by id.
/// Written once for the three statements that take due deliveries (the PostgreSQL claim,
/// the SQLite claim, the sole dispatcher's read), so that they cannot drift apart.
/// `'pending'` is written out, not bound, so that both planners see that the partial index
/// `webhook_deliveries_due_idx` serves it. SQLite numbers `$N` parameters in the order they
/// first appear, so a statement must name them in increasing order.
macro_rules! due_ids {
    ($now:literal, $limit:literal) => {
        concat!(
            "SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= ",
            $now,
            " AND (d.claimed_until IS NULL OR d.claimed_until < ",
            $now,
            ") AND w.active ORDER BY d.next_attempt_at, d.id LIMIT ",
            $limit
        )
    };
}

/// The id a statement returned.
#[derive(Debug, QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// [`UserRepo::insert_webhook`](gatehouse_domain::UserRepo::insert_webhook).
pub(crate) fn insert_webhook(conn: &mut Conn, new: &NewWebhook) -> Result<Webhook, Error> {
    let created_at = new.created_at.naive_utc();
    diesel::insert_into(webhooks::table)
        .values((
            webhooks::url.eq(new.url.as_str()),
            webhooks::events.eq(new.events.to_stored()),
            webhooks::description.eq(new.description.as_deref()),
            webhooks::secret.eq(new.secret.expose()),
            webhooks::active.eq(true),
            webhooks::created_at.eq(created_at),
            webhooks::updated_at.eq(created_at),
        ))
        .returning(WEBHOOK_COLUMNS)
        .get_result::<WebhookRow>(conn)
        .map(Webhook::from)
        .map_err(from_diesel)
}

/// [`UserRepo::find_webhook`](gatehouse_domain::UserRepo::find_webhook).
pub(crate) fn find_webhook(conn: &mut Conn, id: i64) -> Result<Option<Webhook>, Error> {
    webhooks::table
        .find(id)
        .select(WEBHOOK_COLUMNS)
        .get_result::<WebhookRow>(conn)
        .optional()
        .map(|row| row.map(Webhook::from))
        .map_err(from_diesel)
}

/// [`UserRepo::list_webhooks`](gatehouse_domain::UserRepo::list_webhooks).
pub(crate) fn list_webhooks(conn: &mut Conn, query: &PageQuery) -> Result<Page<Webhook>, Error> {
    let total = webhooks::table
        .count()
        .get_result::<i64>(conn)
        .map_err(from_diesel)?;
    let mut select = webhooks::table
        .select(WEBHOOK_COLUMNS)
        .order(webhooks::id.asc())
        .into_boxed();
    if let Some((limit, offset)) = page_bounds(query.limit, query.offset) {
        select = select.limit(limit).offset(offset);
    }
    let items = select
        .load::<WebhookRow>(conn)
        .map_err(from_diesel)?
        .into_iter()
        .map(Webhook::from)
        .collect();
    Ok(Page {
        items,
        total: count(total),
    })
}

/// [`UserRepo::save_webhook`](gatehouse_domain::UserRepo::save_webhook).
pub(crate) fn save_webhook(conn: &mut Conn, webhook: &Webhook) -> Result<bool, Error> {
    diesel::update(webhooks::table.find(webhook.id))
        .set((
            webhooks::url.eq(&webhook.url),
            webhooks::events.eq(webhook.events.to_stored()),
            webhooks::description.eq(webhook.description.as_deref()),
            webhooks::active.eq(webhook.active),
            webhooks::secret.eq(webhook.secret.expose()),
            webhooks::updated_at.eq(gatehouse_domain::now().naive_utc()),
        ))
        .execute(conn)
        .map(|n| n > 0)
        .map_err(from_diesel)
}

/// [`UserRepo::delete_webhook`](gatehouse_domain::UserRepo::delete_webhook).
pub(crate) fn delete_webhook(conn: &mut Conn, id: i64) -> Result<bool, Error> {
    // Its deliveries go with it (ON DELETE CASCADE).
    diesel::delete(webhooks::table.find(id))
        .execute(conn)
        .map(|n| n > 0)
        .map_err(from_diesel)
}

/// [`UserRepo::append_event`](gatehouse_domain::UserRepo::append_event).
pub(crate) fn append_event(conn: &mut Conn, event: &NewEvent) -> Result<u64, Error> {
    // One statement finds the endpoints the event goes to and writes their deliveries
    // (`INSERT … SELECT`), built by the query builder so that both backends keep it
    // prepared: with an endpoint or without, a change that raises an event pays for one
    // cached statement and, on PostgreSQL, one round trip. (A lookup and then an insert
    // were two: the second lengthened every change's transaction, and with it the window
    // in which concurrent serializable changes conflict.)
    let at = event.at.naive_utc();
    let columns = (
        webhook_deliveries::webhook_id,
        webhook_deliveries::event_id,
        webhook_deliveries::event_type,
        webhook_deliveries::payload,
        webhook_deliveries::status,
        webhook_deliveries::attempts,
        webhook_deliveries::next_attempt_at,
        webhook_deliveries::created_at,
    );
    let delivery = (
        webhooks::id,
        event.id.as_str().into_sql::<Text>(),
        event.event_type.as_str().into_sql::<Text>(),
        event.payload.as_str().into_sql::<Text>(),
        PENDING.into_sql::<Text>(),
        0_i64.into_sql::<BigInt>(),
        Some(at).into_sql::<Nullable<Timestamp>>(),
        at.into_sql::<Timestamp>(),
    );
    let written = match event.only_webhook {
        Some(webhook) => diesel::insert_into(webhook_deliveries::table)
            .values(
                webhooks::table
                    .filter(webhooks::id.eq(webhook))
                    .select(delivery),
            )
            .into_columns(columns)
            .execute(conn),
        None => diesel::insert_into(webhook_deliveries::table)
            .values(
                webhooks::table
                    .filter(webhooks::active.eq(true))
                    // The pattern is built in SQL from the bound type, not bound
                    // itself: SQLite prepares `x LIKE ?` again whenever the bound
                    // pattern differs from the last run's (in case an index could
                    // serve it), which, with changes raising alternate events, was
                    // every change (docs/performance.md, "Issue 18, seventh session").
                    .filter(
                        webhooks::events.eq("*").or(webhooks::events.like(
                            "%,".into_sql::<Text>()
                                .concat(event.event_type.as_str())
                                .concat(",%"),
                        )),
                    )
                    .order(webhooks::id.asc())
                    .select(delivery),
            )
            .into_columns(columns)
            .execute(conn),
    }
    .map_err(from_diesel)?;
    Ok(written as u64)
}

/// [`UserRepo::list_deliveries`](gatehouse_domain::UserRepo::list_deliveries).
pub(crate) fn list_deliveries(
    conn: &mut Conn,
    webhook: i64,
    query: &PageQuery,
) -> Result<Page<Delivery>, Error> {
    let total = webhook_deliveries::table
        .filter(webhook_deliveries::webhook_id.eq(webhook))
        .count()
        .get_result::<i64>(conn)
        .map_err(from_diesel)?;
    let mut select = webhook_deliveries::table
        .filter(webhook_deliveries::webhook_id.eq(webhook))
        .select(DELIVERY_COLUMNS)
        .order(webhook_deliveries::id.desc())
        .into_boxed();
    if let Some((limit, offset)) = page_bounds(query.limit, query.offset) {
        select = select.limit(limit).offset(offset);
    }
    let items = select
        .load::<DeliveryRow>(conn)
        .map_err(from_diesel)?
        .into_iter()
        .map(Delivery::try_from)
        .collect::<Result<_, _>>()?;
    Ok(Page {
        items,
        total: count(total),
    })
}

/// [`UserRepo::fail_inactive_deliveries`](gatehouse_domain::UserRepo::fail_inactive_deliveries).
pub(crate) fn fail_inactive_deliveries(conn: &mut Conn) -> Result<u64, Error> {
    // The endpoints are looked at first (a cached statement): with none turned off, the
    // common case, nothing is written.
    if inactive_webhooks(conn)?.is_empty() {
        return Ok(0);
    }
    // The pending deliveries are walked through the partial due index: `'pending'` is
    // written out so that the planners match the index's condition, and the unary `+`
    // keeps them off the index by endpoint, which would walk every delivery the endpoint
    // ever had, settled ones included, at every turn while it is off.
    diesel::update(
        webhook_deliveries::table.filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
            "webhook_deliveries.status = 'pending' AND +webhook_deliveries.webhook_id IN \
             (SELECT id FROM webhooks WHERE NOT active)",
        )),
    )
    .set((
        webhook_deliveries::status.eq(DeliveryStatus::Failed.as_str()),
        webhook_deliveries::next_attempt_at.eq(None::<NaiveDateTime>),
        webhook_deliveries::claimed_until.eq(None::<NaiveDateTime>),
        webhook_deliveries::last_error.eq(DISABLED),
    ))
    .execute(conn)
    .map(|n| n as u64)
    .map_err(from_diesel)
}

/// The endpoints turned off.
fn inactive_webhooks(conn: &mut Conn) -> Result<Vec<i64>, Error> {
    webhooks::table
        .filter(webhooks::active.eq(false))
        .select(webhooks::id)
        .load(conn)
        .map_err(from_diesel)
}

/// [`UserRepo::claim_deliveries`](gatehouse_domain::UserRepo::claim_deliveries).
pub(crate) fn claim_deliveries(
    conn: &mut Conn,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<DueDelivery>, Error> {
    // Pending deliveries of endpoints turned off are not attempted: they fail.
    fail_inactive_deliveries(conn)?;
    if limit == 0 {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    if matches!(conn, AnyConnection::Sqlite(_)) {
        return claim_deliveries_sqlite(conn, now, lease_until, limit);
    }
    // PostgreSQL, in one statement and one round trip: rows another dispatcher is claiming
    // right now are skipped, not waited for; a row claimed and committed meanwhile is
    // re-checked (READ COMMITTED) and left out, its lease not run out. The endpoint's
    // address and secret come back with each row (`UPDATE … FROM`).
    let mut claimed = diesel::sql_query(concat!(
        "UPDATE webhook_deliveries u SET claimed_until = $1 FROM webhooks e \
         WHERE e.id = u.webhook_id AND u.id IN (",
        due_ids!("$2", "$3"),
        " FOR UPDATE OF d SKIP LOCKED) \
         RETURNING u.id, u.webhook_id, e.url, e.secret, u.event_id, u.payload, u.attempts, \
         u.next_attempt_at"
    ))
    .bind::<Timestamp, _>(lease_until.naive_utc())
    .bind::<Timestamp, _>(now.naive_utc())
    .bind::<BigInt, _>(limit)
    .keep_prepared()
    .load::<ClaimedRow>(conn)
    .map_err(from_diesel)?;
    // Oldest due first, as they were chosen (RETURNING keeps no order).
    claimed.sort_by_key(ClaimedRow::order);
    claimed.into_iter().map(DueDelivery::try_from).collect()
}

/// SQLite's claim (writers run one at a time): the due rows get their lease, then are read
/// with their endpoints (SQLite's `RETURNING` cannot name a joined table).
fn claim_deliveries_sqlite(
    conn: &mut Conn,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<DueDelivery>, Error> {
    let claimed = diesel::sql_query(concat!(
        "UPDATE webhook_deliveries SET claimed_until = $1 WHERE id IN (",
        due_ids!("$2", "$3"),
        ") RETURNING id"
    ))
    .bind::<Timestamp, _>(lease_until.naive_utc())
    .bind::<Timestamp, _>(now.naive_utc())
    .bind::<BigInt, _>(limit)
    .keep_prepared()
    .load::<Id>(conn)
    .map_err(from_diesel)?;
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = claimed.into_iter().map(|row| row.id).collect();
    webhook_deliveries::table
        .inner_join(webhooks::table)
        .filter(webhook_deliveries::id.eq_any(ids))
        .order((
            webhook_deliveries::next_attempt_at.asc(),
            webhook_deliveries::id.asc(),
        ))
        .select(DUE_COLUMNS)
        .load::<DueRow>(conn)
        .map_err(from_diesel)?
        .into_iter()
        .map(DueDelivery::try_from)
        .collect()
}

/// [`UserRepo::due_deliveries`](gatehouse_domain::UserRepo::due_deliveries).
pub(crate) fn due_deliveries(
    conn: &mut Conn,
    now: DateTime<Utc>,
    limit: u64,
    skip: &[i64],
) -> Result<DueDeliveries, Error> {
    let inactive_endpoints = !inactive_webhooks(conn)?.is_empty();
    if limit == 0 {
        return Ok(DueDeliveries {
            due: Vec::new(),
            inactive_endpoints,
        });
    }
    // The rows to skip are among the oldest due (they were chosen as these are): read that
    // many more and leave them out, so that the statement keeps one shape whatever is
    // skipped. (Raw SQL, for the one definition of "due" shared with the claims, kept
    // prepared like them: see `prepared.rs`.)
    let wanted = limit.saturating_add(skip.len() as u64);
    let mut rows = diesel::sql_query(concat!(
        "SELECT t.id, t.webhook_id, h.url, h.secret, t.event_id, t.payload, t.attempts, \
         t.next_attempt_at FROM webhook_deliveries t JOIN webhooks h ON h.id = t.webhook_id \
         WHERE t.id IN (",
        due_ids!("$1", "$2"),
        ")"
    ))
    .bind::<Timestamp, _>(now.naive_utc())
    .bind::<BigInt, _>(i64::try_from(wanted).unwrap_or(i64::MAX))
    .keep_prepared()
    .load::<ClaimedRow>(conn)
    .map_err(from_diesel)?;
    // Oldest due first, as they were chosen (`IN` keeps no order).
    rows.sort_by_key(ClaimedRow::order);
    let mut due = rows
        .into_iter()
        .map(DueDelivery::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    due.retain(|due| !skip.contains(&due.id));
    due.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(DueDeliveries {
        due,
        inactive_endpoints,
    })
}

/// What an attempt leaves: the delivery's status and when it is due next.
fn settled(next: AttemptNext) -> (DeliveryStatus, Option<NaiveDateTime>) {
    match next {
        AttemptNext::Delivered => (DeliveryStatus::Delivered, None),
        AttemptNext::RetryAt(at) => (DeliveryStatus::Pending, Some(at.naive_utc())),
        AttemptNext::Failed | AttemptNext::Gone => (DeliveryStatus::Failed, None),
    }
}

/// [`UserRepo::record_attempt`](gatehouse_domain::UserRepo::record_attempt).
pub(crate) fn record_attempt(conn: &mut Conn, id: i64, attempt: &Attempt) -> Result<bool, Error> {
    let (status, next) = settled(attempt.next);
    let at = attempt.at.naive_utc();
    let Some(webhook) = diesel::update(webhook_deliveries::table.find(id))
        .set((
            webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1_i64),
            webhook_deliveries::last_attempt_at.eq(Some(at)),
            webhook_deliveries::last_status_code.eq(attempt.status_code.map(i64::from)),
            webhook_deliveries::last_error.eq(attempt.error.as_deref()),
            webhook_deliveries::claimed_until.eq(None::<NaiveDateTime>),
            webhook_deliveries::status.eq(status.as_str()),
            webhook_deliveries::next_attempt_at.eq(next),
        ))
        .returning(webhook_deliveries::webhook_id)
        .keep_prepared()
        .get_result::<i64>(conn)
        .optional()
        .map_err(from_diesel)?
    else {
        return Ok(false);
    };
    if attempt.next == AttemptNext::Gone {
        disable_gone(conn, webhook, at)?;
    }
    Ok(true)
}

/// An endpoint that answered 410 Gone is turned off; its pending deliveries fail with the
/// next claim (or, for a sole dispatcher, its next write).
fn disable_gone(conn: &mut Conn, webhook: i64, at: NaiveDateTime) -> Result<(), Error> {
    diesel::update(webhooks::table.find(webhook))
        .set((webhooks::active.eq(false), webhooks::updated_at.eq(at)))
        .execute(conn)
        .map(drop)
        .map_err(from_diesel)
}

/// [`UserRepo::record_attempts`](gatehouse_domain::UserRepo::record_attempts).
pub(crate) fn record_attempts(conn: &mut Conn, done: &[(i64, Attempt)]) -> Result<u64, Error> {
    match done {
        [] => return Ok(0),
        [(id, attempt)] => return record_attempt(conn, *id, attempt).map(u64::from),
        _ => {}
    }
    // One statement for the lot, whatever their number: the attempts travel as one JSON
    // array (times as each backend keeps them), so the statement keeps one cached shape.
    // A dispatcher's turn used to run one `UPDATE` per attempt, holding SQLite's one
    // writer (and a PostgreSQL round trip) for each.
    let rows: Vec<serde_json::Value> = done
        .iter()
        .map(|(id, attempt)| {
            let (status, next) = settled(attempt.next);
            serde_json::json!({
                "id": id,
                "at": stamp(attempt.at.naive_utc()),
                "code": attempt.status_code,
                "error": attempt.error,
                "status": status.as_str(),
                "next": next.map(stamp),
            })
        })
        .collect();
    let json = serde_json::Value::Array(rows).to_string();
    let statement = match conn {
        AnyConnection::Sqlite(_) => {
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_attempt_at = a.at, \
             last_status_code = a.code, last_error = a.error, claimed_until = NULL, \
             status = a.status, next_attempt_at = a.next \
             FROM (SELECT value ->> 'id' AS id, value ->> 'at' AS at, value ->> 'code' AS code, \
             value ->> 'error' AS error, value ->> 'status' AS status, \
             value ->> 'next' AS next FROM json_each($1)) AS a \
             WHERE webhook_deliveries.id = a.id \
             RETURNING webhook_deliveries.id AS id, webhook_deliveries.webhook_id AS webhook_id"
        }
        AnyConnection::Postgres(_) => {
            "UPDATE webhook_deliveries d SET attempts = d.attempts + 1, last_attempt_at = a.at, \
             last_status_code = a.code, last_error = a.error, claimed_until = NULL, \
             status = a.status, next_attempt_at = a.next \
             FROM jsonb_to_recordset($1::jsonb) AS a(id BIGINT, at TIMESTAMP, code BIGINT, \
             error TEXT, status TEXT, next TIMESTAMP) \
             WHERE d.id = a.id RETURNING d.id AS id, d.webhook_id AS webhook_id"
        }
    };
    let recorded = diesel::sql_query(statement)
        .bind::<Text, _>(json)
        .keep_prepared()
        .load::<Recorded>(conn)
        .map_err(from_diesel)?;
    for (id, attempt) in done {
        if attempt.next != AttemptNext::Gone {
            continue;
        }
        if let Some(row) = recorded.iter().find(|row| row.id == *id) {
            disable_gone(conn, row.webhook_id, attempt.at.naive_utc())?;
        }
    }
    Ok(recorded.len() as u64)
}

/// A delivery [`record_attempts`] recorded, and its endpoint.
#[derive(Debug, QueryableByName)]
struct Recorded {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    webhook_id: i64,
}

/// A time as diesel writes a `TIMESTAMP` into SQLite's text (`%F %T%.f`), which
/// PostgreSQL reads too: SQLite compares these as text, so the form must be the same.
fn stamp(at: NaiveDateTime) -> String {
    at.format("%F %T%.f").to_string()
}

/// [`UserRepo::outbox_backlog`](gatehouse_domain::UserRepo::outbox_backlog).
pub(crate) fn outbox_backlog(
    conn: &mut Conn,
    now: DateTime<Utc>,
) -> Result<(u64, Option<DateTime<Utc>>), Error> {
    // `'pending'` written out, not bound, so that both planners see the partial index
    // `webhook_deliveries_due_idx` serves the statement.
    let backlog = diesel::sql_query(
        "SELECT COUNT(*) AS pending, \
         MIN(CASE WHEN next_attempt_at <= $1 THEN next_attempt_at END) AS oldest_due \
         FROM webhook_deliveries WHERE status = 'pending'",
    )
    .bind::<Timestamp, _>(now.naive_utc())
    .keep_prepared()
    .get_result::<Backlog>(conn)
    .map_err(from_diesel)?;
    Ok((
        count(backlog.pending),
        backlog.oldest_due.map(|at| at.0.and_utc()),
    ))
}

/// What [`outbox_backlog`] reads.
#[derive(Debug, QueryableByName)]
struct Backlog {
    #[diesel(sql_type = BigInt)]
    pending: i64,
    #[diesel(sql_type = Nullable<Timestamp>)]
    oldest_due: Option<StoredTime>,
}

/// [`UserRepo::prune_deliveries`](gatehouse_domain::UserRepo::prune_deliveries).
pub(crate) fn prune_deliveries(conn: &mut Conn, before: DateTime<Utc>) -> Result<u64, Error> {
    // Ids grow with time, so the settled deliveries written before `before` are those below
    // the first id written since, found by walking the key from the oldest: no index on
    // the time is kept (every change would pay for it), and the walk reads only what is
    // about to be deleted. Pending ones stay, whatever their age.
    diesel::sql_query(
        "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND id < COALESCE(\
         (SELECT f.id FROM webhook_deliveries f WHERE f.created_at >= $1 \
         ORDER BY f.id LIMIT 1), \
         (SELECT MAX(l.id) + 1 FROM webhook_deliveries l))",
    )
    .bind::<Timestamp, _>(before.naive_utc())
    .execute(conn)
    .map(|n| n as u64)
    .map_err(from_diesel)
}
