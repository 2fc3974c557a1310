//! The compiled `pingji` console binary, run as a user would: with
//! arguments, returning its exit status, stdout and stderr; or spawned for
//! commands that keep running (`events --follow`), read line by line.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// How long one command may run before the test gives up on it.
const COMMAND_WITHIN: Duration = Duration::from_secs(60);

static BINARY: OnceCell<PathBuf> = OnceCell::const_new();

/// The `pingji` binary next to this test's target directory
/// (`target/debug/deps/<test>` → `target/debug/pingji`).
///
/// Under cargo (`CARGO` is set) it is built first with `cargo build -p
/// pingji-console --bin pingji`, since `cargo test -p pingji-tests` does not
/// build other packages' binaries; that build is a no-op when fresh.
pub async fn pingji_binary() -> anyhow::Result<PathBuf> {
    BINARY.get_or_try_init(find_or_build_binary).await.cloned()
}

async fn find_or_build_binary() -> anyhow::Result<PathBuf> {
    crate::binaries::workspace_binary("pingji-console", "pingji").await
}

/// What a finished command left behind.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// The exit code; `None` when a signal ended the process.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Stdout as one JSON document.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.stdout).with_context(|| format!("stdout is not one JSON document:\n{}", self.stdout))
    }

    /// Fails with the whole output unless the command exited with 0.
    pub fn success(self) -> anyhow::Result<CliOutput> {
        anyhow::ensure!(
            self.status.success(),
            "pingji failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        Ok(self)
    }
}

/// A `pingji` command for `server` with `args`, its environment free of
/// `PINGJI_*` variables so that the test's own environment cannot change
/// what it does, but for `PINGJI_TOKEN`: the test admin's token (a
/// `--token` among `args` wins over it).
async fn command(server: &str, args: &[impl AsRef<OsStr>]) -> anyhow::Result<Command> {
    let mut command = Command::new(pingji_binary().await?);
    command.arg("--server").arg(server).args(args).stdin(Stdio::null()).kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PINGJI_") {
            command.env_remove(&name);
        }
    }
    command.env("PINGJI_TOKEN", crate::auth::ADMIN_TOKEN);
    Ok(command)
}

/// Runs `pingji --server SERVER ARGS...` to the end.
pub async fn run_pingji(server: &str, args: &[impl AsRef<OsStr>]) -> anyhow::Result<CliOutput> {
    let mut command = command(server, args).await?;
    let output = tokio::time::timeout(COMMAND_WITHIN, command.output())
        .await
        .with_context(|| format!("pingji did not finish within {COMMAND_WITHIN:?}"))?
        .context("cannot run pingji")?;
    Ok(CliOutput {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// A `pingji` process that keeps running, read line by line. Dropping it
/// kills the process.
pub struct RunningCli {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    seen: Vec<String>,
}

impl RunningCli {
    /// Starts `pingji --server SERVER ARGS...` with stdout piped.
    pub async fn spawn(server: &str, args: &[impl AsRef<OsStr>]) -> anyhow::Result<RunningCli> {
        let mut command = command(server, args).await?;
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().context("cannot start pingji")?;
        let stdout = child.stdout.take().context("pingji has no stdout")?;
        Ok(RunningCli { child, lines: BufReader::new(stdout).lines(), seen: Vec::new() })
    }

    /// Every line read so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// Reads lines until one matches `predicate` and returns it; fails when
    /// `within` passes first or the output ends.
    pub async fn wait_for_line(
        &mut self,
        within: Duration,
        what: &str,
        mut predicate: impl FnMut(&str) -> bool,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + within;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line())
                .await
                .map_err(|_| anyhow::anyhow!("no line {what} within {within:?}; read so far:\n{}", self.seen.join("\n")))?
                .context("cannot read pingji's output")?
                .with_context(|| format!("pingji's output ended before a line {what}; read so far:\n{}", self.seen.join("\n")))?;
            self.seen.push(line.clone());
            if predicate(&line) {
                return Ok(line);
            }
        }
    }

    /// Kills the process and reaps it.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("cannot kill pingji")
    }
}
