//! The route table: every operation of the API, one row per handler, in one place. A
//! handler's `#[utoipa::path]` annotation gives its method, its path and its OpenAPI
//! operation; the row adds the handler to the table, from which [`crate::configure`] mounts
//! it and the OpenAPI document lists it ([`crate::openapi`], which imports this table). Adding an endpoint is writing
//! the annotated handler and its row in [`ENDPOINTS`].
//!
//! The static files for people ([`crate::assets::ASSETS`]) are mounted beside the table,
//! outside the API and its document. The app mounts these paths and nothing else; a path
//! answers its other methods with a JSON 405 and an `Allow` header built from them.

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use utoipa::openapi::path::{HttpMethod, Operation, Paths};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;

use crate::assets::{Asset, ASSETS};
use crate::error::ApiError;
use crate::{approval, handlers, mfa, observe, passkeys, recovery, sessions, webhooks};

/// A method, as OpenAPI names them (the API uses `GET`, `POST`, `PUT` and `DELETE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
    /// HEAD
    Head,
    /// PATCH
    Patch,
    /// TRACE
    Trace,
}

impl Verb {
    /// The method as HTTP writes it (`GET`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
            Self::Head => "HEAD",
            Self::Patch => "PATCH",
            Self::Trace => "TRACE",
        }
    }

    /// The method.
    #[must_use]
    pub fn method(self) -> Method {
        match self {
            Self::Get => Method::GET,
            Self::Post => Method::POST,
            Self::Put => Method::PUT,
            Self::Delete => Method::DELETE,
            Self::Options => Method::OPTIONS,
            Self::Head => Method::HEAD,
            Self::Patch => Method::PATCH,
            Self::Trace => Method::TRACE,
        }
    }
}

impl From<HttpMethod> for Verb {
    fn from(method: HttpMethod) -> Self {
        match method {
            HttpMethod::Get => Self::Get,
            HttpMethod::Post => Self::Post,
            HttpMethod::Put => Self::Put,
            HttpMethod::Delete => Self::Delete,
            HttpMethod::Options => Self::Options,
            HttpMethod::Head => Self::Head,
            HttpMethod::Patch => Self::Patch,
            HttpMethod::Trace => Self::Trace,
        }
    }
}

/// The schemas an operation names, as utoipa collects them.
type SchemaList = Vec<(String, RefOr<Schema>)>;

/// One operation: a handler and what its `#[utoipa::path]` annotation says of it. Written
/// with [`endpoint!`].
#[derive(Clone, Copy)]
pub struct Endpoint {
    path: fn() -> String,
    methods: fn() -> Vec<HttpMethod>,
    operation: fn() -> Operation,
    schemas: fn(&mut SchemaList),
    /// Attaches the handler to a route that already has its method guard.
    handler: fn(actix_web::Route) -> actix_web::Route,
}

impl Endpoint {
    /// The operation of annotation `P` (the `__path_<handler>` type that `#[utoipa::path]`
    /// makes), answered by `handler`.
    const fn new<P>(handler: fn(actix_web::Route) -> actix_web::Route) -> Self
    where
        P: utoipa::Path + utoipa::__dev::SchemaReferences + utoipa::__dev::Tags<'static>,
    {
        Self {
            path: P::path,
            methods: P::methods,
            operation: tagged_operation::<P>,
            schemas: P::schemas,
            handler,
        }
    }

    /// The path pattern, from the root (actix and OpenAPI write `{id}` alike).
    #[must_use]
    pub fn path(&self) -> String {
        (self.path)()
    }

    /// The methods it answers (one for every handler of this API).
    #[must_use]
    pub fn verbs(&self) -> Vec<Verb> {
        (self.methods)().into_iter().map(Verb::from).collect()
    }

    /// Adds the operation to the document's paths, and the schemas it names to `schemas`.
    pub(crate) fn document(&self, paths: &mut Paths, schemas: &mut SchemaList) {
        paths.add_path_operation(self.path(), (self.methods)(), (self.operation)());
        (self.schemas)(schemas);
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verbs: Vec<&str> = self.verbs().into_iter().map(Verb::as_str).collect();
        write!(f, "{} {}", verbs.join(","), self.path())
    }
}

/// The operation with the annotation's tags, as utoipa's `OpenApi` derive adds them.
fn tagged_operation<P: utoipa::Path + utoipa::__dev::Tags<'static>>() -> Operation {
    let mut operation = P::operation();
    let tags = operation.tags.get_or_insert_with(Vec::new);
    tags.extend(P::tags().into_iter().map(str::to_owned));
    operation
}

/// A row of [`ENDPOINTS`]: `endpoint!(module::handler)` for a handler that carries
/// `#[utoipa::path]`.
macro_rules! endpoint {
    ($module:ident :: $handler:ident) => {
        pastey::paste! {
            Endpoint::new::<$module::[<__path_ $handler>]>(|route| route.to($module::$handler))
        }
    };
}

/// Every operation of the API, in the order the paths are mounted.
pub const ENDPOINTS: &[Endpoint] = &[
    endpoint!(handlers::healthz),
    endpoint!(handlers::readyz),
    endpoint!(observe::metrics),
    endpoint!(handlers::jwks),
    endpoint!(handlers::register),
    endpoint!(handlers::login),
    endpoint!(mfa::login_mfa),
    endpoint!(passkeys::begin_login),
    endpoint!(passkeys::finish_login),
    endpoint!(handlers::me),
    endpoint!(handlers::change_password),
    endpoint!(handlers::logout),
    endpoint!(mfa::mfa_status),
    endpoint!(mfa::begin_totp),
    endpoint!(mfa::confirm_totp),
    endpoint!(mfa::disable_totp),
    endpoint!(mfa::renew_recovery_codes),
    endpoint!(passkeys::begin_registration),
    endpoint!(passkeys::finish_registration),
    endpoint!(passkeys::list_passkeys),
    endpoint!(passkeys::delete_passkey),
    endpoint!(recovery::forgot_password),
    endpoint!(recovery::reset_password_with_code),
    endpoint!(recovery::verify_email),
    endpoint!(recovery::resend_verification),
    endpoint!(sessions::token),
    endpoint!(sessions::my_sessions),
    endpoint!(sessions::end_other_sessions),
    endpoint!(sessions::end_my_session),
    endpoint!(handlers::list_audit),
    endpoint!(handlers::list_users),
    endpoint!(handlers::create_user),
    endpoint!(handlers::pending_count),
    // Before `/users/{id}`, whose pattern its path also matches.
    endpoint!(approval::decide_users),
    endpoint!(handlers::update_user),
    endpoint!(handlers::delete_user),
    endpoint!(handlers::reset_password),
    endpoint!(mfa::reset_mfa),
    endpoint!(sessions::user_sessions),
    endpoint!(sessions::end_user_sessions),
    endpoint!(approval::create_invitation),
    endpoint!(approval::list_invitations),
    endpoint!(approval::get_invitation),
    endpoint!(approval::revoke_invitation),
    endpoint!(webhooks::create_webhook),
    endpoint!(webhooks::list_webhooks),
    endpoint!(webhooks::get_webhook),
    endpoint!(webhooks::update_webhook),
    endpoint!(webhooks::delete_webhook),
    endpoint!(webhooks::rotate_webhook_secret),
    endpoint!(webhooks::test_webhook),
    endpoint!(webhooks::webhook_deliveries),
    endpoint!(webhooks::mail_settings),
    endpoint!(handlers::openapi_json),
];

/// What answers a method on a path: an operation of the API, or a static file.
#[derive(Clone, Copy)]
enum Target {
    Endpoint(&'static Endpoint),
    Asset(&'static Asset),
}

impl Target {
    fn route(self, verb: Verb) -> actix_web::Route {
        let route = web::route().method(verb.method());
        match self {
            Self::Endpoint(endpoint) => (endpoint.handler)(route),
            Self::Asset(asset) => route.to(move || async move { asset.response() }),
        }
    }
}

/// Every path the app mounts, each once, in mounting order: the operations of
/// [`ENDPOINTS`], then the static files ([`ASSETS`], `GET` only).
fn table() -> Vec<(String, Vec<(Verb, Target)>)> {
    let mut table: Vec<(String, Vec<(Verb, Target)>)> = Vec::new();
    let operations = ENDPOINTS.iter().flat_map(|endpoint| {
        let path = endpoint.path();
        endpoint
            .verbs()
            .into_iter()
            .map(move |verb| (path.clone(), verb, Target::Endpoint(endpoint)))
    });
    let files = ASSETS
        .iter()
        .map(|asset| (asset.path.to_owned(), Verb::Get, Target::Asset(asset)));
    for (path, verb, target) in operations.chain(files) {
        match table.iter_mut().find(|(known, _)| *known == path) {
            Some((_, targets)) => targets.push((verb, target)),
            None => table.push((path, vec![(verb, target)])),
        }
    }
    table
}

/// Every path the app mounts (the API's operations and the static files), each once, in
/// mounting order, with its methods.
#[must_use]
pub fn paths() -> Vec<(String, Vec<Verb>)> {
    table()
        .into_iter()
        .map(|(path, targets)| (path, targets.into_iter().map(|(verb, _)| verb).collect()))
        .collect()
}

/// One resource per mounted path, with its routes; other methods get a JSON 405 whose
/// `Allow` lists the path's.
pub(crate) fn resources() -> impl Iterator<Item = actix_web::Resource> {
    table().into_iter().map(|(path, targets)| {
        let allow = targets
            .iter()
            .map(|(verb, _)| verb.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        // Its pattern as data of the resource, for the metrics and the access log to read
        // without building it again (`match_pattern` makes a `String` per request).
        let label = observe::RouteLabel(std::rc::Rc::from(path.as_str()));
        let mut resource = web::resource(path.as_str())
            .app_data(label)
            .default_service(web::to(move || {
                let allow = allow.clone();
                async move { Err::<HttpResponse, _>(ApiError::method_not_allowed(allow)) }
            }));
        for (verb, target) in targets {
            resource = resource.route(target.route(verb));
        }
        resource
    })
}
