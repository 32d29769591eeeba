//! Diesel errors, translated into the domain's.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use gatehouse_domain::Error;

/// Maps a diesel error to the domain's: a unique violation of `users.email` is a taken
/// email; one of any other key (`settings.name`, `signing_keys.kid`, `throttle_counters`,
/// `device_tokens`, …) is a race lost to a concurrent insert of the same row, a conflict
/// (retried: the next run sees the winner's row); lost serialization races and deadlocks
/// are conflicts too; a busy, lost or unreachable database is unavailable, and everything
/// else is internal.
pub(crate) fn from_diesel(error: DieselError) -> Error {
    match &error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            if is_email_constraint(info.constraint_name(), info.message()) {
                Error::EmailTaken
            } else {
                Error::Conflict
            }
        }
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => Error::Conflict,
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
        | DieselError::BrokenTransactionManager => Error::unavailable(error),
        DieselError::DatabaseError(_, info) if is_deadlock(info.message()) => Error::Conflict,
        DieselError::DatabaseError(_, info) if is_unavailable(info.message()) => {
            Error::unavailable(error)
        }
        _ => Error::internal("database query", error),
    }
}

/// Whether a unique violation is of the users' email: PostgreSQL names the constraint
/// (`users_email_key`), SQLite names the column in its message (`UNIQUE constraint
/// failed: users.email`).
fn is_email_constraint(constraint: Option<&str>, message: &str) -> bool {
    match constraint {
        Some(name) => name == "users_email_key",
        None => message.contains("users.email"),
    }
}

fn is_deadlock(message: &str) -> bool {
    message.contains("deadlock detected")
}

/// SQLite's answers when another connection holds the lock past the busy timeout, and
/// libpq's when the server went away mid-session (over TLS, a cut connection is reported
/// by the TLS layer: `SSL SYSCALL error: EOF detected` and the like).
fn is_unavailable(message: &str) -> bool {
    [
        "database is locked",
        "database is busy",
        "server closed the connection",
        "SSL SYSCALL error",
        "SSL connection has been closed unexpectedly",
        "SSL error",
        "terminating connection",
        "no connection to the server",
        "connection to server",
        "could not receive data from server",
        "could not send data to server",
        "the database system is shutting down",
        "the database system is starting up",
        // A standby (after a failover, the old primary's address, or a URL without
        // target_session_attrs=read-write): it answers reads and refuses writes, which
        // another host of the URL may take.
        "in a read-only transaction",
        "cannot assign TransactionIds during recovery",
        "recovery is in progress",
        "in a hot standby",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_email_constraint_is_a_taken_email() {
        assert!(is_email_constraint(
            Some("users_email_key"),
            "duplicate key value"
        ));
        assert!(is_email_constraint(
            None,
            "UNIQUE constraint failed: users.email"
        ));
        for (constraint, message) in [
            (
                Some("settings_pkey"),
                "duplicate key value violates unique constraint",
            ),
            (Some("signing_keys_pkey"), "duplicate key value"),
            (Some("throttle_counters_pkey"), "duplicate key value"),
            (None, "UNIQUE constraint failed: settings.name"),
            (None, "UNIQUE constraint failed: signing_keys.kid"),
            (
                None,
                "UNIQUE constraint failed: throttle_counters.scope, throttle_counters.counter_key",
            ),
        ] {
            assert!(
                !is_email_constraint(constraint, message),
                "{constraint:?} {message}"
            );
        }
    }

    #[test]
    fn a_connection_lost_under_tls_is_unavailable() {
        for message in [
            "server closed the connection unexpectedly",
            "SSL SYSCALL error: EOF detected",
            "SSL SYSCALL error: Connection timed out",
            "SSL connection has been closed unexpectedly",
            "SSL error: decryption failed or bad record mac",
            "no connection to the server",
        ] {
            assert!(is_unavailable(message), "{message}");
        }
        assert!(!is_unavailable("syntax error at or near \"SELEC\""));
    }
}
