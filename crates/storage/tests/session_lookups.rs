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
use gatehouse_storage::testing::{TestBackend, TestDatabase};

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

#[test]
fn both_backends_batch() {
    for backend in TestBackend::available() {
        let db = TestDatabase::new(backend).expect("backend");
        assert!(db.batches_session_lookups(), "{backend:?}");
    }
}

#[test]
fn each_lookup_gets_its_own_user_and_token_state_under_concurrency() {
    const USERS: usize = 40;
    const THREADS: usize = 16;
    const EACH: usize = 50;
    for backend in TestBackend::available() {
        let db = Arc::new(TestDatabase::new(backend).expect("backend"));
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
}

#[test]
fn a_lookup_sees_every_change_made_before_it() {
    for backend in TestBackend::available() {
        let db = TestDatabase::new(backend).expect("backend");
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
}

#[test]
fn lookups_recover_after_their_connections_are_killed() {
    use diesel::{Connection, PgConnection, RunQueryDsl};

    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let gatehouse_storage::DatabaseUrl::Postgres { url } = db.url().clone() else {
        panic!("a PostgreSQL database");
    };
    let user = db
        .write_with(|repo| repo.insert(new_user("ann@example.com")))
        .expect("insert");
    // Both batcher threads get to connect.
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
