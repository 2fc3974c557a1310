//! Duty rosters in the engine, over the sample city on a virtual clock.

use proptest::prelude::*;

use super::super::*;
use crate::engine::explain::ExplainQuery;
use crate::event::EventKind;
use crate::policy::OffShift;
use crate::roster::{Role, TravelMode};
use crate::rosters::{RosterCommand, RosterEvent, ShiftId, ShiftSpec, SwapId};

/// 2027-01-15 08:00 UTC (16:00 China Standard Time), a Friday.
const T0: Millis = Millis(1_800_000_000_000);

fn engine_with(off_shift: OffShift) -> Engine {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/maps/sample-city.geojson");
    let text = std::fs::read_to_string(path).expect("sample city present");
    let map = crate::areas::parse_geojson(&text).expect("sample city parses");
    let mut policy = Policy { staffing_check_s: 0, ..Policy::default() };
    policy.rosters.off_shift_in_normal = off_shift;
    let mut engine = Engine::new(policy);
    engine.execute(Command::ImportAreas(map), "operator:test", T0).expect("map imports");
    engine
}

fn person_at(engine: &mut Engine, id: &str, at: Position) {
    let profile = AgentProfile {
        id: AgentId::new(id),
        name: format!("person {id}"),
        role: Role::CommunityWorker,
        skills: Default::default(),
        phone: "13900000000".to_string(),
        home_area: None,
        travel_mode: TravelMode::Walk,
        on_duty: true,
        home: None,
    };
    engine
        .execute(Command::UpsertAgents { agents: vec![profile], all_new: true, tokens: Vec::new() }, "operator:test", T0)
        .expect("person added");
    engine.execute(Command::Connect { agent: AgentId::new(id) }, "agent:x", T0).expect("connects");
    engine.execute(Command::ReportLocation { agent: AgentId::new(id), at }, "agent:x", T0).expect("located");
}

/// A point `metres` east of `from`.
fn east(from: Position, metres: f64) -> Position {
    let degrees = metres / (crate::spatial::EARTH_RADIUS_M * from.lat.to_radians().cos()) * 180.0 / std::f64::consts::PI;
    Position { lon: from.lon + degrees, lat: from.lat }
}

fn every_day_shift(id: &str, area: &str, people: &[&str]) -> ShiftSpec {
    ShiftSpec {
        id: ShiftId::new(id),
        area: AreaId::new(area),
        duty: "duty_officer".to_string(),
        days: (1..=7).collect(),
        start_minute: 8 * 60,
        length_minutes: 24 * 60,
        people: people.iter().map(|person| AgentId::new(*person)).collect(),
    }
}

fn roster(engine: &mut Engine, command: RosterCommand, now: Millis) -> Result<Vec<Event>, Rejection> {
    engine.execute(Command::Rosters(command), "operator:commander", now)
}

/// `near` 100 m from the incident, off shift; `officer` 600 m away, on
/// shift; the grid of the incident has a roster. Returns the offers made.
fn offers_with(off_shift: OffShift, officer_on_shift: bool) -> (Engine, Vec<AgentId>, IncidentId) {
    let mut engine = engine_with(off_shift);
    let grid = engine.state().areas.centroid(&AreaId::new("d1-s1-c1-g1")).expect("centroid");
    person_at(&mut engine, "near", east(grid, 100.0));
    person_at(&mut engine, "officer", east(grid, 600.0));
    let people: &[&str] = if officer_on_shift { &["officer"] } else { &[] };
    roster(&mut engine, RosterCommand::SetShifts(vec![every_day_shift("s1-duty", "d1-s1-c1-g1", people)]), T0)
        .expect("shift set");
    let spec = IncidentSpec {
        at: grid,
        category: "medical".to_string(),
        priority: 2,
        skills: Default::default(),
        headcount: 1,
        description: String::new(),
        source_id: String::new(),
    };
    let events = engine.execute(Command::CreateIncident { id: None, spec, force: false }, "operator:test", T0).expect("incident");
    let incident = events[0].kind.incident_id().expect("incident").clone();
    let offered = events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::OfferSent { offer } => Some(offer.agent.clone()),
            _ => None,
        })
        .collect();
    (engine, offered, incident)
}

#[test]
fn the_person_on_shift_is_offered_before_a_nearer_one_off_shift() {
    let (engine, offered, incident) = offers_with(OffShift::AfterOnShift, true);
    assert_eq!(offered, [AgentId::new("officer")]);
    let explained =
        engine.explain(&ExplainQuery { incident, agent: None, candidates: 10, passed_over: 10 }, T0).expect("explains");
    let order: Vec<(&str, bool)> =
        explained.candidates.iter().map(|entry| (entry.candidate.agent.as_str(), entry.off_shift)).collect();
    assert_eq!(order, [("officer", false), ("near", true)]);
}

#[test]
fn off_shift_people_are_offered_only_as_the_policy_allows() {
    let (_, offered, _) = offers_with(OffShift::AfterOnShift, false);
    assert_eq!(offered, [AgentId::new("near")], "nobody on shift: the nearest off shift");
    let (engine, offered, incident) = offers_with(OffShift::Never, false);
    assert!(offered.is_empty(), "never: nobody off shift, {offered:?}");
    let explained = engine
        .explain(&ExplainQuery { incident, agent: Some(AgentId::new("near")), candidates: 10, passed_over: 10 }, T0)
        .expect("explains");
    assert_eq!(explained.passed_over[0].reason, crate::engine::explain::Reason::OffShift);
    let (_, offered, _) = offers_with(OffShift::Always, true);
    assert_eq!(offered, [AgentId::new("near")], "always: alike, nearest first");
}

#[test]
fn in_an_emergency_everyone_is_eligible_and_without_a_roster_nothing_changes() {
    let mut engine = engine_with(OffShift::Never);
    let grid = engine.state().areas.centroid(&AreaId::new("d1-s1-c1-g1")).expect("centroid");
    person_at(&mut engine, "near", east(grid, 100.0));
    roster(&mut engine, RosterCommand::SetShifts(vec![every_day_shift("s1-duty", "d1-s1-c1-g1", &[])]), T0).expect("shift");
    engine
        .execute(
            Command::SetMode { area: AreaId::new("d1"), mode: Mode::EmergencyIi, reason: "typhoon".to_string() },
            "operator:commander",
            T0,
        )
        .expect("switch");
    let spec = IncidentSpec {
        at: grid,
        category: "medical".to_string(),
        priority: 2,
        skills: Default::default(),
        headcount: 1,
        description: String::new(),
        source_id: String::new(),
    };
    let events = engine.execute(Command::CreateIncident { id: None, spec, force: false }, "operator:test", T0).expect("ok");
    assert!(events.iter().any(|event| matches!(&event.kind, EventKind::OfferSent { offer } if offer.agent.as_str() == "near")));
}

#[test]
fn a_swap_takes_effect_only_once_approved_and_check_in_needs_one_to_be_on_duty() {
    let (mut engine, _, _) = offers_with(OffShift::AfterOnShift, true);
    let day = crate::rosters::local_day(T0, 480);
    let request = RosterCommand::RequestSwap {
        shift: ShiftId::new("s1-duty"),
        day,
        from: AgentId::new("officer"),
        to: AgentId::new("near"),
    };
    roster(&mut engine, request.clone(), T0).expect("swap requested");
    assert!(engine.rosters().on_shift_at(T0, 480).contains(&AgentId::new("officer")), "not yet approved");
    let again = roster(&mut engine, request, T0).expect_err("one waiting swap per occurrence");
    assert!(matches!(again, Rejection::AlreadyExists(_)));
    let approve = RosterCommand::DecideSwap { swap: SwapId::new("swap-000001"), approve: true, reason: String::new() };
    roster(&mut engine, approve.clone(), T0).expect("approved");
    assert!(roster(&mut engine, approve, T0).is_err(), "decided once");
    let on_shift = engine.rosters().on_shift_at(T0, 480);
    assert!(on_shift.contains(&AgentId::new("near")) && !on_shift.contains(&AgentId::new("officer")));

    roster(&mut engine, RosterCommand::CheckIn { agent: AgentId::new("near"), shift: ShiftId::new("s1-duty") }, T0)
        .expect("checks in");
    let refused =
        roster(&mut engine, RosterCommand::CheckIn { agent: AgentId::new("officer"), shift: ShiftId::new("s1-duty") }, T0)
            .expect_err("not on duty after the swap");
    assert!(matches!(refused, Rejection::FailedPrecondition(_)));
    let out = roster(&mut engine, RosterCommand::CheckOut { agent: AgentId::new("near") }, T0.plus_seconds(3600)).expect("out");
    assert!(matches!(&out[0].kind, EventKind::Rosters(RosterEvent::ShiftCheckedOut { since, .. }) if *since == T0));
}

#[test]
fn bad_roster_commands_are_refused_and_change_nothing() {
    let mut engine = engine_with(OffShift::AfterOnShift);
    let before = engine.state().clone();
    let mut bad = every_day_shift("s1", "d1-s1", &["nobody"]);
    assert!(matches!(
        roster(&mut engine, RosterCommand::SetShifts(vec![bad.clone()]), T0),
        Err(Rejection::InvalidField { field: "people", .. })
    ));
    bad.people.clear();
    bad.days = vec![8];
    assert!(matches!(roster(&mut engine, RosterCommand::SetShifts(vec![bad.clone()]), T0), Err(Rejection::InvalidArgument(_))));
    bad.days = vec![1];
    bad.area = AreaId::new("atlantis");
    assert!(roster(&mut engine, RosterCommand::SetShifts(vec![bad]), T0).is_err());
    assert!(roster(&mut engine, RosterCommand::RemoveShift(ShiftId::new("s1")), T0).is_err());
    assert_eq!(engine.state(), &before);
}

/// The roster steps of the fuzz target (`fuzz/fuzz_targets/engine_commands.rs`),
/// with incidents and time passing, so their invariants run in the normal
/// test suite too.
#[derive(Clone, Debug)]
enum Step {
    Shift { shift: usize, day: u8, start_hour: u32, hours: u32, people: u8 },
    RemoveShift { shift: usize },
    Availability { person: usize, day: u8 },
    Absent { person: usize, hours: i64 },
    RequestSwap { shift: usize, days_ahead: i64, from: usize, to: usize },
    DecideSwap { swap: usize, approve: bool },
    CheckIn { person: usize, shift: usize },
    CheckOut { person: usize },
    Incident { grid: usize },
    EndIncident { incident: usize },
    Accept { person: usize },
    Advance { hours: u64 },
}

const PEOPLE: [&str; 4] = ["a", "b", "c", "d"];
const GRIDS: [&str; 2] = ["d1-s1-c1-g1", "d1-s2-c1-g1"];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..2usize, 1..8u8, 0..24u32, 1..25u32, any::<u8>())
            .prop_map(|(shift, day, start_hour, hours, people)| Step::Shift { shift, day, start_hour, hours, people }),
        1 => (0..2usize).prop_map(|shift| Step::RemoveShift { shift }),
        1 => (0..4usize, 0..8u8).prop_map(|(person, day)| Step::Availability { person, day }),
        1 => (0..4usize, 1..48i64).prop_map(|(person, hours)| Step::Absent { person, hours }),
        2 => (0..2usize, -1..8i64, 0..4usize, 0..4usize)
            .prop_map(|(shift, days_ahead, from, to)| Step::RequestSwap { shift, days_ahead, from, to }),
        2 => (0..6usize, any::<bool>()).prop_map(|(swap, approve)| Step::DecideSwap { swap, approve }),
        2 => (0..4usize, 0..2usize).prop_map(|(person, shift)| Step::CheckIn { person, shift }),
        1 => (0..4usize).prop_map(|person| Step::CheckOut { person }),
        2 => (0..2usize).prop_map(|grid| Step::Incident { grid }),
        1 => (0..6usize).prop_map(|incident| Step::EndIncident { incident }),
        2 => (0..4usize).prop_map(|person| Step::Accept { person }),
        1 => (1..30u64).prop_map(|hours| Step::Advance { hours }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_roster_commands_keep_the_invariants_and_replay_exactly(steps in prop::collection::vec(step(), 1..60)) {
        let mut engine = engine_with(OffShift::AfterOnShift);
        for (index, id) in PEOPLE.iter().enumerate() {
            let grid = engine.state().areas.centroid(&AreaId::new(GRIDS[index % 2])).expect("centroid");
            person_at(&mut engine, id, east(grid, 100.0 * (index as f64 + 1.0)));
        }
        let start = engine.state().clone();
        let mut events = Vec::new();
        let mut now = T0;
        let mut incidents: Vec<IncidentId> = Vec::new();
        for step in steps {
            let agent = |n: usize| AgentId::new(PEOPLE[n]);
            let shift = |n: usize| ShiftId::new(["day", "night"][n]);
            let before = engine.state().clone();
            let command = match step {
                Step::Shift { shift: n, day, start_hour, hours, people } => Command::Rosters(RosterCommand::SetShifts(vec![ShiftSpec {
                    id: shift(n),
                    area: AreaId::new(GRIDS[n]),
                    duty: "duty_officer".to_string(),
                    days: vec![day],
                    start_minute: start_hour * 60,
                    length_minutes: hours * 60,
                    people: (0..PEOPLE.len()).filter(|bit| people & (1 << bit) != 0).map(agent).collect(),
                }])),
                Step::RemoveShift { shift: n } => Command::Rosters(RosterCommand::RemoveShift(shift(n))),
                Step::Availability { person, day } => Command::Rosters(RosterCommand::SetAvailability {
                    agent: agent(person),
                    // Day 0: none declared (any time).
                    windows: if day == 0 { vec![] } else { vec![crate::rosters::WeeklyWindow { day, start_minute: 0, length_minutes: 12 * 60 }] },
                }),
                Step::Absent { person, hours } => Command::Rosters(RosterCommand::RecordAbsence(crate::rosters::Absence {
                    agent: agent(person),
                    from: now,
                    until: Millis(now.0 + hours * 3_600_000),
                    kind: crate::rosters::AbsenceKind::Sick,
                })),
                Step::RequestSwap { shift: n, days_ahead, from, to } => Command::Rosters(RosterCommand::RequestSwap {
                    shift: shift(n),
                    day: crate::rosters::local_day(now, engine.roster_utc_offset()) + days_ahead,
                    from: agent(from),
                    to: agent(to),
                }),
                Step::DecideSwap { swap, approve } => Command::Rosters(RosterCommand::DecideSwap {
                    swap: SwapId::new(format!("swap-{:06}", swap + 1)),
                    approve,
                    reason: String::new(),
                }),
                Step::CheckIn { person, shift: n } => Command::Rosters(RosterCommand::CheckIn { agent: agent(person), shift: shift(n) }),
                Step::CheckOut { person } => Command::Rosters(RosterCommand::CheckOut { agent: agent(person) }),
                Step::Incident { grid } => {
                    let at = engine.state().areas.centroid(&AreaId::new(GRIDS[grid])).expect("centroid");
                    let spec = IncidentSpec {
                        at,
                        category: "medical".to_string(),
                        priority: 2,
                        skills: Default::default(),
                        headcount: 1,
                        description: String::new(),
                        source_id: String::new(),
                    };
                    Command::CreateIncident { id: None, spec, force: true }
                }
                Step::EndIncident { incident } if !incidents.is_empty() => Command::CloseIncident {
                    incident: incidents[incident % incidents.len()].clone(),
                    feedback: "handled".to_string(),
                },
                Step::EndIncident { .. } => continue,
                Step::Accept { person } => {
                    let record = &engine.state().agents[&agent(person)];
                    let Some((offer, _)) = record.open_offer.clone() else { continue };
                    Command::Accept { agent: agent(person), offer }
                }
                Step::Advance { hours } => {
                    now = now.plus_seconds(hours * 3600);
                    while let Some(deadline) = engine.next_deadline().filter(|deadline| *deadline <= now) {
                        events.extend(engine.tick(deadline));
                    }
                    invariants::check(&engine).map_err(TestCaseError::fail)?;
                    continue;
                }
            };
            match engine.execute(command, "operator:test", now) {
                Ok(new) => {
                    if let Some(EventKind::IncidentReported { incident, .. }) = new.first().map(|event| &event.kind) {
                        incidents.push(incident.clone());
                    }
                    events.extend(new);
                }
                Err(_) => prop_assert_eq!(engine.state(), &before, "a refused command changed the state"),
            }
            invariants::check(&engine).map_err(TestCaseError::fail)?;
            for (person, attendance) in &engine.rosters().checked_in {
                prop_assert!(engine.state().agents.contains_key(person), "{} checked in but not on the roster", person);
                prop_assert!(attendance.since <= now);
            }
        }
        let mut fresh = Engine::restore(engine.policy().clone(), start);
        for event in &events {
            fresh.replay(event).map_err(TestCaseError::fail)?;
        }
        prop_assert_eq!(fresh.state(), engine.state());
    }
}
