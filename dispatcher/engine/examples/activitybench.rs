//! `activitybench`: how fast the activity fold (`pingji_engine::activity`,
//! behind `ActivityReport`) gets through a journal: N synthetic events in
//! the shape a busy city journals them (per incident: a report, three
//! offers, a decline, a lapse, an acceptance, staffed, arrival, completion,
//! close; people going on and off duty; call-ups, field reports, grid
//! staffing alerts), folded once as typed events and once decoded from the
//! journal's JSON bodies first, as the dispatcher reads them. Figures are
//! printed, never asserted. Reading the pages from SQLite is not included
//! (see "Restart: replaying the journal" in docs/PERFORMANCE.md).
//!
//! ```sh
//! cargo run --release -p pingji-engine --example activitybench -- 1000000
//! ```

use std::collections::BTreeSet;
use std::time::Instant;

use pingji_engine::activity::{ActivityFold, ActivityQuery};
use pingji_engine::areas::{AreaImport, AreaLevel, AreaSpec, Placement};
use pingji_engine::event::{DISPATCHER, Event, EventKind};
use pingji_engine::ids::{AgentId, AreaId, CallupId, IncidentId, Millis, OfferId};
use pingji_engine::incident::{IncidentSpec, OfferRecord};
use pingji_engine::roster::{AgentProfile, AgentStatus, Role, TravelMode};
use pingji_engine::spatial::Position;

const PEOPLE: usize = 20_000;
const COMMUNITIES: usize = 50;
const GRIDS_PER_COMMUNITY: usize = 8;
const T0: i64 = 1_772_352_000_000;

/// A small deterministic generator (xorshift), so runs compare.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }
}

fn grid_id(grid: usize) -> AreaId {
    AreaId::new(format!("c{:02}-g{}", grid / GRIDS_PER_COMMUNITY, grid % GRIDS_PER_COMMUNITY))
}

fn placement(grid: usize) -> Placement {
    Placement::from_areas([
        (AreaLevel::City, AreaId::new("city")),
        (AreaLevel::Community, AreaId::new(format!("c{:02}", grid / GRIDS_PER_COMMUNITY))),
        (AreaLevel::Grid, grid_id(grid)),
    ])
}

fn events(count: usize) -> Vec<Event> {
    let mut random = Random(0x9E37_79B9_7F4A_7C15);
    let mut out: Vec<Event> = Vec::with_capacity(count + 16);
    let mut at = T0;
    let push = |out: &mut Vec<Event>, at: i64, kind: EventKind| {
        let seq = out.len() as u64 + 1;
        out.push(Event { seq, at: Millis(at), actor: DISPATCHER.to_string(), kind });
    };
    let mut areas = vec![AreaSpec {
        id: AreaId::new("city"),
        name: "city".into(),
        level: AreaLevel::City,
        parent: None,
        polygons: Vec::new(),
    }];
    for community in 0..COMMUNITIES {
        let id = AreaId::new(format!("c{community:02}"));
        areas.push(AreaSpec {
            id: id.clone(),
            name: format!("社区{community}"),
            level: AreaLevel::Community,
            parent: Some(AreaId::new("city")),
            polygons: Vec::new(),
        });
        for grid in 0..GRIDS_PER_COMMUNITY {
            areas.push(AreaSpec {
                id: grid_id(community * GRIDS_PER_COMMUNITY + grid),
                name: format!("网格{community}-{grid}"),
                level: AreaLevel::Grid,
                parent: Some(id.clone()),
                polygons: Vec::new(),
            });
        }
    }
    push(&mut out, at, EventKind::AreasImported { import: AreaImport { areas, service_centres: Vec::new() } });
    let grids = COMMUNITIES * GRIDS_PER_COMMUNITY;
    let agents: Vec<AgentProfile> = (0..PEOPLE)
        .map(|index| AgentProfile {
            id: AgentId::new(format!("p{index:06}")),
            name: format!("person {index}"),
            role: Role::Volunteer,
            skills: BTreeSet::new(),
            phone: String::new(),
            home_area: Some(grid_id(index % grids)),
            travel_mode: TravelMode::Walk,
            on_duty: index % 3 != 0,
            home: None,
        })
        .collect();
    push(&mut out, at, EventKind::AgentsUpserted { agents });
    let spec = IncidentSpec {
        at: Position { lon: 120.1, lat: 30.2 },
        category: "medical".into(),
        priority: 2,
        skills: BTreeSet::new(),
        headcount: 1,
        description: "a resident fell".into(),
        source_id: String::new(),
    };
    let person = |index: usize| AgentId::new(format!("p{index:06}"));
    let mut number = 0usize;
    while out.len() < count {
        number += 1;
        at += 2_000;
        let incident = IncidentId::new(format!("inc-{number:07}"));
        let grid = random.below(grids);
        push(
            &mut out,
            at,
            EventKind::IncidentReported {
                incident: incident.clone(),
                spec: spec.clone(),
                placement: placement(grid),
                scope: AreaLevel::Grid,
                activation: None,
            },
        );
        let who = [random.below(PEOPLE), random.below(PEOPLE), random.below(PEOPLE)];
        for (rank, agent) in who.iter().enumerate() {
            let offer = OfferRecord {
                id: OfferId::new(format!("{incident}-o{rank}")),
                incident: incident.clone(),
                agent: person(*agent),
                sent_at: Millis(at + rank as i64 * 30_000),
                deadline: Millis(at + 120_000),
                distance_m: 300.0,
                eta_s: 240.0,
                level: AreaLevel::Grid,
                flat: false,
                origin: None,
                from_area: None,
            };
            push(&mut out, at + rank as i64 * 30_000, EventKind::OfferSent { offer });
        }
        let offer = |rank: usize| OfferId::new(format!("{incident}-o{rank}"));
        push(
            &mut out,
            at + 40_000,
            EventKind::OfferDeclined {
                offer: offer(0),
                incident: incident.clone(),
                agent: person(who[0]),
                reason: "too far".into(),
            },
        );
        push(
            &mut out,
            at + 150_000,
            EventKind::OfferTimedOut { offer: offer(1), incident: incident.clone(), agent: person(who[1]) },
        );
        push(&mut out, at + 160_000, EventKind::Assigned { offer: offer(2), incident: incident.clone(), agent: person(who[2]) });
        push(&mut out, at + 160_000, EventKind::IncidentStaffed { incident: incident.clone() });
        push(&mut out, at + 400_000, EventKind::AgentArrived { incident: incident.clone(), agent: person(who[2]) });
        push(
            &mut out,
            at + 1_200_000,
            EventKind::AssignmentCompleted {
                incident: incident.clone(),
                agent: person(who[2]),
                feedback: "done".into(),
                photo_refs: Vec::new(),
            },
        );
        push(&mut out, at + 1_260_000, EventKind::IncidentClosed { incident, feedback: "ok".into(), released: Vec::new() });
        let someone = person(random.below(PEOPLE));
        let status = if random.below(2) == 0 { AgentStatus::OffDuty } else { AgentStatus::Available };
        push(&mut out, at + 1_300_000, EventKind::AgentStatusChanged { agent: someone, status });
        if number % 50 == 0 {
            let callup = CallupId::new(format!("callup-{number}"));
            let people: Vec<AgentId> = (0..10).map(|_| person(random.below(PEOPLE))).collect();
            let first = people[0].clone();
            push(
                &mut out,
                at + 1_300_000,
                EventKind::CallupIssued {
                    callup: callup.clone(),
                    area: AreaId::new(format!("c{:02}", grid / GRIDS_PER_COMMUNITY)),
                    roles: Vec::new(),
                    reason: "drill".into(),
                    deadline: Millis(at + 1_900_000),
                    people,
                    by_switch: false,
                    activation: None,
                },
            );
            push(&mut out, at + 1_400_000, EventKind::CheckedIn { callup, agent: first });
            push(&mut out, at + 1_400_000, EventKind::GridStaffingLow { grid: grid_id(grid), available: 0, minimum: 1 });
            push(&mut out, at + 1_500_000, EventKind::GridStaffingRestored { grid: grid_id(grid), available: 1 });
        }
    }
    // Journal order is time order.
    out.sort_by_key(|event| event.at);
    for (index, event) in out.iter_mut().enumerate() {
        event.seq = index as u64 + 1;
    }
    out.truncate(count);
    out
}

fn main() {
    let count: usize = match std::env::args().nth(1).map(|arg| arg.parse()) {
        None => 1_000_000,
        Some(Ok(count)) => count,
        Some(Err(_)) => {
            eprintln!("give the number of events, e.g. 1000000");
            std::process::exit(2);
        }
    };
    let made = Instant::now();
    let journal = events(count);
    let first = journal.first().map_or(T0, |event| event.at.0);
    let last = journal.last().map_or(T0, |event| event.at.0);
    println!(
        "{} events over {:.1} days, made in {:.1} s",
        journal.len(),
        (last - first) as f64 / 86_400_000.0,
        made.elapsed().as_secs_f64()
    );
    let bodies: Vec<(Millis, String)> =
        journal.iter().map(|event| (event.at, serde_json::to_string(&event.kind).expect("events serialise"))).collect();
    let bytes: usize = bodies.iter().map(|(_, body)| body.len()).sum();
    println!("journal bodies: {:.0} MB of JSON", bytes as f64 / 1e6);

    for (label, area) in [("everywhere", None), ("one community", Some(AreaId::new("c07")))] {
        let query = ActivityQuery { from: Millis(first), to: Millis(last + 1), area, staffed_within_s: 600 };
        let typed = Instant::now();
        let mut fold = ActivityFold::new(query.clone());
        for event in &journal {
            fold.fold(event);
        }
        let report = fold.finish(Millis(last + 1));
        let typed_s = typed.elapsed().as_secs_f64();

        let decoded = Instant::now();
        let mut fold = ActivityFold::new(query);
        for (seq, (at, body)) in bodies.iter().enumerate() {
            let kind: EventKind = serde_json::from_str(body).expect("bodies decode");
            fold.fold(&Event { seq: seq as u64 + 1, at: *at, actor: DISPATCHER.to_string(), kind });
        }
        let again = fold.finish(Millis(last + 1));
        let decoded_s = decoded.elapsed().as_secs_f64();
        assert_eq!(report, again, "the same report either way");
        println!(
            "{label}: {} people, {} areas; typed fold {:.2} s ({:.1} M events/s); decode + fold {:.2} s ({:.2} M events/s)",
            report.people.len(),
            report.areas.len(),
            typed_s,
            journal.len() as f64 / typed_s / 1e6,
            decoded_s,
            journal.len() as f64 / decoded_s / 1e6
        );
    }
}
