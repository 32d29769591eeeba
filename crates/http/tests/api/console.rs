//! The console's files: served at `/` and `/console/*` with the console's strict
//! Content-Security-Policy, each with its type, and every module the page imports routed.
//! (What the console does is tested in a real browser: crates/gatehouse/tests/browser.)

use gatehouse_http::CONSOLE_CSP;

use gatehouse_http::testing::spawn_app;

const FILES: &[(&str, &str)] = &[
    ("/", "text/html; charset=utf-8"),
    ("/console/app.js", "text/javascript; charset=utf-8"),
    ("/console/api.js", "text/javascript; charset=utf-8"),
    ("/console/dom.js", "text/javascript; charset=utf-8"),
    ("/console/style.css", "text/css; charset=utf-8"),
    ("/console/icon.svg", "image/svg+xml"),
];

#[actix_web::test]
async fn every_console_file_is_served_with_its_type_and_the_strict_policy() {
    let app = spawn_app(crate::new_store()).await;
    for (path, content_type) in FILES {
        let res = app.get(path, None).await;
        assert_eq!(res.status.as_u16(), 200, "{path}");
        assert_eq!(res.header("content-type"), Some(*content_type), "{path}");
        assert_eq!(
            res.header("content-security-policy"),
            Some(CONSOLE_CSP),
            "{path}"
        );
        assert_eq!(res.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(res.header("referrer-policy"), Some("no-referrer"), "{path}");
        assert_eq!(
            res.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(res.header("cache-control"), Some("no-store"), "{path}");
        assert!(!res.body.is_empty(), "{path}");
    }
}

/// Every `/console/…` the page names and every module a script imports is one of the
/// served files: a file added to the console without a route fails here, not in a browser.
#[actix_web::test]
async fn every_file_the_console_loads_is_routed() {
    let app = spawn_app(crate::new_store()).await;
    let served: Vec<&str> = FILES.iter().map(|(path, _)| *path).collect();
    let mut wanted = Vec::new();
    let page = app.get("/", None).await.text();
    for part in page.split('"').filter(|p| p.starts_with("/console/")) {
        wanted.push(part.to_owned());
    }
    for script in ["/console/app.js", "/console/api.js", "/console/dom.js"] {
        let text = app.get(script, None).await.text();
        for line in text.lines().filter(|l| l.starts_with("import ")) {
            let module = line
                .split('"')
                .nth(1)
                .and_then(|m| m.strip_prefix("./"))
                .unwrap_or_else(|| panic!("{script}: a relative import: {line}"));
            wanted.push(format!("/console/{module}"));
        }
    }
    assert!(wanted.len() >= 5, "{wanted:?}");
    for path in wanted {
        assert!(
            served.contains(&path.as_str()),
            "{path} is loaded but not served"
        );
    }
}

#[actix_web::test]
async fn other_console_paths_are_json_404s() {
    let app = spawn_app(crate::new_store()).await;
    for path in [
        "/console/",
        "/console/missing.js",
        "/console/../Cargo.toml",
        "/index.html",
    ] {
        let res = app.get(path, None).await;
        assert_eq!(res.status.as_u16(), 404, "{path}");
        assert_eq!(res.json()["code"], "not_found", "{path}");
    }
}
