//! People's session queues: the messages waiting to go out to each
//! person's app, bounded so that apps that stop reading cannot grow the
//! dispatcher.
//!
//! A queue holds at most [`QueueLimits::messages`] messages and
//! [`QueueLimits::bytes`] bytes (encoded); all queues together hold about
//! [`QueueLimits::total_bytes`]. A session whose queue is full, or whose
//! oldest message has waited [`QueueLimits::stuck_after`] without the app
//! taking anything, is stuck: its queue is emptied at once (the memory goes
//! back), its stream ends with `resource_exhausted` / `SESSION_STUCK` for
//! an app that reads again, the session is closed, and when the person
//! comes back their new session is told why (a `Refused` right after the
//! welcome).
//!
//! Three handles share one queue: the runtime's [`Outbox`] (dropping it
//! ends the stream once what is queued has gone out), the session task's
//! [`Notices`] (refusals, and [`Notices::stuck`] to learn the session is
//! stuck), and the [`OutboxStream`] tonic sends from. The stream hands out
//! one message per poll and then yields, so that tonic writes each message
//! on its own: when the app stops reading, one message (not 32 KiB of
//! them) waits in the HTTP/2 layers, and everything else waits here, where
//! it is counted and can be dropped.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use pingji_engine::ids::AgentId;
use pingji_proto::v1 as pb;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prost::Message;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_stream::Stream;
use tracing::warn;

/// Messages queued to one session at most.
pub const SESSION_QUEUE_MESSAGES: usize = 256;
/// How long, over the total, a session may leave its oldest message
/// untaken before it counts as stuck: long enough for an app that keeps
/// up to take a burst (a city-wide mode switch), far shorter than
/// `stuck_after`.
const OVER_TOTAL_GRACE: Duration = Duration::from_secs(1);
/// People whose last session was closed as stuck, remembered at most (to
/// tell them why when they come back); forgotten all at once when full.
const REMEMBERED_STUCK: usize = 100_000;

/// How much may wait for people's apps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// Messages queued to one session at most.
    pub messages: usize,
    /// Bytes (encoded) queued to one session at most; a message larger
    /// than this still goes to a session with nothing waiting.
    pub bytes: usize,
    /// Bytes queued to all sessions together: over it, a session whose
    /// oldest message has waited more than a second is stuck.
    pub total_bytes: usize,
    /// How long a session's oldest message may wait before it is stuck.
    pub stuck_after: Duration,
}

/// Why a session counts as stuck.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stuck {
    /// Its queue holds the most messages allowed.
    Messages,
    /// Its queue holds the most bytes allowed.
    Bytes,
    /// All queues together hold more than allowed, and it is behind.
    Total,
    /// Its oldest message has waited `stuck_after`.
    NotReading,
}

impl Stuck {
    /// The metric's cause label.
    fn cause(self) -> &'static str {
        match self {
            Stuck::Messages | Stuck::Bytes | Stuck::Total => "queue_full",
            Stuck::NotReading => "not_reading",
        }
    }

    /// What happened, for the person.
    fn words(self, limits: &QueueLimits) -> String {
        match self {
            Stuck::Messages => format!("{} messages were waiting for it", limits.messages),
            Stuck::Bytes => format!("{} KiB of messages were waiting for it", limits.bytes / 1024),
            Stuck::Total => "it fell behind while the dispatcher had many messages waiting".to_string(),
            Stuck::NotReading => format!("it took no message for {} s", limits.stuck_after.as_secs()),
        }
    }
}

/// Why a message was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The session has ended (closed, stuck before, or its app went away).
    Closed,
    /// The session is stuck now (and its queue emptied).
    Stuck(Stuck),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed => f.write_str("the session has ended"),
            SendError::Stuck(stuck) => write!(f, "the session stopped taking messages ({})", stuck.cause()),
        }
    }
}

/// What the queues count: registered by [`crate::metrics::Metrics`] (the
/// queues do not know who reads them); a set made on its own counts for
/// nobody.
#[derive(Clone, Debug, Default)]
pub struct SessionQueueMetrics {
    pub(crate) queued_bytes: Gauge,
    pub(crate) stuck: Family<CauseLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CauseLabel {
    cause: &'static str,
}

impl SessionQueueMetrics {
    /// Bytes queued (positive) or taken (negative), all sessions together.
    fn add_queued_bytes(&self, bytes: i64) {
        self.queued_bytes.inc_by(bytes);
    }

    /// A session closed because its app stopped taking messages, and why.
    fn stuck(&self, cause: &'static str) {
        self.stuck.get_or_create(&CauseLabel { cause }).inc();
    }
}

/// The session queues of one dispatcher. A cheap clone.
#[derive(Clone)]
pub struct SessionQueues {
    shared: Arc<Shared>,
}

struct Shared {
    limits: QueueLimits,
    /// Bytes queued, all sessions together.
    total_bytes: AtomicUsize,
    metrics: SessionQueueMetrics,
    /// Whose last session was stuck, when and why.
    stuck: Mutex<HashMap<AgentId, (SystemTime, Stuck)>>,
}

impl fmt::Debug for SessionQueues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionQueues")
            .field("limits", &self.shared.limits)
            .field("total_bytes", &self.shared.total_bytes.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl SessionQueues {
    pub fn new(limits: QueueLimits, metrics: SessionQueueMetrics) -> Self {
        SessionQueues {
            shared: Arc::new(Shared { limits, total_bytes: AtomicUsize::new(0), metrics, stuck: Mutex::new(HashMap::new()) }),
        }
    }

    /// A new session's queue for `agent`.
    pub fn open(&self, agent: AgentId) -> (Outbox, Notices, OutboxStream) {
        let queue = Arc::new(Queue {
            shared: self.shared.clone(),
            agent,
            state: Mutex::new(State {
                messages: VecDeque::new(),
                bytes: 0,
                waiting_since: None,
                ended: Ended::No,
                reader: None,
                just_taken: false,
            }),
            waiting: Notify::new(),
        });
        (Outbox(queue.clone()), Notices(queue.clone()), OutboxStream(queue))
    }

    /// Why `agent`'s last session was closed as stuck, as the message that
    /// tells them (once): `None` when it was not.
    pub fn why_last_was_stuck(&self, agent: &AgentId) -> Option<pb::DispatchMessage> {
        let (when, stuck) = self.shared.stuck.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(agent)?;
        let ago = SystemTime::now().duration_since(when).unwrap_or_default().as_secs();
        let message = format!(
            "your last session was closed {ago} s ago because it stopped taking the dispatcher's messages ({}); \
             offers sent to it were withdrawn and made to others. If this happens again, check the phone's \
             connection and that the app stays open",
            stuck.words(&self.shared.limits)
        );
        let refused = pb::Refused {
            code: "resource_exhausted".to_string(),
            message,
            offer_id: String::new(),
            incident_id: String::new(),
            reason: pb::ErrorReason::SessionStuck as i32,
        };
        Some(pb::DispatchMessage { body: Some(pb::dispatch_message::Body::Refused(refused)) })
    }

    /// Bytes queued now, all sessions together.
    pub fn total_bytes(&self) -> usize {
        self.shared.total_bytes.load(Ordering::Relaxed)
    }
}

struct Queue {
    shared: Arc<Shared>,
    agent: AgentId,
    state: Mutex<State>,
    /// Told when a message starts to wait (the queue was empty) and when
    /// the session is stuck.
    waiting: Notify,
}

struct State {
    messages: VecDeque<(pb::DispatchMessage, usize)>,
    /// Bytes of `messages`.
    bytes: usize,
    /// Since when the oldest message has waited: when it was queued, or
    /// when the message before it was taken.
    waiting_since: Option<Instant>,
    ended: Ended,
    /// The stream's task, to wake when a message comes or the queue ends.
    reader: Option<Waker>,
    /// The stream handed out a message on its last poll.
    just_taken: bool,
}

#[derive(Debug, PartialEq)]
enum Ended {
    No,
    /// The runtime dropped its [`Outbox`]: the stream ends once what is
    /// queued has gone out.
    Closed,
    /// Stuck: the stream ends now, with `stuck_told` false until it has
    /// said so.
    Stuck {
        stuck: Stuck,
        told: bool,
    },
    /// The stream was dropped (the app went away).
    StreamGone,
}

impl Queue {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `message`, or finds the session stuck (then empties it).
    fn send(&self, message: pb::DispatchMessage) -> Result<(), SendError> {
        let size = message.encoded_len();
        let limits = &self.shared.limits;
        let mut state = self.state();
        if state.ended != Ended::No {
            return Err(SendError::Closed);
        }
        if let Some(since) = state.waiting_since {
            let over = if state.messages.len() >= limits.messages {
                Some(Stuck::Messages)
            } else if state.bytes + size > limits.bytes {
                Some(Stuck::Bytes)
            } else if self.shared.total_bytes.load(Ordering::Relaxed) + size > limits.total_bytes
                && since.elapsed() >= OVER_TOTAL_GRACE
            {
                Some(Stuck::Total)
            } else {
                None
            };
            if let Some(stuck) = over {
                self.stuck(&mut state, stuck);
                return Err(SendError::Stuck(stuck));
            }
        }
        if state.messages.is_empty() {
            state.waiting_since = Some(Instant::now());
            self.waiting.notify_one();
        }
        state.messages.push_back((message, size));
        state.bytes += size;
        self.shared.total_bytes.fetch_add(size, Ordering::Relaxed);
        self.shared.metrics.add_queued_bytes(size as i64);
        if let Some(reader) = state.reader.take() {
            reader.wake();
        }
        Ok(())
    }

    /// Drops what is queued and gives its bytes back.
    fn clear(&self, state: &mut State) {
        state.messages.clear();
        self.shared.total_bytes.fetch_sub(state.bytes, Ordering::Relaxed);
        self.shared.metrics.add_queued_bytes(-(state.bytes as i64));
        state.bytes = 0;
        state.waiting_since = None;
    }

    fn stuck(&self, state: &mut State, stuck: Stuck) {
        warn!(
            agent_id = %self.agent,
            cause = stuck.cause(),
            messages = state.messages.len(),
            bytes = state.bytes,
            "session stopped taking messages; closing it"
        );
        self.clear(state);
        state.ended = Ended::Stuck { stuck, told: false };
        self.shared.metrics.stuck(stuck.cause());
        let mut remembered = self.shared.stuck.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if remembered.len() >= REMEMBERED_STUCK {
            remembered.clear();
        }
        remembered.insert(self.agent.clone(), (SystemTime::now(), stuck));
        drop(remembered);
        if let Some(reader) = state.reader.take() {
            reader.wake();
        }
        self.waiting.notify_one();
    }

    fn end(&self, ended: Ended) {
        let mut state = self.state();
        // Nobody will take what is queued once the stream is gone, whatever
        // ended the session first.
        if ended == Ended::StreamGone {
            self.clear(&mut state);
        }
        if state.ended == Ended::No {
            state.ended = ended;
        }
        if let Some(reader) = state.reader.take() {
            reader.wake();
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // The last handle is gone: give back whatever is still counted.
        let state = self.state.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.shared.total_bytes.fetch_sub(state.bytes, Ordering::Relaxed);
        self.shared.metrics.add_queued_bytes(-(state.bytes as i64));
    }
}

/// The runtime's end of a session's queue. Dropping it closes the session's
/// stream once what is queued has gone out.
pub struct Outbox(Arc<Queue>);

impl Outbox {
    /// Queues `message`. A session found stuck now is emptied and its
    /// stream ended ([`SendError::Stuck`]): close the session.
    pub fn try_send(&self, message: pb::DispatchMessage) -> Result<(), SendError> {
        self.0.send(message)
    }

    /// Whether the session's stream has ended or is ending (stuck, or its
    /// app went away).
    pub fn is_closed(&self) -> bool {
        self.0.state().ended != Ended::No
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.0.end(Ended::Closed);
    }
}

/// The session task's end of the queue: refusals, and learning that the
/// session is stuck. It does not keep the stream open.
pub struct Notices(Arc<Queue>);

impl Notices {
    /// Queues `message` unless the session has ended. A full queue makes
    /// the session stuck, as with [`Outbox::try_send`].
    pub fn send(&self, message: pb::DispatchMessage) {
        let _ = self.0.send(message);
    }

    /// Resolves once the session is stuck: found so while queueing, or its
    /// oldest message has waited `stuck_after` (then it is made stuck
    /// here). Never resolves for a session that ends otherwise.
    pub async fn stuck(&self) {
        let stuck_after = self.0.shared.limits.stuck_after;
        loop {
            // Asked for before the state is read: a message queued in
            // between leaves a permit, so it is not missed.
            let waiting = self.0.waiting.notified();
            let since = {
                let state = self.0.state();
                match state.ended {
                    Ended::Stuck { .. } => return,
                    Ended::Closed | Ended::StreamGone => None,
                    Ended::No => Some(state.waiting_since),
                }
            };
            match since {
                None => std::future::pending::<()>().await,
                Some(None) => waiting.await,
                Some(Some(since)) => {
                    tokio::time::sleep_until(since + stuck_after).await;
                    let mut state = self.0.state();
                    if state.ended == Ended::No && state.waiting_since == Some(since) {
                        self.0.stuck(&mut state, Stuck::NotReading);
                        return;
                    }
                }
            }
        }
    }
}

/// What the session's stream sends, message by message; ends with
/// `Err(stuck)` when the session is stuck (for an app that reads again).
pub struct OutboxStream(Arc<Queue>);

impl Stream for OutboxStream {
    type Item = Result<pb::DispatchMessage, Stuck>;

    fn poll_next(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let queue = &self.0;
        let mut state = queue.state();
        // One message per write: after handing one out, yield once, so that
        // tonic sends it before it asks for the next.
        if std::mem::take(&mut state.just_taken) && !state.messages.is_empty() {
            context.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Some((message, size)) = state.messages.pop_front() {
            state.bytes -= size;
            queue.shared.total_bytes.fetch_sub(size, Ordering::Relaxed);
            queue.shared.metrics.add_queued_bytes(-(size as i64));
            state.waiting_since = (!state.messages.is_empty()).then(Instant::now);
            state.just_taken = true;
            return Poll::Ready(Some(Ok(message)));
        }
        match &mut state.ended {
            Ended::No => {
                state.reader = Some(context.waker().clone());
                Poll::Pending
            }
            Ended::Stuck { stuck, told } if !*told => {
                *told = true;
                Poll::Ready(Some(Err(*stuck)))
            }
            Ended::Stuck { .. } | Ended::Closed | Ended::StreamGone => Poll::Ready(None),
        }
    }
}

impl Drop for OutboxStream {
    fn drop(&mut self) {
        self.0.end(Ended::StreamGone);
    }
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt;

    use super::*;

    fn limits() -> QueueLimits {
        QueueLimits { messages: 4, bytes: 10_000, total_bytes: 25_000, stuck_after: Duration::from_secs(30) }
    }

    fn queues() -> SessionQueues {
        SessionQueues::new(limits(), SessionQueueMetrics::default())
    }

    /// A mode change whose reason makes it about `bytes` long.
    fn message(bytes: usize) -> pb::DispatchMessage {
        let changed = pb::ModeChanged { reason: "x".repeat(bytes), ..pb::ModeChanged::default() };
        pb::DispatchMessage { body: Some(pb::dispatch_message::Body::ModeChanged(changed)) }
    }

    #[tokio::test]
    async fn a_queue_is_bounded_in_bytes_and_a_stuck_session_gives_its_memory_back() {
        let queues = queues();
        let (outbox, _notices, mut stream) = queues.open(AgentId::new("p1"));
        assert_eq!(outbox.try_send(message(4_000)), Ok(()));
        assert_eq!(outbox.try_send(message(4_000)), Ok(()));
        assert!(queues.total_bytes() > 8_000);
        assert_eq!(outbox.try_send(message(4_000)), Err(SendError::Stuck(Stuck::Bytes)));
        assert_eq!(queues.total_bytes(), 0, "a stuck session's queue is emptied");
        assert!(outbox.is_closed());
        assert_eq!(outbox.try_send(message(10)), Err(SendError::Closed));
        // An app that reads again learns why, and the stream ends.
        assert_eq!(stream.next().await, Some(Err(Stuck::Bytes)));
        assert_eq!(stream.next().await, None);
        let told = queues.why_last_was_stuck(&AgentId::new("p1")).expect("remembered");
        let Some(pb::dispatch_message::Body::Refused(refused)) = told.body else { panic!("not a refusal: {told:?}") };
        assert_eq!(refused.reason, pb::ErrorReason::SessionStuck as i32);
        assert!(refused.message.contains("9 KiB of messages were waiting"), "{}", refused.message);
        assert!(queues.why_last_was_stuck(&AgentId::new("p1")).is_none(), "told once");
    }

    #[tokio::test]
    async fn a_message_larger_than_the_limit_goes_to_a_session_with_nothing_waiting_and_the_count_is_bounded() {
        let queues = queues();
        let (outbox, _notices, mut stream) = queues.open(AgentId::new("p1"));
        assert_eq!(outbox.try_send(message(20_000)), Ok(()));
        assert!(stream.next().await.is_some_and(|taken| taken.is_ok()));
        for _ in 0..4 {
            assert_eq!(outbox.try_send(message(10)), Ok(()));
        }
        assert_eq!(outbox.try_send(message(10)), Err(SendError::Stuck(Stuck::Messages)));
    }

    #[tokio::test(start_paused = true)]
    async fn over_the_total_only_sessions_that_are_behind_are_stuck() {
        let queues = queues();
        let (slow, _slow_notices, _slow_stream) = queues.open(AgentId::new("slow"));
        let (quick, _quick_notices, mut quick_stream) = queues.open(AgentId::new("quick"));
        let (other, _other_notices, _other_stream) = queues.open(AgentId::new("other"));
        assert_eq!(slow.try_send(message(9_000)), Ok(()));
        assert_eq!(other.try_send(message(9_000)), Ok(()));
        assert_eq!(quick.try_send(message(6_000)), Ok(()));
        // Over the total, but nobody has been behind for a second: queued.
        assert_eq!(quick.try_send(message(1_000)), Ok(()));
        assert!(queues.total_bytes() > 25_000);
        tokio::time::advance(Duration::from_secs(2)).await;
        // The quick app took its messages meanwhile: it is not behind.
        assert!(quick_stream.next().await.is_some());
        assert!(quick_stream.next().await.is_some());
        assert_eq!(quick.try_send(message(9_000)), Ok(()));
        assert_eq!(slow.try_send(message(100)), Err(SendError::Stuck(Stuck::Total)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_whose_oldest_message_waits_too_long_is_stuck() {
        let queues = queues();
        let (outbox, notices, mut stream) = queues.open(AgentId::new("p1"));
        let mut watching = tokio::spawn(async move {
            notices.stuck().await;
        });
        // Taken promptly, twice: not stuck.
        for _ in 0..2 {
            assert_eq!(outbox.try_send(message(100)), Ok(()));
            tokio::time::advance(Duration::from_secs(20)).await;
            assert!(stream.next().await.is_some());
            tokio::time::advance(Duration::from_secs(20)).await;
        }
        assert!(tokio::time::timeout(Duration::from_secs(1), &mut watching).await.is_err(), "stuck too soon");
        // Then nothing is taken.
        assert_eq!(outbox.try_send(message(100)), Ok(()));
        tokio::time::timeout(Duration::from_secs(31), &mut watching).await.expect("stuck after 30 s").expect("watcher");
        assert!(outbox.is_closed());
        assert_eq!(queues.total_bytes(), 0);
        assert_eq!(stream.next().await, Some(Err(Stuck::NotReading)));
    }

    #[tokio::test]
    async fn closing_ends_the_stream_after_what_is_queued_and_a_gone_app_gives_its_memory_back() {
        let queues = queues();
        let (outbox, _notices, mut stream) = queues.open(AgentId::new("p1"));
        assert_eq!(outbox.try_send(message(100)), Ok(()));
        drop(outbox);
        assert!(stream.next().await.is_some_and(|taken| taken.is_ok()));
        assert_eq!(stream.next().await, None);
        let (outbox, _notices, stream) = queues.open(AgentId::new("p2"));
        assert_eq!(outbox.try_send(message(100)), Ok(()));
        drop(stream);
        assert!(outbox.is_closed());
        assert_eq!(queues.total_bytes(), 0);
        assert!(queues.why_last_was_stuck(&AgentId::new("p2")).is_none());
        // Closed by the runtime with messages still queued, then the app goes.
        let (outbox, notices, stream) = queues.open(AgentId::new("p3"));
        assert_eq!(outbox.try_send(message(100)), Ok(()));
        drop(outbox);
        assert!(queues.total_bytes() > 0);
        drop(stream);
        assert_eq!(queues.total_bytes(), 0);
        drop(notices);
    }
}
