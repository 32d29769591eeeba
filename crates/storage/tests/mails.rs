//! The mail outbox's columns as stored: what each attempt writes that no port reads back
//! (the contract checks, `gatehouse_domain::testing::contract`, see only what a claim
//! returns), on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use chrono::Duration;
use gatehouse_domain::{Attempt, AttemptNext, Error, MailKind, NewMail, UserStoreExt};
use gatehouse_storage::testing::{StoredMail, TestBackend, TestDatabase};

fn queue(db: &TestDatabase, kind: MailKind, subject: &str, at: chrono::DateTime<chrono::Utc>) {
    let mail = NewMail {
        kind,
        to: "someone@example.com".to_owned(),
        subject: subject.to_owned(),
        body: format!("{subject}\n"),
        at,
    };
    db.write_with(|repo| repo.append_mail(&mail))
        .expect("append mail");
}

fn stored(db: &TestDatabase, subject: &str) -> StoredMail {
    db.stored_mails()
        .into_iter()
        .find(|m| m.subject == subject)
        .expect("a stored mail")
}

fn each_attempt_writes_its_columns(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let t0 = gatehouse_domain::now();
    let queued_at = t0 - Duration::seconds(1);
    for subject in ["sent", "retried", "failed", "gone"] {
        queue(&db, MailKind::Invitation, subject, queued_at);
    }
    let fresh = stored(&db, "sent");
    assert_eq!(
        fresh,
        StoredMail {
            id: fresh.id,
            kind: "invitation".to_owned(),
            recipient: "someone@example.com".to_owned(),
            subject: "sent".to_owned(),
            body: "sent\n".to_owned(),
            status: "pending".to_owned(),
            attempts: 0,
            next_attempt_at: Some(queued_at),
            claimed_until: None,
            last_attempt_at: None,
            last_status_code: None,
            last_error: None,
            created_at: queued_at,
            sent_at: None,
        }
    );

    let lease = t0 + Duration::seconds(60);
    let claimed = db
        .write_rows_with(|repo| repo.claim_mails(t0, lease, 10))
        .expect("claim");
    assert_eq!(claimed.len(), 4);
    assert!(db
        .stored_mails()
        .iter()
        .all(|m| m.claimed_until == Some(lease) && m.status == "pending" && m.attempts == 0));

    let at = t0 + Duration::microseconds(1_500_001);
    let record = |subject: &str, status_code, error: Option<&str>, next| {
        let id = stored(&db, subject).id;
        let attempt = Attempt {
            at,
            status_code,
            error: error.map(str::to_owned),
            next,
        };
        assert!(db
            .write_rows_with(|repo| repo.record_mail_attempt(id, &attempt))
            .expect("record"));
        stored(&db, subject)
    };
    let expected =
        |before: StoredMail, status: &str, next, code, error: Option<&str>, sent| StoredMail {
            // A settled mail keeps no text (an invitation's code among others).
            body: if status == "pending" {
                before.body.clone()
            } else {
                String::new()
            },
            status: status.to_owned(),
            attempts: before.attempts + 1,
            next_attempt_at: next,
            claimed_until: None,
            last_attempt_at: Some(at),
            last_status_code: code,
            last_error: error.map(str::to_owned),
            sent_at: sent,
            ..before
        };

    let before = stored(&db, "sent");
    let after = record("sent", Some(250), None, AttemptNext::Delivered);
    assert_eq!(
        after,
        expected(before, "sent", None, Some(250), None, Some(at))
    );

    let retry_at = t0 + Duration::seconds(30);
    let before = stored(&db, "retried");
    let after = record(
        "retried",
        Some(451),
        Some("451 4.7.1 greylisted"),
        AttemptNext::RetryAt(retry_at),
    );
    assert_eq!(
        after,
        expected(
            before,
            "pending",
            Some(retry_at),
            Some(451),
            Some("451 4.7.1 greylisted"),
            None
        )
    );

    let before = stored(&db, "failed");
    let after = record(
        "failed",
        None,
        Some("connection refused"),
        AttemptNext::Failed,
    );
    assert_eq!(
        after,
        expected(
            before,
            "failed",
            None,
            None,
            Some("connection refused"),
            None
        )
    );

    let before = stored(&db, "gone");
    let after = record(
        "gone",
        Some(550),
        Some("550 no such user"),
        AttemptNext::Gone,
    );
    assert_eq!(
        after,
        expected(
            before,
            "failed",
            None,
            Some(550),
            Some("550 no such user"),
            None
        )
    );

    // A second attempt at the retry counts on, and a success clears its error.
    let before = stored(&db, "retried");
    let after = record("retried", Some(250), None, AttemptNext::Delivered);
    assert_eq!(
        after,
        expected(before, "sent", None, Some(250), None, Some(at))
    );
    assert_eq!(after.attempts, 2);
}

gatehouse_storage::backend_tests!(each_attempt_writes_its_columns);

/// A stored kind Gatehouse does not know fails the claim, which then claims nothing.
fn an_unknown_stored_kind_fails_the_claim(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let t0 = gatehouse_domain::now();
    db.execute_sql(
        "INSERT INTO mails (kind, recipient, subject, body, status, attempts, \
         next_attempt_at, created_at) VALUES ('carrier_pigeon', 'a@example.com', 's', 'b', \
         'pending', 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
    );
    let claimed = db.write_rows_with(|repo| repo.claim_mails(t0, t0 + Duration::seconds(60), 10));
    assert!(
        matches!(claimed, Err(Error::Internal { .. })),
        "{backend:?}: {claimed:?}"
    );
    assert_eq!(db.stored_mails()[0].claimed_until, None, "rolled back");
}

gatehouse_storage::backend_tests!(an_unknown_stored_kind_fails_the_claim);

/// `put_setting` replaces a value stored at start-up (`setting_or_insert`), which then
/// reads the new one.
fn put_setting_replaces_a_setting_stored_first(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    assert_eq!(
        db.setting_or_insert("shared", "first").expect("set"),
        "first"
    );
    db.write_with(|repo| repo.put_setting("shared", "second"))
        .expect("put");
    assert_eq!(
        db.read_with(|repo| repo.setting("shared")).expect("get"),
        Some("second".to_owned())
    );
    assert_eq!(
        db.setting_or_insert("shared", "third").expect("get"),
        "second"
    );
}

gatehouse_storage::backend_tests!(put_setting_replaces_a_setting_stored_first);
