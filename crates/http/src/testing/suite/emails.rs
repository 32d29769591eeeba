//! Emails that look alike: NFKC before lower-casing, one script per local part and domain
//! label (422 `invalid_email`), and a confusable skeleton per account (409 `email_taken`),
//! on every path that creates a user or changes an email.

use serde_json::json;

use crate::testing::{
    assert_error, assert_problem, spawn_app, NewStore, Resp, TestApp, ADMIN_EMAIL, PASSWORD,
};

const TAKEN: &str = "Email already registered";
/// `admin@example.com` with a Cyrillic а (U+0430) in the domain.
const CYRILLIC_A: &str = "admin@ex\u{430}mple.com";
/// `admin@example.com` in fullwidth letters (NFKC makes it `admin@example.com`).
const FULLWIDTH: &str = "\u{ff41}\u{ff44}\u{ff4d}\u{ff49}\u{ff4e}@example.com";

/// A 422 `invalid_email` naming the `email` field.
fn assert_mixed_scripts(res: &Resp, context: &str) {
    let body = assert_problem(res, 422, "invalid_email", context);
    let errors = body["errors"].as_array().expect("errors");
    assert!(
        errors.iter().any(|e| e["field"] == "email"
            && e["message"].as_str().is_some_and(|m| m.contains("scripts"))),
        "{context}: {body}"
    );
}

async fn user_count(app: &TestApp, token: &str) -> usize {
    let res = app.get("/api/auth/users", Some(token)).await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    res.json().as_array().expect("users").len()
}

pub async fn look_alike_registrations_are_refused(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;

    // A Cyrillic а inside a Latin label, or before the @: mixed scripts.
    for mixed in [
        CYRILLIC_A,
        "\u{430}dmin@example.com",
        "b\u{3bf}b@example.com",
    ] {
        assert_mixed_scripts(&app.register(mixed, PASSWORD).await, mixed);
    }
    // The same after NFKC (fullwidth, mathematical bold), or the same skeleton (rn for m,
    // 1 for l): taken.
    for look_alike in [
        FULLWIDTH,
        "\u{1d41a}\u{1d41d}\u{1d426}\u{1d422}\u{1d427}@example.com",
        "adrnin@example.com",
        "admin@examp1e.com",
        " ADMIN@EXAMPLE.COM ",
    ] {
        let res = app.register(look_alike, PASSWORD).await;
        assert_error(&res, 409, "email_taken", TAKEN, look_alike);
    }
    // A whole-script Cyrillic label passes the script rule, but looks like a Latin one.
    app.register_ok("user@coca.com").await;
    let res = app
        .register("user@\u{441}\u{43e}\u{441}\u{430}.com", PASSWORD)
        .await;
    assert_error(&res, 409, "email_taken", TAKEN, "Cyrillic соса");
    assert_eq!(user_count(&app, &admin.token).await, 2);

    // A new address in fullwidth letters is stored as plain ASCII.
    let res = app
        .register(
            "\u{ff43}\u{ff41}\u{ff52}\u{ff4f}\u{ff4c}@example.com",
            PASSWORD,
        )
        .await;
    assert_eq!(res.status.as_u16(), 201, "{}", res.text());
    assert_eq!(res.json()["email"], "carol@example.com");
    // NFKC makes a fullwidth @ an @ too (it was refused before NFKC).
    let res = app.register("dan\u{ff20}example.com", PASSWORD).await;
    assert_eq!(res.status.as_u16(), 201, "{}", res.text());
    assert_eq!(res.json()["email"], "dan@example.com");
    // And a single-script non-Latin address is welcome.
    let res = app
        .register("\u{3b1}\u{3bb}\u{3c6}\u{3b1}@example.gr", PASSWORD)
        .await;
    assert_eq!(res.status.as_u16(), 201, "{}", res.text());
}

pub async fn a_fullwidth_login_name_signs_in_to_the_normalised_account(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    app.admin().await;

    let res = app.login_form(FULLWIDTH, PASSWORD).await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    let token = res.json()["access_token"].as_str().unwrap().to_owned();
    let me = app.get("/api/auth/me", Some(&token)).await;
    assert_eq!(me.json()["email"], ADMIN_EMAIL);
    let res = app
        .login_json(
            "\u{ff21}\u{ff24}\u{ff2d}\u{ff29}\u{ff2e}\u{ff20}example.com",
            PASSWORD,
        )
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    // A mixed-script name is nobody's: the usual 401.
    let res = app.login_form(CYRILLIC_A, PASSWORD).await;
    assert_error(
        &res,
        401,
        "invalid_credentials",
        "Incorrect email or password",
        "mixed-script login",
    );
}

pub async fn admins_cannot_create_or_rename_into_a_look_alike(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.approved_user(&admin, "bob@example.com").await;

    let create = |email: &str| json!({"email": email, "password": PASSWORD, "status": "approved"});
    let res = app
        .post_json("/api/auth/users", Some(&admin.token), &create(CYRILLIC_A))
        .await;
    assert_mixed_scripts(&res, "create, mixed scripts");
    for look_alike in [FULLWIDTH, "adrnin@example.com"] {
        let res = app
            .post_json("/api/auth/users", Some(&admin.token), &create(look_alike))
            .await;
        assert_error(&res, 409, "email_taken", TAKEN, look_alike);
    }

    let path = format!("/api/auth/users/{}", bob.id);
    let res = app
        .put_json(&path, Some(&admin.token), &json!({"email": CYRILLIC_A}))
        .await;
    assert_mixed_scripts(&res, "update, mixed scripts");
    let res = app
        .put_json(
            &path,
            Some(&admin.token),
            &json!({"email": "adrnin@example.com"}),
        )
        .await;
    assert_error(
        &res,
        409,
        "email_taken",
        TAKEN,
        "update to the admin's look-alike",
    );
    // A look-alike of one's own address is no one else's.
    let moved = app
        .update_ok(&admin, bob.id, &json!({"email": "bob@example.corn"}))
        .await;
    assert_eq!(moved["email"], "bob@example.corn");
    assert_eq!(user_count(&app, &admin.token).await, 2);
}
