//! SQLite set up for a server.

use diesel::connection::SimpleConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::conn::AnyConnection;
use crate::manager::{Manager, Target};
use crate::{OpenError, PoolOptions};

pub(crate) const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Per-connection settings: wait for locks instead of failing at once, enforce foreign
/// keys, and sync the WAL at every commit so a committed write survives a crash.
///
/// The page cache is 512 KiB per connection instead of SQLite's 2 MiB: the OS caches the
/// file anyway, and the pages of a connection are allocated by whichever thread of the
/// blocking pool holds it at the time, so with glibc's per-thread arenas they spread over
/// many arenas that are never given back. Listing 100 000 users at 16 connections peaked
/// at 72-79 MB of RSS with 2 MiB, 50 MB with 1 MiB, 32-35 MB with 512 KiB, at the same
/// throughput; `/me` on that database did not move (docs/performance.md, "Memory").
fn pragmas(options: &PoolOptions) -> String {
    format!(
        "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA cache_size = -512; PRAGMA temp_store = MEMORY;",
        options.timeout.as_millis()
    )
}

/// Creates the database file, empty and readable and writable by its owner only (0600),
/// unless it exists (whose mode is left as it is). SQLite would create it with 0644 less
/// the umask; it gives the `-wal`, `-shm` and `-journal` files it creates later the mode of
/// the database file, so they are 0600 too. The file holds the JWT secret and the signing
/// keys.
pub(crate) fn create_private(path: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens the file (creating it, see [`create_private`]), switches it to WAL and migrates it
/// (the SQL migrations, then the data they leave to the binary: `backfill.rs`). The first
/// connection is made by hand so that a bad path fails at once with SQLite's reason.
pub(crate) fn prepare(path: &str, options: &PoolOptions) -> Result<Manager, OpenError> {
    let manager = Manager::new(Target::Sqlite {
        path: path.to_owned(),
        pragmas: pragmas(options),
    });
    let mut opened = manager
        .open()
        .map_err(|e| OpenError::Connect(format!("sqlite://{path}: {e}")))?;
    let conn = &mut opened.conn;
    let AnyConnection::Sqlite(inner) = &mut *conn else {
        return Err(OpenError::Connect("expected an SQLite connection".into()));
    };
    inner
        .batch_execute("PRAGMA journal_mode = WAL;")
        .map_err(|e| OpenError::Connect(format!("sqlite://{path}: {e}")))?;
    inner
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| OpenError::Migrate(e.to_string()))?;
    crate::backfill::email_skeletons(conn)
        .map_err(|e| OpenError::Migrate(format!("filling in email skeletons: {e}")))?;
    Ok(manager)
}
