//! Tuples between workers: per worker pair, two TCP connections ("lanes") carrying
//! length-prefixed rmp-serde frames of batches.
//!
//! - The **data** lane carries tuples to bolt tasks; the **control** lane carries acker messages
//!   and tree outcomes to acker and spout tasks. Inside a worker, the spout -> bolts -> acker ->
//!   spout cycle cannot deadlock because ackers and spouts always drain their queues; across
//!   workers that only holds if their traffic never waits behind tuples stuck on a full bolt
//!   queue (head-of-line blocking on a shared connection). Separate lanes keep it true.
//! - Of each pair, the worker with the lower address dials both lanes; each connection is then
//!   used in both directions. The dialer opens with a `Hello` carrying the cluster secret, the
//!   topology, the assignment version and the lane; anything else is refused.
//! - Each peer lane has a bounded queue (the [`Transfer`] entries of the peer's tasks point to
//!   it), so a slow or unreachable peer backpressures its producers. Batches that cannot be
//!   delivered (the connection broke, or the peer stayed unreachable for [`HOLD`]) fail their
//!   tracked tuple trees through the acker, so their spouts replay them: nothing is dropped
//!   silently.

use crate::acker::{AckerMsg, TreeOutcome};
use crate::spec::TopologySpec;
use crate::transfer::{Envelope, Payload, Transfer};
use crate::tuple::{Anchors, Fields, StreamMeta, Tuple};
use crate::value::Values;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

/// How long a peer may stay unreachable before batches for it are failed instead of held.
pub(crate) const HOLD: Duration = Duration::from_secs(2);
/// Largest frame accepted from a peer.
const MAX_FRAME: usize = 64 << 20;
/// Most envelopes written in one frame.
const MAX_ENVELOPES_PER_FRAME: usize = 64;

/// Numbers every declared stream of a topology, identically in every worker (components and
/// streams in id order), so a tuple crosses the wire as a stream number instead of names.
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
                c.streams.iter().map(|(stream, s)| {
                    StreamMeta::intern(&c.id, stream, &Fields::new(s.fields.clone()))
                })
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

#[derive(Debug, Serialize, Deserialize)]
struct WireTuple {
    stream: u32,
    source_task: u32,
    values: Values,
    anchors: Anchors,
}

#[derive(Debug, Serialize, Deserialize)]
enum WirePayload {
    Tuples(Vec<WireTuple>),
    Acker(Vec<AckerMsg>),
    Outcomes(Vec<TreeOutcome>),
}

#[derive(Debug, Serialize, Deserialize)]
struct WireEnvelope {
    task: u32,
    payload: WirePayload,
}

/// Which of a worker pair's two connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum Lane {
    /// Tuples to bolts.
    Data,
    /// Acker messages and tree outcomes (to ackers and spouts, which always drain).
    Control,
}

#[derive(Debug, Serialize, Deserialize)]
enum Frame {
    Hello {
        secret: String,
        topology: String,
        version: u64,
        from: String,
        lane: Lane,
    },
    Batches(Vec<WireEnvelope>),
}

fn to_wire(env: Envelope, table: &StreamTable) -> WireEnvelope {
    let payload = match env.payload {
        Payload::Tuples(ts) => WirePayload::Tuples(
            ts.into_iter()
                .filter_map(|t| {
                    Some(WireTuple {
                        stream: table.id(t.meta)?,
                        source_task: t.source_task,
                        values: t.values,
                        anchors: t.anchors,
                    })
                })
                .collect(),
        ),
        Payload::Acker(m) => WirePayload::Acker(m),
        Payload::Outcomes(o) => WirePayload::Outcomes(o),
    };
    WireEnvelope {
        task: env.task,
        payload,
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

async fn write_frame(w: &mut (impl AsyncWriteExt + Unpin), frame: &Frame) -> std::io::Result<()> {
    let body = rmp_serde::to_vec(frame).map_err(std::io::Error::other)?;
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(&body);
    w.write_all(&buf).await
}

async fn read_frame(r: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Frame> {
    let len = r.read_u32().await? as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "frame of {len} bytes exceeds the {MAX_FRAME} byte limit"
        )));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    rmp_serde::from_slice(&body).map_err(std::io::Error::other)
}

/// What this worker is, for handshakes.
#[derive(Clone)]
pub(crate) struct Identity {
    pub address: String,
    pub topology: String,
    pub version: u64,
    pub secret: String,
}

/// Another worker of the topology and the tasks it hosts.
pub(crate) struct PeerSpec {
    pub address: String,
    pub tasks: Vec<u32>,
}

/// The lane traffic to `task` takes: control for ackers and spouts, data for bolts.
fn lane_of(task: u32, control_tasks: &[u32]) -> Lane {
    if control_tasks.binary_search(&task).is_ok() {
        Lane::Control
    } else {
        Lane::Data
    }
}

/// Where undeliverable tuples' trees get failed.
#[derive(Clone)]
struct FailRoute {
    routes: Transfer,
    ackers: Range<u32>,
}

impl FailRoute {
    /// Fails the tracked trees of an undeliverable batch (acker messages and outcomes for the
    /// lost peer are dropped: those trees time out at their spouts).
    fn fail(&self, env: Envelope, peer_tasks: &[u32]) -> usize {
        let Payload::Tuples(tuples) = env.payload else {
            return 0;
        };
        let n = (self.ackers.end - self.ackers.start) as u64;
        let mut failed = 0;
        for t in tuples {
            for &(root, _) in &t.anchors {
                if n == 0 {
                    break;
                }
                let acker = self.ackers.start + (root % n) as u32;
                if peer_tasks.contains(&acker) {
                    continue;
                }
                if let Ok(s) = self.routes.sender(acker) {
                    let msg = Envelope {
                        task: acker,
                        payload: Payload::Acker(vec![AckerMsg::Fail { root }]),
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

/// The running transport of one worker.
pub(crate) struct Transport {
    /// Queues for the tasks of other workers: give to the executors.
    pub remote: Transfer,
    /// Where outgoing and failed traffic is routed once the local queues are known.
    start: Option<Box<dyn FnOnce(Transfer) + Send>>,
}

impl Transport {
    /// Sets up queues and connections to `peers`. `control_tasks` are the acker and spout tasks
    /// (sorted). Call [`Transport::run`] once the local executors' queues exist.
    pub(crate) fn new(
        me: Identity,
        listener: TcpListener,
        peers: Vec<PeerSpec>,
        spec: &TopologySpec,
        ackers: Range<u32>,
        control_tasks: Vec<u32>,
        queue_capacity: usize,
    ) -> Self {
        let table = Arc::new(StreamTable::of(spec));
        let max_task = crate::spec::TaskLayout::of(spec).max_task();
        let mut remote = Transfer::new(max_task);
        let mut links = Vec::new();
        for p in peers {
            let p = Arc::new(p);
            for lane in [Lane::Data, Lane::Control] {
                let (tx, rx) = mpsc::channel::<Envelope>(queue_capacity);
                for &t in &p.tasks {
                    if lane_of(t, &control_tasks) == lane {
                        remote.add(t, tx.clone());
                    }
                }
                let (conn_tx, conn_rx) = mpsc::channel::<TcpStream>(1);
                links.push((p.clone(), lane, rx, conn_tx, conn_rx));
            }
        }
        let remote_for_routes = remote.clone();
        let start = move |local: Transfer| {
            let routes = local.merged(&remote_for_routes);
            let fail = FailRoute { routes, ackers };
            let mut acceptors = FxHashMap::default();
            for (p, lane, rx, conn_tx, conn_rx) in links {
                let need = Arc::new(Notify::new());
                if me.address < p.address {
                    let to = (p.address.clone(), lane);
                    tokio::spawn(dialer(to, me.clone(), conn_tx, need.clone()));
                } else {
                    acceptors.insert((p.address.clone(), lane), conn_tx);
                }
                let link = PeerLink {
                    peer: p,
                    lane,
                    queue: rx,
                    connections: conn_rx,
                    need,
                    local: local.clone(),
                    table: table.clone(),
                    fail: fail.clone(),
                };
                tokio::spawn(link.run());
            }
            tokio::spawn(accept_loop(listener, me, acceptors));
        };
        Transport {
            remote,
            start: Some(Box::new(start)),
        }
    }

    /// Starts the connections; tuples from peers go to `local` (the hosted tasks' queues).
    pub(crate) fn run(mut self, local: Transfer) {
        if let Some(start) = self.start.take() {
            start(local);
        }
    }
}

/// Accepts connections from the peers that dial us; checks their hello.
async fn accept_loop(
    listener: TcpListener,
    me: Identity,
    acceptors: FxHashMap<(String, Lane), mpsc::Sender<TcpStream>>,
) {
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accepting a worker connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let hello = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut stream)).await;
        let from = match hello {
            Ok(Ok(Frame::Hello {
                secret,
                topology,
                version,
                from,
                lane,
            })) => {
                let secret_ok: bool =
                    subtle::ConstantTimeEq::ct_eq(secret.as_bytes(), me.secret.as_bytes()).into();
                if !secret_ok {
                    tracing::warn!(%peer, "refused a worker connection: wrong cluster secret");
                    continue;
                }
                if topology != me.topology || version != me.version {
                    tracing::warn!(%peer, %topology, version, "refused a worker connection from another topology or assignment version");
                    continue;
                }
                (from, lane)
            }
            Ok(Ok(_)) | Ok(Err(_)) | Err(_) => {
                tracing::warn!(%peer, "refused a worker connection: no valid hello");
                continue;
            }
        };
        match acceptors.get(&from) {
            // Handed over without blocking the accept loop (the link takes it when it is free).
            Some(tx) => {
                let tx = tx.clone();
                tokio::spawn(async move { tx.send(stream).await });
            }
            None => {
                tracing::warn!(%peer, from = %from.0, "refused a worker connection from a worker that is not a peer")
            }
        }
    }
}

/// Dials a peer whenever its link needs a connection, with back-off, and hands it over.
async fn dialer(
    (address, lane): (String, Lane),
    me: Identity,
    connections: mpsc::Sender<TcpStream>,
    need: Arc<Notify>,
) {
    loop {
        let mut backoff = Duration::from_millis(50);
        let stream = loop {
            let attempt = async {
                let mut s = TcpStream::connect(&address).await?;
                s.set_nodelay(true)?;
                let hello = Frame::Hello {
                    secret: me.secret.clone(),
                    topology: me.topology.clone(),
                    version: me.version,
                    from: me.address.clone(),
                    lane,
                };
                write_frame(&mut s, &hello).await?;
                std::io::Result::Ok(s)
            };
            match tokio::time::timeout(Duration::from_secs(2), attempt).await {
                Ok(Ok(s)) => break s,
                Ok(Err(e)) => tracing::debug!(%address, "connecting to worker: {e}"),
                Err(_) => tracing::debug!(%address, "connecting to worker timed out"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        };
        if connections.send(stream).await.is_err() {
            return;
        }
        need.notified().await;
    }
}

/// The traffic to and from one peer.
struct PeerLink {
    peer: Arc<PeerSpec>,
    lane: Lane,
    queue: mpsc::Receiver<Envelope>,
    connections: mpsc::Receiver<TcpStream>,
    need: Arc<Notify>,
    local: Transfer,
    table: Arc<StreamTable>,
    fail: FailRoute,
}

impl PeerLink {
    async fn run(mut self) {
        loop {
            // Wait for a connection; after HOLD, fail what arrives instead of holding it.
            let disconnected = tokio::time::Instant::now();
            let mut failed = 0usize;
            let stream = loop {
                let holding = disconnected.elapsed() < HOLD;
                tokio::select! {
                    c = self.connections.recv() => match c {
                        Some(s) => break s,
                        None => return,
                    },
                    env = self.queue.recv(), if !holding => match env {
                        Some(env) => failed += self.fail.fail(env, &self.peer.tasks),
                        None => return,
                    },
                    _ = tokio::time::sleep_until(disconnected + HOLD), if holding => {}
                }
            };
            if failed > 0 {
                tracing::warn!(peer = %self.peer.address, lane = ?self.lane, failed, "failed tuple trees while the worker was unreachable");
            }
            tracing::info!(peer = %self.peer.address, lane = ?self.lane, "connected to worker");
            let _ = stream.set_nodelay(true);
            let (rd, mut wr) = stream.into_split();
            let mut reader = tokio::spawn(read_loop(
                rd,
                self.local.clone(),
                self.table.clone(),
                self.peer.address.clone(),
            ));
            loop {
                tokio::select! {
                    _ = &mut reader => break,
                    env = self.queue.recv() => {
                        let Some(env) = env else {
                            reader.abort();
                            return;
                        };
                        let mut batch = vec![env];
                        while batch.len() < MAX_ENVELOPES_PER_FRAME {
                            match self.queue.try_recv() {
                                Ok(e) => batch.push(e),
                                Err(_) => break,
                            }
                        }
                        let frame = Frame::Batches(batch.into_iter().map(|e| to_wire(e, &self.table)).collect());
                        if let Err(e) = write_frame(&mut wr, &frame).await {
                            let Frame::Batches(lost) = frame else { unreachable!() };
                            let failed: usize = lost
                                .into_iter()
                                .filter_map(|w| from_wire(w, &self.table).ok())
                                .map(|env| self.fail.fail(env, &self.peer.tasks))
                                .sum();
                            tracing::warn!(peer = %self.peer.address, lane = ?self.lane, failed, "lost the connection to worker: {e}");
                            reader.abort();
                            break;
                        }
                    }
                }
            }
            self.need.notify_one();
        }
    }
}

/// Delivers a peer's batches to the hosted tasks (waiting for queue space: backpressure
/// reaches the peer through TCP).
async fn read_loop(mut rd: OwnedReadHalf, local: Transfer, table: Arc<StreamTable>, peer: String) {
    loop {
        let frame = match read_frame(&mut rd).await {
            Ok(f) => f,
            Err(e) => {
                tracing::info!(%peer, "worker connection closed: {e}");
                return;
            }
        };
        let Frame::Batches(batches) = frame else {
            tracing::warn!(%peer, "unexpected hello on an open connection");
            return;
        };
        for w in batches {
            match from_wire(w, &table) {
                Ok(env) => {
                    if let Err(e) = local.send(env).await {
                        tracing::warn!(%peer, "dropping a batch from worker: {e}");
                    }
                }
                Err(e) => {
                    tracing::warn!(%peer, "bad batch from worker: {e}");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values;

    #[tokio::test]
    async fn frames_round_trip_with_tuples_acks_and_outcomes() {
        let mut spec = TopologySpec {
            name: "t".into(),
            config: Default::default(),
            components: vec![],
        };
        let mut streams = std::collections::BTreeMap::new();
        streams.insert(
            "default".to_string(),
            crate::spec::StreamSpec {
                fields: vec!["word".into(), "n".into()],
                direct: false,
            },
        );
        spec.components.push(crate::spec::ComponentSpec {
            id: "split".into(),
            kind: crate::spec::ComponentKind::Bolt,
            parallelism: 1,
            num_tasks: 1,
            streams,
            inputs: vec![],
            config: Default::default(),
        });
        let table = StreamTable::of(&spec);
        let meta = StreamMeta::intern("split", "default", &Fields::from(["word", "n"]));
        let mut anchors = Anchors::new();
        anchors.push((7, 9));
        let env = Envelope {
            task: 3,
            payload: Payload::Tuples(vec![Tuple::new(meta, values!["cow", 2], 5, anchors)]),
        };
        let frame = Frame::Batches(vec![
            to_wire(env, &table),
            WireEnvelope {
                task: 1,
                payload: WirePayload::Acker(vec![AckerMsg::Ack { root: 7, xor: 1 }]),
            },
        ]);
        let mut buf = Vec::new();
        write_frame(&mut buf, &frame).await.unwrap();
        let Frame::Batches(back) = read_frame(&mut buf.as_slice()).await.unwrap() else {
            panic!("not a batch")
        };
        let mut back = back.into_iter();
        let env = from_wire(back.next().unwrap(), &table).unwrap();
        assert_eq!(env.task, 3);
        let Payload::Tuples(ts) = env.payload else {
            panic!()
        };
        assert_eq!(ts[0].str("word").unwrap(), "cow");
        assert_eq!(ts[0].i64("n").unwrap(), 2);
        assert_eq!(ts[0].source_component(), "split");
        assert_eq!(ts[0].source_task(), 5);
        assert_eq!(ts[0].anchors.as_slice(), &[(7, 9)]);
        let acks = from_wire(back.next().unwrap(), &table).unwrap();
        assert!(
            matches!(acks.payload, Payload::Acker(ref m) if m == &[AckerMsg::Ack { root: 7, xor: 1 }])
        );
    }

    #[tokio::test]
    async fn oversized_frames_are_refused() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&((MAX_FRAME as u32) + 1).to_be_bytes());
        let err = read_frame(&mut buf.as_slice()).await.unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
    }
}
