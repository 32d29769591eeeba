//! `GET /docs`: the API description for people, in a vendored Swagger UI that is compiled
//! into the binary (`assets/`, see `assets/swagger-ui/README.md`). The page loads only
//! files from our own paths and contacts no other host, so it works without internet. It is
//! served with the console's security headers (its Content-Security-Policy, no framing):
//! the viewer needs no inline script, and its style sheet's few `data:` icons are the only
//! thing the policy holds back.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::HttpResponse;

use crate::console::page_headers;

const PAGE: &str = include_str!("../assets/index.html");
const INIT_JS: &str = include_str!("../assets/init.js");
const VIEWER_JS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js");
const VIEWER_CSS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui.css");

/// A day: the viewer's files change only with the binary.
const VIEWER_MAX_AGE: u32 = 24 * 3600;

/// The viewer's files may be cached (they hold no user data); the page and its start
/// script keep the app's `no-store`, so a new version shows at once.
fn viewer_file(content_type: &'static str, body: &'static [u8]) -> HttpResponse {
    page_headers(&mut HttpResponse::Ok())
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            CacheDirective::MaxAge(VIEWER_MAX_AGE),
        ]))
        .body(body)
}

/// `GET /docs`.
#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "docs_page",
    tag = "docs",
    summary = "The API description as a page (Swagger UI, served from this server)",
    responses(
        (status = 200, description = "An HTML page that loads the viewer from `/docs/assets/` \
            and shows `/api/openapi.json`; served with the console's Content-Security-Policy \
            and `X-Frame-Options: DENY`", content_type = "text/html", body = String,
            headers(
                ("Content-Security-Policy" = String, description = "No inline script, \
                    nothing from other hosts"),
                ("X-Frame-Options" = String, description = "`DENY`"),
            )),
    )
)]
pub(crate) async fn page() -> HttpResponse {
    page_headers(&mut HttpResponse::Ok())
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .body(PAGE)
}

/// `GET /docs/assets/init.js`.
#[utoipa::path(
    get,
    path = "/docs/assets/init.js",
    operation_id = "docs_init_js",
    tag = "docs",
    summary = "The script that starts the viewer on /api/openapi.json",
    responses(
        (status = 200, description = "JavaScript", content_type = "text/javascript", body = String),
    )
)]
pub(crate) async fn init_js() -> HttpResponse {
    page_headers(&mut HttpResponse::Ok())
        .insert_header((header::CONTENT_TYPE, "text/javascript; charset=utf-8"))
        .body(INIT_JS)
}

/// `GET /docs/assets/swagger-ui-bundle.js`.
#[utoipa::path(
    get,
    path = "/docs/assets/swagger-ui-bundle.js",
    operation_id = "docs_viewer_js",
    tag = "docs",
    summary = "The vendored Swagger UI (swagger-ui-dist 5.35.0)",
    responses(
        (status = 200, description = "JavaScript; may be cached for a day",
            content_type = "text/javascript", body = String,
            headers(("Cache-Control" = String, description = "`public, max-age=86400`"))),
    )
)]
pub(crate) async fn viewer_js() -> HttpResponse {
    viewer_file("text/javascript; charset=utf-8", VIEWER_JS)
}

/// `GET /docs/assets/swagger-ui.css`.
#[utoipa::path(
    get,
    path = "/docs/assets/swagger-ui.css",
    operation_id = "docs_viewer_css",
    tag = "docs",
    summary = "The vendored Swagger UI's style sheet",
    responses(
        (status = 200, description = "CSS; may be cached for a day",
            content_type = "text/css", body = String,
            headers(("Cache-Control" = String, description = "`public, max-age=86400`"))),
    )
)]
pub(crate) async fn viewer_css() -> HttpResponse {
    viewer_file("text/css; charset=utf-8", VIEWER_CSS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_our_own_files_and_no_inline_script() {
        for src in [
            "/docs/assets/swagger-ui.css",
            "/docs/assets/swagger-ui-bundle.js",
            "/docs/assets/init.js",
        ] {
            assert!(PAGE.contains(&format!("\"{src}\"")), "{src}");
        }
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://"));
        assert_eq!(PAGE.matches("<script").count(), 2);
        assert_eq!(PAGE.matches("<script src=").count(), 2);
        assert!(INIT_JS.contains("url: \"/api/openapi.json\""));
        assert!(INIT_JS.contains("validatorUrl: null"));
    }
}
