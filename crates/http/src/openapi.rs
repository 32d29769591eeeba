//! The OpenAPI 3.1 document of the API, generated from the code: the handlers carry
//! `#[utoipa::path]`, the DTOs `#[derive(ToSchema)]`, and [`ApiDoc`] gathers them. Served at
//! `GET /api/openapi.json`. `tests/api/openapi.rs` checks it against the route table
//! ([`crate::routes::ENDPOINTS`]) and against the app itself, and `.ci/schemathesis` checks
//! the running server against it.
//!
//! The schemas state the server's real rules, neither stricter nor looser where JSON Schema
//! can say them: request objects are closed (`additionalProperties: false`) because the
//! server refuses unknown fields; enums come from the domain's own lists. Where JSON Schema
//! cannot say a rule (password length is counted in bytes, `maxLength` in characters), the
//! description says it and the keywords give the nearest bound that never refuses what the
//! server takes on that side.

use std::borrow::Cow;

use actix_web::http::header::ContentType;
use actix_web::HttpResponse;
use gatehouse_domain::{AuditAction, Password, UserStatus};
use serde_json::Value;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, ObjectBuilder, OneOfBuilder, Ref, Schema, SchemaFormat, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi, PartialSchema, ToResponse, ToSchema};

use crate::dto::LoginJson;
use crate::error::ApiError;

/// The name of the bearer-token security scheme in the document.
pub(crate) const BEARER: &str = "bearer";

/// The name of the security scheme of `/metrics` when a metrics token is configured.
pub(crate) const METRICS_TOKEN: &str = "metrics_token";

/// The most bytes an email address may have (the domain's `Email` refuses more).
const EMAIL_MAX_BYTES: usize = 254;

/// The document: every route of [`crate::routes::ENDPOINTS`], no other.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatehouse API",
        description = "User registration and approval. Errors are always JSON \
            (`Error`); 401 responses carry `WWW-Authenticate: Bearer`, 429 and 503 \
            `Retry-After`. Every response carries `X-Request-Id`, \
            `X-Content-Type-Options: nosniff` and, unless stated, `Cache-Control: no-store`. \
            Request bodies are limited to 16 KiB (413). The contract in prose: docs/api.md.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        crate::handlers::healthz,
        crate::handlers::readyz,
        crate::handlers::jwks,
        crate::observe::metrics,
        crate::handlers::register,
        crate::handlers::login,
        crate::handlers::me,
        crate::handlers::change_password,
        crate::handlers::logout,
        crate::handlers::list_audit,
        crate::handlers::list_users,
        crate::handlers::create_user,
        crate::handlers::pending_count,
        crate::handlers::update_user,
        crate::handlers::delete_user,
        crate::handlers::reset_password,
        openapi_json,
        crate::docs::page,
        crate::docs::init_js,
        crate::docs::viewer_js,
        crate::docs::viewer_css,
        crate::console::page,
        crate::console::app_js,
        crate::console::api_js,
        crate::console::dom_js,
        crate::console::style_css,
        crate::console::icon_svg,
    ),
    components(
        schemas(
            crate::error::ErrorBody,
            crate::error::FieldError,
            EmailInput,
            NewPassword,
            UserIdSchema,
            Count,
            Timestamp,
            UserStatusName,
            AuditActionName,
            GrantType,
            JwkSet,
            Jwk,
        ),
        responses(
            LastAdmin,
            Unauthorized,
            Forbidden,
            UserNotFound,
            EmailTaken,
            PayloadTooLarge,
            RequestTimeout,
            UnsupportedMediaType,
            ValidationFailed,
            TooManyRequests,
            Unavailable,
        )
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "auth", description = "Registration, login and the signed-in user's account"),
        (name = "admin", description = "User administration and the audit log (admins only)"),
        (name = "service", description = "Probes, metrics and public keys for operators and other services"),
        (name = "docs", description = "This document and the page that shows it"),
        (name = "console", description = "The admin console for people, served from this binary"),
    )
)]
pub(crate) struct ApiDoc;

/// Adds the bearer-token schemes the operations' `security` names.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The `access_token` of `POST /api/auth/login` (a JWT), as \
                         `Authorization: Bearer <token>`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            METRICS_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`GATEHOUSE_METRICS_TOKEN`, as `Authorization: Bearer <token>`: \
                         required by `/metrics` when the server is configured with one.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as served: utoipa's, plus what its types cannot say. Every response
/// carries `X-Request-Id`, and every header the document lists is always sent with its
/// response (`required: true`, which utoipa's `Header` has no field for).
///
/// # Errors
/// Only if utoipa's types failed to serialise, which they do not.
pub(crate) fn document() -> Result<Value, serde_json::Error> {
    let mut doc = serde_json::to_value(ApiDoc::openapi())?;
    let request_id = serde_json::json!({
        "description": "The request's id: the client's `X-Request-Id` when sane (1 to 128 \
            letters, digits and `-_.:/+=@`), else one made by the server. Also in the \
            server's log lines for the request.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
    });
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for operation in item.values_mut() {
                if let Some(map) = operation
                    .get_mut("responses")
                    .and_then(Value::as_object_mut)
                {
                    map.values_mut()
                        .for_each(|response| complete_response(response, &request_id));
                }
            }
        }
    }
    if let Some(map) = doc
        .pointer_mut("/components/responses")
        .and_then(Value::as_object_mut)
    {
        map.values_mut()
            .for_each(|response| complete_response(response, &request_id));
    }
    Ok(doc)
}

/// Adds `X-Request-Id` to a response object (not to a `$ref`, whose target gets it), marks
/// its headers required, and spells its links' fields as OpenAPI does (utoipa 5.5 writes
/// `operation_id` for `operationId`).
fn complete_response(response: &mut Value, request_id: &Value) {
    let Some(response) = response.as_object_mut() else {
        return;
    };
    if response.contains_key("$ref") {
        return;
    }
    let headers = response
        .entry("headers")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if let Some(headers) = headers.as_object_mut() {
        headers.insert("X-Request-Id".to_owned(), request_id.clone());
        for header in headers.values_mut().filter_map(Value::as_object_mut) {
            header.insert("required".to_owned(), Value::Bool(true));
        }
    }
    if let Some(links) = response.get_mut("links").and_then(Value::as_object_mut) {
        for link in links.values_mut().filter_map(Value::as_object_mut) {
            for (snake, camel) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(value) = link.remove(snake) {
                    link.insert(camel.to_owned(), value);
                }
            }
        }
    }
}

/// `GET /api/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "docs",
    summary = "This OpenAPI 3.1 document",
    responses(
        (status = 200, description = "The OpenAPI document of this server",
            content_type = "application/json", body = Object),
    )
)]
pub(crate) async fn openapi_json() -> Result<HttpResponse, ApiError> {
    let doc = document().map_err(|e| ApiError::internal(&e))?;
    Ok(HttpResponse::Ok()
        .insert_header(ContentType::json())
        .body(doc.to_string()))
}

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

/// The login's JSON body: `email` or, as in the form, `username`; never both. By hand,
/// because serde's `alias` has no schema equivalent.
impl PartialSchema for LoginJson {
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
named_schema!(LoginJson, "LoginJson");

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
    "`not_authenticated`: no, a malformed, forged, expired or revoked token, or its user is \
     gone, pending or disabled (\"Could not validate credentials\"); at login \
     `invalid_credentials` (\"Incorrect email or password\"); on `/metrics`, a missing or \
     wrong metrics token",
    ("WWW-Authenticate", "Always `Bearer`", Type::String),
);
error_response!(
    Forbidden,
    "`admin_required` on admin routes; at login `account_pending` / `account_disabled` \
     (after the password was verified); `invalid_password` for a wrong current password"
);
error_response!(UserNotFound, "`user_not_found`: no user has this id");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_the_bearer_scheme() {
        let doc = document().unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(
            doc["components"]["securitySchemes"][BEARER]["scheme"],
            "bearer"
        );
        let statuses = doc["components"]["schemas"]["UserStatus"]["enum"].clone();
        assert_eq!(
            statuses,
            serde_json::json!(["pending", "approved", "disabled"])
        );
        let actions = doc["components"]["schemas"]["AuditAction"]["enum"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(actions, AuditAction::ALL.len());
    }

    /// The JWKS schema is written here, not derived: it must name the fields the domain's
    /// `Jwks` serialises, and only those.
    #[test]
    fn the_jwks_schema_has_the_domains_fields() {
        let jwks = gatehouse_domain::Jwks {
            keys: vec![gatehouse_domain::Jwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                x: "x".into(),
                kid: "k".into(),
                alg: "EdDSA".into(),
                key_use: "sig".into(),
            }],
        };
        let served = serde_json::to_value(&jwks).unwrap();
        let doc = document().unwrap();
        let schemas = &doc["components"]["schemas"];
        let keys = |v: &Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&served), keys(&schemas["JwkSet"]["properties"]));
        assert_eq!(
            keys(&served["keys"][0]),
            keys(&schemas["Jwk"]["properties"])
        );
    }
}
