//! The start-up backfill of email skeletons (`backfill.rs`): rows an older version wrote,
//! without a skeleton and perhaps before NFKC, are filled in when the database is opened.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use std::io::Write;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use gatehouse_domain::{Email, User, UserId, UserStoreExt};
use gatehouse_storage::testing::{TestBackend, TestDatabase};
use gatehouse_storage::Database;

/// Log lines written while `f` runs on this thread.
/// One test of this binary at a time: tracing caches each log site's interest across every
/// subscriber alive, and a site first reached on another test's thread (which has no
/// subscriber) while ours is being set up can be cached as uninteresting, so that our capture
/// misses its line (the two backends' tests run in parallel; the PostgreSQL one lost its
/// INFO line this way now and then).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn logs_of<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    (out, text)
}

/// Inserts users as a version before the skeleton column did: `email_skeleton` NULL.
fn insert_legacy(db: &Database, emails: &[&str]) {
    let values = emails
        .iter()
        .map(|e| format!("('{e}', 'not a hash', FALSE, 'pending', '2026-01-01 00:00:00')"))
        .collect::<Vec<_>>()
        .join(", ");
    db.execute_sql(&format!(
        "INSERT INTO users (email, password_hash, is_admin, status, created_at) VALUES {values}"
    ));
}

fn by_id(db: &Database, id: i64) -> User {
    db.read_with(|repo| repo.find_by_id(UserId::new(id).unwrap()))
        .unwrap()
        .unwrap_or_else(|| panic!("user {id}"))
}

/// The ids of the users (other than `except`) that look like `raw`.
fn look_alike_of(db: &Database, raw: &str, except: Option<i64>) -> Option<i64> {
    let email = Email::parse(raw).unwrap();
    let except = except.map(|id| UserId::new(id).unwrap());
    db.read_with(|repo| repo.find_by_email_skeleton(&email, except))
        .unwrap()
        .map(|u| u.id.get())
}

fn legacy_rows_are_normalised_and_get_skeletons_at_start_up(backend: TestBackend) {
    let _serial = serial();
    let db = TestDatabase::new(backend);
    insert_legacy(
        &db,
        &[
            // 1: fullwidth, from before NFKC.
            "ａｄｍｉｎ@example.com",
            // 2: plain.
            "bob@example.com",
            // 3 and 4: 3's normal form is 4's email: both are left as they are.
            "ｃａｒｏｌ@example.com",
            "carol@example.com",
            // 5 and 6: look-alikes (1 for l), both kept.
            "paypal@example.com",
            "paypa1@example.com",
            // 7: a Cyrillic а in a Latin label, from before the script rule.
            "dave@ex\u{430}mple.org",
            // 8 and 9: both normalise to one address nobody has yet: 8 gets it.
            "\u{ff45}ve@example.com",
            "e\u{ff56}e@example.com",
        ],
    );
    // Before the backfill the rows have no skeleton to find.
    assert_eq!(look_alike_of(&db, "bob@example.com", None), None);

    let (reopened, logs) = logs_of(|| db.reopen());
    assert_eq!(by_id(&reopened, 1).email.as_str(), "admin@example.com");
    assert_eq!(
        look_alike_of(&reopened, "adrnin@example.com", None),
        Some(1)
    );
    assert_eq!(look_alike_of(&reopened, "bob@example.com", None), Some(2));
    assert_eq!(by_id(&reopened, 3).email.as_str(), "ｃａｒｏｌ@example.com");
    assert_eq!(by_id(&reopened, 4).email.as_str(), "carol@example.com");
    assert_eq!(look_alike_of(&reopened, "carol@example.com", None), Some(3));
    assert_eq!(
        look_alike_of(&reopened, "carol@example.com", Some(3)),
        Some(4)
    );
    assert_eq!(
        look_alike_of(&reopened, "paypal@example.com", Some(5)),
        Some(6)
    );
    assert_eq!(
        look_alike_of(&reopened, "paypa1@example.com", Some(6)),
        Some(5)
    );
    assert_eq!(by_id(&reopened, 7).email.as_str(), "dave@ex\u{430}mple.org");
    assert_eq!(look_alike_of(&reopened, "dave@example.org", None), Some(7));
    assert_eq!(by_id(&reopened, 8).email.as_str(), "eve@example.com");
    assert_eq!(by_id(&reopened, 9).email.as_str(), "e\u{ff56}e@example.com");

    assert!(
        logs.contains("filled in the users' email skeletons"),
        "{logs}"
    );
    assert!(logs.contains("filled=9"), "{logs}");
    assert!(logs.contains("normalised=2"), "{logs}");
    let collisions: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("normalises (NFKC) to another user's email"))
        .collect();
    assert_eq!(collisions.len(), 2, "{logs}");
    assert!(
        collisions.iter().all(|l| l.contains("WARN")),
        "{collisions:?}"
    );
    assert!(collisions[0].contains("user_id=3") && collisions[0].contains("other_user_id=4"));
    assert!(collisions[1].contains("user_id=9") && collisions[1].contains("other_user_id=8"));
    let look_alikes: Vec<&str> = logs.lines().filter(|l| l.contains("look alike")).collect();
    for ids in ["[3, 4]", "[5, 6]", "[8, 9]"] {
        assert!(
            look_alikes.iter().any(|l| l.contains(ids)),
            "{ids} in {look_alikes:?}"
        );
    }
    // The Cyrillic-а row looks like no one else's here; it is not reported.
    assert_eq!(look_alikes.len(), 3, "{look_alikes:?}");

    // Idempotent: the next start finds nothing to do and says nothing.
    let (again, logs) = logs_of(|| db.reopen());
    assert!(!logs.contains("email skeletons"), "{logs}");
    assert!(!logs.contains("look alike"), "{logs}");
    assert_eq!(by_id(&again, 1).email.as_str(), "admin@example.com");
    assert_eq!(by_id(&again, 3).email.as_str(), "ｃａｒｏｌ@example.com");
}

fn instances_starting_together_fill_in_once(backend: TestBackend) {
    let _serial = serial();
    let db = TestDatabase::new(backend);
    let emails: Vec<String> = (0..1200)
        .map(|i| format!("ｕｓｅｒ{i}@example.com"))
        .collect();
    insert_legacy(&db, &emails.iter().map(String::as_str).collect::<Vec<_>>());
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url().clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                Database::open(&url, gatehouse_storage::PoolOptions::default())
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap().unwrap();
    }
    let reopened = db.reopen();
    for id in [1, 600, 1200] {
        let user = by_id(&reopened, id);
        assert_eq!(user.email.as_str(), format!("user{}@example.com", id - 1));
        assert_eq!(
            look_alike_of(&reopened, user.email.as_str(), None),
            Some(id)
        );
    }
}

gatehouse_storage::backend_tests!(
    legacy_rows_are_normalised_and_get_skeletons_at_start_up,
    instances_starting_together_fill_in_once,
);
