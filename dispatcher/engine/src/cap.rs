//! CAP 1.2 (OASIS Common Alerting Protocol), the domain side: a plan's
//! public alert, the alerts a switch or an activation issues, the alerts
//! received from other systems (a weather service's typhoon warning) and
//! the suggestions they become for the commander.
//!
//! Pure logic: the tables from a grade to CAP's urgency/severity/certainty
//! and back, the match of an alert to plans, and which of our areas an
//! alert's polygons and circles cover. The XML is the dispatcher's
//! (`pingji_dispatcher::cap`).

use geo::{Coord, Intersects, LineString, MultiPolygon, Polygon};
use serde::{Deserialize, Serialize};

use crate::areas::{AreaLevel, AreaMap, Rings};
use crate::ids::{ActivationId, AreaId, Millis, PlanId};
use crate::policy::Mode;

/// CAP's `category` values.
pub const CATEGORIES: [&str; 12] =
    ["Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE", "Other"];
pub const URGENCIES: [&str; 5] = ["Immediate", "Expected", "Future", "Past", "Unknown"];
pub const SEVERITIES: [&str; 5] = ["Extreme", "Severe", "Moderate", "Minor", "Unknown"];
pub const CERTAINTIES: [&str; 5] = ["Observed", "Likely", "Possible", "Unlikely", "Unknown"];

/// The level whose areas an inbound alert's geometry is matched to: the
/// street (街道), where a switch is usually made and a plan's call-up runs.
pub const SUGGESTED_LEVEL: AreaLevel = AreaLevel::Street;

/// The public-facing part of a plan: what people are told when the plan
/// is activated (a CAP alert with `scope` Public, in Chinese).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PublicAlert {
    pub headline: String,
    pub description: String,
    pub instruction: String,
    /// CAP `category` (Met, Geo, Fire, Health, …).
    pub category: String,
    /// CAP `event`, e.g. "台风" or "暴雨内涝".
    pub event: String,
    /// CAP urgency, severity and certainty; empty: from the grade (see
    /// [`default_terms`]).
    #[serde(default)]
    pub urgency: String,
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub certainty: String,
    /// Other CAP `event` names an inbound alert may carry for this plan to
    /// be suggested (e.g. "Typhoon", "台风蓝色预警").
    #[serde(default)]
    pub inbound_events: Vec<String>,
}

impl PublicAlert {
    /// Checks the values against CAP's lists; the message names the field.
    pub fn check(&self) -> Result<(), String> {
        if self.headline.trim().is_empty() || self.event.trim().is_empty() {
            return Err("[public] needs a headline and an event".to_string());
        }
        if !CATEGORIES.contains(&self.category.as_str()) {
            return Err(format!(
                "[public] category \"{}\" is not a CAP category; use one of {}",
                self.category,
                CATEGORIES.join(", ")
            ));
        }
        for (field, value, allowed) in [
            ("urgency", &self.urgency, &URGENCIES[..]),
            ("severity", &self.severity, &SEVERITIES[..]),
            ("certainty", &self.certainty, &CERTAINTIES[..]),
        ] {
            if !value.is_empty() && !allowed.contains(&value.as_str()) {
                return Err(format!("[public] {field} \"{value}\" is not a CAP {field}; use one of {}", allowed.join(", ")));
            }
        }
        Ok(())
    }

    /// Urgency, severity and certainty for an alert at `mode`: the plan's
    /// own where it gives them, else [`default_terms`].
    pub fn terms(&self, mode: Mode) -> (String, String, String) {
        let (urgency, severity, certainty) = default_terms(mode);
        let pick = |own: &str, default: &str| if own.is_empty() { default.to_string() } else { own.to_string() };
        (pick(&self.urgency, urgency), pick(&self.severity, severity), pick(&self.certainty, certainty))
    }
}

/// The default CAP terms of a grade (documented in `docs/integrations.md`):
/// I red Immediate/Extreme/Likely, II orange Immediate/Severe/Likely, III
/// yellow Expected/Moderate/Likely, IV blue Expected/Minor/Possible.
pub fn default_terms(mode: Mode) -> (&'static str, &'static str, &'static str) {
    match mode {
        Mode::EmergencyI => ("Immediate", "Extreme", "Likely"),
        Mode::EmergencyIi => ("Immediate", "Severe", "Likely"),
        Mode::EmergencyIii => ("Expected", "Moderate", "Likely"),
        Mode::EmergencyIv | Mode::Normal => ("Expected", "Minor", "Possible"),
    }
}

/// The grade an inbound alert suggests, from its severity and urgency
/// (documented in `docs/integrations.md`); `None` for an alert that calls
/// for no switch (urgency Past, certainty Unlikely).
pub fn suggested_grade(severity: &str, urgency: &str, certainty: &str) -> Option<Mode> {
    if urgency == "Past" || certainty == "Unlikely" {
        return None;
    }
    let soon = matches!(urgency, "Immediate" | "Expected");
    Some(match (severity, soon) {
        ("Extreme", true) => Mode::EmergencyI,
        ("Extreme", false) | ("Severe", true) => Mode::EmergencyIi,
        ("Severe", false) | ("Moderate", true) => Mode::EmergencyIii,
        _ => Mode::EmergencyIv,
    })
}

/// What kind of CAP message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapMsgType {
    Alert,
    Update,
    Cancel,
}

impl CapMsgType {
    pub fn name(self) -> &'static str {
        match self {
            CapMsgType::Alert => "Alert",
            CapMsgType::Update => "Update",
            CapMsgType::Cancel => "Cancel",
        }
    }

    pub fn parse(name: &str) -> Option<CapMsgType> {
        match name {
            "Alert" => Some(CapMsgType::Alert),
            "Update" => Some(CapMsgType::Update),
            "Cancel" => Some(CapMsgType::Cancel),
            _ => None,
        }
    }
}

/// An earlier alert of ours that a later one refers to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CapReference {
    pub identifier: String,
    pub sent: Millis,
}

/// An alert we issued, as journaled: everything its XML is made of but
/// the sender and status, which are the deployment's (`[cap]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IssuedCapAlert {
    pub identifier: String,
    pub msg_type: CapMsgType,
    pub references: Vec<CapReference>,
    pub activation: ActivationId,
    pub plan: PlanId,
    pub area: AreaId,
    pub area_name: String,
    pub mode: Mode,
    pub headline: String,
    pub description: String,
    pub instruction: String,
    pub category: String,
    pub event: String,
    pub urgency: String,
    pub severity: String,
    pub certainty: String,
    /// The area's outline, WGS84 lon/lat (as every area is kept).
    pub polygons: Rings,
}

/// A circle of an inbound alert: centre (WGS84 lon/lat) and radius in km.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CapCircle {
    pub lon: f64,
    pub lat: f64,
    pub radius_km: f64,
}

/// An alert received from another system, checked at the edge.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReceivedCapAlert {
    pub identifier: String,
    pub sender: String,
    /// As written in the alert (CAP's dateTime with its offset).
    pub sent: String,
    pub status: String,
    /// Alert, Update or Cancel.
    pub msg_type: String,
    /// Identifiers of the alerts it refers to (from `sender,identifier,sent`).
    pub references: Vec<String>,
    pub category: String,
    pub event: String,
    pub urgency: String,
    pub severity: String,
    pub certainty: String,
    pub headline: String,
    pub area_desc: String,
    /// Polygons, WGS84 lon/lat rings.
    pub polygons: Vec<Vec<[f64; 2]>>,
    pub circles: Vec<CapCircle>,
}

/// What the commander is offered for an inbound alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CapSuggestionSpec {
    pub id: String,
    pub areas: Vec<AreaId>,
    pub mode: Mode,
    pub plan: Option<PlanId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuggestionState {
    Pending,
    Approved,
    Dismissed,
    /// The sender cancelled or replaced the alert.
    Withdrawn,
}

impl SuggestionState {
    pub fn name(self) -> &'static str {
        match self {
            SuggestionState::Pending => "pending",
            SuggestionState::Approved => "approved",
            SuggestionState::Dismissed => "dismissed",
            SuggestionState::Withdrawn => "withdrawn",
        }
    }
}

/// A suggestion and what became of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CapSuggestion {
    pub spec: CapSuggestionSpec,
    pub alert: ReceivedCapAlert,
    pub received_at: Millis,
    pub state: SuggestionState,
    /// Who approved or dismissed it, why, and when.
    pub decided_by: String,
    pub reason: String,
    pub decided_at: Option<Millis>,
}

/// CAP in the durable state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CapState {
    /// Alerts we issued, in order.
    pub issued: Vec<IssuedCapAlert>,
    /// When each issued alert was sent, by identifier.
    pub sent_at: std::collections::BTreeMap<String, Millis>,
    /// The alerts of each plan activation, in order (a later one refers to them).
    pub chains: std::collections::BTreeMap<ActivationId, Vec<String>>,
    /// Alerts received, by "sender identifier", with their suggestion id if any.
    pub received: std::collections::BTreeMap<String, Option<String>>,
    pub suggestions: std::collections::BTreeMap<String, CapSuggestion>,
    /// Every alert received, in order, with when.
    pub received_log: Vec<(Millis, ReceivedCapAlert)>,
}

/// The key a received alert is known by: CAP identifies a message by
/// sender and identifier together.
pub fn received_key(sender: &str, identifier: &str) -> String {
    format!("{sender} {identifier}")
}

const EARTH_RADIUS_KM: f64 = 6371.0;

/// A circle as a 32-sided polygon (lon/lat), close enough for which areas it touches.
fn circle_polygon(circle: &CapCircle) -> Polygon<f64> {
    let lat_deg_per_km = 180.0 / (std::f64::consts::PI * EARTH_RADIUS_KM);
    let lon_deg_per_km = lat_deg_per_km / circle.lat.to_radians().cos().max(0.01);
    let mut points: Vec<Coord<f64>> = (0..32)
        .map(|step| {
            let angle = f64::from(step) * std::f64::consts::TAU / 32.0;
            Coord {
                x: circle.lon + circle.radius_km.max(0.01) * angle.cos() * lon_deg_per_km,
                y: circle.lat + circle.radius_km.max(0.01) * angle.sin() * lat_deg_per_km,
            }
        })
        .collect();
    points.push(points[0]);
    Polygon::new(LineString::new(points), vec![])
}

fn ring_polygon(ring: &[[f64; 2]]) -> Polygon<f64> {
    Polygon::new(LineString::new(ring.iter().map(|[x, y]| Coord { x: *x, y: *y }).collect()), vec![])
}

fn area_shape(rings: &Rings) -> MultiPolygon<f64> {
    MultiPolygon::new(
        rings
            .iter()
            .filter(|polygon| !polygon.is_empty())
            .map(|polygon| {
                let exterior = ring_polygon(&polygon[0]).exterior().clone();
                let holes = polygon[1..].iter().map(|ring| ring_polygon(ring).exterior().clone()).collect();
                Polygon::new(exterior, holes)
            })
            .collect(),
    )
}

/// The areas at [`SUGGESTED_LEVEL`] that an alert's polygons or circles
/// touch, in id order.
pub fn covered_areas(areas: &AreaMap, polygons: &[Vec<[f64; 2]>], circles: &[CapCircle]) -> Vec<AreaId> {
    let shapes: Vec<Polygon<f64>> =
        polygons.iter().map(|ring| ring_polygon(ring)).chain(circles.iter().map(circle_polygon)).collect();
    let mut covered: Vec<AreaId> = areas
        .areas()
        .filter(|spec| spec.level == SUGGESTED_LEVEL)
        .filter(|spec| {
            let shape = area_shape(&spec.polygons);
            shapes.iter().any(|alert| alert.intersects(&shape))
        })
        .map(|spec| spec.id.clone())
        .collect();
    covered.sort();
    covered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grades_follow_severity_and_urgency() {
        assert_eq!(suggested_grade("Extreme", "Immediate", "Observed"), Some(Mode::EmergencyI));
        assert_eq!(suggested_grade("Severe", "Expected", "Likely"), Some(Mode::EmergencyIi));
        assert_eq!(suggested_grade("Severe", "Future", "Likely"), Some(Mode::EmergencyIii));
        assert_eq!(suggested_grade("Moderate", "Expected", "Possible"), Some(Mode::EmergencyIii));
        assert_eq!(suggested_grade("Minor", "Immediate", "Observed"), Some(Mode::EmergencyIv));
        assert_eq!(suggested_grade("Severe", "Past", "Observed"), None);
        assert_eq!(suggested_grade("Extreme", "Immediate", "Unlikely"), None);
    }

    #[test]
    fn default_terms_round_trip_to_their_grade() {
        for mode in [Mode::EmergencyI, Mode::EmergencyIi, Mode::EmergencyIii, Mode::EmergencyIv] {
            let (urgency, severity, certainty) = default_terms(mode);
            assert_eq!(suggested_grade(severity, urgency, certainty), Some(mode), "{mode:?}");
        }
    }
}
