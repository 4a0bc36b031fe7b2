//! A bolt that acks and fails after `execute` returned, from its own executor: each input is
//! handed to a separate "service" task, whose answer comes back as an event. The first
//! attempt of every tenth id is answered with an error (failed, so its spout replays it); in
//! the end every id is acked exactly once, and the events were handled on the bolt's executor
//! (the collector is only reachable there).

mod common;

use common::{lock, run, Ledger, NumberSpout};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use topology_api::prelude::*;
use topology_api::{BoltEvent, EventSender};

/// The answer of the service for input `key`.
struct Answered {
    key: u64,
    ok: bool,
}

struct AsyncBolt {
    events: Option<EventSender>,
    /// Inputs waiting for their answer, by key.
    waiting: HashMap<u64, Tuple>,
    next_key: u64,
    /// Ids whose first attempt was already answered with an error.
    failed_once: Arc<Mutex<HashSet<i64>>>,
}

#[async_trait]
impl Bolt for AsyncBolt {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["id"]);
    }
    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.events = ctx.events();
        Ok(())
    }
    async fn execute(&mut self, input: Tuple, _: &mut OutputCollector) -> ComponentResult {
        let id = input.i64("id")?;
        let ok = id % 10 != 0 || !lock(&self.failed_once).insert(id);
        let key = self.next_key;
        self.next_key += 1;
        self.waiting.insert(key, input);
        let events = self.events.clone().ok_or("a bolt has an event sender")?;
        // The "service": answers on another tokio task, after execute has returned.
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            let _ = events.send(Answered { key, ok }).await;
        });
        Ok(())
    }
    async fn event(&mut self, event: BoltEvent, c: &mut OutputCollector) -> ComponentResult {
        let Answered { key, ok } = event
            .downcast::<Answered>()
            .map_err(|_| "an event of another type")?;
        let input = self.waiting.remove(&key).ok_or("an answer for no input")?;
        if ok {
            c.emit_anchored(&input, values![input.i64("id")?])?;
            c.ack(&input);
        } else {
            c.fail(&input);
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_and_fails_arrive_after_execute_as_events() {
    let ledger = Ledger::new();
    let failed_once = Arc::new(Mutex::new(HashSet::new()));
    let mut b = TopologyBuilder::new("bolt-events");
    let l = ledger.clone();
    b.set_spout("numbers", move || NumberSpout::new(500, &l), 2);
    let f = failed_once.clone();
    b.set_bolt(
        "service",
        move || AsyncBolt {
            events: None,
            waiting: HashMap::new(),
            next_key: 0,
            failed_once: f.clone(),
        },
        2,
    )
    .shuffle_grouping("numbers");
    let report = run(&b.build().expect("valid topology")).await;
    ledger.assert_all_acked_once(500);
    let fails: usize = ledger.fail_counts().values().sum();
    assert_eq!(fails, 50, "the first attempt of every tenth id");
    let service_acked: u64 = report
        .tasks
        .iter()
        .filter(|t| t.component == "service")
        .map(|t| t.stats.acked)
        .sum();
    assert_eq!(service_acked, 500);
}
