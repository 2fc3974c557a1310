//! The gRPC server: the agent and command services, health and reflection,
//! and `run`, which sets up the journal, recovers the state, serves until
//! shutdown, drains, and stops.
//!
//! # Layout
//! - [`agent`]: `AgentService`, one stream per connected person.
//! - [`command`]: `CommandService`, for operators.
//! - [`events`]: the `WatchEvents` stream (journal history, then live).
//! - [`error`]: dispatcher errors to gRPC statuses.

pub mod agent;
pub mod command;
pub mod error;
pub mod events;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use pingji_proto::v1::agent_service_server::AgentServiceServer;
use pingji_proto::v1::command_service_server::CommandServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::{info, warn};

use crate::areas::parse_geojson;
use crate::convert;
use crate::engine::Command;
use crate::journal::{Journal, MemoryJournal, SqliteJournal};
use crate::policy::Policy;
use crate::runtime::{self, Dispatcher, RuntimeConfig, SharedJournal};

/// Largest command request or response: a city's roster (hundreds of
/// thousands of people) or map fits; send bigger ones in parts.
const MAX_COMMAND_MESSAGE: usize = 256 * 1024 * 1024;

/// Where the journal lives.
#[derive(Clone, Debug)]
pub enum Store {
    /// A SQLite file (the default).
    Sqlite(PathBuf),
    /// Memory only: everything is lost at exit.
    Ephemeral,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub store: Store,
    pub policy: Policy,
    /// Areas (GeoJSON) to load at start; skipped when already loaded.
    pub areas_file: Option<PathBuf>,
    /// Roster (CSV) to load at start; only new or changed people are written.
    pub agents_file: Option<PathBuf>,
    /// How long in-flight requests and streams get after a shutdown signal.
    pub drain_timeout: Duration,
    pub snapshot_every: u64,
}

impl Config {
    pub fn new(store: Store) -> Self {
        Config {
            store,
            policy: Policy::default(),
            areas_file: None,
            agents_file: None,
            drain_timeout: Duration::from_secs(10),
            snapshot_every: 10_000,
        }
    }
}

fn open_journal(store: &Store) -> anyhow::Result<SharedJournal> {
    let journal: Box<dyn Journal> = match store {
        Store::Sqlite(path) => Box::new(SqliteJournal::open(path)?),
        Store::Ephemeral => Box::new(MemoryJournal::new()),
    };
    Ok(Arc::new(Mutex::new(journal)))
}

/// Runs the dispatcher on `listener` until `shutdown` turns true.
pub async fn run(config: Config, listener: TcpListener, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let journal = open_journal(&config.store)?;
    let engine = runtime::recover(&journal, config.policy.clone()).await?;
    let (stop_owner, owner_stop) = watch::channel(false);
    let runtime_config = RuntimeConfig { policy: config.policy.clone(), snapshot_every: config.snapshot_every, clock: Arc::new(runtime::system_now) };
    let (dispatcher, owner) = runtime::start(engine, journal, runtime_config, owner_stop);
    load_startup_files(&dispatcher, &config).await?;

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<AgentServiceServer<agent::AgentApi>>().await;
    health_reporter.set_serving::<CommandServiceServer<command::CommandApi>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pingji_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pingji_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let address = listener.local_addr()?;
    let mut signal = shutdown.clone();
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(AgentServiceServer::new(agent::AgentApi { dispatcher: dispatcher.clone() }))
        // City maps and rosters are large: allow imports well past tonic's 4 MiB default.
        .add_service(
            CommandServiceServer::new(command::CommandApi { dispatcher: dispatcher.clone() })
                .max_decoding_message_size(MAX_COMMAND_MESSAGE)
                .max_encoding_message_size(MAX_COMMAND_MESSAGE),
        )
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            let _ = signal.wait_for(|stop| *stop).await;
        });
    let mut server = tokio::spawn(server);
    info!(%address, "dispatcher listening");

    tokio::select! {
        result = &mut server => {
            result?.context("the gRPC server stopped")?;
        }
        () = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
            info!(drain_timeout_s = config.drain_timeout.as_secs(), "shutting down; draining");
            // Tell people and watchers to reconnect later, so that open
            // streams end now rather than hold the drain to its timeout.
            dispatcher.close_streams().await;
            health_reporter.set_not_serving::<AgentServiceServer<agent::AgentApi>>().await;
            health_reporter.set_not_serving::<CommandServiceServer<command::CommandApi>>().await;
            match tokio::time::timeout(config.drain_timeout, &mut server).await {
                Ok(result) => result?.context("the gRPC server stopped")?,
                Err(_) => {
                    warn!("drain timeout passed with streams still open; closing them");
                    server.abort();
                }
            }
        }
    }
    drop(dispatcher);
    let _ = stop_owner.send(true);
    owner.await.context("the dispatcher owner task panicked")??;
    info!("dispatcher stopped");
    Ok(())
}

async fn load_startup_files(dispatcher: &Dispatcher, config: &Config) -> anyhow::Result<()> {
    const ACTOR: &str = "operator:startup";
    if let Some(path) = &config.areas_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read areas file {}", path.display()))?;
        let import = parse_geojson(&text).map_err(|error| anyhow::anyhow!("areas file {}: {error}", path.display()))?;
        let probe = import.clone();
        let already = dispatcher
            .query(move |engine, _| probe.areas.iter().all(|spec| engine.state().areas.get(&spec.id) == Some(spec)))
            .await?;
        if already {
            info!(path = %path.display(), "areas already loaded");
        } else {
            let areas = import.areas.len();
            dispatcher
                .execute(Command::ImportAreas(import), ACTOR.to_string(), |_, _| ())
                .await
                .map_err(|error| anyhow::anyhow!("areas file {}: {error}", path.display()))?;
            info!(path = %path.display(), areas, "areas loaded");
        }
    }
    if let Some(path) = &config.agents_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read roster file {}", path.display()))?;
        let specs = crate::roster_csv::parse_roster_csv(&text).map_err(|errors| anyhow::anyhow!("roster file {}: {errors}", path.display()))?;
        let profiles = specs.iter().map(convert::profile_from_pb).collect::<Result<Vec<_>, _>>()?;
        let changed = dispatcher
            .query(move |engine, _| {
                profiles
                    .into_iter()
                    .filter(|profile| engine.state().agents.get(&profile.id).is_none_or(|record| &record.profile != profile))
                    .collect::<Vec<_>>()
            })
            .await?;
        if changed.is_empty() {
            info!(path = %path.display(), "roster already loaded");
        } else {
            let count = changed.len();
            dispatcher
                .execute(Command::UpsertAgents { agents: changed, all_new: false }, ACTOR.to_string(), |_, _| ())
                .await
                .map_err(|error| anyhow::anyhow!("roster file {}: {error}", path.display()))?;
            info!(path = %path.display(), people = count, "roster loaded");
        }
    }
    Ok(())
}
