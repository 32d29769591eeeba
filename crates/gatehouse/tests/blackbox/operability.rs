//! The operability part of API.md from outside, on every backend: the OpenAPI document and
//! the docs page, `/metrics` read with a Prometheus text-format parser, `X-Request-Id` in
//! responses and logs, and `POST /api/auth/users`.

use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue};
use serde_json::json;

use gatehouse_storage::testing::{EmptyDatabase, TestBackend};

use crate::server::{Reply, Server};

const PASSWORD: &str = "tr0mbone-kettle";

type Scrape = MetricsExposition<PrometheusType, PrometheusValue>;

fn scrape(server: &Server) -> Scrape {
    let reply = server.get("/metrics", None);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/plain; version=0.0.4")),
        "{reply:?}"
    );
    let text = reply.body.as_str().expect("a text body");
    openmetrics_parser::prometheus::parse_prometheus(text)
        .unwrap_or_else(|e| panic!("not the Prometheus text format ({e:?}):\n{text}"))
}

/// The value of the sample of family `name` whose labels include `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let sample = scrape.families.get(name)?.iter_samples().find(|s| {
        let set = s.get_labelset().expect("labels");
        labels
            .iter()
            .all(|(k, v)| set.get_label_value(k) == Some(*v))
    })?;
    match &sample.value {
        PrometheusValue::Counter(c) => Some(c.value.as_f64()),
        PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => Some(n.as_f64()),
        PrometheusValue::Histogram(h) => h.buckets.last().map(|b| b.count.as_f64()),
        PrometheusValue::Summary(_) => None,
    }
}

fn requests(scrape: &Scrape, method: &str, route: &str, status: &str) -> f64 {
    value(
        scrape,
        "gatehouse_http_requests_total",
        &[("method", method), ("route", route), ("status", status)],
    )
    .unwrap_or(0.0)
}

fn create_user(server: &Server, token: Option<&str>, body: &serde_json::Value) -> Reply {
    server.send_json("POST", "/api/auth/users", token, body)
}

fn operability_endpoints_from_outside(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let server = Server::start(&db, &[]);

    // The contract, machine-readable and for people, without the internet.
    let spec = server.get("/api/openapi.json", None);
    assert_eq!(spec.status, 200, "{spec:?}");
    assert!(spec.body["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.1")));
    assert!(spec.body["paths"]["/api/auth/users"]["post"].is_object());
    let docs = server.get("/docs", None);
    assert_eq!(docs.status, 200);
    let page = docs.body.as_str().expect("HTML");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );

    // A scripted session.
    let admin = server.register("admin@example.com", PASSWORD);
    assert_eq!(admin.status, 201, "{admin:?}");
    let admin_token = server.token("admin@example.com", PASSWORD);
    let bob = create_user(
        &server,
        Some(&admin_token),
        &json!({"email": "bob@example.com", "password": PASSWORD}),
    );
    assert_eq!(bob.status, 201, "{bob:?}");
    assert_eq!(bob.body["status"], "approved");
    assert_eq!(bob.body["approved_by"], admin.body["id"]);
    let carol = create_user(
        &server,
        Some(&admin_token),
        &json!({"email": "carol@example.com", "password": PASSWORD, "status": "pending"}),
    );
    assert_eq!(carol.body["status"], "pending", "{carol:?}");
    let bob_token = server.token("bob@example.com", PASSWORD);
    assert_eq!(server.get("/api/auth/me", Some(&bob_token)).status, 200);
    // Bob is no admin; nobody without a token; nothing created either way.
    let refused = create_user(
        &server,
        Some(&bob_token),
        &json!({"email": "eve@example.com", "password": PASSWORD}),
    );
    assert_eq!(refused.status, 403, "{refused:?}");
    let anonymous = create_user(
        &server,
        None,
        &json!({"email": "eve@example.com", "password": PASSWORD}),
    );
    assert_eq!(anonymous.status, 401);
    assert_eq!(server.login("carol@example.com", PASSWORD).status, 403);
    assert_eq!(
        server.login("bob@example.com", "wrong password").status,
        401
    );

    let m = scrape(&server);
    assert_eq!(requests(&m, "POST", "/api/auth/users", "201"), 2.0);
    assert_eq!(requests(&m, "POST", "/api/auth/users", "403"), 1.0);
    assert_eq!(requests(&m, "POST", "/api/auth/users", "401"), 1.0);
    assert_eq!(requests(&m, "GET", "/api/auth/me", "200"), 1.0);
    let logins = |outcome| value(&m, "gatehouse_logins_total", &[("outcome", outcome)]);
    assert_eq!(logins("success"), Some(2.0));
    assert_eq!(logins("pending"), Some(1.0));
    assert_eq!(logins("invalid_credentials"), Some(1.0));
    let users = |status| value(&m, "gatehouse_users", &[("status", status)]);
    assert_eq!(
        (users("approved"), users("pending"), users("disabled")),
        (Some(2.0), Some(1.0), Some(0.0))
    );
    assert_eq!(value(&m, "gatehouse_database_up", &[]), Some(1.0));
    assert_eq!(
        value(&m, "gatehouse_log_lines_dropped_total", &[]),
        Some(0.0)
    );
    assert!(value(&m, "gatehouse_bcrypt_queue_wait_seconds", &[]).is_some_and(|n| n >= 7.0));
    assert!(value(&m, "process_resident_memory_bytes", &[]).is_some_and(|n| n > 0.0));

    // Request ids: made when absent, kept when sane, and in that request's log lines.
    let made = server.get("/healthz", None);
    let made_id = made.header("x-request-id").expect("an id").to_owned();
    assert!(!made_id.is_empty());
    let given = "trace-7f3a9c1e-operability";
    let echoed = server.request("GET", "/api/auth/me", &[("X-Request-Id", given)], None);
    assert_eq!(echoed.status, 401);
    assert_eq!(echoed.header("x-request-id"), Some(given));
    let log = server.log_once_it_has(given);
    let line = log
        .lines()
        .find(|l| l.contains(given))
        .expect("a log line with the id");
    assert!(line.contains("401"), "{line}");
    let junk = server.request("GET", "/healthz", &[("X-Request-Id", "a b\"c")], None);
    assert_ne!(junk.header("x-request-id"), Some("a b\"c"));
}

/// `GATEHOUSE_ACCESS_LOG=off`: no line per request, while the service's other lines (up to
/// the last, written out at the stop) remain.
fn the_access_log_can_be_turned_off(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let server = Server::start(&db, &[("GATEHOUSE_ACCESS_LOG", "off")]);
    let given = "trace-quiet-access-log";
    let reply = server.request("GET", "/healthz", &[("X-Request-Id", given)], None);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-request-id"), Some(given));
    let unknown = server.request("GET", "/no-such-page", &[("X-Request-Id", given)], None);
    assert_eq!(unknown.status, 404);
    let log = server.stop_and_read_log();
    assert!(log.contains("stopped"), "{log}");
    assert!(!log.contains(given), "{log}");
    assert!(!log.contains("elapsed_ms"), "{log}");
}

/// The default access line, and the log written out in full at a stop.
fn every_request_has_an_access_line_by_default(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let server = Server::start(&db, &[]);
    let ids: Vec<String> = (0..50).map(|n| format!("trace-line-{n:03}")).collect();
    for id in &ids {
        let reply = server.request("GET", "/healthz", &[("X-Request-Id", id)], None);
        assert_eq!(reply.status, 200);
    }
    let log = server.stop_and_read_log();
    for id in &ids {
        let line = log
            .lines()
            .find(|l| l.contains(id.as_str()))
            .unwrap_or_else(|| panic!("no access line for {id}:\n{log}"));
        assert!(line.contains("/healthz") && line.contains("200"), "{line}");
    }
}

gatehouse_storage::backend_tests!(
    operability_endpoints_from_outside,
    the_access_log_can_be_turned_off,
    every_request_has_an_access_line_by_default,
);
