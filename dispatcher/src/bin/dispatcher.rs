//! `dispatcher`: the Pingji dispatch server. Reads its settings (file, then
//! flags and environment), checks them all, sets up logging and telemetry,
//! binds, and hands over to `pingji_dispatcher::server::run`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use pingji_dispatcher::metrics::Metrics;
use pingji_dispatcher::open_files;
use pingji_dispatcher::server::{self, ClientCertificates, Store};
use pingji_dispatcher::settings::{
    JournalSettings, LimitSettings, LoadSettings, LogSettings, MetricsSettings, OtlpSettings, PhotoSettings, Resolved, Settings,
    StoreSettings, TlsSettings, WebSettings,
};
use pingji_dispatcher::telemetry::{self, LogFormat};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};

/// Pingji dispatcher: keeps the roster and the map, offers urgent tasks to the
/// best people nearby, and records every change in its journal.
///
/// Settings come from `--config FILE` (see docs/dispatcher.toml); a flag or
/// its PINGJI_* variable overrides the file. Defaults are given in brackets.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Option<Subcommand>,
    /// Settings file (TOML); see docs/dispatcher.toml.
    #[arg(long, env = "PINGJI_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Address to serve gRPC on [127.0.0.1:50051].
    #[arg(long, env = "PINGJI_LISTEN")]
    listen: Option<String>,
    /// SQLite journal file, created when missing [pingji.db].
    #[arg(long, env = "PINGJI_DATA", global = true)]
    data: Option<PathBuf>,
    /// Keep everything in memory (lost at exit) instead of the journal file.
    #[arg(long, global = true, env = "PINGJI_EPHEMERAL")]
    ephemeral: bool,
    /// Shared store, `redis://HOST:PORT` (one Redis) or
    /// `redis+cluster://HOST:PORT,HOST:PORT,...` (a Redis Cluster, any of its
    /// nodes as seeds): the journal of the shard lives in Redis, shared with
    /// other dispatcher processes, one of which owns the shard at a time (the
    /// others stand by and send clients to it). Without it, the SQLite file
    /// of --data.
    #[arg(long, env = "PINGJI_STORE", conflicts_with = "ephemeral", global = true)]
    store: Option<String>,
    /// The shards this process may serve, with --store: by default one per
    /// district of the --areas map (the process owns every free one, up to
    /// --max-shards); `city` for the whole city as one shard; or districts
    /// (d1, or d1,d2). Calls about another district are sent to its
    /// shard's owner.
    #[arg(long, env = "PINGJI_SHARD", global = true)]
    shard: Option<String>,
    /// Shards this process owns at most at once, with --store [all it can
    /// get]; the first is served on --listen, each further one on a port of
    /// its own, which clients are sent to.
    #[arg(long, env = "PINGJI_MAX_SHARDS")]
    max_shards: Option<usize>,
    /// HOST:PORT where clients reach this process, with --store: standbys
    /// send clients there while it owns the shard. Defaults to --listen.
    #[arg(long, env = "PINGJI_ADVERTISE")]
    advertise: Option<String>,
    /// How long the shard lease lasts without renewal, with --store; a
    /// standby takes over within this plus one renewal interval [3000].
    #[arg(long, env = "PINGJI_LEASE_TTL_MS")]
    lease_ttl_ms: Option<u64>,
    /// How often the owner renews its lease and a standby asks for it [1000].
    #[arg(long, env = "PINGJI_LEASE_RENEW_MS")]
    lease_renew_ms: Option<u64>,
    /// Dispatch policy (TOML); see docs/policy.md. Defaults apply where absent.
    #[arg(long, env = "PINGJI_POLICY", global = true)]
    policy: Option<PathBuf>,
    /// Areas (GeoJSON FeatureCollection) to load at start.
    #[arg(long, env = "PINGJI_AREAS", global = true)]
    areas: Option<PathBuf>,
    /// Roster (CSV) to load at start.
    #[arg(long, env = "PINGJI_AGENTS")]
    agents: Option<PathBuf>,
    /// Emergency plan files (TOML) or folders of them to load at start; repeatable.
    #[arg(long = "plans", env = "PINGJI_PLANS", value_delimiter = ',')]
    plans: Vec<PathBuf>,
    /// Seconds to let open requests and streams finish after SIGINT/SIGTERM [10].
    #[arg(long, env = "PINGJI_DRAIN_TIMEOUT_S")]
    drain_timeout_s: Option<u64>,
    /// Seconds after SIGINT/SIGTERM after which the process exits anyway,
    /// drained or not; longer than the drain [drain + 20].
    #[arg(long, env = "PINGJI_SHUTDOWN_GRACE_S")]
    shutdown_grace_s: Option<u64>,
    /// Take a snapshot of the state every this many events [10000].
    #[arg(long, env = "PINGJI_SNAPSHOT_EVERY")]
    snapshot_every: Option<u64>,
    /// Days journaled events (with people's coarse locations, answers and
    /// field reports) are kept once a snapshot covers them; 0 keeps them
    /// forever [90].
    #[arg(long, env = "PINGJI_RETENTION_DAYS")]
    retention_days: Option<u64>,
    /// Where people's photos are stored [photos/ beside the --data
    /// journal]; with --store (Redis), a directory every dispatcher of the
    /// city shares. Without one, photo uploads are refused.
    #[arg(long, env = "PINGJI_PHOTOS_DIR", value_name = "DIR")]
    photos_dir: Option<PathBuf>,
    /// Serve Prometheus metrics on http://HOST:PORT/metrics; off by default.
    #[arg(long, env = "PINGJI_METRICS_ADDR")]
    metrics_addr: Option<String>,
    /// Serve the command map (a web page, and the command API over
    /// grpc-web for it) on http://HOST:PORT/; off by default. With
    /// --tls-cert, https:// with the same certificate.
    #[arg(long, env = "PINGJI_WEB", value_name = "ADDR")]
    web: Option<String>,
    /// Draw this tile server's tiles under the command map's areas:
    /// `https://HOST/{z}/{x}/{y}.png` (the city's own server; no internet
    /// is assumed); off by default.
    #[arg(long, env = "PINGJI_WEB_TILES", value_name = "URL")]
    web_tiles: Option<String>,
    /// Replay this journal for the after-action review instead of serving
    /// one: a drill's journal.db or a dispatcher's SQLite file, opened
    /// read-only; its events are played at the pace they happened (times
    /// --speed) to the command map (--web) and the console, and nothing can
    /// be changed. Prints the token of a viewer account made for the replay.
    #[arg(long, value_name = "JOURNAL", conflicts_with_all = ["store", "ephemeral"])]
    replay: Option<PathBuf>,
    /// With --replay: how many times faster than real time to play [1].
    #[arg(long, requires = "replay")]
    speed: Option<f64>,
    /// Export traces and metrics over OTLP/gRPC to this collector,
    /// `http://HOST:PORT` (usually port 4317); off by default.
    #[arg(long, env = "PINGJI_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Serve TLS with this certificate chain (PEM, leaf first); with
    /// --tls-key. Plain text without it, for development on loopback.
    #[arg(long, env = "PINGJI_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "PINGJI_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates (mTLS) signed by this CA (PEM), of the
    /// clients --tls-require-client-cert names; with --tls-cert and --tls-key.
    #[arg(long, env = "PINGJI_TLS_CLIENT_CA", value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// With --tls-client-ca: who must present a client certificate, every
    /// connection or agent sessions only (consoles and probes without) [all].
    #[arg(long, env = "PINGJI_TLS_REQUIRE_CLIENT_CERT", value_enum)]
    tls_require_client_cert: Option<ClientCertificates>,
    /// With one shard per district over TLS: the CA (PEM) that signs the
    /// other dispatchers' certificates, for calls between them [--tls-cert].
    #[arg(long, env = "PINGJI_TLS_PEER_CA", value_name = "FILE")]
    tls_peer_ca: Option<PathBuf>,
    /// An admin token, pjo_NAME_<64 hex digits>, added as the first admin at
    /// start while the store has no admin (environment only: a flag would
    /// show in the process list). Or run `dispatcher bootstrap-admin`.
    #[arg(long = "bootstrap-admin-token", env = "PINGJI_BOOTSTRAP_ADMIN_TOKEN", hide = true, hide_env_values = true)]
    bootstrap_admin_token: Option<String>,
    /// Log lines as human-readable text or as JSON objects; levels by RUST_LOG [text].
    #[arg(long, env = "PINGJI_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
}

impl Args {
    /// The flags and variables given, in the shape of the settings file.
    fn settings(&self) -> Settings {
        let kind = if self.ephemeral {
            Some("memory".to_string())
        } else if self.store.is_some() {
            Some("redis".to_string())
        } else if self.data.is_some() {
            Some("sqlite".to_string())
        } else {
            None
        };
        Settings {
            listen: self.listen.clone(),
            store: StoreSettings {
                kind,
                path: self.data.clone(),
                url: self.store.clone(),
                shard: self.shard.clone(),
                max_shards: self.max_shards,
                advertise: self.advertise.clone(),
                lease_ttl_ms: self.lease_ttl_ms,
                lease_renew_ms: self.lease_renew_ms,
            },
            policy: self.policy.clone(),
            load: LoadSettings {
                areas: self.areas.clone(),
                agents: self.agents.clone(),
                plans: (!self.plans.is_empty()).then(|| self.plans.clone()),
            },
            metrics: MetricsSettings { listen: self.metrics_addr.clone() },
            web: WebSettings { listen: self.web.clone(), tiles: self.web_tiles.clone() },
            otlp: OtlpSettings { endpoint: self.otlp_endpoint.clone() },
            log: LogSettings { format: self.log_format },
            limits: LimitSettings {
                drain_timeout_s: self.drain_timeout_s,
                shutdown_grace_s: self.shutdown_grace_s,
                snapshot_every: self.snapshot_every,
                // From the settings file only.
                ..LimitSettings::default()
            },
            tls: TlsSettings {
                cert: self.tls_cert.clone(),
                key: self.tls_key.clone(),
                client_ca: self.tls_client_ca.clone(),
                require_client_cert: self.tls_require_client_cert,
                peer_ca: self.tls_peer_ca.clone(),
            },
            journal: JournalSettings { retention_days: self.retention_days },
            photos: PhotoSettings { dir: self.photos_dir.clone(), keep_exif: None, retention_days: None, bucket: None },
            // From the settings file only.
            webhooks: Default::default(),
            notify: Default::default(),
            cap: Default::default(),
            push: Default::default(),
        }
    }
}

#[derive(clap::Subcommand, Debug)]
enum Subcommand {
    /// Makes the first admin account in the store (SQLite file or Redis
    /// shard) and prints its token once. Run it before the first start;
    /// refused once an admin exists.
    BootstrapAdmin {
        /// The admin's name (ASCII letters, digits, '.', '-', '@').
        #[arg(long, default_value = "admin")]
        name: String,
    },
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
    // Everything is checked before anything binds.
    let file = match &args.config {
        Some(path) => Settings::load(path).map_err(|error| anyhow::anyhow!("config {error}"))?,
        None => Settings::default(),
    };
    let mut resolved = file.overlay(args.settings()).resolve()?;
    if let Some(token) = &args.bootstrap_admin_token {
        server::bootstrap::check_bootstrap_token(token)
            .map_err(|error| anyhow::anyhow!("PINGJI_BOOTSTRAP_ADMIN_TOKEN: {error}"))?;
        resolved.config.bootstrap_admin_token = Some(token.trim().to_string());
    }
    if let Some(Subcommand::BootstrapAdmin { name }) = args.command {
        let store = resolved.config.store.clone();
        let policy = resolved.config.policy.clone();
        let token = tokio::task::spawn_blocking(move || server::bootstrap::bootstrap_admin(&store, &name, policy)).await??;
        println!("{token}");
        eprintln!("dispatcher: this is the admin token; keep it now (only its hash is kept), e.g. export PINGJI_TOKEN=...");
        return Ok(());
    }
    if let Some(journal) = &args.replay {
        let viewer_token = pingji_dispatcher::tokens::new_operator_token(server::replay::REVIEWER);
        // Shown here once, on the terminal; only its hash is kept, and never logged.
        println!("replay viewer token: {viewer_token}");
        resolved.config.replay =
            Some(server::Replay { journal: journal.clone(), speed: args.speed.unwrap_or(1.0), viewer_token });
    }
    let metrics = Arc::new(Metrics::new());
    let telemetry = telemetry::init(resolved.log_format, resolved.otlp_endpoint.as_deref(), Some(metrics.clone()))?;
    let served = serve(resolved, metrics).await;
    telemetry.shutdown().await;
    served
}

async fn serve(resolved: Resolved, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    let Resolved { listen, mut config, shutdown_grace, .. } = resolved;
    config.set_metrics(metrics);
    match &config.tls {
        None if !listen.ip().is_loopback() => warn!(
            %listen,
            "serving plain text on a non-loopback address: anyone on the network can read and send calls; \
             set --tls-cert and --tls-key"
        ),
        None => {}
        Some(tls) => match tls.client_certificates() {
            None => info!("serving TLS"),
            Some(ClientCertificates::All) => info!("serving TLS; client certificates required of every connection"),
            Some(ClientCertificates::Agents) => info!("serving TLS; client certificates required of agent sessions"),
        },
    }
    if let Store::Redis(redis) = &config.store
        && listen.ip().is_unspecified()
        && redis.advertise == listen.to_string()
    {
        warn!(advertise = %redis.advertise, "standbys will send clients to an unspecified address; set --advertise to one clients can reach");
    }
    raise_open_file_limit();
    let listener = TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let (stop, shutdown) = watch::channel(false);
    let mut stopping = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop.send(true);
    });
    info!(store = ?config.store, "starting dispatcher");
    tokio::select! {
        served = server::run(config, listener, shutdown) => served,
        () = async {
            let _ = stopping.wait_for(|stop| *stop).await;
            tokio::time::sleep(shutdown_grace).await;
        } => {
            // Something held the drain past the grace period: stop for real.
            // Every acknowledged change is already in the journal.
            error!(grace_s = shutdown_grace.as_secs(), "shutdown grace period passed; exiting now");
            std::process::exit(2);
        }
    }
}

/// Every client connection holds a file descriptor: takes as many as the
/// hard limit allows (many systems start processes with a soft limit of
/// 1,024). The connection limits are worked out from the result.
fn raise_open_file_limit() {
    let shown = |limit: Option<u64>| limit.map_or_else(|| "unlimited".to_string(), |limit| limit.to_string());
    match open_files::raise_soft_to_hard() {
        Ok((before, after)) if before.soft != after.soft => {
            info!(from = %shown(before.soft), to = %shown(after.soft), "open-file limit raised to the hard limit");
        }
        Ok((now, _)) => info!(open_files = %shown(now.soft), hard = %shown(now.hard), "open-file limit"),
        Err(error) => warn!(%error, "cannot raise the open-file limit; connections beyond what it allows are refused"),
    }
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn store_flags_may_follow_the_subcommand() {
        let args = Args::try_parse_from(["dispatcher", "bootstrap-admin", "--store", "redis://127.0.0.1:6379", "--shard", "d1"])
            .expect("store flags after bootstrap-admin");
        assert_eq!(args.store.as_deref(), Some("redis://127.0.0.1:6379"));
        assert_eq!(args.shard.as_deref(), Some("d1"));
    }
}
