//! One subscriber's delivery task: reads the journal from the cursor,
//! keeps the events that match, posts them one at a time in seq order,
//! retries with backoff, gives up on one after `max_attempts` (a dead
//! letter) and goes on, and moves the durable cursor after each.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::body::Bytes;
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

use super::cloudevent::{CONTENT_TYPE, SIGNATURE_HEADER, TIMESTAMP_HEADER, WEBHOOK_HEADER, cloud_event};
use super::config::{PARTNER_KINDS, WebhookConfig};
use super::signing::signature;
use super::store::{DeadLetter, SharedStore, Subscriber};
use crate::journal::StoredEvent;
use crate::posting::{Poster, Target};
use crate::runtime::{DispatchError, Dispatcher};
use pingji_engine::Rejection;
use pingji_engine::ids::{AreaId, IncidentId};

const PAGE: usize = 256;

/// What a listing shows of a running delivery.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub next_seq: u64,
    pub failures: u32,
    pub last_error: String,
    pub dead_letters: u64,
}

pub struct Delivery {
    pub subscriber: Subscriber,
    pub dispatcher: Dispatcher,
    pub store: SharedStore,
    pub config: Arc<WebhookConfig>,
    pub progress: Arc<Mutex<Progress>>,
}

enum Outcome {
    Delivered,
    GaveUp(DeadLetter),
    Stopped,
}

/// Where an event happened, for the area filter: the areas it is in (an
/// incident's placement, an area and its parents) and, for an event about
/// an area, that area (it concerns the areas under it too).
struct Place {
    inside: Vec<AreaId>,
    about: Option<AreaId>,
}

impl Delivery {
    fn next_seq(&self) -> u64 {
        self.progress.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).next_seq
    }

    fn note(&self, change: impl FnOnce(&mut Progress)) {
        change(&mut self.progress.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    }

    /// Runs until `stop` turns true or the dispatcher stops.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let target = match Target::parse(&self.subscriber.url) {
            Ok(target) => target,
            Err(reason) => {
                warn!(webhook = %self.subscriber.id, %reason, "webhook not delivered");
                return;
            }
        };
        let mut poster = Poster::new(target);
        // Subscribed before reading, so no event falls between the two.
        let mut live = self.dispatcher.subscribe();
        let filter_chains = self.filter_chains().await;
        loop {
            if *stop.borrow() {
                return;
            }
            let next = self.next_seq();
            let page = match self.dispatcher.read_events(next, PAGE).await {
                Ok(page) => page,
                Err(DispatchError::Rejected(Rejection::FailedPrecondition(_))) => {
                    // Deleted for the retention limit before it was delivered.
                    if let Ok((first_kept, _)) = self.dispatcher.kept_seqs().await {
                        warn!(webhook = %self.subscriber.id, from = next, to = first_kept, "webhook events no longer kept; skipped");
                        self.advance(first_kept.max(next + 1)).await;
                    }
                    continue;
                }
                Err(error) => {
                    debug!(webhook = %self.subscriber.id, %error, "cannot read the journal; trying again");
                    if self.pause(&mut stop, self.config.retry_initial).await {
                        return;
                    }
                    continue;
                }
            };
            if page.is_empty() {
                if self.wait_for_event(&mut live, &mut stop, next).await {
                    return;
                }
                continue;
            }
            let Some(places) = self.places(&page).await else {
                // The engine did not answer (stopping, or busy): try the page again.
                if self.pause(&mut stop, self.config.retry_initial).await {
                    return;
                }
                continue;
            };
            for (stored, place) in page.iter().zip(places) {
                if !self.matches(stored, place.as_ref(), &filter_chains) {
                    continue;
                }
                match self.deliver(&mut poster, stored, &mut stop).await {
                    Outcome::Delivered => self.advance(stored.seq + 1).await,
                    Outcome::GaveUp(letter) => self.give_up(letter, stored.seq + 1).await,
                    Outcome::Stopped => return,
                }
            }
            // Events that did not match move the cursor once per page.
            if let Some(last) = page.last()
                && self.next_seq() <= last.seq
            {
                self.advance(last.seq + 1).await;
            }
        }
    }

    /// Waits for an event at or after `next`; true when stopping.
    async fn wait_for_event(
        &self,
        live: &mut broadcast::Receiver<Arc<pingji_proto::v1::Event>>,
        stop: &mut watch::Receiver<bool>,
        next: u64,
    ) -> bool {
        let mut closing = self.dispatcher.closing();
        loop {
            tokio::select! {
                received = live.recv() => match received {
                    Ok(event) if event.seq >= next => return false,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => return false,
                    Err(broadcast::error::RecvError::Closed) => return true,
                },
                _ = stop.changed() => return true,
                _ = closing.wait_for(|closing| *closing) => return true,
            }
        }
    }

    /// Sleeps `wait`; true when stopping meanwhile.
    async fn pause(&self, stop: &mut watch::Receiver<bool>, wait: std::time::Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(wait) => *stop.borrow(),
            _ = stop.changed() => true,
        }
    }

    async fn advance(&self, next_seq: u64) {
        self.note(|progress| {
            progress.next_seq = next_seq;
            progress.failures = 0;
            progress.last_error.clear();
        });
        let store = self.store.clone();
        let id = self.subscriber.id.clone();
        let written = tokio::task::spawn_blocking(move || {
            store.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).advance(&id, next_seq)
        })
        .await;
        if let Ok(Err(error)) = written {
            // Delivered again after a restart rather than lost.
            warn!(webhook = %self.subscriber.id, %error, "webhook cursor not saved");
        }
    }

    async fn give_up(&self, letter: DeadLetter, next_seq: u64) {
        warn!(
            webhook = %self.subscriber.id, seq = letter.seq, kind = %letter.kind, attempts = letter.attempts,
            error = %letter.last_error, "webhook event given up on: in the dead letters"
        );
        self.note(|progress| {
            progress.next_seq = next_seq;
            progress.failures = 0;
            progress.dead_letters += 1;
        });
        let store = self.store.clone();
        let id = self.subscriber.id.clone();
        let written = tokio::task::spawn_blocking(move || {
            store.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).dead_letter(&id, &letter, next_seq)
        })
        .await;
        if let Ok(Err(error)) = written {
            warn!(webhook = %self.subscriber.id, %error, "webhook dead letter not saved");
        }
    }

    /// Posts one event until it is taken, given up on, or the task stops.
    async fn deliver(&self, poster: &mut Poster, stored: &StoredEvent, stop: &mut watch::Receiver<bool>) -> Outcome {
        let document = match cloud_event(stored, &self.config.source, self.subscriber.precise, &self.config.cap) {
            Ok(document) => document,
            Err(error) => {
                return Outcome::GaveUp(self.letter(stored, 0, format!("the event cannot be read: {error}")));
            }
        };
        let body = Bytes::from(serde_json::to_vec(&document).unwrap_or_default());
        let mut failures = 0u32;
        loop {
            let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs().to_string();
            let headers = [
                ("content-type", CONTENT_TYPE.to_string()),
                ("user-agent", concat!("pingji-dispatcher/", env!("CARGO_PKG_VERSION")).to_string()),
                (WEBHOOK_HEADER, self.subscriber.id.clone()),
                (TIMESTAMP_HEADER, timestamp.clone()),
                (SIGNATURE_HEADER, signature(&self.subscriber.secret, &timestamp, &body)),
            ];
            let posted = tokio::select! {
                posted = poster.post(&headers, body.clone(), self.config.timeout) => posted,
                _ = stop.changed() => return Outcome::Stopped,
            };
            let error = match posted {
                Ok(_) => {
                    if failures > 0 {
                        info!(webhook = %self.subscriber.id, seq = stored.seq, failures, "webhook delivering again");
                    }
                    return Outcome::Delivered;
                }
                Err(error) => error,
            };
            failures += 1;
            debug!(webhook = %self.subscriber.id, seq = stored.seq, failures, %error, "webhook delivery failed");
            self.note(|progress| {
                progress.failures = failures;
                progress.last_error = error.clone();
            });
            if failures >= self.config.max_attempts {
                return Outcome::GaveUp(self.letter(stored, failures, error));
            }
            if self.pause(stop, self.config.backoff(failures)).await {
                return Outcome::Stopped;
            }
        }
    }

    fn letter(&self, stored: &StoredEvent, attempts: u32, last_error: String) -> DeadLetter {
        let failed_at_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        DeadLetter {
            seq: stored.seq,
            kind: stored.kind.clone(),
            attempts,
            last_error,
            failed_at_ms: i64::try_from(failed_at_ms).unwrap_or(i64::MAX),
        }
    }

    fn matches(&self, stored: &StoredEvent, place: Option<&Place>, filter_chains: &HashSet<AreaId>) -> bool {
        if !PARTNER_KINDS.contains(&stored.kind.as_str()) {
            return false;
        }
        if !self.subscriber.kinds.is_empty() && !self.subscriber.kinds.iter().any(|kind| *kind == stored.kind) {
            return false;
        }
        if self.subscriber.area_ids.is_empty() {
            return true;
        }
        let Some(place) = place else {
            return false;
        };
        let inside_a_filter =
            place.inside.iter().any(|area| self.subscriber.area_ids.iter().any(|wanted| wanted == area.as_str()));
        // A city-wide mode switch concerns a district's partner too.
        let above_a_filter = place.about.as_ref().is_some_and(|area| filter_chains.contains(area));
        inside_a_filter || above_a_filter
    }

    /// The filter's areas and every area above them.
    async fn filter_chains(&self) -> HashSet<AreaId> {
        let wanted: Vec<AreaId> = self.subscriber.area_ids.iter().map(|id| AreaId::new(id)).collect();
        self.dispatcher
            .query(move |engine, _| {
                let mut chains = HashSet::new();
                for area in wanted {
                    let mut at = Some(area);
                    while let Some(area) = at {
                        if !chains.insert(area.clone()) {
                            break;
                        }
                        at = engine.area(&area).and_then(|spec| spec.parent.clone());
                    }
                }
                chains
            })
            .await
            .unwrap_or_default()
    }

    /// Where each event of `page` happened (`None`: nowhere in particular),
    /// asked of the engine once per page; only with an area filter.
    async fn places(&self, page: &[StoredEvent]) -> Option<Vec<Option<Place>>> {
        if self.subscriber.area_ids.is_empty() {
            return Some(page.iter().map(|_| None).collect());
        }
        let keys: Vec<(Option<IncidentId>, Option<AreaId>)> = page
            .iter()
            .map(|stored| (stored.incident_id.as_deref().map(IncidentId::new), stored.area_id.as_deref().map(AreaId::new)))
            .collect();
        self.dispatcher
            .query(move |engine, _| {
                keys.into_iter()
                    .map(|(incident, area)| {
                        if let Some(incident) = incident {
                            let placed = engine.incident(&incident)?;
                            let inside = placed.placement.areas().map(|(_, area)| area.clone()).collect();
                            return Some(Place { inside, about: None });
                        }
                        let area = area?;
                        let mut inside = Vec::new();
                        let mut at = Some(area.clone());
                        while let Some(current) = at {
                            if inside.contains(&current) {
                                break;
                            }
                            at = engine.area(&current).and_then(|spec| spec.parent.clone());
                            inside.push(current);
                        }
                        Some(Place { inside, about: Some(area) })
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .ok()
    }
}
