//! Across a shard border: a person of one district's shard reserved for an
//! incident of another's (docs/redis.md, "Across borders").
//!
//! With one shard per district, a person is written only by their home
//! shard and an incident only by its own. When an incident's flat area
//! reaches into a neighbour's district, the incident's shard asks the
//! neighbour to reserve one of its people: the neighbour journals a
//! [`BorderReservation`] (the person is then answering that offer and is
//! offered nothing else), sends the offer, and reports the answer back. The
//! incident's shard journals the offer and the assignment with its usual
//! events; the home shard keeps the person busy until the incident's shard
//! releases them or the reservation expires.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::areas::AreaLevel;
use crate::ids::{AgentId, IncidentId, Millis, OfferId};
use crate::spatial::Position;

/// How long past the offer's deadline a reservation nobody answered is
/// kept: the incident's shard times the offer out at the deadline and
/// says so; this covers a lost message or a dead incident's shard.
pub const RESERVATION_GRACE_MS: i64 = 5_000;

/// What the person is shown of a foreign incident: the home shard does
/// not hold the incident itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BorderOfferView {
    pub category: String,
    pub priority: u8,
    pub at: Position,
    pub skills: BTreeSet<String>,
    pub description: String,
    pub distance_m: f64,
    pub eta_s: f64,
    pub level: AreaLevel,
    /// Seconds between safety check-ins (报平安) at the incident's grade
    /// when it was offered (`None`: none asked). The home shard, where the
    /// person's session is, keeps their check-in clock with it.
    #[serde(default)]
    pub safety_interval_s: Option<u64>,
}

/// Where a reservation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    /// The offer is out; the person has not answered.
    Offered,
    /// The person accepted; the incident's shard has not confirmed yet.
    Accepted,
    /// The incident's shard journaled the assignment.
    Confirmed,
}

/// Why a reservation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationEnd {
    /// The person declined.
    Declined,
    /// Nobody answered in time, or the incident's shard could not be told
    /// of an acceptance in time.
    Expired,
    /// The incident's shard withdrew the offer (timed out there, filled,
    /// the incident ended).
    Withdrawn,
    /// The person accepted but the incident's shard had already closed
    /// the offer (filled or timed out there).
    Refused,
    /// The assignment ended at the incident's shard (closed, cancelled).
    Ended,
}

impl ReservationEnd {
    pub fn name(self) -> &'static str {
        match self {
            ReservationEnd::Declined => "declined",
            ReservationEnd::Expired => "expired",
            ReservationEnd::Withdrawn => "withdrawn",
            ReservationEnd::Refused => "refused",
            ReservationEnd::Ended => "ended",
        }
    }

    pub fn from_name(name: &str) -> Option<ReservationEnd> {
        [
            ReservationEnd::Declined,
            ReservationEnd::Expired,
            ReservationEnd::Withdrawn,
            ReservationEnd::Refused,
            ReservationEnd::Ended,
        ]
        .into_iter()
        .find(|end| end.name() == name)
    }
}

/// A person of this shard reserved for another shard's incident. Its id is
/// the offer's id, which the incident's shard chose: asking twice reserves
/// once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BorderReservation {
    pub offer: OfferId,
    pub incident: IncidentId,
    /// The shard that owns the incident, and the lease epoch (fencing
    /// token) of the owner that asked: a fenced older owner is refused
    /// before anything is journaled.
    pub incident_shard: String,
    pub epoch: u64,
    pub agent: AgentId,
    pub sent_at: Millis,
    /// The offer's deadline at the incident's shard.
    pub deadline: Millis,
    /// After this, an offer still unanswered (or an acceptance the
    /// incident's shard never confirmed) is released here.
    pub expires_at: Millis,
    pub view: BorderOfferView,
    pub state: ReservationState,
}
