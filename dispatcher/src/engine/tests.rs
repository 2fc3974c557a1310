//! Engine tests on a virtual clock, over the sample city.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::areas::parse_geojson;
use crate::event::{EventKind, WidenReason, WithdrawReason};
use crate::incident::IncidentStatus;
use crate::roster::{Role, TravelMode};

const T0: Millis = Millis(1_800_000_000_000);

fn sample_map() -> AreaImport {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/maps/sample-city.geojson");
    let text = std::fs::read_to_string(path).expect("sample city present");
    parse_geojson(&text).expect("sample city parses")
}

fn engine() -> Engine {
    let mut engine = Engine::new(Policy::default());
    engine.execute(Command::ImportAreas(sample_map()), "operator:test", T0).expect("map imports");
    engine
}

fn area(id: &str) -> AreaId {
    AreaId::new(id)
}

fn centre_of(engine: &Engine, id: &str) -> Position {
    engine.state().areas.centroid(&area(id)).expect("area has a centroid")
}

/// A point `metres` east of `from`.
fn east(from: Position, metres: f64) -> Position {
    let degrees = metres / (crate::spatial::EARTH_RADIUS_M * from.lat.to_radians().cos()) * 180.0 / std::f64::consts::PI;
    Position { lon: from.lon + degrees, lat: from.lat }
}

fn profile(id: &str, skills: &[&str]) -> AgentProfile {
    AgentProfile {
        id: AgentId::new(id),
        name: format!("person {id}"),
        role: Role::Volunteer,
        skills: skills.iter().map(|skill| skill.to_string()).collect(),
        phone: "13900000000".to_string(),
        home_area: None,
        travel_mode: TravelMode::Walk,
        on_duty: true,
        home: None,
    }
}

/// Adds a person, connects them and reports where they are.
fn person_at(engine: &mut Engine, id: &str, skills: &[&str], at: Position, now: Millis) {
    engine
        .execute(Command::UpsertAgents { agents: vec![profile(id, skills)], all_new: true }, "operator:test", now)
        .expect("person added");
    engine.execute(Command::Connect { agent: AgentId::new(id) }, &format!("agent:{id}"), now).expect("connects");
    engine
        .execute(Command::ReportLocation { agent: AgentId::new(id), at }, &format!("agent:{id}"), now)
        .expect("location accepted");
}

fn create(engine: &mut Engine, at: Position, skills: &[&str], headcount: u32, now: Millis) -> (IncidentId, Vec<Event>) {
    let spec = IncidentSpec {
        at,
        category: "medical".to_string(),
        priority: 1,
        skills: skills.iter().map(|skill| skill.to_string()).collect(),
        headcount,
        description: String::new(),
    };
    let events = engine.execute(Command::CreateIncident { id: None, spec }, "operator:test", now).expect("incident created");
    let id = events[0].kind.incident_id().expect("first event names the incident").clone();
    (id, events)
}

fn offers_in(events: &[Event]) -> Vec<(OfferId, AgentId)> {
    events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::OfferSent { offer } => Some((offer.id.clone(), offer.agent.clone())),
            _ => None,
        })
        .collect()
}

fn open_offer_of(engine: &Engine, agent: &str) -> Option<OfferId> {
    engine.state().agents[&AgentId::new(agent)].open_offer.as_ref().map(|(offer, _)| offer.clone())
}

fn replayed(engine: &Engine, events: &[Event]) -> State {
    let mut fresh = Engine::new(engine.policy().clone());
    for event in events {
        fresh.replay(event).expect("replays in order");
    }
    fresh.state().clone()
}

#[test]
fn offer_goes_to_the_nearest_qualified_person_and_accept_assigns() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    person_at(&mut engine, "near-unskilled", &[], east(grid, 50.0), T0);
    person_at(&mut engine, "near-medic", &["first_aid"], east(grid, 200.0), T0);
    person_at(&mut engine, "far-medic", &["first_aid"], east(grid, 600.0), T0);
    let (incident, events) = create(&mut engine, grid, &["first_aid"], 1, T0);
    let offers = offers_in(&events);
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0].1, AgentId::new("near-medic"));
    let accepted = engine
        .execute(Command::Accept { agent: AgentId::new("near-medic"), offer: offers[0].0.clone() }, "agent:near-medic", T0)
        .expect("accept works");
    assert!(accepted.iter().any(|event| event.kind.name() == "assigned"));
    assert!(accepted.iter().any(|event| event.kind.name() == "incident_staffed"));
    let state = engine.state();
    assert_eq!(state.incidents[&incident].status(), IncidentStatus::Staffed);
    let medic = &state.agents[&AgentId::new("near-medic")];
    assert_eq!(medic.status, AgentStatus::Busy);
    assert_eq!(medic.current_incident.as_ref(), Some(&incident));
}

#[test]
fn decline_and_timeout_move_the_offer_to_the_next_person() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    for (index, id) in ["a", "b", "c"].iter().enumerate() {
        person_at(&mut engine, id, &[], east(grid, 100.0 * (index as f64 + 1.0)), T0);
    }
    let (incident, events) = create(&mut engine, grid, &[], 1, T0);
    assert_eq!(offers_in(&events)[0].1, AgentId::new("a"));
    let declined = engine
        .execute(
            Command::Decline { agent: AgentId::new("a"), offer: offers_in(&events)[0].0.clone(), reason: "too far".into() },
            "agent:a",
            T0,
        )
        .expect("decline works");
    assert_eq!(offers_in(&declined)[0].1, AgentId::new("b"));
    let deadline = engine.next_deadline().expect("an offer deadline");
    assert_eq!(deadline, T0.plus_seconds(engine.policy().normal.offer_timeout_s));
    assert!(engine.tick(Millis(deadline.0 - 1)).is_empty(), "nothing fires early");
    let fired = engine.tick(deadline);
    assert!(fired.iter().any(|event| event.kind.name() == "offer_timed_out"));
    assert_eq!(offers_in(&fired)[0].1, AgentId::new("c"));
    assert!(engine.state().incidents[&incident].excluded.contains(&AgentId::new("a")));
}

#[test]
fn normal_mode_widens_grid_community_street_district_city() {
    let mut engine = engine();
    let incident_at = centre_of(&engine, "d1-s1-c1-g1");
    // Only person: in the other district.
    let far = centre_of(&engine, "d2-s1-c1-g1");
    person_at(&mut engine, "far", &[], far, T0);
    let (incident, events) = create(&mut engine, incident_at, &[], 1, T0);
    let widenings: Vec<(AreaLevel, AreaLevel)> = events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::Widened { from, to, reason, .. } => {
                assert_eq!(*reason, WidenReason::NoCandidates);
                Some((*from, *to))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        widenings,
        vec![
            (AreaLevel::Grid, AreaLevel::Community),
            (AreaLevel::Community, AreaLevel::Street),
            (AreaLevel::Street, AreaLevel::District),
            (AreaLevel::District, AreaLevel::City),
        ]
    );
    assert_eq!(offers_in(&events)[0].1, AgentId::new("far"));
    assert_eq!(engine.state().incidents[&incident].scope, AreaLevel::City);
}

#[test]
fn normal_mode_stays_in_the_grid_until_the_wait_runs_out() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    let neighbour_grid = centre_of(&engine, "d1-s1-c1-g2");
    person_at(&mut engine, "in-grid", &[], east(grid, 100.0), T0);
    person_at(&mut engine, "next-grid", &[], neighbour_grid, T0);
    let (incident, events) = create(&mut engine, grid, &[], 2, T0);
    // Two needed, one in the grid: the grid has no second candidate, so it widens at once.
    assert_eq!(offers_in(&events).len(), 2);
    assert_eq!(engine.state().incidents[&incident].scope, AreaLevel::Community);

    // One needed, a candidate in the grid who does not answer: the offer times
    // out before the grid wait, and the incident widens when the wait runs out.
    let mut engine = self::engine();
    person_at(&mut engine, "in-grid", &[], east(grid, 100.0), T0);
    person_at(&mut engine, "next-grid", &[], neighbour_grid, T0);
    let mut policy = engine.policy().clone();
    policy.normal.offer_timeout_s = 900;
    engine.policy = policy;
    let (incident, events) = create(&mut engine, grid, &[], 1, T0);
    assert_eq!(offers_in(&events)[0].1, AgentId::new("in-grid"));
    let wait = engine.policy().normal.widen_after_s.grid;
    let fired = engine.tick(T0.plus_seconds(wait));
    assert!(fired.iter().any(|event| matches!(
        event.kind,
        EventKind::Widened { from: AreaLevel::Grid, to: AreaLevel::Community, reason: WidenReason::WaitExpired, .. }
    )));
    assert_eq!(engine.state().incidents[&incident].scope, AreaLevel::Community);
}

#[test]
fn emergency_is_flat_parallel_and_faster() {
    let mut engine = engine();
    let incident_at = centre_of(&engine, "d1-s1-c1-g1");
    // In the same grid but far; in another grid (same district) but near.
    person_at(&mut engine, "same-grid-far", &[], east(incident_at, 900.0), T0);
    let other_grid = centre_of(&engine, "d1-s1-c1-g2");
    let near_other = Position { lon: other_grid.lon, lat: other_grid.lat };
    let distance_other = incident_at.distance_m(near_other);
    assert!(distance_other > 900.0, "fixture: neighbour grid centre further than 900 m ({distance_other})");
    person_at(&mut engine, "other-grid-near", &[], east(incident_at, 100.0), T0);
    // Make the near person sit in another grid by moving the incident to the
    // border: simpler to test flatness with the grid-only candidate absent.
    engine
        .execute(Command::SetMode { area: area("d1"), mode: Mode::EmergencyIi, reason: "flood".into() }, "operator:cmd", T0)
        .expect("switch works");
    let (incident, events) = create(&mut engine, incident_at, &[], 1, T0);
    let offers = offers_in(&events);
    // Grade II: 3 parallel offers per needed person; only two people exist.
    assert_eq!(offers.len(), 2);
    assert_eq!(offers[0].1, AgentId::new("other-grid-near"));
    let record = &engine.state().incidents[&incident];
    let offer = record.open_offers.values().next().expect("offer");
    assert!(offer.flat);
    assert_eq!(offer.deadline, T0.plus_seconds(engine.policy().emergency_ii.offer_timeout_s));
    // No widening in flat mode.
    assert!(!events.iter().any(|event| event.kind.name() == "widened"));
    // First accept wins; the other offer is no longer needed.
    let winner = offers[0].clone();
    let accepted = engine
        .execute(Command::Accept { agent: winner.1.clone(), offer: winner.0.clone() }, "agent:x", T0)
        .expect("accept");
    assert!(accepted.iter().any(|event| matches!(event.kind, EventKind::OfferWithdrawn { reason: WithdrawReason::Filled, .. })));
    let late = engine.execute(Command::Accept { agent: offers[1].1.clone(), offer: offers[1].0.clone() }, "agent:y", T0);
    assert!(matches!(late, Err(Rejection::FailedPrecondition(_))));
}

#[test]
fn emergency_picks_the_nearest_across_grids() {
    let mut engine = engine();
    let grid1 = centre_of(&engine, "d1-s1-c1-g1");
    let grid2 = centre_of(&engine, "d1-s1-c1-g2");
    // Incident at grid 1's centre; one person deep in grid 1, farther than a
    // person just over the border in grid 2.
    let spec = engine.state().areas.get(&area("d1-s1-c1-g1")).expect("grid").clone();
    let ring = &spec.polygons[0][0];
    let max_lat = ring.iter().map(|p| p[1]).fold(f64::MIN, f64::max);
    let incident_at = Position { lon: grid1.lon, lat: max_lat - 0.0005 };
    let over_border = Position { lon: grid1.lon, lat: max_lat + 0.0005 };
    let neighbour = engine.state().areas.place(over_border).at(AreaLevel::Grid).cloned();
    assert!(neighbour.is_some() && neighbour != Some(area("d1-s1-c1-g1")), "fixture: the point is in another grid");
    let _ = grid2;
    person_at(&mut engine, "in-grid", &[], Position { lon: grid1.lon, lat: max_lat - 0.006 }, T0);
    person_at(&mut engine, "over-border", &[], over_border, T0);
    // Normal mode: the grid's own person first.
    let (_, events) = create(&mut engine, incident_at, &[], 1, T0);
    assert_eq!(offers_in(&events)[0].1, AgentId::new("in-grid"));
    // Emergency: the nearest, whichever grid.
    let mut engine = self::engine();
    person_at(&mut engine, "in-grid", &[], Position { lon: grid1.lon, lat: max_lat - 0.006 }, T0);
    person_at(&mut engine, "over-border", &[], over_border, T0);
    engine
        .execute(Command::SetMode { area: area("d1-s1"), mode: Mode::EmergencyIv, reason: "storm".into() }, "operator:cmd", T0)
        .expect("switch works");
    let (_, events) = create(&mut engine, incident_at, &[], 1, T0);
    assert_eq!(offers_in(&events)[0].1, AgentId::new("over-border"));
}

#[test]
fn disconnect_and_off_duty_withdraw_and_reoffer() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    person_at(&mut engine, "a", &[], east(grid, 100.0), T0);
    person_at(&mut engine, "b", &[], east(grid, 200.0), T0);
    person_at(&mut engine, "c", &[], east(grid, 300.0), T0);
    let (_, _) = create(&mut engine, grid, &[], 1, T0);
    assert!(open_offer_of(&engine, "a").is_some());
    let events = engine.execute(Command::Disconnect { agent: AgentId::new("a") }, "agent:a", T0).expect("disconnect");
    assert!(events.iter().any(|event| matches!(event.kind, EventKind::OfferWithdrawn { reason: WithdrawReason::Disconnected, .. })));
    assert!(open_offer_of(&engine, "b").is_some());
    let events = engine
        .execute(Command::SetStatus { agent: AgentId::new("b"), status: AgentStatus::OffDuty }, "agent:b", T0)
        .expect("off duty");
    assert!(events.iter().any(|event| matches!(event.kind, EventKind::OfferWithdrawn { reason: WithdrawReason::Unavailable, .. })));
    assert!(open_offer_of(&engine, "c").is_some());
}

#[test]
fn stale_locations_are_not_offered_by_distance() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    person_at(&mut engine, "stale", &[], east(grid, 10.0), T0);
    let later = T0.plus_seconds(engine.policy().location_stale_s + 1);
    person_at(&mut engine, "fresh", &[], east(grid, 500.0), later);
    let (_, events) = create(&mut engine, grid, &[], 1, later);
    let offers = offers_in(&events);
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0].1, AgentId::new("fresh"));
}

#[test]
fn waiting_incident_is_offered_when_someone_appears() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    let (incident, events) = create(&mut engine, grid, &["rescue"], 1, T0);
    assert!(events.iter().any(|event| event.kind.name() == "no_candidates"));
    assert_eq!(engine.state().incidents[&incident].status(), IncidentStatus::Waiting);
    person_at(&mut engine, "rescuer", &["rescue"], east(grid, 3000.0), T0.plus_seconds(5));
    assert_eq!(engine.state().incidents[&incident].status(), IncidentStatus::Offered);
}

#[test]
fn completion_frees_the_person_and_closes_the_incident() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    person_at(&mut engine, "a", &[], east(grid, 100.0), T0);
    let (incident, events) = create(&mut engine, grid, &[], 1, T0);
    let (offer, _) = offers_in(&events)[0].clone();
    let a = AgentId::new("a");
    engine.execute(Command::Accept { agent: a.clone(), offer }, "agent:a", T0).expect("accept");
    engine.execute(Command::Arrive { agent: a.clone(), incident: incident.clone() }, "agent:a", T0).expect("arrive");
    let events = engine
        .execute(Command::Complete { agent: a.clone(), incident: incident.clone(), feedback: "done".into() }, "agent:a", T0)
        .expect("complete");
    assert!(events.iter().any(|event| event.kind.name() == "incident_closed"));
    assert_eq!(engine.state().agents[&a].status, AgentStatus::Available);
    assert_eq!(engine.state().incidents[&incident].status(), IncidentStatus::Closed);
}

#[test]
fn rejected_commands_change_nothing() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    person_at(&mut engine, "a", &[], east(grid, 100.0), T0);
    let (incident, _) = create(&mut engine, grid, &[], 1, T0);
    let before = engine.state().clone();
    let bad_spec = |at: Position, priority: u8, headcount: u32| IncidentSpec {
        at,
        category: "fire".into(),
        priority,
        skills: BTreeSet::new(),
        headcount,
        description: String::new(),
    };
    let cases: Vec<(Command, &str)> = vec![
        (Command::CreateIncident { id: None, spec: bad_spec(Position { lon: 200.0, lat: 0.0 }, 1, 1) }, "invalid"),
        (Command::CreateIncident { id: None, spec: bad_spec(grid, 0, 1) }, "invalid"),
        (Command::CreateIncident { id: None, spec: bad_spec(grid, 1, 0) }, "invalid"),
        (Command::CreateIncident { id: Some(incident.clone()), spec: bad_spec(grid, 1, 1) }, "exists"),
        (Command::CancelIncident { incident: IncidentId::new("nope"), reason: "x".into() }, "not_found"),
        (Command::SetMode { area: area("nowhere"), mode: Mode::EmergencyI, reason: "x".into() }, "not_found"),
        (Command::Accept { agent: AgentId::new("a"), offer: OfferId::new("inc-000001-o9") }, "precondition"),
        (Command::Accept { agent: AgentId::new("ghost"), offer: OfferId::new("x") }, "not_found"),
        (Command::UpsertAgents { agents: vec![profile("a", &[])], all_new: true }, "exists"),
        (Command::Arrive { agent: AgentId::new("a"), incident: incident.clone() }, "precondition"),
    ];
    for (command, expected) in cases {
        let result = engine.execute(command.clone(), "operator:test", T0);
        let kind = match result {
            Err(Rejection::InvalidArgument(_)) => "invalid",
            Err(Rejection::NotFound(_)) => "not_found",
            Err(Rejection::AlreadyExists(_)) => "exists",
            Err(Rejection::FailedPrecondition(_)) => "precondition",
            Ok(_) => "accepted",
        };
        assert_eq!(kind, expected, "{command:?}");
        assert_eq!(engine.state(), &before, "{command:?} changed state");
    }
    // Closing a cancelled incident.
    engine.execute(Command::CancelIncident { incident: incident.clone(), reason: "false alarm".into() }, "operator:test", T0).expect("cancel");
    let closed = engine.execute(Command::CloseIncident { incident, feedback: "x".into() }, "operator:test", T0);
    assert!(matches!(closed, Err(Rejection::FailedPrecondition(message)) if message.contains("cancelled")));
    assert_eq!(engine.state().agents[&AgentId::new("a")].open_offer, None, "cancel withdrew the offer");
}

#[test]
fn a_second_session_for_the_same_person_is_refused() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    person_at(&mut engine, "a", &[], grid, T0);
    let again = engine.execute(Command::Connect { agent: AgentId::new("a") }, "agent:a", T0);
    assert!(matches!(again, Err(Rejection::AlreadyExists(_))));
}

// ---------------------------------------------------------------- properties

#[derive(Clone, Debug)]
enum Step {
    Create { grid: usize, headcount: u32, skill: bool },
    Accept { person: usize },
    Decline { person: usize },
    Advance { seconds: u64 },
    Disconnect { person: usize },
    Reconnect { person: usize },
    Move { person: usize, grid: usize, metres: f64 },
    OffDuty { person: usize },
    OnDuty { person: usize },
    Complete { person: usize },
    Cancel { incident: usize },
    Switch { area: usize, grade: usize },
}

const PEOPLE: usize = 12;
const GRIDS: [&str; 6] = ["d1-s1-c1-g1", "d1-s1-c1-g2", "d1-s1-c2-g1", "d1-s2-c1-g1", "d2-s1-c1-g1", "d2-s2-c2-g4"];
const MODE_AREAS: [&str; 4] = ["d1", "d1-s1-c1", "d2", "city"];
const MODES: [Mode; 5] = [Mode::Normal, Mode::EmergencyIv, Mode::EmergencyIii, Mode::EmergencyIi, Mode::EmergencyI];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..GRIDS.len(), 1..4u32, any::<bool>()).prop_map(|(grid, headcount, skill)| Step::Create { grid, headcount, skill }),
        4 => (0..PEOPLE).prop_map(|person| Step::Accept { person }),
        2 => (0..PEOPLE).prop_map(|person| Step::Decline { person }),
        3 => (1..400u64).prop_map(|seconds| Step::Advance { seconds }),
        1 => (0..PEOPLE).prop_map(|person| Step::Disconnect { person }),
        1 => (0..PEOPLE).prop_map(|person| Step::Reconnect { person }),
        2 => (0..PEOPLE, 0..GRIDS.len(), 0.0..800.0f64).prop_map(|(person, grid, metres)| Step::Move { person, grid, metres }),
        1 => (0..PEOPLE).prop_map(|person| Step::OffDuty { person }),
        1 => (0..PEOPLE).prop_map(|person| Step::OnDuty { person }),
        2 => (0..PEOPLE).prop_map(|person| Step::Complete { person }),
        1 => (0..8usize).prop_map(|incident| Step::Cancel { incident }),
        1 => (0..MODE_AREAS.len(), 0..MODES.len()).prop_map(|(area, grade)| Step::Switch { area, grade }),
    ]
}

fn check_invariants(engine: &Engine) -> Result<(), TestCaseError> {
    let state = engine.state();
    for (id, record) in &state.agents {
        let holding: Vec<_> = state
            .incidents
            .values()
            .filter(|incident| incident.is_open())
            .filter(|incident| incident.assignments.iter().any(|a| &a.agent == id && a.completed_at.is_none()))
            .collect();
        prop_assert!(holding.len() <= 1, "{id} holds {} assignments", holding.len());
        prop_assert_eq!(holding.first().map(|incident| &incident.id), record.current_incident.as_ref());
        let offered: Vec<_> =
            state.incidents.values().flat_map(|incident| incident.open_offers.values()).filter(|offer| &offer.agent == id).collect();
        prop_assert!(offered.len() <= 1, "{id} has {} open offers", offered.len());
        if record.current_incident.is_some() {
            prop_assert_eq!(record.status, AgentStatus::Busy);
            prop_assert!(offered.is_empty());
        }
    }
    for incident in state.incidents.values() {
        prop_assert!(incident.assignments.len() as u32 <= incident.spec.headcount, "more accepted than needed");
        let status = incident.status();
        prop_assert!(
            matches!(
                status,
                IncidentStatus::Staffed
                    | IncidentStatus::Offered
                    | IncidentStatus::Waiting
                    | IncidentStatus::Closed
                    | IncidentStatus::Cancelled
            ),
            "status"
        );
        if status == IncidentStatus::Staffed {
            prop_assert!(incident.open_offers.is_empty(), "a staffed incident has no offers out");
        }
        if !incident.is_open() {
            prop_assert!(incident.open_offers.is_empty());
        }
        for offer in incident.open_offers.values() {
            prop_assert!(!incident.excluded.contains(&offer.agent));
        }
        let mut served = BTreeSet::new();
        for assignment in &incident.assignments {
            prop_assert!(served.insert(&assignment.agent), "{} assigned twice to {}", assignment.agent, incident.id);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_sequences_keep_the_invariants_and_replay_exactly(steps in prop::collection::vec(step(), 1..120)) {
        let mut engine = engine();
        let mut events = Vec::new();
        let mut now = T0;
        let grid_centres: Vec<Position> = GRIDS.iter().map(|grid| centre_of(&engine, grid)).collect();
        let people: Vec<AgentId> = (0..PEOPLE).map(|n| AgentId::new(format!("p{n}"))).collect();
        let mut profiles = Vec::new();
        for (n, id) in people.iter().enumerate() {
            let mut person = profile(id.as_str(), if n % 3 == 0 { &["first_aid"] } else { &[] });
            person.travel_mode = [TravelMode::Walk, TravelMode::Bike, TravelMode::Car][n % 3];
            profiles.push(person);
        }
        events.extend(engine.execute(Command::UpsertAgents { agents: profiles, all_new: true }, "operator:test", now).expect("roster"));
        for (n, id) in people.iter().enumerate() {
            engine.execute(Command::Connect { agent: id.clone() }, "agent", now).expect("connect");
            let at = east(grid_centres[n % GRIDS.len()], 37.0 * n as f64);
            events.extend(engine.execute(Command::ReportLocation { agent: id.clone(), at }, "agent", now).expect("locate"));
        }
        let mut incidents: Vec<IncidentId> = Vec::new();
        for step in steps {
            let result = match step {
                Step::Create { grid, headcount, skill } => {
                    let spec = IncidentSpec {
                        at: east(grid_centres[grid], 20.0),
                        category: "test".into(),
                        priority: 1 + (headcount % 4) as u8,
                        skills: if skill { ["first_aid".to_string()].into() } else { BTreeSet::new() },
                        headcount,
                        description: String::new(),
                    };
                    let result = engine.execute(Command::CreateIncident { id: None, spec }, "operator:test", now);
                    if let Ok(created) = &result {
                        incidents.push(created[0].kind.incident_id().expect("id").clone());
                    }
                    result
                }
                Step::Accept { person } => match open_offer_of(&engine, people[person].as_str()) {
                    Some(offer) => engine.execute(Command::Accept { agent: people[person].clone(), offer }, "agent", now),
                    None => Ok(vec![]),
                },
                Step::Decline { person } => match open_offer_of(&engine, people[person].as_str()) {
                    Some(offer) => engine.execute(Command::Decline { agent: people[person].clone(), offer, reason: "no".into() }, "agent", now),
                    None => Ok(vec![]),
                },
                Step::Advance { seconds } => {
                    now = now.plus_seconds(seconds);
                    let mut fired = Vec::new();
                    while let Some(deadline) = engine.next_deadline().filter(|deadline| *deadline <= now) {
                        fired.extend(engine.tick(deadline));
                    }
                    Ok(fired)
                }
                Step::Disconnect { person } => engine.execute(Command::Disconnect { agent: people[person].clone() }, "agent", now),
                Step::Reconnect { person } => {
                    let _ = engine.execute(Command::Connect { agent: people[person].clone() }, "agent", now);
                    let at = east(grid_centres[person % GRIDS.len()], 11.0 * person as f64);
                    engine.execute(Command::ReportLocation { agent: people[person].clone(), at }, "agent", now)
                }
                Step::Move { person, grid, metres } => {
                    engine.execute(Command::ReportLocation { agent: people[person].clone(), at: east(grid_centres[grid], metres) }, "agent", now)
                }
                Step::OffDuty { person } => engine.execute(Command::SetStatus { agent: people[person].clone(), status: AgentStatus::OffDuty }, "agent", now),
                Step::OnDuty { person } => engine.execute(Command::SetStatus { agent: people[person].clone(), status: AgentStatus::Available }, "agent", now),
                Step::Complete { person } => match engine.state().agents[&people[person]].current_incident.clone() {
                    Some(incident) => engine.execute(Command::Complete { agent: people[person].clone(), incident, feedback: "ok".into() }, "agent", now),
                    None => Ok(vec![]),
                },
                Step::Cancel { incident } => match incidents.get(incident) {
                    Some(id) => engine.execute(Command::CancelIncident { incident: id.clone(), reason: "drill".into() }, "operator:test", now),
                    None => Ok(vec![]),
                },
                Step::Switch { area, grade } => engine.execute(
                    Command::SetMode { area: AreaId::new(MODE_AREAS[area]), mode: MODES[grade], reason: "drill".into() },
                    "operator:test",
                    now,
                ),
            };
            let before = engine.state().clone();
            match result {
                Ok(new_events) => events.extend(new_events),
                Err(_) => prop_assert_eq!(engine.state(), &before),
            }
            check_invariants(&engine)?;
        }
        // Replay from the start (after the map import, which the fixture did first).
        let mut all = engine_map_events();
        all.extend(events);
        let rebuilt = replayed(&engine, &all);
        prop_assert_eq!(&rebuilt, engine.state());
    }
}

fn engine_map_events() -> Vec<Event> {
    let mut engine = Engine::new(Policy::default());
    engine.execute(Command::ImportAreas(sample_map()), "operator:test", T0).expect("map imports")
}
