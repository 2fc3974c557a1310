//! The gRPC server: the agent and command services, health and reflection,
//! and `run`, which sets up the journal, recovers the state, serves until
//! shutdown, drains, and stops.
//!
//! # Layout
//! - [`agent`]: `AgentService`, one stream per connected person, and what
//!   it shares with `field`.
//! - [`field`]: `FieldService`, the same session for browsers: a server
//!   stream and unary calls with idempotency keys; photo uploads.
//! - [`agent_watch`]: which people a roster read shows, and the
//!   `WatchAgents` stream that pushes them to live views.
//! - `activity`: who served (`ActivityReport`, `MyActivity`), the journal
//!   folded page by page.
//! - [`audit`]: the audit of reads of personal data, aggregated.
//! - [`auth`]: tokens and roles, checked in one place before any command.
//! - [`bootstrap`]: the first admin account.
//! - [`border`]: across district borders: `ShardService` between the
//!   owners, and the border protocol (candidates, reservations, answers).
//! - [`command`]: `CommandService`, for operators.
//! - [`connections`]: client connections: the maximum, the first-call and
//!   idle timeouts, the refusal, accepting without spinning.
//! - [`events`]: the `WatchEvents` stream (journal history, then live).
//! - [`front`]: the shape of the layers in front of the command service
//!   (`auth`'s token checks, `sharding`'s routing).
//! - [`error`]: dispatcher errors to gRPC statuses.
//! - `ownership`: serving a shard kept in Redis: standby, take over, renew
//!   the lease, step down.
//! - [`sharding`]: one shard per district: calls about another district
//!   are sent to its shard's owner.
//! - [`standby`]: what a process that does not own its shard answers
//!   (`unavailable` naming the owner in `x-pingji-owner`).
//! - `starting`: health only (`NOT_SERVING`) while the journal is replayed.
//! - `config`: where the journal lives, TLS, limits, the server builder.
//! - `serving`: serving one recovered engine until shutdown or a lost lease.
//! - `sizes`: how large one message may be, per service.
//! - [`supplies`]: `SupplyService`: depots, stock and incidents' requests for supplies.
//! - [`rosters`]: `RosterService`: duty rosters, who is on duty, swaps, attendance, calendars.
//! - [`shelters`]: `ShelterService`: shelters, evacuations of residents to them, occupancy.
//! - [`replay`]: replaying a drill's journal for review, changing nothing.
//! - `web`: the web port: the command map's embedded files and the command
//!   service over grpc-web.

mod activity;
pub mod agent;
pub mod agent_watch;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod border;
mod city_modes;
pub mod command;
mod config;
pub mod connections;
pub mod error;
pub mod events;
pub mod field;
pub mod front;
mod maps;
mod ownership;
pub mod replay;
pub mod rosters;
mod serving;
pub mod sharding;
pub mod shelters;
mod sizes;
pub mod standby;
mod starting;
pub mod supplies;
mod web;

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::error;

use crate::metrics::Metrics;
use crate::runtime::{self};

pub use config::{ClientCertificates, Clock, Config, Limits, RedisStore, Replay, ServerTls, Store};
use serving::{open_journal, serve};
pub(crate) use web::tile_origin;

/// Runs the dispatcher on `listener` until `shutdown` turns true, with the
/// command map on `config.web_addr` when it is set.
pub async fn run(config: Config, listener: TcpListener, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let web_listener = match config.web_addr {
        Some(address) => {
            Some(TcpListener::bind(address).await.with_context(|| format!("cannot listen for the web port on {address}"))?)
        }
        None => None,
    };
    run_with_web(config, listener, web_listener, shutdown).await
}

/// [`run`], with the command map served on `web_listener` when given (a
/// listener bound already, say to port 0), whatever `config.web_addr` says.
pub async fn run_with_web(
    config: Config,
    listener: TcpListener,
    web_listener: Option<TcpListener>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut config = config;
    // The metrics endpoint lives as long as the process: a standby shows it
    // is not serving, an owner shows what it does.
    let metrics_endpoint = match config.metrics_addr {
        Some(address) => {
            let metrics_listener =
                TcpListener::bind(address).await.with_context(|| format!("cannot listen for metrics on {address}"))?;
            let metrics = config.metrics.get_or_insert_with(|| Arc::new(Metrics::new())).clone();
            Some(tokio::spawn(crate::metrics::http::serve(metrics, metrics_listener, shutdown.clone())))
        }
        None => None,
    };
    // One count of connections for every server on the gRPC port, and one
    // bound on what waits for people's apps, made once the metrics are known.
    if config.connections.is_none() {
        config.connections = Some(config.new_connections());
    }
    if config.session_queues.is_none() {
        config.session_queues = Some(config.new_session_queues());
    }
    let served = run_store(config, listener, web_listener, shutdown).await;
    if let Some(endpoint) = metrics_endpoint {
        // It stops with the shutdown signal; after a failure, stop it here.
        endpoint.abort();
        let _ = endpoint.await;
    }
    served
}

pub(super) async fn run_store(
    config: Config,
    listener: TcpListener,
    web_listener: Option<TcpListener>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    if let Some(replay) = config.replay.clone() {
        let mut config = config;
        let (journal, engine) = replay::prepare(&mut config, &replay).await?;
        return serve(&config, journal, engine, None, listener, shutdown, None, None, web_listener).await;
    }
    if let Store::Redis(redis) = &config.store {
        let redis = redis.clone();
        return ownership::run(config, redis, listener, web_listener, shutdown).await;
    }
    // Health answers NOT_SERVING while the journal is opened and replayed.
    let listener = listener.into_std()?;
    let starting = starting::Starting::serve(listener.try_clone().context("cannot share the listening socket")?, &config).await?;
    let recovered = async {
        let journal = open_journal(&config.store)?;
        let engine = runtime::recover(&journal, config.policy.clone()).await?;
        anyhow::Ok((journal, engine))
    }
    .await;
    starting.stop().await;
    let (journal, engine) = recovered?;
    let listener = TcpListener::from_std(listener)?;
    serve(&config, journal, engine, None, listener, shutdown, None, None, web_listener).await
}
