//! The web UI in a real headless Chromium, driven over WebDriver (`fantoccini` and Debian's
//! `chromedriver`), against a word count running on Nimbus + 2 supervisors: the topology page
//! asks for the cluster secret, then shows the components with non-zero counts and draws the
//! graph (a node per component, an edge per stream, labelled with the grouping) and the live
//! charts; the deactivate button, once confirmed, deactivates the topology (the API says so).
//! The same page served by local mode (`local --ui 0`) shows the same, without asking for a
//! secret. A Kafka topology's page (local mode, against a tansu broker) shows the lag table:
//! a row per partition, its committed offset reaching the log end.
//!
//! The page's screenshot is written to `$CARGO_TARGET_TMPDIR/ui-topology.png`, and to
//! `docs/ui-topology.png` (shown in the README) when `TEMPEST_UPDATE_SCREENSHOTS=1`.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`apt-get install -y chromium
//! chromium-driver`, or `bash .ci/run`, which installs them); without them it fails.

use cluster_tests::kafka::{keyed_records, Broker};
use cluster_tests::{
    eventually, eventually_or, free_port, remove_test_dir, scratch_dir, serial, workspace_bin,
    Cluster, ClusterOptions, LocalRun, SECRET,
};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempest_protocol::control::TopologyState;

/// The topology (its name shows in the README's screenshot).
const NAME: &str = "word-count";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The README's screenshot: a laptop screen.
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 800;

/// chromedriver on a free loopback port, killed when dropped.
struct ChromeDriver {
    child: Child,
    url: String,
    log: PathBuf,
}

impl ChromeDriver {
    /// Fails (never skips) when Chromium or chromedriver is not installed.
    fn require() {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: the web UI test needs Debian's Chromium and ChromeDriver; \
                 run `apt-get install -y chromium chromium-driver` (or `bash .ci/run`, which \
                 installs them)"
            );
        }
    }

    async fn start(dir: &Path) -> ChromeDriver {
        let port = free_port();
        let log = dir.join("chromedriver.log");
        let out = std::fs::File::create(&log).expect("chromedriver log");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        eventually("chromedriver to answer", Duration::from_secs(20), || {
            let status = format!("{url}/status");
            let http = http.clone();
            async move {
                let v: serde_json::Value = http.get(status).send().await.ok()?.json().await.ok()?;
                (v["value"]["ready"] == true).then_some(())
            }
        })
        .await;
        ChromeDriver { child, url, log }
    }

    /// A headless Chromium session with a fresh profile, its window a laptop screen.
    async fn browser(&self, dir: &Path) -> Client {
        let profile = dir.join("chromium-profile");
        std::fs::create_dir_all(&profile).expect("profile dir");
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--hide-scrollbars",
                    format!("--window-size={WIDTH},{HEIGHT}"),
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!("a JSON object")
        };
        let b = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start a Chromium session: {e}\nchromedriver log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                )
            });
        // --window-size includes the (invisible) browser frame: make the page itself the size.
        let inner = b
            .execute("return [window.innerWidth, window.innerHeight]", vec![])
            .await
            .expect("window size");
        let (iw, ih) = (
            inner[0].as_u64().unwrap_or(0),
            inner[1].as_u64().unwrap_or(0),
        );
        let (w, h) = b.get_window_size().await.expect("window size");
        b.set_window_size(
            (w + u64::from(WIDTH)).saturating_sub(iw) as u32,
            (h + u64::from(HEIGHT)).saturating_sub(ih) as u32,
        )
        .await
        .expect("resize the window");
        b
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for an element matching `css`.
async fn element(b: &Client, css: &str, timeout: Duration) -> Element {
    b.wait()
        .at_most(timeout)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css} after {timeout:?}: {e}"))
}

/// Visible text of every element matching `css`.
async fn texts(b: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in b.find_all(Locator::Css(css)).await.unwrap_or_default() {
        out.push(e.text().await.unwrap_or_default());
    }
    out
}

/// "12,345" -> 12345 (None for "–" or anything else).
fn count(text: &str) -> Option<u64> {
    text.replace(',', "").trim().parse().ok()
}

/// Numbers shown in the spouts and bolts tables: component -> (emitted, executed).
async fn component_counts(b: &Client) -> BTreeMap<String, (u64, u64)> {
    let mut counts = BTreeMap::new();
    let rows = b
        .find_all(Locator::Css(
            "#spouts tbody tr[data-key], #bolts tbody tr[data-key]",
        ))
        .await
        .unwrap_or_default();
    for row in rows {
        let Ok(Some(id)) = row.attr("data-key").await else {
            continue;
        };
        let cell = |field: &'static str| {
            let row = row.clone();
            async move {
                let td = row
                    .find(Locator::Css(&format!("td[data-field={field}]")))
                    .await
                    .ok()?;
                count(&td.text().await.ok()?)
            }
        };
        let emitted = cell("emitted").await.unwrap_or(0);
        let executed = cell("executed").await.unwrap_or(0);
        counts.insert(id, (emitted, executed));
    }
    counts
}

/// What the page says about its state, for failure messages.
async fn page_state(b: &Client) -> String {
    let banner = texts(b, "#banner").await.join(" ");
    let live = texts(b, "#live").await.join(" ");
    format!("live: {live:?}; banner: {banner:?}")
}

/// Waits until the page shows sentences, split and count with non-zero counts.
async fn nonzero_counts(b: &Client) -> BTreeMap<String, (u64, u64)> {
    eventually(
        "sentences, split and count with non-zero counts on the page",
        Duration::from_secs(45),
        || async {
            let c = component_counts(b).await;
            let ok = c.get("sentences").is_some_and(|&(e, _)| e > 0)
                && c.get("split").is_some_and(|&(e, x)| e > 0 && x > 0)
                && c.get("count").is_some_and(|&(_, x)| x > 0);
            ok.then_some(c)
        },
    )
    .await
}

/// Clicks Deactivate, confirms, and waits for the page's account of the answer.
async fn deactivate_and_confirm(b: &Client) -> String {
    b.find(Locator::Css("#action-deactivate"))
        .await
        .expect("deactivate button")
        .click()
        .await
        .expect("click deactivate");
    element(b, "dialog#confirm[open]", Duration::from_secs(5))
        .await
        .find(Locator::Css("#confirm-ok"))
        .await
        .expect("confirm button")
        .click()
        .await
        .expect("confirm");
    eventually(
        "the page to show the answer",
        Duration::from_secs(15),
        || async {
            let a = texts(b, "#answer").await.join(" ");
            a.contains("INACTIVE").then_some(a)
        },
    )
    .await
}

/// Waits until the page's badge says INACTIVE and Activate is offered.
async fn page_shows_inactive(b: &Client) {
    eventually(
        "the page to show INACTIVE",
        Duration::from_secs(10),
        || async {
            let badge = texts(b, "#title .badge").await.join(" ");
            let activate = b
                .find(Locator::Css("#action-activate"))
                .await
                .ok()?
                .is_enabled()
                .await
                .ok()?;
            (badge == "INACTIVE" && activate).then_some(())
        },
    )
    .await;
}

/// Whether the Kafka lag panel is displayed.
async fn lag_panel_shown(b: &Client) -> bool {
    b.find(Locator::Css("#lag-panel"))
        .await
        .expect("the lag panel")
        .is_displayed()
        .await
        .expect("is the lag panel displayed")
}

/// A lag table row's numbers: committed offset, log end, lag (`None`: not a number).
type LagRow = (Option<u64>, Option<u64>, Option<u64>);

/// The lag table's rows by `spout/topic/partition`.
async fn lag_rows(b: &Client) -> BTreeMap<String, LagRow> {
    let mut out = BTreeMap::new();
    for row in b
        .find_all(Locator::Css("#lag tbody tr[data-key]"))
        .await
        .unwrap_or_default()
    {
        let Ok(Some(key)) = row.attr("data-key").await else {
            continue;
        };
        let mut cells = Vec::new();
        for field in ["committed", "logEnd", "lag"] {
            let text = match row
                .find(Locator::Css(&format!("td[data-field={field}]")))
                .await
            {
                Ok(td) => td.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            cells.push(count(&text));
        }
        out.insert(key, (cells[0], cells[1], cells[2]));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_page_shows_the_graph_and_deactivates() {
    ChromeDriver::require();
    let _turn = serial().await;
    let started = std::time::Instant::now();
    let cluster = Cluster::start("ui", ClusterOptions::default()).await;
    // Runs for the whole test: a few thousand sentences per second.
    cluster.submit(
        NAME,
        2,
        &[
            ("test.sentences", "100000000".into()),
            ("test.rate", "1500".into()),
        ],
    );
    let driver = ChromeDriver::start(&cluster.dir).await;
    let b = driver.browser(&cluster.dir).await;

    // The page asks for the secret (sessionStorage is empty), then polls with it.
    b.goto(&format!("{}/topology.html?id={NAME}", cluster.url))
        .await
        .expect("open the topology page");
    element(&b, "#secret-dialog[open]", Duration::from_secs(10)).await;
    let message = texts(&b, "#secret-message").await.join(" ");
    assert!(message.contains("secret"), "secret form says {message:?}");
    b.find(Locator::Css("#secret-input"))
        .await
        .expect("secret input")
        .send_keys(SECRET)
        .await
        .expect("type the secret");
    b.find(Locator::Css("#secret-submit"))
        .await
        .expect("connect button")
        .click()
        .await
        .expect("submit the secret");

    // Components with non-zero counts.
    let counts = nonzero_counts(&b).await;
    assert_eq!(
        counts.keys().map(String::as_str).collect::<Vec<_>>(),
        ["count", "sentences", "split"],
        "the page lists exactly the user components (the acker is hidden by default)"
    );

    assert!(
        !lag_panel_shown(&b).await,
        "no lag table for a topology without a Kafka spout"
    );

    // The graph: a node per component, coloured; an edge per stream, labelled.
    let nodes = b
        .find_all(Locator::Css("#graph g.node"))
        .await
        .expect("graph nodes");
    let mut ids = Vec::new();
    for n in &nodes {
        ids.push(n.attr("data-id").await.ok().flatten().unwrap_or_default());
        let fill = n
            .find(Locator::Css("rect"))
            .await
            .expect("node box")
            .attr("fill")
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        assert!(
            fill.starts_with("hsl("),
            "node coloured by capacity: {fill:?}"
        );
    }
    ids.sort();
    assert_eq!(
        ids,
        ["count", "sentences", "split"],
        "{}",
        page_state(&b).await
    );
    let edges = b
        .find_all(Locator::Css("#graph path.edge"))
        .await
        .expect("graph edges");
    assert_eq!(edges.len(), 2, "an edge per subscription");
    let labels = texts(&b, "#graph .edge-label text").await;
    assert!(
        labels
            .iter()
            .any(|l| l.starts_with("shuffle ·") && l.ends_with("/s"))
            && labels.iter().any(|l| l.starts_with("fields(word) ·")),
        "edge labels: {labels:?}"
    );

    // The live charts draw non-zero rates (they need samples a few seconds apart).
    eventually(
        "the throughput chart to draw 5 points",
        Duration::from_secs(30),
        || async {
            let chart = b.find(Locator::Css("#chart-rate")).await.ok()?;
            let points: u32 = chart.attr("data-points").await.ok()??.parse().ok()?;
            let max: f64 = chart.attr("data-max").await.ok()??.parse().ok()?;
            let lines = b
                .find_all(Locator::Css("#chart-rate path.series"))
                .await
                .ok()?;
            (points >= 5 && max > 0.0 && !lines.is_empty()).then_some(())
        },
    )
    .await;

    let png = b.screenshot().await.expect("screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is a PNG"
    );
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-topology.png");
    std::fs::write(&tmp, &png).expect("write the screenshot");
    if std::env::var_os("TEMPEST_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ui-topology.png");
        std::fs::write(&docs, &png).expect("write docs/ui-topology.png");
    }

    // Deactivate: button, confirmation, answer; the API agrees.
    let answer = deactivate_and_confirm(&b).await;
    assert!(answer.starts_with("Deactivate"), "answer: {answer:?}");
    let details = cluster.client().describe(NAME).await.expect("describe");
    assert_eq!(
        details.summary.status,
        TopologyState::Inactive,
        "the API says the topology is inactive"
    );
    page_shows_inactive(&b).await;

    // The graph's nodes link to the component pages: per task and per worker tables.
    b.find(Locator::Css("#graph g.node[data-id=split] a"))
        .await
        .expect("split's node")
        .click()
        .await
        .expect("click split's node");
    let task_rows = eventually(
        "the component page to list split's two tasks",
        Duration::from_secs(15),
        || async {
            let rows = texts(&b, "#tasks tbody tr[data-key]").await;
            (rows.len() == 2).then_some(rows)
        },
    )
    .await;
    assert!(
        texts(&b, "#title").await.join(" ").starts_with("split"),
        "{}",
        page_state(&b).await
    );
    assert!(
        !texts(&b, "#workers tbody tr[data-key]").await.is_empty(),
        "per-worker rows: tasks {task_rows:?}"
    );

    // Each worker links to its log, read through Nimbus from the supervisor.
    b.find(Locator::Css(
        "#tasks tbody tr[data-key] a[href^='/log.html']",
    ))
    .await
    .expect("a task's worker log link")
    .click()
    .await
    .expect("open the worker log");
    eventually(
        "the log page to show the worker's log",
        Duration::from_secs(15),
        || async {
            let log = texts(&b, "#log").await.join("\n");
            log.contains("worker started").then_some(())
        },
    )
    .await;

    b.close().await.expect("close the browser");
    drop(driver);
    eprintln!("ui_browser: {:?} in all", started.elapsed());
}

/// Local mode's UI (`local --ui 0`): the same topology page, no secret asked, live counts and
/// the graph; deactivate through the page pauses the run (its API says so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_serves_the_same_topology_page() {
    ChromeDriver::require();
    let _turn = serial().await;
    let run = LocalRun::start("local-ui-browser", 100_000_000, 1_500).await;
    let driver = ChromeDriver::start(&run.dir).await;
    let b = driver.browser(&run.dir).await;
    let name = LocalRun::TOPOLOGY;
    b.goto(&format!("{}/topology.html?id={name}", run.url))
        .await
        .expect("open the topology page");
    let counts = nonzero_counts(&b).await;
    assert!(
        !texts(&b, "#secret-dialog[open]").await.iter().any(|_| true),
        "local mode asks for no secret"
    );
    assert_eq!(
        counts.keys().map(String::as_str).collect::<Vec<_>>(),
        ["count", "sentences", "split"]
    );
    let nodes = b
        .find_all(Locator::Css("#graph g.node"))
        .await
        .expect("graph nodes");
    assert_eq!(nodes.len(), 3, "{}", page_state(&b).await);

    let answer = deactivate_and_confirm(&b).await;
    assert!(answer.starts_with("Deactivate"), "answer: {answer:?}");
    let details: serde_json::Value = reqwest::get(format!("{}/api/v1/topology/{name}", run.url))
        .await
        .expect("GET the topology")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        details["status"], "INACTIVE",
        "the API says the run is inactive"
    );
    page_shows_inactive(&b).await;

    // The cluster page shows the run as a cluster of one.
    b.goto(&format!("{}/", run.url))
        .await
        .expect("open the cluster page");
    eventually(
        "the cluster page to list the topology, the local supervisor and its Nimbus (the leader)",
        Duration::from_secs(15),
        || async {
            let text = texts(&b, "main").await.join(" ");
            (text.contains(name) && text.contains("localhost") && text.contains("Leader"))
                .then_some(())
        },
    )
    .await;
    b.close().await.expect("close the browser");
}

/// A Kafka topology (the `kafka_count` test topology in local mode, reading a 4-partition topic
/// from a tansu broker): its page shows the lag table, a row per partition, and the committed
/// offsets reach the log ends the producer reported (lag 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_page_shows_kafka_lag() {
    ChromeDriver::require();
    let _turn = serial().await;
    let broker_dir = scratch_dir("ui-kafka-broker");
    let broker = Broker::start(&broker_dir);
    broker.create_topic("in", 4).await;
    broker.create_topic("out", 4).await;
    let ends = broker.produce("in", &keyed_records(400)).await;
    assert_eq!(ends.len(), 4, "records in every partition: {ends:?}");
    let run = LocalRun::start_bin(
        "ui-kafka",
        &workspace_bin("kafka_count"),
        &[("test.kafka.bootstrap", broker.bootstrap())],
    )
    .await;
    let driver = ChromeDriver::start(&run.dir).await;
    let b = driver.browser(&run.dir).await;
    b.goto(&format!("{}/topology.html?id=kafka-count", run.url))
        .await
        .expect("open the topology page");

    let want: BTreeMap<String, LagRow> = ends
        .iter()
        .map(|(p, end)| {
            let end = Some(*end as u64);
            (format!("kafka/in/{p}"), (end, end, Some(0)))
        })
        .collect();
    eventually_or(
        "the lag table to show every partition committed to its log end",
        Duration::from_secs(60),
        || async {
            let got = lag_rows(&b).await;
            if got == want {
                Ok(())
            } else {
                Err(format!(
                    "rows {got:?}, want {want:?}; {}",
                    page_state(&b).await
                ))
            }
        },
    )
    .await;
    assert!(lag_panel_shown(&b).await, "the lag panel is displayed");
    assert_eq!(
        texts(&b, "#banner").await.join(" "),
        "",
        "no error on the page"
    );
    let header = texts(&b, "#lag thead th").await;
    assert_eq!(
        header[..6],
        [
            "Spout",
            "Topic",
            "Partition",
            "Committed offset",
            "Log-end offset",
            "Lag"
        ],
        "lag table columns"
    );
    // For a look at the table: scrolled into view, in the target's temp dir.
    b.execute(
        "document.getElementById('lag-panel').scrollIntoView()",
        vec![],
    )
    .await
    .expect("scroll to the lag table");
    let png = b.screenshot().await.expect("screenshot");
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-kafka-lag.png");
    std::fs::write(&tmp, &png).expect("write the screenshot");
    b.close().await.expect("close the browser");
    drop(driver);
    drop(run);
    drop(broker);
    remove_test_dir(&broker_dir);
}
