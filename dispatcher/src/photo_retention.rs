//! How long people's photos are kept (`photos.retention_days`, 90 days by
//! default; 0 keeps them forever), and the task that deletes them.
//!
//! The policy (docs/operations.md, "Photo retention"):
//! - A photo named by an incident (its field report's photos, or a
//!   completion's) is deleted `retention` after the incident ended: closed,
//!   cancelled, or (a field report) rejected. A report merged into another
//!   incident ends with that one: its photos stay while the incident it was
//!   merged into is open.
//! - A photo named by any incident not yet due (open, or ended more
//!   recently) is kept, whatever else names it.
//! - A photo no incident names (uploaded, then never sent with a report or
//!   completion) is deleted `retention` after it was stored. Only where this
//!   dispatcher sees every incident of the city: with Redis, another shard
//!   or dispatcher may name it, so there such photos are kept.
//!
//! The task runs once a start and then every `photos.sweep_every`; the
//! dispatcher's clock decides what is due, so a drill's fast clock ages
//! photos as fast as its incidents.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use pingji_engine::engine::Engine;
use pingji_engine::ids::Millis;
use pingji_engine::incident::{Ending, Incident};
use tracing::{info, warn};

use crate::photos::PhotoStore;
use crate::runtime::Dispatcher;

/// Photos are kept 90 days after their incident ended unless configured
/// (`photos.retention_days`), as the journal keeps its events.
pub const DEFAULT_RETENTION_DAYS: u64 = 90;
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(DEFAULT_RETENTION_DAYS * 86_400);
/// How often photos due for deletion are looked for: an hour.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3_600);

/// What a sweep decided from the incidents: photos due for deletion, and
/// the rest named by some incident (kept).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub due: BTreeSet<String>,
    pub kept: BTreeSet<String>,
}

/// The photos `incident` names: its report's and its completions'.
fn named_by(incident: &Incident) -> impl Iterator<Item = &String> {
    let report = incident.report.iter().flat_map(|report| std::iter::once(&report.photo_ref).chain(&report.photo_refs));
    report
        .chain(incident.assignments.iter().flat_map(|assignment| &assignment.photo_refs))
        .filter(|photo_ref| !photo_ref.is_empty())
}

/// When an incident's photos stop being needed: when it ended, or for a
/// merged report, when the incident it was merged into ended; `None` while
/// that is open.
fn ended_at(incident: &Incident, incidents: &BTreeMap<pingji_engine::ids::IncidentId, Incident>) -> Option<Millis> {
    match incident.ending {
        Some((Ending::Merged, at)) => {
            let Some(into) = incident.merged_into.as_ref().and_then(|into| incidents.get(into)) else {
                // The incident it went into is not known here: from the merge.
                return Some(at);
            };
            // Merges do not chain (a report is merged into an incident that
            // is not a report), so one step is enough.
            match into.ending {
                Some((Ending::Merged, _)) => Some(at),
                Some((_, into_ended)) => Some(into_ended.max(at)),
                None => None,
            }
        }
        Some((_, at)) => Some(at),
        None => None,
    }
}

/// Each incident's photos with when they stopped being needed (`None`:
/// still needed).
pub fn photos_of(incidents: &BTreeMap<pingji_engine::ids::IncidentId, Incident>) -> Vec<(Vec<String>, Option<Millis>)> {
    incidents.values().map(|incident| (named_by(incident).cloned().collect(), ended_at(incident, incidents))).collect()
}

/// Which photos are due at `now` with `retention`, from each incident's
/// photos and when it ended ([`photos_of`]).
pub fn decide(named: Vec<(Vec<String>, Option<Millis>)>, now: Millis, retention: Duration) -> Decision {
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let mut decision = Decision::default();
    for (photo_refs, ended) in named {
        let due = ended.is_some_and(|ended| ended.0.saturating_add(retention_ms) <= now.0);
        for photo_ref in photo_refs {
            if due {
                decision.due.insert(photo_ref);
            } else {
                decision.kept.insert(photo_ref);
            }
        }
    }
    decision.due.retain(|photo_ref| !decision.kept.contains(photo_ref));
    decision
}

/// The sweep's settings.
#[derive(Clone, Debug)]
pub struct Retention {
    /// How long after its incident ended (or, named by none, after it was
    /// stored) a photo is deleted.
    pub keep_for: Duration,
    /// How often (real time) the sweep runs.
    pub sweep_every: Duration,
    /// Photos named by no incident here may be deleted: this dispatcher
    /// sees every incident of the city (not on Redis).
    pub sees_every_incident: bool,
}

/// Sweeps `store` now and then until the task is aborted (when serving
/// ends); a failed sweep is logged and tried again at the next.
pub async fn keep_sweeping(dispatcher: Dispatcher, store: PhotoStore, retention: Retention) {
    let mut every = tokio::time::interval(retention.sweep_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(error) = sweep(&dispatcher, &store, &retention).await {
            warn!(error = %format!("{error:#}"), "photo retention sweep failed; trying again later");
        }
    }
}

/// One sweep: decides from the engine's incidents, then deletes off the async threads.
pub async fn sweep(dispatcher: &Dispatcher, store: &PhotoStore, retention: &Retention) -> anyhow::Result<usize> {
    let keep_for = retention.keep_for;
    let (decision, now) =
        dispatcher.query(move |engine: &Engine, now| (decide(photos_of(&engine.state().incidents), now, keep_for), now)).await?;
    let store = store.clone();
    let sees_every_incident = retention.sees_every_incident;
    let deleted = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
        let mut deleted = 0;
        for photo_ref in &decision.due {
            if store.delete(photo_ref)? {
                deleted += 1;
            }
        }
        if sees_every_incident {
            let stored_before = Millis(now.0.saturating_sub(i64::try_from(keep_for.as_millis()).unwrap_or(i64::MAX)));
            for (photo_ref, stored_at) in store.list()? {
                let named = decision.kept.contains(&photo_ref) || decision.due.contains(&photo_ref);
                if !named && stored_at <= stored_before && store.delete(&photo_ref)? {
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    })
    .await??;
    if deleted > 0 {
        info!(deleted, keep_for_days = keep_for.as_secs() / 86_400, "photos deleted (retention)");
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: i64 = 86_400_000;

    fn named(photos: &[&str], ended_day: Option<i64>) -> (Vec<String>, Option<Millis>) {
        (photos.iter().map(|photo| (*photo).to_string()).collect(), ended_day.map(|day| Millis(day * DAY_MS)))
    }

    #[test]
    fn photos_go_their_retention_after_the_incident_ended_and_not_while_anything_names_them() {
        let keep = Duration::from_secs(30 * 86_400);
        let incidents = || {
            vec![
                named(&["a", "shared"], Some(0)), // closed long ago
                named(&["b"], Some(20)),          // closed lately
                named(&["shared", "d"], None),    // open (or a report merged into an open one)
                named(&["c"], Some(1)),           // rejected long ago
            ]
        };
        let decision = decide(incidents(), Millis(40 * DAY_MS), keep);
        assert_eq!(decision.due, ["a", "c"].map(String::from).into_iter().collect());
        assert_eq!(decision.kept, ["b", "d", "shared"].map(String::from).into_iter().collect());
        // Ten days later the lately closed one is due too; the open one's never.
        let later = decide(incidents(), Millis(50 * DAY_MS), keep);
        assert_eq!(later.due, ["a", "b", "c"].map(String::from).into_iter().collect());
    }
}
