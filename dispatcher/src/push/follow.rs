//! Pushes offers, call-ups and operators' messages to the people they name
//! as they are journaled, until serving ends. Best effort: a notice that
//! cannot be queued (a burst past [`QUEUE`]) or sent is logged and
//! dropped; the person still gets it in the app. The escalation ladder
//! (SMS, voice) is what makes sure a person is reached.

use std::sync::Arc;

use pingji_engine::event::EventKind;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, warn};

use super::notice::PushNotice;
use super::sender::Pusher;
use crate::convert;
use crate::runtime::Dispatcher;

/// Notices waiting to be sent; past it new ones are dropped.
const QUEUE: usize = 10_000;
/// Notices being sent at once.
const CONCURRENT: usize = 32;
/// How long a stop waits for the pushes under way before dropping them.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The following task; dropping it stops it.
pub struct Following {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Following {
    /// Stops following and waits a little for the pushes under way (a
    /// push service that does not answer must not hold a shutdown).
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let mut task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            task.abort();
            warn!("pushes still under way at shutdown were dropped");
        }
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts pushing what `dispatcher` journals with `pusher`.
pub fn follow(dispatcher: Dispatcher, pusher: Arc<Pusher>) -> Following {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run(dispatcher, pusher, stopped));
    Following { stop, task }
}

async fn run(dispatcher: Dispatcher, pusher: Arc<Pusher>, mut stopped: watch::Receiver<bool>) {
    let mut events = dispatcher.subscribe();
    let (queue, mut queued) = mpsc::channel::<(String, PushNotice)>(QUEUE);
    let mut sending = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            received = events.recv() => {
                let event = match received {
                    Ok(event) => event,
                    Err(RecvError::Lagged(skipped)) => {
                        warn!(skipped, "push fell behind the events; those notices are not pushed");
                        continue;
                    }
                    Err(RecvError::Closed) => break,
                };
                // Only people with a subscription: a call-up of a city names
                // hundreds of thousands, most of whom have none.
                let mut dropped = 0_usize;
                for (person, notice) in notices(&dispatcher, &event).await {
                    if pusher.reaches(&person) && queue.try_send((person, notice)).is_err() {
                        dropped += 1;
                    }
                }
                if dropped > 0 {
                    warn!(dropped, kind = %event.kind, "the push queue is full; these notices are not pushed");
                }
            }
            Some((person, notice)) = queued.recv(), if sending.len() < CONCURRENT => {
                let pusher = pusher.clone();
                sending.spawn(async move {
                    if let Err(error) = pusher.send(&person, &notice).await {
                        debug!(agent_id = %person, %error, "push not delivered");
                    }
                });
            }
            Some(_) = sending.join_next(), if !sending.is_empty() => {}
        }
    }
    while sending.join_next().await.is_some() {}
}

/// The notices an event makes, by person.
async fn notices(dispatcher: &Dispatcher, event: &pingji_proto::v1::Event) -> Vec<(String, PushNotice)> {
    if !matches!(event.kind.as_str(), "offer_sent" | "callup_issued" | "message_sent") {
        return Vec::new();
    }
    let event = match convert::event::event_from_pb(event) {
        Ok(event) => event,
        Err(error) => {
            debug!(%error, "push cannot read an event");
            return Vec::new();
        }
    };
    match event.kind {
        EventKind::OfferSent { offer } => {
            let incident = offer.incident.clone();
            let category = dispatcher
                .query(move |engine, _| engine.incident(&incident).map(|incident| incident.spec.category.clone()))
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            let notice = PushNotice::offer(&offer.id.to_string(), &offer.incident.to_string(), &category, offer.deadline.0);
            vec![(offer.agent.to_string(), notice)]
        }
        EventKind::CallupIssued { callup, reason, deadline, people, .. } => {
            let notice = PushNotice::callup(&callup.to_string(), &reason, deadline.0);
            people.into_iter().map(|person| (person.to_string(), notice.clone())).collect()
        }
        EventKind::MessageSent { message, text, recipients, .. } => {
            let notice = PushNotice::message(&message, &text);
            recipients.into_iter().map(|person| (person.to_string(), notice.clone())).collect()
        }
        _ => Vec::new(),
    }
}
