//! Gatehouse's HTTP API on actix-web.
//!
//! [`configure`] mounts every route of the contract (`shared/API.md`) with its error
//! handling; the binary, the in-process tests and the black-box tests all use it. Handlers
//! parse requests into domain types and run the domain's use cases off the async workers:
//! database work on actix's blocking pool, bcrypt on the bounded [`HashingPool`].

mod approval;
mod assets;
mod body_timeout;
mod client;
mod dto;
mod error;
mod extract;
mod handlers;
mod hashing;
mod listing;
mod mfa;
mod observe;
mod openapi;
mod passkeys;
mod recovery;
mod rfc3339;
mod routes;
mod schemas;
mod sessions;
pub mod webauthn;
mod webhooks;

use actix_web::body::EitherBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::middleware::{DefaultHeaders, ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, ResponseError};
use gatehouse_domain::UserService;

pub use approval::{invitation_url, CreatedInvitation, InvitationPublic};
pub use assets::CONSOLE_CSP;
pub use body_timeout::DEFAULT_BODY_TIMEOUT;
pub use client::TrustedProxies;
pub use dto::UserPublic;
pub use error::{ApiError, FieldError};
pub use extract::{AdminSession, AdminUser, CurrentUser};
pub use hashing::{lower_this_threads_priority, HashingPool, HashingTicket, DEFAULT_HASHING_NICE};
pub use observe::{sane_request_id, DeliveryCounter, Metrics, MetricsToken, REQUEST_ID};
pub use rfc3339::Rfc3339;
pub use routes::{paths, Endpoint, Verb, ENDPOINTS};
pub use webhooks::{DeliveryPublic, MailSettings, WebhookPublic, WebhookWithSecret};

#[cfg(feature = "testing")]
pub mod testing;

/// The largest request body accepted: 16 KiB is plenty for this API.
pub const BODY_LIMIT: usize = 16 * 1024;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    users: UserService,
    hashing: std::sync::Arc<HashingPool>,
    proxies: TrustedProxies,
    cors_origins: Vec<String>,
    metrics: std::sync::Arc<Metrics>,
    metrics_token: Option<MetricsToken>,
    db_slots: std::sync::Arc<tokio::sync::Semaphore>,
    /// How long a request may wait for a database slot before it is answered 503.
    slot_wait: std::time::Duration,
    body_timeout: std::time::Duration,
    access_log: bool,
    readiness: std::sync::Arc<Readiness>,
    /// `GATEHOUSE_PUBLIC_URL`: the console's address, for links (invitations).
    public_url: Option<String>,
    /// `GATEHOUSE_WEBHOOK_ALLOW_PRIVATE`: whether webhook endpoints may point to loopback,
    /// private, link-local and other non-public addresses.
    allow_private_webhooks: bool,
    mail_settings: std::sync::Arc<MailSettings>,
}

/// `/readyz`'s bound and whether a probe is still out (see `handlers::readyz`).
#[derive(Debug)]
pub(crate) struct Readiness {
    /// How long a probe may take before `/readyz` answers 503 without it.
    pub(crate) bound: std::time::Duration,
    /// A probe is running on the blocking pool (perhaps stuck on a database that stopped
    /// answering): no second one is started beside it.
    pub(crate) in_flight: std::sync::atomic::AtomicBool,
}

/// Database work allowed off the async workers at once unless told otherwise (the storage
/// crate's default pool size).
const DEFAULT_DATABASE_SLOTS: usize = 8;

/// How long a request waits for a database slot, or for a hashing thread to take its
/// hash, unless told otherwise (the storage crate's default pool wait).
const DEFAULT_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl AppState {
    /// State for the handlers: the use cases and the bcrypt lane; no trusted proxies and no
    /// CORS.
    #[must_use]
    pub fn new(users: UserService, hashing: HashingPool) -> Self {
        // The metric names are constants, checked by the unit tests: registering them in a
        // fresh registry cannot fail.
        #[allow(clippy::expect_used)]
        let metrics = std::sync::Arc::new(Metrics::new().expect("metrics register"));
        Self {
            users,
            hashing: std::sync::Arc::new(hashing.with_metrics(metrics.clone())),
            proxies: TrustedProxies::default(),
            cors_origins: Vec::new(),
            metrics,
            metrics_token: None,
            db_slots: std::sync::Arc::new(tokio::sync::Semaphore::new(DEFAULT_DATABASE_SLOTS)),
            slot_wait: DEFAULT_QUEUE_WAIT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            access_log: true,
            readiness: std::sync::Arc::new(Readiness {
                bound: std::time::Duration::from_secs(5),
                in_flight: std::sync::atomic::AtomicBool::new(false),
            }),
            public_url: None,
            allow_private_webhooks: false,
            mail_settings: std::sync::Arc::new(MailSettings::describe(
                None,
                None,
                None,
                std::time::Duration::from_secs(60),
            )),
        }
    }

    /// The console's address as people reach it (`GATEHOUSE_PUBLIC_URL`), for the links
    /// Gatehouse hands out (an invitation's `url`); none unless set.
    #[must_use]
    pub fn with_public_url(mut self, url: Option<String>) -> Self {
        self.public_url = url.map(|u| u.trim_end_matches('/').to_owned());
        self
    }

    /// Lets webhook endpoints point to loopback, private, link-local and other non-public
    /// addresses (`GATEHOUSE_WEBHOOK_ALLOW_PRIVATE=true`: a receiver on the same machine or
    /// network); refused with 422 `invalid_url` by default.
    #[must_use]
    pub fn with_webhook_allow_private(mut self, allow: bool) -> Self {
        self.allow_private_webhooks = allow;
        self
    }

    /// What `GET /settings/mail` shows (see [`MailSettings::describe`]; nothing
    /// configured by default).
    #[must_use]
    pub fn with_mail_settings(mut self, settings: MailSettings) -> Self {
        self.mail_settings = std::sync::Arc::new(settings);
        self
    }

    /// How mail is configured.
    pub(crate) fn mail_settings(&self) -> &MailSettings {
        &self.mail_settings
    }

    /// The console's address, without a trailing slash.
    pub(crate) fn public_url(&self) -> Option<&str> {
        self.public_url.as_deref()
    }

    /// How long `/readyz`'s probe of the database may take (the pool's wait, 5 s by
    /// default) before it answers 503 without waiting for the probe.
    #[must_use]
    pub fn with_readiness_bound(mut self, bound: std::time::Duration) -> Self {
        self.readiness = std::sync::Arc::new(Readiness {
            bound,
            in_flight: std::sync::atomic::AtomicBool::new(false),
        });
        self
    }

    /// Writes one access line per request at `info` (the default), or none.
    #[must_use]
    pub fn with_access_log(mut self, on: bool) -> Self {
        self.access_log = on;
        self
    }

    /// The counter of webhook attempts (`gatehouse_webhook_deliveries_total`) on this
    /// app's metrics, for the outbox's dispatcher.
    #[must_use]
    pub fn delivery_counter(&self) -> DeliveryCounter {
        self.metrics.delivery_counter()
    }

    /// Where `/metrics` reads how many log lines the log writer dropped.
    #[must_use]
    pub fn with_dropped_log_lines(self, source: fn() -> u64) -> Self {
        self.metrics.count_dropped_log_lines(source);
        self
    }

    /// Requires `Authorization: Bearer <token>` on `GET /metrics` (open without one).
    #[must_use]
    pub fn with_metrics_token(mut self, token: Option<MetricsToken>) -> Self {
        self.metrics_token = token;
        self
    }

    /// Answers 408, and closes the connection, when a request body has not arrived this
    /// long after the request's head ([`DEFAULT_BODY_TIMEOUT`] unless set).
    #[must_use]
    pub fn with_body_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// Lets at most `slots` requests do database work on the blocking pool at once (the
    /// size of the connection pool): the rest wait their turn in order, without a thread,
    /// instead of racing for a connection inside the pool, whose waiters can be overtaken
    /// again and again (seen as a p99 of 400 ms on PostgreSQL).
    #[must_use]
    pub fn with_database_slots(mut self, slots: usize) -> Self {
        self.db_slots = std::sync::Arc::new(tokio::sync::Semaphore::new(slots.max(1)));
        self
    }

    /// How long a request may wait in line for a database slot, and for a hashing thread
    /// to start its hash (5 s unless set: the pool's wait), before it is answered 503
    /// (`database_unavailable` and `overloaded`). While the database hangs, slots come
    /// free only as calls run out of time: the line must not grow without bound.
    #[must_use]
    pub fn with_queue_wait(mut self, wait: std::time::Duration) -> Self {
        self.slot_wait = wait;
        self.hashing.set_max_wait(wait);
        self
    }

    /// A database slot, waited for at most the queue wait (see [`Self::with_queue_wait`]).
    pub(crate) async fn database_slot(
        &self,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        match tokio::time::timeout(self.slot_wait, self.db_slots.clone().acquire_owned()).await {
            Ok(slot) => slot.map_err(|e| ApiError::internal(&e)),
            Err(_) => Err(gatehouse_domain::Error::unavailable(format!(
                "no database slot came free within {:?}: the database is slow to answer",
                self.slot_wait
            ))
            .into()),
        }
    }

    /// Runs a blocking use case on actix's blocking pool, inside the request's log span,
    /// once a database slot is free (first come, first served).
    pub(crate) async fn blocking<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> Result<T, gatehouse_domain::Error> + Send + 'static,
        T: Send + 'static,
    {
        let _slot = self.database_slot().await?;
        let span = tracing::Span::current();
        web::block(move || span.in_scope(work))
            .await
            .map_err(|e| ApiError::internal(&e))?
            .map_err(ApiError::from)
    }

    /// Believes `X-Forwarded-For` from these proxies.
    #[must_use]
    pub fn with_trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// Allows cross-origin requests from these origins (none by default: no CORS headers).
    #[must_use]
    pub fn with_cors_origins(mut self, origins: Vec<String>) -> Self {
        self.cors_origins = origins;
        self
    }
}

/// CORS for the configured origins: bearer-token requests (no cookies), the API's methods,
/// and the headers clients read.
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("gatehouse-device"),
        ])
        .expose_headers([
            "X-Total-Count",
            "Retry-After",
            "WWW-Authenticate",
            "X-Request-Id",
        ])
        .max_age(600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// Mounts every operation of the route table [`ENDPOINTS`] and the static files (and
/// nothing else), the body limit and deadline, the security headers and JSON errors for everything, including actix's own 404, 405 and 413
/// responses.
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let cors_enabled = !state.cors_origins.is_empty();
        let cors = cors(&state.cors_origins);
        let metrics = state.metrics.clone();
        let body_timeout = state.body_timeout;
        let access_log = state.access_log;
        cfg.service(
            web::scope("")
                // Innermost: its 408 gets CORS, the security headers, a request id and a
                // count in the metrics like any other response.
                .wrap(body_timeout::BodyDeadline(body_timeout))
                .wrap(actix_web::middleware::Condition::new(cors_enabled, cors))
                .app_data(web::Data::new(state))
                .app_data(web::Data::new(openapi::served()))
                .app_data(web::PayloadConfig::new(BODY_LIMIT))
                .wrap(ErrorHandlers::new().default_handler(json_error_fallback))
                .wrap(
                    DefaultHeaders::new()
                        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                        .add((header::CACHE_CONTROL, "no-store")),
                )
                .wrap(actix_web::middleware::from_fn(move |req, next| {
                    observe::observe(metrics.clone(), access_log, req, next)
                }))
                // Every route comes from the route table (routes.rs), from which the
                // OpenAPI document is made too; add routes there, not here.
                .configure(|scope| {
                    for resource in routes::resources() {
                        scope.service(resource);
                    }
                })
                .default_service(web::to(handlers::not_found)),
        );
    }
}

/// Gives any error response that is not already JSON the contract's JSON body, keeping
/// its status and headers.
fn json_error_fallback<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let (req, res) = res.into_parts();
    let replacement = ApiError::for_status(res.status()).error_response();
    let mut rebuilt = replacement.map_into_boxed_body();
    for (name, value) in res.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt.headers_mut().insert(name.clone(), value.clone());
        }
    }
    let res: ServiceResponse<EitherBody<B>> =
        ServiceResponse::new(req, rebuilt).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}
