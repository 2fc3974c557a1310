//! Identifiers and time, as newtypes so they are not mixed up past the wire;
//! [`check_id`], what a new id may be; [`quote`], how an error message
//! repeats an id (or any input) it was sent.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A newtype over a `String` id: `new`, `as_str`, `Display`, `AsRef<str>`,
/// serialized as the bare string. Every id of the engine is one (people,
/// incidents, areas here; depots, shelters, shifts in their modules).
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
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

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}
pub(crate) use string_id;

pub use pingji_rules::{MAX_ID_CHARS, check_id, quote};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_input_is_quoted_whole_and_a_long_one_by_its_start_and_length() {
        assert_eq!(quote("p0001"), "p0001");
        assert_eq!(quote(AgentId::new("王芳")), "王芳");
        assert_eq!(quote("a\nb\u{7}"), "a\\nb\\u{7}");
        let long = "x".repeat(10_000);
        assert_eq!(quote(&long), format!("{}… (10000 characters)", "x".repeat(64)));
        assert_eq!(quote("水".repeat(65)), format!("{}… (65 characters)", "水".repeat(64)));
    }

    #[test]
    fn an_id_is_up_to_64_letters_digits_dots_underscores_and_dashes() {
        for good in ["p0001", "d1-s1-c1-g1", "inc_7.b", &"x".repeat(64)] {
            assert_eq!(check_id("id", good), Ok(()), "{good}");
        }
        let problem = |id: &str| check_id("agent id", id).expect_err(id);
        assert!(problem("").contains("agent id is empty"));
        assert!(problem(&"x".repeat(65)).contains("65 characters long; ids are at most 64"));
        assert!(problem("p 1").contains("' ', which ids may not have"));
        assert!(problem("王芳").contains("'王'"));
        assert!(problem("p\u{0}").contains("'\\0'"));
    }
}
