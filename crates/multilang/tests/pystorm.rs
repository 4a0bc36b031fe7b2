//! Components written with the real pystorm from PyPI (pinned, installed by the test into a
//! venv under the target dir): a pystorm reliable spout with string message ids feeding a
//! pystorm split bolt, counted by a Rust bolt.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tempest_multilang::{resources, ShellBolt, ShellCommand, ShellSpout};
use topology_api::prelude::*;
use topology_api::{run_local, LocalOptions};

/// The pystorm version the tests pin.
const PYSTORM: &str = "pystorm==3.1.4";

/// A venv with pystorm, made once (reused while it imports pystorm); its python.
fn pystorm_python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pystorm-3.1.4-venv");
    let python = venv.join("bin/python");
    let imports = |p: &PathBuf| {
        Command::new(p)
            .args(["-c", "import pystorm"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if imports(&python) {
        return python;
    }
    let _ = std::fs::remove_dir_all(&venv);
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 runs");
    assert!(
        ok.success(),
        "python3 -m venv failed (scripts/deps.sh installs python3-venv)"
    );
    let ok = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", PYSTORM])
        .status()
        .expect("pip runs");
    assert!(ok.success(), "pip install {PYSTORM} failed");
    assert!(imports(&python), "pystorm does not import from the venv");
    python
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Clone, Default)]
struct Sink {
    words: Arc<Mutex<HashMap<String, u64>>>,
    done: Arc<Mutex<Vec<i64>>>,
}

#[async_trait]
impl Bolt for Sink {
    fn declare_output_fields(&self, _: &mut OutputDeclarer) {}
    async fn execute(&mut self, t: Tuple, c: &mut OutputCollector) -> ComponentResult {
        if t.source_stream() == "done" {
            lock(&self.done).push(t.i64(0)?);
        } else {
            *lock(&self.words).entry(t.str(0)?.to_string()).or_default() += 1;
        }
        c.ack(&t);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pystorm_spout_and_a_pystorm_bolt_run_unchanged() {
    let python = pystorm_python().display().to_string();
    const N: i64 = 200;
    let sink = Sink::default();
    let mut b = TopologyBuilder::new("ml-pystorm");
    b.config().set("test.count", N);
    let spout = ShellSpout::new(
        ShellCommand::new(&python, ["words_spout.py"]),
        resources!["words_spout.py" => "../../../examples/python/words_spout.py"],
    )
    .output_fields(["sentence"])
    .stream("done", ["acked"]);
    b.set_spout("sentences", move || spout.clone(), 1);
    let split = ShellBolt::new(
        ShellCommand::new(&python, ["split.py"]),
        resources!["split.py" => "../../../examples/python/split.py"],
    )
    .output_fields(["word"]);
    b.set_bolt("split", move || split.clone(), 2)
        .shuffle_grouping("sentences");
    let s = sink.clone();
    b.set_bolt("sink", move || s.clone(), 1)
        .shuffle_grouping("split")
        .shuffle_grouping(("sentences", "done"));
    let report = run_local(
        &b.build().expect("valid"),
        LocalOptions {
            duration: Some(Duration::from_secs(6)),
            ..Default::default()
        },
    )
    .await
    .expect("runs");
    let errors: Vec<_> = report.tasks.iter().flat_map(|t| t.errors.clone()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        *lock(&sink.done),
        vec![N],
        "the pystorm spout saw every id acked, with the string ids it emitted"
    );
    let words = lock(&sink.words).clone();
    assert_eq!(words["pystorm"], N as u64);
    assert_eq!(words["says"], N as u64);
    assert_eq!(words["s-17"], 1);
}
