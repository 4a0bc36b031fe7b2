//! The CLI fails with one line on stderr and a non-zero exit: 1 when Nimbus cannot be reached or
//! refuses (its message passed through), 2 for a wrong command line or config file.

mod stub;

use stub::{scratch_dir, start, tempest, texts};

/// The one line of stderr, checked to be exactly one line starting with `error: `.
fn one_error_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stderr, got:\n{stderr}"
    );
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0]
}

#[tokio::test]
async fn unreachable_nimbus_is_one_line_and_exit_1() {
    let dir = scratch_dir("unreachable");
    for args in [
        vec!["--nimbus", "http://127.0.0.1:1", "list"],
        vec!["describe", "wc", "--nimbus", "http://127.0.0.1:1"],
        vec![
            "--nimbus",
            "http://127.0.0.1:1",
            "kill",
            "wc",
            "--wait",
            "0",
        ],
    ] {
        let out = tempest(&dir, &args, &[]).await;
        let (stdout, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        let line = one_error_line(&stderr);
        assert!(
            line.starts_with("error: cannot reach Nimbus at http://127.0.0.1:1/api/v1/"),
            "{line}"
        );
        assert!(line.to_lowercase().contains("connection refused"), "{line}");
        assert!(line.contains("the address came from --nimbus"), "{line}");
    }
}

#[tokio::test]
async fn the_env_address_is_used_and_named() {
    let dir = scratch_dir("env-address");
    let out = tempest(&dir, &["list"], &[("TEMPEST_NIMBUS", "http://127.0.0.1:1")]).await;
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = one_error_line(&stderr);
    assert!(line.contains("http://127.0.0.1:1/"), "{line}");
    assert!(line.contains("came from TEMPEST_NIMBUS"), "{line}");
}

#[tokio::test]
async fn describe_of_an_unknown_topology_passes_nimbus_message_through() {
    let nimbus = start(None).await;
    let dir = scratch_dir("describe-unknown");
    let out = tempest(&dir, &["--nimbus", &nimbus.url, "describe", "nope"], &[]).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(
        one_error_line(&stderr),
        r#"error: Nimbus refused describe "nope": no topology named "nope" (HTTP 404)"#
    );
}

#[tokio::test]
async fn a_missing_secret_says_where_to_set_it() {
    let nimbus = start(Some("s3cret")).await;
    let dir = scratch_dir("missing-secret");
    let out = tempest(&dir, &["--nimbus", &nimbus.url, "list"], &[]).await;
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = one_error_line(&stderr);
    assert!(
        line.contains("missing or wrong cluster secret (HTTP 401)"),
        "{line}"
    );
    assert!(line.contains("TEMPEST_SECRET"), "{line}");

    let out = tempest(
        &dir,
        &["--nimbus", &nimbus.url, "list"],
        &[("TEMPEST_SECRET", "s3cret")],
    )
    .await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.starts_with("NAME"), "{stdout}");
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let dir = scratch_dir("usage");
    for args in [
        vec!["describe", "../etc/passwd"],
        vec!["frobnicate"],
        vec!["rebalance", "wc", "-e", "split=zero"],
        vec!["submit", "./nothing-here", "--name", "wc"],
        vec!["--config", "missing.toml", "list"],
    ] {
        let out = tempest(&dir, &args, &[]).await;
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_config_file_typo_is_named_with_its_key_and_file() {
    let dir = scratch_dir("config-typo");
    std::fs::write(
        dir.join("tempest.toml"),
        "[client]\nnimbus_url = \"http://x:1\"\n",
    )
    .unwrap();
    let out = tempest(&dir, &["list"], &[]).await;
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let line = one_error_line(&stderr);
    assert!(line.contains("tempest.toml"), "{line}");
    assert!(line.contains("nimbus_url"), "{line}");
}
