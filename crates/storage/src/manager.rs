//! The connection pool's view of the database: how to open a connection of the right
//! backend, check it, and notice when the database went away.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::r2d2::{Error as PoolError, ManageConnection};
use diesel::{Connection, ConnectionError, PgConnection, SqliteConnection};

use crate::conn::AnyConnection;
use crate::DatabaseUrl;

/// A pooled PostgreSQL connection that answered within this long needs no `SELECT 1`
/// before its next use: under load, connections are checked out thousands of times a
/// second, and a round trip each would double the cost of a `/me`.
const TRUSTED_FOR: Duration = Duration::from_secs(1);

/// A connection as the pool keeps it: when it last proved alive, and whether it failed.
pub(crate) struct Managed {
    pub(crate) conn: AnyConnection,
    alive_at: Instant,
    broken: bool,
}

impl std::fmt::Debug for Managed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Managed")
            .field("alive_at", &self.alive_at)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Managed {
    /// The connection itself.
    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }

    /// Records how a unit of work on this connection ended: success proves it alive;
    /// an unavailable database on PostgreSQL (a dropped socket, a server restart) marks it
    /// broken, so the pool drops it instead of handing it out again. (On SQLite
    /// "unavailable" means a lock stayed busy: the connection itself is fine.)
    pub(crate) fn settle<T>(&mut self, outcome: &Result<T, gatehouse_domain::Error>) {
        match outcome {
            Ok(_) => self.alive_at = Instant::now(),
            Err(gatehouse_domain::Error::Unavailable(_))
                if matches!(self.conn, AnyConnection::Postgres(_)) =>
            {
                self.broken = true;
            }
            Err(_) => {}
        }
    }
}

/// Where to connect, per backend.
#[derive(Clone)]
pub(crate) enum Target {
    /// A file path, and the pragmas each connection gets.
    Sqlite { path: String, pragmas: String },
    /// A libpq URL (with `connect_timeout`), and the URL as configured, whose passwords
    /// are taken out of libpq's error messages (which may quote a part of the URL).
    Postgres { url: String, shown: DatabaseUrl },
}

/// Shows a PostgreSQL URL with its passwords masked (r2d2's pool shows its manager).
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite { path, .. } => f.debug_struct("Sqlite").field("path", path).finish(),
            Self::Postgres { shown, .. } => f.debug_struct("Postgres").field("url", shown).finish(),
        }
    }
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

    /// A manager for the same database sharing this one's clock of failures (for
    /// connections kept outside the pool).
    pub(crate) fn sibling(&self) -> Self {
        Self {
            target: self.target.clone(),
            failures: self.failures.clone(),
        }
    }

    /// The clock of failed connection attempts.
    pub(crate) fn failures(&self) -> FailureClock {
        self.failures.clone()
    }

    /// Opens one connection directly (for migrations, before the pool exists).
    pub(crate) fn open(&self) -> Result<AnyConnection, PoolError> {
        let result = match &self.target {
            Target::Sqlite { path, pragmas } => crate::sqlite::create_private(path)
                .map_err(|e| {
                    PoolError::ConnectionError(ConnectionError::BadConnection(format!(
                        "cannot create the file: {e}"
                    )))
                })
                .and_then(|()| {
                    SqliteConnection::establish(path).map_err(PoolError::ConnectionError)
                })
                .and_then(|mut conn| {
                    conn.batch_execute(pragmas).map_err(PoolError::QueryError)?;
                    Ok(AnyConnection::Sqlite(conn))
                }),
            Target::Postgres { url, shown } => PgConnection::establish(url)
                .map_err(|e| {
                    PoolError::ConnectionError(ConnectionError::BadConnection(
                        shown.redact(e.to_string().trim()),
                    ))
                })
                .and_then(|mut conn| {
                    // Gatehouse's statements are small; the few that read many rows (a
                    // count of every user) run side by side under load, where starting
                    // parallel workers per query costs far more than it saves.
                    conn.batch_execute("SET max_parallel_workers_per_gather = 0")
                        .map_err(PoolError::QueryError)?;
                    Ok(AnyConnection::Postgres(conn))
                }),
        };
        self.failures.record(result.is_err());
        result
    }
}

impl ManageConnection for Manager {
    type Connection = Managed;
    type Error = PoolError;

    fn connect(&self) -> Result<Managed, PoolError> {
        self.open().map(|conn| Managed {
            conn,
            alive_at: Instant::now(),
            broken: false,
        })
    }

    /// Checked on every checkout: an SQLite connection (a file handle) cannot go away; a
    /// PostgreSQL one is asked `SELECT 1` only when it has been idle for a while.
    fn is_valid(&self, managed: &mut Managed) -> Result<(), PoolError> {
        if managed.broken {
            return Err(PoolError::QueryError(
                diesel::result::Error::BrokenTransactionManager,
            ));
        }
        match managed.conn {
            AnyConnection::Sqlite(_) => Ok(()),
            AnyConnection::Postgres(_) if managed.alive_at.elapsed() < TRUSTED_FOR => Ok(()),
            AnyConnection::Postgres(_) => {
                managed
                    .conn
                    .batch_execute("SELECT 1")
                    .map_err(PoolError::QueryError)?;
                managed.alive_at = Instant::now();
                Ok(())
            }
        }
    }

    fn has_broken(&self, managed: &mut Managed) -> bool {
        std::thread::panicking()
            || managed.broken
            || <AnyConnection as Connection>::TransactionManager::is_broken_transaction_manager(
                &mut managed.conn,
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_password() {
        let raw = "postgres://u:secret1@h/db?password=secret2";
        let target = Target::Postgres {
            url: raw.to_owned(),
            shown: raw.parse().unwrap(),
        };
        let shown = format!("{:?}", Manager::new(target));
        assert!(
            !shown.contains("secret1") && !shown.contains("secret2"),
            "{shown}"
        );
        assert!(shown.contains("postgres://u:***@h/db"), "{shown}");
    }
}
