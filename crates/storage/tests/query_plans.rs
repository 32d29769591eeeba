//! Listing users stays an index walk at 100 000 users: the repository's own statements,
//! captured as it sends them, explained by each backend's planner.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use gatehouse_domain::{UserQuery, UserStatus};
use gatehouse_storage::testing::{TestBackend, TestDatabase};

const USERS: u32 = 100_000;

fn plans(db: &TestDatabase, query: &UserQuery) -> Vec<(String, String)> {
    let statements = db.statements_of(|repo| repo.list(query).map(drop));
    assert!(!statements.is_empty());
    statements
        .into_iter()
        .map(|s| {
            let plan = db.query_plan(&s).join("\n");
            (s, plan)
        })
        .collect()
}

/// A sort of the matching rows: what must not happen at scale (the page must come
/// straight off an index, newest first, stopping after `limit`).
fn sorts(backend: TestBackend, plan: &str) -> bool {
    match backend {
        TestBackend::Sqlite => plan.contains("TEMP B-TREE"),
        TestBackend::Postgres => plan.contains("Sort"),
    }
}

/// Rows found through an index, not by reading the whole table.
fn uses_index(backend: TestBackend, plan: &str) -> bool {
    match backend {
        TestBackend::Sqlite => {
            plan.contains("USING INDEX") || plan.contains("USING COVERING INDEX")
        }
        TestBackend::Postgres => plan.contains("Index") && !plan.contains("Seq Scan"),
    }
}

#[test]
fn listing_by_status_a_page_at_a_time_walks_an_index() {
    for backend in TestBackend::available() {
        let db = TestDatabase::new(backend).expect("an available backend");
        db.seed_users_for_plans(USERS);
        for status in UserStatus::ALL {
            let query = UserQuery {
                status: Some(status),
                limit: Some(50),
                offset: 100,
                ..UserQuery::default()
            };
            // Both the count for X-Total-Count and the page come off an index.
            for (statement, plan) in plans(&db, &query) {
                assert!(
                    uses_index(backend, &plan) && !sorts(backend, &plan),
                    "{backend:?}: {statement}\n{plan}"
                );
            }
        }
        // The newest page of everyone: the primary key, newest first, no sort.
        let everyone = UserQuery {
            limit: Some(50),
            ..UserQuery::default()
        };
        let (statement, plan) = plans(&db, &everyone).pop().expect("the page's statement");
        assert!(!sorts(backend, &plan), "{backend:?}: {statement}\n{plan}");
    }
}
