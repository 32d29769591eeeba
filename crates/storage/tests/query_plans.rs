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

fn listing_by_status_a_page_at_a_time_walks_an_index(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    db.seed_users_for_plans(USERS);
    for status in UserStatus::ALL {
        let query = UserQuery {
            status: Some(status),
            limit: Some(50),
            offset: 100,
            ..UserQuery::default()
        };
        // The page comes off an index, and X-Total-Count in the same statement from the
        // folded tallies' index (a few rows, see tallies.rs), not from counting users.
        let plans = plans(&db, &query);
        assert!(
            plans.iter().any(|(s, _)| s.contains("user_tallies")),
            "{backend:?}: the total comes from the tallies: {plans:?}"
        );
        for (statement, plan) in plans {
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

/// The email search's candidates come off the trigram index: SQLite's FTS5 table, or
/// PostgreSQL's GIN index (pg_trgm is available on the test server).
fn uses_trigram_index(backend: TestBackend, plan: &str) -> bool {
    match backend {
        // FTS5's plan names its strategy after the colon: `M` for a MATCH (a full scan of
        // the index would have none).
        TestBackend::Sqlite => plan.lines().any(|step| {
            step.contains("SCAN users_email_search VIRTUAL TABLE INDEX")
                && step.rsplit(':').next().is_some_and(|how| how.contains('M'))
        }),
        TestBackend::Postgres => plan.contains("Index Scan on users_email_trgm_idx"),
    }
}

/// SQLite's look at the newest users, choosing between the index and the table.
fn is_sample(statement: &str) -> bool {
    statement.contains("`sample`")
}

fn searching_emails_uses_the_trigram_index(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    db.seed_users_for_plans(USERS);
    // "ser5" matches 11 111 users (none of the newest thousand), "zzzq" nobody.
    for needle in ["ser5", "zzzq"] {
        let query = UserQuery {
            email_contains: Some(needle.into()),
            limit: Some(50),
            ..UserQuery::default()
        };
        let statements = plans(&db, &query);
        for (statement, plan) in &statements {
            let context = format!("{backend:?} {needle:?}: {statement}\n{plan}");
            if is_sample(statement) {
                // A thousand rows by id.
                assert!(
                    plan.contains("USING INTEGER PRIMARY KEY (rowid>?)"),
                    "{context}"
                );
            } else if statement.contains("COUNT(") || needle == "zzzq" {
                assert!(uses_trigram_index(backend, plan), "{context}");
            } else {
                // The page: off the index; or, where PostgreSQL's planner expects
                // matches all along ("ser5": one user in nine), newest first down the
                // primary key, stopping at the fiftieth match.
                let walks_ids = backend == TestBackend::Postgres
                    && plan.contains("Index Scan Backward using users_pkey")
                    && !sorts(backend, plan);
                assert!(uses_trigram_index(backend, plan) || walks_ids, "{context}");
            }
        }
        let counted_and_paged = statements.iter().filter(|(s, _)| !is_sample(s)).count();
        assert_eq!(
            counted_and_paged, 2,
            "{backend:?} {needle:?}: {statements:?}"
        );
    }
    // A needle (nearly) everyone matches is not worth an index: the page comes straight
    // off the primary key, newest first, and the count reads the table.
    let common = UserQuery {
        email_contains: Some("example.com".into()),
        limit: Some(50),
        ..UserQuery::default()
    };
    let (statement, plan) = plans(&db, &common).pop().expect("the page's statement");
    assert!(
        !sorts(backend, &plan) && !uses_trigram_index(backend, &plan),
        "{backend:?}: {statement}\n{plan}"
    );
}

/// The look-alike check before every registration and email change: off the skeleton
/// index, never a walk of the users.
fn finding_a_look_alike_uses_the_skeleton_index(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    db.seed_users_for_plans(USERS);
    // Distinct skeletons, as real ones nearly all are; then fresh statistics.
    db.execute_sql("UPDATE users SET email_skeleton = email");
    db.execute_sql(match backend {
        TestBackend::Sqlite => "ANALYZE",
        TestBackend::Postgres => "VACUUM ANALYZE users",
    });
    let email = gatehouse_domain::Email::parse("user5@example.com").unwrap();
    let except = gatehouse_domain::UserId::new(5).ok();
    let statements = db.statements_of(|repo| repo.find_by_email_skeleton(&email, except).map(drop));
    assert_eq!(statements.len(), 1, "{statements:?}");
    let plan = db.query_plan(&statements[0]).join("\n");
    // (PostgreSQL may sort the one or two rows found, for the lowest id: harmless.)
    assert!(
        plan.contains("users_email_skeleton_idx")
            && !plan.contains("Seq Scan")
            && !plan.contains("SCAN users"),
        "{backend:?}: {}\n{plan}",
        statements[0]
    );
}

gatehouse_storage::backend_tests!(
    listing_by_status_a_page_at_a_time_walks_an_index,
    searching_emails_uses_the_trigram_index,
    finding_a_look_alike_uses_the_skeleton_index,
);
