//! Diesel errors, translated into the domain's.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use gatehouse_domain::Error;

/// Maps a diesel error to the domain's: unique violations are taken emails (the only unique
/// column a write can hit), lost serialization races and deadlocks are conflicts (retried),
/// a busy, lost or unreachable database is unavailable, and everything else is internal.
pub(crate) fn from_diesel(error: DieselError) -> Error {
    match &error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => Error::EmailTaken,
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
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

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
