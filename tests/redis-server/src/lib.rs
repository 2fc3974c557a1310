//! A real `redis-server` for tests and benches: started on a free loopback
//! port in a directory the caller owns, killed with SIGKILL, and started
//! again on the same port and directory. A crate of its own, outside the
//! production code, so that the dispatcher's unit tests and benches (as a
//! dev-dependency) and the end-to-end tests (`pingji-tests`) share one
//! fixture.

#![forbid(unsafe_code)]
//!
//! `redis-server` must be installed (`apt-get install redis-server`; CI's
//! `.ci/run` does it). When it is missing, starting fails with a message
//! that says so: the Redis tests fail rather than skip.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

mod cluster;

pub use cluster::{ClusterNode, RedisCluster};

/// How long a started server may take to answer PING (it may be loading an
/// append-only file).
const READY_WITHIN: Duration = Duration::from_secs(20);
/// Ports tried when the free port we picked was taken in the meantime.
const PORT_ATTEMPTS: usize = 5;

/// How the server keeps its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing on disk (`--save "" --appendonly no`): a restart starts empty.
    None,
    /// Append-only file with `appendfsync always`: every acknowledged write
    /// survives `kill -9` of Redis.
    AppendFsyncAlways,
}

/// A running `redis-server` child process. Dropping it kills the process.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    persistence: Persistence,
    /// More `redis-server` arguments (a cluster node's).
    extra_args: Vec<String>,
}

impl RedisServer {
    /// Starts a server without persistence on a free port, its files in `dir`.
    pub fn start(dir: &Path) -> anyhow::Result<RedisServer> {
        RedisServer::start_with(dir, Persistence::None)
    }

    /// Starts a server on a free port with its files in `dir`.
    pub fn start_with(dir: &Path, persistence: Persistence) -> anyhow::Result<RedisServer> {
        RedisServer::start_on_free_port(dir, persistence, Vec::new(), free_port)
    }

    /// Starts a server with `extra_args` on a port `pick_port` chose,
    /// trying again with another when that one was taken meanwhile.
    pub(crate) fn start_on_free_port(
        dir: &Path,
        persistence: Persistence,
        extra_args: Vec<String>,
        pick_port: fn() -> anyhow::Result<u16>,
    ) -> anyhow::Result<RedisServer> {
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = pick_port()?;
            let mut server = RedisServer { child: None, port, dir: dir.to_owned(), persistence, extra_args: extra_args.clone() };
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(error) if server.log().contains("Address already in use") => {
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error
            .unwrap_or_else(|| anyhow::anyhow!("no free port"))
            .context(format!("no free port for redis-server after {PORT_ATTEMPTS} attempts")))
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the server has logged, over all its starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Runs one command, e.g. `["DEL", "pingji:{city}:lease"]`, to set up
    /// or break things behind the dispatcher's back.
    pub fn execute(&self, command: &[&str]) -> anyhow::Result<()> {
        let (name, args) = command.split_first().context("an empty command")?;
        let mut connection = redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(5))?;
        redis::cmd(name).arg(args).exec(&mut connection).with_context(|| format!("redis command {command:?} failed"))
    }

    /// Kills the server with SIGKILL (no shutdown save) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory, with the
    /// same persistence (so it reloads its append-only file, if any).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let log_before = self.log().len();
            match self.spawn_and_wait() {
                Ok(()) => return Ok(()),
                // The old socket may linger for a moment.
                Err(_)
                    if self.log().get(log_before..).is_some_and(|new| new.contains("Address already in use"))
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The directory of the server's files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis-server.log")
    }

    fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let mut command = Command::new("redis-server");
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", ""])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.log_path())
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match self.persistence {
            Persistence::None => command.args(["--appendonly", "no"]),
            Persistence::AppendFsyncAlways => command.args(["--appendonly", "yes", "--appendfsync", "always"]),
        };
        let child = match command.spawn() {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                anyhow::bail!(
                    "redis-server is not installed, and the redis store tests need a real one: \
                     install it (apt-get install redis-server; CI's .ci/run does) and run again"
                )
            }
            Err(error) => return Err(error).context("cannot start redis-server"),
        };
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = redis::Client::open(self.url())?;
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                anyhow::bail!("redis-server exited while starting ({status}); its log:\n{}", self.log());
            }
            let pong = client
                .get_connection_with_timeout(Duration::from_secs(1))
                .and_then(|mut connection| redis::cmd("PING").query::<String>(&mut connection));
            if pong.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                anyhow::bail!("redis-server did not answer PING within {READY_WITHIN:?}; its log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port that was free a moment ago.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
