//! Fresh, throw-away databases for tests, on either backend (feature `testing`).
//!
//! PostgreSQL tests read `GATEHOUSE_TEST_POSTGRES_URL` (a server and a database to connect
//! to for `CREATE DATABASE`); each test gets a database of its own, dropped afterwards.
//!
//! A PostgreSQL test is marked [`needs_postgres`] (above its `#[test]`): without the variable
//! it is reported *ignored*, with the reason, never as a pass; with
//! `GATEHOUSE_REQUIRE_POSTGRES=1` (CI) it runs and fails when it cannot have its database.
//! [`backend_tests!`](crate::backend_tests) makes one test per backend from a function of
//! the backend. There is no fallback: asked for PostgreSQL, these fixtures give PostgreSQL or
//! panic.

// Test support panics on purpose: a failed set-up is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::ops::Deref;
use std::sync::{Arc, Barrier};
use std::thread;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use gatehouse_domain::ports::Work;
use gatehouse_domain::{Error, SessionLookup, SessionSource, UserId, UserStore};

use crate::{Database, DatabaseUrl, PoolOptions};

pub use gatehouse_test_macros::needs_postgres;

pub mod replicated;
pub mod tls;

/// The variable naming the PostgreSQL server tests may use.
pub const POSTGRES_URL_VAR: &str = "GATEHOUSE_TEST_POSTGRES_URL";

/// The variable that, set to `1`, makes a PostgreSQL test without its database a failure.
pub const REQUIRE_POSTGRES_VAR: &str = "GATEHOUSE_REQUIRE_POSTGRES";

/// A backend tests can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    /// An SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the server of `GATEHOUSE_TEST_POSTGRES_URL`.
    Postgres,
}

/// One test per backend for each function of a [`TestBackend`] named: `name::sqlite` and
/// `name::postgres`, the latter marked [`needs_postgres`]. The module takes the function's
/// name (modules and functions live apart), so `cargo test name` runs both.
///
/// ```text
/// fn totals_survive_reopening(backend: TestBackend) { /* … */ }
/// gatehouse_storage::backend_tests!(totals_survive_reopening);
/// ```
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::testing::TestBackend::Sqlite);
            }

            #[$crate::testing::needs_postgres]
            #[test]
            fn postgres() {
                super::$name($crate::testing::TestBackend::Postgres);
            }
        }
    )+};
}

/// A libpq URL with `first` put before its host(s): `postgres://user@first,host:port/db`
/// (a multi-host URL whose first host a test controls).
///
/// # Panics
/// When `url` has no `scheme://` or no database path.
#[must_use]
pub fn with_first_host(url: &str, first: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_once('/').expect("a database in the URL");
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
        None => (String::new(), authority),
    };
    format!("{scheme}://{userinfo}{first},{hosts}/{path}")
}

/// Whether `GATEHOUSE_REQUIRE_POSTGRES` asks for PostgreSQL tests to fail without a server.
#[must_use]
pub fn postgres_required() -> bool {
    std::env::var(REQUIRE_POSTGRES_VAR).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The PostgreSQL server URL.
///
/// # Panics
/// When `GATEHOUSE_TEST_POSTGRES_URL` is not set: a test that asks for PostgreSQL runs only
/// when PostgreSQL is configured or required (see [`needs_postgres`]), so without a server
/// it fails rather than passing on something else.
#[must_use]
pub fn postgres_server() -> String {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ if postgres_required() => panic!(
            "{REQUIRE_POSTGRES_VAR} is set but {POSTGRES_URL_VAR} is not: this PostgreSQL \
             test has no server (e.g. {POSTGRES_URL_VAR}=postgres://postgres@127.0.0.1:5432/test)"
        ),
        _ => panic!(
            "{POSTGRES_URL_VAR} is not set: this PostgreSQL test has no server (it runs only \
             when asked for, with --ignored or --include-ignored, or when it was compiled with \
             the variable set: mark it #[needs_postgres])"
        ),
    }
}

/// Runs `f(i)` on `n` threads released at once (a barrier) and collects the results in
/// order; a thread's panic fails the caller.
pub fn race<T: Send + 'static>(n: usize, f: impl Fn(usize) -> T + Send + Sync + 'static) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(n));
    let f = Arc::new(f);
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (barrier, f) = (barrier.clone(), f.clone());
            thread::spawn(move || {
                barrier.wait();
                f(i)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("a racing thread"))
        .collect()
}

/// `url` with its database (the path) replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (authority, query) = match rest.split_once('/') {
        Some((authority, tail)) => (authority, tail.split_once('?').map(|(_, q)| q)),
        None => match rest.split_once('?') {
            Some((authority, q)) => (authority, Some(q)),
            None => (rest, None),
        },
    };
    match query {
        Some(q) => format!("{scheme}://{authority}/{name}?{q}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

/// An empty database (no tables yet), removed when dropped.
#[derive(Debug)]
pub struct EmptyDatabase {
    url: DatabaseUrl,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Directory(#[allow(dead_code)] tempfile::TempDir),
    Postgres { server: String, name: String },
}

impl EmptyDatabase {
    /// A new empty database on `backend`.
    ///
    /// # Panics
    /// When it cannot be made: for PostgreSQL, without `GATEHOUSE_TEST_POSTGRES_URL` or a
    /// server there to reach.
    #[must_use]
    pub fn new(backend: TestBackend) -> Self {
        match backend {
            TestBackend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let path = dir.path().join("gatehouse.db");
                Self {
                    url: format!("sqlite://{}", path.display())
                        .parse()
                        .expect("sqlite URL"),
                    cleanup: Cleanup::Directory(dir),
                }
            }
            TestBackend::Postgres => {
                let server = postgres_server();
                let mut random = [0u8; 8];
                getrandom::fill(&mut random).expect("randomness");
                let name = format!(
                    "gatehouse_test_{}",
                    random
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                );
                crate::init_tls();
                let mut admin = PgConnection::establish(&server).unwrap_or_else(|e| {
                    panic!("cannot reach the PostgreSQL server of {POSTGRES_URL_VAR}: {e}")
                });
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("CREATE DATABASE");
                Self {
                    url: with_database(&server, &name).parse().expect("postgres URL"),
                    cleanup: Cleanup::Postgres { server, name },
                }
            }
        }
    }

    /// Where it is.
    #[must_use]
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// The URL as text, with its password, for handing to a process.
    #[must_use]
    pub fn url_string(&self) -> String {
        match &self.url {
            DatabaseUrl::Sqlite { path } => format!("sqlite://{path}"),
            DatabaseUrl::Postgres { url } => url.clone(),
        }
    }

    /// Applies the migrations up to and including version `last` (`20261206000000`) and
    /// no further, without the start-up backfill: the database as that older version of
    /// Gatehouse left it, for tests of the migrations after it.
    pub fn migrate_until(&self, last: &str) {
        use diesel::migration::MigrationSource;
        use diesel_migrations::MigrationHarness;
        fn up_to<DB: diesel::backend::Backend>(
            conn: &mut impl MigrationHarness<DB>,
            source: &impl MigrationSource<DB>,
            last: &str,
        ) {
            conn.applied_migrations().expect("the migrations table");
            let mut all = source.migrations().expect("the embedded migrations");
            all.sort_by_key(|m| m.name().version().as_owned().to_string());
            for migration in all {
                if migration.name().version().to_string().as_str() <= last {
                    conn.run_migration(&*migration)
                        .unwrap_or_else(|e| panic!("migration {}: {e}", migration.name()));
                }
            }
        }
        match &self.url {
            DatabaseUrl::Sqlite { path } => {
                crate::sqlite::create_private(path).expect("the database file");
                let mut conn = diesel::SqliteConnection::establish(path).expect("SQLite");
                conn.batch_execute("PRAGMA foreign_keys = ON;")
                    .expect("foreign keys");
                up_to(&mut conn, &crate::sqlite::MIGRATIONS, last);
            }
            DatabaseUrl::Postgres { url } => {
                crate::init_tls();
                let mut conn = PgConnection::establish(url).expect("PostgreSQL");
                up_to(&mut conn, &crate::postgres::MIGRATIONS, last);
            }
        }
    }

    /// Opens (and migrates) it.
    #[must_use]
    pub fn open(&self) -> Database {
        self.open_with(PoolOptions::default())
    }

    /// Opens (and migrates) it with these pool options.
    #[must_use]
    pub fn open_with(&self, options: PoolOptions) -> Database {
        Database::open(&self.url, options).expect("open the test database")
    }
}

impl Drop for EmptyDatabase {
    fn drop(&mut self) {
        if let Cleanup::Postgres { server, name } = &self.cleanup {
            if let Ok(mut admin) = PgConnection::establish(server) {
                let _ =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// A migrated database and its pool; dereferences to the [`Database`].
#[derive(Debug)]
pub struct TestDatabase {
    // Declared first so the pool closes before the database is dropped.
    db: Database,
    empty: EmptyDatabase,
}

impl TestDatabase {
    /// A fresh migrated database on `backend`.
    ///
    /// # Panics
    /// As [`EmptyDatabase::new`].
    #[must_use]
    pub fn new(backend: TestBackend) -> Self {
        let empty = EmptyDatabase::new(backend);
        Self {
            db: empty.open(),
            empty,
        }
    }

    /// A fresh SQLite database.
    #[must_use]
    pub fn sqlite() -> Self {
        Self::new(TestBackend::Sqlite)
    }

    /// A fresh PostgreSQL database (in a test marked [`needs_postgres`]).
    ///
    /// # Panics
    /// Without `GATEHOUSE_TEST_POSTGRES_URL` or a server there to reach.
    #[must_use]
    pub fn postgres() -> Self {
        Self::new(TestBackend::Postgres)
    }

    /// Opens the same database again, as a second process would.
    #[must_use]
    pub fn reopen(&self) -> Database {
        self.empty.open()
    }

    /// Where it is.
    #[must_use]
    pub fn url(&self) -> &DatabaseUrl {
        self.empty.url()
    }
}

impl Deref for TestDatabase {
    type Target = Database;

    fn deref(&self) -> &Database {
        &self.db
    }
}

/// A test database is a store itself, so that it lives as long as the app that uses it
/// (`Arc::new(TestDatabase::sqlite())` as the store of the HTTP API suite) and goes with it.
impl SessionSource for TestDatabase {
    fn find_session_user(&self, id: UserId, session_id: i64) -> SessionLookup {
        self.db.find_session_user(id, session_id)
    }
}

impl UserStore for TestDatabase {
    fn read(&self, work: &mut Work<'_>) -> Result<(), Error> {
        self.db.read(work)
    }

    fn write(&self, work: &mut Work<'_>) -> Result<(), Error> {
        self.db.write(work)
    }

    fn write_rows(&self, work: &mut Work<'_>) -> Result<(), Error> {
        self.db.write_rows(work)
    }

    fn read_single(&self, work: &mut Work<'_>) -> Result<(), Error> {
        self.db.read_single(work)
    }

    fn ping(&self) -> Result<(), Error> {
        self.db.ping()
    }
}

/// Rows staged past the repository.
impl Database {
    /// Runs SQL statements straight on a connection, past the repository: for tests that
    /// stage rows as an older version (or another tool) left them.
    pub fn execute_sql(&self, sql: &str) {
        let mut conn = self.connection().expect("a connection");
        // Staging may be a large update on a loaded machine: no request's time limit.
        conn.for_long_work();
        conn.batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// A row of the `mails` table, every column, as [`Database::stored_mails`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMail {
    /// `id`.
    pub id: i64,
    /// `kind` (`MailKind::as_str`).
    pub kind: String,
    /// `recipient`.
    pub recipient: String,
    /// `subject`.
    pub subject: String,
    /// `body`.
    pub body: String,
    /// `status`: `pending`, `sent` or `failed`.
    pub status: String,
    /// `attempts`.
    pub attempts: i64,
    /// `next_attempt_at`.
    pub next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
    /// `claimed_until`.
    pub claimed_until: Option<chrono::DateTime<chrono::Utc>>,
    /// `last_attempt_at`.
    pub last_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
    /// `last_status_code`.
    pub last_status_code: Option<i64>,
    /// `last_error`.
    pub last_error: Option<String>,
    /// `created_at`.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// `sent_at`.
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Rows read past the repository, for columns no port reads.
impl Database {
    /// Every row of `mails`, by id.
    pub fn stored_mails(&self) -> Vec<StoredMail> {
        use crate::schema::mails;
        use crate::stored_time::StoredTime;
        use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
        type Row = (
            i64,
            String,
            String,
            String,
            String,
            String,
            i64,
            Option<StoredTime>,
            Option<StoredTime>,
            Option<StoredTime>,
            Option<i64>,
            Option<String>,
            StoredTime,
            Option<StoredTime>,
        );
        let utc = |at: Option<StoredTime>| at.map(|at| at.0.and_utc());
        let mut conn = self.connection().expect("a connection");
        mails::table
            .order(mails::id.asc())
            .select((
                mails::id,
                mails::kind,
                mails::recipient,
                mails::subject,
                mails::body,
                mails::status,
                mails::attempts,
                mails::next_attempt_at,
                mails::claimed_until,
                mails::last_attempt_at,
                mails::last_status_code,
                mails::last_error,
                mails::created_at,
                mails::sent_at,
            ))
            .load::<Row>(&mut *conn)
            .expect("the mails")
            .into_iter()
            .map(|r| StoredMail {
                id: r.0,
                kind: r.1,
                recipient: r.2,
                subject: r.3,
                body: r.4,
                status: r.5,
                attempts: r.6,
                next_attempt_at: utc(r.7),
                claimed_until: utc(r.8),
                last_attempt_at: utc(r.9),
                last_status_code: r.10,
                last_error: r.11,
                created_at: r.12 .0.and_utc(),
                sent_at: utc(r.13),
            })
            .collect()
    }
}

/// One column of a table as the migrated database describes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DatabaseColumn {
    /// The table.
    pub table: String,
    /// The column.
    pub name: String,
    /// The declared type as the backend spells it (`BIGINT`, `timestamp without time zone`).
    pub sql_type: String,
    /// Whether it may hold NULL.
    pub nullable: bool,
}

/// The schema as migrated, for the test that holds `schema.rs` to the migrations.
impl Database {
    /// Every column of every table in the database (SQLite's `sqlite_master` and
    /// `PRAGMA table_info`, PostgreSQL's `information_schema` for the current schema).
    pub fn columns(&self) -> Vec<DatabaseColumn> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            table_name: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            column_name: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            data_type: String,
            #[diesel(sql_type = diesel::sql_types::Bool)]
            nullable: bool,
        }
        use diesel::RunQueryDsl;
        let mut conn = self.connection().expect("a connection");
        let rows = match &mut *conn {
            crate::AnyConnection::Sqlite(c) => diesel::sql_query(
                "SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type, \
                 (p.\"notnull\" = 0 AND NOT (p.pk > 0 AND p.type = 'INTEGER')) AS nullable \
                 FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' ORDER BY m.name, p.cid",
            )
            .load::<Row>(c),
            crate::AnyConnection::Postgres(c) => diesel::sql_query(
                "SELECT table_name::text AS table_name, column_name::text AS column_name, \
                 data_type::text AS data_type, (is_nullable = 'YES') AS nullable \
                 FROM information_schema.columns WHERE table_schema = current_schema() \
                 ORDER BY table_name, ordinal_position",
            )
            .load::<Row>(c),
        }
        .expect("the columns");
        rows.into_iter()
            .map(|r| DatabaseColumn {
                table: r.table_name,
                name: r.column_name,
                sql_type: r.data_type,
                nullable: r.nullable,
            })
            .collect()
    }
}

/// Query plans, for tests that check a listing stays an index walk at scale.
impl Database {
    /// Inserts `n` users straight in SQL (`user{i}@example.com`; every tenth pending,
    /// every tenth but one disabled, the rest approved), then refreshes the planner's
    /// statistics.
    pub fn seed_users_for_plans(&self, n: u32) {
        let mut conn = self.connection().expect("a connection");
        // Seconds of work on a loaded machine: no request's time limit.
        conn.for_long_work();
        let select = "'user' || n || '@example.com', 'not a hash', FALSE, \
             CASE n % 10 WHEN 0 THEN 'pending' WHEN 1 THEN 'disabled' ELSE 'approved' END, \
             '2026-01-01 00:00:00'";
        let columns = "users (email, password_hash, is_admin, status, created_at)";
        let sql = match &mut *conn {
            crate::AnyConnection::Sqlite(_) => format!(
                "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {n}) \
                 INSERT INTO {columns} SELECT {select} FROM seq; ANALYZE;"
            ),
            crate::AnyConnection::Postgres(_) => {
                format!("INSERT INTO {columns} SELECT {select} FROM generate_series(1, {n}) AS n")
            }
        };
        conn.batch_execute(&sql).expect("seeding users");
        drop(conn);
        // As the maintenance pass would have by then: the inserts' tallies folded.
        let now = gatehouse_domain::now();
        gatehouse_domain::UserStoreExt::write_with(self, |repo| {
            repo.prune(now, now - chrono::Duration::days(1))
        })
        .expect("folding the tallies");
        let mut conn = self.connection().expect("a connection");
        conn.for_long_work();
        if let crate::AnyConnection::Postgres(_) = &mut *conn {
            // As autovacuum would have by then: statistics and the visibility map.
            conn.batch_execute("VACUUM ANALYZE users, user_tallies")
                .expect("vacuuming users");
        }
    }

    /// The statements `work` sends to the database, as diesel logs them
    /// (`SQL -- binds: [...]`).
    pub fn statements_of(
        &self,
        work: impl FnOnce(&mut dyn gatehouse_domain::UserRepo) -> Result<(), gatehouse_domain::Error>,
    ) -> Vec<String> {
        self.events_of(work).0
    }

    /// The SQL of the statements diesel prepared and kept for reuse while `work` ran on a
    /// fresh connection (a statement that is not kept is parsed again on every call).
    pub fn statements_kept_prepared_by(
        &self,
        work: impl FnOnce(&mut dyn gatehouse_domain::UserRepo) -> Result<(), gatehouse_domain::Error>,
    ) -> Vec<String> {
        self.events_of(work).1
    }

    /// (statements started, statements cached) while `work` runs on one connection.
    fn events_of(
        &self,
        work: impl FnOnce(&mut dyn gatehouse_domain::UserRepo) -> Result<(), gatehouse_domain::Error>,
    ) -> (Vec<String>, Vec<String>) {
        use diesel::connection::InstrumentationEvent;
        use std::sync::{Arc, Mutex};
        let started = Arc::new(Mutex::new(Vec::new()));
        let cached = Arc::new(Mutex::new(Vec::new()));
        let mut conn = self.connection().expect("a connection");
        let (on_start, on_cache) = (started.clone(), cached.clone());
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                on_start.lock().unwrap().push(query.to_string());
            }
            InstrumentationEvent::CacheQuery { sql, .. } => {
                on_cache.lock().unwrap().push(sql.to_owned());
            }
            _ => {}
        });
        let outcome = work(&mut crate::repo::SqlUserRepo { conn: &mut conn });
        conn.set_instrumentation(|_: InstrumentationEvent<'_>| {});
        outcome.expect("the work runs");
        let started = started.lock().unwrap().clone();
        let cached = cached.lock().unwrap().clone();
        (started, cached)
    }

    /// `PRAGMA name` as a pooled SQLite connection answers it (SQLite only).
    pub fn sqlite_pragma(&self, name: &str) -> String {
        #[derive(diesel::QueryableByName)]
        struct Value {
            #[diesel(sql_type = diesel::sql_types::Text)]
            value: String,
        }
        use diesel::RunQueryDsl;
        let mut conn = self.connection().expect("a connection");
        let crate::AnyConnection::Sqlite(c) = &mut *conn else {
            panic!("PRAGMA {name} asked of a PostgreSQL database");
        };
        diesel::sql_query(format!(
            "SELECT CAST(\"{name}\" AS TEXT) AS value FROM pragma_{name}"
        ))
        .get_result::<Value>(c)
        .expect("the pragma's value")
        .value
    }

    /// The planner's plan for a statement from [`statements_of`](Self::statements_of),
    /// its binds put in as literals; one line per step (SQLite's `EXPLAIN QUERY PLAN`
    /// details, PostgreSQL's `EXPLAIN` lines).
    pub fn query_plan(&self, statement: &str) -> Vec<String> {
        #[derive(diesel::QueryableByName)]
        struct SqliteStep {
            #[diesel(sql_type = diesel::sql_types::Text)]
            detail: String,
        }
        #[derive(diesel::QueryableByName)]
        struct PgStep {
            #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
            line: String,
        }
        use diesel::RunQueryDsl;
        let (sql, binds) = statement
            .split_once(" -- binds: ")
            .expect("a statement as diesel logs it");
        let binds = parse_binds(binds);
        let mut conn = self.connection().expect("a connection");
        match &mut *conn {
            crate::AnyConnection::Sqlite(c) => {
                let sql = inline(sql, &binds, |_| "?".to_owned());
                diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
                    .load::<SqliteStep>(c)
                    .expect("a plan")
                    .into_iter()
                    .map(|s| s.detail)
                    .collect()
            }
            crate::AnyConnection::Postgres(c) => {
                let sql = inline(sql, &binds, |i| format!("${}", i + 1));
                diesel::sql_query(format!("EXPLAIN {sql}"))
                    .load::<PgStep>(c)
                    .expect("a plan")
                    .into_iter()
                    .map(|s| s.line)
                    .collect()
            }
        }
    }
}

/// `["pending", 50, 0]` → SQL literals `'pending'`, `50`, `0`.
fn parse_binds(list: &str) -> Vec<String> {
    let inner = list
        .trim()
        .strip_prefix('[')
        .and_then(|l| l.strip_suffix(']'))
        .expect("a bind list");
    let mut binds = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' || c == ',' {
            chars.next();
        } else {
            binds.push(parse_bind(&mut chars));
        }
    }
    binds
}

/// One bind as diesel's log writes it (`Debug`): `"text"`, a number or boolean, `None`,
/// or `Some(…)` of one of those; as an SQL literal.
fn parse_bind(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
    if chars.peek() == Some(&'"') {
        chars.next();
        let mut text = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => text.extend(chars.next()),
                '"' => break,
                c => text.push(c),
            }
        }
        return format!("'{}'", text.replace('\'', "''"));
    }
    let mut token = String::new();
    while let Some(&c) = chars.peek() {
        if c == ',' || c == ')' {
            break;
        }
        token.push(c);
        chars.next();
        if token == "Some(" {
            let value = parse_bind(chars);
            chars.next(); // the closing parenthesis
            return value;
        }
    }
    match token.trim() {
        "None" => "NULL".to_owned(),
        other => other.to_owned(),
    }
}

/// Replaces the placeholders (`placeholder(i)` for the i-th bind) by the literals, last
/// first so that `$1` does not eat the start of `$10`.
fn inline(sql: &str, binds: &[String], placeholder: impl Fn(usize) -> String) -> String {
    if placeholder(0) == "?" {
        let mut out = String::with_capacity(sql.len());
        let mut next = binds.iter();
        for c in sql.chars() {
            match c {
                '?' => out.push_str(next.next().expect("a bind per placeholder")),
                c => out.push(c),
            }
        }
        out
    } else {
        (0..binds.len()).rev().fold(sql.to_owned(), |sql, i| {
            sql.replace(&placeholder(i), &binds[i])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_names_are_swapped() {
        assert_eq!(
            with_database("postgres://u@h:5432/test", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            with_database("postgres://u@h?a=b", "x"),
            "postgres://u@h/x?a=b"
        );
    }
}
