//! Gatehouse's HTTP API on actix-web.
//!
//! [`configure`] mounts every route of the contract (`shared/API.md`) with its error
//! handling; the binary, the in-process tests and the black-box tests all use it. Handlers
//! parse requests into domain types and run the domain's use cases off the async workers:
//! database work on actix's blocking pool, bcrypt on the bounded [`HashingPool`].

mod client;
mod dto;
mod error;
mod extract;
mod handlers;
mod hashing;

use actix_web::body::EitherBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::middleware::{DefaultHeaders, ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, ResponseError};
use gatehouse_domain::UserService;

pub use client::TrustedProxies;
pub use error::{ApiError, FieldError};
pub use extract::{AdminUser, CurrentUser};
pub use hashing::HashingPool;

/// The largest request body accepted: 16 KiB is plenty for this API.
pub const BODY_LIMIT: usize = 16 * 1024;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    users: UserService,
    hashing: std::sync::Arc<HashingPool>,
    proxies: TrustedProxies,
    cors_origins: Vec<String>,
}

impl AppState {
    /// State for the handlers: the use cases and the bcrypt lane; no trusted proxies and no
    /// CORS.
    #[must_use]
    pub fn new(users: UserService, hashing: HashingPool) -> Self {
        Self {
            users,
            hashing: std::sync::Arc::new(hashing),
            proxies: TrustedProxies::default(),
            cors_origins: Vec::new(),
        }
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
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .expose_headers(["X-Total-Count", "Retry-After", "WWW-Authenticate"])
        .max_age(600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// Runs a blocking use case on actix's blocking pool.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, gatehouse_domain::Error> + Send + 'static,
    T: Send + 'static,
{
    web::block(work)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(ApiError::from)
}

/// Mounts every route, the body limit, the security headers and JSON errors for
/// everything, including actix's own 404, 405 and 413 responses.
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let cors_enabled = !state.cors_origins.is_empty();
        let cors = cors(&state.cors_origins);
        cfg.service(
            web::scope("")
                .wrap(actix_web::middleware::Condition::new(cors_enabled, cors))
                .app_data(web::Data::new(state))
                .app_data(web::PayloadConfig::new(BODY_LIMIT))
                .wrap(ErrorHandlers::new().default_handler(json_error_fallback))
                .wrap(
                    DefaultHeaders::new()
                        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                        .add((header::CACHE_CONTROL, "no-store")),
                )
                .service(resource("/healthz", "GET").route(web::get().to(handlers::healthz)))
                .service(resource("/readyz", "GET").route(web::get().to(handlers::readyz)))
                .service(
                    resource("/.well-known/jwks.json", "GET").route(web::get().to(handlers::jwks)),
                )
                .service(
                    web::scope("/api/auth")
                        .service(
                            resource("/register", "POST").route(web::post().to(handlers::register)),
                        )
                        .service(resource("/login", "POST").route(web::post().to(handlers::login)))
                        .service(resource("/me", "GET").route(web::get().to(handlers::me)))
                        .service(
                            resource("/me/password", "PUT")
                                .route(web::put().to(handlers::change_password)),
                        )
                        .service(
                            resource("/logout", "POST").route(web::post().to(handlers::logout)),
                        )
                        .service(
                            resource("/audit", "GET").route(web::get().to(handlers::list_audit)),
                        )
                        .service(
                            resource("/users", "GET").route(web::get().to(handlers::list_users)),
                        )
                        .service(
                            resource("/users/pending/count", "GET")
                                .route(web::get().to(handlers::pending_count)),
                        )
                        .service(
                            resource("/users/{id}", "PUT, DELETE")
                                .route(web::put().to(handlers::update_user))
                                .route(web::delete().to(handlers::delete_user)),
                        )
                        .service(
                            resource("/users/{id}/reset-password", "POST")
                                .route(web::post().to(handlers::reset_password)),
                        ),
                )
                .default_service(web::to(handlers::not_found)),
        );
    }
}

/// A resource answering other methods than `allow` with a JSON 405 and an `Allow` header.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<actix_web::HttpResponse, _>(ApiError::method_not_allowed(allow))
    }))
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
