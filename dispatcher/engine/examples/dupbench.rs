//! `dupbench`: how well duplicates are caught at intake (issue #21): a
//! generated stream of reports over the sample city in which the truth is
//! known (which reports repeat which real event), run through the engine's
//! own `duplicates` query with the policy's thresholds. Prints precision
//! and recall, and how long a query takes. Figures are printed, never
//! asserted.
//!
//! The stream: real events arrive at random (one every `GAP_S` seconds on
//! average), a third of them near an earlier one (a flooded street has many
//! flooded cellars: close, alike, and not duplicates). Each real event is
//! reported once, and again by up to three more people within the next
//! half hour, from where they stand (tens of metres off; one in ten gives a
//! wrong address hundreds of metres away) and in their own words (a
//! quarter name a similar category, one in twenty an unrelated one). The
//! first report of an event is created; the later ones are the duplicates
//! the operator should be told about. Events end after 30 to 120 minutes.
//!
//! ```sh
//! cargo run --release -p pingji-engine --example dupbench [-- EVENTS [SEED [WITHIN_M]]]
//! ```

use std::collections::HashMap;
use std::time::Instant;

use pingji_engine::areas::parse_geojson;
use pingji_engine::engine::duplicates::DuplicateQuery;
use pingji_engine::engine::{Command, Engine};
use pingji_engine::ids::{IncidentId, Millis};
use pingji_engine::incident::IncidentSpec;
use pingji_engine::policy::Policy;
use pingji_engine::spatial::Position;

const START: Millis = Millis(1_800_000_000_000);
/// Mean seconds between two real events.
const GAP_S: f64 = 90.0;
/// Categories in the groups the default policy calls similar, and some in none.
const GROUPS: &[&[&str]] = &[
    &["fire", "smoke"],
    &["flooding", "waterlogging", "water_leak"],
    &["medical", "fall", "injury"],
    &["rescue", "trapped", "collapse"],
    &["tree_down"],
    &["power_outage"],
    &["welfare_check"],
];

/// A small deterministic generator (xorshift), so that runs compare.
struct Sequence(u64);

impl Sequence {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[((self.unit() * items.len() as f64) as usize).min(items.len() - 1)]
    }

    /// An exponential draw with this mean.
    fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).max(1e-12).ln()
    }
}

/// `at` moved `metres` in a random direction.
fn moved(at: Position, metres: f64, random: &mut Sequence) -> Position {
    let angle = random.unit() * std::f64::consts::TAU;
    let north = metres * angle.sin() / 111_320.0;
    let east = metres * angle.cos() / (111_320.0 * at.lat.to_radians().cos());
    Position { lon: at.lon + east, lat: at.lat + north }
}

struct Report {
    at_ms: i64,
    event: usize,
    first: bool,
    place: Position,
    category: String,
}

fn percentile(sorted: &[f64], share: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * share).round() as usize]
}

fn main() -> Result<(), String> {
    let numbers: Vec<u64> = std::env::args()
        .skip(1)
        .map(|arg| arg.parse::<u64>().map_err(|_| format!("{arg:?} is not a number; give [EVENTS [SEED [WITHIN_M]]]")))
        .collect::<Result<_, _>>()?;
    let events = numbers.first().copied().unwrap_or(2_000) as usize;
    let mut random = Sequence(numbers.get(1).copied().unwrap_or(7).max(1));

    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/maps/sample-city.geojson"))
        .map_err(|error| format!("cannot read the sample city: {error}"))?;
    let map = parse_geojson(&text)?;
    let city = map.areas.iter().find(|area| area.id.as_str() == "city").ok_or("the sample city has no area `city`")?;
    let (mut west, mut east, mut south, mut north) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for [lon, lat] in city.polygons.iter().flatten().flatten() {
        west = west.min(*lon);
        east = east.max(*lon);
        south = south.min(*lat);
        north = north.max(*lat);
    }
    let mut policy = Policy { staffing_check_s: 0, ..Policy::default() };
    if let Some(within_m) = numbers.get(2) {
        policy.duplicates.within_m = u32::try_from(*within_m).map_err(|_| "WITHIN_M is too large".to_string())?;
    }
    let rule = policy.duplicates.clone();
    let mut engine = Engine::new(policy);
    let operator = "operator:bench";
    engine.execute(Command::ImportAreas(map.clone()), operator, START).map_err(|error| error.to_string())?;

    // The real events, then their reports in time order.
    let mut places: Vec<(Position, usize, i64)> = Vec::new();
    let mut reports = Vec::new();
    let mut ends = Vec::new();
    let mut clock_s = 0.0;
    for event in 0..events {
        clock_s += random.exponential(GAP_S);
        let near = places.iter().rev().take(20).find(|_| random.unit() < 0.1).copied();
        let (place, group) = match near {
            Some((earlier, group, _)) if random.unit() < 0.35 => {
                (moved(earlier, 150.0 + 400.0 * random.unit(), &mut random), group)
            }
            _ => (
                Position { lon: west + (east - west) * random.unit(), lat: south + (north - south) * random.unit() },
                ((random.unit() * GROUPS.len() as f64) as usize).min(GROUPS.len() - 1),
            ),
        };
        let at_ms = START.0 + (clock_s * 1000.0) as i64;
        places.push((place, group, at_ms));
        ends.push(at_ms + ((30.0 + 90.0 * random.unit()) * 60_000.0) as i64);
        let category = random.pick(GROUPS[group]).to_string();
        reports.push(Report { at_ms, event, first: true, place, category: category.clone() });
        let again = match random.unit() {
            draw if draw < 0.5 => 0,
            draw if draw < 0.8 => 1,
            draw if draw < 0.95 => 2,
            _ => 3,
        };
        for _ in 0..again {
            let off_m = if random.unit() < 0.1 { 300.0 + 500.0 * random.unit() } else { random.exponential(40.0) };
            let category = match random.unit() {
                draw if draw < 0.75 => category.clone(),
                draw if draw < 0.95 => random.pick(GROUPS[group]).to_string(),
                _ => random.pick(GROUPS[(group + 1) % GROUPS.len()]).to_string(),
            };
            let lag_ms = (random.exponential(8.0).min(30.0) * 60_000.0) as i64;
            reports.push(Report {
                at_ms: at_ms + lag_ms,
                event,
                first: false,
                place: moved(place, off_m, &mut random),
                category,
            });
        }
    }
    reports.sort_by_key(|report| (report.at_ms, !report.first));

    let mut incident_of: HashMap<usize, IncidentId> = HashMap::new();
    let mut event_of: HashMap<IncidentId, usize> = HashMap::new();
    let mut closing: Vec<(i64, IncidentId)> = Vec::new();
    let (mut flagged, mut right, mut right_first, mut repeats, mut caught, mut originals_flagged) = (0, 0, 0, 0, 0, 0);
    let mut query_us = Vec::with_capacity(reports.len());
    for report in &reports {
        let now = Millis(report.at_ms);
        closing.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
        while closing.last().is_some_and(|(at, _)| *at <= report.at_ms) {
            let Some((at, incident)) = closing.pop() else { break };
            let close = Command::CloseIncident { incident, feedback: "done".into() };
            let _ = engine.execute(close, operator, Millis(at));
        }
        let query = DuplicateQuery::Report { at: report.place, category: report.category.clone() };
        let started = Instant::now();
        let found = engine.duplicates(&query, now).map_err(|error| error.to_string())?;
        query_us.push(started.elapsed().as_secs_f64() * 1e6);
        let suggested: Vec<usize> = found.iter().filter_map(|duplicate| event_of.get(&duplicate.incident.id).copied()).collect();
        // A repeat the operator should be told about: its event is still open.
        let open = incident_of.contains_key(&report.event) && report.at_ms < ends[report.event];
        if !suggested.is_empty() {
            flagged += 1;
            if suggested.contains(&report.event) {
                right += 1;
            }
            if suggested.first() == Some(&report.event) {
                right_first += 1;
            }
            if report.first {
                originals_flagged += 1;
            }
        }
        if !report.first && open {
            repeats += 1;
            if suggested.contains(&report.event) {
                caught += 1;
            }
        }
        if report.first {
            let spec = IncidentSpec {
                at: report.place,
                category: report.category.clone(),
                priority: 2,
                skills: Default::default(),
                headcount: 1,
                description: String::new(),
                source_id: String::new(),
            };
            let created = engine.execute(Command::CreateIncident { id: None, spec, force: true }, operator, now);
            if let Some(id) = created.ok().and_then(|events| events.first().and_then(|event| event.kind.incident_id()).cloned()) {
                incident_of.insert(report.event, id.clone());
                event_of.insert(id.clone(), report.event);
                closing.push((ends[report.event], id));
            }
        }
    }
    query_us.sort_by(f64::total_cmp);
    let share = |part: usize, whole: usize| if whole == 0 { 0.0 } else { 100.0 * part as f64 / whole as f64 };
    println!(
        "dupbench: {} real events, {} reports ({} repeats of an open incident); policy: within {} m and {} min, similar groups",
        events,
        reports.len(),
        repeats,
        rule.within_m,
        rule.within_minutes
    );
    println!(
        "precision {:.1} % ({right} of {flagged} flagged reports had their own event among the suggestions; {} first reports were flagged)",
        share(right, flagged),
        originals_flagged
    );
    println!("recall    {:.1} % ({caught} of {repeats} repeats were flagged with their event)", share(caught, repeats));
    println!("first suggestion right: {:.1} % of flagged reports", share(right_first, flagged));
    println!(
        "query: p50 {:.1} µs, p99 {:.1} µs over {} reports",
        percentile(&query_us, 0.5),
        percentile(&query_us, 0.99),
        query_us.len()
    );
    Ok(())
}
