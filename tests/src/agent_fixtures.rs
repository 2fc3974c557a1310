//! Fixtures for the field agent's end-to-end tests: the `dispatcher` binary
//! that can be stopped (SIGKILL or SIGTERM) and started again on the same
//! address and journal, so that a client can reconnect to it by itself; and
//! the `field-agent` binary for headless runs.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;

use crate::process::{ProcessOptions, dispatcher_binary, file_args, spawn_dispatcher};
use crate::server::is_serving;
use crate::wait::connect_with_retry;

/// How long a started process may take to serve.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long a stopped process may take to exit.
const EXIT_WITHIN: Duration = Duration::from_secs(30);

static FIELD_AGENT: OnceCell<PathBuf> = OnceCell::const_new();

/// The `field-agent` binary next to this test's target directory, built
/// first with `cargo build -p pingji-field-agent --bin field-agent` when run
/// under cargo (a no-op when fresh), as [`dispatcher_binary`] does.
pub async fn field_agent_binary() -> anyhow::Result<PathBuf> {
    FIELD_AGENT.get_or_try_init(find_or_build_field_agent).await.cloned()
}

async fn find_or_build_field_agent() -> anyhow::Result<PathBuf> {
    crate::binaries::workspace_binary("pingji-field-agent", "field-agent").await
}

/// A `dispatcher` process that keeps its address across restarts.
pub struct RestartableDispatcher {
    options: ProcessOptions,
    address: SocketAddr,
    child: Option<Child>,
}

impl RestartableDispatcher {
    /// Starts the binary on a free port and waits until it serves.
    pub async fn start(options: &ProcessOptions) -> anyhow::Result<RestartableDispatcher> {
        let address = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?.local_addr()?;
        let mut dispatcher = RestartableDispatcher { options: options.clone(), address, child: None };
        dispatcher.restart().await?;
        Ok(dispatcher)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:PORT`, as a client is given it.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub async fn command(&self) -> anyhow::Result<crate::Commands> {
        Ok(crate::commands(connect_with_retry(self.address, READY_WITHIN).await?))
    }

    /// What the process has logged so far, over all starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.options.log).unwrap_or_default()
    }

    /// Kills the process with SIGKILL (no drain, no final snapshot).
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.context("cannot kill the dispatcher")?;
        }
        Ok(())
    }

    /// Sends SIGTERM and waits for the process to drain and exit.
    pub async fn terminate(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id().context("the dispatcher has already exited")?;
        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.context("cannot run kill")?;
        anyhow::ensure!(status.success(), "kill -TERM {pid} failed: {status}");
        let exit =
            tokio::time::timeout(EXIT_WITHIN, child.wait()).await.context("the dispatcher did not exit after SIGTERM")??;
        anyhow::ensure!(exit.success(), "the dispatcher exited with {exit} after SIGTERM; log:\n{}", self.log());
        Ok(())
    }

    /// Starts the process (again) on the same address and journal. The
    /// address may still be held for a moment by the old process's sockets,
    /// so a start that cannot listen is tried again until the deadline.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "the dispatcher is still running; kill or terminate it first");
        let binary = dispatcher_binary().await?;
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let log_before = self.log().len();
            let mut child = self.spawn(&binary)?;
            match wait_ready(&mut child, self.address, deadline).await {
                Ok(()) => {
                    self.child = Some(child);
                    return Ok(());
                }
                Err(WaitError::Exited(_))
                    if self.log().get(log_before..).is_some_and(|new| new.contains("cannot listen"))
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(WaitError::Exited(status)) => {
                    anyhow::bail!("the dispatcher exited while starting ({status}); log:\n{}", self.log())
                }
                Err(WaitError::NotReady) => {
                    let _ = child.kill().await;
                    anyhow::bail!("the dispatcher did not serve within {READY_WITHIN:?}; log:\n{}", self.log())
                }
            }
        }
    }

    fn spawn(&self, binary: &Path) -> anyhow::Result<Child> {
        let options = &self.options;
        let mut args: Vec<OsString> = vec![
            "--listen".into(),
            self.address.to_string().into(),
            "--data".into(),
            options.data.clone().into(),
            // SIGTERM tests should not wait the default 10 s for open streams.
            "--drain-timeout-s".into(),
            "1".into(),
        ];
        args.extend(file_args(options.policy.as_ref(), options.areas.as_ref(), options.agents.as_ref(), options.snapshot_every));
        spawn_dispatcher(binary, &args, &options.log)
    }
}

enum WaitError {
    Exited(std::process::ExitStatus),
    NotReady,
}

async fn wait_ready(child: &mut Child, address: SocketAddr, deadline: Instant) -> Result<(), WaitError> {
    let mut health: Option<HealthClient<Channel>> = None;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(WaitError::Exited(status));
        }
        if health.is_none()
            && let Ok(channel) = connect_with_retry(address, Duration::ZERO).await
        {
            health = Some(HealthClient::new(channel));
        }
        if let Some(client) = health.as_mut()
            && is_serving(client, "pingji.v1.CommandService").await
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(WaitError::NotReady);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
