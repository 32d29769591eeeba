//! Settings generated once and agreed on by every opener of the database.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use std::sync::{Arc, Barrier};
use std::thread;

use gatehouse_domain::{Email, NewUser, PasswordHash, UserStatus, UserStoreExt};
use gatehouse_storage::testing::{TestBackend, TestDatabase};

fn the_first_stored_value_wins_and_survives_reopening(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    assert_eq!(
        db.setting_or_insert("jwt_secret", "first").expect("set"),
        "first"
    );
    assert_eq!(
        db.setting_or_insert("jwt_secret", "second").expect("get"),
        "first"
    );
    assert_eq!(
        db.reopen()
            .setting_or_insert("jwt_secret", "third")
            .expect("get"),
        "first"
    );
}

fn racing_openers_agree_on_one_value(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let barrier = Arc::new(Barrier::new(8));
    let values: Vec<String> = (0..8)
        .map(|i| {
            let (db, barrier) = (db.reopen(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                db.setting_or_insert("jwt_secret", &format!("candidate-{i}"))
                    .expect("set")
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert!(values.iter().all(|v| v == &values[0]), "{values:?}");
}

fn users_survive_reopening(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let user = NewUser {
        email: Email::parse("kept@example.com").expect("email"),
        password_hash: PasswordHash::new("hash".into()),
        is_admin: true,
        status: UserStatus::Approved,
        created_at: gatehouse_domain::now(),
        approved_at: None,
        approved_by: None,
        reason: None,
        email_verified: false,
    };
    let stored = db
        .write_with(|repo| repo.insert(user.clone()))
        .expect("insert");
    let reopened = db.reopen();
    let found = reopened
        .read_with(|repo| repo.find_by_id(stored.id))
        .expect("find");
    assert_eq!(found, Some(stored));
}

fn a_signing_key_is_generated_once_and_rotations_are_kept(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let first = db.signing_keys_or_generate().unwrap();
    assert_eq!(first.len(), 1);
    let again = db.reopen().signing_keys_or_generate().unwrap();
    assert_eq!(again, first, "{backend:?}: the stored key is reused");
    let now = gatehouse_domain::now();
    let next =
        gatehouse_domain::SigningKey::generate(now, now + chrono::Duration::seconds(60)).unwrap();
    db.add_signing_key(&next).unwrap();
    let both = db.signing_keys().unwrap();
    assert_eq!(both.len(), 2);
    assert_eq!(both[1], next);
}

fn a_duplicate_key_that_is_no_email_is_not_a_taken_email(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let now = gatehouse_domain::now();
    let key = gatehouse_domain::SigningKey::generate(now, now).expect("a key");
    db.add_signing_key(&key).expect("added");
    // The same kid again: a unique violation of signing_keys, a conflict (retried,
    // then reported), never "Email already registered".
    let again = db.add_signing_key(&key);
    assert!(
        matches!(again, Err(gatehouse_domain::Error::Conflict)),
        "{backend:?}: {again:?}"
    );
    // The email's own constraint still is.
    let user = |email: &str| NewUser {
        email: Email::parse(email).unwrap(),
        password_hash: PasswordHash::new("h".into()),
        is_admin: false,
        status: UserStatus::Pending,
        created_at: now,
        approved_at: None,
        approved_by: None,
        reason: None,
        email_verified: false,
    };
    db.write_with(|repo| repo.insert(user("a@example.com")))
        .unwrap();
    let taken = db.write_with(|repo| repo.insert(user("a@example.com")));
    assert!(
        matches!(taken, Err(gatehouse_domain::Error::EmailTaken)),
        "{backend:?}: {taken:?}"
    );
}

gatehouse_storage::backend_tests!(
    the_first_stored_value_wins_and_survives_reopening,
    racing_openers_agree_on_one_value,
    users_survive_reopening,
    a_signing_key_is_generated_once_and_rotations_are_kept,
    a_duplicate_key_that_is_no_email_is_not_a_taken_email,
);
