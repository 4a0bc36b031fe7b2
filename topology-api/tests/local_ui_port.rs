//! `local --ui` on a port that is taken: the run is refused with an error naming the address,
//! before any spout starts.

mod common;

use common::{lock, Ledger, NumberSpout};
use topology_api::prelude::*;
use topology_api::{run_local, LocalOptions, RunError};

#[tokio::test]
async fn a_taken_ui_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address");
    let ledger = Ledger::new();
    let mut b = TopologyBuilder::new("ui-port");
    let l = ledger.clone();
    b.set_spout("numbers", move || NumberSpout::new(10, &l), 1);
    let topology = b.build().expect("a valid topology");
    let opts = LocalOptions {
        ui: Some(addr),
        ..LocalOptions::default()
    };
    match run_local(&topology, opts).await {
        Err(RunError::Ui(message)) => {
            assert!(message.contains(&addr.to_string()), "{message}");
            assert!(message.contains("web UI"), "{message}");
        }
        other => panic!("expected a web UI error, got {other:?}"),
    }
    assert!(lock(&ledger.opened).is_empty(), "no spout was opened");
}
