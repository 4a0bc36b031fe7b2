//! Kafka word count: sentences from topic `sentences` -> split (shuffle) -> count (fields on
//! "word") -> every new count to topic `word-counts` (key: the word, value: its count) through
//! a KafkaBolt, which acks each tuple once the broker confirmed its record.
//!
//! The spout reads at least once (committing offsets every 5 s, retrying failed tuples); the
//! counts live in memory, so a replay after a failure counts its words again.
//! Brokers: topology config key `kafka.bootstrap.servers` (default `127.0.0.1:9092`), e.g.
//! `cargo run --release --example kafka_word_count -- local -c kafka.bootstrap.servers=127.0.0.1:9092`.
//! The README's "Kafka" section walks through it with a local broker.

use std::process::ExitCode;
use std::time::Duration;
use tempest_examples::{SplitSentence, WordCount};
use tempest_kafka::{
    FnTranslator, KafkaBolt, KafkaBoltConfig, KafkaSpout, KafkaSpoutConfig, Topics,
};
use topology_api::prelude::*;

fn main() -> ExitCode {
    // The record's value is the sentence; records without a value are dropped (and committed).
    let sentences = FnTranslator::new(["sentence"], |r| {
        let v = r.value.as_deref()?;
        Some(values![String::from_utf8_lossy(v).as_ref()])
    });
    let spout = KafkaSpoutConfig::builder("127.0.0.1:9092", Topics::names(["sentences"]))
        .bootstrap_servers_config_key("kafka.bootstrap.servers")
        .group_id("kafka-word-count")
        .record_translator(sentences)
        .offset_commit_period(Duration::from_secs(5))
        .build();
    let out = KafkaBoltConfig::builder("127.0.0.1:9092")
        .bootstrap_servers_config_key("kafka.bootstrap.servers")
        .topic("word-counts")
        .key_field("word")
        .value_field("count")
        .build();
    let (spout, out) = match (spout, out) {
        (Ok(s), Ok(o)) => (s, o),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut b = TopologyBuilder::new("kafka-word-count");
    b.set_spout("sentences", move || KafkaSpout::new(spout.clone()), 1);
    b.set_basic_bolt("split", || SplitSentence, 2)
        .shuffle_grouping("sentences");
    b.set_basic_bolt("count", WordCount::default, 2)
        .fields_grouping("split", ["word"]);
    b.set_bolt("counts", move || KafkaBolt::new(out.clone()), 1)
        .shuffle_grouping("count");
    match b.build() {
        Ok(t) => topology_api::entry::main(t),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
