//! Gatehouse's storage: diesel adapters for the domain's repository ports.
//!
//! [`Database::open`] picks the backend from the [`DatabaseUrl`]'s scheme, runs the embedded
//! migrations and returns a pooled store implementing [`gatehouse_domain::UserStore`].
//! SQLite is configured for a server: WAL, a busy timeout, foreign keys, `synchronous=FULL`
//! (a committed write survives a crash), and `BEGIN IMMEDIATE` for every write transaction
//! so that writers are serialized and count-then-change rules hold.

mod errors;
mod repo;
mod rows;
mod schema;
mod sqlite;
mod url;

use std::fmt;
use std::time::Duration;

use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use gatehouse_domain::{Error, UserStore};

pub use url::{DatabaseUrl, InvalidDatabaseUrl};

use errors::TxError;
use repo::SqlUserRepo;
use schema::settings;

/// The connection type the repositories run on.
pub(crate) type Conn = diesel::SqliteConnection;
/// The backend of [`Conn`], for boxed queries.
pub(crate) type Backend = diesel::sqlite::Sqlite;

/// How to size and time the connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// The most connections open at once.
    pub max_size: u32,
    /// How long a request waits for a connection (and SQLite for a lock) before the
    /// database counts as unavailable.
    pub timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 8,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The backend is not available in this build.
    #[error("{0}")]
    Unsupported(&'static str),
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

/// A pooled database holding Gatehouse's tables.
#[derive(Clone)]
pub struct Database {
    pool: Pool<ConnectionManager<Conn>>,
    url: DatabaseUrl,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Opens (creating when missing) and migrates the database at `url`.
    ///
    /// # Errors
    /// [`OpenError`] saying what failed; the message never contains a password.
    pub fn open(url: &DatabaseUrl, options: PoolOptions) -> Result<Self, OpenError> {
        match url {
            DatabaseUrl::Sqlite { path } => {
                let pool = sqlite::open(path, options)?;
                Ok(Self {
                    pool,
                    url: url.clone(),
                })
            }
            DatabaseUrl::Postgres { .. } => Err(OpenError::Unsupported(
                "PostgreSQL is not supported by this build yet; use sqlite://",
            )),
        }
    }

    /// The URL it was opened with (its `Display` masks passwords).
    #[must_use]
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// The value of setting `name`, storing `candidate` first when it has none. Safe to
    /// race: every caller gets the one value that was stored first.
    ///
    /// # Errors
    /// Store failures.
    pub fn setting_or_insert(&self, name: &str, candidate: &str) -> Result<String, Error> {
        let mut conn = self.connection()?;
        conn.immediate_transaction::<_, TxError, _>(|conn| {
            diesel::insert_into(settings::table)
                .values((settings::name.eq(name), settings::value.eq(candidate)))
                .on_conflict_do_nothing()
                .execute(conn)?;
            Ok(settings::table
                .find(name)
                .select(settings::value)
                .first::<String>(conn)?)
        })
        .map_err(Error::from)
    }

    fn connection(&self) -> Result<PooledConnection<ConnectionManager<Conn>>, Error> {
        self.pool.get().map_err(Error::unavailable)
    }
}

impl UserStore for Database {
    fn read(&self, work: &mut gatehouse_domain::ports::Work<'_>) -> Result<(), Error> {
        let mut conn = self.connection()?;
        conn.transaction::<_, TxError, _>(|conn| {
            work(&mut SqlUserRepo { conn }).map_err(TxError::Domain)
        })
        .map_err(Error::from)
    }

    fn write(&self, work: &mut gatehouse_domain::ports::Work<'_>) -> Result<(), Error> {
        let mut conn = self.connection()?;
        conn.immediate_transaction::<_, TxError, _>(|conn| {
            work(&mut SqlUserRepo { conn }).map_err(TxError::Domain)
        })
        .map_err(Error::from)
    }

    fn ping(&self) -> Result<(), Error> {
        let mut conn = self.connection()?;
        diesel::sql_query("SELECT 1")
            .execute(&mut conn)
            .map(drop)
            .map_err(errors::from_diesel)
    }
}
