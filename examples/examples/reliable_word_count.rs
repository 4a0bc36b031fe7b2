//! Reliable word count: a finite spout that keeps every message until it is acked and replays
//! the ones that fail, a split bolt, and a count bolt that fails a configurable fraction of its
//! tuples. Ends by printing how many message ids were emitted, acked, failed and replayed, and
//! exits non-zero if any id was never acked (or acked twice).
//!
//! `cargo run --release --example reliable_word_count -- --fail-fraction 0.1 local`

use clap::Parser;
use std::process::ExitCode;
use tempest_examples::reliable;

#[derive(Parser)]
#[command(about = "Word count that replays failed sentences until every one is acked")]
struct Args {
    /// Number of sentences (message ids) to emit.
    #[arg(long, default_value_t = 100_000)]
    sentences: u64,
    /// Fraction of word tuples the count bolt fails (0.0 to 1.0).
    #[arg(long, default_value_t = 0.1)]
    fail_fraction: f64,
    /// Spout tasks (each emits its share of the ids).
    #[arg(long, default_value_t = 1)]
    spouts: u32,
    /// The mode and its flags: `local`, `submit --nimbus URL`, ... (see `local --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    mode: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !(0.0..1.0).contains(&args.fail_fraction) {
        eprintln!(
            "--fail-fraction must be at least 0 and below 1, got {}",
            args.fail_fraction
        );
        return ExitCode::FAILURE;
    }
    let (topology, ledger) =
        match reliable::topology(args.sentences, args.fail_fraction, args.spouts) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
    if topology_api::entry::run(topology, args.mode).is_err() {
        return ExitCode::FAILURE;
    }
    let ledger = ledger.lock().expect("spouts have stopped");
    println!("{}", ledger.summary(args.sentences));
    if ledger.problems(args.sentences) != (0, 0) {
        eprintln!("FAILED: every message id must be acked exactly once");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
