//! Refused emits: an undeclared stream, the wrong number of values, and the wrong emit method for
//! a (non-)direct stream return errors that name the stream and fields; nothing is sent, counted
//! or tracked for them.

mod common;

use common::{lock, run};
use std::sync::{Arc, Mutex};
use topology_api::prelude::*;
use topology_api::EmitError;

const N: u64 = 5;

#[derive(Default)]
struct Shared {
    spout_errors: Mutex<Vec<EmitError>>,
    bolt_errors: Mutex<Vec<EmitError>>,
    /// Pending trees after the refused emits (must be 0).
    pending_after_refused: Mutex<Option<usize>>,
    acked: Mutex<Vec<u64>>,
    failed: Mutex<Vec<u64>>,
    sink: Mutex<Vec<(String, i64)>>,
}

struct Src {
    shared: Arc<Shared>,
    next: u64,
    tried: bool,
}

#[async_trait]
impl Spout for Src {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["a"]);
        d.declare_stream("pair", ["x", "y"]);
        d.declare_direct_stream("direct", ["a"]);
    }
    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        if !self.tried {
            self.tried = true;
            let attempts = [
                c.emit_to("nope", values![1], Some(1000)),
                c.emit(values![1, 2], Some(1001)),
                c.emit(values![], Some(1002)),
                c.emit_to("pair", values![1], Some(1003)),
                c.emit_to("direct", values![1], Some(1004)),
                c.emit_direct(c.task_id(), "default", values![1], Some(1005)),
            ];
            let errors = attempts
                .into_iter()
                .map(|r| r.expect_err("a bad emit was accepted"))
                .collect::<Vec<_>>();
            *lock(&self.shared.pending_after_refused) = Some(c.pending());
            lock(&self.shared.spout_errors).extend(errors);
        }
        if self.next < N {
            c.emit(values![self.next], Some(self.next))?;
            c.emit_to("pair", values![self.next, "p"], Some(100 + self.next))?;
            self.next += 1;
        }
        Ok(())
    }
    async fn ack(&mut self, id: u64) {
        lock(&self.shared.acked).push(id);
    }
    async fn fail(&mut self, id: u64) {
        lock(&self.shared.failed).push(id);
    }
    fn is_finished(&self) -> bool {
        self.next == N
    }
}

/// Tries bad emits for every input, then forwards it correctly.
struct Relay {
    shared: Arc<Shared>,
}

#[async_trait]
impl Bolt for Relay {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["stream", "n"]);
    }
    async fn execute(&mut self, input: Tuple, c: &mut OutputCollector) -> ComponentResult {
        let n = input.i64(0)?;
        let attempts = [
            c.emit_to("ghost", &[&input], values!["x", n]),
            c.emit_anchored(&input, values![n]),
            c.emit_anchored(&input, values!["x", n, 3]),
            c.emit(values![]),
        ];
        for r in attempts {
            lock(&self.shared.bolt_errors).push(r.expect_err("a bad emit was accepted"));
        }
        c.emit_anchored(&input, values![input.source_stream(), n])?;
        c.ack(&input);
        Ok(())
    }
}

struct Sink {
    shared: Arc<Shared>,
}

#[async_trait]
impl Bolt for Sink {
    fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}
    async fn execute(&mut self, input: Tuple, c: &mut OutputCollector) -> ComponentResult {
        lock(&self.shared.sink).push((input.str("stream")?.to_string(), input.i64("n")?));
        c.ack(&input);
        Ok(())
    }
}

fn unknown_stream(e: &EmitError, comp: &str, stream: &str) {
    match e {
        EmitError::UnknownStream {
            component,
            stream: s,
            ..
        } => {
            assert_eq!(component, comp);
            assert_eq!(s, stream);
        }
        other => panic!("expected UnknownStream({stream}), got {other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.contains(&format!("{stream:?}")), "{msg}");
    assert!(msg.contains(comp), "{msg}");
}

fn wrong_arity(e: &EmitError, comp: &str, stream: &str, fields: &[&str], got: usize) {
    match e {
        EmitError::WrongArity {
            component,
            stream: s,
            fields: f,
            got: g,
        } => {
            assert_eq!(component, comp);
            assert_eq!(s, stream);
            assert_eq!(f, fields);
            assert_eq!(*g, got);
        }
        other => panic!("expected WrongArity on {stream}, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.contains(&format!("{stream:?}")), "{msg}");
    assert!(msg.contains(&format!("{fields:?}")), "{msg}");
    assert!(msg.contains(&format!("{got} values")), "{msg}");
}

fn direct_mismatch(e: &EmitError, stream: &str, use_instead: &str) {
    match e {
        EmitError::DirectMismatch {
            stream: s,
            use_instead: u,
            ..
        } => {
            assert_eq!(s, stream);
            assert_eq!(*u, use_instead);
        }
        other => panic!("expected DirectMismatch on {stream}, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.contains(&format!("{stream:?}")), "{msg}");
    assert!(msg.contains(use_instead), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_emits_are_refused_with_errors_naming_stream_and_fields() {
    let shared = Arc::new(Shared::default());
    let mut b = TopologyBuilder::new("emit-errors");
    let s = shared.clone();
    b.set_spout(
        "src",
        move || Src {
            shared: s.clone(),
            next: 0,
            tried: false,
        },
        1,
    );
    let s = shared.clone();
    b.set_bolt("relay", move || Relay { shared: s.clone() }, 1)
        .shuffle_grouping("src")
        .shuffle_grouping(("src", "pair"));
    let s = shared.clone();
    b.set_bolt("sink", move || Sink { shared: s.clone() }, 1)
        .shuffle_grouping("relay");
    let report = run(&b.build().expect("valid topology")).await;
    for t in &report.tasks {
        assert!(
            t.errors.is_empty(),
            "task {} errors {:?}",
            t.task_id,
            t.errors
        );
    }

    let spout_errors = lock(&shared.spout_errors).clone();
    assert_eq!(spout_errors.len(), 6, "{spout_errors:?}");
    unknown_stream(&spout_errors[0], "src", "nope");
    if let EmitError::UnknownStream { declared, .. } = &spout_errors[0] {
        let mut declared = declared.clone();
        declared.sort();
        assert_eq!(declared, ["default", "direct", "pair"]);
    }
    wrong_arity(&spout_errors[1], "src", "default", &["a"], 2);
    wrong_arity(&spout_errors[2], "src", "default", &["a"], 0);
    wrong_arity(&spout_errors[3], "src", "pair", &["x", "y"], 1);
    direct_mismatch(&spout_errors[4], "direct", "emit_direct");
    direct_mismatch(&spout_errors[5], "default", "emit");
    assert_eq!(*lock(&shared.pending_after_refused), Some(0));

    let bolt_errors = lock(&shared.bolt_errors).clone();
    assert_eq!(bolt_errors.len(), 4 * 2 * N as usize);
    for chunk in bolt_errors.chunks(4) {
        unknown_stream(&chunk[0], "relay", "ghost");
        wrong_arity(&chunk[1], "relay", "default", &["stream", "n"], 1);
        wrong_arity(&chunk[2], "relay", "default", &["stream", "n"], 3);
        wrong_arity(&chunk[3], "relay", "default", &["stream", "n"], 0);
    }

    // Only the good emits went anywhere, and only their ids were tracked.
    let mut sink = lock(&shared.sink).clone();
    sink.sort();
    let mut expected: Vec<(String, i64)> = (0..N as i64)
        .flat_map(|n| [("default".to_string(), n), ("pair".to_string(), n)])
        .collect();
    expected.sort();
    assert_eq!(sink, expected);
    let mut acked = lock(&shared.acked).clone();
    acked.sort_unstable();
    let expected_acks: Vec<u64> = (0..N).chain(100..100 + N).collect();
    assert_eq!(acked, expected_acks);
    assert!(lock(&shared.failed).is_empty());
    let by = report.by_component();
    assert_eq!(by["src"].emitted, 2 * N);
    assert_eq!(by["relay"].emitted, 2 * N);
}
