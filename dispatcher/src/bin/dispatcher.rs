//! `dispatcher`: the Pingji dispatch server. Parses flags, sets up logging,
//! binds, and hands over to `pingji_dispatcher::server::run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use pingji_dispatcher::policy::Policy;
use pingji_dispatcher::server::{self, Config, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

/// Pingji dispatcher: keeps the roster and the map, offers urgent tasks to the
/// best people nearby, and records every change in its journal.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to serve gRPC on.
    #[arg(long, env = "PINGJI_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// SQLite journal file (created when missing).
    #[arg(long, env = "PINGJI_DATA", default_value = "pingji.db")]
    data: PathBuf,
    /// Keep everything in memory (lost at exit) instead of the journal file.
    #[arg(long, env = "PINGJI_EPHEMERAL")]
    ephemeral: bool,
    /// Dispatch policy (TOML); see docs/policy.md. Defaults apply where absent.
    #[arg(long, env = "PINGJI_POLICY")]
    policy: Option<PathBuf>,
    /// Areas (GeoJSON FeatureCollection) to load at start.
    #[arg(long, env = "PINGJI_AREAS")]
    areas: Option<PathBuf>,
    /// Roster (CSV) to load at start.
    #[arg(long, env = "PINGJI_AGENTS")]
    agents: Option<PathBuf>,
    /// Seconds to let open requests and streams finish after SIGINT/SIGTERM.
    #[arg(long, env = "PINGJI_DRAIN_TIMEOUT_S", default_value_t = 10)]
    drain_timeout_s: u64,
    /// Take a snapshot of the state every this many events.
    #[arg(long, env = "PINGJI_SNAPSHOT_EVERY", default_value_t = 10_000)]
    snapshot_every: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dispatcher: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PINGJI_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let policy = match &args.policy {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read policy file {}", path.display()))?;
            Policy::from_toml(&text).map_err(|error| anyhow::anyhow!("policy file {}: {error}", path.display()))?
        }
        None => Policy::default(),
    };
    let store = if args.ephemeral { Store::Ephemeral } else { Store::Sqlite(args.data.clone()) };
    let config = Config {
        store,
        policy,
        areas_file: args.areas.clone(),
        agents_file: args.agents.clone(),
        drain_timeout: Duration::from_secs(args.drain_timeout_s),
        snapshot_every: args.snapshot_every.max(1),
    };
    if !args.listen.ip().is_loopback() {
        warn!(listen = %args.listen, "serving plain text on a non-loopback address; TLS arrives with issue #7");
    }
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop.send(true);
    });
    info!(store = ?config.store, "starting dispatcher");
    server::run(config, listener, shutdown).await
}

/// Resolves on the first SIGINT or SIGTERM.
async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the dispatcher");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => info!("SIGINT received"),
            _ = terminate.recv() => info!("SIGTERM received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
