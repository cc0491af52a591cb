//! The web app (SPEC §7 `GET /`): a page where a person pastes an API key and manages that key's
//! webhooks through the same API, from the same origin. Plain HTML, CSS and JavaScript compiled
//! into the binary: no build step, no file system at run time, no key needed to load it.
//!
//! The assets live under `/v1/web/` because only `/`, `/health` and `/v1/{proxy+}` reach this
//! function (template.yaml's `HttpApi` events). Their names carry a hash of the content, so they
//! can be cached for good while a new deployment is picked up at once.
//!
//! Every response here is locked down: a Content-Security-Policy of `default-src 'self'` with no
//! inline script or style (the page renders customer-controlled strings, so an injection must
//! have nothing to run), no sniffing, no referrer (URLs may carry tokens), no framing.
//! This module depends on nothing but axum: it reads no state and calls no store.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use webhooks_core::signing::sha256_hex;

/// Where the assets are served; index.html names them as `{{ASSETS}}/<name>?v={{VERSION}}`.
pub const ASSETS_PATH: &str = "/v1/web";

const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const APP_CSS: &str = include_str!("../web/app.css");
const ICON_SVG: &str = include_str!("../web/icon.svg");

/// `form-action 'none'`: forms are handled by script; should the script fail, a submit must not
/// put the API key into a URL. `base-uri`, `object-src` and `frame-ancestors` do not fall back
/// to `default-src`, so they are closed explicitly.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; base-uri 'none'; object-src 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page is small and names its assets by content hash: always revalidate it.
const PAGE_CACHE: &str = "no-cache";
/// An asset URL changes with its content (`?v=`), so a cached copy is never stale.
const ASSET_CACHE: &str = "public, max-age=31536000, immutable";

/// One static file.
#[derive(Debug, Clone, Copy)]
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: [Asset; 3] = [
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", body: APP_JS },
    Asset { name: "app.css", content_type: "text/css; charset=utf-8", body: APP_CSS },
    Asset { name: "icon.svg", content_type: "image/svg+xml", body: ICON_SVG },
];

/// A short hash of every asset: a deployment that changes any of them changes every asset URL.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let all: String = ASSETS.iter().map(|a| a.body).collect();
    sha256_hex(&all)[..16].to_owned()
});

static PAGE: LazyLock<String> =
    LazyLock::new(|| INDEX_HTML.replace("{{ASSETS}}", ASSETS_PATH).replace("{{VERSION}}", &VERSION));

/// `GET /` and `GET /v1/web/{name}`, public. Generic over the state so it merges into any router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(index)).route(&format!("{ASSETS_PATH}/{{name}}"), get(asset))
}

/// The page.
pub async fn index() -> Response {
    locked_down(StatusCode::OK, "text/html; charset=utf-8", PAGE_CACHE, PAGE.as_str())
}

/// One asset by name; anything else is a plain 404 (not the API's JSON: nobody reads it).
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => locked_down(StatusCode::OK, a.content_type, ASSET_CACHE, a.body),
        None => locked_down(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", PAGE_CACHE, "not found"),
    }
}

fn locked_down(status: StatusCode, content_type: &'static str, cache: &'static str, body: &'static str) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, cache),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(response: &'a Response, name: &str) -> &'a str {
        response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// ` on<letters>=` anywhere: an inline event handler attribute.
    fn has_inline_handler(page: &str) -> bool {
        page.match_indices(" on").any(|(i, _)| {
            let rest = &page[i + 3..];
            let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            letters > 0 && rest[letters..].starts_with('=')
        })
    }

    fn assert_locked_down(response: &Response) {
        assert!(header(response, "content-security-policy").starts_with("default-src 'self';"));
        assert!(!header(response, "content-security-policy").contains("unsafe"));
        assert_eq!(header(response, "x-content-type-options"), "nosniff");
        assert_eq!(header(response, "referrer-policy"), "no-referrer");
        assert_eq!(header(response, "x-frame-options"), "DENY");
    }

    #[tokio::test]
    async fn the_page_is_html_with_every_security_header() {
        // WHEN the page is asked for
        let response = index().await;
        // THEN it is HTML, revalidated, and locked down
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&response, "cache-control"), "no-cache");
        assert_locked_down(&response);
    }

    #[test]
    fn the_page_has_no_inline_script_or_style_and_names_existing_assets() {
        let page = PAGE.as_str();
        // GIVEN the CSP forbids inline code, THEN every script is external and nothing is styled inline
        assert_eq!(page.matches("<script").count(), page.matches("<script src=").count());
        assert!(!page.contains("<style"));
        assert!(!page.contains(" style="));
        assert!(!has_inline_handler(page), "no inline event handlers (onclick=...)");
        assert!(!page.contains("{{"), "every placeholder is filled");
        // AND every asset it names is served, with the current version
        for a in ASSETS {
            if a.name != "icon.svg" || page.contains("icon.svg") {
                assert!(page.contains(&format!("{ASSETS_PATH}/{}?v={}", a.name, *VERSION)), "{} is linked", a.name);
            }
        }
    }

    #[tokio::test]
    async fn assets_are_served_with_their_type_and_cached_for_good() {
        for (name, content_type) in [
            ("app.js", "text/javascript; charset=utf-8"),
            ("app.css", "text/css; charset=utf-8"),
            ("icon.svg", "image/svg+xml"),
        ] {
            let response = asset(Path(name.to_owned())).await;
            assert_eq!(response.status(), StatusCode::OK, "{name}");
            assert_eq!(header(&response, "content-type"), content_type);
            assert_eq!(header(&response, "cache-control"), ASSET_CACHE);
            assert_locked_down(&response);
        }
    }

    #[tokio::test]
    async fn unknown_assets_are_not_found() {
        for name in ["index.html", "../lib.rs", "app.js.map", ""] {
            let response = asset(Path(name.to_owned())).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{name:?}");
            assert_locked_down(&response);
        }
    }

    #[test]
    fn the_script_never_writes_markup() {
        // Customer-controlled strings (names, URLs, errors, response bodies) must be text.
        for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
            assert!(!APP_JS.contains(sink), "app.js uses {sink}");
        }
    }
}
