//! Multi-factor sign-in (API.md, "Multi-factor sign-in"): TOTP enrolment, the login's
//! second step with TOTP and recovery codes, turning it off, the admin's reset, and the
//! rule for admins. Codes are computed here from the secret the enrolment answers.

use gatehouse_domain::totp::{step_of, TotpSecret, DIGITS};
use serde_json::{json, Value};

use crate::testing::{
    assert_problem, spawn_app, spawn_app_with, AppOptions, NewStore, Session, TestApp, ADMIN_EMAIL,
    PASSWORD,
};

const TOTP: &str = "/api/auth/me/mfa/totp";
const CONFIRM: &str = "/api/auth/me/mfa/totp/confirm";
const RECOVERY: &str = "/api/auth/me/mfa/recovery-codes";
const LOGIN_MFA: &str = "/api/auth/login/mfa";

/// The code of `secret` `offset` steps from the step a check started in ([`settle`]).
fn code(secret: &TotpSecret, offset: i64) -> String {
    secret.code_at_step(STEP.with(std::cell::Cell::get) + offset, DIGITS)
}

/// The code of `secret` for the step a check started in (after [`enrol`]: not used yet).
pub(crate) fn code_now(secret: &TotpSecret) -> String {
    code(secret, 0)
}

thread_local! {
    static STEP: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}

/// Waits, if need be, until at least 10 seconds of the current 30-second step are left,
/// and makes it the step [`code`] counts from: a check's codes then mean the same step
/// from its start to its end (the server accepts one step either way).
fn settle() {
    let now = gatehouse_domain::now();
    let into = now.timestamp().rem_euclid(30);
    if into >= 20 {
        std::thread::sleep(std::time::Duration::from_secs(
            u64::try_from(31 - into).unwrap_or(11),
        ));
    }
    STEP.with(|step| step.set(step_of(gatehouse_domain::now())));
}

/// Turns TOTP on for `user`: the secret, and the recovery codes. The confirming code is
/// the previous step's, so that the current and the next remain for logins.
pub(crate) async fn enrol(app: &TestApp, user: &Session) -> (TotpSecret, Vec<String>) {
    settle();
    let res = app
        .post_json(TOTP, Some(&user.token), &json!({"password": PASSWORD}))
        .await;
    assert_eq!(res.status, 200, "enrol: {}", res.text());
    let body = res.json();
    let secret =
        TotpSecret::from_base32(body["secret"].as_str().expect("a secret")).expect("base 32");
    let uri = body["otpauth_uri"].as_str().expect("a URI");
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(
        uri.contains(&format!("secret={}", secret.base32())),
        "{uri}"
    );
    let res = app
        .post_json(
            CONFIRM,
            Some(&user.token),
            &json!({"code": code(&secret, -1)}),
        )
        .await;
    assert_eq!(res.status, 200, "confirm: {}", res.text());
    let codes: Vec<String> = res.json()["recovery_codes"]
        .as_array()
        .expect("recovery codes")
        .iter()
        .map(|c| c.as_str().expect("a code").to_owned())
        .collect();
    (secret, codes)
}

/// A login of `email` that must answer `mfa_required`; its `mfa_token`.
/// A well-formed code that is not `right`.
fn wrong_code(right: &str) -> &'static str {
    if right == "111111" {
        "222222"
    } else {
        "111111"
    }
}

/// An app whose admin has TOTP on and has passed the password step: the app, the admin's
/// session, the `mfa_token`, and the code that is right now.
async fn admin_at_second_step(new_store: &NewStore) -> (TestApp, Session, String, String) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let (secret, _) = enrol(&app, &admin).await;
    let token = mfa_token(&app, ADMIN_EMAIL).await;
    let right = code(&secret, 0);
    (app, admin, token, right)
}

async fn mfa_token(app: &TestApp, email: &str) -> String {
    let res = app.login_json(email, PASSWORD).await;
    assert_eq!(res.status, 200, "login: {}", res.text());
    let body = res.json();
    assert_eq!(body["mfa_required"], true, "{body}");
    assert_eq!(body["methods"], json!(["totp", "recovery_code"]));
    assert_eq!(body["expires_in"], 300);
    assert!(body.get("access_token").is_none(), "no token yet: {body}");
    body["mfa_token"].as_str().expect("an mfa_token").to_owned()
}

async fn second_step(app: &TestApp, token: &str, code: &str) -> crate::testing::Resp {
    app.post_json(LOGIN_MFA, None, &json!({"mfa_token": token, "code": code}))
        .await
}

async fn me(app: &TestApp, token: &str) -> Value {
    let res = app.get("/api/auth/me", Some(token)).await;
    assert_eq!(res.status, 200, "me: {}", res.text());
    res.json()
}

pub async fn totp_enrolment_turns_on_the_second_step(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    // The password is checked first; nothing is pending before.
    let res = app
        .post_json(
            TOTP,
            Some(&admin.token),
            &json!({"password": "wrong password!"}),
        )
        .await;
    assert_problem(&res, 403, "invalid_password", "enrol with a wrong password");
    let res = app
        .post_json(CONFIRM, Some(&admin.token), &json!({"code": "123456"}))
        .await;
    assert_problem(&res, 404, "mfa_not_enabled", "confirm with nothing pending");
    let res = app
        .post_json(TOTP, Some(&admin.token), &json!({"password": PASSWORD}))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let secret =
        TotpSecret::from_base32(res.json()["secret"].as_str().expect("secret")).expect("b32");
    settle();
    // Pending: logins go on without a second step; a wrong code does not confirm.
    assert_eq!(me(&app, &admin.token).await["mfa_enabled"], false);
    let wrong = format!(
        "{:06}",
        (code(&secret, 0).parse::<u32>().expect("digits") + 1) % 1_000_000
    );
    let res = app
        .post_json(CONFIRM, Some(&admin.token), &json!({"code": wrong}))
        .await;
    assert_problem(&res, 400, "invalid_code", "a wrong first code");
    let res = app
        .post_json(
            CONFIRM,
            Some(&admin.token),
            &json!({"code": code(&secret, 0)}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let codes = res.json()["recovery_codes"]
        .as_array()
        .expect("codes")
        .clone();
    assert_eq!(codes.len(), 10);
    assert_eq!(me(&app, &admin.token).await["mfa_enabled"], true);
    let listed = app.user(&admin, admin.id).await;
    assert_eq!(listed["mfa_enabled"], true);
    // On already.
    let res = app
        .post_json(TOTP, Some(&admin.token), &json!({"password": PASSWORD}))
        .await;
    assert_problem(&res, 409, "mfa_already_enabled", "enrol twice");
    let res = app.get("/api/auth/me/mfa", Some(&admin.token)).await;
    assert_eq!(
        res.json(),
        json!({"mfa_enabled": true, "totp_enabled": true, "recovery_codes_left": 10})
    );
    // The audit log says so.
    let res = app
        .get("/api/auth/audit?action=mfa_enabled", Some(&admin.token))
        .await;
    assert_eq!(
        res.json().as_array().map(Vec::len),
        Some(1),
        "{}",
        res.text()
    );
}

pub async fn the_second_step_takes_a_code_once(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let (secret, codes) = enrol(&app, &admin).await;
    let token = mfa_token(&app, ADMIN_EMAIL).await;
    // Wrong codes: 401 invalid_code, audited.
    let res = second_step(&app, &token, "000000").await;
    let res = if code(&secret, 0) == "000000" || code(&secret, 1) == "000000" {
        second_step(&app, &token, "999999").await
    } else {
        res
    };
    assert_problem(&res, 401, "invalid_code", "a wrong code");
    let res = second_step(&app, "not-a-token", &code(&secret, 0)).await;
    assert_problem(&res, 401, "invalid_code", "an unknown token");
    // The right code signs in, with the login's tokens.
    let res = second_step(&app, &token, &code(&secret, 0)).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let body = res.json();
    assert!(body["access_token"].is_string() && body["refresh_token"].is_string());
    assert!(body["device_token"].is_string());
    let access = body["access_token"].as_str().expect("token").to_owned();
    assert_eq!(me(&app, &access).await["email"], ADMIN_EMAIL);
    // The token is spent.
    let res = second_step(&app, &token, &code(&secret, 1)).await;
    assert_problem(&res, 401, "invalid_code", "a spent token");
    // The same code again, in a new login: refused (accepted once); the next step's works.
    let token = mfa_token(&app, ADMIN_EMAIL).await;
    let res = second_step(&app, &token, &code(&secret, 0)).await;
    assert_problem(&res, 401, "invalid_code", "a code used before");
    let res = second_step(&app, &token, &code(&secret, 1)).await;
    assert_eq!(res.status, 200, "the next step's code: {}", res.text());
    // A recovery code, in any case and spacing, works once.
    let token = mfa_token(&app, ADMIN_EMAIL).await;
    let recovery = codes[3].to_lowercase().replace('-', " ");
    let res = second_step(&app, &token, &recovery).await;
    assert_eq!(res.status, 200, "a recovery code: {}", res.text());
    let token = mfa_token(&app, ADMIN_EMAIL).await;
    let res = second_step(&app, &token, &codes[3]).await;
    assert_problem(&res, 401, "invalid_code", "a spent recovery code");
    let res = app.get("/api/auth/me/mfa", Some(&access)).await;
    assert_eq!(res.json()["recovery_codes_left"], 9);
    // New codes: the old set is dead.
    let res = app
        .post_json(
            RECOVERY,
            Some(&access),
            &json!({"password": "wrong password!"}),
        )
        .await;
    assert_problem(&res, 403, "invalid_password", "renew with a wrong password");
    let res = app
        .post_json(RECOVERY, Some(&access), &json!({"password": PASSWORD}))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let renewed = res.json()["recovery_codes"]
        .as_array()
        .expect("codes")
        .clone();
    assert_eq!(renewed.len(), 10);
    let res = second_step(&app, &token, &codes[4]).await;
    assert_problem(&res, 401, "invalid_code", "an old set's code");
    let res = second_step(&app, &token, renewed[0].as_str().expect("code")).await;
    assert_eq!(res.status, 200, "a new set's code: {}", res.text());
    let res = app
        .get("/api/auth/audit?action=login_mfa_failed", Some(&access))
        .await;
    assert!(
        res.json().as_array().map_or(0, Vec::len) >= 4,
        "{}",
        res.text()
    );
    let metrics = app.get("/metrics", None).await.text();
    assert!(
        metrics.contains("gatehouse_logins_total{outcome=\"mfa_required\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gatehouse_logins_total{outcome=\"invalid_code\"}"),
        "{metrics}"
    );
}

pub async fn an_mfa_token_dies_after_five_wrong_codes(new_store: &NewStore) {
    let (app, _, token, right) = admin_at_second_step(new_store).await;
    let wrong = wrong_code(&right);
    for i in 0..5 {
        let res = second_step(&app, &token, wrong).await;
        assert_problem(&res, 401, "invalid_code", &format!("wrong code {i}"));
    }
    let res = second_step(&app, &token, &right).await;
    assert_problem(&res, 401, "invalid_code", "the right code on a dead token");
    // The wrong codes counted on the account like failed logins: it is locked now, and
    // the right password does not buy more guesses.
    let res = app.login_json(ADMIN_EMAIL, PASSWORD).await;
    assert_problem(&res, 429, "rate_limited", "login after five wrong codes");
}

/// Wrong codes sent at once with one `mfa_token` are weighed one after another: exactly
/// five are tried (and audited), however they interleave; the others find the account
/// locked or the token dead.
pub async fn racing_wrong_codes_get_five_tries_in_all(new_store: &NewStore) {
    let (app, admin, token, right) = admin_at_second_step(new_store).await;
    let wrong = wrong_code(&right);
    let racers = (0..12).map(|_| second_step(&app, &token, wrong));
    let answers = futures_util::future::join_all(racers).await;
    for (i, res) in answers.iter().enumerate() {
        let status = res.status.as_u16();
        assert!(
            status == 401 || status == 429,
            "racer {i}: {status} {}",
            res.text()
        );
    }
    let res = app
        .get(
            "/api/auth/audit?action=login_mfa_failed",
            Some(&admin.token),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200, "audit: {}", res.text());
    let tried = res.json().as_array().map_or(0, Vec::len);
    assert_eq!(tried, 5, "wrong codes weighed: {}", res.text());
    let res = app.login_json(ADMIN_EMAIL, PASSWORD).await;
    assert_problem(&res, 429, "rate_limited", "login after the racing codes");
}

pub async fn turning_totp_off_needs_the_password_and_a_code(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let (secret, codes) = enrol(&app, &admin).await;
    let res = app
        .delete_json(
            TOTP,
            Some(&admin.token),
            &json!({"password": PASSWORD, "code": "12"}),
        )
        .await;
    assert_problem(&res, 400, "invalid_code", "a malformed code");
    let res = app
        .delete_json(
            TOTP,
            Some(&admin.token),
            &json!({"password": "wrong password!", "code": code(&secret, 0)}),
        )
        .await;
    assert_problem(&res, 403, "invalid_password", "a wrong password");
    // A recovery code will do.
    let res = app
        .delete_json(
            TOTP,
            Some(&admin.token),
            &json!({"password": PASSWORD, "code": codes[0]}),
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.text());
    assert_eq!(me(&app, &admin.token).await["mfa_enabled"], false);
    let res = app
        .delete_json(
            TOTP,
            Some(&admin.token),
            &json!({"password": PASSWORD, "code": code(&secret, 0)}),
        )
        .await;
    assert_problem(&res, 404, "mfa_not_enabled", "off twice");
    // Logins go straight in again.
    let res = app.login_json(ADMIN_EMAIL, PASSWORD).await;
    assert!(res.json()["access_token"].is_string(), "{}", res.text());
    let res = app
        .get("/api/auth/audit?action=mfa_disabled", Some(&admin.token))
        .await;
    assert_eq!(
        res.json().as_array().map(Vec::len),
        Some(1),
        "{}",
        res.text()
    );
}

pub async fn an_admin_resets_a_users_mfa(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let ann = app.approved_user(&admin, "ann@example.com").await;
    enrol(&app, &ann).await;
    // Not for a non-admin; not for nobody.
    let res = app
        .delete(
            &format!("/api/auth/users/{}/mfa", admin.id),
            Some(&ann.token),
        )
        .await;
    assert_problem(&res, 403, "admin_required", "a non-admin");
    let res = app
        .delete("/api/auth/users/999999/mfa", Some(&admin.token))
        .await;
    assert_problem(&res, 404, "user_not_found", "nobody");
    let res = app
        .delete(
            &format!("/api/auth/users/{}/mfa", ann.id),
            Some(&admin.token),
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.text());
    // Every session of hers ended; she signs in with her password alone.
    let res = app.get("/api/auth/me", Some(&ann.token)).await;
    assert_problem(&res, 401, "not_authenticated", "her old token");
    let res = app.login_json("ann@example.com", PASSWORD).await;
    assert!(res.json()["access_token"].is_string(), "{}", res.text());
    assert_eq!(app.user(&admin, ann.id).await["mfa_enabled"], false);
    let res = app
        .get("/api/auth/audit?action=mfa_reset", Some(&admin.token))
        .await;
    let entries = res.json();
    assert_eq!(entries.as_array().map(Vec::len), Some(1), "{entries}");
    assert_eq!(entries[0]["actor_id"], admin.id);
    assert_eq!(entries[0]["target_id"], ann.id);
}

pub async fn admins_without_mfa_may_only_enrol_when_required(new_store: &NewStore) {
    let app = spawn_app_with(AppOptions {
        require_mfa_for_admins: true,
        ..AppOptions::new(new_store())
    })
    .await;
    let admin = app.admin().await;
    let ann = app.register_ok("ann@example.com").await;
    for (method, path) in [
        ("GET", "/api/auth/users".to_owned()),
        ("GET", "/api/auth/users/pending/count".to_owned()),
        ("GET", "/api/auth/audit".to_owned()),
        ("DELETE", format!("/api/auth/users/{ann}")),
    ] {
        let res = if method == "GET" {
            app.get(&path, Some(&admin.token)).await
        } else {
            app.delete(&path, Some(&admin.token)).await
        };
        assert_problem(&res, 403, "mfa_enrollment_required", &path);
    }
    // The /me routes stay open.
    assert_eq!(me(&app, &admin.token).await["is_admin"], true);
    enrol(&app, &admin).await;
    let res = app.get("/api/auth/users", Some(&admin.token)).await;
    assert_eq!(res.status, 200, "after enrolling: {}", res.text());
}
