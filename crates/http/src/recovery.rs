//! Self-service recovery and email verification (API.md, "Account recovery and email
//! verification"): public routes, each counted against the client address's hourly
//! limit; without a mailer they answer 404 `not_enabled`.

use actix_web::{web, HttpRequest, HttpResponse};
use gatehouse_domain::{Email, Error as DomainError, Origin, UserService};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::StrictJson;
use crate::handlers::{origin, Problems};
use crate::schemas::{
    BodyErrors, EmailInput, InvalidCode, NewPassword, NotEnabled, OneTimeCodeInput,
    TooManyRequests, Unavailable,
};
use crate::AppState;

type Result<T> = std::result::Result<T, ApiError>;

/// `POST /password/forgot` and `POST /email/verify/resend`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmailRequest {
    #[schema(value_type = EmailInput)]
    pub email: String,
}

/// `POST /email/verify/resend`: any text is answered alike (a malformed address is sent
/// nothing), so the email is any string here.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResendRequest {
    /// The account's email.
    pub email: String,
}

/// `POST /password/reset`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetRequest {
    /// The account's email.
    pub email: String,
    /// The code the mail carried.
    #[schema(value_type = OneTimeCodeInput)]
    pub code: String,
    #[schema(value_type = NewPassword)]
    pub new_password: String,
}

/// `POST /email/verify`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyRequest {
    /// The account's email.
    pub email: String,
    /// The code the mail carried.
    #[schema(value_type = OneTimeCodeInput)]
    pub code: String,
}

/// The answer of the routes that send a code: the same whether or not one was sent.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CodeRequested)]
pub(crate) struct CodeRequested {
    #[schema(example = "If that address is registered, a code is on its way")]
    message: &'static str,
}

const ON_ITS_WAY: &str = "If that address is registered, a code is on its way";

fn enabled(state: &AppState) -> Result<()> {
    if state.users.recovery_enabled() {
        Ok(())
    } else {
        Err(gatehouse_domain::Error::NotEnabled(
            "Recovery and email verification need a mailer: GATEHOUSE_SMTP_URL is not set",
        )
        .into())
    }
}

#[utoipa::path(
    post,
    path = "/api/auth/password/forgot",
    tag = "auth",
    summary = "Ask for a password reset code",
    description = "For a registered account that is not disabled, a reset code goes by \
        mail (8 characters, valid for `GATEHOUSE_RESET_CODE_TTL`, 15 minutes by default; \
        at most 3 per account per hour, beyond that silently none). The answer is the same, \
        in the same time, for any well-formed email. Counted against the client address's \
        hourly limit (429).",
    request_body(content = EmailRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Queued if the account may have one", body = CodeRequested),
        (status = 404, response = NotEnabled),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
        BodyErrors,
    )
)]
pub(crate) async fn forgot_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: StrictJson<EmailRequest>,
) -> Result<HttpResponse> {
    send_code(state, req, body, true, |users, email, origin| {
        users.forgot_password(email, origin)
    })
    .await
}

/// The routes that send a code: the email checked (`strict`: a malformed one is 422;
/// otherwise it is answered 202 like any other), the use case run, one answer.
async fn send_code(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: StrictJson<EmailRequest>,
    strict: bool,
    send: impl FnOnce(&UserService, &Email, &Origin) -> std::result::Result<(), DomainError>
        + Send
        + 'static,
) -> Result<HttpResponse> {
    enabled(&state)?;
    let request = body.into_inner()?;
    let accepted = || {
        HttpResponse::Accepted().json(CodeRequested {
            message: ON_ITS_WAY,
        })
    };
    let email = if strict {
        let mut problems = Problems::default();
        let email = problems.email("email", &request.email);
        problems.finish()?;
        email
    } else {
        // "202 always": no address, nobody to send to.
        match Email::parse(&request.email) {
            Ok(email) => Some(email),
            Err(_) => return Ok(accepted()),
        }
    };
    let Some(email) = email else {
        return Err(ApiError::invalid("body", "email required"));
    };
    let (users, origin) = (state.users.clone(), origin(&state, &req));
    state
        .blocking(move || send(&users, &email, &origin))
        .await?;
    Ok(accepted())
}

#[utoipa::path(
    post,
    path = "/api/auth/password/reset",
    tag = "auth",
    summary = "Set a new password with a reset code",
    description = "Sets the password, ends every session of the user and audits \
        `password_recovered`. A wrong, spent or expired code, or an unknown email: 400 \
        `invalid_code`, one answer for all; a code dies after 5 wrong tries. Counted \
        against the client address's hourly limit (429).",
    request_body(content = ResetRequest, content_type = "application/json"),
    responses(
        (status = 204, description = "The password is set; every session ended"),
        (status = 400, response = InvalidCode),
        (status = 404, response = NotEnabled),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
        BodyErrors,
    )
)]
pub(crate) async fn reset_password_with_code(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: StrictJson<ResetRequest>,
) -> Result<HttpResponse> {
    enabled(&state)?;
    let request = body.into_inner()?;
    let mut problems = Problems::default();
    let password = problems.password("new_password", request.new_password);
    problems.finish()?;
    let Some(password) = password else {
        return Err(ApiError::invalid("body", "new_password required"));
    };
    if !state.hashing.has_room() {
        return Err(ApiError::overloaded());
    }
    let (users, at) = (state.users.clone(), origin(&state, &req));
    let (email, code) = (request.email, request.code);
    let user = state
        .blocking(move || users.begin_password_recovery(&email, &code, &at))
        .await?;
    let ticket = state.hashing.reserve()?;
    let users = state.users.clone();
    let hash = ticket.run(move || users.hash_password(&password)).await??;
    let (users, at) = (state.users.clone(), origin(&state, &req));
    state
        .blocking(move || users.finish_password_recovery(user, &hash, &at))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/auth/email/verify",
    tag = "auth",
    summary = "Verify an email with its code",
    description = "Marks the email verified (`email_verified` true; audit \
        `email_verified`). A pending self-registered user whose domain is in \
        `GATEHOUSE_AUTO_APPROVE_DOMAINS` is approved at once (`approved_by` null, audit \
        `user_auto_approved`). A wrong, spent or expired code, or an unknown email: 400 \
        `invalid_code`. Counted against the client address's hourly limit (429).",
    request_body(content = VerifyRequest, content_type = "application/json"),
    responses(
        (status = 204, description = "Verified"),
        (status = 400, response = InvalidCode),
        (status = 404, response = NotEnabled),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
        BodyErrors,
    )
)]
pub(crate) async fn verify_email(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: StrictJson<VerifyRequest>,
) -> Result<HttpResponse> {
    enabled(&state)?;
    let request = body.into_inner()?;
    let (users, origin) = (state.users.clone(), origin(&state, &req));
    state
        .blocking(move || users.verify_email(&request.email, &request.code, &origin))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/auth/email/verify/resend",
    tag = "auth",
    summary = "Ask for a new verification code",
    description = "For a registered, unverified account that is not disabled, a new \
        verification code goes by mail (valid 24 hours; at most 3 per account per hour). \
        The answer is the same for any email, well-formed or not. Counted against the client \
        address's hourly limit (429).",
    request_body(content = ResendRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Queued if the account may have one", body = CodeRequested),
        (status = 404, response = NotEnabled),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
        BodyErrors,
    )
)]
pub(crate) async fn resend_verification(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: StrictJson<ResendRequest>,
) -> Result<HttpResponse> {
    let body = body.map(|request| EmailRequest {
        email: request.email,
    });
    send_code(state, req, body, false, |users, email, origin| {
        users.resend_verification(email, origin)
    })
    .await
}
