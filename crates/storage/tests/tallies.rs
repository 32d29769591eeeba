//! The user tallies (`user_tallies`, kept by triggers) give the listing its totals
//! (`X-Total-Count`) without counting every user. They must equal a real count for every
//! filter, through inserts, status and role changes, deletes, the maintenance pass that
//! folds them, and concurrent writers, on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use std::sync::{Arc, Barrier};
use std::thread;

use diesel::sql_types::BigInt;
use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use gatehouse_domain::{
    Email, NewUser, PasswordHash, UserQuery, UserStatus, UserStore, UserStoreExt as _,
};
use gatehouse_storage::testing::{TestBackend, TestDatabase};
use gatehouse_storage::DatabaseUrl;

const STATUSES: [Option<UserStatus>; 4] = [
    None,
    Some(UserStatus::Pending),
    Some(UserStatus::Approved),
    Some(UserStatus::Disabled),
];

fn new_user(email: &str, status: UserStatus, is_admin: bool) -> NewUser {
    NewUser {
        email: Email::parse(email).expect("email"),
        password_hash: PasswordHash::new("hash".into()),
        is_admin,
        status,
        created_at: gatehouse_domain::now(),
        approved_at: None,
        approved_by: None,
        reason: None,
        email_verified: false,
    }
}

fn status_of(i: usize) -> UserStatus {
    match i % 3 {
        0 => UserStatus::Pending,
        1 => UserStatus::Approved,
        _ => UserStatus::Disabled,
    }
}

/// Every filter's total, as the listing gives it (from the tallies) and as a count of the
/// users gives it (a search for "@", which every email holds, is always counted for real).
fn assert_totals_exact(store: &dyn UserStore, when: &str) {
    for status in STATUSES {
        for is_admin in [None, Some(true), Some(false)] {
            let query = UserQuery {
                status,
                is_admin,
                limit: Some(0),
                ..UserQuery::default()
            };
            let counted = UserQuery {
                email_contains: Some("@".into()),
                ..query.clone()
            };
            let tallied = store.read_with(|repo| repo.list(&query)).expect("list");
            let real = store.read_with(|repo| repo.list(&counted)).expect("list");
            assert_eq!(
                tallied.total, real.total,
                "{when}: status {status:?}, is_admin {is_admin:?}"
            );
        }
    }
}

/// How many rows the tallies table holds.
fn tally_rows(db: &TestDatabase) -> i64 {
    let count = diesel::select(diesel::dsl::sql::<BigInt>(
        "(SELECT COUNT(*) FROM user_tallies)",
    ));
    match db.url() {
        DatabaseUrl::Sqlite { path } => count
            .get_result(&mut SqliteConnection::establish(path).expect("open"))
            .expect("count"),
        DatabaseUrl::Postgres { url } => count
            .get_result(&mut PgConnection::establish(url).expect("connect"))
            .expect("count"),
        other => panic!("a backend this test does not know: {other:?}"),
    }
}

fn prune(store: &dyn UserStore) {
    let now = gatehouse_domain::now();
    store
        .write_with(|repo| repo.prune(now, now - chrono::Duration::days(1)))
        .expect("prune");
}

fn totals_follow_inserts_changes_and_deletes_and_survive_folding(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    assert_totals_exact(&*db, &format!("{backend:?} empty"));
    let users: Vec<_> = (0..30)
        .map(|i| {
            let user = new_user(&format!("u{i}@example.com"), status_of(i), i % 4 == 0);
            db.write_with(|repo| repo.insert(user.clone()))
                .expect("insert")
        })
        .collect();
    assert_totals_exact(&*db, &format!("{backend:?} after inserts"));

    for (i, user) in users.iter().enumerate().take(12) {
        let mut changed = user.clone();
        match i % 4 {
            0 => changed.status = status_of(i + 1),
            1 => changed.is_admin = !changed.is_admin,
            2 => {
                changed.status = status_of(i + 2);
                changed.is_admin = !changed.is_admin;
            }
            _ => changed.email = Email::parse(&format!("moved{i}@example.org")).unwrap(),
        }
        db.write_with(|repo| repo.update(&changed)).expect("update");
    }
    assert_totals_exact(&*db, &format!("{backend:?} after changes"));

    for user in users.iter().skip(20).take(6) {
        db.write_with(|repo| repo.delete(user.id).map(drop))
            .expect("delete");
    }
    // A change rolled back leaves no tally behind.
    let rolled_back = db.write_with(|repo| {
        repo.insert(new_user("ghost@example.com", UserStatus::Pending, false))?;
        Err::<(), _>(gatehouse_domain::Error::EmailTaken)
    });
    assert!(rolled_back.is_err());
    assert_totals_exact(&*db, &format!("{backend:?} after deletes"));
    assert!(tally_rows(&db) > 30, "one row per change before folding");

    prune(&*db);
    assert_totals_exact(&*db, &format!("{backend:?} after folding"));
    assert!(
        tally_rows(&db) <= 6,
        "{backend:?}: at most one row per status and role after folding, not {}",
        tally_rows(&db)
    );
    // Changes after folding add to the sums.
    db.write_with(|repo| repo.delete(users[0].id).map(drop))
        .expect("delete");
    db.write_with(|repo| repo.insert(new_user("late@example.com", UserStatus::Approved, true)))
        .expect("insert");
    assert_totals_exact(&*db, &format!("{backend:?} after folding and more changes"));
    prune(&*db);
    prune(&*db);
    assert_totals_exact(&*db, &format!("{backend:?} folded twice"));
}

fn totals_stay_exact_with_concurrent_writers_and_folding(backend: TestBackend) {
    const WRITERS: usize = 6;
    const EACH: usize = 15;
    let db = Arc::new(TestDatabase::new(backend));
    let barrier = Arc::new(Barrier::new(WRITERS + 1));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (db, barrier) = (db.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                for i in 0..EACH {
                    let user = new_user(&format!("w{w}-{i}@example.com"), status_of(i), i % 5 == 0);
                    let user = db
                        .write_with(|repo| repo.insert(user.clone()))
                        .expect("insert");
                    if i % 3 == 0 {
                        let mut approved = user.clone();
                        approved.status = UserStatus::Approved;
                        db.write_with(|repo| repo.update(&approved))
                            .expect("update");
                    }
                    if i % 7 == 0 {
                        db.write_with(|repo| repo.delete(user.id).map(drop))
                            .expect("delete");
                    }
                }
            })
        })
        .collect();
    let folder = {
        let (db, barrier) = (db.clone(), barrier.clone());
        thread::spawn(move || {
            barrier.wait();
            for _ in 0..10 {
                prune(&**db);
                thread::yield_now();
            }
        })
    };
    for writer in writers {
        writer.join().expect("writer");
    }
    folder.join().expect("folder");
    assert_totals_exact(&**db, &format!("{backend:?} after the race"));
    let all = db
        .read_with(|repo| repo.list(&UserQuery::default()))
        .expect("list");
    assert_eq!(all.total, all.items.len() as u64);
    prune(&**db);
    assert_totals_exact(&**db, &format!("{backend:?} folded after the race"));
}

gatehouse_storage::backend_tests!(
    totals_follow_inserts_changes_and_deletes_and_survive_folding,
    totals_stay_exact_with_concurrent_writers_and_folding,
);
