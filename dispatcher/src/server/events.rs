//! The event stream for `WatchEvents`: history from the journal first, then
//! live events, with no gap and no duplicate. A watcher that falls behind the
//! live broadcast catches up from the journal again. Each event is redacted
//! for the watcher's role on its way out, and the watcher's token is checked
//! again every [`RECHECK_EVERY`]: a rotation, revocation, expiry or removal
//! ends the stream.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use pingji_proto::v1 as pb;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tracing::debug;

use super::auth::{self, Caller};
use super::error;
use super::sharding::Sharding;
use crate::convert;
use crate::journal::StoredEvent;
use crate::runtime::Dispatcher;

const PAGE: usize = 1000;
const STREAM_QUEUE: usize = 256;
/// How often an open stream checks that its watcher's token still works.
pub const RECHECK_EVERY: Duration = Duration::from_secs(2);

/// Who watches: their role decides what is redacted, their token how long
/// the stream lasts.
pub struct Watcher {
    pub caller: Caller,
    pub sharding: Option<Arc<Sharding>>,
}

/// Events from `from_seq` on; with `from_seq` 0, the last `replay_last`
/// events still kept first (none: only new events), then new ones.
pub async fn event_stream(
    dispatcher: Dispatcher,
    from_seq: u64,
    replay_last: u64,
    watcher: Watcher,
) -> Result<Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>, Status> {
    let disclosure = convert::event::Disclosure::for_role(watcher.caller.role);
    // Subscribe before reading history so nothing falls between the two.
    let mut live = dispatcher.subscribe();
    let from_seq = if from_seq == 0 && replay_last > 0 {
        let (first_kept, last) = dispatcher.kept_seqs().await?;
        (last + 1).saturating_sub(replay_last).max(first_kept).max(1)
    } else {
        from_seq
    };
    let mut closing = dispatcher.closing();
    let (sender, receiver) = mpsc::channel(STREAM_QUEUE);
    tokio::spawn(async move {
        // 0 means "only new events": skip history.
        let mut next = if from_seq == 0 { u64::MAX } else { from_seq };
        if next != u64::MAX && !catch_up(&dispatcher, &mut next, &sender, disclosure).await {
            return;
        }
        let mut recheck = tokio::time::interval(RECHECK_EVERY);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        recheck.tick().await;
        loop {
            let received = tokio::select! {
                received = live.recv() => received,
                _ = recheck.tick() => {
                    if let Err(refusal) = auth::still_holds(&dispatcher, watcher.sharding.as_deref(), &watcher.caller).await {
                        let _ = sender.send(Err(refusal)).await;
                        return;
                    }
                    continue;
                }
                () = async { let _ = closing.wait_for(|closing| *closing).await; } => {
                    let resume = if next == u64::MAX { "from_seq = 0".to_string() } else { format!("from_seq = {next}") };
                    let message = format!("the dispatcher is shutting down; reconnect and resume with {resume}");
                    let _ = sender.send(Err(error::retry_later(pb::ErrorReason::ShuttingDown, message))).await;
                    return;
                }
            };
            match received {
                Ok(event) => {
                    if next == u64::MAX {
                        next = event.seq;
                    }
                    if event.seq < next {
                        continue;
                    }
                    if event.seq > next && !catch_up(&dispatcher, &mut next, &sender, disclosure).await {
                        return;
                    }
                    if event.seq == next {
                        let mut event = (*event).clone();
                        convert::event::redact(&mut event, disclosure);
                        if sender.send(Ok(event)).await.is_err() {
                            return;
                        }
                        next += 1;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    debug!(missed, "event watcher fell behind; reading the journal");
                    if next != u64::MAX && !catch_up(&dispatcher, &mut next, &sender, disclosure).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(receiver)))
}

/// Sends journaled events from `next` on; false when the watcher is gone.
async fn catch_up(
    dispatcher: &Dispatcher,
    next: &mut u64,
    sender: &mpsc::Sender<Result<pb::Event, Status>>,
    disclosure: convert::event::Disclosure,
) -> bool {
    loop {
        let page = match dispatcher.read_events(*next, PAGE).await {
            Ok(page) => page,
            Err(error) => {
                let _ = sender.send(Err(error.into())).await;
                return false;
            }
        };
        if page.is_empty() {
            return true;
        }
        for stored in &page {
            let event = match redacted(stored, disclosure) {
                Ok(event) => event,
                Err(refusal) => {
                    let _ = sender.send(Err(refusal)).await;
                    return false;
                }
            };
            if sender.send(Ok(event)).await.is_err() {
                return false;
            }
            *next = stored.seq + 1;
        }
    }
}

/// A journaled event as a watcher with `disclosure` may see it.
pub fn redacted(stored: &StoredEvent, disclosure: convert::event::Disclosure) -> Result<pb::Event, Status> {
    let mut event = match convert::event_from_stored(stored) {
        Ok(event) => convert::event::event_to_pb(&event),
        Err(error) => {
            tracing::error!(seq = stored.seq, %error, "a journaled event cannot be read");
            return Err(error::internal(format!("event {} cannot be read from the journal", stored.seq)));
        }
    };
    convert::event::redact(&mut event, disclosure);
    Ok(event)
}
