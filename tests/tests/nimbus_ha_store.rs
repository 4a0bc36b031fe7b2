//! Nimbus HA's store: the etcd launcher the HA tests use (real etcd members on free loopback
//! ports).

use cluster_tests::etcd::EtcdCluster;

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
