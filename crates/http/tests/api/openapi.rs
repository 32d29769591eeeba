//! The OpenAPI document against the app: it must list exactly the operations the app
//! mounts, and none of the static files. Three views have to agree, so that a route added,
//! removed or changed anywhere fails here:
//!
//! 1. the route table `gatehouse_http::ENDPOINTS`, from which `configure` builds every
//!    resource of the API and the document its paths, beside the static files of the
//!    console and `/docs` (all of them in `gatehouse_http::paths()`);
//! 2. the document served at `/api/openapi.json` (from the handlers' `#[utoipa::path]`);
//! 3. the app itself: actix's own resource map (every path pattern it mounted, whether or
//!    not through the table), and probes of every method on every path (a listed one must
//!    be routed, any other must be 405 with the table's `Allow`).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::dev::Service;
use actix_web::http::Method;
use actix_web::test::{self, TestRequest};
use actix_web::App;
use gatehouse_domain::testing::PlainHasher;
use gatehouse_domain::{Hs256Tokens, JwtSecret, TokenTtl, UserService};
use gatehouse_http::{AppState, HashingPool, ENDPOINTS};
use serde_json::Value;

use gatehouse_http::testing::spawn_app;

/// Every method a client could try; the API uses four of them.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
];

fn table() -> BTreeSet<(String, String)> {
    ENDPOINTS
        .iter()
        .flat_map(|e| {
            let path = e.path();
            e.verbs()
                .into_iter()
                .map(move |verb| (path.clone(), verb.as_str().to_owned()))
        })
        .collect()
}

async fn document() -> Value {
    let app = spawn_app(crate::new_store()).await;
    let res = app.get("/api/openapi.json", None).await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    assert_eq!(res.header("content-type"), Some("application/json"));
    res.json()
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            operations.insert((path.clone(), method.to_ascii_uppercase()));
        }
    }
    operations
}

#[actix_web::test]
async fn the_document_lists_exactly_the_route_table() {
    let doc = document().await;
    assert_eq!(doc["openapi"], "3.1.0");

    let documented = documented(&doc);
    let table = table();
    let undocumented: Vec<_> = table.difference(&documented).collect();
    let unmounted: Vec<_> = documented.difference(&table).collect();
    assert!(
        undocumented.is_empty(),
        "mounted but missing from the OpenAPI document: {undocumented:?}"
    );
    assert!(
        unmounted.is_empty(),
        "in the OpenAPI document but not in the route table (routes.rs): {unmounted:?}"
    );
    assert_eq!(table.len(), ENDPOINTS.len(), "an operation is listed twice");

    // The static files for people are mounted, outside the API and its document.
    let mounted: BTreeSet<String> = gatehouse_http::paths()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    for file in [
        "/",
        "/console/app.js",
        "/docs",
        "/docs/assets/swagger-ui.css",
    ] {
        assert!(mounted.contains(file), "{file} is served");
        assert!(
            doc["paths"].get(file).is_none(),
            "{file} is no API operation"
        );
    }
}

/// The path patterns actix mounted, from the `Debug` of its resource map (actix has no
/// public way to list them): `(pattern, is_prefix)`.
fn mounted_patterns(resource_map: &str) -> Vec<(String, bool)> {
    assert!(
        !resource_map.contains("patterns: List("),
        "a resource with several patterns: {resource_map}"
    );
    let mut found = Vec::new();
    let mut rest = resource_map;
    while let Some(at) = rest.find("patterns: Single(\"") {
        rest = &rest[at + "patterns: Single(\"".len()..];
        let end = rest.find("\")").expect("the pattern's end");
        let pattern = rest[..end].to_owned();
        rest = &rest[end..];
        let prefix_at = rest
            .find("is_prefix: ")
            .expect("is_prefix after the pattern");
        let is_prefix = rest[prefix_at + "is_prefix: ".len()..].starts_with("true");
        found.push((pattern, is_prefix));
    }
    found
}

#[actix_web::test]
async fn the_app_mounts_only_the_paths_of_the_route_table() {
    let secret = JwtSecret::new(b"an openapi test secret of 32+ bytes".to_vec()).unwrap();
    let tokens = Hs256Tokens::new(&secret, TokenTtl::DEFAULT).unwrap();
    let users = UserService::new(crate::new_store(), Arc::new(PlainHasher), Arc::new(tokens));
    let state = AppState::new(users, HashingPool::new(1, 8));
    let seen = Rc::new(RefCell::new(String::new()));
    let capture = seen.clone();
    let app = test::init_service(
        App::new()
            .wrap_fn(move |req, srv| {
                *capture.borrow_mut() = format!("{:?}", req.request().resource_map());
                srv.call(req)
            })
            .configure(gatehouse_http::configure(state)),
    )
    .await;
    test::call_service(&app, TestRequest::get().uri("/healthz").to_request()).await;

    let patterns = mounted_patterns(&seen.borrow());
    assert!(!patterns.is_empty(), "no pattern in {}", seen.borrow());
    let resources: BTreeSet<String> = patterns
        .iter()
        .filter(|(_, prefix)| !prefix)
        .map(|(p, _)| p.clone())
        .collect();
    let scopes: Vec<&String> = patterns
        .iter()
        .filter(|(p, prefix)| *prefix && !p.is_empty())
        .map(|(p, _)| p)
        .collect();
    assert!(
        scopes.is_empty(),
        "a scope was mounted ({scopes:?}): mount every route from the table in routes.rs"
    );
    let table: BTreeSet<String> = gatehouse_http::paths()
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    assert_eq!(
        resources, table,
        "the app mounts other paths than the route table (routes.rs) and the static files \
         (assets.rs) list"
    );
    let mounted = patterns.iter().filter(|(_, prefix)| !prefix).count();
    assert_eq!(
        mounted,
        table.len(),
        "a path is mounted twice: {patterns:?}"
    );
}

#[actix_web::test]
async fn every_listed_method_is_routed_and_every_other_is_405() {
    let app = spawn_app(crate::new_store()).await;
    for (path, verbs) in gatehouse_http::paths() {
        let uri = path.replace("{id}", "1");
        let allowed: Vec<&str> = verbs.iter().map(|v| v.as_str()).collect();
        for method in METHODS {
            let req = TestRequest::default()
                .method(Method::from_bytes(method.as_bytes()).unwrap())
                .uri(&uri);
            let res = app.send(req).await;
            let context = format!("{method} {uri}: {} {}", res.status, res.text());
            if allowed.contains(&method) {
                assert_ne!(res.status.as_u16(), 405, "{context}");
                let unrouted = res.status.as_u16() == 404
                    && serde_json::from_slice::<Value>(&res.body)
                        .is_ok_and(|body| body["code"] == "not_found");
                assert!(!unrouted, "{context}");
            } else {
                assert_eq!(res.status.as_u16(), 405, "{context}");
                assert_eq!(
                    res.header("allow"),
                    Some(allowed.join(", ").as_str()),
                    "{context}"
                );
                if method != "HEAD" {
                    assert_eq!(res.json()["code"], "method_not_allowed", "{context}");
                }
            }
        }
    }
}

/// The errors that apply to every operation of a kind are listed on each of them.
#[actix_web::test]
async fn operations_list_the_errors_that_apply_to_them() {
    let doc = document().await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let context = format!("{method} {path}");
            let responses = operation["responses"].as_object().unwrap();
            let has = |status: &str| responses.contains_key(status);
            // The user token's operations (`/metrics` takes the optional metrics token).
            let user_token = operation["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            if user_token {
                assert!(has("401") && has("503"), "{context}: 401 and 503");
                assert!(
                    path.ends_with("/me")
                        || path.contains("/me/")
                        || path.ends_with("/logout")
                        || path.ends_with("/password")
                        || has("403"),
                    "{context}: an admin route lists 403"
                );
            }
            if let Some(body) = operation.get("requestBody") {
                assert_eq!(body["required"], true, "{context}");
                // OAuth 2's token endpoint answers a body that does not parse with its own
                // 400 `invalid_request`.
                let invalid = if path.ends_with("/token") {
                    "400"
                } else {
                    "422"
                };
                assert!(
                    has("413") && has("415") && has(invalid),
                    "{context}: 413, 415, {invalid}"
                );
            }
            if path.contains("{id}") {
                assert!(
                    has("404") && has("422"),
                    "{context}: 404 and 422 for the id"
                );
            }
            if let Some(status) = ["200", "201", "202", "204"].iter().find(|s| has(s)) {
                let headers = &responses[*status]["headers"];
                assert_eq!(headers["X-Request-Id"]["required"], true, "{context}");
            } else {
                panic!("{context}: no success response");
            }
        }
    }
    for (name, response) in doc["components"]["responses"].as_object().unwrap() {
        let schema = &response["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(schema, "#/components/schemas/Error", "{name}");
    }
    let unauthorized = &doc["components"]["responses"]["Unauthorized"]["headers"];
    assert_eq!(unauthorized["WWW-Authenticate"]["required"], true);
    for name in ["TooManyRequests", "Unavailable"] {
        let headers = &doc["components"]["responses"][name]["headers"];
        assert_eq!(headers["Retry-After"]["required"], true, "{name}");
    }
}

/// Every `$ref` points at something the document defines.
#[actix_web::test]
async fn every_reference_resolves() {
    fn walk<'a>(value: &'a Value, refs: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    refs.push(target);
                }
                map.values().for_each(|v| walk(v, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, refs)),
            _ => {}
        }
    }
    let doc = document().await;
    let mut refs = Vec::new();
    walk(&doc, &mut refs);
    assert!(!refs.is_empty());
    for target in refs {
        let pointer = target.strip_prefix('#').expect("a local reference");
        assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
    }
    // Links name operations that exist.
    let operation_ids: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            for response in op["responses"].as_object().unwrap().values() {
                for link in response["links"]
                    .as_object()
                    .into_iter()
                    .flat_map(|l| l.values())
                {
                    let target = link["operationId"].as_str().expect("operationId");
                    assert!(operation_ids.contains(target), "link to {target}");
                }
            }
        }
    }
}

#[actix_web::test]
async fn the_docs_page_and_its_files_are_served_from_the_binary() {
    let app = spawn_app(crate::new_store()).await;

    let page = app.get("/docs", None).await;
    assert_eq!(page.status.as_u16(), 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    for (asset, content_type, cached) in [
        (
            "/docs/assets/swagger-ui.css",
            "text/css; charset=utf-8",
            true,
        ),
        (
            "/docs/assets/swagger-ui-bundle.js",
            "text/javascript; charset=utf-8",
            true,
        ),
        (
            "/docs/assets/init.js",
            "text/javascript; charset=utf-8",
            false,
        ),
    ] {
        assert!(html.contains(asset), "the page loads {asset}");
        let res = app.get(asset, None).await;
        assert_eq!(res.status.as_u16(), 200, "{asset}");
        assert_eq!(res.header("content-type"), Some(content_type), "{asset}");
        assert!(res.body.len() > 100, "{asset}");
        let cache = res.header("cache-control");
        if cached {
            assert_eq!(cache, Some("public, max-age=86400"), "{asset}");
        } else {
            assert_eq!(cache, Some("no-store"), "{asset}");
        }
        assert_eq!(res.header("x-content-type-options"), Some("nosniff"));
    }
    let init = app.get("/docs/assets/init.js", None).await.text();
    assert!(init.contains("\"/api/openapi.json\""));
    let bundle = app.get("/docs/assets/swagger-ui-bundle.js", None).await;
    assert!(bundle.text().contains("SwaggerUIBundle"));
}

/// `/docs` and its files carry the console's policy (no inline script, nothing from
/// other hosts, no framing); the page needs nothing the policy refuses.
#[actix_web::test]
async fn the_docs_page_carries_the_consoles_policy_and_needs_no_inline_code() {
    let app = spawn_app(crate::new_store()).await;
    for path in [
        "/docs",
        "/docs/assets/init.js",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
    ] {
        let res = app.get(path, None).await;
        assert_eq!(res.status.as_u16(), 200, "{path}");
        assert_eq!(
            res.header("content-security-policy"),
            Some(gatehouse_http::CONSOLE_CSP),
            "{path}"
        );
        assert_eq!(res.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(res.header("referrer-policy"), Some("no-referrer"), "{path}");
    }
    let html = app.get("/docs", None).await.text();
    // Every script is a file of ours (script-src 'self'), and there is no inline style or
    // event handler (style-src 'self', no 'unsafe-inline').
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script src=\"/docs/assets/").count()
    );
    assert!(!html.contains("<style") && !html.contains("style="));
    assert!(!html.contains(" onload=") && !html.contains(" onclick="));
    assert!(!html.contains("http://") && !html.contains("https://"));
}
