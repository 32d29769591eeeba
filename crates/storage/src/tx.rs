//! Transactions with the isolation each backend needs for count-then-change rules.
//!
//! - SQLite: writes begin with `BEGIN IMMEDIATE`, taking the write lock before the first
//!   read, so writers run one after another (across processes too).
//! - PostgreSQL: writes run SERIALIZABLE; when PostgreSQL aborts one for a serialization
//!   conflict (or a deadlock), the whole unit of work is retried with a short random backoff,
//!   a bounded number of times. Writes guarded by their own rows (`Mode::WriteRows`, a
//!   session's refresh) run READ COMMITTED. Reads run REPEATABLE READ, READ ONLY, so a listing and its
//!   count agree.

use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::QueryResult;
use gatehouse_domain::Error;

use crate::conn::AnyConnection;
use crate::errors::from_diesel;

/// Whether a unit of work writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Read,
    Write,
    /// A write guarded by the rows it writes (`UserStore::write_rows`): SQLite as
    /// [`Mode::Write`]; PostgreSQL READ COMMITTED, where writers of one row wait for each
    /// other (a conditional `UPDATE` re-checks its condition once the other committed).
    WriteRows,
}

/// How many times a unit of work may run before a conflict is reported.
const MAX_ATTEMPTS: u32 = 30;

/// Runs `work` in one transaction of `mode`, retrying lost serialization races.
pub(crate) fn run<T>(
    conn: &mut AnyConnection,
    mode: Mode,
    mut work: impl FnMut(&mut AnyConnection) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match once(conn, mode, &mut work) {
            Err(Error::Conflict) if attempt < MAX_ATTEMPTS => {
                tracing::debug!(attempt, "serialization conflict, retrying");
                std::thread::sleep(backoff(attempt));
            }
            outcome => return outcome,
        }
    }
}

fn once<T>(
    conn: &mut AnyConnection,
    mode: Mode,
    work: &mut impl FnMut(&mut AnyConnection) -> Result<T, Error>,
) -> Result<T, Error> {
    begin(conn, mode).map_err(from_diesel)?;
    match work(conn) {
        Ok(value) => {
            commit(conn)?;
            Ok(value)
        }
        Err(error) => {
            if let Err(rollback) = rollback(conn) {
                // The connection is now unusable; the pool discards it (`has_broken`).
                tracing::warn!(error = %rollback, "rollback failed");
            }
            Err(error)
        }
    }
}

pub(crate) fn begin(conn: &mut AnyConnection, mode: Mode) -> QueryResult<()> {
    match conn {
        AnyConnection::Sqlite(inner) => AnsiTransactionManager::begin_transaction_sql(
            inner,
            match mode {
                Mode::Write | Mode::WriteRows => "BEGIN IMMEDIATE",
                Mode::Read => "BEGIN",
            },
        ),
        AnyConnection::Postgres(inner) => AnsiTransactionManager::begin_transaction_sql(
            inner,
            match mode {
                // In one round trip (a simple-query batch). A sequential scan under
                // SERIALIZABLE locks the whole relation against writers, and the planner
                // picks one for any small table (a few passkeys, counters or devices), so
                // that concurrent logins of different users conflicted and were retried
                // (and, run out of retries, answered 503): index scans lock pages.
                Mode::Write => "BEGIN ISOLATION LEVEL SERIALIZABLE; SET LOCAL enable_seqscan = off",
                Mode::WriteRows => "BEGIN ISOLATION LEVEL READ COMMITTED",
                Mode::Read => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            },
        ),
    }
}

pub(crate) fn commit(conn: &mut AnyConnection) -> Result<(), Error> {
    match conn {
        AnyConnection::Sqlite(inner) => {
            AnsiTransactionManager::commit_transaction(inner).map_err(from_diesel)
        }
        AnyConnection::Postgres(inner) => {
            confirmed(|| AnsiTransactionManager::commit_transaction(inner).map_err(from_diesel))
        }
    }
}

/// Runs a PostgreSQL COMMIT (`commit`) and reports it done only when PostgreSQL confirmed
/// it. A COMMIT waiting for a synchronous standby can be cancelled (`pg_cancel_backend`, a
/// pooler, an operator): PostgreSQL then answers "COMMIT" all the same, with only a
/// warning that the transaction "has already committed locally, but might not have been
/// replicated to the standby" — a write a failover may lose. That warning makes the
/// outcome unknown: [`Error::Unavailable`] (503, the connection dropped), never success.
/// The warning arrives as a notice, which the patched `pq-sys` keeps per thread (see
/// `vendor/README.md`).
pub(crate) fn confirmed(commit: impl FnOnce() -> Result<(), Error>) -> Result<(), Error> {
    pq_sys::hooks::clear_notices();
    let outcome = commit();
    let notices = pq_sys::hooks::take_notices();
    outcome?;
    match notices.iter().find(|notice| is_unreplicated_commit(notice)) {
        Some(notice) => Err(Error::unavailable(format!(
            "the commit's outcome is unknown: {}",
            notice.split_whitespace().collect::<Vec<_>>().join(" ")
        ))),
        None => Ok(()),
    }
}

/// PostgreSQL's warnings when a COMMIT's wait for synchronous replication ended early
/// (cancelled, or the backend told to terminate) after the local commit.
fn is_unreplicated_commit(notice: &str) -> bool {
    notice.contains("canceling wait for synchronous replication")
        || notice.contains("committed locally")
}

pub(crate) fn rollback(conn: &mut AnyConnection) -> QueryResult<()> {
    match conn {
        AnyConnection::Sqlite(inner) => AnsiTransactionManager::rollback_transaction(inner),
        AnyConnection::Postgres(inner) => AnsiTransactionManager::rollback_transaction(inner),
    }
}

/// Opens a savepoint in the transaction open on `conn` (SQLite's group commit, see
/// `group.rs`).
pub(crate) fn savepoint(conn: &mut AnyConnection) -> QueryResult<()> {
    match conn {
        AnyConnection::Sqlite(inner) => AnsiTransactionManager::begin_transaction(inner),
        AnyConnection::Postgres(inner) => AnsiTransactionManager::begin_transaction(inner),
    }
}

/// Releases the savepoint opened last by [`savepoint`], keeping its changes.
pub(crate) fn release(conn: &mut AnyConnection) -> Result<(), Error> {
    match conn {
        AnyConnection::Sqlite(inner) => {
            AnsiTransactionManager::commit_transaction(inner).map_err(from_diesel)
        }
        AnyConnection::Postgres(inner) => {
            AnsiTransactionManager::commit_transaction(inner).map_err(from_diesel)
        }
    }
}

/// Rolls back to the savepoint opened last by [`savepoint`], dropping its changes.
pub(crate) fn rollback_to_savepoint(conn: &mut AnyConnection) -> QueryResult<()> {
    rollback(conn)
}

/// The wait after the `attempt`-th run lost a race (attempts count from 1): 2, 4, 8 …
/// 64 ms, each scaled by a random factor in [0.5, 1.5) so that racing transactions do not
/// collide again in lockstep.
fn backoff(attempt: u32) -> Duration {
    let base = 1u64 << attempt.min(6);
    let mut noise = [0u8; 1];
    let scale = if getrandom_fill(&mut noise) {
        0.5 + f64::from(noise[0]) / 256.0
    } else {
        1.0
    };
    Duration::from_secs_f64(base as f64 * scale / 1000.0)
}

fn getrandom_fill(buf: &mut [u8]) -> bool {
    getrandom::fill(buf).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_wait_for_the_standby_is_recognised() {
        for notice in [
            "WARNING:  canceling wait for synchronous replication due to user request\n\
             DETAIL:  The transaction has already committed locally, but might not have \
             been replicated to the standby.\n",
            "WARNING:  canceling wait for synchronous replication and terminating connection \
             due to administrator command\n",
        ] {
            assert!(is_unreplicated_commit(notice), "{notice}");
        }
        assert!(!is_unreplicated_commit(
            "NOTICE:  relation \"users\" already exists, skipping\n"
        ));
    }

    #[test]
    fn a_commit_without_the_warning_is_confirmed() {
        assert!(confirmed(|| Ok(())).is_ok());
        let failed = confirmed(|| Err(Error::unavailable("lost")));
        assert!(matches!(failed, Err(Error::Unavailable(_))));
    }
}
