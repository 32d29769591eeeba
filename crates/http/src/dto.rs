//! JSON shapes of the API: requests are parsed into domain types here, at the edge;
//! responses are built from domain types by hand.

use gatehouse_domain::{AuditEntry, LoginSuccess, SessionTokens, User, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::rfc3339::Rfc3339;
use crate::schemas::{
    AuditActionName, Count, EmailInput, FreeTextInput, GrantType, InvitationCodeInput, NewPassword,
    Timestamp, UserIdSchema, UserStatusName,
};

/// `POST /register`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterRequest {
    #[schema(value_type = EmailInput)]
    pub email: String,
    #[schema(value_type = NewPassword)]
    pub password: String,
    /// Why you ask to join, for the admins who decide (absent or `null`: no reason).
    #[serde(default)]
    #[schema(value_type = Option<FreeTextInput>)]
    pub reason: Option<String>,
    /// An invitation's code: the account starts approved. A code that admits nobody, or
    /// not this email, is 422 `invalid_invitation`.
    #[serde(default)]
    #[schema(value_type = Option<InvitationCodeInput>)]
    pub invitation: Option<String>,
}

/// `POST /login` as JSON (`username` is accepted for `email`, as in the form).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginJson {
    #[serde(alias = "username")]
    pub email: String,
    pub password: String,
    /// The device token an earlier login of this account returned.
    #[serde(default)]
    pub device_token: Option<String>,
}

/// `POST /login` as an OAuth2 password-grant form: the email travels as `username`.
/// The grant's other standard fields are accepted and ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginForm {
    /// The account's email address (not checked against the email rules: anything that
    /// cannot be a registered account's gets the same 401 as a wrong password).
    pub username: String,
    #[schema(format = Password)]
    pub password: String,
    /// The device token an earlier successful login of this account returned (or send it
    /// in the `Gatehouse-Device` header): this device is then throttled on its own failed
    /// logins only, so failures from elsewhere cannot lock it out.
    #[serde(default)]
    #[schema(nullable = false, max_length = 128)]
    pub device_token: Option<String>,
    /// Must be `password` when present.
    #[serde(default)]
    #[schema(value_type = Option<GrantType>, nullable = false)]
    pub grant_type: Option<String>,
    /// Accepted and ignored.
    #[serde(default, rename = "scope")]
    #[schema(nullable = false)]
    pub _scope: Option<String>,
    /// Accepted and ignored.
    #[serde(default, rename = "client_id")]
    #[schema(nullable = false)]
    pub _client_id: Option<String>,
    /// Accepted and ignored.
    #[serde(default, rename = "client_secret")]
    #[schema(nullable = false)]
    pub _client_secret: Option<String>,
}

/// `POST /users`: an admin creates a user; `is_admin` defaults to `false` and `status` to
/// `approved` (`null` too).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUserRequest {
    #[schema(value_type = EmailInput)]
    pub email: String,
    #[schema(value_type = NewPassword)]
    pub password: String,
    /// Default (also for `null`): `false`.
    #[serde(default)]
    pub is_admin: Option<bool>,
    /// Default (also for `null`): `approved`.
    #[serde(default)]
    #[schema(value_type = Option<UserStatusName>)]
    pub status: Option<String>,
}

/// `PUT /users/{id}`: every field optional; `null` means "leave as is".
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateUserRequest {
    /// Absent or `null`: unchanged. Taken by another user: 409.
    #[serde(default)]
    #[schema(value_type = Option<EmailInput>)]
    pub email: Option<String>,
    /// Absent or `null`: unchanged.
    #[serde(default)]
    pub is_admin: Option<bool>,
    /// Absent or `null`: unchanged. `approved` for the first time records `approved_at`
    /// and `approved_by`; `rejected` records `rejected_at` and `rejected_by`.
    #[serde(default)]
    #[schema(value_type = Option<UserStatusName>)]
    pub status: Option<String>,
    /// The note beside a decision: only with `status` `approved` or `rejected` (422
    /// otherwise). A rejected user is shown it when they log in.
    #[serde(default)]
    #[schema(value_type = Option<FreeTextInput>)]
    pub note: Option<String>,
}

/// `POST /users/{id}/reset-password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetPasswordRequest {
    #[schema(value_type = NewPassword)]
    pub password: String,
}

/// `PUT /me/password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangePasswordRequest {
    /// The password now; a wrong one is 403 `invalid_password`.
    #[schema(format = Password)]
    pub current_password: String,
    #[schema(value_type = NewPassword)]
    pub new_password: String,
}

/// `GET /audit` query parameters, as text.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListAuditParams {
    /// At most this many entries (0: an empty page); without it, every entry.
    #[param(value_type = Option<Count>)]
    pub limit: Option<String>,
    /// Skip this many first (default 0).
    #[param(value_type = Option<Count>)]
    pub offset: Option<String>,
    /// Only entries of this action.
    #[param(value_type = Option<AuditActionName>)]
    pub action: Option<String>,
    /// Only entries by this user.
    #[param(value_type = Option<UserIdSchema>)]
    pub actor_id: Option<String>,
    /// Only entries about this user.
    #[param(value_type = Option<UserIdSchema>)]
    pub target_id: Option<String>,
}

// Borrows from the entry: a listing writes one per row. (The doc comment is the OpenAPI
// schema's description.)
/// An audit entry as admins see it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AuditEntry)]
pub(crate) struct AuditEntryPublic<'a> {
    #[schema(minimum = 1)]
    id: i64,
    #[schema(value_type = Timestamp)]
    at: Rfc3339,
    #[schema(value_type = AuditActionName)]
    action: &'static str,
    /// Who did it; `null` for anonymous events and the command line.
    #[schema(value_type = Option<UserIdSchema>)]
    actor_id: Option<i64>,
    /// Whom it concerned.
    #[schema(value_type = Option<UserIdSchema>)]
    target_id: Option<i64>,
    /// The client address.
    #[schema(value_type = Option<String>)]
    address: Option<&'a str>,
    /// A short note, never a secret (`pending -> approved`, `wrong password`, `cli`, ...).
    #[schema(value_type = Option<String>)]
    detail: Option<&'a str>,
}

impl<'a> From<&'a AuditEntry> for AuditEntryPublic<'a> {
    fn from(entry: &'a AuditEntry) -> Self {
        Self {
            id: entry.id,
            at: Rfc3339::new(entry.entry.at),
            action: entry.entry.action.as_str(),
            actor_id: entry.entry.actor_id.map(UserId::get),
            target_id: entry.entry.target_id.map(UserId::get),
            address: entry.entry.address.as_deref(),
            detail: entry.entry.detail.as_deref(),
        }
    }
}

impl AuditEntryPublic<'_> {
    /// Appends `entry`'s JSON to `out` (an item of a streamed listing).
    pub(crate) fn write(out: &mut Vec<u8>, entry: AuditEntry) -> serde_json::Result<()> {
        serde_json::to_writer(out, &AuditEntryPublic::from(&entry))
    }
}

/// `GET /users` query parameters, as text: parsed one by one for precise messages.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListUsersParams {
    /// At most this many users (0: an empty page); without it, every user.
    #[param(value_type = Option<Count>)]
    pub limit: Option<String>,
    /// Skip this many first (default 0).
    #[param(value_type = Option<Count>)]
    pub offset: Option<String>,
    /// Only users with this status.
    #[param(value_type = Option<UserStatusName>)]
    pub status: Option<String>,
    /// Only admins (`true`) or only non-admins (`false`).
    #[param(value_type = Option<bool>)]
    pub is_admin: Option<String>,
    /// Only emails containing this text (case-insensitive, literal: `%` and `_` are no
    /// wildcards); empty: no filter.
    pub q: Option<String>,
}

// Borrows from the user: a listing writes one per row; the command line prints the same.
// (The doc comment is the OpenAPI schema's description.)
/// A user as clients see it: everything but the password hash and token version.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPublic<'a> {
    #[schema(value_type = UserIdSchema)]
    id: i64,
    /// As stored: trimmed, NFKC-normalised and lower-cased, at most 254 bytes (see
    /// `EmailInput`; accounts from before NFKC may keep their older spelling). No
    /// `format`: the server's rules count label lengths in characters, so an address it
    /// accepts may fail a strict `idn-email` check.
    #[schema(value_type = String, max_length = 254)]
    email: &'a str,
    is_admin: bool,
    #[schema(value_type = UserStatusName)]
    status: &'static str,
    #[schema(value_type = Timestamp)]
    created_at: Rfc3339,
    /// When the user was first approved; `null` until then.
    #[schema(value_type = Option<Timestamp>)]
    approved_at: Option<Rfc3339>,
    /// The admin who first approved the user (the inviter, for an invited user); `null`
    /// for the first user, for approvals at the command line, and once that admin is
    /// deleted.
    #[schema(value_type = Option<UserIdSchema>)]
    approved_by: Option<i64>,
    /// Why the user asked to join, as written at registration.
    #[schema(value_type = Option<String>)]
    reason: Option<&'a str>,
    /// Whether the user has shown the address is theirs (an email-bound invitation, an
    /// admin's creation).
    email_verified: bool,
    /// Whether sign-in asks for a second factor.
    mfa_enabled: bool,
    /// When the user was rejected; `null` unless `status` is `rejected`.
    #[schema(value_type = Option<Timestamp>)]
    rejected_at: Option<Rfc3339>,
    /// The admin who rejected the user; `null` unless `status` is `rejected`, and once
    /// that admin is deleted or for a rejection at the command line.
    #[schema(value_type = Option<UserIdSchema>)]
    rejected_by: Option<i64>,
    /// The note of the decision that made the user approved or rejected, if the admin
    /// wrote one.
    #[schema(value_type = Option<String>)]
    decision_note: Option<&'a str>,
}

impl<'a> From<&'a User> for UserPublic<'a> {
    fn from(user: &'a User) -> Self {
        Self {
            id: user.id.get(),
            email: user.email.as_str(),
            is_admin: user.is_admin,
            status: user.status.as_str(),
            created_at: Rfc3339::new(user.created_at),
            approved_at: user.approved_at.map(Rfc3339::new),
            approved_by: user.approved_by.map(UserId::get),
            reason: user.reason.as_deref(),
            email_verified: user.email_verified,
            mfa_enabled: user.mfa_enabled,
            rejected_at: user.rejected_at.map(Rfc3339::new),
            rejected_by: user.rejected_by.map(UserId::get),
            decision_note: user.decision_note.as_deref(),
        }
    }
}

impl UserPublic<'_> {
    /// Appends `user`'s JSON to `out` (an item of a streamed listing): the bytes serde
    /// writes for [`UserPublic`] (a test holds them equal), written by hand. A full listing
    /// writes thousands per request, and serde's field-by-field calls and escaping scans
    /// were a tenth of its CPU: here the keys go out as constants, the numbers through
    /// `itoa`, the times unescaped (digits and separators only) and only the email is
    /// checked for characters JSON must escape.
    pub(crate) fn write(out: &mut Vec<u8>, user: User) -> serde_json::Result<()> {
        let mut number = itoa::Buffer::new();
        out.extend_from_slice(b"{\"id\":");
        out.extend_from_slice(number.format(user.id.get()).as_bytes());
        out.extend_from_slice(b",\"email\":");
        write_json_str(out, user.email.as_str())?;
        out.extend_from_slice(if user.is_admin {
            b",\"is_admin\":true,\"status\":\""
        } else {
            b",\"is_admin\":false,\"status\":\""
        });
        // Status names are lower-case ASCII words.
        out.extend_from_slice(user.status.as_str().as_bytes());
        out.extend_from_slice(b"\",\"created_at\":");
        write_json_time(out, &Rfc3339::new(user.created_at))?;
        out.extend_from_slice(b",\"approved_at\":");
        match user.approved_at {
            Some(at) => write_json_time(out, &Rfc3339::new(at))?,
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"approved_by\":");
        write_json_id(out, &mut number, user.approved_by);
        out.extend_from_slice(b",\"reason\":");
        write_json_opt_str(out, user.reason.as_deref())?;
        out.extend_from_slice(if user.email_verified {
            b",\"email_verified\":true"
        } else {
            b",\"email_verified\":false"
        });
        out.extend_from_slice(if user.mfa_enabled {
            b",\"mfa_enabled\":true"
        } else {
            b",\"mfa_enabled\":false"
        });
        out.extend_from_slice(b",\"rejected_at\":");
        match user.rejected_at {
            Some(at) => write_json_time(out, &Rfc3339::new(at))?,
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"rejected_by\":");
        write_json_id(out, &mut number, user.rejected_by);
        out.extend_from_slice(b",\"decision_note\":");
        write_json_opt_str(out, user.decision_note.as_deref())?;
        out.push(b'}');
        Ok(())
    }
}

/// A user id or `null`.
fn write_json_id(out: &mut Vec<u8>, number: &mut itoa::Buffer, id: Option<UserId>) {
    match id {
        Some(id) => out.extend_from_slice(number.format(id.get()).as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
}

/// A text or `null`.
fn write_json_opt_str(out: &mut Vec<u8>, text: Option<&str>) -> serde_json::Result<()> {
    match text {
        Some(text) => write_json_str(out, text),
        None => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

/// `text` as a JSON string: copied as it is when nothing in it needs escaping (the rule for
/// every stored email), else through serde's escaping.
fn write_json_str(out: &mut Vec<u8>, text: &str) -> serde_json::Result<()> {
    if text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        return serde_json::to_writer(out, text);
    }
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
    Ok(())
}

/// A time as a JSON string. Years 0 to 9999 are digits and separators, which need no
/// escaping; the rest goes through serde like any text.
fn write_json_time(out: &mut Vec<u8>, at: &Rfc3339) -> serde_json::Result<()> {
    write_json_str(out, at.as_str())
}

/// A token response, OAuth 2 style: a login's, a refresh's, a password change's.
#[derive(Serialize, ToSchema)]
pub(crate) struct TokenResponse {
    /// A JWT, for `Authorization: Bearer <token>`. It names its session in `sid`.
    access_token: String,
    /// Always `bearer`.
    #[schema(pattern = "^bearer$")]
    token_type: &'static str,
    /// Seconds until the access token expires (`GATEHOUSE_TOKEN_TTL`, 15 minutes by
    /// default).
    expires_in: u64,
    /// Opaque and single-use: trade it at `POST /api/auth/token` for the next pair before
    /// the session idles out. Presenting it a second time ends the session.
    refresh_token: String,
    /// Seconds until the session idles out unless refreshed (never past its end for
    /// good).
    refresh_expires_in: u64,
    /// Logins only: an opaque token bound to this account and device. Present it at the
    /// account's next login (`device_token`, or the `Gatehouse-Device` header) and this
    /// device is throttled on its own failures only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    device_token: Option<String>,
}

impl From<SessionTokens> for TokenResponse {
    fn from(tokens: SessionTokens) -> Self {
        Self {
            access_token: tokens.access.token,
            token_type: "bearer",
            expires_in: tokens.access.expires_in,
            refresh_token: tokens.refresh_token.expose().to_owned(),
            refresh_expires_in: tokens.refresh_expires_in,
            device_token: None,
        }
    }
}

impl From<LoginSuccess> for TokenResponse {
    fn from(success: LoginSuccess) -> Self {
        Self {
            device_token: Some(success.device_token.expose().to_owned()),
            ..Self::from(success.tokens)
        }
    }
}

/// `GET /users/pending/count`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CountResponse {
    pub count: u64,
}

/// A one-sentence confirmation.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MessageResponse {
    pub message: &'static str,
}

/// `/healthz` and `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StatusResponse {
    pub status: &'static str,
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use gatehouse_domain::{Email, PasswordHash, UserStatus};

    use super::*;

    fn user(id: i64, email: &str, status: UserStatus, approved: bool) -> User {
        let at = |secs| Utc.timestamp_opt(secs, 0).single().expect("a valid time");
        User {
            id: UserId::new(id).expect("a valid id"),
            email: Email::from_stored(email).expect("a stored email"),
            password_hash: PasswordHash::new("$2b$04$not-a-real-hash".to_owned()),
            is_admin: id % 2 == 0,
            status,
            created_at: at(1_765_000_000 + id % 100_000),
            approved_at: approved.then(|| at(1_765_100_000)),
            approved_by: approved.then(|| UserId::new(id + 7).expect("a valid id")),
            token_version: 3,
            reason: None,
            email_verified: false,
            mfa_enabled: false,
            rejected_at: None,
            rejected_by: None,
            decision_note: None,
        }
    }

    #[test]
    fn a_listed_user_is_written_as_serde_writes_it() {
        let users = [
            user(1, "ada@example.com", UserStatus::Approved, true),
            user(2, "bob@example.org", UserStatus::Pending, false),
            user(
                9_007_199_254_740_993,
                "o'neil+x@sub.example.co",
                UserStatus::Disabled,
                true,
            ),
            user(42, "ａｄｍｉｎ@exаmple.com", UserStatus::Approved, false),
            User {
                reason: Some("I run the \"lab\" wiki\nand need in ✓".to_owned()),
                email_verified: true,
                mfa_enabled: true,
                rejected_at: Some(Utc.timestamp_opt(1_765_200_000, 0).unwrap()),
                rejected_by: Some(UserId::new(1).unwrap()),
                decision_note: Some("Not this time; ask\tagain in May".to_owned()),
                ..user(43, "rejected@example.net", UserStatus::Rejected, false)
            },
            User {
                reason: Some("plain reason".to_owned()),
                decision_note: Some("welcome".to_owned()),
                ..user(44, "ok@example.net", UserStatus::Approved, true)
            },
        ];
        for listed in users {
            let expected = serde_json::to_vec(&UserPublic::from(&listed)).unwrap();
            let mut ours = b"[".to_vec();
            UserPublic::write(&mut ours, listed).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&ours[1..]),
                String::from_utf8_lossy(&expected)
            );
        }
    }

    #[test]
    fn text_that_needs_escaping_is_escaped() {
        for text in [
            "plain",
            "quote \" here",
            "back\\slash",
            "tab\tand\u{1}",
            "ünï",
        ] {
            let mut ours = Vec::new();
            write_json_str(&mut ours, text).unwrap();
            assert_eq!(ours, serde_json::to_vec(text).unwrap(), "{text:?}");
        }
    }
}
