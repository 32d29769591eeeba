//! Registration, login and `/me`: the routes anyone or any user may call.

use actix_web::test::TestRequest;
use serde_json::{json, Value};

use crate::testing::{
    assert_error, assert_security_headers, assert_user_public, assert_utc_time, bearer, spawn_app,
    spawn_app_with, AppOptions, NewStore, Resp, ADMIN_EMAIL, FIFTEEN_MINUTES, PASSWORD,
};

const INCORRECT: &str = "Incorrect email or password";
const NOT_VALIDATED: &str = "Could not validate credentials";

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
    // A login also returns its device token (hardening round 2): 64 hex digits.
    if let Some(device) = body.get("device_token") {
        let device = device.as_str().expect("a string device token");
        assert_eq!(device.len(), 64, "{context}");
        assert!(device.bytes().all(|b| b.is_ascii_hexdigit()), "{context}");
        keys.retain(|k| *k != "device_token");
    }
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
    let token = body["access_token"].as_str().expect("a string token");
    assert_eq!(
        token.split('.').count(),
        3,
        "{context}: a JWT has three parts"
    );
    token.to_owned()
}

// ---- register ---------------------------------------------------------------------------

pub async fn the_first_user_registers_as_an_approved_admin(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;

    let res = app.register(ADMIN_EMAIL, PASSWORD).await;

    assert_eq!(res.status.as_u16(), 201, "{}", res.text());
    assert_security_headers(&res, "register");
    assert!(res
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json")));
    let user = res.json();
    assert_user_public(&user);
    assert_eq!(user["email"], ADMIN_EMAIL);
    assert_eq!(user["is_admin"], true);
    assert_eq!(user["status"], "approved");
    let created = assert_utc_time(&user["created_at"]);
    let approved = assert_utc_time(&user["approved_at"]);
    assert_eq!(approved, created, "approved at once, on registration");
    assert_eq!(
        user["approved_by"],
        Value::Null,
        "nobody approved the first admin"
    );
}

pub async fn later_users_register_as_pending_non_admins(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin_id = app.register_ok(ADMIN_EMAIL).await;

    let res = app.register("bob@example.com", PASSWORD).await;

    assert_eq!(res.status.as_u16(), 201, "{}", res.text());
    let user = res.json();
    assert_user_public(&user);
    assert!(user["id"].as_i64() > Some(admin_id));
    assert_eq!(user["email"], "bob@example.com");
    assert_eq!(user["is_admin"], false);
    assert_eq!(user["status"], "pending");
    assert_eq!(user["approved_at"], Value::Null);
    assert_eq!(user["approved_by"], Value::Null);

    // A third one too: only the very first user is special.
    let third = app.register("carol@example.com", PASSWORD).await.json();
    assert_eq!(
        (&third["is_admin"], &third["status"]),
        (&json!(false), &json!("pending"))
    );
}

pub async fn registration_trims_and_lower_cases_the_email(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;

    let res = app
        .register("  Ada.Lovelace@Example.COM \n", PASSWORD)
        .await;

    assert_eq!(res.status.as_u16(), 201, "{}", res.text());
    assert_eq!(res.json()["email"], "ada.lovelace@example.com");
    // ...and the stored form is what logging in compares against.
    assert!(!app
        .token("ada.lovelace@example.com", PASSWORD)
        .await
        .is_empty());
}

pub async fn no_response_ever_carries_the_password_or_its_hash(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let secret = "a very memorable secret";
    let created = app.register("bob@example.com", secret).await;
    let id = created.json()["id"].as_i64().unwrap();
    let approved = app
        .put_json(
            &format!("/api/auth/users/{id}"),
            Some(&admin.token),
            &json!({"status": "approved"}),
        )
        .await;
    let token = app.token("bob@example.com", secret).await;
    let me = app.get("/api/auth/me", Some(&token)).await;
    let list = app.get("/api/auth/users", Some(&admin.token)).await;

    for (what, res) in [
        ("register", &created),
        ("update", &approved),
        ("me", &me),
        ("list", &list),
    ] {
        let text = res.text();
        // PlainHasher stores "plain:" + the reversed password.
        let reversed: String = secret.chars().rev().collect();
        for leak in [
            secret,
            reversed.as_str(),
            "plain:",
            "password",
            "hash",
            "token_version",
        ] {
            assert!(!text.contains(leak), "{what} leaks {leak:?}: {text}");
        }
    }
    assert_user_public(&created.json());
    assert_user_public(&approved.json());
    assert_user_public(&me.json());
    for user in list.json().as_array().unwrap() {
        assert_user_public(user);
    }
}

pub async fn registering_a_taken_email_is_a_conflict_whatever_its_case_or_spacing(
    new_store: &NewStore,
) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    app.register_ok("bob@example.com").await;

    for variant in [
        "bob@example.com",
        "BOB@EXAMPLE.COM",
        "Bob@Example.Com",
        "  bob@example.com  ",
        "\tBob@example.com\n",
        ADMIN_EMAIL,
    ] {
        let res = app.register(variant, "another password").await;
        assert_error(
            &res,
            409,
            "email_taken",
            "Email already registered",
            &format!("register {variant:?}"),
        );
    }
    assert_eq!(app.users(&admin).await.len(), 2, "nothing was added");
    // The original account is untouched: still pending, still with its own password.
    let res = app.login_form("bob@example.com", PASSWORD).await;
    assert_error(
        &res,
        403,
        "account_pending",
        "Account pending approval",
        "bob",
    );
}

// ---- login ------------------------------------------------------------------------------

pub async fn login_with_a_form_returns_a_bearer_token_that_works(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    app.register_ok(ADMIN_EMAIL).await;

    let res = app.login_form(ADMIN_EMAIL, PASSWORD).await;

    let token = assert_token_response(&res, "form login");
    let me = app.get("/api/auth/me", Some(&token)).await;
    assert_eq!(me.status.as_u16(), 200, "{}", me.text());
    assert_eq!(me.json()["email"], ADMIN_EMAIL);
}

pub async fn login_with_json_returns_a_bearer_token_that_works(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    app.register_ok(ADMIN_EMAIL).await;

    let res = app.login_json(ADMIN_EMAIL, PASSWORD).await;

    let token = assert_token_response(&res, "JSON login");
    let me = app.get("/api/auth/me", Some(&token)).await;
    assert_eq!(me.status.as_u16(), 200, "{}", me.text());
    assert_eq!(me.json()["email"], ADMIN_EMAIL);
}

pub async fn login_compares_the_email_trimmed_and_lower_cased(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    app.register_ok(ADMIN_EMAIL).await;

    for variant in ["ADMIN@EXAMPLE.COM", "  Admin@Example.com "] {
        assert_token_response(&app.login_form(variant, PASSWORD).await, variant);
        assert_token_response(&app.login_json(variant, PASSWORD).await, variant);
    }
}

pub async fn login_form_accepts_the_other_oauth2_password_grant_fields(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    app.register_ok(ADMIN_EMAIL).await;

    let res = app
        .send(TestRequest::post().uri("/api/auth/login").set_form([
            ("grant_type", "password"),
            ("username", ADMIN_EMAIL),
            ("password", PASSWORD),
            ("scope", ""),
            ("client_id", "swagger"),
            ("client_secret", ""),
        ]))
        .await;

    assert_token_response(&res, "OAuth2 form");
}

pub async fn each_login_issues_a_distinct_token(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    app.register_ok(ADMIN_EMAIL).await;

    let first = app.token(ADMIN_EMAIL, PASSWORD).await;
    let second = app.token(ADMIN_EMAIL, PASSWORD).await;

    assert_ne!(first, second, "every token has its own jti");
}

pub async fn unknown_email_and_wrong_password_get_the_same_401(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    app.register_ok(ADMIN_EMAIL).await;

    let unknown = app.login_form("nobody@example.com", PASSWORD).await;
    let wrong = app.login_form(ADMIN_EMAIL, "wrong password").await;
    let unknown_json = app.login_json("nobody@example.com", PASSWORD).await;
    let wrong_json = app.login_json(ADMIN_EMAIL, "wrong password").await;
    // Inputs that could never be an account or a password are simply wrong, too.
    let not_an_email = app.login_form("not an email", PASSWORD).await;
    let too_long = app.login_form(ADMIN_EMAIL, &"x".repeat(100)).await;
    let empty = app.login_form(ADMIN_EMAIL, "").await;

    for (what, res) in [
        ("unknown email", &unknown),
        ("wrong password", &wrong),
        ("unknown email (JSON)", &unknown_json),
        ("wrong password (JSON)", &wrong_json),
        ("not an email", &not_an_email),
        ("overlong password", &too_long),
        ("empty password", &empty),
    ] {
        assert_error(res, 401, "invalid_credentials", INCORRECT, what);
        assert_eq!(res.body, unknown.body, "{what}: same body");
        assert_eq!(
            res.header_list(),
            unknown.header_list(),
            "{what}: same headers"
        );
    }
}

pub async fn a_pending_user_is_told_so_only_with_the_right_password(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    app.register_ok(ADMIN_EMAIL).await;
    app.register_ok("bob@example.com").await;
    let unknown = app.login_form("nobody@example.com", PASSWORD).await;

    let right = app.login_form("bob@example.com", PASSWORD).await;
    let right_json = app.login_json("bob@example.com", PASSWORD).await;
    let wrong = app.login_form("bob@example.com", "wrong password").await;

    assert_error(
        &right,
        403,
        "account_pending",
        "Account pending approval",
        "form",
    );
    assert_error(
        &right_json,
        403,
        "account_pending",
        "Account pending approval",
        "JSON",
    );
    assert_error(
        &wrong,
        401,
        "invalid_credentials",
        INCORRECT,
        "wrong password",
    );
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.header_list(), unknown.header_list());
}

pub async fn a_disabled_user_is_told_so_only_with_the_right_password(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.approved_user(&admin, "bob@example.com").await;
    app.update_ok(&admin, bob.id, &json!({"status": "disabled"}))
        .await;
    let unknown = app.login_form("nobody@example.com", PASSWORD).await;

    let right = app.login_form("bob@example.com", PASSWORD).await;
    let right_json = app.login_json("bob@example.com", PASSWORD).await;
    let wrong = app.login_form("bob@example.com", "wrong password").await;

    assert_error(&right, 403, "account_disabled", "Account disabled", "form");
    assert_error(
        &right_json,
        403,
        "account_disabled",
        "Account disabled",
        "JSON",
    );
    assert_error(
        &wrong,
        401,
        "invalid_credentials",
        INCORRECT,
        "wrong password",
    );
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.header_list(), unknown.header_list());
}

pub async fn an_approved_user_can_log_in_and_a_re_enabled_one_again(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.approved_user(&admin, "bob@example.com").await;
    app.update_ok(&admin, bob.id, &json!({"status": "disabled"}))
        .await;
    app.update_ok(&admin, bob.id, &json!({"status": "approved"}))
        .await;

    assert_token_response(
        &app.login_form("bob@example.com", PASSWORD).await,
        "re-enabled",
    );
}

// ---- me and tokens ----------------------------------------------------------------------

pub async fn me_returns_the_signed_in_user(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.approved_user(&admin, "bob@example.com").await;

    let res = app.get("/api/auth/me", Some(&bob.token)).await;

    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    assert_security_headers(&res, "me");
    let me = res.json();
    assert_user_public(&me);
    assert_eq!(
        me,
        app.user(&admin, bob.id).await,
        "the same user as listed"
    );
    assert_eq!(me["email"], "bob@example.com");
    assert_eq!(me["is_admin"], false);
    assert_eq!(me["status"], "approved");
    assert_eq!(me["approved_by"], admin.id);

    // The scheme is case-insensitive.
    let lower = app
        .send(
            TestRequest::get()
                .uri("/api/auth/me")
                .insert_header(("Authorization", format!("bearer {}", bob.token))),
        )
        .await;
    assert_eq!(lower.status.as_u16(), 200, "{}", lower.text());
}

/// Base64url without padding, for hand-made tokens.
fn base64url(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

pub async fn me_refuses_missing_malformed_and_forged_tokens(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let other_app = spawn_app_with(AppOptions {
        secret: b"a different secret, also 32 bytes long".to_vec(),
        ..AppOptions::new(new_store())
    })
    .await;
    let foreign = {
        other_app.register_ok(ADMIN_EMAIL).await;
        other_app.token(ADMIN_EMAIL, PASSWORD).await
    };
    let bob = app.approved_user(&admin, "bob@example.com").await;
    // Bob's claims under the admin's signature.
    let tampered = {
        let admin_parts: Vec<&str> = admin.token.split('.').collect();
        let bob_parts: Vec<&str> = bob.token.split('.').collect();
        format!("{}.{}.{}", admin_parts[0], bob_parts[1], admin_parts[2])
    };
    let now = chrono::Utc::now().timestamp();
    let unsigned = format!(
        "{}.{}.",
        base64url(br#"{"alg":"none","typ":"JWT"}"#),
        base64url(
            json!({"sub": admin.id.to_string(), "iat": now, "exp": now + 3600, "jti": "x", "ver": 0})
                .to_string()
                .as_bytes()
        ),
    );
    let signature_dropped = {
        let (head, _) = admin.token.rsplit_once('.').unwrap();
        format!("{head}.")
    };

    let cases: Vec<(&str, Option<String>)> = vec![
        ("no Authorization header", None),
        ("garbage token", Some("Bearer garbage".into())),
        ("three garbage parts", Some("Bearer a.b.c".into())),
        ("empty bearer", Some("Bearer ".into())),
        ("bare scheme", Some("Bearer".into())),
        ("token without scheme", Some(admin.token.clone())),
        (
            "Basic credentials",
            Some(format!(
                "Basic {}",
                base64url(b"admin@example.com:correct horse battery")
            )),
        ),
        (
            "Basic scheme with a valid token",
            Some(format!("Basic {}", admin.token)),
        ),
        (
            "token signed with another key",
            Some(format!("Bearer {foreign}")),
        ),
        ("tampered payload", Some(format!("Bearer {tampered}"))),
        ("alg none", Some(format!("Bearer {unsigned}"))),
        (
            "signature dropped",
            Some(format!("Bearer {signature_dropped}")),
        ),
        (
            "token with trailing junk",
            Some(format!("Bearer {}x", admin.token)),
        ),
    ];
    for (what, authorization) in cases {
        let mut req = TestRequest::get().uri("/api/auth/me");
        if let Some(value) = authorization {
            req = req.insert_header(("Authorization", value));
        }
        let res = app.send(req).await;
        assert_error(&res, 401, "not_authenticated", NOT_VALIDATED, what);
    }
}

pub async fn a_disabled_users_token_stops_working_on_the_next_request(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.approved_user(&admin, "bob@example.com").await;
    assert_eq!(app.get("/api/auth/me", Some(&bob.token)).await.status, 200);

    app.update_ok(&admin, bob.id, &json!({"status": "disabled"}))
        .await;

    let res = app.get("/api/auth/me", Some(&bob.token)).await;
    assert_error(&res, 401, "not_authenticated", NOT_VALIDATED, "disabled");
    // Set back to pending is no better.
    app.update_ok(&admin, bob.id, &json!({"status": "pending"}))
        .await;
    let res = app.get("/api/auth/me", Some(&bob.token)).await;
    assert_error(&res, 401, "not_authenticated", NOT_VALIDATED, "pending");
}

pub async fn a_deleted_users_token_stops_working_on_the_next_request(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.approved_user(&admin, "bob@example.com").await;
    assert_eq!(app.get("/api/auth/me", Some(&bob.token)).await.status, 200);

    let res = app
        .delete(&format!("/api/auth/users/{}", bob.id), Some(&admin.token))
        .await;
    assert_eq!(res.status.as_u16(), 204, "{}", res.text());

    let res = app.get("/api/auth/me", Some(&bob.token)).await;
    assert_error(&res, 401, "not_authenticated", NOT_VALIDATED, "deleted");
    // Registering the same email again makes a new user, whom the old token does not name.
    app.register_ok("bob@example.com").await;
    let res = app.get("/api/auth/me", Some(&bob.token)).await;
    assert_error(
        &res,
        401,
        "not_authenticated",
        NOT_VALIDATED,
        "re-registered",
    );
}

pub async fn bearer_header_is_ignored_where_no_token_is_needed(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;

    // A stale or bogus token must not stop anyone registering or logging in.
    let res = app
        .send(
            bearer(TestRequest::post().uri("/api/auth/register"), "garbage")
                .set_json(json!({"email": ADMIN_EMAIL, "password": PASSWORD})),
        )
        .await;
    assert_eq!(res.status.as_u16(), 201, "{}", res.text());
    let res = app
        .send(
            bearer(TestRequest::post().uri("/api/auth/login"), "garbage")
                .set_form([("username", ADMIN_EMAIL), ("password", PASSWORD)]),
        )
        .await;
    assert_token_response(&res, "login with a stale token");
}
