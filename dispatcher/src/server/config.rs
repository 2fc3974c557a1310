//! How the server is set up: where the journal lives, TLS, the limits on
//! what one client may ask, and the gRPC server builder with reflection.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, Server, ServerTlsConfig};
use tower_layer::{Identity as NoLayer, Stack};

use super::connections::{ConnectionLimits, Connections, TrackCalls};
use crate::lease::LeaseConfig;
use crate::metrics::Metrics;
use crate::sessions::{QueueLimits, SESSION_QUEUE_MESSAGES, SessionQueues};
use crate::shard::ShardId;
use pingji_engine::policy::Policy;

/// Largest header list (metadata) of a request. hyper's default of 16 KiB
/// answered a 64 KiB token with an HTTP/2 error (reported as unknown,
/// unavailable or resource_exhausted) rather than letting the token check
/// refuse it as `unauthenticated`; a real token is under 100 bytes.
pub(super) const MAX_REQUEST_HEADERS: u32 = 256 * 1024;
/// Longest pause at shutdown during which new requests are refused with
/// `unavailable` before the server closes its connections.
pub(super) const LAME_DUCK: Duration = Duration::from_millis(500);
/// How long the answers in flight get to go out when an owner steps down.
pub(super) const STEP_DOWN_DRAIN: Duration = Duration::from_secs(1);
/// Calls open at once on one connection (HTTP/2 streams) at most: a load
/// generator or gateway carrying many sessions over one connection needs
/// hundreds; without a cap one connection could open any number.
pub(super) const MAX_STREAMS_PER_CONNECTION: u32 = 1_000;

/// Where the journal lives.
#[derive(Clone, Debug)]
pub enum Store {
    /// A SQLite file (the default).
    Sqlite(PathBuf),
    /// Memory only: everything is lost at exit.
    Ephemeral,
    /// A shard in Redis, shared with other dispatcher processes of which one
    /// at a time owns it (see `ownership`).
    Redis(RedisStore),
}

/// A shard kept in Redis.
#[derive(Clone)]
pub struct RedisStore {
    /// `redis://HOST:PORT[/DB]`, or `redis+cluster://HOST:PORT,...`.
    pub url: String,
    /// The shards this process may own, in order: `city` alone, one
    /// district, or several (a spare standing by for each, owning the first
    /// it can get). Never empty.
    pub shards: Vec<ShardId>,
    /// Shards this process owns at most at once; it takes free ones up to
    /// this many, each served on a port of its own after the first.
    pub max_shards: usize,
    /// Where clients reach this process (`HOST:PORT`); standbys send clients
    /// there while this process owns the shard.
    pub advertise: String,
    pub lease: LeaseConfig,
}

impl RedisStore {
    /// The `city` shard at `url`, with the default lease.
    pub fn new(url: &str, advertise: &str) -> Self {
        RedisStore {
            url: url.to_owned(),
            shards: vec![ShardId::default()],
            max_shards: usize::MAX,
            advertise: advertise.to_owned(),
            lease: LeaseConfig::default(),
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Through RedisShard, which leaves the password out of the URL.
        let url = crate::shard::RedisShard::new(&self.url, ShardId::default())
            .map(|shard| shard.url().to_owned())
            .unwrap_or_else(|_| "(invalid url)".to_owned());
        f.debug_struct("RedisStore")
            .field("url", &url)
            .field("shards", &self.shards.iter().map(ShardId::as_str).collect::<Vec<_>>())
            .field("advertise", &self.advertise)
            .field("lease", &self.lease)
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub store: Store,
    pub policy: Policy,
    /// Areas (GeoJSON) to load at start; skipped when already loaded.
    pub areas_file: Option<PathBuf>,
    /// Roster (CSV) to load at start; only new or changed people are written.
    pub agents_file: Option<PathBuf>,
    /// Emergency plan files (TOML), or folders of them, to load at start;
    /// plans already loaded unchanged are skipped.
    pub plan_paths: Vec<PathBuf>,
    /// How long in-flight requests and streams get after a shutdown signal.
    pub drain_timeout: Duration,
    pub snapshot_every: u64,
    /// Journaled events older than this are deleted once a snapshot covers
    /// them; `None` keeps them forever.
    pub retention: Option<Duration>,
    /// Where to serve Prometheus metrics (`/metrics`); off when `None`.
    pub metrics_addr: Option<SocketAddr>,
    /// Where to serve the command map (its page and grpc-web, with the
    /// gRPC port's TLS); off when `None`.
    pub web_addr: Option<SocketAddr>,
    /// A tile server's URL (`{z}`, `{x}`, `{y}`) the command map draws
    /// under the areas; none when `None` (no internet assumed).
    pub web_tiles: Option<String>,
    pub limits: Limits,
    /// Where uploaded photos are stored; uploads are refused when `None`.
    pub photos_dir: Option<PathBuf>,
    /// An S3-compatible bucket (`s3://BUCKET/PREFIX`) for photos instead of
    /// the directory (a dispatcher built with the `s3` feature).
    pub photos_bucket: Option<String>,
    /// Keep a JPEG's EXIF block (with any GPS position) when storing it.
    pub keep_photo_exif: bool,
    /// How long photos are kept after their incident ended (see
    /// `photo_retention`); `None` keeps them forever.
    pub photo_retention: Option<Duration>,
    /// How often photos due for deletion are looked for (real time).
    pub photo_sweep_every: Duration,
    /// The process's metrics, made by `run` when `metrics_addr` is set.
    pub(super) metrics: Option<Arc<Metrics>>,
    /// TLS on the gRPC port (every server on it: starting, standby, owner);
    /// plain text when `None`.
    pub tls: Option<ServerTls>,
    /// An admin token (`pjo_NAME_…`) to add as the first admin at start
    /// when there is no admin yet; ignored once there is one.
    pub bootstrap_admin_token: Option<String>,
    /// The process's client connections, made by `run` from `limits` and
    /// the open-file limit; shared by every server on the gRPC port.
    pub(super) connections: Option<Connections>,
    /// People's session queues, made by `run` from `limits`; shared by
    /// every shard this process serves, so that their total is bounded.
    pub(super) session_queues: Option<SessionQueues>,
    /// Where the dispatcher reads the time (the system clock; a test's own
    /// to see tokens expire without waiting; a live drill's, faster).
    pub clock: Clock,
    /// Replaying another journal instead of serving one (`--replay`):
    /// nothing can be changed (see `replay`).
    pub replay: Option<Replay>,
    /// Outbound webhooks: retries, timeouts, the events' source.
    pub webhooks: crate::webhooks::WebhookConfig,
    /// SMS and voice gateways for the policy's escalation ladder.
    pub notify: crate::notify::NotifyConfig,
    /// CAP 1.2: our sender, Actual or Exercise, the feeds that may post alerts.
    pub cap: crate::cap::CapConfig,
    /// Web Push to the phone app: the VAPID subject and key, timeouts.
    pub push: crate::push::PushConfig,
}

pub use crate::runtime::Clock;

/// What to replay, how fast, and the token of the replay's viewer account.
#[derive(Clone)]
pub struct Replay {
    /// The journal: a dispatcher's SQLite file (`pingji.db`, a drill's `journal.db`).
    pub journal: PathBuf,
    /// Journal milliseconds per real millisecond.
    pub speed: f64,
    /// The viewer's token (`pjo_review_…`), from [`crate::tokens::new_operator_token`].
    pub viewer_token: String,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Replay").field("journal", &self.journal).field("speed", &self.speed).finish()
    }
}

impl Replay {
    /// What every command and session is told.
    pub(super) fn refusal(&self) -> String {
        "this dispatcher replays a journal for review (dispatcher --replay) and changes nothing: make changes on a \
         dispatcher serving its own journal"
            .to_string()
    }
}

/// Who must present a client certificate when a client CA is given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ClientCertificates {
    /// Every connection, refused in the TLS handshake without one.
    #[default]
    All,
    /// Agent sessions only (`unauthenticated` without one); operators'
    /// consoles and health probes connect without.
    Agents,
}

/// The gRPC port's TLS: the dispatcher's certificate and key, and the CA of
/// client certificates when they are required (mTLS).
#[derive(Clone, Debug)]
pub struct ServerTls {
    config: ServerTlsConfig,
    client_certificates: Option<ClientCertificates>,
    /// How this dispatcher calls the owners of other district shards:
    /// trusting `tls.peer_ca`, showing its own certificate.
    peer: ClientTlsConfig,
}

impl ServerTls {
    /// With `client_ca`, client certificates signed by it are required of
    /// `who` (a certificate from another CA is refused in the handshake).
    /// Calls to the other dispatchers trust `peer_ca`.
    pub fn new(identity: Identity, client_ca: Option<(Certificate, ClientCertificates)>, peer_ca: Certificate) -> Self {
        let peer = ClientTlsConfig::new().ca_certificate(peer_ca).identity(identity.clone());
        let mut config = ServerTlsConfig::new().identity(identity);
        let client_certificates = client_ca.as_ref().map(|(_, who)| *who);
        if let Some((client_ca, who)) = client_ca {
            config = config.client_ca_root(client_ca).client_auth_optional(who == ClientCertificates::Agents);
        }
        ServerTls { config, client_certificates, peer }
    }

    /// The TLS of calls to other dispatchers (`https://`).
    pub fn peer(&self) -> ClientTlsConfig {
        self.peer.clone()
    }

    /// Who must present a client certificate, if anyone.
    pub fn client_certificates(&self) -> Option<ClientCertificates> {
        self.client_certificates
    }

    /// Builds the TLS acceptor once, which checks the certificate and that
    /// the key is its key.
    pub fn check(&self) -> Result<(), tonic::transport::Error> {
        Server::builder().tls_config(self.config.clone()).map(|_| ())
    }
}

/// A server builder with `config`'s TLS (when set), HTTP/2 keepalive and
/// connection limits; serve it with `config.connections().incoming(...)`.
pub(super) fn server_builder(config: &Config) -> anyhow::Result<Server<Stack<TrackCalls, NoLayer>>> {
    let limits = &config.limits;
    let builder = Server::builder()
        .http2_max_header_list_size(MAX_REQUEST_HEADERS)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
    let builder = match &config.tls {
        Some(tls) => builder.tls_config(tls.config.clone()).context("cannot serve TLS")?,
        None => builder,
    };
    Ok(builder.layer(config.connections().layer()))
}

impl Config {
    pub fn new(store: Store) -> Self {
        Config {
            store,
            policy: Policy::default(),
            areas_file: None,
            agents_file: None,
            plan_paths: Vec::new(),
            drain_timeout: Duration::from_secs(10),
            snapshot_every: 10_000,
            retention: Some(crate::journal::DEFAULT_RETENTION),
            metrics_addr: None,
            web_addr: None,
            web_tiles: None,
            limits: Limits::default(),
            photos_dir: None,
            photos_bucket: None,
            keep_photo_exif: false,
            photo_retention: Some(crate::photo_retention::DEFAULT_RETENTION),
            photo_sweep_every: crate::photo_retention::SWEEP_EVERY,
            metrics: None,
            tls: None,
            bootstrap_admin_token: None,
            connections: None,
            session_queues: None,
            clock: Clock::default(),
            replay: None,
            webhooks: crate::webhooks::WebhookConfig::default(),
            notify: crate::notify::NotifyConfig::default(),
            cap: crate::cap::CapConfig::default(),
            push: crate::push::PushConfig::default(),
        }
    }

    /// People's session queues (made now from `limits` when `run` has not
    /// made them yet).
    pub(super) fn session_queues(&self) -> SessionQueues {
        self.session_queues.clone().unwrap_or_else(|| self.new_session_queues())
    }

    pub(super) fn new_session_queues(&self) -> SessionQueues {
        let metrics = self.metrics.as_ref().map(|metrics| metrics.session_queue_metrics()).unwrap_or_default();
        SessionQueues::new(self.limits.queue_limits(), metrics)
    }

    /// The client connections of every server on the gRPC port (made now
    /// from `limits` when `run` has not made them yet).
    pub(super) fn connections(&self) -> Connections {
        self.connections.clone().unwrap_or_else(|| self.new_connections())
    }

    /// Client connections within `limits` and the open-file limit now.
    pub(super) fn new_connections(&self) -> Connections {
        let metrics = self.metrics.as_ref().map(|metrics| metrics.connection_metrics()).unwrap_or_default();
        Connections::new(self.limits.connection_limits(), crate::open_files::current(), self.limits.max_sessions, metrics)
    }

    /// Uses `metrics` (shared with an OTLP exporter, say) rather than a new
    /// set made by `run` when `metrics_addr` is set.
    pub fn set_metrics(&mut self, metrics: Arc<Metrics>) {
        self.metrics = Some(metrics);
    }
}

/// What one client may ask of the dispatcher, so that a broken or hostile
/// one cannot starve the others or grow the process's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Open agent sessions at most; more are refused `resource_exhausted`.
    pub max_sessions: usize,
    /// Messages one session may send per second (twice that in a burst);
    /// more are dropped and the session is told (`resource_exhausted`).
    pub agent_messages_per_s: u32,
    /// How long one command may take before it is answered
    /// `cancelled`/`deadline_exceeded` (a client's own shorter deadline wins).
    pub request_timeout: Duration,
    /// Client connections open at once at most (fewer when the open-file
    /// limit leaves room for fewer); more are refused `resource_exhausted`.
    pub max_connections: usize,
    /// How long a new connection may take to make its first call (TLS
    /// handshake and HTTP/2 preface included) before it is closed.
    pub first_request_timeout: Duration,
    /// How long a connection may stay open with no call in progress.
    pub idle_connection_timeout: Duration,
    /// How long a connection may be silent before the server sends an
    /// HTTP/2 PING ...
    pub keepalive_interval: Duration,
    /// ... and how long the client then has to answer before it is closed.
    pub keepalive_timeout: Duration,
    /// Bytes of messages waiting for one person's app at most (besides
    /// at most 256 messages); more close the session as stuck.
    pub session_queue_bytes: usize,
    /// Bytes waiting for all people's apps together: over it, a session
    /// more than a second behind is closed as stuck.
    pub session_queues_total_bytes: usize,
    /// How long a session's oldest waiting message may wait before the
    /// session is closed as stuck.
    pub stuck_session_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 100_000,
            agent_messages_per_s: 20,
            request_timeout: Duration::from_secs(60),
            // Room for consoles, probes and people reconnecting besides
            // max_sessions people's apps, one connection each.
            max_connections: 110_000,
            first_request_timeout: Duration::from_secs(10),
            idle_connection_timeout: Duration::from_secs(300),
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(10),
            session_queue_bytes: 64 * 1024,
            session_queues_total_bytes: 256 * 1024 * 1024,
            stuck_session_timeout: Duration::from_secs(30),
        }
    }
}

impl Limits {
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections,
            first_request_timeout: self.first_request_timeout,
            idle_timeout: self.idle_connection_timeout,
        }
    }

    pub fn queue_limits(&self) -> QueueLimits {
        QueueLimits {
            messages: SESSION_QUEUE_MESSAGES,
            bytes: self.session_queue_bytes,
            total_bytes: self.session_queues_total_bytes,
            stuck_after: self.stuck_session_timeout,
        }
    }
}

pub(super) fn reflection_v1()
-> anyhow::Result<tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>> {
    Ok(tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pingji_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?)
}

pub(super) fn reflection_v1alpha() -> anyhow::Result<
    tonic_reflection::server::v1alpha::ServerReflectionServer<impl tonic_reflection::server::v1alpha::ServerReflection>,
> {
    Ok(tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pingji_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?)
}
