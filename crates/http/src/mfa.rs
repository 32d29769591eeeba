//! Multi-factor sign-in (API.md, "Multi-factor sign-in"): TOTP enrolment from `/me`, the
//! login's second step, and the admin's reset. The routes that need the current password
//! count the attempt on the account first and run bcrypt on the hashing pool, as a
//! password change does.

use actix_web::{web, HttpRequest, HttpResponse};
use gatehouse_domain::{
    Actor, Error as DomainError, LoginStep, MfaChallenge, PasswordChange, Session, UserService,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::dto::TokenResponse;
use crate::error::ApiError;
use crate::extract::{AdminUser, CurrentUser, StrictJson};
use crate::handlers::{origin, user_id};
use crate::schemas::{
    AdminErrors, BodyErrors, Forbidden, InvalidCode, MfaAlreadyEnabled, MfaNotEnabled,
    SignedInErrors, TooManyRequests, Unauthorized, Unavailable, UserIdErrors, UserIdSchema,
};
use crate::AppState;

type Result<T> = std::result::Result<T, ApiError>;

/// `POST /me/mfa/totp` and `POST /me/mfa/recovery-codes`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordRequest {
    /// The current password.
    pub password: String,
}

/// `POST /me/mfa/totp/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CodeRequest {
    /// The 6-digit code the authenticator app shows now.
    #[schema(max_length = 64)]
    pub code: String,
}

/// `DELETE /me/mfa/totp`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DisableTotpRequest {
    /// The current password.
    pub password: String,
    /// A current TOTP code, or an unused recovery code.
    #[schema(max_length = 64)]
    pub code: String,
}

/// `POST /login/mfa`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginMfaRequest {
    /// The `mfa_token` of the login's first answer.
    #[schema(max_length = 256)]
    pub mfa_token: String,
    /// A TOTP code (6 digits) or an unused recovery code (`ABCDE-FGHJK`).
    #[schema(max_length = 64)]
    pub code: String,
}

/// A TOTP enrolment begun.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TotpEnrolmentResponse {
    /// The secret in base 32 (RFC 4648, no padding), for typing into an authenticator app.
    secret: String,
    /// `otpauth://totp/…` for a QR code: SHA1, 6 digits, 30-second period.
    otpauth_uri: String,
}

/// A new set of recovery codes, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RecoveryCodesResponse {
    /// Ten codes (`ABCDE-FGHJK`), each good for one sign-in; the previous set is dead.
    recovery_codes: Vec<String>,
}

/// `GET /me/mfa`: which second factors the signed-in user has.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MfaStatus {
    /// True when the user has TOTP or a passkey (as `mfa_enabled` of the user).
    mfa_enabled: bool,
    /// Whether TOTP is on.
    totp_enabled: bool,
    /// How many recovery codes are unused (0 without TOTP).
    recovery_codes_left: u64,
}

/// A login whose password was right and that needs its second step.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MfaRequiredResponse {
    /// Always true.
    mfa_required: bool,
    /// Single-use: present it with a code at `POST /api/auth/login/mfa`.
    mfa_token: String,
    /// The second factors it takes: `totp`, `recovery_code`.
    methods: Vec<&'static str>,
    /// Seconds it lives (300).
    expires_in: u64,
}

impl From<MfaChallenge> for MfaRequiredResponse {
    fn from(challenge: MfaChallenge) -> Self {
        Self {
            mfa_required: true,
            mfa_token: challenge.token.expose().to_owned(),
            methods: challenge.methods,
            expires_in: challenge.expires_in,
        }
    }
}

/// The answer of a login: the session's tokens, or the second step it needs.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum LoginResponse {
    /// Signed in.
    Tokens(TokenResponse),
    /// The account has TOTP on: no tokens yet.
    MfaRequired(MfaRequiredResponse),
}

impl From<LoginStep> for LoginResponse {
    fn from(step: LoginStep) -> Self {
        match step {
            LoginStep::Done(success) => Self::Tokens(TokenResponse::from(success)),
            LoginStep::MfaRequired(challenge) => Self::MfaRequired(challenge.into()),
        }
    }
}

/// Counts the attempt on the account, checks `password` on the hashing pool, then runs
/// `finish` with the outcome (which records a wrong password and refuses it).
async fn with_password<T: Send + 'static>(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    session: Session,
    password: String,
    finish: impl FnOnce(&UserService, PasswordChange, bool) -> std::result::Result<T, DomainError>
        + Send
        + 'static,
) -> Result<T> {
    if !state.hashing.has_room() {
        return Err(ApiError::overloaded());
    }
    let (users, at) = (state.users.clone(), origin(state, req));
    let change = state
        .blocking(move || users.begin_password_change(&session, &at))
        .await?;
    let ticket = match state.hashing.reserve() {
        Ok(ticket) => ticket,
        Err(overloaded) => {
            let (users, change) = (state.users.clone(), change.clone());
            state
                .blocking(move || users.cancel_password_change(&change))
                .await?;
            return Err(overloaded);
        }
    };
    let users = state.users.clone();
    let (change, verified) = ticket
        .run(move || {
            let verified = users.check_current_password(&change, &password);
            (change, verified)
        })
        .await?;
    let verified = verified?;
    let users = state.users.clone();
    state
        .blocking(move || finish(&users, change, verified))
        .await
}

#[utoipa::path(
    get,
    path = "/api/auth/me/mfa",
    tag = "auth",
    summary = "The signed-in user's second factors",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Which factors are on", body = MfaStatus),
        SignedInErrors,
    )
)]
pub(crate) async fn mfa_status(
    CurrentUser(session): CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let users = state.users.clone();
    let mfa_enabled = session.user.mfa_enabled;
    let left = state
        .blocking(move || users.recovery_codes_left(&session))
        .await?;
    Ok(HttpResponse::Ok().json(MfaStatus {
        mfa_enabled,
        totp_enabled: left.is_some(),
        recovery_codes_left: left.unwrap_or(0),
    }))
}

#[utoipa::path(
    post,
    path = "/api/auth/me/mfa/totp",
    tag = "auth",
    summary = "Begin TOTP enrolment",
    description = "With the current password: a new TOTP secret (RFC 6238: SHA-1, 6 \
        digits, 30 s), pending until confirmed with a first code; a pending one is \
        replaced. The attempt counts on the account like a login (429).",
    security(("bearer" = [])),
    request_body(content = PasswordRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The secret, for the authenticator app", body = TotpEnrolmentResponse),
        (status = 403, response = Forbidden),
        (status = 409, response = MfaAlreadyEnabled),
        (status = 429, response = TooManyRequests),
        SignedInErrors,
        BodyErrors,
    )
)]
pub(crate) async fn begin_totp(
    CurrentUser(session): CurrentUser,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: StrictJson<PasswordRequest>,
) -> Result<HttpResponse> {
    let request = body.into_inner()?;
    let enrolment = with_password(
        &state,
        &req,
        session,
        request.password,
        |users, change, ok| users.begin_totp_enrolment(change, ok),
    )
    .await?;
    Ok(HttpResponse::Ok().json(TotpEnrolmentResponse {
        secret: enrolment.secret,
        otpauth_uri: enrolment.otpauth_uri,
    }))
}

#[utoipa::path(
    post,
    path = "/api/auth/me/mfa/totp/confirm",
    tag = "auth",
    summary = "Turn TOTP on with a first code",
    description = "The code the authenticator app shows turns TOTP on (`mfa_enabled` \
        true, audit `mfa_enabled`) and answers 10 recovery codes, shown this once.",
    security(("bearer" = [])),
    request_body(content = CodeRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "TOTP is on", body = RecoveryCodesResponse),
        (status = 400, response = InvalidCode),
        (status = 404, response = MfaNotEnabled),
        (status = 409, response = MfaAlreadyEnabled),
        SignedInErrors,
        BodyErrors,
    )
)]
pub(crate) async fn confirm_totp(
    CurrentUser(session): CurrentUser,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: StrictJson<CodeRequest>,
) -> Result<HttpResponse> {
    let request = body.into_inner()?;
    let (users, at) = (state.users.clone(), origin(&state, &req));
    let recovery_codes = state
        .blocking(move || users.confirm_totp(&session, &request.code, &at))
        .await?;
    Ok(HttpResponse::Ok().json(RecoveryCodesResponse { recovery_codes }))
}

#[utoipa::path(
    delete,
    path = "/api/auth/me/mfa/totp",
    tag = "auth",
    summary = "Turn TOTP off",
    description = "With the current password and a current code (TOTP or an unused \
        recovery code): TOTP and the recovery codes are deleted (audit `mfa_disabled`). \
        The password attempt counts on the account like a login (429).",
    security(("bearer" = [])),
    request_body(content = DisableTotpRequest, content_type = "application/json"),
    responses(
        (status = 204, description = "TOTP is off"),
        (status = 400, response = InvalidCode),
        (status = 403, response = Forbidden),
        (status = 404, response = MfaNotEnabled),
        (status = 429, response = TooManyRequests),
        SignedInErrors,
        BodyErrors,
    )
)]
pub(crate) async fn disable_totp(
    CurrentUser(session): CurrentUser,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: StrictJson<DisableTotpRequest>,
) -> Result<HttpResponse> {
    let request = body.into_inner()?;
    let code = request.code;
    with_password(
        &state,
        &req,
        session,
        request.password,
        move |users, change, ok| users.disable_totp(change, ok, &code),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/auth/me/mfa/recovery-codes",
    tag = "auth",
    summary = "New recovery codes",
    description = "With the current password: 10 new recovery codes, shown this once; \
        the old set is dead.",
    security(("bearer" = [])),
    request_body(content = PasswordRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The new set", body = RecoveryCodesResponse),
        (status = 403, response = Forbidden),
        (status = 404, response = MfaNotEnabled),
        (status = 429, response = TooManyRequests),
        SignedInErrors,
        BodyErrors,
    )
)]
pub(crate) async fn renew_recovery_codes(
    CurrentUser(session): CurrentUser,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: StrictJson<PasswordRequest>,
) -> Result<HttpResponse> {
    let request = body.into_inner()?;
    let recovery_codes = with_password(
        &state,
        &req,
        session,
        request.password,
        |users, change, ok| users.renew_recovery_codes(change, ok),
    )
    .await?;
    Ok(HttpResponse::Ok().json(RecoveryCodesResponse { recovery_codes }))
}

#[utoipa::path(
    post,
    path = "/api/auth/login/mfa",
    tag = "auth",
    summary = "Log in: the second step",
    description = "The `mfa_token` of a login that answered `mfa_required`, with a TOTP \
        code or an unused recovery code: the session's tokens. No bcrypt. A wrong code \
        (or an unknown, spent, expired or dead token): 401 `invalid_code`; it counts as a \
        failed login of the account (429 beyond the limit), and a token dies after 5 wrong \
        codes or 5 minutes. A TOTP code is accepted once.",
    request_body(content = LoginMfaRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "A new session's tokens", body = TokenResponse),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
        BodyErrors,
    )
)]
pub(crate) async fn login_mfa(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: StrictJson<LoginMfaRequest>,
) -> Result<HttpResponse> {
    let request = body.into_inner()?;
    let (users, at) = (state.users.clone(), origin(&state, &req));
    let outcome = state
        .blocking(move || users.finish_login_mfa(&request.mfa_token, &request.code, &at))
        .await;
    state.metrics.login(&outcome);
    Ok(HttpResponse::Ok().json(TokenResponse::from(outcome?)))
}

#[utoipa::path(
    delete,
    path = "/api/auth/users/{id}/mfa",
    tag = "admin",
    summary = "Reset a user's second factors",
    description = "Removes the user's TOTP, recovery codes and passkeys, ends every \
        session of theirs and audits `mfa_reset`: they sign in with their password alone \
        and enrol again.",
    security(("bearer" = [])),
    params(
        ("id" = UserIdSchema, Path, description = "The user's id"),
    ),
    responses(
        (status = 204, description = "Reset; no body"),
        AdminErrors,
        UserIdErrors,
    )
)]
pub(crate) async fn reset_mfa(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let target = user_id("id", &id)?;
    let (users, at) = (state.users.clone(), origin(&state, &req));
    state
        .blocking(move || users.reset_mfa(Actor::User(admin.id), target, &at))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
