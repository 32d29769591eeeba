//! `lookup_session_user`: lookups are queued and answered in batches by the storage crate's
//! own thread (on PostgreSQL one statement for many requests; on SQLite one read
//! transaction). Every request must get its own user — never another's — with the
//! revocation state of its own token, as fresh as the moment it asked.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use gatehouse_domain::{
    Email, NewUser, PasswordHash, User, UserId, UserStatus, UserStore, UserStoreExt as _,
};
use gatehouse_storage::testing::{needs_postgres, TestBackend, TestDatabase};

type Found = Option<(User, bool)>;

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: Email::parse(email).expect("email"),
        password_hash: PasswordHash::new("hash".into()),
        is_admin: false,
        status: UserStatus::Approved,
        created_at: gatehouse_domain::now(),
        approved_at: None,
        approved_by: None,
    }
}

/// Asks the store and waits for its answer (which may come from another thread).
fn lookup(store: &dyn UserStore, id: UserId, token_id: &str) -> Found {
    let (tx, rx) = mpsc::channel();
    store.lookup_session_user(
        id,
        token_id,
        Box::new(move |found| tx.send(found).expect("the asker waits")),
    );
    rx.recv_timeout(Duration::from_secs(20))
        .expect("an answer")
        .expect("a lookup that succeeds")
}

fn both_backends_batch(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    assert!(db.batches_session_lookups(), "{backend:?}");
}

fn each_lookup_gets_its_own_user_and_token_state_under_concurrency(backend: TestBackend) {
    const USERS: usize = 40;
    const THREADS: usize = 16;
    const EACH: usize = 50;
    let db = Arc::new(TestDatabase::new(backend));
    let users: Vec<User> = (0..USERS)
        .map(|i| {
            db.write_with(|repo| repo.insert(new_user(&format!("u{i}@example.com"))))
                .expect("insert")
        })
        .collect();
    // Every third user's token "t{i}" is revoked.
    let expires = gatehouse_domain::now() + chrono::Duration::hours(1);
    db.write_with(|repo| {
        for (i, user) in users.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
            repo.revoke_token(&format!("t{i}"), user.id, expires)?;
        }
        Ok(())
    })
    .expect("revoke");
    let missing = UserId::new(i64::from(u32::MAX)).expect("an id no one has");
    let users = Arc::new(users);
    let barrier = Arc::new(Barrier::new(THREADS));
    let askers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (db, users, barrier) = (db.clone(), users.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                // Many lookups in flight at once from this thread: the answers arrive in
                // whatever order the batches finish.
                let (tx, rx) = mpsc::channel();
                for k in 0..EACH {
                    let i = (t * 7 + k * 3) % (USERS + 1);
                    let (id, token) = match users.get(i) {
                        Some(user) => (user.id, format!("t{i}")),
                        None => (missing, format!("t{i}")),
                    };
                    let tx = tx.clone();
                    db.lookup_session_user(
                        id,
                        &token,
                        Box::new(move |found| tx.send((i, found)).expect("collector")),
                    );
                }
                drop(tx);
                let answers: Vec<_> = rx.iter().collect();
                assert_eq!(answers.len(), EACH, "{backend:?}: every lookup answered");
                for (i, found) in answers {
                    let found = found.expect("the lookup succeeds");
                    match users.get(i) {
                        Some(user) => {
                            let (got, revoked) = found.expect("the user exists");
                            assert_eq!(got.id, user.id, "{backend:?}: another user's answer");
                            assert_eq!(got.email, user.email);
                            assert_eq!(revoked, i % 3 == 0, "{backend:?}: t{i}'s revocation");
                        }
                        None => assert!(found.is_none(), "{backend:?}: no such user"),
                    }
                }
            })
        })
        .collect();
    for asker in askers {
        asker.join().expect("asker");
    }
}

fn a_lookup_sees_every_change_made_before_it(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let user = db
        .write_with(|repo| repo.insert(new_user("ann@example.com")))
        .expect("insert");
    let (found, revoked) = lookup(&*db, user.id, "jti").expect("found");
    assert_eq!(found.status, UserStatus::Approved);
    assert!(!revoked);

    let mut disabled = user.clone();
    disabled.status = UserStatus::Disabled;
    db.write_with(|repo| repo.update(&disabled))
        .expect("disable");
    let (found, _) = lookup(&*db, user.id, "jti").expect("found");
    assert_eq!(
        found.status,
        UserStatus::Disabled,
        "{backend:?}: no stale answer"
    );

    let expires = gatehouse_domain::now() + chrono::Duration::hours(1);
    db.write_with(|repo| repo.revoke_token("jti", user.id, expires))
        .expect("revoke");
    let (_, revoked) = lookup(&*db, user.id, "jti").expect("found");
    assert!(revoked, "{backend:?}: the revocation counts at once");

    db.write_with(|repo| repo.delete(user.id).map(drop))
        .expect("delete");
    assert!(
        lookup(&*db, user.id, "jti").is_none(),
        "{backend:?}: deleted"
    );
}

#[needs_postgres]
#[test]
fn lookups_recover_after_their_connections_are_killed() {
    use diesel::{Connection, PgConnection, RunQueryDsl};

    let db = TestDatabase::postgres();
    let gatehouse_storage::DatabaseUrl::Postgres { url } = db.url().clone() else {
        panic!("a PostgreSQL database");
    };
    let user = db
        .write_with(|repo| repo.insert(new_user("ann@example.com")))
        .expect("insert");
    // The batcher's thread gets to connect.
    for _ in 0..20 {
        assert!(lookup(&*db, user.id, "jti").is_some());
    }
    // Every other session on this database ends, as in a server restart.
    let mut admin = PgConnection::establish(&url).expect("connect");
    diesel::sql_query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&mut admin)
    .expect("terminate");
    // A lookup on a dead connection fails as "unavailable" (a 503), never as anything
    // else; the thread reconnects for its next batch.
    let mut answered = false;
    for _ in 0..10 {
        let (tx, rx) = mpsc::channel();
        db.lookup_session_user(
            user.id,
            "jti",
            Box::new(move |found| tx.send(found).expect("the asker waits")),
        );
        match rx.recv_timeout(Duration::from_secs(20)).expect("an answer") {
            Ok(found) => {
                assert_eq!(found.expect("found").0.id, user.id);
                answered = true;
                break;
            }
            Err(e) => assert!(
                matches!(e, gatehouse_domain::Error::Unavailable(_)),
                "a dead connection is unavailable, not {e:?}"
            ),
        }
    }
    assert!(answered, "the lookups reconnect");
}

/// Submits every `(id, token)` at once (so that they form batches) and collects the
/// answers in order.
fn lookups_at_once(
    store: &dyn UserStore,
    asked: &[(UserId, &str)],
) -> Vec<Result<Found, gatehouse_domain::Error>> {
    let (tx, rx) = mpsc::channel();
    for (i, (id, token)) in asked.iter().enumerate() {
        let tx = tx.clone();
        store.lookup_session_user(
            *id,
            token,
            Box::new(move |found| tx.send((i, found)).expect("collector")),
        );
    }
    drop(tx);
    let mut answers: Vec<_> = rx.iter().collect();
    answers.sort_by_key(|(i, _)| *i);
    answers.into_iter().map(|(_, found)| found).collect()
}

fn batched_and_single_lookups_agree_on_whose_revocation_it_is(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let ann = db
        .write_with(|repo| repo.insert(new_user("ann@example.com")))
        .expect("insert");
    let bob = db
        .write_with(|repo| repo.insert(new_user("bob@example.com")))
        .expect("insert");
    let expires = gatehouse_domain::now() + chrono::Duration::hours(1);
    db.write_with(|repo| repo.revoke_token("anns", ann.id, expires))
        .expect("revoke");
    // One at a time (the single-row statement) ...
    assert!(lookup(&*db, ann.id, "anns").unwrap().1, "{backend:?}");
    assert!(!lookup(&*db, bob.id, "anns").unwrap().1, "{backend:?}");
    // ... and many at once (PostgreSQL's batch statement): the same answers.
    let asked: Vec<(UserId, &str)> = (0..64)
        .map(|i| {
            if i % 2 == 0 {
                (ann.id, "anns")
            } else {
                (bob.id, "anns")
            }
        })
        .collect();
    for (i, answer) in lookups_at_once(&*db, &asked).into_iter().enumerate() {
        let (user, revoked) = answer.expect("a lookup").expect("a user");
        assert_eq!(user.id, asked[i].0, "{backend:?}");
        assert_eq!(revoked, i % 2 == 0, "{backend:?}: lookup {i}");
    }
}

fn a_users_row_that_is_no_user_fails_its_lookups_rather_than_hiding(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let ann = db
        .write_with(|repo| repo.insert(new_user("ann@example.com")))
        .expect("insert");
    let broken = db
        .write_with(|repo| repo.insert(new_user("broken@example.com")))
        .expect("insert");
    db.execute_sql(&format!(
        "UPDATE users SET email = 'no at sign' WHERE id = {}",
        broken.id.get()
    ));
    let asked: Vec<(UserId, &str)> = (0..32)
        .map(|i| {
            if i % 2 == 0 {
                (broken.id, "t")
            } else {
                (ann.id, "t")
            }
        })
        .collect();
    for (i, answer) in lookups_at_once(&*db, &asked).into_iter().enumerate() {
        if i % 2 == 0 {
            assert!(
                matches!(answer, Err(gatehouse_domain::Error::Internal { .. })),
                "{backend:?}: {answer:?}"
            );
        } else {
            assert_eq!(answer.expect("ann's lookup").expect("ann").0.id, ann.id);
        }
    }
}

#[needs_postgres]
#[test]
fn lookups_beyond_the_queue_bound_are_refused_at_once_while_the_database_stalls() {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, PgConnection};

    let empty = gatehouse_storage::testing::EmptyDatabase::new(TestBackend::Postgres);
    let db = empty.open_with(gatehouse_storage::PoolOptions {
        max_queued_lookups: 4,
        ..gatehouse_storage::PoolOptions::default()
    });
    let ann = db
        .write_with(|repo| repo.insert(new_user("ann@example.com")))
        .expect("insert");
    assert!(
        lookup(&db, ann.id, "t").is_some(),
        "the batcher is connected"
    );
    // Stall the batcher: its statement waits for this lock.
    let gatehouse_storage::DatabaseUrl::Postgres { url } = empty.url().clone() else {
        panic!("a PostgreSQL database");
    };
    let mut locker = PgConnection::establish(&url).expect("connect");
    locker
        .batch_execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .expect("lock");
    let (tx, rx) = mpsc::channel();
    let ask = |tx: &mpsc::Sender<_>| {
        let tx = tx.clone();
        db.lookup_session_user(
            ann.id,
            "t",
            Box::new(move |found| tx.send(found).expect("collector")),
        );
    };
    ask(&tx); // taken by the batcher, which now waits on the lock
    thread::sleep(Duration::from_millis(300));
    for _ in 0..10 {
        ask(&tx);
    }
    // Four wait in the queue; the other six are refused at once.
    let mut refused = 0;
    while let Ok(found) = rx.recv_timeout(Duration::from_millis(500)) {
        assert!(
            matches!(found, Err(gatehouse_domain::Error::Overloaded)),
            "{found:?}"
        );
        refused += 1;
    }
    assert_eq!(refused, 6);
    locker.batch_execute("ROLLBACK").expect("unlock");
    drop(tx);
    let answered: Vec<_> = rx.iter().collect();
    assert_eq!(
        answered.len(),
        5,
        "the waiting lookups are answered once it moves"
    );
    assert!(answered.iter().all(|found| matches!(found, Ok(Some(_)))));
}

gatehouse_storage::backend_tests!(
    each_lookup_gets_its_own_user_and_token_state_under_concurrency,
    both_backends_batch,
    a_lookup_sees_every_change_made_before_it,
    batched_and_single_lookups_agree_on_whose_revocation_it_is,
    a_users_row_that_is_no_user_fails_its_lookups_rather_than_hiding,
);
