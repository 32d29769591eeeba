//! The README's walk-through, restarts, crashes and races against the real binary.

use std::sync::{Arc, Barrier};
use std::thread;

use serde_json::json;

use gatehouse_storage::testing::{EmptyDatabase, TestBackend};

use crate::server::Server;

const ADMIN: (&str, &str) = ("admin@example.com", "correct horse battery");
const USER: (&str, &str) = ("ada@example.com", "analytical engine");

fn the_readme_walkthrough(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let server = Server::start(&db, &[]);

    let admin = server.register(ADMIN.0, ADMIN.1);
    assert_eq!(admin.status, 201, "{admin:?}");
    assert_eq!(admin.body["is_admin"], true);
    assert_eq!(admin.body["status"], "approved");

    let user = server.register(USER.0, USER.1);
    assert_eq!(user.status, 201);
    assert_eq!(user.body["status"], "pending");
    let user_id = user.body["id"].as_i64().unwrap();

    let pending = server.login(USER.0, USER.1);
    assert_eq!(pending.status, 403);
    assert_eq!(pending.body["detail"], "Account pending approval");

    let admin_token = server.token(ADMIN.0, ADMIN.1);
    let count = server.get("/api/auth/users/pending/count", Some(&admin_token));
    assert_eq!(count.body, json!({"count": 1}));
    let approved = server.send_json(
        "PUT",
        &format!("/api/auth/users/{user_id}"),
        Some(&admin_token),
        &json!({"status": "approved"}),
    );
    assert_eq!(approved.status, 200, "{approved:?}");
    assert_eq!(approved.body["approved_by"], admin.body["id"]);

    let login = server.login(USER.0, USER.1);
    assert_eq!(login.status, 200);
    assert_eq!(login.body["token_type"], "bearer");
    assert_eq!(login.body["expires_in"], 7 * 24 * 3600);
    let token = login.body["access_token"].as_str().unwrap();
    let me = server.get("/api/auth/me", Some(token));
    assert_eq!(me.status, 200);
    assert_eq!(me.body["email"], USER.0);
    assert_eq!(me.header("cache-control"), Some("no-store"));

    let users = server.get("/api/auth/users", Some(&admin_token));
    assert_eq!(users.header("x-total-count"), Some("2"));
    assert_eq!(server.get("/healthz", None).status, 200);
    assert_eq!(server.get("/readyz", None).status, 200);

    // Nothing secret reached the log: no password, token or hash.
    let log = server.log_once_it_has("path=/readyz");
    assert!(log.contains("/api/auth/me"), "requests are logged:\n{log}");
    for secret in [ADMIN.1, USER.1, token, admin_token.as_str(), "$2b$"] {
        assert!(!log.contains(secret), "{secret:?} appears in the log");
    }
}

fn a_restart_keeps_users_and_tokens_and_sigterm_exits_cleanly(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let server = Server::start(&db, &[]);
    assert_eq!(server.register(ADMIN.0, ADMIN.1).status, 201);
    let token = server.token(ADMIN.0, ADMIN.1);
    let status = server.stop();
    assert!(status.success(), "SIGTERM should exit 0, got {status:?}");

    // No GATEHOUSE_JWT_SECRET: the generated one was stored and is used again.
    let server = Server::start(&db, &[]);
    let me = server.get("/api/auth/me", Some(&token));
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.body["email"], ADMIN.0);
    assert_eq!(server.register(USER.0, USER.1).body["status"], "pending");
    assert_eq!(server.register(ADMIN.0, "another password").status, 409);
}

fn a_configured_secret_is_used_and_changing_it_invalidates_tokens(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let secret_a = "a".repeat(32);
    let server = Server::start(&db, &[("GATEHOUSE_JWT_SECRET", &secret_a)]);
    server.register(ADMIN.0, ADMIN.1);
    let token = server.token(ADMIN.0, ADMIN.1);
    drop(server);
    let server = Server::start(&db, &[("GATEHOUSE_JWT_SECRET", &"b".repeat(32))]);
    assert_eq!(server.get("/api/auth/me", Some(&token)).status, 401);
    drop(server);
    let server = Server::start(&db, &[("GATEHOUSE_JWT_SECRET", &secret_a)]);
    assert_eq!(server.get("/api/auth/me", Some(&token)).status, 200);
}

fn an_acknowledged_registration_survives_kill_9(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let server = Server::start(&db, &[]);
    for i in 0..5 {
        assert_eq!(
            server
                .register(&format!("u{i}@example.com"), "tr0mbone-kettle")
                .status,
            201
        );
    }
    server.kill9();
    let server = Server::start(&db, &[]);
    let token = server.token("u0@example.com", "tr0mbone-kettle");
    let users = server.get("/api/auth/users", Some(&token));
    assert_eq!(users.header("x-total-count"), Some("5"), "{users:?}");
}

fn concurrent_registrations_on_an_empty_database_make_one_admin(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let server = Arc::new(Server::start(&db, &[]));
    let barrier = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let (server, barrier) = (server.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                server.register(&format!("racer{i}@example.com"), "tr0mbone-kettle")
            })
        })
        .collect();
    let replies: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(replies.iter().all(|r| r.status == 201), "{replies:?}");
    let admins: Vec<_> = replies
        .iter()
        .filter(|r| r.body["is_admin"] == true)
        .collect();
    assert_eq!(admins.len(), 1, "{admins:?}");

    let same: Vec<_> = (0..8)
        .map(|_| {
            let server = server.clone();
            thread::spawn(move || {
                server
                    .register("same@example.com", "tr0mbone-kettle")
                    .status
            })
        })
        .collect();
    let mut statuses: Vec<u16> = same.into_iter().map(|h| h.join().unwrap()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
}

gatehouse_storage::backend_tests!(
    the_readme_walkthrough,
    a_restart_keeps_users_and_tokens_and_sigterm_exits_cleanly,
    a_configured_secret_is_used_and_changing_it_invalidates_tokens,
    an_acknowledged_registration_survives_kill_9,
    concurrent_registrations_on_an_empty_database_make_one_admin,
);
