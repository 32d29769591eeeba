//! The statement every `/me` runs stays prepared: diesel caches a statement only when it
//! can (a subselect, for one, is never cached), and an uncached one is parsed and planned
//! again on every request.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use gatehouse_domain::UserId;
use gatehouse_storage::testing::{TestBackend, TestDatabase};

fn the_session_lookup_is_kept_prepared(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    // A fresh connection may or may not have run it before: run it until one did.
    let kept: Vec<String> = (0..8)
        .flat_map(|_| {
            db.statements_kept_prepared_by(|repo| {
                repo.find_session_user(UserId::new(1).unwrap(), 1).map(drop)
            })
        })
        .collect();
    let ran = db.statements_of(|repo| repo.find_session_user(UserId::new(1).unwrap(), 1).map(drop));
    assert_eq!(ran.len(), 1, "{backend:?}: one statement: {ran:?}");
    let sql = ran[0].split(" -- binds:").next().unwrap();
    assert!(
        kept.iter().any(|k| k == sql),
        "{backend:?}: never kept prepared: {sql}\nkept: {kept:?}"
    );
}

gatehouse_storage::backend_tests!(the_session_lookup_is_kept_prepared,);
