//! One person's `AgentService.Session`: hello, the welcome, then messages
//! both ways.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::Context;
use pingji_proto::v1 as pb;
use pingji_proto::v1::agent_message::Body as Outgoing;
use pingji_proto::v1::agent_service_client::AgentServiceClient;
use pingji_proto::v1::dispatch_message::Body as Incoming;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

/// How long the dispatcher may take to answer hello with the welcome.
const WELCOME_WITHIN: Duration = Duration::from_secs(20);
/// Messages the test may queue towards the dispatcher.
const OUTBOX: usize = 64;

/// A live session of one person.
pub struct AgentSession {
    agent_id: String,
    welcome: pb::Welcome,
    outbox: mpsc::Sender<pb::AgentMessage>,
    inbox: Streaming<pb::DispatchMessage>,
    /// Messages read while looking for something else, handed out first.
    held: VecDeque<Incoming>,
}

impl AgentSession {
    /// Opens the session with the person's token and waits for the
    /// welcome; fails if refused.
    pub async fn open(client: &mut AgentServiceClient<Channel>, agent_id: &str, token: &str) -> anyhow::Result<AgentSession> {
        AgentSession::try_open(client, agent_id, token)
            .await
            .map_err(|status| anyhow::anyhow!("session for {agent_id} refused: {status:?}"))
    }

    /// Opens the session. A refusal is returned as the status, whether it
    /// came as the status of the call or as the stream's first item; a first
    /// message that is not the welcome becomes an `internal` status.
    pub async fn try_open(client: &mut AgentServiceClient<Channel>, agent_id: &str, token: &str) -> Result<AgentSession, Status> {
        let (outbox, requests) = mpsc::channel(OUTBOX);
        let hello = pb::AgentMessage {
            body: Some(Outgoing::Hello(pb::Hello { agent_id: agent_id.to_string(), token: token.to_string() })),
        };
        outbox.try_send(hello).map_err(|_| Status::internal("test fixture: cannot queue hello"))?;
        let mut inbox = client.session(ReceiverStream::new(requests)).await?.into_inner();
        let first = tokio::time::timeout(WELCOME_WITHIN, inbox.message())
            .await
            .map_err(|_| Status::internal(format!("test fixture: no welcome for {agent_id} within {WELCOME_WITHIN:?}")))??;
        let welcome = match first.and_then(|message| message.body) {
            Some(Incoming::Welcome(welcome)) => welcome,
            other => {
                return Err(Status::internal(format!("test fixture: the first message was not a welcome but {other:?}")));
            }
        };
        Ok(AgentSession { agent_id: agent_id.to_string(), welcome, outbox, inbox, held: VecDeque::new() })
    }

    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    pub fn welcome(&self) -> &pb::Welcome {
        &self.welcome
    }

    pub async fn send(&self, body: Outgoing) -> anyhow::Result<()> {
        self.outbox
            .send(pb::AgentMessage { body: Some(body) })
            .await
            .with_context(|| format!("the session of {} is closed", self.agent_id))
    }

    pub async fn send_location(&self, lon: f64, lat: f64) -> anyhow::Result<()> {
        self.send(Outgoing::Location(pb::Location::wgs84(lon, lat))).await
    }

    pub async fn set_status(&self, status: pb::AgentStatus) -> anyhow::Result<()> {
        self.send(Outgoing::Status(status as i32)).await
    }

    pub async fn accept(&self, offer_id: &str) -> anyhow::Result<()> {
        self.send(Outgoing::Accept(pb::Accept { offer_id: offer_id.to_string() })).await
    }

    pub async fn decline(&self, offer_id: &str, reason: &str) -> anyhow::Result<()> {
        self.send(Outgoing::Decline(pb::Decline { offer_id: offer_id.to_string(), reason: reason.to_string() })).await
    }

    pub async fn complete(&self, incident_id: &str, feedback: &str) -> anyhow::Result<()> {
        self.send(Outgoing::Completed(pb::Completed {
            incident_id: incident_id.to_string(),
            feedback: feedback.to_string(),
            photo_refs: Vec::new(),
        }))
        .await
    }

    /// The next message from the dispatcher; fails if none arrives within
    /// `within` or the stream ends.
    pub async fn next_message_within(&mut self, within: Duration) -> anyhow::Result<Incoming> {
        if let Some(held) = self.held.pop_front() {
            return Ok(held);
        }
        let agent_id = &self.agent_id;
        let message = tokio::time::timeout(within, self.inbox.message())
            .await
            .map_err(|_| anyhow::anyhow!("{agent_id} received no message within {within:?}"))?
            .with_context(|| format!("the session of {agent_id} ended with an error"))?
            .with_context(|| format!("the session of {agent_id} ended"))?;
        message.body.with_context(|| format!("{agent_id} received a message with no body"))
    }

    /// The next message, which must be an offer.
    pub async fn expect_offer_within(&mut self, within: Duration) -> anyhow::Result<pb::Offer> {
        match self.next_message_within(within).await? {
            Incoming::Offer(offer) => Ok(offer),
            other => anyhow::bail!("{} expected an offer but received {other:?}", self.agent_id),
        }
    }

    /// The next refusal, skipping other messages (a session the dispatcher
    /// ends gets one saying why).
    pub async fn expect_refusal_within(&mut self, within: Duration) -> anyhow::Result<pb::Refused> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Incoming::Refused(refused) = self.next_message_within(left).await? {
                return Ok(refused);
            }
        }
    }

    /// Waits for the dispatcher to end the stream.
    pub async fn expect_end_within(&mut self, within: Duration) -> anyhow::Result<()> {
        let agent_id = &self.agent_id;
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = tokio::time::timeout(left, self.inbox.message())
                .await
                .map_err(|_| anyhow::anyhow!("the session of {agent_id} did not end within {within:?}"))?;
            match message {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return Ok(()),
            }
        }
    }

    /// The next message, which must confirm an assignment (after an accept).
    pub async fn expect_assignment_confirmed_within(&mut self, within: Duration) -> anyhow::Result<()> {
        match self.next_message_within(within).await? {
            Incoming::AssignmentConfirmed(_) => Ok(()),
            other => anyhow::bail!("{} expected assignment_confirmed but received {other:?}", self.agent_id),
        }
    }

    /// Fails if an offer arrives within `window`; other messages are kept for
    /// later reads.
    pub async fn expect_no_offer_for(&mut self, window: Duration) -> anyhow::Result<()> {
        if let Some(offer) = self.held.iter().find(|held| matches!(held, Incoming::Offer(_))) {
            anyhow::bail!("{} expected no offer but holds {offer:?}", self.agent_id);
        }
        let deadline = Instant::now() + window;
        let mut others = Vec::new();
        let result = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Ok(());
            }
            match tokio::time::timeout(left, self.inbox.message()).await {
                Err(_) => break Ok(()),
                Ok(Ok(Some(pb::DispatchMessage { body: Some(Incoming::Offer(offer)) }))) => {
                    break Err(anyhow::anyhow!("{} expected no offer but received {offer:?}", self.agent_id));
                }
                Ok(Ok(Some(pb::DispatchMessage { body: Some(other) }))) => others.push(other),
                Ok(Ok(Some(pb::DispatchMessage { body: None }))) => {}
                Ok(Ok(None)) => break Ok(()),
                Ok(Err(status)) => {
                    break Err(anyhow::anyhow!("the session of {} ended with {status:?}", self.agent_id));
                }
            }
        };
        self.held.extend(others);
        result
    }

    /// Fails if any message arrives within `window`.
    pub async fn expect_silence_for(&mut self, window: Duration) -> anyhow::Result<()> {
        if let Some(held) = self.held.front() {
            anyhow::bail!("{} expected no message but holds {held:?}", self.agent_id);
        }
        match tokio::time::timeout(window, self.inbox.message()).await {
            Err(_) => Ok(()),
            Ok(message) => anyhow::bail!("{} expected no message but received {message:?}", self.agent_id),
        }
    }

    /// Ends the session from the person's side, as a closed app would.
    pub fn disconnect(self) {
        drop(self);
    }
}
