//! What operators see: `X-Request-Id` on every response, and `/metrics` in the Prometheus
//! text format, read back with a Prometheus parser after a scripted session.

use actix_web::test::TestRequest;
use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue, Sample};

use crate::MetricsToken;

use crate::testing::{
    assert_problem, bearer, spawn_app, spawn_app_with, AppOptions, NewStore, TestApp, PASSWORD,
};

type Scrape = MetricsExposition<PrometheusType, PrometheusValue>;

fn scrape(text: &str) -> Scrape {
    openmetrics_parser::prometheus::parse_prometheus(text)
        .unwrap_or_else(|e| panic!("not the Prometheus text format ({e:?}):\n{text}"))
}

async fn metrics(app: &TestApp) -> Scrape {
    let res = app.get("/metrics", None).await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    scrape(&res.text())
}

fn find<'a>(
    scrape: &'a Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a Sample<PrometheusValue>> {
    scrape.families.get(name)?.iter_samples().find(|s| {
        let set = s.get_labelset().expect("a label set");
        labels
            .iter()
            .all(|(k, v)| set.get_label_value(k) == Some(*v))
    })
}

fn number(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match find(scrape, name, labels).map(|s| &s.value) {
        Some(PrometheusValue::Counter(c)) => c.value.as_f64(),
        Some(PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n)) => n.as_f64(),
        other => panic!("{name} {labels:?}: {other:?}"),
    }
}

/// How many observations a histogram holds.
fn observations(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match find(scrape, name, labels).map(|s| &s.value) {
        Some(PrometheusValue::Histogram(h)) => {
            let inf = h.buckets.last().expect("buckets");
            assert!(inf.upper_bound.is_infinite(), "{h:?}");
            inf.count.as_f64()
        }
        other => panic!("{name} {labels:?}: not a histogram: {other:?}"),
    }
}

fn route_labels(scrape: &Scrape) -> Vec<String> {
    scrape.families["gatehouse_http_requests_total"]
        .iter_samples()
        .filter_map(|s| {
            let set = s.get_labelset().ok()?;
            set.get_label_value("route").map(str::to_owned)
        })
        .collect()
}

fn requests(scrape: &Scrape, method: &str, route: &str, status: &str) -> f64 {
    number(
        scrape,
        "gatehouse_http_requests_total",
        &[("method", method), ("route", route), ("status", status)],
    )
}

pub async fn every_response_carries_a_request_id_given_or_made(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let made: Vec<String> = [
        app.get("/healthz", None).await,
        app.get("/api/auth/me", None).await,
        app.get("/no/such/path", None).await,
        app.post_json("/api/auth/register", None, &serde_json::json!({}))
            .await,
    ]
    .iter()
    .map(|res| res.header("x-request-id").expect("an id").to_owned())
    .collect();
    for id in &made {
        assert!(crate::sane_request_id(id.as_bytes()).is_some(), "{id}");
    }
    let mut unique = made.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), made.len(), "{made:?}");

    let given = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let res = app
        .send(
            TestRequest::get()
                .uri("/healthz")
                .insert_header(("X-Request-Id", given)),
        )
        .await;
    assert_eq!(res.header("x-request-id"), Some(given));

    for junk in ["two words", "<script>", &"x".repeat(129)] {
        let res = app
            .send(
                TestRequest::get()
                    .uri("/healthz")
                    .insert_header(("X-Request-Id", junk)),
            )
            .await;
        let id = res.header("x-request-id").expect("an id");
        assert_ne!(id, junk);
        assert!(crate::sane_request_id(id.as_bytes()).is_some());
    }
}

pub async fn metrics_count_a_scripted_session_by_route_pattern_status_and_outcome(
    new_store: &NewStore,
) {
    let app = spawn_app(new_store()).await;
    let admin = app.admin().await;
    let bob = app.register_ok("bob@example.com").await;
    app.register_ok("carol@example.com").await;
    for _ in 0..3 {
        let res = app.get("/api/auth/me", Some(&admin.token)).await;
        assert_eq!(res.status.as_u16(), 200);
    }
    app.get("/api/auth/me", None).await;
    app.login_json("admin@example.com", "not the password")
        .await;
    app.login_json("bob@example.com", PASSWORD).await; // pending
    app.update_ok(&admin, bob, &serde_json::json!({"status": "approved"}))
        .await;
    app.get("/no/such/thing/42", None).await;
    app.get("/api/auth/users/7/junk", None).await;

    let m = metrics(&app).await;
    assert_eq!(requests(&m, "GET", "/api/auth/me", "200"), 3.0);
    assert_eq!(requests(&m, "GET", "/api/auth/me", "401"), 1.0);
    assert_eq!(requests(&m, "POST", "/api/auth/register", "201"), 3.0);
    // Ids and junk never become label values.
    assert_eq!(requests(&m, "PUT", "/api/auth/users/{id}", "200"), 1.0);
    assert!(requests(&m, "GET", "unmatched", "404") >= 2.0);
    assert!(
        !route_labels(&m)
            .iter()
            .any(|r| r.contains("42") || r.contains('7')),
        "{:?}",
        route_labels(&m)
    );
    assert_eq!(
        observations(
            &m,
            "gatehouse_http_request_duration_seconds",
            &[("route", "/api/auth/me"), ("status", "200")],
        ),
        3.0
    );

    // admin's login in `app.admin()`, then a wrong password and a pending account.
    let logins = |outcome| number(&m, "gatehouse_logins_total", &[("outcome", outcome)]);
    assert_eq!(logins("success"), 1.0);
    assert_eq!(logins("invalid_credentials"), 1.0);
    assert_eq!(logins("pending"), 1.0);

    let users = |status| number(&m, "gatehouse_users", &[("status", status)]);
    assert_eq!(
        (
            users("approved"),
            users("pending"),
            users("disabled"),
            users("rejected")
        ),
        (2.0, 1.0, 0.0, 0.0)
    );
    assert_eq!(number(&m, "gatehouse_database_up", &[]), 1.0);
    assert_eq!(number(&m, "gatehouse_bcrypt_queue_depth", &[]), 0.0);
    // Three registrations and three logins went through the lane.
    assert_eq!(
        observations(&m, "gatehouse_bcrypt_queue_wait_seconds", &[]),
        6.0
    );
    // The process: memory and CPU, as Prometheus's clients name them.
    assert!(number(&m, "process_resident_memory_bytes", &[]) > 0.0);
    // The scrape itself is counted by the next one.
    let again = metrics(&app).await;
    assert_eq!(requests(&again, "GET", "/metrics", "200"), 1.0);
}

pub async fn metrics_are_open_by_default(new_store: &NewStore) {
    let app = spawn_app(new_store()).await;
    let res = app
        .send(bearer(
            TestRequest::get().uri("/metrics"),
            "anything at all",
        ))
        .await;
    assert_eq!(
        res.status.as_u16(),
        200,
        "a token is neither needed nor checked"
    );
    metrics(&app).await;
}

pub async fn with_a_metrics_token_metrics_need_exactly_that_token(new_store: &NewStore) {
    const TOKEN: &str = "scrape-me-4f1c9a7b2e";
    let app = spawn_app_with(AppOptions {
        metrics_token: Some(MetricsToken::new(TOKEN).unwrap()),
        ..AppOptions::new(new_store())
    })
    .await;
    let without = app.get("/metrics", None).await;
    let body = assert_problem(&without, 401, "not_authenticated", "no token");
    assert_eq!(without.header("www-authenticate"), Some("Bearer"));
    assert!(!without.text().contains(TOKEN));
    assert!(body["detail"].as_str().unwrap().contains("token"));
    for wrong in [
        "scrape-me-4f1c9a7b2",
        "scrape-me-4f1c9a7b2ee",
        "SCRAPE-ME-4F1C9A7B2E",
        "",
    ] {
        let res = app
            .send(bearer(TestRequest::get().uri("/metrics"), wrong))
            .await;
        assert_problem(&res, 401, "not_authenticated", wrong);
    }
    let basic = app
        .send(
            TestRequest::get()
                .uri("/metrics")
                .insert_header(("Authorization", format!("Basic {TOKEN}"))),
        )
        .await;
    assert_problem(&basic, 401, "not_authenticated", "another scheme");
    // A user's access token is not the metrics token either.
    let admin = app.admin().await;
    let res = app.get("/metrics", Some(&admin.token)).await;
    assert_problem(&res, 401, "not_authenticated", "a user's token");

    let res = app
        .send(bearer(TestRequest::get().uri("/metrics"), TOKEN))
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    let scrape = scrape(&res.text());
    assert!(scrape
        .families
        .contains_key("gatehouse_http_requests_total"));
    // The refusals were counted like any other response.
    assert!(
        number(
            &scrape,
            "gatehouse_http_requests_total",
            &[("route", "/metrics"), ("status", "401")]
        ) >= 6.0
    );
}
