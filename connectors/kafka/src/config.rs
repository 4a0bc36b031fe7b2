//! The spout's configuration: [`KafkaSpoutConfig`] and its builder.

use crate::retry::RetryPolicy;
use crate::translator::{check_streams, DefaultTranslator, RecordTranslator, DEFAULT_FIELDS};
use crate::KafkaConfigError;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// When offsets are committed, and whether tuples are tracked (Storm's `ProcessingGuarantee`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessingGuarantee {
    /// Every record is processed at least once: tuples carry a message id (the record's
    /// topic, partition and offset), failed ones are retried, and an offset is committed only
    /// when it and every offset before it in its partition are done. The default.
    #[default]
    AtLeastOnce,
    /// Every record is processed at most once: the offsets of each poll are committed before
    /// any of its records is emitted; tuples are untracked and never retried.
    AtMostOnce,
    /// No guarantee: the consumer's position is committed every commit period, whatever
    /// happened to the tuples; tuples are untracked and never retried.
    NoGuarantee,
    /// Exactly-once mode, driven by the topology's checkpoints: tuples are untracked (the
    /// runtime replays by rolling back, not by message id); the spout's position is the next
    /// offset of every partition, a rollback rewinds to it, and offsets are committed when a
    /// checkpoint completes ([`topology_api::Spout::checkpoint_complete`]).
    ExactlyOnce,
}

/// Where a partition newly assigned to a task starts (Storm's `FirstPollOffsetStrategy`).
///
/// "Committed by this topology" means the commit's metadata names this topology (a task that
/// restarts resumes where it committed, whatever the strategy), or this task committed it
/// itself earlier in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FirstPollOffsetStrategy {
    /// From the beginning of the partition, unless this topology committed an offset.
    Earliest,
    /// From the end of the partition (only new records), unless this topology committed an
    /// offset.
    Latest,
    /// From the group's committed offset if there is one (whoever committed it), else the
    /// beginning. The default.
    #[default]
    UncommittedEarliest,
    /// From the group's committed offset if there is one, else the end.
    UncommittedLatest,
}

/// Which topics the spout reads.
#[derive(Debug, Clone)]
pub enum Topics {
    /// These topics (a missing one is skipped with a warning until it exists).
    Names(Vec<String>),
    /// Every topic whose whole name matches this regular expression.
    Pattern(regex::Regex),
}

impl Topics {
    /// These topics.
    pub fn names<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Topics::Names(names.into_iter().map(Into::into).collect())
    }

    /// Every topic whose whole name matches `pattern`; a bad pattern is an error naming it.
    pub fn pattern(pattern: &str) -> Result<Self, KafkaConfigError> {
        regex::Regex::new(&format!("^(?:{pattern})$"))
            .map(Topics::Pattern)
            .map_err(|e| {
                KafkaConfigError::Invalid(format!("topic pattern {pattern:?} is not a regex: {e}"))
            })
    }

    /// Whether the spout reads `topic`.
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Topics::Names(names) => names.iter().any(|n| n == topic),
            Topics::Pattern(re) => re.is_match(topic),
        }
    }

    /// How it is shown in logs and the lag table.
    pub fn describe(&self) -> String {
        match self {
            Topics::Names(names) => names.join(","),
            Topics::Pattern(re) => re.as_str().to_string(),
        }
    }
}

/// Everything a [`KafkaSpout`](crate::KafkaSpout) needs; cheap to clone (one per task).
#[derive(Clone)]
pub struct KafkaSpoutConfig {
    pub(crate) bootstrap_servers: String,
    pub(crate) bootstrap_key: Option<String>,
    pub(crate) topics: Topics,
    pub(crate) group_id: String,
    pub(crate) guarantee: ProcessingGuarantee,
    pub(crate) first_poll: FirstPollOffsetStrategy,
    pub(crate) translator: Arc<dyn RecordTranslator>,
    pub(crate) max_uncommitted_offsets: usize,
    pub(crate) offset_commit_period: Duration,
    pub(crate) poll_timeout: Duration,
    pub(crate) max_poll_records: usize,
    pub(crate) partition_refresh_period: Duration,
    pub(crate) lag_report_period: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) dead_letter_stream: Option<String>,
    pub(crate) consumer_properties: BTreeMap<String, String>,
}

impl std::fmt::Debug for KafkaSpoutConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSpoutConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("topics", &self.topics)
            .field("group_id", &self.group_id)
            .field("guarantee", &self.guarantee)
            .field("first_poll", &self.first_poll)
            .field("max_uncommitted_offsets", &self.max_uncommitted_offsets)
            .field("offset_commit_period", &self.offset_commit_period)
            .field("poll_timeout", &self.poll_timeout)
            .field("retry", &self.retry)
            .field("dead_letter_stream", &self.dead_letter_stream)
            .field("consumer_properties", &self.consumer_properties)
            .finish_non_exhaustive()
    }
}

/// The bootstrap servers: from the topology config key if one is set and present there, else
/// `fallback`; an error naming the key when both are missing.
pub(crate) fn resolve_bootstrap(
    fallback: &str,
    key: Option<&str>,
    topology: &topology_api::Config,
) -> Result<String, String> {
    let from_key = key
        .and_then(|k| topology.str(k))
        .filter(|s| !s.trim().is_empty());
    match (from_key, key) {
        (Some(s), _) => Ok(s.to_string()),
        (None, _) if !fallback.trim().is_empty() => Ok(fallback.to_string()),
        (None, Some(k)) => Err(format!(
            "no Kafka bootstrap servers: topology config key {k:?} is not set (set it with -c {k}=host:port)"
        )),
        (None, None) => Err("no Kafka bootstrap servers".into()),
    }
}

impl KafkaSpoutConfig {
    /// A builder for a spout reading `topics` from the brokers `bootstrap_servers`
    /// (`host:port,host:port`).
    pub fn builder(bootstrap_servers: &str, topics: Topics) -> KafkaSpoutConfigBuilder {
        KafkaSpoutConfigBuilder {
            config: KafkaSpoutConfig {
                bootstrap_servers: bootstrap_servers.to_string(),
                bootstrap_key: None,
                topics,
                group_id: String::new(),
                guarantee: ProcessingGuarantee::default(),
                first_poll: FirstPollOffsetStrategy::default(),
                translator: Arc::new(DefaultTranslator),
                max_uncommitted_offsets: 10_000_000,
                offset_commit_period: Duration::from_secs(30),
                poll_timeout: Duration::from_millis(50),
                max_poll_records: 500,
                partition_refresh_period: Duration::from_secs(2),
                lag_report_period: Duration::from_secs(2),
                retry: RetryPolicy::default(),
                dead_letter_stream: None,
                consumer_properties: BTreeMap::new(),
            },
        }
    }

    /// The streams the spout declares, with their fields (the translator's, and the
    /// dead-letter stream's).
    pub fn streams(&self) -> Vec<(String, Vec<String>)> {
        let mut s = self.translator.streams();
        if let Some(dlq) = &self.dead_letter_stream {
            s.push((
                dlq.clone(),
                DEFAULT_FIELDS.iter().map(|f| f.to_string()).collect(),
            ));
        }
        s
    }

    /// The processing guarantee.
    pub fn guarantee(&self) -> ProcessingGuarantee {
        self.guarantee
    }

    /// The consumer group (offsets are committed under it).
    pub fn group_id(&self) -> &str {
        &self.group_id
    }
}

/// Builds a [`KafkaSpoutConfig`]; `build` checks it.
#[derive(Debug)]
pub struct KafkaSpoutConfigBuilder {
    config: KafkaSpoutConfig,
}

impl KafkaSpoutConfigBuilder {
    /// Read the bootstrap servers from this topology config key when the task opens (set it
    /// at launch with `-c KEY=host:port`), instead of the ones given to the builder, which are
    /// the fallback (and may then be empty). Components are built again in every worker
    /// process, so this is how one binary reads brokers chosen at submit time.
    pub fn bootstrap_servers_config_key(mut self, key: &str) -> Self {
        self.config.bootstrap_key = Some(key.to_string());
        self
    }

    /// The consumer group whose committed offsets the spout resumes from and commits to
    /// (required).
    pub fn group_id(mut self, group: &str) -> Self {
        self.config.group_id = group.to_string();
        self
    }

    /// The processing guarantee (default [`ProcessingGuarantee::AtLeastOnce`]).
    pub fn processing_guarantee(mut self, g: ProcessingGuarantee) -> Self {
        self.config.guarantee = g;
        self
    }

    /// Where newly assigned partitions start (default
    /// [`FirstPollOffsetStrategy::UncommittedEarliest`]).
    pub fn first_poll_offset_strategy(mut self, s: FirstPollOffsetStrategy) -> Self {
        self.config.first_poll = s;
        self
    }

    /// How records become tuples (default [`DefaultTranslator`]).
    pub fn record_translator(mut self, t: impl RecordTranslator) -> Self {
        self.config.translator = Arc::new(t);
        self
    }

    /// At least once: the most emitted but uncommitted offsets per partition before the spout
    /// stops reading that partition (retries of offsets inside the limit still proceed), so a
    /// stuck record cannot make memory grow (default 10,000,000, Storm's). A poll can exceed
    /// it by up to `max_poll_records - 1`.
    pub fn max_uncommitted_offsets(mut self, n: usize) -> Self {
        self.config.max_uncommitted_offsets = n;
        self
    }

    /// How often done offsets are committed (at least once), or the position is committed (no
    /// guarantee); default 30 s, Storm's. Offsets are also committed on deactivate and close.
    pub fn offset_commit_period(mut self, d: Duration) -> Self {
        self.config.offset_commit_period = d;
        self
    }

    /// The longest `next_tuple` waits for records when it has none (default 50 ms; Storm's is
    /// 200 ms, but here the spout's executor handles acks between `next_tuple` calls, so a long
    /// wait on an idle topic delays acks and commits).
    pub fn poll_timeout(mut self, d: Duration) -> Self {
        self.config.poll_timeout = d;
        self
    }

    /// The most records taken from the consumer in one poll (default 500, Kafka's
    /// `max.poll.records`).
    pub fn max_poll_records(mut self, n: usize) -> Self {
        self.config.max_poll_records = n;
        self
    }

    /// How often the topics' partitions are listed again, to pick up new partitions and
    /// topics matching a pattern (default 2 s, Storm's).
    pub fn partition_refresh_period(mut self, d: Duration) -> Self {
        self.config.partition_refresh_period = d;
        self
    }

    /// How often the spout reports its lag (committed offset and log end per partition) to the
    /// UI and `GET /api/v1/topology/<id>/lag` (default 2 s).
    pub fn lag_report_period(mut self, d: Duration) -> Self {
        self.config.lag_report_period = d;
        self
    }

    /// How failed records are retried (at least once; default [`RetryPolicy::default`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// Emit records whose retries are exhausted on `stream` (fields `topic, partition, offset,
    /// key, value`), tracked; their offset counts as done once that tuple is acked. Without
    /// it they are counted, logged and dropped.
    pub fn dead_letter_stream(mut self, stream: &str) -> Self {
        self.config.dead_letter_stream = Some(stream.to_string());
        self
    }

    /// A librdkafka consumer property (`fetch.wait.max.ms`, `security.protocol`, ...), passed
    /// as is. `enable.auto.commit` is refused: the spout commits itself.
    pub fn consumer_property(mut self, key: &str, value: &str) -> Self {
        self.config
            .consumer_properties
            .insert(key.to_string(), value.to_string());
        self
    }

    /// Checks the configuration; every problem is an error naming the setting.
    pub fn build(self) -> Result<KafkaSpoutConfig, KafkaConfigError> {
        let c = self.config;
        let bad = |m: String| Err(KafkaConfigError::Invalid(m));
        if c.bootstrap_servers.trim().is_empty() && c.bootstrap_key.is_none() {
            return bad("bootstrap servers are empty: give host:port[,host:port...]".into());
        }
        match &c.topics {
            Topics::Names(names) if names.is_empty() => {
                return bad("no topics: give at least one topic name, or a pattern".into())
            }
            Topics::Names(names) => {
                if let Some(n) = names.iter().find(|n| n.trim().is_empty()) {
                    return bad(format!("topic name {n:?} is empty"));
                }
            }
            Topics::Pattern(_) => {}
        }
        if c.group_id.trim().is_empty() {
            return bad("group id is not set: call .group_id(\"my-group\")".into());
        }
        if c.max_uncommitted_offsets == 0 {
            return bad("max uncommitted offsets is 0: the spout could never emit".into());
        }
        if c.max_poll_records == 0 {
            return bad("max poll records is 0: the spout could never read".into());
        }
        for (name, d) in [
            ("offset commit period", c.offset_commit_period),
            ("partition refresh period", c.partition_refresh_period),
            ("lag report period", c.lag_report_period),
        ] {
            if d.is_zero() {
                return bad(format!("{name} is 0"));
            }
        }
        for key in ["enable.auto.commit", "group.id", "bootstrap.servers"] {
            if c.consumer_properties.contains_key(key) {
                return bad(format!(
                    "consumer property {key:?} is set by the spout itself{}",
                    if key == "enable.auto.commit" {
                        " (it commits offsets according to its processing guarantee)"
                    } else {
                        "; use the builder"
                    }
                ));
            }
        }
        if let Some(dlq) = &c.dead_letter_stream {
            if dlq.trim().is_empty() {
                return bad("dead-letter stream name is empty".into());
            }
            if c.translator.streams().iter().any(|(s, _)| s == dlq) {
                return bad(format!(
                    "dead-letter stream {dlq:?} is also a stream of the record translator"
                ));
            }
            if c.guarantee != ProcessingGuarantee::AtLeastOnce {
                return bad(format!(
                    "a dead-letter stream needs at-least-once processing (got {:?}): only then are records retried",
                    c.guarantee
                ));
            }
        }
        check_streams(&c.streams())?;
        if c.translator.streams().is_empty() {
            return bad("the record translator declares no stream".into());
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FnTranslator;

    fn builder() -> KafkaSpoutConfigBuilder {
        KafkaSpoutConfig::builder("127.0.0.1:9092", Topics::names(["in"])).group_id("g")
    }

    #[test]
    fn defaults_are_storms() {
        let c = builder().build().expect("valid");
        assert_eq!(c.guarantee, ProcessingGuarantee::AtLeastOnce);
        assert_eq!(c.first_poll, FirstPollOffsetStrategy::UncommittedEarliest);
        assert_eq!(c.max_uncommitted_offsets, 10_000_000);
        assert_eq!(c.offset_commit_period, Duration::from_secs(30));
        assert_eq!(c.retry, RetryPolicy::default());
        assert_eq!(c.streams()[0].1.len(), 5);
    }

    #[test]
    fn bad_settings_are_errors_naming_them() {
        let err = |b: KafkaSpoutConfigBuilder| b.build().expect_err("invalid").to_string();
        assert!(
            err(KafkaSpoutConfig::builder("", Topics::names(["a"])).group_id("g"))
                .contains("bootstrap servers")
        );
        assert!(err(
            KafkaSpoutConfig::builder("h:1", Topics::names(Vec::<String>::new())).group_id("g")
        )
        .contains("no topics"));
        assert!(err(KafkaSpoutConfig::builder("h:1", Topics::names(["a"]))).contains("group id"));
        assert!(err(builder().max_uncommitted_offsets(0)).contains("max uncommitted"));
        assert!(
            err(builder().consumer_property("enable.auto.commit", "true"))
                .contains("\"enable.auto.commit\"")
        );
        assert!(err(builder().offset_commit_period(Duration::ZERO)).contains("commit period"));
        assert!(err(builder()
            .dead_letter_stream("dlq")
            .processing_guarantee(ProcessingGuarantee::AtMostOnce))
        .contains("at-least-once"));
        assert!(err(builder()
            .record_translator(FnTranslator::new(["x"], |_| None).on_stream("dlq"))
            .dead_letter_stream("dlq"))
        .contains("also a stream"));
        let pattern = Topics::pattern("(").expect_err("bad regex").to_string();
        assert!(pattern.contains("\"(\""), "{pattern}");
    }

    #[test]
    fn bootstrap_servers_come_from_the_topology_config_when_asked() {
        let mut topo = topology_api::Config::new();
        assert_eq!(resolve_bootstrap("h:1", None, &topo), Ok("h:1".into()));
        let e = resolve_bootstrap("", Some("kafka.servers"), &topo).expect_err("unset");
        assert!(e.contains("\"kafka.servers\" is not set"), "{e}");
        assert_eq!(
            resolve_bootstrap("h:1", Some("kafka.servers"), &topo),
            Ok("h:1".into()),
            "the builder's are the fallback"
        );
        topo.set("kafka.servers", "h:2");
        assert_eq!(
            resolve_bootstrap("h:1", Some("kafka.servers"), &topo),
            Ok("h:2".into())
        );
        assert!(KafkaSpoutConfig::builder("", Topics::names(["a"]))
            .group_id("g")
            .bootstrap_servers_config_key("kafka.servers")
            .build()
            .is_ok());
    }

    #[test]
    fn patterns_match_whole_names() {
        let p = Topics::pattern("sent.*").expect("valid");
        assert!(p.matches("sentences"));
        assert!(!p.matches("presentences"));
        let n = Topics::names(["a", "b"]);
        assert!(n.matches("b") && !n.matches("c"));
    }
}
