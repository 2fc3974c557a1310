//! Several dispatchers on one Redis: a real `redis-server` (the fixture of
//! [`pingji_test_redis`], shared with the dispatcher's own
//! tests and benches), and the `dispatcher` binary started with
//! `--store redis://...` as a child process that can be killed (SIGKILL),
//! paused (SIGSTOP), resumed (SIGCONT), stopped (SIGTERM) and started again
//! on the same address. [`RedisCluster`] (from the same fixture crate)
//! starts a real local Redis Cluster for `--store redis+cluster://...`.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use crate::auth::Commands;
use anyhow::Context;
use pingji_client::tls::ClientTls;
use pingji_dispatcher::server::standby::OWNER_METADATA;
use pingji_proto::v1 as pb;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

pub use pingji_test_redis::{ClusterNode, Persistence, RedisCluster, RedisServer};

use crate::process::{dispatcher_binary, file_args, spawn_dispatcher};
use crate::wait::{connect_endpoint_with_retry, connect_with_retry};

/// How long a started process may take to listen.
const LISTENING_WITHIN: Duration = Duration::from_secs(60);
/// Fresh ports tried when the one we picked was taken in the meantime.
const PORT_ATTEMPTS: usize = 5;
/// How often the state of a process is polled.
const POLL_EVERY: Duration = Duration::from_millis(25);

/// What a dispatcher on Redis is started with.
#[derive(Clone, Debug)]
pub struct SharedStoreOptions {
    /// `--store`.
    pub redis_url: String,
    pub policy: Option<PathBuf>,
    pub areas: Option<PathBuf>,
    pub agents: Option<PathBuf>,
    /// `--snapshot-every`; `None` keeps the binary's default.
    pub snapshot_every: Option<u64>,
    /// `--lease-ttl-ms` and `--lease-renew-ms`; `None` keeps the defaults.
    pub lease_ms: Option<(u64, u64)>,
    /// `--shard`; `None` serves the whole city as one shard.
    pub shard: Option<String>,
    /// Where the process's log (stderr) goes; each start appends.
    pub log: PathBuf,
    /// TLS: the dispatcher's flags (`--tls-cert ...`) and how the fixture's
    /// own clients connect; plain text when `None`.
    pub tls: Option<(Vec<OsString>, ClientTls)>,
    /// `--photos-dir`: where photos are stored (one directory every
    /// dispatcher of the city shares); none when `None`.
    pub photos_dir: Option<PathBuf>,
}

/// A `dispatcher --store redis://...` process, owner or standby. Dropping it
/// kills the process (SIGKILL, which ends a paused process too).
pub struct SharedDispatcher {
    options: SharedStoreOptions,
    address: SocketAddr,
    child: Option<Child>,
}

impl SharedDispatcher {
    /// Starts the binary on a free port (advertised as itself) and waits
    /// until it listens; it may then be the owner or a standby.
    pub async fn start(options: &SharedStoreOptions) -> anyhow::Result<SharedDispatcher> {
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let address = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?.local_addr()?;
            let mut dispatcher = SharedDispatcher { options: options.clone(), address, child: None };
            match dispatcher.spawn_and_listen().await {
                Ok(()) => return Ok(dispatcher),
                Err(error) if dispatcher.could_not_listen() => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error
            .unwrap_or_else(|| anyhow::anyhow!("no free port"))
            .context(format!("no free port after {PORT_ATTEMPTS} attempts")))
    }

    /// Starts the process again on the same address, as a supervisor would
    /// after it exited.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "the dispatcher is still running; kill it or wait for its exit first");
        let deadline = Instant::now() + LISTENING_WITHIN;
        loop {
            match self.spawn_and_listen().await {
                Ok(()) => return Ok(()),
                // The old process's socket may linger for a moment.
                Err(_) if self.could_not_listen() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// What the process has logged so far, over all its starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.options.log).unwrap_or_default()
    }

    /// `http://HOST:PORT`, or `https://HOST:PORT` when the process serves TLS.
    pub fn url(&self) -> String {
        match &self.options.tls {
            Some(_) => format!("https://{}", self.address),
            None => format!("http://{}", self.address),
        }
    }

    pub async fn channel(&self) -> anyhow::Result<Channel> {
        match &self.options.tls {
            Some((_, tls)) => {
                let endpoint = tls.endpoint(&self.url()).map_err(anyhow::Error::msg)?;
                connect_endpoint_with_retry(endpoint, self.address, LISTENING_WITHIN).await
            }
            None => connect_with_retry(self.address, LISTENING_WITHIN).await,
        }
    }

    pub async fn command(&self) -> anyhow::Result<Commands> {
        Ok(crate::auth::commands(self.channel().await?))
    }

    /// Waits until the process owns the shard: health reports the command
    /// service as serving. Fails at once if the process exits.
    pub async fn wait_owner(&mut self, within: Duration) -> anyhow::Result<()> {
        let mut health = HealthClient::new(self.channel().await?);
        let deadline = Instant::now() + within;
        loop {
            self.ensure_running("while waiting for it to own the shard")?;
            if serving_status(&mut health, "pingji.v1.CommandService").await == Some(ServingStatus::Serving) {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the dispatcher at {} did not own the shard within {within:?}; log:\n{}",
                self.address,
                self.log()
            );
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Waits until the process stands by and names an owner: health reports
    /// the Pingji services as not serving, and a call is answered
    /// `unavailable` with `x-pingji-owner`. Returns that answer.
    pub async fn wait_standby(&mut self, within: Duration) -> anyhow::Result<tonic::Status> {
        let channel = self.channel().await?;
        let mut health = HealthClient::new(channel.clone());
        let mut command = crate::auth::commands(channel);
        let deadline = Instant::now() + within;
        loop {
            self.ensure_running("while waiting for it to stand by")?;
            let not_serving = serving_status(&mut health, "pingji.v1.CommandService").await == Some(ServingStatus::NotServing)
                && serving_status(&mut health, "pingji.v1.AgentService").await == Some(ServingStatus::NotServing);
            if not_serving {
                let probe = pb::GetIncidentRequest { id: "standby-probe".into() };
                if let Err(status) = command.get_incident(probe).await
                    && status.code() == tonic::Code::Unavailable
                    && owner_of(&status).is_some()
                {
                    return Ok(status);
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the dispatcher at {} did not stand by within {within:?}; log:\n{}",
                self.address,
                self.log()
            );
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Kills the process with SIGKILL and reaps it.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.context("cannot kill the dispatcher")?;
        }
        Ok(())
    }

    /// Pauses the process (SIGSTOP): it keeps its sockets and its state but
    /// runs nothing, as a process stuck in a long GC pause or a frozen VM.
    /// Returns once every thread has stopped: the kernel stops the threads
    /// of a process one by one, and until the last one stops the process
    /// may still answer a request.
    pub async fn pause(&self) -> anyhow::Result<()> {
        self.signal("STOP").await?;
        let pid = self.pid().context("the dispatcher is not running")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !all_threads_stopped(pid)? {
            anyhow::ensure!(Instant::now() < deadline, "the dispatcher (pid {pid}) did not stop within 10 s of SIGSTOP");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    }

    /// Resumes a paused process (SIGCONT).
    pub async fn resume(&self) -> anyhow::Result<()> {
        self.signal("CONT").await
    }

    /// Sends SIGTERM (a clean shutdown).
    pub async fn terminate(&self) -> anyhow::Result<()> {
        self.signal("TERM").await
    }

    /// Waits for the process to exit by itself and returns how it did.
    pub async fn wait_exit(&mut self, within: Duration) -> anyhow::Result<ExitStatus> {
        let child = self.child.as_mut().context("the dispatcher is not running")?;
        let status = tokio::time::timeout(within, child.wait())
            .await
            .with_context(|| format!("the dispatcher at {} did not exit within {within:?}", self.address))??;
        self.child = None;
        Ok(status)
    }

    /// Whether the process has exited (and reaps it if so).
    pub fn has_exited(&mut self) -> bool {
        let exited = match self.child.as_mut() {
            None => true,
            Some(child) => !matches!(child.try_wait(), Ok(None)),
        };
        if exited {
            self.child = None;
        }
        exited
    }

    async fn signal(&self, name: &str) -> anyhow::Result<()> {
        let pid = self.pid().context("the dispatcher is not running")?;
        let status =
            Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().await.context("cannot run kill")?;
        anyhow::ensure!(status.success(), "kill -{name} {pid} failed: {status}");
        Ok(())
    }

    fn ensure_running(&mut self, what: &str) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            self.child = None;
            anyhow::bail!("the dispatcher at {} exited ({status}) {what}; log:\n{}", self.address, self.log());
        }
        anyhow::ensure!(self.child.is_some(), "the dispatcher is not running {what}");
        Ok(())
    }

    fn could_not_listen(&self) -> bool {
        self.log().lines().last().is_some_and(|line| line.contains("cannot listen"))
    }

    async fn spawn_and_listen(&mut self) -> anyhow::Result<()> {
        let binary = dispatcher_binary().await?;
        self.child = Some(self.spawn(&binary)?);
        let deadline = Instant::now() + LISTENING_WITHIN;
        loop {
            self.ensure_running("while starting")?;
            if tokio::net::TcpStream::connect(self.address).await.is_ok() {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the dispatcher did not listen on {} within {LISTENING_WITHIN:?}; log:\n{}",
                self.address,
                self.log()
            );
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    fn spawn(&self, binary: &Path) -> anyhow::Result<Child> {
        let options = &self.options;
        let mut args: Vec<OsString> = vec![
            "--listen".into(),
            self.address.to_string().into(),
            "--store".into(),
            options.redis_url.clone().into(),
            "--advertise".into(),
            self.address.to_string().into(),
            // Clean-shutdown tests should not wait the default 10 s for streams.
            "--drain-timeout-s".into(),
            "1".into(),
        ];
        args.extend(file_args(options.policy.as_ref(), options.areas.as_ref(), options.agents.as_ref(), options.snapshot_every));
        if let Some(shard) = &options.shard {
            args.push("--shard".into());
            args.push(shard.into());
        }
        if let Some(photos_dir) = &options.photos_dir {
            args.push("--photos-dir".into());
            args.push(photos_dir.into());
        }
        if let Some((ttl_ms, renew_ms)) = options.lease_ms {
            args.push("--lease-ttl-ms".into());
            args.push(ttl_ms.to_string().into());
            args.push("--lease-renew-ms".into());
            args.push(renew_ms.to_string().into());
        }
        if let Some((tls_args, _)) = &options.tls {
            args.extend(tls_args.iter().cloned());
        }
        spawn_dispatcher(binary, &args, &options.log)
    }
}

/// Whether every thread of process `pid` is stopped (state `T` in
/// `/proc/PID/task/*/stat`, Linux).
fn all_threads_stopped(pid: u32) -> anyhow::Result<bool> {
    let tasks =
        std::fs::read_dir(format!("/proc/{pid}/task")).with_context(|| format!("cannot list the threads of pid {pid}"))?;
    for task in tasks {
        let stat = std::fs::read_to_string(task?.path().join("stat")).unwrap_or_default();
        // "TID (name) STATE ...": the name may hold spaces, the state follows
        // the last ')'.
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
        if state != Some('T') {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The owner's address named by a standby's answer (`x-pingji-owner`).
pub fn owner_of(status: &tonic::Status) -> Option<String> {
    status.metadata().get(OWNER_METADATA).and_then(|value| value.to_str().ok()).map(str::to_owned)
}

/// What health reports for `service`, or `None` when it cannot be asked.
pub async fn serving_status(health: &mut HealthClient<Channel>, service: &str) -> Option<ServingStatus> {
    let request = tonic_health::pb::HealthCheckRequest { service: service.to_string() };
    let response = health.check(request).await.ok()?;
    ServingStatus::try_from(response.into_inner().status).ok()
}

/// The outcome of one create under a steady load.
#[derive(Debug)]
pub enum CreateOutcome {
    Acknowledged(String),
    Refused(tonic::Code, String),
}

/// Creates incidents at `address` one after the other (`load-0000`, ...,
/// each made by `incident` from its id and number) until told to stop,
/// whatever the answers, and reports every outcome: the load under which
/// the tests watch a Redis failover or pause.
pub async fn steady_creates(
    address: SocketAddr,
    incident: impl Fn(String, usize) -> pb::CreateIncidentRequest,
    outcomes: tokio::sync::mpsc::Sender<CreateOutcome>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10));
    let mut command = crate::commands(endpoint.connect_lazy());
    for index in 0.. {
        if *stop.borrow() {
            break;
        }
        let outcome = match command.create_incident(incident(format!("load-{index:04}"), index)).await {
            Ok(response) => CreateOutcome::Acknowledged(response.into_inner().id),
            Err(status) => CreateOutcome::Refused(status.code(), status.message().to_owned()),
        };
        let pause = if matches!(outcome, CreateOutcome::Refused(..)) { 100 } else { 20 };
        outcomes.send(outcome).await?;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(pause)) => {}
            _ = stop.changed() => {}
        }
    }
    Ok(())
}
