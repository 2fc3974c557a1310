//! One observer of the journaled events, while a dispatcher serves: it feeds
//! the metrics ([`crate::metrics`]) and the incident and offer spans
//! ([`crate::lifecycle`]) from the event broadcast, so that neither the
//! engine nor the runtime carries counters or long-lived spans.
//!
//! When it falls behind the broadcast it reads the events it missed from the
//! journal, so that no count is lost.

use std::sync::Arc;

use pingji_proto::v1 as pb;
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, warn};

use crate::convert;
use crate::event::{Event, EventKind};
use crate::ids::Millis;
use crate::lifecycle::Lifecycle;
use crate::metrics::{Metrics, Pending};
use crate::runtime::Dispatcher;

/// Events read from the journal at a time when the observer fell behind.
const CATCH_UP_BATCH: usize = 1000;

/// Kinds whose body the observer reads; the others are only counted. (The
/// roster, map and plan imports are large and matter to neither.)
const READ_KINDS: &[&str] = &[
    "incident_reported",
    "field_reported",
    "offer_sent",
    "assigned",
    "offer_declined",
    "offer_timed_out",
    "offer_withdrawn",
    "widened",
    "no_candidates",
    "incident_staffed",
    "agent_arrived",
    "incident_cancelled",
    "incident_closed",
    "report_accepted",
    "report_merged",
    "report_rejected",
];

/// Observes a serving dispatcher until dropped (when serving ends).
pub struct Observing {
    metrics: Option<Arc<Metrics>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Observing {
    fn drop(&mut self) {
        // The observer only reads; stopping it anywhere loses nothing durable.
        self.task.abort();
        if let Some(metrics) = &self.metrics {
            metrics.detach();
        }
    }
}

/// Starts observing `dispatcher`.
pub fn start(dispatcher: Dispatcher, metrics: Option<Arc<Metrics>>) -> Observing {
    if let Some(metrics) = &metrics {
        metrics.attach(dispatcher.clone());
    }
    let task = tokio::spawn(observe(dispatcher, metrics.clone()));
    Observing { metrics, task }
}

struct Observer {
    metrics: Option<Arc<Metrics>>,
    pending: Pending,
    lifecycle: Lifecycle,
}

impl Observer {
    fn on_event(&mut self, event: &Event) {
        self.pending.last_seq = self.pending.last_seq.max(event.seq);
        if let Some(metrics) = &self.metrics {
            metrics.count(event, &mut self.pending);
        }
        self.lifecycle.on_event(event);
    }

    fn on_pb(&mut self, event: &pb::Event) {
        if let Some(metrics) = &self.metrics {
            metrics.count_kind(&event.kind);
        }
        self.pending.last_seq = self.pending.last_seq.max(event.seq);
        if !READ_KINDS.contains(&event.kind.as_str()) {
            return;
        }
        match serde_json::from_str::<EventKind>(&event.json) {
            Ok(kind) => self.on_event(&Event { seq: event.seq, at: Millis(event.at_ms), actor: event.actor.clone(), kind }),
            Err(error) => debug!(seq = event.seq, %error, "observer cannot read an event"),
        }
    }

    /// Reads the journaled events from `from` up to (not including) `until`.
    async fn catch_up(&mut self, dispatcher: &Dispatcher, from: u64, until: u64) {
        let mut next = from;
        while next < until {
            let batch = match dispatcher.read_events(next, CATCH_UP_BATCH).await {
                Ok(batch) if !batch.is_empty() => batch,
                Ok(_) => return,
                Err(error) => {
                    warn!(%error, "the observer cannot read the events it missed; counts are short");
                    return;
                }
            };
            for stored in batch.iter().take_while(|stored| stored.seq < until) {
                next = stored.seq + 1;
                if let Some(metrics) = &self.metrics {
                    metrics.count_kind(&stored.kind);
                }
                if READ_KINDS.contains(&stored.kind.as_str())
                    && let Ok(event) = convert::event_from_stored(stored)
                {
                    self.on_event(&event);
                }
            }
            if batch.last().is_some_and(|stored| stored.seq >= until) {
                return;
            }
        }
    }
}

async fn observe(dispatcher: Dispatcher, metrics: Option<Arc<Metrics>>) {
    // Subscribe before reading the state, so that nothing falls in between;
    // events already in that state are skipped by their sequence number.
    let mut events = dispatcher.subscribe();
    let seeded = dispatcher.query(|engine, _| (Pending::of(engine), Lifecycle::of(engine))).await;
    let (pending, lifecycle) = match seeded {
        Ok(seeded) => seeded,
        Err(error) => {
            debug!(%error, "observer: the dispatcher is gone");
            return;
        }
    };
    let mut observer = Observer { metrics, pending, lifecycle };
    let mut missed_from = None;
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(skipped)) => {
                debug!(skipped, "the observer fell behind; reading from the journal");
                missed_from.get_or_insert(observer.pending.last_seq + 1);
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        if let Some(from) = missed_from.take() {
            observer.catch_up(&dispatcher, from, event.seq).await;
        }
        if event.seq <= observer.pending.last_seq {
            continue;
        }
        observer.on_pb(&event);
    }
}
