//! Tuples between workers: per worker pair, two TCP connections ("lanes") carrying
//! length-prefixed rmp-serde frames of batches.
//!
//! - The **data** lane carries tuples to bolt tasks; the **control** lane carries acker messages
//!   and tree outcomes to acker and spout tasks. Inside a worker, the spout -> bolts -> acker ->
//!   spout cycle cannot deadlock because ackers and spouts always drain their queues; across
//!   workers that only holds if their traffic never waits behind tuples stuck on a full bolt
//!   queue (head-of-line blocking on a shared connection). Separate lanes keep it true.
//! - Of each pair, the worker with the lower address dials both lanes; each connection is then
//!   used in both directions, so a link lives as long as its peer is in the assignment, whether
//!   or not this worker ever sends on it (it may only receive).
//! - Handshake: the dialer sends `Hello` (cluster secret, topology, assignment version, its
//!   address, the lane); the acceptor answers `Welcome`, or `Refused` with the reason, and only a
//!   welcomed connection carries batches. A connection accepted for a link replaces the one the
//!   link had: the dialer only dials when its side of the old one is gone.
//! - Dialing backs off exponentially with jitter, and says so in the log once per doubling of
//!   the attempts (1, 2, 4, 8, ...), so an unreachable peer costs a few lines, not a disk.
//! - Each link has a bounded queue; the [`Transfer`] routes of the peer's tasks point to it
//!   through a [`RemoteRoute`], repointed when a new assignment moves tasks to another worker
//!   ([`TransportHandle::update`]), so workers whose own executors did not change keep running.
//!   Batches that cannot be delivered (the connection broke, or the peer stayed unreachable for
//!   [`HOLD`]) fail their tracked tuple trees through the acker, so their spouts replay them:
//!   nothing is dropped silently.

use crate::acker::{AckerMsg, TreeOutcome};
use crate::control::SecretDigest;
use crate::spec::TopologySpec;
use crate::transfer::{Envelope, InboxSender, Payload, RemoteRoute, Transfer, TransferError};
use crate::tuple::{Anchors, Fields, StreamMeta, Tuple};
use crate::value::Values;
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

/// How long a peer may stay unreachable before batches for it are failed instead of held.
pub(crate) const HOLD: Duration = Duration::from_secs(2);
/// Largest frame sent or accepted.
const MAX_FRAME: usize = 64 << 20;
/// Most envelopes written in one frame.
const MAX_ENVELOPES_PER_FRAME: usize = 64;
/// How long a handshake may take, either side.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Handshakes in progress at once on the accepting side (more connections wait to be read).
const MAX_HANDSHAKES: usize = 64;
/// A connection that lived this long was healthy: the next dial starts a fresh back-off.
const STABLE_AFTER: Duration = Duration::from_secs(1);
/// First reconnect delay; it doubles per failed attempt up to [`MAX_DIAL_DELAY`], and each
/// delay gets up to as much again of random jitter.
const MIN_DIAL_DELAY: Duration = Duration::from_millis(25);
/// Longest reconnect delay before jitter.
const MAX_DIAL_DELAY: Duration = Duration::from_secs(1);

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Lane {
    /// Tuples to bolts.
    Data,
    /// Acker messages and tree outcomes (to ackers and spouts, which always drain).
    Control,
}

const LANES: [Lane; 2] = [Lane::Data, Lane::Control];

#[derive(Debug, Serialize, Deserialize)]
enum Frame {
    /// The dialer introduces itself.
    Hello {
        secret: String,
        topology: String,
        version: u64,
        from: String,
        lane: Lane,
    },
    /// The acceptor took the connection for its link to the dialer.
    Welcome,
    /// The acceptor did not; the connection closes.
    Refused { reason: String },
    /// Batches for tasks of the receiving worker.
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

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

fn encode(frame: &Frame) -> std::io::Result<Bytes> {
    rmp_serde::to_vec(frame)
        .map(Bytes::from)
        .map_err(std::io::Error::other)
}

fn decode(bytes: &[u8]) -> std::io::Result<Frame> {
    rmp_serde::from_slice(bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("undecodable frame: {e}"),
        )
    })
}

/// Reads length-prefixed frames.
type FrameReader = FramedRead<OwnedReadHalf, LengthDelimitedCodec>;
/// Writes length-prefixed frames; the codec refuses frames over [`MAX_FRAME`].
type FrameWriter = FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>;

/// A TCP connection to a peer, framed both ways.
struct Connection {
    reader: FrameReader,
    writer: FrameWriter,
}

impl Connection {
    fn new(stream: TcpStream) -> Self {
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        Connection {
            reader: FramedRead::new(rd, codec()),
            writer: FramedWrite::new(wr, codec()),
        }
    }

    async fn send(&mut self, frame: &Frame) -> std::io::Result<()> {
        self.writer.send(encode(frame)?).await
    }

    async fn recv(&mut self) -> std::io::Result<Frame> {
        read_frame(&mut self.reader).await
    }
}

async fn read_frame(reader: &mut FrameReader) -> std::io::Result<Frame> {
    match reader.next().await {
        Some(Ok(bytes)) => decode(&bytes),
        Some(Err(e)) => Err(e),
        None => Err(std::io::ErrorKind::UnexpectedEof.into()),
    }
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Fails the tracked trees of an undeliverable batch; returns how many fail messages went
    /// out. (Acker messages and outcomes are dropped: those trees time out at their spouts.)
    fn fail(&self, env: Envelope) -> usize {
        let Payload::Tuples(tuples) = env.payload else {
            return 0;
        };
        let n = u64::from(self.ackers.end - self.ackers.start);
        if n == 0 {
            return 0;
        }
        let mut failed = 0;
        for t in tuples {
            for &(root, _) in &t.anchors {
                let acker = self.ackers.start + (root % n) as u32;
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

/// What every link of a worker shares.
struct Shared {
    me: Identity,
    table: StreamTable,
    /// The hosted tasks' queues, for batches from peers.
    local: Transfer,
    fail: FailRoute,
}

/// The sending side of one link, held by the registry.
struct LinkHandle {
    queue: InboxSender,
    incoming: mpsc::Sender<Connection>,
    cancel: CancellationToken,
}

/// The receiving ends of a link's channels, for its task.
struct LinkChannels {
    queue: mpsc::Receiver<Envelope>,
    incoming: mpsc::Receiver<Connection>,
    cancel: CancellationToken,
}

fn link_channels(capacity: usize) -> (LinkHandle, LinkChannels) {
    let (queue_tx, queue) = mpsc::channel(capacity);
    let (incoming_tx, incoming) = mpsc::channel(4);
    let cancel = CancellationToken::new();
    let handle = LinkHandle {
        queue: queue_tx,
        incoming: incoming_tx,
        cancel: cancel.clone(),
    };
    (
        handle,
        LinkChannels {
            queue,
            incoming,
            cancel,
        },
    )
}

/// The links of a worker, by peer address and lane, and the routes of the tasks they carry.
struct Links {
    links: BTreeMap<(String, Lane), LinkHandle>,
    /// Route of every task not hosted here, by task id.
    routes: HashMap<u32, Arc<RemoteRoute>>,
    control_tasks: Vec<u32>,
    queue_capacity: usize,
}

impl Links {
    /// Makes the links and routes match `peers`: links to addresses no longer in it stop
    /// (failing what they still hold), links to new addresses are made and given to `start`,
    /// and every remote task's route points at the link of the peer that now hosts it.
    fn place(&mut self, peers: &[PeerSpec], mut start: impl FnMut(&str, Lane, LinkChannels)) {
        let wanted: BTreeMap<&str, &PeerSpec> =
            peers.iter().map(|p| (p.address.as_str(), p)).collect();
        self.links.retain(|(address, lane), link| {
            let keep = wanted.contains_key(address.as_str());
            if !keep {
                tracing::info!(peer = %address, ?lane, "worker left the assignment; closing its link");
                link.cancel.cancel();
            }
            keep
        });
        for p in peers {
            for lane in LANES {
                let key = (p.address.clone(), lane);
                if !self.links.contains_key(&key) {
                    let (handle, channels) = link_channels(self.queue_capacity);
                    start(&p.address, lane, channels);
                    self.links.insert(key, handle);
                }
            }
            for &task in &p.tasks {
                let lane = lane_of(task, &self.control_tasks);
                let queue = self.links[&(p.address.clone(), lane)].queue.clone();
                match self.routes.get(&task) {
                    Some(route) => route.set(queue),
                    None => {
                        self.routes.insert(task, RemoteRoute::new(queue));
                    }
                }
            }
        }
    }
}

/// A running transport's links, what they share, and the assignment version they follow.
struct Registry {
    shared: Arc<Shared>,
    links: Links,
    version: u64,
    /// The highest assignment version a peer's hello carried.
    newer: watch::Sender<u64>,
}

/// The transport of one worker, before it runs.
pub(crate) struct Transport {
    /// Routes to the tasks of other workers: give to the executors.
    pub remote: Transfer,
    me: Identity,
    table: StreamTable,
    listener: TcpListener,
    links: Links,
    unstarted: Vec<(String, Lane, LinkChannels)>,
    ackers: Range<u32>,
}

/// Controls a running transport.
#[derive(Clone)]
pub(crate) struct TransportHandle {
    registry: Arc<Mutex<Registry>>,
    newer: watch::Receiver<u64>,
}

impl TransportHandle {
    /// Follows a new assignment whose placement of this worker's own executors is unchanged:
    /// `peers` are the other workers of assignment `version`.
    pub(crate) fn update(&self, peers: &[PeerSpec], version: u64) {
        let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        registry.version = version;
        let shared = registry.shared.clone();
        registry.links.place(peers, |address, lane, channels| {
            start_link(&shared, address, lane, channels)
        });
    }

    /// The highest assignment version a peer introduced itself with: a newer one than this
    /// worker's means the assignment changed (Nimbus has it).
    pub(crate) fn newer_version(&self) -> watch::Receiver<u64> {
        self.newer.clone()
    }
}

impl Transport {
    /// Sets up links and routes to `peers`. `control_tasks` are the acker and spout tasks. Call
    /// [`Transport::run`] once the local executors' queues exist.
    pub(crate) fn new(
        me: Identity,
        listener: TcpListener,
        peers: &[PeerSpec],
        spec: &TopologySpec,
        ackers: Range<u32>,
        mut control_tasks: Vec<u32>,
        queue_capacity: usize,
    ) -> Self {
        control_tasks.sort_unstable();
        let mut links = Links {
            links: BTreeMap::new(),
            routes: HashMap::new(),
            control_tasks,
            queue_capacity,
        };
        let mut unstarted = Vec::new();
        links.place(peers, |address, lane, channels| {
            unstarted.push((address.to_string(), lane, channels))
        });
        let mut remote = Transfer::new(crate::spec::TaskLayout::of(spec).max_task());
        for (&task, route) in &links.routes {
            remote.add_remote(task, route.clone());
        }
        Transport {
            remote,
            me,
            table: StreamTable::of(spec),
            listener,
            links,
            unstarted,
            ackers,
        }
    }

    /// Starts the links and the accept loop; tuples from peers go to `local` (the hosted tasks'
    /// queues).
    pub(crate) fn run(self, local: Transfer) -> TransportHandle {
        let secret = SecretDigest::new(&self.me.secret);
        let version = self.me.version;
        let shared = Arc::new(Shared {
            me: self.me,
            table: self.table,
            fail: FailRoute {
                routes: local.merged(&self.remote),
                ackers: self.ackers,
            },
            local,
        });
        for (address, lane, channels) in self.unstarted {
            start_link(&shared, &address, lane, channels);
        }
        let (newer, newer_rx) = watch::channel(version);
        let registry = Arc::new(Mutex::new(Registry {
            shared,
            links: self.links,
            version,
            newer,
        }));
        tokio::spawn(accept_loop(self.listener, secret, registry.clone()));
        TransportHandle {
            registry,
            newer: newer_rx,
        }
    }
}

/// Accepts connections from the peers that dial us; each handshake runs on its own task.
async fn accept_loop(listener: TcpListener, secret: SecretDigest, registry: Arc<Mutex<Registry>>) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let secret = Arc::new(secret);
    loop {
        let Ok(permit) = handshakes.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accepting a worker connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let registry = registry.clone();
        let secret = secret.clone();
        tokio::spawn(async move {
            let mut conn = Connection::new(stream);
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept(&mut conn, &secret, &registry))
                .await
            {
                Ok(Ok(handover)) => {
                    if conn.send(&Frame::Welcome).await.is_ok() {
                        // The link takes it at once in every state; closed if it just stopped.
                        let _ = handover.send(conn).await;
                    }
                }
                Ok(Err(reason)) => {
                    tracing::warn!(%peer, "refused a worker connection: {reason}");
                    let _ = conn.send(&Frame::Refused { reason }).await;
                }
                Err(_) => {
                    tracing::warn!(%peer, "refused a worker connection: no hello within {HANDSHAKE_TIMEOUT:?}")
                }
            }
            drop(permit);
        });
    }
}

/// Reads and checks a dialer's hello; the link it is for.
async fn accept(
    conn: &mut Connection,
    secret: &SecretDigest,
    registry: &Mutex<Registry>,
) -> Result<mpsc::Sender<Connection>, String> {
    let hello = conn
        .recv()
        .await
        .map_err(|e| format!("no valid hello: {e}"))?;
    let Frame::Hello {
        secret: given,
        topology,
        version,
        from,
        lane,
    } = hello
    else {
        return Err("the first frame is not a hello".into());
    };
    if !secret.matches(given.as_bytes()) {
        return Err("wrong cluster secret".into());
    }
    let registry = registry.lock().unwrap_or_else(PoisonError::into_inner);
    let me = &registry.shared.me;
    if topology != me.topology {
        return Err(format!(
            "it is a worker of topology {topology:?}, this one of {:?}",
            me.topology
        ));
    }
    if version > registry.version {
        registry.newer.send_if_modified(|v| {
            let newer = version > *v;
            *v = (*v).max(version);
            newer
        });
    }
    match registry.links.links.get(&(from.clone(), lane)) {
        Some(link) => Ok(link.incoming.clone()),
        None => Err(format!(
            "{from} (assignment version {version}) is not a worker of assignment version {} here",
            registry.version
        )),
    }
}

/// Starts the link to `address` on `lane`.
fn start_link(shared: &Arc<Shared>, address: &str, lane: Lane, channels: LinkChannels) {
    let dialer = (shared.me.address.as_str() < address).then(|| Dialer {
        address: address.to_string(),
        lane,
        me: shared.me.clone(),
        backoff: Reconnect::new(address, lane),
    });
    let link = Link {
        address: address.to_string(),
        lane,
        shared: shared.clone(),
        queue: channels.queue,
        incoming: channels.incoming,
        dialer,
        cancel: channels.cancel,
    };
    tokio::spawn(link.run());
}

/// Reconnect delays for one peer lane, and the rate-limited log of failed attempts.
struct Reconnect {
    address: String,
    lane: Lane,
    delays: ExponentialBackoff,
    failures: u64,
}

impl Reconnect {
    fn new(address: &str, lane: Lane) -> Self {
        Reconnect {
            address: address.to_string(),
            lane,
            delays: Self::fresh(),
            failures: 0,
        }
    }

    fn fresh() -> ExponentialBackoff {
        ExponentialBuilder::default()
            .with_min_delay(MIN_DIAL_DELAY)
            .with_max_delay(MAX_DIAL_DELAY)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// Records a failed attempt; logs it if the failures just reached a power of two. Returns
    /// how long to wait before the next one.
    fn failed(&mut self, error: &str) -> Duration {
        self.failures += 1;
        if self.failures.is_power_of_two() {
            tracing::warn!(peer = %self.address, lane = ?self.lane, attempts = self.failures,
                "cannot connect to worker (retrying with back-off; next report after {} attempts): {error}",
                self.failures * 2);
        }
        self.delays.next().unwrap_or(MAX_DIAL_DELAY)
    }

    /// The delay before redialing after a connection broke: none after a healthy one.
    fn after_break(&mut self, lived: Duration) -> Duration {
        if lived >= STABLE_AFTER {
            self.delays = Self::fresh();
            self.failures = 0;
            Duration::ZERO
        } else {
            self.failed("the connection closed right after it opened")
        }
    }
}

/// The dialing side of a link (the worker with the lower address dials).
struct Dialer {
    address: String,
    lane: Lane,
    me: Identity,
    backoff: Reconnect,
}

impl Dialer {
    /// Dials until a connection is welcomed.
    async fn dial(&mut self, wait_first: Duration) -> Connection {
        tokio::time::sleep(wait_first).await;
        loop {
            let attempt = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.attempt()).await;
            let error = match attempt {
                Ok(Ok(conn)) => {
                    if self.backoff.failures > 0 {
                        tracing::info!(peer = %self.address, lane = ?self.lane,
                            "connected to worker after {} failed attempts", self.backoff.failures);
                    }
                    return conn;
                }
                Ok(Err(e)) => e,
                Err(_) => format!("no answer to the hello within {HANDSHAKE_TIMEOUT:?}"),
            };
            let delay = self.backoff.failed(&error);
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(&self) -> Result<Connection, String> {
        let stream = TcpStream::connect(&self.address)
            .await
            .map_err(|e| e.to_string())?;
        let mut conn = Connection::new(stream);
        let hello = Frame::Hello {
            secret: self.me.secret.clone(),
            topology: self.me.topology.clone(),
            version: self.me.version,
            from: self.me.address.clone(),
            lane: self.lane,
        };
        conn.send(&hello).await.map_err(|e| e.to_string())?;
        match conn.recv().await {
            Ok(Frame::Welcome) => Ok(conn),
            Ok(Frame::Refused { reason }) => Err(format!("refused: {reason}")),
            Ok(_) => Err("unexpected answer to the hello".into()),
            Err(e) => Err(format!("no answer to the hello: {e}")),
        }
    }
}

/// How serving one connection ended.
enum Served {
    /// It broke (either side); how long it lived.
    Broken(Duration),
    /// The peer dialed again: this connection replaces the old one.
    Replaced(Box<Connection>),
    /// The link was removed.
    Cancelled,
}

/// The traffic to and from one peer on one lane.
struct Link {
    address: String,
    lane: Lane,
    shared: Arc<Shared>,
    queue: mpsc::Receiver<Envelope>,
    incoming: mpsc::Receiver<Connection>,
    dialer: Option<Dialer>,
    cancel: CancellationToken,
}

impl Link {
    async fn run(mut self) {
        let mut next: Option<Connection> = None;
        let mut wait_first = Duration::ZERO;
        loop {
            let conn = match next.take() {
                Some(c) => c,
                None => match self.connect(wait_first).await {
                    Some(c) => c,
                    None => break,
                },
            };
            tracing::info!(peer = %self.address, lane = ?self.lane, "connected to worker");
            match self.serve(conn).await {
                Served::Broken(lived) => {
                    wait_first = match &mut self.dialer {
                        Some(d) => d.backoff.after_break(lived),
                        None => Duration::ZERO,
                    }
                }
                Served::Replaced(c) => next = Some(*c),
                Served::Cancelled => break,
            }
        }
        // Removed from the assignment: fail what is still queued for it.
        self.queue.close();
        let mut failed = 0;
        while let Ok(env) = self.queue.try_recv() {
            failed += self.shared.fail.fail(env);
        }
        if failed > 0 {
            tracing::warn!(peer = %self.address, lane = ?self.lane, failed, "failed tuple trees queued for a worker that left the assignment");
        }
    }

    /// Waits for a connection (dialing, or accepted from the peer); holds queued batches for
    /// [`HOLD`], then fails them as they come. `None` once the link is removed.
    async fn connect(&mut self, wait_first: Duration) -> Option<Connection> {
        let since = Instant::now();
        let mut failed = 0usize;
        let dial = async {
            match &mut self.dialer {
                Some(d) => d.dial(wait_first).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(dial);
        let conn = loop {
            let holding = since.elapsed() < HOLD;
            tokio::select! {
                _ = self.cancel.cancelled() => break None,
                c = &mut dial => break Some(c),
                Some(c) = self.incoming.recv() => break Some(c),
                Some(env) = self.queue.recv(), if !holding => failed += self.shared.fail.fail(env),
                _ = tokio::time::sleep_until(since + HOLD), if holding => {}
            }
        };
        if failed > 0 {
            tracing::warn!(peer = %self.address, lane = ?self.lane, failed, "failed tuple trees while the worker was unreachable");
        }
        conn
    }

    async fn serve(&mut self, conn: Connection) -> Served {
        let Connection { reader, mut writer } = conn;
        let started = Instant::now();
        let mut reading = tokio::spawn(read_loop(
            reader,
            self.shared.clone(),
            self.address.clone(),
            self.lane,
        ));
        let outcome = loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break Served::Cancelled,
                _ = &mut reading => break Served::Broken(started.elapsed()),
                Some(c) = self.incoming.recv() => break Served::Replaced(Box::new(c)),
                Some(env) = self.queue.recv() => {
                    let mut batch = vec![env];
                    while batch.len() < MAX_ENVELOPES_PER_FRAME {
                        match self.queue.try_recv() {
                            Ok(e) => batch.push(e),
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = self.write(&mut writer, batch).await {
                        tracing::warn!(peer = %self.address, lane = ?self.lane, failed = e.failed, "lost the connection to worker: {}", e.error);
                        break Served::Broken(started.elapsed());
                    }
                }
            }
        };
        reading.abort();
        outcome
    }

    /// Writes `batch` in frames of at most [`MAX_FRAME`] bytes (splitting it if needed; an
    /// envelope too large on its own fails its trees). On a write error fails the batch.
    async fn write(
        &self,
        writer: &mut FrameWriter,
        batch: Vec<Envelope>,
    ) -> Result<(), WriteError> {
        let table = &self.shared.table;
        let mut pending = vec![batch];
        while let Some(mut batch) = pending.pop() {
            let frame = Frame::Batches(batch.drain(..).map(|e| to_wire(e, table)).collect());
            let bytes = encode(&frame).map_err(|e| WriteError {
                error: e.to_string(),
                failed: 0,
            })?;
            let Frame::Batches(wire) = frame else {
                unreachable!("built as batches above")
            };
            if bytes.len() > MAX_FRAME {
                let mut envelopes: Vec<Envelope> = wire
                    .into_iter()
                    .filter_map(|w| from_wire(w, table).ok())
                    .collect();
                if envelopes.len() == 1 {
                    let failed = self.shared.fail.fail(envelopes.remove(0));
                    tracing::error!(peer = %self.address, bytes = bytes.len(), failed,
                        "a batch for task is larger than the {MAX_FRAME} byte frame limit on its own; its tuple trees fail");
                    continue;
                }
                let second = envelopes.split_off(envelopes.len() / 2);
                pending.push(second);
                pending.push(envelopes);
                continue;
            }
            if let Err(e) = writer.send(bytes).await {
                let mut failed = 0;
                for env in wire.into_iter().filter_map(|w| from_wire(w, table).ok()) {
                    failed += self.shared.fail.fail(env);
                }
                for env in pending.into_iter().flatten() {
                    failed += self.shared.fail.fail(env);
                }
                return Err(WriteError {
                    error: e.to_string(),
                    failed,
                });
            }
        }
        Ok(())
    }
}

struct WriteError {
    error: String,
    failed: usize,
}

/// Delivers a peer's batches to the hosted tasks (waiting for queue space: backpressure
/// reaches the peer through TCP). Ends on a broken connection or a bad frame, which closes this
/// connection only. A batch for a task this worker does not host (the sender's assignment is
/// older or newer) has its trees failed.
async fn read_loop(mut reader: FrameReader, shared: Arc<Shared>, peer: String, lane: Lane) {
    let mut misrouted = 0usize;
    loop {
        let batches = match read_frame(&mut reader).await {
            Ok(Frame::Batches(b)) => b,
            Ok(_) => {
                tracing::warn!(%peer, ?lane, "closing a worker connection: a handshake frame on an open connection");
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                tracing::info!(%peer, ?lane, "worker connection closed");
                break;
            }
            Err(e) => {
                tracing::warn!(%peer, ?lane, "closing a worker connection: {e}");
                break;
            }
        };
        for w in batches {
            let env = match from_wire(w, &shared.table) {
                Ok(env) => env,
                Err(e) => {
                    tracing::warn!(%peer, ?lane, "closing a worker connection: bad batch: {e}");
                    return;
                }
            };
            let task = env.task;
            let Ok(sender) = shared.local.sender(task) else {
                if misrouted == 0 {
                    tracing::warn!(%peer, ?lane, "a batch for task {task}, which this worker does not host (assignments differ); failing its trees");
                }
                misrouted += 1;
                shared.fail.fail(env);
                continue;
            };
            if sender.send(env).await.is_err() {
                tracing::debug!(%peer, "dropping a batch from worker: {}", TransferError::Closed(task));
            }
        }
    }
    if misrouted > 1 {
        tracing::warn!(%peer, ?lane, misrouted, "batches for tasks not hosted here on this connection");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values;

    fn table() -> StreamTable {
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
        StreamTable::of(&spec)
    }

    #[test]
    fn frames_round_trip_with_tuples_acks_and_outcomes() {
        let table = table();
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
        let bytes = encode(&frame).unwrap();
        let Frame::Batches(back) = decode(&bytes).unwrap() else {
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
    async fn oversized_and_garbage_frames_are_refused() {
        use tokio::io::AsyncWriteExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut conn = Connection::new(server);
        client
            .write_all(&((MAX_FRAME as u32) + 1).to_be_bytes())
            .await
            .unwrap();
        let err = conn.recv().await.unwrap_err();
        assert!(err.to_string().contains("frame size too big"), "{err}");

        let mut client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut conn = Connection::new(server);
        client
            .write_all(&[0, 0, 0, 3, 0xc1, 0xc1, 0xc1])
            .await
            .unwrap();
        let err = conn.recv().await.unwrap_err();
        assert!(err.to_string().contains("undecodable frame"), "{err}");
    }

    #[test]
    fn failed_dials_are_logged_once_per_doubling_and_delays_grow_to_the_cap() {
        let mut r = Reconnect::new("127.0.0.1:1", Lane::Data);
        let delays: Vec<Duration> = (0..12).map(|_| r.failed("refused")).collect();
        assert!(delays[0] >= MIN_DIAL_DELAY && delays[0] <= MIN_DIAL_DELAY * 2);
        assert!(
            delays.iter().all(|d| *d <= MAX_DIAL_DELAY * 2),
            "{delays:?}"
        );
        assert!(delays[11] >= MAX_DIAL_DELAY, "{delays:?}");
        let logged: Vec<u64> = (1..=1000u64).filter(|n| n.is_power_of_two()).collect();
        assert_eq!(logged.len(), 10, "1000 failures make 10 log lines");
        // A connection that dies at once keeps backing off; a healthy one starts afresh.
        assert!(r.after_break(Duration::from_millis(5)) >= MAX_DIAL_DELAY);
        assert_eq!(r.after_break(STABLE_AFTER), Duration::ZERO);
        assert_eq!(r.failures, 0);
    }
}
