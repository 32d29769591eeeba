//! One-time codes (the recovery issue), as `UserRepo` reads and writes them (`repo.rs`
//! delegates here). A code is spent by one conditional update, so of racing tries with the
//! right code exactly one changes a row; a wrong try is one update of the account's live
//! codes.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use gatehouse_domain::{CodePurpose, Error, NewCode, UserId, MAX_WRONG_TRIES};

use crate::errors::from_diesel;
use crate::schema::one_time_codes;
use crate::Conn;

/// [`UserRepo::insert_code`](gatehouse_domain::UserRepo::insert_code).
pub(crate) fn insert_code(conn: &mut Conn, code: &NewCode) -> Result<(), Error> {
    diesel::insert_into(one_time_codes::table)
        .values((
            one_time_codes::user_id.eq(code.user_id.get()),
            one_time_codes::purpose.eq(code.purpose.as_str()),
            one_time_codes::code_hash.eq(&code.code_hash),
            one_time_codes::created_at.eq(code.created_at.naive_utc()),
            one_time_codes::expires_at.eq(code.expires_at.naive_utc()),
            one_time_codes::wrong_tries.eq(0_i64),
        ))
        .execute(conn)
        .map(|_| ())
        .map_err(from_diesel)
}

/// [`UserRepo::count_codes_since`](gatehouse_domain::UserRepo::count_codes_since).
pub(crate) fn count_codes_since(
    conn: &mut Conn,
    user: UserId,
    purpose: CodePurpose,
    since: DateTime<Utc>,
) -> Result<u64, Error> {
    one_time_codes::table
        .filter(one_time_codes::user_id.eq(user.get()))
        .filter(one_time_codes::purpose.eq(purpose.as_str()))
        .filter(one_time_codes::created_at.ge(since.naive_utc()))
        .count()
        .get_result::<i64>(conn)
        .map(|n| u64::try_from(n).unwrap_or(0))
        .map_err(from_diesel)
}

/// [`UserRepo::spend_code`](gatehouse_domain::UserRepo::spend_code).
pub(crate) fn spend_code(
    conn: &mut Conn,
    user: UserId,
    purpose: CodePurpose,
    code_hash: &str,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let now = now.naive_utc();
    let live = one_time_codes::user_id
        .eq(user.get())
        .and(one_time_codes::purpose.eq(purpose.as_str()))
        .and(one_time_codes::spent_at.is_null())
        .and(one_time_codes::wrong_tries.lt(MAX_WRONG_TRIES))
        .and(one_time_codes::expires_at.gt(now));
    // The right code: spent, in one statement that only a live code passes (PostgreSQL
    // re-checks the condition after waiting for a racing spender's row lock).
    let spent = diesel::update(
        one_time_codes::table
            .filter(live)
            .filter(one_time_codes::code_hash.eq(code_hash)),
    )
    .set(one_time_codes::spent_at.eq(Some(now)))
    .execute(conn)
    .map_err(from_diesel)?;
    if spent == 0 {
        diesel::update(one_time_codes::table.filter(live))
            .set(one_time_codes::wrong_tries.eq(one_time_codes::wrong_tries + 1_i64))
            .execute(conn)
            .map_err(from_diesel)?;
        return Ok(false);
    }
    // The account's other live codes of the purpose die with it.
    diesel::update(one_time_codes::table.filter(live))
        .set(one_time_codes::spent_at.eq(Some(now)))
        .execute(conn)
        .map_err(from_diesel)?;
    Ok(true)
}

/// Deletes codes expired before `before`; returns how many went.
pub(crate) fn prune_codes(conn: &mut Conn, before: DateTime<Utc>) -> Result<u64, Error> {
    diesel::delete(one_time_codes::table.filter(one_time_codes::expires_at.lt(before.naive_utc())))
        .execute(conn)
        .map(|n| n as u64)
        .map_err(from_diesel)
}
