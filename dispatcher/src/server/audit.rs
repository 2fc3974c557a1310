//! The audit of reads of personal data: who read people's positions,
//! distances or phones, in which call, about whom and how many people, as
//! `personal_data_read` events in the journal.
//!
//! Reads are aggregated: the same read of the same set of people by the
//! same operator is journaled once per [`SAME_READ_FOR`], and again at once
//! when the set of people shown changes. A screen polling every 2 s, or a
//! `WatchAgents` stream pushing positions, is one read, not one a poll.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pingji_engine::engine::Command;
use tracing::warn;

use super::auth::Caller;
use crate::runtime::Dispatcher;

/// How long the same read of the same people by the same operator counts
/// as one: a screen left open is audited again after this.
const SAME_READ_FOR: Duration = Duration::from_secs(600);

/// Reads remembered at most; past this the oldest half is forgotten (and
/// audited again when repeated).
const REMEMBERED_READS: usize = 10_000;

/// Who read, in which call, about whom.
type ReadKey = (String, String, String);

/// Each read's people (a fingerprint of their ids) and when it was audited.
/// A sync lock, never held across an `.await`.
#[derive(Clone, Default)]
pub struct ReadAudits(Arc<Mutex<HashMap<ReadKey, (u64, Instant)>>>);

impl ReadAudits {
    /// Whether this read of the people `ids` must be journaled: the first
    /// time, when the set of people shown changed, or once
    /// `SAME_READ_FOR` has passed.
    pub fn is_new<'a>(&self, operator: &str, rpc: &str, subject: &str, ids: impl IntoIterator<Item = &'a str>) -> bool {
        let fingerprint = fingerprint(ids);
        let now = Instant::now();
        let mut reads = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (operator.to_string(), rpc.to_string(), subject.to_string());
        if let Some((seen, at)) = reads.get(&key)
            && *seen == fingerprint
            && now.duration_since(*at) < SAME_READ_FOR
        {
            return false;
        }
        if reads.len() >= REMEMBERED_READS {
            let mut by_age: Vec<Instant> = reads.values().map(|(_, at)| *at).collect();
            by_age.sort_unstable();
            let cutoff = by_age[by_age.len() / 2];
            reads.retain(|_, (_, at)| *at > cutoff);
        }
        reads.insert(key, (fingerprint, now));
        true
    }
}

/// A fingerprint of a set of ids, whatever their order.
pub fn fingerprint<'a>(ids: impl IntoIterator<Item = &'a str>) -> u64 {
    let mut ids: Vec<&str> = ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    let mut hasher = DefaultHasher::new();
    ids.hash(&mut hasher);
    hasher.finish()
}

/// Journals that `caller` read `people` people's data in `rpc`, about
/// `subject`. When the audit cannot be journaled (store down), the read
/// still goes through and the log says so: during an emergency a
/// dispatcher must be able to call people.
pub async fn record_read(dispatcher: &Dispatcher, caller: &Caller, rpc: &str, subject: String, people: usize) {
    if people == 0 {
        return;
    }
    let command = Command::RecordRead { rpc: rpc.to_string(), subject, people: people as u32 };
    if let Err(error) = dispatcher.execute(command, caller.actor(), |_, _| ()).await {
        warn!(operator = %caller.name, rpc, %error, "the audit of a read of personal data could not be journaled");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_people_are_one_read_until_the_set_changes() {
        let audits = ReadAudits::default();
        assert!(audits.is_new("li.na", "ListAgents", "all", ["b", "a"]));
        assert!(!audits.is_new("li.na", "ListAgents", "all", ["a", "b"]), "the same set in another order");
        assert!(audits.is_new("li.na", "ListAgents", "all", ["a", "b", "c"]), "one more person");
        assert!(audits.is_new("li.na", "ListAgents", "all", ["a", "b"]), "back to the first set");
        assert!(audits.is_new("wang", "ListAgents", "all", ["a", "b"]), "another operator");
        assert!(audits.is_new("li.na", "GetAgent", "all", ["a", "b"]), "another call");
    }
}
