//! The event record as a stream that survives disconnects: `WatchEvents`
//! from a sequence number, opened again after a break (with
//! [`crate::backoff`], at whichever dispatcher owns the shard by then) from
//! the event after the last one seen, so nothing is missed or shown twice.

use std::time::Duration;

use pingji_proto::v1 as pb;
use tokio::time::Instant;
use tonic::{Status, Streaming};

use crate::backoff::{Backoff, BackoffPolicy};
use crate::connect::Connection;

/// What [`EventStream::next`] saw.
#[derive(Debug)]
pub enum Watched {
    /// The stream is open (again): events follow.
    Opened,
    /// The next event. Boxed: a typed event (an area import with its
    /// polygons) can be large.
    Event(Box<pb::Event>),
    /// The stream broke or could not be opened; the next call waits
    /// `retry_in` and tries again (attempt `attempt` since it was last up).
    Lost { reason: String, retry_in: Duration, attempt: u32 },
}

/// `WatchEvents` that resumes after a break.
pub struct EventStream {
    connection: Connection,
    /// The sequence number to ask for: 0 for only new events until one was
    /// seen, then the one after it.
    next_seq: u64,
    /// The open stream and when it was opened.
    open: Option<(Streaming<pb::Event>, Instant)>,
    backoff: Backoff,
    /// After a loss: when to try again.
    retry_at: Option<Instant>,
    /// Until an event was seen: open with the most recent this many events
    /// (`WatchEventsRequest.replay_last`) instead of only new ones.
    replay_last: u64,
}

impl EventStream {
    /// Events from `from_seq` (0: only new ones) over `connection`; nothing
    /// is asked until [`EventStream::next`].
    pub fn new(connection: Connection, from_seq: u64, policy: BackoffPolicy) -> EventStream {
        EventStream { connection, next_seq: from_seq, open: None, backoff: Backoff::new(policy), retry_at: None, replay_last: 0 }
    }

    /// Opens with the most recent `count` events (then new ones), when it
    /// starts from 0; after a break it resumes after the last event seen.
    pub fn with_recent(mut self, count: u64) -> EventStream {
        self.replay_last = count;
        self
    }

    /// Events from `from_seq` over `connection`, the stream opened now:
    /// a dispatcher that refuses it (or none reachable) is an error here,
    /// where [`EventStream::new`] would keep trying. Later breaks are
    /// resumed as with `new`; no [`Watched::Opened`] comes for this first
    /// opening.
    pub async fn opened(connection: Connection, from_seq: u64, policy: BackoffPolicy) -> Result<EventStream, Status> {
        let mut stream = EventStream::new(connection, from_seq, policy);
        stream.open().await?;
        Ok(stream)
    }

    /// The sequence number the stream resumes from after a break.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The next thing that happened: an event, the stream (re)opened, or
    /// lost. Never ends by itself; drop the stream to stop. Cancel-safe: a
    /// call dropped while waiting loses nothing.
    pub async fn next(&mut self) -> Watched {
        if let Some((stream, opened_at)) = &mut self.open {
            let reason = match stream.message().await {
                Ok(Some(event)) => {
                    self.next_seq = event.seq + 1;
                    return Watched::Event(Box::new(event));
                }
                Ok(None) => "the dispatcher ended the event stream".to_string(),
                Err(status) => self.connection.explain(&status),
            };
            let up_for = opened_at.elapsed();
            self.open = None;
            return self.lost(reason, up_for);
        }
        if let Err(reason) = self.connection.reconnect_when_due(&mut self.retry_at).await {
            return self.lost(reason, Duration::ZERO);
        }
        match self.open().await {
            Ok(()) => Watched::Opened,
            Err(status) => {
                let reason = self.connection.explain(&status);
                self.lost(reason, Duration::ZERO)
            }
        }
    }

    /// Asks for the events from `next_seq`, at the owner.
    async fn open(&mut self) -> Result<(), Status> {
        let from_seq = self.next_seq;
        let replay_last = if from_seq == 0 { self.replay_last } else { 0 };
        let response = self
            .connection
            .call(|connection| {
                let mut commands = connection.commands();
                async move { commands.watch_events(pb::WatchEventsRequest { from_seq, replay_last }).await }
            })
            .await?;
        self.open = Some((response.into_inner(), Instant::now()));
        Ok(())
    }

    fn lost(&mut self, reason: String, up_for: Duration) -> Watched {
        let retry_in = self.backoff.retry_in(up_for);
        self.retry_at = Some(Instant::now() + retry_in);
        Watched::Lost { reason, retry_in, attempt: self.backoff.failures() }
    }
}
