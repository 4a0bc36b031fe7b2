//! Local mode's web UI and REST API (`local --ui 0`), against a real topology process: the same
//! endpoints as Nimbus with a cluster of one supervisor and one worker; live counts, the
//! component page, `/metrics`, clear 4xx answers, and the actions act on the run: deactivate
//! pauses the spout, kill ends the process.

use cluster_tests::{eventually, serial, LocalRun};
use serde_json::Value;
use std::time::{Duration, Instant};

const NAME: &str = LocalRun::TOPOLOGY;

async fn get(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let resp = http.get(url).send().await.expect("GET");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn post(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let resp = http.post(url).send().await.expect("POST");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// (emitted by the spout, executed by count) as the topology page says, all time.
async fn counts(http: &reqwest::Client, base: &str) -> Option<(u64, u64)> {
    let (status, t) = get(http, &format!("{base}/api/v1/topology/{NAME}")).await;
    if status != 200 {
        return None;
    }
    let spout = t["spouts"].as_array()?.first()?["emitted"].as_u64()?;
    let count = t["bolts"]
        .as_array()?
        .iter()
        .find(|b| b["boltId"] == "count")?["executed"]
        .as_u64()?;
    Some((spout, count))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_serves_the_api_and_obeys_its_actions() {
    let _turn = serial().await;
    let mut run = LocalRun::start("local-ui", 100_000_000, 2_000).await;
    let http = reqwest::Client::new();
    let api = format!("{}/api/v1", run.url);

    // A cluster of one, running one topology.
    let (status, c) = get(&http, &format!("{api}/cluster/summary")).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(
        (c["supervisors"].as_u64(), c["topologies"].as_u64()),
        (Some(1), Some(1))
    );
    let (_, list) = get(&http, &format!("{api}/topology/summary")).await;
    assert_eq!(list["topologies"][0]["id"], NAME, "{list}");
    assert_eq!(list["topologies"][0]["status"], "ACTIVE", "{list}");
    let (_, sups) = get(&http, &format!("{api}/supervisor/summary")).await;
    assert_eq!(
        sups["supervisors"].as_array().map(Vec::len),
        Some(1),
        "{sups}"
    );

    // Live counts, the graph and the worker.
    eventually(
        "the spout and count with non-zero counts",
        Duration::from_secs(30),
        || async {
            counts(&http, &run.url)
                .await
                .filter(|&(e, x)| e > 0 && x > 0)
        },
    )
    .await;
    let (_, t) = get(&http, &format!("{api}/topology/{NAME}?window=600")).await;
    assert_eq!(t["window"], "600", "{t}");
    assert_eq!(t["graph"]["edges"].as_array().map(Vec::len), Some(2), "{t}");
    assert_eq!(t["workers"].as_array().map(Vec::len), Some(1), "{t}");
    assert_eq!(t["workers"][0]["host"], "localhost", "{t}");
    let ui_port = run
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u64>().ok());
    assert_eq!(t["workers"][0]["port"].as_u64(), ui_port, "{t}");
    let (status, comp) = get(&http, &format!("{api}/topology/{NAME}/component/split")).await;
    assert_eq!(status, 200, "{comp}");
    assert_eq!(comp["componentType"], "bolt", "{comp}");
    assert_eq!(
        comp["executorStats"].as_array().map(Vec::len),
        Some(2),
        "{comp}"
    );
    let metrics = http
        .get(format!("{}/metrics", run.url))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(&format!("topology=\"{NAME}\"")),
        "/metrics has the topology's series:\n{metrics}"
    );

    // Clear 4xx answers.
    let (status, e) = get(&http, &format!("{api}/topology/nope")).await;
    assert_eq!(status, 404, "{e}");
    assert!(e["error"].as_str().unwrap_or("").contains("nope"), "{e}");
    let (status, e) = get(&http, &format!("{api}/topology/{NAME}/component/nope")).await;
    assert_eq!(status, 404, "{e}");
    assert!(e["error"].as_str().unwrap_or("").contains("split"), "{e}");
    // Storm's conventions, as on a cluster: any window, the endpoints and fields its UI and
    // tools read, JSONP and CORS.
    let (status, t7) = get(&http, &format!("{api}/topology/{NAME}?window=7")).await;
    assert_eq!((status, &t7["window"]), (200, &Value::from("7")), "{t7}");
    assert_eq!(t7["encodedId"], NAME, "{t7}");
    assert!(t7["spouts"][0]["encodedSpoutId"].is_string(), "{t7}");
    assert!(t7["workers"][0]["uptimeSeconds"].is_u64(), "{t7}");
    assert!(
        t7["configuration"]["topology.message.timeout.secs"].is_u64(),
        "{t7}"
    );
    let (_, c) = get(&http, &format!("{api}/cluster/summary")).await;
    assert_eq!(
        c["stormVersion"].as_str().map(|v| v.split('.').count()),
        Some(3),
        "{c}"
    );
    let (_, nb) = get(&http, &format!("{api}/nimbus/summary")).await;
    assert_eq!(nb["nimbuses"][0]["status"], "Leader", "{nb}");
    assert!(nb["nimbuses"][0]["nimbusUpTimeSeconds"].is_u64(), "{nb}");
    let (_, conf) = get(&http, &format!("{api}/cluster/configuration")).await;
    assert!(conf["nimbus.seeds"].is_array(), "{conf}");
    let (status, s) = get(&http, &format!("{api}/supervisor?host=localhost")).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["supervisors"][0]["slotsFree"], 0, "{s}");
    assert_eq!(s["workers"].as_array().map(Vec::len), Some(1), "{s}");
    let (_, w) = get(&http, &format!("{api}/topology-workers/{NAME}")).await;
    assert_eq!(w["hostPortList"][0]["host"], "localhost", "{w}");
    let (_, v) = get(&http, &format!("{api}/topology/{NAME}/visualization")).await;
    assert_eq!(v["split"][":type"], "bolt", "{v}");
    let (_, p) = get(&http, &format!("{api}/topology/{NAME}/component/split")).await;
    assert!(p["executorStats"][0]["encodedId"].is_string(), "{p}");
    assert!(p["executorStats"][0]["uptimeSeconds"].is_u64(), "{p}");
    assert_eq!(p["encodedTopologyId"], NAME, "{p}");
    let (status, e) = post(&http, &format!("{api}/topology/{NAME}/debug/enable/10")).await;
    assert_eq!(status, 400, "{e}");
    assert!(
        e["errorMessage"]
            .as_str()
            .unwrap_or("")
            .contains("not supported"),
        "{e}"
    );
    let r = http
        .get(format!("{api}/cluster/summary?callback=cb"))
        .send()
        .await
        .expect("JSONP");
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(r.text().await.expect("text").starts_with("cb({"));
    let r = http
        .request(reqwest::Method::OPTIONS, format!("{api}/topology/{NAME}"))
        .send()
        .await
        .expect("preflight");
    assert_eq!(r.status().as_u16(), 200);
    let (status, e) = post(&http, &format!("{api}/topology/{NAME}/rebalance/0")).await;
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"].as_str().unwrap_or("").contains("local mode"),
        "{e}"
    );
    let (status, e) = get(
        &http,
        &format!("{api}/topology/{NAME}/worker-log/localhost/1"),
    )
    .await;
    assert_eq!(status, 404, "{e}");

    // Deactivate pauses the spout: its count stops growing (the page refreshes every second).
    let (status, a) = post(&http, &format!("{api}/topology/{NAME}/deactivate")).await;
    assert_eq!(
        (status, &a["status"]),
        (200, &Value::from("success")),
        "{a}"
    );
    assert_eq!(a["state"], "INACTIVE", "{a}");
    let paused_at = {
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut last, mut since) = (None, Instant::now());
        loop {
            let emitted = counts(&http, &run.url).await.map(|(e, _)| e);
            if emitted != last {
                (last, since) = (emitted, Instant::now());
            } else if let Some(e) = last.filter(|_| since.elapsed() >= Duration::from_secs(3)) {
                break e;
            }
            assert!(
                Instant::now() < deadline,
                "the spout kept emitting after deactivate: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (_, a) = post(&http, &format!("{api}/topology/{NAME}/activate")).await;
    assert_eq!(a["state"], "ACTIVE", "{a}");
    eventually(
        "the spout to emit again after activate",
        Duration::from_secs(30),
        || async {
            counts(&http, &run.url)
                .await
                .filter(|&(e, _)| e > paused_at)
        },
    )
    .await;

    // Kill ends the run: the process drains, prints its summary and exits with success.
    let (status, a) = post(&http, &format!("{api}/topology/{NAME}/kill/0")).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["state"], "KILLED", "{a}");
    let exit = run.daemon.exited(Duration::from_secs(30)).await;
    assert!(exit.success(), "exit {exit:?}; log:\n{}", run.log());
    assert!(
        run.log().contains(&format!("topology {NAME} ran for")),
        "the summary is printed:\n{}",
        run.log()
    );
}
