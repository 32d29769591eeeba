//! Passkeys (API.md, "Multi-factor sign-in"): registering one from `/me`, listing and
//! deleting them, and signing in with one (no password, no second step). The WebAuthn
//! JSON of the browser passes through as it is (`PublicKeyCredential.toJSON()`); the
//! ceremonies run in the domain, behind its port ([`crate::webauthn::RelyingParty`]).
//! Without a relying party (`GATEHOUSE_PUBLIC_URL`) every route answers 404 `not_enabled`.

use actix_web::{web, HttpRequest, HttpResponse};
use gatehouse_domain::{PasskeyName, StoredPasskey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::dto::TokenResponse;
use crate::error::ApiError;
use crate::extract::{CurrentUser, StrictJson};
use crate::handlers::origin;
use crate::rfc3339::Rfc3339;
use crate::schemas::{
    BodyErrors, Forbidden, InvalidCredential, NotEnabled, PasskeyNotFound, SignedInErrors,
    Timestamp, TooManyRequests, Unauthorized, Unavailable, UserIdSchema, ValidationFailed,
};
use crate::AppState;

type Result<T> = std::result::Result<T, ApiError>;

/// `POST /me/passkeys/register/finish`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterFinishRequest {
    /// What to call it (1 to 64 characters once trimmed, one line).
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// The new credential, as `PublicKeyCredential.toJSON()` gives it (binary fields in
    /// base 64, URL-safe).
    #[schema(value_type = Object)]
    pub credential: Value,
    /// The `challenge_id` of the start (optional: a user has one registration under way,
    /// the latest started).
    #[schema(max_length = 256)]
    pub challenge_id: Option<String>,
}

/// `POST /login/passkey/finish`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginFinishRequest {
    /// The `challenge_id` of `POST /api/auth/login/passkey/start` (single-use).
    #[schema(max_length = 256)]
    pub challenge_id: String,
    /// The assertion, as `PublicKeyCredential.toJSON()` gives it.
    #[schema(value_type = Object)]
    pub credential: Value,
}

/// Options for `navigator.credentials.create` or `.get`, with the ceremony's id.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PasskeyOptions {
    /// Names the ceremony at its finish; it lives 5 minutes and is spent by its finish.
    challenge_id: String,
    /// The WebAuthn options (`PublicKeyCredentialCreationOptionsJSON` or
    /// `PublicKeyCredentialRequestOptionsJSON`: binary fields in base 64, URL-safe).
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    public_key: Value,
}

/// A passkey as its user sees it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Passkey)]
pub(crate) struct PasskeyPublic {
    /// Its id.
    #[schema(minimum = 1)]
    id: i64,
    /// The name its user gave it.
    name: String,
    /// When it was registered.
    #[schema(value_type = Timestamp)]
    created_at: Rfc3339,
    /// When it last signed its user in, if ever.
    #[schema(value_type = Option<Timestamp>)]
    last_used_at: Option<Rfc3339>,
}

impl From<StoredPasskey> for PasskeyPublic {
    fn from(passkey: StoredPasskey) -> Self {
        Self {
            id: passkey.id,
            name: passkey.name,
            created_at: Rfc3339::new(passkey.created_at),
            last_used_at: passkey.last_used_at.map(Rfc3339::new),
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/auth/me/passkeys/register/start",
    tag = "auth",
    summary = "Begin registering a passkey",
    description = "The options for `navigator.credentials.create` (`publicKey`): a \
        discoverable credential (resident key required) with user verification required, \
        the user's passkeys excluded; and the `challenge_id` of this registration. A new \
        start replaces the registration under way.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The creation options", body = PasskeyOptions),
        (status = 404, response = NotEnabled),
        SignedInErrors,
    )
)]
pub(crate) async fn begin_registration(
    CurrentUser(session): CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let users = state.users.clone();
    let started = state
        .blocking(move || users.begin_passkey_registration(&session))
        .await?;
    let public_key = match started.options {
        Value::Object(mut options) => options.remove("publicKey").unwrap_or(Value::Null),
        other => other,
    };
    Ok(HttpResponse::Ok().json(PasskeyOptions {
        challenge_id: started.challenge_id,
        public_key,
    }))
}

#[utoipa::path(
    post,
    path = "/api/auth/me/passkeys/register/finish",
    tag = "auth",
    summary = "Finish registering a passkey",
    description = "The credential the browser created, verified against the registration \
        under way (spent whatever the outcome), is stored as `name`: `mfa_enabled` turns \
        on, audit `passkey_added`. A credential that does not verify, or no registration \
        under way: 400 `invalid_credential`.",
    security(("bearer" = [])),
    request_body(content = RegisterFinishRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The new passkey", body = PasskeyPublic),
        (status = 400, response = InvalidCredential),
        (status = 404, response = NotEnabled),
        SignedInErrors,
        BodyErrors,
    )
)]
pub(crate) async fn finish_registration(
    CurrentUser(session): CurrentUser,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: StrictJson<RegisterFinishRequest>,
) -> Result<HttpResponse> {
    let request = body.into_inner()?;
    let name =
        PasskeyName::parse(&request.name).map_err(|e| ApiError::invalid("name", e.to_string()))?;
    let (users, at) = (state.users.clone(), origin(&state, &req));
    let passkey = state
        .blocking(move || {
            users.finish_passkey_registration(
                &session,
                &name,
                &request.credential,
                request.challenge_id.as_deref(),
                &at,
            )
        })
        .await?;
    Ok(HttpResponse::Created().json(PasskeyPublic::from(passkey)))
}

#[utoipa::path(
    get,
    path = "/api/auth/me/passkeys",
    tag = "auth",
    summary = "The signed-in user's passkeys",
    description = "Newest first.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The passkeys", body = Vec<PasskeyPublic>),
        (status = 404, response = NotEnabled),
        SignedInErrors,
    )
)]
pub(crate) async fn list_passkeys(
    CurrentUser(session): CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let users = state.users.clone();
    let passkeys = state
        .blocking(move || users.list_passkeys(&session))
        .await?;
    let body: Vec<PasskeyPublic> = passkeys.into_iter().map(PasskeyPublic::from).collect();
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(
    delete,
    path = "/api/auth/me/passkeys/{id}",
    tag = "auth",
    summary = "Delete one of the signed-in user's passkeys",
    description = "Audit `passkey_removed`; `mfa_enabled` turns off when the user has \
        neither TOTP nor another passkey. A passkey that is not the caller's is 404.",
    security(("bearer" = [])),
    params(("id" = UserIdSchema, Path, description = "The passkey's id")),
    responses(
        (status = 204, description = "Deleted; no body"),
        (status = 404, response = PasskeyNotFound),
        (status = 422, response = ValidationFailed),
        SignedInErrors,
    )
)]
pub(crate) async fn delete_passkey(
    CurrentUser(session): CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let id = id
        .parse::<gatehouse_domain::UserId>()
        .map(gatehouse_domain::UserId::get)
        .map_err(|_| ApiError::invalid("id", "Passkey id must be a positive 64-bit integer"))?;
    let (users, at) = (state.users.clone(), origin(&state, &req));
    state
        .blocking(move || users.delete_passkey(&session, id, &at))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/auth/login/passkey/start",
    tag = "auth",
    summary = "Log in with a passkey: the options",
    description = "The options for `navigator.credentials.get` (`publicKey`: no \
        credentials named, so the authenticator offers the user's passkeys; user \
        verification required) and the `challenge_id` the finish names. Pass \
        `mediation: \"conditional\"` to `get` for passkeys in the browser's autofill.",
    responses(
        (status = 200, description = "The request options", body = PasskeyOptions),
        (status = 404, response = NotEnabled),
        (status = 503, response = Unavailable),
    )
)]
pub(crate) async fn begin_login(state: web::Data<AppState>) -> Result<HttpResponse> {
    let users = state.users.clone();
    let started = state.blocking(move || users.begin_passkey_login()).await?;
    Ok(HttpResponse::Ok().json(PasskeyOptions {
        challenge_id: started.challenge_id,
        public_key: started.public_key,
    }))
}

#[utoipa::path(
    post,
    path = "/api/auth/login/passkey/finish",
    tag = "auth",
    summary = "Log in with a passkey",
    description = "The assertion the browser made, for the login `challenge_id` names \
        (single-use, 5 minutes): the session's tokens, with no password and no second \
        step. 401 `invalid_credential` for an unknown, spent or expired challenge, an \
        unknown passkey, or one that does not verify; once the passkey's account is known \
        the attempt counts like a login of it (429 beyond the limit), and its account must \
        be able to sign in (403).",
    request_body(content = LoginFinishRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "A new session's tokens", body = TokenResponse),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotEnabled),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
        BodyErrors,
    )
)]
pub(crate) async fn finish_login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: StrictJson<LoginFinishRequest>,
) -> Result<HttpResponse> {
    let request = body.into_inner()?;
    let (users, at) = (state.users.clone(), origin(&state, &req));
    let outcome = state
        .blocking(move || {
            users.finish_passkey_login(&request.challenge_id, &request.credential, &at)
        })
        .await;
    state.metrics.login(&outcome);
    Ok(HttpResponse::Ok().json(TokenResponse::from(outcome?)))
}
