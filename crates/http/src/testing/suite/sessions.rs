//! Sessions and refresh tokens (API.md, "Sessions and refresh tokens"): the token response,
//! refresh with rotation and reuse detection, the sessions a user and an admin see and end,
//! and every path that ends sessions.

use actix_web::test::TestRequest;
use serde_json::{json, Value};

use crate::testing::{
    assert_problem, assert_security_headers, assert_utc_time, bearer, spawn_app, spawn_app_with,
    AppOptions, NewStore, Session, TestApp, PASSWORD, SECRET,
};

/// A full token response of a login by `email` (JSON), with `User-Agent: agent`.
async fn login(app: &TestApp, email: &str, agent: &str) -> Value {
    let res = app
        .send(
            TestRequest::post()
                .uri("/api/auth/login")
                .insert_header(("User-Agent", agent))
                .set_json(json!({"email": email, "password": PASSWORD})),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200, "login {email}: {}", res.text());
    res.json()
}

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().expect("access_token")
}

fn refresh_token(tokens: &Value) -> &str {
    tokens["refresh_token"].as_str().expect("refresh_token")
}

/// `POST /token` with JSON.
async fn refresh(app: &TestApp, token: &str) -> crate::testing::Resp {
    app.post_json(
        "/api/auth/token",
        None,
        &json!({"grant_type": "refresh_token", "refresh_token": token}),
    )
    .await
}

/// A refresh that must succeed; the new pair.
async fn refresh_ok(app: &TestApp, token: &str) -> Value {
    let res = refresh(app, token).await;
    assert_eq!(res.status.as_u16(), 200, "refresh: {}", res.text());
    res.json()
}

/// A refresh refused as OAuth 2's `invalid_grant`.
async fn assert_invalid_grant(app: &TestApp, token: &str, context: &str) {
    let res = refresh(app, token).await;
    let body = assert_problem(&res, 400, "invalid_grant", context);
    assert_eq!(body["error"], "invalid_grant", "{context}: {body}");
}

async fn me_status(app: &TestApp, token: &str) -> u16 {
    app.get("/api/auth/me", Some(token)).await.status.as_u16()
}

/// The claims of an access token (verified with the test secret).
fn claims(token: &str) -> Value {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_exp = true;
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(SECRET).expect("an HS256 key"),
        &validation,
    )
    .expect("an access token of ours")
    .claims
}

async fn sessions(app: &TestApp, token: &str, path: &str) -> Vec<Value> {
    let res = app.get(path, Some(token)).await;
    assert_eq!(res.status.as_u16(), 200, "{path}: {}", res.text());
    let list = res.json().as_array().expect("a list").clone();
    assert_eq!(
        res.header("x-total-count"),
        Some(list.len().to_string().as_str()),
        "{path}: X-Total-Count"
    );
    list
}

async fn audit_actions(app: &TestApp, admin: &Session) -> Vec<String> {
    let res = app.get("/api/auth/audit", Some(&admin.token)).await;
    assert_eq!(res.status.as_u16(), 200, "audit: {}", res.text());
    res.json()
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_owned())
        .collect()
}

pub async fn a_login_starts_a_session_with_a_refresh_token(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let tokens = login(&app, &admin.email, "Tester/1.0 (suite)").await;
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 900, "15 minutes by default: {tokens}");
    assert!(refresh_token(&tokens).len() >= 43, "256 bits: {tokens}");
    let idle = tokens["refresh_expires_in"].as_u64().expect("a number");
    assert!(
        (30 * 86_400 - 60..=30 * 86_400).contains(&idle),
        "30 days: {tokens}"
    );
    assert!(tokens["device_token"].is_string(), "{tokens}");
    let sid = claims(access(&tokens))["sid"]
        .as_i64()
        .expect("sid in the token");
    let list = sessions(&app, access(&tokens), "/api/auth/me/sessions").await;
    assert_eq!(list.len(), 2, "this login and the admin's: {list:?}");
    let this = list
        .iter()
        .find(|s| s["id"] == sid)
        .expect("the session is listed");
    assert_eq!(this["current"], true);
    assert_eq!(this["user_agent"], "Tester/1.0 (suite)");
    assert!(this.get("address").is_some());
    for key in ["created_at", "last_used_at", "expires_at"] {
        assert_utc_time(&this[key]);
    }
    assert_eq!(
        list.iter().filter(|s| s["current"] == true).count(),
        1,
        "{list:?}"
    );
    assert!(
        list[0]["id"].as_i64() > list[1]["id"].as_i64(),
        "newest first"
    );
}

pub async fn a_refresh_rotates_the_pair_and_a_replay_ends_the_session(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let ann = app.approved_user(&admin, "ann@example.com").await;
    let first = login(&app, &ann.email, "phone").await;
    let res = refresh(&app, refresh_token(&first)).await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    assert_security_headers(&res, "a refresh");
    let second = res.json();
    assert_ne!(refresh_token(&second), refresh_token(&first));
    assert_eq!(
        claims(access(&second))["sid"],
        claims(access(&first))["sid"],
        "the same session"
    );
    assert_eq!(me_status(&app, access(&second)).await, 200);
    assert_eq!(
        me_status(&app, access(&first)).await,
        200,
        "until it expires"
    );
    let third = refresh_ok(&app, refresh_token(&second)).await;
    // The first token again: a replay. The whole session ends.
    assert_invalid_grant(&app, refresh_token(&first), "a spent refresh token").await;
    assert_eq!(me_status(&app, access(&third)).await, 401, "session ended");
    assert_invalid_grant(&app, refresh_token(&third), "the session's latest token").await;
    assert!(audit_actions(&app, &admin)
        .await
        .contains(&"refresh_token_reused".to_owned()));
    // Ann's other sessions go on.
    let other = login(&app, &ann.email, "laptop").await;
    refresh_ok(&app, refresh_token(&other)).await;
}

pub async fn concurrent_refreshes_with_one_token_give_one_pair(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let tokens = login(&app, &admin.email, "racer").await;
    let token = refresh_token(&tokens).to_owned();
    let racers = (0..8).map(|_| refresh(&app, &token));
    let answers = futures_util::future::join_all(racers).await;
    let ok = answers.iter().filter(|r| r.status.as_u16() == 200).count();
    assert_eq!(ok, 1, "exactly one wins");
    for res in answers.iter().filter(|r| r.status.as_u16() != 200) {
        assert_problem(res, 400, "invalid_grant", "a racer that lost");
    }
}

pub async fn refresh_takes_a_form_and_ignores_other_parameters(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let tokens = login(&app, &admin.email, "form").await;
    let res = app
        .send(TestRequest::post().uri("/api/auth/token").set_form([
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token(&tokens)),
            ("client_id", "console"),
            ("scope", "openid"),
        ]))
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    let pair = res.json();
    for key in [
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_expires_in",
    ] {
        assert!(pair.get(key).is_some(), "{key} in {pair}");
    }
    assert!(pair.get("device_token").is_none(), "logins only: {pair}");
}

pub async fn refresh_errors_are_oauth_style(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let tokens = login(&app, &admin.email, "errors").await;
    let good = refresh_token(&tokens);
    let oauth = |res: &crate::testing::Resp, code: &str, context: &str| {
        let body = assert_problem(res, 400, code, context);
        assert_eq!(body["error"], code, "{context}: {body}");
    };
    for (body, code) in [
        (json!({"refresh_token": good}), "invalid_request"),
        (
            json!({"grant_type": "", "refresh_token": good}),
            "invalid_request",
        ),
        (json!({"grant_type": "refresh_token"}), "invalid_request"),
        (
            json!({"grant_type": "refresh_token", "refresh_token": ""}),
            "invalid_request",
        ),
        (
            json!({"grant_type": "refresh_token", "refresh_token": 42}),
            "invalid_request",
        ),
        (
            json!({"grant_type": "password", "refresh_token": good}),
            "unsupported_grant_type",
        ),
        (
            json!({"grant_type": "refresh_token", "refresh_token": "nope"}),
            "invalid_grant",
        ),
        (
            json!({"grant_type": "refresh_token", "refresh_token": "x".repeat(5000)}),
            "invalid_grant",
        ),
    ] {
        let res = app.post_json("/api/auth/token", None, &body).await;
        oauth(&res, code, &body.to_string());
    }
    let res = app
        .send(
            TestRequest::post()
                .uri("/api/auth/token")
                .insert_header(("Content-Type", "application/json"))
                .set_payload("{not json"),
        )
        .await;
    oauth(&res, "invalid_request", "malformed JSON");
    let res = app
        .send(
            TestRequest::post()
                .uri("/api/auth/token")
                .insert_header(("Content-Type", "text/plain"))
                .set_payload("grant_type=refresh_token"),
        )
        .await;
    assert_problem(&res, 415, "unsupported_media_type", "text/plain");
    // None of that spent the good token.
    refresh_ok(&app, good).await;
    // Each outcome is counted.
    let metrics = app.get("/metrics", None).await.text();
    for line in [
        "gatehouse_token_refreshes_total{outcome=\"refreshed\"} 1",
        "gatehouse_token_refreshes_total{outcome=\"invalid_grant\"} 2",
        "gatehouse_token_refreshes_total{outcome=\"invalid_request\"} 8",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
}

pub async fn logout_ends_the_session_and_its_refresh_token(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let phone = login(&app, &admin.email, "phone").await;
    let laptop = login(&app, &admin.email, "laptop").await;
    let res = app
        .send(bearer(
            TestRequest::post().uri("/api/auth/logout"),
            access(&phone),
        ))
        .await;
    assert_eq!(res.status.as_u16(), 204, "{}", res.text());
    assert_eq!(me_status(&app, access(&phone)).await, 401);
    assert_invalid_grant(&app, refresh_token(&phone), "a logged-out session").await;
    assert_eq!(
        me_status(&app, access(&laptop)).await,
        200,
        "other sessions go on"
    );
    refresh_ok(&app, refresh_token(&laptop)).await;
}

pub async fn a_user_lists_and_ends_their_own_sessions(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let ann = app.approved_user(&admin, "ann@example.com").await;
    let a = login(&app, &ann.email, "a").await;
    let b = login(&app, &ann.email, "b").await;
    let c = login(&app, &ann.email, "c").await;
    let list = sessions(&app, access(&a), "/api/auth/me/sessions").await;
    assert_eq!(list.len(), 4, "three logins and approved_user's: {list:?}");
    let paged = app
        .get("/api/auth/me/sessions?limit=1&offset=1", Some(access(&a)))
        .await;
    assert_eq!(paged.json().as_array().map(Vec::len), Some(1));
    assert_eq!(paged.header("x-total-count"), Some("4"));
    // End b.
    let b_sid = claims(access(&b))["sid"].as_i64().expect("sid");
    let path = format!("/api/auth/me/sessions/{b_sid}");
    let res = app.delete(&path, Some(access(&a))).await;
    assert_eq!(res.status.as_u16(), 204, "{}", res.text());
    assert_eq!(me_status(&app, access(&b)).await, 401);
    assert_invalid_grant(&app, refresh_token(&b), "an ended session").await;
    let res = app.delete(&path, Some(access(&a))).await;
    assert_problem(&res, 404, "session_not_found", "ended already");
    // Another user's session is not found, and not ended.
    let admins = sessions(&app, &admin.token, "/api/auth/me/sessions").await;
    let admin_sid = admins[0]["id"].as_i64().expect("id");
    let res = app
        .delete(
            &format!("/api/auth/me/sessions/{admin_sid}"),
            Some(access(&a)),
        )
        .await;
    assert_problem(&res, 404, "session_not_found", "another user's session");
    assert_eq!(me_status(&app, &admin.token).await, 200);
    for bad in ["0", "-1", "x", "99999999999999999999"] {
        let res = app
            .delete(&format!("/api/auth/me/sessions/{bad}"), Some(access(&a)))
            .await;
        assert_problem(&res, 422, "validation_error", bad);
    }
    let res = app
        .get("/api/auth/me/sessions?limit=x", Some(access(&a)))
        .await;
    assert_problem(&res, 422, "validation_error", "a bad limit");
    // End every other: only a remains.
    let res = app.delete("/api/auth/me/sessions", Some(access(&a))).await;
    assert_eq!(res.status.as_u16(), 204, "{}", res.text());
    assert_eq!(me_status(&app, access(&c)).await, 401);
    assert_eq!(me_status(&app, &ann.token).await, 401);
    let left = sessions(&app, access(&a), "/api/auth/me/sessions").await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["current"], true);
    let actions = audit_actions(&app, &admin).await;
    assert!(
        actions.contains(&"session_revoked".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"sessions_revoked".to_owned()),
        "{actions:?}"
    );
    // Without a token: 401.
    let res = app.get("/api/auth/me/sessions", None).await;
    assert_problem(&res, 401, "not_authenticated", "no token");
}

pub async fn a_password_change_ends_other_sessions_and_renews_this_one(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let here = login(&app, &admin.email, "here").await;
    let there = login(&app, &admin.email, "there").await;
    let res = app
        .put_json(
            "/api/auth/me/password",
            Some(access(&here)),
            &json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    let fresh = res.json();
    assert!(fresh["refresh_token"].is_string(), "{fresh}");
    assert_eq!(
        claims(access(&fresh))["sid"],
        claims(access(&here))["sid"],
        "the same session goes on"
    );
    assert_eq!(me_status(&app, access(&fresh)).await, 200);
    assert_eq!(
        me_status(&app, access(&here)).await,
        401,
        "older tokens end"
    );
    assert_eq!(me_status(&app, access(&there)).await, 401);
    assert_invalid_grant(&app, refresh_token(&there), "another session").await;
    // This session's old refresh token opens nothing, and ends nothing: it is no replay.
    assert_invalid_grant(&app, refresh_token(&here), "the superseded refresh token").await;
    assert_eq!(me_status(&app, access(&fresh)).await, 200);
    let next = refresh_ok(&app, refresh_token(&fresh)).await;
    assert_eq!(me_status(&app, access(&next)).await, 200);
}

pub async fn admins_see_and_end_a_users_sessions(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let ann = app.approved_user(&admin, "ann@example.com").await;
    let phone = login(&app, &ann.email, "phone").await;
    let path = format!("/api/auth/users/{}/sessions", ann.id);
    let list = sessions(&app, &admin.token, &path).await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list.iter().all(|s| s["current"] == false), "{list:?}");
    // Not for non-admins, nor about unknown users.
    let res = app.get(&path, Some(access(&phone))).await;
    assert_problem(&res, 403, "admin_required", "a non-admin lists");
    let res = app.delete(&path, Some(access(&phone))).await;
    assert_problem(&res, 403, "admin_required", "a non-admin ends");
    let missing = "/api/auth/users/9999/sessions";
    let res = app.get(missing, Some(&admin.token)).await;
    assert_problem(&res, 404, "user_not_found", "listing an unknown user's");
    let res = app.delete(missing, Some(&admin.token)).await;
    assert_problem(&res, 404, "user_not_found", "ending an unknown user's");
    let res = app
        .get("/api/auth/users/abc/sessions", Some(&admin.token))
        .await;
    assert_problem(&res, 422, "validation_error", "a bad id");
    // Sign out everywhere.
    let res = app.delete(&path, Some(&admin.token)).await;
    assert_eq!(res.status.as_u16(), 204, "{}", res.text());
    assert_eq!(me_status(&app, access(&phone)).await, 401);
    assert_eq!(me_status(&app, &ann.token).await, 401);
    assert_invalid_grant(&app, refresh_token(&phone), "signed out everywhere").await;
    assert!(sessions(&app, &admin.token, &path).await.is_empty());
    assert!(audit_actions(&app, &admin)
        .await
        .contains(&"sessions_revoked".to_owned()));
    // Ann signs in again: a new session works.
    let again = login(&app, &ann.email, "phone").await;
    assert_eq!(me_status(&app, access(&again)).await, 200);
    // The admin's own sessions, as an admin sees them: their current one is marked.
    let own = sessions(
        &app,
        &admin.token,
        &format!("/api/auth/users/{}/sessions", admin.id),
    )
    .await;
    assert_eq!(own.iter().filter(|s| s["current"] == true).count(), 1);
}

pub async fn taking_a_user_out_of_service_ends_their_sessions(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let ann = app.approved_user(&admin, "ann@example.com").await;
    for change in [
        json!({"status": "disabled"}),
        json!({"status": "pending"}),
        json!({"status": "rejected"}),
    ] {
        let tokens = login(&app, &ann.email, "x").await;
        app.update_ok(&admin, ann.id, &change).await;
        assert_eq!(me_status(&app, access(&tokens)).await, 401, "{change}");
        assert_invalid_grant(&app, refresh_token(&tokens), &change.to_string()).await;
        app.update_ok(&admin, ann.id, &json!({"status": "approved"}))
            .await;
        // Approved again: the old session stays ended.
        assert_eq!(me_status(&app, access(&tokens)).await, 401, "{change}");
        assert_invalid_grant(&app, refresh_token(&tokens), "after approval again").await;
    }
    let tokens = login(&app, &ann.email, "x").await;
    let res = app
        .post_json(
            &format!("/api/auth/users/{}/reset-password", ann.id),
            Some(&admin.token),
            &json!({"password": "a reset passphrase"}),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    assert_invalid_grant(&app, refresh_token(&tokens), "after a reset").await;
    let res = app
        .post_json(
            "/api/auth/login",
            None,
            &json!({"email": ann.email, "password": "a reset passphrase"}),
        )
        .await;
    let tokens = res.json();
    let res = app
        .delete(&format!("/api/auth/users/{}", ann.id), Some(&admin.token))
        .await;
    assert_eq!(res.status.as_u16(), 204);
    assert_invalid_grant(&app, refresh_token(&tokens), "after a delete").await;
}

pub async fn sessions_idle_out_and_end_at_their_maximum_age(new_store: &NewStore) {
    let secs = |s| gatehouse_domain::TokenTtl::from_secs(s).expect("a lifetime");
    // Idle out after 1 s without a refresh.
    let app = spawn_app_with(AppOptions {
        sessions: gatehouse_domain::SessionPolicy {
            idle: secs(1),
            max_age: secs(3600),
        },
        ..AppOptions::new(new_store())
    })
    .await;
    let admin = app.admin().await;
    let tokens = login(&app, &admin.email, "idle").await;
    assert_eq!(tokens["refresh_expires_in"].as_u64(), Some(1));
    tokio_sleep(1200).await;
    assert_eq!(me_status(&app, access(&tokens)).await, 401, "idled out");
    assert_invalid_grant(&app, refresh_token(&tokens), "idled out").await;
    // A refresh never extends a session past its maximum age.
    let app = spawn_app_with(AppOptions {
        sessions: gatehouse_domain::SessionPolicy {
            idle: secs(3600),
            max_age: secs(2),
        },
        ..AppOptions::new(new_store())
    })
    .await;
    let admin = app.admin().await;
    let tokens = login(&app, &admin.email, "old").await;
    let next = refresh_ok(&app, refresh_token(&tokens)).await;
    assert!(next["refresh_expires_in"].as_u64() <= Some(2), "{next}");
    tokio_sleep(2200).await;
    assert_eq!(me_status(&app, access(&next)).await, 401, "past its age");
    assert_invalid_grant(&app, refresh_token(&next), "past its age").await;
}

/// Waits without blocking the app's thread (its blocking work runs elsewhere).
async fn tokio_sleep(millis: u64) {
    actix_web::rt::time::sleep(std::time::Duration::from_millis(millis)).await;
}
