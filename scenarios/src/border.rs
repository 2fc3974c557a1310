//! Borders between areas: where a drill puts incidents near one, and how
//! much help crossed them, judged from the event log.
//!
//! Help crosses a border in two ways (docs/policy.md, "Across borders"):
//! flat dispatch over touching areas in one emergency, and mutual-aid
//! rules. Each `offer_sent` event names the area the person came from
//! (`from_area`); these figures compare it with the incident's own area.

use std::collections::{BTreeMap, BTreeSet};

use geo::{BoundingRect, Distance, Euclidean, LineString, Point};
use pingji_engine::areas::{AreaMap, AreaSpec, Placement};
use pingji_engine::event::{Event, EventKind};
use pingji_engine::ids::{AgentId, AreaId, IncidentId, OfferId};
use pingji_engine::policy::{Mode, Policy};
use pingji_engine::roster::Role;
use pingji_engine::spatial::Position;
use rand::Rng;
use rand::rngs::StdRng;

use crate::drill::BorderExpectation;
use crate::report::ExpectationResult;

/// Metres per degree on a flat local frame: enough at city scale.
fn metres_per_degree(lat: f64) -> (f64, f64) {
    (111_320.0 * lat.to_radians().cos(), 110_574.0)
}

/// Two outlines closer than this share a border there (real files cut from
/// one source agree to well under a metre).
const SHARED_WITHIN_M: f64 = 1.0;

/// The stretches of `a`'s outline that lie on `b`'s: segments as pairs of
/// positions. Empty when the areas do not share a border.
pub fn shared_border(a: &AreaSpec, b: &AreaSpec) -> Vec<(Position, Position)> {
    let Some(reference) = a.polygons.first().and_then(|polygon| polygon.first()).and_then(|ring| ring.first()) else {
        return Vec::new();
    };
    let (per_lon, per_lat) = metres_per_degree(reference[1]);
    let to_metres = |[lon, lat]: [f64; 2]| (lon * per_lon, lat * per_lat);
    let other_rings: Vec<LineString<f64>> = b
        .polygons
        .iter()
        .flatten()
        .map(|ring| LineString::from(ring.iter().map(|point| to_metres(*point)).collect::<Vec<_>>()))
        .collect();
    let boxes: Vec<_> = other_rings.iter().map(|ring| ring.bounding_rect()).collect();
    let mut shared = Vec::new();
    for ring in a.polygons.iter().flatten() {
        for pair in ring.windows(2) {
            let (start, end) = (to_metres(pair[0]), to_metres(pair[1]));
            let middle = Point::new((start.0 + end.0) / 2.0, (start.1 + end.1) / 2.0);
            let on_other = other_rings.iter().zip(&boxes).any(|(other, bounds)| {
                let near_box = bounds.is_some_and(|rect| {
                    middle.x() >= rect.min().x - SHARED_WITHIN_M
                        && middle.x() <= rect.max().x + SHARED_WITHIN_M
                        && middle.y() >= rect.min().y - SHARED_WITHIN_M
                        && middle.y() <= rect.max().y + SHARED_WITHIN_M
                });
                near_box && Euclidean.distance(&middle, other) <= SHARED_WITHIN_M
            });
            if on_other {
                shared.push((Position { lon: pair[0][0], lat: pair[0][1] }, Position { lon: pair[1][0], lat: pair[1][1] }));
            }
        }
    }
    shared
}

/// A random point within `within_m` of the shared border, inside one of
/// the two areas (either side); `None` when they share no border.
pub fn random_point_near(
    rng: &mut StdRng,
    areas: &AreaMap,
    border: &[(Position, Position)],
    sides: [&AreaSpec; 2],
    within_m: f64,
) -> Option<Position> {
    let lengths: Vec<f64> = border.iter().map(|(start, end)| start.distance_m(*end)).collect();
    let total: f64 = lengths.iter().sum();
    if total <= 0.0 {
        return None;
    }
    let mut fallback = None;
    for _ in 0..200 {
        let mut pick = rng.random::<f64>() * total;
        let mut index = 0;
        while index + 1 < lengths.len() && pick >= lengths[index] {
            pick -= lengths[index];
            index += 1;
        }
        let (start, end) = border[index];
        let along = rng.random::<f64>();
        let on_border =
            Position { lon: start.lon + (end.lon - start.lon) * along, lat: start.lat + (end.lat - start.lat) * along };
        fallback.get_or_insert(on_border);
        // Uniform over the disc of radius within_m around the border point.
        let (per_lon, per_lat) = metres_per_degree(on_border.lat);
        let radius = within_m * rng.random::<f64>().sqrt();
        let angle = rng.random::<f64>() * std::f64::consts::TAU;
        let candidate =
            Position { lon: on_border.lon + radius * angle.cos() / per_lon, lat: on_border.lat + radius * angle.sin() / per_lat };
        let placement = areas.place(candidate);
        if sides.iter().any(|side| placement.within(side.level, &side.id)) {
            return Some(candidate);
        }
    }
    fallback
}

/// What the event log says about each offer and incident.
struct Offers {
    /// Offer id -> (incident, person, area the person came from).
    offers: BTreeMap<OfferId, (IncidentId, AgentId, Option<AreaId>)>,
    incidents: BTreeMap<IncidentId, (Placement, String)>,
    roles: BTreeMap<AgentId, Role>,
}

impl Offers {
    fn read(events: &[Event]) -> Offers {
        let mut offers = BTreeMap::new();
        let mut incidents = BTreeMap::new();
        let mut roles = BTreeMap::new();
        for event in events {
            match &event.kind {
                EventKind::OfferSent { offer } => {
                    offers.insert(offer.id.clone(), (offer.incident.clone(), offer.agent.clone(), offer.from_area.clone()));
                }
                EventKind::IncidentReported { incident, spec, placement, .. } => {
                    incidents.insert(incident.clone(), (placement.clone(), spec.category.clone()));
                }
                EventKind::AgentsUpserted { agents } => {
                    for agent in agents {
                        roles.insert(agent.id.clone(), agent.role);
                    }
                }
                _ => {}
            }
        }
        Offers { offers, incidents, roles }
    }

    /// The area the person came from, when it is not the incident's own
    /// area at that level.
    fn across(&self, map: &AreaMap, incident: &IncidentId, from: Option<&AreaId>) -> Option<(AreaId, AreaId)> {
        let from = from?;
        let level = map.get(from)?.level;
        let (placement, _) = self.incidents.get(incident)?;
        let own = placement.at(level)?;
        (own != from).then(|| (from.clone(), own.clone()))
    }
}

/// Judges the border expectations of a drill on its events.
pub fn judge(expectation: &BorderExpectation, map: &AreaMap, policy: &Policy, events: &[Event]) -> ExpectationResult {
    let offers = Offers::read(events);
    match expectation {
        BorderExpectation::AcrossBorderShare { category, share, at_most } => {
            let scope = category.as_ref().map_or("all incidents".to_string(), |category| format!("{category} incidents"));
            let description = match at_most {
                Some(at_most) => format!(
                    "between {:.0} % and {:.0} % of the assignments to {scope} went to people from across a border",
                    share * 100.0,
                    at_most * 100.0
                ),
                None => {
                    format!("at least {:.0} % of the assignments to {scope} went to people from across a border", share * 100.0)
                }
            };
            let mut judged = 0usize;
            let mut directions: BTreeMap<(AreaId, AreaId), usize> = BTreeMap::new();
            for event in events {
                let EventKind::Assigned { offer, incident, .. } = &event.kind else { continue };
                let in_scope = offers
                    .incidents
                    .get(incident)
                    .is_some_and(|(_, their_category)| category.as_ref().is_none_or(|wanted| wanted == their_category));
                if !in_scope {
                    continue;
                }
                judged += 1;
                let from = offers.offers.get(offer).and_then(|(_, _, from)| from.as_ref());
                if let Some(direction) = offers.across(map, incident, from) {
                    *directions.entry(direction).or_default() += 1;
                }
            }
            if judged == 0 {
                return ExpectationResult {
                    expectation: description,
                    passed: false,
                    actual: format!("no assignments to {scope}"),
                };
            }
            let across: usize = directions.values().sum();
            let actual_share = across as f64 / judged as f64;
            let ways: Vec<String> = directions.iter().map(|((from, to), count)| format!("{from} → {to}: {count}")).collect();
            ExpectationResult {
                expectation: description,
                passed: actual_share + 1e-9 >= *share && at_most.is_none_or(|at_most| actual_share <= at_most + 1e-9),
                actual: format!(
                    "{across} of {judged} ({:.0} %) from across a border{}",
                    actual_share * 100.0,
                    if ways.is_empty() { String::new() } else { format!(" ({})", ways.join(", ")) }
                ),
            }
        }
        BorderExpectation::NobodyAssignedTwice {} => {
            let description = "nobody held two assignments at once".to_string();
            let mut holding: BTreeMap<AgentId, IncidentId> = BTreeMap::new();
            let mut assignments = 0usize;
            let mut twice: Vec<String> = Vec::new();
            for event in events {
                match &event.kind {
                    EventKind::Assigned { incident, agent, .. } => {
                        assignments += 1;
                        if let Some(held) = holding.insert(agent.clone(), incident.clone()) {
                            twice.push(format!("{agent} ({held} and {incident})"));
                        }
                    }
                    EventKind::AssignmentCompleted { agent, incident, .. } if holding.get(agent) == Some(incident) => {
                        holding.remove(agent);
                    }
                    EventKind::IncidentCancelled { incident, released, .. }
                    | EventKind::IncidentClosed { incident, released, .. } => {
                        for agent in released {
                            if holding.get(agent) == Some(incident) {
                                holding.remove(agent);
                            }
                        }
                    }
                    _ => {}
                }
            }
            if assignments == 0 {
                return ExpectationResult { expectation: description, passed: false, actual: "no assignments".to_string() };
            }
            let people: BTreeSet<&AgentId> = events
                .iter()
                .filter_map(|event| match &event.kind {
                    EventKind::Assigned { agent, .. } => Some(agent),
                    _ => None,
                })
                .collect();
            twice.truncate(5);
            ExpectationResult {
                expectation: description,
                passed: twice.is_empty(),
                actual: if twice.is_empty() {
                    format!("{assignments} assignments of {} people, none overlapping", people.len())
                } else {
                    format!("held two at once: {}", twice.join(", "))
                },
            }
        }
        BorderExpectation::MutualAidAsConfigured {} => mutual_aid(map, policy, events, &offers),
    }
}

/// Every offer to a person from outside the incident's area and outside
/// every area in emergency came under a mutual-aid rule naming that area,
/// to a role the rule allows; and there was at least one.
fn mutual_aid(map: &AreaMap, policy: &Policy, events: &[Event], offers: &Offers) -> ExpectationResult {
    let description = "help from areas not in emergency came only under mutual-aid rules, in the roles they allow".to_string();
    let mut modes: BTreeMap<AreaId, Mode> = BTreeMap::new();
    let mut by_area: BTreeMap<AreaId, usize> = BTreeMap::new();
    let mut roles_seen: BTreeSet<&'static str> = BTreeSet::new();
    let mut wrong: Vec<String> = Vec::new();
    for event in events {
        match &event.kind {
            EventKind::ModeSwitched { area, mode, .. } => {
                modes.insert(area.clone(), *mode);
            }
            EventKind::OfferSent { offer } => {
                let Some((from, _)) = offers.across(map, &offer.incident, offer.from_area.as_ref()) else { continue };
                if modes.get(&from).is_some_and(|mode| mode.is_emergency()) {
                    continue;
                }
                let role = offers.roles.get(&offer.agent).copied();
                let rules: Vec<_> = policy.mutual_aid.iter().filter(|rule| rule.from.contains(&from)).collect();
                let allowed =
                    role.is_some_and(|role| rules.iter().any(|rule| rule.roles.is_empty() || rule.roles.contains(&role)));
                let role_name = role.map_or("unknown role", crate::drill::role_name);
                if rules.is_empty() {
                    wrong.push(format!("{} ({role_name}) from {from}, which no rule names", offer.agent));
                } else if !allowed {
                    wrong.push(format!("{} ({role_name}) from {from}, a role its rule does not allow", offer.agent));
                } else {
                    *by_area.entry(from).or_default() += 1;
                    roles_seen.insert(role_name);
                }
            }
            _ => {}
        }
    }
    if !wrong.is_empty() {
        let count = wrong.len();
        wrong.truncate(5);
        return ExpectationResult {
            expectation: description,
            passed: false,
            actual: format!("{count} offers outside the rules: {}", wrong.join("; ")),
        };
    }
    let total: usize = by_area.values().sum();
    if total == 0 {
        return ExpectationResult { expectation: description, passed: false, actual: "no offers under mutual aid".to_string() };
    }
    let areas: Vec<String> = by_area.iter().map(|(area, count)| format!("{area}: {count}")).collect();
    ExpectationResult {
        expectation: description,
        passed: true,
        actual: format!(
            "{total} offers under mutual aid ({}), to {}",
            areas.join(", "),
            roles_seen.into_iter().collect::<Vec<_>>().join(", ")
        ),
    }
}
