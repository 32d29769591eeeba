//! Diesel and pool errors, translated into the domain's.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use gatehouse_domain::Error;

/// Maps a diesel error to the domain's: unique violations are taken emails (the only unique
/// column a write can hit), lost serialization races are conflicts, a busy or unreachable
/// database is unavailable, and everything else is internal.
pub(crate) fn from_diesel(error: DieselError) -> Error {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => Error::EmailTaken,
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => Error::Conflict,
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => {
            Error::unavailable(error)
        }
        DieselError::DatabaseError(_, ref info) if is_busy(info.message()) => {
            Error::unavailable(error)
        }
        other => Error::internal("database query", other),
    }
}

/// SQLite's answers when another connection holds the lock past the busy timeout.
fn is_busy(message: &str) -> bool {
    message.contains("database is locked") || message.contains("database is busy")
}

/// Either the work's own error or diesel's, as a transaction closure must return.
#[derive(Debug)]
pub(crate) enum TxError {
    Domain(Error),
    Diesel(DieselError),
}

impl From<DieselError> for TxError {
    fn from(error: DieselError) -> Self {
        Self::Diesel(error)
    }
}

impl From<TxError> for Error {
    fn from(error: TxError) -> Self {
        match error {
            TxError::Domain(error) => error,
            TxError::Diesel(error) => from_diesel(error),
        }
    }
}
