//! Sessions and refresh tokens (API.md, "Sessions and refresh tokens"): trading a refresh
//! token for the next pair (`POST /token`), and the sessions a user and an admin can see
//! and end. Login, logout and the password change, which start, end and renew sessions,
//! are in [`crate::handlers`].

use actix_web::{web, HttpRequest, HttpResponse};
use gatehouse_domain::{Actor, SessionQuery, StoredSession};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::dto::TokenResponse;
use crate::error::ApiError;
use crate::extract::{is_form, is_json, AdminSession, AdminUser, CurrentUser, StrictQuery};
use crate::handlers::{number, origin, user_id, Problems};
use crate::rfc3339::Rfc3339;
use crate::schemas::{
    AdminErrors, Count, SessionIdErrors, SignedInErrors, Timestamp, UnsupportedMediaType,
    UserIdErrors, UserIdSchema, ValidationFailed,
};
use crate::AppState;

type Result<T> = std::result::Result<T, ApiError>;

/// `POST /token`, as a form or JSON. Other parameters (`client_id`, `scope`) are ignored, as
/// OAuth 2 asks of a token endpoint.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub(crate) struct TokenRequest {
    /// `refresh_token`, the one grant this endpoint takes.
    #[schema(value_type = String, example = "refresh_token")]
    pub grant_type: Option<String>,
    /// The refresh token of the last token response (single use).
    #[schema(value_type = String)]
    pub refresh_token: Option<String>,
}

/// A session as its user and admins see it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Session)]
pub(crate) struct SessionPublic {
    /// Its id: the `sid` of its access tokens.
    #[schema(minimum = 1)]
    id: i64,
    /// The login that started it.
    #[schema(value_type = Timestamp)]
    created_at: Rfc3339,
    /// Its last refresh (the login, before any).
    #[schema(value_type = Timestamp)]
    last_used_at: Rfc3339,
    /// When it ends unless refreshed before (`GATEHOUSE_SESSION_IDLE_TTL` after its last
    /// refresh, never past `GATEHOUSE_SESSION_MAX_AGE` after its login).
    #[schema(value_type = Timestamp)]
    expires_at: Rfc3339,
    /// The client's address at the login.
    #[schema(value_type = Option<String>)]
    address: Option<String>,
    /// The client's `User-Agent` at the login (at most 256 characters).
    #[schema(value_type = Option<String>)]
    user_agent: Option<String>,
    /// Whether it is the session of the token this request came with.
    current: bool,
}

impl SessionPublic {
    fn new(session: StoredSession, current: i64) -> Self {
        Self {
            id: session.id,
            created_at: Rfc3339::new(session.created_at),
            last_used_at: Rfc3339::new(session.last_used_at),
            expires_at: Rfc3339::new(session.idle_expires_at.min(session.expires_at)),
            address: session.address,
            user_agent: session.user_agent,
            current: session.id == current,
        }
    }
}

/// Query parameters of the session listings, as text.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListSessionsParams {
    /// At most this many (0: an empty page); without it, every one.
    #[param(value_type = Option<Count>)]
    pub limit: Option<String>,
    /// Skip this many first (default 0).
    #[param(value_type = Option<Count>)]
    pub offset: Option<String>,
}

fn session_query(params: ListSessionsParams) -> Result<SessionQuery> {
    let mut problems = Problems::default();
    let limit = number(&mut problems, "limit", params.limit);
    let offset = number(&mut problems, "offset", params.offset);
    problems.finish()?;
    Ok(SessionQuery {
        limit,
        offset: offset.unwrap_or(0),
    })
}

fn session_id(raw: &str) -> Result<i64> {
    raw.parse::<gatehouse_domain::UserId>()
        .map(gatehouse_domain::UserId::get)
        .map_err(|_| ApiError::invalid("id", "Session id must be a positive 64-bit integer"))
}

fn listed(page: gatehouse_domain::Page<StoredSession>, current: i64) -> HttpResponse {
    let body: Vec<SessionPublic> = page
        .items
        .into_iter()
        .map(|s| SessionPublic::new(s, current))
        .collect();
    HttpResponse::Ok()
        .insert_header(("X-Total-Count", page.total))
        .json(body)
}

/// An OAuth 2 `invalid_request`: the request is not a refresh request at all.
fn invalid_request(detail: &'static str) -> ApiError {
    ApiError::oauth("invalid_request", detail)
}

#[utoipa::path(
    post,
    path = "/api/auth/token",
    tag = "sessions",
    summary = "Refresh: trade a refresh token for the next pair",
    description = "OAuth 2's refresh grant (RFC 6749 §6), as a form or JSON. The refresh \
        token presented is spent; the answer carries a new access token and the session's \
        next refresh token, and the session's idle expiry starts again (never past its \
        maximum age). Of concurrent refreshes with one token exactly one succeeds. A \
        refresh token that was spent already and comes back ends its whole session at once \
        (its access tokens included; audited as `refresh_token_reused`). Errors are 400 with \
        OAuth 2's `error` beside `code`: `invalid_grant` (unknown, spent, expired or ended, \
        or a user no longer approved), `unsupported_grant_type`, `invalid_request` (no \
        `grant_type` or `refresh_token`, or a body that does not parse). Other parameters \
        (`client_id`, `scope`) are ignored.",
    request_body(
        description = "A form or JSON",
        content(
            (TokenRequest = "application/x-www-form-urlencoded"),
            (TokenRequest = "application/json"),
        )
    ),
    responses(
        (status = 200, description = "The session's next pair", body = TokenResponse),
        (status = 400, description = "`invalid_grant`, `unsupported_grant_type` or \
            `invalid_request`, with `error` repeating the code", body = crate::error::ErrorBody),
        (status = 408, response = crate::schemas::RequestTimeout),
        (status = 413, response = crate::schemas::PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = crate::schemas::Unavailable),
    )
)]
pub(crate) async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let outcome = refresh(&state, &req, &body).await;
    state.metrics.refresh(&outcome);
    Ok(HttpResponse::Ok().json(TokenResponse::from(outcome?)))
}

async fn refresh(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    body: &[u8],
) -> Result<gatehouse_domain::SessionTokens> {
    let request: TokenRequest = if is_form(req) {
        serde_urlencoded::from_bytes(body)
            .map_err(|_| invalid_request("The form does not parse (a parameter given twice?)"))?
    } else if is_json(req) {
        serde_json::from_slice(body).map_err(|_| {
            invalid_request("The body must be a JSON object of strings: grant_type, refresh_token")
        })?
    } else {
        return Err(ApiError::unsupported_media_type(
            "application/x-www-form-urlencoded or application/json",
        ));
    };
    match request.grant_type.as_deref() {
        None | Some("") => return Err(invalid_request("grant_type is required")),
        Some("refresh_token") => {}
        Some(_) => {
            return Err(ApiError::oauth(
                "unsupported_grant_type",
                "Only grant_type=refresh_token is supported here (log in at /api/auth/login)",
            ))
        }
    }
    let Some(refresh_token) = request.refresh_token.filter(|t| !t.is_empty()) else {
        return Err(invalid_request("refresh_token is required"));
    };
    let (users, origin) = (state.users.clone(), origin(state, req));
    state
        .blocking(move || users.refresh(&refresh_token, &origin))
        .await
}

#[utoipa::path(
    get,
    path = "/api/auth/me/sessions",
    tag = "sessions",
    summary = "The signed-in user's sessions",
    description = "Live sessions only (not ended, not expired), newest first; `current` \
        marks the one this request's token belongs to. Any other query parameter is 422.",
    security(("bearer" = [])),
    params(ListSessionsParams),
    responses(
        (status = 200, description = "A page of sessions", body = Vec<SessionPublic>,
            headers(("X-Total-Count" = u64, description = "How many live sessions, before paging"))),
        (status = 422, response = ValidationFailed),
        SignedInErrors,
    )
)]
pub(crate) async fn my_sessions(
    CurrentUser(session): CurrentUser,
    state: web::Data<AppState>,
    query: StrictQuery<ListSessionsParams>,
) -> Result<HttpResponse> {
    let query = session_query(query.into_inner()?)?;
    let current = session.claims.session_id;
    let users = state.users.clone();
    let page = state
        .blocking(move || users.my_sessions(&session, &query))
        .await?;
    Ok(listed(page, current))
}

#[utoipa::path(
    delete,
    path = "/api/auth/me/sessions/{id}",
    tag = "sessions",
    summary = "End one of the signed-in user's sessions",
    description = "The session's refresh token and access tokens stop working at once. \
        Naming the current session ends it, like logging out. A session that is not the \
        caller's, or not live, is 404.",
    security(("bearer" = [])),
    params(("id" = UserIdSchema, Path, description = "The session's id")),
    responses(
        (status = 204, description = "Ended; no body"),
        SignedInErrors,
        SessionIdErrors,
    )
)]
pub(crate) async fn end_my_session(
    CurrentUser(session): CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let id = session_id(&id)?;
    let (users, origin) = (state.users.clone(), origin(&state, &req));
    state
        .blocking(move || users.end_my_session(&session, id, &origin))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    delete,
    path = "/api/auth/me/sessions",
    tag = "sessions",
    summary = "End every other session of the signed-in user",
    description = "Every session but the current one ends (\"sign out everywhere else\").",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Ended; no body"),
        SignedInErrors,
    )
)]
pub(crate) async fn end_other_sessions(
    CurrentUser(session): CurrentUser,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let (users, origin) = (state.users.clone(), origin(&state, &req));
    state
        .blocking(move || users.end_other_sessions(&session, &origin))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/api/auth/users/{id}/sessions",
    tag = "sessions",
    summary = "A user's sessions",
    description = "Live sessions only, newest first; `current` marks the admin's own \
        session when the user is themselves.",
    security(("bearer" = [])),
    params(
        ("id" = UserIdSchema, Path, description = "The user's id"),
        ListSessionsParams,
    ),
    responses(
        (status = 200, description = "A page of sessions", body = Vec<SessionPublic>,
            headers(("X-Total-Count" = u64, description = "How many live sessions, before paging"))),
        AdminErrors,
        UserIdErrors,
    )
)]
pub(crate) async fn user_sessions(
    AdminSession(session): AdminSession,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: StrictQuery<ListSessionsParams>,
) -> Result<HttpResponse> {
    let target = user_id("id", &id)?;
    let query = session_query(query.into_inner()?)?;
    let (current, admin) = (session.claims.session_id, session.user.id);
    let users = state.users.clone();
    let page = state
        .blocking(move || users.user_sessions(Actor::User(admin), target, &query))
        .await?;
    Ok(listed(page, current))
}

#[utoipa::path(
    delete,
    path = "/api/auth/users/{id}/sessions",
    tag = "sessions",
    summary = "Sign a user out everywhere",
    description = "Every session of the user ends; their refresh tokens and access tokens \
        stop working at once (audited as `sessions_revoked`).",
    security(("bearer" = [])),
    params(("id" = UserIdSchema, Path, description = "The user's id")),
    responses(
        (status = 204, description = "Ended; no body"),
        AdminErrors,
        UserIdErrors,
    )
)]
pub(crate) async fn end_user_sessions(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let target = user_id("id", &id)?;
    let (users, origin) = (state.users.clone(), origin(&state, &req));
    state
        .blocking(move || users.end_user_sessions(Actor::User(admin.id), target, &origin))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
