//! PostgreSQL: connection URL, and migrations run once however many instances start.

use diesel::connection::SimpleConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::conn::AnyConnection;
use crate::manager::{Manager, Target};
use crate::{DatabaseUrl, OpenError, PoolOptions};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// The advisory lock every instance takes around its migrations ("gatehouse" in ASCII).
const MIGRATION_LOCK: i64 = 0x6761_7465_686f_7573;

/// The URL with libpq's `connect_timeout` added, unless the operator set one.
fn with_connect_timeout(url: &str, options: &PoolOptions) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!(
        "{url}{separator}connect_timeout={}",
        options.connect_timeout.as_secs().max(1)
    )
}

/// libpq's message on one line: it writes one line per address it tried (`localhost` is two)
/// and hints on lines of their own (a missing `sslrootcert` file, say).
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Connects once and runs the pending migrations, then the data migrations the binary
/// does itself (`backfill.rs`), under an advisory lock, so that instances starting
/// together migrate one after another (the later ones find nothing to do).
pub(crate) fn prepare(
    url: &str,
    display: &DatabaseUrl,
    options: &PoolOptions,
) -> Result<Manager, OpenError> {
    let manager = Manager::new(Target::Postgres {
        url: with_connect_timeout(url, options),
        shown: display.clone(),
    });
    let mut conn = manager
        .open()
        // The manager has taken the passwords out of libpq's message.
        .map_err(|e| OpenError::Connect(format!("{display}: {}", one_line(&e.to_string()))))?;
    let AnyConnection::Postgres(inner) = &mut conn else {
        return Err(OpenError::Connect(
            "expected a PostgreSQL connection".into(),
        ));
    };
    inner
        .batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .map_err(|e| OpenError::Migrate(format!("taking the migration lock: {e}")))?;
    let migrated = inner
        .run_pending_migrations(MIGRATIONS)
        .map(drop)
        .map_err(|e| OpenError::Migrate(e.to_string()))
        // The data the SQL migrations leave to the binary, still under the lock.
        .and_then(|()| {
            crate::backfill::email_skeletons(&mut conn)
                .map_err(|e| OpenError::Migrate(format!("filling in email skeletons: {e}")))
        });
    // Closing the session would release the lock too; unlock explicitly all the same.
    if let AnyConnection::Postgres(inner) = &mut conn {
        let _ = inner.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
    }
    migrated.map(|()| manager)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_messages_become_one_line() {
        assert_eq!(
            one_line(
                "connection to server at \"localhost\" (::1), port 1 failed: Connection refused\n\
                 \tIs the server running on that host and accepting TCP/IP connections?\n\
                 connection to server at \"localhost\" (127.0.0.1), port 1 failed: SSL error: \
                 certificate verify failed\n"
            ),
            "connection to server at \"localhost\" (::1), port 1 failed: Connection refused; \
             Is the server running on that host and accepting TCP/IP connections?; \
             connection to server at \"localhost\" (127.0.0.1), port 1 failed: SSL error: \
             certificate verify failed"
        );
    }

    #[test]
    fn connect_timeout_is_added_once() {
        let options = PoolOptions::default();
        assert_eq!(
            with_connect_timeout("postgres://u@h/db", &options),
            "postgres://u@h/db?connect_timeout=5"
        );
        assert_eq!(
            with_connect_timeout("postgres://u@h/db?sslmode=disable", &options),
            "postgres://u@h/db?sslmode=disable&connect_timeout=5"
        );
        assert_eq!(
            with_connect_timeout("postgres://u@h/db?connect_timeout=2", &options),
            "postgres://u@h/db?connect_timeout=2"
        );
    }
}
