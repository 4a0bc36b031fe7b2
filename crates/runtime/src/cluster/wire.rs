//! How the runtime's batches cross the wire between workers ([`tempest_transport::Wire`]): a
//! frame is a list of batches, each for one task; a tuple travels as (stream number, source
//! task, values, anchors), with stream numbers from the spec, so no names cross the wire;
//! acker messages and tree outcomes travel as they are. Batches that cannot be delivered, and
//! batches a peer sends for tasks this worker does not host (its assignment differs for a
//! moment), have their tracked trees failed through the acker, so their spouts replay them.

use crate::failure::FailReason;
use crate::transfer::{AckerMsg, Envelope, Payload, Transfer, TreeOutcome};
use crate::tuple::{Anchors, Fields, StreamMeta, Tuple};
use crate::value::Values;
use bytes::BytesMut;
use rustc_hash::FxHashMap;
use serde::ser::{Error as _, SerializeSeq, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use tempest_protocol::spec::{TopologySpec, CHECKPOINT_STREAM};

/// Numbers every declared stream of a topology, identically in every worker (components and
/// streams in id order).
pub(crate) struct StreamTable {
    metas: Vec<&'static StreamMeta>,
    ids: FxHashMap<usize, u32>,
}

impl StreamTable {
    pub(crate) fn of(spec: &TopologySpec) -> Self {
        let mut components: Vec<_> = spec.components.iter().collect();
        components.sort_by(|a, b| a.id.cmp(&b.id));
        let metas: Vec<&'static StreamMeta> = components
            .iter()
            .flat_map(|c| {
                c.streams
                    .iter()
                    .map(|(stream, s)| {
                        StreamMeta::intern(&c.id, stream, &Fields::new(s.fields.clone()))
                    })
                    // Every component's checkpoint barriers.
                    .chain(std::iter::once(StreamMeta::intern(
                        &c.id,
                        CHECKPOINT_STREAM,
                        &Fields::from(["id"]),
                    )))
            })
            .collect();
        let ids = metas
            .iter()
            .enumerate()
            .map(|(i, m)| (*m as *const StreamMeta as usize, i as u32))
            .collect();
        StreamTable { metas, ids }
    }

    fn id(&self, meta: &'static StreamMeta) -> Option<u32> {
        self.ids.get(&(meta as *const StreamMeta as usize)).copied()
    }

    fn meta(&self, id: u32) -> Option<&'static StreamMeta> {
        self.metas.get(id as usize).copied()
    }
}

/// A received tuple.
#[derive(Debug, Deserialize)]
struct WireTuple {
    stream: u32,
    source_task: u32,
    values: Values,
    anchors: Anchors,
}

/// A received batch's contents. (Variants in the order [`PayloadRef`] writes them.)
#[derive(Debug, Deserialize)]
enum WirePayload {
    Tuples(Vec<WireTuple>),
    Acker(Vec<AckerMsg>),
    Outcomes(Vec<TreeOutcome>),
}

/// A received batch.
#[derive(Debug, Deserialize)]
struct WireEnvelope {
    task: u32,
    payload: WirePayload,
}

/// A tuple as it is written: borrowed, with its stream as a number.
#[derive(Serialize)]
struct TupleRef<'a> {
    stream: u32,
    source_task: u32,
    values: &'a Values,
    anchors: &'a Anchors,
}

/// A batch's tuples, written without copying them.
struct TuplesRef<'a> {
    tuples: &'a [Tuple],
    table: &'a StreamTable,
}

impl Serialize for TuplesRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.tuples.len()))?;
        for t in self.tuples {
            let stream = self.table.id(t.meta).ok_or_else(|| {
                S::Error::custom(format!(
                    "stream {:?} of {:?} is not in the topology's spec",
                    t.meta.stream, t.meta.component
                ))
            })?;
            seq.serialize_element(&TupleRef {
                stream,
                source_task: t.source_task,
                values: &t.values,
                anchors: &t.anchors,
            })?;
        }
        seq.end()
    }
}

/// A batch's contents as written (the variants of [`WirePayload`], in its order).
#[derive(Serialize)]
enum PayloadRef<'a> {
    Tuples(TuplesRef<'a>),
    Acker(&'a [AckerMsg]),
    Outcomes(&'a [TreeOutcome]),
}

/// A batch as written.
struct EnvelopeRef<'a> {
    env: &'a Envelope,
    table: &'a StreamTable,
}

impl Serialize for EnvelopeRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let payload = match &self.env.payload {
            Payload::Tuples(t) => PayloadRef::Tuples(TuplesRef {
                tuples: t,
                table: self.table,
            }),
            Payload::Acker(m) => PayloadRef::Acker(m),
            Payload::Outcomes(o) => PayloadRef::Outcomes(o),
        };
        let mut st = s.serialize_struct("WireEnvelope", 2)?;
        st.serialize_field("task", &self.env.task)?;
        st.serialize_field("payload", &payload)?;
        st.end()
    }
}

fn from_wire(w: WireEnvelope, table: &StreamTable) -> Result<Envelope, String> {
    let payload = match w.payload {
        WirePayload::Tuples(ts) => Payload::Tuples(
            ts.into_iter()
                .map(|t| {
                    let meta = table
                        .meta(t.stream)
                        .ok_or_else(|| format!("unknown stream number {}", t.stream))?;
                    Ok(Tuple::new(meta, t.values, t.source_task, t.anchors))
                })
                .collect::<Result<_, String>>()?,
        ),
        WirePayload::Acker(m) => Payload::Acker(m),
        WirePayload::Outcomes(o) => Payload::Outcomes(o),
    };
    Ok(Envelope {
        task: w.task,
        payload,
    })
}

/// Where undeliverable tuples' trees get failed.
#[derive(Clone)]
pub(crate) struct FailRoute {
    /// Every task's queue, local or remote.
    pub(crate) routes: Transfer,
    pub(crate) ackers: Range<u32>,
    /// This worker's address (`host:port`), named when a batch reaches it for a task it does
    /// not host.
    pub(crate) me: String,
}

impl FailRoute {
    /// Fails the tracked trees of a batch that could not be delivered to `worker`, because
    /// of `why`; returns how many fail messages went out. (Acker messages and outcomes are
    /// dropped: those trees time out at their spouts.)
    pub(crate) fn fail(&self, env: Envelope, worker: &str, why: &str) -> usize {
        let Payload::Tuples(tuples) = env.payload else {
            return 0;
        };
        if self.ackers.is_empty() {
            return 0;
        }
        let mut failed = 0;
        let reason = FailReason::Undelivered {
            task: env.task,
            worker: worker.to_string(),
            message: why.to_string(),
        };
        for t in tuples {
            for &(root, _) in &t.anchors {
                let acker = crate::acker::acker_of(&self.ackers, root);
                if let Ok(s) = self.routes.sender(acker) {
                    let msg = Envelope {
                        task: acker,
                        payload: Payload::Acker(vec![AckerMsg::Fail {
                            root,
                            reason: Box::new(reason.clone()),
                        }]),
                    };
                    if s.try_send(msg).is_ok() {
                        failed += 1;
                    }
                }
            }
        }
        failed
    }
}

/// The runtime's batches on the wire.
pub(crate) struct TupleWire {
    pub(crate) table: StreamTable,
    /// The hosted tasks' queues, for batches from peers.
    pub(crate) local: Transfer,
    pub(crate) fail: FailRoute,
    misrouted: AtomicU64,
}

impl TupleWire {
    pub(crate) fn new(table: StreamTable, local: Transfer, fail: FailRoute) -> Self {
        TupleWire {
            table,
            local,
            fail,
            misrouted: AtomicU64::new(0),
        }
    }
}

impl tempest_transport::Wire for TupleWire {
    type Batch = Envelope;

    fn task(batch: &Envelope) -> u32 {
        batch.task
    }

    fn encode(&self, batches: &[Envelope], out: &mut Vec<u8>) -> std::io::Result<()> {
        let refs: Vec<EnvelopeRef<'_>> = batches
            .iter()
            .map(|env| EnvelopeRef {
                env,
                table: &self.table,
            })
            .collect();
        rmp_serde::encode::write(out, &refs).map_err(std::io::Error::other)
    }

    async fn deliver(&self, frame: BytesMut, peer: &str) -> Result<(), String> {
        let batches: Vec<WireEnvelope> =
            rmp_serde::from_slice(&frame).map_err(|e| format!("undecodable batches: {e}"))?;
        for w in batches {
            let env = from_wire(w, &self.table).map_err(|e| format!("bad batch: {e}"))?;
            let task = env.task;
            match self.local.sender(task) {
                Ok(sender) => {
                    if sender.send(env).await.is_err() {
                        tracing::debug!(%peer, "dropping a batch for task {task}, which has shut down");
                    }
                }
                Err(_) => {
                    let n = self.misrouted.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        tracing::warn!(%peer, misrouted = n, "a batch for task {task}, which this worker does not host (assignments differ); failing its trees");
                    }
                    self.fail.fail(
                        env,
                        &self.fail.me,
                        "this worker does not host the task (it was reassigned)",
                    );
                }
            }
        }
        Ok(())
    }

    fn undeliverable(&self, batch: Envelope, peer: &str, why: &str) -> usize {
        self.fail.fail(batch, peer, why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values;
    use tempest_protocol::config::Config;
    use tempest_protocol::spec::{ComponentKind, ComponentSpec, StreamSpec};
    use tempest_transport::Wire;

    fn table() -> StreamTable {
        let spec = TopologySpec {
            name: "t".into(),
            config: Config::new(),
            components: vec![ComponentSpec {
                id: "split".into(),
                kind: ComponentKind::Bolt,
                parallelism: 1,
                num_tasks: 1,
                streams: [(
                    "default".to_string(),
                    StreamSpec {
                        fields: vec!["word".into(), "n".into()],
                        direct: false,
                    },
                )]
                .into(),
                inputs: vec![],
                config: Config::new(),
            }],
        };
        StreamTable::of(&spec)
    }

    #[tokio::test]
    async fn batches_round_trip_with_tuples_acks_and_outcomes() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let mut local = Transfer::new(8);
        local.add(3, tx.clone());
        local.add(1, tx);
        let fail = FailRoute {
            routes: Transfer::default(),
            ackers: 0..0,
            me: "127.0.0.1:1".into(),
        };
        let wire = TupleWire::new(table(), local, fail);
        let meta = StreamMeta::intern("split", "default", &Fields::from(["word", "n"]));
        let mut anchors = Anchors::new();
        anchors.push((7, 9));
        let batches = vec![
            Envelope {
                task: 3,
                payload: Payload::Tuples(vec![Tuple::new(meta, values!["cow", 2], 5, anchors)]),
            },
            Envelope {
                task: 1,
                payload: Payload::Acker(vec![AckerMsg::Ack { root: 7, xor: 1 }]),
            },
        ];
        let mut frame = Vec::new();
        wire.encode(&batches, &mut frame).unwrap();
        wire.deliver(BytesMut::from(&frame[..]), "peer")
            .await
            .unwrap();
        let env = rx.recv().await.unwrap();
        assert_eq!(env.task, 3);
        let Payload::Tuples(ts) = env.payload else {
            panic!("tuples first")
        };
        assert_eq!(ts[0].str("word").unwrap(), "cow");
        assert_eq!(ts[0].i64("n").unwrap(), 2);
        assert_eq!(ts[0].source_component(), "split");
        assert_eq!(ts[0].source_task(), 5);
        assert_eq!(ts[0].anchors.as_slice(), &[(7, 9)]);
        let acks = rx.recv().await.unwrap();
        assert!(
            matches!(acks.payload, Payload::Acker(ref m) if m == &[AckerMsg::Ack { root: 7, xor: 1 }])
        );
        // Garbage is an error (the transport closes that connection), not a panic.
        let e = wire
            .deliver(BytesMut::from(&[0xc1, 0xc1][..]), "peer")
            .await
            .unwrap_err();
        assert!(e.contains("undecodable"), "{e}");
    }
}
