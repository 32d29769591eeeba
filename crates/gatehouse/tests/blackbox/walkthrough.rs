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

    let user = server.send_json(
        "POST",
        "/api/auth/register",
        None,
        &json!({"email": USER.0, "password": USER.1, "reason": "I run the lab wiki"}),
    );
    assert_eq!(user.status, 201);
    assert_eq!(user.body["status"], "pending");
    assert_eq!(user.body["reason"], "I run the lab wiki");
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
    assert_eq!(login.body["expires_in"], 15 * 60);
    let token = login.body["access_token"].as_str().unwrap();
    let me = server.get("/api/auth/me", Some(token));
    assert_eq!(me.status, 200);
    assert_eq!(me.body["email"], USER.0);
    assert_eq!(me.header("cache-control"), Some("no-store"));
    let refresh = login.body["refresh_token"].as_str().unwrap();
    let next = server.post_form(
        "/api/auth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    );
    assert_eq!(next.status, 200, "{next:?}");
    assert_eq!(next.body["token_type"], "bearer");
    assert_eq!(next.body["expires_in"], 15 * 60);
    assert_eq!(next.body["refresh_expires_in"], 30 * 86_400);
    assert_ne!(next.body["refresh_token"].as_str(), Some(refresh));
    let sessions = server.get("/api/auth/me/sessions", Some(token));
    assert_eq!(sessions.status, 200, "{sessions:?}");
    let listed = sessions.body.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{sessions:?}");
    assert_eq!(listed[0]["current"], true);
    assert_eq!(listed[0]["address"], "127.0.0.1");

    // Eve is turned down with a note, and sees it at login.
    let eve = server.register("eve@example.com", "not so sure now");
    assert_eq!(eve.body["id"], 3);
    let rejected = server.send_json(
        "PUT",
        "/api/auth/users/3",
        Some(&admin_token),
        &json!({"status": "rejected", "note": "Members only."}),
    );
    assert_eq!(rejected.status, 200, "{rejected:?}");
    let refused = server.login("eve@example.com", "not so sure now");
    assert_eq!(
        (refused.status, refused.body.clone()),
        (
            403,
            json!({"detail": "Registration rejected", "code": "account_rejected", "note": "Members only."})
        )
    );

    // Bob and Cy, approved together.
    for who in ["bob", "cy"] {
        assert_eq!(
            server
                .register(&format!("{who}@example.com"), "tr0mbone-kettle")
                .status,
            201
        );
    }
    let decided = server.send_json(
        "POST",
        "/api/auth/users/decisions",
        Some(&admin_token),
        &json!({"ids": [4, 5], "decision": "approve"}),
    );
    assert_eq!(decided.status, 200, "{decided:?}");
    assert_eq!(decided.body[0]["id"], 4);
    assert_eq!(decided.body[1]["status"], "approved");

    // Sam comes with an invitation for their address.
    let invitation = server.send_json(
        "POST",
        "/api/auth/invitations",
        Some(&admin_token),
        &json!({"email": "sam@example.com", "expires_in": "7d"}),
    );
    assert_eq!(invitation.status, 201, "{invitation:?}");
    let code = invitation.body["code"].as_str().unwrap().to_owned();
    let sam = server.send_json(
        "POST",
        "/api/auth/register",
        None,
        &json!({"email": "sam@example.com", "password": "tr0mbone-kettle", "invitation": code}),
    );
    assert_eq!(sam.status, 201, "{sam:?}");
    assert_eq!(
        (
            sam.body["id"].clone(),
            sam.body["status"].clone(),
            sam.body["approved_by"].clone(),
            sam.body["email_verified"].clone()
        ),
        (
            json!(6),
            json!("approved"),
            admin.body["id"].clone(),
            json!(true)
        )
    );

    let users = server.get("/api/auth/users", Some(&admin_token));
    assert_eq!(users.header("x-total-count"), Some("6"));
    assert_eq!(server.get("/healthz", None).status, 200);
    assert_eq!(server.get("/readyz", None).status, 200);

    // Nothing secret reached the log: no password, token or hash.
    let log = server.log_once_it_has("path=/readyz");
    assert!(log.contains("/api/auth/me"), "requests are logged:\n{log}");
    for secret in [
        ADMIN.1,
        USER.1,
        token,
        admin_token.as_str(),
        "$2b$",
        code.as_str(),
    ] {
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
