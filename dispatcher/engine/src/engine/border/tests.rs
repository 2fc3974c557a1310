//! Border reservations at a person's home shard and border offers at an
//! incident's shard, on one engine each (the protocol between them is
//! tested end to end in tests/tests/suite/border.rs).

use std::collections::BTreeSet;

use super::super::invariants;
use super::*;
use crate::areas::parse_geojson;
use crate::border::BorderOfferView;
use crate::event::Event;
use crate::ids::OfferId;
use crate::incident::{IncidentSpec, OfferRecord};
use crate::policy::Policy;
use crate::roster::{AgentProfile, Role, TravelMode};

const T0: Millis = Millis(1_700_000_000_000);
const BORDER: Position = Position { lon: 120.154038, lat: 30.27 };

fn east(metres: f64) -> Position {
    let degrees = metres / (crate::spatial::EARTH_RADIUS_M * BORDER.lat.to_radians().cos()) * 180.0 / std::f64::consts::PI;
    Position { lon: BORDER.lon + degrees, lat: BORDER.lat }
}

fn engine() -> Engine {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/maps/sample-city.geojson");
    let map = parse_geojson(&std::fs::read_to_string(path).expect("sample city present")).expect("parses");
    let mut engine = Engine::new(Policy { staffing_check_s: 0, ..Policy::default() });
    engine.execute(Command::ImportAreas(map), "operator:test", T0).expect("map imports");
    engine
}

fn grade_ii(engine: &mut Engine, area: &str) {
    let command = Command::SetMode { area: AreaId::new(area), mode: Mode::EmergencyIi, reason: "flood".into() };
    engine.execute(command, "operator:test", T0).expect("mode set");
}

fn person_at(engine: &mut Engine, id: &str, at: Position) {
    let profile = AgentProfile {
        id: AgentId::new(id),
        name: format!("person {id}"),
        role: Role::Volunteer,
        skills: BTreeSet::new(),
        phone: String::new(),
        home_area: None,
        travel_mode: TravelMode::Walk,
        on_duty: true,
        home: None,
    };
    engine
        .execute(Command::UpsertAgents { agents: vec![profile], all_new: true, tokens: Vec::new() }, "operator:test", T0)
        .expect("added");
    engine.execute(Command::Connect { agent: AgentId::new(id) }, "agent", T0).expect("connects");
    engine.execute(Command::ReportLocation { agent: AgentId::new(id), at }, "agent", T0).expect("located");
}

fn query(excluded: &[&str]) -> BorderQuery {
    BorderQuery {
        at: east(-50.0),
        skills: BTreeSet::new(),
        mode: Mode::EmergencyIi,
        emergency_level: AreaLevel::District,
        emergency_area: AreaId::new("d1"),
        excluded: excluded.iter().map(|id| AgentId::new(*id)).collect(),
        k: 3,
        now: T0,
    }
}

fn reservation(offer: &str, agent: &str) -> BorderReservation {
    BorderReservation {
        offer: OfferId::new(offer),
        incident: IncidentId::new("d1-inc-000001"),
        incident_shard: "d1".into(),
        epoch: 7,
        agent: AgentId::new(agent),
        sent_at: T0,
        deadline: Millis(T0.0 + 60_000),
        expires_at: Millis(T0.0 + 65_000),
        view: BorderOfferView {
            category: "medical".into(),
            priority: 1,
            at: east(-50.0),
            skills: BTreeSet::new(),
            description: String::new(),
            distance_m: 95.0,
            eta_s: 68.0,
            level: AreaLevel::District,
            safety_interval_s: None,
        },
        state: ReservationState::Offered,
    }
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|event| event.kind.name()).collect()
}

fn is_free(engine: &Engine, agent: &str) -> bool {
    engine.state().agents[&AgentId::new(agent)].is_free()
}

#[test]
fn a_neighbour_finds_its_people_by_its_own_mode_and_where_they_stand() {
    let mut home = engine();
    person_at(&mut home, "across", east(45.0));
    person_at(&mut home, "visitor", east(-150.0));
    // d2 in normal mode: only its person standing inside d1 helps.
    let found: Vec<String> = home.border_candidates(&query(&[])).into_iter().map(|found| found.agent.to_string()).collect();
    assert_eq!(found, ["visitor"], "{found:?}");
    grade_ii(&mut home, "d2");
    let found = home.border_candidates(&query(&["visitor"]));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].agent.as_str(), found[0].via.as_ref().map(AreaId::as_str)), ("across", Some("d2")));
}

/// In normal mode the ladder's step decides: at the district step of a d1
/// incident, d2's people standing in d1; at the city step, anyone free;
/// below the district, nobody across the border.
#[test]
fn in_normal_mode_a_neighbour_answers_by_the_ladders_step() {
    let mut home = engine();
    person_at(&mut home, "at_home", east(45.0));
    person_at(&mut home, "visitor", east(-150.0));
    let at_step = |level: AreaLevel, area: &str| BorderQuery {
        mode: Mode::Normal,
        emergency_level: level,
        emergency_area: AreaId::new(area),
        ..query(&[])
    };
    let names = |found: Vec<Candidate>| found.into_iter().map(|found| found.agent.to_string()).collect::<Vec<_>>();
    assert_eq!(names(home.border_candidates(&at_step(AreaLevel::District, "d1"))), ["visitor"]);
    let mut city = names(home.border_candidates(&at_step(AreaLevel::City, "city")));
    city.sort();
    assert_eq!(city, ["at_home", "visitor"]);
    let street = home.state().areas.place(east(-150.0)).at(AreaLevel::Street).cloned().expect("a street in d1");
    assert!(home.border_candidates(&at_step(AreaLevel::Street, street.as_str())).is_empty(), "below the district: nobody");
}

#[test]
fn a_reservation_holds_the_person_until_it_is_released_or_expires() {
    let mut home = engine();
    grade_ii(&mut home, "d2");
    person_at(&mut home, "across", east(45.0));
    let mut journal = Vec::new();

    let reserved = home.execute(Command::BorderReserve(reservation("o1", "across")), "shard:d1", T0).expect("reserved");
    assert_eq!(kinds(&reserved), ["border_reserved"]);
    journal.extend(reserved);
    assert!(!is_free(&home, "across"));
    assert!(home.border_candidates(&query(&[])).is_empty(), "a reserved person is offered nothing else");
    // The same id again reserves once; another offer for them is refused.
    assert!(home.execute(Command::BorderReserve(reservation("o1", "across")), "shard:d1", T0).expect("again").is_empty());
    let refused = home.execute(Command::BorderReserve(reservation("o2", "across")), "shard:d1", T0);
    assert!(matches!(refused, Err(Rejection::FailedPrecondition(_))), "{refused:?}");

    let accepted =
        home.execute(Command::Accept { agent: AgentId::new("across"), offer: OfferId::new("o1") }, "agent", T0).expect("accepts");
    assert_eq!(kinds(&accepted), ["border_accepted"]);
    journal.extend(accepted);
    invariants::check(&home).expect("a person held across the border");
    journal.extend(home.execute(Command::BorderConfirm { offer: OfferId::new("o1") }, "dispatcher", T0).expect("confirmed"));
    let later = Millis(T0.0 + 120_000);
    assert!(home.execute(Command::ExpireBorderReservations, "dispatcher", later).expect("sweep").is_empty(), "confirmed: kept");
    let ended = Command::BorderRelease { offer: OfferId::new("o1"), end: ReservationEnd::Ended, reason: String::new() };
    journal.extend(home.execute(ended.clone(), "shard:d1", later).expect("released"));
    assert!(is_free(&home, "across"));
    assert!(home.execute(ended, "shard:d1", later).expect("again").is_empty(), "released once");

    // Nobody answers the next one: released at its expiry, not before.
    let second = Command::BorderReserve(BorderReservation {
        sent_at: later,
        deadline: Millis(later.0 + 60_000),
        expires_at: Millis(later.0 + 65_000),
        ..reservation("o3", "across")
    });
    journal.extend(home.execute(second, "shard:d1", later).expect("reserved"));
    assert!(home.execute(Command::ExpireBorderReservations, "dispatcher", Millis(later.0 + 64_000)).expect("sweep").is_empty());
    let expired = home.execute(Command::ExpireBorderReservations, "dispatcher", Millis(later.0 + 65_000)).expect("sweep");
    assert!(matches!(expired[0].kind, EventKind::BorderReleased { end: ReservationEnd::Expired, .. }), "{expired:?}");
    journal.extend(expired);
    assert!(is_free(&home, "across") && home.state().border.is_empty());
    invariants::check(&home).expect("invariants hold");
    assert_eq!(
        kinds(&journal),
        ["border_reserved", "border_accepted", "border_confirmed", "border_released", "border_reserved", "border_released"]
    );
}

#[test]
fn an_incident_takes_a_border_offer_and_its_answer_once() {
    let mut shard = engine();
    grade_ii(&mut shard, "d1");
    let spec = IncidentSpec {
        at: east(-50.0),
        category: "medical".into(),
        priority: 1,
        skills: BTreeSet::new(),
        headcount: 1,
        description: String::new(),
        source_id: String::new(),
    };
    let reported = shard.execute(Command::CreateIncident { id: None, spec, force: true }, "operator:test", T0).expect("created");
    let incident = reported[0].kind.incident_id().expect("an incident").clone();
    let offer = OfferRecord {
        id: OfferId::new(format!("{incident}-x-across")),
        incident: incident.clone(),
        agent: AgentId::new("across"),
        sent_at: T0,
        deadline: Millis(T0.0 + 60_000),
        distance_m: 95.0,
        eta_s: 68.0,
        level: AreaLevel::District,
        flat: true,
        origin: None,
        from_area: Some(AreaId::new("d2")),
    };
    let sent = shard.execute(Command::BorderOffer { offer: offer.clone() }, "dispatcher", T0).expect("offered");
    assert_eq!(kinds(&sent), ["offer_sent"]);
    // The home shard did not reserve: withdrawn, once; then offered again.
    let withdraw = Command::BorderWithdraw { offer: offer.id.clone() };
    let withdrawn = shard.execute(withdraw.clone(), "dispatcher", T0).expect("withdrawn");
    assert_eq!(kinds(&withdrawn)[0], "offer_withdrawn");
    assert!(shard.execute(withdraw, "dispatcher", T0).expect("asked again").is_empty(), "withdrawn once");
    let offer = OfferRecord { id: OfferId::new(format!("{incident}-x-across-2")), ..offer };
    let sent = shard.execute(Command::BorderOffer { offer: offer.clone() }, "dispatcher", T0).expect("offered");
    assert_eq!(kinds(&sent), ["offer_sent"]);
    let answer =
        Command::BorderAnswer { offer: offer.id.clone(), agent: offer.agent.clone(), accepted: true, reason: String::new() };
    let assigned = shard.execute(answer.clone(), "shard:d2", T0).expect("assigned");
    assert_eq!(kinds(&assigned), ["assigned", "incident_staffed"]);
    assert!(shard.execute(answer, "shard:d2", T0).expect("asked again").is_empty(), "assigned once");
    let late = Command::BorderOffer { offer: OfferRecord { id: OfferId::new("late"), agent: AgentId::new("other"), ..offer } };
    assert!(shard.execute(late, "dispatcher", T0).is_err(), "a staffed incident takes no more offers");
    invariants::check(&shard).expect("invariants hold");
}

/// A person held across the border checks in at home, where their session
/// is, at the interval the incident's shard told with the offer (home's
/// own district asks for none here): missed there, a check-in starts the
/// clock again, and the release stops it. Replayed, the clock is the same.
#[test]
fn a_person_held_across_the_border_checks_in_at_home_at_the_incidents_interval() {
    let mut home = engine();
    person_at(&mut home, "across", east(45.0));
    let held = BorderReservation {
        view: BorderOfferView { safety_interval_s: Some(600), ..reservation("o1", "across").view },
        ..reservation("o1", "across")
    };
    let mut journal = home.execute(Command::BorderReserve(held), "shard:d1", T0).expect("reserved");
    let across = AgentId::new("across");
    assert!(home.safety_due(&across).is_none(), "no check-ins before the offer is taken");
    let accepted_at = Millis(T0.0 + 5_000);
    journal.extend(
        home.execute(Command::Accept { agent: across.clone(), offer: OfferId::new("o1") }, "agent", accepted_at).unwrap(),
    );
    let due = home.safety_due(&across).expect("a check-in is due");
    assert_eq!((due.incident.as_str(), due.due, due.interval_s), ("d1-inc-000001", Millis(accepted_at.0 + 600_000), 600));
    assert_eq!(home.next_deadline(), Some(due.due), "the clock is one of home's deadlines");

    let missed = home.tick(due.due);
    assert!(
        matches!(&missed[..], [Event { kind: EventKind::SafetyCheckMissed { miss: 1, welfare: None, .. }, .. }]),
        "{missed:?}"
    );
    journal.extend(missed);
    let checked_at = Millis(due.due.0 + 60_000);
    let checked = home.execute(Command::SafetyCheckIn { agent: across.clone() }, "agent:across", checked_at).expect("checks in");
    assert!(matches!(&checked[0].kind, EventKind::SafetyCheckIn { misses: 1, .. }), "{checked:?}");
    journal.extend(checked);
    assert_eq!(home.safety_due(&across).expect("due again").due, Millis(checked_at.0 + 600_000));

    let mut replayed = engine();
    person_at(&mut replayed, "across", east(45.0));
    for event in &journal {
        replayed.replay(event).expect("replays");
    }
    assert_eq!(replayed.safety_due(&across), home.safety_due(&across), "the clock is rebuilt from the journal");

    let ended = Command::BorderRelease { offer: OfferId::new("o1"), end: ReservationEnd::Ended, reason: String::new() };
    home.execute(ended, "shard:d1", checked_at).expect("released");
    assert!(home.safety_due(&across).is_none() && home.state().safety.is_empty(), "no clock after the release");
    invariants::check(&home).expect("invariants hold");
}

/// The second miss in a row sends a welfare check from home to where the
/// person was last seen: home holds their position, not the incident.
#[test]
fn a_person_held_across_who_misses_twice_gets_a_welfare_check_from_home() {
    let mut home = engine();
    grade_ii(&mut home, "d2");
    person_at(&mut home, "across", east(45.0));
    person_at(&mut home, "neighbour", east(300.0));
    let held = BorderReservation {
        view: BorderOfferView { safety_interval_s: Some(300), ..reservation("o1", "across").view },
        ..reservation("o1", "across")
    };
    home.execute(Command::BorderReserve(held), "shard:d1", T0).expect("reserved");
    home.execute(Command::Accept { agent: AgentId::new("across"), offer: OfferId::new("o1") }, "agent", T0).unwrap();
    home.tick(Millis(T0.0 + 300_000));
    let second = home.tick(Millis(T0.0 + 600_000));
    let welfare = second.iter().find_map(|event| match &event.kind {
        EventKind::SafetyCheckMissed { miss: 2, welfare: Some(welfare), .. } => Some(welfare.clone()),
        _ => None,
    });
    let welfare = welfare.unwrap_or_else(|| panic!("a welfare check on the second miss: {second:?}"));
    let record = &home.state().incidents[&welfare];
    assert_eq!(record.spec.at, east(45.0), "at the person's last known position");
    assert!(record.excluded.contains(&AgentId::new("across")), "the person looked for is not asked to look");
    invariants::check(&home).expect("invariants hold");
}
