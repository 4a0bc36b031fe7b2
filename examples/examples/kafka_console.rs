//! A tiny Kafka console client for the README's walk-through (rdkafka, no Java needed):
//!
//! ```text
//! kafka_console [--bootstrap 127.0.0.1:9092] create TOPIC [--partitions 4]
//! kafka_console [--bootstrap ...] produce TOPIC        # one record per stdin line
//! kafka_console [--bootstrap ...] consume TOPIC [--idle-exit SECS]
//! ```
//!
//! `produce` sends each line as a record's value (a line `key<TAB>value` gets that key);
//! `consume` prints every record of every partition from the beginning as `key<TAB>value`,
//! and exits after `--idle-exit` seconds without a record (default: never).

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::io::BufRead;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Cli {
    /// The brokers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates a topic.
    Create {
        topic: String,
        #[arg(long, default_value_t = 4)]
        partitions: i32,
    },
    /// Sends each line of stdin as a record (`key<TAB>value` sets the key).
    Produce { topic: String },
    /// Prints every record from the beginning as `key<TAB>value`.
    Consume {
        topic: String,
        /// Exit after this many seconds without a record.
        #[arg(long)]
        idle_exit: Option<u64>,
    },
}

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("fetch.wait.max.ms", "50");
    c
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Create { topic, partitions } => {
            let admin: AdminClient<DefaultClientContext> = config(&cli.bootstrap).create()?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let results = rt.block_on(admin.create_topics(
                &[NewTopic::new(
                    &topic,
                    partitions,
                    TopicReplication::Fixed(1),
                )],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            ))?;
            for r in results {
                if let Err((t, e)) = r {
                    bail!("cannot create topic {t}: {e}");
                }
            }
            eprintln!("created {topic} with {partitions} partitions");
        }
        Command::Produce { topic } => {
            let producer: BaseProducer = config(&cli.bootstrap).set("linger.ms", "5").create()?;
            let mut n = 0u64;
            for line in std::io::stdin().lock().lines() {
                let line = line.context("reading stdin")?;
                let (key, value) = match line.split_once('\t') {
                    Some((k, v)) => (Some(k.to_string()), v.to_string()),
                    None => (None, line),
                };
                loop {
                    let mut rec = BaseRecord::<str, str>::to(&topic).payload(&value);
                    if let Some(k) = &key {
                        rec = rec.key(k);
                    }
                    match producer.send(rec) {
                        Ok(()) => break,
                        Err((e, _))
                            if e.rdkafka_error_code()
                                == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                        {
                            producer.poll(Duration::from_millis(10));
                        }
                        Err((e, _)) => bail!("cannot send to {topic}: {e}"),
                    }
                }
                producer.poll(Duration::ZERO);
                n += 1;
            }
            producer.flush(Duration::from_secs(30))?;
            eprintln!("sent {n} records to {topic}");
        }
        Command::Consume { topic, idle_exit } => {
            let consumer: BaseConsumer = config(&cli.bootstrap)
                .set("group.id", "kafka-console")
                .set("enable.auto.commit", "false")
                .create()?;
            let md = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
            let mut tpl = TopicPartitionList::new();
            for t in md.topics() {
                if let Some(e) = t.error() {
                    bail!("topic {topic}: {e:?}");
                }
                for p in t.partitions() {
                    tpl.add_partition_offset(t.name(), p.id(), Offset::Beginning)?;
                }
            }
            consumer.assign(&tpl)?;
            let mut last = Instant::now();
            loop {
                match consumer.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) => {
                        last = Instant::now();
                        let k = m.key().map(String::from_utf8_lossy).unwrap_or_default();
                        let v = m.payload().map(String::from_utf8_lossy).unwrap_or_default();
                        println!("{k}\t{v}");
                    }
                    Some(Err(e)) => eprintln!("error: {e}"),
                    None => {}
                }
                if idle_exit.is_some_and(|s| last.elapsed() >= Duration::from_secs(s)) {
                    break;
                }
            }
        }
    }
    Ok(())
}
