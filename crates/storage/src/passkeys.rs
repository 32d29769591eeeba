//! Passkeys (the MFA issue), as `UserRepo` reads and writes them (`repo.rs` delegates
//! here), and the per-user challenge lookups of a passkey registration. A passkey's
//! record (`data`) is the WebAuthn library's JSON, stored as given.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use gatehouse_domain::{
    Challenge, ChallengePurpose, Error, NewPasskey, StoredPasskey, UserId, MAX_MFA_WRONG_CODES,
};

use crate::errors::from_diesel;
use crate::schema::{mfa_challenges, passkeys};
use crate::Conn;

type PasskeyRow = (
    i64,
    i64,
    String,
    String,
    String,
    NaiveDateTime,
    Option<NaiveDateTime>,
);

const PASSKEY_COLUMNS: (
    passkeys::id,
    passkeys::user_id,
    passkeys::credential_id,
    passkeys::name,
    passkeys::data,
    passkeys::created_at,
    passkeys::last_used_at,
) = (
    passkeys::id,
    passkeys::user_id,
    passkeys::credential_id,
    passkeys::name,
    passkeys::data,
    passkeys::created_at,
    passkeys::last_used_at,
);

fn passkey(row: PasskeyRow) -> Result<StoredPasskey, Error> {
    let (id, user_id, credential_id, name, data, created_at, last_used_at) = row;
    Ok(StoredPasskey {
        id,
        user_id: UserId::new(user_id).map_err(|e| Error::internal("a stored passkey", e))?,
        credential_id,
        name,
        data,
        created_at: created_at.and_utc(),
        last_used_at: last_used_at.map(|at| at.and_utc()),
    })
}

/// [`UserRepo::insert_passkey`](gatehouse_domain::UserRepo::insert_passkey).
pub(crate) fn insert_passkey(conn: &mut Conn, new: &NewPasskey) -> Result<StoredPasskey, Error> {
    diesel::insert_into(passkeys::table)
        .values((
            passkeys::user_id.eq(new.user_id.get()),
            passkeys::credential_id.eq(&new.credential_id),
            passkeys::name.eq(&new.name),
            passkeys::data.eq(&new.data),
            passkeys::created_at.eq(new.created_at.naive_utc()),
        ))
        .returning(PASSKEY_COLUMNS)
        .get_result::<PasskeyRow>(conn)
        .map_err(from_diesel)
        .and_then(passkey)
}

/// [`UserRepo::list_passkeys`](gatehouse_domain::UserRepo::list_passkeys).
pub(crate) fn list_passkeys(conn: &mut Conn, user: UserId) -> Result<Vec<StoredPasskey>, Error> {
    passkeys::table
        .filter(passkeys::user_id.eq(user.get()))
        .order((passkeys::created_at.desc(), passkeys::id.desc()))
        .select(PASSKEY_COLUMNS)
        .load::<PasskeyRow>(conn)
        .map_err(from_diesel)?
        .into_iter()
        .map(passkey)
        .collect()
}

/// [`UserRepo::find_passkey_by_credential`](gatehouse_domain::UserRepo::find_passkey_by_credential).
pub(crate) fn find_passkey_by_credential(
    conn: &mut Conn,
    credential_id: &str,
) -> Result<Option<StoredPasskey>, Error> {
    passkeys::table
        .filter(passkeys::credential_id.eq(credential_id))
        .select(PASSKEY_COLUMNS)
        .first::<PasskeyRow>(conn)
        .optional()
        .map_err(from_diesel)?
        .map(passkey)
        .transpose()
}

/// [`UserRepo::record_passkey_use`](gatehouse_domain::UserRepo::record_passkey_use).
pub(crate) fn record_passkey_use(
    conn: &mut Conn,
    id: i64,
    data: &str,
    at: DateTime<Utc>,
) -> Result<bool, Error> {
    diesel::update(passkeys::table.find(id))
        .set((
            passkeys::data.eq(data),
            passkeys::last_used_at.eq(Some(at.naive_utc())),
        ))
        .execute(conn)
        .map(|n| n == 1)
        .map_err(from_diesel)
}

/// [`UserRepo::delete_passkey`](gatehouse_domain::UserRepo::delete_passkey).
pub(crate) fn delete_passkey(conn: &mut Conn, user: UserId, id: i64) -> Result<bool, Error> {
    diesel::delete(
        passkeys::table
            .find(id)
            .filter(passkeys::user_id.eq(user.get())),
    )
    .execute(conn)
    .map(|n| n == 1)
    .map_err(from_diesel)
}

/// [`UserRepo::count_passkeys`](gatehouse_domain::UserRepo::count_passkeys).
pub(crate) fn count_passkeys(conn: &mut Conn, user: UserId) -> Result<u64, Error> {
    passkeys::table
        .filter(passkeys::user_id.eq(user.get()))
        .count()
        .get_result::<i64>(conn)
        .map(|n| u64::try_from(n).unwrap_or(0))
        .map_err(from_diesel)
}

/// How many passkeys there are, of all users.
pub(crate) fn count_all_passkeys(conn: &mut Conn) -> Result<u64, Error> {
    passkeys::table
        .count()
        .get_result::<i64>(conn)
        .map(|n| u64::try_from(n).unwrap_or(0))
        .map_err(from_diesel)
}

/// Deletes every passkey of `user` (the admin's reset).
pub(crate) fn delete_passkeys(conn: &mut Conn, user: UserId) -> Result<(), Error> {
    diesel::delete(passkeys::table.filter(passkeys::user_id.eq(user.get())))
        .execute(conn)
        .map(|_| ())
        .map_err(from_diesel)
}

type ChallengeRow = (i64, String, Option<i64>, Option<String>, i64, NaiveDateTime);

/// [`UserRepo::find_user_challenge`](gatehouse_domain::UserRepo::find_user_challenge).
pub(crate) fn find_user_challenge(
    conn: &mut Conn,
    user: UserId,
    purpose: ChallengePurpose,
    now: DateTime<Utc>,
) -> Result<Option<Challenge>, Error> {
    let row: Option<ChallengeRow> = mfa_challenges::table
        .filter(mfa_challenges::user_id.eq(user.get()))
        .filter(mfa_challenges::purpose.eq(purpose.as_str()))
        .filter(mfa_challenges::expires_at.gt(now.naive_utc()))
        .filter(mfa_challenges::wrong_tries.lt(MAX_MFA_WRONG_CODES))
        .order(mfa_challenges::id.desc())
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
    Ok(
        row.map(|(id, _, _, state, wrong_tries, expires_at)| Challenge {
            id,
            purpose,
            user_id: Some(user),
            state,
            wrong_tries,
            expires_at: expires_at.and_utc(),
        }),
    )
}

/// [`UserRepo::delete_user_challenges`](gatehouse_domain::UserRepo::delete_user_challenges).
pub(crate) fn delete_user_challenges(
    conn: &mut Conn,
    user: UserId,
    purpose: ChallengePurpose,
) -> Result<u64, Error> {
    diesel::delete(
        mfa_challenges::table
            .filter(mfa_challenges::user_id.eq(user.get()))
            .filter(mfa_challenges::purpose.eq(purpose.as_str())),
    )
    .execute(conn)
    .map(|n| n as u64)
    .map_err(from_diesel)
}
