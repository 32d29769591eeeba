//! The schema types of the OpenAPI document: what JSON Schema says of the DTOs' fields
//! where a Rust type cannot say it (`#[schema(value_type = ...)]`), and the error responses
//! the operations share. A leaf: it imports nothing from the handlers, the DTOs or the
//! document, which all import it.
//!
//! The schemas state the server's real rules, neither stricter nor looser where JSON Schema
//! can say them: request objects are closed (`additionalProperties: false`) because the
//! server refuses unknown fields; enums come from the domain's own lists. Where JSON Schema
//! cannot say a rule (password length is counted in bytes, `maxLength` in characters), the
//! description says it and the keywords give the nearest bound that never refuses what the
//! server takes on that side.

use std::borrow::Cow;

use gatehouse_domain::{AuditAction, DeliveryStatus, EventType, FreeText, Password, UserStatus};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Ref, Schema,
    SchemaFormat, Type,
};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToResponse, ToSchema};

/// The most bytes an email address may have (the domain's `Email` refuses more).
const EMAIL_MAX_BYTES: usize = 254;

// ---- Schemas the DTOs refer to (`#[schema(value_type = ...)]`) ---------------------------

/// Implements `ToSchema` with the given component name for a schema-only type.
macro_rules! named_schema {
    ($type:ident, $name:literal) => {
        impl ToSchema for $type {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

/// An email address a client sends (register, create, update).
pub(crate) struct EmailInput;
named_schema!(EmailInput, "EmailInput");

impl PartialSchema for EmailInput {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom("idn-email".to_owned())))
            .max_length(Some(EMAIL_MAX_BYTES))
            .description(Some(
                "A plausible `local@domain.tld`; trimmed, NFKC-normalised and then \
                 lower-cased before it is stored or compared (fullwidth `ａｄｍｉｎ` is \
                 `admin`). At most 254 **bytes** once normalised (`maxLength` counts \
                 characters: a non-ASCII character takes 2 to 4 bytes); a local part of at \
                 most 64 letters, digits and ``.!#$%&'*+/=?^_`{|}~-`` (no leading, trailing \
                 or doubled dot); at least two domain labels of letters, digits and inner \
                 hyphens, the last alphabetic and 2+ letters long. Unicode letters are \
                 allowed, one script per local part and per domain label (UTS #39: a \
                 Cyrillic `а` in a Latin word is 422 `invalid_email`); spaces, quotes, \
                 control and invisible characters are not. Anything else: 422. An address \
                 that looks like a registered one (the same UTS #39 confusable skeleton) \
                 is taken: 409.",
            ))
            .examples(["ada@example.com"])
            .into()
    }
}

/// A new password (register, create, change, reset).
pub(crate) struct NewPassword;
named_schema!(NewPassword, "NewPassword");

impl PartialSchema for NewPassword {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
            .min_length(Some(Password::MIN_BYTES))
            .max_length(Some(Password::MAX_BYTES))
            .description(Some(format!(
                "{} to {} **bytes** of UTF-8: bcrypt reads no more, and a longer password \
                 is refused with 422, never truncated. `minLength`/`maxLength` count \
                 characters, so keep to the byte limit yourself: 72 ASCII characters fit, \
                 but only 36 two-byte or 18 four-byte ones. No composition rules; a password \
                 on the block list of common passwords is refused with 422 `weak_password`.",
                Password::MIN_BYTES,
                Password::MAX_BYTES
            )))
            .into()
    }
}

/// A user's id, in paths, queries and bodies.
pub(crate) struct UserIdSchema;
named_schema!(UserIdSchema, "UserId");

impl PartialSchema for UserIdSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(1))
            .description(Some(
                "A positive 64-bit integer. In a path or query: decimal digits only (no \
                 sign, no spaces); anything else is 422.",
            ))
            .into()
    }
}

/// `limit` and `offset`: any non-negative integer that fits 64 unsigned bits.
pub(crate) struct Count;
named_schema!(Count, "Count");

impl PartialSchema for Count {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .maximum(Some(u64::MAX))
            .into()
    }
}

/// A point in time as the API writes it.
pub(crate) struct Timestamp;
named_schema!(Timestamp, "Timestamp");

impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("RFC 3339 in UTC, to the second"))
            .examples(["2026-11-30T10:15:00Z"])
            .into()
    }
}

/// A user's status: the domain's list.
pub(crate) struct UserStatusName;
named_schema!(UserStatusName, "UserStatus");

impl PartialSchema for UserStatusName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(UserStatus::ALL.iter().map(|s| s.as_str())))
            .into()
    }
}

/// A short free text a person writes into the approval queue (a reason, a note).
pub(crate) struct FreeTextInput;
named_schema!(FreeTextInput, "FreeText");

impl PartialSchema for FreeTextInput {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(FreeText::MAX_CHARS))
            // Control characters other than line breaks are refused (422).
            .pattern(Some(
                "^[^\\u0000-\\u0009\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069]*$",
            ))
            .description(Some(
                "At most 500 characters as sent, then trimmed of surrounding whitespace; line breaks \
                 are kept (`\\r\\n` becomes `\\n`), any other control character (a tab \
                 too) and the bidirectional overrides and isolates are 422. Empty once \
                 trimmed: no text.",
            ))
            .examples(["I run the lab's wiki and need an account for it."])
            .into()
    }
}

/// An invitation code as a registrant types or pastes it.
pub(crate) struct InvitationCodeInput;
named_schema!(InvitationCodeInput, "InvitationCode");

impl PartialSchema for InvitationCodeInput {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(128))
            .description(Some(
                "The code an invitation's creator was shown (32 Crockford base32 \
                 characters). Case, spaces and hyphens do not matter, nor do the look-alikes \
                 `I`/`L` for 1 and `O` for 0.",
            ))
            .into()
    }
}

/// A one-time code (password reset, email verification) as its user types it.
pub(crate) struct OneTimeCodeInput;
named_schema!(OneTimeCodeInput, "OneTimeCode");

impl PartialSchema for OneTimeCodeInput {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(64))
            .description(Some(
                "The code a mail carried (8 Crockford base32 characters, shown as \
                 `ABCD-EFGH`). Case, spaces and hyphens do not matter, nor do the look-alikes \
                 `I`/`L` for 1 and `O` for 0.",
            ))
            .into()
    }
}

/// An invitation's status: the domain's list.
pub(crate) struct InvitationStatusName;
named_schema!(InvitationStatusName, "InvitationStatus");

impl PartialSchema for InvitationStatusName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["active", "used", "expired", "revoked"]))
            .into()
    }
}

/// An audit action: the domain's list.
pub(crate) struct AuditActionName;
named_schema!(AuditActionName, "AuditAction");

impl PartialSchema for AuditActionName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(AuditAction::ALL.iter().map(|a| a.as_str())))
            .into()
    }
}

/// A webhook endpoint's address as an admin sends it.
pub(crate) struct WebhookUrlInput;
named_schema!(WebhookUrlInput, "WebhookUrl");

impl PartialSchema for WebhookUrlInput {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(2048))
            .description(Some(
                "An absolute `http` or `https` URL with a host and no credentials \
                 (`user:pass@` is refused), at most 2048 **bytes** once trimmed; stored \
                 normalised as a browser would (`http://2130706433/` is \
                 `http://127.0.0.1/`). Unless the server runs with \
                 `GATEHOUSE_WEBHOOK_ALLOW_PRIVATE=true`, its host must be public: a literal \
                 loopback, private, link-local, shared, documentation, multicast or \
                 otherwise reserved address (IPv4 or IPv6, IPv4 inside IPv6 judged as \
                 IPv4), `localhost` and its subdomains are refused, and a name must resolve, \
                 only to public addresses. Anything else: 422 `invalid_url`.",
            ))
            .examples(["https://hooks.example.com/gatehouse"])
            .into()
    }
}

/// Every event type's name (the domain's list).
fn event_type_names() -> impl Iterator<Item = &'static str> {
    EventType::ALL.iter().map(|t| t.as_str())
}

/// An event type, or `*` for all of them, as an endpoint's `events` lists them.
pub(crate) struct WebhookEventName;
named_schema!(WebhookEventName, "WebhookEventName");

impl PartialSchema for WebhookEventName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(std::iter::once("*").chain(event_type_names())))
            .description(Some("An event type, or `*` (alone) for every one"))
            .into()
    }
}

/// A subscription as an admin sends it: `["*"]`, or one or more event types (repeats are
/// taken once).
pub(crate) struct WebhookEvents;
named_schema!(WebhookEvents, "WebhookEvents");

impl PartialSchema for WebhookEvents {
    fn schema() -> RefOr<Schema> {
        let everything = ArrayBuilder::new()
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["*"])),
            )
            .min_items(Some(1))
            .max_items(Some(1))
            .description(Some("Every event type, including types added later"));
        let some = ArrayBuilder::new()
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(event_type_names())),
            )
            .min_items(Some(1))
            .description(Some("These event types (a repeated one is taken once)"));
        OneOfBuilder::new()
            .item(everything)
            .item(some)
            .description(Some(
                "`[\"*\"]`, or one or more event types. Empty, an unknown type, or `*` \
                 beside anything: 422 `validation_error` on `events`.",
            ))
            .examples([serde_json::json!(["user.registered", "user.approved"])])
            .into()
    }
}

/// A webhook signing secret.
pub(crate) struct WebhookSecretText;
named_schema!(WebhookSecretText, "WebhookSecret");

impl PartialSchema for WebhookSecretText {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^whsec_[A-Za-z0-9+/]{43}=$"))
            .description(Some(
                "`whsec_` and the base64 (standard alphabet, padded) of 32 random bytes. \
                 Deliveries carry `webhook-signature: v1,<base64 of HMAC-SHA256 over \
                 \"{webhook-id}.{webhook-timestamp}.{body}\">`, keyed with the \
                 base64-decoded part after `whsec_` (the Standard Webhooks scheme).",
            ))
            .into()
    }
}

/// Where a webhook delivery stands: the domain's list.
pub(crate) struct DeliveryStatusName;
named_schema!(DeliveryStatusName, "DeliveryStatus");

impl PartialSchema for DeliveryStatusName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(
                [
                    DeliveryStatus::Pending,
                    DeliveryStatus::Delivered,
                    DeliveryStatus::Failed,
                ]
                .map(DeliveryStatus::as_str),
            ))
            .into()
    }
}

/// The OAuth2 `grant_type` of the login form: only the password grant.
pub(crate) struct GrantType;
named_schema!(GrantType, "GrantType");

impl PartialSchema for GrantType {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["password"]))
            .into()
    }
}

/// The login's JSON body (`crate::dto::LoginJson`): `email` or, as in the form,
/// `username`; never both. By hand, because serde's `alias` has no schema equivalent.
pub(crate) struct LoginJsonSchema;
named_schema!(LoginJsonSchema, "LoginJson");

impl PartialSchema for LoginJsonSchema {
    fn schema() -> RefOr<Schema> {
        let variant = |name: &str| {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(
                    name,
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .description(Some("The account's email address")),
                )
                .required(name)
                .property(
                    "password",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password))),
                )
                .required("password")
                .property(
                    "device_token",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .max_length(Some(128))
                        .description(Some(
                            "The device token an earlier successful login of this account \
                             returned (or send it in the `Gatehouse-Device` header): this \
                             device is then throttled on its own failed logins only.",
                        )),
                )
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        OneOfBuilder::new()
            .item(variant("email"))
            .item(variant("username"))
            .description(Some(
                "Neither value is checked against the email or password rules: anything \
                 that cannot be a registered account's gets the same 401 as a wrong \
                 password.",
            ))
            .into()
    }
}

/// `GET /.well-known/jwks.json` (the domain's `Jwks`, described here: its type has no schema).
#[derive(ToSchema)]
#[schema(as = JwkSet)]
#[allow(dead_code)]
pub(crate) struct JwkSet {
    /// Every public key whose tokens may still be valid (and one about to sign); empty
    /// under HS256.
    keys: Vec<Jwk>,
}

/// An Ed25519 public key (RFC 8037).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct Jwk {
    #[schema(value_type = String, pattern = "^OKP$")]
    kty: String,
    #[schema(value_type = String, pattern = "^Ed25519$")]
    crv: String,
    /// The public key, base64url without padding.
    x: String,
    /// The key id that tokens name in their header.
    kid: String,
    #[schema(value_type = String, pattern = "^EdDSA$")]
    alg: String,
    #[schema(rename = "use", pattern = "^sig$")]
    key_use: String,
}

// ---- Error responses, shared by the operations -------------------------------------------

/// A JSON error response with the given description and extra headers.
fn problem(description: &str, headers: &[(&str, &str, Type)]) -> RefOr<Response> {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Error")))
            .build(),
    );
    for (name, about, kind) in headers {
        response = response.header(
            *name,
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(kind.clone()))
                .description(Some(*about))
                .build(),
        );
    }
    response.build().into()
}

/// Declares a reusable error response.
macro_rules! error_response {
    ($type:ident, $description:expr $(, ($header:expr, $about:expr, $kind:expr))* $(,)?) => {
        #[doc = $description]
        pub(crate) struct $type;

        impl<'r> ToResponse<'r> for $type {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($type), problem($description, &[$(($header, $about, $kind)),*]))
            }
        }
    };
}

const RETRY_AFTER: &str = "Seconds to wait before trying again";
const CONNECTION_CLOSE: &str = "Always `close`: the server closes the connection";

error_response!(
    LastAdmin,
    "`last_admin`: the change would leave no active admin (\"Cannot remove last admin\", \
     \"Cannot disable last active admin\", \"Cannot delete last admin\")"
);
error_response!(
    Unauthorized,
    "`not_authenticated`: no, a malformed, forged or expired token, one whose session has \
     ended, or its user is gone, pending, disabled or rejected (\"Could not validate \
     credentials\"); at login `invalid_credentials` (\"Incorrect email or password\"); at \
     `/login/mfa` `invalid_code` (a wrong or used code, or a dead `mfa_token`); at \
     `/login/passkey/finish` `invalid_credential` (an unknown, spent or expired challenge, an \
     unknown passkey, or one that does not verify); on \
     `/metrics`, a missing or wrong metrics token",
    ("WWW-Authenticate", "Always `Bearer`", Type::String),
);
error_response!(
    Forbidden,
    "`admin_required` on admin routes; at login `account_pending` / `account_disabled` / \
     `account_rejected` (after the password was verified; `account_rejected` carries the \
     admin's `note`, or `null`); `invalid_password` for a wrong current password; \
     `mfa_enrollment_required` on admin routes when `GATEHOUSE_REQUIRE_MFA_FOR_ADMINS` is on \
     and the admin has no second factor"
);
error_response!(UserNotFound, "`user_not_found`: no user has this id");
error_response!(
    UsersNotFound,
    "`user_not_found`, with `ids`: the ids no user has; nothing was decided"
);
error_response!(
    NotPending,
    "`not_pending`, with `ids`: the users who are not pending; nothing was decided"
);
error_response!(
    SessionNotFound,
    "`session_not_found`: the caller has no live session with this id"
);
error_response!(
    InvitationNotFound,
    "`invitation_not_found`: no invitation has this id"
);
error_response!(
    WebhookNotFound,
    "`webhook_not_found`: no webhook endpoint has this id"
);
error_response!(
    InvalidWebhookUrl,
    "`invalid_url`: `url` is not an `http` or `https` URL with a host, carries \
     credentials, or points to a loopback, private, link-local or otherwise non-public \
     address (the detail says which); or `validation_error` (with `errors`) for another \
     field, the id or the body, `invalid_json` for a body that is not JSON"
);
error_response!(
    RegistrationRefused,
    "`registration_closed`: the registration mode (`GATEHOUSE_REGISTRATION`) does not let \
     this registration in (`invite_only` without an invitation, `closed`)"
);
error_response!(
    InvalidInvitation,
    "`invalid_invitation`: the code is unknown, expired, used up or revoked, or the \
     invitation names another email (one answer for all), or `validation_error` for \
     another field"
);
error_response!(
    InvalidCode,
    "`invalid_code`: the code is wrong, spent, expired or dead (5 wrong tries), or no \
     account has this email (one answer for all)"
);
error_response!(
    MfaAlreadyEnabled,
    "`mfa_already_enabled`: TOTP is on already; turn it off first"
);
error_response!(
    MfaNotEnabled,
    "`mfa_not_enabled`: there is no TOTP factor to confirm, turn off or renew recovery codes \
     for (begin enrolment first)"
);
error_response!(
    NotEnabled,
    "`not_enabled`: recovery and email verification need a mailer (`GATEHOUSE_SMTP_URL`); \
     passkeys need a relying party (`GATEHOUSE_PUBLIC_URL` on a domain name, and \
     `GATEHOUSE_WEBAUTHN_RP_ID` for a parent domain)"
);
error_response!(
    InvalidCredential,
    "`invalid_credential`: the passkey's credential does not verify (challenge, origin, \
     relying party, user verification, attestation), is registered already, or no \
     registration is under way (start again)"
);
error_response!(
    PasskeyNotFound,
    "`passkey_not_found`: the caller has no passkey with this id; or `not_enabled`: \
     passkeys are off (no `GATEHOUSE_PUBLIC_URL`)"
);
error_response!(
    EmailTaken,
    "`email_taken`: the (normalised) email, or one that looks like it (the same UTS #39 \
     confusable skeleton), is registered already"
);
error_response!(
    PayloadTooLarge,
    "`payload_too_large`: the body is over 16 KiB"
);
error_response!(
    RequestTimeout,
    "`request_timeout`: the body did not arrive within the server's body timeout \
     (`GATEHOUSE_BODY_TIMEOUT`, 10 s by default, counted from the end of the headers); the \
     server closes the connection",
    ("Connection", CONNECTION_CLOSE, Type::String),
);
error_response!(
    UnsupportedMediaType,
    "`unsupported_media_type`: the body's `Content-Type` is not one the operation takes"
);
error_response!(
    ValidationFailed,
    "`validation_error` (with `errors` naming each field: an invalid value, an unknown, \
     missing or repeated field, a wrong type, a bad id or query parameter), `invalid_json` \
     (empty or not JSON), `weak_password` (a common password), `invalid_email` (an email \
     whose local part or a domain label mixes scripts)"
);
error_response!(
    TooManyRequests,
    "`rate_limited`: too many failed logins for the account or the client address, or too \
     many registrations from the address",
    ("Retry-After", RETRY_AFTER, Type::Integer),
);
error_response!(
    Unavailable,
    "`database_unavailable` (the database cannot be reached) or `overloaded` (the password \
     hashing queue is full)",
    ("Retry-After", RETRY_AFTER, Type::Integer),
);

// ---- Sets of error responses that operations share ----------------------------------------
// Listed in an operation's `responses(...)` beside its own; a status in two sets is the
// same `$ref` in both.

/// An operation that takes the signed-in user's bearer token: the token's user is read
/// from the database.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum SignedInErrors {
    #[response(status = 401)]
    Unauthorized(#[ref_response] Unauthorized),
    #[response(status = 503)]
    Unavailable(#[ref_response] Unavailable),
}

/// An admin's operation: a signed-in user who must be an admin.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum AdminErrors {
    #[response(status = 401)]
    Unauthorized(#[ref_response] Unauthorized),
    #[response(status = 403)]
    Forbidden(#[ref_response] Forbidden),
    #[response(status = 503)]
    Unavailable(#[ref_response] Unavailable),
}

/// An operation with a request body: it may come too slowly, be too large, of another
/// media type, or not parse.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum BodyErrors {
    #[response(status = 408)]
    RequestTimeout(#[ref_response] RequestTimeout),
    #[response(status = 413)]
    PayloadTooLarge(#[ref_response] PayloadTooLarge),
    #[response(status = 415)]
    UnsupportedMediaType(#[ref_response] UnsupportedMediaType),
    #[response(status = 422)]
    ValidationFailed(#[ref_response] ValidationFailed),
}

/// An operation on `/api/auth/invitations/{id}`: an id that is not one is 422, one no
/// invitation has is 404.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum InvitationIdErrors {
    #[response(status = 404)]
    InvitationNotFound(#[ref_response] InvitationNotFound),
    #[response(status = 422)]
    ValidationFailed(#[ref_response] ValidationFailed),
}

/// An operation on `/api/auth/me/sessions/{id}`: an id that is not one is 422, one that is
/// not the caller's live session is 404.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum SessionIdErrors {
    #[response(status = 404)]
    SessionNotFound(#[ref_response] SessionNotFound),
    #[response(status = 422)]
    ValidationFailed(#[ref_response] ValidationFailed),
}

/// An operation on `/api/auth/users/{id}`: an id that is not one is 422, one no user has
/// is 404.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum UserIdErrors {
    #[response(status = 404)]
    UserNotFound(#[ref_response] UserNotFound),
    #[response(status = 422)]
    ValidationFailed(#[ref_response] ValidationFailed),
}

/// An operation on `/api/auth/webhooks/{id}`: an id that is not one is 422, one no
/// endpoint has is 404.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum WebhookIdErrors {
    #[response(status = 404)]
    WebhookNotFound(#[ref_response] WebhookNotFound),
    #[response(status = 422)]
    ValidationFailed(#[ref_response] ValidationFailed),
}
