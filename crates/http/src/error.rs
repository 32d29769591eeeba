//! One error type for every failure a client can see, always as
//! `{"detail": "...", "code": "...", "errors"?: [...]}`.

use std::borrow::Cow;
use std::fmt;

use actix_web::body::BoxBody;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use gatehouse_domain::Error as DomainError;
use serde::Serialize;

/// A validation problem with one field of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field's name (`email`, `password`, `id`, `limit`, …); `body` for the whole body.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An error response. Its `Display` is the `detail` a client sees: never a database
/// message, hash, token or password.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: Cow<'static, str>,
    errors: Vec<FieldError>,
    retry_after: Option<u64>,
    allow: Option<Cow<'static, str>>,
    /// What a few errors carry beside the usual fields (boxed: most errors have none, and
    /// every handler's `Result` carries an `ApiError`).
    extra: Option<Box<Extra>>,
}

/// The fields some errors add to the body.
#[derive(Debug, Default)]
struct Extra {
    /// `account_rejected`: the admin's note (`Some(None)`: written as `null`).
    note: Option<Option<String>>,
    /// A bulk decision's unknown or undecidable ids.
    ids: Option<Vec<i64>>,
    /// `POST /token`'s errors repeat their code as OAuth 2's `error` (RFC 6749 §5.2).
    oauth: bool,
}

/// Every error response's body.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub(crate) struct ErrorBody<'a> {
    /// A human-readable sentence.
    detail: &'a str,
    /// A stable machine-readable snake_case word (`email_taken`, `validation_error`, ...).
    code: &'a str,
    /// With 422 `validation_error`: one entry per field that failed.
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    #[schema(required = false)]
    errors: &'a [FieldError],
    /// With 403 `account_rejected`: the note the admin left, or `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, value_type = Option<String>)]
    note: Option<&'a Option<String>>,
    /// With a bulk decision's 404 `user_not_found` and 409 `not_pending`: the ids at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, value_type = Option<Vec<i64>>, nullable = false)]
    ids: Option<&'a [i64]>,
    /// With `POST /token`'s 400s: the `code` again, as OAuth 2 clients read it
    /// (`invalid_grant`, `unsupported_grant_type`, `invalid_request`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, value_type = Option<String>, nullable = false)]
    error: Option<&'a str>,
}

impl ApiError {
    /// An error with a status, a stable code and a sentence.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
            allow: None,
            extra: None,
        }
    }

    /// 422 for fields that fail validation; the detail names them.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [only] => format!("Invalid {}: {}", only.field, only.message),
            many => format!(
                "Invalid request: {}",
                many.iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        Self {
            errors,
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_error", detail)
        }
    }

    /// The same error with another code (`weak_password` for a common password,
    /// `invalid_email` for an email that mixes scripts).
    #[must_use]
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    /// 422 for one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    /// 422 for a body that is not JSON at all.
    pub fn malformed_json(reason: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_json",
            format!("Request body is not valid JSON: {reason}"),
        )
    }

    /// 415 naming the content types the endpoint takes.
    pub fn unsupported_media_type(expected: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Content-Type must be {expected}"),
        )
    }

    /// 401 for a missing or unusable token.
    pub fn unauthenticated() -> Self {
        DomainError::Unauthenticated.into()
    }

    /// 503 when the hashing queue is full: come back in a second.
    pub fn overloaded() -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "Too many requests in progress; try again shortly",
            )
        }
    }

    /// 405 with the `Allow` header listing the methods the resource takes.
    pub fn method_not_allowed(allow: impl Into<Cow<'static, str>>) -> Self {
        Self {
            allow: Some(allow.into()),
            ..Self::for_status(StatusCode::METHOD_NOT_ALLOWED)
        }
    }

    /// 500 with a generic body; the cause goes to the log here.
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %chain(cause), "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal server error",
        )
    }

    /// The stand-in body for an error response some layer produced without one
    /// (actix's own 404, 405, 413, …).
    pub fn for_status(status: StatusCode) -> Self {
        let (code, detail) = match status {
            StatusCode::NOT_FOUND => ("not_found", "Not found"),
            StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "Method not allowed"),
            StatusCode::PAYLOAD_TOO_LARGE => (
                "payload_too_large",
                "Request body is too large (the limit is 16 KiB)",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ("unsupported_media_type", "Unsupported content type")
            }
            StatusCode::BAD_REQUEST => ("bad_request", "Bad request"),
            StatusCode::REQUEST_TIMEOUT => ("request_timeout", "Request timed out"),
            StatusCode::TOO_MANY_REQUESTS => ("rate_limited", "Too many requests"),
            s if s.is_server_error() => ("internal_error", "Internal server error"),
            _ => ("error", "Request failed"),
        };
        Self::new(status, code, detail)
    }

    /// The stable machine-readable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.code
    }
}

/// An error and its causes, one after another, for a log line.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if let Some(allow) = &self.allow {
            response.insert_header((header::ALLOW, allow.as_ref()));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds));
        }
        response.json(ErrorBody {
            detail: &self.detail,
            code: self.code,
            errors: &self.errors,
            note: self.extra.as_ref().and_then(|e| e.note.as_ref()),
            ids: self.extra.as_ref().and_then(|e| e.ids.as_deref()),
            error: self.extra.as_ref().filter(|e| e.oauth).map(|_| self.code),
        })
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        if let DomainError::Throttled { retry_after } = error {
            return Self {
                retry_after: Some(retry_after),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    error.to_string(),
                )
            };
        }
        let ids = |ids: Vec<gatehouse_domain::UserId>| {
            Some(Box::new(Extra {
                ids: Some(ids.into_iter().map(gatehouse_domain::UserId::get).collect()),
                ..Extra::default()
            }))
        };
        match error {
            DomainError::InvalidGrant => Self::oauth("invalid_grant", error.to_string()),
            DomainError::AccountRejected { note } => Self {
                extra: Some(Box::new(Extra {
                    note: Some(note),
                    ..Extra::default()
                })),
                ..Self::new(
                    StatusCode::FORBIDDEN,
                    "account_rejected",
                    "Registration rejected",
                )
            },
            DomainError::UsersNotFound(missing) => Self {
                extra: ids(missing.clone()),
                ..Self::new(
                    StatusCode::NOT_FOUND,
                    "user_not_found",
                    format!("User not found: {}", joined(&missing)),
                )
            },
            DomainError::NotPending(undecided) => Self {
                extra: ids(undecided.clone()),
                ..Self::new(
                    StatusCode::CONFLICT,
                    "not_pending",
                    format!(
                        "Only pending users can be decided on; not pending: {}",
                        joined(&undecided)
                    ),
                )
            },
            error => Self::from_plain(error),
        }
    }
}

/// Ids as a list for a sentence: `3, 7, 9`.
fn joined(ids: &[gatehouse_domain::UserId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl ApiError {
    /// A 400 of `POST /token`, OAuth 2 style: `code` is also the body's `error`.
    pub(crate) fn oauth(code: &'static str, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            extra: Some(Box::new(Extra {
                oauth: true,
                ..Extra::default()
            })),
            ..Self::new(StatusCode::BAD_REQUEST, code, detail)
        }
    }

    /// The domain errors that carry nothing but their kind.
    fn from_plain(error: DomainError) -> Self {
        let status = match &error {
            DomainError::EmailTaken => StatusCode::CONFLICT,
            DomainError::WrongCurrentPassword => StatusCode::FORBIDDEN,
            DomainError::UserNotFound
            | DomainError::InvitationNotFound
            | DomainError::SessionNotFound
            | DomainError::WebhookNotFound => StatusCode::NOT_FOUND,
            DomainError::InvalidInvitation | DomainError::InvalidUrl(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            DomainError::RegistrationClosed => StatusCode::FORBIDDEN,
            DomainError::LastAdmin(_)
            | DomainError::InvalidCode
            | DomainError::InvalidCredential => StatusCode::BAD_REQUEST,
            DomainError::PasskeyLoginFailed => StatusCode::UNAUTHORIZED,
            DomainError::PasskeyNotFound => StatusCode::NOT_FOUND,
            DomainError::NotEnabled(_) => StatusCode::NOT_FOUND,
            DomainError::EmailUnverified | DomainError::MfaEnrollmentRequired => {
                StatusCode::FORBIDDEN
            }
            DomainError::MfaAlreadyEnabled => StatusCode::CONFLICT,
            DomainError::MfaNotEnabled => StatusCode::NOT_FOUND,
            DomainError::InvalidMfaCode | DomainError::MfaRequired => StatusCode::UNAUTHORIZED,
            DomainError::InvalidCredentials | DomainError::Unauthenticated => {
                StatusCode::UNAUTHORIZED
            }
            DomainError::AccountPending
            | DomainError::AccountDisabled
            | DomainError::AdminRequired => StatusCode::FORBIDDEN,
            DomainError::Unavailable(_) | DomainError::Conflict => {
                tracing::warn!(error = %chain(&error), "database unavailable");
                return Self {
                    retry_after: Some(1),
                    ..Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "database_unavailable",
                        "The database is unavailable; try again shortly",
                    )
                };
            }
            DomainError::Overloaded => return Self::overloaded(),
            DomainError::MfaUnreadable => {
                tracing::error!(
                    "a TOTP secret does not open with this service's keys: was \
                     GATEHOUSE_JWT_SECRET changed since the user enrolled? Reset the user's \
                     MFA (gatehouse users reset-mfa EMAIL_OR_ID, or DELETE /users/{{id}}/mfa)"
                );
                return Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "mfa_unavailable",
                    error.to_string(),
                );
            }
            _ => return Self::internal(&error),
        };
        let code = match &error {
            DomainError::EmailTaken => "email_taken",
            DomainError::UserNotFound => "user_not_found",
            DomainError::InvitationNotFound => "invitation_not_found",
            DomainError::SessionNotFound => "session_not_found",
            DomainError::WebhookNotFound => "webhook_not_found",
            DomainError::InvalidUrl(_) => "invalid_url",
            DomainError::InvalidInvitation => "invalid_invitation",
            DomainError::RegistrationClosed => "registration_closed",
            DomainError::InvalidCode | DomainError::InvalidMfaCode => "invalid_code",
            DomainError::MfaRequired => "mfa_required",
            DomainError::InvalidCredential | DomainError::PasskeyLoginFailed => {
                "invalid_credential"
            }
            DomainError::PasskeyNotFound => "passkey_not_found",
            DomainError::MfaAlreadyEnabled => "mfa_already_enabled",
            DomainError::MfaNotEnabled => "mfa_not_enabled",
            DomainError::MfaEnrollmentRequired => "mfa_enrollment_required",
            DomainError::NotEnabled(_) => "not_enabled",
            DomainError::EmailUnverified => "email_unverified",
            DomainError::LastAdmin(_) => "last_admin",
            DomainError::InvalidCredentials => "invalid_credentials",
            DomainError::AccountPending => "account_pending",
            DomainError::AccountDisabled => "account_disabled",
            DomainError::AdminRequired => "admin_required",
            DomainError::WrongCurrentPassword => "invalid_password",
            _ => "not_authenticated",
        };
        Self::new(status, code, error.to_string())
    }
}
