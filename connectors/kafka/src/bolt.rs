//! [`KafkaBolt`]: writes tuples to Kafka, acking each only when the broker confirmed it.

use crate::KafkaConfigError;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use topology_api::prelude::*;
use topology_api::{BoltEvent, EventSender};

/// Picks a tuple's topic, key or value.
type TupleFn<T> = Arc<dyn Fn(&Tuple) -> Result<T, ComponentError> + Send + Sync>;

/// Where a tuple goes.
#[derive(Clone)]
enum TopicSelector {
    Fixed(String),
    /// The string in this field, else the default (if any).
    Field(String, Option<String>),
    /// `None`: the tuple is acked and not written (Storm's null topic).
    Fn(TupleFn<Option<String>>),
}

/// Where a tuple's key or value comes from.
#[derive(Clone)]
enum BytesSelector {
    /// This field (a missing field is no key, for keys; an error, for values).
    Field(String),
    Fn(TupleFn<Option<Vec<u8>>>),
}

/// Everything a [`KafkaBolt`] needs; cheap to clone (one per task).
#[derive(Clone)]
pub struct KafkaBoltConfig {
    bootstrap_servers: String,
    bootstrap_key: Option<String>,
    topic: Option<TopicSelector>,
    key: BytesSelector,
    value: BytesSelector,
    producer_properties: BTreeMap<String, String>,
    queue_full_timeout: Duration,
}

impl std::fmt::Debug for KafkaBoltConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBoltConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("producer_properties", &self.producer_properties)
            .finish_non_exhaustive()
    }
}

impl KafkaBoltConfig {
    /// A bolt writing to the brokers `bootstrap_servers`; the key comes from field `key` (none
    /// if absent) and the value from field `message` (Storm's defaults). Set the topic.
    pub fn builder(bootstrap_servers: &str) -> KafkaBoltConfigBuilder {
        KafkaBoltConfigBuilder {
            config: KafkaBoltConfig {
                bootstrap_servers: bootstrap_servers.to_string(),
                bootstrap_key: None,
                topic: None,
                key: BytesSelector::Field("key".into()),
                value: BytesSelector::Field("message".into()),
                producer_properties: BTreeMap::new(),
                queue_full_timeout: Duration::from_secs(30),
            },
        }
    }
}

/// Builds a [`KafkaBoltConfig`]; `build` checks it.
#[derive(Debug)]
pub struct KafkaBoltConfigBuilder {
    config: KafkaBoltConfig,
}

impl KafkaBoltConfigBuilder {
    /// Read the bootstrap servers from this topology config key when the task starts (set it
    /// at launch with `-c KEY=host:port`); the builder's are the fallback (and may be empty).
    pub fn bootstrap_servers_config_key(mut self, key: &str) -> Self {
        self.config.bootstrap_key = Some(key.to_string());
        self
    }

    /// Every tuple goes to `topic`.
    pub fn topic(mut self, topic: &str) -> Self {
        self.config.topic = Some(TopicSelector::Fixed(topic.to_string()));
        self
    }

    /// The topic is the string in `field`; tuples without it go to `default` (or fail, if
    /// there is none).
    pub fn topic_field(mut self, field: &str, default: Option<&str>) -> Self {
        self.config.topic = Some(TopicSelector::Field(
            field.to_string(),
            default.map(str::to_string),
        ));
        self
    }

    /// The topic is `f(tuple)`; `Ok(None)` acks the tuple without writing it, `Err` fails it.
    pub fn topic_fn<F>(mut self, f: F) -> Self
    where
        F: Fn(&Tuple) -> Result<Option<String>, ComponentError> + Send + Sync + 'static,
    {
        self.config.topic = Some(TopicSelector::Fn(Arc::new(f)));
        self
    }

    /// The key is the value of `field` (no key if the tuple has no such field).
    pub fn key_field(mut self, field: &str) -> Self {
        self.config.key = BytesSelector::Field(field.to_string());
        self
    }

    /// The key is `f(tuple)` (`None`: no key).
    pub fn key_fn<F>(mut self, f: F) -> Self
    where
        F: Fn(&Tuple) -> Result<Option<Vec<u8>>, ComponentError> + Send + Sync + 'static,
    {
        self.config.key = BytesSelector::Fn(Arc::new(f));
        self
    }

    /// The value is the value of `field` (required: a tuple without it fails).
    pub fn value_field(mut self, field: &str) -> Self {
        self.config.value = BytesSelector::Field(field.to_string());
        self
    }

    /// The value is `f(tuple)` (`None`: a tombstone).
    pub fn value_fn<F>(mut self, f: F) -> Self
    where
        F: Fn(&Tuple) -> Result<Option<Vec<u8>>, ComponentError> + Send + Sync + 'static,
    {
        self.config.value = BytesSelector::Fn(Arc::new(f));
        self
    }

    /// A librdkafka producer property (`acks`, `linger.ms`, `compression.type`, ...), passed as
    /// is.
    pub fn producer_property(mut self, key: &str, value: &str) -> Self {
        self.config
            .producer_properties
            .insert(key.to_string(), value.to_string());
        self
    }

    /// How long `execute` waits for room in librdkafka's queue before failing the tuple
    /// (default 30 s): a slow broker slows the bolt down rather than losing tuples.
    pub fn queue_full_timeout(mut self, d: Duration) -> Self {
        self.config.queue_full_timeout = d;
        self
    }

    /// Checks the configuration; every problem is an error naming the setting.
    pub fn build(self) -> Result<KafkaBoltConfig, KafkaConfigError> {
        let c = self.config;
        let bad = |m: String| Err(KafkaConfigError::Invalid(m));
        if c.bootstrap_servers.trim().is_empty() && c.bootstrap_key.is_none() {
            return bad("bootstrap servers are empty: give host:port[,host:port...]".into());
        }
        match &c.topic {
            None => {
                return bad("no topic: call .topic(..), .topic_field(..) or .topic_fn(..)".into())
            }
            Some(TopicSelector::Fixed(t)) if t.trim().is_empty() => {
                return bad("the topic name is empty".into())
            }
            _ => {}
        }
        if c.producer_properties.contains_key("bootstrap.servers") {
            return bad("producer property \"bootstrap.servers\" is set by the builder".into());
        }
        Ok(c)
    }
}

/// A tuple value as record bytes: strings as UTF-8, bytes as they are, numbers and booleans
/// as their text; `None` for null. Lists have no obvious encoding and are an error.
fn value_bytes(v: &Value, what: &str) -> Result<Option<Vec<u8>>, ComponentError> {
    Ok(Some(match v {
        Value::Null => return Ok(None),
        Value::Str(s) => s.as_bytes().to_vec(),
        Value::Bytes(b) => b.to_vec(),
        Value::I64(n) => n.to_string().into_bytes(),
        Value::F64(n) => n.to_string().into_bytes(),
        Value::Bool(b) => b.to_string().into_bytes(),
        other => {
            return Err(format!(
                "the {what} is a {}: give a string, bytes or a number (or a function)",
                other.type_name()
            )
            .into())
        }
    }))
}

impl KafkaBoltConfig {
    fn topic_of(&self, t: &Tuple) -> Result<Option<String>, ComponentError> {
        match self.topic.as_ref().ok_or("no topic configured")? {
            TopicSelector::Fixed(s) => Ok(Some(s.clone())),
            TopicSelector::Field(f, default) => match t.str(f.as_str()) {
                Ok(s) => Ok(Some(s.to_string())),
                Err(e) => match default {
                    Some(d) => Ok(Some(d.clone())),
                    None => Err(format!("no topic for the tuple: {e}").into()),
                },
            },
            TopicSelector::Fn(f) => f(t),
        }
    }

    fn key_of(&self, t: &Tuple) -> Result<Option<Vec<u8>>, ComponentError> {
        match &self.key {
            BytesSelector::Field(f) => match t.value(f.as_str()) {
                Ok(v) => value_bytes(v, &format!("key field {f:?}")),
                Err(_) => Ok(None),
            },
            BytesSelector::Fn(f) => f(t),
        }
    }

    fn value_of(&self, t: &Tuple) -> Result<Option<Vec<u8>>, ComponentError> {
        match &self.value {
            BytesSelector::Field(f) => {
                let v = t
                    .value(f.as_str())
                    .map_err(|e| format!("no value for the record: {e}"))?;
                value_bytes(v, &format!("value field {f:?}"))
            }
            BytesSelector::Fn(f) => f(t),
        }
    }
}

/// The broker's answer for the tuple written under `key`.
#[derive(Debug)]
struct Delivered {
    key: u64,
    result: Result<(), String>,
}

/// A bolt writing each tuple as a record to Kafka (Storm's `KafkaBolt`).
///
/// It acks a tuple when the broker confirmed its record, and fails it (reporting the error)
/// when the write failed or the tuple had no topic, key or value it could write; the
/// confirmation comes back through [`TopologyContext::events`] to
/// [`Bolt::event`], on the bolt's own executor. It declares no output streams. Tick tuples are
/// ignored.
pub struct KafkaBolt {
    config: KafkaBoltConfig,
    producer: Option<FutureProducer>,
    events: Option<EventSender>,
    waiting: HashMap<u64, Tuple>,
    next_key: u64,
}

impl std::fmt::Debug for KafkaBolt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBolt")
            .field("bootstrap_servers", &self.config.bootstrap_servers)
            .field("waiting", &self.waiting.len())
            .finish_non_exhaustive()
    }
}

impl KafkaBolt {
    /// A bolt task with this configuration.
    pub fn new(config: KafkaBoltConfig) -> Self {
        KafkaBolt {
            config,
            producer: None,
            events: None,
            waiting: HashMap::new(),
            next_key: 0,
        }
    }
}

#[async_trait]
impl Bolt for KafkaBolt {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}

    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.config.bootstrap_servers = crate::config::resolve_bootstrap(
            &self.config.bootstrap_servers,
            self.config.bootstrap_key.as_deref(),
            ctx.config(),
        )?;
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.config.bootstrap_servers)
            .set(
                "client.id",
                format!(
                    "tempest-{}-{}-{}",
                    ctx.topology_name(),
                    ctx.component_id(),
                    ctx.task_id()
                ),
            );
        for (k, v) in &self.config.producer_properties {
            c.set(k, v);
        }
        let producer: FutureProducer = c.create().map_err(|e| {
            format!(
                "cannot create the Kafka producer for {}: {e}",
                self.config.bootstrap_servers
            )
        })?;
        self.producer = Some(producer);
        self.events = Some(ctx.events().ok_or("a bolt task has an event sender")?);
        Ok(())
    }

    async fn execute(&mut self, input: Tuple, c: &mut OutputCollector) -> ComponentResult {
        if input.is_tick() {
            return Ok(());
        }
        let Some(topic) = self.config.topic_of(&input)? else {
            tracing::warn!("no topic for a tuple: acked, not written");
            c.ack(&input);
            return Ok(());
        };
        let key = self.config.key_of(&input)?;
        let value = self.config.value_of(&input)?;
        let producer = self.producer.as_ref().ok_or("execute before prepare")?;
        let events = self.events.clone().ok_or("execute before prepare")?;
        let mut record = FutureRecord::<[u8], [u8]>::to(&topic);
        if let Some(k) = key.as_deref() {
            record = record.key(k);
        }
        if let Some(v) = value.as_deref() {
            record = record.payload(v);
        }
        let deadline = Instant::now() + self.config.queue_full_timeout;
        let delivery = loop {
            match producer.send_result(record) {
                Ok(d) => break d,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                    if Instant::now() < deadline =>
                {
                    // librdkafka's queue is full: wait for deliveries to make room.
                    record = r;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => return Err(format!("cannot write to topic {topic:?}: {e}").into()),
            }
        };
        let key = self.next_key;
        self.next_key += 1;
        self.waiting.insert(key, input);
        tokio::spawn(async move {
            let result = match delivery.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(format!("writing to topic {topic:?} failed: {e}")),
                Err(_) => Err(format!("the producer for topic {topic:?} went away")),
            };
            let _ = events.send(Delivered { key, result }).await;
        });
        Ok(())
    }

    async fn event(&mut self, event: BoltEvent, c: &mut OutputCollector) -> ComponentResult {
        let Delivered { key, result } = event
            .downcast::<Delivered>()
            .map_err(|_| "KafkaBolt got an event that is not a delivery report")?;
        let input = self
            .waiting
            .remove(&key)
            .ok_or("a delivery report for no tuple")?;
        match result {
            Ok(()) => c.ack(&input),
            Err(e) => {
                c.report_error(&e);
                c.fail(&input);
            }
        }
        Ok(())
    }

    async fn cleanup(&mut self) {
        if let Some(p) = self.producer.take() {
            // Waits for outstanding deliveries (bounded), off the executor's thread.
            let _ = tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(10))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_bytes_or_a_clear_error() {
        assert_eq!(
            value_bytes(&Value::from("hé"), "value").expect("ok"),
            Some("hé".as_bytes().to_vec())
        );
        assert_eq!(
            value_bytes(&Value::from(42i64), "value").expect("ok"),
            Some(b"42".to_vec())
        );
        assert_eq!(value_bytes(&Value::Null, "key").expect("ok"), None);
        let e =
            value_bytes(&Value::from(vec![Value::Null]), "value field \"v\"").expect_err("a list");
        assert!(e.to_string().contains("value field \"v\" is a"), "{e}");
    }

    #[test]
    fn a_bolt_without_topic_is_refused() {
        let e = KafkaBoltConfig::builder("h:1")
            .build()
            .expect_err("no topic");
        assert!(e.to_string().contains("no topic"), "{e}");
        let e = KafkaBoltConfig::builder("")
            .topic("t")
            .build()
            .expect_err("no servers");
        assert!(e.to_string().contains("bootstrap"), "{e}");
    }
}
