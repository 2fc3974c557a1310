//! Identifiers and time, as newtypes so they are not mixed up past the wire.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A person on the roster.
    AgentId
);
string_id!(
    /// An incident (a task that needs people).
    IncidentId
);
string_id!(
    /// A node of the area hierarchy (district, street, community, grid ...).
    AreaId
);
string_id!(
    /// One offer of an incident to one person.
    OfferId
);
string_id!(
    /// An emergency plan (应急预案), e.g. `flood-ii`.
    PlanId
);
string_id!(
    /// One activation of a plan on an area.
    ActivationId
);
string_id!(
    /// One call-up of reserves.
    CallupId
);

/// A point in time: milliseconds since the Unix epoch. The engine never reads
/// a clock; callers pass `now`, so drills can run on a virtual clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Millis(pub i64);

impl Millis {
    pub fn plus_seconds(self, seconds: u64) -> Millis {
        Millis(self.0.saturating_add((seconds as i64).saturating_mul(1000)))
    }
    pub fn seconds_since(self, earlier: Millis) -> f64 {
        (self.0 - earlier.0) as f64 / 1000.0
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}
