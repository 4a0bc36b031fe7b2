//! The Kafka cluster test's topology: a reliable pipeline from one topic to another.
//!
//! - `kafka` (2 tasks): a KafkaSpout on topic `in`, group `tempest-test`, brokers from config
//!   key `test.kafka.bootstrap`, offsets committed every 500 ms.
//! - `flaky` (shuffle): fails `test.fail.fraction` of its tuples (so the spout retries them),
//!   passes the rest on anchored.
//! - `sink` (shuffle): appends `topic partition offset` of every tuple to
//!   `<test.dir>/seen-<task>.log`, where the test reads what was processed.
//! - `out` (shuffle): a KafkaBolt writing key and value to topic `out`, acking on the broker's
//!   confirmation.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;
use tempest_kafka::{KafkaBolt, KafkaBoltConfig, KafkaSpout, KafkaSpoutConfig, Topics};
use topology_api::prelude::*;

struct Flaky {
    fail_fraction: f64,
}

#[async_trait]
impl Bolt for Flaky {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(["topic", "partition", "offset", "key", "message"]);
    }
    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        self.fail_fraction = ctx.config().f64_or("test.fail.fraction", 0.0)?;
        Ok(())
    }
    async fn execute(&mut self, t: Tuple, c: &mut OutputCollector) -> ComponentResult {
        if fastrand::f64() < self.fail_fraction {
            c.fail(&t);
            return Ok(());
        }
        let v = t.values().iter().cloned().collect();
        c.emit_anchored(&t, v)?;
        c.ack(&t);
        Ok(())
    }
}

#[derive(Default)]
struct Sink {
    log: Option<std::fs::File>,
}

#[async_trait]
impl BasicBolt for Sink {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    async fn prepare(&mut self, ctx: &TopologyContext) -> ComponentResult {
        let dir = ctx
            .config()
            .str("test.dir")
            .ok_or("config key test.dir is not set")?;
        let path = std::path::Path::new(dir).join(format!("seen-{}.log", ctx.task_id()));
        self.log = Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        );
        Ok(())
    }
    fn execute(&mut self, t: &Tuple, _: &mut BasicOutputCollector<'_>) -> ComponentResult {
        let line = format!(
            "{} {} {}\n",
            t.str("topic")?,
            t.i64("partition")?,
            t.i64("offset")?
        );
        // One write per line (O_APPEND): a killed worker leaves whole lines behind.
        self.log
            .as_mut()
            .ok_or("execute before prepare")?
            .write_all(line.as_bytes())?;
        Ok(())
    }
}

fn main() -> ExitCode {
    let built = KafkaSpoutConfig::builder("", Topics::names(["in"]))
        .bootstrap_servers_config_key("test.kafka.bootstrap")
        .group_id("tempest-test")
        .offset_commit_period(Duration::from_millis(500))
        .consumer_property("fetch.wait.max.ms", "20")
        .build()
        .and_then(|spout| {
            KafkaBoltConfig::builder("")
                .bootstrap_servers_config_key("test.kafka.bootstrap")
                .topic("out")
                .key_field("key")
                .value_field("message")
                .build()
                .map(|bolt| (spout, bolt))
        });
    let (spout, out) = match built {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut b = TopologyBuilder::new("kafka-count");
    b.set_spout("kafka", move || KafkaSpout::new(spout.clone()), 2);
    b.set_bolt("flaky", || Flaky { fail_fraction: 0.0 }, 2)
        .shuffle_grouping("kafka");
    b.set_basic_bolt("sink", Sink::default, 2)
        .shuffle_grouping("flaky");
    b.set_bolt("out", move || KafkaBolt::new(out.clone()), 2)
        .shuffle_grouping("flaky");
    match b.build() {
        Ok(t) => topology_api::entry::main(t),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
