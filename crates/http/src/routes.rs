//! The route table: every operation the app answers (a method on a path) and its handler,
//! in one place. [`crate::configure`] mounts exactly these and nothing else; a path answers
//! its other methods with a JSON 405 and an `Allow` header built from this table. The
//! OpenAPI document must list exactly these operations: `tests/api/openapi.rs` compares
//! the two, and probes the app for every listed and unlisted method.

use actix_web::http::Method;
use actix_web::{web, HttpResponse};

use crate::error::ApiError;
use crate::{console, docs, handlers, observe, openapi};

/// The methods the API uses.
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
        }
    }
}

/// One operation: a method on a path pattern (actix and OpenAPI write `{id}` alike) and
/// the handler that answers it.
#[derive(Clone, Copy)]
pub struct Endpoint {
    /// The method.
    pub verb: Verb,
    /// The full path pattern, from the root.
    pub path: &'static str,
    /// Attaches the handler to a route that already has its method guard.
    handler: fn(actix_web::Route) -> actix_web::Route,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.verb.as_str(), self.path)
    }
}

const fn endpoint(
    verb: Verb,
    path: &'static str,
    handler: fn(actix_web::Route) -> actix_web::Route,
) -> Endpoint {
    Endpoint {
        verb,
        path,
        handler,
    }
}

/// Every operation of the API, in the order the paths are mounted.
pub const ENDPOINTS: &[Endpoint] = &[
    endpoint(Verb::Get, "/healthz", |r| r.to(handlers::healthz)),
    endpoint(Verb::Get, "/readyz", |r| r.to(handlers::readyz)),
    endpoint(Verb::Get, "/metrics", |r| r.to(observe::metrics)),
    endpoint(Verb::Get, "/.well-known/jwks.json", |r| {
        r.to(handlers::jwks)
    }),
    endpoint(Verb::Post, "/api/auth/register", |r| {
        r.to(handlers::register)
    }),
    endpoint(Verb::Post, "/api/auth/login", |r| r.to(handlers::login)),
    endpoint(Verb::Get, "/api/auth/me", |r| r.to(handlers::me)),
    endpoint(Verb::Put, "/api/auth/me/password", |r| {
        r.to(handlers::change_password)
    }),
    endpoint(Verb::Post, "/api/auth/logout", |r| r.to(handlers::logout)),
    endpoint(Verb::Get, "/api/auth/audit", |r| r.to(handlers::list_audit)),
    endpoint(Verb::Get, "/api/auth/users", |r| r.to(handlers::list_users)),
    endpoint(Verb::Post, "/api/auth/users", |r| {
        r.to(handlers::create_user)
    }),
    endpoint(Verb::Get, "/api/auth/users/pending/count", |r| {
        r.to(handlers::pending_count)
    }),
    endpoint(Verb::Put, "/api/auth/users/{id}", |r| {
        r.to(handlers::update_user)
    }),
    endpoint(Verb::Delete, "/api/auth/users/{id}", |r| {
        r.to(handlers::delete_user)
    }),
    endpoint(Verb::Post, "/api/auth/users/{id}/reset-password", |r| {
        r.to(handlers::reset_password)
    }),
    endpoint(Verb::Get, "/api/openapi.json", |r| {
        r.to(openapi::openapi_json)
    }),
    endpoint(Verb::Get, "/docs", |r| r.to(docs::page)),
    endpoint(Verb::Get, "/docs/assets/init.js", |r| r.to(docs::init_js)),
    endpoint(Verb::Get, "/docs/assets/swagger-ui-bundle.js", |r| {
        r.to(docs::viewer_js)
    }),
    endpoint(Verb::Get, "/docs/assets/swagger-ui.css", |r| {
        r.to(docs::viewer_css)
    }),
    endpoint(Verb::Get, "/", |r| r.to(console::page)),
    endpoint(Verb::Get, "/console/app.js", |r| r.to(console::app_js)),
    endpoint(Verb::Get, "/console/api.js", |r| r.to(console::api_js)),
    endpoint(Verb::Get, "/console/dom.js", |r| r.to(console::dom_js)),
    endpoint(Verb::Get, "/console/style.css", |r| {
        r.to(console::style_css)
    }),
    endpoint(Verb::Get, "/console/icon.svg", |r| r.to(console::icon_svg)),
];

/// The paths of [`ENDPOINTS`], each once, in table order, with their methods.
#[must_use]
pub fn paths() -> Vec<(&'static str, Vec<Verb>)> {
    let mut paths: Vec<(&'static str, Vec<Verb>)> = Vec::new();
    for endpoint in ENDPOINTS {
        match paths.iter_mut().find(|(path, _)| *path == endpoint.path) {
            Some((_, verbs)) => verbs.push(endpoint.verb),
            None => paths.push((endpoint.path, vec![endpoint.verb])),
        }
    }
    paths
}

/// One resource per path of the table, with its operations; other methods get a JSON 405
/// whose `Allow` lists the table's.
pub(crate) fn resources() -> impl Iterator<Item = actix_web::Resource> {
    paths().into_iter().map(|(path, verbs)| {
        let allow = verbs
            .iter()
            .map(|verb| verb.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let mut resource = web::resource(path).default_service(web::to(move || {
            let allow = allow.clone();
            async move { Err::<HttpResponse, _>(ApiError::method_not_allowed(allow)) }
        }));
        for endpoint in ENDPOINTS.iter().filter(|e| e.path == path) {
            resource = resource.route((endpoint.handler)(
                web::route().method(endpoint.verb.method()),
            ));
        }
        resource
    })
}
