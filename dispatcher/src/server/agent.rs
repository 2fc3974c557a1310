//! `AgentService`: one bidirectional stream per connected person.

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
use crate::runtime::{DispatchError, Dispatcher};
use crate::sessions::{Notices, SessionQueues, Stuck};
use pingji_engine::engine::Command;
use pingji_engine::ids::{AgentId, IncidentId, OfferId};

/// How long a new session may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

pub struct AgentApi {
    dispatcher: Dispatcher,
    tokens: Tokens,
    limits: Limits,
    /// Sessions open now (their tasks running).
    sessions: Arc<AtomicUsize>,
    /// Sessions need a client certificate (verified against the client CA
    /// in the TLS handshake); other services do not.
    require_client_certificate: bool,
    /// With one shard per district: where people of other shards are sent.
    sharding: Option<Arc<Sharding>>,
    /// What waits for each session's app, bounded.
    queues: SessionQueues,
}

impl AgentApi {
    pub fn new(
        dispatcher: Dispatcher,
        tokens: Tokens,
        limits: Limits,
        require_client_certificate: bool,
        sharding: Option<Arc<Sharding>>,
        queues: SessionQueues,
    ) -> Self {
        let sessions = Arc::new(AtomicUsize::new(0));
        AgentApi { dispatcher, tokens, limits, sessions, require_client_certificate, sharding, queues }
    }
}

/// Counts a session while it lives.
struct SessionSlot(Arc<AtomicUsize>);

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A token bucket: `rate` messages a second, bursts of twice that.
struct RateLimit {
    rate: f64,
    tokens: f64,
    filled_at: Instant,
    /// When the session was last told it is over the limit.
    told_at: Option<Instant>,
}

impl RateLimit {
    fn new(per_s: u32) -> Self {
        let rate = f64::from(per_s.max(1));
        RateLimit { rate, tokens: 2.0 * rate, filled_at: Instant::now(), told_at: None }
    }

    /// Whether one more message may go through now.
    fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.filled_at).as_secs_f64() * self.rate).min(2.0 * self.rate);
        self.filled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return true;
        }
        false
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
        if self.require_client_certificate && request.peer_certs().is_none_or(|certificates| certificates.is_empty()) {
            return Err(error::unauthenticated(
                pb::ErrorReason::TokenMissing,
                "this dispatcher requires a client certificate for agent sessions; pass --client-cert and --client-key \
                 with one signed by its client CA",
            ));
        }
        let slot = SessionSlot(self.sessions.clone());
        if self.sessions.fetch_add(1, Ordering::Relaxed) >= self.limits.max_sessions {
            warn!(max_sessions = self.limits.max_sessions, "session refused: the maximum is reached");
            return Err(error::status(
                tonic::Code::ResourceExhausted,
                pb::ErrorReason::LimitExceeded,
                format!("this dispatcher serves its maximum of {} sessions; try again in a minute", self.limits.max_sessions),
            ));
        }
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
        let agent_id = hello.agent_id.trim().to_string();
        if agent_id.is_empty() {
            return Err(error::invalid("hello has no agent id; send the id you were given on the roster"));
        }
        let agent = AgentId::new(agent_id);
        if let Err(status) = self.tokens.check_agent(&agent, hello.token.trim()).await {
            // Someone of another district's shard is sent to its owner; they
            // prove who they are there.
            if let Some(sharding) = &self.sharding
                && let Some(moved) = sharding.redirect_to_holder(Kind::Agent, agent.as_str()).await
            {
                info!(agent_id = %agent, "session sent to the shard holding this person");
                return Err(moved);
            }
            info!(agent_id = %agent, "session refused: wrong or missing token");
            return Err(status);
        }
        // The dispatcher holds the outbox: when it drops it, the outgoing
        // stream ends. This task keeps `refusals`, which does not.
        let (outbox, refusals, messages) = self.queues.open(agent.clone());
        let session = self.dispatcher.open_session(agent.clone(), outbox).await?;
        if let Some(why) = self.queues.why_last_was_stuck(&agent) {
            refusals.send(why);
        }
        let dispatcher = self.dispatcher.clone();
        let span = info_span!("agent_session", agent_id = %agent, session);
        let mut rate = RateLimit::new(self.limits.agent_messages_per_s);
        let per_s = self.limits.agent_messages_per_s;
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
                    if !rate.allow() {
                        if rate.tell() {
                            let problem = format!(
                                "more than {per_s} messages a second from this session; messages over that are dropped \
                                 (locations need one every few seconds at most)"
                            );
                            refuse(&refusals, "resource_exhausted", pb::ErrorReason::LimitExceeded, &problem, "", "");
                        }
                        continue;
                    }
                    let command = match command_for(&agent, message) {
                        Ok(command) => command,
                        Err(problem) => {
                            refuse(&refusals, "invalid_argument", pb::ErrorReason::InvalidArgument, &problem, "", "");
                            continue;
                        }
                    };
                    let (offer_id, incident_id) = references(&command);
                    match dispatcher.execute(command, format!("agent:{agent}"), |_, _| ()).await {
                        Ok(()) => {}
                        Err(DispatchError::Rejected(rejection)) => {
                            refuse(
                                &refusals,
                                super::error::code_name(&rejection),
                                super::error::rejection_reason(&rejection),
                                &rejection.to_string(),
                                &offer_id,
                                &incident_id,
                            );
                        }
                        Err(DispatchError::Unavailable(message)) => {
                            refuse(
                                &refusals,
                                "unavailable",
                                pb::ErrorReason::StoreUnavailable,
                                &message,
                                &offer_id,
                                &incident_id,
                            );
                            break;
                        }
                    }
                }
                dispatcher.close_session(agent, session).await;
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(messages.map(|message| message.map_err(stuck_status)))))
    }
}

/// How a stuck session's stream ends, for an app that reads again.
fn stuck_status(stuck: Stuck) -> Status {
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
        Body::Completed(completed) => {
            Command::Complete { agent, incident: IncidentId::new(completed.incident_id.trim()), feedback: completed.feedback }
        }
        Body::CheckIn(check_in) => {
            let callup =
                Some(check_in.callup_id.trim().to_string()).filter(|id| !id.is_empty()).map(pingji_engine::ids::CallupId::new);
            Command::CheckIn { agent, callup }
        }
        Body::Reply(_) | Body::Read(_) => {
            return Err("replies and read receipts are not served by this dispatcher yet".to_string());
        }
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
            }
        }
    })
}

fn references(command: &Command) -> (String, String) {
    match command {
        Command::Accept { offer, .. } | Command::Decline { offer, .. } => (offer.to_string(), String::new()),
        Command::Arrive { incident, .. } | Command::Complete { incident, .. } => (String::new(), incident.to_string()),
        _ => (String::new(), String::new()),
    }
}
