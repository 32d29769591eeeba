//! Gatehouse's storage: diesel adapters for the domain's repository ports.
//!
//! [`Database::open`] picks the backend from the [`DatabaseUrl`]'s scheme — SQLite (embedded,
//! the default) or PostgreSQL (for several instances on one database) — runs the embedded
//! migrations and returns a pooled store implementing [`gatehouse_domain::UserStore`]. The
//! repository is written once over `diesel::MultiConnection`; only how a transaction begins
//! (see `tx.rs`) and how a long listing is read (see `stream.rs`) differ per backend:
//! - SQLite: WAL, a busy timeout, foreign keys, `synchronous=FULL` (a committed write
//!   survives a crash), and `BEGIN IMMEDIATE` for every write so writers are serialized
//!   (writes queued behind one another commit in groups, see `group.rs`);
//!   listings step through their statement;
//! - PostgreSQL: SERIALIZABLE writes retried on serialization failures, and migrations under
//!   an advisory lock; long listings read through a cursor.

mod backfill;
mod backup;
mod codes;
mod conn;
mod deadline;
mod errors;
mod group;
mod mails;
mod manager;
mod mfa;
mod outbox;
mod outbox_lock;
mod passkeys;
mod postgres;
mod prepared;
mod readiness;
mod repo;
mod rows;
mod schema;
mod sessions;
mod sqlite;
mod stored_time;
mod stream;
mod tx;
mod url;

#[cfg(feature = "testing")]
pub mod testing;

use std::fmt;
use std::time::Duration;

use diesel::prelude::*;
use diesel::r2d2::{Pool, PooledConnection};
use gatehouse_domain::ports::{answered, Work};
use gatehouse_domain::{
    Error, SessionLookup, SessionSource, SigningKey, UserId, UserRepo as _, UserStore,
};

pub use url::{DatabaseUrl, InvalidDatabaseUrl};

/// Initialises OpenSSL, which libpq uses for TLS, without its clean-up at process exit.
///
/// By default OpenSSL frees its global state in an `atexit` handler; a process that exits
/// while another thread still holds a TLS connection (the pool's, the session lookups')
/// then crashes in that thread now and then (a segmentation fault after the work is done).
/// [`Database::open`] calls this before its first connection; call it yourself before
/// opening any other libpq connection first (a `PgConnection` of your own). Idempotent.
pub fn init_tls() {
    openssl_sys::init();
}

use conn::AnyConnection;
pub use group::GroupCommits;
use manager::{FailureClock, Manager};
pub use outbox_lock::OutboxLock;
use repo::SqlUserRepo;
use schema::{settings, signing_keys};
use tx::Mode;

/// The connection type the repositories run on.
pub(crate) type Conn = AnyConnection;
/// The backend of [`Conn`], for boxed queries.
pub(crate) type Backend = conn::MultiBackend;

/// How to size and time the connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// The most connections open at once (per instance).
    pub max_size: u32,
    /// How long a request waits for a free connection (and SQLite for its write lock)
    /// before the database counts as unavailable.
    pub timeout: Duration,
    /// How long opening a new connection may take (PostgreSQL's `connect_timeout`).
    pub connect_timeout: Duration,
    /// How long one call on a PostgreSQL connection (a statement, a COMMIT, the pool's
    /// check) may wait for its answer before the connection is dropped and the work
    /// reported unavailable (see `deadline.rs`).
    pub statement_timeout: Duration,
    /// The most session lookups that may wait for the batching thread; beyond it (the
    /// database stalls) authenticated requests are refused at once with
    /// [`Error::Overloaded`] instead of piling up.
    pub max_queued_lookups: usize,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 8,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
            max_queued_lookups: 1024,
        }
    }
}

/// After a failed connection attempt, requests that find no idle connection wait at most
/// this long for one before they are answered "unavailable".
const FAIL_FAST_WAIT: Duration = Duration::from_millis(250);

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The database could not be reached or opened.
    #[error("cannot open the database: {0}")]
    Connect(String),
    /// A migration failed.
    #[error("cannot migrate the database: {0}")]
    Migrate(String),
    /// The pool could not be built.
    #[error("cannot create the connection pool: {0}")]
    Pool(String),
}

/// Why [`Database::backup_to`] wrote no copy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The database is not SQLite.
    #[error("online backup copies SQLite databases only; back up PostgreSQL with pg_dump (pg_dump --format=custom --file=gatehouse.dump DATABASE_URL)")]
    NotSqlite,
    /// Something is at the target path already.
    #[error("{} already exists; a backup never overwrites anything, choose a new path", .0.display())]
    Exists(std::path::PathBuf),
    /// The target path cannot be handed to SQLite.
    #[error("the backup path must be valid UTF-8")]
    NotUtf8,
    /// No connection could be had.
    #[error("cannot back up the database")]
    Unavailable(#[source] Error),
    /// SQLite could not write the copy.
    #[error("cannot write the backup: {0}")]
    Failed(String),
}

/// A pooled database holding Gatehouse's tables.
#[derive(Clone)]
pub struct Database {
    pool: Pool<Manager>,
    failures: FailureClock,
    timeout: Duration,
    /// The time limit of one call (`PoolOptions::statement_timeout`), the readiness
    /// probe's bound.
    call_limit: Duration,
    url: DatabaseUrl,
    /// Session lookups, answered in batches on a thread of their own.
    sessions: std::sync::Arc<sessions::SessionBatcher>,
    /// SQLite only: this process's writers take turns here before `BEGIN IMMEDIATE`, and
    /// writes queued behind one another commit in groups (see `group.rs`).
    writers: Option<std::sync::Arc<group::Writers>>,
    /// SQLite only: session lookups may be read on the request's thread (see the
    /// [`SessionSource`] impl).
    inline_lookups: bool,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Opens (creating an SQLite file when missing) and migrates the database at `url`.
    ///
    /// # Errors
    /// [`OpenError`] saying what failed; the message never contains a password.
    pub fn open(url: &DatabaseUrl, options: PoolOptions) -> Result<Self, OpenError> {
        let manager = match url {
            DatabaseUrl::Sqlite { path } => sqlite::prepare(path, &options)?,
            DatabaseUrl::Postgres { url: raw } => {
                init_tls();
                postgres::prepare(raw, url, &options)?
            }
        };
        let failures = manager.failures();
        let sessions = std::sync::Arc::new(
            sessions::SessionBatcher::start(
                manager.sibling(),
                options.timeout,
                options.max_queued_lookups,
            )
            .map_err(|e| OpenError::Pool(format!("session lookup thread: {e}")))?,
        );
        let max_size = options.max_size.max(1);
        let pool = Pool::builder()
            .max_size(max_size)
            .min_idle(Some(max_size.min(2)))
            .connection_timeout(options.timeout)
            // `prepare` has connected and migrated already; the pool's first connections
            // are opened in the background rather than waited for. Waiting added a second
            // connect to start-up, each one the first host's whole timeout when that host
            // of a multi-host URL is dead (issue 15).
            .build_unchecked(manager);
        Ok(Self {
            pool,
            failures,
            timeout: options.timeout,
            call_limit: options.statement_timeout,
            url: url.clone(),
            sessions,
            writers: matches!(url, DatabaseUrl::Sqlite { .. }).then(std::sync::Arc::default),
            inline_lookups: matches!(url, DatabaseUrl::Sqlite { .. }),
        })
    }

    /// SQLite: how many writes were committed in how many commits
    /// (see `group.rs`); `None` on PostgreSQL, which commits each on its own.
    #[must_use]
    pub fn group_commits(&self) -> Option<std::sync::Arc<GroupCommits>> {
        self.writers
            .as_ref()
            .map(|writers| std::sync::Arc::clone(writers.commits()))
    }

    /// SQLite: the file whose [`OutboxLock`] makes a process the database's only
    /// dispatcher; `None` on PostgreSQL, where dispatchers share the work by leases.
    #[must_use]
    pub fn outbox_lock_path(&self) -> Option<std::path::PathBuf> {
        match &self.url {
            DatabaseUrl::Sqlite { path } => Some(OutboxLock::path_for(path)),
            DatabaseUrl::Postgres { .. } => None,
        }
    }

    /// The URL it was opened with (its `Display` masks passwords).
    #[must_use]
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// The value of setting `name`, storing `candidate` first when it has none. Safe to
    /// race, across processes too: every caller gets the one value stored first.
    ///
    /// # Errors
    /// Store failures.
    pub fn setting_or_insert(&self, name: &str, candidate: &str) -> Result<String, Error> {
        let mut conn = self.connection()?;
        tx::run(&mut conn, Mode::Write, |conn| {
            let insert = diesel::insert_into(settings::table)
                .values((settings::name.eq(name), settings::value.eq(candidate)));
            match conn {
                AnyConnection::Sqlite(c) => insert.on_conflict_do_nothing().execute(c),
                AnyConnection::Postgres(c) => insert.on_conflict_do_nothing().execute(c),
            }
            .map_err(errors::from_diesel)?;
            settings::table
                .find(name)
                .select(settings::value)
                .first::<String>(conn)
                .map_err(errors::from_diesel)
        })
    }

    /// The stored Ed25519 signing keys; when there are none, one is generated and stored
    /// first (in a serialized transaction, so instances starting together agree on it).
    ///
    /// # Errors
    /// Store failures; a stored key that cannot be read.
    pub fn signing_keys_or_generate(&self) -> Result<Vec<SigningKey>, Error> {
        let mut conn = self.connection()?;
        tx::run(&mut conn, Mode::Write, |conn| {
            let stored = load_signing_keys(conn)?;
            if !stored.is_empty() {
                return Ok(stored);
            }
            let now = gatehouse_domain::now();
            let key = SigningKey::generate(now, now)?;
            insert_signing_key(conn, &key)?;
            Ok(vec![key])
        })
    }

    /// The stored Ed25519 signing keys.
    ///
    /// # Errors
    /// Store failures; a stored key that cannot be read.
    pub fn signing_keys(&self) -> Result<Vec<SigningKey>, Error> {
        let mut conn = self.connection()?;
        tx::run(&mut conn, Mode::Read, load_signing_keys)
    }

    /// Stores a new signing key (a rotation).
    ///
    /// # Errors
    /// Store failures.
    pub fn add_signing_key(&self, key: &SigningKey) -> Result<(), Error> {
        let mut conn = self.connection()?;
        tx::run(&mut conn, Mode::Write, |conn| insert_signing_key(conn, key))
    }

    /// Writes a consistent copy of an SQLite database to `path` (`VACUUM INTO`), safe while
    /// the service runs: the copy is one read transaction's snapshot, and writers go on
    /// meanwhile (WAL). The copy is a complete database: serve it as it is to restore.
    ///
    /// The copy holds the database's secrets: it is written to a new file beside `path`
    /// that only its owner may read and write (0600), and linked into place only once
    /// complete, never over an existing file.
    ///
    /// # Errors
    /// [`BackupError`]: on PostgreSQL (use `pg_dump`), when `path` exists, or when SQLite
    /// cannot write the copy.
    pub fn backup_to(&self, path: &std::path::Path) -> Result<(), BackupError> {
        if !matches!(self.url, DatabaseUrl::Sqlite { .. }) {
            return Err(BackupError::NotSqlite);
        }
        // SQLite refuses a non-empty target itself; refusing any existing path is clearer
        // and never overwrites anything, not even an empty file someone meant to keep.
        if path.exists() {
            return Err(BackupError::Exists(path.to_owned()));
        }
        path.to_str().ok_or(BackupError::NotUtf8)?;
        let partial = backup::Partial::create(path)
            .map_err(|e| BackupError::Failed(format!("{}: {e}", path.display())))?;
        let target = partial.path().to_str().ok_or(BackupError::NotUtf8)?;
        let mut conn = self.connection().map_err(BackupError::Unavailable)?;
        let AnyConnection::Sqlite(sqlite) = &mut *conn else {
            return Err(BackupError::NotSqlite);
        };
        // An empty file is a valid target: SQLite writes into it and keeps its mode.
        diesel::sql_query("VACUUM INTO ?")
            .bind::<diesel::sql_types::Text, _>(target)
            .execute(sqlite)
            .map_err(|e| BackupError::Failed(e.to_string()))?;
        drop(conn);
        partial.finish(path)
    }

    /// A pooled connection; fails fast while the database is known to be unreachable.
    fn connection(&self) -> Result<Lease, Error> {
        let wait = if self.failures.failed_within(self.timeout) {
            FAIL_FAST_WAIT
        } else {
            self.timeout
        };
        self.pool
            .get_timeout(wait)
            .map(Lease)
            .map_err(Error::unavailable)
    }
}

fn load_signing_keys(conn: &mut AnyConnection) -> Result<Vec<SigningKey>, Error> {
    let rows = signing_keys::table
        .select((
            signing_keys::kid,
            signing_keys::seed,
            signing_keys::created_at,
            signing_keys::activates_at,
        ))
        .order(signing_keys::activates_at.asc())
        .load::<(String, String, chrono::NaiveDateTime, chrono::NaiveDateTime)>(conn)
        .map_err(errors::from_diesel)?;
    rows.into_iter()
        .map(|(kid, seed, created_at, activates_at)| {
            Ok(SigningKey {
                seed: decode_seed(&seed).ok_or_else(|| {
                    Error::internal("stored signing key", format!("key {kid} is malformed"))
                })?,
                kid,
                created_at: created_at.and_utc(),
                activates_at: activates_at.and_utc(),
            })
        })
        .collect()
}

fn insert_signing_key(conn: &mut AnyConnection, key: &SigningKey) -> Result<(), Error> {
    let seed: String = key.seed.iter().map(|b| format!("{b:02x}")).collect();
    diesel::insert_into(signing_keys::table)
        .values((
            signing_keys::kid.eq(&key.kid),
            signing_keys::seed.eq(seed),
            signing_keys::created_at.eq(key.created_at.naive_utc()),
            signing_keys::activates_at.eq(key.activates_at.naive_utc()),
        ))
        .execute(conn)
        .map(drop)
        .map_err(errors::from_diesel)
}

/// 64 hexadecimal characters → 32 bytes.
fn decode_seed(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut seed = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        seed[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(seed)
}

/// A pooled connection lent for one unit of work; it derefs to the connection, and
/// [`finish`](Lease::finish) tells the pool how the work went.
pub(crate) struct Lease(PooledConnection<Manager>);

impl Lease {
    /// Records the outcome of the work done on this connection and hands it back (see
    /// [`Managed::finish`]).
    pub(crate) fn finish<T>(&mut self, outcome: Result<T, Error>) -> Result<T, Error> {
        self.0.finish(outcome)
    }
}

#[cfg(feature = "testing")]
impl Lease {
    /// See [`Managed::for_long_work`].
    pub(crate) fn for_long_work(&mut self) {
        self.0.for_long_work();
    }
}

impl std::ops::Deref for Lease {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.0.conn
    }
}

impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.0.conn()
    }
}

/// PostgreSQL: every lookup goes to the batching thread (see `sessions.rs`), so no request
/// thread waits on a round trip. SQLite: a lookup that comes alone, with a connection idle,
/// is read at once on the calling thread (an embedded read, no network); lookups that
/// overlap go to the batching thread.
impl SessionSource for Database {
    fn find_session_user(&self, id: UserId, session_id: i64) -> SessionLookup {
        if self.inline_lookups {
            if let Some(turn) = self.sessions.inline_turn() {
                if let Some(conn) = self.pool.try_get() {
                    let mut conn = Lease(conn);
                    let answer = SqlUserRepo { conn: &mut conn }.find_session_user(id, session_id);
                    let answer = conn.finish(answer);
                    drop((conn, turn));
                    return answered(answer);
                }
            }
        }
        self.sessions.submit(id, session_id)
    }
}

impl UserStore for Database {
    fn read(&self, work: &mut Work<'_>) -> Result<(), Error> {
        let mut conn = self.connection()?;
        let outcome = tx::run(&mut conn, Mode::Read, |conn| {
            work(&mut SqlUserRepo { conn })
        });
        conn.finish(outcome)
    }

    fn write(&self, work: &mut Work<'_>) -> Result<(), Error> {
        self.write_in(Mode::Write, work)
    }

    fn write_rows(&self, work: &mut Work<'_>) -> Result<(), Error> {
        self.write_in(Mode::WriteRows, work)
    }

    fn read_single(&self, work: &mut Work<'_>) -> Result<(), Error> {
        let mut conn = self.connection()?;
        let outcome = work(&mut SqlUserRepo { conn: &mut conn });
        conn.finish(outcome)
    }

    fn ping(&self) -> Result<(), Error> {
        // See `readiness.rs`: can a write commit now, within the time limit of a call?
        if let Some(writers) = &self.writers {
            // A transaction of its own, after the open group's commit: the probe proves
            // that a commit goes through now, not that a group took one more member.
            let mut turn = writers.turn(self.timeout)?;
            turn.close();
            let outcome = self.connection().and_then(|mut conn| {
                let outcome = tx::run(&mut conn, Mode::Write, |_| Ok(()));
                conn.finish(outcome)
            });
            parking_lot::MutexGuard::unlock_fair(turn);
            return outcome;
        }
        let mut conn = self.connection()?;
        let outcome = readiness::probe_postgres(&mut conn, self.call_limit);
        // Unavailable (a standby, a lost connection) drops the connection: the next one
        // goes through libpq's host list again and finds the primary.
        conn.finish(outcome)
    }
}

impl Database {
    /// A write transaction of `mode` ([`Mode::Write`] or [`Mode::WriteRows`]).
    fn write_in(&self, mode: Mode, work: &mut Work<'_>) -> Result<(), Error> {
        let Some(writers) = &self.writers else {
            let mut conn = self.connection()?;
            let outcome = tx::run(&mut conn, mode, |conn| work(&mut SqlUserRepo { conn }));
            return conn.finish(outcome);
        };
        // SQLite: one writer of this process at a time, in turn, and writes queued behind
        // one another commit together (see `group.rs`). Both modes are the same
        // `BEGIN IMMEDIATE` here: every write runs alone, between the others.
        let turn = writers.turn(self.timeout)?;
        writers.write(turn, self.timeout, || self.connection(), work)
    }
}
