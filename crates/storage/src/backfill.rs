//! The data half of the migration `email_skeleton`, which SQL cannot do: every user stored
//! without an email skeleton gets one, and its email in today's normal form (NFKC, lower
//! case), in batches of short write transactions.
//!
//! Run by [`Database::open`](crate::Database::open) right after the SQL migrations, on the
//! migrating connection (on PostgreSQL still under the migration lock, so instances starting
//! together fill in one after another and the later ones find nothing to do). Idempotent:
//! only rows whose skeleton is NULL are read, and each is given one. Rows that an older
//! version writes meanwhile (a rolling upgrade) are filled in at the next start.
//!
//! Nothing is merged or refused here: an email whose normal form is another user's stays as
//! it was, and accounts whose emails look alike keep them. Both are reported with
//! `tracing::warn!` (by user id) for an operator to review.

use std::collections::HashMap;

use diesel::prelude::*;
use gatehouse_domain::{Email, Error};

use crate::conn::AnyConnection;
use crate::errors::from_diesel;
use crate::schema::users;
use crate::tx::{self, Mode};

/// Users filled in per transaction: short enough not to hold SQLite's write lock (or
/// PostgreSQL's serializable snapshot) for long while requests wait.
const BATCH: i64 = 500;

/// What one batch did.
#[derive(Debug, Default, Clone, Copy)]
struct Batch {
    /// The last id it read; the next batch starts after it.
    last_id: Option<i64>,
    filled: u64,
    normalised: u64,
}

/// Fills in the missing email skeletons; reports the look-alikes when it filled any.
pub(crate) fn email_skeletons(conn: &mut AnyConnection) -> Result<(), Error> {
    let (mut after, mut filled, mut normalised) = (0, 0, 0);
    loop {
        let batch = tx::run(conn, Mode::Write, |conn| fill_batch(conn, after))?;
        filled += batch.filled;
        normalised += batch.normalised;
        match batch.last_id {
            Some(last) => after = last,
            None => break,
        }
    }
    if filled > 0 {
        tracing::info!(filled, normalised, "filled in the users' email skeletons");
        report_look_alikes(conn)?;
    }
    Ok(())
}

fn fill_batch(conn: &mut AnyConnection, after: i64) -> Result<Batch, Error> {
    let rows = users::table
        .filter(users::email_skeleton.is_null())
        .filter(users::id.gt(after))
        .order(users::id.asc())
        .select((users::id, users::email))
        .limit(BATCH)
        .load::<(i64, String)>(conn)
        .map_err(from_diesel)?;
    let mut batch = Batch {
        last_id: rows.last().map(|(id, _)| *id),
        ..Batch::default()
    };
    // Normal forms given out in this batch (not written yet), and to whom.
    let mut claimed = HashMap::new();
    let mut filled = Vec::with_capacity(rows.len());
    for (id, stored) in rows {
        let email = match Email::from_stored(stored.as_str()) {
            Ok(email) => email,
            Err(e) => {
                // Such a row cannot be read as a user either; leave it to the operator.
                tracing::warn!(user_id = id, error = %e, "a stored email is not an address: left without a skeleton");
                continue;
            }
        };
        let skeleton = email.skeleton();
        let email = normal_form(conn, id, email, &mut claimed)?;
        let normalised = email.as_str() != stored;
        batch.normalised += u64::from(normalised);
        filled.push(Filled {
            id,
            email: email.as_str().to_owned(),
            skeleton,
            normalised,
        });
    }
    batch.filled = filled.len() as u64;
    write(conn, filled)?;
    Ok(batch)
}

/// A user's email and skeleton, as the backfill writes them.
struct Filled {
    id: i64,
    email: String,
    skeleton: String,
    /// Whether `email` differs from the stored one.
    normalised: bool,
}

/// Writes a batch: PostgreSQL in one statement (a round trip per user made 100 000 users
/// take 30 s), SQLite (in-process, no round trips) a row at a time.
fn write(conn: &mut AnyConnection, filled: Vec<Filled>) -> Result<(), Error> {
    use diesel::sql_types::{Array, BigInt, Text};

    match conn {
        AnyConnection::Postgres(pg) => {
            let (mut ids, mut emails, mut skeletons) = (Vec::new(), Vec::new(), Vec::new());
            for row in filled {
                ids.push(row.id);
                emails.push(row.email);
                skeletons.push(row.skeleton);
            }
            diesel::sql_query(
                "UPDATE users SET email = v.email, email_skeleton = v.skeleton \
                 FROM unnest($1, $2, $3) AS v (id, email, skeleton) WHERE users.id = v.id",
            )
            .bind::<Array<BigInt>, _>(ids)
            .bind::<Array<Text>, _>(emails)
            .bind::<Array<Text>, _>(skeletons)
            .execute(pg)
            .map(drop)
            .map_err(from_diesel)
        }
        AnyConnection::Sqlite(_) => {
            for row in filled {
                let target = users::table.find(row.id);
                let skeleton = users::email_skeleton.eq(&row.skeleton);
                // The email only where it changes: no index or trigger work for the rest.
                if row.normalised {
                    diesel::update(target)
                        .set((users::email.eq(&row.email), skeleton))
                        .execute(conn)
                } else {
                    diesel::update(target).set(skeleton).execute(conn)
                }
                .map_err(from_diesel)?;
            }
            Ok(())
        }
    }
}

/// The email user `id` should have now: its normal form, unless that is not a plausible
/// address or is another user's email already, or given to another user earlier in this
/// batch (`claimed`); then as it was, with a warning.
fn normal_form(
    conn: &mut AnyConnection,
    id: i64,
    stored: Email,
    claimed: &mut HashMap<String, i64>,
) -> Result<Email, Error> {
    let normal = match stored.normalized() {
        Ok(normal) if normal == stored => return Ok(stored),
        Ok(normal) => normal,
        Err(e) => {
            tracing::warn!(user_id = id, error = %e, "a stored email's normal form is not an address: the email is left as it was");
            return Ok(stored);
        }
    };
    let holder = match claimed.get(normal.as_str()) {
        Some(other) => Some(*other),
        None => users::table
            .filter(users::email.eq(normal.as_str()))
            .filter(users::id.ne(id))
            .select(users::id)
            .first::<i64>(conn)
            .optional()
            .map_err(from_diesel)?,
    };
    match holder {
        Some(other) => {
            tracing::warn!(
                user_id = id,
                other_user_id = other,
                "a stored email normalises (NFKC) to another user's email: both accounts are \
                 left as they are; review them"
            );
            Ok(stored)
        }
        None => {
            claimed.insert(normal.as_str().to_owned(), id);
            Ok(normal)
        }
    }
}

/// Warns about every group of users whose emails share a skeleton (look alike).
fn report_look_alikes(conn: &mut AnyConnection) -> Result<(), Error> {
    let shared = users::table
        .filter(users::email_skeleton.is_not_null())
        .group_by(users::email_skeleton)
        .having(diesel::dsl::count_star().gt(1))
        .select(users::email_skeleton)
        .load::<Option<String>>(conn)
        .map_err(from_diesel)?;
    for skeleton in shared.into_iter().flatten() {
        let ids = users::table
            .filter(users::email_skeleton.eq(&skeleton))
            .order(users::id.asc())
            .select(users::id)
            .load::<i64>(conn)
            .map_err(from_diesel)?;
        tracing::warn!(
            user_ids = ?ids,
            "accounts whose emails look alike (one confusable skeleton, Unicode UTS #39) are \
             left as they are; review them: new look-alikes are refused from now on"
        );
    }
    Ok(())
}
