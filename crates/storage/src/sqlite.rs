//! SQLite set up for a server.

use diesel::connection::SimpleConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::conn::AnyConnection;
use crate::manager::{Manager, Target};
use crate::{OpenError, PoolOptions};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Per-connection settings: wait for locks instead of failing at once, enforce foreign
/// keys, and sync the WAL at every commit so a committed write survives a crash.
fn pragmas(options: &PoolOptions) -> String {
    format!(
        "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;",
        options.timeout.as_millis()
    )
}

/// Opens the file (creating it), switches it to WAL and migrates it (the SQL migrations,
/// then the data they leave to the binary: `backfill.rs`). The first
/// connection is made by hand so that a bad path fails at once with SQLite's reason.
pub(crate) fn prepare(path: &str, options: &PoolOptions) -> Result<Manager, OpenError> {
    let manager = Manager::new(Target::Sqlite {
        path: path.to_owned(),
        pragmas: pragmas(options),
    });
    let mut conn = manager
        .open()
        .map_err(|e| OpenError::Connect(format!("sqlite://{path}: {e}")))?;
    let AnyConnection::Sqlite(inner) = &mut conn else {
        return Err(OpenError::Connect("expected an SQLite connection".into()));
    };
    inner
        .batch_execute("PRAGMA journal_mode = WAL;")
        .map_err(|e| OpenError::Connect(format!("sqlite://{path}: {e}")))?;
    inner
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| OpenError::Migrate(e.to_string()))?;
    crate::backfill::email_skeletons(&mut conn)
        .map_err(|e| OpenError::Migrate(format!("filling in email skeletons: {e}")))?;
    Ok(manager)
}
