//! The compiled `dispatcher` binary as a child process, for tests that kill
//! it (SIGKILL) and start it again on the same journal file.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::auth::Commands;
use anyhow::Context;
use pingji_client::tls::ClientTls;
use tokio::process::{Child, Command};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;

use crate::server::is_serving;
use crate::wait::{connect_endpoint_with_retry, connect_with_retry};

/// How long a started process may take to serve.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// Spawns tried when the free port we picked was taken in the meantime.
const PORT_ATTEMPTS: usize = 5;

static BINARY: OnceCell<PathBuf> = OnceCell::const_new();

/// The `dispatcher` binary next to this test's target directory
/// (`target/debug/deps/<test>` → `target/debug/dispatcher`).
///
/// When run under cargo (`CARGO` is set), it is built first with
/// `cargo build -p pingji-dispatcher --bin dispatcher`: `cargo test -p
/// pingji-tests` does not build other packages' binaries, so the file could
/// be missing or older than the sources. That build is a no-op when fresh.
pub async fn dispatcher_binary() -> anyhow::Result<PathBuf> {
    BINARY.get_or_try_init(find_or_build_binary).await.cloned()
}

async fn find_or_build_binary() -> anyhow::Result<PathBuf> {
    crate::binaries::workspace_binary("pingji-dispatcher", "dispatcher").await
}

/// What the process is started with.
#[derive(Clone, Debug)]
pub struct ProcessOptions {
    /// The SQLite journal (`--data`).
    pub data: PathBuf,
    pub policy: Option<PathBuf>,
    pub areas: Option<PathBuf>,
    pub agents: Option<PathBuf>,
    /// `--snapshot-every`; `None` keeps the binary's default.
    pub snapshot_every: Option<u64>,
    /// Where the process's log (stderr) goes; each start appends.
    pub log: PathBuf,
}

/// A running `dispatcher` process. Dropping it kills the process.
pub struct DispatcherProcess {
    child: Child,
    address: SocketAddr,
    log: PathBuf,
    /// How the test's own clients connect: `Some` when the process serves TLS.
    tls: Option<ClientTls>,
}

/// The open-file limit (`RLIMIT_NOFILE`) a process is started with, as
/// `prlimit --nofile=SOFT:HARD` sets it: soft, then hard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFiles {
    pub soft: u64,
    pub hard: u64,
}

impl DispatcherProcess {
    /// Starts the binary on a free port and waits until health reports the
    /// command service as serving. The binary cannot report a port it chose
    /// itself, so the test picks one (bind port 0, drop the listener) and
    /// starts again on another if someone took it in between.
    pub async fn start(options: &ProcessOptions) -> anyhow::Result<DispatcherProcess> {
        DispatcherProcess::start_with_args(options, &[]).await
    }

    /// As [`DispatcherProcess::start`], with more flags after the usual ones.
    pub async fn start_with_args(options: &ProcessOptions, extra_args: &[OsString]) -> anyhow::Result<DispatcherProcess> {
        DispatcherProcess::start_serving(options, extra_args, None, None).await
    }

    /// As [`DispatcherProcess::start_with_args`], under `prlimit` with the
    /// open-file limit `open_files` (util-linux's `prlimit` must be installed).
    pub async fn start_with_open_files(
        options: &ProcessOptions,
        extra_args: &[OsString],
        open_files: OpenFiles,
    ) -> anyhow::Result<DispatcherProcess> {
        DispatcherProcess::start_serving(options, extra_args, None, Some(open_files)).await
    }

    /// As [`DispatcherProcess::start_with_args`] for a process serving TLS
    /// (the TLS flags are among `extra_args`): the fixture's own clients
    /// (readiness, [`DispatcherProcess::command`]) connect with `tls`.
    pub async fn start_tls(
        options: &ProcessOptions,
        extra_args: &[OsString],
        tls: ClientTls,
    ) -> anyhow::Result<DispatcherProcess> {
        DispatcherProcess::start_serving(options, extra_args, Some(tls), None).await
    }

    async fn start_serving(
        options: &ProcessOptions,
        extra_args: &[OsString],
        tls: Option<ClientTls>,
        open_files: Option<OpenFiles>,
    ) -> anyhow::Result<DispatcherProcess> {
        let binary = dispatcher_binary().await?;
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let address = free_port()?;
            match DispatcherProcess::start_on(&binary, options, address, extra_args, tls.clone(), open_files).await {
                Ok(process) => return Ok(process),
                Err(StartError::PortTaken(error)) => last_error = Some(error),
                Err(StartError::Failed(error)) => return Err(error),
            }
        }
        Err(last_error
            .unwrap_or_else(|| anyhow::anyhow!("no free port"))
            .context(format!("no free port after {PORT_ATTEMPTS} attempts")))
    }

    async fn start_on(
        binary: &Path,
        options: &ProcessOptions,
        address: SocketAddr,
        extra_args: &[OsString],
        tls: Option<ClientTls>,
        open_files: Option<OpenFiles>,
    ) -> Result<DispatcherProcess, StartError> {
        let mut args: Vec<OsString> =
            vec!["--listen".into(), address.to_string().into(), "--data".into(), options.data.clone().into()];
        args.extend(file_args(options.policy.as_ref(), options.areas.as_ref(), options.agents.as_ref(), options.snapshot_every));
        args.extend(extra_args.iter().cloned());
        let child = spawn_dispatcher_with(binary, &args, &options.log, open_files)?;
        let mut process = DispatcherProcess { child, address, log: options.log.clone(), tls };
        process.wait_ready().await?;
        Ok(process)
    }

    async fn wait_ready(&mut self) -> Result<(), StartError> {
        let deadline = Instant::now() + READY_WITHIN;
        let mut health: Option<HealthClient<Channel>> = None;
        loop {
            if let Some(status) = self.child.try_wait().context("cannot poll the process")? {
                let log = self.log();
                let error = anyhow::anyhow!("the dispatcher exited while starting ({status}); log:\n{log}");
                return Err(if log.contains("cannot listen") { StartError::PortTaken(error) } else { StartError::Failed(error) });
            }
            if health.is_none()
                && let Ok(channel) = self.connect(Duration::ZERO).await
            {
                health = Some(HealthClient::new(channel));
            }
            if let Some(client) = health.as_mut()
                && is_serving(client, "pingji.v1.CommandService").await
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartError::Failed(anyhow::anyhow!(
                    "the dispatcher did not serve within {READY_WITHIN:?}; log:\n{}",
                    self.log()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://HOST:PORT`, or `https://HOST:PORT` when the process serves TLS.
    pub fn url(&self) -> String {
        match &self.tls {
            Some(_) => format!("https://{}", self.address),
            None => format!("http://{}", self.address),
        }
    }

    pub async fn channel(&self) -> anyhow::Result<Channel> {
        self.connect(READY_WITHIN).await
    }

    async fn connect(&self, within: Duration) -> anyhow::Result<Channel> {
        match &self.tls {
            Some(tls) => {
                let endpoint = tls.endpoint(&self.url()).map_err(anyhow::Error::msg)?;
                connect_endpoint_with_retry(endpoint, self.address, within).await
            }
            None => connect_with_retry(self.address, within).await,
        }
    }

    pub async fn command(&self) -> anyhow::Result<Commands> {
        Ok(crate::auth::commands(self.channel().await?))
    }

    /// Opens `id`'s session with a newly issued token.
    pub async fn open_session(&self, id: &str) -> anyhow::Result<crate::AgentSession> {
        let token = crate::auth::agent_token(&mut self.command().await?, id).await?;
        let mut agents = pingji_proto::v1::agent_service_client::AgentServiceClient::new(self.channel().await?);
        crate::AgentSession::open(&mut agents, id, &token).await
    }

    /// The process id (also the dispatcher's under `prlimit`, which execs it).
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("the dispatcher has already exited")
    }

    /// A field of `/proc/PID/status` in KiB, e.g. `VmRSS` (resident memory).
    pub fn status_kib(&self, field: &str) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).context("cannot read /proc/PID/status")?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field).and_then(|rest| rest.strip_prefix(':')))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {field} in /proc/PID/status"))
    }

    /// CPU time the process has used so far (all its threads, user and
    /// system), from `/proc/PID/stat` in clock ticks of 10 ms (USER_HZ).
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()?)).context("cannot read /proc/PID/stat")?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).context("no command name in /proc/PID/stat")?;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        let ticks: u64 = [11, 12].iter().filter_map(|index| fields.get(*index)?.parse::<u64>().ok()).sum();
        Ok(Duration::from_millis(ticks * 10))
    }

    /// The process's open-file limit now, from `/proc/PID/limits`.
    pub fn open_files(&self) -> anyhow::Result<OpenFiles> {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.pid()?)).context("cannot read /proc/PID/limits")?;
        let line = limits.lines().find(|line| line.starts_with("Max open files")).context("no open-file limit")?;
        let numbers: Vec<u64> =
            line.trim_start_matches("Max open files").split_whitespace().filter_map(|word| word.parse().ok()).collect();
        match numbers[..] {
            [soft, hard] => Ok(OpenFiles { soft, hard }),
            _ => anyhow::bail!("cannot read the open-file limit from {line:?}"),
        }
    }

    /// What the process has logged so far (all starts sharing the log file).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit by itself, at most `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> anyhow::Result<std::process::ExitStatus> {
        tokio::time::timeout(within, self.child.wait())
            .await
            .with_context(|| format!("the dispatcher did not exit within {within:?}; log:\n{}", self.log()))?
            .context("cannot wait for the dispatcher")
    }

    /// Sends SIGTERM (a graceful stop); [`DispatcherProcess::wait_exit`]
    /// then waits for the exit.
    pub async fn terminate(&self) -> anyhow::Result<()> {
        let pid = self.child.id().context("the dispatcher has already exited")?;
        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.context("cannot run kill")?;
        anyhow::ensure!(status.success(), "kill -TERM {pid} failed: {status}");
        Ok(())
    }

    /// Kills the process with SIGKILL (no drain, no final snapshot) and
    /// reaps it.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("cannot kill the dispatcher")
    }
}

/// The flags for the files a test dispatcher loads, and its snapshot interval.
pub fn file_args(
    policy: Option<&PathBuf>,
    areas: Option<&PathBuf>,
    agents: Option<&PathBuf>,
    snapshot_every: Option<u64>,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    for (flag, value) in [("--policy", policy), ("--areas", areas), ("--agents", agents)] {
        if let Some(value) = value {
            args.push(flag.into());
            args.push(value.clone().into());
        }
    }
    if let Some(every) = snapshot_every {
        args.push("--snapshot-every".into());
        args.push(every.to_string().into());
    }
    args
}

/// Starts the dispatcher binary with `args`, its stderr appended to `log`.
/// The binary reads PINGJI_* variables as flag defaults; the test's own
/// environment must not change what it runs with, so they are removed.
pub fn spawn_dispatcher(binary: &Path, args: &[OsString], log: &Path) -> anyhow::Result<Child> {
    spawn_dispatcher_with(binary, args, log, None)
}

/// As [`spawn_dispatcher`], under `prlimit --nofile=SOFT:HARD` with `open_files`.
pub fn spawn_dispatcher_with(
    binary: &Path,
    args: &[OsString],
    log: &Path,
    open_files: Option<OpenFiles>,
) -> anyhow::Result<Child> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open log {}", log.display()))?;
    let mut command = match open_files {
        Some(OpenFiles { soft, hard }) => {
            let mut command = Command::new("prlimit");
            command.arg(format!("--nofile={soft}:{hard}")).arg("--").arg(binary);
            command
        }
        None => Command::new(binary),
    };
    command.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::from(log_file)).kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PINGJI_") {
            command.env_remove(&name);
        }
    }
    command.env("PINGJI_BOOTSTRAP_ADMIN_TOKEN", crate::auth::ADMIN_TOKEN);
    command.spawn().with_context(|| format!("cannot start {}", binary.display()))
}

enum StartError {
    PortTaken(anyhow::Error),
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for StartError {
    fn from(error: anyhow::Error) -> Self {
        StartError::Failed(error)
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}
