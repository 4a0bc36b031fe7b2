//! A link: the traffic to and from one peer on one lane. It dials or accepts its connection,
//! writes what its queue holds, reads what the peer sends, and redials (or waits to be dialed)
//! when the connection breaks, until its peer leaves the assignment.

use crate::backoff::Reconnect;
use crate::frame::Handshake;
use crate::frame::Lane;
use crate::frame::{
    data_frame_start, read_frame, send_data, Connection, Frame, FrameReader, FrameWriter, MAX_FRAME,
};
use crate::handshake::{self, Identity};
use crate::wire::Wire;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a peer may stay unreachable before batches for it are failed instead of held.
pub const HOLD: Duration = Duration::from_secs(2);

/// Why batches for a peer that stayed unreachable longer than [`HOLD`] fail.
const UNREACHABLE: &str = "the worker was unreachable for longer than the 2 s hold";
/// Most batches written in one frame.
const MAX_BATCHES_PER_FRAME: usize = 64;
/// How long a handshake may take, either side.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The receiving ends of a link's channels, for its task.
pub(crate) struct LinkChannels<B> {
    pub(crate) queue: mpsc::Receiver<B>,
    pub(crate) incoming: mpsc::Receiver<Connection>,
    pub(crate) cancel: CancellationToken,
}

/// The sending side of one link, held by the registry.
pub(crate) struct LinkHandle<B> {
    pub(crate) queue: mpsc::Sender<B>,
    pub(crate) incoming: mpsc::Sender<Connection>,
    pub(crate) cancel: CancellationToken,
}

pub(crate) fn link_channels<B>(capacity: usize) -> (LinkHandle<B>, LinkChannels<B>) {
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

/// Starts the link to `address` on `lane`.
pub(crate) fn start_link<W: Wire>(
    me: &Identity,
    wire: &Arc<W>,
    address: &str,
    lane: Lane,
    channels: LinkChannels<W::Batch>,
) {
    let dialer = (me.address.as_str() < address).then(|| Dialer {
        address: address.to_string(),
        lane,
        me: me.clone(),
        backoff: Reconnect::new(address, lane),
    });
    let link = Link {
        address: address.to_string(),
        lane,
        hold_forever: me.exact_version,
        wire: wire.clone(),
        queue: channels.queue,
        incoming: channels.incoming,
        dialer,
        cancel: channels.cancel,
    };
    tokio::spawn(link.run());
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
                    if self.backoff.failures() > 0 {
                        tracing::info!(peer = %self.address, lane = ?self.lane,
                            "connected to worker after {} failed attempts", self.backoff.failures());
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
        let hello = Handshake::Hello {
            secret: self.me.secret.clone(),
            topology: self.me.topology.clone(),
            version: self.me.version,
            from: self.me.address.clone(),
            lane: self.lane,
        };
        handshake::dial(Connection::new(stream), &hello).await
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

struct Link<W: Wire> {
    address: String,
    lane: Lane,
    /// Hold queued batches however long the peer is unreachable (exactly-once workers: a
    /// failed tree would roll every worker back, and a peer that died restarts them all anyway).
    hold_forever: bool,
    wire: Arc<W>,
    queue: mpsc::Receiver<W::Batch>,
    incoming: mpsc::Receiver<Connection>,
    dialer: Option<Dialer>,
    cancel: CancellationToken,
}

impl<W: Wire> Link<W> {
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
        while let Ok(batch) = self.queue.try_recv() {
            failed +=
                self.wire
                    .undeliverable(batch, &self.address, "the worker left the assignment");
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
            let holding = self.hold_forever || since.elapsed() < HOLD;
            tokio::select! {
                _ = self.cancel.cancelled() => break None,
                c = &mut dial => break Some(c),
                Some(c) = self.incoming.recv() => break Some(c),
                Some(batch) = self.queue.recv(), if !holding => {
                    failed += self.wire.undeliverable(batch, &self.address, UNREACHABLE);
                }
                _ = tokio::time::sleep_until(since + HOLD), if holding && !self.hold_forever => {}
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
            self.wire.clone(),
            self.address.clone(),
            self.lane,
        ));
        let outcome = loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break Served::Cancelled,
                _ = &mut reading => break Served::Broken(started.elapsed()),
                Some(c) = self.incoming.recv() => break Served::Replaced(Box::new(c)),
                Some(batch) = self.queue.recv() => {
                    let mut batches = vec![batch];
                    while batches.len() < MAX_BATCHES_PER_FRAME {
                        match self.queue.try_recv() {
                            Ok(b) => batches.push(b),
                            Err(_) => break,
                        }
                    }
                    if let Err((error, failed)) = self.write(&mut writer, batches).await {
                        tracing::warn!(peer = %self.address, lane = ?self.lane, failed, "lost the connection to worker: {error}");
                        break Served::Broken(started.elapsed());
                    }
                }
            }
        };
        reading.abort();
        outcome
    }

    /// Writes `batches` in frames of at most [`MAX_FRAME`] bytes, splitting them if needed (a
    /// batch too large on its own is failed). On a write error fails every batch not written
    /// and returns the error with the number of trees failed.
    async fn write(
        &self,
        writer: &mut FrameWriter,
        batches: Vec<W::Batch>,
    ) -> Result<(), (String, usize)> {
        let mut pending = vec![batches];
        while let Some(mut batches) = pending.pop() {
            let mut frame = data_frame_start();
            if let Err(e) = self.wire.encode(&batches, &mut frame) {
                let error = format!("cannot encode a frame: {e}");
                let failed = self.fail_all(pending.into_iter().flatten().chain(batches), &error);
                return Err((error, failed));
            }
            if frame.len() > MAX_FRAME {
                if batches.len() == 1 {
                    let task = W::task(&batches[0]);
                    let failed = self.fail_all(batches, "the batch is larger than a frame");
                    tracing::error!(peer = %self.address, task, bytes = frame.len(), failed,
                        "a batch is larger than the {MAX_FRAME} byte frame limit on its own; its tuple trees fail");
                    continue;
                }
                let second = batches.split_off(batches.len() / 2);
                pending.push(second);
                pending.push(batches);
                continue;
            }
            if let Err(e) = send_data(writer, frame).await {
                let error = format!("lost the connection: {e}");
                let failed = self.fail_all(pending.into_iter().flatten().chain(batches), &error);
                return Err((e.to_string(), failed));
            }
        }
        Ok(())
    }

    fn fail_all(&self, batches: impl IntoIterator<Item = W::Batch>, why: &str) -> usize {
        batches
            .into_iter()
            .map(|b| self.wire.undeliverable(b, &self.address, why))
            .sum()
    }
}

/// Delivers a peer's frames to this worker's tasks. Ends on a broken connection or a bad
/// frame, which closes this connection only.
async fn read_loop<W: Wire>(mut reader: FrameReader, wire: Arc<W>, peer: String, lane: Lane) {
    loop {
        match read_frame(&mut reader).await {
            Ok(Frame::Data(body)) => {
                if let Err(e) = wire.deliver(body, &peer).await {
                    tracing::warn!(%peer, ?lane, "closing a worker connection: {e}");
                    return;
                }
            }
            Ok(Frame::Handshake(_)) => {
                tracing::warn!(%peer, ?lane, "closing a worker connection: a handshake frame on an open connection");
                return;
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                tracing::info!(%peer, ?lane, "worker connection closed");
                return;
            }
            Err(e) => {
                tracing::warn!(%peer, ?lane, "closing a worker connection: {e}");
                return;
            }
        }
    }
}
