//! SQLite's group commit (`group.rs`): writes that queue behind one another, row-guarded or
//! plain, share a commit, and each keeps exactly its own outcome; the readiness probe
//! commits the open group before its own transaction.
//!
//! The order is set up with sleeps (the first write holds the turn long enough for the
//! others to queue behind it); what is asserted is never a duration.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use std::thread;
use std::time::Duration;

use gatehouse_domain::testing::new_user;
use gatehouse_domain::{Email, Error, UserStoreExt};
use gatehouse_storage::testing::{TestBackend, TestDatabase};
use gatehouse_storage::Database;

/// How long the first write holds the turn, and how far apart the others start.
const HOLD: Duration = Duration::from_millis(400);
const STAGGER: Duration = Duration::from_millis(60);

fn exists(db: &Database, email: &str) -> bool {
    let email = Email::parse(email).expect("email");
    db.read_with(|repo| repo.find_by_email(&email))
        .expect("read")
        .is_some()
}

/// What a racer does with the turn.
#[derive(Clone, Copy)]
enum Kind {
    /// A row-guarded write of one user, holding the turn for `HOLD` first.
    SlowRows,
    /// A row-guarded write of one user.
    Rows,
    /// A row-guarded write whose work fails after writing.
    FailingRows,
    /// A plain write of one user.
    Plain,
    /// The readiness probe (`UserStore::ping`), which writes nothing.
    Probe,
    /// A row-guarded write that panics after writing (a bug in a use case).
    PanickingRows,
}

/// Starts the racers `STAGGER` apart, in order, and gives back each one's outcome (`None`
/// for a panic).
fn race(db: &Database, kinds: &[Kind]) -> Vec<Option<Result<(), Error>>> {
    thread::scope(|scope| {
        let racers: Vec<_> = kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| {
                let kind = *kind;
                let email = format!("racer{i}@example.com");
                let racer = scope.spawn(move || {
                    let user = new_user(&email);
                    let write = |repo: &mut dyn gatehouse_domain::UserRepo| {
                        repo.insert(user.clone())?;
                        match kind {
                            Kind::SlowRows => thread::sleep(HOLD),
                            Kind::FailingRows => return Err(Error::SessionNotFound),
                            Kind::PanickingRows => panic!("a bug in a use case"),
                            Kind::Rows | Kind::Plain | Kind::Probe => {}
                        }
                        Ok(())
                    };
                    match kind {
                        Kind::Plain => db.write_with(write),
                        Kind::Probe => gatehouse_domain::UserStore::ping(db),
                        _ => db.write_rows_with(write),
                    }
                });
                thread::sleep(STAGGER);
                racer
            })
            .collect();
        racers.into_iter().map(|r| r.join().ok()).collect()
    })
}

fn counts(db: &Database) -> (u64, u64) {
    db.group_commits()
        .expect("SQLite counts group commits")
        .counts()
}

#[test]
fn row_guarded_writes_queued_behind_one_another_share_one_commit() {
    let db = TestDatabase::new(TestBackend::Sqlite);
    let outcomes = race(&db, &[Kind::SlowRows, Kind::Rows, Kind::Rows, Kind::Rows]);
    assert!(
        outcomes.iter().all(|o| matches!(o, Some(Ok(())))),
        "{outcomes:?}"
    );
    for i in 0..4 {
        assert!(exists(&db, &format!("racer{i}@example.com")), "racer {i}");
    }
    assert_eq!(counts(&db), (1, 4), "four writes, one commit");
}

#[test]
fn a_failing_write_in_a_group_leaves_nothing_and_the_others_stay() {
    let db = TestDatabase::new(TestBackend::Sqlite);
    let outcomes = race(
        &db,
        &[
            Kind::SlowRows,
            Kind::FailingRows,
            Kind::Rows,
            Kind::FailingRows,
        ],
    );
    assert!(matches!(outcomes[0], Some(Ok(()))), "{outcomes:?}");
    assert!(
        matches!(outcomes[1], Some(Err(Error::SessionNotFound))),
        "{outcomes:?}"
    );
    assert!(matches!(outcomes[2], Some(Ok(()))), "{outcomes:?}");
    assert!(
        matches!(outcomes[3], Some(Err(Error::SessionNotFound))),
        "{outcomes:?}"
    );
    assert!(exists(&db, "racer0@example.com"));
    assert!(!exists(&db, "racer1@example.com"));
    assert!(exists(&db, "racer2@example.com"));
    assert!(!exists(&db, "racer3@example.com"));
    assert_eq!(counts(&db), (1, 2));
}

#[test]
fn plain_writes_join_the_group_too() {
    let db = TestDatabase::new(TestBackend::Sqlite);
    let outcomes = race(&db, &[Kind::SlowRows, Kind::Rows, Kind::Plain, Kind::Rows]);
    assert!(
        outcomes.iter().all(|o| matches!(o, Some(Ok(())))),
        "{outcomes:?}"
    );
    for i in 0..4 {
        assert!(exists(&db, &format!("racer{i}@example.com")), "racer {i}");
    }
    // All four in one commit.
    assert_eq!(counts(&db), (1, 4));
}

#[test]
fn the_readiness_probe_commits_the_open_group_before_its_own() {
    let db = TestDatabase::new(TestBackend::Sqlite);
    let outcomes = race(&db, &[Kind::SlowRows, Kind::Rows, Kind::Probe, Kind::Rows]);
    assert!(
        outcomes.iter().all(|o| matches!(o, Some(Ok(())))),
        "{outcomes:?}"
    );
    for i in [0, 1, 3] {
        assert!(exists(&db, &format!("racer{i}@example.com")), "racer {i}");
    }
    // The first two together, closed by the probe; the last alone.
    assert_eq!(counts(&db), (2, 3));
}

#[test]
fn a_panic_in_a_group_fails_its_members_and_the_next_writes_go_on() {
    let db = TestDatabase::new(TestBackend::Sqlite);
    let outcomes = race(
        &db,
        &[Kind::SlowRows, Kind::PanickingRows, Kind::Rows, Kind::Plain],
    );
    // The first write was in the panicking one's group: its commit never came.
    assert!(
        matches!(outcomes[0], Some(Err(Error::Unavailable(_)))),
        "{outcomes:?}"
    );
    assert!(outcomes[1].is_none(), "{outcomes:?}");
    assert!(matches!(outcomes[2], Some(Ok(()))), "{outcomes:?}");
    assert!(matches!(outcomes[3], Some(Ok(()))), "{outcomes:?}");
    assert!(!exists(&db, "racer0@example.com"));
    assert!(!exists(&db, "racer1@example.com"));
    assert!(exists(&db, "racer2@example.com"));
    assert!(exists(&db, "racer3@example.com"));
    // And the database still takes writes and answers the readiness probe.
    db.write_rows_with(|repo| repo.insert(new_user("after@example.com")))
        .expect("a write after the panic");
    gatehouse_domain::UserStore::ping(&*db).expect("ready");
}
