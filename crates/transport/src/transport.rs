//! A worker's transport: its links by peer and lane, the routes of remote tasks to them, and
//! the accept loop that hands dialed connections to their links.

use crate::frame::Connection;
use crate::frame::Handshake;
use crate::frame::{Lane, LANES};
use crate::handshake::{read_hello, Hello, Identity};
use crate::link::{link_channels, start_link, LinkChannels, LinkHandle, HANDSHAKE_TIMEOUT};
use crate::wire::Wire;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tempest_protocol::auth::SecretDigest;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

/// Handshakes in progress at once on the accepting side (more connections wait to be read).
const MAX_HANDSHAKES: usize = 64;

/// Another worker of the topology and the tasks it hosts, each with the lane its traffic takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its address (host:port).
    pub address: String,
    /// Its tasks.
    pub tasks: Vec<(u32, Lane)>,
}

/// The link queue of a task hosted by another worker; shared by every executor sending to it,
/// repointed by the transport when an assignment moves the task.
#[derive(Debug)]
pub struct RemoteRoute<B>(RwLock<mpsc::Sender<B>>);

impl<B> RemoteRoute<B> {
    fn new(queue: mpsc::Sender<B>) -> Arc<Self> {
        Arc::new(RemoteRoute(RwLock::new(queue)))
    }

    fn set(&self, queue: mpsc::Sender<B>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = queue;
    }

    /// The queue of the link that carries the task now.
    pub fn queue(&self) -> mpsc::Sender<B> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The links of a worker, by peer address and lane, and the routes of the tasks they carry.
struct Links<B> {
    links: BTreeMap<(String, Lane), LinkHandle<B>>,
    routes: HashMap<u32, Arc<RemoteRoute<B>>>,
    queue_capacity: usize,
}

impl<B> Links<B> {
    /// Makes the links and routes match `peers`: links to addresses no longer in it stop
    /// (failing what they still hold), links to new addresses are made and given to `start`,
    /// and every remote task's route points at the link of the peer that now hosts it.
    fn place(&mut self, peers: &[Peer], mut start: impl FnMut(&str, Lane, LinkChannels<B>)) {
        let wanted: BTreeMap<&str, &Peer> = peers.iter().map(|p| (p.address.as_str(), p)).collect();
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
            for &(task, lane) in &p.tasks {
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

/// A running transport: its links, what they share, and the assignment version it follows.
struct Registry<W: Wire> {
    me: Identity,
    wire: Arc<W>,
    links: Links<W::Batch>,
    version: u64,
    /// The highest assignment version a peer's hello carried.
    newer: watch::Sender<u64>,
}

/// The transport of one worker, before it runs: the routes exist (executors can be built with
/// them), the connections start with [`Transport::run`].
pub struct Transport<W: Wire> {
    me: Identity,
    listener: TcpListener,
    links: Links<W::Batch>,
    unstarted: Vec<(String, Lane, LinkChannels<W::Batch>)>,
}

/// Controls a running transport.
pub struct TransportHandle<W: Wire> {
    registry: Arc<Mutex<Registry<W>>>,
    newer: watch::Receiver<u64>,
}

impl<W: Wire> std::fmt::Debug for Transport<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("me", &self.me.address)
            .field("routes", &self.links.routes.len())
            .finish_non_exhaustive()
    }
}

impl<W: Wire> std::fmt::Debug for TransportHandle<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportHandle")
            .field("newer_version", &*self.newer.borrow())
            .finish_non_exhaustive()
    }
}

impl<W: Wire> Clone for TransportHandle<W> {
    fn clone(&self) -> Self {
        TransportHandle {
            registry: self.registry.clone(),
            newer: self.newer.clone(),
        }
    }
}

impl<W: Wire> Transport<W> {
    /// Sets up a link per peer and lane (each with a queue of `queue_capacity` batches) and a
    /// route per remote task; `listener` is this worker's slot port.
    pub fn new(me: Identity, listener: TcpListener, peers: &[Peer], queue_capacity: usize) -> Self {
        let mut links = Links {
            links: BTreeMap::new(),
            routes: HashMap::new(),
            queue_capacity,
        };
        let mut unstarted = Vec::new();
        links.place(peers, |address, lane, channels| {
            unstarted.push((address.to_string(), lane, channels))
        });
        Transport {
            me,
            listener,
            links,
            unstarted,
        }
    }

    /// The route of every remote task, for the executors.
    pub fn routes(&self) -> impl Iterator<Item = (u32, Arc<RemoteRoute<W::Batch>>)> + '_ {
        self.links.routes.iter().map(|(&t, r)| (t, r.clone()))
    }

    /// Starts the links and the accept loop; peers' frames go to `wire`.
    pub fn run(self, wire: W) -> TransportHandle<W> {
        let wire = Arc::new(wire);
        let secret = SecretDigest::new(&self.me.secret);
        for (address, lane, channels) in self.unstarted {
            start_link(&self.me, &wire, &address, lane, channels);
        }
        let version = self.me.version;
        let (newer, newer_rx) = watch::channel(version);
        let registry = Arc::new(Mutex::new(Registry {
            me: self.me,
            wire,
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

impl<W: Wire> TransportHandle<W> {
    /// Follows a new assignment whose placement of this worker's own executors is unchanged:
    /// `peers` are the other workers of assignment `version`.
    pub fn update(&self, peers: &[Peer], version: u64) {
        let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        registry.version = version;
        let (me, wire) = (registry.me.clone(), registry.wire.clone());
        registry.links.place(peers, |address, lane, channels| {
            start_link(&me, &wire, address, lane, channels)
        });
    }

    /// The highest assignment version a peer introduced itself with: a newer one than this
    /// worker's means the assignment changed (Nimbus has it).
    pub fn newer_version(&self) -> watch::Receiver<u64> {
        self.newer.clone()
    }
}

/// Accepts connections from the peers that dial us; each handshake runs on its own task.
async fn accept_loop<W: Wire>(
    listener: TcpListener,
    secret: SecretDigest,
    registry: Arc<Mutex<Registry<W>>>,
) {
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
            let checked = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
                let hello = read_hello(&mut conn).await?;
                admit(&hello, &secret, &registry)
            })
            .await;
            match checked {
                Ok(Ok(handover)) => {
                    conn.authenticated();
                    if conn.send_handshake(&Handshake::Welcome).await.is_ok() {
                        // The link takes it at once in every state; gone if it just stopped.
                        let _ = handover.send(conn).await;
                    }
                }
                Ok(Err(reason)) => {
                    tracing::warn!(%peer, "refused a worker connection: {reason}");
                    let _ = conn.send_handshake(&Handshake::Refused { reason }).await;
                }
                Err(_) => {
                    tracing::warn!(%peer, "refused a worker connection: no hello within {HANDSHAKE_TIMEOUT:?}")
                }
            }
            drop(permit);
        });
    }
}

/// Checks a dialer's hello; the link it is for.
fn admit<W: Wire>(
    hello: &Hello,
    secret: &SecretDigest,
    registry: &Mutex<Registry<W>>,
) -> Result<mpsc::Sender<Connection>, String> {
    if !secret.matches(hello.secret.as_bytes()) {
        return Err("wrong cluster secret".into());
    }
    let registry = registry.lock().unwrap_or_else(PoisonError::into_inner);
    if hello.topology != registry.me.topology {
        return Err(format!(
            "it is a worker of topology {:?}, this one of {:?}",
            hello.topology, registry.me.topology
        ));
    }
    if registry.me.exact_version && hello.version != registry.version {
        if hello.version > registry.version {
            registry.newer.send_if_modified(|v| {
                let newer = hello.version > *v;
                *v = (*v).max(hello.version);
                newer
            });
        }
        return Err(format!(
            "{} runs assignment version {}, this worker version {} (exactly once: versions must match)",
            hello.from, hello.version, registry.version
        ));
    }
    if hello.version > registry.version {
        registry.newer.send_if_modified(|v| {
            let newer = hello.version > *v;
            *v = (*v).max(hello.version);
            newer
        });
    }
    match registry.links.links.get(&(hello.from.clone(), hello.lane)) {
        Some(link) => Ok(link.incoming.clone()),
        None => Err(format!(
            "{} (assignment version {}) is not a worker of assignment version {} here",
            hello.from, hello.version, registry.version
        )),
    }
}
