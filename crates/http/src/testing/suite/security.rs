//! The security features: logout and password changes (revocable sessions), the block list
//! of common passwords, login and registration throttling (per account, per client address,
//! behind trusted proxies), the audit log, the JWKS document, and the security and CORS
//! headers.

use std::net::SocketAddr;

use crate::TrustedProxies;
use actix_web::test::TestRequest;
use gatehouse_domain::ThrottlePolicy;
use serde_json::{json, Value};

use crate::testing::{
    assert_client_error, assert_error, assert_problem, assert_security_headers, assert_utc_time,
    bearer, spawn_app, spawn_app_with, AppOptions, NewStore, Resp, Session, TestApp, ADMIN_EMAIL,
    FIFTEEN_MINUTES, PASSWORD,
};

const INCORRECT: &str = "Incorrect email or password";
const NOT_VALIDATED: &str = "Could not validate credentials";
const ADMIN_REQUIRED: &str = "Admin access required";
const WRONG_CURRENT: &str = "Current password is incorrect";
/// Uncommon passphrases, for password changes and resets.
const NEW_PASSWORD: &str = "a brand new password";
const ANOTHER_PASSWORD: &str = "tr0mbone-kettle";
/// The client address most tests send from.
const CLIENT: &str = "198.51.100.7";
const APP_ORIGIN: &str = "https://app.example.com";

/// A socket address of `ip` (any port: only the address counts).
fn peer(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("an IP address"), 40_000)
}

/// A form login, to be sent with a peer address or headers added.
fn login_request(username: &str, password: &str) -> TestRequest {
    TestRequest::post()
        .uri("/api/auth/login")
        .set_form([("username", username), ("password", password)])
}

fn register_request(email: &str, password: &str) -> TestRequest {
    TestRequest::post()
        .uri("/api/auth/register")
        .set_json(json!({"email": email, "password": password}))
}

/// A form login from client address `ip`.
async fn login_from(app: &TestApp, ip: &str, username: &str, password: &str) -> Resp {
    app.send(login_request(username, password).peer_addr(peer(ip)))
        .await
}

/// A form login from a trusted proxy at `proxy` that says the client is `forwarded_for`.
async fn login_via(
    app: &TestApp,
    proxy: &str,
    forwarded_for: &str,
    username: &str,
    password: &str,
) -> Resp {
    app.send(
        login_request(username, password)
            .peer_addr(peer(proxy))
            .insert_header(("X-Forwarded-For", forwarded_for)),
    )
    .await
}

fn change_password_request(token: &str, body: &Value) -> TestRequest {
    bearer(TestRequest::put().uri("/api/auth/me/password"), token).set_json(body)
}

fn logout_request(token: Option<&str>) -> TestRequest {
    let req = TestRequest::post().uri("/api/auth/logout");
    match token {
        Some(token) => bearer(req, token),
        None => req,
    }
}

/// Checks a 200 token response (a fresh bearer token) and returns the token.
fn assert_token_response(res: &Resp, context: &str) -> String {
    assert_eq!(res.status.as_u16(), 200, "{context}: {}", res.text());
    assert_security_headers(res, context);
    let body = res.json();
    let mut keys: Vec<&str> = body
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "access_token",
            "expires_in",
            "refresh_expires_in",
            "refresh_token",
            "token_type"
        ],
        "{context}"
    );
    assert_eq!(body["token_type"], "bearer", "{context}");
    assert_eq!(body["expires_in"], FIFTEEN_MINUTES, "{context}");
    body["access_token"]
        .as_str()
        .expect("a string token")
        .to_owned()
}

/// Checks a 429: code `rate_limited`, a detail saying so, and `Retry-After` as whole
/// seconds, at least 1 and at most `max`. Returns the seconds.
fn assert_throttled(res: &Resp, max: u64, context: &str) -> u64 {
    let body = assert_problem(res, 429, "rate_limited", context);
    let seconds: u64 = res
        .header("retry-after")
        .unwrap_or_else(|| panic!("{context}: a 429 says when to retry"))
        .parse()
        .unwrap_or_else(|e| panic!("{context}: Retry-After is whole seconds: {e}"));
    assert!(
        (1..=max).contains(&seconds),
        "{context}: Retry-After {seconds} is not within 1..={max}"
    );
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("Too many attempts") && detail.contains(&seconds.to_string()),
        "{context}: detail {detail:?}"
    );
    seconds
}

/// `GET /api/auth/me` answers 200 with this token.
async fn assert_token_works(app: &TestApp, token: &str, context: &str) {
    let res = app.get("/api/auth/me", Some(token)).await;
    assert_eq!(res.status.as_u16(), 200, "{context}: {}", res.text());
}

/// `GET /api/auth/me` answers 401 with this token.
async fn assert_token_refused(app: &TestApp, token: &str, context: &str) {
    let res = app.get("/api/auth/me", Some(token)).await;
    assert_error(&res, 401, "not_authenticated", NOT_VALIDATED, context);
}

/// `GET /api/auth/audit{query}` as `admin`, which must succeed: the entries and
/// `X-Total-Count`.
async fn audit(app: &TestApp, admin: &Session, query: &str) -> (Vec<Value>, u64) {
    let res = app
        .get(&format!("/api/auth/audit{query}"), Some(&admin.token))
        .await;
    let context = format!("GET /audit{query}");
    assert_eq!(res.status.as_u16(), 200, "{context}: {}", res.text());
    assert_security_headers(&res, &context);
    let total = res
        .header("x-total-count")
        .unwrap_or_else(|| panic!("{context}: X-Total-Count"))
        .parse()
        .unwrap_or_else(|e| panic!("{context}: X-Total-Count is a number: {e}"));
    let entries = res.json().as_array().expect("a JSON array").clone();
    (entries, total)
}

/// The `action` of each entry, in order.
fn actions(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["action"].as_str().expect("action is a string"))
        .collect()
}

/// An audit entry's `(action, actor_id, target_id)`.
type Deed = (String, Option<i64>, Option<i64>);

/// The [`Deed`] of each entry, in order.
fn who_did_what(entries: &[Value]) -> Vec<Deed> {
    entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().expect("action").to_owned(),
                e["actor_id"].as_i64(),
                e["target_id"].as_i64(),
            )
        })
        .collect()
}

// ---- logout -----------------------------------------------------------------------------

pub async fn logout_revokes_the_presented_token_and_only_that_one(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.approved_user(&admin, "bob@example.com").await;
    let other_token = app.token("bob@example.com", PASSWORD).await;
    assert_ne!(bob.token, other_token);

    let res = app.send(logout_request(Some(&bob.token))).await;
    assert_eq!(res.status.as_u16(), 204, "logout: {}", res.text());
    assert!(res.body.is_empty(), "a 204 has no body");
    assert_security_headers(&res, "logout");

    assert_token_refused(&app, &bob.token, "the logged-out token on /me").await;
    let again = app.send(logout_request(Some(&bob.token))).await;
    assert_error(
        &again,
        401,
        "not_authenticated",
        NOT_VALIDATED,
        "logging out twice",
    );
    assert_token_works(&app, &other_token, "bob's other token").await;
    assert_token_works(&app, &admin.token, "another user's token").await;
    // Bob can still sign in again.
    let fresh = app.token("bob@example.com", PASSWORD).await;
    assert_token_works(&app, &fresh, "a token issued after the logout").await;
}

pub async fn logout_needs_a_valid_token(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;

    let res = app.send(logout_request(None)).await;
    assert_error(
        &res,
        401,
        "not_authenticated",
        NOT_VALIDATED,
        "logout without a token",
    );
    let res = app.send(logout_request(Some("not.a.token"))).await;
    assert_error(
        &res,
        401,
        "not_authenticated",
        NOT_VALIDATED,
        "logout with a junk token",
    );
    assert_token_works(&app, &admin.token, "the admin's token is untouched").await;
}

// ---- change password --------------------------------------------------------------------

pub async fn changing_the_password_checks_the_current_one_and_the_policy(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.approved_user(&admin, "bob@example.com").await;

    let wrong = app
        .send(change_password_request(
            &bob.token,
            &json!({"current_password": "not my password", "new_password": NEW_PASSWORD}),
        ))
        .await;
    assert_error(
        &wrong,
        403,
        "invalid_password",
        WRONG_CURRENT,
        "a wrong current password",
    );
    assert_eq!(
        wrong.header("www-authenticate"),
        None,
        "a wrong current password is no token problem"
    );

    for common in ["password123", "qwertyuiop", "Iloveyou123"] {
        let res = app
            .send(change_password_request(
                &bob.token,
                &json!({"current_password": PASSWORD, "new_password": common}),
            ))
            .await;
        let body = assert_problem(&res, 422, "weak_password", common);
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("too common")),
            "{common}: the detail says why: {body}"
        );
        assert_eq!(body["errors"][0]["field"], "new_password", "{common}");
    }

    let short = app
        .send(change_password_request(
            &bob.token,
            &json!({"current_password": PASSWORD, "new_password": "short"}),
        ))
        .await;
    let body = assert_problem(&short, 422, "validation_error", "a too short password");
    assert_eq!(body["errors"][0]["field"], "new_password");

    for (what, body) in [
        (
            "an unknown field",
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD}),
        ),
        ("a missing field", json!({"new_password": NEW_PASSWORD})),
        (
            "a wrong type",
            json!({"current_password": PASSWORD, "new_password": 12_345_678}),
        ),
    ] {
        let res = app.send(change_password_request(&bob.token, &body)).await;
        assert_problem(&res, 422, "validation_error", what);
    }

    let no_token = app
        .put_json(
            "/api/auth/me/password",
            None,
            &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_error(
        &no_token,
        401,
        "not_authenticated",
        NOT_VALIDATED,
        "no token",
    );

    // Nothing of that changed anything.
    assert_token_works(&app, &bob.token, "bob's token after refused changes").await;
    app.token("bob@example.com", PASSWORD).await;
    let res = app.login_form("bob@example.com", "password123").await;
    assert_error(
        &res,
        401,
        "invalid_credentials",
        INCORRECT,
        "a refused password",
    );
}

pub async fn changing_the_password_revokes_every_older_token_and_returns_a_fresh_one(
    new_store: &NewStore,
) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.approved_user(&admin, "bob@example.com").await;
    let other_token = app.token("bob@example.com", PASSWORD).await;

    let res = app
        .send(change_password_request(
            &bob.token,
            &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        ))
        .await;
    let new_token = assert_token_response(&res, "a password change");
    assert_ne!(new_token, bob.token);

    assert_token_refused(&app, &bob.token, "the token that changed the password").await;
    assert_token_refused(&app, &other_token, "bob's other older token").await;
    assert_token_works(&app, &new_token, "the fresh token").await;
    assert_token_works(&app, &admin.token, "another user's token").await;

    let old = app.login_form("bob@example.com", PASSWORD).await;
    assert_error(
        &old,
        401,
        "invalid_credentials",
        INCORRECT,
        "the old password",
    );
    let token = app.token("bob@example.com", NEW_PASSWORD).await;
    assert_token_works(&app, &token, "a login with the new password").await;

    let (entries, total) = audit(&app, &admin, "?action=password_changed").await;
    assert_eq!(total, 1);
    assert_eq!(
        who_did_what(&entries),
        [("password_changed".to_owned(), Some(bob.id), Some(bob.id))]
    );
}

// ---- password policy --------------------------------------------------------------------

pub async fn common_passwords_are_refused_at_registration_whatever_their_case(
    new_store: &NewStore,
) {
    let app = spawn_app(new_store()).await;

    for common in ["password1", "iloveyou123", "PassWord1", "QWERTYUIOP"] {
        let res = app.register(ADMIN_EMAIL, common).await;
        let body = assert_problem(&res, 422, "weak_password", common);
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("too common"),
            "{common}: the detail says why: {detail:?}"
        );
        assert_eq!(body["errors"][0]["field"], "password", "{common}");
    }
    // A too-short password is a plain validation error, not a weak one.
    let res = app.register(ADMIN_EMAIL, "pass").await;
    assert_problem(&res, 422, "validation_error", "a short password");

    // None of those created a user: the first to succeed is still the first-admin.
    let res = app.register(ADMIN_EMAIL, "analytical engine").await;
    assert_eq!(
        res.status.as_u16(),
        201,
        "an uncommon passphrase: {}",
        res.text()
    );
    assert_eq!(res.json()["is_admin"], true);
    app.token(ADMIN_EMAIL, "analytical engine").await;
}

pub async fn an_admin_reset_to_a_common_password_is_refused(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.approved_user(&admin, "bob@example.com").await;
    let path = format!("/api/auth/users/{}/reset-password", bob.id);

    for common in ["password123", "Sunshine1"] {
        let res = app
            .post_json(&path, Some(&admin.token), &json!({"password": common}))
            .await;
        let body = assert_problem(&res, 422, "weak_password", common);
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("too common")),
            "{common}: {body}"
        );
    }
    // Refused resets left bob's password and token alone.
    assert_token_works(&app, &bob.token, "bob's token after refused resets").await;

    let res = app
        .post_json(
            &path,
            Some(&admin.token),
            &json!({"password": ANOTHER_PASSWORD}),
        )
        .await;
    assert_eq!(
        res.status.as_u16(),
        200,
        "an uncommon password: {}",
        res.text()
    );
    assert_eq!(
        res.json(),
        json!({"message": "Password reset successfully"})
    );
    assert_token_refused(&app, &bob.token, "bob's token after the reset").await;
    app.token("bob@example.com", ANOTHER_PASSWORD).await;
}

// ---- throttling -------------------------------------------------------------------------

pub async fn five_failures_lock_an_account_known_or_not_alike_until_the_backoff_passes(
    new_store: &NewStore,
) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.approved_user(&admin, "bob@example.com").await;
    let ghost = "ghost@example.com";

    // The default policy: the 5th consecutive failure locks for 1 s.
    for i in 1..=5 {
        let res = app.login_form(&bob.email, "wrong password").await;
        assert_error(
            &res,
            401,
            "invalid_credentials",
            INCORRECT,
            &format!("bob #{i}"),
        );
    }
    let bob_locked = app.login_form(&bob.email, PASSWORD).await;
    assert_eq!(
        assert_throttled(&bob_locked, 1, "the right password while locked"),
        1
    );
    let res = app.login_form(&bob.email, "wrong password").await;
    assert_throttled(&res, 1, "a wrong password while locked");
    let res = app.login_json(&bob.email, PASSWORD).await;
    assert_throttled(&res, 1, "a JSON login while locked");

    for i in 1..=5 {
        let res = app.login_form(ghost, "wrong password").await;
        assert_error(
            &res,
            401,
            "invalid_credentials",
            INCORRECT,
            &format!("ghost #{i}"),
        );
    }
    let ghost_locked = app.login_form(ghost, PASSWORD).await;
    assert_throttled(&ghost_locked, 1, "an unknown email while locked");
    assert_eq!(
        (ghost_locked.text(), ghost_locked.header_list()),
        (bob_locked.text(), bob_locked.header_list()),
        "a locked unknown email looks like a locked account"
    );

    // Other accounts are not affected.
    app.token(ADMIN_EMAIL, PASSWORD).await;

    // Each refusal was audited (none of them was a login_failed), the repeated ones of one
    // account and address as one entry with a count.
    let (entries, total) = audit(&app, &admin, "?action=login_throttled").await;
    assert_eq!(total, 2);
    assert_eq!(
        who_did_what(&entries),
        [
            ("login_throttled".to_owned(), None, None),
            ("login_throttled".to_owned(), None, Some(bob.id)),
        ]
    );
    let counts: Vec<Value> = entries
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(e["detail"].as_str().expect("a detail")).expect("JSON")
        })
        .collect();
    assert_eq!(counts, [json!({"count": 1}), json!({"count": 3})]);
    let (_, failed) = audit(&app, &admin, "?action=login_failed").await;
    assert_eq!(failed, 10, "only the five failures of each were counted");

    // After the backoff, the right password gets in and clears the failures: four more
    // do not lock (without the reset, the next one would).
    actix_web::rt::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let token = app.token(&bob.email, PASSWORD).await;
    assert_token_works(&app, &token, "the token after the lock").await;
    for i in 1..=4 {
        let res = app.login_form(&bob.email, "wrong password").await;
        assert_error(
            &res,
            401,
            "invalid_credentials",
            INCORRECT,
            &format!("after the reset #{i}"),
        );
    }
    app.token(&bob.email, PASSWORD).await;
}

pub async fn a_client_address_has_a_failure_budget_across_accounts(new_store: &NewStore) {
    let app = spawn_app_with(AppOptions {
        throttle: ThrottlePolicy {
            max_failures_per_address: 3,
            ..ThrottlePolicy::default()
        },
        ..AppOptions::new(new_store())
    })
    .await;
    app.admin().await;

    for account in ["a@example.com", "b@example.com", ADMIN_EMAIL] {
        let res = login_from(&app, CLIENT, account, "wrong password").await;
        assert_error(&res, 401, "invalid_credentials", INCORRECT, account);
    }
    let res = login_from(&app, CLIENT, "d@example.com", "wrong password").await;
    let window = 15 * 60;
    assert_throttled(&res, window, "the 4th failure from one address");
    let res = login_from(&app, CLIENT, ADMIN_EMAIL, PASSWORD).await;
    assert_throttled(&res, window, "even the right password from that address");

    let res = login_from(&app, "198.51.100.8", "d@example.com", "wrong password").await;
    assert_error(
        &res,
        401,
        "invalid_credentials",
        INCORRECT,
        "another address",
    );
    let res = login_from(&app, "2001:db8::7", ADMIN_EMAIL, PASSWORD).await;
    assert_eq!(res.status.as_u16(), 200, "another address: {}", res.text());
}

pub async fn a_client_address_may_register_only_so_often(new_store: &NewStore) {
    let app = spawn_app_with(AppOptions {
        throttle: ThrottlePolicy {
            register_limit_per_hour: 2,
            ..ThrottlePolicy::default()
        },
        ..AppOptions::new(new_store())
    })
    .await;

    for email in [ADMIN_EMAIL, "bob@example.com"] {
        let res = app
            .send(register_request(email, PASSWORD).peer_addr(peer(CLIENT)))
            .await;
        assert_eq!(res.status.as_u16(), 201, "{email}: {}", res.text());
    }
    let res = app
        .send(register_request("carol@example.com", PASSWORD).peer_addr(peer(CLIENT)))
        .await;
    assert_throttled(&res, 3600, "the 3rd registration within the hour");

    // Carol was not registered; from elsewhere she can be.
    let res = app
        .send(register_request("carol@example.com", PASSWORD).peer_addr(peer("198.51.100.8")))
        .await;
    assert_eq!(res.status.as_u16(), 201, "another address: {}", res.text());
    assert_eq!(res.json()["status"], "pending");
}

pub async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(new_store: &NewStore) {
    let proxy = "127.0.0.1";
    let app = spawn_app_with(AppOptions {
        throttle: ThrottlePolicy {
            max_failures_per_address: 2,
            ..ThrottlePolicy::default()
        },
        trusted_proxies: TrustedProxies::parse(proxy).unwrap(),
        ..AppOptions::new(new_store())
    })
    .await;
    let admin = app.admin().await;

    for account in ["a@example.com", "b@example.com"] {
        let res = login_via(&app, proxy, "203.0.113.1", account, "wrong password").await;
        assert_error(&res, 401, "invalid_credentials", INCORRECT, account);
    }
    let res = login_via(&app, proxy, "203.0.113.1", "c@example.com", "x-wrong-x").await;
    assert_throttled(&res, 900, "the forwarded client's budget is spent");
    // A client cannot escape by forging entries to the left of its real address.
    let res = login_via(
        &app,
        proxy,
        "192.0.2.99, 203.0.113.1",
        "c@example.com",
        "wrong password",
    )
    .await;
    assert_throttled(&res, 900, "a forged X-Forwarded-For prefix");

    let res = login_via(
        &app,
        proxy,
        "203.0.113.2",
        "c@example.com",
        "wrong password",
    )
    .await;
    assert_error(
        &res,
        401,
        "invalid_credentials",
        INCORRECT,
        "another client",
    );

    // The audit log records the forwarded client, not the proxy.
    let (entries, _) = audit(&app, &admin, "?action=login_failed").await;
    let addresses: Vec<&str> = entries
        .iter()
        .map(|e| e["address"].as_str().expect("an address"))
        .collect();
    assert_eq!(addresses, ["203.0.113.2", "203.0.113.1", "203.0.113.1"]);

    // From a peer that is not a trusted proxy, the header is ignored.
    for (i, client) in ["203.0.113.3", "203.0.113.4"].into_iter().enumerate() {
        let res = login_via(
            &app,
            "192.0.2.50",
            client,
            &format!("u{i}@example.com"),
            "nope-nope",
        )
        .await;
        assert_error(&res, 401, "invalid_credentials", INCORRECT, client);
    }
    let res = login_via(
        &app,
        "192.0.2.50",
        "203.0.113.5",
        "u9@example.com",
        "nope-nope",
    )
    .await;
    assert_throttled(
        &res,
        900,
        "an untrusted peer's forwarded clients share its budget",
    );
}

pub async fn without_trusted_proxies_x_forwarded_for_is_ignored(new_store: &NewStore) {
    let app = spawn_app_with(AppOptions {
        throttle: ThrottlePolicy {
            max_failures_per_address: 2,
            ..ThrottlePolicy::default()
        },
        ..AppOptions::new(new_store())
    })
    .await;
    let admin = app.admin().await;

    for (account, client) in [
        ("a@example.com", "203.0.113.1"),
        ("b@example.com", "203.0.113.2"),
    ] {
        let res = login_via(&app, "127.0.0.1", client, account, "wrong password").await;
        assert_error(&res, 401, "invalid_credentials", INCORRECT, account);
    }
    let res = login_via(
        &app,
        "127.0.0.1",
        "203.0.113.3",
        "c@example.com",
        "wrong password",
    )
    .await;
    assert_throttled(&res, 900, "every forwarded client is the peer");

    let (entries, _) = audit(&app, &admin, "?action=login_failed").await;
    for entry in &entries {
        assert_eq!(entry["address"], "127.0.0.1", "{entry}");
    }
}

// ---- audit log --------------------------------------------------------------------------

/// The keys of an audit entry, and no others.
const AUDIT_KEYS: [&str; 7] = [
    "action",
    "actor_id",
    "address",
    "at",
    "detail",
    "id",
    "target_id",
];

/// Sends `req` from [`CLIENT`]; it must answer `status`. Returns the body as JSON (or null).
async fn step(app: &TestApp, req: TestRequest, status: u16, what: &str) -> Value {
    let res = app.send(req.peer_addr(peer(CLIENT))).await;
    assert_eq!(res.status.as_u16(), status, "{what}: {}", res.text());
    if res.body.is_empty() {
        Value::Null
    } else {
        res.json()
    }
}

pub async fn the_audit_log_records_who_did_what_to_whom_newest_first(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let started = chrono::Utc::now() - chrono::Duration::seconds(1);

    let admin_id = step(
        &app,
        register_request(ADMIN_EMAIL, PASSWORD),
        201,
        "register admin",
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let admin_token = step(
        &app,
        login_request(ADMIN_EMAIL, PASSWORD),
        200,
        "admin login",
    )
    .await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = Session {
        id: admin_id,
        email: ADMIN_EMAIL.to_owned(),
        token: admin_token,
    };
    let bob = step(
        &app,
        register_request("bob@example.com", PASSWORD),
        201,
        "register bob",
    )
    .await["id"]
        .as_i64()
        .unwrap();
    step(
        &app,
        login_request("bob@example.com", "a wrong guess"),
        401,
        "bob's failed login",
    )
    .await;
    let user_path = format!("/api/auth/users/{bob}");
    for (what, body) in [
        ("approve", json!({"status": "approved"})),
        ("promote", json!({"is_admin": true})),
        ("demote", json!({"is_admin": false})),
        ("disable", json!({"status": "disabled"})),
        ("enable", json!({"status": "approved"})),
        ("change the email", json!({"email": "robert@example.com"})),
    ] {
        let req = bearer(TestRequest::put().uri(&user_path), &admin.token).set_json(body);
        step(&app, req, 200, what).await;
    }
    let req = bearer(
        TestRequest::post().uri(&format!("{user_path}/reset-password")),
        &admin.token,
    )
    .set_json(json!({"password": NEW_PASSWORD}));
    step(&app, req, 200, "reset bob's password").await;
    let bob_token = step(
        &app,
        login_request("robert@example.com", NEW_PASSWORD),
        200,
        "bob's login",
    )
    .await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    step(&app, logout_request(Some(&bob_token)), 204, "bob's logout").await;
    let req = bearer(TestRequest::delete().uri(&user_path), &admin.token);
    step(&app, req, 204, "delete bob").await;
    let finished = chrono::Utc::now() + chrono::Duration::seconds(1);

    let (entries, total) = audit(&app, &admin, "").await;
    let (a, b) = (Some(admin.id), Some(bob));
    let expected: Vec<Deed> = [
        ("user_deleted", a, b),
        ("logout", b, b),
        ("login_succeeded", b, b),
        ("password_reset", a, b),
        ("user_email_changed", a, b),
        ("user_enabled", a, b),
        ("user_disabled", a, b),
        ("user_demoted", a, b),
        ("user_promoted", a, b),
        ("user_approved", a, b),
        ("login_failed", None, b),
        ("user_registered", b, b),
        ("login_succeeded", a, a),
        ("user_registered", a, a),
    ]
    .into_iter()
    .map(|(action, actor, target)| (action.to_owned(), actor, target))
    .collect();
    assert_eq!(who_did_what(&entries), expected);
    assert_eq!(total, 14);

    let mut previous: Option<(i64, chrono::DateTime<chrono::FixedOffset>)> = None;
    for entry in &entries {
        let mut keys: Vec<&str> = entry
            .as_object()
            .expect("an entry is an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, AUDIT_KEYS, "{entry}");
        let id = entry["id"].as_i64().expect("an integer id");
        let at = assert_utc_time(&entry["at"]);
        assert!(
            started <= at.with_timezone(&chrono::Utc) && at.with_timezone(&chrono::Utc) <= finished,
            "{entry}: at is the time of the request"
        );
        if let Some((newer_id, newer_at)) = previous {
            assert!(id < newer_id && at <= newer_at, "newest first: {entry}");
        }
        previous = Some((id, at));
        assert_eq!(entry["address"], CLIENT, "{entry}");
        let detail = entry["detail"].as_str().unwrap_or_default();
        for secret in [PASSWORD, "a wrong guess", NEW_PASSWORD, &bob_token] {
            assert!(!detail.contains(secret), "{entry} shows a secret");
        }
    }
    assert!(
        entries[4]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("robert@example.com")),
        "the email change names the new address: {}",
        entries[4]
    );

    // Filters, alone and together, with X-Total-Count counting all that match.
    let matching = |keep: &dyn Fn(&Deed) -> bool| {
        expected
            .iter()
            .filter(|e| keep(e))
            .cloned()
            .collect::<Vec<_>>()
    };
    let cases = [
        (
            "?action=user_registered".to_owned(),
            matching(&|e| e.0 == "user_registered"),
        ),
        (format!("?actor_id={}", admin.id), matching(&|e| e.1 == a)),
        (format!("?target_id={bob}"), matching(&|e| e.2 == b)),
        (
            format!("?actor_id={}&target_id={bob}", admin.id),
            matching(&|e| e.1 == a && e.2 == b),
        ),
        (
            format!("?action=login_succeeded&actor_id={bob}"),
            matching(&|e| e.0 == "login_succeeded" && e.1 == b),
        ),
        ("?action=password_changed".to_owned(), Vec::new()),
    ];
    for (query, want) in cases {
        let (got, total) = audit(&app, &admin, &query).await;
        assert_eq!(who_did_what(&got), want, "{query}");
        assert_eq!(total, want.len() as u64, "{query}: X-Total-Count");
    }

    // Paging: X-Total-Count stays the number of all matching entries.
    let (page, total) = audit(&app, &admin, "?limit=3&offset=2").await;
    assert_eq!(total, 14);
    assert_eq!(page, entries[2..5].to_vec());
    let (page, total) = audit(&app, &admin, &format!("?target_id={bob}&limit=2")).await;
    assert_eq!(
        (actions(&page), total),
        (vec!["user_deleted", "logout"], 12)
    );
    let (page, total) = audit(&app, &admin, "?offset=100").await;
    assert_eq!((page.len(), total), (0, 14));
}

pub async fn bad_audit_filters_are_422s_naming_the_parameter(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;

    for (query, field) in [
        ("action=bogus", "action"),
        ("action=User_Approved", "action"),
        ("action=", "action"),
        ("actor_id=abc", "actor_id"),
        ("actor_id=0", "actor_id"),
        ("target_id=-1", "target_id"),
        ("target_id=1.5", "target_id"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("offset=-3", "offset"),
        ("actor=1", "actor"),
        ("bogus=1", "bogus"),
    ] {
        let res = app
            .get(&format!("/api/auth/audit?{query}"), Some(&admin.token))
            .await;
        let body = assert_problem(&res, 422, "validation_error", query);
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
    let res = app
        .get("/api/auth/audit?limit=1&limit=2", Some(&admin.token))
        .await;
    assert_client_error(&res, "a repeated parameter");
    assert_eq!(res.status.as_u16(), 422, "a repeated parameter");
}

pub async fn only_admins_read_the_audit_log(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.approved_user(&admin, "bob@example.com").await;

    let res = app.get("/api/auth/audit", Some(&bob.token)).await;
    assert_error(&res, 403, "admin_required", ADMIN_REQUIRED, "a non-admin");
    let res = app.get("/api/auth/audit", None).await;
    assert_error(&res, 401, "not_authenticated", NOT_VALIDATED, "no token");
    let res = app.get("/api/auth/audit?action=bogus", None).await;
    assert_error(
        &res,
        401,
        "not_authenticated",
        NOT_VALIDATED,
        "no token comes before a bad filter",
    );
    // A demoted admin's token stops granting it at once.
    let carol = app.second_admin(&admin, "carol@example.com").await;
    audit(&app, &carol, "").await;
    app.update_ok(&admin, carol.id, &json!({"is_admin": false}))
        .await;
    let res = app.get("/api/auth/audit", Some(&carol.token)).await;
    assert_error(
        &res,
        403,
        "admin_required",
        ADMIN_REQUIRED,
        "a demoted admin",
    );
}

// ---- JWKS -------------------------------------------------------------------------------

pub async fn jwks_is_empty_under_hs256(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let res = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    assert!(
        res.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "content type {:?}",
        res.header("content-type")
    );
    assert_eq!(res.json(), json!({"keys": []}));
    assert_eq!(res.header("x-content-type-options"), Some("nosniff"));
}

// ---- headers ----------------------------------------------------------------------------

pub async fn the_new_endpoints_answer_with_nosniff_and_no_store(new_store: &NewStore) {
    let app = spawn_app_with(AppOptions {
        throttle: ThrottlePolicy {
            max_failures: 1,
            register_limit_per_hour: 1,
            ..ThrottlePolicy::default()
        },
        ..AppOptions::new(new_store())
    })
    .await;
    let admin = app.admin().await;
    let bob = app.approved_user(&admin, "bob@example.com").await;
    let spare = app.token(ADMIN_EMAIL, PASSWORD).await;

    let mut responses = vec![
        app.get("/api/auth/audit", Some(&admin.token)).await,
        app.get("/api/auth/audit?limit=-1", Some(&admin.token))
            .await,
        app.get("/api/auth/audit", Some(&bob.token)).await,
        app.send(logout_request(Some(&spare))).await,
        app.send(logout_request(None)).await,
        app.send(register_request("carol@example.com", PASSWORD).peer_addr(peer(CLIENT)))
            .await,
        app.send(register_request("dave@example.com", PASSWORD).peer_addr(peer(CLIENT)))
            .await,
        app.send(change_password_request(
            &bob.token,
            &json!({"current_password": PASSWORD, "new_password": "password123"}),
        ))
        .await,
        app.send(change_password_request(
            &bob.token,
            &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        ))
        .await,
    ];
    let bob_token = responses.last().unwrap().json()["access_token"]
        .as_str()
        .expect("the password change's token")
        .to_owned();
    responses.push(
        app.send(change_password_request(
            &bob_token,
            &json!({"current_password": "not it at all", "new_password": ANOTHER_PASSWORD}),
        ))
        .await,
    );
    // With max_failures 1, one failure locks the account for a second.
    app.login_form("erin@example.com", "wrong password").await;
    responses.push(app.login_form("erin@example.com", "wrong password").await);

    let mut statuses: Vec<u16> = responses.iter().map(|r| r.status.as_u16()).collect();
    for res in &responses {
        assert_security_headers(res, &format!("{} {}", res.status, res.text()));
    }
    statuses.sort_unstable();
    statuses.dedup();
    assert_eq!(
        statuses,
        [200, 201, 204, 401, 403, 422, 429],
        "every kind of response was checked"
    );
    let jwks = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.header("x-content-type-options"), Some("nosniff"));
}

/// A CORS preflight for `GET /api/auth/me` from `origin`.
fn preflight(origin: &str) -> TestRequest {
    TestRequest::default()
        .method(actix_web::http::Method::OPTIONS)
        .uri("/api/auth/me")
        .insert_header(("Origin", origin))
        .insert_header(("Access-Control-Request-Method", "GET"))
        .insert_header(("Access-Control-Request-Headers", "authorization"))
}

fn cors_headers(res: &Resp) -> Vec<(String, String)> {
    res.header_list()
        .into_iter()
        .filter(|(name, _)| name.starts_with("access-control-"))
        .collect()
}

pub async fn cors_is_off_unless_origins_are_configured(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;

    let res = app
        .send(
            bearer(TestRequest::get().uri("/api/auth/me"), &admin.token)
                .insert_header(("Origin", APP_ORIGIN)),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    assert_eq!(cors_headers(&res), [], "a GET with an Origin");

    let res = app.send(preflight(APP_ORIGIN)).await;
    assert_client_error(&res, "a preflight without CORS");
    assert_eq!(cors_headers(&res), [], "a preflight without CORS");
}

pub async fn cors_allows_only_the_configured_origins(new_store: &NewStore) {
    let app = spawn_app_with(AppOptions {
        cors_origins: vec![APP_ORIGIN.into()],
        ..AppOptions::new(new_store())
    })
    .await;
    let admin = app.admin().await;

    let res = app.send(preflight(APP_ORIGIN)).await;
    assert!(
        res.status.is_success(),
        "preflight: {} {}",
        res.status,
        res.text()
    );
    assert_eq!(res.header("access-control-allow-origin"), Some(APP_ORIGIN));
    let methods = res
        .header("access-control-allow-methods")
        .unwrap_or_default();
    assert!(methods.contains("GET"), "allowed methods {methods:?}");
    let headers = res
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        headers.contains("authorization"),
        "allowed headers {headers:?}"
    );
    assert_eq!(
        res.header("access-control-allow-credentials"),
        None,
        "bearer tokens, no cookies"
    );
    assert_eq!(res.header("x-content-type-options"), Some("nosniff"));

    // An actual request from the origin, and an error one: both readable by the page.
    let res = app
        .send(
            bearer(TestRequest::get().uri("/api/auth/users"), &admin.token)
                .insert_header(("Origin", APP_ORIGIN)),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    assert_eq!(res.header("access-control-allow-origin"), Some(APP_ORIGIN));
    let exposed = res
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-total-count"), "exposed {exposed:?}");
    assert_security_headers(&res, "a CORS GET");
    let res = app
        .send(
            TestRequest::get()
                .uri("/api/auth/me")
                .insert_header(("Origin", APP_ORIGIN)),
        )
        .await;
    assert_error(&res, 401, "not_authenticated", NOT_VALIDATED, "a CORS 401");
    assert_eq!(res.header("access-control-allow-origin"), Some(APP_ORIGIN));

    // Any other origin gets no permission, preflight or not.
    for origin in ["https://evil.example.com", "http://app.example.com", "null"] {
        let res = app.send(preflight(origin)).await;
        assert_client_error(&res, origin);
        assert_eq!(res.header("access-control-allow-origin"), None, "{origin}");
        let res = app
            .send(
                bearer(TestRequest::get().uri("/api/auth/me"), &admin.token)
                    .insert_header(("Origin", origin)),
            )
            .await;
        assert_eq!(res.header("access-control-allow-origin"), None, "{origin}");
    }
}
