//! The dashboard at `/ui`: one HTML page, one script and one style sheet, compiled into the
//! binary (no CDN, no font or script from elsewhere: it works with no internet access).
//!
//! It is plain HTML and JavaScript over the public API, with no framework and no build step:
//! the page is small (a few hundred lines of script), so a bundler and a dependency tree would
//! cost more than they give. The script reads `GET /queues`, `GET /workers`, `GET /jobs` and
//! `GET /jobs/{id}`, follows `GET /events`, and acts through the same write routes as any
//! client. An API token is asked for once per tab, kept in the tab's session storage and sent as
//! an `Authorization` header (never a cookie, so no other site can make the browser use it). The
//! page is served with a content security policy that allows only its own scripts, styles and
//! API, and images from `blob:` URLs (a result fetched with the token).

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::extract::BasePath;

const INDEX: &str = include_str!("../../ui/index.html");
const SCRIPT: &str = include_str!("../../ui/app.js");
const STYLE: &str = include_str!("../../ui/app.css");

/// What a browser may load and run on the dashboard's pages.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      img-src 'self' blob:; connect-src 'self'; base-uri 'none'; \
                      form-action 'none'; frame-ancestors 'none'";

/// `GET /ui`: the dashboard's page, its links pointing under the path the router is mounted at.
pub(crate) async fn page(base: BasePath) -> Response {
    let body = INDEX.replace("{{BASE}}", &escape_attribute(&base.0));
    asset("text/html; charset=utf-8", body)
}

/// `GET /ui/app.js`.
pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /ui/app.css`.
pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(content_type: &'static str, body: impl Into<axum::body::Body>) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                HeaderName::from_static("referrer-policy"),
                HeaderValue::from_static("no-referrer"),
            ),
            // The assets change with the binary: revalidate rather than keep a stale script.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body.into(),
    )
        .into_response()
}

/// Escapes text for a double-quoted HTML attribute.
fn escape_attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_path_cannot_break_out_of_its_attribute() {
        assert_eq!(
            escape_attribute(r#"/a"><script>'&"#),
            "/a&quot;&gt;&lt;script&gt;&#39;&amp;"
        );
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for asset in [INDEX, SCRIPT, STYLE] {
            // The SVG namespace is a name, not something loaded.
            let asset = asset.replace("http://www.w3.org/2000/svg", "");
            for outside in ["http://", "https://", "//cdn", "@import", "fonts.g"] {
                assert!(!asset.contains(outside), "an asset refers to {outside}");
            }
        }
        assert!(INDEX.contains(r#"src="{{BASE}}/ui/app.js""#));
    }
}
