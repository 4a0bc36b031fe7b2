//! Supervisors on distinct hosts: each in its own network namespace with its own address, so
//! tuples between workers cross real (virtual) interfaces and a bridge, not loopback. 3 workers
//! on 2 hosts, exact counts, every id acked. Needs root and iproute2; skips (saying why)
//! elsewhere.

use cluster_tests::netns::Hosts;
use cluster_tests::{eventually, expected_counts, serial, Cluster, ClusterOptions};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_on_two_hosts_in_their_own_network_namespaces() {
    let _turn = serial().await;
    let hosts = match Hosts::create(2) {
        Ok(h) => Arc::new(h),
        Err(why) => {
            println!("skipping the distinct-hosts test: {why}");
            return;
        }
    };
    let opts = ClusterOptions {
        hosts: Some(hosts.clone()),
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start("distinct-hosts", opts).await;
    let n = 6_000;
    cluster.submit_word_count("wc", 3, n, 2000);
    let assignment = cluster.wait_running("wc", 3).await;
    let mut addresses: Vec<&str> = assignment.workers.iter().map(|w| w.host.as_str()).collect();
    addresses.sort_unstable();
    addresses.dedup();
    let expected_hosts: Vec<&str> = hosts.hosts.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(addresses, expected_hosts, "workers on both hosts");

    cluster.wait_all_acked(n, Duration::from_secs(60)).await;
    let expected = expected_counts(n);
    eventually("exact counts", Duration::from_secs(30), || async {
        (cluster.counts().0 == expected).then_some(())
    })
    .await;

    // The workers of the first host connected to the other host's address.
    let other = &hosts.hosts[1].1;
    let logs: String = std::fs::read_dir(cluster.supervisors[0].data_dir.join("logs"))
        .expect("worker logs")
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        logs.lines()
            .any(|l| l.contains("connected to worker") && l.contains(&format!("{other}:"))),
        "a worker on the first host connected to {other}:\n{logs}"
    );
}
