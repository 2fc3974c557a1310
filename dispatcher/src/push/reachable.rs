//! [`Reachable`]: who the dispatcher can reach without a live session,
//! because their phone registered Web Push. The runtime asks it when a
//! session ends: such a person stays a candidate, offered through the
//! notification, until the location their app last sent is stale.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

/// The people with a push subscription, kept in step by the [`Pusher`]
/// (loaded from its store at start, then each registration and removal).
///
/// [`Pusher`]: super::Pusher
#[derive(Clone, Debug, Default)]
pub struct Reachable(Arc<RwLock<HashSet<String>>>);

impl Reachable {
    pub fn contains(&self, person: &str) -> bool {
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).contains(person)
    }

    pub fn set(&self, person: &str, reachable: bool) {
        let mut people = self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if reachable {
            people.insert(person.to_string());
        } else {
            people.remove(person);
        }
    }

    /// Everyone reachable now is `people`.
    pub fn replace(&self, people: impl IntoIterator<Item = String>) {
        *self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = people.into_iter().collect();
    }
}
