//! Helpers for the Nimbus tests: a Nimbus on 127.0.0.1:0 in a temp dir, a tiny valid topology,
//! uploads, supervisor heartbeats, and polling with a deadline.
#![allow(dead_code)] // each test binary uses a different part

use nimbus::{NimbusConfig, NimbusHandle};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempest_client::{ClientError, NimbusClient};
use tempest_protocol::config::TOPOLOGY_WORKERS;
use tempest_protocol::control::{Assignment, SubmitRequest, SupervisorHeartbeat};
use tempest_protocol::spec::TaskLayout;
use tempest_protocol::{plan_executors, Config, TopologySpec};
use tempfile::TempDir;
use topology_api::prelude::*;

/// The cluster secret of test Nimbuses.
pub(crate) const SECRET: &str = "test-secret";

/// A Nimbus in a temp dir, and a client for it.
pub(crate) struct TestNimbus {
    pub handle: Option<NimbusHandle>,
    pub client: NimbusClient,
    pub url: String,
    pub dir: TempDir,
}

impl TestNimbus {
    /// Starts one with the default config (and [`SECRET`]), changed by `tweak`.
    pub(crate) async fn start(tweak: impl FnOnce(&mut NimbusConfig)) -> Self {
        Self::start_with_clock(tweak, nimbus::Clock::system()).await
    }

    /// [`TestNimbus::start`] with the metrics stamped by `clock`.
    pub(crate) async fn start_with_clock(
        tweak: impl FnOnce(&mut NimbusConfig),
        clock: nimbus::Clock,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = config(dir.path());
        tweak(&mut config);
        let (handle, client, url) = serve(config, clock).await;
        TestNimbus {
            handle: Some(handle),
            client,
            url,
            dir,
        }
    }

    /// The data dir.
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("nimbus")
    }

    /// Files in the artifacts dir (temp files included).
    pub(crate) fn artifact_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.data_dir().join("artifacts"))
            .expect("artifacts dir")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A client with another secret (or none).
    pub(crate) fn client_with(&self, secret: Option<&str>) -> NimbusClient {
        NimbusClient::new(&self.url, secret.map(String::from)).unwrap()
    }

    /// Uploads `bytes` as an artifact; returns its sha256.
    pub(crate) async fn upload(&self, bytes: &[u8]) -> String {
        let path = self.dir.path().join(format!("binary-{}", bytes.len()));
        std::fs::write(&path, bytes).unwrap();
        self.client.upload_artifact(&path).await.expect("upload")
    }

    /// Uploads a small binary and submits `spec` as `name`.
    pub(crate) async fn submit(
        &self,
        name: &str,
        spec: TopologySpec,
    ) -> tempest_protocol::control::ActionResponse {
        let sha = self.upload(b"#!/bin/sh\necho a topology\n").await;
        self.client
            .submit(&submit_request(name, spec, &sha))
            .await
            .expect("submit")
    }

    /// Stops it (the data dir stays).
    pub(crate) async fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await.expect("clean shutdown");
        }
    }

    /// Starts a new Nimbus on the same data dir.
    pub(crate) async fn restart(&mut self, tweak: impl FnOnce(&mut NimbusConfig)) {
        self.stop().await;
        let mut config = config(self.dir.path());
        tweak(&mut config);
        let (handle, client, url) = serve(config, nimbus::Clock::system()).await;
        self.handle = Some(handle);
        self.client = client;
        self.url = url;
    }
}

/// The test config: data dir under `dir`, the test secret.
pub(crate) fn config(dir: &Path) -> NimbusConfig {
    NimbusConfig {
        data_dir: dir.join("nimbus"),
        secret: Some(SECRET.to_string()),
        ..NimbusConfig::default()
    }
}

async fn serve(config: NimbusConfig, clock: nimbus::Clock) -> (NimbusHandle, NimbusClient, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = nimbus::serve_with_clock(listener, config, clock)
        .await
        .expect("nimbus starts");
    let url = handle.url();
    let client = NimbusClient::new(&url, Some(SECRET.to_string())).unwrap();
    (handle, client, url)
}

struct Words;
#[async_trait]
impl Spout for Words {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["word"]);
    }
    async fn next_tuple(&mut self, _: &mut SpoutOutputCollector) -> ComponentResult {
        Ok(())
    }
}

struct Count;
#[async_trait]
impl BasicBolt for Count {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["word", "count"]);
    }
    fn execute(&mut self, _: &Tuple, _: &mut BasicOutputCollector<'_>) -> ComponentResult {
        Ok(())
    }
}

/// A valid spec: spout "words" (2 executors) -> bolt "count" (3 executors, 4 tasks), plus one
/// acker: 6 executors, 7 tasks.
pub(crate) fn spec(workers: u64) -> TopologySpec {
    let mut b = TopologyBuilder::new("test");
    b.with_config(Config::new().with_workers(workers));
    b.set_spout("words", || Words, 2);
    b.set_basic_bolt("count", || Count, 3)
        .set_num_tasks(4)
        .fields_grouping("words", ["word"]);
    b.build().expect("valid topology").spec().clone()
}

/// A submit request.
pub(crate) fn submit_request(name: &str, spec: TopologySpec, artifact: &str) -> SubmitRequest {
    SubmitRequest {
        name: name.into(),
        spec,
        artifact: artifact.into(),
        config: Config::new(),
    }
}

/// A heartbeat of supervisor `id` on host `host-<id>`.
pub(crate) fn supervisor(id: &str, slots: &[u16]) -> SupervisorHeartbeat {
    SupervisorHeartbeat {
        id: id.into(),
        host: format!("host-{id}"),
        slots: slots.to_vec(),
        workers: vec![],
        http: None,
    }
}

/// Polls `check` until it gives a value; panics after `within`.
pub(crate) async fn eventually<T, Fut>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Fut,
) -> T
where
    Fut: Future<Output = Option<T>>,
{
    tokio::time::timeout(within, async {
        loop {
            if let Some(t) = check().await {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out after {within:?} waiting for {what}"))
}

/// A heartbeating task, stopped when dropped.
pub(crate) struct Heartbeating(tokio::task::JoinHandle<()>);

impl Drop for Heartbeating {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Heartbeating {
    /// Runs `beats` until dropped.
    pub(crate) fn spawn(beats: impl Future<Output = ()> + Send + 'static) -> Self {
        Heartbeating(tokio::spawn(beats))
    }
}

pub(crate) fn keep_heartbeating(client: &NimbusClient, hb: SupervisorHeartbeat) -> Heartbeating {
    let client = client.clone();
    Heartbeating::spawn(async move {
        loop {
            let _ = client.supervisor_heartbeat(&hb).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// Checks every executor of the assignment's spec is assigned exactly once.
pub(crate) fn assert_every_executor_once(a: &Assignment) {
    let mut expected = plan_executors(&a.spec, &TaskLayout::of(&a.spec));
    let mut assigned: Vec<_> = a.workers.iter().flat_map(|w| w.executors.clone()).collect();
    let key =
        |e: &tempest_protocol::ExecutorPlan| (e.component.clone(), e.tasks.start, e.tasks.end);
    expected.sort_by_key(key);
    assigned.sort_by_key(key);
    assert_eq!(assigned, expected, "every executor exactly once");
    assert!(
        assigned.iter().any(|e| e.component == "__acker"),
        "ackers are assigned too"
    );
}

/// The HTTP status of a failed call, with its message.
pub(crate) fn refused<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::Api {
            status, message, ..
        }) => (status, message),
        other => panic!("expected an error answer, got {other:?}"),
    }
}

/// `topology.workers` of a spec.
pub(crate) fn workers_of(spec: &TopologySpec) -> u64 {
    spec.config.u64_or(TOPOLOGY_WORKERS, 1).unwrap()
}
