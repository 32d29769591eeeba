//! The admin console: a few static files compiled into the binary (`assets/console/`),
//! served at `/` and `/console/*`. The page is plain HTML with JavaScript modules that call
//! the API with a bearer token kept in the tab's `sessionStorage`; nothing is fetched from
//! another host, so it works without internet. See docs/console.md.

use actix_web::http::header;
use actix_web::{HttpResponse, HttpResponseBuilder};

const PAGE: &str = include_str!("../assets/console/index.html");
const APP_JS: &str = include_str!("../assets/console/app.js");
const API_JS: &str = include_str!("../assets/console/api.js");
const DOM_JS: &str = include_str!("../assets/console/dom.js");
const STYLE_CSS: &str = include_str!("../assets/console/style.css");
const ICON_SVG: &str = include_str!("../assets/console/icon.svg");

/// The console's Content-Security-Policy: scripts, styles and images from this server only,
/// no inline script or style, API calls to this server only, no framing, no plugins, and no
/// form may submit anywhere (the scripts handle every form; if they failed, a form must not
/// fall back to a GET that puts a password in a URL).
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; manifest-src 'none'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The security headers of the pages for people (the console and `/docs`) and of their
/// files: [`CONSOLE_CSP`], no framing, no referrer, no opener, no powerful features.
pub(crate) fn page_headers(response: &mut HttpResponseBuilder) -> &mut HttpResponseBuilder {
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

/// A console file with the console's security headers. The app's `Cache-Control: no-store`
/// stays: the files are small and a new binary's console shows at once.
fn file(content_type: &'static str, body: &'static str) -> HttpResponse {
    page_headers(&mut HttpResponse::Ok())
        .insert_header((header::CONTENT_TYPE, content_type))
        .body(body)
}

const JS: &str = "text/javascript; charset=utf-8";

/// `GET /`.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "console_page",
    tag = "console",
    summary = "The admin console (a page for people; it calls this API)",
    responses(
        (status = 200, description = "An HTML page that loads its scripts and style from \
            `/console/`; served with a strict Content-Security-Policy",
            content_type = "text/html", body = String,
            headers(("Content-Security-Policy" = String, description = "No inline script, \
                nothing from other hosts"))),
    )
)]
pub(crate) async fn page() -> HttpResponse {
    file("text/html; charset=utf-8", PAGE)
}

/// `GET /console/app.js`.
#[utoipa::path(
    get,
    path = "/console/app.js",
    operation_id = "console_app_js",
    tag = "console",
    summary = "The console's views and navigation (a JavaScript module)",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String))
)]
pub(crate) async fn app_js() -> HttpResponse {
    file(JS, APP_JS)
}

/// `GET /console/api.js`.
#[utoipa::path(
    get,
    path = "/console/api.js",
    operation_id = "console_api_js",
    tag = "console",
    summary = "The console's API client and session (a JavaScript module)",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String))
)]
pub(crate) async fn api_js() -> HttpResponse {
    file(JS, API_JS)
}

/// `GET /console/dom.js`.
#[utoipa::path(
    get,
    path = "/console/dom.js",
    operation_id = "console_dom_js",
    tag = "console",
    summary = "The console's DOM helpers (a JavaScript module)",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String))
)]
pub(crate) async fn dom_js() -> HttpResponse {
    file(JS, DOM_JS)
}

/// `GET /console/style.css`.
#[utoipa::path(
    get,
    path = "/console/style.css",
    operation_id = "console_style_css",
    tag = "console",
    summary = "The console's style sheet",
    responses((status = 200, description = "CSS", content_type = "text/css", body = String))
)]
pub(crate) async fn style_css() -> HttpResponse {
    file("text/css; charset=utf-8", STYLE_CSS)
}

/// `GET /console/icon.svg`.
#[utoipa::path(
    get,
    path = "/console/icon.svg",
    operation_id = "console_icon_svg",
    tag = "console",
    summary = "The console's icon",
    responses((status = 200, description = "SVG", content_type = "image/svg+xml", body = String))
)]
pub(crate) async fn icon_svg() -> HttpResponse {
    file("image/svg+xml", ICON_SVG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_our_own_files_and_has_no_inline_script_or_style() {
        assert!(PAGE.contains("<script type=\"module\" src=\"/console/app.js\"></script>"));
        assert!(PAGE.contains("href=\"/console/style.css\""));
        assert_eq!(PAGE.matches("<script").count(), 1);
        assert!(
            !PAGE.contains("style="),
            "inline style is refused by the CSP"
        );
        for (at, _) in PAGE.match_indices(" on") {
            let name: String = PAGE[at + 3..]
                .chars()
                .take_while(char::is_ascii_lowercase)
                .collect();
            let rest = &PAGE[at + 3 + name.len()..];
            assert!(!rest.starts_with('='), "an inline event handler: on{name}");
        }
        for text in [PAGE, APP_JS, API_JS, DOM_JS, STYLE_CSS] {
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
}
