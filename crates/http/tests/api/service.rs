//! Service endpoints, the headers every response carries, and the 503s of an unavailable
//! database or a full hashing queue.

use std::sync::Arc;

use actix_web::test::TestRequest;
use gatehouse_domain::ports::{answered, Work};
use gatehouse_domain::{Error, SessionLookup, SessionSource, UserId, UserStore};
use gatehouse_http::HashingPool;
use serde_json::json;

use crate::helpers::{
    assert_problem, assert_security_headers, bearer, spawn_app, spawn_app_with, AppOptions,
    ADMIN_EMAIL, PASSWORD,
};

/// A store whose database never answers.
#[derive(Debug)]
struct DownStore;

const DOWN: &str = "connection refused by 10.0.0.7:5432";

impl SessionSource for DownStore {
    fn find_session_user(&self, _id: UserId, _token_id: &str) -> SessionLookup {
        answered(Err(Error::unavailable(DOWN)))
    }
}

impl UserStore for DownStore {
    fn read(&self, _work: &mut Work<'_>) -> Result<(), Error> {
        Err(Error::unavailable(DOWN))
    }

    fn write(&self, _work: &mut Work<'_>) -> Result<(), Error> {
        Err(Error::unavailable(DOWN))
    }

    fn ping(&self) -> Result<(), Error> {
        Err(Error::unavailable(DOWN))
    }
}

#[actix_web::test]
async fn healthz_and_readyz_answer_200_without_a_token() {
    let app = spawn_app().await;

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

#[actix_web::test]
async fn an_unreachable_database_makes_readyz_503_but_not_healthz() {
    let app = spawn_app_with(AppOptions {
        store: Arc::new(DownStore),
        ..AppOptions::default()
    })
    .await;

    let health = app.get("/healthz", None).await;
    assert_eq!(health.status.as_u16(), 200, "{}", health.text());

    let ready = app.get("/readyz", None).await;
    assert_problem(&ready, 503, "database_unavailable", "readyz");
    assert_eq!(ready.header("retry-after"), Some("1"));
    assert!(!ready.text().contains("10.0.0.7"), "no cause in the body");
}

#[actix_web::test]
async fn an_unreachable_database_is_a_503_with_retry_after_never_a_500() {
    let app = spawn_app_with(AppOptions {
        store: Arc::new(DownStore),
        ..AppOptions::default()
    })
    .await;

    for (what, res) in [
        ("register", app.register(ADMIN_EMAIL, PASSWORD).await),
        ("form login", app.login_form(ADMIN_EMAIL, PASSWORD).await),
        ("JSON login", app.login_json(ADMIN_EMAIL, PASSWORD).await),
    ] {
        let body = assert_problem(&res, 503, "database_unavailable", what);
        assert_eq!(res.header("retry-after"), Some("1"), "{what}");
        assert!(
            !res.text().contains("10.0.0.7"),
            "{what}: no cause in {body}"
        );
    }
}

#[actix_web::test]
async fn a_full_hashing_queue_answers_503_at_once() {
    let app = spawn_app_with(AppOptions {
        hashing: HashingPool::new(1, 0),
        ..AppOptions::default()
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

#[actix_web::test]
async fn every_response_says_nosniff_and_no_store() {
    let app = spawn_app().await;
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
