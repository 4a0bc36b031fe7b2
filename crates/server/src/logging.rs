//! Logging: `tracing` events to stderr, filtered by `RUST_LOG` (`info`, or `warn,nimbus=debug`:
//! a default level and per-target levels). Set up once per process, the same way everywhere.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Logs at `info` and above unless `RUST_LOG` says otherwise. Safe to call more than once.
pub fn init() {
    init_with_default(LevelFilter::INFO);
}

/// Logs at `default` and above unless `RUST_LOG` says otherwise. A `RUST_LOG` that does not
/// parse is reported and ignored. Safe to call more than once (later calls do nothing).
pub fn init_with_default(default: LevelFilter) {
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => match spec.parse::<Targets>() {
            Ok(t) => (t, None),
            Err(e) => (Targets::new().with_default(default), Some((spec, e))),
        },
        _ => (Targets::new().with_default(default), None),
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(std::io::stderr);
    if tracing_subscriber::registry()
        .with(fmt)
        .with(filter)
        .try_init()
        .is_ok()
    {
        if let Some((spec, e)) = bad {
            tracing::warn!("ignoring RUST_LOG={spec:?}: {e}");
        }
    }
}
