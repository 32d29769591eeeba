//! What operators see of each request: an `X-Request-Id`, a log span and an access-log
//! line carrying it, and Prometheus metrics (requests by route pattern and status, their
//! latency, login outcomes, the bcrypt lane, users by status, the process).
//!
//! Metrics live in a [`Metrics`] per [`AppState`](crate::AppState), not in a global
//! registry, so that apps in one process (the tests) count apart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use gatehouse_domain::UserStatus;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use tracing::Instrument;

use crate::error::ApiError;
use crate::AppState;

/// The request id header, taken from the client when sane and echoed on every response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id accepted from a client.
const MAX_REQUEST_ID: usize = 128;

/// Accepts a client's id if it is 1 to 128 characters of letters, digits and `-_.:/+=@`
/// (enough for UUIDs, ULIDs, W3C trace ids and the like; nothing that could forge a log
/// line or smuggle markup).
#[must_use]
pub fn sane_request_id(raw: &[u8]) -> Option<&str> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_REQUEST_ID
        && raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(b));
    if ok {
        std::str::from_utf8(raw).ok()
    } else {
        None
    }
}

/// Makes request ids: a random per-process prefix and a counter, unique across instances
/// without a random draw per request.
#[derive(Debug)]
struct IdMaker {
    prefix: String,
    next: AtomicU64,
}

impl IdMaker {
    fn new() -> Self {
        let mut seed = [0u8; 8];
        // Without randomness (never seen on Linux) the time still tells processes apart.
        let prefix = match getrandom::fill(&mut seed) {
            Ok(()) => u64::from_le_bytes(seed),
            Err(_) => chrono::Utc::now()
                .timestamp_nanos_opt()
                .map_or(0, i64::unsigned_abs),
        };
        Self {
            prefix: format!("{prefix:016x}"),
            next: AtomicU64::new(1),
        }
    }

    /// `<prefix>-<counter>`, straight into a header value (its one allocation).
    fn make(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n:08x}", self.prefix);
        // Hex digits and a dash: always a valid header value; the fallback is unreachable.
        HeaderValue::from_maybe_shared(actix_web::web::Bytes::from(id))
            .unwrap_or_else(|_| HeaderValue::from_static("-"))
    }
}

/// The service's Prometheus metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    ids: IdMaker,
    requests: IntCounterVec,
    latency: HistogramVec,
    logins: IntCounterVec,
    refreshes: IntCounterVec,
    hashing_queued: IntGauge,
    hashing_wait: Histogram,
    users: IntGaugeVec,
    database_up: IntGauge,
    deliveries: IntCounterVec,
    mails: IntCounterVec,
    outbox_pending: IntGauge,
    mail_pending: IntGauge,
    outbox_oldest_due: prometheus::Gauge,
    dropped_log_lines: std::sync::Arc<std::sync::OnceLock<fn() -> u64>>,
}

/// Counts the outbox dispatcher's attempts by outcome (`gatehouse_webhook_deliveries_total`);
/// a handle on the app's registry, for the dispatcher, which runs beside the app.
#[derive(Clone)]
pub struct DeliveryCounter {
    deliveries: IntCounterVec,
    mails: IntCounterVec,
}

impl std::fmt::Debug for DeliveryCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeliveryCounter")
    }
}

impl DeliveryCounter {
    /// One attempt ended `outcome`: `delivered`, `retrying` (a failure with a retry
    /// scheduled), `failed` (no retry left), `gone` (410: the endpoint was disabled) or
    /// `refused` (the address is not allowed).
    pub fn count(&self, outcome: &str) {
        self.deliveries.with_label_values(&[outcome]).inc();
    }

    /// One mail attempt ended `outcome`: `sent`, `retrying` or `failed`.
    pub fn count_mail(&self, outcome: &str) {
        self.mails.with_label_values(&[outcome]).inc();
    }
}

/// `gatehouse_log_lines_dropped_total`, read at scrape time from the log writer's own
/// count (the binary's; none in a library test, where it stays 0).
struct DroppedLogLines {
    desc: prometheus::core::Desc,
    source: std::sync::Arc<std::sync::OnceLock<fn() -> u64>>,
}

impl DroppedLogLines {
    const NAME: &'static str = "gatehouse_log_lines_dropped_total";
    const HELP: &'static str =
        "Log lines dropped because the log writer could not keep up (the queue was full).";
}

impl prometheus::core::Collector for DroppedLogLines {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let dropped = self.source.get().map_or(0, |source| source());
        match prometheus::IntCounter::new(Self::NAME, Self::HELP) {
            Ok(counter) => {
                counter.inc_by(dropped);
                prometheus::core::Collector::collect(&counter)
            }
            Err(_) => Vec::new(),
        }
    }
}

/// Latency buckets from 250 µs to 10 s: `/me` lives in the first ones, bcrypt in the last.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

impl Metrics {
    /// Registers every metric in a fresh registry.
    ///
    /// # Errors
    /// Only on a programming error (a duplicate or malformed metric name).
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "gatehouse_http_requests_total",
                "HTTP requests answered, by method, route pattern and status.",
            ),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "gatehouse_http_request_duration_seconds",
                "Time from a request's arrival to its response, by method, route pattern and status.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route", "status"],
        )?;
        let logins = IntCounterVec::new(
            Opts::new(
                "gatehouse_logins_total",
                "Login attempts by outcome: success, invalid_credentials, pending, disabled, \
                 rejected, unverified, throttled, overloaded, error; mfa_required (a right \
                 password that opens the second step), invalid_code (a wrong second step), \
                 invalid_credential (a passkey that does not verify).",
            ),
            &["outcome"],
        )?;
        let refreshes = IntCounterVec::new(
            Opts::new(
                "gatehouse_token_refreshes_total",
                "Refreshes at POST /api/auth/token by outcome: refreshed, invalid_grant (an \
                 unknown, spent, expired or ended session's token; replays are in the audit \
                 log as refresh_token_reused), invalid_request, error.",
            ),
            &["outcome"],
        )?;
        let hashing_queued = IntGauge::new(
            "gatehouse_bcrypt_queue_depth",
            "Requests waiting for a bcrypt thread right now.",
        )?;
        let hashing_wait = Histogram::with_opts(
            HistogramOpts::new(
                "gatehouse_bcrypt_queue_wait_seconds",
                "Time a request waited for a bcrypt thread.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        let users = IntGaugeVec::new(
            Opts::new("gatehouse_users", "Users by status, read at scrape time."),
            &["status"],
        )?;
        let database_up = IntGauge::new(
            "gatehouse_database_up",
            "1 when the database answered the scrape's query, 0 otherwise.",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(logins.clone()))?;
        registry.register(Box::new(refreshes.clone()))?;
        registry.register(Box::new(hashing_queued.clone()))?;
        registry.register(Box::new(hashing_wait.clone()))?;
        let deliveries = IntCounterVec::new(
            Opts::new(
                "gatehouse_webhook_deliveries_total",
                "Webhook delivery attempts of this instance by outcome: delivered, retrying \
                 (failed, a retry is scheduled), failed (no retry left), gone (the receiver \
                 answered 410; the endpoint was disabled).",
            ),
            &["outcome"],
        )?;
        let mails = IntCounterVec::new(
            Opts::new(
                "gatehouse_mails_total",
                "Mail attempts of this instance by outcome: sent, retrying (failed, a retry is \
                 scheduled), failed (no retry left).",
            ),
            &["outcome"],
        )?;
        let mail_pending = IntGauge::new(
            "gatehouse_mail_pending",
            "Mails waiting to be sent, read at scrape time.",
        )?;
        let outbox_pending = IntGauge::new(
            "gatehouse_outbox_pending",
            "Webhook deliveries waiting to be made (due or scheduled), read at scrape time.",
        )?;
        let outbox_oldest_due = prometheus::Gauge::new(
            "gatehouse_outbox_oldest_due_seconds",
            "How long the oldest due webhook delivery has waited, read at scrape time (0 \
             when none is due).",
        )?;
        registry.register(Box::new(users.clone()))?;
        registry.register(Box::new(database_up.clone()))?;
        registry.register(Box::new(deliveries.clone()))?;
        registry.register(Box::new(outbox_pending.clone()))?;
        registry.register(Box::new(mails.clone()))?;
        registry.register(Box::new(mail_pending.clone()))?;
        registry.register(Box::new(outbox_oldest_due.clone()))?;
        let dropped_log_lines = std::sync::Arc::new(std::sync::OnceLock::new());
        registry.register(Box::new(DroppedLogLines {
            desc: prometheus::core::Desc::new(
                DroppedLogLines::NAME.to_owned(),
                DroppedLogLines::HELP.to_owned(),
                Vec::new(),
                std::collections::HashMap::new(),
            )?,
            source: dropped_log_lines.clone(),
        }))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            registry,
            ids: IdMaker::new(),
            requests,
            latency,
            logins,
            refreshes,
            hashing_queued,
            hashing_wait,
            users,
            database_up,
            deliveries,
            mails,
            outbox_pending,
            mail_pending,
            outbox_oldest_due,
            dropped_log_lines,
        })
    }

    /// The counter the outbox dispatcher counts its attempts with.
    #[must_use]
    pub fn delivery_counter(&self) -> DeliveryCounter {
        DeliveryCounter {
            deliveries: self.deliveries.clone(),
            mails: self.mails.clone(),
        }
    }

    /// Where `gatehouse_log_lines_dropped_total` reads its count (the first call wins).
    pub fn count_dropped_log_lines(&self, source: fn() -> u64) {
        let _ = self.dropped_log_lines.set(source);
    }

    /// Counts one login attempt's outcome.
    pub(crate) fn login<T>(&self, result: &Result<T, ApiError>) {
        let outcome = match result {
            Ok(_) => "success",
            Err(e) => match e.code() {
                "invalid_credentials" => "invalid_credentials",
                "invalid_code" => "invalid_code",
                "invalid_credential" => "invalid_credential",
                "email_unverified" => "unverified",
                "account_pending" => "pending",
                "account_disabled" => "disabled",
                "account_rejected" => "rejected",
                "rate_limited" => "throttled",
                "overloaded" => "overloaded",
                _ => "error",
            },
        };
        self.login_outcome(outcome);
    }

    /// Counts a login whose outcome is `outcome` (one of the labels of [`login`](Self::login)
    /// or `mfa_required`: a right password that opens a second step).
    pub(crate) fn login_outcome(&self, outcome: &'static str) {
        self.logins.with_label_values(&[outcome]).inc();
    }

    /// Counts one refresh's outcome.
    pub(crate) fn refresh<T>(&self, result: &Result<T, ApiError>) {
        let outcome = match result {
            Ok(_) => "refreshed",
            Err(e) => match e.code() {
                "invalid_grant" => "invalid_grant",
                "invalid_request" | "unsupported_grant_type" | "unsupported_media_type" => {
                    "invalid_request"
                }
                _ => "error",
            },
        };
        self.refreshes.with_label_values(&[outcome]).inc();
    }

    /// Records how long a request waited for a bcrypt thread.
    pub(crate) fn hashing_waited(&self, seconds: f64) {
        self.hashing_wait.observe(seconds);
    }

    fn observe(&self, method: &str, route: &str, status: &str, seconds: f64) {
        let labels = [method, route, status];
        self.requests.with_label_values(&labels).inc();
        self.latency.with_label_values(&labels).observe(seconds);
    }

    /// The text exposition of every metric.
    fn render(&self) -> Result<Vec<u8>, prometheus::Error> {
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(out)
    }
}

/// A resource's route pattern, kept as its data (routes.rs).
#[derive(Debug, Clone)]
pub(crate) struct RouteLabel(pub(crate) std::rc::Rc<str>);

/// The route pattern a request matched (`/api/auth/users/{id}`), never the raw path, so
/// that ids and junk paths cannot multiply the series. Read from the matched resource's
/// data: no allocation.
fn route_of(req: &actix_web::HttpRequest) -> &str {
    req.app_data::<RouteLabel>()
        .map_or("unmatched", |label| &label.0)
}

/// The middleware: request id, span, access log, metrics. (The scope's app data is not
/// visible to its middleware, hence the metrics passed in.)
pub(crate) async fn observe(
    metrics: std::sync::Arc<Metrics>,
    access_log: bool,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = match req.headers().get(&REQUEST_ID) {
        Some(given) if sane_request_id(given.as_bytes()).is_some() => given.clone(),
        _ => metrics.ids.make(),
    };
    // Sane ids are plain ASCII, so this is never the fallback.
    let shown = id.to_str().unwrap_or("-");
    let method = req.method().clone();
    let span = tracing::info_span!(
        "request",
        request_id = shown,
        method = method.as_str(),
        path = req.path(),
    );
    let outcome = next.call(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let (route, status) = match &outcome {
        Ok(res) => (route_of(res.request()), res.status()),
        Err(e) => ("unmatched", e.as_response_error().status_code()),
    };
    metrics.observe(
        method.as_str(),
        route,
        status.as_str(),
        elapsed.as_secs_f64(),
    );
    if access_log {
        span.in_scope(|| {
            tracing::info!(
                route,
                status = status.as_u16(),
                elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                "request"
            );
        });
    }
    let mut res = outcome?;
    res.headers_mut().insert(REQUEST_ID, id);
    Ok(res)
}

/// The bearer token `GET /metrics` requires when one is configured
/// (`GATEHOUSE_METRICS_TOKEN`). A secret: its `Debug` shows none of it, and it is compared
/// in constant time.
#[derive(Clone)]
pub struct MetricsToken(String);

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(***)")
    }
}

impl MetricsToken {
    /// The fewest characters a token may have.
    pub const MIN_LENGTH: usize = 16;

    /// A token of at least [`MIN_LENGTH`](Self::MIN_LENGTH) visible ASCII characters (it
    /// travels in a header; no spaces).
    ///
    /// # Errors
    /// What is wrong with it, never the token itself.
    pub fn new(token: &str) -> Result<Self, String> {
        if token.len() < Self::MIN_LENGTH || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "must be at least {} visible ASCII characters, without spaces",
                Self::MIN_LENGTH
            ));
        }
        Ok(Self(token.to_owned()))
    }

    /// Whether the request carries `Authorization: Bearer <this token>`.
    fn admits(&self, req: &actix_web::HttpRequest) -> bool {
        use subtle::ConstantTimeEq as _;
        crate::extract::bearer_token(req)
            .is_some_and(|given| bool::from(given.as_bytes().ct_eq(self.0.as_bytes())))
    }
}

/// `GET /metrics`: the text format, with the user counts read now (and
/// `gatehouse_database_up 0` instead when the database does not answer). Open, unless a
/// [`MetricsToken`] is configured: then only with that token, 401 otherwise.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    summary = "Metrics in the Prometheus text format",
    description = "Open by default. When the server has `GATEHOUSE_METRICS_TOKEN`, only with \
        `Authorization: Bearer <that token>`; 401 otherwise.",
    security((), ("metrics_token" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4",
            content_type = "text/plain", body = String),
        (status = 401, response = crate::schemas::Unauthorized),
    )
)]
pub(crate) async fn metrics(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Some(token) = &state.metrics_token {
        if !token.admits(&req) {
            return Err(ApiError::new(
                actix_web::http::StatusCode::UNAUTHORIZED,
                "not_authenticated",
                "The metrics need the bearer token the server is configured with",
            ));
        }
    }
    let users = state.users.clone();
    let counts: Result<_, ApiError> = state
        .blocking(move || {
            Ok((
                users.user_counts()?,
                users.outbox_backlog()?,
                users.mail_backlog()?,
            ))
        })
        .await;
    let metrics = &state.metrics;
    match counts {
        Ok((counts, (pending, oldest_due), mails)) => {
            metrics
                .mail_pending
                .set(i64::try_from(mails).unwrap_or(i64::MAX));
            metrics
                .outbox_pending
                .set(i64::try_from(pending).unwrap_or(i64::MAX));
            metrics.outbox_oldest_due.set(oldest_due.map_or(0.0, |due| {
                (gatehouse_domain::now() - due).num_milliseconds().max(0) as f64 / 1000.0
            }));
            let counts: Vec<(UserStatus, u64)> = counts;
            metrics.database_up.set(1);
            for (status, count) in counts {
                metrics
                    .users
                    .with_label_values(&[status.as_str()])
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the database did not answer");
            metrics.database_up.set(0);
        }
    }
    metrics
        .hashing_queued
        .set(i64::try_from(state.hashing.queued()).unwrap_or(i64::MAX));
    let body = metrics.render().map_err(|e| ApiError::internal(&e))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_from_clients_are_bounded_and_plain() {
        for good in [
            "abc",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            &"a".repeat(128),
        ] {
            assert_eq!(sane_request_id(good.as_bytes()), Some(good));
        }
        for bad in [
            "",
            "has space",
            "new\nline",
            "<script>",
            "quote\"",
            "ünïcode",
            &"a".repeat(129),
        ] {
            assert_eq!(sane_request_id(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn made_ids_are_unique_and_sane() {
        let maker = IdMaker::new();
        let (a, b) = (maker.make(), maker.make());
        assert_ne!(a, b);
        assert!(sane_request_id(a.as_bytes()).is_some());
        assert!(a.to_str().unwrap().starts_with(&maker.prefix));
        assert_ne!(IdMaker::new().prefix, maker.prefix);
    }

    #[test]
    fn metrics_tokens_are_long_plain_and_never_shown() {
        let token = MetricsToken::new("s3cret-scrape-token").unwrap();
        assert_eq!(format!("{token:?}"), "MetricsToken(***)");
        for bad in [
            "",
            "short",
            "has a space in it ok",
            "tab\tseparated-token-x",
            "ünïcödé-token-long",
        ] {
            let problem = MetricsToken::new(bad).unwrap_err();
            assert!(!bad.is_empty() && !problem.contains(bad) || bad.is_empty());
        }
        let request = |value: &str| {
            actix_web::test::TestRequest::default()
                .insert_header(("Authorization", value))
                .to_http_request()
        };
        assert!(token.admits(&request("Bearer s3cret-scrape-token")));
        assert!(token.admits(&request("bearer s3cret-scrape-token")));
        for wrong in [
            "Bearer s3cret-scrape-toke",
            "Bearer s3cret-scrape-tokenn",
            "Basic s3cret-scrape-token",
            "s3cret-scrape-token",
        ] {
            assert!(!token.admits(&request(wrong)), "{wrong}");
        }
        assert!(!token.admits(&actix_web::test::TestRequest::default().to_http_request()));
    }

    #[test]
    fn metrics_render_in_the_text_format() {
        let metrics = Metrics::new().unwrap();
        metrics.observe("GET", "/api/auth/me", "200", 0.001);
        let text = String::from_utf8(metrics.render().unwrap()).unwrap();
        assert!(text.contains(
            "gatehouse_http_requests_total{method=\"GET\",route=\"/api/auth/me\",status=\"200\"} 1"
        ));
    }
}
