//! The statement every `/me` runs stays prepared: diesel caches a statement only when it
//! can (a subselect, for one, is never cached), and an uncached one is parsed and planned
//! again on every request.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use gatehouse_domain::{Error, UserId, UserRepo};
use gatehouse_storage::testing::{TestBackend, TestDatabase};

/// The statements `work` newly got kept prepared, over eight runs: a fresh connection may
/// or may not have run it before, so it is run until one did.
fn kept_by_runs(
    db: &TestDatabase,
    work: &dyn Fn(&mut dyn UserRepo) -> Result<(), Error>,
) -> Vec<String> {
    (0..8)
        .flat_map(|_| db.statements_kept_prepared_by(|repo| work(repo)))
        .collect()
}

/// A statement's SQL, as diesel logs it, without its binds.
fn sql_of(statement: &str) -> &str {
    statement.split(" -- binds:").next().unwrap()
}

fn the_session_lookup_is_kept_prepared(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let lookup =
        |repo: &mut dyn UserRepo| repo.find_session_user(UserId::new(1).unwrap(), 1).map(drop);
    let kept = kept_by_runs(&db, &lookup);
    let ran = db.statements_of(lookup);
    assert_eq!(ran.len(), 1, "{backend:?}: one statement: {ran:?}");
    let sql = sql_of(&ran[0]);
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
        let sql = sql_of(&ran[0]).to_owned();
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

/// The writes diesel would parse again at every run (every `UPDATE`, every raw statement)
/// are kept prepared where their text is fixed: a change's update of the user's row, a
/// refresh spending its token, a session's renewal and revocations, and each of the
/// outbox's statements (its claims, the sole dispatcher's read, the record of a turn's
/// attempts). On SQLite those are parsed inside the one writer's turn that every write
/// waits for (docs/performance.md, "Issue 18, seventh session").
fn the_writes_of_changes_and_of_the_dispatcher_are_kept_prepared(backend: TestBackend) {
    use gatehouse_domain::{Attempt, AttemptNext};
    let db = TestDatabase::new(backend);
    db.seed_users_for_plans(2);
    let user = UserId::new(1).unwrap();
    let now = gatehouse_domain::now();
    let attempt = move |code| Attempt {
        at: now,
        status_code: Some(code),
        error: None,
        next: AttemptNext::Delivered,
    };
    type Work = Box<dyn Fn(&mut dyn UserRepo) -> Result<(), Error>>;
    let works: Vec<(&str, Work)> = vec![
        (
            "a user's update",
            Box::new(move |repo| {
                let found = repo.find_by_id(user)?.unwrap();
                repo.update(&found).map(drop)
            }),
        ),
        (
            "a refresh token spent",
            Box::new(move |repo| repo.spend_refresh_token("no such token", now).map(drop)),
        ),
        (
            "a session renewed",
            Box::new(move |repo| repo.renew_session(0, "no such token", now, now).map(drop)),
        ),
        (
            "a user's sessions revoked",
            Box::new(move |repo| repo.revoke_sessions(user, None, now).map(drop)),
        ),
        (
            "a turn's attempts recorded",
            Box::new(move |repo| {
                repo.record_attempts(&[(-1, attempt(200)), (-2, attempt(204))])
                    .map(drop)
            }),
        ),
        (
            "an attempt recorded",
            Box::new(move |repo| repo.record_attempt(-1, &attempt(200)).map(drop)),
        ),
        (
            "the leased claim",
            Box::new(move |repo| {
                repo.claim_deliveries(now, now + chrono::Duration::seconds(30), 64)
                    .map(drop)
            }),
        ),
        (
            "the sole dispatcher's read",
            Box::new(move |repo| repo.due_deliveries(now, 64, &[1, 2]).map(drop)),
        ),
    ];
    // Statements newly kept by a run (one already kept, by an earlier work on the same
    // pooled connection, is not reported again).
    let mut kept: Vec<String> = Vec::new();
    for (name, work) in &works {
        kept.extend(kept_by_runs(&db, work.as_ref()));
        let ran = db.statements_of(|repo| work(repo));
        assert!(!ran.is_empty(), "{backend:?}, {name}: no statement ran");
        for statement in &ran {
            let sql = sql_of(statement);
            assert!(
                kept.iter().any(|k| k == sql),
                "{backend:?}, {name}: never kept prepared: {sql}\nkept: {kept:?}"
            );
        }
    }
}

gatehouse_storage::backend_tests!(the_writes_of_changes_and_of_the_dispatcher_are_kept_prepared,);
