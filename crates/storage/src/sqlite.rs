//! SQLite set up for a server.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::{Conn, OpenError, PoolOptions};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Per-connection settings: wait for locks instead of failing at once, enforce foreign
/// keys, and sync the WAL at every commit so a committed write survives a crash.
#[derive(Debug)]
struct ServerPragmas {
    busy_timeout_ms: u128,
}

impl ServerPragmas {
    fn apply(&self, conn: &mut Conn) -> QueryResult<()> {
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;",
            self.busy_timeout_ms
        ))
    }
}

impl CustomizeConnection<Conn, diesel::r2d2::Error> for ServerPragmas {
    fn on_acquire(&self, conn: &mut Conn) -> Result<(), diesel::r2d2::Error> {
        self.apply(conn).map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Opens the file (creating it), switches it to WAL, migrates it, and builds the pool.
/// The first connection is made by hand so that a bad path fails at once with SQLite's
/// own reason instead of after the pool's timeout.
pub(crate) fn open(
    path: &str,
    options: PoolOptions,
) -> Result<Pool<ConnectionManager<Conn>>, OpenError> {
    let pragmas = ServerPragmas {
        busy_timeout_ms: options.timeout.as_millis(),
    };
    let mut conn =
        Conn::establish(path).map_err(|e| OpenError::Connect(format!("sqlite://{path}: {e}")))?;
    pragmas
        .apply(&mut conn)
        .and_then(|()| conn.batch_execute("PRAGMA journal_mode = WAL;"))
        .map_err(|e| OpenError::Connect(format!("sqlite://{path}: {e}")))?;
    conn.run_pending_migrations(MIGRATIONS)
        .map_err(|e| OpenError::Migrate(e.to_string()))?;
    drop(conn);
    Pool::builder()
        .max_size(options.max_size.max(1))
        .connection_timeout(options.timeout)
        .connection_customizer(Box::new(pragmas))
        .build(ConnectionManager::new(path))
        .map_err(|e| OpenError::Pool(e.to_string()))
}
