//! Throw-away databases for a benchmark run: an SQLite file in a temporary directory, or a
//! fresh database on a PostgreSQL server, dropped when the value is dropped.

use anyhow::{bail, Context as _, Result};
use diesel::connection::SimpleConnection as _;
use diesel::{Connection as _, PgConnection};
use gatehouse_storage::{Database, DatabaseUrl, PoolOptions};

/// Read first: the PostgreSQL server the benchmark may create databases on.
pub const BENCH_POSTGRES_URL_VAR: &str = "GATEHOUSE_BENCH_POSTGRES_URL";
/// Read when [`BENCH_POSTGRES_URL_VAR`] is unset: the server the tests use.
pub const TEST_POSTGRES_URL_VAR: &str = "GATEHOUSE_TEST_POSTGRES_URL";

/// The PostgreSQL server URL from the environment, if one is configured.
#[must_use]
pub fn postgres_server() -> Option<String> {
    [BENCH_POSTGRES_URL_VAR, TEST_POSTGRES_URL_VAR]
        .into_iter()
        .filter_map(|var| std::env::var(var).ok())
        .find(|url| !url.is_empty())
}

/// A storage backend the benchmark runs Gatehouse on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Backend {
    /// An SQLite file.
    Sqlite,
    /// A database on a PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The short name used in keys and file names.
    #[must_use]
    pub fn key(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }

    /// The name shown in tables.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }
}

/// An empty database that disappears when dropped.
#[derive(Debug)]
pub struct BenchDatabase {
    url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    /// Removed with the directory.
    Directory(tempfile::TempDir),
    /// Dropped on the server.
    Postgres { server: String, name: String },
}

impl BenchDatabase {
    /// A new SQLite file in a fresh temporary directory.
    ///
    /// # Errors
    /// When no temporary directory can be made.
    pub fn sqlite() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-bench-")
            .tempdir()
            .context("creating a temporary directory for the SQLite database")?;
        let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
        Ok(Self {
            url,
            cleanup: Cleanup::Directory(dir),
        })
    }

    /// A new database, with a random name, on the PostgreSQL server at `server`.
    ///
    /// # Errors
    /// When the server cannot be reached or refuses `CREATE DATABASE`.
    pub fn postgres(server: &str) -> Result<Self> {
        let mut random = [0u8; 6];
        getrandom::fill(&mut random).context("system randomness")?;
        let name = format!(
            "gatehouse_bench_{}",
            random
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        gatehouse_storage::init_tls();
        let mut admin = PgConnection::establish(server)
            .with_context(|| format!("connecting to the PostgreSQL server for {name}"))?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .with_context(|| format!("CREATE DATABASE {name}"))?;
        Ok(Self {
            url: with_database(server, &name)?,
            cleanup: Cleanup::Postgres {
                server: server.to_owned(),
                name,
            },
        })
    }

    /// A new database on `backend`: PostgreSQL needs [`postgres_server`].
    ///
    /// # Errors
    /// As [`sqlite`](Self::sqlite) and [`postgres`](Self::postgres), or when PostgreSQL is
    /// asked for but no server is configured.
    pub fn new(backend: Backend) -> Result<Self> {
        match backend {
            Backend::Sqlite => Self::sqlite(),
            Backend::Postgres => match postgres_server() {
                Some(server) => Self::postgres(&server),
                None => bail!(
                    "no PostgreSQL server: set {BENCH_POSTGRES_URL_VAR} or {TEST_POSTGRES_URL_VAR}"
                ),
            },
        }
    }

    /// The URL to hand to `GATEHOUSE_DATABASE_URL` (credentials included).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Opens (creating and migrating) the database through the storage crate.
    ///
    /// # Errors
    /// When the URL is not one storage accepts or the database cannot be opened.
    pub fn open(&self) -> Result<Database> {
        let url: DatabaseUrl = self
            .url
            .parse()
            .with_context(|| format!("database URL for {}", self.masked()))?;
        Database::open(&url, PoolOptions::default())
            .with_context(|| format!("opening {}", self.masked()))
    }

    /// Brings a freshly seeded PostgreSQL database to the state autovacuum keeps a live one
    /// in (statistics, visibility map), so that the figures are those of a service that
    /// has been running, not of the minute after a bulk insert. Nothing to do on SQLite.
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub fn settle(&self) -> Result<()> {
        if !matches!(self.cleanup, Cleanup::Postgres { .. }) {
            return Ok(());
        }
        let mut conn = PgConnection::establish(&self.url)
            .with_context(|| format!("connecting to {}", self.masked()))?;
        conn.batch_execute("VACUUM ANALYZE")
            .with_context(|| format!("vacuuming {}", self.masked()))
    }

    /// The directory of an SQLite database's file (`None` on PostgreSQL).
    #[must_use]
    pub fn sqlite_dir(&self) -> Option<&std::path::Path> {
        match &self.cleanup {
            Cleanup::Directory(dir) => Some(dir.path()),
            Cleanup::Postgres { .. } => None,
        }
    }

    /// The URL as logs may show it.
    #[must_use]
    pub fn masked(&self) -> String {
        self.url
            .parse::<DatabaseUrl>()
            .map_or_else(|_| "the database".to_owned(), |url| url.to_string())
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        if let Cleanup::Postgres { server, name } = &self.cleanup {
            match PgConnection::establish(server) {
                Ok(mut admin) => {
                    if let Err(e) =
                        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    {
                        eprintln!("gatehouse-bench: could not drop database {name}: {e}");
                    }
                }
                Err(e) => eprintln!("gatehouse-bench: could not drop database {name}: {e}"),
            }
        }
    }
}

/// `url` with its database (the path) replaced by `name`, keeping any `?query`.
///
/// # Errors
/// When `url` has no `scheme://`.
pub fn with_database(url: &str, name: &str) -> Result<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("not a postgres:// URL");
    };
    let (authority, query) = match rest.split_once('/') {
        Some((authority, tail)) => (authority, tail.split_once('?').map(|(_, q)| q)),
        None => match rest.split_once('?') {
            Some((authority, q)) => (authority, Some(q)),
            None => (rest, None),
        },
    };
    Ok(match query {
        Some(q) => format!("{scheme}://{authority}/{name}?{q}"),
        None => format!("{scheme}://{authority}/{name}"),
    })
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_names_are_swapped() {
        assert_eq!(
            with_database("postgres://u@h:5432/test", "x").unwrap(),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/test?sslmode=disable", "x").unwrap(),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h", "x").unwrap(),
            "postgres://u@h/x"
        );
        assert!(with_database("nonsense", "x").is_err());
    }
}
