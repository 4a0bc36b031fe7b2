//! # tempest-kafka: Kafka in and out
//!
//! [`KafkaSpout`] reads Kafka topics with the semantics of Apache Storm's
//! `storm-kafka-client`; [`KafkaBolt`] writes tuples to Kafka. Both use
//! [rdkafka](https://docs.rs/rdkafka) (librdkafka, built from source). Only topologies that
//! depend on this crate link a Kafka client.
//!
//! ```no_run
//! use std::time::Duration;
//! use tempest_kafka::{KafkaBolt, KafkaBoltConfig, KafkaSpout, KafkaSpoutConfig, Topics};
//! use topology_api::prelude::*;
//!
//! fn wire(b: &mut TopologyBuilder) -> Result<(), tempest_kafka::KafkaConfigError> {
//!     let spout = KafkaSpoutConfig::builder("127.0.0.1:9092", Topics::names(["in"]))
//!         .group_id("my-topology") // required: the group whose offsets it commits
//!         .offset_commit_period(Duration::from_secs(5))
//!         .build()?;
//!     let out = KafkaBoltConfig::builder("127.0.0.1:9092")
//!         .topic("out")
//!         .key_field("key")     // the record's key (no key if the field is missing)
//!         .value_field("value") // the record's value
//!         .build()?;
//!     // Fields: topic, partition, offset, key, value. Two tasks share the partitions.
//!     b.set_spout("kafka", move || KafkaSpout::new(spout.clone()), 2);
//!     b.set_bolt("out", move || KafkaBolt::new(out.clone()), 1).shuffle_grouping("kafka");
//!     Ok(())
//! }
//! ```
//!
//! ## The spout
//!
//! **Processing guarantees** ([`ProcessingGuarantee`]):
//! - `AtLeastOnce` (default): each tuple's message id stands for its record's topic, partition
//!   and offset (a `u64` the spout maps to them in a table of the tuples in flight). An offset
//!   is committed only when it and every offset before it in its partition are done; offsets
//!   never emitted (compacted away, transaction markers) do not hold it back. Done offsets are
//!   committed every `offset_commit_period` (30 s), on deactivate, on close and before the
//!   task's partitions change. A failed tuple is retried with exponential back-off
//!   ([`RetryPolicy`]); after its last retry it is counted, logged, emitted on the dead-letter
//!   stream if one is set, and then counts as done. `max_uncommitted_offsets` per partition
//!   stops reading a partition whose uncommitted offsets reach it, so a stuck record cannot
//!   make memory grow (retries of offsets inside the limit go on).
//! - `AtMostOnce`: the offsets of each poll are committed before any of its records is
//!   emitted; tuples are untracked, nothing is retried.
//! - `NoGuarantee`: the consumer's position is committed every commit period; untracked.
//! - `ExactlyOnce`: for the topology's exactly-once (checkpoint) mode. There the runtime does
//!   **not** replay by message id: tuples are emitted untracked, [`Spout::position`] is the next
//!   offset of every partition (`{"topic": {"partition": offset}}`), [`Spout::rewind`] seeks every
//!   assigned partition back to it after a rollback, and offsets are committed only in
//!   [`Spout::checkpoint_complete`]. Choose it when the topology runs exactly-once.
//!
//! **First poll** ([`FirstPollOffsetStrategy`]): where a partition newly given to a task starts:
//! `Earliest`/`Latest` ignore offsets committed by other topologies (a commit made by this
//! topology, i.e. whose metadata names the topology, is always resumed from);
//! `UncommittedEarliest` (default)/`UncommittedLatest` resume from any committed offset. With
//! nothing committed, the first two read from the beginning, the other two from the end.
//!
//! **Partitions: Storm's manual round-robin, not the consumer group's assignment.** Every task
//! lists the topics' partitions (every 2 s, so new partitions and topics matching a pattern are
//! picked up), sorts them and takes those at its task index modulo the number of tasks. The group
//! is used only for committed offsets. Why:
//! - Tempest, like Storm, restarts a dead task itself (its supervisor restarts the worker in a
//!   second or two), and the restarted task has the same index, so it reads the same partitions
//!   from their committed offsets: nothing is lost and nothing else moves.
//! - With the group protocol, one worker's restart would revoke and reassign the partitions of
//!   every task (eager rebalance), each rebalance pausing all of them for a join round (at least
//!   `session.timeout.ms / 2` on the test broker), and the acks of tuples in flight on a revoked
//!   partition would arrive at a task that no longer owns it, so their records would be read
//!   again by the new owner.
//! - The assignment is deterministic, so tests and operators know which task reads what.
//!
//! The price: a task whose worker cannot be restarted leaves its partitions unread until it is
//! (Nimbus moves it to another supervisor after its timeout). A rebalance that changes the
//! spout's parallelism restarts every task, each resuming from the committed offsets; during
//! the overlap a partition may be read by two tasks (duplicates, never loss).
//!
//! **Records become tuples** through a [`RecordTranslator`]: [`DefaultTranslator`] (fields
//! `topic, partition, offset, key, value`, key and value as strings when they are UTF-8, bytes
//! otherwise), [`FnTranslator`] (a function, on a stream you name), [`ByTopicTranslator`] (one per
//! topic), or your own (any number of streams).
//!
//! **Lag**: every `lag_report_period` (2 s) the spout reports, per partition, the group's
//! committed offset and the log end (the high watermark of the last fetch response, which needs
//! no request to the broker) with `SpoutOutputCollector::report_lag`; the web UI's topology page
//! and `GET /api/v1/topology/<id>/lag` show them.
//!
//! **Consumer properties** pass through to librdkafka
//! ([`KafkaSpoutConfigBuilder::consumer_property`]); the spout sets `enable.auto.commit=false`
//! (setting it is refused), `allow.auto.create.topics=false`, a 16 MB prefetch bound, and, at
//! least once, `auto.offset.reset=earliest` unless you set it.
//!
//! ## The bolt
//!
//! [`KafkaBolt`] writes a record per tuple: the topic is fixed, or taken from a field or a
//! function; the key from a field (default `key`) or a function; the value from a field (default
//! `message`) or a function. A tuple is acked only when the broker confirmed its record, and
//! failed (with the error reported) when the write failed. The confirmation arrives after
//! `execute` returned; it comes back as an event ([`topology_api::TopologyContext::events`]),
//! handled on the bolt's own executor. Producer properties pass through
//! ([`KafkaBoltConfigBuilder::producer_property`]).

mod assign;
mod bolt;
mod config;
mod offsets;
mod retry;
mod spout;
mod translator;

pub use bolt::{KafkaBolt, KafkaBoltConfig, KafkaBoltConfigBuilder};
pub use config::{
    FirstPollOffsetStrategy, KafkaSpoutConfig, KafkaSpoutConfigBuilder, ProcessingGuarantee, Topics,
};
pub use retry::RetryPolicy;
pub use spout::KafkaSpout;
pub use translator::{
    bytes_value, ByTopicTranslator, ConsumerRecord, DefaultTranslator, FnTranslator,
    RecordTranslator, DEFAULT_FIELDS,
};

#[doc(no_inline)]
pub use topology_api::Spout;

/// A Kafka connector's configuration is wrong.
#[derive(Debug, thiserror::Error)]
pub enum KafkaConfigError {
    /// What is wrong, naming the setting.
    #[error("invalid Kafka configuration: {0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    /// The README's Kafka example is shown as `rust,ignore` (the README's doctests run in
    /// `topology-api`, which does not link this crate); it is this crate's doc example, which
    /// is compiled. Keep the two the same.
    #[test]
    fn the_readme_shows_the_compiled_crate_example() {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("\n## Kafka\n")
            .nth(1)
            .expect("the README has a Kafka section");
        let shown = section
            .split("```rust,ignore\n")
            .nth(1)
            .and_then(|b| b.split("\n```").next())
            .expect("a rust,ignore block in the Kafka section");
        let docs: Vec<&str> = include_str!("lib.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//!"))
            .map(|l| l.strip_prefix(' ').unwrap_or(l))
            .collect();
        let docs = docs.join("\n");
        let compiled = docs
            .split("```no_run\n")
            .nth(1)
            .and_then(|b| b.split("\n```").next())
            .expect("a no_run example in the crate docs");
        assert_eq!(
            shown, compiled,
            "README.md's Kafka example and the crate's differ"
        );
    }
}
