//! The static files for people, compiled into the binary and served from one table
//! ([`ASSETS`]), outside the API and its OpenAPI document:
//!
//! - the admin console (`assets/console/`), at `/` and `/console/*`: plain HTML with
//!   JavaScript modules that call the API with a bearer token kept in the tab's
//!   `sessionStorage` (docs/console.md);
//! - `/docs`, the API description for people, in a vendored Swagger UI (`assets/`, see
//!   `assets/swagger-ui/README.md`) that shows `/api/openapi.json`.
//!
//! The pages load only files from our own paths and contact no other host, so they work
//! without internet. Every file carries the same security headers ([`CONSOLE_CSP`], no
//! framing, no referrer, no opener, no powerful features): the viewer needs no inline
//! script, and its style sheet's few `data:` icons are the only thing the policy holds back.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{HttpResponse, HttpResponseBuilder};

const CONSOLE_PAGE: &str = include_str!("../assets/console/index.html");
const APP_JS: &str = include_str!("../assets/console/app.js");
const API_JS: &str = include_str!("../assets/console/api.js");
const DOM_JS: &str = include_str!("../assets/console/dom.js");
const STYLE_CSS: &str = include_str!("../assets/console/style.css");
const ICON_SVG: &str = include_str!("../assets/console/icon.svg");
const DOCS_PAGE: &str = include_str!("../assets/index.html");
const INIT_JS: &str = include_str!("../assets/init.js");
const VIEWER_JS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js");
const VIEWER_CSS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui.css");

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// The console's Content-Security-Policy: scripts, styles and images from this server only,
/// no inline script or style, API calls to this server only, no framing, no plugins, and no
/// form may submit anywhere (the scripts handle every form; if they failed, a form must not
/// fall back to a GET that puts a password in a URL).
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; manifest-src 'none'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// A day: the viewer's files change only with the binary.
const VIEWER_MAX_AGE: u32 = 24 * 3600;

/// How long a client may keep a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cache {
    /// The app's `Cache-Control: no-store`: the files are small, and a new binary's pages
    /// show at once.
    NoStore,
    /// `public, max-age=86400`: the vendored viewer is large, holds no user data and
    /// changes only with the binary.
    Day,
}

/// A static file: answers `GET` on its path (any other method is 405).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asset {
    /// Where it is served, from the root.
    pub path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    cache: Cache,
}

const fn asset(path: &'static str, content_type: &'static str, body: &'static [u8]) -> Asset {
    Asset {
        path,
        content_type,
        body,
        cache: Cache::NoStore,
    }
}

/// Every static file, in the order the paths are mounted.
pub(crate) const ASSETS: &[Asset] = &[
    asset("/docs", HTML, DOCS_PAGE.as_bytes()),
    asset("/docs/assets/init.js", JS, INIT_JS.as_bytes()),
    Asset {
        cache: Cache::Day,
        ..asset("/docs/assets/swagger-ui-bundle.js", JS, VIEWER_JS)
    },
    Asset {
        cache: Cache::Day,
        ..asset("/docs/assets/swagger-ui.css", CSS, VIEWER_CSS)
    },
    asset("/", HTML, CONSOLE_PAGE.as_bytes()),
    asset("/console/app.js", JS, APP_JS.as_bytes()),
    asset("/console/api.js", JS, API_JS.as_bytes()),
    asset("/console/dom.js", JS, DOM_JS.as_bytes()),
    asset("/console/style.css", CSS, STYLE_CSS.as_bytes()),
    asset("/console/icon.svg", SVG, ICON_SVG.as_bytes()),
];

impl Asset {
    /// The file with the security headers of the pages for people, and its cache policy.
    pub(crate) fn response(&self) -> HttpResponse {
        let mut response = HttpResponse::Ok();
        page_headers(&mut response).insert_header((header::CONTENT_TYPE, self.content_type));
        if self.cache == Cache::Day {
            response.insert_header(CacheControl(vec![
                CacheDirective::Public,
                CacheDirective::MaxAge(VIEWER_MAX_AGE),
            ]));
        }
        response.body(self.body)
    }
}

/// The security headers of the pages for people (the console and `/docs`) and of their
/// files: [`CONSOLE_CSP`], no framing, no referrer, no opener, no powerful features.
fn page_headers(response: &mut HttpResponseBuilder) -> &mut HttpResponseBuilder {
    response
        .insert_header((header::CONTENT_SECURITY_POLICY, CONSOLE_CSP))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header(("Cross-Origin-Opener-Policy", "same-origin"))
        .insert_header((
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=()",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_loads_only_our_own_files_and_has_no_inline_script_or_style() {
        let page = CONSOLE_PAGE;
        assert!(page.contains("<script type=\"module\" src=\"/console/app.js\"></script>"));
        assert!(page.contains("href=\"/console/style.css\""));
        assert_eq!(page.matches("<script").count(), 1);
        assert!(
            !page.contains("style="),
            "inline style is refused by the CSP"
        );
        for (at, _) in page.match_indices(" on") {
            let name: String = page[at + 3..]
                .chars()
                .take_while(char::is_ascii_lowercase)
                .collect();
            let rest = &page[at + 3 + name.len()..];
            assert!(!rest.starts_with('='), "an inline event handler: on{name}");
        }
        for text in [page, APP_JS, API_JS, DOM_JS, STYLE_CSS] {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
        for js in [APP_JS, API_JS, DOM_JS] {
            assert!(
                !js.contains("innerHTML"),
                "text goes in as text, never as markup"
            );
            assert!(!js.contains("eval("));
            // The access token lives in the tab only; the one thing kept in localStorage
            // is the device token per account (it opens nothing without the password).
            for (at, _) in js.match_indices("localStorage.") {
                let call = &js[at..];
                assert!(
                    call.starts_with("localStorage.getItem(DEVICE_KEY")
                        || call.starts_with("localStorage.setItem(DEVICE_KEY"),
                    "only device tokens go to localStorage: {}",
                    &call[..call.len().min(60)]
                );
            }
        }
        assert!(API_JS.contains("sessionStorage.setItem(TOKEN_KEY"));
    }

    #[test]
    fn the_policy_allows_no_inline_script_and_no_other_host() {
        assert!(CONSOLE_CSP.contains("default-src 'none'"));
        assert!(CONSOLE_CSP.contains("script-src 'self';"));
        assert!(!CONSOLE_CSP.contains("unsafe"));
        assert!(CONSOLE_CSP.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn the_docs_page_loads_only_our_own_files_and_no_inline_script() {
        for src in [
            "/docs/assets/swagger-ui.css",
            "/docs/assets/swagger-ui-bundle.js",
            "/docs/assets/init.js",
        ] {
            assert!(DOCS_PAGE.contains(&format!("\"{src}\"")), "{src}");
        }
        assert!(!DOCS_PAGE.contains("http://") && !DOCS_PAGE.contains("https://"));
        assert_eq!(DOCS_PAGE.matches("<script").count(), 2);
        assert_eq!(DOCS_PAGE.matches("<script src=").count(), 2);
        assert!(INIT_JS.contains("url: \"/api/openapi.json\""));
        assert!(INIT_JS.contains("validatorUrl: null"));
    }

    /// Every file a page loads from this server is in the table.
    #[test]
    fn every_file_the_pages_load_is_served() {
        let served: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        for (page, prefix) in [(CONSOLE_PAGE, "/console/"), (DOCS_PAGE, "/docs/assets/")] {
            for (at, _) in page.match_indices(prefix) {
                let path: String = page[at..].chars().take_while(|c| *c != '"').collect();
                assert!(served.contains(&path.as_str()), "{path}");
            }
        }
    }
}
