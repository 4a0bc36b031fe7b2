//! Nimbus serves the web UI's files (topology-api/ui/) without the cluster secret, with their
//! content types and security headers, and nothing else without it.

mod common;

use common::*;

/// The content type each kind of UI file is served with.
fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        other => panic!("no content type known for {name} ({other:?})"),
    }
}

#[tokio::test]
async fn pages_are_served_without_the_secret_and_the_api_still_needs_it() {
    let nimbus = TestNimbus::start(|_| {}).await;
    let http = reqwest::Client::new();
    let ui_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/monitor/ui");
    let mut files: Vec<(String, String)> = vec![("/".into(), "index.html".into())];
    for entry in std::fs::read_dir(&ui_dir).expect("crates/monitor/ui") {
        let name = entry.expect("dir entry").file_name();
        let name = name.to_string_lossy().into_owned();
        files.push((format!("/{name}"), name));
    }
    assert!(files.len() > 10, "the UI's files: {files:?}");
    for (path, name) in files {
        let url = format!("{}{path}", nimbus.url);
        let resp = http.get(&url).send().await.expect("GET");
        assert_eq!(resp.status(), 200, "{url}");
        let headers = resp.headers().clone();
        assert_eq!(headers["content-type"], content_type(&name), "{url}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(headers.contains_key("content-security-policy"));
        let on_disk = std::fs::read(ui_dir.join(&name)).expect("UI file");
        assert_eq!(resp.bytes().await.expect("body"), on_disk, "{url}");
    }
    let api = http
        .get(format!("{}/api/v1/cluster/summary", nimbus.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(api.status(), 401, "the API still requires the secret");
    let other = http
        .get(format!("{}/secret.txt", nimbus.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(other.status(), 401, "only the UI's own files are public");
}
