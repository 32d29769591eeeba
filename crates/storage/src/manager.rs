//! The connection pool's view of the database: how to open a connection of the right
//! backend, check it, and notice when the database went away.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::r2d2::{Error as PoolError, ManageConnection};
use diesel::{Connection, ConnectionError, PgConnection, SqliteConnection};

use crate::conn::AnyConnection;
use crate::deadline::{self, Watch};
use crate::DatabaseUrl;

/// A pooled PostgreSQL connection that answered within this long needs no `SELECT 1`
/// before its next use: under load, connections are checked out thousands of times a
/// second, and a round trip each would double the cost of a `/me`.
const TRUSTED_FOR: Duration = Duration::from_secs(1);

/// A connection as the pool keeps it: when it last proved alive, and whether it failed.
pub(crate) struct Managed {
    /// PostgreSQL: the connection's time limit (see `deadline.rs`). Declared before `conn`
    /// so that it is dropped first, before the connection closes its socket.
    watch: Option<Watch>,
    pub(crate) conn: AnyConnection,
    alive_at: Instant,
    broken: bool,
    /// The manager's generation when this connection was opened (see
    /// [`Manager::generation`]).
    generation: u64,
    /// The manager's current generation.
    current: Arc<AtomicU64>,
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
    ///
    /// An unavailable PostgreSQL also starts a new generation: every other connection of
    /// the pool (and the session lookups') opened before it is dropped at its next
    /// checkout instead of being tried. After a failover they all point at the old
    /// primary, frozen or gone, and each would cost a request its time limit to find out.
    pub(crate) fn settle<T>(&mut self, outcome: &Result<T, gatehouse_domain::Error>) {
        if let Some(watch) = &self.watch {
            watch.disarm();
        }
        match outcome {
            Ok(_) => self.alive_at = Instant::now(),
            Err(gatehouse_domain::Error::Unavailable(_))
                if matches!(self.conn, AnyConnection::Postgres(_)) =>
            {
                self.broken = true;
                let _ = self.current.compare_exchange(
                    self.generation,
                    self.generation + 1,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
            Err(_) => {}
        }
    }

    /// Settles `outcome` (see [`Self::settle`]) and hands it back, saying so when the
    /// connection was lost because a call ran out of time: libpq only knows that its socket
    /// closed.
    pub(crate) fn finish<T>(
        &mut self,
        outcome: Result<T, gatehouse_domain::Error>,
    ) -> Result<T, gatehouse_domain::Error> {
        self.settle(&outcome);
        match (outcome, &self.watch) {
            (Err(gatehouse_domain::Error::Unavailable(_)), Some(watch)) if watch.expired() => {
                Err(gatehouse_domain::Error::unavailable(format!(
                    "the database did not answer within the time limit of a call ({:?}); \
                     the connection was dropped, not cancelled, and whether a write in \
                     flight committed is unknown",
                    watch.limit()
                )))
            }
            (outcome, _) => outcome,
        }
    }

    /// Lifts the connection's time limit (for migrations, which may wait for another
    /// instance's and may take long on a large table).
    pub(crate) fn without_time_limit(&mut self) {
        self.watch = None;
    }

    /// Lifts the time limit for one long piece of work (a test's seeding of 100 000 rows)
    /// and retires the connection afterwards: the pool drops it when it comes back, so no
    /// request ever gets a connection without a limit.
    #[cfg(feature = "testing")]
    pub(crate) fn for_long_work(&mut self) {
        self.watch = None;
        self.broken = true;
    }

    /// Whether the connection may not be used again: it failed, or it was opened before the
    /// database last became unavailable, or its last call ran out of time.
    pub(crate) fn is_stale(&self) -> bool {
        self.broken
            || self.generation != self.current.load(Ordering::Acquire)
            || self.watch.as_ref().is_some_and(Watch::expired)
    }
}

/// Where to connect, per backend.
#[derive(Clone)]
pub(crate) enum Target {
    /// A file path, and the pragmas each connection gets.
    Sqlite { path: String, pragmas: String },
    /// A libpq URL (with `connect_timeout`), the URL as configured, whose passwords
    /// are taken out of libpq's error messages (which may quote a part of the URL), and
    /// the time limit of each call (see `deadline.rs`).
    Postgres {
        url: String,
        shown: DatabaseUrl,
        call_limit: Duration,
    },
}

/// Shows a PostgreSQL URL with its passwords masked (r2d2's pool shows its manager).
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite { path, .. } => f.debug_struct("Sqlite").field("path", path).finish(),
            Self::Postgres {
                shown, call_limit, ..
            } => f
                .debug_struct("Postgres")
                .field("url", shown)
                .field("call_limit", call_limit)
                .finish(),
        }
    }
}

/// Opens connections for r2d2 and remembers when the last attempt failed, so that a
/// database that is known to be down is reported at once instead of after a timeout.
#[derive(Debug)]
pub(crate) struct Manager {
    target: Target,
    failures: FailureClock,
    /// Counts the times the database became unavailable to a connection (shared with
    /// siblings); see [`Managed::settle`].
    generation: Arc<AtomicU64>,
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
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A manager for the same database sharing this one's clock of failures (for
    /// connections kept outside the pool).
    pub(crate) fn sibling(&self) -> Self {
        Self {
            target: self.target.clone(),
            failures: self.failures.clone(),
            generation: self.generation.clone(),
        }
    }

    /// The clock of failed connection attempts.
    pub(crate) fn failures(&self) -> FailureClock {
        self.failures.clone()
    }

    /// Opens one connection directly (for migrations, before the pool exists; for the
    /// session lookups' thread).
    pub(crate) fn open(&self) -> Result<Managed, PoolError> {
        let generation = self.generation.load(Ordering::Acquire);
        let mut watch = None;
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
            Target::Postgres {
                url,
                shown,
                call_limit,
            } => PgConnection::establish(url)
                .map_err(|e| {
                    PoolError::ConnectionError(ConnectionError::BadConnection(
                        shown.redact(e.to_string().trim()),
                    ))
                })
                .and_then(|mut conn| {
                    // The socket libpq opened on this thread just now (`vendor/pq-sys`).
                    if let Some(socket) = pq_sys::hooks::take_connected_socket() {
                        watch = Some(deadline::watch(&mut conn, socket, *call_limit));
                    }
                    // Gatehouse's statements are small; the few that read many rows (a
                    // count of every user) run side by side under load, where starting
                    // parallel workers per query costs far more than it saves.
                    conn.batch_execute("SET max_parallel_workers_per_gather = 0")
                        .map_err(PoolError::QueryError)?;
                    Ok(AnyConnection::Postgres(conn))
                }),
        };
        self.failures.record(result.is_err());
        result.map(|conn| Managed {
            watch,
            conn,
            alive_at: Instant::now(),
            broken: false,
            generation,
            current: self.generation.clone(),
        })
    }
}

impl ManageConnection for Manager {
    type Connection = Managed;
    type Error = PoolError;

    fn connect(&self) -> Result<Managed, PoolError> {
        self.open()
    }

    /// Checked on every checkout: an SQLite connection (a file handle) cannot go away; a
    /// PostgreSQL one is asked `SELECT 1` only when it has been idle for a while.
    fn is_valid(&self, managed: &mut Managed) -> Result<(), PoolError> {
        if managed.is_stale() {
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
            || managed.is_stale()
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
            call_limit: Duration::from_secs(5),
        };
        let shown = format!("{:?}", Manager::new(target));
        assert!(
            !shown.contains("secret1") && !shown.contains("secret2"),
            "{shown}"
        );
        assert!(shown.contains("postgres://u:***@h/db"), "{shown}");
    }
}
