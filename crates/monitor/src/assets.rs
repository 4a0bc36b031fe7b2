//! The web UI's files: plain HTML, CSS and JavaScript modules from `crates/monitor/ui/`, embedded
//! in the binary with `include_bytes!` (no build step, nothing fetched from elsewhere) and
//! served without the cluster secret — they hold no data. The pages ask for the secret once, keep it in the tab's
//! `sessionStorage` and send it with every API call (`x-tempest-secret`); the API checks it.
//!
//! Pages: `/` (cluster), `/topology.html?id=`, `/component.html?topology=&id=`,
//! `/log.html?topology=&host=&port=`. They read the REST API of `docs/design/rest-api.md`.

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file.
struct Asset {
    /// Its file name under `crates/monitor/ui/`, also its URL path (`/<name>`).
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/ui/", $name)),
        }
    };
}

/// Every file of `crates/monitor/ui/` (a test checks that none is missing). The first is the home page.
static ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("topology.html", HTML),
    asset!("component.html", HTML),
    asset!("log.html", HTML),
    asset!("style.css", CSS),
    asset!("favicon.svg", SVG),
    asset!("app.js", JS),
    asset!("graph.js", JS),
    asset!("chart.js", JS),
    asset!("cluster.js", JS),
    asset!("topology.js", JS),
    asset!("component.js", JS),
    asset!("log.js", JS),
];

/// Scripts, styles and API calls only from the server itself, no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

/// The UI's routes: `/` and `/<file>` for every embedded file. No secret needed.
pub fn routes() -> Router {
    let mut router = Router::new().route("/", get(|| async { serve(&ASSETS[0]) }));
    for asset in ASSETS {
        router = router.route(
            &format!("/{}", asset.name),
            get(move || async move { serve(asset) }),
        );
    }
    router
}

fn serve(asset: &'static Asset) -> Response {
    let headers: [(HeaderName, HeaderValue); 6] = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ),
        // Revalidate every time: a new version is picked up at once.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    ];
    (headers, asset.body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_file_of_the_ui_dir_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
            .expect("topology-api/ui")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let embedded: BTreeSet<String> = ASSETS.iter().map(|a| a.name.to_string()).collect();
        assert_eq!(
            on_disk, embedded,
            "add new files of topology-api/ui/ to ASSETS"
        );
    }

    #[test]
    fn pages_load_only_embedded_files() {
        let names: BTreeSet<&str> = ASSETS.iter().map(|a| a.name).collect();
        for asset in ASSETS {
            let text = std::str::from_utf8(asset.body).expect("UTF-8");
            // Every local reference: src="/x", href="/x" and `from "./x"` in modules.
            for quote in text.split(['"', '\'']).skip(1).step_by(2) {
                let target = quote
                    .strip_prefix("./")
                    .or_else(|| quote.strip_prefix('/'))
                    .filter(|t| t.ends_with(".js") || t.ends_with(".css") || t.ends_with(".svg"));
                if let Some(target) = target {
                    assert!(
                        names.contains(target),
                        "{} refers to {quote:?}, which is not embedded",
                        asset.name
                    );
                }
            }
            let outside = text.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !outside.contains("http://") && !outside.contains("https://"),
                "{} refers to another site (the UI must work without a network)",
                asset.name
            );
        }
    }
}
