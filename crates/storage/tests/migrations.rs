//! Upgrading a database an older version left. The approval queue's migration keeps every
//! user as it was (ids, emails, statuses, approvals, token versions), keeps deleted ids
//! used, and keeps what hangs off the users table working: the email search, the totals,
//! the foreign keys of device tokens, invitations and approvals. On SQLite that migration
//! rebuilds the table, which is what could lose any of them. The lean outbox's migration
//! keeps every webhook delivery with its event.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use gatehouse_domain::{Email, NewUser, PasswordHash, UserId, UserQuery, UserStatus, UserStoreExt};
use gatehouse_storage::testing::{EmptyDatabase, TestBackend};

/// The last migration before the approval queue's.
const BEFORE_APPROVAL_QUEUE: &str = "20261206000000";

fn upgrading_keeps_users_their_ids_and_everything_that_hangs_off_them(backend: TestBackend) {
    let empty = EmptyDatabase::new(backend);
    empty.migrate_until(BEFORE_APPROVAL_QUEUE);
    // Rows as the older version wrote them: an approved admin, a user they approved, a
    // pending one, a disabled one, and a fifth who was deleted (so the next id is 6).
    let old = [
        "INSERT INTO users (email, password_hash, is_admin, status, created_at, approved_at, \
         token_version, email_skeleton) VALUES ('admin@example.com', 'h1', TRUE, 'approved', \
         '2026-01-01 00:00:00', '2026-01-01 00:00:00', 0, 'admin@example.com')",
        "INSERT INTO users (email, password_hash, is_admin, status, created_at, approved_at, \
         approved_by, token_version, email_skeleton) VALUES ('ann@example.com', 'h2', FALSE, \
         'approved', '2026-01-02 00:00:00', '2026-01-03 00:00:00', 1, 4, 'ann@example.com')",
        "INSERT INTO users (email, password_hash, is_admin, status, created_at, \
         email_skeleton) VALUES ('bob@example.com', 'h3', FALSE, 'pending', \
         '2026-01-04 00:00:00', 'bob@example.com')",
        "INSERT INTO users (email, password_hash, is_admin, status, created_at, \
         email_skeleton) VALUES ('cat@example.com', 'h4', FALSE, 'disabled', \
         '2026-01-05 00:00:00', 'cat@example.com')",
        "INSERT INTO users (email, password_hash, is_admin, status, created_at, \
         email_skeleton) VALUES ('gone@example.com', 'h5', FALSE, 'pending', \
         '2026-01-06 00:00:00', 'gone@example.com')",
        "DELETE FROM users WHERE email = 'gone@example.com'",
        "INSERT INTO device_tokens (token_hash, user_id, created_at, last_used_at) VALUES \
         ('device-of-ann', 2, '2026-01-07 00:00:00', '2026-01-07 00:00:00')",
        "INSERT INTO invitations (code_hash, created_at, created_by, expires_at, max_uses) \
         VALUES ('code-hash', '2026-01-08 00:00:00', 1, '2027-01-08 00:00:00', 5)",
    ];
    let db = {
        // Through a database opened at the old version's schema would migrate it; stage
        // the rows on a plain connection instead.
        let staged = empty.url_string();
        stage(backend, &staged, &old);
        empty.open()
    };

    let users = db
        .read_with(|repo| repo.list(&UserQuery::default()))
        .unwrap();
    let seen: Vec<(i64, &str, UserStatus, bool)> = users
        .items
        .iter()
        .map(|u| (u.id.get(), u.email.as_str(), u.status, u.is_admin))
        .collect();
    assert_eq!(
        seen,
        [
            (4, "cat@example.com", UserStatus::Disabled, false),
            (3, "bob@example.com", UserStatus::Pending, false),
            (2, "ann@example.com", UserStatus::Approved, false),
            (1, "admin@example.com", UserStatus::Approved, true),
        ]
    );
    let ann = &users.items[2];
    assert_eq!(ann.approved_by, Some(UserId::new(1).unwrap()));
    assert_eq!(ann.token_version, 4);
    assert_eq!(ann.password_hash, PasswordHash::new("h2".into()));
    assert_eq!(
        (ann.reason.as_deref(), ann.email_verified, ann.mfa_enabled),
        (None, false, false)
    );
    assert_eq!(
        (
            ann.rejected_at,
            ann.rejected_by,
            ann.decision_note.as_deref()
        ),
        (None, None, None)
    );

    // Totals (kept by triggers on the old table) still add up, and follow new changes.
    let count = |status| db.read_with(|repo| repo.count_with_status(status)).unwrap();
    assert_eq!(count(UserStatus::Pending), 1);
    assert_eq!(count(UserStatus::Approved), 2);
    let mut bob = users.items[1].clone();
    bob.status = UserStatus::Rejected;
    db.write_with(|repo| repo.update(&bob)).unwrap();
    assert_eq!(
        (count(UserStatus::Pending), count(UserStatus::Rejected)),
        (0, 1)
    );

    // The deleted user's id stays used.
    let new = db
        .write_with(|repo| {
            repo.insert(NewUser {
                email: Email::parse("dan@example.com").unwrap(),
                password_hash: PasswordHash::new("h6".into()),
                is_admin: false,
                status: UserStatus::Pending,
                created_at: gatehouse_domain::now(),
                approved_at: None,
                approved_by: None,
                reason: Some("new here".into()),
                email_verified: false,
            })
        })
        .unwrap();
    assert_eq!(new.id.get(), 6, "ids are never handed out twice");

    // The email search follows the rebuilt table, old rows and new.
    let found = |needle: &str| {
        db.read_with(|repo| {
            repo.list(&UserQuery {
                email_contains: Some(needle.into()),
                ..UserQuery::default()
            })
        })
        .unwrap()
        .items
        .into_iter()
        .map(|u| u.id.get())
        .collect::<Vec<_>>()
    };
    assert_eq!(found("ann@"), [2]);
    assert_eq!(found("dan@"), [6]);
    assert_eq!(found("example.com").len(), 5);

    // Foreign keys still hold: deleting Ann takes her device token; deleting the admin
    // clears what named them.
    assert_eq!(
        db.read_with(|repo| repo.device_owner("device-of-ann"))
            .unwrap(),
        Some(UserId::new(2).unwrap())
    );
    db.write_with(|repo| repo.delete(UserId::new(2).unwrap()))
        .unwrap();
    assert_eq!(
        db.read_with(|repo| repo.device_owner("device-of-ann"))
            .unwrap(),
        None
    );
    let mut cat = users.items[0].clone();
    cat.approved_by = Some(UserId::new(1).unwrap());
    cat.rejected_by = Some(UserId::new(1).unwrap());
    db.write_with(|repo| repo.update(&cat)).unwrap();
    let mut admin = users.items[3].clone();
    admin.is_admin = false;
    db.write_with(|repo| repo.delete(admin.id)).unwrap();
    let cat = db
        .read_with(|repo| repo.find_by_id(UserId::new(4).unwrap()))
        .unwrap()
        .unwrap();
    assert_eq!((cat.approved_by, cat.rejected_by), (None, None));
    let invitation = db
        .read_with(|repo| repo.find_invitation(1))
        .unwrap()
        .unwrap();
    assert_eq!(invitation.created_by, None);
    if backend == TestBackend::Sqlite {
        assert_eq!(db.sqlite_pragma("foreign_keys"), "1");
    }
}

/// The last migration before the outbox's deliveries carried their events.
const BEFORE_LEAN_OUTBOX: &str = "20261211000000";

/// The outbox's migration to deliveries that carry their event: every delivery keeps its
/// id, state, event id, type and payload; a pending one is still claimed and sent with its
/// payload; ids are never handed out twice (a deleted last one stays used); and events,
/// deliveries and pruning work as before.
fn upgrading_keeps_every_delivery_and_its_event(backend: TestBackend) {
    use chrono::{Duration, TimeZone, Utc};
    use gatehouse_domain::{DeliveryStatus, EventType, NewEvent, PageQuery};

    let empty = EmptyDatabase::new(backend);
    empty.migrate_until(BEFORE_LEAN_OUTBOX);
    let old = [
        "INSERT INTO webhooks (url, events, description, secret, active, created_at, \
         updated_at) VALUES ('https://hooks.example.com/', '*', NULL, \
         'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', TRUE, '2026-01-01 00:00:00', \
         '2026-01-01 00:00:00')",
        "INSERT INTO events (id, type, payload, created_at) VALUES \
         ('msg_00000000000000000000000000000001', 'user.created', '{\"n\":\"ü\"}', \
         '2026-01-02 00:00:00'), \
         ('msg_00000000000000000000000000000002', 'user.approved', '{\"n\":2}', \
         '2026-01-03 00:00:00')",
        "INSERT INTO webhook_deliveries (webhook_id, event_id, status, attempts, \
         next_attempt_at, last_attempt_at, last_status_code, created_at) VALUES \
         (1, 'msg_00000000000000000000000000000001', 'delivered', 2, NULL, \
         '2026-01-02 00:01:00', 200, '2026-01-02 00:00:00')",
        "INSERT INTO webhook_deliveries (webhook_id, event_id, status, attempts, \
         next_attempt_at, last_attempt_at, last_status_code, last_error, created_at) VALUES \
         (1, 'msg_00000000000000000000000000000002', 'pending', 1, '2026-01-03 00:05:00', \
         '2026-01-03 00:00:00', 503, 'the receiver answered 503', '2026-01-03 00:00:00')",
        "INSERT INTO webhook_deliveries (webhook_id, event_id, status, attempts, \
         next_attempt_at, created_at) VALUES \
         (1, 'msg_00000000000000000000000000000002', 'pending', 0, '2026-01-03 00:00:00', \
         '2026-01-03 00:00:00')",
        "DELETE FROM webhook_deliveries WHERE id = 3",
    ];
    stage(backend, &empty.url_string(), &old);
    let db = empty.open();

    let all = PageQuery {
        limit: None,
        offset: 0,
    };
    let log = db.read_with(|repo| repo.list_deliveries(1, &all)).unwrap();
    let seen: Vec<_> = log
        .items
        .iter()
        .map(|d| {
            (
                d.id,
                d.event_id.as_str(),
                d.event_type.as_str(),
                d.status,
                d.attempts,
                d.last_status_code,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                2,
                "msg_00000000000000000000000000000002",
                "user.approved",
                DeliveryStatus::Pending,
                1,
                Some(503)
            ),
            (
                1,
                "msg_00000000000000000000000000000001",
                "user.created",
                DeliveryStatus::Delivered,
                2,
                Some(200)
            ),
        ]
    );
    assert_eq!(
        log.items[0].last_error.as_deref(),
        Some("the receiver answered 503")
    );
    let due_at = Utc.with_ymd_and_hms(2026, 1, 3, 0, 5, 0).unwrap();
    assert_eq!(log.items[0].next_attempt_at, Some(due_at));

    // The pending one is claimed with its payload.
    let claimed = db
        .write_with(|repo| repo.claim_deliveries(due_at, due_at + Duration::minutes(1), 10))
        .unwrap();
    let claimed: Vec<(i64, &str, &str)> = claimed
        .iter()
        .map(|d| (d.id, d.url.as_str(), d.payload.as_str()))
        .collect();
    assert_eq!(claimed, [(2, "https://hooks.example.com/", r#"{"n":2}"#)]);

    // A new event's delivery takes the next id never used.
    let event = NewEvent {
        id: "msg_00000000000000000000000000000003".into(),
        event_type: EventType::UserDeleted,
        at: gatehouse_domain::now(),
        payload: "{}".into(),
        only_webhook: None,
    };
    assert_eq!(db.write_with(|repo| repo.append_event(&event)).unwrap(), 1);
    let newest = db
        .read_with(|repo| repo.list_deliveries(1, &all))
        .unwrap()
        .items
        .remove(0);
    assert_eq!(
        (newest.id, newest.event_type.as_str()),
        (4, "user.deleted"),
        "ids are never handed out twice"
    );

    // Pruning takes the old settled delivery and leaves the pending one.
    assert_eq!(
        db.write_with(|repo| repo.prune_deliveries(gatehouse_domain::now() - Duration::days(1)))
            .unwrap(),
        1
    );
    let left: Vec<i64> = db
        .read_with(|repo| repo.list_deliveries(1, &all))
        .unwrap()
        .items
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(left, [4, 2]);
}

/// Runs `statements` on a plain connection to `url` (not through `Database`, which would
/// migrate the database first).
fn stage(backend: TestBackend, url: &str, statements: &[&str]) {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let sql = statements.join(";\n");
    match backend {
        TestBackend::Sqlite => {
            let path = url.strip_prefix("sqlite://").unwrap();
            let mut conn = diesel::SqliteConnection::establish(path).unwrap();
            conn.batch_execute(&format!("PRAGMA foreign_keys = ON; {sql}"))
                .unwrap();
        }
        TestBackend::Postgres => {
            let mut conn = diesel::PgConnection::establish(url).unwrap();
            conn.batch_execute(&sql).unwrap();
        }
    }
}

gatehouse_storage::backend_tests!(
    upgrading_keeps_users_their_ids_and_everything_that_hangs_off_them
);
gatehouse_storage::backend_tests!(upgrading_keeps_every_delivery_and_its_event);
