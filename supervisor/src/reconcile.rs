//! The supervisor's decisions, as pure functions: which workers the assignments ask of this
//! node, and what to do to get from the workers it has to those (start, stop, kill, restart
//! after a back-off). No processes, files or clocks here: `slots.rs` carries the actions out.

use crate::config::Timings;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tempest_protocol::control::Assignment;
use tempest_protocol::names::{check_sha256, check_topology_name};

/// A worker the assignments ask this supervisor to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredWorker {
    /// The slot port.
    pub port: u16,
    /// The topology.
    pub topology: String,
    /// The assignment version.
    pub version: u64,
    /// sha256 of the topology binary.
    pub artifact: String,
    /// Whether the binary is in the local cache, ready to run.
    pub artifact_ready: bool,
    /// What the worker runs ([`Assignment::placement`]): a worker with the same placement
    /// under an older version keeps running.
    pub placement: Option<String>,
}

impl DesiredWorker {
    /// Whether the worker `r` runs what is wanted: the same version, or an older one that
    /// places the same executors of the same spec and binary on this slot.
    fn runs(&self, r: &RunningWorkerState) -> bool {
        self.topology == r.topology
            && (self.version == r.version
                || (self.placement.is_some() && self.placement == r.placement))
    }
}

/// A worker this supervisor runs, or ran, on a slot port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningWorkerState {
    /// The slot port.
    pub port: u16,
    /// Its topology.
    pub topology: String,
    /// Its assignment version.
    pub version: u64,
    /// What it runs ([`Assignment::placement`]), if known.
    pub placement: Option<String>,
    /// Where it is in its life.
    pub phase: WorkerPhase,
}

/// Where a worker process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerPhase {
    /// Alive.
    Running,
    /// Sent SIGTERM; gets SIGKILL at `sigkill_at` unless it exits first. Still holds its port.
    Stopping {
        /// When it gets SIGKILL.
        sigkill_at: Instant,
        /// Whether it got SIGKILL already.
        killed: bool,
    },
    /// Exited by itself; may be started again at `restart_at`. Holds no port.
    Exited {
        /// When the back-off is over.
        restart_at: Instant,
    },
}

/// Why a worker is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Its slot is no longer assigned to this supervisor.
    Unassigned,
    /// The slot is assigned to another topology or another version of the same one.
    Replaced,
}

/// One step towards the desired workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Download an artifact into the cache (a worker waits for it).
    Fetch {
        /// Its sha256.
        artifact: String,
    },
    /// Start a worker on a port that holds none (a restart if an exited worker of the same
    /// topology and version was there).
    Start(DesiredWorker),
    /// Keep the worker on a port running under a newer assignment version that does not
    /// change it (the worker follows its new peers by itself).
    Follow {
        /// The port.
        port: u16,
        /// The newer version.
        version: u64,
    },
    /// Send SIGTERM to the worker on a port.
    Stop {
        /// The port.
        port: u16,
        /// Why.
        reason: StopReason,
    },
    /// Send SIGKILL to a stopping worker whose grace time is over.
    Kill {
        /// The port.
        port: u16,
    },
    /// Drop the record of an exited worker that is no longer wanted.
    Forget {
        /// The port.
        port: u16,
    },
}

/// The workers `assignments` place on supervisor `my_id`, one per port, only on ports in
/// `slots`. Returns them by port with a note for each slot left out (bad name or artifact,
/// a port this supervisor does not offer, two assignments on one port: the highest version
/// wins, then the topology name first in order, so every pass picks the same).
/// `artifact_ready` is false; the caller fills it in.
pub fn desired_workers(
    assignments: &[Assignment],
    my_id: &str,
    slots: &[u16],
) -> (Vec<DesiredWorker>, Vec<String>) {
    let offered: BTreeSet<u16> = slots.iter().copied().collect();
    let mut by_port: BTreeMap<u16, DesiredWorker> = BTreeMap::new();
    let mut notes = Vec::new();
    for a in assignments {
        let mine: Vec<_> = a.workers.iter().filter(|w| w.supervisor == my_id).collect();
        if mine.is_empty() {
            continue;
        }
        if let Err(e) = check_topology_name(&a.topology) {
            notes.push(format!("ignoring an assignment: {e}"));
            continue;
        }
        if let Err(e) = check_sha256(&a.artifact) {
            notes.push(format!(
                "ignoring the assignment of {:?}: artifact {e}",
                a.topology
            ));
            continue;
        }
        for w in mine {
            if !offered.contains(&w.port) {
                notes.push(format!(
                    "ignoring the slot of {:?} v{} on port {}: this supervisor offers only {:?}",
                    a.topology, a.version, w.port, slots
                ));
                continue;
            }
            let candidate = DesiredWorker {
                port: w.port,
                topology: a.topology.clone(),
                version: a.version,
                artifact: a.artifact.clone(),
                artifact_ready: false,
                placement: a.placement(&w.host, w.port),
            };
            match by_port.get(&w.port) {
                Some(existing) => {
                    let (win, lose) = if (candidate.version, &existing.topology)
                        > (existing.version, &candidate.topology)
                    {
                        (candidate, existing.clone())
                    } else {
                        (existing.clone(), candidate)
                    };
                    notes.push(format!(
                        "port {} is assigned twice: to {:?} v{} and {:?} v{}; running {:?} v{}",
                        w.port,
                        win.topology,
                        win.version,
                        lose.topology,
                        lose.version,
                        win.topology,
                        win.version
                    ));
                    by_port.insert(w.port, win);
                }
                None => {
                    by_port.insert(w.port, candidate);
                }
            }
        }
    }
    (by_port.into_values().collect(), notes)
}

/// What to do to get from `running` to `desired` at time `now`. Both lists hold at most one
/// entry per port. Never starts a worker on a port whose worker is still alive or stopping:
/// a replacement is a `Stop` now and a `Start` in a later pass, once the port is free.
/// Actions come in port order, each artifact fetched once.
pub fn reconcile(
    desired: &[DesiredWorker],
    running: &[RunningWorkerState],
    now: Instant,
) -> Vec<Action> {
    let want: BTreeMap<u16, &DesiredWorker> = desired.iter().map(|d| (d.port, d)).collect();
    let have: BTreeMap<u16, &RunningWorkerState> = running.iter().map(|r| (r.port, r)).collect();
    let ports: BTreeSet<u16> = want.keys().chain(have.keys()).copied().collect();
    let mut actions = Vec::new();
    let mut fetching = BTreeSet::new();
    let mut fetch = |actions: &mut Vec<Action>, d: &DesiredWorker| {
        if !d.artifact_ready && fetching.insert(d.artifact.clone()) {
            actions.push(Action::Fetch {
                artifact: d.artifact.clone(),
            });
        }
    };
    let start = |actions: &mut Vec<Action>, d: &DesiredWorker| {
        if d.artifact_ready {
            actions.push(Action::Start(d.clone()));
        }
    };
    for port in ports {
        match (want.get(&port), have.get(&port)) {
            (Some(d), None) => {
                fetch(&mut actions, d);
                start(&mut actions, d);
            }
            (Some(d), Some(r)) => match r.phase {
                WorkerPhase::Running if d.runs(r) => {
                    if d.version != r.version {
                        actions.push(Action::Follow {
                            port,
                            version: d.version,
                        });
                    }
                }
                WorkerPhase::Running => {
                    actions.push(Action::Stop {
                        port,
                        reason: StopReason::Replaced,
                    });
                    fetch(&mut actions, d);
                }
                WorkerPhase::Stopping { sigkill_at, killed } => {
                    if !killed && now >= sigkill_at {
                        actions.push(Action::Kill { port });
                    }
                    fetch(&mut actions, d);
                }
                WorkerPhase::Exited { restart_at } => {
                    fetch(&mut actions, d);
                    if !d.runs(r) || now >= restart_at {
                        start(&mut actions, d);
                    }
                }
            },
            (None, Some(r)) => match r.phase {
                WorkerPhase::Running => actions.push(Action::Stop {
                    port,
                    reason: StopReason::Unassigned,
                }),
                WorkerPhase::Stopping { sigkill_at, killed } => {
                    if !killed && now >= sigkill_at {
                        actions.push(Action::Kill { port });
                    }
                }
                WorkerPhase::Exited { .. } => actions.push(Action::Forget { port }),
            },
            (None, None) => {}
        }
    }
    actions
}

/// The consecutive failures of a worker after it exited, given those before its start and how
/// long it ran: a worker that ran for `healthy_after` starts the count again.
pub fn failures_after_exit(failures_before: u32, ran_for: Duration, timings: &Timings) -> u32 {
    if ran_for >= timings.healthy_after {
        1
    } else {
        failures_before.saturating_add(1)
    }
}

/// How long to wait before restarting a worker that has exited `failures` times in a row:
/// `restart_backoff_min` doubled for each failure after the first, at most
/// `restart_backoff_max`.
pub fn restart_delay(failures: u32, timings: &Timings) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    timings
        .restart_backoff_min
        .saturating_mul(1u32 << doublings)
        .min(timings.restart_backoff_max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempest_protocol::control::WorkerSlot;
    use tempest_protocol::{Config, TopologySpec};

    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn want(port: u16, topology: &str, version: u64) -> DesiredWorker {
        DesiredWorker {
            port,
            topology: topology.into(),
            version,
            artifact: SHA_A.into(),
            artifact_ready: true,
            placement: Some(format!("{topology}-{version}")),
        }
    }

    fn have(port: u16, topology: &str, version: u64, phase: WorkerPhase) -> RunningWorkerState {
        RunningWorkerState {
            port,
            topology: topology.into(),
            version,
            placement: Some(format!("{topology}-{version}")),
            phase,
        }
    }

    #[test]
    fn keeps_a_worker_that_a_newer_version_does_not_change() {
        let now = Instant::now();
        let mut d = want(6700, "wc", 5);
        d.placement = Some("wc-3".into());
        let running = [have(6700, "wc", 3, WorkerPhase::Running)];
        assert_eq!(
            reconcile(std::slice::from_ref(&d), &running, now),
            vec![Action::Follow {
                port: 6700,
                version: 5
            }]
        );
        // An unknown placement (a record from an older supervisor) is a replacement.
        let mut unknown = have(6700, "wc", 3, WorkerPhase::Running);
        unknown.placement = None;
        assert_eq!(
            reconcile(std::slice::from_ref(&d), &[unknown], now),
            vec![Action::Stop {
                port: 6700,
                reason: StopReason::Replaced
            }]
        );
        // The same placement after a crash waits out the restart back-off like any restart.
        let exited = have(
            6700,
            "wc",
            3,
            WorkerPhase::Exited {
                restart_at: now + Duration::from_secs(1),
            },
        );
        assert_eq!(reconcile(std::slice::from_ref(&d), &[exited], now), vec![]);
    }

    #[test]
    fn starts_a_worker_on_a_free_assigned_port() {
        let now = Instant::now();
        let d = want(6700, "wc", 1);
        assert_eq!(
            reconcile(std::slice::from_ref(&d), &[], now),
            vec![Action::Start(d)]
        );
    }

    #[test]
    fn fetches_the_artifact_first_and_once() {
        let now = Instant::now();
        let mut a = want(6700, "wc", 1);
        a.artifact_ready = false;
        let mut b = want(6701, "wc", 1);
        b.artifact_ready = false;
        assert_eq!(
            reconcile(&[a, b], &[], now),
            vec![Action::Fetch {
                artifact: SHA_A.into()
            }]
        );
    }

    #[test]
    fn keeps_a_worker_that_runs_what_is_assigned() {
        let now = Instant::now();
        let running = [have(6700, "wc", 3, WorkerPhase::Running)];
        assert_eq!(reconcile(&[want(6700, "wc", 3)], &running, now), vec![]);
    }

    #[test]
    fn replaces_a_worker_of_another_version_or_topology_after_it_stopped() {
        let now = Instant::now();
        let d = want(6700, "wc", 4);
        let running = [have(6700, "wc", 3, WorkerPhase::Running)];
        assert_eq!(
            reconcile(std::slice::from_ref(&d), &running, now),
            vec![Action::Stop {
                port: 6700,
                reason: StopReason::Replaced
            }]
        );
        let running = [have(6700, "other", 4, WorkerPhase::Running)];
        assert_eq!(
            reconcile(std::slice::from_ref(&d), &running, now),
            vec![Action::Stop {
                port: 6700,
                reason: StopReason::Replaced
            }]
        );
        // While the old one stops, nothing starts on its port.
        let stopping = WorkerPhase::Stopping {
            sigkill_at: now + Duration::from_secs(5),
            killed: false,
        };
        let running = [have(6700, "wc", 3, stopping)];
        assert_eq!(reconcile(std::slice::from_ref(&d), &running, now), vec![]);
        // Once it is gone the new one starts.
        assert_eq!(
            reconcile(std::slice::from_ref(&d), &[], now),
            vec![Action::Start(d)]
        );
    }

    #[test]
    fn prefetches_the_new_artifact_while_the_old_worker_stops() {
        let now = Instant::now();
        let mut d = want(6700, "wc", 4);
        d.artifact = SHA_B.into();
        d.artifact_ready = false;
        let running = [have(6700, "wc", 3, WorkerPhase::Running)];
        assert_eq!(
            reconcile(&[d], &running, now),
            vec![
                Action::Stop {
                    port: 6700,
                    reason: StopReason::Replaced
                },
                Action::Fetch {
                    artifact: SHA_B.into()
                }
            ]
        );
    }

    #[test]
    fn stops_workers_whose_slot_is_no_longer_assigned() {
        let now = Instant::now();
        let running = [
            have(6700, "wc", 1, WorkerPhase::Running),
            have(6701, "wc", 1, WorkerPhase::Running),
        ];
        assert_eq!(
            reconcile(&[want(6700, "wc", 1)], &running, now),
            vec![Action::Stop {
                port: 6701,
                reason: StopReason::Unassigned
            }]
        );
    }

    #[test]
    fn kills_a_stopping_worker_once_its_grace_is_over_and_only_once() {
        let now = Instant::now();
        let phase = |sigkill_at, killed| WorkerPhase::Stopping { sigkill_at, killed };
        let early = [have(
            6700,
            "wc",
            1,
            phase(now + Duration::from_secs(1), false),
        )];
        assert_eq!(reconcile(&[], &early, now), vec![]);
        let due = [have(6700, "wc", 1, phase(now, false))];
        assert_eq!(reconcile(&[], &due, now), vec![Action::Kill { port: 6700 }]);
        let killed = [have(6700, "wc", 1, phase(now, true))];
        assert_eq!(reconcile(&[], &killed, now), vec![]);
        // Same when the port is wanted by a replacement.
        assert_eq!(
            reconcile(&[want(6700, "wc", 2)], &due, now),
            vec![Action::Kill { port: 6700 }]
        );
    }

    #[test]
    fn restarts_a_dead_worker_after_its_back_off() {
        let now = Instant::now();
        let d = want(6700, "wc", 1);
        let exited = |restart_at| [have(6700, "wc", 1, WorkerPhase::Exited { restart_at })];
        assert_eq!(
            reconcile(
                std::slice::from_ref(&d),
                &exited(now + Duration::from_millis(10)),
                now
            ),
            vec![]
        );
        assert_eq!(
            reconcile(std::slice::from_ref(&d), &exited(now), now),
            vec![Action::Start(d.clone())]
        );
        // A different version need not wait for the old one's back-off.
        let d2 = want(6700, "wc", 2);
        assert_eq!(
            reconcile(
                std::slice::from_ref(&d2),
                &exited(now + Duration::from_secs(9)),
                now
            ),
            vec![Action::Start(d2)]
        );
    }

    #[test]
    fn forgets_dead_workers_that_are_no_longer_assigned() {
        let now = Instant::now();
        let running = [have(6700, "wc", 1, WorkerPhase::Exited { restart_at: now })];
        assert_eq!(
            reconcile(&[], &running, now),
            vec![Action::Forget { port: 6700 }]
        );
    }

    #[test]
    fn back_off_doubles_from_one_second_to_thirty_and_resets_after_a_healthy_run() {
        let t = Timings::default();
        let delays: Vec<u64> = (1..=8).map(|f| restart_delay(f, &t).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(restart_delay(u32::MAX, &t), Duration::from_secs(30));
        assert_eq!(failures_after_exit(0, Duration::from_millis(10), &t), 1);
        assert_eq!(failures_after_exit(4, Duration::from_secs(59), &t), 5);
        assert_eq!(failures_after_exit(4, Duration::from_secs(60), &t), 1);
        assert_eq!(failures_after_exit(u32::MAX, Duration::ZERO, &t), u32::MAX);
    }

    fn assignment(topology: &str, version: u64, slots: &[(&str, u16)]) -> Assignment {
        Assignment {
            topology: topology.into(),
            version,
            artifact: SHA_A.into(),
            spec: TopologySpec {
                name: topology.into(),
                config: Config::default(),
                components: vec![],
            },
            workers: slots
                .iter()
                .map(|(sup, port)| WorkerSlot {
                    supervisor: sup.to_string(),
                    host: "h".into(),
                    port: *port,
                    executors: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn desired_workers_are_the_slots_of_this_supervisor() {
        let a = assignment("wc", 2, &[("me", 6701), ("other", 6700), ("me", 6700)]);
        let (desired, notes) = desired_workers(&[a], "me", &[6700, 6701]);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            desired,
            vec![
                DesiredWorker {
                    artifact_ready: false,
                    placement: desired[0].placement.clone(),
                    ..want(6700, "wc", 2)
                },
                DesiredWorker {
                    artifact_ready: false,
                    placement: desired[1].placement.clone(),
                    ..want(6701, "wc", 2)
                },
            ]
        );
    }

    #[test]
    fn desired_workers_leave_out_what_cannot_be_run_and_say_why() {
        let mut bad_name = assignment("../x", 1, &[("me", 6700)]);
        bad_name.spec.name = "x".into();
        let mut bad_sha = assignment("y", 1, &[("me", 6700)]);
        bad_sha.artifact = "../../etc/passwd".into();
        let foreign_port = assignment("z", 1, &[("me", 9999)]);
        let (desired, notes) = desired_workers(&[bad_name, bad_sha, foreign_port], "me", &[6700]);
        assert!(desired.is_empty());
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes[0].contains("../x"), "{notes:?}");
        assert!(notes[1].contains("etc/passwd"), "{notes:?}");
        assert!(notes[2].contains("9999"), "{notes:?}");
    }

    #[test]
    fn one_worker_per_port_when_two_assignments_claim_it() {
        let old = assignment("a", 1, &[("me", 6700)]);
        let new = assignment("b", 5, &[("me", 6700)]);
        for order in [[old.clone(), new.clone()], [new.clone(), old.clone()]] {
            let (desired, notes) = desired_workers(&order, "me", &[6700]);
            assert_eq!(desired.len(), 1);
            assert_eq!((desired[0].topology.as_str(), desired[0].version), ("b", 5));
            assert_eq!(notes.len(), 1, "{notes:?}");
            assert!(notes[0].contains("assigned twice"), "{notes:?}");
        }
    }
}
