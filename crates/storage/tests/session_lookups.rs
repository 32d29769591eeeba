//! The session port (`SessionSource::find_session_user`): lookups that overlap are queued
//! and answered in batches by the storage crate's own thread (on PostgreSQL one statement
//! for many requests; on SQLite one read transaction), and on SQLite a lookup that comes
//! alone is read on the calling thread. Every request must get its own user — never
//! another's — with the state of its own session, as fresh as the moment it asked.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use gatehouse_domain::testing::block_on;
use gatehouse_domain::{
    Email, NewSession, NewUser, PasswordHash, SessionAnswer, SessionLookup, SessionSource as _,
    SessionState, User, UserId, UserStatus, UserStore, UserStoreExt as _,
};
use gatehouse_storage::testing::{needs_postgres, TestBackend, TestDatabase};

type Found = Option<(User, Option<SessionState>)>;

/// A session id nobody has.
const NO_SESSION: i64 = 1_000_000;

/// Starts a session of `user`; its id.
fn start_session(store: &dyn UserStore, user: UserId) -> i64 {
    let now = gatehouse_domain::now();
    let hash = format!("refresh-{}-{}", user.get(), now.timestamp_micros());
    store
        .write_with(|repo| {
            repo.insert_session(
                &NewSession {
                    user_id: user,
                    created_at: now,
                    idle_expires_at: now + chrono::Duration::hours(1),
                    expires_at: now + chrono::Duration::hours(2),
                    address: None,
                    user_agent: None,
                },
                &hash,
            )
        })
        .expect("start a session")
        .id
}

/// Whether the lookup found the session, ended.
fn ended(state: Option<SessionState>) -> bool {
    state.expect("the session is found").revoked
}

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: Email::parse(email).expect("email"),
        password_hash: PasswordHash::new("hash".into()),
        is_admin: false,
        status: UserStatus::Approved,
        created_at: gatehouse_domain::now(),
        approved_at: None,
        approved_by: None,
        reason: None,
        email_verified: false,
    }
}

/// Asks the store and waits for its answer (which may come from another thread).
fn lookup(store: &dyn UserStore, id: UserId, session_id: i64) -> Found {
    block_on(store.find_session_user(id, session_id)).expect("a lookup that succeeds")
}

/// The answer if the lookup has one already, without waiting.
fn answered_now(lookup: &mut SessionLookup) -> Option<SessionAnswer> {
    match lookup
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(answer) => Some(answer),
        Poll::Pending => None,
    }
}

#[test]
fn a_lone_sqlite_lookup_is_read_on_the_calling_thread() {
    let db = TestDatabase::sqlite();
    let ann = db
        .write_with(|repo| repo.insert(new_user("ann@example.com")))
        .expect("insert");
    for _ in 0..3 {
        let mut lookup = db.find_session_user(ann.id, NO_SESSION);
        let answer = answered_now(&mut lookup).expect("answered before the call returned");
        assert_eq!(answer.expect("found").expect("ann").0.id, ann.id);
    }
}

#[needs_postgres]
#[test]
fn a_postgres_lookup_never_waits_on_the_calling_thread() {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, PgConnection};

    let db = TestDatabase::postgres();
    let ann = db
        .write_with(|repo| repo.insert(new_user("ann@example.com")))
        .expect("insert");
    let gatehouse_storage::DatabaseUrl::Postgres { url } = db.url().clone() else {
        panic!("a PostgreSQL database");
    };
    // Every read of users now waits for this lock: a lookup read on the calling thread
    // would not return until it goes.
    let mut locker = PgConnection::establish(&url).expect("connect");
    locker
        .batch_execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .expect("lock");
    let db = Arc::new(db);
    let (tx, rx) = mpsc::channel();
    let asker = {
        let db = db.clone();
        thread::spawn(move || {
            let mut lookup = db.find_session_user(ann.id, NO_SESSION);
            let early = answered_now(&mut lookup).is_some();
            tx.send(early).expect("the test waits");
            block_on(lookup)
        })
    };
    let early = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the call returns while the database is locked");
    assert!(!early, "answered while the table was locked");
    locker.batch_execute("ROLLBACK").expect("unlock");
    let found = asker.join().expect("asker").expect("found").expect("ann");
    assert_eq!(found.0.id, ann.id);
}

fn each_lookup_gets_its_own_user_and_session_under_concurrency(backend: TestBackend) {
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
    // Each user has a session; every third user's is ended.
    let sessions: Vec<i64> = users.iter().map(|u| start_session(&*db, u.id)).collect();
    let now = gatehouse_domain::now();
    db.write_with(|repo| {
        for (_, sid) in sessions.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
            repo.revoke_session(*sid, None, now)?;
        }
        Ok(())
    })
    .expect("end sessions");
    let sessions = Arc::new(sessions);
    let missing = UserId::new(i64::from(u32::MAX)).expect("an id no one has");
    let users = Arc::new(users);
    let barrier = Arc::new(Barrier::new(THREADS));
    let askers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (db, users, barrier) = (db.clone(), users.clone(), barrier.clone());
            let sessions = sessions.clone();
            thread::spawn(move || {
                barrier.wait();
                // Many lookups in flight at once from this thread, overlapping with the
                // other threads': some read inline, most batched.
                let lookups: Vec<_> = (0..EACH)
                    .map(|k| {
                        let i = (t * 7 + k * 3) % (USERS + 1);
                        let id = users.get(i).map_or(missing, |user| user.id);
                        let sid = sessions.get(i).copied().unwrap_or(NO_SESSION);
                        (i, db.find_session_user(id, sid))
                    })
                    .collect();
                for (i, lookup) in lookups {
                    let found = block_on(lookup).expect("the lookup succeeds");
                    match users.get(i) {
                        Some(user) => {
                            let (got, state) = found.expect("the user exists");
                            assert_eq!(got.id, user.id, "{backend:?}: another user's answer");
                            assert_eq!(got.email, user.email);
                            assert_eq!(ended(state), i % 3 == 0, "{backend:?}: session {i}");
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
    let sid = start_session(&*db, user.id);
    let (found, state) = lookup(&*db, user.id, sid).expect("found");
    assert_eq!(found.status, UserStatus::Approved);
    assert!(!ended(state));

    let mut disabled = user.clone();
    disabled.status = UserStatus::Disabled;
    db.write_with(|repo| repo.update(&disabled))
        .expect("disable");
    let (found, _) = lookup(&*db, user.id, sid).expect("found");
    assert_eq!(
        found.status,
        UserStatus::Disabled,
        "{backend:?}: no stale answer"
    );

    db.write_with(|repo| repo.revoke_session(sid, None, gatehouse_domain::now()))
        .expect("end");
    let (_, state) = lookup(&*db, user.id, sid).expect("found");
    assert!(ended(state), "{backend:?}: the end counts at once");

    db.write_with(|repo| repo.delete(user.id).map(drop))
        .expect("delete");
    assert!(lookup(&*db, user.id, sid).is_none(), "{backend:?}: deleted");
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
        assert!(lookup(&*db, user.id, NO_SESSION).is_some());
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
        match block_on(db.find_session_user(user.id, NO_SESSION)) {
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

/// Makes every lookup before awaiting any (on PostgreSQL they form batches) and collects
/// the answers in order.
fn lookups_at_once(store: &dyn UserStore, asked: &[(UserId, i64)]) -> Vec<SessionAnswer> {
    let lookups: Vec<_> = asked
        .iter()
        .map(|(id, sid)| store.find_session_user(*id, *sid))
        .collect();
    lookups.into_iter().map(block_on).collect()
}

fn batched_and_single_lookups_agree_on_whose_session_it_is(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let ann = db
        .write_with(|repo| repo.insert(new_user("ann@example.com")))
        .expect("insert");
    let bob = db
        .write_with(|repo| repo.insert(new_user("bob@example.com")))
        .expect("insert");
    let anns = start_session(&*db, ann.id);
    // One at a time (the single-row statement) ...
    assert!(
        lookup(&*db, ann.id, anns).unwrap().1.is_some(),
        "{backend:?}"
    );
    assert!(
        lookup(&*db, bob.id, anns).unwrap().1.is_none(),
        "{backend:?}"
    );
    // ... and many at once (PostgreSQL's batch statement): the same answers.
    let asked: Vec<(UserId, i64)> = (0..64)
        .map(|i| {
            if i % 2 == 0 {
                (ann.id, anns)
            } else {
                (bob.id, anns)
            }
        })
        .collect();
    for (i, answer) in lookups_at_once(&*db, &asked).into_iter().enumerate() {
        let (user, state) = answer.expect("a lookup").expect("a user");
        assert_eq!(user.id, asked[i].0, "{backend:?}");
        assert_eq!(state.is_some(), i % 2 == 0, "{backend:?}: lookup {i}");
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
    let asked: Vec<(UserId, i64)> = (0..32)
        .map(|i| {
            if i % 2 == 0 {
                (broken.id, NO_SESSION)
            } else {
                (ann.id, NO_SESSION)
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
        lookup(&db, ann.id, NO_SESSION).is_some(),
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
    let first = db.find_session_user(ann.id, NO_SESSION); // taken by the batcher, which now waits
    thread::sleep(Duration::from_millis(300));
    let more: Vec<_> = (0..10)
        .map(|_| db.find_session_user(ann.id, NO_SESSION))
        .collect();
    // Four wait in the queue; the other six are refused at once.
    let mut waiting = vec![first];
    let mut refused = 0;
    for mut lookup in more {
        match answered_now(&mut lookup) {
            Some(found) => {
                assert!(
                    matches!(found, Err(gatehouse_domain::Error::Overloaded)),
                    "{found:?}"
                );
                refused += 1;
            }
            None => waiting.push(lookup),
        }
    }
    assert_eq!(refused, 6);
    locker.batch_execute("ROLLBACK").expect("unlock");
    let answered: Vec<_> = waiting.into_iter().map(block_on).collect();
    assert_eq!(
        answered.len(),
        5,
        "the waiting lookups are answered once it moves"
    );
    assert!(answered.iter().all(|found| matches!(found, Ok(Some(_)))));
}

gatehouse_storage::backend_tests!(
    each_lookup_gets_its_own_user_and_session_under_concurrency,
    a_lookup_sees_every_change_made_before_it,
    batched_and_single_lookups_agree_on_whose_session_it_is,
    a_users_row_that_is_no_user_fails_its_lookups_rather_than_hiding,
);
