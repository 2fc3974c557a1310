//! Client connections on the gRPC port: how many may be open, how long a
//! new one may take to make its first call, how long one may stay open
//! without a call, the refusal over the maximum, and an accept loop that
//! waits rather than spins when the process is out of file descriptors.
//!
//! [`Connections::incoming`] accepts TCP connections for tonic's
//! `serve_with_incoming`. Each is a [`Connection`], whose reads end (an
//! end of file, on which the HTTP/2 server closes it) once it has waited
//! too long for a call. [`Connections::layer`] goes in front of every
//! service: it counts each connection's calls, a call lasting until its
//! response ends (so an open session or event stream keeps its connection
//! in use), and answers every call on a connection over the maximum with
//! `resource_exhausted`.
//!
//! HTTP/2 keepalive pings (the server builder's) close connections whose
//! peer stopped answering; these limits close those whose peer answers but
//! calls nothing. File descriptors: a connection over the maximum still
//! takes one while it is refused, so at most [`REFUSING_AT_ONCE`] are
//! refused at a time; more are closed at once.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pingji_proto::v1::ErrorReason;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;
use tokio::time::{Instant, Sleep};
use tokio_stream::Stream;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Bytes, Service, http};
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};
use tracing::{debug, warn};

use super::error;
use crate::metrics::ConnectionMetrics;
use crate::open_files::{self, OpenFileLimit};

/// Connections over the maximum refused at the same time (each holds a
/// file descriptor until its client has read the refusal); more are
/// closed at once.
pub const REFUSING_AT_ONCE: usize = 64;
/// How long a refused connection may take to make the call that is
/// answered with the refusal: clients call right after connecting.
const REFUSAL_FIRST_CALL: Duration = Duration::from_secs(1);
/// How long a refused connection stays after its last refusal, for the
/// answer to reach the client before the connection closes.
const REFUSAL_LINGER: Duration = Duration::from_millis(500);
/// The longest a refused connection stays open, however many calls it makes.
const REFUSAL_AT_MOST: Duration = Duration::from_secs(5);
/// The wait after an accept fails for want of resources (file descriptors,
/// memory): retrying at once would spin, as every retry fails alike.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Failed accepts are logged at most this often (with how many there were).
const ACCEPT_WARNING_EVERY: Duration = Duration::from_secs(10);

/// What the settings allow; see `Limits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once at most.
    pub max_connections: usize,
    /// How long a new connection may take to make its first call (the TLS
    /// handshake and HTTP/2 preface included).
    pub first_request_timeout: Duration,
    /// How long a connection may stay open after its last call ended.
    pub idle_timeout: Duration,
}

/// The connections of this process (every server on its gRPC port shares
/// them: the starting one, a standby, the owner's). A cheap clone.
#[derive(Clone)]
pub struct Connections {
    shared: Arc<Shared>,
}

struct Shared {
    limits: ConnectionLimits,
    /// `limits.max_connections`, or fewer when the open-file limit allows fewer.
    allowed: usize,
    open: AtomicUsize,
    refusing: AtomicUsize,
    /// Each open connection's calls, by its local and remote address: how
    /// a call finds its connection.
    connections: Mutex<HashMap<(SocketAddr, SocketAddr), Arc<Calls>>>,
    metrics: ConnectionMetrics,
    /// Times in [`Calls`] are milliseconds since this.
    epoch: Instant,
}

impl fmt::Debug for Connections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connections")
            .field("limits", &self.shared.limits)
            .field("allowed", &self.shared.allowed)
            .field("open", &self.shared.open.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Connections {
    /// Connections within `limits` and what `open_files` leaves for them;
    /// warns when that is fewer than `limits.max_connections` or than
    /// `max_sessions` (each person's app holds a connection).
    pub fn new(limits: ConnectionLimits, open_files: OpenFileLimit, max_sessions: usize, metrics: ConnectionMetrics) -> Self {
        let fit = open_files::connections_allowed(open_files, REFUSING_AT_ONCE);
        let allowed = limits.max_connections.min(fit);
        let soft = open_files.soft.map_or_else(|| "unlimited".to_string(), |soft| soft.to_string());
        if allowed < limits.max_connections {
            warn!(
                max_connections = limits.max_connections,
                allowed,
                open_files = %soft,
                "the open-file limit leaves room for fewer connections than limits.max_connections; more are refused \
                 (raise the limit: ulimit -n, or LimitNOFILE= in the systemd unit; see docs/operations.md)"
            );
        }
        if max_sessions > allowed {
            warn!(
                max_sessions,
                connections_allowed = allowed,
                open_files = %soft,
                "limits.max_sessions is more than the connections this process can hold, and each person's app \
                 needs one: raise the open-file limit to at least max_sessions + 1,000 (ulimit -n, or LimitNOFILE= \
                 in the systemd unit; see docs/operations.md)"
            );
        }
        metrics.set_allowed(allowed);
        Connections {
            shared: Arc::new(Shared {
                limits,
                allowed,
                open: AtomicUsize::new(0),
                refusing: AtomicUsize::new(0),
                connections: Mutex::new(HashMap::new()),
                metrics,
                epoch: Instant::now(),
            }),
        }
    }

    /// The most connections open at once.
    pub fn allowed(&self) -> usize {
        self.shared.allowed
    }

    /// The connections accepted on `listener`, for `serve_with_incoming`.
    /// The stream never ends by itself and yields no errors: a failed
    /// accept is logged, and when it failed for want of resources the
    /// stream waits [`ACCEPT_BACKOFF`] before it accepts again.
    pub fn incoming(&self, listener: TcpListener) -> Incoming {
        Incoming { listener, connections: self.clone(), backoff: None, failures: 0, warned_at: None }
    }

    /// The layer that counts each connection's calls and refuses those on
    /// connections over the maximum.
    pub fn layer(&self) -> TrackCalls {
        TrackCalls { connections: self.clone() }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.shared.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> Instant {
        self.shared.epoch + Duration::from_millis(ms)
    }

    /// Takes `stream` in as an open connection, or as one to refuse; `None`
    /// when even the refusals are at their maximum (it is then closed).
    fn admit(&self, stream: TcpStream, remote: SocketAddr) -> Option<Connection> {
        let local = stream.local_addr().ok()?;
        let shared = &self.shared;
        let refused = shared.open.fetch_add(1, Ordering::AcqRel) >= shared.allowed;
        if refused {
            shared.open.fetch_sub(1, Ordering::AcqRel);
            shared.metrics.refused();
            if shared.refusing.fetch_add(1, Ordering::AcqRel) >= REFUSING_AT_ONCE {
                shared.refusing.fetch_sub(1, Ordering::AcqRel);
                return None;
            }
        } else {
            shared.metrics.opened();
        }
        // As tonic's own listener does: calls' answers go out without delay.
        let _ = stream.set_nodelay(true);
        let now = self.now_ms();
        let calls = Arc::new(Calls {
            refused,
            open: AtomicUsize::new(0),
            called: AtomicBool::new(false),
            quiet_since_ms: AtomicU64::new(now),
            changed: Arc::new(Notify::new()),
            close_now: AtomicBool::new(false),
        });
        let key = (local, remote);
        shared.connections.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(key, calls.clone());
        let accepted_at = self.at(now);
        Some(Connection {
            stream,
            connections: self.clone(),
            key,
            accepted_at,
            check: Box::pin(tokio::time::sleep_until(accepted_at)),
            changed: Box::pin(calls.changed.clone().notified_owned()),
            calls,
            ended: false,
        })
    }

    /// The calls of the connection `request` came on.
    fn calls_of(&self, request: &http::Request<Body>) -> Option<Arc<Calls>> {
        let extensions = request.extensions();
        let info = extensions
            .get::<TcpConnectInfo>()
            .or_else(|| extensions.get::<TlsConnectInfo<TcpConnectInfo>>().map(TlsConnectInfo::get_ref))?;
        let key = (info.local_addr()?, info.remote_addr()?);
        self.shared.connections.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&key).cloned()
    }

    fn refusal(&self) -> tonic::Status {
        error::status(
            tonic::Code::ResourceExhausted,
            ErrorReason::LimitExceeded,
            format!("this dispatcher has its maximum of {} connections open; try again in a minute", self.shared.allowed),
        )
    }
}

/// One connection's calls.
struct Calls {
    /// Over the maximum: every call is refused.
    refused: bool,
    /// Calls whose answer has not ended.
    open: AtomicUsize,
    /// Whether a call was ever made.
    called: AtomicBool,
    /// When the last call ended (or the connection was accepted).
    quiet_since_ms: AtomicU64,
    /// Told when the last open call ends (the connection's deadline moves)
    /// and when the connection is to close now.
    changed: Arc<Notify>,
    /// Set by [`ConnectionOfCall::close_if_alone`].
    close_now: AtomicBool,
}

/// The connection a call came on, in the call's request extensions.
#[derive(Clone)]
pub struct ConnectionOfCall {
    calls: Arc<Calls>,
}

impl ConnectionOfCall {
    /// Closes the connection if the calling call is the only one on it (a
    /// session whose app stopped reading, say: its connection would hold
    /// what is waiting to be written, and the app is not reading it).
    pub fn close_if_alone(&self) {
        if self.calls.open.load(Ordering::Acquire) <= 1 {
            self.calls.close_now.store(true, Ordering::Release);
            self.calls.changed.notify_one();
        }
    }
}

/// Counts a call from its start to the end of its answer.
struct CallGuard {
    calls: Arc<Calls>,
    connections: Connections,
}

impl CallGuard {
    fn new(calls: Arc<Calls>, connections: Connections) -> Self {
        calls.called.store(true, Ordering::Release);
        calls.open.fetch_add(1, Ordering::AcqRel);
        CallGuard { calls, connections }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        // The time first: whoever sees no call open sees when the last ended.
        self.calls.quiet_since_ms.store(self.connections.now_ms(), Ordering::Release);
        if self.calls.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The connection's timer may be set for a later look: the idle
            // timeout runs from now.
            self.calls.changed.notify_one();
        }
    }
}

/// A client's TCP connection, closed (its reads end) once it has waited
/// too long for a call.
pub struct Connection {
    stream: TcpStream,
    calls: Arc<Calls>,
    connections: Connections,
    key: (SocketAddr, SocketAddr),
    accepted_at: Instant,
    /// When to look again whether the connection has waited too long.
    check: Pin<Box<Sleep>>,
    /// Ready when its last call ended or it is to close now.
    changed: Pin<Box<OwnedNotified>>,
    /// Timed out: reads end from now on.
    ended: bool,
}

/// Why a connection with no call open is closed, and when.
struct QuietDeadline {
    at: Instant,
    reason: &'static str,
}

impl Connection {
    /// When the connection is closed if no call comes, or `None` while a
    /// call is open.
    fn deadline(&self) -> Option<QuietDeadline> {
        let calls = &self.calls;
        if calls.refused {
            let at_most = self.accepted_at + REFUSAL_AT_MOST;
            if calls.open.load(Ordering::Acquire) > 0 {
                return Some(QuietDeadline { at: at_most, reason: "refused" });
            }
            let quiet_since = self.connections.at(calls.quiet_since_ms.load(Ordering::Acquire));
            let wait = if calls.called.load(Ordering::Acquire) { REFUSAL_LINGER } else { REFUSAL_FIRST_CALL };
            return Some(QuietDeadline { at: (quiet_since + wait).min(at_most), reason: "refused" });
        }
        if calls.open.load(Ordering::Acquire) > 0 {
            return None;
        }
        let quiet_since = self.connections.at(calls.quiet_since_ms.load(Ordering::Acquire));
        let limits = &self.connections.shared.limits;
        Some(if calls.called.load(Ordering::Acquire) {
            QuietDeadline { at: quiet_since + limits.idle_timeout, reason: "idle" }
        } else {
            QuietDeadline { at: quiet_since + limits.first_request_timeout, reason: "first_request_timeout" }
        })
    }

    /// Whether the connection has waited too long; otherwise arms the
    /// timer to look again, waking the connection's task then.
    fn timed_out(&mut self, context: &mut Context<'_>) -> bool {
        if self.ended {
            return true;
        }
        if self.changed.as_mut().poll(context).is_ready() {
            self.changed = Box::pin(self.calls.changed.clone().notified_owned());
            if self.calls.close_now.load(Ordering::Acquire) {
                self.ended = true;
                self.connections.shared.metrics.closed("stuck_session");
                debug!("closing the connection of a session that stopped taking messages");
                return true;
            }
            // Work the deadline out again now.
            self.check.as_mut().reset(Instant::now());
        }
        loop {
            if self.check.as_mut().poll(context).is_pending() {
                return false;
            }
            let now = Instant::now();
            let next = match self.deadline() {
                Some(deadline) if deadline.at <= now => {
                    self.ended = true;
                    if deadline.reason != "refused" {
                        self.connections.shared.metrics.closed(deadline.reason);
                    }
                    debug!(reason = deadline.reason, "closing a connection that waited too long for a call");
                    return true;
                }
                Some(deadline) => deadline.at,
                // A call is open: look again after the longest quiet allowed.
                None => now + self.connections.shared.limits.idle_timeout,
            };
            self.check.as_mut().reset(next);
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let shared = &self.connections.shared;
        shared.connections.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&self.key);
        if self.calls.refused {
            shared.refusing.fetch_sub(1, Ordering::AcqRel);
        } else {
            shared.open.fetch_sub(1, Ordering::AcqRel);
            shared.metrics.ended();
        }
    }
}

impl Connected for Connection {
    // The TCP stream's own, so that tonic's `remote_addr` and `peer_certs` work.
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Connection {
    fn poll_read(mut self: Pin<&mut Self>, context: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        // An end of file: the HTTP/2 server (or TLS handshake) stops and
        // drops the connection, which closes the socket.
        if self.timed_out(context) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(context, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(mut self: Pin<&mut Self>, context: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(context, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(context, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(context)
    }
}

/// The accepted connections of one listener; see [`Connections::incoming`].
pub struct Incoming {
    listener: TcpListener,
    connections: Connections,
    /// Set after an accept failed for want of resources.
    backoff: Option<Pin<Box<Sleep>>>,
    /// Failed accepts since the last warning.
    failures: u64,
    warned_at: Option<Instant>,
}

/// What a failed accept says about the next one.
#[derive(Debug, PartialEq, Eq)]
enum AcceptFailure {
    /// That one connection failed (reset before it was taken, say): accept
    /// the next at once.
    Connection,
    /// The process or the system is out of something (file descriptors,
    /// memory, buffers) or the error is unknown: the next accept would
    /// fail alike, so wait first.
    Resources,
}

fn accept_failure(error: &io::Error) -> AcceptFailure {
    match error.kind() {
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionRefused
        | io::ErrorKind::Interrupted
        | io::ErrorKind::WouldBlock
        | io::ErrorKind::TimedOut => AcceptFailure::Connection,
        _ => AcceptFailure::Resources,
    }
}

impl Incoming {
    fn failed(&mut self, error: &io::Error) {
        self.connections.shared.metrics.accept_failed();
        self.failures += 1;
        let now = Instant::now();
        if self.warned_at.is_none_or(|warned| now.duration_since(warned) >= ACCEPT_WARNING_EVERY) {
            warn!(
                %error,
                failures = self.failures,
                open = self.connections.shared.open.load(Ordering::Relaxed),
                "cannot accept new connections (out of file descriptors? raise the open-file limit, or lower \
                 limits.max_connections); retrying every 100 ms"
            );
            self.warned_at = Some(now);
            self.failures = 0;
        }
    }
}

impl Stream for Incoming {
    type Item = io::Result<Connection>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(backoff) = &mut self.backoff {
                ready!(backoff.as_mut().poll(context));
                self.backoff = None;
            }
            match ready!(self.listener.poll_accept(context)) {
                Ok((stream, remote)) => {
                    if let Some(connection) = self.connections.admit(stream, remote) {
                        return Poll::Ready(Some(Ok(connection)));
                    }
                    // Over the maximum with the refusals at theirs: closed (dropped).
                }
                Err(error) => {
                    if accept_failure(&error) == AcceptFailure::Resources {
                        self.failed(&error);
                        self.backoff = Some(Box::pin(tokio::time::sleep(ACCEPT_BACKOFF)));
                    }
                }
            }
        }
    }
}

/// The layer of [`Connections::layer`].
#[derive(Clone)]
pub struct TrackCalls {
    connections: Connections,
}

impl<S> tower_layer::Layer<S> for TrackCalls {
    type Service = Tracked<S>;

    fn layer(&self, inner: S) -> Tracked<S> {
        Tracked { inner, connections: self.connections.clone() }
    }
}

/// A service whose calls are counted by their connection.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    connections: Connections,
}

impl<S> Service<http::Request<Body>> for Tracked<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<http::Response<Body>, Infallible>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let calls = self.connections.calls_of(&request);
        if let Some(calls) = &calls {
            request.extensions_mut().insert(ConnectionOfCall { calls: calls.clone() });
        }
        let guard = calls.map(|calls| CallGuard::new(calls, self.connections.clone()));
        if guard.as_ref().is_some_and(|guard| guard.calls.refused) {
            let refusal = self.connections.refusal().into_http();
            return Box::pin(std::future::ready(Ok(counted(refusal, guard))));
        }
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(counted(response, guard))
        })
    }
}

/// `response`, whose call is counted until its body ends (or is dropped).
fn counted(response: http::Response<Body>, guard: Option<CallGuard>) -> http::Response<Body> {
    match guard {
        Some(guard) => response.map(|body| Body::new(CountedBody { body, _guard: guard })),
        None => response,
    }
}

struct CountedBody {
    body: Body,
    _guard: CallGuard,
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        Pin::new(&mut self.body).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failure_of_one_connection_is_retried_at_once() {
        let failure = |kind| accept_failure(&io::Error::from(kind));
        assert_eq!(failure(io::ErrorKind::ConnectionAborted), AcceptFailure::Connection);
        assert_eq!(failure(io::ErrorKind::ConnectionReset), AcceptFailure::Connection);
        // EMFILE / ENFILE: the next accept fails alike, so the loop waits.
        assert_eq!(accept_failure(&io::Error::from_raw_os_error(24)), AcceptFailure::Resources);
        assert_eq!(accept_failure(&io::Error::from_raw_os_error(23)), AcceptFailure::Resources);
        assert_eq!(failure(io::ErrorKind::OutOfMemory), AcceptFailure::Resources);
    }

    fn connections(max_connections: usize) -> Connections {
        let limits = ConnectionLimits {
            max_connections,
            first_request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        };
        let open_files = OpenFileLimit { soft: Some(100_000), hard: Some(100_000) };
        Connections::new(limits, open_files, 10, ConnectionMetrics::default())
    }

    #[test]
    fn the_open_file_limit_caps_the_connections() {
        let limits = ConnectionLimits {
            max_connections: 10_000,
            first_request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        };
        let open_files = OpenFileLimit { soft: Some(1024), hard: Some(4096) };
        let connections = Connections::new(limits, open_files, 100_000, ConnectionMetrics::default());
        assert_eq!(connections.allowed(), 1024 - 128 - REFUSING_AT_ONCE);
    }

    /// Connects `count` clients to `listener` and admits each.
    async fn admit_clients(connections: &Connections, count: usize) -> anyhow::Result<(Vec<Option<Connection>>, Vec<TcpStream>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let mut admitted = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..count {
            clients.push(TcpStream::connect(address).await?);
            let (stream, remote) = listener.accept().await?;
            admitted.push(connections.admit(stream, remote));
        }
        Ok((admitted, clients))
    }

    #[tokio::test]
    async fn over_the_maximum_connections_are_refused_then_closed_and_slots_come_back() -> anyhow::Result<()> {
        let connections = connections(3);
        let (admitted, _clients) = admit_clients(&connections, 3 + REFUSING_AT_ONCE + 2).await?;
        let open: Vec<&Connection> = admitted.iter().flatten().filter(|connection| !connection.calls.refused).collect();
        let refused = admitted.iter().flatten().filter(|connection| connection.calls.refused).count();
        let closed = admitted.iter().filter(|connection| connection.is_none()).count();
        assert_eq!((open.len(), refused, closed), (3, REFUSING_AT_ONCE, 2));
        drop(admitted);
        let (again, _clients) = admit_clients(&connections, 3).await?;
        assert!(again.iter().flatten().all(|connection| !connection.calls.refused), "slots were not given back");
        Ok(())
    }

    /// The idle timeout runs from the end of the last call, however far the
    /// connection's timer was set when it last looked.
    #[tokio::test(start_paused = true)]
    async fn a_connection_is_closed_the_idle_timeout_after_its_last_call_ended() -> anyhow::Result<()> {
        use tokio::io::AsyncReadExt;
        let limits = ConnectionLimits {
            max_connections: 10,
            first_request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(3),
        };
        let open_files = OpenFileLimit { soft: Some(100_000), hard: Some(100_000) };
        let connections = Connections::new(limits, open_files, 10, ConnectionMetrics::default());
        let (admitted, _clients) = admit_clients(&connections, 1).await?;
        let mut connection = admitted.into_iter().flatten().next().ok_or_else(|| anyhow::anyhow!("not admitted"))?;
        let calls = connection.calls.clone();
        let accepted_at = connection.accepted_at;
        // Reading from the start: the timer is set for the first-call deadline (10 s).
        let reading = tokio::spawn(async move {
            let mut buf = [0_u8; 16];
            let read = connection.read(&mut buf).await;
            (read.ok(), Instant::now())
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let call = CallGuard::new(calls, connections.clone());
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(call);
        let (read, closed_at) = reading.await?;
        assert_eq!(read, Some(0), "the connection's reads end");
        assert_eq!(closed_at.duration_since(accepted_at).as_secs(), 5, "closed 3 s after the call ended at 2 s");
        Ok(())
    }

    #[tokio::test]
    async fn a_connection_is_closed_after_its_first_request_timeout_or_when_idle_never_while_a_call_is_open() -> anyhow::Result<()>
    {
        let connections = connections(10);
        let (admitted, _clients) = admit_clients(&connections, 1).await?;
        let connection = admitted.into_iter().flatten().next().ok_or_else(|| anyhow::anyhow!("not admitted"))?;
        let first_call_by = connection.deadline().ok_or_else(|| anyhow::anyhow!("no deadline"))?;
        assert_eq!(first_call_by.reason, "first_request_timeout");
        assert_eq!(first_call_by.at, connection.accepted_at + Duration::from_secs(10));
        let call = CallGuard::new(connection.calls.clone(), connections.clone());
        assert!(connection.deadline().is_none(), "a connection with a call open has no deadline");
        drop(call);
        let idle_by = connection.deadline().ok_or_else(|| anyhow::anyhow!("no deadline"))?;
        assert_eq!(idle_by.reason, "idle");
        assert!(idle_by.at >= connection.accepted_at + Duration::from_secs(60), "idle from the end of the last call");
        Ok(())
    }
}
