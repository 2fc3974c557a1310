//! The city-border drill (issue #27): a real-size city made as the drill
//! loads, two neighbouring districts in one emergency, a third helping
//! under mutual aid. The README runs the full drill (about a minute in a
//! debug build); the run here is the same city with fewer grids (2 per
//! community instead of 5.8, about 5,200 people), which keeps every border
//! and the 280 incidents.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pingji_engine::areas::{AreaLevel, AreaMap, Placement};
use pingji_engine::event::{Event, EventKind};
use pingji_engine::ids::{AgentId, AreaId, IncidentId};
use pingji_engine::policy::Policy;
use pingji_engine::roster::Role;
use pingji_engine::spatial::Position;
use pingji_scenarios::border;
use pingji_scenarios::drill::{self, BorderExpectation, ExpectEntry};

fn drill_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("drills/city-border.toml")
}

/// The drill with fewer grids, written to `dir`.
fn smaller_variant(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(drill_path()).expect("drill");
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("drills/policies/city-border.toml");
    assert!(text.contains("grids = 5.782") && text.contains("policy = \"policies/city-border.toml\""));
    let text = text
        .replace("grids = 5.782", "grids = 2")
        .replace("policy = \"policies/city-border.toml\"", &format!("policy = \"{}\"", policy.display()));
    let path = dir.join("city-border-small.toml");
    std::fs::write(&path, text).expect("write");
    path
}

/// Metres from a point to a segment, on a flat local frame.
fn distance_to_segment_m(point: Position, (start, end): (Position, Position)) -> f64 {
    let per_lon = 111_320.0 * point.lat.to_radians().cos();
    let per_lat = 110_574.0;
    let (ax, ay) = ((start.lon - point.lon) * per_lon, (start.lat - point.lat) * per_lat);
    let (bx, by) = ((end.lon - point.lon) * per_lon, (end.lat - point.lat) * per_lat);
    let (dx, dy) = (bx - ax, by - ay);
    let length2 = dx * dx + dy * dy;
    let t = if length2 > 0.0 { (-(ax * dx + ay * dy) / length2).clamp(0.0, 1.0) } else { 0.0 };
    (ax + t * dx).hypot(ay + t * dy)
}

#[test]
fn the_full_drill_has_a_real_size_city_and_the_map_commands_make_the_same_map() {
    let drill = drill::load(&drill_path()).unwrap_or_else(|error| panic!("{error}"));
    let count = |level: AreaLevel| drill.map.areas.iter().filter(|spec| spec.level == level).count();
    assert_eq!(count(AreaLevel::District), 13);
    assert_eq!(count(AreaLevel::Street), 114);
    assert_eq!(count(AreaLevel::Community), 436);
    let grids = count(AreaLevel::Grid);
    assert!((2_450..=2_600).contains(&grids), "{grids} grids");
    for district in drill.map.areas.iter().filter(|spec| spec.level == AreaLevel::District) {
        let vertices: usize = district.polygons.iter().flatten().map(|ring| ring.len()).sum();
        assert!(vertices >= 250, "{} has {vertices} vertices", district.id);
    }
    // `drill map city --seed 27` then `drill map subdivide --seed 27` with
    // the drill's counts write exactly the drill's map.
    let districts = pingji_scenarios::citymap::city(27, 13).expect("city");
    let counts = pingji_scenarios::citymap::Counts {
        streets_per_district: 8.77,
        communities_per_street: 3.825,
        grids_per_community: 5.782,
    };
    let map = pingji_scenarios::citymap::subdivide(&districts, &counts, 27, |_, _| {}).expect("subdivided");
    assert_eq!(pingji_scenarios::citymap::to_geojson(&map), drill.map_geojson);
    // Checked as an import checks it: children inside their parents and
    // siblings apart, to the data's precision, so no problem at all.
    let check =
        AreaMap::default().check_file(&drill.map_geojson, &pingji_engine::areas::MapProperties::default(), false).expect("reads");
    let problems: Vec<String> = check.reading.problems.iter().map(ToString::to_string).collect();
    assert!(problems.is_empty(), "{} problems, e.g. {:?}", problems.len(), problems.first());
}

struct Figures {
    placements: BTreeMap<IncidentId, (Placement, String, Position)>,
    roles: BTreeMap<AgentId, Role>,
}

fn figures(events: &[Event]) -> Figures {
    let mut placements = BTreeMap::new();
    let mut roles = BTreeMap::new();
    for event in events {
        match &event.kind {
            EventKind::IncidentReported { incident, spec, placement, .. } => {
                placements.insert(incident.clone(), (placement.clone(), spec.category.clone(), spec.at));
            }
            EventKind::AgentsUpserted { agents } => {
                roles.extend(agents.iter().map(|agent| (agent.id.clone(), agent.role)));
            }
            _ => {}
        }
    }
    Figures { placements, roles }
}

#[test]
fn border_incidents_are_staffed_from_both_sides_and_mutual_aid_keeps_to_its_rule() {
    let dir = tempfile::tempdir().expect("temp dir");
    let drill = drill::load(&smaller_variant(dir.path())).unwrap_or_else(|error| panic!("{error}"));
    let report = pingji_scenarios::run_in_process(&drill, &dir.path().join("out"), |_| {}).expect("drill runs");
    let events = pingji_scenarios::read_journal(&dir.path().join("out").join(pingji_scenarios::JOURNAL_FILE)).expect("journal");
    let figures = figures(&events);
    let (d1, d2, d5) = (AreaId::new("d1"), AreaId::new("d2"), AreaId::new("d5"));

    // The border expectations come first in the file and pass.
    assert_eq!(report.expectations.len(), 5);
    for result in &report.expectations[..3] {
        assert!(result.passed, "{result:?}");
    }
    assert_eq!(report.totals.incidents, 280);

    // 80 incidents within 50 m of the d1–d2 border, on either side.
    let areas = AreaMap::from(drill.map.clone());
    let shared = border::shared_border(areas.get(&d1).expect("d1"), areas.get(&d2).expect("d2"));
    assert!(shared.len() > 50, "a long shared border: {} segments", shared.len());
    let near: Vec<_> = figures.placements.values().filter(|(_, category, _)| category == "border_flooding").collect();
    assert_eq!(near.len(), 80);
    for (placement, _, at) in &near {
        let metres = shared.iter().map(|segment| distance_to_segment_m(*at, *segment)).fold(f64::INFINITY, f64::min);
        assert!(metres <= 50.5, "{at:?} is {metres:.1} m from the border");
        assert!(placement.within(AreaLevel::District, &d1) || placement.within(AreaLevel::District, &d2));
    }
    let in_d1 = near.iter().filter(|(placement, _, _)| placement.within(AreaLevel::District, &d1)).count();
    assert!(in_d1 > 10 && in_d1 < 70, "both sides of the border: {in_d1} of 80 in d1");

    // Staffed from both sides: people of d1 took border incidents in d2 and
    // people of d2 border incidents in d1.
    let mut offers = BTreeMap::new();
    let mut crossings: BTreeMap<(AreaId, AreaId), usize> = BTreeMap::new();
    let mut mutual_aid = 0;
    for event in &events {
        match &event.kind {
            EventKind::OfferSent { offer } => {
                offers.insert(offer.id.clone(), offer.clone());
                if offer.from_area.as_ref() == Some(&d5) {
                    mutual_aid += 1;
                    let (placement, _, _) = &figures.placements[&offer.incident];
                    // The rule for d1 reaches the whole flat area d1 belongs
                    // to, d2 included (docs/policy.md, "Across borders"), and
                    // nothing else.
                    let in_emergency = placement.within(AreaLevel::District, &d1) || placement.within(AreaLevel::District, &d2);
                    assert!(in_emergency, "d5 helps the d1-d2 emergency only, not {placement:?}");
                    let role = figures.roles[&offer.agent];
                    assert!(matches!(role, Role::CommunityWorker | Role::SunkCadre), "{role:?} sent from d5");
                }
            }
            EventKind::Assigned { offer, incident, .. } => {
                let (placement, category, _) = &figures.placements[incident];
                let from = offers[offer].from_area.clone().expect("offers name where the person came from");
                let own = placement.at(AreaLevel::District).expect("in a district").clone();
                if category == "border_flooding" && from != own {
                    *crossings.entry((from, own)).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    assert!(crossings.get(&(d1.clone(), d2.clone())).is_some_and(|count| *count > 0), "{crossings:?}");
    assert!(crossings.get(&(d2.clone(), d1.clone())).is_some_and(|count| *count > 0), "{crossings:?}");
    assert!(mutual_aid > 0, "d5 helped under the rule");

    // The expectations can fail: judged against other rules, the same events fail.
    let judge =
        |expectation: BorderExpectation, policy: &Policy, events: &[Event]| border::judge(&expectation, &areas, policy, events);
    let mut volunteers_only = drill.policy.clone();
    volunteers_only.mutual_aid[0].roles = vec![Role::Volunteer];
    assert!(!judge(BorderExpectation::MutualAidAsConfigured {}, &volunteers_only, &events).passed);
    let mut no_rule = drill.policy.clone();
    no_rule.mutual_aid.clear();
    let silent = judge(BorderExpectation::MutualAidAsConfigured {}, &no_rule, &events);
    assert!(!silent.passed && silent.actual.contains("no rule names"), "{silent:?}");
    let one_sided =
        BorderExpectation::AcrossBorderShare { category: Some("border_flooding".into()), share: 0.0, at_most: Some(0.01) };
    assert!(!judge(one_sided, &drill.policy, &events).passed);
    // A second assignment while the first is held.
    let first = events.iter().position(|event| matches!(event.kind, EventKind::Assigned { .. })).expect("an assignment");
    let mut doubled = events.clone();
    if let EventKind::Assigned { offer, agent, .. } = &events[first].kind {
        let other = figures
            .placements
            .keys()
            .find(|id| !matches!(&events[first].kind, EventKind::Assigned { incident, .. } if incident == *id));
        let kind = EventKind::Assigned {
            offer: offer.clone(),
            incident: other.expect("another incident").clone(),
            agent: agent.clone(),
        };
        doubled.insert(first + 1, Event { kind, ..events[first].clone() });
    }
    assert!(!judge(BorderExpectation::NobodyAssignedTwice {}, &drill.policy, &doubled).passed);
    assert!(drill.file.expectations.iter().any(|entry| matches!(entry.get_ref(), ExpectEntry::Border(_))));
}
