//! Service endpoints, the headers every response carries, and the 503 of a full hashing
//! queue. (The 503s of an unreachable database need a store that never answers: the http
//! crate's `tests/api/unavailable.rs`.)

use actix_web::test::TestRequest;
use serde_json::json;

use crate::testing::{
    assert_problem, assert_security_headers, bearer, spawn_app, spawn_app_with, AppOptions,
    NewStore, ADMIN_EMAIL, PASSWORD,
};
use crate::HashingPool;

pub async fn healthz_and_readyz_answer_200_without_a_token(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;

    for path in ["/healthz", "/readyz"] {
        let res = app.get(path, None).await;
        assert_eq!(res.status.as_u16(), 200, "{path}: {}", res.text());
        assert_security_headers(&res, path);
        assert!(res.json().is_object(), "{path} answers JSON");
        // A bogus token does not matter either.
        let res = app.get(path, Some("garbage")).await;
        assert_eq!(res.status.as_u16(), 200, "{path} with a bogus token");
    }
}

pub async fn a_full_hashing_queue_answers_503_at_once(new_store: &NewStore) {
    let app = spawn_app_with(AppOptions {
        hashing: HashingPool::new(1, 0),
        ..AppOptions::new(new_store())
    })
    .await;

    for (what, res) in [
        ("register", app.register(ADMIN_EMAIL, PASSWORD).await),
        ("login", app.login_form(ADMIN_EMAIL, PASSWORD).await),
    ] {
        assert_problem(&res, 503, "overloaded", what);
        assert_eq!(res.header("retry-after"), Some("1"), "{what}");
    }
}

pub async fn every_response_says_nosniff_and_no_store(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.approved_user(&admin, "bob@example.com").await;
    let carol = app.register_ok("carol@example.com").await;
    let dave = app.register_ok("dave@example.com").await;

    let responses = [
        app.get("/healthz", None).await,
        app.get("/readyz", None).await,
        app.register("erin@example.com", PASSWORD).await,
        app.login_form(ADMIN_EMAIL, PASSWORD).await,
        app.login_json(ADMIN_EMAIL, PASSWORD).await,
        app.get("/api/auth/me", Some(&admin.token)).await,
        app.get("/api/auth/users", Some(&admin.token)).await,
        app.get("/api/auth/users/pending/count", Some(&admin.token))
            .await,
        app.put_json(
            &format!("/api/auth/users/{carol}"),
            Some(&admin.token),
            &json!({"status": "approved"}),
        )
        .await,
        app.post_json(
            &format!("/api/auth/users/{carol}/reset-password"),
            Some(&admin.token),
            &json!({"password": "a brand new password"}),
        )
        .await,
        app.delete(&format!("/api/auth/users/{dave}"), Some(&admin.token))
            .await,
        // And the errors: 400, 401, 403, 404, 405, 409, 413, 415, 422.
        app.delete(&format!("/api/auth/users/{}", admin.id), Some(&admin.token))
            .await,
        app.get("/api/auth/me", None).await,
        app.login_form(ADMIN_EMAIL, "wrong password").await,
        app.get("/api/auth/users", Some(&bob.token)).await,
        app.get("/nope", None).await,
        app.get("/api/auth/register", None).await,
        app.register(ADMIN_EMAIL, PASSWORD).await,
        app.send(
            TestRequest::post()
                .uri("/api/auth/register")
                .insert_header(("Content-Type", "application/json"))
                .set_payload(vec![b' '; 64 * 1024]),
        )
        .await,
        app.send(
            TestRequest::post()
                .uri("/api/auth/register")
                .insert_header(("Content-Type", "text/plain"))
                .set_payload("hello"),
        )
        .await,
        app.send(bearer(
            TestRequest::get().uri("/api/auth/users?limit=abc"),
            &admin.token,
        ))
        .await,
    ];
    let mut statuses: Vec<u16> = responses.iter().map(|r| r.status.as_u16()).collect();
    for res in &responses {
        assert_security_headers(res, &format!("{} {}", res.status, res.text()));
    }
    statuses.sort_unstable();
    statuses.dedup();
    assert_eq!(
        statuses,
        [200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 415, 422],
        "every kind of response was checked"
    );
}
