//! Connecting to dispatchers, and following a redirect to the one that owns
//! the shard: the one place every client (console, field agent, live
//! drill) does it.
//!
//! - [`ConnectOptions`]: the dispatchers to try (one address, or several
//!   sharing a Redis store), TLS, the operator's token, timeouts; builds
//!   the endpoint of an address.
//! - [`Route`]: where the next connection goes: the listed dispatchers in
//!   turn, or the owner one of them named. [`Route::follow`] is the only
//!   code that acts on a redirect (at most [`MAX_REDIRECTS`] in a row, the
//!   scheme kept); the field agent's session uses it directly.
//! - [`Connection`]: a channel to a dispatcher, and [`Connection::call`],
//!   through which every command call goes: a call refused with a redirect
//!   is made again at the owner, and, when the options say so, a call whose
//!   owner went away is tried again until another takes over.
//!
//! Reconnecting after a loss waits with [`crate::backoff`].

use std::time::Duration;

use pingji_proto::v1::command_service_client::CommandServiceClient;
use tokio::time::Instant;
use tonic::Status;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tracing::{debug, info};

use crate::auth::BearerToken;
use crate::backoff::{Backoff, BackoffPolicy};
use crate::tls::{ClientTls, error_chain};

/// Where a dispatcher listens when nothing says otherwise (the
/// dispatcher's own default).
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";
/// Redirects followed in a row: a spare standing by sends to the first
/// district's owner, which may send on to the right one; two processes that
/// name each other must not make a client spin.
pub const MAX_REDIRECTS: u32 = 3;
/// Largest message either side accepts: area outlines of a whole city
/// (`ListAreas` with geometry, `ImportAreas`) run to megabytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Pauses between tries while a call looks for an owner that went away (a
/// takeover takes a lease's ttl and a renewal: a few seconds).
const OWNER_SEARCH: BackoffPolicy =
    BackoffPolicy { initial: Duration::from_millis(250), cap: Duration::from_secs(2), healthy_after: Duration::MAX };

/// A `CommandService` client carrying the operator's token (and shard) on
/// every request.
pub type CommandClient = CommandServiceClient<InterceptedService<Channel, BearerToken>>;

/// A `WebhookService` client carrying the operator's token (admin only).
pub type WebhookClient = pingji_proto::v1::webhook_service_client::WebhookServiceClient<InterceptedService<Channel, BearerToken>>;

/// A `CapService` client carrying the operator's token (CAP alerts and
/// suggestions).
pub type CapClient = pingji_proto::v1::cap_service_client::CapServiceClient<InterceptedService<Channel, BearerToken>>;

/// A `SupplyService` client carrying the operator's token (depots, stock,
/// supply requests).
pub type SupplyClient = pingji_proto::v1::supply_service_client::SupplyServiceClient<InterceptedService<Channel, BearerToken>>;
pub type ShelterClient = pingji_proto::v1::shelter_service_client::ShelterServiceClient<InterceptedService<Channel, BearerToken>>;

/// A `RosterService` client carrying the operator's token (duty rosters).
pub type RosterClient = pingji_proto::v1::roster_service_client::RosterServiceClient<InterceptedService<Channel, BearerToken>>;

/// How a client reaches the dispatchers.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// The dispatchers, in order: `http://host:port`, `https://host:port`,
    /// or `host:port` (https when TLS files were given).
    pub servers: Vec<String>,
    pub tls: ClientTls,
    /// The operator's token (and shard) sent on every command call; none
    /// for the field agent, whose token goes in its hello.
    pub bearer: BearerToken,
    /// How long connecting may take before a dispatcher counts as unreachable.
    pub connect_timeout: Duration,
    /// How long a call may wait for the dispatcher's answer; a stream's
    /// messages after the answer are not limited. None: no limit.
    pub request_timeout: Option<Duration>,
    /// HTTP/2 pings on an idle connection, so that a dead one is noticed.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// How long [`Connection::call`] keeps looking for the owner when the
    /// dispatcher it had went away or is handing over (`unavailable`, or a
    /// broken connection). Zero, the default: it fails at once, and the
    /// person decides.
    pub find_owner_for: Duration,
}

impl ConnectOptions {
    /// `servers`: one address, or several separated by commas; no TLS, no
    /// token.
    pub fn new(servers: &str) -> ConnectOptions {
        ConnectOptions {
            servers: crate::owner::server_list(servers),
            tls: ClientTls::default(),
            bearer: BearerToken::default(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: None,
            keepalive_interval: Duration::from_secs(20),
            keepalive_timeout: Duration::from_secs(10),
            find_owner_for: Duration::ZERO,
        }
    }

    /// The endpoint of `address` with these settings; `address` without a
    /// scheme is `https://` when TLS files were given, else `http://`.
    pub fn endpoint(&self, address: &str) -> Result<Endpoint, ConnectError> {
        let url = self.tls.url(address);
        if let Err(error) = Endpoint::from_shared(url.clone()) {
            return Err(ConnectError::BadAddress { address: address.trim().to_string(), reason: error.to_string() });
        }
        let endpoint = self.tls.endpoint(&url).map_err(ConnectError::Tls)?;
        let endpoint = endpoint
            .connect_timeout(self.connect_timeout)
            .http2_keep_alive_interval(self.keepalive_interval)
            .keep_alive_timeout(self.keepalive_timeout)
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        Ok(match self.request_timeout {
            Some(timeout) => endpoint.timeout(timeout),
            None => endpoint,
        })
    }

    /// A channel to the dispatcher at `url`, connected now, so that one that
    /// is not running is told as such rather than as a failed call.
    pub async fn connect_to(&self, url: &str) -> Result<Channel, ConnectError> {
        let endpoint = self.endpoint(url)?;
        endpoint.connect().await.map_err(|error| {
            let reason = error_chain(&error);
            let tls_mismatch = crate::tls::hint(&reason).is_some();
            let reason = self.tls.explained(url, reason);
            if tls_mismatch {
                ConnectError::Handshake { server: url.to_string(), reason }
            } else {
                ConnectError::Unreachable { server: url.to_string(), reason }
            }
        })
    }

    /// The error of a failed call to `url`, in words, with advice added when
    /// its transport error shows a TLS mismatch.
    pub fn explained(&self, url: &str, status: &Status) -> String {
        let causes = std::error::Error::source(status).map(|cause| format!(": {}", error_chain(cause))).unwrap_or_default();
        self.tls.explained(url, format!("{}{causes}", status.message()))
    }
}

/// Why no dispatcher could be reached, said so that a person can act.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("no dispatcher address given; pass --server http://HOST:PORT")]
    NoServer,
    #[error("{address:?} is not a server address; give one such as http://127.0.0.1:50051")]
    BadAddress { address: String, reason: String },
    /// A TLS setting that cannot be used with this address.
    #[error("{0}")]
    Tls(String),
    /// Nothing answered at `server` (several, comma separated, when every
    /// listed one failed); `reason` says what the transport saw.
    #[error("cannot reach the dispatcher at {server} (is it running?)")]
    Unreachable { server: String, reason: String },
    /// A connection was made but TLS (or its absence) did not match.
    #[error("cannot talk to the dispatcher at {server}: {reason}")]
    Handshake { server: String, reason: String },
}

impl ConnectError {
    /// The error with what the transport saw, for logs and screens that
    /// have room for it.
    pub fn detail(&self) -> String {
        match self {
            ConnectError::Unreachable { reason, .. } if !reason.is_empty() => format!("{self}: {reason}"),
            ConnectError::BadAddress { reason, .. } => format!("{self}: {reason}"),
            _ => self.to_string(),
        }
    }
}

/// A connection that could not be made, as the status of the call that
/// needed it.
impl From<ConnectError> for Status {
    fn from(error: ConnectError) -> Status {
        Status::unavailable(error.detail())
    }
}

/// Whether an answer sends the caller elsewhere: `unavailable` naming the
/// owner (see [`crate::errors::owner`]), or, for [`Connection::call`] with
/// time to look, any `unavailable` or broken connection.
fn owner_may_have_moved(status: &Status) -> bool {
    status.code() == tonic::Code::Unavailable || std::error::Error::source(status).is_some()
}

/// The error of a call made through [`Connection::call`]: it may carry the
/// dispatcher's status (which may name the owner), and a failed connection
/// becomes one.
pub trait CallError: From<ConnectError> {
    fn status(&self) -> Option<&Status>;
}

impl CallError for Status {
    fn status(&self) -> Option<&Status> {
        Some(self)
    }
}

/// Where the next connection goes: the listed dispatchers in turn, or the
/// owner one of them named, until a connection to it fails.
#[derive(Clone, Debug)]
pub struct Route {
    /// URLs, with their scheme.
    listed: Vec<String>,
    next: usize,
    /// The URL of the owner a dispatcher named.
    owner: Option<String>,
    /// Redirects followed since the last answer that was not one.
    redirects: u32,
}

impl Route {
    /// The route over `options.servers`, every address checked.
    pub fn new(options: &ConnectOptions) -> Result<Route, ConnectError> {
        if options.servers.is_empty() {
            return Err(ConnectError::NoServer);
        }
        let mut listed = Vec::new();
        for address in &options.servers {
            options.endpoint(address)?;
            listed.push(options.tls.url(address));
        }
        Ok(Route { listed, next: 0, owner: None, redirects: 0 })
    }

    /// The URL to connect to now.
    pub fn current(&self) -> &str {
        self.owner.as_deref().unwrap_or(&self.listed[self.next])
    }

    /// The listed URLs, in order.
    pub fn listed(&self) -> &[String] {
        &self.listed
    }

    /// `status` came from the dispatcher at [`Route::current`]: when it
    /// names the owner of the shard, the route goes there (same scheme) and
    /// this returns true. False when it names none, or after
    /// [`MAX_REDIRECTS`] in a row (then the route starts again from the
    /// listed ones).
    pub fn follow(&mut self, status: &Status) -> bool {
        let Some(owner) = crate::errors::owner(status) else {
            return false;
        };
        if self.redirects >= MAX_REDIRECTS {
            self.redirects = 0;
            self.owner = None;
            return false;
        }
        self.redirects += 1;
        let url = crate::owner::owner_url(self.current(), owner.trim());
        info!(owner = %url, redirects = self.redirects, "the dispatcher does not own the shard; going to its owner");
        self.owner = Some(url);
        true
    }

    /// The connection to [`Route::current`] failed or broke: forget the
    /// owner we were sent to (another may have taken over), or else move on
    /// to the next listed dispatcher.
    pub fn failed(&mut self) {
        if self.owner.take().is_none() {
            self.next = (self.next + 1) % self.listed.len();
        }
    }

    /// A call was answered (or a session welcomed) without a redirect.
    pub fn arrived(&mut self) {
        self.redirects = 0;
    }
}

/// A channel to one dispatcher, and where to go when it sends us on.
/// Cloning is cheap: clones share the HTTP/2 connection.
#[derive(Clone, Debug)]
pub struct Connection {
    options: ConnectOptions,
    route: Route,
    channel: Channel,
}

impl Connection {
    /// Connects to the first listed dispatcher that answers. An error names
    /// a TLS mismatch (with advice) before plain unreachability.
    pub async fn open(options: ConnectOptions) -> Result<Connection, ConnectError> {
        let mut route = Route::new(&options)?;
        let channel = connect_listed(&options, &mut route).await?;
        Ok(Connection { options, route, channel })
    }

    /// The URL of the dispatcher this connection reached.
    pub fn url(&self) -> &str {
        self.route.current()
    }

    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A `CommandService` client on this connection with the operator's token.
    pub fn commands(&self) -> CommandClient {
        CommandServiceClient::with_interceptor(self.channel.clone(), self.options.bearer.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// A `WebhookService` client on this connection with the operator's token.
    pub fn webhooks(&self) -> WebhookClient {
        pingji_proto::v1::webhook_service_client::WebhookServiceClient::with_interceptor(
            self.channel.clone(),
            self.options.bearer.clone(),
        )
    }

    /// A `CapService` client on this connection with the operator's token.
    pub fn cap(&self) -> CapClient {
        pingji_proto::v1::cap_service_client::CapServiceClient::with_interceptor(
            self.channel.clone(),
            self.options.bearer.clone(),
        )
    }

    /// A `SupplyService` client on this connection with the operator's token.
    pub fn supplies(&self) -> SupplyClient {
        pingji_proto::v1::supply_service_client::SupplyServiceClient::with_interceptor(
            self.channel.clone(),
            self.options.bearer.clone(),
        )
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// A `RosterService` client on this connection with the operator's token.
    pub fn rosters(&self) -> RosterClient {
        pingji_proto::v1::roster_service_client::RosterServiceClient::with_interceptor(
            self.channel.clone(),
            self.options.bearer.clone(),
        )
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// A `ShelterService` client on this connection with the operator's token.
    pub fn shelters(&self) -> ShelterClient {
        pingji_proto::v1::shelter_service_client::ShelterServiceClient::with_interceptor(
            self.channel.clone(),
            self.options.bearer.clone(),
        )
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// The same connection, its calls looking for an owner that went away
    /// for up to `time` (see [`ConnectOptions::find_owner_for`]).
    pub fn finding_owner_for(mut self, time: Duration) -> Connection {
        self.options.find_owner_for = time;
        self
    }

    /// The same connection with its calls for `shard` (`x-pingji-shard`): a
    /// district's id, or `city`.
    pub fn for_shard(&self, shard: &str) -> Result<Connection, String> {
        let mut connection = self.clone();
        connection.options.bearer = self.options.bearer.clone().for_shard(shard)?;
        Ok(connection)
    }

    /// Connects again after the dispatcher went away: the owner we were
    /// sent to is forgotten, and the listed dispatchers are tried in turn.
    pub async fn reconnect(&mut self) -> Result<(), ConnectError> {
        self.route.failed();
        self.channel = connect_listed(&self.options, &mut self.route).await?;
        Ok(())
    }

    /// For a stream that was lost: waits until `retry_at`, when one is set,
    /// then connects again (the dispatcher may be gone for good: the owner
    /// is found anew). `retry_at` is cleared only after the wait, so a call
    /// dropped while waiting still waits next time. The error says why the
    /// stream could not be reopened.
    pub async fn reconnect_when_due(&mut self, retry_at: &mut Option<Instant>) -> Result<(), String> {
        let Some(at) = *retry_at else {
            return Ok(());
        };
        tokio::time::sleep_until(at).await;
        let reconnected = self.reconnect().await;
        *retry_at = None;
        reconnected.map_err(|error| error.detail())
    }

    /// What a failed call means for the person reading it: the status,
    /// with what to do about the connection where that helps.
    pub fn explain(&self, status: &Status) -> String {
        self.options.explained(self.url(), status)
    }

    /// Makes `call` on this connection and, when the dispatcher answers that
    /// another owns the shard, again at that owner (up to [`MAX_REDIRECTS`]
    /// in a row). With [`ConnectOptions::find_owner_for`], a call refused
    /// with `unavailable` or broken in the transport is also tried again,
    /// after a short backoff, at whichever listed dispatcher owns the shard
    /// now, until that time is up. A refusal that names an owner changed
    /// nothing, so following it cannot do a thing twice; a call that is
    /// retried after a broken connection must be safe to repeat.
    ///
    /// `call` gets the connection to use (clone what it needs: its future
    /// may not borrow it).
    pub async fn call<T, E, Call, Answer>(&mut self, mut call: Call) -> Result<T, E>
    where
        Call: FnMut(&Connection) -> Answer,
        Answer: Future<Output = Result<T, E>>,
        E: CallError,
    {
        let give_up_at = Instant::now() + self.options.find_owner_for;
        let mut pause = Backoff::new(OWNER_SEARCH);
        loop {
            let error = match call(self).await {
                Ok(answer) => {
                    self.route.arrived();
                    return Ok(answer);
                }
                Err(error) => error,
            };
            let Some(status) = error.status() else {
                return Err(error);
            };
            if self.route.follow(status) {
                let url = self.route.current().to_string();
                match self.options.connect_to(&url).await {
                    Ok(channel) => {
                        self.channel = channel;
                        continue;
                    }
                    Err(unreachable) if self.options.find_owner_for.is_zero() => return Err(unreachable.into()),
                    Err(unreachable) => debug!(error = %unreachable.detail(), "the named owner cannot be reached"),
                }
            } else if !owner_may_have_moved(status) {
                return Err(error);
            }
            if Instant::now() >= give_up_at {
                return Err(error);
            }
            // The owner went away, or is handing over: look for it again
            // from the listed dispatchers after a pause.
            tokio::time::sleep(pause.next_delay()).await;
            if let Err(unreachable) = self.reconnect().await {
                debug!(error = %unreachable.detail(), "no listed dispatcher answers yet");
            }
        }
    }
}

/// Tries the listed dispatchers of `route` once each, from its current one;
/// the route is left at the one that answered.
async fn connect_listed(options: &ConnectOptions, route: &mut Route) -> Result<Channel, ConnectError> {
    let mut tls_trouble = None;
    let mut reasons = Vec::new();
    for _ in 0..route.listed.len() {
        let url = route.current().to_string();
        match options.connect_to(&url).await {
            Ok(channel) => return Ok(channel),
            Err(error @ ConnectError::Handshake { .. }) => {
                tls_trouble.get_or_insert(error);
            }
            Err(ConnectError::Unreachable { reason, .. }) => reasons.push(reason),
            Err(other) => return Err(other),
        }
        route.failed();
    }
    Err(tls_trouble.unwrap_or_else(|| ConnectError::Unreachable { server: route.listed.join(", "), reason: reasons.join("; ") }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tonic::metadata::MetadataValue;
    use tonic_types::{ErrorDetails, StatusExt};

    use super::*;

    fn redirect_to(owner: &'static str) -> Status {
        let mut status = Status::unavailable("shard city is owned elsewhere");
        status.metadata_mut().insert(crate::owner::OWNER_METADATA, MetadataValue::from_static(owner));
        status
    }

    #[test]
    fn a_route_follows_a_named_owner_a_few_times_in_a_row_keeping_the_scheme() {
        let options = ConnectOptions::new("https://a:1, https://b:2");
        let mut route = Route::new(&options).expect("valid");
        assert_eq!(route.current(), "https://a:1");
        assert!(route.follow(&redirect_to("c:3")));
        assert_eq!(route.current(), "https://c:3");
        assert!(!route.follow(&Status::not_found("no incident")), "not a redirect");
        assert!(route.follow(&redirect_to("d:4")));
        assert!(route.follow(&redirect_to("e:5")));
        assert!(!route.follow(&redirect_to("f:6")), "a fourth redirect in a row is not followed");
        assert_eq!(route.current(), "https://a:1", "back to the listed ones");
        route.arrived();
        assert!(route.follow(&redirect_to("c:3")));
        route.failed();
        assert_eq!(route.current(), "https://a:1", "a failed owner is forgotten");
        route.failed();
        assert_eq!(route.current(), "https://b:2", "a failed listed one: the next");
        route.failed();
        assert_eq!(route.current(), "https://a:1");
    }

    #[test]
    fn the_owner_is_read_from_the_error_details_too() {
        let metadata = HashMap::from([("owner".to_string(), "10.0.0.2:50051".to_string())]);
        let details = ErrorDetails::with_error_info("NOT_OWNER", crate::errors::DOMAIN, metadata);
        let status = Status::with_error_details(tonic::Code::Unavailable, "owned elsewhere", details);
        let mut route = Route::new(&ConnectOptions::new("http://a:1")).expect("valid");
        assert!(route.follow(&status));
        assert_eq!(route.current(), "http://10.0.0.2:50051");
    }

    #[test]
    fn addresses_are_checked_and_get_a_scheme() {
        assert_eq!(Route::new(&ConnectOptions::new(" , ")).expect_err("none"), ConnectError::NoServer);
        let bad = Route::new(&ConnectOptions::new("http://[bad")).expect_err("bad");
        assert!(matches!(bad, ConnectError::BadAddress { .. }), "{bad:?}");
        assert_eq!(bad.to_string(), "\"http://[bad\" is not a server address; give one such as http://127.0.0.1:50051");
        let route = Route::new(&ConnectOptions::new("127.0.0.1:1")).expect("valid");
        assert_eq!(route.listed(), ["http://127.0.0.1:1"]);
    }

    /// An address where nothing listens: bound, then released.
    fn closed_address() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        drop(listener);
        format!("http://{address}")
    }

    #[tokio::test]
    async fn nothing_listening_is_unreachable_naming_every_address() {
        let (first, second) = (closed_address(), closed_address());
        let error = Connection::open(ConnectOptions::new(&format!("{first},{second}"))).await.expect_err("unreachable");
        assert_eq!(error.to_string(), format!("cannot reach the dispatcher at {first}, {second} (is it running?)"));
        assert!(error.detail().contains("refused"), "{}", error.detail());
    }
}
