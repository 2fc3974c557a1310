//! The `WatchEvents` stream, and reading an event's JSON.

use std::time::Duration;

use crate::auth::Commands;
use anyhow::Context;
use pingji_proto::v1 as pb;
use tokio::time::Instant;
use tonic::Streaming;

/// A `WatchEvents` stream that keeps every event it has read.
pub struct EventWatch {
    stream: Streaming<pb::Event>,
    seen: Vec<pb::Event>,
}

impl EventWatch {
    /// Watches from `from_seq` (1: the whole record; 0: only new events).
    /// When this returns, the dispatcher has subscribed the watcher.
    pub async fn start(command: &mut Commands, from_seq: u64) -> anyhow::Result<EventWatch> {
        let stream = command.watch_events(pb::WatchEventsRequest { from_seq, replay_last: 0 }).await?.into_inner();
        Ok(EventWatch { stream, seen: Vec::new() })
    }

    /// Every event read so far, in order.
    pub fn seen(&self) -> &[pb::Event] {
        &self.seen
    }

    pub async fn next_within(&mut self, within: Duration) -> anyhow::Result<pb::Event> {
        let event = tokio::time::timeout(within, self.stream.message())
            .await
            .map_err(|_| anyhow::anyhow!("no event within {within:?}; last seen: {:?}", self.seen.last().map(summary)))?
            .context("the event stream ended with an error")?
            .context("the event stream ended")?;
        self.seen.push(event.clone());
        Ok(event)
    }

    /// Reads until an event matches `predicate` and returns it; fails if none
    /// does within `within`.
    pub async fn wait_for(
        &mut self,
        within: Duration,
        what: &str,
        predicate: impl Fn(&pb::Event) -> bool,
    ) -> anyhow::Result<pb::Event> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = self.next_within(left).await.with_context(|| format!("waiting for {what}"))?;
            if predicate(&event) {
                return Ok(event);
            }
        }
    }

    /// An event already read that matches `predicate`, or else the next
    /// one that does: for events whose order between them is not fixed
    /// (two senders journaling at once).
    pub async fn seen_or_wait_for(
        &mut self,
        within: Duration,
        what: &str,
        predicate: impl Fn(&pb::Event) -> bool,
    ) -> anyhow::Result<pb::Event> {
        if let Some(event) = self.seen.iter().find(|event| predicate(event)) {
            return Ok(event.clone());
        }
        self.wait_for(within, what, predicate).await
    }

    /// Reads until an event of `kind` about `incident_id` arrives.
    pub async fn wait_for_kind(&mut self, within: Duration, kind: &str, incident_id: &str) -> anyhow::Result<pb::Event> {
        self.wait_for(within, &format!("{kind} on {incident_id}"), |event| event.kind == kind && event.incident_id == incident_id)
            .await
    }
}

/// The event's typed body; an error naming the event when it has none (a
/// kind this build of the proto does not know).
pub fn body(event: &pb::Event) -> anyhow::Result<&pb::event::Body> {
    event.body.as_ref().with_context(|| format!("event {} ({}) has no typed body", event.seq, event.kind))
}

/// The body of an event of one kind: `typed!(event, OfferDeclined)` is the
/// `pb::event::OfferDeclined`, or an error naming what came instead.
#[macro_export]
macro_rules! typed {
    ($event:expr, $kind:ident) => {
        match $crate::events::body(&$event)? {
            $crate::pb::event::Body::$kind(body) => body.clone(),
            other => anyhow::bail!("expected {}, got {other:?}", stringify!($kind)),
        }
    };
}

/// A one-line description of an event, for failure messages.
pub fn summary(event: &pb::Event) -> String {
    format!("#{} {} incident={} agent={} offer={}", event.seq, event.kind, event.incident_id, event.agent_id, event.offer_id)
}
