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

/// A change that raises an event writes its deliveries in one statement, kept prepared,
/// whether an endpoint is subscribed or not: the outbox adds no round trip and no parse to
/// the change's transaction (docs/performance.md, "Issue 18").
fn an_event_is_written_in_one_kept_statement(backend: TestBackend) {
    use gatehouse_domain::{
        EventFilter, EventType, NewEvent, NewWebhook, UserStoreExt, WebhookSecret, WebhookUrl,
    };
    let db = TestDatabase::new(backend);
    let event = |n: u32| NewEvent {
        id: format!("msg_{n:032x}"),
        event_type: EventType::UserDisabled,
        at: gatehouse_domain::now(),
        payload: "{}".into(),
        only_webhook: None,
    };
    // Statements newly kept by a run (one already kept is not reported again).
    let mut kept: Vec<String> = Vec::new();
    let mut check = |with: &str, first: u32, written: u64| {
        kept.extend((first..first + 8).flat_map(|n| {
            db.statements_kept_prepared_by(|repo| {
                assert_eq!(repo.append_event(&event(n))?, written);
                Ok(())
            })
        }));
        let ran = db.statements_of(|repo| repo.append_event(&event(first + 8)).map(drop));
        assert_eq!(ran.len(), 1, "{backend:?}, {with}: one statement: {ran:?}");
        let sql = ran[0].split(" -- binds:").next().unwrap().to_owned();
        assert!(
            kept.contains(&sql),
            "{backend:?}, {with}: never kept prepared: {sql}\nkept: {kept:?}"
        );
        sql
    };
    let without = check("no endpoint", 0, 0);
    db.write_with(|repo| {
        repo.insert_webhook(&NewWebhook {
            url: WebhookUrl::parse("https://hooks.example.com/", false).unwrap(),
            events: EventFilter::All,
            description: None,
            secret: WebhookSecret::generate().unwrap(),
            created_at: gatehouse_domain::now(),
        })
    })
    .unwrap();
    let with = check("an endpoint", 100, 1);
    assert_eq!(with, without, "the same statement either way");
}

gatehouse_storage::backend_tests!(an_event_is_written_in_one_kept_statement,);
