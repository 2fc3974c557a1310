//! One observer of the journaled events, while a dispatcher serves: it feeds
//! the metrics ([`crate::metrics`]) and the incident and offer spans
//! ([`crate::lifecycle`]) from the event broadcast, so that neither the
//! engine nor the runtime carries counters or long-lived spans.
//!
//! When it falls behind the broadcast it reads the events it missed from the
//! journal, so that no count is lost.

use std::sync::Arc;

use pingji_proto::v1 as pb;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::convert;
use crate::lifecycle::Lifecycle;
use crate::metrics::{Metrics, Pending};
use crate::runtime::Dispatcher;
use pingji_engine::event::Event;

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

/// Observes a serving dispatcher until stopped, or dropped (when serving
/// ends with an error).
pub struct Observing {
    metrics: Option<Arc<Metrics>>,
    dispatcher: Dispatcher,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Observing {
    /// Once the runtime has stopped: counts the last events, closes the
    /// spans of incidents still open (`outcome = "open_at_stop"`, so that an
    /// exporter sends them before the process exits) and waits for that.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        if let Err(error) = task.await {
            debug!(%error, "the observer did not stop cleanly");
        }
    }
}

impl Drop for Observing {
    fn drop(&mut self) {
        // The observer only reads; stopping it anywhere loses nothing durable.
        self.task.abort();
        if let Some(metrics) = &self.metrics {
            metrics.detach(&self.dispatcher);
        }
    }
}

/// Starts observing `dispatcher`.
pub fn start(dispatcher: Dispatcher, metrics: Option<Arc<Metrics>>) -> Observing {
    if let Some(metrics) = &metrics {
        metrics.attach(dispatcher.clone());
    }
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(observe(dispatcher.clone(), metrics.clone(), stopped));
    Observing { metrics, dispatcher, stop, task }
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
        match convert::event::event_from_pb(event) {
            Ok(event) => self.on_event(&event),
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

async fn observe(dispatcher: Dispatcher, metrics: Option<Arc<Metrics>>, mut stopped: watch::Receiver<bool>) {
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
    let mut stopping = false;
    loop {
        let received = if stopping {
            // The runtime has stopped: what it broadcast is all there is.
            match events.try_recv() {
                Ok(event) => Ok(event),
                Err(TryRecvError::Lagged(skipped)) => Err(RecvError::Lagged(skipped)),
                Err(TryRecvError::Empty | TryRecvError::Closed) => {
                    if let Some(from) = missed_from.take() {
                        observer.catch_up(&dispatcher, from, u64::MAX).await;
                    }
                    observer.lifecycle.end_all("open_at_stop");
                    return;
                }
            }
        } else {
            tokio::select! {
                received = events.recv() => received,
                // Set only to stop (or dropped with the handle): either way, stop.
                _changed = stopped.changed() => {
                    stopping = true;
                    continue;
                }
            }
        };
        let event = match received {
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
