//! One connection type for both backends, so the repository is written once.
//!
//! `diesel::MultiConnection` covers the SQL both backends share; the few backend-specific
//! statements (how a transaction begins, upserts) match on the variant.

/// A connection to either backend.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    /// A PostgreSQL server.
    Postgres(diesel::PgConnection),
    /// An SQLite file.
    Sqlite(diesel::SqliteConnection),
}
