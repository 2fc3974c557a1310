//! [`AgentClient`]: one person's session with the dispatcher.
//!
//! One tokio task per session connects, says hello, takes the welcome,
//! resumes what the [`Ledger`] remembers, forwards the person's requests and
//! turns the dispatcher's messages into [`AgentEvent`]s. When the connection
//! breaks it waits with capped, jittered backoff and connects again; a
//! dispatcher that still holds the old session answers `already_exists`,
//! which is retried the same way. No global state and no thread per
//! session: thousands of clients can run in one process.
//!
//! Closing (`close`, or dropping the client) ends the stream so that the
//! dispatcher closes the session at once, and then ends the task.
//!
//! Several dispatchers may share a city (a Redis store), one owning it at a
//! time. The server setting may list them all (`a:50051,b:50051`): a
//! connection that fails moves on to the next, and a dispatcher that does
//! not own the shard names the owner (`x-pingji-owner`), which the session
//! connects to at once. Both are `pingji_client::connect::Route`, the
//! redirect-following every client shares; the delays are
//! `pingji_client::backoff`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pingji_client::backoff::{Backoff, BackoffPolicy};
use pingji_client::connect::{ConnectOptions, Route};
use pingji_client::tls::error_chain;
use pingji_proto::v1 as pb;
use pingji_proto::v1::agent_message::Body as Outgoing;
use pingji_proto::v1::agent_service_client::AgentServiceClient;
use pingji_proto::v1::dispatch_message::Body as Incoming;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status, Streaming};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::event::{AgentEvent, IncidentId, Location, OfferId};
use crate::ledger::{Ledger, Request};

/// Messages queued towards the dispatcher on one live stream. A dispatcher
/// that stops reading fills it, and the session is then started again.
const OUTBOX: usize = 64;

/// How one session is set up.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The dispatchers (`http://host:port`, or `host:port`; several are
    /// tried in turn), TLS (with it, `host:port` is `https://`), and the
    /// connect timeout and keepalive. Its bearer and request timeout are
    /// not used: the person's token goes in the hello, and the hello's
    /// answer may take [`AgentConfig::welcome_timeout`].
    pub connect: ConnectOptions,
    pub agent_id: String,
    pub token: String,
    pub backoff: BackoffPolicy,
    /// How long the dispatcher may take to answer hello.
    pub welcome_timeout: Duration,
    /// Events waiting for the person's program to read them.
    pub event_queue: usize,
    /// Requests waiting for the session task.
    pub request_queue: usize,
    /// How long `close` waits for the dispatcher to end the session.
    pub close_timeout: Duration,
}

impl AgentConfig {
    /// `server`: one address, or several separated by commas; no TLS.
    pub fn new(server: impl Into<String>, agent_id: impl Into<String>, token: impl Into<String>) -> Self {
        AgentConfig::with_options(ConnectOptions::new(&server.into()), agent_id, token)
    }

    /// A session over `connect` (from `ConnectArgs`, or a drill's options).
    /// Its request timeout, when given, is how long the welcome may take;
    /// an operator's token in it is dropped, never sent on a person's session.
    pub fn with_options(mut connect: ConnectOptions, agent_id: impl Into<String>, token: impl Into<String>) -> Self {
        let welcome_timeout = connect.request_timeout.take().unwrap_or(Duration::from_secs(20));
        connect.bearer = pingji_client::auth::BearerToken::default();
        AgentConfig {
            connect,
            agent_id: agent_id.into(),
            token: token.into(),
            backoff: BackoffPolicy::default(),
            welcome_timeout,
            event_queue: 256,
            request_queue: 64,
            close_timeout: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the server address {address:?} is not valid: {reason}")]
    BadServer { address: String, reason: String },
    #[error("the agent id is empty; give the id you were given on the roster")]
    NoAgentId,
    #[error("the client needs a tokio runtime; start it from async code")]
    NoRuntime,
    #[error("too many requests are waiting to be sent; try again in a moment")]
    Busy,
    #[error("the session has stopped")]
    Stopped,
}

/// One person's session. Methods queue a request and return at once; what
/// happens arrives as [`AgentEvent`]s on the receiver that `start` returned.
pub struct AgentClient {
    agent_id: String,
    requests: mpsc::Sender<Request>,
    task: Option<JoinHandle<()>>,
}

impl AgentClient {
    /// Starts the session task (call inside a tokio runtime). The receiver
    /// gets every event; the last one is `Stopped`.
    pub fn start(config: AgentConfig) -> Result<(AgentClient, mpsc::Receiver<AgentEvent>), ClientError> {
        let agent_id = config.agent_id.trim().to_string();
        if agent_id.is_empty() {
            return Err(ClientError::NoAgentId);
        }
        let route = Route::new(&config.connect)
            .map_err(|error| ClientError::BadServer { address: config.connect.servers.join(","), reason: error.detail() })?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ClientError::NoRuntime)?;
        let (requests, request_inbox) = mpsc::channel(config.request_queue.max(1));
        let (events, event_inbox) = mpsc::channel(config.event_queue.max(1));
        let task = SessionTask {
            hello: pb::Hello { agent_id: agent_id.clone(), token: config.token.clone() },
            ledger: Ledger::new(&agent_id),
            config,
            route,
            requests: request_inbox,
            events,
            outbox: None,
            broken: None,
            last_location_sent: Instant::now(),
        };
        let span = info_span!("agent_client", agent_id = %agent_id);
        let task = runtime.spawn(task.run().instrument(span));
        Ok((AgentClient { agent_id, requests, task: Some(task) }, event_inbox))
    }

    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// Reports where the person is. It is sent again after a reconnect and
    /// every location interval, except while the person is off duty.
    pub fn report_location(&self, at: Location) -> Result<(), ClientError> {
        self.request(Request::Location(at))
    }

    /// Sets the person's status: available, busy or off duty.
    pub fn set_status(&self, status: pb::AgentStatus) -> Result<(), ClientError> {
        self.request(Request::Status(status))
    }

    pub fn accept(&self, offer_id: &OfferId) -> Result<(), ClientError> {
        self.request(Request::Accept(offer_id.clone()))
    }

    pub fn decline(&self, offer_id: &OfferId, reason: &str) -> Result<(), ClientError> {
        self.request(Request::Decline { offer_id: offer_id.clone(), reason: reason.to_string() })
    }

    /// Reports arrival at the assigned incident.
    pub fn arrived(&self, incident_id: &IncidentId) -> Result<(), ClientError> {
        self.request(Request::Arrived(incident_id.clone()))
    }

    /// Reports the assignment done, with what was found and done.
    pub fn completed(&self, incident_id: &IncidentId, feedback: &str) -> Result<(), ClientError> {
        self.request(Request::Completed { incident_id: incident_id.clone(), feedback: feedback.to_string() })
    }

    /// Answers a call-up: checked in, available, at the last reported
    /// location (sent again first). An empty id means the open call-up.
    pub fn check_in(&self, callup_id: &str) -> Result<(), ClientError> {
        self.request(Request::CheckIn(callup_id.to_string()))
    }

    /// "I'm OK" (报平安): the safety check-in while on an assignment.
    pub fn safety_check_in(&self) -> Result<(), ClientError> {
        self.request(Request::SafetyCheckIn)
    }

    /// 求助: asks for help at `at` (else where the dispatcher last saw the
    /// person). Kept and sent on reconnecting if the connection is down.
    pub fn help(&self, at: Option<Location>, text: &str) -> Result<(), ClientError> {
        self.request(Request::Help { at, text: text.to_string() })
    }

    /// Reports a problem seen in the field; the outcome arrives as
    /// `AgentEvent::ReportOutcome`.
    pub fn field_report(&self, at: Location, category: &str, text: &str, photo_ref: &str) -> Result<(), ClientError> {
        self.request(Request::FieldReport {
            at,
            category: category.to_string(),
            text: text.to_string(),
            photo_ref: photo_ref.to_string(),
        })
    }

    fn request(&self, request: Request) -> Result<(), ClientError> {
        self.requests.try_send(request).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => ClientError::Busy,
            mpsc::error::TrySendError::Closed(_) => ClientError::Stopped,
        })
    }

    /// Ends the session: the stream is closed so that the dispatcher lets go
    /// of it, and the task is joined. Dropping the client does the same
    /// without waiting.
    pub async fn close(mut self) {
        let task = self.task.take();
        drop(self);
        if let Some(task) = task
            && let Err(error) = task.await
        {
            warn!(%error, "the session task failed");
        }
    }
}

/// How a session ended.
enum Ended {
    /// The person closed the client (or stopped reading events).
    Closed,
    /// Worth trying again; the connection stayed up `up_for` (zero: it
    /// was never made or never welcomed).
    Lost { error: String, up_for: Duration },
    /// Trying again cannot help (not on the roster, bad request).
    Fatal(String),
    /// This dispatcher does not own the shard; the route now goes to the
    /// owner it named.
    Moved { error: String },
}

struct SessionTask {
    config: AgentConfig,
    hello: pb::Hello,
    /// Where the next connection goes.
    route: Route,
    ledger: Ledger,
    requests: mpsc::Receiver<Request>,
    events: mpsc::Sender<AgentEvent>,
    /// The live stream towards the dispatcher, between welcome and its end.
    outbox: Option<mpsc::Sender<pb::AgentMessage>>,
    /// Why the live stream could not take a message; ends the session.
    broken: Option<String>,
    last_location_sent: Instant,
}

impl SessionTask {
    async fn run(mut self) {
        let mut backoff = Backoff::new(self.config.backoff);
        if !self.emit(AgentEvent::Connecting).await {
            return self.stopped();
        }
        loop {
            match self.session().await {
                Ended::Closed => return self.stopped(),
                Ended::Fatal(error) => {
                    info!(%error, "session refused; not retrying");
                    // Waits for room: the reason is what the person needs to see.
                    self.emit(AgentEvent::Stopped { error: Some(error) }).await;
                    return;
                }
                Ended::Moved { error } => {
                    info!(owner = %self.route.current(), %error, "the dispatcher does not own the shard; connecting to its owner");
                }
                Ended::Lost { error, up_for } => {
                    if !self.back_off(&mut backoff, error, up_for).await {
                        return self.stopped();
                    }
                }
            }
        }
    }

    /// Waits before the next attempt, which goes to the next dispatcher
    /// when several are listed. False when the person closed the client.
    async fn back_off(&mut self, backoff: &mut Backoff, error: String, up_for: Duration) -> bool {
        self.route.failed();
        let retry_in = backoff.retry_in(up_for);
        info!(%error, retry_in_ms = retry_in.as_millis() as u64, "connection lost");
        self.emit(AgentEvent::ConnectionLost { error, retry_in }).await
            && self.wait(tokio::time::sleep(retry_in)).await.is_some()
            && self.emit(AgentEvent::Reconnecting { attempt: backoff.failures() }).await
    }

    /// The last event after a close. The person's program may have stopped
    /// reading, so this does not wait for room.
    fn stopped(&mut self) {
        let _ = self.events.try_send(AgentEvent::Stopped { error: None });
        debug!("session task ended");
    }

    /// One connection: connect, hello, welcome, then messages both ways.
    async fn session(&mut self) -> Ended {
        let url = self.route.current().to_string();
        let options = self.config.connect.clone();
        let connecting = {
            let url = url.clone();
            async move { options.connect_to(&url).await }
        };
        let channel = match self.wait(connecting).await {
            None => return Ended::Closed,
            Some(Err(error)) => return Ended::Lost { error: error.detail(), up_for: Duration::ZERO },
            Some(Ok(channel)) => channel,
        };
        let mut client = AgentServiceClient::new(channel);
        let (outbox, outgoing) = mpsc::channel(OUTBOX);
        let hello = pb::AgentMessage { body: Some(Outgoing::Hello(self.hello.clone())) };
        if outbox.try_send(hello).is_err() {
            return Ended::Lost { error: "cannot queue hello".to_string(), up_for: Duration::ZERO };
        }
        let mut inbound = match self.wait(client.session(ReceiverStream::new(outgoing))).await {
            None => return Ended::Closed,
            Some(Err(status)) => return self.refused(&status, &url),
            Some(Ok(response)) => response.into_inner(),
        };
        let welcome_timeout = self.config.welcome_timeout;
        let first = match self.wait(tokio::time::timeout(welcome_timeout, inbound.message())).await {
            None => return Ended::Closed,
            Some(first) => first,
        };
        let welcome = match first {
            Err(_) => {
                let error = format!("no welcome within {} s", welcome_timeout.as_secs());
                return Ended::Lost { error, up_for: Duration::ZERO };
            }
            Ok(Err(status)) => return self.refused(&status, &url),
            Ok(Ok(None)) => {
                return Ended::Lost {
                    error: "the dispatcher ended the session before the welcome".to_string(),
                    up_for: Duration::ZERO,
                };
            }
            Ok(Ok(Some(pb::DispatchMessage { body: Some(Incoming::Welcome(welcome)) }))) => welcome,
            Ok(Ok(Some(_))) => {
                return Ended::Lost {
                    error: "the dispatcher's first message was not a welcome".to_string(),
                    up_for: Duration::ZERO,
                };
            }
        };
        let welcomed_at = Instant::now();
        self.route.arrived();
        info!("session welcomed");
        self.outbox = Some(outbox);
        self.broken = None;
        let resumption = self.ledger.welcome(&welcome, now_ms());
        for message in resumption.send {
            self.send(message);
        }
        self.last_location_sent = Instant::now();
        for event in resumption.events {
            if !self.emit(event).await {
                return self.finish(inbound).await;
            }
        }
        // Set when the dispatcher says it is ending this session for good
        // (a newer session replaced it, or the token was replaced).
        let mut ended_for_good: Option<String> = None;
        loop {
            if let Some(error) = self.broken.take() {
                self.outbox = None;
                return Ended::Lost { error, up_for: welcomed_at.elapsed() };
            }
            let interval = self.ledger.location_interval();
            let report_at = if interval.is_zero() {
                Instant::now() + Duration::from_secs(24 * 3600)
            } else {
                self.last_location_sent + interval
            };
            tokio::select! {
                request = self.requests.recv() => match request {
                    Some(request) => self.take_request(request),
                    None => return self.finish(inbound).await,
                },
                message = inbound.message() => {
                    let body = match message {
                        Ok(Some(pb::DispatchMessage { body: Some(body) })) => body,
                        Ok(Some(pb::DispatchMessage { body: None })) => continue,
                        Ok(None) => {
                            self.outbox = None;
                            if let Some(reason) = ended_for_good {
                                return Ended::Fatal(reason);
                            }
                            let error = "the dispatcher ended the session".to_string();
                            return Ended::Lost { error, up_for: welcomed_at.elapsed() };
                        }
                        Err(status) => {
                            self.outbox = None;
                            return Ended::Lost { error: status_text(&status), up_for: welcomed_at.elapsed() };
                        }
                    };
                    if let Incoming::Refused(refused) = &body
                        && matches!(refused.code.as_str(), "replaced" | "unauthenticated")
                    {
                        ended_for_good = Some(format!("{}: {}", refused.code, refused.message));
                    }
                    for event in self.ledger.message(body, now_ms()) {
                        if !self.emit(event).await {
                            return self.finish(inbound).await;
                        }
                    }
                }
                () = tokio::time::sleep_until(report_at) => {
                    if let Some(report) = self.ledger.location_report() {
                        self.send(report);
                    }
                    self.last_location_sent = Instant::now();
                }
            }
        }
    }

    /// A refusal of the session itself: retried unless retrying cannot
    /// help; a redirect to the owner is followed at once.
    fn refused(&mut self, status: &Status, url: &str) -> Ended {
        // A failed TLS handshake shows only in the causes of the transport error.
        let error = self.config.connect.tls.explained(url, format!("{}{}", status_text(status), status_causes(status)));
        if self.route.follow(status) {
            return Ended::Moved { error };
        }
        match status.code() {
            Code::NotFound | Code::InvalidArgument | Code::Unauthenticated | Code::PermissionDenied | Code::Unimplemented => {
                Ended::Fatal(error)
            }
            // already_exists: the dispatcher has not yet noticed that the old
            // connection is gone; it will, and the retry then succeeds.
            _ => Ended::Lost { error, up_for: Duration::ZERO },
        }
    }

    /// Ends a live session on the person's side: closing the outgoing stream
    /// makes the dispatcher close the session and then end its stream, which
    /// is awaited (briefly) so that a new session right after is not refused.
    async fn finish(&mut self, mut inbound: Streaming<pb::DispatchMessage>) -> Ended {
        self.outbox = None;
        let deadline = Instant::now() + self.config.close_timeout;
        loop {
            match tokio::time::timeout_at(deadline, inbound.message()).await {
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) | Ok(Err(_)) => break,
                Err(_) => {
                    debug!("the dispatcher did not end the session in time");
                    break;
                }
            }
        }
        Ended::Closed
    }

    /// Records a request in the ledger and sends what it says to send.
    fn take_request(&mut self, request: Request) {
        let completed = match &request {
            Request::Completed { incident_id, .. } => Some(incident_id.clone()),
            _ => None,
        };
        let is_location = matches!(request, Request::Location(_));
        let connected = self.outbox.is_some();
        for message in self.ledger.request(request, connected) {
            self.send(message);
        }
        if connected && let Some(incident_id) = completed {
            self.ledger.completion_sent(&incident_id);
        }
        if connected && is_location {
            self.last_location_sent = Instant::now();
        }
    }

    fn send(&mut self, message: pb::AgentMessage) {
        let Some(outbox) = &self.outbox else { return };
        if let Err(error) = outbox.try_send(message) {
            let reason = match error {
                mpsc::error::TrySendError::Full(_) => "the dispatcher is not taking messages",
                mpsc::error::TrySendError::Closed(_) => "the stream to the dispatcher is closed",
            };
            self.broken.get_or_insert_with(|| reason.to_string());
        }
    }

    /// Hands an event to the person's program, taking requests meanwhile.
    /// False when the client was closed or nobody reads events any more.
    async fn emit(&mut self, event: AgentEvent) -> bool {
        let events = self.events.clone();
        matches!(self.wait(async move { events.send(event).await.is_ok() }).await, Some(true))
    }

    /// Awaits `future` while still taking the person's requests (recorded in
    /// the ledger, sent if a stream is live). None when the client was closed.
    async fn wait<T>(&mut self, future: impl Future<Output = T>) -> Option<T> {
        let mut future = std::pin::pin!(future);
        loop {
            tokio::select! {
                output = &mut future => return Some(output),
                request = self.requests.recv() => match request {
                    Some(request) => self.take_request(request),
                    None => return None,
                },
            }
        }
    }
}

fn status_text(status: &Status) -> String {
    let message = status.message().trim();
    let code = code_name(status.code());
    if message.is_empty() { code.to_string() } else { format!("{code}: {message}") }
}

/// The causes of a status made from a transport error (`: cause: cause`),
/// or nothing.
fn status_causes(status: &Status) -> String {
    match std::error::Error::source(status) {
        Some(cause) => format!(": {}", error_chain(cause)),
        None => String::new(),
    }
}

/// The gRPC code name, as the dispatcher spells it in refusals.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address where nothing listens: bound, then released.
    fn closed_address() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        drop(listener);
        format!("http://{address}")
    }

    async fn next(events: &mut mpsc::Receiver<AgentEvent>) -> AgentEvent {
        tokio::time::timeout(Duration::from_secs(20), events.recv())
            .await
            .expect("an event within 20 s")
            .expect("the session is still running")
    }

    #[tokio::test]
    async fn an_unreachable_dispatcher_is_retried_with_capped_delays_until_closed() {
        let mut config = AgentConfig::new(closed_address(), "p0001", "");
        config.backoff = BackoffPolicy {
            initial: Duration::from_millis(10),
            cap: Duration::from_millis(40),
            healthy_after: Duration::from_secs(10),
        };
        let (client, mut events) = AgentClient::start(config).expect("starts");
        assert_eq!(next(&mut events).await, AgentEvent::Connecting);
        let mut losses = 0;
        let mut attempts = Vec::new();
        while losses < 6 {
            match next(&mut events).await {
                AgentEvent::ConnectionLost { error, retry_in } => {
                    assert!(retry_in <= Duration::from_millis(40), "{retry_in:?} is over the cap");
                    assert!(error.contains("refused") || error.contains("transport"), "{error}");
                    losses += 1;
                }
                AgentEvent::Reconnecting { attempt } => attempts.push(attempt),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(attempts, vec![1, 2, 3, 4, 5]);
        // Requests taken while disconnected are kept, not refused.
        client.report_location(Location::new(120.1, 30.2)).expect("queued");
        client.close().await;
        loop {
            match next(&mut events).await {
                AgentEvent::Stopped { error } => {
                    assert_eq!(error, None);
                    break;
                }
                AgentEvent::ConnectionLost { .. } | AgentEvent::Reconnecting { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_dropped_client_stops_its_task() {
        let (client, mut events) = AgentClient::start(AgentConfig::new(closed_address(), "p0001", "")).expect("starts");
        assert_eq!(next(&mut events).await, AgentEvent::Connecting);
        drop(client);
        loop {
            if let AgentEvent::Stopped { error } = next(&mut events).await {
                assert_eq!(error, None);
                break;
            }
        }
        assert!(events.recv().await.is_none(), "the task ended and dropped its sender");
    }

    #[test]
    fn bad_settings_are_refused_before_starting() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let entered = runtime.enter();
        assert!(matches!(AgentClient::start(AgentConfig::new("http://[bad", "p0001", "")), Err(ClientError::BadServer { .. })));
        assert!(matches!(AgentClient::start(AgentConfig::new("127.0.0.1:1", "  ", "")), Err(ClientError::NoAgentId)));
        drop(entered);
        assert!(matches!(AgentClient::start(AgentConfig::new("127.0.0.1:1", "p0001", "")), Err(ClientError::NoRuntime)));
    }
}
