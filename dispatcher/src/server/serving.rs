//! Serving one recovered engine: the services, the owner task, startup
//! files, draining at shutdown, and stepping down when a lease is lost.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use pingji_proto::v1::agent_service_server::AgentServiceServer;
use pingji_proto::v1::command_service_server::CommandServiceServer;
use pingji_proto::v1::field_service_server::FieldServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::convert;
use crate::journal::{Journal, MemoryJournal, SqliteJournal};
use crate::locations::LocationWriter;
use crate::runtime::{self, Dispatcher, RuntimeConfig, SharedJournal};
use pingji_engine::areas::{AreaLevel, parse_geojson};
use pingji_engine::engine::{Command, Engine};
use pingji_engine::ids::AreaId;

use super::config::{
    ClientCertificates, Config, LAME_DUCK, STEP_DOWN_DRAIN, Store, reflection_v1, reflection_v1alpha, server_builder,
};
use super::front::Fronted;
use super::sizes::{MAX_AGENT_MESSAGE, MAX_COMMAND_MESSAGE};
use super::{agent, auth, bootstrap, city_modes, command, error as status, field, sharding, web};
use crate::notify::{MemoryNotifyStore, NoPush, Notifier, NotifyStore, PushChannel, RedisNotifyStore, SqliteNotifyStore};
use crate::photos::PhotoStore;
use crate::push::{MemoryPushStore, PushStore, Pusher, RedisPushStore, SqlitePushStore};
use crate::webhooks::{MemoryStore, RedisWebhookStore, SqliteStore, WebhookApi, WebhookStore, Webhooks};
use pingji_proto::v1::cap_service_server::CapServiceServer;
use pingji_proto::v1::roster_service_server::RosterServiceServer;
use pingji_proto::v1::shelter_service_server::ShelterServiceServer;
use pingji_proto::v1::supply_service_server::SupplyServiceServer;
use pingji_proto::v1::webhook_service_server::WebhookServiceServer;

pub(super) fn open_journal(store: &Store) -> anyhow::Result<SharedJournal> {
    let journal: Box<dyn Journal> = match store {
        Store::Sqlite(path) => Box::new(SqliteJournal::open(path)?),
        Store::Ephemeral => Box::new(MemoryJournal::new()),
        Store::Redis(_) => anyhow::bail!("a redis store is opened by its owner, once it holds the lease"),
    };
    Ok(Arc::new(Mutex::new(journal)))
}

/// Ends serving early, for the owner of a shard shared through Redis.
pub(super) struct OwnerGuard {
    /// Resolves with the reason when this process lost its lease and must
    /// stop serving at once.
    pub(super) lost: Pin<Box<dyn Future<Output = anyhow::Error> + Send>>,
}

/// Serves `engine` (recovered from `journal`) until `shutdown` turns true,
/// then drains and stops. With a `guard` (a shared shard), it also stops at
/// once, with an error, when the lease is lost or the owner task fails. With
/// `sharding` (a district's shard), it serves that district only and sends
/// calls about others to their owners. With `web_listener`, it serves the
/// command map there too (see `web`).
#[allow(clippy::too_many_arguments)]
pub(super) async fn serve(
    config: &Config,
    journal: SharedJournal,
    mut engine: Engine,
    locations: Option<LocationWriter>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    guard: Option<OwnerGuard>,
    sharding: Option<Arc<sharding::Sharding>>,
    web_listener: Option<TcpListener>,
) -> anyhow::Result<()> {
    let district = sharding.as_ref().map(|sharding| AreaId::new(sharding.shard().as_str()));
    engine.set_scope(district.clone());
    let (stop_owner, owner_stop) = watch::channel(false);
    let runtime_config = RuntimeConfig {
        policy: config.policy.clone(),
        snapshot_every: config.snapshot_every,
        clock: config.clock.clone(),
        wait_for_store: matches!(config.store, Store::Redis(_)),
        locations,
        append_timer: config.metrics.as_ref().map(|metrics| metrics.append_timer()),
        retention: config.retention,
        read_only: config.replay.as_ref().map(|replay| replay.refusal()),
    };
    let (dispatcher, mut owner) = runtime::start(engine, journal, runtime_config, owner_stop);
    // A replay's events, fed as the clock reaches them, until serving ends.
    let replaying =
        config.replay.clone().map(|replay| tokio::spawn(super::replay::follow(dispatcher.clone(), replay, config.clock.clone())));
    let _replaying = AbortOnDrop(replaying);
    // Metrics and incident spans from the events, until serving ends.
    let observing = crate::observer::start(dispatcher.clone(), config.metrics.clone());
    let mut lost = guard.map(|guard| guard.lost);
    load_startup_files(&dispatcher, config).await?;
    warn_if_no_operators(&dispatcher, &config.store, sharding.as_deref()).await;
    if let Some(district) = district {
        check_district(&dispatcher, district).await?;
    }
    let directory = sharding.clone().map(|sharding| tokio::spawn(sharding::keep_directory(dispatcher.clone(), sharding)));
    let _directory = AbortOnDrop(directory);
    let city_modes = sharding.clone().map(|sharding| tokio::spawn(city_modes::keep_city_modes(dispatcher.clone(), sharding)));
    let _city_modes = AbortOnDrop(city_modes);
    let border = sharding.clone().map(|sharding| tokio::spawn(super::border::keep_border(dispatcher.clone(), sharding)));
    let _border = AbortOnDrop(border);
    let shard_service = sharding.clone().map(|sharding| {
        pingji_proto::v1::shard_service_server::ShardServiceServer::new(super::border::ShardApi {
            dispatcher: dispatcher.clone(),
            sharding,
        })
    });

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<AgentServiceServer<agent::AgentApi>>().await;
    health_reporter.set_serving::<FieldServiceServer<field::FieldApi>>().await;
    health_reporter.set_serving::<CommandServiceServer<command::CommandApi>>().await;
    // Not ready while the journal's store is out of reach (writes refused).
    let mut store_reachable = dispatcher.store_reachable_changes();
    let readiness = health_reporter.clone();
    tokio::spawn(async move {
        while store_reachable.changed().await.is_ok() {
            let reachable = *store_reachable.borrow_and_update();
            if reachable {
                readiness.set_serving::<AgentServiceServer<agent::AgentApi>>().await;
                readiness.set_serving::<FieldServiceServer<field::FieldApi>>().await;
                readiness.set_serving::<CommandServiceServer<command::CommandApi>>().await;
            } else {
                readiness.set_not_serving::<AgentServiceServer<agent::AgentApi>>().await;
                readiness.set_not_serving::<FieldServiceServer<field::FieldApi>>().await;
                readiness.set_not_serving::<CommandServiceServer<command::CommandApi>>().await;
            }
        }
    });
    let reflection_v1 = reflection_v1()?;
    let reflection_v1alpha = reflection_v1alpha()?;

    let tokens = auth::Tokens::new(dispatcher.clone(), sharding.clone());
    let photos = match (&config.photos_bucket, &config.photos_dir) {
        (Some(bucket), _) => Some(photo_bucket(bucket, config.keep_photo_exif)?),
        (None, Some(dir)) => Some(
            PhotoStore::open(dir, config.keep_photo_exif)
                .with_context(|| format!("cannot open the photo directory {}", dir.display()))?,
        ),
        (None, None) => None,
    };
    // Photos are deleted as their retention says, until serving ends.
    let photo_sweep = match (&photos, config.photo_retention) {
        (Some(store), Some(keep_for)) => {
            let retention = crate::photo_retention::Retention {
                keep_for,
                sweep_every: config.photo_sweep_every,
                sees_every_incident: sharding.is_none() && !matches!(config.store, super::config::Store::Redis(_)),
            };
            Some(tokio::spawn(crate::photo_retention::keep_sweeping(dispatcher.clone(), store.clone(), retention)))
        }
        _ => None,
    };
    let _photo_sweep = AbortOnDrop(photo_sweep);
    let replay = config.replay.clone().map(|replay| Arc::new(command::ReplayView { replay, clock: config.clock.clone() }));
    let commands = command_service(&dispatcher, tokens.clone(), sharding.clone(), photos.clone(), config.clock.clone(), replay);
    let people = agent::People::new(
        dispatcher.clone(),
        tokens.clone(),
        config.limits,
        // With `all`, the TLS handshake already refused connections without one.
        config.tls.as_ref().is_some_and(|tls| tls.client_certificates() == Some(ClientCertificates::Agents)),
        sharding.clone(),
        config.session_queues(),
        photos,
    );
    let pusher = pusher(config, &dispatcher, sharding.as_deref()).await?;
    let field = field_service(people.clone(), pusher.clone());
    let webhooks = webhook_service(config, &dispatcher, sharding.as_deref(), tokens.clone()).await?;
    // Deliveries end with serving, however it ends (a lost lease, a failed owner).
    let _webhooks_stop = AbortWebhooks(webhooks.1.clone());
    let notifier = notifier(config, &dispatcher, sharding.as_deref(), pusher.clone()).await?;
    let _notifier_stop = AbortNotifier(notifier.clone());
    // Without a ladder in the policy, offers, call-ups and messages are
    // pushed to phones once as they are journaled, until serving ends.
    let pushing = pusher.filter(|_| notifier.is_none()).map(|pusher| crate::push::follow(dispatcher.clone(), pusher));
    let cap_service =
        auth::authorized(CapServiceServer::new(crate::cap::CapApi { dispatcher: dispatcher.clone() }), tokens.clone());
    let supply_service =
        auth::authorized(SupplyServiceServer::new(super::supplies::SupplyApi { dispatcher: dispatcher.clone() }), tokens.clone());
    let roster_service =
        auth::authorized(RosterServiceServer::new(super::rosters::RosterApi { dispatcher: dispatcher.clone() }), tokens.clone());
    let shelter_service = auth::authorized(
        ShelterServiceServer::new(super::shelters::ShelterApi { dispatcher: dispatcher.clone() }),
        tokens.clone(),
    );
    let address = listener.local_addr()?;
    // Ends serving: after the lame-duck pause of a shutdown, or when the
    // owner of a shared shard steps down.
    let (stop_serving, mut stepping_down) = watch::channel(false);
    let server = server_builder(config)?
        .timeout(config.limits.request_timeout)
        .trace_fn(|request| tracing::info_span!("rpc", rpc.method = %request.uri().path()))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(AgentServiceServer::new(agent::AgentApi::new(people)).max_decoding_message_size(MAX_AGENT_MESSAGE))
        .add_service(field.clone())
        .add_service(commands.clone())
        .add_service(webhooks.0)
        .add_service(cap_service.clone())
        .add_service(supply_service.clone())
        .add_optional_service(shard_service)
        .add_service(roster_service.clone())
        .add_service(shelter_service.clone())
        .serve_with_incoming_shutdown(config.connections().incoming(listener), async move {
            let _ = stepping_down.wait_for(|stop| *stop).await;
        });
    let mut server = tokio::spawn(server);
    info!(%address, tls = config.tls.is_some(), "dispatcher listening");
    // The web port stops with the gRPC port, and is aborted when serving ends otherwise.
    let web_server = match web_listener {
        Some(web_listener) => {
            let web_address = web_listener.local_addr()?;
            let mut web_stepping_down = stop_serving.subscribe();
            let web_server = web::server(config)?
                .add_routes(web::routes(
                    commands,
                    field,
                    cap_service,
                    supply_service,
                    roster_service,
                    shelter_service,
                    crate::cap::router(dispatcher.clone(), config.cap.clone(), config.tls.is_some())
                        .merge(super::rosters::calendar_router(dispatcher.clone())),
                    config.web_tiles.as_deref(),
                    notifier.as_ref().map(|notifier| notifier.inbound_route()),
                ))
                .serve_with_incoming_shutdown(config.connections().incoming(web_listener), async move {
                    let _ = web_stepping_down.wait_for(|stop| *stop).await;
                });
            let scheme = if config.tls.is_some() { "https" } else { "http" };
            info!(address = %web_address, "command map on {scheme}://{web_address}/");
            Some(tokio::spawn(async move {
                if let Err(error) = web_server.await {
                    error!(%error, "the web port stopped");
                }
            }))
        }
        None => None,
    };
    let mut web_server = AbortOnDrop(web_server);

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
            health_reporter.set_not_serving::<FieldServiceServer<field::FieldApi>>().await;
            health_reporter.set_not_serving::<CommandServiceServer<command::CommandApi>>().await;
            // A lame-duck pause before the server says goodbye (GOAWAY):
            // requests arriving meanwhile get a clean, retriable
            // `unavailable` from the dispatcher, rather than a connection
            // closed under them, which clients report as `cancelled`.
            tokio::time::sleep((config.drain_timeout / 4).min(LAME_DUCK)).await;
            let _ = stop_serving.send(true);
            match tokio::time::timeout(config.drain_timeout, &mut server).await {
                Ok(result) => result?.context("the gRPC server stopped")?,
                Err(_) => {
                    warn!("drain timeout passed with streams still open; closing them");
                    server.abort();
                }
            }
            web_server.join_within(config.drain_timeout).await;
        }
        reason = async {
            match lost.as_mut() {
                Some(lost) => lost.await,
                None => std::future::pending().await,
            }
        } => {
            // Fail-stop; the fenced journal already refuses whatever this
            // process would still try to write.
            error!(reason = %reason, "stepping down");
            let _ = stop_owner.send(true);
            step_down(server, &stop_serving, &health_reporter).await;
            return Err(reason);
        }
        // The owner stops while serving only when the journal failed: the
        // state in memory may be ahead of it, so stop and let a restart recover.
        finished = &mut owner => {
            let error = match finished {
                Ok(Ok(())) => anyhow::anyhow!("the dispatcher owner stopped unexpectedly"),
                Ok(Err(error)) => error,
                Err(join_error) => anyhow::Error::new(join_error),
            };
            error!(error = %format!("{error:#}"), "the dispatcher owner stopped; stepping down");
            step_down(server, &stop_serving, &health_reporter).await;
            return Err(error.context("the dispatcher owner stopped; stepping down"));
        }
    }
    webhooks.1.stop().await;
    if let Some(notifier) = &notifier {
        notifier.stop().await;
    }
    if let Some(pushing) = pushing {
        pushing.stop().await;
    }
    drop(dispatcher);
    let _ = stop_owner.send(true);
    owner.await.context("the dispatcher owner task panicked")??;
    observing.stop().await;
    info!("dispatcher stopped");
    Ok(())
}

/// The command service as both ports serve it: the token check and roles
/// (`auth`), the size limits (`status`), and routing to a district's shard
/// (`sharding`). City maps and rosters are large: imports may be well past
/// tonic's 4 MiB default.
pub(super) fn command_service(
    dispatcher: &Dispatcher,
    tokens: auth::Tokens,
    sharding: Option<Arc<sharding::Sharding>>,
    photos: Option<PhotoStore>,
    clock: crate::runtime::Clock,
    replay: Option<Arc<command::ReplayView>>,
) -> CommandStack {
    sharding::routed(
        auth::authorized(
            status::size_limited(
                CommandServiceServer::new(command::CommandApi {
                    dispatcher: dispatcher.clone(),
                    sharding: sharding.clone(),
                    audited: Default::default(),
                    photos,
                    clock,
                    replay,
                })
                .max_decoding_message_size(MAX_COMMAND_MESSAGE)
                .max_encoding_message_size(MAX_COMMAND_MESSAGE),
            ),
            tokens,
        ),
        sharding,
    )
}

/// The webhook service (admin only) and the deliveries it runs: their
/// subscribers are kept beside the journal (its SQLite file, the shard's
/// Redis, or memory); a replay delivers nothing.
async fn webhook_service(
    config: &Config,
    dispatcher: &Dispatcher,
    sharding: Option<&sharding::Sharding>,
    tokens: auth::Tokens,
) -> anyhow::Result<(auth::Authorized<WebhookServiceServer<WebhookApi>>, Arc<Webhooks>)> {
    let refusal = config.replay.as_ref().map(|replay| replay.refusal());
    let store: Box<dyn WebhookStore> = match (&config.store, &refusal) {
        (_, Some(_)) => Box::new(MemoryStore::default()),
        (Store::Sqlite(path), None) => {
            let path = path.clone();
            Box::new(tokio::task::spawn_blocking(move || SqliteStore::open(&path)).await??)
        }
        (Store::Redis(redis), None) => {
            let shard = sharding.map(|sharding| sharding.shard().clone()).unwrap_or_default();
            Box::new(RedisWebhookStore::open(&redis.url, &shard)?)
        }
        (Store::Ephemeral, None) => Box::new(MemoryStore::default()),
    };
    let mut webhook_config = config.webhooks.clone();
    webhook_config.cap = config.cap.clone();
    let webhooks = Webhooks::start(dispatcher.clone(), store, webhook_config, refusal).await?;
    let api = WebhookServiceServer::new(WebhookApi { webhooks: webhooks.clone() });
    Ok((auth::authorized(api, tokens), webhooks))
}

/// The escalation ladder's notifier when the policy has a ladder: its
/// state is kept beside the journal like the webhooks', its push rungs go
/// through the Web Push sender; a replay notifies nobody.
async fn notifier(
    config: &Config,
    dispatcher: &Dispatcher,
    sharding: Option<&sharding::Sharding>,
    pusher: Option<Arc<Pusher>>,
) -> anyhow::Result<Option<Arc<Notifier>>> {
    if config.replay.is_some() {
        return Ok(None);
    }
    let store: Box<dyn NotifyStore> = match &config.store {
        Store::Sqlite(path) => {
            let path = path.clone();
            Box::new(tokio::task::spawn_blocking(move || SqliteNotifyStore::open(&path)).await??)
        }
        Store::Redis(redis) => {
            let shard = sharding.map(|sharding| sharding.shard().clone()).unwrap_or_default();
            Box::new(RedisNotifyStore::open(&redis.url, &shard)?)
        }
        Store::Ephemeral => Box::new(MemoryNotifyStore::default()),
    };
    let push: Arc<dyn PushChannel> = match pusher {
        Some(pusher) => pusher,
        None => Arc::new(NoPush),
    };
    Notifier::start(dispatcher.clone(), store, config.notify.clone(), push, config.clock.clone()).await
}

/// Aborts the notifier's tasks when serving ends, however it ends.
struct AbortNotifier(Option<Arc<Notifier>>);

impl Drop for AbortNotifier {
    fn drop(&mut self) {
        if let Some(notifier) = &self.0 {
            notifier.abort();
        }
    }
}

/// The field service as both ports serve it (its calls check the person's
/// token themselves): a photo fits in one request.
pub(super) fn field_service(people: agent::People, pusher: Option<Arc<Pusher>>) -> FieldServiceServer<field::FieldApi> {
    FieldServiceServer::new(field::FieldApi::new(people).with_push(pusher)).max_decoding_message_size(field::MAX_FIELD_MESSAGE)
}

/// Web Push: the VAPID key and subscriptions kept beside the journal (its
/// SQLite file, the shard's Redis, or memory); a replay pushes nothing.
async fn pusher(
    config: &Config,
    dispatcher: &Dispatcher,
    sharding: Option<&sharding::Sharding>,
) -> anyhow::Result<Option<Arc<Pusher>>> {
    if config.replay.is_some() {
        return Ok(None);
    }
    let store: Box<dyn PushStore> = match &config.store {
        Store::Sqlite(path) => {
            let path = path.clone();
            Box::new(tokio::task::spawn_blocking(move || SqlitePushStore::open(&path)).await??)
        }
        Store::Redis(redis) => {
            let shard = sharding.map(|sharding| sharding.shard().clone()).unwrap_or_default();
            Box::new(RedisPushStore::open(&redis.url, &shard)?)
        }
        Store::Ephemeral => Box::new(MemoryPushStore::default()),
    };
    Ok(Some(Pusher::open(store, config.push.clone(), dispatcher.reachable_by_push()).await?))
}

/// The type of [`command_service`].
pub(super) type CommandStack =
    sharding::Routed<auth::Authorized<Fronted<CommandServiceServer<command::CommandApi>, status::TooLarge>>>;

/// Aborts the webhook deliveries when serving ends, however it ends.
struct AbortWebhooks(Arc<Webhooks>);

impl Drop for AbortWebhooks {
    fn drop(&mut self) {
        self.0.abort_all();
    }
}

/// The photo store on an S3-compatible bucket (`photos.bucket`).
#[cfg(feature = "s3")]
fn photo_bucket(url: &str, keep_exif: bool) -> anyhow::Result<PhotoStore> {
    let bucket = crate::photo_bucket::Bucket::open(url).with_context(|| format!("cannot open the photos bucket {url}"))?;
    Ok(PhotoStore::with_backend(Arc::new(bucket), keep_exif))
}

#[cfg(not(feature = "s3"))]
fn photo_bucket(url: &str, _keep_exif: bool) -> anyhow::Result<PhotoStore> {
    anyhow::bail!(
        "photos.bucket {url:?}: this dispatcher was built without S3 support; build it with `--features s3`, or use a \
         shared photos.dir"
    )
}

/// Aborts a background task when serving ends, however it ends.
pub(super) struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl AbortOnDrop {
    /// Waits up to `limit` for the task to end by itself, then aborts it.
    async fn join_within(&mut self, limit: std::time::Duration) {
        if let Some(task) = self.0.as_mut()
            && tokio::time::timeout(limit, &mut *task).await.is_err()
        {
            task.abort();
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// Says at start, with the command that fixes it, when nobody can call
/// the command API: no operator account here and (with one shard per
/// district) none published by another shard either.
async fn warn_if_no_operators(dispatcher: &Dispatcher, store: &Store, sharding: Option<&sharding::Sharding>) {
    let no_accounts_here = dispatcher.query(|engine, _| engine.operators().next().is_none()).await.unwrap_or(false);
    if !no_accounts_here {
        return;
    }
    let Some(sharding) = sharding else {
        warn!(
            fix = %first_admin_fix(store),
            "this dispatcher has no operator accounts: every command call (pingji, drills) is refused until there is a first admin"
        );
        return;
    };
    if sharding.published_operator_count().await != Some(0) {
        return;
    }
    // Another shard's owner starting at the same moment may publish its
    // accounts a second later: said so, rather than kept quiet.
    warn!(
        fix = %first_admin_fix(store),
        "this shard has no operator accounts and no other shard has published any yet: every command call is refused \
         until there is a first admin (or another shard publishes its accounts)"
    );
}

/// The commands that make the first admin of a dispatcher on `store`.
fn first_admin_fix(store: &Store) -> String {
    let by_variable = "PINGJI_BOOTSTRAP_ADMIN_TOKEN=pjo_admin_$(openssl rand -hex 32) (then use that token)";
    match store {
        Store::Sqlite(path) => format!(
            "stop it, run 'dispatcher --data {} bootstrap-admin' (it prints the admin's token once) and start it again; \
             or start it with {by_variable}",
            path.display()
        ),
        Store::Ephemeral => format!("a memory-only dispatcher keeps no accounts: start it with {by_variable}"),
        // The URL is not repeated: it may hold Redis's password.
        Store::Redis(_) => format!(
            "stop the dispatchers, run 'dispatcher bootstrap-admin --store REDIS_URL --areas MAP' (it prints the \
             admin's token once) and start them again; or start them with {by_variable}"
        ),
    }
}

/// A district shard's id must be a district on the map.
pub(super) async fn check_district(dispatcher: &Dispatcher, district: AreaId) -> anyhow::Result<()> {
    let probe = district.clone();
    let (level, districts) = dispatcher
        .query(move |engine, _| {
            let areas = &engine.state().areas;
            let districts: Vec<String> =
                areas.areas().filter(|area| area.level == AreaLevel::District).map(|area| area.id.to_string()).collect();
            (areas.get(&probe).map(|area| area.level), districts)
        })
        .await?;
    match level {
        Some(AreaLevel::District) => {
            info!(shard = %district, "serving one district's shard");
            Ok(())
        }
        _ => anyhow::bail!(
            "shard {district} is not a district on the map, so this dispatcher cannot tell what it serves; use --shard \
             city for the whole city as one shard, or a district's id ({}); load the map with --areas",
            if districts.is_empty() { "the map has none".to_string() } else { districts.join(", ") }
        ),
    }
}

/// Stops serving after a step-down: new connections are refused at once,
/// and the calls in flight (which the stopped runtime answers `unavailable`)
/// get a moment to carry their answers out before the server is dropped.
pub(super) async fn step_down(
    mut server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    stop_serving: &watch::Sender<bool>,
    health_reporter: &tonic_health::server::HealthReporter,
) {
    health_reporter.set_not_serving::<AgentServiceServer<agent::AgentApi>>().await;
    health_reporter.set_not_serving::<FieldServiceServer<field::FieldApi>>().await;
    health_reporter.set_not_serving::<CommandServiceServer<command::CommandApi>>().await;
    let _ = stop_serving.send(true);
    if tokio::time::timeout(STEP_DOWN_DRAIN, &mut server).await.is_err() {
        server.abort();
    }
}

/// Plan files named directly or found (`*.toml`) in the named folders.
pub(super) fn plan_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot read plans folder {}", path.display()))?
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|file| file.extension().is_some_and(|extension| extension == "toml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

pub(super) async fn load_plans(dispatcher: &Dispatcher, paths: &[PathBuf]) -> anyhow::Result<()> {
    let mut plans = Vec::new();
    for file in plan_files(paths)? {
        let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read plan file {}", file.display()))?;
        let plan =
            pingji_engine::plans::parse_plan(&text).map_err(|error| anyhow::anyhow!("plan file {}: {error}", file.display()))?;
        plans.push(plan);
    }
    if plans.is_empty() {
        return Ok(());
    }
    let changed = dispatcher
        .query(move |engine, _| plans.into_iter().filter(|plan| engine.plan(&plan.id) != Some(plan)).collect::<Vec<_>>())
        .await?;
    if changed.is_empty() {
        info!("plans already loaded");
        return Ok(());
    }
    let count = changed.len();
    dispatcher
        .execute(Command::ImportPlans(changed), "operator:startup".to_string(), |_, _| ())
        .await
        .map_err(|error| anyhow::anyhow!("plans: {error}"))?;
    info!(plans = count, "plans loaded");
    Ok(())
}

/// Whether `profile` belongs to `engine`'s shard: always with one shard for
/// the city; in a district's shard, when their home area lies in it (people
/// without a home area belong to no district, so to no district's file load).
pub(super) fn lives_in_scope(engine: &Engine, profile: &pingji_engine::roster::AgentProfile) -> bool {
    let Some(scope) = engine.scope() else {
        return true;
    };
    let areas = &engine.state().areas;
    profile.home_area.as_ref().and_then(|home| areas.placement_of_area(home).at(AreaLevel::District).cloned()).as_ref()
        == Some(scope)
}

pub(super) async fn load_startup_files(dispatcher: &Dispatcher, config: &Config) -> anyhow::Result<()> {
    const ACTOR: &str = "operator:startup";
    if let Some(path) = &config.areas_file {
        // Reading and parsing a city's files takes seconds: off the async
        // workers, which must go on renewing the shard's lease meanwhile.
        let reading = path.clone();
        let (text, import) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let text =
                std::fs::read_to_string(&reading).with_context(|| format!("cannot read areas file {}", reading.display()))?;
            let import = parse_geojson(&text).map_err(|error| anyhow::anyhow!("areas file {}: {error}", reading.display()))?;
            Ok((text, import))
        })
        .await??;
        let probe = import.clone();
        let already =
            dispatcher.query(move |engine, _| probe.areas.iter().all(|spec| engine.area(&spec.id) == Some(spec))).await?;
        if already {
            info!(path = %path.display(), "areas already loaded");
        } else {
            // As `pingji areas import` does: every problem of the file, warnings logged.
            let request = pingji_proto::v1::ImportAreasRequest { geojson: text, ..Default::default() };
            let response = super::maps::import(dispatcher, ACTOR.to_string(), request)
                .await
                .map_err(|status| anyhow::anyhow!("areas file {}: {}", path.display(), status.message()))?;
            for problem in &response.problems {
                warn!(path = %path.display(), feature = ?problem.feature, area = %problem.area_id, "{}", problem.message);
            }
            info!(path = %path.display(), areas = response.areas, warnings = response.problems.len(), "areas loaded");
        }
    }
    load_plans(dispatcher, &config.plan_paths).await?;
    if let Some(token) = &config.bootstrap_admin_token {
        bootstrap::add_admin_if_none(dispatcher, token).await?;
    }
    if let Some(path) = &config.agents_file {
        // A million rows take seconds to parse (see the areas file above):
        // with the workers blocked that long, the lease ran out while the
        // shard was being loaded, another process took it, and both
        // stepped down in turn (cityrun, docs/scale.md).
        let reading = path.clone();
        let profiles = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<_>> {
            let data = std::fs::read(&reading).with_context(|| format!("cannot read roster file {}", reading.display()))?;
            let specs = pingji_client::roster_csv::parse_roster_csv(&data)
                .map_err(|errors| anyhow::anyhow!("roster file {}: {errors}", reading.display()))?;
            Ok(specs.iter().map(convert::profile_from_pb).collect::<Result<Vec<_>, _>>()?)
        })
        .await??;
        let listed = profiles.len();
        let (changed, elsewhere) = dispatcher
            .query(move |engine, _| {
                // A district's shard keeps the people who live in it.
                let (ours, elsewhere): (Vec<_>, Vec<_>) =
                    profiles.into_iter().partition(|profile| lives_in_scope(engine, profile));
                let changed = ours
                    .into_iter()
                    .filter(|profile| engine.agent(&profile.id).is_none_or(|record| &record.profile != profile))
                    .collect::<Vec<_>>();
                (changed, elsewhere.len())
            })
            .await?;
        if elsewhere > 0 {
            info!(path = %path.display(), listed, elsewhere, "roster: people of other districts (or without a home area) left to their shards");
        }
        if changed.is_empty() {
            info!(path = %path.display(), "roster already loaded");
        } else {
            let count = changed.len();
            dispatcher
                .execute(
                    Command::UpsertAgents { agents: changed, all_new: false, tokens: Vec::new() },
                    ACTOR.to_string(),
                    |_, _| (),
                )
                .await
                .map_err(|error| anyhow::anyhow!("roster file {}: {error}", path.display()))?;
            info!(path = %path.display(), people = count, "roster loaded");
        }
    }
    Ok(())
}
