//! Engine tests on a virtual clock, over the sample city.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::queries::{AgentQuery, CallupQuery, IncidentQuery};
use super::*;
use crate::accounts::TokenStanding;
use crate::areas::parse_geojson;
use crate::event::{EventKind, WidenReason, WithdrawReason};
use crate::incident::{IncidentStatus, OfferRecord};
use crate::roster::{Role, TravelMode};

const T0: Millis = Millis(1_800_000_000_000);

fn sample_map() -> AreaImport {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/maps/sample-city.geojson");
    let text = std::fs::read_to_string(path).expect("sample city present");
    parse_geojson(&text).expect("sample city parses")
}

/// The default policy without the periodic grid staffing check, so that
/// tests about offers see only their own deadlines.
fn quiet_policy() -> Policy {
    Policy { staffing_check_s: 0, ..Policy::default() }
}

fn engine() -> Engine {
    engine_with(quiet_policy())
}

fn engine_with(policy: Policy) -> Engine {
    let mut engine = Engine::new(policy);
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
        .execute(
            Command::UpsertAgents { agents: vec![profile(id, skills)], all_new: true, tokens: Vec::new() },
            "operator:test",
            now,
        )
        .expect("person added");
    engine.execute(Command::Connect { agent: AgentId::new(id) }, &format!("agent:{id}"), now).expect("connects");
    engine
        .execute(Command::ReportLocation { agent: AgentId::new(id), at }, &format!("agent:{id}"), now)
        .expect("location accepted");
}

fn create(engine: &mut Engine, at: Position, skills: &[&str], headcount: u32, now: Millis) -> (IncidentId, Vec<Event>) {
    create_with(engine, at, skills, headcount, now, false)
}

/// Reported with `force`: even where nobody could be offered it.
fn create_forced(engine: &mut Engine, at: Position, skills: &[&str], headcount: u32, now: Millis) -> (IncidentId, Vec<Event>) {
    create_with(engine, at, skills, headcount, now, true)
}

fn create_with(
    engine: &mut Engine,
    at: Position,
    skills: &[&str],
    headcount: u32,
    now: Millis,
    force: bool,
) -> (IncidentId, Vec<Event>) {
    let spec = IncidentSpec {
        at,
        category: "medical".to_string(),
        priority: 1,
        skills: skills.iter().map(|skill| skill.to_string()).collect(),
        headcount,
        description: String::new(),
        source_id: String::new(),
    };
    let events =
        engine.execute(Command::CreateIncident { id: None, spec, force }, "operator:test", now).expect("incident created");
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
    // Only person: in the other district, by car (on foot it would be beyond
    // the longest acceptable travel time).
    let far = centre_of(&engine, "d2-s1-c1-g1");
    let mut driver = profile("far", &[]);
    driver.travel_mode = TravelMode::Car;
    engine
        .execute(Command::UpsertAgents { agents: vec![driver], all_new: true, tokens: Vec::new() }, "operator:test", T0)
        .expect("added");
    engine.execute(Command::Connect { agent: AgentId::new("far") }, "agent", T0).expect("connects");
    engine.execute(Command::ReportLocation { agent: AgentId::new("far"), at: far }, "agent", T0).expect("located");
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
    let accepted =
        engine.execute(Command::Accept { agent: winner.1.clone(), offer: winner.0.clone() }, "agent:x", T0).expect("accept");
    assert!(accepted.iter().any(|event| matches!(event.kind, EventKind::OfferWithdrawn { reason: WithdrawReason::Filled, .. })));
    let late = engine.execute(Command::Accept { agent: offers[1].1.clone(), offer: offers[1].0.clone() }, "agent:y", T0);
    assert!(matches!(late, Err(Rejection::OfferNotOpen(_))));
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
    let events =
        engine.execute(Command::Disconnect { agent: AgentId::new("a"), reachable: false }, "agent:a", T0).expect("disconnect");
    assert!(
        events.iter().any(|event| matches!(event.kind, EventKind::OfferWithdrawn { reason: WithdrawReason::Disconnected, .. }))
    );
    assert!(open_offer_of(&engine, "b").is_some());
    let events = engine
        .execute(Command::SetStatus { agent: AgentId::new("b"), status: AgentStatus::OffDuty }, "agent:b", T0)
        .expect("off duty");
    assert!(
        events.iter().any(|event| matches!(event.kind, EventKind::OfferWithdrawn { reason: WithdrawReason::Unavailable, .. }))
    );
    assert!(open_offer_of(&engine, "c").is_some());
}

#[test]
fn a_person_whose_phone_takes_push_keeps_the_offer_and_stays_a_candidate_until_stale() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    person_at(&mut engine, "a", &[], east(grid, 100.0), T0);
    person_at(&mut engine, "b", &[], east(grid, 200.0), T0);
    create(&mut engine, grid, &[], 1, T0);
    let offer = open_offer_of(&engine, "a").expect("the nearest is offered");
    // The app closed; the phone still takes notifications.
    let events =
        engine.execute(Command::Disconnect { agent: AgentId::new("a"), reachable: true }, "agent:a", T0).expect("disconnect");
    assert!(events.is_empty(), "nothing withdrawn: {events:?}");
    assert_eq!(open_offer_of(&engine, "a"), Some(offer.clone()));
    assert!(open_offer_of(&engine, "b").is_none());
    // A second incident nearby: offered to the reachable person's neighbour
    // (a is answering one), and a third, after a declines the first, to a.
    let later = T0.plus_seconds(10);
    engine
        .execute(Command::Decline { agent: AgentId::new("a"), offer, reason: String::new() }, "agent:a", later)
        .expect("decline");
    assert!(open_offer_of(&engine, "b").is_some(), "the declined incident moves on");
    let (_, events) = create(&mut engine, east(grid, 50.0), &[], 1, later);
    assert_eq!(offers_in(&events)[0].1, AgentId::new("a"), "still a candidate with the app closed");
    // Once the location the app last sent is stale, out of the search:
    let stale = T0.plus_seconds(engine.policy().location_stale_s);
    let mut fired = Vec::new();
    while let Some(deadline) = engine.next_deadline().filter(|deadline| *deadline <= stale) {
        fired.extend(engine.tick(deadline));
    }
    assert!(engine.live().agents[&AgentId::new("a")].location.is_none(), "the stale location is forgotten");
    assert!(engine.live().reachable_until.is_empty());
    invariants::check(&engine).expect("invariants hold");
    // Coming back to the app is a fresh start.
    engine.execute(Command::Connect { agent: AgentId::new("a") }, "agent:a", stale).expect("reconnect");
    engine
        .execute(Command::ReportLocation { agent: AgentId::new("a"), at: east(grid, 100.0) }, "agent:a", stale)
        .expect("located");
    invariants::check(&engine).expect("invariants hold");
}

#[test]
fn a_reachable_person_whose_location_is_already_stale_is_forgotten_at_disconnect() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    person_at(&mut engine, "a", &[], east(grid, 100.0), T0);
    let stale = T0.plus_seconds(engine.policy().location_stale_s + 1);
    engine.execute(Command::Disconnect { agent: AgentId::new("a"), reachable: true }, "agent:a", stale).expect("disconnect");
    assert!(engine.live().agents[&AgentId::new("a")].location.is_none());
    assert!(engine.live().reachable_until.is_empty());
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
    // Forced: nobody on the (empty) roster has the skill yet.
    let (incident, events) = create_forced(&mut engine, grid, &["rescue"], 1, T0);
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
        .execute(
            Command::Complete { agent: a.clone(), incident: incident.clone(), feedback: "done".into(), photo_refs: Vec::new() },
            "agent:a",
            T0,
        )
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
        source_id: String::new(),
    };
    let cases: Vec<(Command, &str)> = vec![
        (Command::CreateIncident { id: None, spec: bad_spec(Position { lon: 200.0, lat: 0.0 }, 1, 1), force: true }, "invalid"),
        (Command::CreateIncident { id: None, spec: bad_spec(grid, 0, 1), force: false }, "invalid"),
        (Command::CreateIncident { id: None, spec: bad_spec(grid, 1, 0), force: false }, "invalid"),
        (Command::CreateIncident { id: Some(incident.clone()), spec: bad_spec(grid, 1, 1), force: false }, "exists"),
        (
            Command::CreateIncident { id: None, spec: bad_spec(Position { lon: 121.47, lat: 31.23 }, 1, 1), force: false },
            "location",
        ),
        (
            Command::CreateIncident {
                id: None,
                spec: IncidentSpec { skills: ["firstaid".to_string()].into(), ..bad_spec(grid, 1, 1) },
                force: false,
            },
            "required_skills",
        ),
        (Command::CancelIncident { incident: IncidentId::new("nope"), reason: "x".into() }, "not_found"),
        (Command::SetMode { area: area("nowhere"), mode: Mode::EmergencyI, reason: "x".into() }, "not_found"),
        (Command::Accept { agent: AgentId::new("a"), offer: OfferId::new("inc-000001-o9") }, "offer_not_open"),
        (Command::Accept { agent: AgentId::new("ghost"), offer: OfferId::new("x") }, "not_found"),
        (Command::UpsertAgents { agents: vec![profile("a", &[])], all_new: true, tokens: Vec::new() }, "exists"),
        (Command::Arrive { agent: AgentId::new("a"), incident: incident.clone() }, "precondition"),
    ];
    for (command, expected) in cases {
        let result = engine.execute(command.clone(), "operator:test", T0);
        let kind = match result {
            Err(Rejection::InvalidArgument(_)) => "invalid",
            Err(Rejection::InvalidField { field, .. }) => field,
            Err(Rejection::NotFound(_)) => "not_found",
            Err(Rejection::AlreadyExists(_)) => "exists",
            Err(Rejection::FailedPrecondition(_)) => "precondition",
            Err(Rejection::OfferNotOpen(_)) => "offer_not_open",
            Err(Rejection::OtherShard { .. }) => "other_shard",
            Ok(_) => "accepted",
        };
        assert_eq!(kind, expected, "{command:?}");
        assert_eq!(engine.state(), &before, "{command:?} changed state");
    }
    // Closing a cancelled incident.
    engine
        .execute(Command::CancelIncident { incident: incident.clone(), reason: "false alarm".into() }, "operator:test", T0)
        .expect("cancel");
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
    Disconnect { person: usize, reachable: bool },
    Reconnect { person: usize },
    Move { person: usize, grid: usize, metres: f64 },
    OffDuty { person: usize },
    OnDuty { person: usize },
    Complete { person: usize },
    Cancel { incident: usize },
    Switch { area: usize, grade: usize },
    Report { person: usize, grid: usize },
    Triage { report: usize, merge: bool },
    CheckIn { person: usize },
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
        1 => (0..PEOPLE, any::<bool>()).prop_map(|(person, reachable)| Step::Disconnect { person, reachable }),
        1 => (0..PEOPLE).prop_map(|person| Step::Reconnect { person }),
        2 => (0..PEOPLE, 0..GRIDS.len(), 0.0..800.0f64).prop_map(|(person, grid, metres)| Step::Move { person, grid, metres }),
        1 => (0..PEOPLE).prop_map(|person| Step::OffDuty { person }),
        1 => (0..PEOPLE).prop_map(|person| Step::OnDuty { person }),
        2 => (0..PEOPLE).prop_map(|person| Step::Complete { person }),
        1 => (0..8usize).prop_map(|incident| Step::Cancel { incident }),
        1 => (0..MODE_AREAS.len(), 0..MODES.len()).prop_map(|(area, grade)| Step::Switch { area, grade }),
        1 => (0..PEOPLE, 0..GRIDS.len()).prop_map(|(person, grid)| Step::Report { person, grid }),
        1 => (0..6usize, any::<bool>()).prop_map(|(report, merge)| Step::Triage { report, merge }),
        1 => (0..PEOPLE).prop_map(|person| Step::CheckIn { person }),
    ]
}

fn check_invariants(engine: &Engine) -> Result<(), TestCaseError> {
    invariants::check(engine).map_err(TestCaseError::fail)
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
            person.role = match n % 6 {
                4 => Role::RegisteredMember,
                5 => Role::SunkCadre,
                _ => Role::Volunteer,
            };
            person.home_area = Some(AreaId::new(GRIDS[n % GRIDS.len()]));
            profiles.push(person);
        }
        events.extend(engine.execute(Command::UpsertAgents { agents: profiles, all_new: true, tokens: Vec::new() }, "operator:test", now).expect("roster"));
        for (n, id) in people.iter().enumerate() {
            engine.execute(Command::Connect { agent: id.clone() }, "agent", now).expect("connect");
            let at = east(grid_centres[n % GRIDS.len()], 37.0 * n as f64);
            events.extend(engine.execute(Command::ReportLocation { agent: id.clone(), at }, "agent", now).expect("locate"));
        }
        let mut incidents: Vec<IncidentId> = Vec::new();
        let mut reports: Vec<IncidentId> = Vec::new();
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
                        source_id: String::new(),
                    };
                    // Forced: incidents nobody could take are explored too.
                    let result = engine.execute(Command::CreateIncident { id: None, spec, force: true }, "operator:test", now);
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
                Step::Disconnect { person, reachable } => {
                    engine.execute(Command::Disconnect { agent: people[person].clone(), reachable }, "agent", now)
                }
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
                    Some(incident) => engine.execute(Command::Complete { agent: people[person].clone(), incident, feedback: "ok".into(), photo_refs: Vec::new() }, "agent", now),
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
                Step::Report { person, grid } => {
                    let command = Command::FieldReport {
                        agent: people[person].clone(),
                        at: east(grid_centres[grid], 30.0),
                        category: if person % 2 == 0 { "fire".into() } else { "litter".into() },
                        text: "seen".into(),
                        photo_ref: String::new(),
                        photo_refs: Vec::new(),
                    };
                    let result = engine.execute(command, "agent", now);
                    if let Ok(created) = &result {
                        let id = created[0].kind.incident_id().expect("id").clone();
                        incidents.push(id.clone());
                        reports.push(id);
                    }
                    result
                }
                Step::Triage { report, merge } => match (reports.get(report), incidents.first()) {
                    (Some(id), Some(first)) if merge => {
                        engine.execute(Command::TriageMerge { incident: id.clone(), into: first.clone() }, "operator:test", now)
                    }
                    (Some(id), _) => engine.execute(
                        Command::TriageAccept { incident: id.clone(), priority: Some(1), headcount: Some(2), skills: None },
                        "operator:test",
                        now,
                    ),
                    _ => Ok(vec![]),
                },
                Step::CheckIn { person } => engine.execute(Command::CheckIn { agent: people[person].clone(), callup: None }, "agent", now),
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
    let mut engine = Engine::new(quiet_policy());
    engine.execute(Command::ImportAreas(sample_map()), "operator:test", T0).expect("map imports")
}

// ---------------------------------------------------------------- 平急转换 in full

fn person_with_role(engine: &mut Engine, id: &str, role: Role, home: &str, at: Option<Position>, now: Millis) {
    let mut profile = profile(id, &[]);
    profile.role = role;
    profile.home_area = Some(area(home));
    engine
        .execute(Command::UpsertAgents { agents: vec![profile], all_new: true, tokens: Vec::new() }, "operator:test", now)
        .expect("person added");
    if let Some(at) = at {
        engine.execute(Command::Connect { agent: AgentId::new(id) }, "agent", now).expect("connects");
        engine.execute(Command::ReportLocation { agent: AgentId::new(id), at }, "agent", now).expect("located");
    }
}

fn switch(engine: &mut Engine, area_id: &str, mode: Mode, now: Millis) -> Vec<Event> {
    engine
        .execute(Command::SetMode { area: area(area_id), mode, reason: "test".into() }, "operator:commander", now)
        .expect("switch works")
}

#[test]
fn nested_switches_resolve_to_the_strictest_and_switching_back_restores() {
    let mut engine = engine();
    switch(&mut engine, "d1", Mode::EmergencyIii, T0);
    switch(&mut engine, "d1-s1-c1", Mode::EmergencyI, T0);
    let state = engine.state();
    assert_eq!(state.area_modes(&area("d1-s1-c1-g1")).1, Mode::EmergencyI);
    assert_eq!(state.area_modes(&area("d1-s2-c1-g1")).1, Mode::EmergencyIii);
    assert_eq!(state.area_modes(&area("d2-s1-c1-g1")).1, Mode::Normal);
    switch(&mut engine, "d1-s1-c1", Mode::Normal, T0);
    assert_eq!(engine.state().area_modes(&area("d1-s1-c1-g1")).1, Mode::EmergencyIii);
}

#[test]
fn reserves_are_offered_only_in_the_grades_that_admit_them() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    person_with_role(&mut engine, "member", Role::RegisteredMember, "d1-s1-c1-g1", Some(east(grid, 50.0)), T0);
    let (incident, events) = create(&mut engine, grid, &[], 1, T0);
    assert!(offers_in(&events).is_empty(), "a registered member is a reserve in normal mode");
    assert_eq!(engine.state().incidents[&incident].status(), IncidentStatus::Waiting);
    let switched = switch(&mut engine, "d1", Mode::EmergencyIv, T0);
    assert_eq!(offers_in(&switched)[0].1, AgentId::new("member"), "grade IV admits registered members");
}

#[test]
fn nobody_is_offered_a_task_beyond_the_longest_acceptable_travel_time() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    // Grade I allows 900 s; on foot at 1.4 m/s that is 1260 m.
    person_with_role(&mut engine, "far-walker", Role::Volunteer, "d1-s1-c1-g1", Some(east(grid, 2000.0)), T0);
    switch(&mut engine, "city", Mode::EmergencyI, T0);
    let (_, events) = create(&mut engine, grid, &[], 1, T0);
    assert!(offers_in(&events).is_empty());
    person_with_role(&mut engine, "near-walker", Role::Volunteer, "d1-s1-c1-g1", Some(east(grid, 1000.0)), T0);
    assert_eq!(open_offer_of(&engine, "near-walker").map(|_| ()), Some(()));
}

#[test]
fn a_grade_ii_switch_calls_up_sunk_cadres_who_check_in_or_are_listed_missing() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    person_with_role(&mut engine, "cadre-a", Role::SunkCadre, "d1-s1-c1-g1", Some(east(grid, 100.0)), T0);
    person_with_role(&mut engine, "cadre-b", Role::SunkCadre, "d1-s1-c1-g2", None, T0);
    person_with_role(&mut engine, "cadre-elsewhere", Role::SunkCadre, "d2-s1-c1-g1", None, T0);
    person_with_role(&mut engine, "volunteer", Role::Volunteer, "d1-s1-c1-g1", None, T0);
    let events = switch(&mut engine, "d1", Mode::EmergencyIi, T0);
    let (callup, people, deadline) = events
        .iter()
        .find_map(|event| match &event.kind {
            EventKind::CallupIssued { callup, people, deadline, by_switch, .. } => {
                assert!(by_switch);
                Some((callup.clone(), people.clone(), *deadline))
            }
            _ => None,
        })
        .expect("a call-up");
    assert_eq!(people, vec![AgentId::new("cadre-a"), AgentId::new("cadre-b")]);
    assert_eq!(deadline, T0.plus_seconds(engine.policy().emergency_ii.checkin_deadline_s));

    // Checking in needs a reported location.
    let refused = engine.execute(Command::CheckIn { agent: AgentId::new("cadre-b"), callup: None }, "agent", T0);
    assert!(matches!(refused, Err(Rejection::FailedPrecondition(message)) if message.contains("location")));
    let checked = engine
        .execute(Command::CheckIn { agent: AgentId::new("cadre-a"), callup: Some(callup.clone()) }, "agent", T0.plus_seconds(60))
        .expect("check-in");
    assert!(checked.iter().any(|event| event.kind.name() == "checked_in"));
    let again = engine.execute(Command::CheckIn { agent: AgentId::new("cadre-a"), callup: None }, "agent", T0.plus_seconds(61));
    assert!(matches!(again, Err(Rejection::FailedPrecondition(_))));

    let fired = engine.tick(deadline);
    let missing = fired
        .iter()
        .find_map(|event| match &event.kind {
            EventKind::CallupDeadlinePassed { missing, .. } => Some(missing.clone()),
            _ => None,
        })
        .expect("the roll-call at the deadline");
    assert_eq!(missing, vec![AgentId::new("cadre-b")]);

    let back = switch(&mut engine, "d1", Mode::Normal, deadline);
    assert!(back.iter().any(|event| matches!(&event.kind, EventKind::CallupStoodDown { callup: stood, .. } if *stood == callup)));
    assert!(!engine.state().callups[&callup].is_open());
}

fn flood_plan() -> crate::plans::PlanSpec {
    crate::plans::parse_plan(
        r#"
id = "flood-ii"
name = "Flood, grade II"
category = "flood"
grade = "II"
auto_activate = true
call_up = ["registered_member"]

[[task]]
category = "sandbags"
where = "service_centres"
need = 2
priority = 2

[[task]]
category = "command_post"
where = "centroid"
priority = 1

[[task]]
category = "evacuate"
areas = ["d1-s1-c1-g1", "d1-s1-c1-g2"]
priority = 1
"#,
    )
    .expect("plan parses")
}

#[test]
fn each_plan_activated_by_one_switch_keeps_its_own_call_up() {
    let mut engine = engine();
    let mut second = flood_plan();
    second.id = crate::ids::PlanId::new("flood");
    second.call_up = vec![Role::Volunteer];
    engine.execute(Command::ImportPlans(vec![flood_plan(), second]), "operator:admin", T0).expect("plans import");
    person_with_role(&mut engine, "member", Role::RegisteredMember, "d1-s1-c1-g1", None, T0);
    person_with_role(&mut engine, "volunteer", Role::Volunteer, "d1-s1-c1-g1", None, T0);
    switch(&mut engine, "d1", Mode::EmergencyIi, T0);
    let activations: Vec<_> = engine.state().activations.values().cloned().collect();
    assert_eq!(activations.len(), 2);
    for activation in &activations {
        let callup = activation.callup.as_ref().unwrap_or_else(|| panic!("{} has its call-up", activation.id));
        let people: Vec<_> = engine.state().callups[callup].people.keys().cloned().collect();
        let expected = if activation.plan.as_str() == "flood" { "volunteer" } else { "member" };
        assert_eq!(people, vec![AgentId::new(expected)], "{}", activation.id);
    }
    let flood = activations.iter().find(|activation| activation.plan.as_str() == "flood").expect("flood").id.clone();
    engine
        .execute(Command::DeactivatePlan { activation: flood.clone(), reason: "done".into() }, "operator:commander", T0)
        .expect("ends");
    let callup = engine.state().activations[&flood].callup.clone().expect("callup");
    assert!(!engine.state().callups[&callup].is_open(), "deactivating the plan stood its call-up down");
}

#[test]
fn a_plan_creates_its_tasks_and_deactivating_cancels_them_and_releases_people() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    person_with_role(&mut engine, "worker", Role::CommunityWorker, "d1-s1-c1-g1", Some(east(grid, 100.0)), T0);
    person_with_role(&mut engine, "member", Role::RegisteredMember, "d1-s1-c1-g3", None, T0);
    engine.execute(Command::ImportPlans(vec![flood_plan()]), "operator:admin", T0).expect("plans import");
    let refused = engine.execute(
        Command::ActivatePlan { plan: crate::ids::PlanId::new("nope"), area: area("d1-s1"), reason: "x".into() },
        "operator:commander",
        T0,
    );
    assert!(matches!(refused, Err(Rejection::NotFound(_))));

    let events = engine
        .execute(
            Command::ActivatePlan {
                plan: crate::ids::PlanId::new("flood-ii"),
                area: area("d1-s1"),
                reason: "river rising".into(),
            },
            "operator:commander",
            T0,
        )
        .expect("activates");
    let activation_id = events
        .iter()
        .find_map(|event| match &event.kind {
            EventKind::PlanActivated { activation, .. } => Some(activation.clone()),
            _ => None,
        })
        .expect("activated");
    let activation = engine.state().activations[&activation_id].clone();
    let service_centres_in_street = engine
        .state()
        .areas
        .service_centres()
        .filter(|centre| engine.state().areas.placement_of_area(&centre.area).within(AreaLevel::Street, &area("d1-s1")))
        .count();
    assert!(service_centres_in_street >= 1);
    assert_eq!(activation.incidents.len(), service_centres_in_street + 1 + 2, "one per centre, the centroid, two listed areas");
    assert!(activation.callup.is_some(), "the plan's call-up went out");
    assert!(events.iter().all(|event| event.actor == "operator:commander" || event.actor == "dispatcher"));
    let again = engine.execute(
        Command::ActivatePlan { plan: crate::ids::PlanId::new("flood-ii"), area: area("d1-s1"), reason: "again".into() },
        "operator:commander",
        T0,
    );
    assert!(matches!(again, Err(Rejection::AlreadyExists(_))));

    // The worker takes one task; deactivating releases them.
    let offer = open_offer_of(&engine, "worker").expect("the worker was offered a plan task");
    engine.execute(Command::Accept { agent: AgentId::new("worker"), offer }, "agent", T0).expect("accept");
    let ended = engine
        .execute(
            Command::DeactivatePlan { activation: activation_id.clone(), reason: "water receding".into() },
            "operator:commander",
            T0,
        )
        .expect("deactivates");
    assert!(ended.iter().any(|event| event.kind.name() == "plan_deactivated"));
    assert!(ended.iter().any(|event| event.kind.name() == "callup_stood_down"));
    for incident in &activation.incidents {
        assert_eq!(engine.state().incidents[incident].status(), IncidentStatus::Cancelled);
    }
    assert_eq!(engine.state().agents[&AgentId::new("worker")].status, AgentStatus::Available);
    assert!(engine.state().agents[&AgentId::new("worker")].current_incident.is_none());
}

#[test]
fn a_switch_activates_plans_marked_for_its_grade_and_switching_back_ends_them() {
    let mut engine = engine();
    engine.execute(Command::ImportPlans(vec![flood_plan()]), "operator:admin", T0).expect("plans import");
    let events = switch(&mut engine, "d1-s1", Mode::EmergencyIii, T0);
    assert!(!events.iter().any(|event| event.kind.name() == "plan_activated"), "a grade II plan waits for grade II");
    let events = switch(&mut engine, "d1-s2", Mode::EmergencyIi, T0);
    assert!(events.iter().any(|event| matches!(&event.kind, EventKind::PlanActivated { automatic: true, .. })));
    let open_before = engine.state().open_incidents.len();
    assert!(open_before > 0);
    let back = switch(&mut engine, "d1-s2", Mode::Normal, T0);
    assert!(back.iter().any(|event| event.kind.name() == "plan_deactivated"));
    assert!(engine.state().open_incidents.is_empty(), "the plan's tasks were cancelled");
}

#[test]
fn field_reports_wait_for_triage_then_are_dispatched_merged_or_rejected() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    person_at(&mut engine, "courier", &[], east(grid, 300.0), T0);
    person_at(&mut engine, "helper", &[], east(grid, 100.0), T0);
    let report = |engine: &mut Engine, category: &str| {
        let events = engine
            .execute(
                Command::FieldReport {
                    agent: AgentId::new("courier"),
                    at: east(grid, 20.0),
                    category: category.into(),
                    text: "water over the road".into(),
                    photo_ref: "photo://1".into(),
                    photo_refs: Vec::new(),
                },
                "agent:courier",
                T0,
            )
            .expect("report accepted for triage");
        events[0].kind.incident_id().expect("an incident").clone()
    };
    let first = report(&mut engine, "flooding");
    assert_eq!(engine.state().incidents[&first].status(), IncidentStatus::Reported);
    assert!(open_offer_of(&engine, "helper").is_none(), "not dispatched before triage");
    let accepted = engine
        .execute(
            Command::TriageAccept { incident: first.clone(), priority: Some(2), headcount: None, skills: None },
            "operator:triage",
            T0,
        )
        .expect("accept");
    assert!(accepted.iter().any(|event| event.kind.name() == "report_accepted"));
    assert_eq!(engine.state().incidents[&first].spec.priority, 2);
    assert!(open_offer_of(&engine, "helper").is_some(), "dispatched after triage");

    let second = report(&mut engine, "flooding");
    engine.execute(Command::TriageMerge { incident: second.clone(), into: first.clone() }, "operator:triage", T0).expect("merge");
    assert_eq!(engine.state().incidents[&second].status(), IncidentStatus::Merged);
    assert_eq!(engine.state().incidents[&first].reporters.len(), 2);

    let third = report(&mut engine, "noise");
    let empty = engine.execute(Command::TriageReject { incident: third.clone(), reason: " ".into() }, "operator:triage", T0);
    assert!(matches!(empty, Err(Rejection::InvalidArgument(_))));
    engine
        .execute(Command::TriageReject { incident: third.clone(), reason: "not an emergency".into() }, "operator:triage", T0)
        .expect("reject");
    assert_eq!(engine.state().incidents[&third].status(), IncidentStatus::Rejected);
    let twice = engine.execute(Command::TriageReject { incident: third, reason: "again".into() }, "operator:triage", T0);
    assert!(matches!(twice, Err(Rejection::FailedPrecondition(_))));

    // In grade III a fire report is dispatched at once.
    switch(&mut engine, "d1", Mode::EmergencyIii, T0);
    let fire = report(&mut engine, "fire");
    assert_ne!(engine.state().incidents[&fire].status(), IncidentStatus::Reported);
}

#[test]
fn coverage_and_grid_staffing_on_the_sample_city() {
    let mut policy = Policy { staffing_check_s: 60, ..Policy::default() };
    policy.normal.grid_minimum = 1;
    let mut engine = engine_with(policy);
    let coverage = engine.coverage(None);
    assert_eq!(coverage.len(), 8, "eight communities");
    for community in &coverage {
        assert_eq!(community.grids, 4);
        assert!(community.grids_within_15_min <= community.grids);
    }
    let covered: u32 = coverage.iter().map(|community| community.grids_within_15_min).sum();
    assert!(covered > 0, "some grids are within 15 minutes of a service centre");

    // Nobody connected: every grid is below its minimum at the first check.
    let fired = engine.tick(T0);
    let low = fired.iter().filter(|event| event.kind.name() == "grid_staffing_low").count();
    assert_eq!(low, 32);
    assert!(engine.tick(T0.plus_seconds(1)).is_empty(), "no repeat before the next check");
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    person_at(&mut engine, "a", &[], east(grid, 10.0), T0);
    let fired = engine.tick(T0.plus_seconds(60));
    assert!(
        fired
            .iter()
            .any(|event| matches!(&event.kind, EventKind::GridStaffingRestored { grid, .. } if grid.as_str() == "d1-s1-c1-g1"))
    );
    assert_eq!(engine.state().low_grids.len(), 31);
}

#[test]
fn a_bad_policy_file_names_the_field() {
    let error = Policy::from_toml("[emergency_i]\nmax_travel_s = 5\n").unwrap_err();
    assert!(error.contains("emergency_i.max_travel_s"), "{error}");
    let error = Policy::from_toml("[normal]\neligible_reserves = [\"wizard\"]\n").unwrap_err();
    assert!(error.contains("eligible_reserves") || error.contains("wizard"), "{error}");
}

/// Grade II with one offer per needed person, so that who is offered what is
/// easy to read; `assignment` chooses greedy or batch.
fn surge_policy(assignment: crate::policy::Assignment) -> Policy {
    let mut policy = quiet_policy();
    policy.emergency_ii.parallel_offers = 1;
    policy.emergency_ii.assignment = assignment;
    policy
}

fn incident_spec(at: Position, skills: &[&str], priority: u8) -> IncidentSpec {
    IncidentSpec {
        at,
        category: "flooding".to_string(),
        priority,
        skills: skills.iter().map(|skill| skill.to_string()).collect(),
        headcount: 1,
        description: String::new(),
        source_id: String::new(),
    }
}

/// A surge where one-by-one is wasteful: incident A (reported first, no skill
/// needed) and B (needs first aid) are both nearest to first-aider X; Y is a
/// little farther from A, Z (first aid) far from both. Greedy gives A X and
/// B Z; the matching gives A Y and B X, for half the total ETA. Before them,
/// incident O in a quiet moment is offered at once and opens the window.
/// Returns the engine, every event (map import excluded) and the ids of A, B.
fn surge_of_two(assignment: crate::policy::Assignment) -> (Engine, Vec<Event>, IncidentId, IncidentId) {
    let mut engine = engine_with(surge_policy(assignment));
    let mut events = switch(&mut engine, "d1", Mode::EmergencyIi, T0);
    let centre = centre_of(&engine, "d1-s1-c1-g1");
    let opener_at = east(centre_of(&engine, "d1-s2-c1-g1"), 0.0);
    for (id, skills, at) in [
        ("o", vec![], east(opener_at, 50.0)),
        ("x", vec!["first_aid"], east(centre, 100.0)),
        ("y", vec![], east(centre, -150.0)),
        ("z", vec!["first_aid"], east(centre, 900.0)),
    ] {
        let mut person = profile(id, &skills);
        person.home_area = Some(area("d1-s1-c1-g1"));
        events.extend(
            engine
                .execute(Command::UpsertAgents { agents: vec![person], all_new: true, tokens: Vec::new() }, "operator:test", T0)
                .expect("added"),
        );
        engine.execute(Command::Connect { agent: AgentId::new(id) }, "agent", T0).expect("connects");
        events.extend(engine.execute(Command::ReportLocation { agent: AgentId::new(id), at }, "agent", T0).expect("located"));
    }
    let now = T0.plus_seconds(10);
    let create = |spec: IncidentSpec, engine: &mut Engine, events: &mut Vec<Event>| {
        let created =
            engine.execute(Command::CreateIncident { id: None, spec, force: false }, "operator:test", now).expect("created");
        let id = created[0].kind.incident_id().expect("names the incident").clone();
        events.extend(created);
        id
    };
    create(incident_spec(opener_at, &[], 2), &mut engine, &mut events);
    let a = create(incident_spec(centre, &[], 1), &mut engine, &mut events);
    let b = create(incident_spec(east(centre, 300.0), &["first_aid"], 1), &mut engine, &mut events);
    let later = now.plus_seconds(60);
    while let Some(deadline) = engine.next_deadline().filter(|deadline| *deadline <= later) {
        events.extend(engine.tick(deadline));
    }
    (engine, events, a, b)
}

fn offered_to(engine: &Engine, incident: &IncidentId) -> Vec<String> {
    engine.state().incidents[incident].open_offers.values().map(|offer| offer.agent.as_str().to_string()).collect()
}

#[test]
fn greedy_assignment_gives_the_first_incident_its_nearest_even_when_the_next_needs_them_more() {
    let (engine, _, a, b) = surge_of_two(crate::policy::Assignment::Greedy);
    assert_eq!(offered_to(&engine, &a), ["x"]);
    assert_eq!(offered_to(&engine, &b), ["z"]);
}

#[test]
fn batch_assignment_matches_a_surge_for_the_least_total_eta_and_replays_exactly() {
    let (engine, events, a, b) = surge_of_two(crate::policy::Assignment::Batch);
    assert_eq!(offered_to(&engine, &a), ["y"]);
    assert_eq!(offered_to(&engine, &b), ["x"]);
    let eta =
        |incident: &IncidentId| engine.state().incidents[incident].open_offers.values().map(|offer| offer.eta_s).sum::<f64>();
    let (greedy, _, greedy_a, greedy_b) = surge_of_two(crate::policy::Assignment::Greedy);
    let greedy_eta =
        |incident: &IncidentId| greedy.state().incidents[incident].open_offers.values().map(|offer| offer.eta_s).sum::<f64>();
    assert!(eta(&a) + eta(&b) < greedy_eta(&greedy_a) + greedy_eta(&greedy_b));
    // The offers of A and B went out at the end of the window, not when they were reported.
    let reported = engine.state().incidents[&a].reported_at;
    let sent = engine.state().incidents[&a].open_offers.values().map(|offer| offer.sent_at).collect::<Vec<_>>();
    assert_eq!(sent, [Millis(reported.0 + engine.policy().emergency_ii.batch_window_ms as i64)]);
    // Same input, same offers; the journal rebuilds the same state.
    let (_, again, _, _) = surge_of_two(crate::policy::Assignment::Batch);
    assert_eq!(again, events);
    let mut all = engine_map_events();
    all.extend(events);
    assert_eq!(&replayed(&engine, &all), engine.state());
}

#[test]
fn an_incident_in_a_quiet_moment_is_offered_at_once_even_with_batch_assignment() {
    let mut engine = engine_with(surge_policy(crate::policy::Assignment::Batch));
    switch(&mut engine, "d1", Mode::EmergencyIi, T0);
    let centre = centre_of(&engine, "d1-s1-c1-g1");
    person_at(&mut engine, "near", &[], east(centre, 80.0), T0);
    let (_, events) = create(&mut engine, centre, &[], 1, T0.plus_seconds(5));
    assert_eq!(offers_in(&events).len(), 1);
    // Declining is re-offered at once too: the incident opened the window itself.
    person_at(&mut engine, "next", &[], east(centre, 200.0), T0.plus_seconds(5));
    let offer = open_offer_of(&engine, "near").expect("offered");
    let declined = engine
        .execute(Command::Decline { agent: AgentId::new("near"), offer, reason: "busy".into() }, "agent", T0.plus_seconds(6))
        .expect("declines");
    assert_eq!(offers_in(&declined).iter().map(|(_, agent)| agent.as_str()).collect::<Vec<_>>(), ["next"]);
}

#[test]
fn a_batch_too_big_for_one_matching_goes_greedy_for_the_rest_and_urgent_incidents_come_first() {
    let mut policy = surge_policy(crate::policy::Assignment::Batch);
    policy.emergency_ii.batch_max_incidents = 1;
    let mut engine = engine_with(policy);
    switch(&mut engine, "d1", Mode::EmergencyIi, T0);
    let centre = centre_of(&engine, "d1-s1-c1-g1");
    person_at(&mut engine, "only-near", &[], east(centre, 50.0), T0);
    person_at(&mut engine, "far", &[], east(centre, 700.0), T0);
    let opener_at = centre_of(&engine, "d1-s2-c1-g1");
    person_at(&mut engine, "opener-near", &[], east(opener_at, 30.0), T0);
    let now = T0.plus_seconds(1);
    let opener = incident_spec(opener_at, &[], 3);
    engine.execute(Command::CreateIncident { id: None, spec: opener, force: false }, "operator:test", now).expect("created");
    let mut ids = Vec::new();
    for priority in [3u8, 1] {
        let created = engine
            .execute(
                Command::CreateIncident { id: None, spec: incident_spec(centre, &[], priority), force: false },
                "operator:test",
                now,
            )
            .expect("created");
        assert!(offers_in(&created).is_empty(), "held for the batch");
        ids.push(created[0].kind.incident_id().expect("id").clone());
    }
    let due = engine.next_deadline().expect("the batch is due");
    let fired = engine.tick(due);
    assert_eq!(offers_in(&fired).len(), 2, "one offer by the matching, one greedy");
    assert_eq!(offered_to(&engine, &ids[1]), ["only-near"], "priority 1 is matched first");
    assert_eq!(offered_to(&engine, &ids[0]), ["far"]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// The search walks the three travel modes' trees in one walk and
    /// stops early; it must find exactly the people a full scan ranks first.
    #[test]
    fn candidate_search_equals_a_full_scan_ranked_by_eta(
        people in prop::collection::vec((0.0..3000.0f64, 0.0..3000.0f64, 0..3usize, any::<bool>(), 0..5u8), 1..60),
        k in 1..6usize,
        with_skill in any::<bool>(),
    ) {
        let mut engine = engine();
        let origin = centre_of(&engine, "d1-s1-c1-g1");
        let north = |from: Position, metres: f64| Position { lat: from.lat + metres / 111_195.0, ..from };
        for (n, (x, y, mode, skilled, status)) in people.iter().enumerate() {
            let id = format!("q{n}");
            let mut person = profile(&id, if *skilled { &["first_aid"] } else { &[] });
            person.travel_mode = [TravelMode::Walk, TravelMode::Bike, TravelMode::Car][*mode];
            engine.execute(Command::UpsertAgents { agents: vec![person], all_new: true, tokens: Vec::new() }, "operator:test", T0).expect("added");
            engine.execute(Command::Connect { agent: AgentId::new(&id) }, "agent", T0).expect("connects");
            let at = north(east(origin, *x - 1500.0), *y - 1500.0);
            engine.execute(Command::ReportLocation { agent: AgentId::new(&id), at }, "agent", T0).expect("located");
            if *status == 0 {
                engine.execute(Command::SetStatus { agent: AgentId::new(&id), status: AgentStatus::OffDuty }, "agent", T0).expect("status");
            }
        }
        let skills: BTreeSet<String> = if with_skill { ["first_aid".to_string()].into() } else { BTreeSet::new() };
        let found: Vec<(String, f64)> =
            engine.nearby(origin, k, &skills, true, T0).into_iter().map(|c| (c.agent.as_str().to_string(), c.eta_s)).collect();
        let speeds = &engine.policy().speeds;
        let mut scan: Vec<(f64, u32, String)> = engine
            .state()
            .agents
            .values()
            .filter(|record| record.is_free() && record.has_skills(&skills))
            .filter_map(|record| {
                let at = engine.live_agent(&record.profile.id)?.location?;
                let eta = (origin.distance_m(at) / record.profile.travel_mode.speed_mps(speeds)).round();
                Some((eta, 0, record.profile.id.as_str().to_string()))
            })
            .collect();
        scan.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
        let expected: Vec<(String, f64)> = scan.into_iter().take(k).map(|(eta, _, id)| (id, eta)).collect();
        prop_assert_eq!(found, expected);
    }
}

#[test]
fn a_roster_change_of_skills_or_travel_mode_applies_to_a_located_person_at_once() {
    let mut engine = engine();
    let centre = centre_of(&engine, "d1-s1-c1-g1");
    person_at(&mut engine, "changer", &[], east(centre, 300.0), T0);
    let first_aid: BTreeSet<String> = ["first_aid".to_string()].into();
    assert!(engine.nearby(centre, 1, &first_aid, true, T0).is_empty());
    let mut changed = profile("changer", &["first_aid"]);
    changed.travel_mode = TravelMode::Car;
    engine
        .execute(Command::UpsertAgents { agents: vec![changed], all_new: false, tokens: Vec::new() }, "operator:test", T0)
        .expect("updated");
    let found = engine.nearby(centre, 1, &first_aid, true, T0);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].eta_s, (found[0].distance_m / engine.policy().speeds.car_mps).round(), "ranked as a driver now");
    engine
        .execute(
            Command::UpsertAgents { agents: vec![profile("changer", &[])], all_new: false, tokens: Vec::new() },
            "operator:test",
            T0,
        )
        .expect("updated");
    assert!(engine.nearby(centre, 1, &first_aid, true, T0).is_empty());
}

#[test]
fn a_district_shard_keeps_its_district_and_names_the_shard_of_the_rest() {
    let mut engine = engine();
    engine.set_scope(Some(area("d1")));
    let before = engine.state().clone();
    let in_d2 = centre_of(&engine, "d2-s1-c1-g1");
    let spec = IncidentSpec {
        at: in_d2,
        category: "medical".to_string(),
        priority: 1,
        skills: BTreeSet::new(),
        headcount: 1,
        description: String::new(),
        source_id: String::new(),
    };
    let shard_of = |result: Result<Vec<Event>, Rejection>| match result {
        Err(Rejection::OtherShard { shard, message }) => {
            assert!(message.contains("this dispatcher serves shard d1"), "{message}");
            shard
        }
        other => panic!("expected another shard, got {other:?}"),
    };
    let command = Command::CreateIncident { id: None, spec: spec.clone(), force: false };
    assert_eq!(shard_of(engine.execute(command, "operator:test", T0)), "d2");
    let switch = Command::SetMode { area: area("d2-s1"), mode: Mode::EmergencyI, reason: "flood".into() };
    assert_eq!(shard_of(engine.execute(switch, "operator:test", T0)), "d2");
    let westerner = AgentProfile { home_area: Some(area("d2-s1-c1-g1")), ..profile("w", &[]) };
    let alone = Command::UpsertAgents { agents: vec![westerner.clone()], all_new: true, tokens: Vec::new() };
    assert_eq!(shard_of(engine.execute(alone, "operator:test", T0)), "d2");
    let easterner = AgentProfile { home_area: Some(area("d1-s1-c1-g1")), ..profile("e", &[]) };
    let mixed = Command::UpsertAgents { agents: vec![easterner, westerner], all_new: true, tokens: Vec::new() };
    match engine.execute(mixed, "operator:test", T0) {
        Err(Rejection::FailedPrecondition(message)) => assert!(message.contains("w (d2)"), "{message}"),
        other => panic!("a mixed import must be refused whole: {other:?}"),
    }
    assert_eq!(engine.state(), &before, "refusals change nothing");

    // Its own district, and places off every district, are its own; the
    // ids it makes carry the district.
    let in_d1 = centre_of(&engine, "d1-s1-c1-g1");
    let (id, _) = create(&mut engine, in_d1, &[], 1, T0);
    assert_eq!(id.as_str(), "d1-inc-000001");
    let switch = Command::SetMode { area: area("d1-s1"), mode: Mode::EmergencyI, reason: "flood".into() };
    engine.execute(switch, "operator:test", T0).expect("its own street");

    // Without a scope the same commands are the city's.
    engine.set_scope(None);
    let (id, _) = create(&mut engine, in_d2, &[], 1, T0);
    assert_eq!(id.as_str(), "inc-000002");
}

#[test]
fn an_incident_keeps_the_mode_it_was_reported_in_while_the_area_switches() {
    let mut engine = engine();
    let mut all = engine_map_events();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    let (in_normal, events) = create(&mut engine, grid, &[], 1, T0);
    all.extend(events);
    all.extend(switch(&mut engine, "d1", Mode::EmergencyIi, T0));
    let (in_emergency, events) = create(&mut engine, grid, &[], 1, T0);
    all.extend(events);
    all.extend(switch(&mut engine, "d1", Mode::Normal, T0));
    let state = engine.state();
    assert_eq!(state.incidents[&in_normal].reported_mode, Some(Mode::Normal));
    assert_eq!(state.incidents[&in_emergency].reported_mode, Some(Mode::EmergencyIi), "the switch back changes nothing");
    assert_eq!(state.effective_mode(&state.incidents[&in_emergency].placement).0, Mode::Normal);
    // Derived while evolving, so a replay of the journal finds the same.
    assert_eq!(&replayed(&engine, &all), engine.state());
}

#[test]
fn a_place_off_the_map_or_a_skill_nobody_has_is_refused_unless_forced() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    person_at(&mut engine, "medic", &["first_aid", "elder_care"], east(grid, 100.0), T0);
    let shanghai = Position { lon: 121.47, lat: 31.23 };
    let before = engine.state().clone();

    let spec = |at: Position, skills: &[&str]| IncidentSpec {
        at,
        category: "medical".into(),
        priority: 1,
        skills: skills.iter().map(|skill| skill.to_string()).collect(),
        headcount: 1,
        description: String::new(),
        source_id: String::new(),
    };
    let refused = |engine: &mut Engine, spec: IncidentSpec| match engine.execute(
        Command::CreateIncident { id: None, spec, force: false },
        "operator:test",
        T0,
    ) {
        Err(Rejection::InvalidField { field, message }) => (field, message),
        other => panic!("expected a refusal naming a field, got {other:?}"),
    };
    let (field, message) = refused(&mut engine, spec(shanghai, &[]));
    assert_eq!(field, "location");
    assert!(message.contains("location 121.47000,31.23000 is outside every area of the map"), "{message}");
    assert!(message.contains("spans lon 120."), "the map's extent, to spot swapped coordinates: {message}");
    assert!(message.contains("--force"), "{message}");
    let (field, message) = refused(&mut engine, spec(grid, &["firstaid", "first_aid"]));
    assert_eq!(field, "required_skills");
    assert!(
        message.contains("nobody on the roster has the skill \"firstaid\" (nearest known: first_aid, elder_care)"),
        "{message}"
    );
    assert!(!message.contains("\"first_aid\""), "a known skill is not named: {message}");
    assert!(message.contains("--force"), "{message}");
    assert_eq!(engine.state(), &before, "a refusal changes nothing");

    // Forced, both are reported: off the map it is placed nowhere.
    let (far, _) = create_forced(&mut engine, shanghai, &[], 1, T0);
    let far = &engine.state().incidents[&far];
    assert_eq!((far.placement.deepest(), far.scope), (None, AreaLevel::City));
    let (misspelt, _) = create_forced(&mut engine, grid, &["firstaid"], 1, T0);
    assert_eq!(engine.state().incidents[&misspelt].status(), IncidentStatus::Waiting);

    // Without a map there is no "outside" to refuse.
    let mut no_map = Engine::new(quiet_policy());
    create(&mut no_map, shanghai, &[], 1, T0);
}

fn unstaffable_in(events: &[Event]) -> Vec<(u32, u32, Vec<String>)> {
    events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::IncidentUnstaffable { needed, possible, missing_skills, .. } => {
                Some((*needed, *possible, missing_skills.iter().cloned().collect()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn an_incident_nobody_on_the_roster_could_take_is_raised_once_as_unstaffable() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    person_at(&mut engine, "medic", &["first_aid"], east(grid, 100.0), T0);
    let (incident, events) = create_forced(&mut engine, grid, &["diving"], 1, T0);
    assert!(events.iter().any(|event| event.kind.name() == "no_candidates"));
    assert_eq!(unstaffable_in(&events), [(1, 0, vec!["diving".to_string()])]);
    // Retries find the same shortfall: not raised again.
    let retried = engine.tick(T0.plus_seconds(engine.policy().waiting_retry_s));
    assert!(unstaffable_in(&retried).is_empty(), "{retried:?}");
    assert!(engine.next_deadline().is_some(), "still retried: someone may join the roster");
    // Someone with the skill joins: offered at once.
    person_at(&mut engine, "diver", &["diving"], east(grid, 300.0), T0.plus_seconds(20));
    assert_eq!(engine.state().incidents[&incident].status(), IncidentStatus::Offered);
}

#[test]
fn too_few_people_on_the_roster_for_the_headcount_is_unstaffable_and_declines_count() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    person_at(&mut engine, "medic-1", &["first_aid"], east(grid, 100.0), T0);
    person_at(&mut engine, "medic-2", &["first_aid"], east(grid, 200.0), T0);
    person_at(&mut engine, "helper", &[], east(grid, 50.0), T0);
    let (incident, events) = create(&mut engine, grid, &["first_aid"], 3, T0);
    assert_eq!(offers_in(&events).len(), 2, "the two who could are offered it");
    assert_eq!(unstaffable_in(&events), [(3, 2, vec![])], "but three are needed");

    // One declines: now only one could ever take it.
    let (offer, _) = offers_in(&events).into_iter().find(|(_, agent)| agent.as_str() == "medic-1").expect("offered");
    let declined = engine
        .execute(Command::Decline { agent: AgentId::new("medic-1"), offer, reason: "hurt".into() }, "agent:medic-1", T0)
        .expect("declines");
    assert_eq!(unstaffable_in(&declined), [(3, 1, vec![])]);
    assert_eq!(engine.state().incidents[&incident].unstaffable.as_ref().map(|shortfall| shortfall.possible), Some(1));
}

#[test]
fn nobody_fitting_now_is_not_unstaffable_when_someone_on_the_roster_could_come() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    person_at(&mut engine, "medic", &["first_aid"], east(grid, 100.0), T0);
    engine
        .execute(Command::SetStatus { agent: AgentId::new("medic"), status: AgentStatus::OffDuty }, "agent:medic", T0)
        .expect("off duty");
    person_with_role(&mut engine, "far-medic", Role::Volunteer, "d2-s1-c1-g1", None, T0);
    let (incident, events) = create(&mut engine, grid, &[], 1, T0);
    assert!(events.iter().any(|event| event.kind.name() == "no_candidates"), "nobody fits now");
    assert!(unstaffable_in(&events).is_empty(), "off duty and not connected may yet come: {events:?}");
    assert_eq!(engine.roster_shortfall(&engine.state().incidents[&incident]), None);
}

#[test]
fn an_unstaffable_incident_replays_to_the_same_state() {
    let mut engine = engine();
    let mut all = engine_map_events();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    all.extend(
        engine
            .execute(
                Command::UpsertAgents { agents: vec![profile("medic", &["first_aid"])], all_new: true, tokens: Vec::new() },
                "operator:test",
                T0,
            )
            .expect("added"),
    );
    let (incident, events) = create_forced(&mut engine, grid, &["first_aid", "diving"], 2, T0);
    assert_eq!(unstaffable_in(&events), [(2, 0, vec!["diving".to_string()])]);
    all.extend(events);
    let shortfall = engine.state().incidents[&incident].unstaffable.clone().expect("noted");
    assert_eq!(Some(shortfall), engine.roster_shortfall(&engine.state().incidents[&incident]));
    assert_eq!(&replayed(&engine, &all), engine.state());
}

#[test]
fn a_forced_incident_far_off_the_map_is_unstaffable_but_one_just_outside_is_not() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    person_at(&mut engine, "helper", &[], east(grid, 100.0), T0);
    // Shanghai, about 160 km from the sample city: nobody may travel that far.
    let (_, events) = create_forced(&mut engine, Position { lon: 121.47, lat: 31.23 }, &[], 1, T0);
    let raised = events.iter().find_map(|event| match &event.kind {
        EventKind::IncidentUnstaffable { possible, beyond_reach, .. } => Some((*possible, *beyond_reach)),
        _ => None,
    });
    assert_eq!(raised, Some((0, true)), "{events:?}");
    // A kilometre past the map's edge is still within reach.
    let (south_west, _) = engine.state().areas.bounds().expect("a map");
    let just_outside = Position { lon: south_west.lon - 0.01, lat: south_west.lat };
    assert!(!engine.beyond_reach(just_outside));
    let (_, events) = create_forced(&mut engine, just_outside, &[], 1, T0);
    assert!(unstaffable_in(&events).is_empty(), "{events:?}");
}

/// The typed queries the services answer from: filters apply together,
/// pages continue after the last id, an area off the map is `NotFound`,
/// and reading changes nothing.
#[test]
fn queries_filter_page_and_refuse_an_unknown_area() {
    let mut engine = engine();
    for (id, home) in [("q1", "d1-s1-c1-g1"), ("q2", "d1-s1-c1-g1"), ("q3", "d2-s1-c1-g1"), ("q4", "d1-s1-c1-g1")] {
        let mut person = profile(id, &[]);
        person.home_area = Some(area(home));
        engine
            .execute(Command::UpsertAgents { agents: vec![person], all_new: true, tokens: Vec::new() }, "operator:test", T0)
            .expect("person added");
    }
    engine.execute(Command::Connect { agent: AgentId::new("q2") }, "agent:q2", T0).expect("connects");
    let before = engine.state().clone();
    let ids = |records: Vec<&crate::roster::AgentRecord>| {
        records.iter().map(|record| record.profile.id.to_string()).collect::<Vec<_>>()
    };

    let in_d1 = AgentQuery { area: Some(area("d1")), limit: 10, ..AgentQuery::default() };
    assert_eq!(ids(engine.agents(&in_d1).expect("d1 is on the map")), ["q1", "q2", "q4"]);
    let first_page = AgentQuery { limit: 2, ..in_d1.clone() };
    assert_eq!(ids(engine.agents(&first_page).expect("page")), ["q1", "q2"]);
    let next_page = AgentQuery { after: Some(AgentId::new("q2")), ..first_page };
    assert_eq!(ids(engine.agents(&next_page).expect("page")), ["q4"]);
    let connected = AgentQuery { connected_only: true, limit: 10, ..AgentQuery::default() };
    assert_eq!(ids(engine.agents(&connected).expect("all")), ["q2"]);
    let off_map = AgentQuery { area: Some(area("d9")), limit: 10, ..AgentQuery::default() };
    match engine.agents(&off_map) {
        Err(Rejection::NotFound(message)) => assert!(message.contains("area d9 is not on the map"), "{message}"),
        other => panic!("expected NotFound, got {:?}", other.map(ids)),
    }
    assert!(matches!(engine.callups(&CallupQuery { area: Some(area("d9")), open_only: false }), Err(Rejection::NotFound(_))));
    assert!(matches!(engine.coverage_report(Some(&area("d9")), T0), Err(Rejection::NotFound(_))));
    let coverage = engine.coverage_report(Some(&area("d1")), T0).expect("d1 is on the map");
    assert!(!coverage.grids.is_empty() && coverage.grids.iter().all(|grid| grid.grid.as_str().starts_with("d1-")));
    assert!(engine.state() == &before, "reading changed the state");

    let (in_d1, in_d2) = (centre_of(&engine, "d1-s1-c1-g1"), centre_of(&engine, "d2-s1-c1-g1"));
    let (first, _) = create_forced(&mut engine, in_d1, &[], 1, T0);
    let (second, _) = create_forced(&mut engine, in_d2, &[], 1, T0);
    let all = IncidentQuery { limit: 10, ..IncidentQuery::default() };
    let incident_ids = |incidents: Vec<&Incident>| incidents.iter().map(|incident| incident.id.clone()).collect::<Vec<_>>();
    assert_eq!(incident_ids(engine.incidents(&all)), [first.clone(), second.clone()]);
    assert_eq!(incident_ids(engine.incidents(&IncidentQuery { after: Some(first), ..all })), [second]);
}

/// Who is offered an incident 40 m inside d1's border with d2, with one
/// person 60 m across the border in d2 and one 600 m away inside d1, under
/// the given modes and policy.
fn offered_across_the_border(modes: &[(&str, Mode)], policy: Policy) -> BTreeSet<String> {
    offers_across_the_border(modes, policy).into_iter().map(|offer| offer.agent.to_string()).collect()
}

fn offers_across_the_border(modes: &[(&str, Mode)], policy: Policy) -> Vec<OfferRecord> {
    let mut engine = engine_with(policy);
    let border = Position { lon: 120.154038, lat: 30.27 };
    for (id, mode) in modes {
        engine
            .execute(Command::SetMode { area: area(id), mode: *mode, reason: "flood".into() }, "operator:cmd", T0)
            .expect("mode set");
    }
    person_at(&mut engine, "across", &[], east(border, 60.0), T0);
    person_at(&mut engine, "inside", &[], east(border, -600.0), T0);
    let (_, events) = create(&mut engine, east(border, -40.0), &[], 1, T0);
    events
        .into_iter()
        .filter_map(|event| match event.kind {
            EventKind::OfferSent { offer } => Some(offer),
            _ => None,
        })
        .collect()
}

#[test]
fn in_one_emergency_help_crosses_the_border_between_touching_districts() {
    let both = offered_across_the_border(&[("d1", Mode::EmergencyIi), ("d2", Mode::EmergencyIi)], quiet_policy());
    assert!(both.contains("across"), "the nearest person, across the border, is offered: {both:?}");
    let offers = offers_across_the_border(&[("d1", Mode::EmergencyIi), ("d2", Mode::EmergencyIi)], quiet_policy());
    let from = |agent: &str| offers.iter().find(|offer| offer.agent.as_str() == agent).and_then(|offer| offer.from_area.clone());
    assert_eq!(from("across"), Some(area("d2")), "the offer says the person comes from d2");
    // A stricter grade next door joins too.
    let stricter = offered_across_the_border(&[("d1", Mode::EmergencyIi), ("d2", Mode::EmergencyI)], quiet_policy());
    assert!(stricter.contains("across"), "{stricter:?}");
}

#[test]
fn a_neighbour_not_in_the_same_emergency_sends_help_only_under_mutual_aid() {
    let alone = offered_across_the_border(&[("d1", Mode::EmergencyIi)], quiet_policy());
    assert_eq!(alone, BTreeSet::from(["inside".to_string()]), "d2 is in normal mode: nobody from it without a rule");
    let milder = offered_across_the_border(&[("d1", Mode::EmergencyIi), ("d2", Mode::EmergencyIii)], quiet_policy());
    assert_eq!(milder, BTreeSet::from(["inside".to_string()]), "d2 at a milder grade is not in this emergency");

    let aid = |roles: Vec<Role>| Policy {
        mutual_aid: vec![crate::policy::MutualAid {
            to: area("d1"),
            from: vec![area("d2")],
            roles,
            approved_by: "city command office".into(),
        }],
        ..quiet_policy()
    };
    let helped = offered_across_the_border(&[("d1", Mode::EmergencyIi)], aid(Vec::new()));
    assert!(helped.contains("across"), "mutual aid from d2 to d1: {helped:?}");
    let other_roles = offered_across_the_border(&[("d1", Mode::EmergencyIi)], aid(vec![Role::CommunityWorker]));
    assert!(!other_roles.contains("across"), "the rule sends community workers only, not volunteers: {other_roles:?}");
    // The rule is for d1's emergencies: in normal mode nothing crosses.
    let normal = offered_across_the_border(&[], aid(Vec::new()));
    assert_eq!(normal, BTreeSet::from(["inside".to_string()]), "{normal:?}");
}

/// The travel limit is on the exact ETA: a person 0.4 s beyond it is not
/// offered (rounded, they were), one 0.4 s within it is.
#[test]
fn the_travel_limit_is_on_the_exact_eta() {
    let mut policy = quiet_policy();
    policy.emergency_ii.max_travel_s = 600;
    let walk = policy.speeds.walk_mps;
    let mut engine = engine_with(policy);
    engine
        .execute(Command::SetMode { area: area("d1"), mode: Mode::EmergencyIi, reason: "flood".into() }, "operator:cmd", T0)
        .expect("mode set");
    let at = Position { lon: 120.12, lat: 30.27 };
    person_at(&mut engine, "beyond", &[], east(at, walk * 600.4), T0);
    person_at(&mut engine, "within", &[], east(at, -walk * 599.6), T0);
    let (_, events) = create(&mut engine, at, &[], 2, T0);
    let offered: BTreeSet<String> = offers_in(&events).into_iter().map(|(_, agent)| agent.to_string()).collect();
    assert_eq!(offered, BTreeSet::from(["within".to_string()]));
}

/// "City" means the city area in normal mode as in an emergency: an
/// incident widened to the city is not offered to someone outside it.
#[test]
fn in_normal_mode_the_city_level_ends_at_the_city_border() {
    let mut engine = engine();
    let east_edge = Position { lon: 120.212407, lat: 30.27 };
    person_at(&mut engine, "outside", &[], east(east_edge, 300.0), T0);
    let (incident, events) = create(&mut engine, east(east_edge, -100.0), &[], 1, T0);
    assert!(offers_in(&events).is_empty(), "nobody inside the city: {:?}", offers_in(&events));
    assert_eq!(engine.state().incidents[&incident].scope, AreaLevel::City, "it widened to the city at once");
}

#[test]
fn operator_tokens_expire_and_the_last_working_admin_token_cannot_be_revoked() {
    let mut engine = engine();
    let hour = 3_600_000;
    let add = |name: &str, role, lifetime_ms| Command::AddOperator {
        name: name.to_string(),
        role,
        token_hash: format!("hash-{name}"),
        lifetime_ms,
    };
    let too_short = engine.execute(add("quick", OperatorRole::Viewer, 1000), "operator:test", T0);
    assert!(matches!(too_short, Err(Rejection::InvalidArgument(message)) if message.contains("out of range")));
    engine.execute(add("root", OperatorRole::Admin, hour), "operator:test", T0).expect("added");
    engine.execute(add("spare", OperatorRole::Admin, 2 * hour), "operator:test", T0).expect("added");
    let root = &engine.state().operators["root"];
    assert_eq!(root.token_expires_at, Some(Millis(T0.0 + hour)));
    assert_eq!(root.token_standing(Millis(T0.0 + hour - 1)), TokenStanding::Works);
    assert_eq!(root.token_standing(Millis(T0.0 + hour)), TokenStanding::Expired { at: Millis(T0.0 + hour) });

    // An hour on, root's token has expired: spare holds the last admin token
    // that works, and cannot lose it.
    let later = Millis(T0.0 + hour + 1);
    let revoke = |name: &str| Command::RevokeOperatorToken { name: name.to_string() };
    let refused = engine.execute(revoke("spare"), "operator:test", later);
    assert!(matches!(refused, Err(Rejection::FailedPrecondition(message)) if message.contains("last admin token")));
    engine.execute(revoke("root"), "operator:test", later).expect("an expired token may be revoked");
    assert_eq!(engine.state().operators["root"].token_standing(later), TokenStanding::Revoked { at: later });
    let twice = engine.execute(revoke("root"), "operator:test", later);
    assert!(matches!(twice, Err(Rejection::FailedPrecondition(message)) if message.contains("revoked already")));
    // A new token works again, for its own lifetime.
    let rotate = Command::RotateOperatorToken { name: "root".into(), token_hash: "new".into(), lifetime_ms: hour };
    engine.execute(rotate, "operator:test", later).expect("rotated");
    let root = &engine.state().operators["root"];
    assert_eq!((root.token_standing(later), root.token_expires_at), (TokenStanding::Works, Some(Millis(later.0 + hour))));
}

#[test]
fn tokens_for_many_people_leave_out_those_who_have_one_unless_replacing() {
    let mut engine = engine();
    let upsert = Command::UpsertAgents { agents: vec![profile("a", &[]), profile("b", &[])], all_new: true, tokens: Vec::new() };
    engine.execute(upsert, "operator:test", T0).expect("added");
    let hashes = |people: &[&str], hash: &str| -> Vec<AgentTokenHash> {
        people.iter().map(|id| AgentTokenHash { agent: AgentId::new(*id), token_hash: format!("{hash}-{id}") }).collect()
    };
    let issue = |people: &[&str], hash: &str, replace| Command::IssueAgentTokens { tokens: hashes(people, hash), replace };
    engine.execute(issue(&["a"], "first", false), "operator:test", T0).expect("issued");
    let events = engine.execute(issue(&["a", "b"], "second", false), "operator:test", T0).expect("issued");
    assert!(matches!(&events[..], [Event { kind: EventKind::AgentTokensIssued { tokens }, .. }] if tokens.len() == 1));
    assert_eq!(engine.state().agent_tokens[&AgentId::new("a")], "first-a", "a kept theirs");
    assert_eq!(engine.state().agent_tokens[&AgentId::new("b")], "second-b");
    let none = engine.execute(issue(&["a", "b"], "third", false), "operator:test", T0).expect("nothing to do");
    assert!(none.is_empty(), "{none:?}");
    engine.execute(issue(&["a"], "fourth", true), "operator:test", T0).expect("replaced");
    assert_eq!(engine.state().agent_tokens[&AgentId::new("a")], "fourth-a");
    let stranger = engine.execute(issue(&["a", "ghost"], "fifth", true), "operator:test", T0);
    assert!(matches!(stranger, Err(Rejection::NotFound(message)) if message.contains("ghost")));
    assert_eq!(engine.state().agent_tokens[&AgentId::new("a")], "fourth-a", "a refusal changes nothing");
}

/// A new version of the map retires the grids it lacks: people at home in
/// one move to the grid where their home lies (or, without a home position,
/// to the community above), incidents keep the area they had, nothing is
/// placed in the retired grid, and a replay arrives at the same state.
#[test]
fn a_new_map_version_retires_grids_and_rehomes_their_people() {
    let mut engine = Engine::new(quiet_policy());
    let mut log = engine.execute(Command::ImportAreas(sample_map()), "operator:test", T0).expect("map imports");
    let old = area("d1-s1-c1-g1");
    let inside = engine.state().areas.inside_point(&old).expect("a point inside");
    let mut at_home = profile("p1", &[]);
    at_home.home_area = Some(old.clone());
    at_home.home = Some(inside);
    let mut no_position = profile("p2", &[]);
    no_position.home_area = Some(old.clone());
    let added = Command::UpsertAgents { agents: vec![at_home, no_position], all_new: true, tokens: Vec::new() };
    log.extend(engine.execute(added, "operator:test", T0).expect("people added"));
    let (incident, events) = create_forced(&mut engine, inside, &[], 1, T0);
    log.extend(events);

    let mut version2 = sample_map();
    let renamed = version2.areas.iter_mut().find(|spec| spec.id == old).expect("in the sample");
    renamed.id = area("d1-s1-c1-g1-2027");
    let events = engine.execute(Command::ReplaceAreas(version2.clone()), "operator:test", T0.plus_seconds(60)).expect("replaced");
    log.extend(events.clone());
    let retired: Vec<_> = events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::AreasRetired { areas, .. } => Some(areas.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(retired, vec![vec![old.clone()]]);
    let state = engine.state();
    assert_eq!(state.agents[&AgentId::new("p1")].profile.home_area, Some(area("d1-s1-c1-g1-2027")));
    assert_eq!(state.agents[&AgentId::new("p2")].profile.home_area, Some(area("d1-s1-c1")));
    assert_eq!(state.areas.place(inside).at(AreaLevel::Grid), Some(&area("d1-s1-c1-g1-2027")));
    assert_eq!(state.incidents[&incident].placement.at(AreaLevel::Grid), Some(&old), "history keeps the area it had");
    assert!(state.areas.get_any(&old).is_some_and(|spec| spec.name == "柳岸社区第1网格"));
    assert_eq!(&replayed(&engine, &log), engine.state(), "a replay re-homes the same way");
    // A call-up in the new grid reaches the person re-homed there.
    let callup =
        Command::CallUp { area: area("d1-s1-c1-g1-2027"), roles: vec![Role::Volunteer], reason: "test".into(), deadline_s: None };
    let events = engine.execute(callup, "operator:commander", T0.plus_seconds(61)).expect("called up");
    let called: Vec<String> = events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::CallupIssued { people, .. } => Some(people.iter().map(ToString::to_string).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(called, vec!["p1".to_string()]);
    // The same import again changes nothing more.
    let events = engine.execute(Command::ReplaceAreas(version2), "operator:test", T0.plus_seconds(61)).expect("again");
    assert!(events.iter().all(|event| !matches!(event.kind, EventKind::AreasRetired { .. })));
}

#[test]
fn an_admin_retires_one_area_but_not_one_with_children_or_in_emergency() {
    let mut engine = engine();
    let before = engine.state().clone();
    let refused = engine.execute(Command::RetireArea { area: area("d1"), with_children: false }, "operator:test", T0);
    assert!(
        matches!(&refused, Err(Rejection::FailedPrecondition(message)) if message.contains("--with-children")),
        "{refused:?}"
    );
    switch(&mut engine, "d2-s1-c1", Mode::EmergencyIi, T0);
    let before_emergency = engine.state().clone();
    let refused = engine.execute(Command::RetireArea { area: area("d2"), with_children: true }, "operator:test", T0);
    assert!(
        matches!(&refused, Err(Rejection::FailedPrecondition(message)) if message.contains("d2-s1-c1 is in emergency")),
        "{refused:?}"
    );
    assert_eq!(engine.state(), &before_emergency, "a refused retirement changes nothing");
    let unknown = engine.execute(Command::RetireArea { area: area("nowhere"), with_children: false }, "operator:test", T0);
    assert!(matches!(unknown, Err(Rejection::NotFound(_))));
    engine.execute(Command::RetireArea { area: area("d1"), with_children: true }, "operator:test", T0).expect("retired");
    assert!(engine.state().areas.areas().all(|spec| !spec.id.as_str().starts_with("d1")));
    assert!(engine.state().areas.service_centres().all(|centre| !centre.area.as_str().starts_with("d1")));
    assert_ne!(engine.state().areas, before.areas);
}

#[test]
fn a_source_id_is_imported_once_and_specs_written_before_it_still_load() {
    let old = r#"{"at":{"lon":120.1,"lat":30.2},"category":"fire","priority":1,"skills":[],"headcount":1,"description":""}"#;
    let spec: IncidentSpec = serde_json::from_str(old).expect("a spec written before source ids loads");
    assert_eq!(spec.source_id, "");
    assert_eq!(serde_json::to_string(&spec).expect("written"), old, "an empty source id is not written");

    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    let imported = IncidentSpec { at: grid, source_id: "urn:emergency:uid:incidentid:a1:other".into(), ..spec };
    let command = Command::CreateIncident { id: None, spec: imported, force: true };
    let events = engine.execute(command.clone(), "operator:test", T0).expect("the first import");
    let id = events[0].kind.incident_id().expect("an incident").clone();
    assert_eq!(engine.state().incidents[&id].spec.source_id, "urn:emergency:uid:incidentid:a1:other");
    let before = engine.state().clone();
    match engine.execute(command, "operator:test", T0) {
        Err(Rejection::AlreadyExists(message)) => assert!(message.contains(id.as_str()), "{message}"),
        other => panic!("a second import of the same source: {other:?}"),
    }
    assert_eq!(engine.state(), &before, "a refused import changes nothing");
}

#[test]
fn a_rare_skill_is_searched_among_its_holders_with_the_same_answer_as_the_walk() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    // 40 people, of whom 4 dive (a tenth: few enough to look at each):
    // the nearest divers come first, whoever is nearer without the skill.
    for index in 0..40 {
        let skills: &[&str] = if index % 10 == 3 { &["diving", "first_aid"] } else { &["first_aid"] };
        person_at(&mut engine, &format!("p{index:02}"), skills, east(grid, 50.0 + 37.0 * index as f64), T0);
    }
    let diving: BTreeSet<String> = ["diving".to_string()].into();
    assert!(engine.few_holders(&diving).is_some(), "4 holders of 40 located people are few");
    let ids = |found: Vec<super::dispatch::Candidate>| {
        found.into_iter().map(|candidate| candidate.agent.as_str().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(ids(engine.nearby(grid, 3, &diving, true, T0)), ["p03", "p13", "p23"]);
    // The same people through the walk: everyone holds first aid, so the
    // walk is taken, and with both skills asked the walk's answer must match.
    let first_aid: BTreeSet<String> = ["first_aid".to_string()].into();
    assert!(engine.few_holders(&first_aid).is_none());
    let walked: Vec<String> =
        ids(engine.nearby(grid, 40, &first_aid, true, T0)).into_iter().filter(|id| id.ends_with('3')).take(3).collect();
    assert_eq!(walked, ["p03", "p13", "p23"]);
    let distances =
        |found: Vec<super::dispatch::Candidate>| found.into_iter().map(|candidate| candidate.distance_m).collect::<Vec<_>>();
    let by_holders = distances(engine.nearby(grid, 2, &diving, true, T0));
    let by_walk: Vec<f64> = engine
        .nearby(grid, 40, &first_aid, true, T0)
        .into_iter()
        .filter(|candidate| candidate.agent.as_str().to_string().ends_with('3'))
        .take(2)
        .map(|candidate| candidate.distance_m)
        .collect();
    assert_eq!(by_holders, by_walk, "the same distances, to the bit");
    // A skill nobody holds: nobody, without walking anyone.
    let unknown: BTreeSet<String> = ["abseiling".to_string()].into();
    assert!(engine.nearby(grid, 3, &unknown, true, T0).is_empty());
}

#[test]
fn a_person_coming_on_line_is_offered_only_incidents_they_can_take() {
    let mut engine = engine();
    let grid = centre_of(&engine, "d1-s1-c1-g1");
    let (diving, _) = create_forced(&mut engine, grid, &["diving"], 1, T0);
    let (rescue, _) = create_forced(&mut engine, grid, &["rescue"], 1, T0);
    person_at(&mut engine, "rescuer", &["rescue"], east(grid, 300.0), T0.plus_seconds(5));
    assert_eq!(engine.state().incidents[&rescue].status(), IncidentStatus::Offered);
    assert_eq!(engine.state().incidents[&diving].status(), IncidentStatus::Waiting);
}

fn public_flood_plan() -> crate::plans::PlanSpec {
    let mut plan = flood_plan();
    plan.public = Some(crate::cap::PublicAlert {
        headline: "防汛二级".into(),
        category: "Met".into(),
        event: "暴雨内涝".into(),
        inbound_events: vec!["台风".into()],
        ..Default::default()
    });
    plan
}

fn typhoon_over(polygons: Vec<Vec<[f64; 2]>>, circles: Vec<crate::cap::CapCircle>) -> crate::cap::ReceivedCapAlert {
    crate::cap::ReceivedCapAlert {
        identifier: "TY-1".into(),
        sender: "weather".into(),
        sent: "2026-09-14T08:00:00+08:00".into(),
        status: "Actual".into(),
        msg_type: "Alert".into(),
        category: "Met".into(),
        event: "台风".into(),
        urgency: "Expected".into(),
        severity: "Severe".into(),
        certainty: "Likely".into(),
        polygons,
        circles,
        ..Default::default()
    }
}

#[test]
fn a_public_plan_issues_alert_update_and_cancel_and_replay_rebuilds_them() {
    let mut engine = engine();
    engine.execute(Command::ImportPlans(vec![public_flood_plan()]), "operator:admin", T0).expect("plans import");
    let mut journal = Vec::new();
    for mode in [Mode::EmergencyIi, Mode::EmergencyI, Mode::Normal] {
        journal.extend(switch(&mut engine, "d1-s1", mode, T0));
    }
    let issued = &engine.state().cap.issued;
    let kinds: Vec<_> = issued.iter().map(|alert| (alert.msg_type, alert.severity.as_str())).collect();
    use crate::cap::CapMsgType::*;
    // Back in normal mode the Cancel speaks of the plan's own grade.
    assert_eq!(kinds, vec![(Alert, "Severe"), (Update, "Extreme"), (Cancel, "Severe")]);
    assert_eq!(issued[2].references.len(), 2, "the Cancel refers to both");
    assert!(!issued[0].polygons.is_empty(), "the street's outline");
    // Replaying the journal rebuilds the same CAP state.
    let mut replayed = engine_with(quiet_policy());
    replayed.execute(Command::ImportPlans(vec![public_flood_plan()]), "operator:admin", T0).expect("plans import");
    for event in &journal {
        replayed.replay(event).expect("replays");
    }
    assert_eq!(replayed.state().cap, engine.state().cap);
}

#[test]
fn a_received_alert_is_suggested_once_for_the_streets_it_touches() {
    let mut engine = engine();
    engine.execute(Command::ImportPlans(vec![public_flood_plan()]), "operator:admin", T0).expect("plans import");
    // A 1 km circle around d2-s1's middle touches that street only.
    let centre = centre_of(&engine, "d2-s1");
    let circle = crate::cap::CapCircle { lon: centre.lon, lat: centre.lat, radius_km: 1.0 };
    let alert = typhoon_over(Vec::new(), vec![circle]);
    engine.execute(Command::ReceiveCapAlert { alert: alert.clone() }, "cap:weather", T0).expect("received");
    let suggestion = engine.state().cap.suggestions.values().next().expect("a suggestion").clone();
    assert_eq!(suggestion.spec.areas, vec![area("d2-s1")]);
    assert_eq!(suggestion.spec.mode, Mode::EmergencyIi);
    assert_eq!(suggestion.spec.plan.as_ref().map(|plan| plan.as_str()), Some("flood-ii"));
    let again = engine.execute(Command::ReceiveCapAlert { alert }, "cap:weather", T0);
    assert!(matches!(again, Err(Rejection::AlreadyExists(_))), "{again:?}");
    let events = engine
        .execute(Command::ApproveCapSuggestion { suggestion: suggestion.spec.id.clone() }, "operator:commander", T0)
        .expect("approved");
    assert!(
        events
            .iter()
            .any(|event| matches!(&event.kind, EventKind::ModeSwitched { area: switched, .. } if switched.as_str() == "d2-s1"))
    );
    assert_eq!(engine.state().activations.values().filter(|activation| activation.ended.is_none()).count(), 1, "activated once");
}

mod explain {
    use super::*;
    use crate::engine::explain::{ExplainQuery, Reason};

    fn everyone(incident: &IncidentId) -> ExplainQuery {
        ExplainQuery { incident: incident.clone(), agent: None, candidates: 50, passed_over: 50 }
    }

    fn reason_of(engine: &Engine, incident: &IncidentId, agent: &str, now: Millis) -> Reason {
        let query = ExplainQuery { agent: Some(AgentId::new(agent)), ..everyone(incident) };
        let explanation = engine.explain(&query, now).expect("explains");
        assert!(explanation.candidates.is_empty(), "{agent} is no candidate: {explanation:?}");
        explanation.passed_over.into_iter().next().expect("one person").reason
    }

    /// A point east of the grid's centre that lies in another grid, within
    /// walking reach.
    fn next_grid(engine: &Engine, grid: Position) -> Position {
        let own = engine.state().areas.place(grid).at(AreaLevel::Grid).cloned();
        (1..60)
            .map(|step| east(grid, step as f64 * 50.0))
            .find(|at| {
                let other = engine.state().areas.place(*at).at(AreaLevel::Grid).cloned();
                other.is_some() && other != own
            })
            .expect("another grid within 3 km")
    }

    #[test]
    fn each_person_passed_over_gets_the_reason_the_search_applied() {
        let mut engine = engine();
        let grid = centre_of(&engine, "d1-s1-c1-g1");
        let t1 = T0.plus_seconds(900);
        // Someone answering another incident's offer, made at T0 far away.
        let elsewhere = centre_of(&engine, "d1-s1-c1-g2");
        person_at(&mut engine, "offered-elsewhere", &["first_aid"], elsewhere, T0);
        let (other_incident, _) = create(&mut engine, elsewhere, &["first_aid"], 1, T0);
        assert_eq!(open_offer_of(&engine, "offered-elsewhere").is_some(), true);
        // Stale: located at T0 only.
        person_at(&mut engine, "stale", &["first_aid"], east(grid, 40.0), T0);
        for (id, skills, metres) in [
            ("decliner", &["first_aid"][..], 10.0),
            ("first", &["first_aid"][..], 30.0),
            ("second", &["first_aid"][..], 60.0),
            ("unskilled", &[][..], 20.0),
            ("busy", &["first_aid"][..], 25.0),
            ("off", &["first_aid"][..], 26.0),
            ("far", &["first_aid"][..], 20_000.0),
        ] {
            person_at(&mut engine, id, skills, east(grid, metres), t1);
        }
        let outside = next_grid(&engine, grid);
        person_at(&mut engine, "outside", &["first_aid"], outside, t1);
        let mut reserve = profile("reserve", &["first_aid"]);
        reserve.role = Role::RegisteredMember;
        engine
            .execute(Command::UpsertAgents { agents: vec![reserve], all_new: true, tokens: Vec::new() }, "operator:test", t1)
            .unwrap();
        engine.execute(Command::Connect { agent: AgentId::new("reserve") }, "agent:reserve", t1).unwrap();
        engine
            .execute(Command::ReportLocation { agent: AgentId::new("reserve"), at: east(grid, 15.0) }, "agent:reserve", t1)
            .unwrap();
        engine
            .execute(
                Command::UpsertAgents { agents: vec![profile("absent", &["first_aid"])], all_new: true, tokens: Vec::new() },
                "operator:test",
                t1,
            )
            .unwrap();
        engine
            .execute(Command::ReportLocation { agent: AgentId::new("offered-elsewhere"), at: east(grid, 12.0) }, "agent:x", t1)
            .unwrap();
        engine.execute(Command::SetStatus { agent: AgentId::new("busy"), status: AgentStatus::Busy }, "agent:busy", t1).unwrap();
        engine.execute(Command::SetStatus { agent: AgentId::new("off"), status: AgentStatus::OffDuty }, "agent:off", t1).unwrap();
        let (incident, events) = create(&mut engine, grid, &["first_aid"], 1, t1);
        assert_eq!(offers_in(&events).iter().map(|(_, agent)| agent.as_str()).collect::<Vec<_>>(), ["decliner"]);
        let offer = open_offer_of(&engine, "decliner").expect("offered");
        let events = engine
            .execute(Command::Decline { agent: AgentId::new("decliner"), offer, reason: "no".into() }, "agent:decliner", t1)
            .unwrap();
        assert_eq!(offers_in(&events).iter().map(|(_, agent)| agent.as_str()).collect::<Vec<_>>(), ["first"]);

        let before = engine.state().clone();
        let explanation = engine.explain(&everyone(&incident), t1).expect("explains");
        assert_eq!(engine.state(), &before, "explaining changes nothing");
        let ranked: Vec<(&str, bool)> =
            explanation.candidates.iter().map(|ranked| (ranked.candidate.agent.as_str(), ranked.offered)).collect();
        assert_eq!(ranked, [("first", true), ("second", false)], "{explanation:?}");
        assert_eq!(explanation.candidates_total, 2);
        let expect = [
            ("decliner", Reason::Declined),
            ("unskilled", Reason::LacksSkill { skills: vec!["first_aid".to_string()] }),
            ("busy", Reason::Busy { incident: None }),
            ("off", Reason::OffDuty),
            ("stale", Reason::LocationStale { since: T0 }),
            ("far", Reason::BeyondTravelLimit { max_travel_s: 2700 }),
            ("outside", Reason::OutsideArea { level: AreaLevel::Grid }),
            ("reserve", Reason::Reserve { mode: Mode::Normal }),
            ("offered-elsewhere", Reason::HoldsOffer { incident: other_incident.clone() }),
            ("absent", Reason::NotConnected),
        ];
        for (agent, reason) in &expect {
            let listed = explanation.passed_over.iter().find(|passed| passed.agent.as_str() == *agent).expect(agent);
            assert_eq!(&listed.reason, reason, "{agent}");
            assert_eq!(&reason_of(&engine, &incident, agent, t1), reason, "{agent} alone");
        }
        // The people without a location come last; the rest nearest first.
        assert_eq!(explanation.passed_over.last().map(|passed| passed.agent.as_str()), Some("absent"));
        assert_eq!(explanation.reason_counts.values().sum::<u32>(), expect.len() as u32);

        // One candidate alone keeps their rank among everyone.
        let second =
            engine.explain(&ExplainQuery { agent: Some(AgentId::new("second")), ..everyone(&incident) }, t1).expect("explains");
        assert_eq!(second.candidates.len(), 1);
        assert_eq!(second.candidates[0].rank, 2);

        // What the explanation ranked next is who the engine offers next.
        let offer = open_offer_of(&engine, "first").expect("offered");
        let events = engine
            .execute(Command::Decline { agent: AgentId::new("first"), offer, reason: "no".into() }, "agent:first", t1)
            .unwrap();
        assert_eq!(offers_in(&events).iter().map(|(_, agent)| agent.as_str()).collect::<Vec<_>>(), ["second"]);

        // The assigned person is "already assigned".
        let offer = open_offer_of(&engine, "second").expect("offered");
        engine.execute(Command::Accept { agent: AgentId::new("second"), offer }, "agent:second", t1).unwrap();
        assert_eq!(reason_of(&engine, &incident, "second", t1), Reason::AlreadyAssigned);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Whatever the crowd, the explanation agrees with what the engine
        /// did: the people it offered are its first-ranked candidates, and
        /// nobody it gives a reason for was offered.
        #[test]
        fn the_explanation_agrees_with_the_offers_made(
            crowd in prop::collection::vec((0.0f64..3000.0, 0.0f64..6.283, any::<bool>(), 0u8..4, 0u8..3), 1..25),
            headcount in 1u32..3,
        ) {
            let mut engine = engine();
            let grid = centre_of(&engine, "d1-s1-c1-g1");
            for (n, (metres, angle, skilled, status, mode)) in crowd.iter().enumerate() {
                let id = format!("p{n:02}");
                let at = Position {
                    lon: grid.lon + metres * angle.cos() / 96_000.0,
                    lat: grid.lat + metres * angle.sin() / 111_000.0,
                };
                let mut person = profile(&id, if *skilled { &["first_aid"][..] } else { &[][..] });
                person.travel_mode = [TravelMode::Walk, TravelMode::Bike, TravelMode::Car][*mode as usize];
                engine.execute(Command::UpsertAgents { agents: vec![person], all_new: true, tokens: Vec::new() }, "operator:test", T0).unwrap();
                engine.execute(Command::Connect { agent: AgentId::new(&id) }, "agent", T0).unwrap();
                engine.execute(Command::ReportLocation { agent: AgentId::new(&id), at }, "agent", T0).unwrap();
                let status = match status { 0 => Some(AgentStatus::Busy), 1 => Some(AgentStatus::OffDuty), _ => None };
                if let Some(status) = status {
                    engine.execute(Command::SetStatus { agent: AgentId::new(&id), status }, "agent", T0).unwrap();
                }
            }
            let (incident, events) = create_forced(&mut engine, grid, &["first_aid"], headcount, T0);
            let offered: BTreeSet<String> = offers_in(&events).into_iter().map(|(_, agent)| agent.to_string()).collect();
            let explanation = engine.explain(&everyone(&incident), T0).unwrap();
            let first: BTreeSet<String> = explanation
                .candidates
                .iter()
                .take(offered.len())
                .map(|ranked| ranked.candidate.agent.to_string())
                .collect();
            // Offers made at a narrower level before a widening may rank
            // below people the wider level now reaches; without one, the
            // people offered are exactly the first ranked.
            let widened = events.iter().any(|event| matches!(event.kind, EventKind::Widened { .. }));
            if !widened {
                prop_assert_eq!(&first, &offered, "{:?}", explanation);
            }
            let listed: BTreeSet<String> = explanation.candidates.iter().map(|ranked| ranked.candidate.agent.to_string()).collect();
            prop_assert!(offered.is_subset(&listed), "everyone offered is a candidate: {:?}", explanation);
            prop_assert!(explanation.candidates.iter().all(|ranked| ranked.offered == offered.contains(ranked.candidate.agent.as_str())));
            prop_assert!(explanation.passed_over.iter().all(|passed| !offered.contains(passed.agent.as_str())));
            prop_assert_eq!(
                explanation.candidates_total as usize + explanation.reason_counts.values().sum::<u32>() as usize,
                crowd.len()
            );
        }
    }

    #[test]
    fn an_unknown_incident_or_person_is_not_found() {
        let mut engine = engine();
        let grid = centre_of(&engine, "d1-s1-c1-g1");
        let (incident, _) = create_forced(&mut engine, grid, &[], 1, T0);
        let missing = engine.explain(&everyone(&IncidentId::new("nope")), T0);
        assert!(matches!(missing, Err(Rejection::NotFound(_))));
        let nobody = engine.explain(&ExplainQuery { agent: Some(AgentId::new("nobody")), ..everyone(&incident) }, T0);
        assert!(matches!(nobody, Err(Rejection::NotFound(_))));
    }

    #[test]
    fn nobody_fits_records_the_shortfall_by_reason() {
        let mut engine = engine();
        let grid = centre_of(&engine, "d1-s1-c1-g1");
        person_at(&mut engine, "a", &[], east(grid, 10.0), T0);
        person_at(&mut engine, "b", &[], east(grid, 20.0), T0);
        person_at(&mut engine, "c", &["first_aid"], east(grid, 30.0), T0);
        engine.execute(Command::SetStatus { agent: AgentId::new("c"), status: AgentStatus::Busy }, "agent:c", T0).unwrap();
        let (_, events) = create(&mut engine, grid, &["first_aid"], 1, T0);
        let shortfall = events
            .iter()
            .find_map(|event| match &event.kind {
                EventKind::NoCandidates { shortfall, .. } => shortfall.clone(),
                _ => None,
            })
            .expect("nobody fits, with the shortfall");
        assert_eq!(shortfall.in_reach, 3, "{shortfall:?}");
        assert_eq!(shortfall.qualified, 0);
        assert_eq!(shortfall.lacking.get("first_aid"), Some(&2));
        assert_eq!(shortfall.reasons.get("busy"), Some(&1));
        assert!(shortfall.summary().contains("3 people; 2 lack first_aid, 1 busy"), "{}", shortfall.summary());
    }
}

mod duplicates {
    use super::*;
    use crate::engine::duplicates::DuplicateQuery;

    fn create_category(engine: &mut Engine, at: Position, category: &str, now: Millis) -> IncidentId {
        let spec = IncidentSpec {
            at,
            category: category.to_string(),
            priority: 2,
            skills: BTreeSet::new(),
            headcount: 1,
            description: String::new(),
            source_id: String::new(),
        };
        let events = engine.execute(Command::CreateIncident { id: None, spec, force: false }, "operator:test", now).unwrap();
        events[0].kind.incident_id().unwrap().clone()
    }

    fn found(engine: &Engine, at: Position, category: &str, now: Millis) -> Vec<(String, bool)> {
        let query = DuplicateQuery::Report { at, category: category.to_string() };
        let duplicates = engine.duplicates(&query, now).unwrap();
        duplicates.iter().map(|duplicate| (duplicate.incident.id.to_string(), duplicate.same_category)).collect()
    }

    #[test]
    fn open_incidents_near_recent_and_alike_are_possible_duplicates() {
        let mut engine = engine();
        let grid = centre_of(&engine, "d1-s1-c1-g1");
        let fire = create_category(&mut engine, grid, "fire", T0);
        let later = T0.plus_seconds(10 * 60);
        // Same category nearby, similar category nearby.
        assert_eq!(found(&engine, east(grid, 100.0), "fire", later), [(fire.to_string(), true)]);
        assert_eq!(found(&engine, east(grid, 100.0), "smoke", later), [(fire.to_string(), false)]);
        // Not alike, too far, too late.
        assert!(found(&engine, east(grid, 100.0), "noise", later).is_empty());
        assert!(found(&engine, east(grid, 400.0), "fire", later).is_empty());
        assert!(found(&engine, east(grid, 100.0), "fire", T0.plus_seconds(61 * 60)).is_empty());
        // An incident asks about the others, never itself; a closed one is no duplicate.
        let second = create_category(&mut engine, east(grid, 50.0), "smoke", later);
        let of_second = engine.duplicates(&DuplicateQuery::Incident(second.clone()), later).unwrap();
        assert_eq!(of_second.iter().map(|d| d.incident.id.clone()).collect::<Vec<_>>(), [fire.clone()]);
        engine.execute(Command::CloseIncident { incident: fire, feedback: "out".into() }, "operator:test", later).unwrap();
        assert!(engine.duplicates(&DuplicateQuery::Incident(second), later).unwrap().is_empty());
    }

    #[test]
    fn a_merge_ends_the_duplicate_into_the_other_and_frees_its_offer() {
        let mut engine = engine();
        let grid = centre_of(&engine, "d1-s1-c1-g1");
        person_at(&mut engine, "helper", &[], east(grid, 20.0), T0);
        let first = create_category(&mut engine, grid, "fire", T0);
        let second = create_category(&mut engine, east(grid, 30.0), "fire", T0.plus_seconds(5));
        assert!(engine.state().incidents[&first].open_offers.len() == 1, "the helper is offered the first");
        let itself =
            engine.execute(Command::MergeIncidents { incident: first.clone(), into: first.clone() }, "operator:test", T0);
        assert!(matches!(itself, Err(Rejection::InvalidArgument(_))));
        let before = engine.state().clone();
        let missing = engine.execute(
            Command::MergeIncidents { incident: second.clone(), into: IncidentId::new("nope") },
            "operator:test",
            T0,
        );
        assert!(matches!(missing, Err(Rejection::NotFound(_))));
        assert_eq!(engine.state(), &before, "a refused merge changes nothing");
        // The first holds the helper's offer: merging it into the second withdraws it.
        let events = engine
            .execute(
                Command::MergeIncidents { incident: first.clone(), into: second.clone() },
                "operator:test",
                T0.plus_seconds(6),
            )
            .expect("merges");
        let names: Vec<&str> = events.iter().map(|event| event.kind.name()).collect();
        assert_eq!(&names[..2], ["offer_withdrawn", "report_merged"], "{names:?}");
        assert_eq!(engine.state().incidents[&first].status(), IncidentStatus::Merged);
        assert_eq!(engine.state().incidents[&first].merged_into.as_ref(), Some(&second));
        assert_eq!(engine.state().incidents[&second].merged_from, vec![first.clone()]);
        assert!(offers_in(&events).iter().any(|(_, agent)| agent.as_str() == "helper"), "the helper is offered the other");
        // Someone assigned to an incident: it cannot be merged away.
        let offer = open_offer_of(&engine, "helper").unwrap();
        engine.execute(Command::Accept { agent: AgentId::new("helper"), offer }, "agent:helper", T0.plus_seconds(7)).unwrap();
        let third = create_category(&mut engine, grid, "fire", T0.plus_seconds(8));
        let assigned =
            engine.execute(Command::MergeIncidents { incident: second, into: third }, "operator:test", T0.plus_seconds(9));
        assert!(matches!(assigned, Err(Rejection::FailedPrecondition(_))));
    }

    #[test]
    fn a_report_recorded_as_a_duplicate_is_merged_at_once_and_offered_to_nobody() {
        let mut engine = engine();
        let grid = centre_of(&engine, "d1-s1-c1-g1");
        let first = create_category(&mut engine, grid, "fire", T0);
        person_at(&mut engine, "helper", &[], east(grid, 20.0), T0);
        let spec = IncidentSpec {
            at: east(grid, 40.0),
            category: "smoke".into(),
            priority: 2,
            skills: BTreeSet::new(),
            headcount: 1,
            description: "smoke from the third floor".into(),
            source_id: String::new(),
        };
        let missing = engine.execute(
            Command::ReportDuplicate { id: None, spec: spec.clone(), into: IncidentId::new("nope") },
            "operator:test",
            T0,
        );
        assert!(matches!(missing, Err(Rejection::NotFound(_))));
        let events = engine
            .execute(Command::ReportDuplicate { id: None, spec, into: first.clone() }, "operator:test", T0.plus_seconds(1))
            .expect("recorded");
        let names: Vec<&str> = events.iter().map(|event| event.kind.name()).collect();
        assert_eq!(names, ["incident_reported", "report_merged"]);
        let duplicate = events[0].kind.incident_id().unwrap().clone();
        assert_eq!(engine.state().incidents[&duplicate].status(), IncidentStatus::Merged);
        assert_eq!(engine.state().incidents[&duplicate].spec.description, "smoke from the third floor");
        assert_eq!(engine.state().incidents[&first].merged_from, vec![duplicate]);
    }
}
