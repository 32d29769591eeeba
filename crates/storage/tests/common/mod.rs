//! A fresh database per test, removed afterwards.

use std::ops::Deref;

use gatehouse_storage::{Database, DatabaseUrl, PoolOptions};

/// A migrated SQLite database in its own temporary directory.
#[derive(Debug)]
pub struct TestDb {
    db: Database,
    url: DatabaseUrl,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("gatehouse.db");
        let url: DatabaseUrl = format!("sqlite://{}", path.display()).parse().expect("url");
        let db = Database::open(&url, PoolOptions::default()).expect("open sqlite");
        Self { db, url, _dir: dir }
    }

    /// Opens the same database again, as a second process would.
    #[allow(dead_code)]
    pub fn reopen(&self) -> Database {
        Database::open(&self.url, PoolOptions::default()).expect("reopen")
    }
}

impl Deref for TestDb {
    type Target = Database;

    fn deref(&self) -> &Database {
        &self.db
    }
}
