//! [`ShellBolt`]: a bolt whose `execute` happens in a subprocess (Storm's asynchronous shell
//! bolt protocol).
//!
//! Tuples are written to the subprocess as they arrive; what it sends back (emits, acks,
//! fails, logs, heartbeat syncs) is read by a reader task and handled on the bolt's own
//! executor through bolt events ([`TopologyContext::events`]), so acks and emits that come
//! after `execute` returned go through the same collector. While `execute` waits to write,
//! it handles what the subprocess sends, so a subprocess blocked on a full stdout never
//! deadlocks with a bolt blocked on a full stdin.

use crate::process::{Incoming, ShellProcess, Waker};
use crate::protocol::{self, log_message, ShellMsg};
use crate::settings::Settings;
use crate::{Files, Outputs, ShellCommand};
use backon::BackoffBuilder;
use bytes::Bytes;
use serde_json::Value as Json;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use topology_api::{
    async_trait, Bolt, BoltEvent, ComponentResult, OutputCollector, OutputDeclarer,
    TopologyContext, Tuple,
};

/// How often heartbeat tuples are sent (Storm: every second).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// A subprocess that ran this long before failing restarts after the shortest back-off again.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// A bolt run by a subprocess speaking Storm's multilang protocol.
///
/// ```
/// use tempest_multilang::{Files, ShellBolt, ShellCommand};
/// // `resources!["split.py" => "python/split.py"]` embeds the files instead (what a cluster needs).
/// let split = ShellBolt::new(
///     ShellCommand::new("python3", ["split.py"]),
///     Files::Dir("python".into()),
/// )
/// .output_fields(["word"]);
/// ```
#[derive(Debug)]
pub struct ShellBolt {
    command: ShellCommand,
    files: Files,
    outputs: Outputs,
    run: Option<Box<BoltRun>>,
}

/// Events the bolt sends itself.
#[derive(Debug)]
enum ShellEvent {
    /// The subprocess sent something.
    Wake,
    /// A second passed: heartbeat, timeout check, restart.
    Tick,
}

impl ShellBolt {
    /// Runs `command` per task in a working directory holding `files`.
    pub fn new(command: ShellCommand, files: impl Into<Files>) -> Self {
        ShellBolt {
            command,
            files: files.into(),
            outputs: Outputs::default(),
            run: None,
        }
    }

    /// Declares the default stream's fields.
    pub fn output_fields<I, S>(self, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.stream("default", fields)
    }

    /// Declares a named stream.
    pub fn stream<I, S>(mut self, stream: &str, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.outputs.add(stream, fields, false);
        self
    }

    /// Declares a direct stream (the subprocess emits with a `task`).
    pub fn direct_stream<I, S>(mut self, stream: &str, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.outputs.add(stream, fields, true);
        self
    }
}

/// A running task: its subprocess (if alive) and the tuples it holds.
struct BoltRun {
    proc: Option<ShellProcess>,
    st: BoltState,
}

impl Clone for ShellBolt {
    /// A copy of the definition, not running (each task runs its own subprocess).
    fn clone(&self) -> Self {
        ShellBolt {
            command: self.command.clone(),
            files: self.files.clone(),
            outputs: self.outputs.clone(),
            run: None,
        }
    }
}

impl std::fmt::Debug for BoltRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoltRun")
            .field("proc", &self.proc)
            .field("in_flight", &self.st.inputs.len())
            .finish()
    }
}

struct BoltState {
    ctx: TopologyContext,
    command: ShellCommand,
    dir: PathBuf,
    remove_dir: bool,
    settings: Settings,
    /// Tuples sent to the subprocess and not yet acked or failed, by the id they were sent with.
    inputs: HashMap<String, Tuple>,
    /// Messages to write after the current one (task id lists, heartbeats).
    outq: VecDeque<Bytes>,
    rng: fastrand::Rng,
    last_heard: Instant,
    next_heartbeat: Instant,
    backoff: backon::ExponentialBackoff,
    next_start: Instant,
    waker: Arc<Waker>,
    woken: Arc<AtomicBool>,
}

/// Why a subprocess is given up on (it is killed and restarted).
type Fault = String;

enum Step {
    Wrote(std::io::Result<usize>),
    Got(Option<Incoming>),
    Timer,
}

impl BoltState {
    fn component(&self) -> &str {
        self.ctx.component_id()
    }

    /// Handles one message from the subprocess.
    fn handle(&mut self, inc: Incoming, c: &mut OutputCollector, pid: u32) -> Result<(), Fault> {
        let msg = match inc {
            Incoming::Msg(m) => *m,
            Incoming::Malformed { text, error } => {
                return Err(format!(
                    "sent a malformed message ({error}): {}",
                    shorten(&text)
                ))
            }
            Incoming::Closed { error } => return Err(error),
        };
        self.last_heard = Instant::now();
        match msg.command.as_str() {
            "sync" => {}
            "ack" | "fail" => {
                let id = id_text(&msg.id);
                match self.inputs.remove(&id) {
                    Some(t) if msg.command == "ack" => c.ack(&t),
                    Some(t) => c.fail(&t),
                    None => c.report_error(format!(
                        "{} task {}: subprocess {}ed a non-existent or already acked/failed tuple id {id}",
                        self.component(),
                        self.ctx.task_id(),
                        msg.command
                    )),
                }
            }
            "error" => c.report_error(format!(
                "Shell Process Exception: {}",
                msg.msg.as_deref().unwrap_or("")
            )),
            "log" => log_message(self.component(), self.ctx.task_id(), pid, &msg),
            "emit" => self.emit(&msg, c),
            "metrics" => tracing::debug!(
                component = self.component(),
                task = self.ctx.task_id(),
                name = ?msg.metric_name,
                params = ?msg.metric_params,
                "shell metrics are accepted but not published by Tempest"
            ),
            other => c.report_error(format!(
                "{} task {}: the subprocess sent an unknown command {other:?}; ignored",
                self.component(),
                self.ctx.task_id()
            )),
        }
        Ok(())
    }

    fn emit(&mut self, msg: &ShellMsg, c: &mut OutputCollector) {
        let mut anchors = Vec::with_capacity(msg.anchors.len());
        for a in &msg.anchors {
            match self.inputs.get(a) {
                Some(t) => anchors.push(t),
                None => {
                    c.report_error(format!(
                        "{} task {}: emit anchored onto tuple id {a} after it was acked or failed (or never sent); emitted unanchored to it",
                        self.component(),
                        self.ctx.task_id()
                    ));
                }
            }
        }
        let values = match msg.values() {
            Ok(v) => v,
            Err(e) => {
                c.report_error(format!("{}: emit dropped: {e}", self.component()));
                return;
            }
        };
        let result = match msg.task {
            Some(task) => c.emit_direct(task, &msg.stream, &anchors, values),
            None => c.emit_to(&msg.stream, &anchors, values),
        };
        match result {
            Err(e) => c.report_error(format!("emit from the subprocess dropped: {e}")),
            Ok(()) if msg.task.is_none() && msg.need_task_ids => {
                let ids = Json::from(c.last_emit_tasks().to_vec());
                self.outq.push_back(protocol::frame(&ids));
            }
            Ok(()) => {}
        }
    }

    /// Writes `first` and everything queued, handling what the subprocess sends meanwhile;
    /// with `wait_capacity`, also waits until fewer than max pending tuples are in flight.
    /// Sends heartbeats when due. Fails if the subprocess stays silent past the timeout.
    async fn pump(
        &mut self,
        proc: &mut ShellProcess,
        c: &mut OutputCollector,
        first: Option<Bytes>,
        wait_capacity: bool,
    ) -> Result<(), Fault> {
        let mut current: Option<(Bytes, usize)> = first.map(|b| (b, 0));
        loop {
            if current.is_none() {
                current = self.outq.pop_front().map(|b| (b, 0));
            }
            let waiting = wait_capacity && self.inputs.len() >= self.settings.max_pending;
            if current.is_none() && !waiting {
                return Ok(());
            }
            let deadline = self.last_heard + self.settings.timeout;
            let wake_at = deadline.min(self.next_heartbeat);
            let step = tokio::select! {
                biased;
                inc = proc.incoming.recv() => Step::Got(inc),
                n = async {
                    let (buf, pos) = current.as_ref().expect("guarded");
                    proc.stdin.write(&buf[*pos..]).await
                }, if current.is_some() => Step::Wrote(n),
                _ = tokio::time::sleep_until(wake_at) => Step::Timer,
            };
            match step {
                Step::Got(None) => return Err("its reader stopped".to_string()),
                Step::Got(Some(inc)) => self.handle(inc, c, proc.pid)?,
                Step::Wrote(Err(e)) => return Err(format!("writing to its stdin failed: {e}")),
                Step::Wrote(Ok(0)) => return Err("its stdin is closed".to_string()),
                Step::Wrote(Ok(n)) => {
                    let (buf, pos) = current.as_mut().expect("we just wrote it");
                    *pos += n;
                    if *pos == buf.len() {
                        current = None;
                    }
                }
                Step::Timer => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(self.timeout_fault());
                    }
                    if now >= self.next_heartbeat {
                        self.queue_heartbeat(now);
                    }
                }
            }
        }
    }

    fn timeout_fault(&self) -> Fault {
        format!(
            "sent nothing (not even a heartbeat sync) for {:?} (topology.subprocess.timeout.secs)",
            self.settings.timeout
        )
    }

    fn queue_heartbeat(&mut self, now: Instant) {
        let id = self.rng.i64(..).to_string();
        self.outq
            .push_back(protocol::frame(&protocol::heartbeat_tuple(&id)));
        self.next_heartbeat = now + HEARTBEAT_EVERY;
    }

    /// Reports a dead subprocess, fails the tuples it held and schedules its restart.
    async fn bury(&mut self, proc: ShellProcess, fault: Fault, c: &mut OutputCollector) {
        let pid = proc.pid;
        let lived = proc.started.elapsed();
        let (ended, tail) = proc.kill().await;
        if lived >= HEALTHY_AFTER {
            self.backoff = backoff();
        }
        let delay = self.backoff.next().unwrap_or(Duration::from_secs(30));
        self.next_start = Instant::now() + delay;
        let in_flight = self.inputs.len();
        let message = format!(
            "{} task {}: subprocess {} (pid {pid}) {fault}; {ended}; its last stderr lines: {tail}; failing its {in_flight} tuples in flight and restarting it in {delay:?}",
            self.component(),
            self.ctx.task_id(),
            self.command,
        );
        tracing::error!("{message}");
        c.report_error(message);
        for (_, t) in self.inputs.drain() {
            c.fail(&t);
        }
        self.outq.clear();
    }

    async fn launch(&mut self) -> Result<ShellProcess, String> {
        ShellProcess::launch(
            &self.command,
            self.dir.clone(),
            &self.ctx,
            self.settings.timeout,
            Some(self.waker.clone()),
        )
        .await
        .map_err(|e| e.to_string())
    }
}

fn backoff() -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(10))
        .with_factor(2.0)
        .without_max_times()
        .build()
}

/// A tuple id as Storm keys it: strings as they are, anything else as its JSON.
fn id_text(id: &Option<Json>) -> String {
    match id {
        Some(Json::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "null".to_string(),
    }
}

/// The start of a long line, for error messages.
pub(crate) fn shorten(text: &str) -> String {
    const MAX: usize = 300;
    if text.len() <= MAX {
        return format!("{text:?}");
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &text[..end], text.len())
}

impl BoltRun {
    /// Restarts the subprocess if it is dead and its back-off has passed.
    async fn revive(&mut self, c: &mut OutputCollector) {
        if self.proc.is_some() || Instant::now() < self.st.next_start {
            return;
        }
        match self.st.launch().await {
            Ok(p) => {
                self.st.last_heard = Instant::now();
                self.proc = Some(p);
            }
            Err(e) => {
                let delay = self.st.backoff.next().unwrap_or(Duration::from_secs(30));
                self.st.next_start = Instant::now() + delay;
                let message = format!(
                    "{} task {}: restarting the subprocess failed: {e}; next attempt in {delay:?}",
                    self.st.component(),
                    self.st.ctx.task_id()
                );
                tracing::error!("{message}");
                c.report_error(message);
            }
        }
    }

    async fn pump(&mut self, c: &mut OutputCollector, first: Option<Bytes>, wait_capacity: bool) {
        let Some(proc) = self.proc.as_mut() else {
            return;
        };
        if let Err(fault) = self.st.pump(proc, c, first, wait_capacity).await {
            let proc = self.proc.take().expect("it was alive");
            self.st.bury(proc, fault, c).await;
        }
    }
}

#[async_trait]
impl Bolt for ShellBolt {
    fn declare_output_fields(&self, declarer: &mut OutputDeclarer) {
        self.outputs.declare(declarer)
    }

    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        let settings = Settings::of(ctx.config())?;
        let events = ctx
            .events()
            .ok_or("a ShellBolt needs its task's event sender")?;
        let (dir, remove_dir) = self
            .files
            .working_dir(ctx.topology_name(), ctx.component_id(), ctx.task_id())
            .map_err(|e| format!("{}: cannot prepare its files: {e}", ctx.component_id()))?;
        let woken = Arc::new(AtomicBool::new(false));
        let waker: Arc<Waker> = {
            let woken = woken.clone();
            let events = events.clone();
            Arc::new(Box::new(move || {
                if !woken.swap(true, Ordering::AcqRel) {
                    let events = events.clone();
                    tokio::spawn(async move {
                        let _ = events.send(ShellEvent::Wake).await;
                    });
                }
            }))
        };
        let now = Instant::now();
        let mut st = BoltState {
            ctx: ctx.clone(),
            command: self.command.clone(),
            dir,
            remove_dir,
            settings,
            inputs: HashMap::new(),
            outq: VecDeque::new(),
            rng: fastrand::Rng::new(),
            last_heard: now,
            next_heartbeat: now + HEARTBEAT_EVERY,
            backoff: backoff(),
            next_start: now,
            waker,
            woken,
        };
        let proc = st.launch().await?;
        st.last_heard = Instant::now();
        self.run = Some(Box::new(BoltRun {
            proc: Some(proc),
            st,
        }));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT_EVERY).await;
                if events.send(ShellEvent::Tick).await.is_err() {
                    break;
                }
            }
        });
        Ok(())
    }

    async fn execute(&mut self, input: Tuple, collector: &mut OutputCollector) -> ComponentResult {
        let run = self
            .run
            .as_mut()
            .ok_or("ShellBolt executed before prepare")?;
        run.revive(collector).await;
        if run.proc.is_none() {
            // Dead and waiting to restart: the tuple fails now, so a reliable spout replays it.
            collector.fail(&input);
            return Ok(());
        }
        run.pump(collector, None, true).await;
        if run.proc.is_none() {
            collector.fail(&input);
            return Ok(());
        }
        let id = run.st.rng.i64(..).to_string();
        let msg = match protocol::bolt_tuple(&id, &input) {
            Ok(m) => m,
            Err(e) => {
                collector.fail(&input);
                return Err(format!(
                    "{}: a tuple from {}:{} cannot be sent to the subprocess: {e}",
                    run.st.component(),
                    input.source_component(),
                    input.source_stream()
                )
                .into());
            }
        };
        run.st.inputs.insert(id, input);
        run.pump(collector, Some(protocol::frame(&msg)), false)
            .await;
        Ok(())
    }

    async fn event(
        &mut self,
        event: BoltEvent,
        collector: &mut OutputCollector,
    ) -> ComponentResult {
        let event = event
            .downcast::<ShellEvent>()
            .map_err(|_| "a ShellBolt received an event it did not send")?;
        let Some(run) = self.run.as_mut() else {
            return Ok(());
        };
        match event {
            ShellEvent::Wake => {
                run.st.woken.store(false, Ordering::Release);
                let mut fault = None;
                if let Some(proc) = run.proc.as_mut() {
                    while let Ok(inc) = proc.incoming.try_recv() {
                        if let Err(f) = run.st.handle(inc, collector, proc.pid) {
                            fault = Some(f);
                            break;
                        }
                    }
                }
                if let Some(fault) = fault {
                    let proc = run.proc.take().expect("it was alive");
                    run.st.bury(proc, fault, collector).await;
                } else {
                    run.pump(collector, None, false).await;
                }
            }
            ShellEvent::Tick => {
                let now = Instant::now();
                if run.proc.is_none() {
                    run.revive(collector).await;
                } else if now >= run.st.last_heard + run.st.settings.timeout {
                    let fault = run.st.timeout_fault();
                    let proc = run.proc.take().expect("it was alive");
                    run.st.bury(proc, fault, collector).await;
                } else {
                    if now >= run.st.next_heartbeat {
                        run.st.queue_heartbeat(now);
                    }
                    run.pump(collector, None, false).await;
                }
            }
        }
        Ok(())
    }

    async fn cleanup(&mut self) {
        if let Some(mut run) = self.run.take() {
            if let Some(p) = run.proc.take() {
                p.kill().await;
            }
            if run.st.remove_dir {
                let _ = std::fs::remove_dir_all(&run.st.dir);
            }
        }
    }
}
