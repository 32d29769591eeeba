//! `/readyz`'s question, "can this instance serve writes now?", asked of the database on
//! one pooled connection with a bound (issue 15, "Database faults and failover").
//!
//! - **PostgreSQL**: `SELECT pg_is_in_recovery()` first: a server in recovery is a standby
//!   (reached without `target_session_attrs=read-write`, or a primary demoted behind a
//!   virtual address), which answers reads and refuses every write. Then a real write, as
//!   small as can be: the `settings` row `readiness_probe` set to the time, in its own
//!   transaction, so the COMMIT writes WAL, flushes it and, with synchronous replication,
//!   waits for the standby, as every registration's does. (A transaction that only takes a
//!   transaction id writes no WAL, and PostgreSQL then waits for nobody.) The transaction's
//!   `statement_timeout`, set in a message of its own so that it covers the next ones, is
//!   the bound. When the bound cancels the COMMIT's wait for the standby, PostgreSQL has
//!   committed locally and only warns (diesel drops warnings), so a COMMIT that took the
//!   whole bound counts as not committed in time. A `SELECT 1`, what the probe was before,
//!   answered 200 while every COMMIT waited for a standby that was gone.
//! - **SQLite**: `BEGIN IMMEDIATE` and `COMMIT` through the store's own write path, so the
//!   probe waits for the write lock as writes do, at most the pool's wait.
//!
//! A server frozen with its sockets open still stalls the probe (no client-side limit on
//! a libpq call yet; issue 15 goes on).

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use gatehouse_domain::Error;

use crate::conn::AnyConnection;
use crate::errors::from_diesel;

/// Why the probe says no.
#[derive(Debug, thiserror::Error)]
enum NotReady {
    #[error("the database server is a standby (in recovery): it cannot take writes")]
    InRecovery,
    #[error("a write did not commit within {0:?} (is a synchronous standby gone?)")]
    CommitTooSlow(Duration),
}

/// PostgreSQL's probe on `conn`, bounded by `bound`.
pub(crate) fn probe_postgres(conn: &mut AnyConnection, bound: Duration) -> Result<(), Error> {
    #[derive(diesel::QueryableByName)]
    struct Recovery {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        in_recovery: bool,
    }
    use diesel::RunQueryDsl;

    let AnyConnection::Postgres(pg) = conn else {
        return Err(Error::internal(
            "readiness probe",
            "a PostgreSQL probe on another database",
        ));
    };
    // Any failure of the probe means "not ready", never a server error.
    let unavailable = |e: diesel::result::Error| match from_diesel(e) {
        Error::Unavailable(e) => Error::Unavailable(e),
        other => Error::unavailable(other),
    };
    let recovery = diesel::sql_query("SELECT pg_is_in_recovery() AS in_recovery")
        .get_result::<Recovery>(pg)
        .map_err(unavailable)?;
    if recovery.in_recovery {
        return Err(Error::unavailable(NotReady::InRecovery));
    }
    let millis = bound.as_millis().max(1);
    pg.batch_execute("BEGIN READ WRITE").map_err(unavailable)?;
    let begun = pg
        .batch_execute(&format!("SET LOCAL statement_timeout = {millis}"))
        .and_then(|()| {
            pg.batch_execute(
                "INSERT INTO settings (name, value) VALUES ('readiness_probe', now()::text) \
                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            )
        })
        .map_err(unavailable);
    if let Err(e) = begun {
        let _ = pg.batch_execute("ROLLBACK");
        return Err(e);
    }
    let started = Instant::now();
    crate::tx::confirmed(|| pg.batch_execute("COMMIT").map_err(unavailable))?;
    let took = started.elapsed();
    // statement_timeout fires at the bound, give or take the timer's grain.
    if took + Duration::from_millis(10) >= bound {
        return Err(Error::unavailable(NotReady::CommitTooSlow(bound)));
    }
    Ok(())
}
