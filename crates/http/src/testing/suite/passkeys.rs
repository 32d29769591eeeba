//! Passkeys (API.md, "Multi-factor sign-in"): registration from `/me` with a software
//! authenticator ([`SoftAuthenticator`]), the list, deletion, the login with no password
//! and no second step, the refusals, the admin's reset, and the routes without a relying
//! party.

use serde_json::{json, Value};

use crate::testing::{
    assert_problem, spawn_app, spawn_app_with, AppOptions, NewStore, Session, SoftAuthenticator,
    TestApp, PASSWORD,
};

const ORIGIN: &str = "http://localhost:8080";
const START: &str = "/api/auth/me/passkeys/register/start";
const FINISH: &str = "/api/auth/me/passkeys/register/finish";
const LIST: &str = "/api/auth/me/passkeys";
const LOGIN_START: &str = "/api/auth/login/passkey/start";
const LOGIN_FINISH: &str = "/api/auth/login/passkey/finish";

/// An app whose relying party is `localhost` (origin [`ORIGIN`]).
async fn app(new_store: &NewStore) -> TestApp {
    spawn_app_with(AppOptions {
        public_url: Some(ORIGIN.to_owned()),
        ..AppOptions::new(new_store())
    })
    .await
}

/// A registration's start, checked.
async fn start(app: &TestApp, user: &Session) -> Value {
    let res = app.post_json(START, Some(&user.token), &json!({})).await;
    assert_eq!(res.status, 200, "start: {}", res.text());
    let body = res.json();
    assert!(body["challenge_id"].is_string(), "{body}");
    let options = &body["publicKey"];
    assert_eq!(options["rp"]["id"], "localhost", "{body}");
    let selection = &options["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required", "{body}");
    assert_eq!(selection["requireResidentKey"], true, "{body}");
    assert_eq!(selection["userVerification"], "required", "{body}");
    body
}

/// Registers a passkey of `user` named `name` with `authenticator`; the passkey's JSON.
async fn register(
    app: &TestApp,
    user: &Session,
    authenticator: &mut SoftAuthenticator,
    name: &str,
) -> Value {
    let options = start(app, user).await;
    let credential = authenticator.create_json(ORIGIN, &options);
    let res = app
        .post_json(
            FINISH,
            Some(&user.token),
            &json!({"name": name, "credential": credential}),
        )
        .await;
    assert_eq!(res.status, 201, "finish: {}", res.text());
    res.json()
}

/// A login's start, checked: the challenge id and the request options.
async fn login_start(app: &TestApp) -> Value {
    let res = app.post_json(LOGIN_START, None, &json!({})).await;
    assert_eq!(res.status, 200, "login start: {}", res.text());
    let body = res.json();
    assert!(body["challenge_id"].is_string(), "{body}");
    assert!(body.get("mediation").is_none(), "{body}");
    assert_eq!(body["publicKey"]["rpId"], "localhost", "{body}");
    assert_eq!(body["publicKey"]["userVerification"], "required", "{body}");
    assert!(
        body["publicKey"]["allowCredentials"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{body}"
    );
    body
}

async fn login_finish(
    app: &TestApp,
    challenge_id: &Value,
    credential: &Value,
) -> crate::testing::Resp {
    app.post_json(
        LOGIN_FINISH,
        None,
        &json!({"challenge_id": challenge_id, "credential": credential}),
    )
    .await
}

/// Signs in with `authenticator`'s passkey; the token response.
async fn passkey_login(app: &TestApp, authenticator: &mut SoftAuthenticator) -> Value {
    let start = login_start(app).await;
    let assertion = authenticator.get_json(ORIGIN, &start["publicKey"]);
    let res = login_finish(app, &start["challenge_id"], &assertion).await;
    assert_eq!(res.status, 200, "login: {}", res.text());
    res.json()
}

async fn me(app: &TestApp, token: &str) -> Value {
    let res = app.get("/api/auth/me", Some(token)).await;
    assert_eq!(res.status, 200, "me: {}", res.text());
    res.json()
}

async fn passkeys(app: &TestApp, user: &Session) -> Vec<Value> {
    let res = app.get(LIST, Some(&user.token)).await;
    assert_eq!(res.status, 200, "list: {}", res.text());
    res.json().as_array().expect("a list").clone()
}

async fn audit(app: &TestApp, admin: &Session, action: &str) -> Vec<Value> {
    let res = app
        .get(
            &format!("/api/auth/audit?action={action}"),
            Some(&admin.token),
        )
        .await;
    assert_eq!(res.status, 200, "audit: {}", res.text());
    res.json().as_array().expect("entries").clone()
}

pub async fn a_passkey_is_registered_listed_and_signs_in_without_a_password(new_store: &NewStore) {
    let app = app(new_store).await;
    let admin = app.admin().await;
    let ann = app.approved_user(&admin, "ann@example.com").await;
    assert!(passkeys(&app, &ann).await.is_empty());
    let mut laptop = SoftAuthenticator::new();
    let first = register(&app, &ann, &mut laptop, "  Laptop ").await;
    assert_eq!(first["name"], "Laptop");
    assert!(first["id"].as_i64().is_some_and(|id| id > 0), "{first}");
    assert!(first["created_at"].is_string(), "{first}");
    assert_eq!(first["last_used_at"], Value::Null);
    assert_eq!(me(&app, &ann.token).await["mfa_enabled"], true);
    // The same authenticator is excluded from a second registration.
    let options = start(&app, &ann).await;
    let excluded = options["publicKey"]["excludeCredentials"]
        .as_array()
        .expect("excluded credentials");
    assert_eq!(excluded.len(), 1, "{options}");
    assert!(laptop
        .create(ORIGIN, &options.to_string())
        .is_err_and(|e| e.contains("excluded")));
    // A second authenticator; the list is newest first.
    let mut phone = SoftAuthenticator::new();
    let second = register(&app, &ann, &mut phone, "Phone").await;
    let list = passkeys(&app, &ann).await;
    assert_eq!(list, vec![second.clone(), first.clone()]);
    // A login with no password: tokens at once.
    let mut clone = laptop.clone();
    let tokens = passkey_login(&app, &mut laptop).await;
    let access = tokens["access_token"].as_str().expect("an access token");
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    assert!(tokens["device_token"].is_string(), "{tokens}");
    assert_eq!(me(&app, access).await["email"], "ann@example.com");
    let list = passkeys(&app, &ann).await;
    assert!(list[1]["last_used_at"].is_string(), "{list:?}");
    assert_eq!(list[0]["last_used_at"], Value::Null);
    // The counter moves on, and is stored: the next login is accepted with the next.
    passkey_login(&app, &mut laptop).await;
    assert_eq!(
        laptop.counter(&credential_id(&laptop, &app, &ann).await),
        Some(2)
    );
    // A clone of the authenticator, whose counter lags behind the stored one, is refused.
    let start = login_start(&app).await;
    let cloned = clone.get_json(ORIGIN, &start["publicKey"]);
    let res = login_finish(&app, &start["challenge_id"], &cloned).await;
    assert_problem(&res, 401, "invalid_credential", "a counter that went back");
    let entries = audit(&app, &admin, "passkey_added").await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0]["target_id"], ann.id);
    let entries = audit(&app, &admin, "login_succeeded").await;
    assert!(
        entries
            .iter()
            .filter(|e| e["target_id"] == ann.id && e["detail"] == "passkey")
            .count()
            == 2,
        "{entries:?}"
    );
}

/// The credential id of `user`'s passkey that `authenticator` holds (from a fresh
/// registration start's exclusions, which list them all).
async fn credential_id(authenticator: &SoftAuthenticator, app: &TestApp, user: &Session) -> String {
    let options = start(app, user).await;
    options["publicKey"]["excludeCredentials"]
        .as_array()
        .expect("excluded credentials")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .find(|id| authenticator.counter(id).is_some())
        .expect("one of the authenticator's")
        .to_owned()
}

pub async fn a_passkey_login_skips_the_second_step_of_totp(new_store: &NewStore) {
    let app = app(new_store).await;
    let admin = app.admin().await;
    let mut key = SoftAuthenticator::new();
    register(&app, &admin, &mut key, "Key").await;
    super::mfa::enrol(&app, &admin).await;
    // The password asks for the second step; the passkey does not.
    let res = app.login_json(crate::testing::ADMIN_EMAIL, PASSWORD).await;
    assert_eq!(res.json()["mfa_required"], true, "{}", res.text());
    let tokens = passkey_login(&app, &mut key).await;
    assert!(tokens["access_token"].is_string(), "{tokens}");
    assert!(tokens.get("mfa_required").is_none(), "{tokens}");
}

pub async fn passkey_challenges_are_single_use_and_bound_to_their_ceremony(new_store: &NewStore) {
    let app = app(new_store).await;
    let admin = app.admin().await;
    let ann = app.approved_user(&admin, "ann@example.com").await;
    let mut key = SoftAuthenticator::new();
    // No registration under way.
    let credential = key.create_json(ORIGIN, &start(&app, &ann).await);
    let bob = app.approved_user(&admin, "bob@example.com").await;
    let res = app
        .post_json(
            FINISH,
            Some(&bob.token),
            &json!({"name": "Stolen", "credential": credential}),
        )
        .await;
    assert_problem(&res, 400, "invalid_credential", "no registration of bob's");
    // A new start replaces the registration under way: the old credential is refused.
    start(&app, &ann).await;
    let res = app
        .post_json(
            FINISH,
            Some(&ann.token),
            &json!({"name": "Old", "credential": credential}),
        )
        .await;
    assert_problem(&res, 400, "invalid_credential", "the replaced registration");
    // Bad names are refused before anything is spent.
    let options = start(&app, &ann).await;
    let mut key = SoftAuthenticator::new();
    let credential = key.create_json(ORIGIN, &options);
    for name in ["", "   ", &"x".repeat(65), "a\nb"] {
        let res = app
            .post_json(
                FINISH,
                Some(&ann.token),
                &json!({"name": name, "credential": credential}),
            )
            .await;
        assert_problem(&res, 422, "validation_error", &format!("name {name:?}"));
    }
    // With its challenge id, then spent.
    let res = app
        .post_json(
            FINISH,
            Some(&ann.token),
            &json!({"name": "Key", "credential": credential, "challenge_id": options["challenge_id"]}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text());
    let res = app
        .post_json(
            FINISH,
            Some(&ann.token),
            &json!({"name": "Again", "credential": credential}),
        )
        .await;
    assert_problem(&res, 400, "invalid_credential", "a spent registration");
    // Garbage is no credential.
    start(&app, &ann).await;
    let res = app
        .post_json(
            FINISH,
            Some(&ann.token),
            &json!({"name": "Junk", "credential": {"id": "x"}}),
        )
        .await;
    assert_problem(&res, 400, "invalid_credential", "junk");
    // Logins: a replayed challenge, an unknown one, one of another login.
    let first = login_start(&app).await;
    let assertion = key.get_json(ORIGIN, &first["publicKey"]);
    let res = login_finish(&app, &first["challenge_id"], &assertion).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let res = login_finish(&app, &first["challenge_id"], &assertion).await;
    assert_problem(&res, 401, "invalid_credential", "a replayed challenge");
    assert!(res.header("www-authenticate").is_some());
    let res = login_finish(&app, &json!("no-such-challenge"), &assertion).await;
    assert_problem(&res, 401, "invalid_credential", "an unknown challenge");
    let second = login_start(&app).await;
    let third = login_start(&app).await;
    let signed_for_third = key.get_json(ORIGIN, &third["publicKey"]);
    let res = login_finish(&app, &second["challenge_id"], &signed_for_third).await;
    assert_problem(&res, 401, "invalid_credential", "another login's assertion");
    let res = login_finish(&app, &third["challenge_id"], &signed_for_third).await;
    assert_eq!(res.status, 200, "its own challenge: {}", res.text());
    // Another origin, a tampered signature, an unknown passkey.
    let fourth = login_start(&app).await;
    let elsewhere = key.get_json("http://localhost:9999", &fourth["publicKey"]);
    let res = login_finish(&app, &fourth["challenge_id"], &elsewhere).await;
    assert_problem(&res, 401, "invalid_credential", "another origin");
    let fifth = login_start(&app).await;
    let mut tampered = key.get_json(ORIGIN, &fifth["publicKey"]);
    tampered["response"]["signature"] = json!("MEUCIQDrubbish");
    let res = login_finish(&app, &fifth["challenge_id"], &tampered).await;
    assert_problem(&res, 401, "invalid_credential", "a bad signature");
    let sixth = login_start(&app).await;
    let mut stranger = SoftAuthenticator::new();
    stranger.create_json(ORIGIN, &start(&app, &bob).await);
    let unknown = stranger.get_json(ORIGIN, &sixth["publicKey"]);
    let res = login_finish(&app, &sixth["challenge_id"], &unknown).await;
    assert_problem(&res, 401, "invalid_credential", "an unregistered passkey");
    // The failures of ann's passkey are audited on her account.
    let failed = audit(&app, &admin, "login_failed").await;
    assert!(
        failed
            .iter()
            .any(|e| e["target_id"] == ann.id && e["detail"] == "passkey"),
        "{failed:?}"
    );
}

pub async fn a_passkey_must_carry_its_users_handle(new_store: &NewStore) {
    let app = app(new_store).await;
    let admin = app.admin().await;
    let ann = app.approved_user(&admin, "ann@example.com").await;
    let mut key = SoftAuthenticator::new();
    register(&app, &ann, &mut key, "Key").await;
    let start = login_start(&app).await;
    let mut assertion = key.get_json(ORIGIN, &start["publicKey"]);
    assertion["response"]["userHandle"] = json!("AAAAAAAAAAAAAAAAAAAAAA");
    let res = login_finish(&app, &start["challenge_id"], &assertion).await;
    assert_problem(&res, 401, "invalid_credential", "another user's handle");
}

pub async fn a_passkey_login_is_refused_for_an_account_that_may_not_sign_in(new_store: &NewStore) {
    let app = app(new_store).await;
    let admin = app.admin().await;
    let ann = app.approved_user(&admin, "ann@example.com").await;
    let mut key = SoftAuthenticator::new();
    register(&app, &ann, &mut key, "Key").await;
    app.update_ok(&admin, ann.id, &json!({"status": "disabled"}))
        .await;
    let start = login_start(&app).await;
    let assertion = key.get_json(ORIGIN, &start["publicKey"]);
    let res = login_finish(&app, &start["challenge_id"], &assertion).await;
    assert_problem(&res, 403, "account_disabled", "a disabled account");
}

/// With `GATEHOUSE_REQUIRE_VERIFIED_EMAIL` turned on after an unverified user registered a
/// passkey, the passkey opens no session either (403 `email_unverified`, as a password).
pub async fn a_passkey_login_is_refused_for_an_unverified_email_when_required(
    new_store: &NewStore,
) {
    let store = new_store();
    let open = spawn_app_with(AppOptions {
        public_url: Some(ORIGIN.to_owned()),
        ..AppOptions::new(std::sync::Arc::clone(&store))
    })
    .await;
    let admin = open.admin().await;
    let mut key = SoftAuthenticator::new();
    register(&open, &admin, &mut key, "Key").await;
    let strict = spawn_app_with(AppOptions {
        public_url: Some(ORIGIN.to_owned()),
        mail: Some(gatehouse_domain::RecoveryPolicy {
            require_verified_email: true,
            ..gatehouse_domain::RecoveryPolicy::default()
        }),
        ..AppOptions::new(store)
    })
    .await;
    let start = login_start(&strict).await;
    let assertion = key.get_json(ORIGIN, &start["publicKey"]);
    let res = login_finish(&strict, &start["challenge_id"], &assertion).await;
    assert_problem(&res, 403, "email_unverified", "an unverified email");
}

pub async fn deleting_passkeys_turns_mfa_off_and_only_the_owners(new_store: &NewStore) {
    let app = app(new_store).await;
    let admin = app.admin().await;
    let ann = app.approved_user(&admin, "ann@example.com").await;
    let bob = app.approved_user(&admin, "bob@example.com").await;
    let mut key = SoftAuthenticator::new();
    let anns = register(&app, &ann, &mut key, "Ann's").await;
    let mut other = SoftAuthenticator::new();
    let first = register(&app, &bob, &mut other, "One").await;
    let second = register(&app, &bob, &mut SoftAuthenticator::new(), "Two").await;
    let path = |passkey: &Value| format!("{LIST}/{}", passkey["id"]);
    // Not someone else's; not a bad id.
    let res = app.delete(&path(&anns), Some(&bob.token)).await;
    assert_problem(&res, 404, "passkey_not_found", "ann's, by bob");
    let res = app.delete(&format!("{LIST}/abc"), Some(&bob.token)).await;
    assert_problem(&res, 422, "validation_error", "a bad id");
    assert_eq!(passkeys(&app, &ann).await.len(), 1);
    // Bob's first goes: his MFA stays on with the second; then off.
    let res = app.delete(&path(&first), Some(&bob.token)).await;
    assert_eq!(res.status, 204, "{}", res.text());
    assert_eq!(me(&app, &bob.token).await["mfa_enabled"], true);
    let res = app.delete(&path(&first), Some(&bob.token)).await;
    assert_problem(&res, 404, "passkey_not_found", "deleted already");
    let res = app.delete(&path(&second), Some(&bob.token)).await;
    assert_eq!(res.status, 204, "{}", res.text());
    assert_eq!(me(&app, &bob.token).await["mfa_enabled"], false);
    assert!(passkeys(&app, &bob).await.is_empty());
    // His deleted passkey signs nobody in.
    let start = login_start(&app).await;
    let assertion = other.get_json(ORIGIN, &start["publicKey"]);
    let res = login_finish(&app, &start["challenge_id"], &assertion).await;
    assert_problem(&res, 401, "invalid_credential", "a deleted passkey");
    let entries = audit(&app, &admin, "passkey_removed").await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries.iter().all(|e| e["target_id"] == bob.id));
}

pub async fn with_totp_off_a_passkey_keeps_mfa_on(new_store: &NewStore) {
    let app = app(new_store).await;
    let admin = app.admin().await;
    let mut key = SoftAuthenticator::new();
    register(&app, &admin, &mut key, "Key").await;
    let (secret, _) = super::mfa::enrol(&app, &admin).await;
    let res = app
        .delete_json(
            "/api/auth/me/mfa/totp",
            Some(&admin.token),
            &json!({"password": PASSWORD, "code": super::mfa::code_now(&secret)}),
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.text());
    assert_eq!(me(&app, &admin.token).await["mfa_enabled"], true);
}

pub async fn an_admin_reset_deletes_passkeys(new_store: &NewStore) {
    let app = app(new_store).await;
    let admin = app.admin().await;
    let ann = app.approved_user(&admin, "ann@example.com").await;
    let mut key = SoftAuthenticator::new();
    register(&app, &ann, &mut key, "Key").await;
    let res = app
        .delete(
            &format!("/api/auth/users/{}/mfa", ann.id),
            Some(&admin.token),
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.text());
    assert_eq!(app.user(&admin, ann.id).await["mfa_enabled"], false);
    let start = login_start(&app).await;
    let assertion = key.get_json(ORIGIN, &start["publicKey"]);
    let res = login_finish(&app, &start["challenge_id"], &assertion).await;
    assert_problem(&res, 401, "invalid_credential", "a reset passkey");
    let token = app.token("ann@example.com", PASSWORD).await;
    let res = app.get(LIST, Some(&token)).await;
    assert_eq!(res.json(), json!([]));
}

pub async fn passkey_routes_are_not_enabled_without_a_relying_party(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    for (method, path, token) in [
        ("POST", START, Some(&admin.token)),
        ("POST", FINISH, Some(&admin.token)),
        ("GET", LIST, Some(&admin.token)),
        ("DELETE", "/api/auth/me/passkeys/1", Some(&admin.token)),
        ("POST", LOGIN_START, None),
        ("POST", LOGIN_FINISH, None),
    ] {
        let body = match path {
            FINISH => json!({"name": "Key", "credential": {}}),
            LOGIN_FINISH => json!({"challenge_id": "x", "credential": {}}),
            _ => json!({}),
        };
        let res = match method {
            "GET" => app.get(path, token.map(String::as_str)).await,
            "DELETE" => app.delete(path, token.map(String::as_str)).await,
            _ => app.post_json(path, token.map(String::as_str), &body).await,
        };
        let problem = assert_problem(&res, 404, "not_enabled", path);
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("GATEHOUSE_PUBLIC_URL")),
            "{problem}"
        );
    }
    // An IP address makes no relying party either.
    let app = spawn_app_with(AppOptions {
        public_url: Some("http://127.0.0.1:8080".to_owned()),
        ..AppOptions::new(new_store())
    })
    .await;
    let res = app.post_json(LOGIN_START, None, &json!({})).await;
    assert_problem(&res, 404, "not_enabled", "an IP address");
}
