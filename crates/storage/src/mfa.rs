//! Second factors (the MFA issue), as `UserRepo` reads and writes them (`repo.rs`
//! delegates here). Every spend (a TOTP step, a recovery code, a challenge) is one
//! conditional statement, so of racing requests exactly one changes a row (PostgreSQL
//! re-checks the condition after waiting for a racing writer's row lock).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use gatehouse_domain::{
    Challenge, ChallengePurpose, Error, NewChallenge, StoredTotp, UserId, MAX_MFA_WRONG_CODES,
};

use crate::errors::from_diesel;
use crate::schema::{mfa_challenges, recovery_codes, totp_factors};
use crate::Conn;

type TotpRow = (
    i64,
    String,
    Option<chrono::NaiveDateTime>,
    Option<i64>,
    chrono::NaiveDateTime,
);

/// [`UserRepo::totp`](gatehouse_domain::UserRepo::totp).
pub(crate) fn totp(conn: &mut Conn, user: UserId) -> Result<Option<StoredTotp>, Error> {
    let row: Option<TotpRow> = totp_factors::table
        .find(user.get())
        .select((
            totp_factors::user_id,
            totp_factors::secret,
            totp_factors::confirmed_at,
            totp_factors::last_step,
            totp_factors::created_at,
        ))
        .first(conn)
        .optional()
        .map_err(from_diesel)?;
    Ok(row.map(
        |(_, secret, confirmed_at, last_step, created_at)| StoredTotp {
            user_id: user,
            secret,
            confirmed_at: confirmed_at.map(|at| at.and_utc()),
            last_step,
            created_at: created_at.and_utc(),
        },
    ))
}

/// [`UserRepo::put_totp`](gatehouse_domain::UserRepo::put_totp).
pub(crate) fn put_totp(conn: &mut Conn, totp: &StoredTotp) -> Result<(), Error> {
    diesel::delete(totp_factors::table.find(totp.user_id.get()))
        .execute(conn)
        .map_err(from_diesel)?;
    diesel::insert_into(totp_factors::table)
        .values((
            totp_factors::user_id.eq(totp.user_id.get()),
            totp_factors::secret.eq(&totp.secret),
            totp_factors::confirmed_at.eq(totp.confirmed_at.map(|at| at.naive_utc())),
            totp_factors::last_step.eq(totp.last_step),
            totp_factors::created_at.eq(totp.created_at.naive_utc()),
        ))
        .execute(conn)
        .map(|_| ())
        .map_err(from_diesel)
}

/// [`UserRepo::confirm_totp`](gatehouse_domain::UserRepo::confirm_totp).
pub(crate) fn confirm_totp(
    conn: &mut Conn,
    user: UserId,
    step: i64,
    at: DateTime<Utc>,
) -> Result<bool, Error> {
    diesel::update(
        totp_factors::table
            .find(user.get())
            .filter(totp_factors::confirmed_at.is_null()),
    )
    .set((
        totp_factors::confirmed_at.eq(Some(at.naive_utc())),
        totp_factors::last_step.eq(Some(step)),
    ))
    .execute(conn)
    .map(|n| n == 1)
    .map_err(from_diesel)
}

/// [`UserRepo::use_totp_step`](gatehouse_domain::UserRepo::use_totp_step).
pub(crate) fn use_totp_step(conn: &mut Conn, user: UserId, step: i64) -> Result<bool, Error> {
    diesel::update(
        totp_factors::table
            .find(user.get())
            .filter(totp_factors::confirmed_at.is_not_null())
            .filter(
                totp_factors::last_step
                    .is_null()
                    .or(totp_factors::last_step.lt(step)),
            ),
    )
    .set(totp_factors::last_step.eq(Some(step)))
    .execute(conn)
    .map(|n| n == 1)
    .map_err(from_diesel)
}

/// [`UserRepo::delete_totp`](gatehouse_domain::UserRepo::delete_totp).
pub(crate) fn delete_totp(conn: &mut Conn, user: UserId) -> Result<bool, Error> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user.get())))
        .execute(conn)
        .map_err(from_diesel)?;
    diesel::delete(totp_factors::table.find(user.get()))
        .execute(conn)
        .map(|n| n == 1)
        .map_err(from_diesel)
}

/// [`UserRepo::replace_recovery_codes`](gatehouse_domain::UserRepo::replace_recovery_codes).
pub(crate) fn replace_recovery_codes(
    conn: &mut Conn,
    user: UserId,
    hashes: &[String],
    at: DateTime<Utc>,
) -> Result<(), Error> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user.get())))
        .execute(conn)
        .map_err(from_diesel)?;
    let rows: Vec<_> = hashes
        .iter()
        .map(|hash| {
            (
                recovery_codes::user_id.eq(user.get()),
                recovery_codes::code_hash.eq(hash),
                recovery_codes::created_at.eq(at.naive_utc()),
            )
        })
        .collect();
    // One statement per code: a multi-row insert is not available on every backend of
    // the connection.
    for row in rows {
        diesel::insert_into(recovery_codes::table)
            .values(row)
            .execute(conn)
            .map_err(from_diesel)?;
    }
    Ok(())
}

/// [`UserRepo::spend_recovery_code`](gatehouse_domain::UserRepo::spend_recovery_code).
pub(crate) fn spend_recovery_code(
    conn: &mut Conn,
    user: UserId,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user.get()))
            .filter(recovery_codes::code_hash.eq(hash))
            .filter(recovery_codes::spent_at.is_null()),
    )
    .set(recovery_codes::spent_at.eq(Some(now.naive_utc())))
    .execute(conn)
    .map(|n| n == 1)
    .map_err(from_diesel)
}

/// [`UserRepo::count_recovery_codes`](gatehouse_domain::UserRepo::count_recovery_codes).
pub(crate) fn count_recovery_codes(conn: &mut Conn, user: UserId) -> Result<u64, Error> {
    recovery_codes::table
        .filter(recovery_codes::user_id.eq(user.get()))
        .filter(recovery_codes::spent_at.is_null())
        .count()
        .get_result::<i64>(conn)
        .map(|n| u64::try_from(n).unwrap_or(0))
        .map_err(from_diesel)
}

/// [`UserRepo::insert_challenge`](gatehouse_domain::UserRepo::insert_challenge).
pub(crate) fn insert_challenge(conn: &mut Conn, challenge: &NewChallenge) -> Result<(), Error> {
    diesel::insert_into(mfa_challenges::table)
        .values((
            mfa_challenges::token_hash.eq(&challenge.token_hash),
            mfa_challenges::purpose.eq(challenge.purpose.as_str()),
            mfa_challenges::user_id.eq(challenge.user_id.map(UserId::get)),
            mfa_challenges::state.eq(challenge.state.as_deref()),
            mfa_challenges::wrong_tries.eq(0_i64),
            mfa_challenges::created_at.eq(challenge.created_at.naive_utc()),
            mfa_challenges::expires_at.eq(challenge.expires_at.naive_utc()),
        ))
        .execute(conn)
        .map(|_| ())
        .map_err(from_diesel)
}

type ChallengeRow = (
    i64,
    String,
    Option<i64>,
    Option<String>,
    i64,
    chrono::NaiveDateTime,
);

/// [`UserRepo::find_challenge`](gatehouse_domain::UserRepo::find_challenge).
pub(crate) fn find_challenge(
    conn: &mut Conn,
    token_hash: &str,
    purpose: ChallengePurpose,
    now: DateTime<Utc>,
) -> Result<Option<Challenge>, Error> {
    let row: Option<ChallengeRow> = mfa_challenges::table
        .filter(mfa_challenges::token_hash.eq(token_hash))
        .filter(mfa_challenges::purpose.eq(purpose.as_str()))
        .filter(mfa_challenges::expires_at.gt(now.naive_utc()))
        .filter(mfa_challenges::wrong_tries.lt(MAX_MFA_WRONG_CODES))
        .select((
            mfa_challenges::id,
            mfa_challenges::purpose,
            mfa_challenges::user_id,
            mfa_challenges::state,
            mfa_challenges::wrong_tries,
            mfa_challenges::expires_at,
        ))
        .first(conn)
        .optional()
        .map_err(from_diesel)?;
    let Some((id, stored, user_id, state, wrong_tries, expires_at)) = row else {
        return Ok(None);
    };
    let purpose = ChallengePurpose::parse(&stored)
        .ok_or_else(|| Error::internal("a stored challenge", "an unknown purpose"))?;
    let user_id = user_id
        .map(UserId::new)
        .transpose()
        .map_err(|e| Error::internal("a stored challenge", e))?;
    Ok(Some(Challenge {
        id,
        purpose,
        user_id,
        state,
        wrong_tries,
        expires_at: expires_at.and_utc(),
    }))
}

/// [`UserRepo::challenge_wrong_try`](gatehouse_domain::UserRepo::challenge_wrong_try).
pub(crate) fn challenge_wrong_try(conn: &mut Conn, id: i64) -> Result<(), Error> {
    diesel::update(mfa_challenges::table.find(id))
        .set(mfa_challenges::wrong_tries.eq(mfa_challenges::wrong_tries + 1_i64))
        .execute(conn)
        .map(|_| ())
        .map_err(from_diesel)
}

/// [`UserRepo::spend_challenge`](gatehouse_domain::UserRepo::spend_challenge).
pub(crate) fn spend_challenge(conn: &mut Conn, id: i64, now: DateTime<Utc>) -> Result<bool, Error> {
    diesel::delete(
        mfa_challenges::table
            .find(id)
            .filter(mfa_challenges::expires_at.gt(now.naive_utc()))
            .filter(mfa_challenges::wrong_tries.lt(MAX_MFA_WRONG_CODES)),
    )
    .execute(conn)
    .map(|n| n == 1)
    .map_err(from_diesel)
}

/// [`UserRepo::delete_mfa`](gatehouse_domain::UserRepo::delete_mfa).
pub(crate) fn delete_mfa(conn: &mut Conn, user: UserId) -> Result<(), Error> {
    delete_totp(conn, user)?;
    crate::passkeys::delete_passkeys(conn, user)?;
    diesel::delete(mfa_challenges::table.filter(mfa_challenges::user_id.eq(user.get())))
        .execute(conn)
        .map(|_| ())
        .map_err(from_diesel)
}

/// Deletes challenges expired before `before`; returns how many went.
pub(crate) fn prune_challenges(conn: &mut Conn, before: DateTime<Utc>) -> Result<u64, Error> {
    diesel::delete(mfa_challenges::table.filter(mfa_challenges::expires_at.lt(before.naive_utc())))
        .execute(conn)
        .map(|n| n as u64)
        .map_err(from_diesel)
}
