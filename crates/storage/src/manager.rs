//! The connection pool's view of the database: how to open a connection of the right
//! backend, check it, and notice when the database went away.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::r2d2::{Error as PoolError, ManageConnection};
use diesel::{Connection, PgConnection, SqliteConnection};

use crate::conn::AnyConnection;

/// Where to connect, per backend.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A file path, and the pragmas each connection gets.
    Sqlite { path: String, pragmas: String },
    /// A libpq URL (with `connect_timeout`).
    Postgres { url: String },
}

/// Opens connections for r2d2 and remembers when the last attempt failed, so that a
/// database that is known to be down is reported at once instead of after a timeout.
#[derive(Debug)]
pub(crate) struct Manager {
    target: Target,
    failures: FailureClock,
}

/// When the last connection attempt failed (`None` once one succeeds); shared between the
/// pool's manager and the [`crate::Database`] that asks it.
#[derive(Debug, Clone, Default)]
pub(crate) struct FailureClock(Arc<Mutex<Option<Instant>>>);

impl FailureClock {
    fn record(&self, failed: bool) {
        if let Ok(mut last) = self.0.lock() {
            *last = failed.then(Instant::now);
        }
    }

    /// Whether a connection attempt failed within `window` and none succeeded since.
    pub(crate) fn failed_within(&self, window: Duration) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|last| *last)
            .is_some_and(|at| at.elapsed() < window)
    }
}

impl Manager {
    pub(crate) fn new(target: Target) -> Self {
        Self {
            target,
            failures: FailureClock::default(),
        }
    }

    /// The clock of failed connection attempts.
    pub(crate) fn failures(&self) -> FailureClock {
        self.failures.clone()
    }

    /// Opens one connection directly (for migrations, before the pool exists).
    pub(crate) fn open(&self) -> Result<AnyConnection, PoolError> {
        let result = match &self.target {
            Target::Sqlite { path, pragmas } => SqliteConnection::establish(path)
                .map_err(PoolError::ConnectionError)
                .and_then(|mut conn| {
                    conn.batch_execute(pragmas).map_err(PoolError::QueryError)?;
                    Ok(AnyConnection::Sqlite(conn))
                }),
            Target::Postgres { url } => PgConnection::establish(url)
                .map(AnyConnection::Postgres)
                .map_err(PoolError::ConnectionError),
        };
        self.failures.record(result.is_err());
        result
    }
}

impl ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = PoolError;

    fn connect(&self) -> Result<AnyConnection, PoolError> {
        self.open()
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), PoolError> {
        conn.batch_execute("SELECT 1")
            .map_err(PoolError::QueryError)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        std::thread::panicking()
            || <AnyConnection as Connection>::TransactionManager::is_broken_transaction_manager(
                conn,
            )
    }
}
