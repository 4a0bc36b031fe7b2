//! [`KafkaSpout`]: reads records from Kafka and emits them as tuples.

use crate::assign::{partitions_for_task, Tp};
use crate::config::{FirstPollOffsetStrategy, KafkaSpoutConfig, ProcessingGuarantee, Topics};
use crate::offsets::{OffsetManager, Status};
use crate::translator::{ConsumerRecord, DefaultTranslator};
use futures_util::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempest_protocol::control::PartitionLag;
use tokio::sync::{watch, Notify};
use topology_api::prelude::*;

/// How long a blocking call to the brokers (metadata, committed offsets, commit) may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);
/// Errors of the same kind are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// A spout reading Kafka topics with storm-kafka-client's semantics; see the crate docs.
///
/// Make one per task from a shared config:
/// `builder.set_spout("kafka", move || KafkaSpout::new(config.clone()), 2)`.
pub struct KafkaSpout {
    config: KafkaSpoutConfig,
    run: Option<Box<Running>>,
}

impl std::fmt::Debug for KafkaSpout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSpout")
            .field("topics", &self.config.topics.describe())
            .field("group", &self.config.group_id)
            .field("open", &self.run.is_some())
            .finish()
    }
}

impl KafkaSpout {
    /// A spout task with this configuration.
    pub fn new(config: KafkaSpoutConfig) -> Self {
        KafkaSpout { config, run: None }
    }

    /// Records given up on after their last retry, by this task, since it opened.
    pub fn exhausted(&self) -> u64 {
        self.run.as_ref().map_or(0, |r| r.exhausted)
    }
}

type Kafka = StreamConsumer;

/// One partition this task reads.
#[derive(Debug)]
struct Partition {
    topic: Arc<str>,
    partition: i32,
    /// At least once: what is emitted, done, failed.
    offsets: OffsetManager,
    /// The group's committed offset as far as we know (-1: none), for the lag report.
    committed: i64,
    /// Where consumption started when the partition was assigned.
    start: Offset,
    /// The offset after the last record taken from the consumer.
    polled_next: Option<i64>,
    /// The offset after the last record emitted (or dropped by the translator).
    emitted_next: Option<i64>,
    /// Paused by `max_uncommitted_offsets`.
    paused: bool,
    /// We sought back to this offset to retry it; the first record read tells whether the
    /// offsets from here were compacted away.
    retry_seek: Option<i64>,
}

/// What a message id stands for.
#[derive(Debug, Clone, Copy)]
struct MsgRef {
    tp: u32,
    offset: i64,
    /// Emitted on the dead-letter stream.
    dead: bool,
}

/// A spout task's state once open.
struct Running {
    consumer: Arc<Kafka>,
    topology: String,
    component: String,
    task_id: u32,
    /// Interned topic/partition ids (never reused, so a message id of a partition this task
    /// no longer reads finds nothing).
    tp_ids: HashMap<Arc<str>, HashMap<i32, u32>>,
    next_tp: u32,
    /// The partitions this task reads, by interned id.
    parts: BTreeMap<u32, Partition>,
    /// Partitions whose offset this task committed (so they are "committed by this topology").
    committed_by_me: BTreeSet<u32>,
    /// Message ids in flight.
    ids: FxHashMap<u64, MsgRef>,
    next_id: u64,
    /// Records polled and not yet emitted.
    buffer: VecDeque<(u32, ConsumerRecord)>,
    /// At most once: offsets of the last poll are not committed yet, so nothing may be emitted.
    poll_uncommitted: bool,
    next_commit: Instant,
    next_lag: Instant,
    assignment: watch::Receiver<Option<Vec<Tp>>>,
    refresh_now: Arc<Notify>,
    refresher: tokio::task::JoinHandle<()>,
    exhausted: u64,
    last_logged: HashMap<&'static str, Instant>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

impl Running {
    /// Logs `message` at warn level unless a `kind` message was logged within [`LOG_EVERY`].
    fn warn_limited(&mut self, kind: &'static str, message: impl FnOnce() -> String) {
        let now = Instant::now();
        if self
            .last_logged
            .get(kind)
            .is_some_and(|t| now.duration_since(*t) < LOG_EVERY)
        {
            return;
        }
        self.last_logged.insert(kind, now);
        tracing::warn!(component = %self.component, task = self.task_id, "{}", message());
    }

    fn tp_id(&mut self, topic: &str, partition: i32) -> u32 {
        if let Some(id) = self.tp_ids.get(topic).and_then(|m| m.get(&partition)) {
            return *id;
        }
        let id = self.next_tp;
        self.next_tp += 1;
        let key: Arc<str> = self
            .tp_ids
            .keys()
            .find(|k| &***k == topic)
            .cloned()
            .unwrap_or_else(|| topic.into());
        self.tp_ids.entry(key).or_default().insert(partition, id);
        id
    }

    fn lookup(&self, topic: &str, partition: i32) -> Option<u32> {
        self.tp_ids.get(topic)?.get(&partition).copied()
    }

    fn commit_metadata(&self) -> String {
        serde_json::json!({ "topology": self.topology, "task": self.task_id }).to_string()
    }

    /// Commits `offsets` (interned partition, next offset) synchronously, off the executor's
    /// thread; on success records them as the partitions' committed offsets.
    async fn commit(&mut self, offsets: Vec<(u32, i64)>) -> Result<(), String> {
        if offsets.is_empty() {
            return Ok(());
        }
        let metadata = self.commit_metadata();
        let mut tpl = TopicPartitionList::with_capacity(offsets.len());
        for (tp, next) in &offsets {
            let Some(p) = self.parts.get(tp) else {
                continue;
            };
            tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(*next))
                .map_err(|e| format!("offset {next} of {}/{}: {e}", p.topic, p.partition))?;
            if let Some(mut elem) = tpl.find_partition(&p.topic, p.partition) {
                elem.set_metadata(metadata.as_str());
            }
        }
        let consumer = self.consumer.clone();
        let result =
            tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("cannot commit offsets: {e}")),
            Err(e) => return Err(format!("the commit did not complete: {e}")),
        }
        for (tp, next) in offsets {
            self.committed_by_me.insert(tp);
            let Some(p) = self.parts.get_mut(&tp) else {
                continue;
            };
            p.committed = p.committed.max(next);
            p.offsets.commit(next);
            // After retries, the fetch position may trail what is committed: skip ahead.
            if p.polled_next.is_some_and(|n| n < next) {
                p.polled_next = Some(next);
                if let Err(e) =
                    self.consumer
                        .seek(&p.topic, p.partition, Offset::Offset(next), Duration::ZERO)
                {
                    tracing::debug!("cannot seek {}/{} to {next}: {e}", p.topic, p.partition);
                }
            }
        }
        Ok(())
    }

    /// At least once: commits every partition's done prefix.
    async fn commit_done(&mut self) {
        let offsets: Vec<(u32, i64)> = self
            .parts
            .iter()
            .filter_map(|(tp, p)| p.offsets.next_commit_offset().map(|n| (*tp, n)))
            .collect();
        if let Err(e) = self.commit(offsets).await {
            self.warn_limited("commit", || format!("{e}; retrying at the next commit"));
        }
    }

    /// At most once and no guarantee: commits the consumer's position in every partition.
    async fn commit_positions(&mut self) -> Result<(), String> {
        let offsets: Vec<(u32, i64)> = self
            .parts
            .iter()
            .filter_map(|(tp, p)| p.polled_next.filter(|n| *n > p.committed).map(|n| (*tp, n)))
            .collect();
        self.commit(offsets).await
    }

    /// What this task reports for the lag table.
    fn lag(&self) -> Vec<PartitionLag> {
        self.parts
            .values()
            .map(|p| {
                let known = p.polled_next.unwrap_or(-1).max(p.committed);
                let log_end = cached_high_watermark(&self.consumer, &p.topic, p.partition)
                    .map_or(known, |h| h.max(known));
                PartitionLag {
                    topic: p.topic.to_string(),
                    partition: p.partition,
                    committed: p.committed,
                    log_end,
                }
            })
            .collect()
    }
}

/// The high watermark librdkafka last saw in a fetch response for the partition (no broker
/// request; `None` until the partition was fetched).
fn cached_high_watermark(consumer: &Kafka, topic: &str, partition: i32) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid while `consumer` is borrowed; the call only reads
    // librdkafka's cached partition state under its own locks and writes the two out-params,
    // which live on this stack frame; `topic` is a valid NUL-terminated string.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}

/// Every partition of every topic `topics` matches (internal `__` topics excluded for
/// patterns), from one metadata request. Blocking.
fn list_partitions(consumer: &Kafka, topics: &Topics) -> Result<Vec<Tp>, KafkaError> {
    let md = consumer.fetch_metadata(None, BROKER_TIMEOUT)?;
    let mut out = Vec::new();
    for t in md.topics() {
        if t.error().is_some() || !topics.matches(t.name()) {
            continue;
        }
        if matches!(topics, Topics::Pattern(_)) && t.name().starts_with("__") {
            continue;
        }
        out.extend(
            t.partitions()
                .iter()
                .map(|p| (t.name().to_string(), p.id())),
        );
    }
    Ok(out)
}

/// Lists the task's partitions every `period` (and when asked), for the spout to pick up.
async fn refresh_loop(
    consumer: Arc<Kafka>,
    topics: Topics,
    index: u32,
    count: u32,
    period: Duration,
    tx: watch::Sender<Option<Vec<Tp>>>,
    now: Arc<Notify>,
) {
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = now.notified() => {}
        }
        let (c, t) = (consumer.clone(), topics.clone());
        match tokio::task::spawn_blocking(move || list_partitions(&c, &t)).await {
            Ok(Ok(all)) => {
                if failing {
                    tracing::info!(
                        "listing the partitions of {} works again",
                        topics.describe()
                    );
                    failing = false;
                }
                let mine = partitions_for_task(&topics, &all, index, count);
                tx.send_if_modified(|cur| {
                    let changed = cur.as_ref() != Some(&mine);
                    *cur = Some(mine);
                    changed
                });
            }
            Ok(Err(e)) => {
                if !failing {
                    tracing::warn!(
                        "cannot list the partitions of {}: {e}; retrying every {period:?}",
                        topics.describe()
                    );
                    failing = true;
                }
            }
            Err(_) => return,
        }
        if tx.is_closed() {
            return;
        }
    }
}

/// The consumer's properties: the spout's own, then the user's.
fn consumer_config(config: &KafkaSpoutConfig, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers)
        .set("group.id", &config.group_id)
        .set("client.id", client_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("allow.auto.create.topics", "false")
        // Bounds librdkafka's prefetch queue (its default is 64 MB).
        .set("queued.max.messages.kbytes", "16384");
    // Storm: at least once reads a partition whose committed offset is out of range from its
    // beginning.
    if config.guarantee == ProcessingGuarantee::AtLeastOnce {
        c.set("auto.offset.reset", "earliest");
    }
    for (k, v) in &config.consumer_properties {
        c.set(k, v);
    }
    if config.guarantee == ProcessingGuarantee::AtLeastOnce {
        if let Some(reset) = config.consumer_properties.get("auto.offset.reset") {
            if !matches!(
                reset.as_str(),
                "earliest" | "smallest" | "beginning" | "none" | "error"
            ) {
                tracing::warn!(
                    "auto.offset.reset={reset} with at-least-once processing: records may be skipped when a committed offset is out of range"
                );
            }
        }
    }
    c
}

impl KafkaSpout {
    /// Starts reading `new` (the task's partitions), after committing what is done.
    async fn apply_assignment(&mut self, new: Vec<Tp>) -> ComponentResult {
        let Some(run) = self.run.as_deref_mut() else {
            return Ok(());
        };
        let new_ids: Vec<(u32, Tp)> = new
            .iter()
            .map(|(t, p)| (run.tp_id(t, *p), (t.clone(), *p)))
            .collect();
        let current: BTreeSet<u32> = run.parts.keys().copied().collect();
        let wanted: BTreeSet<u32> = new_ids.iter().map(|(id, _)| *id).collect();
        if current == wanted {
            return Ok(());
        }
        // Storm commits before any reassignment.
        match self.config.guarantee {
            ProcessingGuarantee::AtLeastOnce => run.commit_done().await,
            ProcessingGuarantee::NoGuarantee => {
                if let Err(e) = run.commit_positions().await {
                    run.warn_limited("commit", || e);
                }
            }
            _ => {}
        }
        let added: Vec<(u32, Tp)> = new_ids
            .iter()
            .filter(|(id, _)| !current.contains(id))
            .cloned()
            .collect();
        // Where the added partitions start: the group's committed offsets and who made them.
        let mut query = TopicPartitionList::new();
        for (_, (t, p)) in &added {
            query.add_partition(t, *p);
        }
        let consumer = run.consumer.clone();
        let committed = tokio::task::spawn_blocking(move || {
            if query.count() == 0 {
                return Ok(TopicPartitionList::new());
            }
            consumer.committed_offsets(query, BROKER_TIMEOUT)
        })
        .await
        .map_err(|e| format!("reading committed offsets did not complete: {e}"))?
        .map_err(|e| {
            format!(
                "cannot read the committed offsets of group {:?}: {e}",
                self.config.group_id
            )
        })?;

        // Drop what belongs to revoked partitions.
        for tp in current.difference(&wanted) {
            if let Some(p) = run.parts.remove(tp) {
                tracing::info!(
                    task = run.task_id,
                    "no longer reading {}/{}",
                    p.topic,
                    p.partition
                );
            }
        }
        run.buffer.retain(|(tp, _)| wanted.contains(tp));
        run.ids.retain(|_, m| wanted.contains(&m.tp));

        for (id, (topic, partition)) in added {
            let elem = committed.find_partition(&topic, partition);
            let (offset, metadata) = elem
                .map(|e| (e.offset(), e.metadata().to_string()))
                .unwrap_or((Offset::Invalid, String::new()));
            let committed_offset = match offset {
                Offset::Offset(n) if n >= 0 => Some(n),
                _ => None,
            };
            let ours = run.committed_by_me.contains(&id)
                || serde_json::from_str::<serde_json::Value>(&metadata)
                    .ok()
                    .is_some_and(|m| m["topology"].as_str() == Some(run.topology.as_str()));
            let start = first_offset(self.config.first_poll, committed_offset, ours);
            tracing::info!(
                task = run.task_id,
                "reading {topic}/{partition} from {start:?} (committed: {committed_offset:?}, by this topology: {ours})"
            );
            let known = match start {
                Offset::Offset(n) => Some(n),
                _ => None,
            };
            run.parts.insert(
                id,
                Partition {
                    topic: topic.as_str().into(),
                    partition,
                    offsets: OffsetManager::new(known),
                    committed: committed_offset.unwrap_or(-1),
                    start,
                    polled_next: known,
                    emitted_next: known,
                    paused: false,
                    retry_seek: None,
                },
            );
        }
        assign_all(run)
    }
}

/// Assigns every partition of `run` to the consumer, each from where it stands (the last
/// polled offset, else its start). Replaces the consumer's assignment and unpauses all.
fn assign_all(run: &mut Running) -> ComponentResult {
    let mut tpl = TopicPartitionList::with_capacity(run.parts.len());
    for p in run.parts.values_mut() {
        let at = p.polled_next.map_or(p.start, Offset::Offset);
        tpl.add_partition_offset(&p.topic, p.partition, at)
            .map_err(|e| format!("cannot assign {}/{}: {e}", p.topic, p.partition))?;
        p.paused = false;
        p.retry_seek = None;
    }
    run.consumer
        .assign(&tpl)
        .map_err(|e| format!("cannot assign partitions to the consumer: {e}"))?;
    Ok(())
}

/// Where a newly assigned partition starts (Storm's `doSeek`).
fn first_offset(strategy: FirstPollOffsetStrategy, committed: Option<i64>, ours: bool) -> Offset {
    use FirstPollOffsetStrategy::*;
    match (committed, strategy) {
        (Some(c), _) if ours => Offset::Offset(c),
        (Some(_), Earliest) => Offset::Beginning,
        (Some(_), Latest) => Offset::End,
        (Some(c), UncommittedEarliest | UncommittedLatest) => Offset::Offset(c),
        (None, Earliest | UncommittedEarliest) => Offset::Beginning,
        (None, Latest | UncommittedLatest) => Offset::End,
    }
}

/// Parses a position ([`Spout::position`]): `{"topic": {"partition": next_offset}}`.
fn parse_position(position: &serde_json::Value) -> Result<BTreeMap<Tp, i64>, String> {
    let bad = |what: String| {
        Err(format!(
            "position {position} is not a Kafka spout position ({{\"topic\": {{\"partition\": offset}}}}): {what}"
        ))
    };
    let Some(topics) = position.as_object() else {
        return bad("not an object".into());
    };
    let mut out = BTreeMap::new();
    for (topic, parts) in topics {
        let Some(parts) = parts.as_object() else {
            return bad(format!("topic {topic:?} does not map to an object"));
        };
        for (partition, offset) in parts {
            let Ok(p) = partition.parse::<i32>() else {
                return bad(format!(
                    "partition {partition:?} of {topic:?} is not a number"
                ));
            };
            let Some(o) = offset.as_i64().filter(|o| *o >= 0) else {
                return bad(format!("offset {offset} of {topic}/{p} is not an offset"));
            };
            out.insert((topic.clone(), p), o);
        }
    }
    Ok(out)
}

impl KafkaSpout {
    /// Takes one message from the consumer into the buffer.
    fn take(run: &mut Running, m: &BorrowedMessage<'_>) {
        let Some(tp) = run.lookup(m.topic(), m.partition()) else {
            return;
        };
        let Some(p) = run.parts.get_mut(&tp) else {
            return;
        };
        let offset = m.offset();
        p.polled_next = Some(offset + 1);
        if let Some(seek) = p.retry_seek.take() {
            if offset > seek {
                p.offsets.ack_retriable_below(seek, offset);
            }
        }
        let record = ConsumerRecord {
            topic: p.topic.clone(),
            partition: p.partition,
            offset,
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            timestamp_ms: m.timestamp().to_millis(),
        };
        run.buffer.push_back((tp, record));
    }

    /// Pauses partitions at their uncommitted limit, seeks back to due retries, and takes up
    /// to `max_poll_records` records, waiting at most `poll_timeout` for the first.
    async fn poll(&mut self) {
        let config = &self.config;
        let Some(run) = self.run.as_deref_mut() else {
            return;
        };
        if config.guarantee == ProcessingGuarantee::AtLeastOnce {
            let now = Instant::now();
            let (mut pause, mut resume) = (TopicPartitionList::new(), TopicPartitionList::new());
            for p in run.parts.values_mut() {
                let pollable = p.offsets.pollable(config.max_uncommitted_offsets, now);
                if pollable == p.paused {
                    p.paused = !pollable;
                    let list = if pollable { &mut resume } else { &mut pause };
                    list.add_partition(&p.topic, p.partition);
                }
                if !pollable {
                    continue;
                }
                if let Some(retry) = p.offsets.earliest_retriable(now) {
                    match run.consumer.seek(
                        &p.topic,
                        p.partition,
                        Offset::Offset(retry),
                        Duration::ZERO,
                    ) {
                        Ok(()) => {
                            p.polled_next = Some(retry);
                            p.retry_seek = Some(retry);
                        }
                        Err(e) => tracing::debug!(
                            "cannot seek {}/{} to {retry} for a retry: {e}",
                            p.topic,
                            p.partition
                        ),
                    }
                }
            }
            for (list, what) in [(pause, "pause"), (resume, "resume")] {
                if list.count() == 0 {
                    continue;
                }
                let r = if what == "pause" {
                    run.consumer.pause(&list)
                } else {
                    run.consumer.resume(&list)
                };
                if let Err(e) = r {
                    run.warn_limited("pause", || format!("cannot {what} partitions: {e}"));
                }
            }
        }
        let consumer = run.consumer.clone();
        let error = {
            match tokio::time::timeout(config.poll_timeout, consumer.recv()).await {
                Err(_) => return,
                Ok(Err(e)) => Some(e),
                Ok(Ok(m)) => {
                    Self::take(run, &m);
                    let mut error = None;
                    while run.buffer.len() < config.max_poll_records {
                        match consumer.recv().now_or_never() {
                            None => break,
                            Some(Ok(m)) => Self::take(run, &m),
                            Some(Err(e)) => {
                                error = Some(e);
                                break;
                            }
                        }
                    }
                    error
                }
            }
        };
        if let Some(e) = error {
            run.warn_limited("poll", || format!("reading from Kafka: {e}"));
        }
        if config.guarantee == ProcessingGuarantee::AtMostOnce && !run.buffer.is_empty() {
            run.poll_uncommitted = true;
        }
    }

    /// The record at `offset` of `tp` failed (or could not be emitted): schedule its retry, or
    /// give up on it.
    fn failed(&mut self, tp: u32, offset: i64, dead: bool) {
        let config = &self.config;
        let Some(run) = self.run.as_deref_mut() else {
            return;
        };
        let Some(p) = run.parts.get_mut(&tp) else {
            return;
        };
        let now = Instant::now();
        if dead {
            // A dead-letter tuple failed: emit it again later.
            p.offsets.fail(offset, now + config.retry.max_delay, true);
            return;
        }
        let Some(before) = p.offsets.fails(offset) else {
            return;
        };
        let fails = before + 1;
        match config.retry.delay(fails) {
            Some(delay) => {
                p.offsets.fail(offset, now + delay, false);
            }
            None => {
                let (topic, partition) = (p.topic.clone(), p.partition);
                match &config.dead_letter_stream {
                    Some(_) => {
                        p.offsets.fail(offset, now, true);
                    }
                    None => {
                        p.offsets.ack(offset);
                    }
                }
                run.exhausted += 1;
                let total = run.exhausted;
                let to = config
                    .dead_letter_stream
                    .as_ref()
                    .map_or("dropping it".to_string(), |s| {
                        format!("sending it to stream {s:?}")
                    });
                run.warn_limited("exhausted", || {
                    format!(
                        "record {topic}/{partition}@{offset} failed {fails} times, its retries are exhausted: {to} ({total} records so far)"
                    )
                });
            }
        }
    }

    /// Emits the next record of the buffer that is due, if any (one per call, like Storm).
    fn emit_one(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        let config = &self.config;
        let Some(run) = self.run.as_deref_mut() else {
            return Ok(());
        };
        let now = Instant::now();
        while let Some((tp, record)) = run.buffer.pop_front() {
            let Some(p) = run.parts.get_mut(&tp) else {
                continue;
            };
            let offset = record.offset;
            if config.guarantee != ProcessingGuarantee::AtLeastOnce {
                p.emitted_next = Some(offset + 1);
                if let Some((stream, values)) = config.translator.translate(&record) {
                    c.emit_to(stream, values, None).map_err(|e| {
                        format!(
                            "cannot emit record {}/{}@{offset} on stream {stream:?}: {e}",
                            record.topic, record.partition
                        )
                    })?;
                    return Ok(());
                }
                continue;
            }
            if p.offsets.is_committed(offset) {
                continue;
            }
            let dead = match p.offsets.status(offset) {
                Some(Status::InFlight { .. } | Status::Acked) => continue,
                Some(Status::Failed { dead, .. }) => {
                    if !p.offsets.retry_ready(offset, now) {
                        continue;
                    }
                    dead
                }
                None => false,
            };
            p.emitted_next = Some(p.emitted_next.map_or(offset + 1, |n| n.max(offset + 1)));
            let (stream, values) = match (dead, &config.dead_letter_stream) {
                (true, Some(dlq)) => (dlq.as_str(), DefaultTranslator::values(&record)),
                _ => match config.translator.translate(&record) {
                    Some(t) => t,
                    None => {
                        p.offsets.skip(offset);
                        continue;
                    }
                },
            };
            let id = run.next_id;
            run.next_id += 1;
            p.offsets.emit(offset);
            match c.emit_to(stream, values, Some(id)) {
                Ok(()) => {
                    run.ids.insert(id, MsgRef { tp, offset, dead });
                    return Ok(());
                }
                Err(e) => {
                    let msg = format!(
                        "cannot emit record {}/{}@{offset} on stream {stream:?}: {e}",
                        record.topic, record.partition
                    );
                    self.failed(tp, offset, dead);
                    return Err(msg.into());
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Spout for KafkaSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        for (stream, fields) in self.config.streams() {
            d.declare_stream(&stream, fields);
        }
    }

    async fn open(&mut self, ctx: &TopologyContext) -> ComponentResult {
        let client_id = format!(
            "tempest-{}-{}-{}",
            ctx.topology_name(),
            ctx.component_id(),
            ctx.task_id()
        );
        self.config.bootstrap_servers = crate::config::resolve_bootstrap(
            &self.config.bootstrap_servers,
            self.config.bootstrap_key.as_deref(),
            ctx.config(),
        )?;
        let consumer: Kafka = consumer_config(&self.config, &client_id)
            .create()
            .map_err(|e| {
                format!(
                    "cannot create the Kafka consumer for {} (group {:?}): {e}",
                    self.config.bootstrap_servers, self.config.group_id
                )
            })?;
        let consumer = Arc::new(consumer);
        let tasks = ctx.component_tasks();
        let count = tasks.end - tasks.start;
        let index = ctx.task_index();
        // The first listing here, so the first next_tuple has partitions to read.
        let (c, t) = (consumer.clone(), self.config.topics.clone());
        let first = tokio::task::spawn_blocking(move || list_partitions(&c, &t))
            .await
            .map_err(|e| format!("listing partitions did not complete: {e}"))?;
        let initial = match first {
            Ok(all) => Some(partitions_for_task(&self.config.topics, &all, index, count)),
            Err(e) => {
                tracing::warn!(
                    "cannot list the partitions of {} at {}: {e}; retrying every {:?}",
                    self.config.topics.describe(),
                    self.config.bootstrap_servers,
                    self.config.partition_refresh_period
                );
                None
            }
        };
        let (tx, rx) = watch::channel(None);
        let refresh_now = Arc::new(Notify::new());
        let refresher = tokio::spawn(refresh_loop(
            consumer.clone(),
            self.config.topics.clone(),
            index,
            count,
            self.config.partition_refresh_period,
            tx,
            refresh_now.clone(),
        ));
        let now = Instant::now();
        self.run = Some(Box::new(Running {
            consumer,
            topology: ctx.topology_name().to_string(),
            component: ctx.component_id().to_string(),
            task_id: ctx.task_id(),
            tp_ids: HashMap::new(),
            next_tp: 0,
            parts: BTreeMap::new(),
            committed_by_me: BTreeSet::new(),
            ids: FxHashMap::default(),
            next_id: 0,
            buffer: VecDeque::new(),
            poll_uncommitted: false,
            next_commit: now + self.config.offset_commit_period,
            next_lag: now,
            assignment: rx,
            refresh_now,
            refresher,
            exhausted: 0,
            last_logged: HashMap::new(),
        }));
        tracing::info!(
            task = ctx.task_id(),
            "Kafka spout {} of {count} reading {} from {} in group {:?} ({:?})",
            index,
            self.config.topics.describe(),
            self.config.bootstrap_servers,
            self.config.group_id,
            self.config.guarantee
        );
        if let Some(initial) = initial {
            self.apply_assignment(initial).await?;
        }
        Ok(())
    }

    async fn next_tuple(&mut self, c: &mut SpoutOutputCollector) -> ComponentResult {
        let Some(run) = self.run.as_deref_mut() else {
            return Err("next_tuple before open".into());
        };
        if run.assignment.has_changed().unwrap_or(false) {
            let new = run.assignment.borrow_and_update().clone();
            if let Some(new) = new {
                if let Err(e) = self.apply_assignment(new).await {
                    // Retried at the next refresh.
                    if let Some(run) = self.run.as_deref_mut() {
                        run.assignment.mark_changed();
                        run.warn_limited("assign", || e.to_string());
                    }
                }
            }
        }
        let config = &self.config;
        let Some(run) = self.run.as_deref_mut() else {
            return Ok(());
        };
        let now = Instant::now();
        if now >= run.next_commit {
            run.next_commit = now + config.offset_commit_period;
            match config.guarantee {
                ProcessingGuarantee::AtLeastOnce => run.commit_done().await,
                ProcessingGuarantee::NoGuarantee => {
                    if let Err(e) = run.commit_positions().await {
                        run.warn_limited("commit", || e);
                    }
                }
                _ => {}
            }
        }
        if now >= run.next_lag {
            run.next_lag = now + config.lag_report_period;
            c.report_lag(run.lag());
        }
        if run.buffer.is_empty() {
            self.poll().await;
        }
        let Some(run) = self.run.as_deref_mut() else {
            return Ok(());
        };
        if run.poll_uncommitted {
            // At most once: the poll's offsets are committed before any of its records is
            // emitted; until that works, nothing is.
            run.commit_positions().await.map_err(|e| {
                format!("at-most-once: not emitting until the poll's offsets are committed: {e}")
            })?;
            run.poll_uncommitted = false;
        }
        self.emit_one(c)
    }

    async fn ack(&mut self, msg_id: u64) {
        let Some(run) = self.run.as_deref_mut() else {
            return;
        };
        let Some(m) = run.ids.remove(&msg_id) else {
            return;
        };
        if let Some(p) = run.parts.get_mut(&m.tp) {
            p.offsets.ack(m.offset);
        }
    }

    async fn fail(&mut self, msg_id: u64) {
        let Some(m) = self.run.as_deref_mut().and_then(|r| r.ids.remove(&msg_id)) else {
            return;
        };
        self.failed(m.tp, m.offset, m.dead);
    }

    async fn activate(&mut self) {
        if let Some(run) = self.run.as_deref() {
            run.refresh_now.notify_one();
        }
    }

    async fn deactivate(&mut self) {
        let guarantee = self.config.guarantee;
        let Some(run) = self.run.as_deref_mut() else {
            return;
        };
        match guarantee {
            ProcessingGuarantee::AtLeastOnce => run.commit_done().await,
            ProcessingGuarantee::NoGuarantee => {
                if let Err(e) = run.commit_positions().await {
                    run.warn_limited("commit", || e);
                }
            }
            _ => {}
        }
    }

    async fn close(&mut self) {
        self.deactivate().await;
        if let Some(run) = self.run.take() {
            // Closing a consumer waits for librdkafka's threads: not on the executor.
            let _ = tokio::task::spawn_blocking(move || drop(run)).await;
        }
    }

    fn position(&self) -> Option<serde_json::Value> {
        let run = self.run.as_deref()?;
        let mut out = serde_json::Map::new();
        for p in run.parts.values() {
            let Some(next) = p.emitted_next else {
                continue;
            };
            out.entry(p.topic.to_string())
                .or_insert_with(|| serde_json::Value::Object(Default::default()))
                .as_object_mut()
                .map(|m| m.insert(p.partition.to_string(), next.into()));
        }
        Some(serde_json::Value::Object(out))
    }

    async fn rewind(&mut self, position: serde_json::Value) -> ComponentResult {
        let offsets = parse_position(&position)?;
        let Some(run) = self.run.as_deref_mut() else {
            return Err("rewind before open".into());
        };
        run.buffer.clear();
        run.ids.clear();
        run.poll_uncommitted = false;
        for p in run.parts.values_mut() {
            let at = offsets.get(&(p.topic.to_string(), p.partition)).copied();
            // A partition the position does not name had emitted nothing: back to its start.
            let known = at.or(match p.start {
                Offset::Offset(n) => Some(n),
                _ => None,
            });
            p.offsets = OffsetManager::new(known);
            p.polled_next = known;
            p.emitted_next = known;
        }
        tracing::info!(task = run.task_id, "rewound to {position}");
        assign_all(run)
    }

    async fn checkpoint_complete(&mut self, id: u64, position: serde_json::Value) {
        let offsets = match parse_position(&position) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!("checkpoint {id}: {e}");
                return;
            }
        };
        let Some(run) = self.run.as_deref_mut() else {
            return;
        };
        let mine: Vec<(u32, i64)> = offsets
            .into_iter()
            .filter_map(|((t, p), o)| {
                let tp = run.lookup(&t, p)?;
                run.parts.contains_key(&tp).then_some((tp, o))
            })
            .collect();
        if let Err(e) = run.commit(mine).await {
            run.warn_limited("commit", || {
                format!("checkpoint {id}: {e}; the next checkpoint commits again")
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FirstPollOffsetStrategy::*;

    #[test]
    fn first_poll_strategies_follow_storm() {
        let o = Offset::Offset(7);
        // Committed by this topology: always resume there.
        for s in [Earliest, Latest, UncommittedEarliest, UncommittedLatest] {
            assert_eq!(first_offset(s, Some(7), true), o, "{s:?}");
        }
        // Committed by someone else.
        assert_eq!(first_offset(Earliest, Some(7), false), Offset::Beginning);
        assert_eq!(first_offset(Latest, Some(7), false), Offset::End);
        assert_eq!(first_offset(UncommittedEarliest, Some(7), false), o);
        assert_eq!(first_offset(UncommittedLatest, Some(7), false), o);
        // Nothing committed.
        assert_eq!(first_offset(Earliest, None, false), Offset::Beginning);
        assert_eq!(
            first_offset(UncommittedEarliest, None, false),
            Offset::Beginning
        );
        assert_eq!(first_offset(Latest, None, false), Offset::End);
        assert_eq!(first_offset(UncommittedLatest, None, false), Offset::End);
    }

    #[test]
    fn positions_parse_or_say_what_is_wrong() {
        let p = parse_position(&serde_json::json!({"in": {"0": 5, "3": 0}})).expect("valid");
        assert_eq!(p.get(&("in".to_string(), 0)), Some(&5));
        assert_eq!(p.get(&("in".to_string(), 3)), Some(&0));
        for (bad, says) in [
            (serde_json::json!([1]), "not an object"),
            (serde_json::json!({"in": 5}), "topic \"in\""),
            (serde_json::json!({"in": {"x": 5}}), "partition \"x\""),
            (serde_json::json!({"in": {"1": -2}}), "offset -2 of in/1"),
        ] {
            let e = parse_position(&bad).expect_err("invalid");
            assert!(e.contains(says), "{e}");
        }
    }
}
