//! Liveness and readiness through the gRPC health service, on the real
//! `dispatcher` binary: alive (`""` serving) whenever the process answers,
//! ready (the Pingji services serving) only once it has replayed its journal
//! and owns a reachable store.

use std::ffi::OsString;
use std::time::Duration;

use pingji_tests::metrics::{scrape, value};
use pingji_tests::process::{free_port, spawn_dispatcher};
use pingji_tests::{DispatcherProcess, ProcessOptions, connect_with_retry, dispatcher_binary, sample_city, wait_until};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const PROMPTLY: Duration = Duration::from_secs(30);

async fn status(health: &mut HealthClient<Channel>, service: &str) -> Option<i32> {
    let request = HealthCheckRequest { service: service.to_string() };
    health.check(request).await.ok().map(|response| response.into_inner().status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_that_cannot_reach_its_store_is_alive_but_not_ready() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let binary = dispatcher_binary().await?;
    let listen = free_port()?;
    let metrics_addr = free_port()?;
    // Nothing listens there: the Redis store is unreachable.
    let nowhere = free_port()?;
    let args: Vec<OsString> = vec![
        "--listen".into(),
        listen.to_string().into(),
        "--store".into(),
        format!("redis://{nowhere}").into(),
        "--metrics-addr".into(),
        metrics_addr.to_string().into(),
    ];
    let log = dir.path().join("dispatcher.log");
    let mut child = spawn_dispatcher(&binary, &args, &log)?;
    let mut health = HealthClient::new(connect_with_retry(listen, PROMPTLY).await?);
    wait_until(PROMPTLY, "the process answers health", async || Ok(status(&mut health, "").await.is_some())).await?;
    assert_eq!(status(&mut health, "").await, Some(ServingStatus::Serving as i32), "alive");
    for service in ["pingji.v1.CommandService", "pingji.v1.AgentService"] {
        assert_eq!(status(&mut health, service).await, Some(ServingStatus::NotServing as i32), "{service} is not ready");
    }
    let text = scrape(metrics_addr).await?;
    assert_eq!(value(&text, "pingji_ready"), Some(0.0), "{text}");

    let pid = child.id().ok_or_else(|| anyhow::anyhow!("the dispatcher has exited"))?;
    let killed = tokio::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
    anyhow::ensure!(killed.success(), "kill -TERM failed");
    let exit = tokio::time::timeout(PROMPTLY, child.wait()).await??;
    let output = std::fs::read_to_string(&log)?;
    assert!(exit.success(), "exit {exit}:\n{output}");
    assert!(output.contains("cannot reach the shard's store"), "{output}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_is_ready_once_its_journal_is_replayed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let metrics_addr = free_port()?;
    let options = ProcessOptions {
        data: dir.path().join("p.db"),
        policy: None,
        areas: Some(sample_city()),
        agents: None,
        snapshot_every: None,
        log: dir.path().join("dispatcher.log"),
    };
    let extra: Vec<OsString> = vec!["--metrics-addr".into(), metrics_addr.to_string().into()];
    // `start` returns once the command service reports SERVING.
    let process = DispatcherProcess::start_with_args(&options, &extra).await?;
    let mut health = HealthClient::new(process.channel().await?);
    assert_eq!(status(&mut health, "pingji.v1.AgentService").await, Some(ServingStatus::Serving as i32));
    // The log is written to a file as it happens: the line that says so may
    // land just after the service already answers.
    wait_until(PROMPTLY, "the log says the dispatcher is listening", async || Ok(process.log().contains("dispatcher listening")))
        .await?;
    let log = process.log();
    let replayed = log.find("state recovered from the journal").ok_or_else(|| anyhow::anyhow!("no recovery in:\n{log}"))?;
    let listening = log.find("dispatcher listening").ok_or_else(|| anyhow::anyhow!("never listening:\n{log}"))?;
    assert!(replayed < listening, "served before the journal was replayed:\n{log}");
    let text = scrape(metrics_addr).await?;
    assert_eq!(value(&text, "pingji_ready"), Some(1.0), "{text}");
    process.kill().await
}
