//! One shard per district: sending a call to the shard it concerns.
//!
//! A dispatcher serving district shard `d1` (`--shard d1`) keeps only that
//! district: incidents located in it, people who live in it, switches of its
//! areas (the engine's scope, see [`pingji_engine::engine::Engine::set_scope`]).
//! Whatever concerns another district is answered `unavailable` naming that
//! shard's owner in `x-pingji-owner`, exactly as a standby answers, so the
//! clients that already follow a standby follow this too:
//!
//! - a command the engine finds to be another district's (its rejection
//!   carries `x-pingji-shard`): [`Routed`] adds the owner of that shard,
//!   read from its lease in Redis;
//! - a console call sent with `x-pingji-shard: d2` (`pingji --shard d2`) to
//!   a process serving another shard: [`Routed`] answers at once;
//! - a person's hello, or a call naming an incident, that this shard does
//!   not know: [`Sharding::find`] looks the id up in the city's directory,
//!   a Redis hash of id → shard that every owner keeps for its people and
//!   incidents ([`keep_directory`]).
//!
//! The directory is written after the journal, not in the same script (it
//! lives in another hash slot): an owner that dies in between leaves an
//! entry out, and the next owner of the shard writes every id again when it
//! starts. It only ever says where to ask; the shard's own journal decides.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pingji_proto::owner::{OWNER_METADATA, SERVED_BY_METADATA, SHARD_METADATA};
use pingji_proto::v1 as pb;
use tokio::sync::broadcast::error::RecvError;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::codegen::{BoxFuture, Service};
use tracing::{debug, info, warn};

use serde::{Deserialize, Serialize};

use super::error;
use super::front::{Front, Fronted};
use crate::lease::{LeaseConfig, ShardLease};
use crate::runtime::Dispatcher;
use crate::shard::{COMMAND_TIMEOUT, RedisConnection, RedisShard, RedisStoreError, ShardId};
use pingji_engine::accounts::OperatorRole;
use pingji_proto::v1::ErrorReason;

/// The city's peer secret (see [`Sharding::peer_secret`]).
const PEER_SECRET: &str = "pingji:{directory}:peer_secret";
/// Ids written to the directory in one `HSET`.
const DIRECTORY_CHUNK: usize = 1000;
/// How often a directory write that failed (Redis away) is tried again.
const DIRECTORY_RETRY: Duration = Duration::from_secs(1);

/// What the directory maps to shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Agent,
    Incident,
    /// An operator account, published with its role and token hash so that
    /// every shard lets it in (see [`PublishedOperator`]).
    Operator,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Agent => "pingji:{directory}:agents",
            Kind::Incident => "pingji:{directory}:incidents",
            Kind::Operator => "pingji:{directory}:operators",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Agent => "agent",
            Kind::Incident => "incident",
            Kind::Operator => "operator account",
        }
    }
}

/// An operator account as its home shard (the one whose journal holds it)
/// publishes it: the other shards check the account's token against this
/// hash, and send changes to the account to its home shard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublishedOperator {
    pub shard: String,
    pub role: OperatorRole,
    pub token_hash: String,
    pub created_at_ms: i64,
    /// 0: no expiry (published by a dispatcher from before tokens expired,
    /// or an account made then).
    #[serde(default)]
    pub token_expires_at_ms: i64,
    /// 0: not revoked.
    #[serde(default)]
    pub token_revoked_at_ms: i64,
}

/// This process's shard, and how to find the others.
pub struct Sharding {
    url: String,
    shard: ShardId,
    /// The leases of the other shards, read to find their owners.
    leases: Mutex<HashMap<String, Arc<ShardLease>>>,
    directory: Directory,
    /// The fencing token this process holds the shard's lease with: sent
    /// with every call to another shard's owner (see `border`).
    epoch: u64,
    /// The city's peer secret, once read (see [`Sharding::peer_secret`]).
    peer_secret: Mutex<Option<String>>,
    /// With TLS on the gRPC port, how to call the other owners (`https`).
    peer_tls: Option<tonic::transport::ClientTlsConfig>,
}

/// One connection to Redis for the directory, kept open and shared, so that
/// a flood of hellos for unknown people does not open one each.
#[derive(Clone)]
struct Directory {
    redis: RedisShard,
    connection: Arc<Mutex<Option<RedisConnection>>>,
}

impl Directory {
    /// Runs `command` on the connection (opened when there is none; dropped
    /// after a failure, to be opened again next time). Blocking.
    fn run<T>(
        &self,
        action: &str,
        command: impl FnOnce(&mut RedisConnection) -> redis::RedisResult<T>,
    ) -> Result<T, RedisStoreError> {
        let mut slot = self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let connection = match slot.as_mut() {
            Some(connection) => connection,
            None => slot.insert(self.redis.connect(COMMAND_TIMEOUT)?),
        };
        command(connection).map_err(|cause| {
            *slot = None;
            self.redis.failure(action, &cause)
        })
    }
}

impl Sharding {
    pub fn new(url: &str, shard: ShardId) -> Result<Self, RedisStoreError> {
        let directory = Directory { redis: RedisShard::new(url, shard.clone())?, connection: Arc::new(Mutex::new(None)) };
        Ok(Sharding {
            url: url.to_owned(),
            shard,
            leases: Mutex::new(HashMap::new()),
            directory,
            epoch: 0,
            peer_secret: Mutex::new(None),
            peer_tls: None,
        })
    }

    /// The same, calling the other owners over TLS with `tls`.
    pub fn with_peer_tls(mut self, tls: Option<tonic::transport::ClientTlsConfig>) -> Self {
        self.peer_tls = tls;
        self
    }

    /// How to call the other owners: over TLS when this one serves it.
    pub fn peer_tls(&self) -> Option<&tonic::transport::ClientTlsConfig> {
        self.peer_tls.as_ref()
    }

    /// The same, for the owner holding the shard's lease with `epoch`.
    pub fn with_epoch(mut self, epoch: u64) -> Self {
        self.epoch = epoch;
        self
    }

    /// The fencing token of this process's lease on its shard.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The secret the dispatchers of the city show each other
    /// (`x-pingji-peer`), kept in Redis at `pingji:{directory}:peer_secret`:
    /// made by the first dispatcher that asks, read by every other. Whoever
    /// can read it can also write the journals, so it adds no new trust.
    pub async fn peer_secret(&self) -> Result<String, RedisStoreError> {
        if let Some(secret) = self.peer_secret.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone() {
            return Ok(secret);
        }
        let directory = self.directory.clone();
        let made = crate::tokens::new_agent_token();
        let read = tokio::task::spawn_blocking(move || {
            directory.run("read the peer secret", |connection| {
                let _: bool = redis::cmd("SET")
                    .arg(PEER_SECRET)
                    .arg(&made)
                    .arg("NX")
                    .query::<Option<String>>(connection)
                    .map(|set| set.is_some())?;
                redis::cmd("GET").arg(PEER_SECRET).query::<String>(connection)
            })
        })
        .await
        .map_err(|_| self.directory.redis.unexpected("read the peer secret", "the reading task stopped"))??;
        *self.peer_secret.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(read.clone());
        Ok(read)
    }

    /// The fencing token of the latest owner of `shard` (0: never owned).
    pub async fn fence_of(&self, shard: &str) -> Result<u64, RedisStoreError> {
        let id = ShardId::new(shard).map_err(|error| self.directory.redis.unexpected("read a fence", error))?;
        let key = crate::shard::ShardKeys::new(&id).fence;
        let directory = self.directory.clone();
        tokio::task::spawn_blocking(move || {
            directory.run(&format!("read {key}"), |connection| {
                redis::cmd("GET").arg(&key).query::<Option<u64>>(connection).map(Option::unwrap_or_default)
            })
        })
        .await
        .map_err(|_| self.directory.redis.unexpected("read a fence", "the reading task stopped"))?
    }

    pub fn shard(&self) -> &ShardId {
        &self.shard
    }

    /// Runs `command` on the connection this process keeps for the keys
    /// of no shard (the directory, the city-wide switches): opened when
    /// needed, dropped after a failure. Blocking.
    pub(crate) fn run_shared<T>(
        &self,
        action: &str,
        command: impl FnOnce(&mut RedisConnection) -> redis::RedisResult<T>,
    ) -> Result<T, RedisStoreError> {
        self.directory.run(action, command)
    }

    /// An answer of the wrong shape, for messages.
    pub(crate) fn unexpected(&self, action: &str, detail: impl std::fmt::Display) -> RedisStoreError {
        self.directory.redis.unexpected(action, detail)
    }

    /// The Redis URL (with its password, for connecting).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address of `shard`'s owner, if it has one Redis can tell.
    pub async fn owner_of(&self, shard: &str) -> Option<String> {
        let lease = self.lease(shard)?;
        match tokio::task::spawn_blocking(move || lease.holder()).await {
            Ok(Ok(holder)) => holder.map(|holder| holder.address).filter(|address| !address.is_empty()),
            Ok(Err(error)) => {
                warn!(%error, shard, "cannot read the owner of another shard");
                None
            }
            Err(_) => None,
        }
    }

    fn lease(&self, shard: &str) -> Option<Arc<ShardLease>> {
        let id = ShardId::new(shard).ok()?;
        let mut leases = self.leases.lock().ok()?;
        if let Some(lease) = leases.get(shard) {
            return Some(lease.clone());
        }
        let redis = RedisShard::new(&self.url, id).ok()?;
        // Read only: holder() never takes or renews the lease.
        let lease = Arc::new(ShardLease::new(redis, "reader", "", LeaseConfig::default()));
        leases.insert(shard.to_owned(), lease.clone());
        Some(lease)
    }

    /// `unavailable` sending the caller to `shard`'s owner (or saying it
    /// has none now).
    pub async fn moved(&self, shard: &str, message: String) -> Status {
        match self.owner_of(shard).await {
            Some(owner) => error::redirect(
                ErrorReason::OtherShard,
                format!("{message}; shard {shard} is owned by the dispatcher at {owner}; connect there"),
                shard,
                &owner,
            ),
            None => error::retry_later(
                ErrorReason::OtherShard,
                format!("{message}; shard {shard} has no owner now; retry in a moment"),
            ),
        }
    }

    /// The shard the directory names for `id`, when it is another one.
    pub async fn find(&self, kind: Kind, id: &str) -> Option<String> {
        let value = self.read_directory(kind, id).await?;
        let shard = match kind {
            Kind::Agent | Kind::Incident => value,
            Kind::Operator => serde_json::from_str::<PublishedOperator>(&value).ok()?.shard,
        };
        (shard != self.shard.as_str()).then_some(shard)
    }

    /// An operator account whose home is another shard.
    pub async fn published_operator(&self, name: &str) -> Option<PublishedOperator> {
        let value = self.read_directory(Kind::Operator, name).await?;
        let published: PublishedOperator = serde_json::from_str(&value).ok()?;
        (published.shard != self.shard.as_str()).then_some(published)
    }

    /// How many operator accounts every shard has published (this one's
    /// too); `None` when the directory cannot be read.
    pub async fn published_operator_count(&self) -> Option<usize> {
        let directory = self.directory.clone();
        let read = tokio::task::spawn_blocking(move || {
            directory.run(&format!("count {}", Kind::Operator.key()), |connection| {
                redis::cmd("HLEN").arg(Kind::Operator.key()).query::<usize>(connection)
            })
        })
        .await;
        match read {
            Ok(Ok(count)) => Some(count),
            Ok(Err(error)) => {
                warn!(%error, "cannot count the published operator accounts");
                None
            }
            Err(_) => None,
        }
    }

    /// Every published operator account (every shard's, this one's too).
    pub async fn published_operators(&self) -> Vec<(String, PublishedOperator)> {
        let directory = self.directory.clone();
        let read = tokio::task::spawn_blocking(move || {
            directory.run(&format!("read {}", Kind::Operator.key()), |connection| {
                redis::cmd("HGETALL").arg(Kind::Operator.key()).query::<HashMap<String, String>>(connection)
            })
        })
        .await;
        match read {
            Ok(Ok(published)) => published
                .into_iter()
                .filter_map(|(name, value)| serde_json::from_str(&value).ok().map(|account| (name, account)))
                .collect(),
            Ok(Err(error)) => {
                warn!(%error, "cannot read the published operator accounts");
                Vec::new()
            }
            Err(_) => Vec::new(),
        }
    }

    async fn read_directory(&self, kind: Kind, id: &str) -> Option<String> {
        let directory = self.directory.clone();
        let id = id.to_owned();
        let found = tokio::task::spawn_blocking(move || {
            directory.run(&format!("look up {id} in {}", kind.key()), |connection| {
                redis::cmd("HGET").arg(kind.key()).arg(&id).query::<Option<String>>(connection)
            })
        })
        .await;
        match found {
            Ok(Ok(value)) => value,
            Ok(Err(error)) => {
                warn!(%error, "cannot read the shard directory");
                None
            }
            Err(_) => None,
        }
    }

    /// The owner of the shard holding `id`, as a redirect, when the
    /// directory names another shard.
    pub async fn redirect_to_holder(&self, kind: Kind, id: &str) -> Option<Status> {
        let shard = self.find(kind, id).await?;
        let message = format!("{} {id} belongs to shard {shard}; this dispatcher serves shard {}", kind.name(), self.shard);
        Some(self.moved(&shard, message).await)
    }

    fn write_directory(&self, kind: Kind, ids: &[String]) -> Result<(), RedisStoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        for chunk in ids.chunks(DIRECTORY_CHUNK) {
            let mut command = redis::cmd("HSET");
            command.arg(kind.key());
            for id in chunk {
                command.arg(id).arg(self.shard.as_str());
            }
            self.directory.run(&format!("write {}", kind.key()), |connection| command.query::<i64>(connection))?;
        }
        Ok(())
    }
}

impl Sharding {
    /// Publishes this shard's operator accounts (`accounts`: name → the
    /// account as published) and withdraws those it published before that
    /// are gone.
    fn publish_operators(&self, accounts: &[(String, String)]) -> Result<(), RedisStoreError> {
        let action = format!("publish the operator accounts in {}", Kind::Operator.key());
        let published: HashMap<String, String> =
            self.directory.run(&action, |connection| redis::cmd("HGETALL").arg(Kind::Operator.key()).query(connection))?;
        let current: HashSet<&str> = accounts.iter().map(|(name, _)| name.as_str()).collect();
        let gone: Vec<&String> = published
            .iter()
            .filter(|(name, value)| {
                !current.contains(name.as_str())
                    && serde_json::from_str::<PublishedOperator>(value).is_ok_and(|account| account.shard == self.shard.as_str())
            })
            .map(|(name, _)| name)
            .collect();
        let mut pipeline = redis::pipe();
        if !gone.is_empty() {
            pipeline.cmd("HDEL").arg(Kind::Operator.key()).arg(gone).ignore();
        }
        if !accounts.is_empty() {
            pipeline.cmd("HSET").arg(Kind::Operator.key());
            for (name, value) in accounts {
                pipeline.arg(name).arg(value);
            }
            pipeline.ignore();
        }
        self.directory.run(&action, |connection| pipeline.query::<()>(connection))
    }
}

/// This shard's operator accounts as published, from its state.
async fn operators_to_publish(dispatcher: &Dispatcher, shard: String) -> Option<Vec<(String, String)>> {
    dispatcher
        .query(move |engine, _| {
            engine
                .state()
                .operators
                .iter()
                .filter_map(|(name, operator)| {
                    let published = PublishedOperator {
                        shard: shard.clone(),
                        role: operator.role,
                        token_hash: operator.token_hash.clone(),
                        created_at_ms: operator.created_at.0,
                        token_expires_at_ms: operator.token_expires_at.map_or(0, |at| at.0),
                        token_revoked_at_ms: operator.token_revoked_at.map_or(0, |at| at.0),
                    };
                    serde_json::to_string(&published).ok().map(|value| (name.clone(), value))
                })
                .collect()
        })
        .await
        .ok()
}

/// Keeps the directory naming this shard for its people and incidents,
/// while the owner serves: everything at start, then what the events add.
pub async fn keep_directory(dispatcher: Dispatcher, sharding: Arc<Sharding>) {
    let mut events = dispatcher.subscribe();
    let mut everything = true;
    let mut operators_changed = true;
    let mut agents: Vec<String> = Vec::new();
    let mut incidents: Vec<String> = Vec::new();
    let mut retry = tokio::time::interval(DIRECTORY_RETRY);
    loop {
        if everything {
            let Ok((all_agents, all_incidents)) = dispatcher
                .query(|engine, _| {
                    let state = engine.state();
                    let agents: Vec<String> = state.agents.keys().map(|id| id.to_string()).collect();
                    let incidents: Vec<String> = state.incidents.keys().map(|id| id.to_string()).collect();
                    (agents, incidents)
                })
                .await
            else {
                return;
            };
            (agents, incidents) = (all_agents, all_incidents);
        }
        if !agents.is_empty() || !incidents.is_empty() {
            let writing = sharding.clone();
            let (people, tasks) = (std::mem::take(&mut agents), std::mem::take(&mut incidents));
            let written = tokio::task::spawn_blocking(move || {
                let result =
                    writing.write_directory(Kind::Agent, &people).and_then(|()| writing.write_directory(Kind::Incident, &tasks));
                (result, people, tasks)
            })
            .await;
            match written {
                Ok((Ok(()), people, tasks)) => {
                    if everything {
                        info!(people = people.len(), incidents = tasks.len(), "shard directory written");
                    } else {
                        debug!(people = people.len(), incidents = tasks.len(), "shard directory updated");
                    }
                    everything = false;
                }
                Ok((Err(error), people, tasks)) => {
                    warn!(%error, "cannot write the shard directory; trying again");
                    (agents, incidents) = (people, tasks);
                }
                Err(_) => return,
            }
        } else {
            everything = false;
        }
        if operators_changed {
            let Some(accounts) = operators_to_publish(&dispatcher, sharding.shard().to_string()).await else {
                return;
            };
            let publishing = sharding.clone();
            match tokio::task::spawn_blocking(move || publishing.publish_operators(&accounts)).await {
                Ok(Ok(())) => operators_changed = false,
                Ok(Err(error)) => warn!(%error, "cannot publish the operator accounts; trying again"),
                Err(_) => return,
            }
        }
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => operators_changed |= note(&event, &mut agents, &mut incidents),
                Err(RecvError::Lagged(_)) => (everything, operators_changed) = (true, true),
                Err(RecvError::Closed) => return,
            },
            _ = retry.tick() => {}
        }
        // Take whatever else is waiting, to write it in one go.
        while let Ok(event) = events.try_recv() {
            operators_changed |= note(&event, &mut agents, &mut incidents);
        }
    }
}

/// The ids an event adds to the directory; true when it changed an operator
/// account (the accounts are then published again).
fn note(event: &pb::Event, agents: &mut Vec<String>, incidents: &mut Vec<String>) -> bool {
    match event.kind.as_str() {
        "operator_added" | "operator_token_rotated" | "operator_removed" | "operator_token_revoked" => return true,
        "incident_reported" if !event.incident_id.is_empty() => incidents.push(event.incident_id.clone()),
        "agents_upserted" => {
            let Some(pb::event::Body::AgentsUpserted(upserted)) = &event.body else {
                return false;
            };
            let mut seen = HashSet::new();
            for id in upserted.agents.iter().map(|agent| agent.id.as_str()) {
                if seen.insert(id) {
                    agents.push(id.to_owned());
                }
            }
        }
        _ => {}
    }
    false
}

/// `inner` (the command service), sent on to the owner of the shard a call
/// is for: answered at once when the caller named another shard, and given
/// the owner's address when the engine found the call to be another shard's.
/// Without sharding (one shard for the city) it only passes calls on.
pub type Routed<S> = Fronted<S, Routing>;

pub fn routed<S>(inner: S, sharding: Option<Arc<Sharding>>) -> Routed<S> {
    Fronted::new(inner, Routing { sharding })
}

#[derive(Clone)]
pub struct Routing {
    sharding: Option<Arc<Sharding>>,
}

impl<S> Front<S> for Routing
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    fn call(&self, mut inner: S, request: http::Request<Body>) -> BoxFuture<http::Response<Body>, Infallible> {
        let Some(sharding) = self.sharding.clone() else {
            return Box::pin(inner.call(request));
        };
        Box::pin(async move {
            let asked = request.headers().get(SHARD_METADATA).and_then(|value| value.to_str().ok()).map(str::to_owned);
            if let Some(asked) = asked.filter(|asked| asked != sharding.shard().as_str()) {
                let message = format!(
                    "the call is for shard {}; this dispatcher serves shard {}",
                    pingji_engine::ids::quote(&asked),
                    sharding.shard()
                );
                return Ok(sharding.moved(&asked, message).await.into_http());
            }
            let mut response = inner.call(request).await?;
            if let Ok(value) = http::HeaderValue::from_str(sharding.shard().as_str()) {
                response.headers_mut().insert(SERVED_BY_METADATA, value);
            }
            let moved_to = response.headers().get(SHARD_METADATA).and_then(|value| value.to_str().ok()).map(str::to_owned);
            // The engine found the call to be another shard's: answer again,
            // naming that shard's owner in the details and the header.
            if let Some(shard) = moved_to
                && !response.headers().contains_key(OWNER_METADATA)
                && let Some(owner) = sharding.owner_of(&shard).await
                && let Some(status) = Status::from_header_map(response.headers())
            {
                let served_by = response.headers().get(SERVED_BY_METADATA).cloned();
                let mut redirected =
                    error::redirect(ErrorReason::OtherShard, status.message().to_string(), &shard, &owner).into_http();
                if let Some(value) = served_by {
                    redirected.headers_mut().insert(SERVED_BY_METADATA, value);
                }
                if let Ok(value) = http::HeaderValue::from_str(&shard) {
                    redirected.headers_mut().insert(SHARD_METADATA, value);
                }
                return Ok(redirected);
            }
            Ok(response)
        })
    }
}
