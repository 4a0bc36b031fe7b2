//! Nimbus's store seam: the same contract for the embedded store (redb) and the etcd store
//! (a real etcd on a free loopback port), and the etcd store's fencing: a write from a Nimbus
//! whose leader key was taken over is refused and leaves no trace in etcd. Also checks the
//! etcd launcher the HA tests use.

use cluster_tests::etcd::EtcdCluster;
use nimbus::store::{Changes, ClusterStore, EmbeddedStore, StoreError, TopologyRecord};
use nimbus::EtcdStore;
use std::time::Duration;
use tempest_protocol::control::Assignment;
use tempest_protocol::{Config, TopologySpec};

fn record(name: &str) -> TopologyRecord {
    let spec = TopologySpec {
        name: name.into(),
        config: Config::new(),
        components: Vec::new(),
    };
    TopologyRecord::submitted(spec, "a".repeat(64), 1_000)
}

fn assignment(name: &str, version: u64) -> Assignment {
    let rec = record(name);
    Assignment {
        topology: name.into(),
        version,
        artifact: rec.artifact,
        spec: rec.spec,
        workers: Vec::new(),
    }
}

/// What every store must do: a commit is read back whole, a removal removes the topology and
/// its assignment, and the next version stays above every stored one.
async fn contract(store: &dyn ClusterStore) {
    let empty = store.load().await.expect("load an empty store");
    assert!(empty.topologies.is_empty() && empty.assignments.is_empty());
    assert_eq!(empty.next_version, 1);

    let mut c = Changes::default();
    c.put_topology(record("wc"));
    c.put_topology(record("gone"));
    c.put_assignment(assignment("wc", 7));
    c.put_assignment(assignment("gone", 3));
    c.next_version = Some(8);
    let back = store.commit(c.clone()).await.expect("commit");
    assert_eq!(back, c, "commit hands the changes back");
    let mut c = Changes::default();
    c.remove("gone");
    store.commit(c).await.expect("remove");

    let d = store.load().await.expect("load");
    assert_eq!(d.topologies.keys().collect::<Vec<_>>(), ["wc"]);
    assert_eq!(d.topologies["wc"], record("wc"));
    assert_eq!(d.assignments.keys().collect::<Vec<_>>(), ["wc"]);
    assert_eq!(d.assignments["wc"], assignment("wc", 7));
    assert_eq!(d.next_version, 8);

    // A stored version above the counter wins.
    let mut c = Changes::default();
    c.put_assignment(assignment("wc", 41));
    store.commit(c).await.expect("commit");
    assert_eq!(store.load().await.expect("load").next_version, 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("nimbus.redb")).unwrap();
    contract(&store).await;
    assert_eq!(store.replicas(&"a".repeat(64)).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etcd_store_keeps_the_contract_and_is_fenced() {
    let Some(etcd) = EtcdCluster::start_or_skip("etcd-store", 1).await else {
        return;
    };
    let store = EtcdStore::connect(&etcd.endpoints(), "contract")
        .await
        .expect("connect");
    // No term held: nothing is written.
    let mut c = Changes::default();
    c.put_topology(record("early"));
    let e = store.commit(c.clone()).await.unwrap_err();
    assert!(matches!(e, StoreError::NotLeader { .. }), "{e}");
    assert!(etcd.keys("/tempest/contract/topologies/").is_empty());

    // This "Nimbus" holds the leader key.
    let leader = "/tempest/contract/leader";
    etcd.etcdctl(&["put", leader, r#"{"id":"a:1","url":"http://a:1"}"#]);
    let term = etcd.keys(leader)[0].create_revision;
    store.fence_on(term, Duration::from_secs(30));
    contract(&store).await;

    // Another Nimbus takes the key (the first one's lease ran out while it was paused).
    etcd.etcdctl(&["del", leader]);
    etcd.etcdctl(&["put", leader, r#"{"id":"b:1","url":"http://b:1"}"#]);
    let before = etcd.keys("/tempest/contract/");
    let revision_before = before.iter().map(|k| k.mod_revision).max().unwrap();
    let mut c = Changes::default();
    c.put_topology(record("late"));
    c.remove("wc");
    c.next_version = Some(99);
    let e = store.commit(c.clone()).await.unwrap_err();
    assert!(matches!(e, StoreError::NotLeader { .. }), "{e}");
    let after = etcd.keys("/tempest/contract/");
    assert_eq!(after, before, "a fenced write leaves every key as it was");
    let status = etcd.etcdctl(&["endpoint", "status", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let revision_now = v[0]["Status"]["header"]["revision"].as_i64().unwrap();
    assert_eq!(
        revision_now, revision_before,
        "no revision came from the fenced write"
    );
    // And it stays refused: the fence is dropped once broken.
    let e = store.commit(c).await.unwrap_err();
    assert!(matches!(e, StoreError::NotLeader { .. }), "{e}");

    // A term whose lease may have run out sends nothing at all.
    let term = etcd.keys(leader)[0].create_revision;
    store.fence_on(term, Duration::ZERO);
    let mut c = Changes::default();
    c.put_topology(record("expired"));
    let e = store.commit(c).await.unwrap_err();
    assert!(matches!(e, StoreError::NotLeader { .. }), "{e}");
    assert_eq!(etcd.keys("/tempest/contract/"), after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_launcher_starts_one_and_three_members() {
    for members in [1, 3] {
        let Some(etcd) = EtcdCluster::start_or_skip("etcd-launcher", members).await else {
            return;
        };
        assert_eq!(etcd.endpoints().len(), members);
        etcd.etcdctl(&["put", "/t/k", "v"]);
        let keys = etcd.keys("/t/");
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert_eq!(
            (keys[0].key.as_str(), keys[0].value.as_str()),
            ("/t/k", "v")
        );
        assert!(keys[0].mod_revision >= 2, "{keys:?}");
        let status = etcd.etcdctl(&["endpoint", "status", "--cluster", "-w", "json"]);
        let v: serde_json::Value = serde_json::from_str(&status).unwrap();
        assert_eq!(v.as_array().map(Vec::len), Some(members), "{status}");
    }
}
