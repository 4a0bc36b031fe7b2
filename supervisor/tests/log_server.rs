//! The supervisor's log server over real HTTP: the tail by default, byte ranges, reading past
//! the end, limits, names that are not files of the logs directory (paths, traversal,
//! symlinks), the cluster secret in either header, and the file list.

use reqwest::StatusCode;
use supervisor::log_server::{self, FILE_SIZE_HEADER, MAX_LENGTH, START_HEADER};
use tempest_protocol::auth::SECRET_HEADER;

const SECRET: &str = "s3cret";

/// A log server on a temp logs dir holding `wc-6700.log` (100 000 bytes: the digits of
/// `i % 10`), with a secret file next to the dir.
async fn server() -> (tempfile::TempDir, log_server::LogServer) {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let content: String = (0..100_000)
        .map(|i| char::from(b'0' + (i % 10) as u8))
        .collect();
    std::fs::write(logs.join("wc-6700.log"), content).unwrap();
    std::fs::write(logs.join("wc-6700.log.1"), "older\n").unwrap();
    std::fs::write(tmp.path().join("secret.txt"), "do not serve").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret.txt"), logs.join("link.log")).unwrap();
    std::fs::create_dir(logs.join("dir.log")).unwrap();
    let s = log_server::start("127.0.0.1:0", "127.0.0.1", logs, Some(SECRET))
        .await
        .unwrap();
    (tmp, s)
}

async fn get(url: &str, secret: Option<&str>) -> reqwest::Response {
    let mut rb = reqwest::Client::new().get(url);
    if let Some(s) = secret {
        rb = rb.header(SECRET_HEADER, s);
    }
    rb.send().await.unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> u64 {
    r.headers()[name].to_str().unwrap().parse().unwrap()
}

async fn error_of(r: reqwest::Response) -> String {
    let v: serde_json::Value = r.json().await.unwrap();
    v["error"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_tail_and_byte_ranges_are_served() {
    let (_tmp, s) = server().await;
    let base = format!("{}/api/v1/log?file=wc-6700.log", s.url());

    let r = get(&base, Some(SECRET)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/plain; charset=utf-8"
    );
    assert_eq!(header(&r, FILE_SIZE_HEADER), 100_000);
    assert_eq!(header(&r, START_HEADER), 100_000 - 65_536);
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), 65_536, "the last 64 KiB by default");
    assert_eq!(body[0], b'0' + ((100_000 - 65_536) % 10) as u8);

    let r = get(&format!("{base}&length=10"), Some(SECRET)).await;
    assert_eq!(header(&r, START_HEADER), 99_990);
    assert_eq!(r.text().await.unwrap(), "0123456789");

    let r = get(&format!("{base}&start=13&length=5"), Some(SECRET)).await;
    assert_eq!(header(&r, START_HEADER), 13);
    assert_eq!(r.text().await.unwrap(), "34567");

    let r = get(&format!("{base}&start=99998&length=100"), Some(SECRET)).await;
    assert_eq!(r.text().await.unwrap(), "89", "cut at the end of the file");

    let r = get(&format!("{base}&start=200000"), Some(SECRET)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, START_HEADER), 100_000);
    assert_eq!(r.text().await.unwrap(), "", "nothing past the end");

    let r = get(
        &format!("{}/api/v1/log?file=wc-6700.log.1", s.url()),
        Some(SECRET),
    )
    .await;
    assert_eq!(r.text().await.unwrap(), "older\n", "rotated logs too");
}

#[tokio::test]
async fn bad_ranges_are_refused_with_a_message() {
    let (_tmp, s) = server().await;
    let base = format!("{}/api/v1/log?file=wc-6700.log", s.url());
    let r = get(&format!("{base}&length={}", MAX_LENGTH + 1), Some(SECRET)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(error_of(r).await.contains("limit"));
    let r = get(&format!("{base}&start=-1"), Some(SECRET)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(error_of(r).await.contains("start \"-1\""));
    let r = get(&format!("{}/api/v1/log", s.url()), Some(SECRET)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn only_files_of_the_logs_directory_are_served() {
    let (_tmp, s) = server().await;
    for name in [
        "../secret.txt",
        "..%2Fsecret.txt",
        "%2Fetc%2Fpasswd",
        "/etc/passwd",
        "link.log",
        "dir.log",
        "..",
        ".",
        "",
        "nope.log",
        "wc-6700.log%00",
    ] {
        let r = get(&format!("{}/api/v1/log?file={name}", s.url()), Some(SECRET)).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{name}");
        let e = error_of(r).await;
        assert!(e.starts_with("no log file"), "{name}: {e}");
    }
}

#[tokio::test]
async fn the_secret_is_required_in_either_header() {
    let (_tmp, s) = server().await;
    let url = format!("{}/api/v1/log?file=wc-6700.log&length=1", s.url());
    for secret in [None, Some("wrong")] {
        let r = get(&url, secret).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(error_of(r).await, "missing or wrong cluster secret");
    }
    let r = get(&format!("{}/api/v1/logs", s.url()), None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = reqwest::Client::new()
        .get(&url)
        .bearer_auth(SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "9");
}

#[tokio::test]
async fn the_files_are_listed() {
    let (_tmp, s) = server().await;
    let r = get(&format!("{}/api/v1/logs", s.url()), Some(SECRET)).await;
    let v: serde_json::Value = r.json().await.unwrap();
    let names: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["wc-6700.log", "wc-6700.log.1"]);
    assert_eq!(v["files"][0]["size"], 100_000);
    assert!(v["files"][0]["modifiedSecs"].as_u64().unwrap() > 0);
}
