//! Hardening round 2 through the API: tokens that end when an account leaves service, a
//! password change that loses to an admin's reset, device tokens, refusals that count
//! nothing, the stricter password policy, token times, and IPv6 client addresses.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::{HashingPool, TrustedProxies};
use actix_web::test::TestRequest;
use gatehouse_domain::ThrottlePolicy;
use serde_json::{json, Value};

use crate::testing::{
    assert_error, assert_problem, spawn_app, spawn_app_with, AppOptions, NewStore, Resp, TestApp,
    ADMIN_EMAIL, PASSWORD, SECRET,
};

const NOT_VALIDATED: &str = "Could not validate credentials";

async fn me(app: &TestApp, token: &str) -> Resp {
    app.get("/api/auth/me", Some(token)).await
}

/// A form login from `peer`, with a device token in the form, the header, or neither.
async fn login_from(
    app: &TestApp,
    peer: &str,
    email: &str,
    password: &str,
    device: Device<'_>,
) -> Resp {
    let peer: SocketAddr = peer.parse().expect("a socket address");
    let mut form = vec![("username", email), ("password", password)];
    let mut req = TestRequest::post().uri("/api/auth/login").peer_addr(peer);
    match device {
        Device::Field(token) => form.push(("device_token", token)),
        Device::Header(token) => req = req.insert_header(("Gatehouse-Device", token)),
        Device::None => {}
    }
    app.send(req.set_form(form)).await
}

#[derive(Clone, Copy)]
enum Device<'a> {
    None,
    Field(&'a str),
    Header(&'a str),
}

pub async fn disabling_or_setting_back_to_pending_ends_tokens_for_good(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.approved_user(&admin, "bob@example.com").await;
    for (out, back) in [("disabled", "approved"), ("pending", "approved")] {
        let token = app.token("bob@example.com", PASSWORD).await;
        assert_eq!(me(&app, &token).await.status.as_u16(), 200);
        app.update_ok(&admin, bob.id, &json!({"status": out})).await;
        app.update_ok(&admin, bob.id, &json!({"status": back}))
            .await;
        let res = me(&app, &token).await;
        assert_error(&res, 401, "not_authenticated", NOT_VALIDATED, out);
        // A fresh login works.
        let fresh = app.token("bob@example.com", PASSWORD).await;
        assert_eq!(me(&app, &fresh).await.status.as_u16(), 200, "{out}");
    }
    // bob's first token too.
    let res = me(&app, &bob.token).await;
    assert_error(&res, 401, "not_authenticated", NOT_VALIDATED, "first token");
}

pub async fn a_reset_leaves_a_stolen_token_nothing_to_change_the_password_with(
    new_store: &NewStore,
) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.approved_user(&admin, "bob@example.com").await;
    let res = app
        .post_json(
            &format!("/api/auth/users/{}/reset-password", bob.id),
            Some(&admin.token),
            &json!({"password": "admin-chose-this"}),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    let res = app
        .put_json(
            "/api/auth/me/password",
            Some(&bob.token),
            &json!({"current_password": PASSWORD, "new_password": "attacker-keeps-it"}),
        )
        .await;
    assert_error(&res, 401, "not_authenticated", NOT_VALIDATED, "stale token");
    app.token("bob@example.com", "admin-chose-this").await;
    let res = app.login_form("bob@example.com", "attacker-keeps-it").await;
    assert_eq!(res.status.as_u16(), 401);
}

pub async fn a_device_that_logged_in_before_is_not_locked_out_by_an_attacker(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    app.register_ok(ADMIN_EMAIL).await;
    let owner = "192.0.2.10:4000";
    let attacker = "198.51.100.66:5000";
    let first = login_from(&app, owner, ADMIN_EMAIL, PASSWORD, Device::None).await;
    assert_eq!(first.status.as_u16(), 200, "{}", first.text());
    let device = first.json()["device_token"]
        .as_str()
        .expect("a device token")
        .to_owned();

    for _ in 0..5 {
        let res = login_from(&app, attacker, ADMIN_EMAIL, "wrong guess!", Device::None).await;
        assert_eq!(res.status.as_u16(), 401, "{}", res.text());
    }
    let locked = login_from(&app, owner, ADMIN_EMAIL, PASSWORD, Device::None).await;
    assert_problem(&locked, 429, "rate_limited", "no device token");
    assert!(locked.header("retry-after").is_some());
    let junk = login_from(&app, owner, ADMIN_EMAIL, PASSWORD, Device::Field("junk")).await;
    assert_problem(&junk, 429, "rate_limited", "an unknown device token");

    for (how, device_sent) in [
        ("field", Device::Field(&device)),
        ("header", Device::Header(&device)),
    ] {
        let res = login_from(&app, owner, ADMIN_EMAIL, PASSWORD, device_sent).await;
        assert_eq!(res.status.as_u16(), 200, "{how}: {}", res.text());
        assert_eq!(res.json()["device_token"], device.as_str(), "{how}");
        let token = res.json()["access_token"].as_str().unwrap().to_owned();
        assert_eq!(me(&app, &token).await.status.as_u16(), 200, "{how}");
    }
    // JSON logins take it too.
    let res = app
        .send(
            TestRequest::post()
                .uri("/api/auth/login")
                .peer_addr(owner.parse().unwrap())
                .set_json(
                    json!({"email": ADMIN_EMAIL, "password": PASSWORD, "device_token": device}),
                ),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200, "JSON: {}", res.text());
}

pub async fn logins_refused_as_overloaded_are_not_failed_guesses(new_store: &NewStore) {
    let store = new_store();
    let app = spawn_app(Arc::clone(&store)).await;
    let admin = app.admin().await;
    let busy = spawn_app_with(AppOptions {
        hashing: HashingPool::new(1, 0),
        ..AppOptions::new(store)
    })
    .await;
    for i in 0..12 {
        let res = busy.login_form(ADMIN_EMAIL, "wrong guess!").await;
        assert_problem(&res, 503, "overloaded", &format!("#{i}"));
        let res = busy.register(&format!("u{i}@example.com"), PASSWORD).await;
        assert_problem(&res, 503, "overloaded", &format!("register #{i}"));
    }
    // Nothing was counted: the account is not locked, and no failure was audited.
    app.token(ADMIN_EMAIL, PASSWORD).await;
    let res = app
        .get("/api/auth/audit?action=login_failed", Some(&admin.token))
        .await;
    assert_eq!(res.header("x-total-count"), Some("0"), "{}", res.text());
    let res = app.get("/api/auth/users", Some(&admin.token)).await;
    assert_eq!(res.header("x-total-count"), Some("1"));
}

pub async fn passwords_without_substance_are_refused(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    for (password, code) in [
        ("        ", "weak_password"),
        ("\u{3000}\u{3000}\u{3000}", "weak_password"),
        (" password ", "weak_password"),
        ("  Password1\t", "validation_error"),
        ("\0\0\0\0\0\0\0\0", "validation_error"),
        ("a fine password\0", "validation_error"),
        ("line\nbreak!!", "validation_error"),
    ] {
        let res = app.register(ADMIN_EMAIL, password).await;
        assert_problem(&res, 422, code, &format!("{password:?}"));
        let body: Value = res.json();
        assert_eq!(body["errors"][0]["field"], "password", "{password:?}");
    }
    // Nothing was created.
    app.register_ok(ADMIN_EMAIL).await;
}

fn sign(claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap()
}

pub async fn tokens_from_the_future_or_at_their_expiry_are_refused(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let now = chrono::Utc::now().timestamp();
    let sid = crate::testing::session_id(&admin.token);
    let claims = |iat: i64, exp: i64| json!({"sub": admin.id.to_string(), "iat": iat, "exp": exp, "jti": "forged", "ver": 0, "sid": sid});
    let good = sign(&claims(now - 5, now + 600));
    assert_eq!(
        me(&app, &good).await.status.as_u16(),
        200,
        "a current token"
    );
    let skewed = sign(&claims(now + 30, now + 600));
    assert_eq!(
        me(&app, &skewed).await.status.as_u16(),
        200,
        "within the skew"
    );
    for (what, token) in [
        ("iat an hour ahead", sign(&claims(now + 3600, now + 7200))),
        ("exp now", sign(&claims(now - 60, now))),
    ] {
        let res = me(&app, &token).await;
        assert_error(&res, 401, "not_authenticated", NOT_VALIDATED, what);
    }
}

pub async fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4(new_store: &NewStore) {
    let app = spawn_app_with(AppOptions {
        throttle: ThrottlePolicy {
            max_failures_per_address: 3,
            ..ThrottlePolicy::default()
        },
        trusted_proxies: TrustedProxies::parse("10.0.0.1").unwrap(),
        ..AppOptions::new(new_store())
    })
    .await;
    app.register_ok(ADMIN_EMAIL).await;
    let via_proxy = |client: &'static str, who: String| {
        TestRequest::post()
            .uri("/api/auth/login")
            .peer_addr("10.0.0.1:443".parse().unwrap())
            .insert_header(("X-Forwarded-For", client))
            .set_form([("username", who), ("password", "wrong guess!".to_owned())])
    };
    for (i, client) in ["2001:db8:7:7::1", "2001:db8:7:7::2", "2001:db8:7:7:ffff::3"]
        .into_iter()
        .enumerate()
    {
        let res = app
            .send(via_proxy(client, format!("x{i}@example.com")))
            .await;
        assert_eq!(res.status.as_u16(), 401, "{client}");
    }
    let res = app
        .send(via_proxy("2001:db8:7:7:1234::9", "x9@example.com".into()))
        .await;
    assert_problem(&res, 429, "rate_limited", "same /64");
    let res = app
        .send(via_proxy("2001:db8:7:8::1", "x9@example.com".into()))
        .await;
    assert_eq!(res.status.as_u16(), 401, "another /64");

    for (i, client) in ["192.0.2.80", "::ffff:192.0.2.80", "192.0.2.80"]
        .into_iter()
        .enumerate()
    {
        let res = app
            .send(via_proxy(client, format!("y{i}@example.com")))
            .await;
        assert_eq!(res.status.as_u16(), 401, "{client}");
    }
    let res = app
        .send(via_proxy("::ffff:192.0.2.80", "y9@example.com".into()))
        .await;
    assert_problem(&res, 429, "rate_limited", "mapped IPv4");
}
