//! `GET /api/v1/topology/{id}/worker-log/{host}/{port}`: Nimbus fetches a worker's log from a
//! real supervisor log server (found by the supervisor's heartbeat) with the secret and passes
//! it on, ranges and errors included.

mod common;

use common::*;
use tempest_protocol::control::SupervisorHeartbeat;

/// A supervisor log server on a temp logs dir with `logs` files, and its heartbeat.
async fn log_server(
    secret: &str,
    logs: &[(&str, &str)],
) -> (tempfile::TempDir, supervisor::log_server::LogServer) {
    let tmp = tempfile::tempdir().unwrap();
    for (name, text) in logs {
        std::fs::write(tmp.path().join(name), text).unwrap();
    }
    let s = supervisor::log_server::start(
        "127.0.0.1:0",
        "127.0.0.1",
        tmp.path().to_path_buf(),
        Some(secret),
    )
    .await
    .unwrap();
    (tmp, s)
}

fn with_http(hb: SupervisorHeartbeat, url: &str) -> SupervisorHeartbeat {
    SupervisorHeartbeat {
        http: Some(url.to_string()),
        ..hb
    }
}

#[tokio::test]
async fn worker_logs_are_fetched_from_their_supervisor() {
    let n = TestNimbus::start(|_| {}).await;
    let (_logs, server) = log_server(
        SECRET,
        &[("wc-6700.log", "line one\nline two\nline three\n")],
    )
    .await;
    n.client
        .supervisor_heartbeat(&with_http(supervisor("sup-a", &[6700]), server.url()))
        .await
        .unwrap();
    n.submit("wc", spec(1)).await;

    let tail = n
        .client
        .worker_log("wc", "host-sup-a", 6700, None, Some(11))
        .await
        .unwrap();
    assert_eq!(tail.bytes, b"line three\n");
    assert_eq!((tail.file_size, tail.start), (29, 18));
    let range = n
        .client
        .worker_log("wc", "host-sup-a", 6700, Some(5), Some(3))
        .await
        .unwrap();
    assert_eq!(range.bytes, b"one");
    let all = n
        .client
        .worker_log("wc", "host-sup-a", 6700, None, None)
        .await
        .unwrap();
    assert_eq!(all.bytes, b"line one\nline two\nline three\n");

    // The supervisor's refusals are passed on.
    let e = refused(
        n.client
            .worker_log("wc", "host-sup-a", 6700, None, Some(10_000_000))
            .await,
    );
    assert_eq!(e.0, 400, "{e:?}");
    assert!(e.1.contains("limit"), "{e:?}");
    // No log for a port the supervisor offers but no worker wrote to.
    n.client
        .supervisor_heartbeat(&with_http(supervisor("sup-a", &[6700, 6701]), server.url()))
        .await
        .unwrap();
    let e = refused(
        n.client
            .worker_log("wc", "host-sup-a", 6701, None, None)
            .await,
    );
    assert_eq!(e.0, 404, "{e:?}");
    assert!(e.1.contains("no log file \"wc-6701.log\""), "{e:?}");
    // No supervisor offers that address.
    let e = refused(
        n.client
            .worker_log("wc", "elsewhere", 6700, None, None)
            .await,
    );
    assert_eq!(e.0, 404);
    assert!(
        e.1.contains("no known supervisor offers elsewhere:6700"),
        "{e:?}"
    );

    // Text answers come back as text/plain.
    let r = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/topology/wc/worker-log/host-sup-a/6700?length=5",
            n.url
        ))
        .bearer_auth(SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/plain; charset=utf-8"
    );
    assert_eq!(r.headers()["x-log-start"].to_str().unwrap(), "24");
    assert_eq!(r.text().await.unwrap(), "hree\n");
}

#[tokio::test]
async fn supervisors_without_logs_or_unreachable_or_with_another_secret_are_named() {
    let n = TestNimbus::start(|_| {}).await;
    // sup-a serves no logs (http_listen = off).
    n.client
        .supervisor_heartbeat(&supervisor("sup-a", &[6700]))
        .await
        .unwrap();
    n.submit("wc", spec(1)).await;
    let e = refused(
        n.client
            .worker_log("wc", "host-sup-a", 6700, None, None)
            .await,
    );
    assert_eq!(e.0, 404);
    assert!(e.1.contains("serves no worker logs"), "{e:?}");

    // A log server with another secret.
    let (_logs, other) = log_server("not-the-cluster-secret", &[("wc-6700.log", "x")]).await;
    n.client
        .supervisor_heartbeat(&with_http(supervisor("sup-a", &[6700]), other.url()))
        .await
        .unwrap();
    let e = refused(
        n.client
            .worker_log("wc", "host-sup-a", 6700, None, None)
            .await,
    );
    assert_eq!(e.0, 502, "{e:?}");
    assert!(e.1.contains("refused Nimbus's cluster secret"), "{e:?}");

    // A log server that is gone.
    let url = other.url().to_string();
    other.stop();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    n.client
        .supervisor_heartbeat(&with_http(supervisor("sup-a", &[6700]), &url))
        .await
        .unwrap();
    let e = refused(
        n.client
            .worker_log("wc", "host-sup-a", 6700, None, None)
            .await,
    );
    assert_eq!(e.0, 502, "{e:?}");
    assert!(e.1.contains("cannot reach the log server"), "{e:?}");
}
