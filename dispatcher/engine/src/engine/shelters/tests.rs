//! Shelters in the engine, over the sample city on a virtual clock.

use proptest::prelude::*;

use super::super::*;
use crate::shelters::{EvacuationId, Facility, ShelterCommand, ShelterEvent, ShelterId, ShelterLevel, ShelterSpec};

const T0: Millis = Millis(1_800_000_000_000);

fn engine() -> Engine {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/maps/sample-city.geojson");
    let text = std::fs::read_to_string(path).expect("sample city present");
    let map = crate::areas::parse_geojson(&text).expect("sample city parses");
    let mut engine = Engine::new(Policy { staffing_check_s: 0, ..Policy::default() });
    engine.execute(Command::ImportAreas(map), "operator:test", T0).expect("map imports");
    engine
}

fn incident_at(engine: &mut Engine, at: Position) -> IncidentId {
    let spec = IncidentSpec {
        at,
        category: "evacuation".to_string(),
        priority: 2,
        skills: Default::default(),
        headcount: 1,
        description: String::new(),
        source_id: String::new(),
    };
    let events =
        engine.execute(Command::CreateIncident { id: None, spec, force: true }, "operator:test", T0).expect("incident created");
    events[0].kind.incident_id().expect("names the incident").clone()
}

fn shelter(id: &str, lon: f64, capacity: u32, facilities: &[Facility]) -> ShelterSpec {
    ShelterSpec {
        id: ShelterId::new(id),
        name: format!("shelter {id}"),
        at: Position { lon, lat: 30.27 },
        area: None,
        capacity,
        facilities: facilities.to_vec(),
    }
}

fn run(engine: &mut Engine, command: ShelterCommand) -> Result<Vec<Event>, Rejection> {
    engine.execute(Command::Shelters(command), "operator:test", T0)
}

/// Three open shelters east of the incident: `near` (10 places, no ramp),
/// `school` (20, accessible) and `far` (100, accessible and medical).
fn sheltered() -> (Engine, IncidentId) {
    let mut engine = engine();
    let shelters = vec![
        shelter("near", 120.155, 10, &[]),
        shelter("school", 120.16, 20, &[Facility::Accessible]),
        shelter("far", 120.2, 100, &[Facility::Accessible, Facility::Medical]),
        shelter("closed", 120.151, 500, &[Facility::Accessible, Facility::Medical]),
    ];
    run(&mut engine, ShelterCommand::Import(shelters)).expect("shelters import");
    for id in ["near", "school", "far"] {
        run(&mut engine, ShelterCommand::Open { shelter: ShelterId::new(id) }).expect("opens");
    }
    let incident = incident_at(&mut engine, Position { lon: 120.15, lat: 30.27 });
    (engine, incident)
}

fn evacuate(
    engine: &mut Engine,
    incident: &IncidentId,
    residents: u32,
    needs: &[Facility],
) -> Result<(EvacuationId, ShelterId, Vec<ShelterId>), Rejection> {
    let events = run(
        engine,
        ShelterCommand::Evacuate { id: None, incident: incident.clone(), residents, needs: needs.to_vec(), shelter: None },
    )?;
    match &events[0].kind {
        EventKind::Shelters(ShelterEvent::EvacuationAssigned { evacuation, shelter, passed_over, .. }) => {
            Ok((evacuation.clone(), shelter.clone(), passed_over.clone()))
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn levels(events: &[Event]) -> Vec<(String, ShelterLevel)> {
    events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::Shelters(ShelterEvent::ShelterLevelChanged { shelter, level, .. }) => Some((shelter.to_string(), *level)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_nearest_open_shelter_with_room_and_the_facilities_is_chosen_and_overflow_goes_to_the_next() {
    let (mut engine, incident) = sheltered();
    let (_, first, passed) = evacuate(&mut engine, &incident, 8, &[]).expect("evacuated");
    assert_eq!((first.as_str(), passed.len()), ("near", 0));
    let (_, second, passed) = evacuate(&mut engine, &incident, 5, &[]).expect("evacuated");
    assert_eq!(second.as_str(), "school", "near has 2 places left");
    assert_eq!(passed, [ShelterId::new("near")]);
    let (_, third, _) = evacuate(&mut engine, &incident, 3, &[Facility::Medical]).expect("evacuated");
    assert_eq!(third.as_str(), "far", "only far has a medical post (closed is closed)");
    assert_eq!(engine.shelters().shelters[&ShelterId::new("school")].reserved, 5);
    let refused = evacuate(&mut engine, &incident, 200, &[]);
    assert!(matches!(refused, Err(Rejection::FailedPrecondition(_))), "{refused:?}");
    invariants::check(&engine).expect("invariants hold");
}

#[test]
fn arrivals_use_the_reserved_places_and_alerts_follow_the_threshold_and_full() {
    let (mut engine, incident) = sheltered();
    let (evacuation, shelter, _) = evacuate(&mut engine, &incident, 9, &[]).expect("evacuated");
    assert_eq!(shelter.as_str(), "near");
    let mut events = Vec::new();
    events.extend(
        run(
            &mut engine,
            ShelterCommand::CheckIn {
                shelter: None,
                evacuation: Some(evacuation.clone()),
                count: 4,
                names: vec!["王小明".into()],
            },
        )
        .expect("checked in"),
    );
    let record = &engine.shelters().shelters[&shelter];
    assert_eq!((record.occupied, record.reserved), (4, 5));
    let too_many = run(
        &mut engine,
        ShelterCommand::CheckIn { shelter: None, evacuation: Some(evacuation.clone()), count: 6, names: vec![] },
    );
    assert!(matches!(too_many, Err(Rejection::FailedPrecondition(_))));
    events.extend(
        run(&mut engine, ShelterCommand::CheckIn { shelter: Some(shelter.clone()), evacuation: None, count: 1, names: vec![] })
            .expect("a walk-in"),
    );
    assert_eq!(levels(&events), [("near".to_string(), ShelterLevel::Full)]);
    let walk_in =
        run(&mut engine, ShelterCommand::CheckIn { shelter: Some(shelter.clone()), evacuation: None, count: 1, names: vec![] });
    assert!(matches!(walk_in, Err(Rejection::FailedPrecondition(_))), "no room left");
    let left = run(&mut engine, ShelterCommand::CheckOut { shelter: shelter.clone(), count: 5 }).expect("five leave");
    assert_eq!(levels(&left), [("near".to_string(), ShelterLevel::Normal)]);
    invariants::check(&engine).expect("invariants hold");
}

#[test]
fn an_ended_incident_releases_the_places_of_residents_who_did_not_arrive_and_replays_exactly() {
    let (mut engine, incident) = sheltered();
    let start = engine.state().clone();
    let mut events = run(
        &mut engine,
        ShelterCommand::Evacuate {
            id: None,
            incident: incident.clone(),
            residents: 18,
            needs: vec![Facility::Accessible],
            shelter: None,
        },
    )
    .expect("evacuated");
    let evacuation = EvacuationId::new("eva-000001");
    let shelter = ShelterId::new("school");
    events.extend(
        run(
            &mut engine,
            ShelterCommand::CheckIn { shelter: None, evacuation: Some(evacuation.clone()), count: 10, names: vec![] },
        )
        .expect("checked in"),
    );
    let closed = engine
        .execute(
            Command::CloseIncident { incident: incident.clone(), feedback: "moved".to_string() },
            "operator:test",
            Millis(T0.0 + 1000),
        )
        .expect("closed");
    assert!(
        closed.iter().any(|event| matches!(&event.kind, EventKind::Shelters(ShelterEvent::PlacesReleased { places: 8, .. })))
    );
    events.extend(closed);
    let record = &engine.shelters().shelters[&shelter];
    assert_eq!((record.occupied, record.reserved), (10, 0));
    assert_eq!(engine.shelters().evacuations[&evacuation].held(), 0);
    let mut fresh = Engine::restore(engine.policy().clone(), start);
    for event in &events {
        fresh.replay(event).expect("replays");
    }
    assert_eq!(fresh.state(), engine.state());
}

#[derive(Clone, Debug)]
enum Step {
    Evacuate { incident: usize, residents: u32, accessible: bool, chosen: Option<usize> },
    CheckIn { evacuation: usize, count: u32 },
    WalkIn { shelter: usize, count: u32 },
    CheckOut { shelter: usize, count: u32 },
    Release { evacuation: usize },
    Toggle { shelter: usize, open: bool },
    Resize { shelter: usize, capacity: u32 },
    EndIncident { incident: usize },
}

const NAMES: [&str; 3] = ["near", "school", "far"];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..3usize, 1..30u32, any::<bool>(), prop::option::of(0..3usize))
            .prop_map(|(incident, residents, accessible, chosen)| Step::Evacuate { incident, residents, accessible, chosen }),
        3 => (0..8usize, 1..15u32).prop_map(|(evacuation, count)| Step::CheckIn { evacuation, count }),
        1 => (0..3usize, 1..10u32).prop_map(|(shelter, count)| Step::WalkIn { shelter, count }),
        1 => (0..3usize, 1..10u32).prop_map(|(shelter, count)| Step::CheckOut { shelter, count }),
        1 => (0..8usize).prop_map(|evacuation| Step::Release { evacuation }),
        1 => (0..3usize, any::<bool>()).prop_map(|(shelter, open)| Step::Toggle { shelter, open }),
        1 => (0..3usize, 1..120u32).prop_map(|(shelter, capacity)| Step::Resize { shelter, capacity }),
        1 => (0..3usize).prop_map(|incident| Step::EndIncident { incident }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_shelter_commands_never_overfill_nor_give_a_place_twice_and_replay_exactly(steps in prop::collection::vec(step(), 1..60)) {
        let (mut engine, first) = sheltered();
        let incidents = [first, incident_at(&mut engine, Position { lon: 120.19, lat: 30.27 }), incident_at(&mut engine, Position { lon: 120.13, lat: 30.27 })];
        let start = engine.state().clone();
        let mut events = Vec::new();
        for (index, step) in steps.into_iter().enumerate() {
            let now = Millis(T0.0 + 1000 * index as i64);
            let evacuation = |index: usize| EvacuationId::new(format!("eva-{:06}", index + 1));
            let before = engine.state().clone();
            let command = match step {
                Step::Evacuate { incident, residents, accessible, chosen } => Command::Shelters(ShelterCommand::Evacuate {
                    id: None,
                    incident: incidents[incident].clone(),
                    residents,
                    needs: if accessible { vec![Facility::Accessible] } else { vec![] },
                    shelter: chosen.map(|shelter| ShelterId::new(NAMES[shelter])),
                }),
                Step::CheckIn { evacuation: index, count } => Command::Shelters(ShelterCommand::CheckIn { shelter: None, evacuation: Some(evacuation(index)), count, names: vec![] }),
                Step::WalkIn { shelter, count } => Command::Shelters(ShelterCommand::CheckIn { shelter: Some(ShelterId::new(NAMES[shelter])), evacuation: None, count, names: vec![] }),
                Step::CheckOut { shelter, count } => Command::Shelters(ShelterCommand::CheckOut { shelter: ShelterId::new(NAMES[shelter]), count }),
                Step::Release { evacuation: index } => Command::Shelters(ShelterCommand::Release { evacuation: evacuation(index), reason: String::new() }),
                Step::Toggle { shelter, open } => {
                    let shelter = ShelterId::new(NAMES[shelter]);
                    Command::Shelters(if open { ShelterCommand::Open { shelter } } else { ShelterCommand::Close { shelter, reason: String::new() } })
                }
                Step::Resize { shelter, capacity } => {
                    let facilities = engine.shelters().shelters[&ShelterId::new(NAMES[shelter])].spec.facilities.clone();
                    Command::Shelters(ShelterCommand::Import(vec![ShelterSpec { capacity, ..shelter_spec(NAMES[shelter], &facilities) }]))
                }
                Step::EndIncident { incident } => Command::CloseIncident { incident: incidents[incident].clone(), feedback: "moved".to_string() },
            };
            match engine.execute(command, "operator:test", Millis(now.0)) {
                Ok(new) => events.extend(new),
                Err(_) => prop_assert_eq!(engine.state(), &before, "a refused command changed the state"),
            }
            invariants::check(&engine).map_err(TestCaseError::fail)?;
            for shelter in engine.shelters().shelters.values() {
                let level = ShelterLevel::of(shelter.taken(), shelter.spec.capacity, engine.policy().shelters.alert_percent);
                prop_assert_eq!(shelter.level, level, "the alert of {} follows its places taken", shelter.spec.id);
            }
            for evacuation in engine.shelters().evacuations.values() {
                let ended = !engine.state().incidents[&evacuation.incident].is_open();
                prop_assert!(!ended || evacuation.held() == 0, "{} holds places after its incident ended", evacuation.id);
            }
        }
        let mut fresh = Engine::restore(engine.policy().clone(), start);
        for event in &events {
            fresh.replay(event).map_err(TestCaseError::fail)?;
        }
        prop_assert_eq!(fresh.state(), engine.state());
    }
}

fn shelter_spec(id: &str, facilities: &[Facility]) -> ShelterSpec {
    let lon = match id {
        "near" => 120.155,
        "school" => 120.16,
        _ => 120.2,
    };
    shelter(id, lon, 1, facilities)
}
