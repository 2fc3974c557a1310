//! `AgentService`: one bidirectional stream per connected person, and
//! [`People`]: what it shares with the browser's `FieldService` (`field`).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pingji_proto::v1 as pb;
use pingji_proto::v1::agent_message::Body;
use pingji_proto::v1::agent_service_server::AgentService;
use tokio::time::Instant;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, debug, info, info_span, warn};

use super::auth::Tokens;
use super::config::Limits;
use super::connections::ConnectionOfCall;
use super::error;
use super::sharding::{Kind, Sharding};
use crate::convert;
use crate::photos::{PhotoError, PhotoStore};
use crate::runtime::{DispatchError, Dispatcher};
use crate::sessions::{Notices, OutboxStream, SessionQueues, Stuck};
use pingji_engine::engine::Command;
use pingji_engine::ids::{AgentId, IncidentId, OfferId};

/// How long a new session may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// What both shapes of a person's session share (the bidirectional
/// `Session` here, and the browser's `FieldService` in `field`): the
/// sign-in, opening the session (which replaces any other of the person's),
/// and carrying out what the person sends, through one engine path.
#[derive(Clone)]
pub struct People {
    dispatcher: Dispatcher,
    tokens: Tokens,
    limits: Limits,
    /// Sessions open now (their tasks running), both shapes together.
    sessions: Arc<AtomicUsize>,
    /// Sessions need a client certificate (verified against the client CA
    /// in the TLS handshake); other services do not.
    require_client_certificate: bool,
    /// With one shard per district: where people of other shards are sent.
    sharding: Option<Arc<Sharding>>,
    /// What waits for each session's app, bounded.
    queues: SessionQueues,
    /// Where photos named in completions and reports must be stored.
    photos: Option<PhotoStore>,
}

/// A person's session, just opened: the welcome is the first message of
/// `messages`.
pub(super) struct OpenSession {
    pub id: u64,
    pub refusals: Notices,
    pub messages: OutboxStream,
}

/// Why a person's message was not carried out; nothing changed.
pub(super) enum ActError {
    /// The message itself is wrong.
    Invalid(String),
    /// A photo it names is not stored (or the store failed).
    Photo(PhotoError),
    Dispatch(DispatchError),
}

impl ActError {
    /// The status a unary call (the browser's) answers with.
    pub(super) fn into_status(self) -> Status {
        match self {
            ActError::Invalid(problem) => error::invalid(problem),
            ActError::Photo(problem) => super::error::photo_status(problem),
            ActError::Dispatch(error) => Status::from(error),
        }
    }

    /// The code name and reason a session's `Refused` carries.
    fn code_and_reason(&self) -> (&'static str, pb::ErrorReason) {
        match self {
            ActError::Invalid(_) => ("invalid_argument", pb::ErrorReason::InvalidArgument),
            ActError::Photo(PhotoError::NotFound(_)) => ("not_found", pb::ErrorReason::NotFound),
            ActError::Photo(PhotoError::Io(_)) => ("unavailable", pb::ErrorReason::Internal),
            ActError::Photo(_) => ("invalid_argument", pb::ErrorReason::InvalidArgument),
            ActError::Dispatch(DispatchError::Rejected(rejection)) => {
                (super::error::code_name(rejection), super::error::rejection_reason(rejection))
            }
            ActError::Dispatch(DispatchError::Unavailable(_)) => ("unavailable", pb::ErrorReason::StoreUnavailable),
            ActError::Dispatch(DispatchError::NotInSession(_)) => ("failed_precondition", pb::ErrorReason::NoSession),
        }
    }

    fn message(&self) -> String {
        match self {
            ActError::Invalid(problem) => problem.clone(),
            ActError::Photo(problem) => problem.to_string(),
            ActError::Dispatch(DispatchError::Rejected(rejection)) => rejection.to_string(),
            ActError::Dispatch(DispatchError::Unavailable(message) | DispatchError::NotInSession(message)) => message.clone(),
        }
    }
}

impl People {
    pub fn new(
        dispatcher: Dispatcher,
        tokens: Tokens,
        limits: Limits,
        require_client_certificate: bool,
        sharding: Option<Arc<Sharding>>,
        queues: SessionQueues,
        photos: Option<PhotoStore>,
    ) -> Self {
        let sessions = Arc::new(AtomicUsize::new(0));
        People { dispatcher, tokens, limits, sessions, require_client_certificate, sharding, queues, photos }
    }

    pub(super) fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    pub(super) fn photos(&self) -> Option<&PhotoStore> {
        self.photos.as_ref()
    }

    /// Messages (or calls) a person may send per second, twice that in a burst.
    pub(super) fn messages_per_s(&self) -> u32 {
        self.limits.agent_messages_per_s
    }

    /// Refuses a call without a client certificate where sessions need one.
    pub(super) fn check_certificate<T>(&self, request: &Request<T>) -> Result<(), Status> {
        if self.require_client_certificate && request.peer_certs().is_none_or(|certificates| certificates.is_empty()) {
            return Err(error::unauthenticated(
                pb::ErrorReason::TokenMissing,
                "this dispatcher requires a client certificate for agent sessions; pass --client-cert and --client-key \
                 with one signed by its client CA",
            ));
        }
        Ok(())
    }

    /// A place for one more session, or the refusal at the maximum.
    pub(super) fn session_slot(&self) -> Result<SessionSlot, Status> {
        let slot = SessionSlot(self.sessions.clone());
        if self.sessions.fetch_add(1, Ordering::Relaxed) >= self.limits.max_sessions {
            warn!(max_sessions = self.limits.max_sessions, "session refused: the maximum is reached");
            return Err(error::status(
                tonic::Code::ResourceExhausted,
                pb::ErrorReason::LimitExceeded,
                format!("this dispatcher serves its maximum of {} sessions; try again in a minute", self.limits.max_sessions),
            ));
        }
        Ok(slot)
    }

    /// Checks the person's token; someone of another district's shard is
    /// sent to its owner, where they prove who they are.
    pub(super) async fn sign_in(&self, agent_id: &str, token: &str) -> Result<AgentId, Status> {
        let agent_id = agent_id.trim();
        if agent_id.is_empty() {
            return Err(error::invalid("no agent id given; send the id you were given on the roster"));
        }
        let agent = AgentId::new(agent_id);
        if let Err(status) = self.tokens.check_agent(&agent, token.trim()).await {
            if let Some(sharding) = &self.sharding
                && let Some(moved) = sharding.redirect_to_holder(Kind::Agent, agent.as_str()).await
            {
                info!(agent_id = %agent, "session sent to the shard holding this person");
                return Err(moved);
            }
            info!(agent_id = %agent, "session refused: wrong or missing token");
            return Err(status);
        }
        Ok(agent)
    }

    /// Opens the person's session, replacing any other (which is told why).
    pub(super) async fn open(&self, agent: &AgentId) -> Result<OpenSession, Status> {
        // The dispatcher holds the outbox: when it drops it, the outgoing
        // stream ends. The caller keeps `refusals`, which does not.
        let (outbox, refusals, messages) = self.queues.open(agent.clone());
        let id = self.dispatcher.open_session(agent.clone(), outbox).await?;
        if let Some(why) = self.queues.why_last_was_stuck(agent) {
            refusals.send(why);
        }
        Ok(OpenSession { id, refusals, messages })
    }

    /// Carries out one thing the person sent; with `session`, only while it
    /// is their open session (the browser's calls).
    pub(super) async fn act(&self, agent: &AgentId, message: pb::AgentMessage, session: Option<u64>) -> Result<(), ActError> {
        let report = matches!(message.body, Some(Body::Arrived(_) | Body::Completed(_))).then(|| message.clone());
        let command = command_for(agent, message).map_err(ActError::Invalid)?;
        self.check_photos(&command).await?;
        // Held across the border: carried out at the incident's shard, from
        // the person's open session only, as here.
        if let (Some(sharding), Some(report)) = (&self.sharding, report)
            && let Some(incident_shard) =
                super::border::held_across(&self.dispatcher, &command, session).await.map_err(ActError::Dispatch)?
        {
            return super::border::forward_report(sharding, &incident_shard, agent, report).await.map_err(ActError::Dispatch);
        }
        let result = match session {
            Some(session) => self.dispatcher.execute_in_session(command, agent.clone(), session).await,
            None => self.dispatcher.execute(command, format!("agent:{agent}"), |_, _| ()).await,
        };
        result.map_err(ActError::Dispatch)
    }

    /// Photos named in a completion or a report must have been uploaded.
    async fn check_photos(&self, command: &Command) -> Result<(), ActError> {
        let named = match command {
            Command::Complete { photo_refs, .. } => photo_refs.clone(),
            // Not the older single `photo_ref`: it may hold any reference a
            // native client made (from before photos were stored here).
            Command::FieldReport { photo_refs, .. } => photo_refs.clone(),
            _ => return Ok(()),
        };
        if named.is_empty() {
            return Ok(());
        }
        let Some(photos) = self.photos.clone() else {
            return Err(ActError::Invalid(
                "this dispatcher keeps no photos (it has no photo directory), so photo_refs cannot be named; send \
                 without them"
                    .to_string(),
            ));
        };
        tokio::task::spawn_blocking(move || photos.check_stored(&named))
            .await
            .map_err(|_| ActError::Photo(PhotoError::Io(std::io::Error::other("the photo check stopped"))))?
            .map_err(ActError::Photo)
    }
}

/// `AgentService`: the bidirectional session of native clients.
pub struct AgentApi {
    people: People,
}

impl AgentApi {
    pub fn new(people: People) -> Self {
        AgentApi { people }
    }
}

/// Counts a session while it lives.
pub(super) struct SessionSlot(Arc<AtomicUsize>);

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A token bucket: `rate` messages a second, bursts of twice that.
pub(super) struct RateLimit {
    rate: f64,
    tokens: f64,
    filled_at: Instant,
    /// When the session was last told it is over the limit.
    told_at: Option<Instant>,
}

impl RateLimit {
    pub(super) fn new(per_s: u32) -> Self {
        let rate = f64::from(per_s.max(1));
        RateLimit { rate, tokens: 2.0 * rate, filled_at: Instant::now(), told_at: None }
    }

    /// Whether one more message may go through now.
    pub(super) fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.filled_at).as_secs_f64() * self.rate).min(2.0 * self.rate);
        self.filled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return true;
        }
        false
    }

    /// How long until one more message may go through (zero if one may now).
    pub(super) fn wait(&self) -> Duration {
        let missing = (1.0 - self.tokens).max(0.0);
        Duration::from_secs_f64(missing / self.rate)
    }

    /// Whether the bucket is full again (it refills in 2 s): forgetting it
    /// then changes nothing.
    pub(super) fn full(&self) -> bool {
        self.filled_at.elapsed() >= Duration::from_secs(2)
    }

    /// Whether to tell the session about a dropped message: once a second.
    fn tell(&mut self) -> bool {
        let now = Instant::now();
        if self.told_at.is_some_and(|told| now.duration_since(told) < Duration::from_secs(1)) {
            return false;
        }
        self.told_at = Some(now);
        true
    }
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<pb::DispatchMessage, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for AgentApi {
    type SessionStream = SessionStream;

    async fn session(&self, request: Request<Streaming<pb::AgentMessage>>) -> Result<Response<SessionStream>, Status> {
        let people = &self.people;
        people.check_certificate(&request)?;
        let slot = people.session_slot()?;
        let connection = request.extensions().get::<ConnectionOfCall>().cloned();
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| {
                error::status(
                    tonic::Code::DeadlineExceeded,
                    pb::ErrorReason::InvalidArgument,
                    "no hello within 10 s; send hello with your agent id and token first",
                )
            })?
            .map_err(super::error::session_message_too_large)?;
        let Some(pb::AgentMessage { body: Some(Body::Hello(hello)) }) = first else {
            return Err(error::invalid("the first message must be hello with your agent id and token"));
        };
        let agent = people.sign_in(&hello.agent_id, &hello.token).await?;
        let OpenSession { id: session, refusals, messages } = people.open(&agent).await?;
        let people = people.clone();
        let span = info_span!("agent_session", agent_id = %agent, session);
        let mut rate = RateLimit::new(people.limits.agent_messages_per_s);
        let per_s = people.limits.agent_messages_per_s;
        tokio::spawn(
            async move {
                let _slot = slot;
                // One watch for the whole session (not one per message).
                let stuck = refusals.stuck();
                tokio::pin!(stuck);
                loop {
                    let received = tokio::select! {
                        received = inbound.message() => received,
                        () = &mut stuck => {
                            // Its stream is over; so is its connection, unless
                            // other calls share it.
                            if let Some(connection) = &connection {
                                connection.close_if_alone();
                            }
                            break;
                        }
                    };
                    let message = match received {
                        Ok(Some(message)) => message,
                        Ok(None) => break,
                        Err(status) => {
                            debug!(code = ?status.code(), "session stream ended with an error");
                            // A message over the size limit: say why before the stream ends.
                            let status = super::error::session_message_too_large(status);
                            if status.code() == tonic::Code::ResourceExhausted {
                                refuse(&refusals, "resource_exhausted", pb::ErrorReason::LimitExceeded, status.message(), "", "");
                            }
                            break;
                        }
                    };
                    // 求助 is never rate-limited: it neither waits for nor spends the budget.
                    let is_help = matches!(message.body, Some(Body::Help(_)));
                    if !is_help && !rate.allow() {
                        if rate.tell() {
                            let problem = format!(
                                "more than {per_s} messages a second from this session; messages over that are dropped \
                                 (locations need one every few seconds at most)"
                            );
                            refuse(&refusals, "resource_exhausted", pb::ErrorReason::LimitExceeded, &problem, "", "");
                        }
                        continue;
                    }
                    let (offer_id, incident_id) = references(&message);
                    let Err(problem) = people.act(&agent, message, None).await else { continue };
                    let (code, reason) = problem.code_and_reason();
                    refuse(&refusals, code, reason, &problem.message(), &offer_id, &incident_id);
                    if matches!(problem, ActError::Dispatch(DispatchError::Unavailable(_))) {
                        break;
                    }
                }
                people.dispatcher.close_session(agent, session).await;
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(messages.map(|message| message.map_err(stuck_status)))))
    }
}

/// How a stuck session's stream ends, for an app that reads again.
pub(super) fn stuck_status(stuck: Stuck) -> Status {
    let why = match stuck {
        Stuck::NotReading => "it took no message for too long",
        Stuck::Messages | Stuck::Bytes | Stuck::Total => "too many messages were waiting for it",
    };
    error::status(
        tonic::Code::ResourceExhausted,
        pb::ErrorReason::SessionStuck,
        format!("this session stopped taking the dispatcher's messages ({why}), so it is closed; reconnect"),
    )
}

fn refuse(refusals: &Notices, code: &str, reason: pb::ErrorReason, message: &str, offer_id: &str, incident_id: &str) {
    let refused = pb::Refused {
        code: code.to_string(),
        message: message.to_string(),
        offer_id: offer_id.to_string(),
        incident_id: incident_id.to_string(),
        reason: reason as i32,
    };
    refusals.send(pb::DispatchMessage { body: Some(pb::dispatch_message::Body::Refused(refused)) });
}

fn command_for(agent: &AgentId, message: pb::AgentMessage) -> Result<Command, String> {
    let agent = agent.clone();
    let Some(body) = message.body else {
        return Err("empty message; send location, status, accept, decline, arrived or completed".to_string());
    };
    Ok(match body {
        Body::Hello(_) => {
            return Err("hello was already said on this session; send location, status, accept, decline, arrived or completed"
                .to_string());
        }
        Body::Location(at) => {
            // Range checks happen in the engine, which refuses bad values.
            let (lon, lat) = convert::wgs84_of(&at)?;
            Command::ReportLocation { agent, at: pingji_engine::spatial::Position { lon, lat } }
        }
        Body::Status(status) => match convert::status_from_pb(status) {
            Ok(status) => Command::SetStatus { agent, status },
            Err(rejection) => return Err(rejection.to_string()),
        },
        Body::Accept(accept) => Command::Accept { agent, offer: OfferId::new(accept.offer_id.trim()) },
        Body::Decline(decline) => {
            Command::Decline { agent, offer: OfferId::new(decline.offer_id.trim()), reason: decline.reason }
        }
        Body::Arrived(arrived) => Command::Arrive { agent, incident: IncidentId::new(arrived.incident_id.trim()) },
        Body::Completed(completed) => Command::Complete {
            agent,
            incident: IncidentId::new(completed.incident_id.trim()),
            feedback: completed.feedback,
            photo_refs: trimmed(completed.photo_refs),
        },
        Body::CheckIn(check_in) => {
            let callup =
                Some(check_in.callup_id.trim().to_string()).filter(|id| !id.is_empty()).map(pingji_engine::ids::CallupId::new);
            Command::CheckIn { agent, callup }
        }
        Body::SafetyCheckIn(_) => Command::SafetyCheckIn { agent },
        Body::Help(help) => {
            let at = match help.location {
                Some(location) => {
                    let (lon, lat) = convert::wgs84_of(&location)?;
                    Some(pingji_engine::spatial::Position { lon, lat })
                }
                None => None,
            };
            Command::RequestHelp { agent, at, text: help.text }
        }
        Body::Reply(reply) => Command::ReplyToMessage { agent, message: reply.message_id.trim().to_string(), text: reply.text },
        Body::Read(read) => Command::MarkMessageRead { agent, message: read.message_id.trim().to_string() },
        Body::FieldReport(report) => {
            let Some(location) = report.location else {
                return Err("the field report has no location; say where the problem is".to_string());
            };
            let (lon, lat) = convert::wgs84_of(&location)?;
            Command::FieldReport {
                agent,
                at: pingji_engine::spatial::Position { lon, lat },
                category: report.category,
                text: report.text,
                photo_ref: report.photo_ref,
                photo_refs: trimmed(report.photo_refs),
            }
        }
    })
}

/// The offer or incident a message is about, for its refusal.
fn references(message: &pb::AgentMessage) -> (String, String) {
    match &message.body {
        Some(Body::Accept(accept)) => (accept.offer_id.trim().to_string(), String::new()),
        Some(Body::Decline(decline)) => (decline.offer_id.trim().to_string(), String::new()),
        Some(Body::Arrived(arrived)) => (String::new(), arrived.incident_id.trim().to_string()),
        Some(Body::Completed(completed)) => (String::new(), completed.incident_id.trim().to_string()),
        _ => (String::new(), String::new()),
    }
}

fn trimmed(photo_refs: Vec<String>) -> Vec<String> {
    photo_refs.into_iter().map(|photo_ref| photo_ref.trim().to_string()).collect()
}
