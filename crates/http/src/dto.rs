//! JSON shapes of the API: requests are parsed into domain types here, at the edge;
//! responses are built from domain types by hand.

use chrono::{DateTime, SecondsFormat, Utc};
use gatehouse_domain::{AccessToken, AuditEntry, User, UserId};
use serde::{Deserialize, Serialize};

/// `POST /register`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterRequest {
    pub email: String,
    pub password: String,
}

/// `POST /login` as JSON (`username` is accepted for `email`, as in the form).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginJson {
    #[serde(alias = "username")]
    pub email: String,
    pub password: String,
}

/// `POST /login` as an OAuth2 password-grant form: the email travels as `username`.
/// The grant's other standard fields are accepted and ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginForm {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub grant_type: Option<String>,
    #[serde(default, rename = "scope")]
    pub _scope: Option<String>,
    #[serde(default, rename = "client_id")]
    pub _client_id: Option<String>,
    #[serde(default, rename = "client_secret")]
    pub _client_secret: Option<String>,
}

/// `PUT /users/{id}`: every field optional; `null` means "leave as is".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateUserRequest {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub is_admin: Option<bool>,
    #[serde(default)]
    pub status: Option<String>,
}

/// `POST /users/{id}/reset-password`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetPasswordRequest {
    pub password: String,
}

/// `PUT /me/password`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// `GET /audit` query parameters, as text.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListAuditParams {
    pub limit: Option<String>,
    pub offset: Option<String>,
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub target_id: Option<String>,
}

/// An audit entry as admins see it.
#[derive(Debug, Serialize)]
pub(crate) struct AuditEntryPublic {
    id: i64,
    at: String,
    action: &'static str,
    actor_id: Option<i64>,
    target_id: Option<i64>,
    address: Option<String>,
    detail: Option<String>,
}

impl From<&AuditEntry> for AuditEntryPublic {
    fn from(entry: &AuditEntry) -> Self {
        Self {
            id: entry.id,
            at: timestamp(entry.entry.at),
            action: entry.entry.action.as_str(),
            actor_id: entry.entry.actor_id.map(UserId::get),
            target_id: entry.entry.target_id.map(UserId::get),
            address: entry.entry.address.clone(),
            detail: entry.entry.detail.clone(),
        }
    }
}

/// `GET /users` query parameters, as text: parsed one by one for precise messages.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListUsersParams {
    pub limit: Option<String>,
    pub offset: Option<String>,
    pub status: Option<String>,
    pub q: Option<String>,
}

/// A user as clients see it: everything but the password hash and token version.
#[derive(Debug, Serialize)]
pub(crate) struct UserPublic {
    id: i64,
    email: String,
    is_admin: bool,
    status: &'static str,
    created_at: String,
    approved_at: Option<String>,
    approved_by: Option<i64>,
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl From<&User> for UserPublic {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.get(),
            email: user.email.as_str().to_owned(),
            is_admin: user.is_admin,
            status: user.status.as_str(),
            created_at: timestamp(user.created_at),
            approved_at: user.approved_at.map(timestamp),
            approved_by: user.approved_by.map(UserId::get),
        }
    }
}

/// The login answer, OAuth2 style.
#[derive(Serialize)]
pub(crate) struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

impl From<AccessToken> for TokenResponse {
    fn from(token: AccessToken) -> Self {
        Self {
            access_token: token.token,
            token_type: "bearer",
            expires_in: token.expires_in,
        }
    }
}

/// `GET /users/pending/count`.
#[derive(Debug, Serialize)]
pub(crate) struct CountResponse {
    pub count: u64,
}

/// A one-sentence confirmation.
#[derive(Debug, Serialize)]
pub(crate) struct MessageResponse {
    pub message: &'static str,
}

/// `/healthz` and `/readyz`.
#[derive(Debug, Serialize)]
pub(crate) struct StatusResponse {
    pub status: &'static str,
}
