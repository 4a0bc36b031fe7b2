//! Chaos: under acking load on 4 workers (3 supervisors x 2 slots), for a bounded time, seeded
//! random kill -9 of workers, plus one supervisor kill (it comes back after Nimbus has moved its
//! workers) and one Nimbus kill (it comes back on its data dir). Afterwards every message id is
//! acked, and the test prints how long recovery took after each fault and after the last.
//! `TEMPEST_CHAOS_SEED` picks another schedule.

use cluster_tests::{serial, Cluster, ClusterOptions};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// Acks that show processing resumed after a fault.
const RESUMED: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    KillWorker,
    KillSupervisor,
    RestartSupervisor,
    KillNimbus,
    RestartNimbus,
}

/// The faults, at seconds into the chaos window: six worker kills at random times, the
/// supervisor down for 7 s, Nimbus down for 4 s.
fn schedule(rng: &mut fastrand::Rng) -> Vec<(f64, Fault)> {
    let mut plan: Vec<(f64, Fault)> = (0..6)
        .map(|_| (rng.f64() * 28.0, Fault::KillWorker))
        .collect();
    let sup = 3.0 + rng.f64() * 5.0;
    plan.push((sup, Fault::KillSupervisor));
    plan.push((sup + 7.0, Fault::RestartSupervisor));
    let nimbus = 15.0 + rng.f64() * 8.0;
    plan.push((nimbus, Fault::KillNimbus));
    plan.push((nimbus + 4.0, Fault::RestartNimbus));
    plan.sort_by(|a, b| a.0.total_cmp(&b.0));
    plan
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_id_is_acked_after_random_kills() {
    let _turn = serial().await;
    let seed: u64 = std::env::var("TEMPEST_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261201);
    let mut rng = fastrand::Rng::with_seed(seed);
    let opts = ClusterOptions {
        supervisors: 3,
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start("chaos", opts).await;
    // 30 s of sentences at 1000/s: emission outlasts the chaos window.
    let n = 30_000;
    cluster.submit_word_count("wc", 4, n, 1000);
    cluster.wait_running("wc", 4).await;
    cluster.wait_acked(1_000, Duration::from_secs(60)).await;

    let plan = schedule(&mut rng);
    let victim_supervisor = rng.usize(0..3);
    let start = Instant::now();
    // (when, acked then, what, when acks had grown by RESUMED since)
    let mut log: Vec<(Instant, usize, String, Option<Instant>)> = Vec::new();
    let mut next = plan.iter().peekable();
    while next.peek().is_some() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let acked = cluster.acked_ids().len();
        for (_, then, _, resumed) in &mut log {
            if resumed.is_none() && acked >= (*then + RESUMED).min(n as usize) {
                *resumed = Some(Instant::now());
            }
        }
        let Some(&&(at, fault)) = next.peek() else {
            break;
        };
        if start.elapsed() < Duration::from_secs_f64(at) {
            continue;
        }
        next.next();
        let what = match fault {
            Fault::KillWorker => {
                let live: Vec<_> = cluster.live_workers().into_iter().collect();
                if live.is_empty() {
                    "no live worker to kill".to_string()
                } else {
                    let ((sup, port), pid) = live[rng.usize(0..live.len())];
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    format!("kill -9 worker {port} (pid {pid}) of supervisor {sup}")
                }
            }
            Fault::KillSupervisor => {
                cluster.supervisors[victim_supervisor].daemon.kill9();
                format!("kill -9 supervisor {victim_supervisor}")
            }
            Fault::RestartSupervisor => {
                cluster.restart_supervisor(victim_supervisor);
                format!("restart supervisor {victim_supervisor}")
            }
            Fault::KillNimbus => {
                cluster.kill9_nimbus();
                "kill -9 Nimbus".to_string()
            }
            Fault::RestartNimbus => {
                cluster.restart_nimbus().await;
                "restart Nimbus".to_string()
            }
        };
        log.push((Instant::now(), acked, what, None));
    }
    let last_fault = Instant::now();
    let deadline = last_fault + Duration::from_secs(90);
    loop {
        let acked = cluster.acked_ids().len();
        for (_, then, _, resumed) in &mut log {
            if resumed.is_none() && acked >= (*then + RESUMED).min(n as usize) {
                *resumed = Some(Instant::now());
            }
        }
        if acked as u64 >= n || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = last_fault.elapsed();
    cluster.wait_all_acked(n, Duration::from_secs(1)).await;

    println!(
        "chaos seed {seed}: {} faults in {:.1}s",
        plan.len(),
        last_fault.duration_since(start).as_secs_f64()
    );
    for (t, acked, what, resumed) in &log {
        let resumed = match resumed {
            Some(r) => format!("{:.1}s", r.duration_since(*t).as_secs_f64()),
            None => "never".into(),
        };
        println!(
            "  {:>5.1}s  {what}; {acked} acked; {RESUMED} more acked after {resumed}",
            t.duration_since(start).as_secs_f64()
        );
    }
    println!(
        "chaos recovery: all {n} ids acked {:.1}s after the last fault",
        recovered.as_secs_f64()
    );
}
