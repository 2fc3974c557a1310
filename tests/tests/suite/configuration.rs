//! The dispatcher's settings file end to end: the real binary with
//! `--config`, flags overriding the file, and bad values refused with their
//! key and reason before anything binds.

use std::ffi::OsString;
use std::time::Duration;

use pingji_tests::metrics::{scrape, value};
use pingji_tests::process::{free_port, spawn_dispatcher};
use pingji_tests::{DispatcherProcess, ProcessOptions, dispatcher_binary, sample_city};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_is_read_and_flags_override_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let metrics_addr = free_port()?;
    let config = dir.path().join("dispatcher.toml");
    // The file's listen address and journal are overridden by the fixture's
    // --listen and --data flags; its metrics address is used as it is.
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:1\"\n[store]\npath = \"{}\"\n[metrics]\nlisten = \"{metrics_addr}\"\n[limits]\ndrain_timeout_s = 3\n",
            dir.path().join("from-file.db").display()
        ),
    )?;
    let options = ProcessOptions {
        data: dir.path().join("from-flag.db"),
        policy: None,
        areas: Some(sample_city()),
        agents: None,
        snapshot_every: None,
        log: dir.path().join("dispatcher.log"),
    };
    let extra: Vec<OsString> = vec!["--config".into(), config.into()];
    let mut process = DispatcherProcess::start_with_args(&options, &extra).await?;
    let text = scrape(metrics_addr).await?;
    assert_eq!(value(&text, "pingji_ready"), Some(1.0), "{text}");
    assert!(dir.path().join("from-flag.db").exists(), "--data overrides store.path");
    assert!(!dir.path().join("from-file.db").exists(), "--data overrides store.path");
    process.terminate().await?;
    let exit = process.wait_exit(Duration::from_secs(30)).await?;
    assert!(exit.success(), "exit {exit}; log:\n{}", process.log());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_value_is_refused_with_its_key_and_reason_before_binding() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let binary = dispatcher_binary().await?;
    // Hold the gRPC port: a dispatcher that bound before checking would fail
    // with "cannot listen" instead of naming the bad key.
    let held = std::net::TcpListener::bind("127.0.0.1:0")?;
    let listen = held.local_addr()?;
    let cases = [
        ("[limits]\ndrain_timeout_s = 0\n", "limits.drain_timeout_s: must be at least 1 second"),
        ("[metrics]\nlisten = \"localhost:9464\"\n", "metrics.listen: \"localhost:9464\" is not an IP address and port"),
        ("[store]\nkind = \"postgres\"\n", "store.kind: \"postgres\" is not a store"),
        ("[otlp]\nendpoint = \"https://collector:4317\"\n", "otlp.endpoint: https needs TLS"),
        ("[limits]\nsnapshot_every = \"often\"\n", "snapshot_every"),
        ("[metrics]\nport = 9464\n", "unknown field `port`"),
        ("[journal]\nretention_days = 36500\n", "journal.retention_days: 36500 days is more than 3650"),
    ];
    for (index, (text, expected)) in cases.iter().enumerate() {
        let config = dir.path().join(format!("bad-{index}.toml"));
        std::fs::write(&config, format!("listen = \"{listen}\"\n{text}"))?;
        let log = dir.path().join(format!("bad-{index}.log"));
        let mut args: Vec<OsString> = vec!["--config".into(), config.into()];
        // --ephemeral would override store.kind; the other cases must not touch a journal file.
        if !text.contains("[store]") {
            args.push("--ephemeral".into());
        }
        let mut child = spawn_dispatcher(&binary, &args, &log)?;
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await??;
        let output = std::fs::read_to_string(&log)?;
        assert!(!status.success(), "case {index} was accepted: {output}");
        assert!(output.contains(expected), "case {index}: expected {expected:?} in:\n{output}");
        assert!(!output.contains("cannot listen"), "case {index} bound before checking:\n{output}");
    }
    // A flag is checked the same way, named by its key.
    let log = dir.path().join("bad-flag.log");
    let args: Vec<OsString> =
        vec!["--ephemeral".into(), "--listen".into(), listen.to_string().into(), "--drain-timeout-s".into(), "0".into()];
    let mut child = spawn_dispatcher(&binary, &args, &log)?;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await??;
    let output = std::fs::read_to_string(&log)?;
    assert!(!status.success() && output.contains("limits.drain_timeout_s: must be at least 1 second"), "{output}");
    drop(held);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_variable_overrides_the_file_and_is_checked_the_same_way() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let binary = dispatcher_binary().await?;
    let config = dir.path().join("dispatcher.toml");
    std::fs::write(&config, "[limits]\ndrain_timeout_s = 5\n")?;
    let mut command = tokio::process::Command::new(&binary);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PINGJI_") {
            command.env_remove(&name);
        }
    }
    // The child's environment only: the test's own is left alone.
    let output = command
        .args(["--ephemeral", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("PINGJI_DRAIN_TIMEOUT_S", "0")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output).await??;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "accepted: {stderr}");
    assert!(stderr.contains("limits.drain_timeout_s: must be at least 1 second"), "{stderr}");
    Ok(())
}
