//! The heartbeat loop: every `heartbeat_secs` tells Nimbus this supervisor's id, host, slots
//! and running workers, and passes the assignments in the answer on. While Nimbus cannot be
//! reached it keeps trying and passes nothing on, so the workers stay as they are.

use std::time::{Duration, Instant};
use tempest_client::NimbusClient;
use tempest_protocol::control::{Assignment, RunningWorker, SupervisorHeartbeat};
use tokio::sync::watch;

/// How often an unchanged heartbeat error is logged again as a warning.
const REWARN_AFTER: Duration = Duration::from_secs(60);

/// Who this supervisor is, as told to Nimbus.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// The client.
    pub client: NimbusClient,
    /// The supervisor id.
    pub id: String,
    /// The host its workers are reached at.
    pub host: String,
    /// Its slot ports.
    pub slots: Vec<u16>,
    /// Time between heartbeats.
    pub interval: Duration,
    /// Base URL of its log server, if it runs one.
    pub http: Option<String>,
}

impl Heartbeat {
    /// Heartbeats until `assignments` has no receiver, reporting the latest `workers`. Each
    /// answer that differs from the one before is sent on `assignments`.
    pub async fn run(
        self,
        workers: watch::Receiver<Vec<RunningWorker>>,
        assignments: watch::Sender<Option<Vec<Assignment>>>,
    ) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Longer than a hung Nimbus is worth waiting for, at least one interval.
        let timeout = self.interval.max(Duration::from_secs(10));
        // Since when heartbeats fail, the last error, when it was last logged as a warning.
        let mut outage: Option<(Instant, String, Instant)> = None;
        loop {
            tick.tick().await;
            if assignments.is_closed() {
                return;
            }
            let hb = SupervisorHeartbeat {
                id: self.id.clone(),
                host: self.host.clone(),
                slots: self.slots.clone(),
                workers: workers.borrow().clone(),
                http: self.http.clone(),
            };
            let answer = tokio::time::timeout(timeout, self.client.supervisor_heartbeat(&hb))
                .await
                .map_err(|_| format!("no answer from {} within {timeout:?}", self.client.base()))
                .and_then(|r| r.map_err(|e| e.to_string()));
            match answer {
                Ok(answer) => {
                    if let Some((since, _, _)) = outage.take() {
                        tracing::info!(
                            "Nimbus answers heartbeats again after {:.0}s",
                            since.elapsed().as_secs_f64()
                        );
                    }
                    let new = Some(answer.assignments);
                    assignments.send_if_modified(|current| {
                        if *current == new {
                            false
                        } else {
                            *current = new;
                            true
                        }
                    });
                }
                Err(error) => {
                    let now = Instant::now();
                    let (since, warned) = match outage.take() {
                        Some((since, last, warned))
                            if last == error && now.duration_since(warned) < REWARN_AFTER =>
                        {
                            tracing::debug!(%error, "heartbeat failed again");
                            (since, warned)
                        }
                        previous => {
                            let since = previous.map_or(now, |(since, _, _)| since);
                            tracing::warn!(
                                %error,
                                "heartbeat to Nimbus failed (for {:.0}s now); keeping the \
                                 workers as they are and retrying every {}s",
                                now.duration_since(since).as_secs_f64(),
                                self.interval.as_secs_f64()
                            );
                            (since, now)
                        }
                    };
                    outage = Some((since, error, warned));
                }
            }
        }
    }
}
