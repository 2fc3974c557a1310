//! Safety check-ins and help calls on a virtual clock, over the sample city.

use super::*;
use crate::areas::parse_geojson;
use crate::engine::Command;
use crate::ids::OfferId;
use crate::policy::{Mode, Policy};
use crate::roster::{AgentProfile, Role, TravelMode};

const T0: Millis = Millis(1_800_000_000_000);
const MINUTE: i64 = 60_000;

fn policy() -> Policy {
    let mut policy = Policy { staffing_check_s: 0, ..Policy::default() };
    policy.safety.interval_min.emergency_i = Some(10);
    policy
}

/// The sample city with `d1` in emergency I (check-ins every 10 minutes).
fn engine() -> Engine {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/maps/sample-city.geojson");
    let map = parse_geojson(&std::fs::read_to_string(path).expect("sample city present")).expect("parses");
    let mut engine = Engine::new(policy());
    engine.execute(Command::ImportAreas(map), "operator:test", T0).expect("map imports");
    let switch = Command::SetMode { area: AreaId::new("d1"), mode: Mode::EmergencyI, reason: "typhoon".into() };
    engine.execute(switch, "operator:cmd", T0).expect("switches");
    engine
}

fn grid_centre(engine: &Engine) -> Position {
    engine.state().areas.centroid(&AreaId::new("d1-s1-c1-g1")).expect("centroid")
}

fn east(from: Position, metres: f64) -> Position {
    let degrees = metres / (crate::spatial::EARTH_RADIUS_M * from.lat.to_radians().cos()) * 180.0 / std::f64::consts::PI;
    Position { lon: from.lon + degrees, lat: from.lat }
}

fn person_at(engine: &mut Engine, id: &str, at: Position, home: Option<&str>) {
    let profile = AgentProfile {
        id: AgentId::new(id),
        name: format!("person {id}"),
        role: Role::Volunteer,
        skills: Default::default(),
        phone: "13900000000".to_string(),
        home_area: home.map(AreaId::new),
        travel_mode: TravelMode::Walk,
        on_duty: true,
        home: None,
    };
    let add = Command::UpsertAgents { agents: vec![profile], all_new: true, tokens: Vec::new() };
    engine.execute(add, "operator:test", T0).expect("person added");
    engine.execute(Command::Connect { agent: AgentId::new(id) }, "agent", T0).expect("connects");
    engine.execute(Command::ReportLocation { agent: AgentId::new(id), at }, "agent", T0).expect("located");
}

/// `worker` is assigned an incident at the grid's centre at T0.
fn assigned(engine: &mut Engine, worker: &str) -> IncidentId {
    let spec = IncidentSpec {
        at: grid_centre(engine),
        category: "flooding".into(),
        priority: 2,
        skills: Default::default(),
        headcount: 1,
        description: String::new(),
        source_id: String::new(),
    };
    let events = engine.execute(Command::CreateIncident { id: None, spec, force: false }, "operator:test", T0).expect("created");
    let incident = events[0].kind.incident_id().expect("names it").clone();
    let offer: OfferId = events
        .iter()
        .find_map(|event| match &event.kind {
            EventKind::OfferSent { offer } if offer.agent.as_str() == worker => Some(offer.id.clone()),
            _ => None,
        })
        .expect("offered to the worker");
    engine.execute(Command::Accept { agent: AgentId::new(worker), offer }, "agent", T0).expect("accepts");
    incident
}

fn at(minutes: i64) -> Millis {
    Millis(T0.0 + minutes * MINUTE)
}

fn misses(events: &[Event]) -> Vec<(String, u32, Option<IncidentId>)> {
    events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::SafetyCheckMissed { agent, miss, welfare, .. } => Some((agent.to_string(), *miss, welfare.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_missed_check_in_is_an_event_at_the_interval_and_the_second_sends_the_nearest_to_look() {
    let mut engine = engine();
    let centre = grid_centre(&engine);
    person_at(&mut engine, "worker", centre, None);
    assigned(&mut engine, "worker");
    person_at(&mut engine, "near", east(centre, 100.0), None);
    person_at(&mut engine, "far", east(centre, 900.0), None);
    let mut journal: Vec<Event> = Vec::new();

    let due = |engine: &Engine| engine.safety_due(&AgentId::new("worker")).map(|due| due.due);
    assert_eq!(due(&engine), Some(at(10)), "the first check-in is due one interval after the assignment");
    assert!(engine.next_deadline().is_some_and(|next| next <= at(10)), "tick is asked for by then");
    assert!(misses(&engine.tick(at(9))).is_empty(), "nothing before it is due");
    let first = engine.tick(at(10));
    assert_eq!(misses(&first), [("worker".to_string(), 1, None)]);
    assert!(!first.iter().any(|event| matches!(event.kind, EventKind::IncidentReported { .. })), "one miss sends nobody");
    journal.extend(first);

    assert_eq!(due(&engine), Some(at(20)), "the next is one interval after the miss");
    // Their phones keep reporting (the worker's went quiet at T0).
    for (id, metres) in [("near", 100.0), ("far", 900.0)] {
        let report = Command::ReportLocation { agent: AgentId::new(id), at: east(centre, metres) };
        journal.extend(engine.execute(report, "agent", at(19)).expect("located"));
    }
    let second = engine.tick(at(20));
    let missed = misses(&second);
    assert_eq!(missed.len(), 1);
    let (_, miss, welfare) = &missed[0];
    assert_eq!(*miss, 2);
    let welfare = welfare.clone().expect("the second miss sends a welfare check");
    let record = &engine.state().incidents[&welfare];
    assert_eq!((record.spec.category.as_str(), record.spec.priority), (WELFARE_CHECK_CATEGORY, 1));
    assert_eq!(record.spec.at, centre, "at the person's last known position");
    let offered: Vec<&str> = second
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::OfferSent { offer } if offer.incident == welfare => Some(offer.agent.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(offered.first(), Some(&"near"), "the nearest qualified person is asked to look: {offered:?}");
    assert!(!offered.contains(&"worker"));
    journal.extend(second);

    assert!(misses(&engine.tick(at(60))).is_empty(), "after the welfare check the clock waits for the person");
    assert!(engine.safety_due(&AgentId::new("worker")).is_none());
    assert!(journal.iter().any(|event| matches!(event.kind, EventKind::SafetyCheckMissed { miss: 2, .. })));
}

#[test]
fn a_check_in_resets_the_clock_and_ending_the_assignment_stops_it() {
    let mut engine = engine();
    let centre = grid_centre(&engine);
    person_at(&mut engine, "worker", centre, None);
    let incident = assigned(&mut engine, "worker");
    let worker = AgentId::new("worker");

    let checked = engine.execute(Command::SafetyCheckIn { agent: worker.clone() }, "agent:worker", at(8)).expect("checks in");
    assert!(matches!(&checked[0].kind, EventKind::SafetyCheckIn { misses: 0, .. }));
    assert!(misses(&engine.tick(at(10))).is_empty(), "the check-in at 8 min moved the due time");
    assert_eq!(engine.safety_due(&worker).map(|due| due.due), Some(at(18)));
    assert_eq!(misses(&engine.tick(at(18))).len(), 1);
    let checked = engine.execute(Command::SafetyCheckIn { agent: worker.clone() }, "agent:worker", at(19)).expect("checks in");
    assert!(matches!(&checked[0].kind, EventKind::SafetyCheckIn { misses: 1, .. }), "a late check-in says how late");
    assert_eq!(engine.safety_due(&worker).map(|due| (due.due, due.misses)), Some((at(29), 0)), "the misses start again");

    let complete = Command::Complete { agent: worker.clone(), incident, feedback: "pumped out".into(), photo_refs: Vec::new() };
    engine.execute(complete, "agent:worker", at(20)).expect("completes");
    assert!(engine.safety_due(&worker).is_none());
    assert!(misses(&engine.tick(at(60))).is_empty(), "no check-ins without an assignment");
    let refused = engine.execute(Command::SafetyCheckIn { agent: worker }, "agent:worker", at(61)).expect_err("no assignment");
    assert!(matches!(refused, Rejection::FailedPrecondition(_)), "{refused:?}");
}

#[test]
fn normal_mode_asks_for_no_check_ins_unless_the_policy_sets_it() {
    let mut engine = engine();
    engine
        .execute(Command::SetMode { area: AreaId::new("d1"), mode: Mode::Normal, reason: "over".into() }, "operator:cmd", T0)
        .expect("back to normal");
    let centre = grid_centre(&engine);
    person_at(&mut engine, "worker", centre, None);
    assigned(&mut engine, "worker");
    assert!(engine.safety_due(&AgentId::new("worker")).is_none());
    assert!(misses(&engine.tick(at(120))).is_empty());
}

#[test]
fn help_reports_a_priority_one_incident_where_the_person_is_and_tells_their_grid() {
    let mut engine = engine();
    let centre = grid_centre(&engine);
    person_at(&mut engine, "caller", east(centre, 30.0), Some("d1-s1-c1-g1"));
    person_at(&mut engine, "teammate", east(centre, 400.0), Some("d1-s1-c1-g1"));
    person_at(&mut engine, "stranger", east(centre, 200.0), Some("d1-s1-c1-g2"));
    let caller = AgentId::new("caller");
    let events = engine
        .execute(Command::RequestHelp { agent: caller.clone(), at: None, text: "trapped by water".into() }, "agent:caller", at(1))
        .expect("help goes through");
    let (incident, team, from) = events
        .iter()
        .find_map(|event| match &event.kind {
            EventKind::HelpRequested { incident, team, from, .. } => Some((incident.clone(), team.clone(), *from)),
            _ => None,
        })
        .expect("a help event");
    assert_eq!(team, [AgentId::new("teammate")], "the caller's grid, without the caller");
    assert_eq!(from, HelpPosition::Live);
    let record = &engine.state().incidents[&incident];
    assert_eq!((record.spec.category.as_str(), record.spec.priority), (HELP_CATEGORY, 1));
    assert_eq!(record.spec.at, east(centre, 30.0));
    let offered: Vec<&str> = events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::OfferSent { offer } => Some(offer.agent.as_str()),
            _ => None,
        })
        .collect();
    assert!(!offered.is_empty() && !offered.contains(&"caller"), "offered to others, never the caller: {offered:?}");

    let refused = engine
        .execute(
            Command::RequestHelp { agent: caller, at: Some(Position { lon: 500.0, lat: 0.0 }), text: String::new() },
            "a",
            at(2),
        )
        .expect_err("a bad position");
    assert!(matches!(refused, Rejection::InvalidField { field: "location", .. }), "{refused:?}");
}

#[test]
fn a_replay_of_the_journal_rebuilds_the_same_clocks_and_welfare_checks() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/maps/sample-city.geojson");
    let map = parse_geojson(&std::fs::read_to_string(path).expect("sample city present")).expect("parses");
    let mut engine = Engine::new(policy());
    let mut journal: Vec<Event> = Vec::new();
    fn run_into(journal: &mut Vec<Event>, engine: &mut Engine, command: Command, now: Millis) {
        journal.extend(engine.execute(command, "test", now).expect("carried out"));
    }
    run_into(&mut journal, &mut engine, Command::ImportAreas(map), T0);
    run_into(
        &mut journal,
        &mut engine,
        Command::SetMode { area: AreaId::new("d1"), mode: Mode::EmergencyI, reason: "typhoon".into() },
        T0,
    );
    let centre = engine.state().areas.centroid(&AreaId::new("d1-s1-c1-g1")).expect("centroid");
    for (id, metres) in [("worker", 0.0), ("near", 100.0)] {
        let profile = AgentProfile {
            id: AgentId::new(id),
            name: id.to_string(),
            role: Role::Volunteer,
            skills: Default::default(),
            phone: String::new(),
            home_area: Some(AreaId::new("d1-s1-c1-g1")),
            travel_mode: TravelMode::Walk,
            on_duty: true,
            home: None,
        };
        run_into(
            &mut journal,
            &mut engine,
            Command::UpsertAgents { agents: vec![profile], all_new: true, tokens: Vec::new() },
            T0,
        );
        engine.execute(Command::Connect { agent: AgentId::new(id) }, "agent", T0).expect("connects");
        run_into(&mut journal, &mut engine, Command::ReportLocation { agent: AgentId::new(id), at: east(centre, metres) }, T0);
    }
    let spec = IncidentSpec {
        at: centre,
        category: "flooding".into(),
        priority: 2,
        skills: Default::default(),
        headcount: 1,
        description: String::new(),
        source_id: String::new(),
    };
    run_into(&mut journal, &mut engine, Command::CreateIncident { id: None, spec, force: false }, T0);
    let offer = journal
        .iter()
        .find_map(|event| match &event.kind {
            EventKind::OfferSent { offer } if offer.agent.as_str() == "worker" => Some(offer.id.clone()),
            _ => None,
        })
        .expect("offered to the worker");
    run_into(&mut journal, &mut engine, Command::Accept { agent: AgentId::new("worker"), offer }, T0);
    run_into(&mut journal, &mut engine, Command::SafetyCheckIn { agent: AgentId::new("worker") }, at(5));
    for minute in [15, 19, 25] {
        run_into(
            &mut journal,
            &mut engine,
            Command::ReportLocation { agent: AgentId::new("near"), at: east(centre, 100.0) },
            at(minute),
        );
        let fired = engine.tick(at(minute));
        journal.extend(fired);
    }
    run_into(
        &mut journal,
        &mut engine,
        Command::RequestHelp { agent: AgentId::new("near"), at: None, text: "slipped".into() },
        at(26),
    );
    assert!(journal.iter().any(|event| matches!(event.kind, EventKind::SafetyCheckMissed { miss: 2, .. })), "a welfare check");
    assert!(journal.iter().any(|event| matches!(event.kind, EventKind::HelpRequested { .. })), "a help call");

    let mut replayed = Engine::new(policy());
    for event in &journal {
        replayed.replay(event).expect("replays in order");
    }
    assert_eq!(replayed.state(), engine.state(), "the journal alone rebuilds the clocks, the welfare check and the help call");
}
