//! What a session tells the person: [`AgentEvent`] and the plain types it
//! carries, converted from the wire types without trusting that the server
//! filled every field.

use std::fmt;
use std::time::Duration;

use pingji_proto::v1 as pb;

/// An offer's id as the dispatcher gave it (`inc-000001-o1`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OfferId(String);

/// An incident's id as the dispatcher gave it (`inc-000001`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IncidentId(String);

impl OfferId {
    pub fn new(id: impl Into<String>) -> Self {
        OfferId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OfferId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl From<&str> for OfferId {
    fn from(id: &str) -> Self {
        OfferId(id.to_string())
    }
}

impl IncidentId {
    pub fn new(id: impl Into<String>) -> Self {
        IncidentId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IncidentId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl From<&str> for IncidentId {
    fn from(id: &str) -> Self {
        IncidentId(id.to_string())
    }
}

/// A WGS84 point in degrees. Its `Debug` output hides the coordinates: a
/// person's position is personal data and must not reach a log by accident.
#[derive(Clone, Copy, PartialEq)]
pub struct Location {
    pub lon: f64,
    pub lat: f64,
}

impl fmt::Debug for Location {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Location(..)")
    }
}

impl Location {
    pub fn new(lon: f64, lat: f64) -> Self {
        Location { lon, lat }
    }

    pub(crate) fn to_pb(self) -> pb::Location {
        pb::Location::wgs84(self.lon, self.lat)
    }
}

/// A task offered to the person, waiting for accept or decline.
#[derive(Clone, Debug, PartialEq)]
pub struct Offer {
    pub offer_id: OfferId,
    pub incident_id: IncidentId,
    pub category: String,
    /// 1 (most urgent) to 4.
    pub priority: i32,
    /// Where the incident is.
    pub location: Option<Location>,
    /// How far the person is from it, when the offer was made.
    pub distance_m: f64,
    /// How long the dispatcher expects the person to take to get there.
    pub eta: Duration,
    /// Answer before this (milliseconds since the Unix epoch); 0 on a confirmation.
    pub deadline_ms: i64,
    pub required_skills: Vec<String>,
    pub description: String,
}

impl Offer {
    pub(crate) fn from_pb(offer: &pb::Offer) -> Offer {
        // A negative or NaN estimate from a confused server becomes zero
        // rather than a panic in Duration.
        let eta_s = if offer.eta_s.is_finite() && offer.eta_s > 0.0 { offer.eta_s.min(1.0e9) } else { 0.0 };
        Offer {
            offer_id: OfferId::new(offer.offer_id.clone()),
            incident_id: IncidentId::new(offer.incident_id.clone()),
            category: offer.category.clone(),
            priority: offer.priority,
            location: offer.location.as_ref().map(|at| Location::new(at.lon, at.lat)),
            distance_m: if offer.distance_m.is_finite() { offer.distance_m.max(0.0) } else { 0.0 },
            eta: Duration::from_secs_f64(eta_s),
            deadline_ms: offer.deadline_ms,
            required_skills: offer.required_skills.clone(),
            description: offer.description.clone(),
        }
    }

    /// Time left to answer at `now_ms`; zero once the deadline has passed.
    pub fn time_left(&self, now_ms: i64) -> Duration {
        Duration::from_millis(self.deadline_ms.saturating_sub(now_ms).max(0) as u64)
    }
}

/// The assignment the person holds, as the welcome describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct CurrentIncident {
    pub incident_id: IncidentId,
    pub category: String,
    pub priority: i32,
    pub location: Option<Location>,
    pub description: String,
    /// Whether the dispatcher has recorded the person's arrival.
    pub arrived: bool,
}

/// The first message of every session: who the person is to the dispatcher now.
#[derive(Clone, Debug, PartialEq)]
pub struct Welcome {
    pub agent_id: String,
    pub name: String,
    pub status: pb::AgentStatus,
    pub mode: pb::Mode,
    /// How often the dispatcher wants a location report.
    pub location_interval: Duration,
    /// Offers waiting for an answer, as the dispatcher sees them (already
    /// surfaced ones are not surfaced again).
    pub open_offers: usize,
    pub current_incident: Option<CurrentIncident>,
    /// False for the first session of this client, true after a reconnect.
    pub resumed: bool,
}

impl Welcome {
    pub(crate) fn from_pb(welcome: &pb::Welcome, own_id: &str, resumed: bool) -> Welcome {
        let agent = welcome.agent.as_ref();
        let spec = agent.and_then(|agent| agent.spec.as_ref());
        let current_incident = welcome.current_incident.as_ref().filter(|incident| !incident.id.is_empty()).map(|incident| {
            let arrived =
                incident.assignments.iter().any(|assignment| assignment.agent_id == own_id && assignment.arrived_at_ms > 0);
            CurrentIncident {
                incident_id: IncidentId::new(incident.id.clone()),
                category: incident.category.clone(),
                priority: incident.priority,
                location: incident.location.as_ref().map(|at| Location::new(at.lon, at.lat)),
                description: incident.description.clone(),
                arrived,
            }
        });
        Welcome {
            agent_id: spec.map_or_else(|| own_id.to_string(), |spec| spec.id.clone()),
            name: spec.map(|spec| spec.name.clone()).unwrap_or_default(),
            status: agent.map_or(pb::AgentStatus::Unspecified, |agent| status_from_wire(agent.status)),
            mode: mode_from_wire(welcome.mode),
            location_interval: Duration::from_secs(u64::from(welcome.location_interval_s)),
            open_offers: welcome.open_offers.len(),
            current_incident,
            resumed,
        }
    }
}

/// A message of the person's that the dispatcher did not carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The gRPC code name: `invalid_argument`, `not_found`, `failed_precondition` ...
    pub code: String,
    pub message: String,
    pub offer_id: Option<OfferId>,
    pub incident_id: Option<IncidentId>,
}

/// Everything a session reports, in the order it happened.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentEvent {
    /// The first connection attempt has started.
    Connecting,
    /// A new attempt after the connection was lost; `attempt` counts from 1
    /// since the last healthy session.
    Reconnecting { attempt: u32 },
    /// Connected and welcomed; after a reconnect `resumed` is true.
    Welcome(Welcome),
    /// A new offer (never the same offer twice, across reconnects too).
    Offer(Offer),
    /// An offer is no longer open: timed out, withdrawn, or found gone
    /// after a reconnect.
    OfferWithdrawn { offer_id: OfferId, incident_id: IncidentId, reason: String },
    /// The person's accept was carried out: they are assigned.
    AssignmentConfirmed(Offer),
    /// Others accepted first: the offer is void.
    NoLongerNeeded { offer_id: OfferId, incident_id: IncidentId },
    /// The assigned incident was cancelled or closed by an operator.
    AssignmentEnded { incident_id: IncidentId, reason: String },
    /// The mode where the person is changed.
    ModeChanged { area_id: String, mode: pb::Mode, reason: String, location_interval: Duration },
    /// You are called up (mobilised): check in before the deadline.
    CallUp { callup_id: String, area_id: String, reason: String, deadline_ms: i64 },
    /// A call-up is over: thank you.
    StandDown { callup_id: String, area_id: String, reason: String },
    /// What became of a field report of yours.
    ReportOutcome { report_id: String, outcome: String, incident_id: String, reason: String, feedback: String },
    /// An operator's message for the person.
    Message { message_id: String, from: String, text: String },
    /// When the next safety check-in (报平安) is due on the assignment;
    /// `due_ms` 0: none is.
    SafetyCheckDue { incident_id: String, due_ms: i64, interval_s: u32, misses: u32 },
    /// Someone of the person's team pressed 求助.
    HelpCall { agent_id: String, name: String, incident_id: String, text: String },
    /// A message of the person's was not carried out; nothing changed.
    Refused(Refusal),
    /// The connection broke or could not be made; the next attempt starts
    /// after `retry_in`.
    ConnectionLost { error: String, retry_in: Duration },
    /// The session is over for good: closed by the person (`error` is None)
    /// or refused in a way that retrying cannot fix (not on the roster). Last event.
    Stopped { error: Option<String> },
}

pub(crate) fn status_from_wire(status: i32) -> pb::AgentStatus {
    pb::AgentStatus::try_from(status).unwrap_or(pb::AgentStatus::Unspecified)
}

pub(crate) fn mode_from_wire(mode: i32) -> pb::Mode {
    pb::Mode::try_from(mode).unwrap_or(pb::Mode::Unspecified)
}

/// A short name for a status, as people say it.
pub fn status_name(status: pb::AgentStatus) -> &'static str {
    match status {
        pb::AgentStatus::Available => "available",
        pb::AgentStatus::Busy => "busy",
        pb::AgentStatus::OffDuty => "off duty",
        pb::AgentStatus::Unspecified => "unknown",
    }
}

/// A short name for a mode, with the grade's colour.
pub fn mode_name(mode: pb::Mode) -> &'static str {
    match mode {
        pb::Mode::Normal => "normal",
        pb::Mode::EmergencyIv => "emergency IV (blue)",
        pb::Mode::EmergencyIii => "emergency III (yellow)",
        pb::Mode::EmergencyIi => "emergency II (orange)",
        pb::Mode::EmergencyI => "emergency I (red)",
        pb::Mode::Unspecified => "unknown",
    }
}
