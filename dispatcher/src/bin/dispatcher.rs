//! `dispatcher`: the Pingji dispatch server. Parses flags, sets up logging,
//! binds, and hands over to `pingji_dispatcher::server::run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use pingji_dispatcher::lease::LeaseConfig;
use pingji_dispatcher::metrics::Metrics;
use pingji_dispatcher::policy::Policy;
use pingji_dispatcher::server::{self, Config, RedisStore, Store};
use pingji_dispatcher::shard::ShardId;
use pingji_dispatcher::telemetry::{self, LogFormat};
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
    /// Shared store, `redis://HOST:PORT`: the journal of the shard lives in
    /// Redis, shared with other dispatcher processes, one of which owns the
    /// shard at a time (the others stand by and send clients to it). Without
    /// it, the SQLite file of --data.
    #[arg(long, env = "PINGJI_STORE", conflicts_with = "ephemeral")]
    store: Option<String>,
    /// The shard this process serves, with --store.
    #[arg(long, env = "PINGJI_SHARD", default_value = ShardId::CITY)]
    shard: ShardId,
    /// HOST:PORT where clients reach this process, with --store: standbys
    /// send clients there while it owns the shard. Defaults to --listen.
    #[arg(long, env = "PINGJI_ADVERTISE")]
    advertise: Option<String>,
    /// How long the shard lease lasts without renewal, with --store; a
    /// standby takes over within this plus one renewal interval.
    #[arg(long, env = "PINGJI_LEASE_TTL_MS", default_value_t = 3_000)]
    lease_ttl_ms: u64,
    /// How often the owner renews its lease and a standby asks for it.
    #[arg(long, env = "PINGJI_LEASE_RENEW_MS", default_value_t = 1_000)]
    lease_renew_ms: u64,
    /// Dispatch policy (TOML); see docs/policy.md. Defaults apply where absent.
    #[arg(long, env = "PINGJI_POLICY")]
    policy: Option<PathBuf>,
    /// Areas (GeoJSON FeatureCollection) to load at start.
    #[arg(long, env = "PINGJI_AREAS")]
    areas: Option<PathBuf>,
    /// Roster (CSV) to load at start.
    #[arg(long, env = "PINGJI_AGENTS")]
    agents: Option<PathBuf>,
    /// Emergency plan files (TOML) or folders of them to load at start; repeatable.
    #[arg(long = "plans", env = "PINGJI_PLANS", value_delimiter = ',')]
    plans: Vec<PathBuf>,
    /// Seconds to let open requests and streams finish after SIGINT/SIGTERM.
    #[arg(long, env = "PINGJI_DRAIN_TIMEOUT_S", default_value_t = 10)]
    drain_timeout_s: u64,
    /// Take a snapshot of the state every this many events.
    #[arg(long, env = "PINGJI_SNAPSHOT_EVERY", default_value_t = 10_000)]
    snapshot_every: u64,
    /// Serve Prometheus metrics on http://HOST:PORT/metrics; off by default.
    #[arg(long, env = "PINGJI_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Export traces and metrics over OTLP/gRPC to this collector,
    /// `http://HOST:PORT` (usually port 4317); off by default.
    #[arg(long, env = "PINGJI_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Log lines as human-readable text or as JSON objects; levels by RUST_LOG.
    #[arg(long, env = "PINGJI_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
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
    let args = Args::parse();
    let metrics = Arc::new(Metrics::new());
    let telemetry = telemetry::init(args.log_format, args.otlp_endpoint.as_deref(), Some(metrics.clone()))?;
    let served = serve(args, metrics).await;
    telemetry.shutdown().await;
    served
}

async fn serve(args: Args, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    let policy = match &args.policy {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read policy file {}", path.display()))?;
            Policy::from_toml(&text).map_err(|error| anyhow::anyhow!("policy file {}: {error}", path.display()))?
        }
        None => Policy::default(),
    };
    let store = match &args.store {
        Some(url) => Store::Redis(redis_store(&args, url)?),
        None if args.ephemeral => Store::Ephemeral,
        None => Store::Sqlite(args.data.clone()),
    };
    let mut config = Config::new(store);
    config.policy = policy;
    config.areas_file = args.areas.clone();
    config.agents_file = args.agents.clone();
    config.plan_paths = args.plans.clone();
    config.drain_timeout = Duration::from_secs(args.drain_timeout_s);
    config.snapshot_every = args.snapshot_every.max(1);
    config.metrics_addr = args.metrics_addr;
    config.set_metrics(metrics);
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

/// The Redis store from the flags.
fn redis_store(args: &Args, url: &str) -> anyhow::Result<RedisStore> {
    anyhow::ensure!(
        url.starts_with("redis://"),
        "unsupported store {url}: use redis://HOST:PORT, or --data FILE for a SQLite journal"
    );
    let lease = LeaseConfig::new(Duration::from_millis(args.lease_ttl_ms), Duration::from_millis(args.lease_renew_ms))
        .map_err(anyhow::Error::msg)?;
    let advertise = args.advertise.clone().unwrap_or_else(|| args.listen.to_string());
    if args.advertise.is_none() && args.listen.ip().is_unspecified() {
        warn!(%advertise, "standbys will send clients to an unspecified address; set --advertise to one clients can reach");
    }
    Ok(RedisStore { url: url.to_owned(), shard: args.shard.clone(), advertise, lease })
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
