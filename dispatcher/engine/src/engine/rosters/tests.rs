//! Duty rosters in the engine, over the sample city on a virtual clock.

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
