//! Turning a Kafka record into a tuple: [`RecordTranslator`] and the translators that come with
//! the crate (Storm's `DefaultRecordTranslator`, `SimpleRecordTranslator` and
//! `ByTopicRecordTranslator`).

use crate::KafkaConfigError;
use std::collections::BTreeMap;
use std::sync::Arc;
use topology_api::{values, Value, Values, DEFAULT_STREAM};

/// A record read from Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Its topic.
    pub topic: Arc<str>,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its key, if it has one.
    pub key: Option<Vec<u8>>,
    /// Its value, if it has one (`None` is a tombstone).
    pub value: Option<Vec<u8>>,
    /// Its timestamp (milliseconds since the Unix epoch), if it has one.
    pub timestamp_ms: Option<i64>,
}

/// Bytes as a tuple value: a string if they are UTF-8, else raw bytes; `None` is null.
pub fn bytes_value(bytes: Option<&[u8]>) -> Value {
    match bytes {
        None => Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => Value::from(s),
            Err(_) => Value::Bytes(b.into()),
        },
    }
}

/// Maps records to tuples, and declares the streams it emits on.
///
/// Return `None` from [`translate`](RecordTranslator::translate) to drop a record: it is not
/// emitted, and (at least once) counts as done so its offset can be committed.
pub trait RecordTranslator: Send + Sync + 'static {
    /// The stream and values of the tuple for `record`, or `None` to drop it.
    fn translate<'a>(&'a self, record: &ConsumerRecord) -> Option<(&'a str, Values)>;
    /// The streams this translator emits on, with their fields.
    fn streams(&self) -> Vec<(String, Vec<String>)>;
}

/// The default fields: `topic, partition, offset, key, value`.
pub const DEFAULT_FIELDS: [&str; 5] = ["topic", "partition", "offset", "key", "value"];

/// The default translator: fields `topic, partition, offset, key, value` on the default stream.
/// The key and value are strings when they are UTF-8, raw bytes otherwise, null when absent.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultTranslator;

impl DefaultTranslator {
    /// The values of `record` in the default fields.
    pub fn values(record: &ConsumerRecord) -> Values {
        let mut v = values![
            &*record.topic,
            i64::from(record.partition),
            record.offset,
            bytes_value(record.key.as_deref())
        ];
        v.push(bytes_value(record.value.as_deref()));
        v
    }
}

impl RecordTranslator for DefaultTranslator {
    fn translate<'a>(&'a self, record: &ConsumerRecord) -> Option<(&'a str, Values)> {
        Some((DEFAULT_STREAM, Self::values(record)))
    }
    fn streams(&self) -> Vec<(String, Vec<String>)> {
        vec![(
            DEFAULT_STREAM.to_string(),
            DEFAULT_FIELDS.iter().map(|f| f.to_string()).collect(),
        )]
    }
}

/// The function of a [`FnTranslator`].
type TranslateFn = dyn Fn(&ConsumerRecord) -> Option<Values> + Send + Sync;

/// A translator from a function, on one stream with the fields you name (Storm's
/// `SimpleRecordTranslator`).
///
/// ```
/// use tempest_kafka::FnTranslator;
/// use topology_api::values;
/// // The record's value as a string field "sentence"; records without a value are dropped.
/// let t = FnTranslator::new(["sentence"], |r| {
///     let v = r.value.as_deref()?;
///     Some(values![String::from_utf8_lossy(v).as_ref()])
/// });
/// ```
#[derive(Clone)]
pub struct FnTranslator {
    stream: String,
    fields: Vec<String>,
    f: Arc<TranslateFn>,
}

impl std::fmt::Debug for FnTranslator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnTranslator")
            .field("stream", &self.stream)
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

impl FnTranslator {
    /// Emits `f(record)` with these fields on the default stream.
    pub fn new<I, S, F>(fields: I, f: F) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
        F: Fn(&ConsumerRecord) -> Option<Values> + Send + Sync + 'static,
    {
        FnTranslator {
            stream: DEFAULT_STREAM.to_string(),
            fields: fields.into_iter().map(Into::into).collect(),
            f: Arc::new(f),
        }
    }

    /// Emits on `stream` instead of the default stream.
    pub fn on_stream(mut self, stream: &str) -> Self {
        self.stream = stream.to_string();
        self
    }
}

impl RecordTranslator for FnTranslator {
    fn translate<'a>(&'a self, record: &ConsumerRecord) -> Option<(&'a str, Values)> {
        (self.f)(record).map(|v| (self.stream.as_str(), v))
    }
    fn streams(&self) -> Vec<(String, Vec<String>)> {
        vec![(self.stream.clone(), self.fields.clone())]
    }
}

/// Picks a translator by the record's topic, with a fallback for other topics (Storm's
/// `ByTopicRecordTranslator`).
#[derive(Clone)]
pub struct ByTopicTranslator {
    by_topic: BTreeMap<String, Arc<dyn RecordTranslator>>,
    fallback: Arc<dyn RecordTranslator>,
}

impl std::fmt::Debug for ByTopicTranslator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByTopicTranslator")
            .field("topics", &self.by_topic.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ByTopicTranslator {
    /// Records of topics without a translator of their own go to `fallback`.
    pub fn new(fallback: impl RecordTranslator) -> Self {
        ByTopicTranslator {
            by_topic: BTreeMap::new(),
            fallback: Arc::new(fallback),
        }
    }

    /// Records of `topic` go to `translator`. A topic given twice, or two translators that
    /// declare the same stream with different fields, is an error naming them.
    pub fn for_topic(
        mut self,
        topic: &str,
        translator: impl RecordTranslator,
    ) -> Result<Self, KafkaConfigError> {
        if self.by_topic.contains_key(topic) {
            return Err(KafkaConfigError::Invalid(format!(
                "topic {topic:?} has two translators"
            )));
        }
        self.by_topic
            .insert(topic.to_string(), Arc::new(translator));
        check_streams(&self.streams_of_all())?;
        Ok(self)
    }

    fn streams_of_all(&self) -> Vec<(String, Vec<String>)> {
        let mut all = self.fallback.streams();
        for t in self.by_topic.values() {
            all.extend(t.streams());
        }
        all
    }
}

/// Checks that no stream is declared with two different field lists; returns them merged.
pub(crate) fn check_streams(
    streams: &[(String, Vec<String>)],
) -> Result<BTreeMap<String, Vec<String>>, KafkaConfigError> {
    let mut merged: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (stream, fields) in streams {
        match merged.get(stream) {
            Some(f) if f != fields => {
                return Err(KafkaConfigError::Invalid(format!(
                    "stream {stream:?} is declared with fields {f:?} and with {fields:?}"
                )))
            }
            Some(_) => {}
            None => {
                merged.insert(stream.clone(), fields.clone());
            }
        }
    }
    Ok(merged)
}

impl RecordTranslator for ByTopicTranslator {
    fn translate<'a>(&'a self, record: &ConsumerRecord) -> Option<(&'a str, Values)> {
        match self.by_topic.get(&*record.topic) {
            Some(t) => t.translate(record),
            None => self.fallback.translate(record),
        }
    }
    fn streams(&self) -> Vec<(String, Vec<String>)> {
        check_streams(&self.streams_of_all())
            .map(|m| m.into_iter().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(topic: &str, key: Option<&[u8]>, value: Option<&[u8]>) -> ConsumerRecord {
        ConsumerRecord {
            topic: topic.into(),
            partition: 3,
            offset: 42,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            timestamp_ms: Some(1),
        }
    }

    #[test]
    fn default_translator_gives_the_five_fields() {
        let t = DefaultTranslator;
        let (stream, v) = t
            .translate(&record("in", Some(b"k"), Some(b"hello")))
            .expect("a tuple");
        assert_eq!(stream, DEFAULT_STREAM);
        assert_eq!(
            v.as_slice(),
            values!["in", 3i64, 42i64, "k", "hello"].as_slice()
        );
        assert_eq!(
            t.streams(),
            vec![(
                "default".to_string(),
                vec!["topic", "partition", "offset", "key", "value"]
                    .into_iter()
                    .map(String::from)
                    .collect()
            )]
        );
    }

    #[test]
    fn keys_and_values_are_strings_bytes_or_null() {
        let (_, v) = DefaultTranslator
            .translate(&record("in", None, Some(&[0xff, 0x00])))
            .expect("a tuple");
        assert_eq!(v[3], Value::Null);
        assert_eq!(v[4], Value::Bytes(vec![0xff, 0x00].into()));
    }

    #[test]
    fn fn_translator_maps_drops_and_routes() {
        let t = FnTranslator::new(["len"], |r| {
            r.value.as_ref().map(|v| values![v.len() as i64])
        })
        .on_stream("lengths");
        let (stream, v) = t
            .translate(&record("in", None, Some(b"abc")))
            .expect("a tuple");
        assert_eq!(
            (stream, v.as_slice()),
            ("lengths", values![3i64].as_slice())
        );
        assert!(t.translate(&record("in", None, None)).is_none(), "dropped");
        assert_eq!(t.streams(), vec![("lengths".into(), vec!["len".into()])]);
    }

    #[test]
    fn by_topic_dispatches_and_refuses_conflicts() {
        let t = ByTopicTranslator::new(DefaultTranslator)
            .for_topic(
                "lengths",
                FnTranslator::new(["len"], |r| {
                    Some(values![r.value.as_ref().map_or(0, |v| v.len()) as i64])
                })
                .on_stream("len"),
            )
            .expect("no conflict");
        let (s, _) = t
            .translate(&record("lengths", None, Some(b"ab")))
            .expect("a tuple");
        assert_eq!(s, "len");
        let (s, v) = t
            .translate(&record("other", None, Some(b"ab")))
            .expect("a tuple");
        assert_eq!((s, v.len()), ("default", 5));
        assert_eq!(t.streams().len(), 2);

        let twice = t
            .clone()
            .for_topic("lengths", DefaultTranslator)
            .expect_err("a topic twice");
        assert!(twice
            .to_string()
            .contains("\"lengths\" has two translators"));
        let clash = ByTopicTranslator::new(DefaultTranslator)
            .for_topic("x", FnTranslator::new(["a"], |_| None))
            .expect_err("default stream with other fields");
        assert!(clash.to_string().contains("stream \"default\""), "{clash}");
    }
}
