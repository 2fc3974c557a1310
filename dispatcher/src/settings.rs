//! The dispatcher's settings: one TOML file (`--config`), overridden by
//! flags and `PINGJI_*` environment variables, and validated as a whole
//! before anything binds a port. The documented example is
//! `docs/dispatcher.toml`.
//!
//! Every key is optional. A value that cannot be used is refused with its
//! key and the reason (`limits.drain_timeout_s: must be at least 1 second`).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use pingji_client::tls::read_pem;
use serde::Deserialize;
use tonic::transport::{Certificate, Identity};

use crate::lease::LeaseConfig;
use crate::server::{ClientCertificates, Config, RedisStore, ServerTls, Store};
use crate::shard::{CLUSTER_SCHEME, RedisShard, ShardId};
use crate::telemetry::{LogFormat, validate_otlp_endpoint};
use pingji_engine::areas::{AreaLevel, parse_geojson};
use pingji_engine::policy::Policy;

/// The gRPC address when none is set.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// The SQLite journal when none is set.
pub const DEFAULT_DATA: &str = "pingji.db";

/// A value that cannot be used: which key and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct SettingError {
    pub key: String,
    pub reason: String,
}

fn refuse(key: &str, reason: impl Into<String>) -> SettingError {
    SettingError { key: key.to_string(), reason: reason.into() }
}

/// The settings file, or the flags and environment in the same shape.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// gRPC address, `HOST:PORT`.
    pub listen: Option<String>,
    #[serde(default)]
    pub store: StoreSettings,
    /// Dispatch policy file (TOML, see docs/policy.md).
    pub policy: Option<PathBuf>,
    #[serde(default)]
    pub load: LoadSettings,
    #[serde(default)]
    pub metrics: MetricsSettings,
    #[serde(default)]
    pub web: WebSettings,
    #[serde(default)]
    pub otlp: OtlpSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub limits: LimitSettings,
    #[serde(default)]
    pub tls: TlsSettings,
    #[serde(default)]
    pub journal: JournalSettings,
    #[serde(default)]
    pub photos: PhotoSettings,
    #[serde(default)]
    pub webhooks: WebhookSettings,
    #[serde(default)]
    pub notify: NotifySettings,
    #[serde(default)]
    pub cap: CapSettings,
    #[serde(default)]
    pub push: PushSettings,
}

/// A secret read from the settings: never shown by `Debug`.
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"…\"")
    }
}

/// The SMS and voice gateways of the escalation ladder (see
/// `crate::notify`; the ladder itself is in the policy file). Settings
/// file only.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    pub sms: Option<GatewaySettings>,
    pub voice: Option<GatewaySettings>,
    /// The key gateways sign their posts to `/notify/inbound` with (at
    /// least 16 characters); without it the inbound webhook refuses all.
    pub inbound_secret: Option<Secret>,
    /// How far a signed timestamp may be from the clock (300 s).
    pub inbound_window_s: Option<u64>,
    /// Replies that check in to a call-up besides "1" (["到", "DAO"]).
    pub checkin_keywords: Option<Vec<String>>,
    /// Attempts at one rung before it is journaled as failed (6).
    pub max_attempts: Option<u32>,
    /// The wait after the first failure, doubling after each (2000 ms).
    pub retry_initial_ms: Option<u64>,
    /// The longest wait between attempts (60000 ms).
    pub retry_max_ms: Option<u64>,
    /// How long one request to a gateway may take (10000 ms).
    pub timeout_ms: Option<u64>,
    /// Requests per second to one gateway at most (50).
    pub gateway_per_second: Option<u32>,
    /// SMS and calls to one person per hour at most (12).
    pub person_per_hour: Option<u32>,
    /// Sends under way at once (16).
    pub concurrency: Option<usize>,
}

/// One gateway: `provider = "webhook"` (url, secret, body) or
/// `provider = "twilio"` (account_sid, auth_token, from, api_base).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    pub provider: String,
    pub url: Option<String>,
    pub secret: Option<Secret>,
    /// The JSON body template (see `docs/integrations.md`).
    pub body: Option<String>,
    /// Twilio's API base URL (https://api.twilio.com).
    pub api_base: Option<String>,
    pub account_sid: Option<String>,
    pub auth_token: Option<Secret>,
    pub from: Option<String>,
    /// Twilio: where Twilio reaches this dispatcher's web port (e.g.
    /// https://pingji.example.org); receipts and replies come back under it.
    pub callback_url: Option<String>,
}

impl GatewaySettings {
    fn resolve(&self, key: &str) -> Result<crate::notify::Gateway, SettingError> {
        let gateway = match self.provider.as_str() {
            "webhook" => crate::notify::Gateway::Webhook {
                url: self.url.clone().ok_or_else(|| refuse(&format!("{key}.url"), "the webhook gateway needs a url"))?,
                secret: self.secret.clone().map(|secret| secret.0).unwrap_or_default(),
                template: self.body.clone().unwrap_or_else(|| crate::notify::DEFAULT_TEMPLATE.to_string()),
            },
            "twilio" => crate::notify::Gateway::Twilio {
                api_base: self.api_base.clone().unwrap_or_else(|| "https://api.twilio.com".to_string()),
                account_sid: self.account_sid.clone().unwrap_or_default(),
                auth_token: self.auth_token.clone().map(|token| token.0).unwrap_or_default(),
                from: self.from.clone().unwrap_or_default(),
                callback_url: self.callback_url.clone(),
            },
            other => {
                return Err(refuse(&format!("{key}.provider"), format!("'{other}' is not a provider; use webhook or twilio")));
            }
        };
        gateway.check().map_err(|reason| refuse(key, reason))?;
        Ok(gateway)
    }
}

impl NotifySettings {
    fn resolve(&self) -> Result<crate::notify::NotifyConfig, SettingError> {
        let defaults = crate::notify::NotifyConfig::default();
        let millis = |name: &str, value: Option<u64>, default: Duration| match value {
            Some(0) => Err(refuse(name, "must be at least 1 ms")),
            Some(ms) => Ok(Duration::from_millis(ms)),
            None => Ok(default),
        };
        let positive = |name: &str, value: Option<u32>, default: u32| match value {
            Some(0) => Err(refuse(name, "must be at least 1")),
            Some(value) => Ok(value),
            None => Ok(default),
        };
        if let Some(secret) = &self.inbound_secret
            && secret.0.len() < 16
        {
            return Err(refuse("notify.inbound_secret", "must be at least 16 characters"));
        }
        let retry_initial = millis("notify.retry_initial_ms", self.retry_initial_ms, defaults.retry_initial)?;
        let retry_max = millis("notify.retry_max_ms", self.retry_max_ms, defaults.retry_max)?;
        if retry_max < retry_initial {
            return Err(refuse("notify.retry_max_ms", "must not be shorter than notify.retry_initial_ms"));
        }
        Ok(crate::notify::NotifyConfig {
            sms: self.sms.as_ref().map(|sms| sms.resolve("notify.sms")).transpose()?,
            voice: self.voice.as_ref().map(|voice| voice.resolve("notify.voice")).transpose()?,
            inbound_secret: self.inbound_secret.clone().map(|secret| secret.0),
            inbound_window: Duration::from_secs(self.inbound_window_s.unwrap_or(defaults.inbound_window.as_secs()).max(1)),
            checkin_keywords: self.checkin_keywords.clone().unwrap_or(defaults.checkin_keywords),
            max_attempts: positive("notify.max_attempts", self.max_attempts, defaults.max_attempts)?,
            retry_initial,
            retry_max,
            timeout: millis("notify.timeout_ms", self.timeout_ms, defaults.timeout)?,
            gateway_per_second: positive("notify.gateway_per_second", self.gateway_per_second, defaults.gateway_per_second)?,
            person_per_hour: positive("notify.person_per_hour", self.person_per_hour, defaults.person_per_hour)?,
            concurrency: self.concurrency.unwrap_or(defaults.concurrency).clamp(1, 256),
        })
    }
}

/// CAP 1.2 (see `crate::cap` and docs/integrations.md).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CapSettings {
    /// Our CAP `sender`, unique among senders ("pingji").
    pub sender: Option<String>,
    /// Our CAP `senderName` ("平急指挥调度").
    pub sender_name: Option<String>,
    /// `actual` (default), or `exercise` for a drill's dispatcher.
    pub status: Option<String>,
    /// The systems that may post alerts to `POST /cap/inbound`.
    #[serde(default)]
    pub feeds: Vec<CapFeedSettings>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CapFeedSettings {
    pub name: String,
    /// The hex SHA-256 of the feed's bearer token (`pingji cap token-hash`
    /// prints it); the token itself is never stored.
    pub token_sha256: String,
    /// The CAP senders the feed may post as; empty: any.
    #[serde(default)]
    pub senders: Vec<String>,
}

impl CapSettings {
    fn resolve(&self) -> Result<crate::cap::CapConfig, SettingError> {
        let defaults = crate::cap::CapConfig::default();
        let sender = self.sender.clone().unwrap_or(defaults.sender);
        if sender.is_empty() || sender.chars().any(|c| c.is_whitespace() || matches!(c, ',' | '<' | '&')) {
            return Err(refuse(
                "cap.sender",
                "must be non-empty, without spaces, commas, < or & (CAP 1.2), e.g. pingji@minghu.gov.cn",
            ));
        }
        let exercise = match self.status.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("actual") => false,
            Some("exercise") => true,
            Some(other) => return Err(refuse("cap.status", format!("\"{other}\" is neither actual nor exercise"))),
        };
        let mut feeds = Vec::new();
        for feed in &self.feeds {
            let hash = feed.token_sha256.trim().to_ascii_lowercase();
            if feed.name.trim().is_empty() || hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(refuse(
                    "cap.feeds",
                    "each feed needs a name and token_sha256, the 64 hex digits of its token's SHA-256",
                ));
            }
            feeds.push(crate::cap::CapFeed {
                name: feed.name.trim().to_string(),
                token_sha256: hash,
                senders: feed.senders.clone(),
            });
        }
        Ok(crate::cap::CapConfig {
            sender,
            sender_name: self.sender_name.clone().unwrap_or(defaults.sender_name),
            exercise,
            feeds,
        })
    }
}

/// Web Push to the phone app (see `crate::push`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PushSettings {
    /// A contact for push services' operators: `mailto:…` or `https://…`.
    pub subject: Option<String>,
    /// The VAPID key as base64url private (32 bytes) and public (65 bytes)
    /// values, both or neither; by default one is made on first start and
    /// kept with the journal.
    pub vapid_private_key: Option<String>,
    pub vapid_public_key: Option<String>,
    /// Takes `http://` endpoints on loopback (a local push service in tests).
    pub allow_loopback_http: Option<bool>,
    /// How long one post to a push service may take (10000 ms).
    pub timeout_ms: Option<u64>,
}

impl PushSettings {
    fn resolve(&self) -> Result<crate::push::PushConfig, SettingError> {
        let defaults = crate::push::PushConfig::default();
        let subject = self.subject.clone().unwrap_or(defaults.subject);
        if !(subject.starts_with("mailto:") || subject.starts_with("https://")) {
            return Err(refuse("push.subject", "must be a mailto: or https: URI (a contact for push services' operators)"));
        }
        let vapid_key = match (&self.vapid_private_key, &self.vapid_public_key) {
            (Some(private), Some(public)) => {
                crate::push::VapidKey::from_base64url(private, public)
                    .map_err(|error| refuse("push.vapid_private_key", error.to_string()))?;
                Some((private.clone(), public.clone()))
            }
            (None, None) => None,
            _ => return Err(refuse("push.vapid_private_key", "give both vapid_private_key and vapid_public_key, or neither")),
        };
        Ok(crate::push::PushConfig {
            subject,
            vapid_key,
            allow_loopback_http: self.allow_loopback_http.unwrap_or(false),
            timeout: match self.timeout_ms {
                Some(0) => return Err(refuse("push.timeout_ms", "must be at least 1 ms")),
                Some(ms) => Duration::from_millis(ms),
                None => defaults.timeout,
            },
            retry_after: defaults.retry_after,
        })
    }
}

/// How outbound webhooks are retried (see `crate::webhooks`); subscribers
/// themselves are registered with `pingji webhooks add`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Attempts at one event before it goes to the dead letters (20).
    pub max_attempts: Option<u32>,
    /// The wait after the first failure, doubling after each (1000 ms).
    pub retry_initial_ms: Option<u64>,
    /// The longest wait between attempts (60000 ms).
    pub retry_max_ms: Option<u64>,
    /// How long one delivery may take (10000 ms).
    pub timeout_ms: Option<u64>,
    /// The CloudEvents `source` of the events ("/pingji").
    pub source: Option<String>,
}

/// Where people's photos are kept (see `crate::photos`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PhotoSettings {
    /// The directory; by default `photos/` beside the SQLite journal. With
    /// Redis, a directory every dispatcher of the city shares; without one
    /// (or with memory) uploads are refused.
    pub dir: Option<PathBuf>,
    /// An S3-compatible bucket, `s3://BUCKET/PREFIX`, instead of the
    /// directory (a dispatcher built with the `s3` feature; credentials and
    /// endpoint from the `AWS_*` environment).
    pub bucket: Option<String>,
    /// Keep a JPEG's EXIF block (with any GPS position); removed by default.
    pub keep_exif: Option<bool>,
    /// Days a photo is kept after its incident ended (or, named by no
    /// incident, after it was stored); 0 keeps photos forever. 90 when absent.
    pub retention_days: Option<u64>,
}

/// How long the journal keeps events (they hold personal data).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JournalSettings {
    /// Days journaled events are kept once a snapshot covers them; 0 keeps
    /// them forever. 90 when absent.
    pub retention_days: Option<u64>,
}

impl WebhookSettings {
    fn resolve(&self) -> Result<crate::webhooks::WebhookConfig, SettingError> {
        let defaults = crate::webhooks::WebhookConfig::default();
        let millis = |name: &str, value: Option<u64>, default: Duration| match value {
            Some(0) => Err(refuse(name, "must be at least 1 ms")),
            Some(ms) => Ok(Duration::from_millis(ms)),
            None => Ok(default),
        };
        let max_attempts = self.max_attempts.unwrap_or(defaults.max_attempts);
        if max_attempts == 0 {
            return Err(refuse("webhooks.max_attempts", "must be at least 1 attempt"));
        }
        let retry_initial = millis("webhooks.retry_initial_ms", self.retry_initial_ms, defaults.retry_initial)?;
        let retry_max = millis("webhooks.retry_max_ms", self.retry_max_ms, defaults.retry_max)?;
        if retry_max < retry_initial {
            return Err(refuse("webhooks.retry_max_ms", "must not be shorter than webhooks.retry_initial_ms"));
        }
        let source = self.source.clone().unwrap_or(defaults.source);
        if source.trim().is_empty() {
            return Err(refuse("webhooks.source", "must not be empty (a URI reference, e.g. /pingji/shenzhen)"));
        }
        Ok(crate::webhooks::WebhookConfig {
            max_attempts,
            retry_initial,
            retry_max,
            timeout: millis("webhooks.timeout_ms", self.timeout_ms, defaults.timeout)?,
            source,
            cap: crate::cap::CapConfig::default(),
        })
    }
}

/// The longest retention limit accepted: beyond ten years a limit is not
/// one, and 0 says "forever" plainly.
const MAX_RETENTION_DAYS: u64 = 3_650;

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// `sqlite` (default), `memory` or `redis`.
    pub kind: Option<String>,
    /// The SQLite journal file, with `sqlite`.
    pub path: Option<PathBuf>,
    /// `redis://HOST:PORT[/DB]` (one Redis) or
    /// `redis+cluster://HOST:PORT,HOST:PORT,...` (a Redis Cluster), with `redis`.
    pub url: Option<String>,
    /// `city`, a district, or districts (`d1,d2`); by default every district
    /// of the map in `load.areas` (the city when it has none).
    pub shard: Option<String>,
    /// Shards one process owns at most at once (default: all it can get).
    pub max_shards: Option<usize>,
    pub advertise: Option<String>,
    pub lease_ttl_ms: Option<u64>,
    pub lease_renew_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoadSettings {
    pub areas: Option<PathBuf>,
    pub agents: Option<PathBuf>,
    pub plans: Option<Vec<PathBuf>>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// `HOST:PORT` for `/metrics`; off when absent.
    pub listen: Option<String>,
}

/// The command map in the browser.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebSettings {
    /// `HOST:PORT` for the command map (page and grpc-web); off when absent.
    pub listen: Option<String>,
    /// A tile server's URL with `{z}`, `{x}` and `{y}`, drawn under the
    /// areas; none when absent.
    pub tiles: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OtlpSettings {
    /// `http://HOST:PORT` of an OTLP/gRPC collector; off when absent.
    pub endpoint: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: Option<LogFormat>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Seconds open requests and streams get after SIGINT/SIGTERM.
    pub drain_timeout_s: Option<u64>,
    /// Seconds after SIGINT/SIGTERM after which the process exits anyway.
    pub shutdown_grace_s: Option<u64>,
    /// Events between snapshots.
    pub snapshot_every: Option<u64>,
    /// Open agent sessions at most.
    pub max_sessions: Option<usize>,
    /// Messages one agent session may send per second.
    pub agent_messages_per_s: Option<u32>,
    /// Seconds one command may take.
    pub request_timeout_s: Option<u64>,
    /// Client connections open at once at most.
    pub max_connections: Option<usize>,
    /// Seconds a new connection may take to make its first call.
    pub first_request_timeout_s: Option<u64>,
    /// Seconds a connection may stay open with no call in progress.
    pub idle_connection_timeout_s: Option<u64>,
    /// Seconds of silence on a connection before an HTTP/2 PING.
    pub keepalive_interval_s: Option<u64>,
    /// Seconds a client has to answer the PING before it is closed.
    pub keepalive_timeout_s: Option<u64>,
    /// KiB of messages waiting for one person's app at most.
    pub session_queue_kib: Option<usize>,
    /// MiB of messages waiting for all people's apps together.
    pub session_queues_total_mib: Option<usize>,
    /// Seconds a session's oldest message may wait before it is closed as stuck.
    pub stuck_session_timeout_s: Option<u64>,
}

/// TLS on the gRPC port; plain text when absent.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// The dispatcher's certificate chain (PEM), leaf first.
    pub cert: Option<PathBuf>,
    /// The private key of `cert` (PEM: PKCS#8, RSA or EC).
    pub key: Option<PathBuf>,
    /// CA certificate(s) (PEM) that sign client certificates; when set,
    /// every client must present a certificate signed by one (mTLS).
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: who must present a client certificate, `all`
    /// (default) or `agents` (sessions only; consoles and probes without).
    pub require_client_cert: Option<ClientCertificates>,
    /// CA certificate(s) (PEM) that the other dispatchers' certificates are
    /// checked against in calls between district shards; by default the
    /// certificates of `cert` itself (enough when every dispatcher has the
    /// same certificate, or `cert` carries its chain up to the CA).
    pub peer_ca: Option<PathBuf>,
}

/// Everything the binary needs, validated.
#[derive(Debug)]
pub struct Resolved {
    pub listen: SocketAddr,
    pub config: Config,
    pub log_format: LogFormat,
    pub otlp_endpoint: Option<String>,
    /// When the process exits after a shutdown signal, drained or not.
    pub shutdown_grace: Duration,
}

impl Settings {
    /// Reads a settings file; a syntax error or an unknown key is refused
    /// with its place in the file.
    pub fn parse(text: &str) -> Result<Settings, String> {
        toml::from_str(text).map_err(|error| error.to_string())
    }

    pub fn load(path: &std::path::Path) -> Result<Settings, String> {
        let text = std::fs::read_to_string(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        Settings::parse(&text).map_err(|error| format!("{}: {error}", path.display()))
    }

    /// These settings with every value set in `over` taking precedence.
    pub fn overlay(self, over: Settings) -> Settings {
        Settings {
            listen: over.listen.or(self.listen),
            store: StoreSettings {
                kind: over.store.kind.or(self.store.kind),
                path: over.store.path.or(self.store.path),
                url: over.store.url.or(self.store.url),
                shard: over.store.shard.or(self.store.shard),
                max_shards: over.store.max_shards.or(self.store.max_shards),
                advertise: over.store.advertise.or(self.store.advertise),
                lease_ttl_ms: over.store.lease_ttl_ms.or(self.store.lease_ttl_ms),
                lease_renew_ms: over.store.lease_renew_ms.or(self.store.lease_renew_ms),
            },
            policy: over.policy.or(self.policy),
            load: LoadSettings {
                areas: over.load.areas.or(self.load.areas),
                agents: over.load.agents.or(self.load.agents),
                plans: over.load.plans.or(self.load.plans),
            },
            metrics: MetricsSettings { listen: over.metrics.listen.or(self.metrics.listen) },
            web: WebSettings { listen: over.web.listen.or(self.web.listen), tiles: over.web.tiles.or(self.web.tiles) },
            otlp: OtlpSettings { endpoint: over.otlp.endpoint.or(self.otlp.endpoint) },
            log: LogSettings { format: over.log.format.or(self.log.format) },
            limits: LimitSettings {
                drain_timeout_s: over.limits.drain_timeout_s.or(self.limits.drain_timeout_s),
                shutdown_grace_s: over.limits.shutdown_grace_s.or(self.limits.shutdown_grace_s),
                snapshot_every: over.limits.snapshot_every.or(self.limits.snapshot_every),
                max_sessions: over.limits.max_sessions.or(self.limits.max_sessions),
                agent_messages_per_s: over.limits.agent_messages_per_s.or(self.limits.agent_messages_per_s),
                request_timeout_s: over.limits.request_timeout_s.or(self.limits.request_timeout_s),
                max_connections: over.limits.max_connections.or(self.limits.max_connections),
                first_request_timeout_s: over.limits.first_request_timeout_s.or(self.limits.first_request_timeout_s),
                idle_connection_timeout_s: over.limits.idle_connection_timeout_s.or(self.limits.idle_connection_timeout_s),
                keepalive_interval_s: over.limits.keepalive_interval_s.or(self.limits.keepalive_interval_s),
                keepalive_timeout_s: over.limits.keepalive_timeout_s.or(self.limits.keepalive_timeout_s),
                session_queue_kib: over.limits.session_queue_kib.or(self.limits.session_queue_kib),
                session_queues_total_mib: over.limits.session_queues_total_mib.or(self.limits.session_queues_total_mib),
                stuck_session_timeout_s: over.limits.stuck_session_timeout_s.or(self.limits.stuck_session_timeout_s),
            },
            tls: TlsSettings {
                cert: over.tls.cert.or(self.tls.cert),
                key: over.tls.key.or(self.tls.key),
                client_ca: over.tls.client_ca.or(self.tls.client_ca),
                require_client_cert: over.tls.require_client_cert.or(self.tls.require_client_cert),
                peer_ca: over.tls.peer_ca.or(self.tls.peer_ca),
            },
            journal: JournalSettings { retention_days: over.journal.retention_days.or(self.journal.retention_days) },
            photos: PhotoSettings {
                dir: over.photos.dir.or(self.photos.dir),
                bucket: over.photos.bucket.or(self.photos.bucket),
                keep_exif: over.photos.keep_exif.or(self.photos.keep_exif),
                retention_days: over.photos.retention_days.or(self.photos.retention_days),
            },
            webhooks: WebhookSettings {
                max_attempts: over.webhooks.max_attempts.or(self.webhooks.max_attempts),
                retry_initial_ms: over.webhooks.retry_initial_ms.or(self.webhooks.retry_initial_ms),
                retry_max_ms: over.webhooks.retry_max_ms.or(self.webhooks.retry_max_ms),
                timeout_ms: over.webhooks.timeout_ms.or(self.webhooks.timeout_ms),
                source: over.webhooks.source.or(self.webhooks.source),
            },
            // Gateways and their secrets come from the file only.
            notify: if over.notify == NotifySettings::default() { self.notify } else { over.notify },
            cap: CapSettings {
                sender: over.cap.sender.or(self.cap.sender),
                sender_name: over.cap.sender_name.or(self.cap.sender_name),
                status: over.cap.status.or(self.cap.status),
                feeds: if over.cap.feeds.is_empty() { self.cap.feeds } else { over.cap.feeds },
            },
            push: PushSettings {
                subject: over.push.subject.or(self.push.subject),
                vapid_private_key: over.push.vapid_private_key.or(self.push.vapid_private_key),
                vapid_public_key: over.push.vapid_public_key.or(self.push.vapid_public_key),
                allow_loopback_http: over.push.allow_loopback_http.or(self.push.allow_loopback_http),
                timeout_ms: over.push.timeout_ms.or(self.push.timeout_ms),
            },
        }
    }

    /// Checks every value and builds the server's config. Reads the policy
    /// file (to check it) and checks that the files to load exist.
    pub fn resolve(self) -> Result<Resolved, SettingError> {
        let listen = address("listen", self.listen.as_deref().unwrap_or(DEFAULT_LISTEN))?;
        let store = self.store(listen)?;
        let mut config = Config::new(store);
        if let Some(path) = &self.policy {
            let text = std::fs::read_to_string(path)
                .map_err(|error| refuse("policy", format!("cannot read {}: {error}", path.display())))?;
            config.policy = Policy::from_toml(&text).map_err(|error| refuse("policy", format!("{}: {error}", path.display())))?;
        }
        config.areas_file = existing_file("load.areas", self.load.areas)?;
        config.agents_file = existing_file("load.agents", self.load.agents)?;
        for path in self.load.plans.iter().flatten() {
            if !path.exists() {
                return Err(refuse("load.plans", format!("{} does not exist", path.display())));
            }
        }
        config.plan_paths = self.load.plans.unwrap_or_default();
        config.metrics_addr = match &self.metrics.listen {
            Some(text) => {
                let metrics = address("metrics.listen", text)?;
                if metrics == listen && metrics.port() != 0 {
                    return Err(refuse(
                        "metrics.listen",
                        format!("{metrics} is the gRPC address too; give metrics their own port"),
                    ));
                }
                Some(metrics)
            }
            None => None,
        };
        config.web_addr = match &self.web.listen {
            Some(text) => {
                let web = address("web.listen", text)?;
                let taken = [Some(listen), config.metrics_addr].into_iter().flatten().any(|other| other == web);
                if taken && web.port() != 0 {
                    return Err(refuse(
                        "web.listen",
                        format!("{web} is taken by the gRPC or metrics port; give the web its own"),
                    ));
                }
                Some(web)
            }
            None => None,
        };
        config.web_tiles = match &self.web.tiles {
            Some(url) => {
                crate::server::tile_origin(url).map_err(|problem| refuse("web.tiles", problem))?;
                Some(url.clone())
            }
            None => None,
        };
        if let Some(endpoint) = &self.otlp.endpoint {
            validate_otlp_endpoint(endpoint).map_err(|reason| refuse("otlp.endpoint", reason))?;
        }
        let drain_timeout_s = self.limits.drain_timeout_s.unwrap_or(10);
        if drain_timeout_s == 0 {
            return Err(refuse("limits.drain_timeout_s", "must be at least 1 second"));
        }
        let shutdown_grace_s = self.limits.shutdown_grace_s.unwrap_or(drain_timeout_s + 20);
        if shutdown_grace_s <= drain_timeout_s {
            return Err(refuse(
                "limits.shutdown_grace_s",
                format!(
                    "must be longer than limits.drain_timeout_s ({drain_timeout_s} s), so that a drain can finish \
                     and the journal be flushed before the process stops anyway"
                ),
            ));
        }
        config.drain_timeout = Duration::from_secs(drain_timeout_s);
        let snapshot_every = self.limits.snapshot_every.unwrap_or(10_000);
        if snapshot_every == 0 {
            return Err(refuse("limits.snapshot_every", "must be at least 1 event"));
        }
        config.snapshot_every = snapshot_every;
        config.photos_dir = match (&self.photos.dir, &config.store) {
            (Some(dir), _) => Some(dir.clone()),
            (None, crate::server::Store::Sqlite(journal)) => {
                Some(journal.parent().map_or_else(|| PathBuf::from("photos"), |data| data.join("photos")))
            }
            (None, _) => None,
        };
        config.keep_photo_exif = self.photos.keep_exif.unwrap_or(false);
        config.webhooks = self.webhooks.resolve()?;
        config.notify = self.notify.resolve()?;
        config.cap = self.cap.resolve()?;
        config.push = self.push.resolve()?;
        config.photos_bucket = self.photos.bucket.clone();
        config.photo_retention = match self.photos.retention_days.unwrap_or(crate::photo_retention::DEFAULT_RETENTION_DAYS) {
            0 => None,
            days if days > MAX_RETENTION_DAYS => {
                return Err(refuse(
                    "photos.retention_days",
                    format!("{days} days is more than {MAX_RETENTION_DAYS} (ten years); use 0 to keep photos forever"),
                ));
            }
            days => Some(Duration::from_secs(days * 86_400)),
        };
        config.retention = match self.journal.retention_days.unwrap_or(crate::journal::DEFAULT_RETENTION_DAYS) {
            0 => None,
            days if days > MAX_RETENTION_DAYS => {
                return Err(refuse(
                    "journal.retention_days",
                    format!("{days} days is more than {MAX_RETENTION_DAYS} (ten years); use 0 to keep events forever"),
                ));
            }
            days => Some(Duration::from_secs(days * 86_400)),
        };
        let defaults = crate::server::Limits::default();
        let max_sessions = self.limits.max_sessions.unwrap_or(defaults.max_sessions);
        if max_sessions == 0 {
            return Err(refuse("limits.max_sessions", "must be at least 1 session"));
        }
        let agent_messages_per_s = self.limits.agent_messages_per_s.unwrap_or(defaults.agent_messages_per_s);
        if agent_messages_per_s == 0 {
            return Err(refuse("limits.agent_messages_per_s", "must be at least 1 message a second"));
        }
        let request_timeout = self.limits.request_timeout_s.map_or(defaults.request_timeout, Duration::from_secs);
        if request_timeout.is_zero() {
            return Err(refuse("limits.request_timeout_s", "must be at least 1 second"));
        }
        let max_connections = self.limits.max_connections.unwrap_or(defaults.max_connections);
        if max_connections == 0 {
            return Err(refuse("limits.max_connections", "must be at least 1 connection"));
        }
        let seconds = |key: &str, value: Option<u64>, default: Duration| -> Result<Duration, SettingError> {
            match value {
                Some(0) => Err(refuse(key, "must be at least 1 second")),
                Some(seconds) => Ok(Duration::from_secs(seconds)),
                None => Ok(default),
            }
        };
        let first_request_timeout =
            seconds("limits.first_request_timeout_s", self.limits.first_request_timeout_s, defaults.first_request_timeout)?;
        let idle_connection_timeout =
            seconds("limits.idle_connection_timeout_s", self.limits.idle_connection_timeout_s, defaults.idle_connection_timeout)?;
        let keepalive_interval =
            seconds("limits.keepalive_interval_s", self.limits.keepalive_interval_s, defaults.keepalive_interval)?;
        let keepalive_timeout =
            seconds("limits.keepalive_timeout_s", self.limits.keepalive_timeout_s, defaults.keepalive_timeout)?;
        let session_queue_bytes = match self.limits.session_queue_kib {
            Some(0) => return Err(refuse("limits.session_queue_kib", "must be at least 1 KiB")),
            Some(kib) => kib.saturating_mul(1024),
            None => defaults.session_queue_bytes,
        };
        let session_queues_total_bytes = match self.limits.session_queues_total_mib {
            Some(mib) if mib.saturating_mul(1024 * 1024) < session_queue_bytes => {
                return Err(refuse(
                    "limits.session_queues_total_mib",
                    format!("must hold at least one session's queue ({} KiB)", session_queue_bytes / 1024),
                ));
            }
            Some(mib) => mib.saturating_mul(1024 * 1024),
            None => defaults.session_queues_total_bytes.max(session_queue_bytes),
        };
        let stuck_session_timeout =
            seconds("limits.stuck_session_timeout_s", self.limits.stuck_session_timeout_s, defaults.stuck_session_timeout)?;
        config.limits = crate::server::Limits {
            max_sessions,
            agent_messages_per_s,
            request_timeout,
            max_connections,
            first_request_timeout,
            idle_connection_timeout,
            keepalive_interval,
            keepalive_timeout,
            session_queue_bytes,
            session_queues_total_bytes,
            stuck_session_timeout,
        };
        config.tls = self.tls.server_tls()?;
        Ok(Resolved {
            listen,
            config,
            log_format: self.log.format.unwrap_or_default(),
            otlp_endpoint: self.otlp.endpoint,
            shutdown_grace: Duration::from_secs(shutdown_grace_s),
        })
    }

    fn store(&self, listen: SocketAddr) -> Result<Store, SettingError> {
        let store = &self.store;
        let kind = match store.kind.as_deref() {
            Some(kind) => kind,
            None if store.url.is_some() => "redis",
            None => "sqlite",
        };
        match kind {
            "sqlite" => Ok(Store::Sqlite(store.path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA)))),
            "memory" => Ok(Store::Ephemeral),
            "redis" => {
                let url = store.url.as_deref().ok_or_else(|| {
                    refuse("store.url", "a redis store needs redis://HOST:PORT or redis+cluster://HOST:PORT,HOST:PORT,...")
                })?;
                // Checked whole here (seeds of a cluster too), so that a typo
                // stops the start rather than every connection later.
                if !url.starts_with("redis://") && !url.starts_with(CLUSTER_SCHEME) {
                    return Err(refuse(
                        "store.url",
                        format!(
                            "{url:?} is not redis://HOST:PORT (one Redis) or redis+cluster://HOST:PORT,HOST:PORT,... (a Redis Cluster)"
                        ),
                    ));
                }
                RedisShard::new(url, ShardId::default()).map_err(|error| refuse("store.url", error.to_string()))?;
                let shards = match store.shard.as_deref() {
                    Some(text) => parse_shards(text).map_err(|reason| refuse("store.shard", reason))?,
                    None => districts_of(self.load.areas.as_deref()),
                };
                let max_shards = match store.max_shards {
                    Some(0) => return Err(refuse("store.max_shards", "must be at least 1")),
                    Some(max_shards) => max_shards,
                    None => usize::MAX,
                };
                let lease = LeaseConfig::new(
                    Duration::from_millis(store.lease_ttl_ms.unwrap_or(3_000)),
                    Duration::from_millis(store.lease_renew_ms.unwrap_or(1_000)),
                )
                .map_err(|reason| refuse("store.lease_renew_ms", reason))?;
                let advertise = store.advertise.clone().unwrap_or_else(|| listen.to_string());
                Ok(Store::Redis(RedisStore { url: url.to_string(), shards, max_shards, advertise, lease }))
            }
            other => Err(refuse("store.kind", format!("{other:?} is not a store; use sqlite, memory or redis"))),
        }
    }
}

impl TlsSettings {
    /// The server's TLS, with its files read and checked now, so that a
    /// missing or wrong file stops the dispatcher before it binds.
    fn server_tls(&self) -> Result<Option<ServerTls>, SettingError> {
        let (cert, key) = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => (cert, key),
            (None, None) if self.client_ca.is_some() => {
                return Err(refuse("tls.client_ca", "client certificates need TLS: set tls.cert and tls.key too"));
            }
            (None, None) if self.require_client_cert.is_some() => {
                return Err(refuse("tls.require_client_cert", "client certificates need TLS and tls.client_ca"));
            }
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(refuse("tls.key", "tls.cert is set without its key; set both (--tls-cert, --tls-key)"));
            }
            (None, Some(_)) => {
                return Err(refuse("tls.cert", "tls.key is set without its certificate; set both (--tls-cert, --tls-key)"));
            }
        };
        let cert_pem = read_pem(cert, "certificate", "CERTIFICATE")
            .map_err(|error| refuse("tls.cert", format!("{error}; give the PEM file of the dispatcher's certificate")))?;
        let key_pem = read_pem(key, "private key", "PRIVATE KEY")
            .map_err(|error| refuse("tls.key", format!("{error}; give the PEM file of the certificate's private key")))?;
        let client_ca = match &self.client_ca {
            Some(path) => {
                Some(Certificate::from_pem(read_pem(path, "client CA certificate", "CERTIFICATE").map_err(|error| {
                    refuse("tls.client_ca", format!("{error}; give the PEM file of the CA that signs client certificates"))
                })?))
            }
            None if self.require_client_cert.is_some() => {
                return Err(refuse("tls.require_client_cert", "set tls.client_ca, the CA that signs client certificates"));
            }
            None => None,
        };
        let client_ca = client_ca.map(|ca| (ca, self.require_client_cert.unwrap_or_default()));
        let peer_ca = match &self.peer_ca {
            Some(path) => read_pem(path, "peer CA certificate", "CERTIFICATE").map_err(|error| {
                refuse("tls.peer_ca", format!("{error}; give the PEM file of the CA that signs the dispatchers' certificates"))
            })?,
            None => cert_pem.clone(),
        };
        let identity = Identity::from_pem(cert_pem, key_pem);
        let tls = ServerTls::new(identity, client_ca, Certificate::from_pem(peer_ca));
        // rustls checks that the key fits the certificate when the server is built.
        tls.check().map_err(|error| {
            refuse(
                "tls.cert",
                format!(
                    "cannot serve TLS with {} and {}: {}; check that the key is the certificate's",
                    cert.display(),
                    key.display(),
                    pingji_client::tls::error_chain(&error)
                ),
            )
        })?;
        Ok(Some(tls))
    }
}

fn address(key: &str, text: &str) -> Result<SocketAddr, SettingError> {
    text.parse().map_err(|_| refuse(key, format!("{text:?} is not an IP address and port, e.g. 127.0.0.1:50051")))
}

fn existing_file(key: &str, path: Option<PathBuf>) -> Result<Option<PathBuf>, SettingError> {
    match path {
        Some(path) if !path.is_file() => Err(refuse(key, format!("{} is not a file", path.display()))),
        other => Ok(other),
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// The default shards: one per district of the map in `areas`; the whole
/// city as one shard when there is no map or it has no districts (a map
/// that cannot be read is reported by the load check).
fn districts_of(areas: Option<&std::path::Path>) -> Vec<ShardId> {
    let import = areas.and_then(|path| std::fs::read_to_string(path).ok()).and_then(|text| parse_geojson(&text).ok());
    let districts: Vec<ShardId> = import
        .iter()
        .flat_map(|import| import.areas.iter())
        .filter(|area| area.level == AreaLevel::District)
        .filter_map(|area| ShardId::new(area.id.as_str()).ok())
        .collect();
    if districts.is_empty() { vec![ShardId::default()] } else { districts }
}

/// `city`, one district (`d1`), or several districts (`d1,d2`) for a spare
/// that stands by for each and owns the first it can.
fn parse_shards(text: &str) -> Result<Vec<ShardId>, String> {
    let mut shards: Vec<ShardId> = Vec::new();
    for part in text.split(',').map(str::trim) {
        let shard = ShardId::new(part)?;
        if shards.contains(&shard) {
            return Err(format!("shard {shard} is listed twice; give each once"));
        }
        shards.push(shard);
    }
    if shards.len() > 1 && shards.iter().any(|shard| shard.as_str() == ShardId::CITY) {
        return Err("city is the whole city as one shard and cannot be listed with districts; give either city or \
                    districts (d1,d2)"
            .to_string());
    }
    Ok(shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_the_city_one_district_or_several() {
        let names =
            |text: &str| parse_shards(text).map(|shards| shards.iter().map(|shard| shard.to_string()).collect::<Vec<_>>());
        assert_eq!(names("city"), Ok(vec!["city".to_string()]));
        assert_eq!(names(" d1, d2 "), Ok(vec!["d1".to_string(), "d2".to_string()]));
        assert!(names("d1,d1").is_err_and(|error| error.contains("listed twice")));
        assert!(names("city,d1").is_err_and(|error| error.contains("cannot be listed with districts")));
        assert!(names("d1,").is_err_and(|error| error.contains("invalid shard id")));
    }

    const EXAMPLE: &str = include_str!("../../docs/dispatcher.toml");

    #[test]
    fn the_documented_example_parses_and_resolves() {
        let settings = Settings::parse(EXAMPLE).expect("docs/dispatcher.toml parses");
        assert_eq!(settings.listen.as_deref(), Some("127.0.0.1:50051"));
        assert_eq!(settings.metrics.listen.as_deref(), Some("127.0.0.1:9464"));
        // The example names files relative to the repository root.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut settings = settings;
        settings.policy = settings.policy.map(|path| root.join(path));
        settings.load.areas = settings.load.areas.map(|path| root.join(path));
        settings.load.agents = settings.load.agents.map(|path| root.join(path));
        settings.load.plans = settings.load.plans.map(|paths| paths.into_iter().map(|path| root.join(path)).collect());
        let resolved = settings.resolve().expect("the example resolves");
        assert_eq!(resolved.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(resolved.config.drain_timeout, Duration::from_secs(10));
        assert_eq!(resolved.shutdown_grace, Duration::from_secs(30));
        assert!(matches!(resolved.config.store, Store::Sqlite(_)));
        assert_eq!(resolved.config.retention, Some(Duration::from_secs(90 * 86_400)));
    }

    #[test]
    fn cap_feeds_need_a_token_hash_and_a_status_is_actual_or_exercise() {
        let hash = crate::cap::token_sha256("feed-token");
        let text = format!(
            "[cap]\nsender = \"pingji@minghu.gov.cn\"\nstatus = \"Exercise\"\n[[cap.feeds]]\nname = \"weather\"\ntoken_sha256 = \"{hash}\"\n"
        );
        let cap = Settings::parse(&text).expect("parses").resolve().expect("resolves").config.cap;
        assert!(cap.exercise);
        assert_eq!(cap.sender, "pingji@minghu.gov.cn");
        assert_eq!(crate::cap::CapFeed::matching(&cap.feeds, "feed-token").map(|feed| feed.name.as_str()), Some("weather"));
        assert!(crate::cap::CapFeed::matching(&cap.feeds, "another-token").is_none());
        let refused = |text: &str| Settings::parse(text).expect("parses").resolve().expect_err("refused").to_string();
        assert!(refused("[[cap.feeds]]\nname = \"w\"\ntoken_sha256 = \"abc\"").contains("cap.feeds"));
        assert!(refused("[cap]\nstatus = \"real\"").contains("cap.status"));
        assert!(refused("[cap]\nsender = \"two words\"").contains("cap.sender"));
    }

    #[test]
    fn photo_retention_defaults_to_90_days_and_0_keeps_photos_forever() {
        let retention = |text: &str| Settings::parse(text).expect("parses").resolve().expect("resolves").config.photo_retention;
        assert_eq!(retention(""), Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(retention("[photos]\nretention_days = 0"), None);
        assert_eq!(retention("[photos]\nretention_days = 14"), Some(Duration::from_secs(14 * 86_400)));
        let refused = Settings::parse("[photos]\nretention_days = 4000").expect("parses").resolve().expect_err("too long");
        assert!(refused.to_string().contains("photos.retention_days"), "{refused}");
    }

    #[test]
    fn retention_defaults_to_90_days_and_0_keeps_events_forever() {
        let retention = |text: &str| Settings::parse(text).expect("parses").resolve().expect("resolves").config.retention;
        assert_eq!(retention(""), Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(retention("[journal]\nretention_days = 0"), None);
        assert_eq!(retention("[journal]\nretention_days = 30"), Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(retention("[journal]\nretention_days = 3650"), Some(Duration::from_secs(3_650 * 86_400)));
        let flags = Settings { journal: JournalSettings { retention_days: Some(7) }, ..Settings::default() };
        let file = Settings::parse("[journal]\nretention_days = 30").expect("parses");
        assert_eq!(file.overlay(flags).resolve().expect("resolves").config.retention, Some(Duration::from_secs(7 * 86_400)));
    }

    #[test]
    fn gateways_are_read_checked_and_their_secrets_never_shown() {
        let text = "[notify]\ninbound_secret = \"inbound-secret-0123\"\nperson_per_hour = 3\n\
                    [notify.sms]\nprovider = \"webhook\"\nurl = \"https://gw.example/send\"\nsecret = \"gateway-secret-0123\"\n\
                    [notify.voice]\nprovider = \"twilio\"\naccount_sid = \"ACx\"\nauth_token = \"twilio-token-0123\"\nfrom = \"+15005550006\"\n";
        let settings = Settings::parse(text).expect("parses");
        let shown = format!("{settings:?}");
        assert!(!shown.contains("secret-0123") && !shown.contains("token-0123"), "{shown}");
        let config = settings.resolve().expect("resolves").config.notify;
        assert!(matches!(config.sms, Some(crate::notify::Gateway::Webhook { .. })));
        assert!(matches!(config.voice, Some(crate::notify::Gateway::Twilio { .. })));
        assert_eq!(config.person_per_hour, 3);
        assert!(!format!("{config:?}").contains("secret-0123"));
        let refused = |text: &str| Settings::parse(text).expect("parses").resolve().expect_err("refused").to_string();
        assert!(refused("[notify.sms]\nprovider = \"fax\"").starts_with("notify.sms.provider: "));
        assert!(refused("[notify.sms]\nprovider = \"webhook\"").starts_with("notify.sms.url: "));
        assert!(refused("[notify.sms]\nprovider = \"webhook\"\nurl = \"https://gw.example\"\nsecret = \"short\"").contains("16"));
        assert!(refused("[notify]\ninbound_secret = \"short\"").starts_with("notify.inbound_secret: "));
        assert!(refused("[notify]\nmax_attempts = 0").starts_with("notify.max_attempts: "));
    }

    #[test]
    fn flags_take_precedence_over_the_file() {
        let file = Settings::parse("listen = \"127.0.0.1:1\"\n[limits]\ndrain_timeout_s = 5\n").expect("parses");
        let flags = Settings { listen: Some("127.0.0.1:2".into()), ..Settings::default() };
        let resolved = file.overlay(flags).resolve().expect("resolves");
        assert_eq!(resolved.listen.to_string(), "127.0.0.1:2");
        assert_eq!(resolved.config.drain_timeout, Duration::from_secs(5));
    }

    #[test]
    fn a_redis_cluster_is_named_by_its_seed_nodes() {
        let text = "[store]\nurl = \"redis+cluster://127.0.0.1:7000,127.0.0.1:7001\"\nshard = \"d1\"";
        let resolved = Settings::parse(text).expect("parses").resolve().expect("resolves");
        let Store::Redis(redis) = resolved.config.store else { panic!("not a redis store") };
        assert_eq!(redis.url, "redis+cluster://127.0.0.1:7000,127.0.0.1:7001");
    }

    #[test]
    fn a_bad_value_is_refused_with_its_key_and_reason() {
        let refused = |text: &str| Settings::parse(text).expect("parses").resolve().expect_err("refused").to_string();
        assert!(refused("listen = \"localhost\"").starts_with("listen: \"localhost\" is not an IP address and port"));
        assert!(refused("[metrics]\nlisten = \"9464\"").starts_with("metrics.listen: "));
        assert!(refused("[web]\nlisten = \"8080\"").starts_with("web.listen: "));
        assert!(refused("[web]\ntiles = \"ftp://tiles.example/{z}/{x}/{y}.png\"").starts_with("web.tiles: "));
        assert!(refused("[web]\ntiles = \"https://tiles.example/{z}/{x}.png\"").starts_with("web.tiles: "));
        assert!(refused("[web]\ntiles = \"https://tiles.example/{z}/{x}/{y}.png; script-src *\"").starts_with("web.tiles: "));
        assert!(refused("listen = \"127.0.0.1:8080\"\n[web]\nlisten = \"127.0.0.1:8080\"").starts_with("web.listen: "));
        assert!(refused("[store]\nkind = \"postgres\"").starts_with("store.kind: \"postgres\" is not a store"));
        assert!(refused("[store]\nkind = \"redis\"").starts_with("store.url: "));
        assert!(refused("[store]\nurl = \"redis+cluster://127.0.0.1:7000,nope\"").starts_with("store.url: "));
        assert!(
            refused("[store]\nurl = \"redis://x:1\"\nlease_ttl_ms = 1000\nlease_renew_ms = 900")
                .starts_with("store.lease_renew_ms: ")
        );
        assert!(refused("[otlp]\nendpoint = \"collector:4317\"").starts_with("otlp.endpoint: "));
        assert!(refused("[limits]\ndrain_timeout_s = 0").starts_with("limits.drain_timeout_s: must be at least 1"));
        assert!(refused("[limits]\nmax_sessions = 0").starts_with("limits.max_sessions: must be at least 1"));
        assert!(refused("[limits]\nagent_messages_per_s = 0").starts_with("limits.agent_messages_per_s: "));
        assert!(refused("[limits]\nrequest_timeout_s = 0").starts_with("limits.request_timeout_s: "));
        assert!(refused("[limits]\nmax_connections = 0").starts_with("limits.max_connections: must be at least 1"));
        assert!(refused("[limits]\nsession_queue_kib = 0").starts_with("limits.session_queue_kib: must be at least 1"));
        assert_eq!(
            refused("[limits]\nsession_queue_kib = 2048\nsession_queues_total_mib = 1"),
            "limits.session_queues_total_mib: must hold at least one session's queue (2048 KiB)"
        );
        for key in [
            "first_request_timeout_s",
            "idle_connection_timeout_s",
            "keepalive_interval_s",
            "keepalive_timeout_s",
            "stuck_session_timeout_s",
        ] {
            assert_eq!(refused(&format!("[limits]\n{key} = 0")), format!("limits.{key}: must be at least 1 second"));
        }
        assert!(refused("[limits]\ndrain_timeout_s = 10\nshutdown_grace_s = 5").starts_with("limits.shutdown_grace_s: "));
        assert_eq!(
            refused("[journal]\nretention_days = 3651"),
            "journal.retention_days: 3651 days is more than 3650 (ten years); use 0 to keep events forever"
        );
        assert!(refused("[tls]\ncert = \"c.pem\"").starts_with("tls.key: tls.cert is set without its key"));
        assert!(refused("[tls]\nclient_ca = \"ca.pem\"").starts_with("tls.client_ca: "));
        assert!(refused("[tls]\nrequire_client_cert = \"agents\"").starts_with("tls.require_client_cert: "));
        let missing = refused("[tls]\ncert = \"/no/such/cert.pem\"\nkey = \"/no/such/key.pem\"");
        assert!(missing.starts_with("tls.cert: cannot read the certificate /no/such/cert.pem: "), "{missing}");
        assert!(refused("[load]\nareas = \"/no/such/file.geojson\"").starts_with("load.areas: "));
        // Unknown keys and wrong types are refused by the parser, naming the place.
        let unknown = Settings::parse("[metrics]\nlisten_on = \"127.0.0.1:9464\"").expect_err("unknown key");
        assert!(unknown.contains("listen_on"), "{unknown}");
        let wrong_type = Settings::parse("[limits]\ndrain_timeout_s = \"ten\"").expect_err("wrong type");
        assert!(wrong_type.contains("drain_timeout_s"), "{wrong_type}");
        let negative = Settings::parse("[journal]\nretention_days = -1").expect_err("negative days");
        assert!(negative.contains("retention_days"), "{negative}");
        let bad_format = Settings::parse("[log]\nformat = \"xml\"").expect_err("unknown format");
        assert!(bad_format.contains("xml"), "{bad_format}");
    }
}
