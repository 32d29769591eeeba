//! A real database as the store of the in-process API suite (`api_sqlite.rs`,
//! `api_postgres.rs`): kept alive with the app that uses it, dropped with it.

use std::sync::Arc;

use gatehouse_domain::ports::Work;
use gatehouse_domain::{Error, SessionLookup, SessionSource, UserId, UserStore};
use gatehouse_storage::testing::TestDatabase;

/// A test database, forwarding every store method to it.
#[derive(Debug)]
struct Store(TestDatabase);

impl SessionSource for Store {
    fn find_session_user(&self, id: UserId, token_id: &str) -> SessionLookup {
        self.0.find_session_user(id, token_id)
    }
}

impl UserStore for Store {
    fn read(&self, work: &mut Work<'_>) -> Result<(), Error> {
        self.0.read(work)
    }

    fn write(&self, work: &mut Work<'_>) -> Result<(), Error> {
        self.0.write(work)
    }

    fn read_single(&self, work: &mut Work<'_>) -> Result<(), Error> {
        self.0.read_single(work)
    }

    fn ping(&self) -> Result<(), Error> {
        self.0.ping()
    }
}

/// `database` as a shared store.
pub fn store(database: TestDatabase) -> Arc<dyn UserStore> {
    Arc::new(Store(database))
}
