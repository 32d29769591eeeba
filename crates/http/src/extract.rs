//! Getting things out of requests: the signed-in user, and bodies parsed strictly with
//! JSON errors for every way they can be wrong.

use std::future::{ready, Future, Ready};
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use gatehouse_domain::{Error as DomainError, Session, User};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};
use crate::AppState;

/// The session of the request's bearer token, its user loaded fresh from the store:
/// approved, the token's session its own and live, and no password change since it was
/// issued. 401 otherwise.
#[derive(Debug)]
pub struct CurrentUser(pub Session);

/// A [`CurrentUser`] who is an admin; 403 for other users.
#[derive(Debug)]
pub struct AdminUser(pub User);

/// An [`AdminUser`] with the session of their token (for a route that marks the admin's own
/// session); 403 for other users.
#[derive(Debug)]
pub struct AdminSession(pub Session);

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
pub(crate) fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

type LocalFuture<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

impl FromRequest for CurrentUser {
    type Error = ApiError;
    type Future = LocalFuture<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let token = token.ok_or_else(ApiError::unauthenticated)?;
            let state = state.ok_or_else(|| ApiError::internal(&MissingState))?;
            // One await: the store's session port reads after this call and never blocks
            // this thread on a round trip (SQLite reads a lone lookup inline; lookups that
            // overlap, and every PostgreSQL lookup, are answered in batches by the store's
            // own thread).
            let session = state.users.current_user(&token).await?;
            Ok(Self(session))
        })
    }
}

impl FromRequest for AdminSession {
    type Error = ApiError;
    type Future = LocalFuture<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let current = CurrentUser::from_request(req, payload);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let CurrentUser(session) = current.await?;
            if session.user.is_admin {
                if let Some(state) = &state {
                    state.users.ensure_admin_may_act(&session.user)?;
                }
                Ok(Self(session))
            } else {
                Err(DomainError::AdminRequired.into())
            }
        })
    }
}

impl FromRequest for AdminUser {
    type Error = ApiError;
    type Future = LocalFuture<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let admin = AdminSession::from_request(req, payload);
        Box::pin(async move { admin.await.map(|AdminSession(session)| Self(session.user)) })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the application state is not registered")]
struct MissingState;

/// The media type of the request, lower-cased, without parameters.
fn media_type(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    (!essence.is_empty()).then_some(essence)
}

pub(crate) fn is_json(req: &HttpRequest) -> bool {
    media_type(req).is_some_and(|m| {
        m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
    })
}

pub(crate) fn is_form(req: &HttpRequest) -> bool {
    media_type(req).is_some_and(|m| m == "application/x-www-form-urlencoded")
}

/// Parses a JSON object body into `T`, strictly: 415 without a JSON content type, 422 for
/// anything else wrong (syntax, not an object, unknown or missing fields, wrong types).
pub(crate) fn json_body<T: DeserializeOwned>(
    req: &HttpRequest,
    body: &[u8],
) -> Result<T, ApiError> {
    if !is_json(req) {
        return Err(ApiError::unsupported_media_type("application/json"));
    }
    parse_json(body)
}

pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let start = body.iter().find(|b| !b.is_ascii_whitespace());
    match start {
        None => return Err(ApiError::malformed_json("the body is empty")),
        Some(b'{') => {}
        Some(_) => {
            return Err(ApiError::invalid("body", "must be a JSON object"));
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            ApiError::malformed_json(&without_position(&inner.to_string()))
        } else {
            field_error(&path, &without_position(&inner.to_string()))
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::malformed_json(&without_position(&e.to_string())))?;
    Ok(value)
}

/// Parses a URL-encoded form or query string into `T`; 422 for unknown, missing,
/// repeated or malformed fields.
pub(crate) fn parse_form<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    serde_urlencoded::from_bytes(raw).map_err(|e| field_error(".", &e.to_string()))
}

/// serde's messages end in " at line 1 column 9", which helps nobody reading an API error.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// A 422 naming the field: from the path when serde knew it, else from the message's
/// backquoted name (`missing field `password``, `unknown field `isAdmin``).
fn field_error(path: &str, message: &str) -> ApiError {
    let field = if path.is_empty() || path == "." {
        message
            .split('`')
            .nth(1)
            .filter(|_| message.contains("field `"))
            .unwrap_or("body")
            .to_owned()
    } else {
        path.to_owned()
    };
    ApiError::validation(vec![FieldError::new(field, message)])
}

// ---- Strict bodies and queries as extractors ---------------------------------------------

/// A JSON object body of type `T`, parsed strictly as [`json_body`] does: 415 without a
/// JSON content type, 422 naming the field for anything else wrong (the contract's error
/// bodies). A body over the limit, or too slow, fails the extraction itself (413, 408),
/// as `web::Bytes` does.
///
/// The verdict on the body waits for the handler, which takes it with
/// [`into_inner`](Self::into_inner): actix extracts a handler's arguments together and
/// answers the first failure to be ready, so a body refused at once would otherwise
/// overtake the 401 or 403 of a token still being checked, and show someone without the
/// right to call the operation what it would have said of the body.
#[derive(Debug)]
pub(crate) struct StrictJson<T>(Result<T, ApiError>);

impl<T> StrictJson<T> {
    /// The parsed body, or the 415 or 422 for it.
    pub(crate) fn into_inner(self) -> Result<T, ApiError> {
        self.0
    }

    /// The same body read as another type (when it parsed).
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> StrictJson<U> {
        StrictJson(self.0.map(f))
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for StrictJson<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = web::Bytes::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let body = body.await?;
            Ok(Self(json_body(&req, &body)))
        })
    }
}

/// The query string as `T`, parsed strictly as [`parse_form`] does: 422 naming the field
/// for an unknown, repeated or malformed parameter. The verdict waits for the handler, as
/// [`StrictJson`]'s does, and for the same reason.
#[derive(Debug)]
pub(crate) struct StrictQuery<T>(Result<T, ApiError>);

impl<T> StrictQuery<T> {
    /// The parsed query, or the 422 for it.
    pub(crate) fn into_inner(self) -> Result<T, ApiError> {
        self.0
    }
}

impl<T: DeserializeOwned> FromRequest for StrictQuery<T> {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self(parse_form(req.query_string().as_bytes()))))
    }
}
