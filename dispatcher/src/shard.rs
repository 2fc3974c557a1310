//! A shard of the city kept in Redis: its id, the names of its keys, and the
//! connection to the Redis that holds them.
//!
//! A shard is the unit of ownership: one dispatcher process at a time owns it
//! (see [`crate::lease`]), appends its journal and serves its clients. A
//! city runs as one shard (`city`) or as one shard per district (`d1`, see
//! [`crate::server::sharding`]). Every key carries the shard id as a Redis
//! Cluster hash tag, so all keys of a shard live in one hash slot and the Lua scripts
//! that touch several of them at once (an append checks the fence and writes
//! the stream) work on a Cluster as they do on one node.
//!
//! ```text
//! pingji:{<shard>}:events     stream; entry id <seq>-0; fields at_ms, at, actor, kind,
//!                             [incident_id], [agent_id], [area_id], body
//! pingji:{<shard>}:snapshot   hash: seq, state, created_at_ms
//! pingji:{<shard>}:fence      counter: the fencing token of the latest owner (only grows)
//! pingji:{<shard>}:lease      hash with a ttl: token, owner, address
//! pingji:{<shard>}:locations  hash: agent id -> "lon,lat,at_ms"
//! ```
//!
//! The Redis is one server (`redis://HOST:PORT[/DB]`) or a Redis Cluster
//! (`redis+cluster://HOST:PORT,HOST:PORT,...`, any of its nodes as seeds);
//! [`RedisConnection`] is either, with the same timeouts and the same
//! classification of errors, so the code above it does not know which.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConnection};
use redis::{ConnectionLike, ErrorKind, ServerErrorKind};

/// The scheme of a Redis Cluster's address: its seed nodes, comma separated.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

/// How long opening a connection to Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command may wait for Redis's answer before the connection
/// counts as lost. Long enough for `appendfsync always` on a busy disk.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// A shard's id: letters, digits, `-`, `_` and `.`, at most 64 of them, so
/// that it sits safely inside a hash tag and a log line.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShardId(String);

impl ShardId {
    /// The shard of a city run as one shard.
    pub const CITY: &'static str = "city";

    pub fn new(id: &str) -> Result<Self, String> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if id.is_empty() || id.len() > 64 || !id.chars().all(valid_char) {
            return Err(format!(
                "invalid shard id {id:?}: use 1 to 64 letters, digits, '-', '_' or '.', e.g. \"city\" or \"d1\""
            ));
        }
        Ok(ShardId(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ShardId {
    fn default() -> Self {
        ShardId(Self::CITY.to_owned())
    }
}

impl FromStr for ShardId {
    type Err = String;

    fn from_str(id: &str) -> Result<Self, String> {
        ShardId::new(id)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The Redis keys of one shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardKeys {
    pub events: String,
    pub snapshot: String,
    pub fence: String,
    pub lease: String,
    pub locations: String,
}

impl ShardKeys {
    pub fn new(shard: &ShardId) -> Self {
        let key = |name: &str| format!("pingji:{{{shard}}}:{name}");
        ShardKeys {
            events: key("events"),
            snapshot: key("snapshot"),
            fence: key("fence"),
            lease: key("lease"),
            locations: key("locations"),
        }
    }
}

/// Redis could not be used. Each message names the Redis (without its
/// password) and says what was being done.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisStoreError {
    /// Refused, reset, timed out, loading its data, or a replica: nothing
    /// this process can fix; it comes back when Redis does.
    #[error(
        "redis at {url} is unreachable: {cause} (while trying to {action}); \
         check that redis-server runs there and answers"
    )]
    Unreachable { url: String, action: String, cause: String },
    /// Redis answered, but with an error or an answer this code does not
    /// understand.
    #[error("cannot {action} on redis at {url}: {cause}")]
    Failed { url: String, action: String, cause: String },
    #[error(
        "invalid redis url {url}: {cause}; expected redis://HOST:PORT (one server) or \
         redis+cluster://HOST:PORT,HOST:PORT,... (a Redis Cluster's nodes)"
    )]
    InvalidUrl { url: String, cause: String },
}

impl RedisStoreError {
    /// Whether Redis was out of reach (rather than answering wrongly).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, RedisStoreError::Unreachable { .. })
    }
}

/// One shard on one Redis: where it is, and its keys. Cheap to clone; each
/// user opens its own connections with [`RedisShard::connect`].
#[derive(Clone)]
pub struct RedisShard {
    target: Target,
    url: String,
    id: ShardId,
    keys: ShardKeys,
}

/// Where the shard's Redis is: one server, or the seed nodes of a cluster.
#[derive(Clone)]
enum Target {
    Single(redis::Client),
    /// `redis://` URLs of the seeds; the client is built per connection,
    /// with that connection's command timeout.
    Cluster(Vec<String>),
}

impl fmt::Debug for RedisShard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisShard").field("url", &self.url).field("shard", &self.id.as_str()).finish()
    }
}

impl RedisShard {
    /// Parses `url` (`redis://HOST:PORT[/DB]`, or
    /// `redis+cluster://[USER:PASSWORD@]HOST:PORT,HOST:PORT,...`); connects
    /// only on use.
    pub fn new(url: &str, id: ShardId) -> Result<Self, RedisStoreError> {
        let shown = redacted_url(url);
        let invalid = |cause: String| RedisStoreError::InvalidUrl { url: shown.clone(), cause };
        let target = match url.strip_prefix(CLUSTER_SCHEME) {
            Some(nodes) => {
                let seeds = cluster_seeds(nodes).map_err(invalid)?;
                ClusterClient::new(seeds.clone()).map_err(|cause| invalid(cause.to_string()))?;
                Target::Cluster(seeds)
            }
            None => Target::Single(redis::Client::open(url).map_err(|cause| invalid(cause.to_string()))?),
        };
        Ok(RedisShard { target, url: shown, keys: ShardKeys::new(&id), id })
    }

    pub fn id(&self) -> &ShardId {
        &self.id
    }

    pub fn keys(&self) -> &ShardKeys {
        &self.keys
    }

    /// The Redis URL without its password, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the shard's Redis is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    /// A new connection whose commands fail after `command_timeout` without
    /// an answer (a paused or partitioned Redis), rather than hang.
    pub fn connect(&self, command_timeout: Duration) -> Result<RedisConnection, RedisStoreError> {
        let action = "connect";
        match &self.target {
            Target::Single(client) => {
                let connection =
                    client.get_connection_with_timeout(CONNECT_TIMEOUT).map_err(|cause| self.failure(action, &cause))?;
                connection
                    .set_read_timeout(Some(command_timeout))
                    .and_then(|()| connection.set_write_timeout(Some(command_timeout)))
                    .map_err(|cause| self.failure(action, &cause))?;
                Ok(RedisConnection::Single(connection))
            }
            Target::Cluster(seeds) => {
                let link = ClusterLink::open(seeds, command_timeout).map_err(|cause| self.failure(action, &cause))?;
                Ok(RedisConnection::Cluster(Box::new(link)))
            }
        }
    }

    /// Classifies a Redis error: out of reach, or a real failure.
    pub fn failure(&self, action: &str, cause: &redis::RedisError) -> RedisStoreError {
        let unreachable = cause.is_io_error()
            || cause.is_connection_refusal()
            || cause.is_timeout()
            || cause.is_connection_dropped()
            || matches!(
                cause.kind(),
                ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        // A slot that moved again while it was followed, or
                        // is being migrated: the cluster is changing.
                        | ServerErrorKind::Moved
                        | ServerErrorKind::Ask
                ) | ErrorKind::ClusterConnectionNotFound
            );
        if unreachable {
            RedisStoreError::Unreachable { url: self.url.clone(), action: action.to_owned(), cause: cause.to_string() }
        } else {
            RedisStoreError::Failed { url: self.url.clone(), action: action.to_owned(), cause: cause.to_string() }
        }
    }

    /// An answer of the wrong shape (a key of another type, a script of
    /// another version).
    pub fn unexpected(&self, action: &str, detail: impl fmt::Display) -> RedisStoreError {
        RedisStoreError::Failed {
            url: self.url.clone(),
            action: action.to_owned(),
            cause: format!("unexpected answer: {detail}"),
        }
    }
}

/// The `redis://` URL of each seed node of `nodes`
/// (`[USER:PASSWORD@]HOST:PORT,HOST:PORT,...`, the part after the scheme).
fn cluster_seeds(nodes: &str) -> Result<Vec<String>, String> {
    let (userinfo, hosts) = match nodes.rsplit_once('@') {
        Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
        None => (String::new(), nodes),
    };
    if hosts.contains('/') {
        return Err("a Redis Cluster has no databases to choose: leave out /DB".to_owned());
    }
    let seeds: Vec<String> = hosts.split(',').map(str::trim).map(|host| format!("redis://{userinfo}{host}")).collect();
    for (host, seed) in hosts.split(',').map(str::trim).zip(&seeds) {
        let has_port = host.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok());
        if !has_port {
            return Err(format!("{host:?} is not HOST:PORT; name each seed node with its port"));
        }
        redis::Client::open(seed.as_str()).map_err(|cause| format!("{host:?}: {cause}"))?;
    }
    Ok(seeds)
}

/// A connection to the Redis holding the shard: one server, or a Redis
/// Cluster (a connection per node it has talked to, routed by each
/// command's key slot). Commands, scripts and pipelines run on either.
pub enum RedisConnection {
    Single(redis::Connection),
    Cluster(Box<ClusterLink>),
}

/// A connection to a Redis Cluster that follows a moved slot once.
///
/// The cluster client is built without retries of its own: it would send a
/// command again after a timeout or a dropped connection, and a fenced
/// append that did run would then be refused by its own sequence check. A
/// command that failed is reported, as on one server, and the caller drops
/// the connection ([`RedisShard::failure`] says which errors mean "out of
/// reach"). Only `MOVED` is followed here, because a node that answers
/// `MOVED` did nothing: the connection is opened again with the cluster's
/// new slot map (after a failover or a resharding) and the command sent
/// once more.
pub struct ClusterLink {
    client: ClusterClient,
    write_timeout: Duration,
    connection: ClusterConnection,
}

impl ClusterLink {
    fn open(seeds: &[String], command_timeout: Duration) -> redis::RedisResult<ClusterLink> {
        let client = ClusterClientBuilder::new(seeds.to_vec())
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(command_timeout)
            .retries(0)
            .build()?;
        let connection = Self::connect(&client, command_timeout)?;
        Ok(ClusterLink { client, write_timeout: command_timeout, connection })
    }

    fn connect(client: &ClusterClient, write_timeout: Duration) -> redis::RedisResult<ClusterConnection> {
        let connection = client.get_connection()?;
        connection.set_write_timeout(Some(write_timeout))?;
        Ok(connection)
    }

    /// Runs `request`, and once more on a fresh connection if the slot moved.
    fn follow_moved<T>(&mut self, request: impl Fn(&mut ClusterConnection) -> redis::RedisResult<T>) -> redis::RedisResult<T> {
        match request(&mut self.connection) {
            Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::Moved) => {
                self.connection = Self::connect(&self.client, self.write_timeout)?;
                request(&mut self.connection)
            }
            outcome => outcome,
        }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command(&mut self, command: &[u8]) -> redis::RedisResult<redis::Value> {
        match self {
            RedisConnection::Single(connection) => connection.req_packed_command(command),
            RedisConnection::Cluster(link) => link.follow_moved(|connection| connection.req_packed_command(command)),
        }
    }

    fn req_packed_commands(&mut self, commands: &[u8], offset: usize, count: usize) -> redis::RedisResult<Vec<redis::Value>> {
        match self {
            RedisConnection::Single(connection) => connection.req_packed_commands(commands, offset, count),
            RedisConnection::Cluster(link) => {
                link.follow_moved(|connection| connection.req_packed_commands(commands, offset, count))
            }
        }
    }

    fn req_command(&mut self, command: &redis::Cmd) -> redis::RedisResult<redis::Value> {
        match self {
            RedisConnection::Single(connection) => connection.req_command(command),
            RedisConnection::Cluster(link) => link.follow_moved(|connection| connection.req_command(command)),
        }
    }

    /// True for a cluster too: the cluster client sends a pipeline (or a
    /// MULTI/EXEC transaction) whole to the node of its first command's key,
    /// and every pipeline here touches the keys of one shard, which share a
    /// hash slot. (The cluster client says false because a pipeline in
    /// general may span nodes.)
    fn supports_pipelining(&self) -> bool {
        true
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Single(connection) => connection.get_db(),
            RedisConnection::Cluster(_) => 0,
        }
    }

    fn check_connection(&mut self) -> bool {
        match self {
            RedisConnection::Single(connection) => connection.check_connection(),
            RedisConnection::Cluster(link) => link.connection.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            RedisConnection::Single(connection) => connection.is_open(),
            RedisConnection::Cluster(link) => link.connection.is_open(),
        }
    }
}

/// `redis://user:secret@host:6379/0` → `redis://user:***@host:6379/0`.
fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(user, _)| user);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

/// Reads a bulk or simple string reply as text (`None` for nil).
pub(crate) fn reply_text(value: &redis::Value) -> Option<String> {
    match value {
        redis::Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        redis::Value::SimpleString(text) => Some(text.clone()),
        redis::Value::Int(number) => Some(number.to_string()),
        redis::Value::Okay => Some("OK".to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_shard_as_a_hash_tag() {
        let keys = ShardKeys::new(&ShardId::default());
        assert_eq!(keys.events, "pingji:{city}:events");
        assert_eq!(keys.snapshot, "pingji:{city}:snapshot");
        assert_eq!(keys.fence, "pingji:{city}:fence");
        assert_eq!(keys.lease, "pingji:{city}:lease");
        assert_eq!(keys.locations, "pingji:{city}:locations");
        let district = ShardId::new("d1").expect("valid");
        assert_eq!(ShardKeys::new(&district).events, "pingji:{d1}:events");
    }

    #[test]
    fn shard_ids_that_would_break_a_hash_tag_are_refused() {
        for bad in ["", "a b", "x}y", "{city}", "名", &"a".repeat(65)] {
            let error = ShardId::new(bad).expect_err(bad);
            assert!(error.contains("invalid shard id"), "{error}");
        }
        assert!(ShardId::new("district-7_b.2").is_ok());
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(redacted_url("redis://user:secret@host:6379/0"), "redis://user:***@host:6379/0");
        assert_eq!(redacted_url("redis://:secret@host"), "redis://:***@host");
        assert_eq!(redacted_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        let shard = RedisShard::new("redis://:hunter2@127.0.0.1:1", ShardId::default()).expect("valid url");
        assert!(!format!("{shard:?}").contains("hunter2"));
    }

    #[test]
    fn an_unreachable_redis_says_so() {
        // Port 1 on loopback: nothing listens there, the connection is refused.
        let shard = RedisShard::new("redis://127.0.0.1:1", ShardId::default()).expect("valid url");
        let Err(error) = shard.connect(COMMAND_TIMEOUT) else {
            panic!("nothing listens on port 1, yet the connection opened");
        };
        assert!(error.is_unreachable(), "{error}");
        let message = error.to_string();
        assert!(message.starts_with("redis at redis://127.0.0.1:1 is unreachable: "), "{message}");
    }

    #[test]
    fn a_bad_url_is_refused_at_start() {
        let error = RedisShard::new("http://nope", ShardId::default()).expect_err("not redis");
        assert!(matches!(error, RedisStoreError::InvalidUrl { .. }), "{error}");
        for bad in ["redis+cluster://", "redis+cluster://127.0.0.1", "redis+cluster://a:1,,b:2", "redis+cluster://a:1/0"] {
            let error = RedisShard::new(bad, ShardId::default()).expect_err(bad);
            assert!(matches!(error, RedisStoreError::InvalidUrl { .. }), "{bad}: {error}");
        }
    }

    #[test]
    fn a_cluster_is_named_by_its_seed_nodes() {
        let shard =
            RedisShard::new("redis+cluster://:hunter2@127.0.0.1:7000,127.0.0.1:7001", ShardId::default()).expect("a cluster url");
        assert!(shard.is_cluster());
        assert_eq!(shard.url(), "redis+cluster://:***@127.0.0.1:7000,127.0.0.1:7001");
        assert_eq!(
            cluster_seeds("u:p@h1:7000, h2:7001").expect("seeds"),
            vec!["redis://u:p@h1:7000".to_owned(), "redis://u:p@h2:7001".to_owned()]
        );
        assert!(!RedisShard::new("redis://127.0.0.1:6379", ShardId::default()).expect("url").is_cluster());
    }

    #[test]
    fn an_unreachable_cluster_says_so() {
        let shard = RedisShard::new("redis+cluster://127.0.0.1:1,127.0.0.1:2", ShardId::default()).expect("valid url");
        let Err(error) = shard.connect(COMMAND_TIMEOUT) else {
            panic!("nothing listens on ports 1 and 2, yet the connection opened");
        };
        assert!(error.is_unreachable(), "{error}");
    }
}
