//! Passkeys from outside (API.md, "Multi-factor sign-in"): the real binary with
//! `GATEHOUSE_PUBLIC_URL=http://localhost:{port}`, a software authenticator speaking the
//! WebAuthn JSON over HTTP (the client reaches the server at 127.0.0.1), on both backends;
//! and the start-up's refusal of a relying party that cannot be.

use gatehouse_http::testing::SoftAuthenticator;
use gatehouse_storage::testing::{EmptyDatabase, TestBackend};
use serde_json::{json, Value};

use crate::server::{Server, TempDb};

const PASSWORD: &str = "tr0mbone-kettle";
const ADMIN: &str = "admin@example.com";

/// A port that was free a moment ago (the server binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// A server whose public URL is `http://localhost:{port}` (passkeys on), and that origin.
fn start_at_localhost(db: &EmptyDatabase) -> (Server, String) {
    let port = free_port();
    let origin = format!("http://localhost:{port}");
    let bind = format!("127.0.0.1:{port}");
    let server = Server::start(
        db,
        &[
            ("GATEHOUSE_BIND", bind.as_str()),
            ("GATEHOUSE_PUBLIC_URL", origin.as_str()),
        ],
    );
    (server, origin)
}

/// Registers a passkey, signs in with it (twice: the counter moves on), deletes it.
fn a_passkey_registers_and_signs_in_over_http(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let (server, origin) = start_at_localhost(&db);
    assert_eq!(server.register(ADMIN, PASSWORD).status, 201);
    let admin = server.token(ADMIN, PASSWORD);

    let start = server.send_json(
        "POST",
        "/api/auth/me/passkeys/register/start",
        Some(&admin),
        &json!({}),
    );
    assert_eq!(start.status, 200, "{start:?}");
    assert_eq!(
        start.body["publicKey"]["rp"]["id"], "localhost",
        "{start:?}"
    );
    let mut authenticator = SoftAuthenticator::new();
    let credential = authenticator.create_json(&origin, &start.body);
    let finish = server.send_json(
        "POST",
        "/api/auth/me/passkeys/register/finish",
        Some(&admin),
        &json!({"name": "Test key", "credential": credential}),
    );
    assert_eq!(finish.status, 201, "{finish:?}");
    assert_eq!(finish.body["name"], "Test key");
    let me = server.get("/api/auth/me", Some(&admin));
    assert_eq!(me.body["mfa_enabled"], true, "{me:?}");

    for _ in 0..2 {
        let start = server.send_json("POST", "/api/auth/login/passkey/start", None, &json!({}));
        assert_eq!(start.status, 200, "{start:?}");
        let assertion = authenticator.get_json(&origin, &start.body["publicKey"]);
        let login = server.send_json(
            "POST",
            "/api/auth/login/passkey/finish",
            None,
            &json!({"challenge_id": start.body["challenge_id"], "credential": assertion}),
        );
        assert_eq!(login.status, 200, "{login:?}");
        let token = login.body["access_token"].as_str().expect("a token");
        let me = server.get("/api/auth/me", Some(token));
        assert_eq!(me.body["email"], ADMIN, "{me:?}");
        // The challenge is spent.
        let again = server.send_json(
            "POST",
            "/api/auth/login/passkey/finish",
            None,
            &json!({"challenge_id": start.body["challenge_id"], "credential": assertion}),
        );
        assert_eq!(again.status, 401, "{again:?}");
        assert_eq!(again.body["code"], "invalid_credential", "{again:?}");
    }

    let listed = server.get("/api/auth/me/passkeys", Some(&admin));
    assert_eq!(listed.status, 200, "{listed:?}");
    let passkeys = listed.body.as_array().expect("a list");
    assert_eq!(passkeys.len(), 1, "{listed:?}");
    assert!(passkeys[0]["last_used_at"].is_string(), "{listed:?}");
    let id = &passkeys[0]["id"];
    let deleted = server.send_json(
        "DELETE",
        &format!("/api/auth/me/passkeys/{id}"),
        Some(&admin),
        &Value::Null,
    );
    assert_eq!(deleted.status, 204, "{deleted:?}");
    let me = server.get("/api/auth/me", Some(&admin));
    assert_eq!(me.body["mfa_enabled"], false, "{me:?}");
}

/// Without a public URL the passkey routes are not enabled.
fn without_a_public_url_passkeys_are_not_enabled(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let server = Server::start(&db, &[]);
    let start = server.send_json("POST", "/api/auth/login/passkey/start", None, &json!({}));
    assert_eq!(start.status, 404, "{start:?}");
    assert_eq!(start.body["code"], "not_enabled", "{start:?}");
}

/// Registered passkeys and no relying party any more (the public URL was dropped): start-up
/// refuses, saying what to set or how to remove them; once they are reset it starts.
fn registered_passkeys_without_a_relying_party_stop_start_up(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let (server, origin) = start_at_localhost(&db);
    assert_eq!(server.register(ADMIN, PASSWORD).status, 201);
    let admin = server.token(ADMIN, PASSWORD);
    let start = server.send_json(
        "POST",
        "/api/auth/me/passkeys/register/start",
        Some(&admin),
        &json!({}),
    );
    let credential = SoftAuthenticator::new().create_json(&origin, &start.body);
    let finish = server.send_json(
        "POST",
        "/api/auth/me/passkeys/register/finish",
        Some(&admin),
        &json!({"name": "Test key", "credential": credential}),
    );
    assert_eq!(finish.status, 201, "{finish:?}");
    server.stop();

    let url = db.url_string();
    let (code, _stdout, stderr) = crate::server::run(
        &["serve"],
        &[
            ("GATEHOUSE_DATABASE_URL", url.as_str()),
            ("GATEHOUSE_BIND", "127.0.0.1:0"),
        ],
    );
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("1 passkey(s) are registered")
            && stderr.contains("GATEHOUSE_PUBLIC_URL")
            && stderr.contains("reset-mfa"),
        "{stderr}"
    );

    let reset = crate::cli::gatehouse_with(&url, &["users", "reset-mfa", ADMIN], &[], "");
    assert_eq!(reset.code, 0, "{reset:?}");
    let server = Server::start(&db, &[]);
    assert_eq!(server.get("/healthz", None).status, 200);
}

gatehouse_storage::backend_tests!(
    a_passkey_registers_and_signs_in_over_http,
    without_a_public_url_passkeys_are_not_enabled,
    registered_passkeys_without_a_relying_party_stop_start_up,
);

#[test]
fn a_relying_party_that_cannot_be_stops_start_up() {
    let db = TempDb::new();
    let url = db.url();
    for (public_url, rp_id, says) in [
        (None, "example.com", "without GATEHOUSE_PUBLIC_URL"),
        (Some("https://auth.example.com"), "127.0.0.1", "IP address"),
        (Some("http://127.0.0.1:8080"), "localhost", "IP address"),
        (
            Some("https://auth.example.com"),
            "example.org",
            "parent domain",
        ),
    ] {
        let mut env = vec![
            ("GATEHOUSE_DATABASE_URL", url.as_str()),
            ("GATEHOUSE_WEBAUTHN_RP_ID", rp_id),
        ];
        if let Some(public_url) = public_url {
            env.push(("GATEHOUSE_PUBLIC_URL", public_url));
        }
        let (code, _stdout, stderr) = crate::server::run(&["serve"], &env);
        assert_eq!(code, 2, "{public_url:?} {rp_id}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].contains("GATEHOUSE_WEBAUTHN_RP_ID"), "{stderr}");
        assert!(lines[0].contains(says), "{stderr}");
    }
    assert!(!crate::server::exists(&db.path()), "nothing was created");
}
