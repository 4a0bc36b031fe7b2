//! [`ShellSpout`]: a spout run by a subprocess (Storm's synchronous shell spout protocol):
//! each `next`, `ack`, `fail`, `activate` and `deactivate` is written to it and answered by
//! emits and logs, then `sync`.
//!
//! Storm's spout message ids are any JSON; Tempest's are u64. The spout keeps a table from
//! the u64 ids it hands the runtime to the JSON ids the subprocess emitted with, so `ack` and
//! `fail` send back exactly what came. The table holds at most `topology.max.spout.pending`
//! ids (plus one `next`'s emits): while it is full, `next` is not sent.

use crate::bolt::shorten;
use crate::process::{Incoming, ShellProcess};
use crate::protocol::{self, log_message, ShellMsg};
use crate::settings::Settings;
use crate::{Files, Outputs, ShellCommand};
use backon::BackoffBuilder;
use serde_json::Value as Json;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;
use topology_api::config::TOPOLOGY_MAX_SPOUT_PENDING;
use topology_api::{
    async_trait, ComponentResult, OutputDeclarer, Spout, SpoutOutputCollector, TopologyContext,
};

/// Emits received while no collector was at hand (during `ack`, `fail`, `activate`), held for
/// the next `next_tuple`; beyond this many they are dropped with an error.
const MAX_HELD_EMITS: usize = 10_000;

/// A spout run by a subprocess speaking Storm's multilang protocol.
#[derive(Debug)]
pub struct ShellSpout {
    command: ShellCommand,
    files: Files,
    outputs: Outputs,
    run: Option<Box<SpoutRun>>,
}

impl Clone for ShellSpout {
    /// A copy of the definition, not running (each task runs its own subprocess).
    fn clone(&self) -> Self {
        ShellSpout {
            command: self.command.clone(),
            files: self.files.clone(),
            outputs: self.outputs.clone(),
            run: None,
        }
    }
}

impl ShellSpout {
    /// Runs `command` per task in a working directory holding `files`.
    pub fn new(command: ShellCommand, files: impl Into<Files>) -> Self {
        ShellSpout {
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

/// The JSON message ids in flight, by the u64 id the runtime tracks them with.
#[derive(Debug, Default)]
struct IdTable {
    ids: HashMap<u64, Json>,
    next: u64,
}

impl IdTable {
    fn insert(&mut self, id: Json) -> u64 {
        self.next += 1;
        self.ids.insert(self.next, id);
        self.next
    }
    fn take(&mut self, key: u64) -> Option<Json> {
        self.ids.remove(&key)
    }
}

#[derive(Debug)]
struct SpoutRun {
    ctx: TopologyContext,
    command: ShellCommand,
    dir: PathBuf,
    remove_dir: bool,
    settings: Settings,
    max_ids: usize,
    proc: Option<ShellProcess>,
    ids: IdTable,
    /// Emits and errors that came without a collector at hand.
    held: VecDeque<ShellMsg>,
    reports: Vec<String>,
    backoff: backon::ExponentialBackoff,
    next_start: Instant,
}

/// Where a query's emits go: the collector, or held for the next `next_tuple`.
enum Sink<'a> {
    Now(&'a mut SpoutOutputCollector),
    Later,
}

impl SpoutRun {
    fn component(&self) -> &str {
        self.ctx.component_id()
    }

    /// Sends `command` and handles what comes back until `sync`.
    async fn query(&mut self, command: &str, id: Json, mut sink: Sink<'_>) {
        if let Sink::Now(c) = &mut sink {
            for r in self.reports.drain(..) {
                c.report_error(r);
            }
        }
        if self.proc.is_none() {
            self.revive().await;
        }
        let SpoutRun {
            proc,
            ids,
            held,
            reports,
            settings,
            ctx,
            ..
        } = self;
        let Some(proc) = proc.as_mut() else {
            return;
        };
        let result = async {
            proc.write(&protocol::spout_command(command, &id))
                .await
                .map_err(|e| format!("writing {command:?} to its stdin failed: {e}"))?;
            let deadline = Instant::now() + settings.timeout;
            loop {
                let inc = match tokio::time::timeout_at(deadline, proc.incoming.recv()).await {
                    Err(_) => {
                        return Err(format!(
                            "did not sync within {:?} of {command:?} (topology.subprocess.timeout.secs)",
                            settings.timeout
                        ))
                    }
                    Ok(None) => return Err("its reader stopped".to_string()),
                    Ok(Some(inc)) => inc,
                };
                let msg = match inc {
                    Incoming::Msg(m) => *m,
                    Incoming::Malformed { text, error } => {
                        return Err(format!("sent a malformed message ({error}): {}", shorten(&text)))
                    }
                    Incoming::Closed { error } => return Err(error),
                };
                match msg.command.as_str() {
                    "sync" => return Ok(()),
                    "log" => log_message(ctx.component_id(), ctx.task_id(), proc.pid, &msg),
                    "error" => {
                        let r = format!("Shell Process Exception: {}", msg.msg.as_deref().unwrap_or(""));
                        match &mut sink {
                            Sink::Now(c) => c.report_error(r),
                            Sink::Later => reports.push(r),
                        }
                    }
                    "emit" => {
                        let task_ids = match &mut sink {
                            Sink::Now(c) => emit(ctx.component_id(), ids, c, &msg),
                            Sink::Later => {
                                if held.len() < MAX_HELD_EMITS {
                                    held.push_back(msg.clone());
                                } else {
                                    reports.push(format!("{}: an emit during {command:?} was dropped: more than {MAX_HELD_EMITS} emits held", ctx.component_id()));
                                }
                                // The tasks are not known until it is emitted: none.
                                Some(Vec::new())
                            }
                        };
                        if let (Some(tasks), None, true) = (task_ids, msg.task, msg.need_task_ids) {
                            proc.write(&Json::from(tasks))
                                .await
                                .map_err(|e| format!("writing task ids to its stdin failed: {e}"))?;
                        }
                    }
                    "metrics" => tracing::debug!(
                        component = ctx.component_id(),
                        name = ?msg.metric_name,
                        "shell metrics are accepted but not published by Tempest"
                    ),
                    other => return Err(format!("sent an unknown command {other:?}")),
                }
            }
        }
        .await;
        if let Err(fault) = result {
            self.bury(fault, sink).await;
        }
    }

    /// Reports a dead subprocess and schedules its restart.
    async fn bury(&mut self, fault: String, sink: Sink<'_>) {
        let Some(proc) = self.proc.take() else { return };
        let pid = proc.pid;
        let lived = proc.started.elapsed();
        let (ended, tail) = proc.kill().await;
        if lived >= Duration::from_secs(30) {
            self.backoff = backoff();
        }
        let delay = self.backoff.next().unwrap_or(Duration::from_secs(30));
        self.next_start = Instant::now() + delay;
        let message = format!(
            "{} task {}: subprocess {} (pid {pid}) {fault}; {ended}; its last stderr lines: {tail}; restarting it in {delay:?} (its tuples in flight fail by timeout or ack as they complete)",
            self.component(),
            self.ctx.task_id(),
            self.command,
        );
        tracing::error!("{message}");
        match sink {
            Sink::Now(c) => c.report_error(message),
            Sink::Later => self.reports.push(message),
        }
    }

    async fn revive(&mut self) {
        if self.proc.is_some() || Instant::now() < self.next_start {
            return;
        }
        match ShellProcess::launch(
            &self.command,
            self.dir.clone(),
            &self.ctx,
            self.settings.timeout,
            None,
        )
        .await
        {
            Ok(p) => self.proc = Some(p),
            Err(e) => {
                let delay = self.backoff.next().unwrap_or(Duration::from_secs(30));
                self.next_start = Instant::now() + delay;
                let message = format!(
                    "{} task {}: restarting the subprocess failed: {e}; next attempt in {delay:?}",
                    self.component(),
                    self.ctx.task_id()
                );
                tracing::error!("{message}");
                self.reports.push(message);
            }
        }
    }
}

/// Emits one message from the subprocess; returns the tasks it went to (`None` if it was
/// dropped).
fn emit(
    component: &str,
    ids: &mut IdTable,
    c: &mut SpoutOutputCollector,
    msg: &ShellMsg,
) -> Option<Vec<u32>> {
    let values = match msg.values() {
        Ok(v) => v,
        Err(e) => {
            c.report_error(format!("{component}: emit dropped: {e}"));
            return None;
        }
    };
    let msg_id = msg.id.clone().map(|id| ids.insert(id));
    let result = match msg.task {
        Some(task) => c.emit_direct(task, &msg.stream, values, msg_id),
        None => c.emit_to(&msg.stream, values, msg_id),
    };
    match result {
        Ok(()) => Some(c.last_emit_tasks().to_vec()),
        Err(e) => {
            if let Some(k) = msg_id {
                ids.take(k);
            }
            c.report_error(format!("emit from the subprocess dropped: {e}"));
            None
        }
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

#[async_trait]
impl Spout for ShellSpout {
    fn declare_output_fields(&self, declarer: &mut OutputDeclarer) {
        self.outputs.declare(declarer)
    }

    async fn open(&mut self, ctx: &TopologyContext) -> ComponentResult {
        let settings = Settings::of(ctx.config())?;
        let max_ids = ctx
            .config()
            .u64_or(TOPOLOGY_MAX_SPOUT_PENDING, 5000)?
            .max(1) as usize;
        let (dir, remove_dir) = self
            .files
            .working_dir(ctx.topology_name(), ctx.component_id(), ctx.task_id())
            .map_err(|e| format!("{}: cannot prepare its files: {e}", ctx.component_id()))?;
        let proc =
            ShellProcess::launch(&self.command, dir.clone(), ctx, settings.timeout, None).await?;
        self.run = Some(Box::new(SpoutRun {
            ctx: ctx.clone(),
            command: self.command.clone(),
            dir,
            remove_dir,
            settings,
            max_ids,
            proc: Some(proc),
            ids: IdTable::default(),
            held: VecDeque::new(),
            reports: Vec::new(),
            backoff: backoff(),
            next_start: Instant::now(),
        }));
        Ok(())
    }

    async fn next_tuple(&mut self, collector: &mut SpoutOutputCollector) -> ComponentResult {
        let Some(run) = self.run.as_mut() else {
            return Err("ShellSpout called before open".into());
        };
        while let Some(msg) = run.held.pop_front() {
            emit(run.ctx.component_id(), &mut run.ids, collector, &msg);
        }
        if run.ids.ids.len() >= run.max_ids {
            return Ok(());
        }
        if run.proc.is_none() && Instant::now() < run.next_start {
            for r in run.reports.drain(..) {
                collector.report_error(r);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            return Ok(());
        }
        run.query("next", Json::from(""), Sink::Now(collector))
            .await;
        Ok(())
    }

    async fn ack(&mut self, msg_id: u64) {
        if let Some(run) = self.run.as_mut() {
            if let Some(id) = run.ids.take(msg_id) {
                run.query("ack", id, Sink::Later).await;
            }
        }
    }

    async fn fail(&mut self, msg_id: u64) {
        if let Some(run) = self.run.as_mut() {
            if let Some(id) = run.ids.take(msg_id) {
                run.query("fail", id, Sink::Later).await;
            }
        }
    }

    async fn activate(&mut self) {
        if let Some(run) = self.run.as_mut() {
            run.query("activate", Json::from(""), Sink::Later).await;
        }
    }

    async fn deactivate(&mut self) {
        if let Some(run) = self.run.as_mut() {
            run.query("deactivate", Json::from(""), Sink::Later).await;
        }
    }

    async fn close(&mut self) {
        if let Some(mut run) = self.run.take() {
            if let Some(p) = run.proc.take() {
                p.kill().await;
            }
            if run.remove_dir {
                let _ = std::fs::remove_dir_all(&run.dir);
            }
        }
    }
}
