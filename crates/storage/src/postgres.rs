//! PostgreSQL: connection URL, and migrations run once however many instances start.

use diesel::connection::SimpleConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::conn::AnyConnection;
use crate::manager::{Manager, Target};
use crate::{DatabaseUrl, OpenError, PoolOptions};

pub(crate) const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// The advisory lock every instance takes around its migrations ("gatehouse" in ASCII).
const MIGRATION_LOCK: i64 = 0x6761_7465_686f_7573;

/// The URL with the libpq settings Gatehouse relies on added, each unless the operator set
/// it in the URL:
/// - `connect_timeout`: libpq applies it to each host (and each address of a host) in
///   turn, so with the whole connect timeout per host a first host that swallows packets
///   (down without refusing, or frozen) took all of it, and `serve` and the CLI failed at
///   start-up though the second host was up. A URL of several hosts gets the connect
///   timeout divided among them (libpq's least, 2 s, at worst); one host gets it whole.
/// - TCP keepalives (`keepalives_idle=10`, `keepalives_interval=5`, `keepalives_count=3`)
///   and `tcp_user_timeout` (the pool's wait): a connection to a host that went away
///   without closing it (power loss, a partition) is found dead in seconds instead of the
///   kernel's two hours, both while idle in the pool and while a statement waits.
///   Neither shortens a healthy query: they count unanswered packets, not slow answers.
fn libpq_url(url: &str, options: &PoolOptions) -> String {
    let query = url.split_once('?').map_or("", |(_, query)| query);
    let set = |key: &str| {
        query
            .split('&')
            .any(|pair| pair.split_once('=').map_or(pair, |(k, _)| k) == key)
    };
    let total = options.connect_timeout.as_secs().max(1);
    let hosts = host_count(url);
    let per_host = if hosts > 1 {
        (total / hosts).max(2)
    } else {
        total
    };
    let user_timeout_ms = options.timeout.as_millis().max(1000);
    let defaults = [
        ("connect_timeout", per_host.to_string()),
        ("keepalives", "1".to_owned()),
        ("keepalives_idle", "10".to_owned()),
        ("keepalives_interval", "5".to_owned()),
        ("keepalives_count", "3".to_owned()),
        ("tcp_user_timeout", user_timeout_ms.to_string()),
    ];
    let mut out = url.to_owned();
    let mut separator = if url.contains('?') { '&' } else { '?' };
    for (key, value) in defaults {
        if !set(key) {
            out.push(separator);
            out.push_str(key);
            out.push('=');
            out.push_str(&value);
            separator = '&';
        }
    }
    out
}

/// How many hosts a libpq URL names: `postgres://h1:5432,h2:5432/db` two; a `host=`
/// parameter (which takes precedence) counts likewise; none (a Unix socket) is one.
fn host_count(url: &str) -> u64 {
    let (before_query, query) = url.split_once('?').unwrap_or((url, ""));
    let from_parameter = query.split('&').find_map(|pair| pair.strip_prefix("host="));
    let hosts = from_parameter.unwrap_or_else(|| {
        let authority = before_query
            .split_once("://")
            .map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
        // Userinfo ends at the last `@` (a password may hold one, percent-encoded or not).
        authority
            .rsplit_once('@')
            .map_or(authority, |(_, hosts)| hosts)
    });
    hosts
        .split(',')
        .filter(|host| !host.is_empty())
        .count()
        .max(1) as u64
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
        url: libpq_url(url, options),
        shown: display.clone(),
        call_limit: options.statement_timeout,
    });
    let mut opened = manager
        .open()
        // The manager has taken the passwords out of libpq's message.
        .map_err(|e| OpenError::Connect(format!("{display}: {}", one_line(&e.to_string()))))?;
    // Waiting for another instance's migrations, and migrating a large table, may take
    // longer than one request's call may.
    opened.without_time_limit();
    let conn = &mut opened.conn;
    let AnyConnection::Postgres(inner) = &mut *conn else {
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
            crate::backfill::email_skeletons(conn)
                .map_err(|e| OpenError::Migrate(format!("filling in email skeletons: {e}")))
        });
    // Closing the session would release the lock too; unlock explicitly all the same.
    if let AnyConnection::Postgres(inner) = conn {
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
    fn libpq_settings_are_added_unless_set() {
        let options = PoolOptions::default();
        let added = "keepalives=1&keepalives_idle=10&keepalives_interval=5&keepalives_count=3\
                     &tcp_user_timeout=5000";
        assert_eq!(
            libpq_url("postgres://u@h/db", &options),
            format!("postgres://u@h/db?connect_timeout=5&{added}")
        );
        assert_eq!(
            libpq_url("postgres://u@h/db?sslmode=disable", &options),
            format!("postgres://u@h/db?sslmode=disable&connect_timeout=5&{added}")
        );
        assert_eq!(
            libpq_url(
                "postgres://u@h/db?connect_timeout=2&keepalives=0&tcp_user_timeout=0\
                 &keepalives_idle=1&keepalives_interval=1&keepalives_count=1",
                &options
            ),
            "postgres://u@h/db?connect_timeout=2&keepalives=0&tcp_user_timeout=0\
             &keepalives_idle=1&keepalives_interval=1&keepalives_count=1"
        );
        // A key that merely ends like one of them is not it.
        assert!(libpq_url("postgres://u@h/db?xconnect_timeout=9", &options)
            .contains("&connect_timeout=5&"));
    }

    #[test]
    fn several_hosts_share_the_connect_timeout() {
        let options = PoolOptions {
            connect_timeout: std::time::Duration::from_secs(10),
            ..PoolOptions::default()
        };
        let timeout = |url: &str| {
            let url = libpq_url(url, &options);
            url.split(['?', '&'])
                .find_map(|pair| pair.strip_prefix("connect_timeout="))
                .map(str::to_owned)
        };
        assert_eq!(timeout("postgres://u:p@h/db").as_deref(), Some("10"));
        assert_eq!(timeout("postgres:///db").as_deref(), Some("10"));
        assert_eq!(
            timeout("postgres://u:p@a:5432,b:5433/db").as_deref(),
            Some("5")
        );
        assert_eq!(
            timeout("postgres://u:p%40x@a,b,c,d/db").as_deref(),
            Some("2")
        );
        assert_eq!(timeout("postgres:///db?host=a,b").as_deref(), Some("5"));
        assert_eq!(timeout("postgres://u:p@@a,b/db").as_deref(), Some("5"));
    }
}
