//! `src/schema.rs` is written by hand (one file for both backends, see migrations/README.md);
//! this holds it to the migrations: a fresh database of each backend, migrated, must have
//! exactly the tables and columns `schema.rs` declares, each as nullable and of the same
//! type family. A column added to a migration but not to `schema.rs` (or the other way
//! round, or to one backend only) fails here.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use std::collections::BTreeMap;

use gatehouse_storage::testing::{DatabaseColumn, TestBackend, TestDatabase};

/// Tables a migrated database has that `schema.rs` rightly leaves out, and why.
const NOT_IN_SCHEMA: &[(&str, &str)] = &[
    (
        "__diesel_schema_migrations",
        "diesel's record of the migrations run",
    ),
    ("sqlite_sequence", "SQLite's AUTOINCREMENT counters"),
    (
        "users_email_search",
        "SQLite's FTS5 trigram index of the emails (and its shadow tables), kept by triggers",
    ),
];

/// A column as `schema.rs` declares it: (nullable, diesel type).
type Declared = BTreeMap<(String, String), (bool, String)>;

/// Reads the `diesel::table!` blocks of `schema.rs`: `name (key) { column -> Type, … }`,
/// a column renamed with `#[sql_name = "…"]` (for a Rust keyword such as `type`; none is
/// today) under its SQL name.
fn declared() -> Declared {
    let source = include_str!("../src/schema.rs");
    let mut columns = Declared::new();
    let mut table: Option<String> = None;
    let mut sql_name: Option<String> = None;
    for line in source.lines().map(str::trim) {
        if line.starts_with("//") || line.starts_with("///") {
            continue;
        }
        if let Some(name) = line
            .strip_prefix("#[sql_name = \"")
            .and_then(|rest| rest.strip_suffix("\"]"))
        {
            sql_name = Some(name.to_owned());
            continue;
        }
        match &table {
            None => {
                if let Some((name, rest)) = line.split_once(" (") {
                    if rest.ends_with(") {") && !name.contains(' ') {
                        table = Some(name.to_owned());
                    }
                }
            }
            Some(name) => {
                if line == "}" {
                    table = None;
                } else if let Some((column, sql_type)) = line.split_once(" -> ") {
                    let sql_type = sql_type.trim_end_matches(',');
                    let (nullable, sql_type) = match sql_type
                        .strip_prefix("Nullable<")
                        .and_then(|t| t.strip_suffix('>'))
                    {
                        Some(inner) => (true, inner),
                        None => (false, sql_type),
                    };
                    let column = sql_name.take().unwrap_or_else(|| column.to_owned());
                    columns.insert((name.clone(), column), (nullable, sql_type.to_owned()));
                }
            }
        }
    }
    assert!(columns.len() > 30, "schema.rs read as {columns:?}");
    columns
}

/// The diesel type a column of this declared SQL type maps to, on either backend.
fn family(sql_type: &str) -> &'static str {
    match sql_type.to_ascii_lowercase().as_str() {
        // SQLite's `INTEGER PRIMARY KEY` is its 64-bit rowid.
        "bigint" | "integer" | "int8" => "BigInt",
        "text" => "Text",
        "boolean" => "Bool",
        "timestamp" | "timestamp without time zone" => "Timestamp",
        other => panic!("a column type schema.rs has no family for: {other}"),
    }
}

fn ignored(table: &str) -> bool {
    NOT_IN_SCHEMA
        .iter()
        .any(|(name, _)| table == *name || table.starts_with(&format!("{name}_")))
}

fn schema_matches_the_migrations(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let migrated: Declared = db
        .columns()
        .into_iter()
        .filter(|c| !ignored(&c.table))
        .map(
            |DatabaseColumn {
                 table,
                 name,
                 sql_type,
                 nullable,
             }| ((table, name), (nullable, family(&sql_type).to_owned())),
        )
        .collect();
    let declared = declared();
    let only_migrated: Vec<_> = migrated
        .iter()
        .filter(|(k, _)| !declared.contains_key(*k))
        .collect();
    let only_declared: Vec<_> = declared
        .iter()
        .filter(|(k, _)| !migrated.contains_key(*k))
        .collect();
    let different: Vec<_> = declared
        .iter()
        .filter_map(|(k, d)| migrated.get(k).filter(|m| *m != d).map(|m| (k, d, m)))
        .collect();
    assert!(
        only_migrated.is_empty() && only_declared.is_empty() && different.is_empty(),
        "{backend:?}: schema.rs and the migrations disagree\n\
         in the migrations only: {only_migrated:?}\n\
         in schema.rs only: {only_declared:?}\n\
         (nullable, type) declared vs migrated: {different:?}"
    );
}

gatehouse_storage::backend_tests!(schema_matches_the_migrations);

/// The reader above finds what it must: a renamed or retyped column would fail the test.
#[test]
fn the_schema_reader_sees_every_table() {
    let declared = declared();
    let tables: std::collections::BTreeSet<_> = declared.keys().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        tables.into_iter().collect::<Vec<_>>(),
        [
            "audit_log",
            "device_tokens",
            "invitations",
            "mails",
            "mfa_challenges",
            "one_time_codes",
            "passkeys",
            "recovery_codes",
            "refresh_tokens",
            "sessions",
            "settings",
            "signing_keys",
            "throttle_counters",
            "totp_factors",
            "user_tallies",
            "users",
            "webhook_deliveries",
            "webhooks"
        ]
    );
    assert_eq!(
        declared[&("users".to_owned(), "email_skeleton".to_owned())],
        (true, "Text".to_owned())
    );
    assert_eq!(
        declared[&("users".to_owned(), "id".to_owned())],
        (false, "BigInt".to_owned())
    );
}

/// Each pooled SQLite connection is set up as `sqlite.rs` says: the page cache small (the
/// OS caches the file; see docs/performance.md, "Memory"), writes durable, keys enforced.
#[test]
fn sqlite_connections_have_their_settings() {
    let db = TestDatabase::sqlite();
    assert_eq!(db.sqlite_pragma("cache_size"), "-512");
    assert_eq!(db.sqlite_pragma("synchronous"), "2", "FULL");
    assert_eq!(db.sqlite_pragma("foreign_keys"), "1");
    assert_eq!(db.sqlite_pragma("journal_mode"), "wal");
}
