//! The OpenAPI 3.1 document of the API, generated from the code: every operation of the
//! route table ([`crate::routes::ENDPOINTS`]) from its handler's `#[utoipa::path]`, the DTOs
//! from `#[derive(ToSchema)]`, the shared schemas and responses from [`crate::schemas`], and
//! [`ApiDoc`] gathers them. Served at `GET /api/openapi.json`. `tests/api/openapi.rs`
//! checks it against the app itself, and `.ci/schemathesis` checks the running server
//! against it. The static files for people (the console, the `/docs` page) are not API
//! operations and are not in it.

use actix_web::web;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::handlers::OpenApiJson;
use crate::routes::ENDPOINTS;
use crate::schemas::{
    AuditActionName, Count, DeliveryStatusName, EmailInput, EmailTaken, Forbidden, FreeTextInput,
    GrantType, InvalidCode, InvalidCredential, InvalidInvitation, InvalidWebhookUrl,
    InvitationCodeInput, InvitationNotFound, InvitationStatusName, Jwk, JwkSet, LastAdmin,
    MfaAlreadyEnabled, MfaNotEnabled, NewPassword, NotEnabled, NotPending, OneTimeCodeInput,
    PasskeyNotFound, PayloadTooLarge, RegistrationRefused, RequestTimeout, SessionNotFound,
    Timestamp, TooManyRequests, Unauthorized, Unavailable, UnsupportedMediaType, UserIdSchema,
    UserNotFound, UserStatusName, UsersNotFound, ValidationFailed, WebhookEventName, WebhookEvents,
    WebhookNotFound, WebhookSecretText, WebhookUrlInput,
};

/// The name of the bearer-token security scheme in the document.
pub(crate) const BEARER: &str = "bearer";

/// The name of the security scheme of `/metrics` when a metrics token is configured.
pub(crate) const METRICS_TOKEN: &str = "metrics_token";

/// The document: every operation of [`crate::routes::ENDPOINTS`] (added by [`RouteTable`]),
/// no other.
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
            FreeTextInput,
            InvitationCodeInput,
            InvitationStatusName,
            crate::approval::DecisionName,
            WebhookUrlInput,
            WebhookEventName,
            WebhookEvents,
            WebhookSecretText,
            DeliveryStatusName,
            crate::webhooks::MailSettings,
            OneTimeCodeInput,
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
            UsersNotFound,
            NotPending,
            InvitationNotFound,
            SessionNotFound,
            RegistrationRefused,
            InvalidInvitation,
            InvalidCode,
            NotEnabled,
            MfaAlreadyEnabled,
            MfaNotEnabled,
            InvalidCredential,
            PasskeyNotFound,
            WebhookNotFound,
            InvalidWebhookUrl,
        )
    ),
    modifiers(&RouteTable, &BearerScheme),
    tags(
        (name = "auth", description = "Registration, login and the signed-in user's account"),
        (name = "admin", description = "User administration, the approval queue and the audit log (admins only)"),
        (name = "invitations", description = "Invitations that let people register without waiting for approval (admins only)"),
        (name = "webhooks", description = "Webhook endpoints that are sent events (user changes) as they happen, and their deliveries logs (admins only)"),
        (name = "sessions", description = "Sessions: refreshing tokens, and the sessions a user and an admin see and end"),
        (name = "service", description = "Probes, metrics and public keys for operators and other services"),
        (name = "docs", description = "This document (shown as a page for people at `/docs`)"),
    )
)]
pub(crate) struct ApiDoc;

/// Adds every operation of the route table, and the schemas they name, to the document.
struct RouteTable;

impl Modify for RouteTable {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut schemas = Vec::new();
        for endpoint in ENDPOINTS {
            endpoint.document(&mut openapi.paths, &mut schemas);
        }
        openapi
            .components
            .get_or_insert_with(Default::default)
            .schemas
            .extend(schemas);
    }
}

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

/// The document as `GET /api/openapi.json` serves it, made once for the app.
pub(crate) fn served() -> OpenApiJson {
    OpenApiJson(document().map(|doc| web::Bytes::from(doc.to_string())))
}

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
            serde_json::json!(["pending", "approved", "disabled", "rejected"])
        );
        let actions = doc["components"]["schemas"]["AuditAction"]["enum"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(actions, gatehouse_domain::AuditAction::ALL.len());
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
