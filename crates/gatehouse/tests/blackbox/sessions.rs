//! Sessions from outside (API.md, "Sessions and refresh tokens"): the real binary's token
//! responses and refreshes at the configured lifetimes, 16 racers on one refresh token,
//! two instances on one PostgreSQL refreshing one session alternately, and sessions that
//! hold across a restart.

use std::sync::Arc;

use gatehouse_storage::testing::{needs_postgres, race, EmptyDatabase, TestBackend};
use serde_json::Value;

use crate::cli::gatehouse;
use crate::server::{Reply, Server};

const PASSWORD: &str = "tr0mbone-kettle";
const ADMIN: &str = "admin@example.com";

fn login(server: &Server) -> Value {
    let reply = server.login(ADMIN, PASSWORD);
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body
}

fn refresh(server: &Server, token: &str) -> Reply {
    server.post_form(
        "/api/auth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
}

fn refresh_token(tokens: &Value) -> &str {
    tokens["refresh_token"].as_str().expect("a refresh token")
}

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().expect("an access token")
}

fn assert_invalid_grant(reply: &Reply, context: &str) {
    assert_eq!(reply.status, 400, "{context}: {reply:?}");
    assert_eq!(reply.body["code"], "invalid_grant", "{context}");
    assert_eq!(reply.body["error"], "invalid_grant", "{context}");
}

/// The lifetimes come from the environment; a refresh rotates; a replay ends the session;
/// the session outlives a restart (it is in the database).
fn refresh_rotates_at_the_configured_lifetimes(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let env = [
        ("GATEHOUSE_TOKEN_TTL", "2m"),
        ("GATEHOUSE_SESSION_IDLE_TTL", "1h"),
        ("GATEHOUSE_SESSION_MAX_AGE", "2h"),
    ];
    let server = Server::start(&db, &env);
    assert_eq!(server.register(ADMIN, PASSWORD).status, 201);
    let tokens = login(&server);
    assert_eq!(tokens["expires_in"], 120);
    assert_eq!(tokens["refresh_expires_in"], 3600);
    let next = refresh(&server, refresh_token(&tokens));
    assert_eq!(next.status, 200, "{next:?}");
    assert_eq!(next.header("cache-control"), Some("no-store"));
    let next = next.body;
    drop(server);
    // Another process on the same database: the session and its tokens carry over.
    let server = Server::start(&db, &env);
    assert_eq!(
        server.get("/api/auth/me", Some(access(&next))).status,
        200,
        "after a restart"
    );
    let after = refresh(&server, refresh_token(&next));
    assert_eq!(after.status, 200, "{after:?}");
    assert_invalid_grant(&refresh(&server, refresh_token(&tokens)), "a replay");
    assert_eq!(
        server.get("/api/auth/me", Some(access(&after.body))).status,
        401,
        "the replay ended the session"
    );
    let audit = server.get(
        "/api/auth/audit?action=refresh_token_reused",
        Some(access(&login(&server))),
    );
    assert_eq!(audit.header("x-total-count"), Some("1"), "{audit:?}");
}

/// 16 concurrent refreshes with one token: exactly one gets a pair.
fn sixteen_racers_on_one_refresh_token_get_one_pair(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let server = Arc::new(Server::start(&db, &[]));
    assert_eq!(server.register(ADMIN, PASSWORD).status, 201);
    let token = refresh_token(&login(&server)).to_owned();
    let replies = {
        let server = server.clone();
        race(16, move |_| refresh(&server, &token))
    };
    let won = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        won,
        1,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for lost in replies.iter().filter(|r| r.status != 200) {
        assert_invalid_grant(lost, "a racer that lost");
    }
}

/// Two instances on one PostgreSQL, one session refreshed on each in turn: every refresh
/// sees the other instance's rotation, and a token spent on one is spent on the other.
#[needs_postgres]
#[test]
fn two_instances_refresh_one_session_alternately() {
    let db = EmptyDatabase::new(TestBackend::Postgres);
    let spawned: Vec<_> = (0..2)
        .map(|_| Server::spawn(&db.url_string(), &[]))
        .collect();
    let servers: Vec<Server> = spawned
        .into_iter()
        .map(Server::wait_until_listening)
        .collect();
    assert_eq!(servers[0].register(ADMIN, PASSWORD).status, 201);
    let mut tokens = login(&servers[0]);
    let mut spent = Vec::new();
    for round in 0..20 {
        let server = &servers[round % 2];
        let reply = refresh(server, refresh_token(&tokens));
        assert_eq!(reply.status, 200, "round {round}: {reply:?}");
        spent.push(refresh_token(&tokens).to_owned());
        tokens = reply.body;
        let other = &servers[(round + 1) % 2];
        assert_eq!(
            other.get("/api/auth/me", Some(access(&tokens))).status,
            200,
            "round {round}: the other instance takes the new access token"
        );
    }
    // Ending the session on one instance ends it on the other at once.
    let sessions = servers[1].get("/api/auth/me/sessions", Some(access(&tokens)));
    assert_eq!(sessions.header("x-total-count"), Some("1"), "{sessions:?}");
    let reply = servers[1].send_json(
        "POST",
        "/api/auth/logout",
        Some(access(&tokens)),
        &serde_json::json!({}),
    );
    assert_eq!(reply.status, 204, "{reply:?}");
    assert_eq!(
        servers[0].get("/api/auth/me", Some(access(&tokens))).status,
        401
    );
    assert_invalid_grant(
        &refresh(&servers[0], refresh_token(&tokens)),
        "a logged-out session on the other instance",
    );
    assert_invalid_grant(&refresh(&servers[0], &spent[3]), "an old spent token");
}

/// The operator signs a user out everywhere from the command line.
fn the_command_line_signs_a_user_out_everywhere(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let server = Server::start(&db, &[]);
    assert_eq!(server.register(ADMIN, PASSWORD).status, 201);
    let (one, two) = (login(&server), login(&server));
    let line = gatehouse(&db, &["users", "sign-out", ADMIN]);
    assert_eq!(line.code, 0, "{line:?}");
    assert!(line.stdout.contains("2 sessions ended"), "{line:?}");
    for tokens in [&one, &two] {
        assert_eq!(server.get("/api/auth/me", Some(access(tokens))).status, 401);
        assert_invalid_grant(&refresh(&server, refresh_token(tokens)), "signed out");
    }
    let json = gatehouse(&db, &["users", "sign-out", "1", "--json"]).json();
    assert_eq!(json["email"], ADMIN, "{json}");
    gatehouse(&db, &["users", "sign-out", "nobody@example.com"]).refused("User not found");
    assert_eq!(
        login(&server)["token_type"],
        "bearer",
        "they may log in again"
    );
}

gatehouse_storage::backend_tests!(
    the_command_line_signs_a_user_out_everywhere,
    refresh_rotates_at_the_configured_lifetimes,
    sixteen_racers_on_one_refresh_token_get_one_pair,
);
