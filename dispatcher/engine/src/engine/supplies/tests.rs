//! Supplies in the engine, over the sample city on a virtual clock.

use proptest::prelude::*;

use super::super::*;
use crate::supplies::{
    Allocation, DepotId, DepotSpec, ItemId, ItemKind, RequestStatus, StockLine, SupplyCommand, SupplyEvent, SupplyImport,
    SupplyLine, SupplyRequestId, UnitId, UnitSpec, UnitStatus,
};

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
        category: "flood".to_string(),
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

fn depot(id: &str, lon: f64) -> DepotSpec {
    DepotSpec {
        id: DepotId::new(id),
        name: format!("depot {id}"),
        at: Position { lon, lat: 30.27 },
        area: None,
        keeper: "keeper".to_string(),
    }
}

fn stock(depot: &str, item: &str, quantity: u64, minimum: u64) -> StockLine {
    StockLine { depot: DepotId::new(depot), item: ItemId::new(item), quantity, minimum }
}

fn pump(id: &str, depot: &str) -> UnitSpec {
    UnitSpec {
        id: UnitId::new(id),
        item: ItemId::new("pump"),
        kind: ItemKind::Equipment,
        depot: DepotId::new(depot),
        capacity: 0,
        in_repair: false,
    }
}

fn line(item: &str, quantity: u64) -> SupplyLine {
    SupplyLine { item: ItemId::new(item), quantity }
}

fn run(engine: &mut Engine, command: SupplyCommand) -> Result<Vec<Event>, Rejection> {
    engine.execute(Command::Supplies(command), "operator:test", T0)
}

/// Two depots east of the incident: `near` 1 km away, `far` 5 km away.
fn stocked() -> (Engine, IncidentId) {
    let mut engine = engine();
    let import = SupplyImport {
        depots: vec![depot("near", 120.16), depot("far", 120.2)],
        stock: vec![stock("near", "sandbag", 300, 100), stock("far", "sandbag", 1000, 0)],
        units: vec![pump("P-07", "far")],
    };
    run(&mut engine, SupplyCommand::Import(import)).expect("supplies import");
    let incident = incident_at(&mut engine, Position { lon: 120.15, lat: 30.27 });
    (engine, incident)
}

fn request(engine: &mut Engine, incident: &IncidentId, lines: Vec<SupplyLine>) -> SupplyRequestId {
    let events = run(engine, SupplyCommand::Request { id: None, incident: incident.clone(), lines }).expect("request made");
    match &events[0].kind {
        EventKind::Supplies(SupplyEvent::SuppliesRequested { request, .. }) => request.clone(),
        other => panic!("unexpected {other:?}"),
    }
}

fn low_alerts(events: &[Event]) -> Vec<(String, u64)> {
    events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::Supplies(SupplyEvent::StockLow { depot, available, .. }) => Some((depot.to_string(), *available)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_proposal_takes_from_the_nearest_depot_and_splits_when_it_is_short() {
    let (mut engine, incident) = stocked();
    let request = request(&mut engine, &incident, vec![line("sandbag", 500), line("pump", 1)]);
    let proposal = engine.supply_proposal(&request).expect("proposal");
    let taken: Vec<(&str, &str, u64)> = proposal
        .allocations
        .iter()
        .map(|(allocation, _)| (allocation.depot.as_str(), allocation.item.as_str(), allocation.quantity))
        .collect();
    assert_eq!(taken, [("near", "sandbag", 300), ("far", "sandbag", 200), ("far", "pump", 1)]);
    assert!(proposal.allocations[0].1 < proposal.allocations[1].1, "nearest first by travel time");
    assert!(proposal.short.is_empty());
}

#[test]
fn the_whole_lifecycle_reserves_dispatches_delivers_and_returns_and_replays_exactly() {
    let (mut engine, incident) = stocked();
    let start = engine.state().clone();
    let mut events = Vec::new();
    let made =
        run(&mut engine, SupplyCommand::Request { id: None, incident, lines: vec![line("sandbag", 500), line("pump", 1)] });
    events.extend(made.expect("request made"));
    let request = SupplyRequestId::new("sup-000001");
    events.extend(run(&mut engine, SupplyCommand::Confirm { request: request.clone(), allocations: None }).expect("confirmed"));
    assert_eq!(low_alerts(&events), [("near".to_string(), 0)], "near fell below its minimum of 100");
    let supplies = engine.supplies();
    assert_eq!(supplies.depots[&DepotId::new("near")].stock[&ItemId::new("sandbag")].reserved, 300);
    assert_eq!(supplies.units[&UnitId::new("P-07")].status, UnitStatus::Reserved);
    for command in [
        SupplyCommand::Dispatch { request: request.clone(), carrier: None },
        SupplyCommand::Deliver { request: request.clone() },
        SupplyCommand::Return { request: request.clone(), returned: vec![line("sandbag", 100)], in_repair: vec![] },
    ] {
        events.extend(run(&mut engine, command).expect("step accepted"));
    }
    let supplies = engine.supplies();
    let record = &supplies.requests[&request];
    assert_eq!(record.status, RequestStatus::Returned);
    assert_eq!(record.consumed, [line("sandbag", 400)]);
    // The 100 returned go back to the nearest depot, which gave first.
    assert_eq!(supplies.depots[&DepotId::new("near")].stock[&ItemId::new("sandbag")].on_hand, 100);
    assert_eq!(supplies.depots[&DepotId::new("far")].stock[&ItemId::new("sandbag")].on_hand, 800);
    assert_eq!(supplies.units[&UnitId::new("P-07")].status, UnitStatus::Available);
    invariants::check(&engine).expect("invariants hold");
    let mut fresh = Engine::restore(engine.policy().clone(), start);
    for event in &events {
        fresh.replay(event).expect("replays in order");
    }
    assert_eq!(fresh.state(), engine.state(), "the journal rebuilds the same supplies");
    let json = serde_json::to_string(&events).expect("events serialise");
    let back: Vec<Event> = serde_json::from_str(&json).expect("and read back");
    assert_eq!(back, events);
}

#[test]
fn two_incidents_racing_for_the_last_unit_one_gets_it_and_the_other_changes_nothing() {
    let (mut engine, first) = stocked();
    let second = incident_at(&mut engine, Position { lon: 120.21, lat: 30.27 });
    let one = request(&mut engine, &first, vec![line("pump", 1)]);
    let two = request(&mut engine, &second, vec![line("pump", 1)]);
    let proposed_to_two: Vec<Allocation> =
        engine.supply_proposal(&two).expect("proposal").allocations.into_iter().map(|(allocation, _)| allocation).collect();
    run(&mut engine, SupplyCommand::Confirm { request: one.clone(), allocations: None }).expect("first confirms");
    let before = engine.state().clone();
    let refused = run(&mut engine, SupplyCommand::Confirm { request: two.clone(), allocations: Some(proposed_to_two) })
        .expect_err("the unit is taken");
    assert!(
        matches!(&refused, Rejection::FailedPrecondition(message) if message.contains("P-07 is already held by request sup-000001")),
        "{refused:?}"
    );
    assert_eq!(engine.state(), &before, "a refused confirmation changes nothing");
    let refused = run(&mut engine, SupplyCommand::Confirm { request: two, allocations: None }).expect_err("nothing left");
    assert!(refused.to_string().contains("no depot has any of pump free"), "{refused}");
}

#[test]
fn stock_cannot_go_below_zero() {
    let (mut engine, incident) = stocked();
    let request = request(&mut engine, &incident, vec![line("sandbag", 400)]);
    let too_much = vec![Allocation { depot: DepotId::new("near"), item: ItemId::new("sandbag"), quantity: 301, units: vec![] }];
    let refused = run(&mut engine, SupplyCommand::Confirm { request: request.clone(), allocations: Some(too_much) })
        .expect_err("more than the depot holds");
    assert!(refused.to_string().contains("stock cannot go below zero"), "{refused}");
    run(&mut engine, SupplyCommand::Confirm { request, allocations: None }).expect("confirmed");
    let refused = run(
        &mut engine,
        SupplyCommand::Import(SupplyImport { stock: vec![stock("near", "sandbag", 10, 0)], ..Default::default() }),
    )
    .expect_err("below what is reserved");
    assert!(refused.to_string().contains("300 sandbag reserved"), "{refused}");
    let refused = run(
        &mut engine,
        SupplyCommand::MoveStock {
            from: DepotId::new("near"),
            to: DepotId::new("far"),
            item: ItemId::new("sandbag"),
            quantity: 1,
        },
    )
    .expect_err("nothing free to move");
    assert!(refused.to_string().contains("0 sandbag free to move"), "{refused}");
}

#[test]
fn an_ended_incident_releases_what_it_reserved() {
    let (mut engine, incident) = stocked();
    let request = request(&mut engine, &incident, vec![line("sandbag", 250), line("pump", 1)]);
    run(&mut engine, SupplyCommand::Confirm { request: request.clone(), allocations: None }).expect("confirmed");
    let events = engine
        .execute(Command::CancelIncident { incident, reason: "false alarm".to_string() }, "operator:test", T0)
        .expect("cancelled");
    assert!(events.iter().any(|event| matches!(&event.kind, EventKind::Supplies(SupplyEvent::StockRestored { .. }))));
    let supplies = engine.supplies();
    assert_eq!(supplies.requests[&request].status, RequestStatus::Cancelled);
    assert_eq!(supplies.depots[&DepotId::new("near")].stock[&ItemId::new("sandbag")].reserved, 0);
    assert_eq!(supplies.units[&UnitId::new("P-07")].held_by, None);
    invariants::check(&engine).expect("invariants hold");
}

#[test]
fn a_plan_pre_positions_its_supplies_when_it_activates() {
    let (mut engine, _) = stocked();
    run(&mut engine, SupplyCommand::Import(SupplyImport { depots: vec![depot("riverside", 120.1)], ..Default::default() }))
        .expect("riverside depot");
    let plan = crate::plans::parse_plan(
        r#"
id = "typhoon-ii"
name = "Typhoon, grade II"
category = "typhoon"
grade = "II"

[[supply]]
item = "sandbag"
quantity = 1200
to = ["riverside"]
"#,
    )
    .expect("plan parses");
    engine.execute(Command::ImportPlans(vec![plan]), "operator:test", T0).expect("plan imported");
    let events = engine
        .execute(
            Command::ActivatePlan { plan: PlanId::new("typhoon-ii"), area: AreaId::new("d1"), reason: "typhoon".to_string() },
            "operator:test",
            T0,
        )
        .expect("activated");
    let moves: Vec<(String, u64)> = events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::Supplies(SupplyEvent::StockMoved { moved }) => Some((moved.from.to_string(), moved.quantity)),
            _ => None,
        })
        .collect();
    assert_eq!(moves, [("near".to_string(), 300), ("far".to_string(), 900)], "nearest sources first");
    assert_eq!(engine.supplies().depots[&DepotId::new("riverside")].stock[&ItemId::new("sandbag")].on_hand, 1200);
}

#[derive(Clone, Debug)]
enum Step {
    Request {
        incident: usize,
        sandbags: u64,
        pumps: u64,
    },
    Confirm {
        request: usize,
        stale: bool,
    },
    Dispatch {
        request: usize,
    },
    Deliver {
        request: usize,
    },
    Return {
        request: usize,
        back: u64,
    },
    Cancel {
        request: usize,
    },
    /// Closes the incident with this feedback: blank is refused, any
    /// other text ends it and releases what it reserved.
    EndIncident {
        incident: usize,
        feedback: String,
    },
    Restock {
        depot: usize,
        quantity: u64,
    },
    Repair {
        unit: usize,
        broken: bool,
    },
}

/// Feedback an operator might type: mostly words (Chinese too), sometimes
/// nothing or only spaces, which the engine refuses.
fn feedback() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        1 => Just("  ".to_string()),
        6 => "[a-z 水退沙袋已用完]{1,24}",
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..3usize, 0..400u64, 0..3u64).prop_map(|(incident, sandbags, pumps)| Step::Request { incident, sandbags, pumps }),
        3 => (0..8usize, any::<bool>()).prop_map(|(request, stale)| Step::Confirm { request, stale }),
        2 => (0..8usize).prop_map(|request| Step::Dispatch { request }),
        2 => (0..8usize).prop_map(|request| Step::Deliver { request }),
        2 => (0..8usize, 0..300u64).prop_map(|(request, back)| Step::Return { request, back }),
        1 => (0..8usize).prop_map(|request| Step::Cancel { request }),
        2 => (0..3usize, feedback()).prop_map(|(incident, feedback)| Step::EndIncident { incident, feedback }),
        1 => (0..2usize, 0..600u64).prop_map(|(depot, quantity)| Step::Restock { depot, quantity }),
        1 => (0..3usize, any::<bool>()).prop_map(|(unit, broken)| Step::Repair { unit, broken }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_supply_commands_keep_stock_and_units_whole_and_replay_exactly(steps in prop::collection::vec(step(), 1..60)) {
        let (mut engine, first) = stocked();
        run(&mut engine, SupplyCommand::Import(SupplyImport { units: vec![pump("P-08", "near"), pump("P-09", "near")], ..Default::default() }))
            .expect("more pumps");
        let incidents = [first, incident_at(&mut engine, Position { lon: 120.19, lat: 30.27 }), incident_at(&mut engine, Position { lon: 120.13, lat: 30.27 })];
        let start = engine.state().clone();
        let mut events = Vec::new();
        // Proposals made earlier and confirmed later, as operators do.
        let mut stale: std::collections::BTreeMap<usize, Vec<Allocation>> = Default::default();
        for step in steps {
            let id = |index: usize| SupplyRequestId::new(format!("sup-{:06}", index + 1));
            let before = engine.state().clone();
            let result = match step {
                Step::Request { incident, sandbags, pumps } => {
                    let mut lines = Vec::new();
                    if sandbags > 0 { lines.push(line("sandbag", sandbags)); }
                    if pumps > 0 { lines.push(line("pump", pumps)); }
                    let result = run(&mut engine, SupplyCommand::Request { id: None, incident: incidents[incident].clone(), lines });
                    if result.is_ok() {
                        let made = engine.supplies().requests_made as usize - 1;
                        if let Ok(proposal) = engine.supply_proposal(&id(made)) {
                            stale.insert(made, proposal.allocations.into_iter().map(|(allocation, _)| allocation).collect());
                        }
                    }
                    result
                }
                Step::Confirm { request, stale: use_stale } => {
                    let allocations = if use_stale { stale.get(&request).cloned() } else { None };
                    run(&mut engine, SupplyCommand::Confirm { request: id(request), allocations })
                }
                Step::Dispatch { request } => run(&mut engine, SupplyCommand::Dispatch { request: id(request), carrier: None }),
                Step::Deliver { request } => run(&mut engine, SupplyCommand::Deliver { request: id(request) }),
                Step::Return { request, back } => {
                    let returned = if back > 0 { vec![line("sandbag", back)] } else { vec![] };
                    run(&mut engine, SupplyCommand::Return { request: id(request), returned, in_repair: vec![] })
                }
                Step::Cancel { request } => run(&mut engine, SupplyCommand::Cancel { request: id(request), reason: String::new() }),
                Step::EndIncident { incident, feedback } => {
                    let was_open = engine.state().incidents[&incidents[incident]].is_open();
                    let result = engine.execute(
                        Command::CloseIncident { incident: incidents[incident].clone(), feedback: feedback.clone() },
                        "operator:test",
                        T0,
                    );
                    let blank = feedback.trim().is_empty();
                    prop_assert_eq!(result.is_ok(), was_open && !blank, "closing with feedback {:?}: {:?}", feedback, result);
                    if result.is_ok() {
                        let record = &engine.state().incidents[&incidents[incident]];
                        prop_assert_eq!(record.feedback.as_deref(), Some(feedback.as_str()), "the feedback is kept");
                    }
                    result
                }
                Step::Restock { depot, quantity } => {
                    let name = ["near", "far"][depot];
                    run(&mut engine, SupplyCommand::Import(SupplyImport { stock: vec![stock(name, "sandbag", quantity, 100)], ..Default::default() }))
                }
                Step::Repair { unit, broken } => {
                    let status = if broken { UnitStatus::InRepair } else { UnitStatus::Available };
                    run(&mut engine, SupplyCommand::SetUnitStatus { unit: UnitId::new(["P-07", "P-08", "P-09"][unit]), status })
                }
            };
            match result {
                Ok(new) => events.extend(new),
                Err(_) => prop_assert_eq!(engine.state(), &before, "a refused command changed the state"),
            }
            invariants::check(&engine).map_err(TestCaseError::fail)?;
            for depot in engine.supplies().depots.values() {
                for (item, stock) in &depot.stock {
                    let below = stock.minimum > 0 && stock.available() < stock.minimum;
                    prop_assert_eq!(stock.low, below, "the low-stock alert of {} {} follows its stock", depot.spec.id, item);
                }
            }
        }
        let mut fresh = Engine::restore(engine.policy().clone(), start);
        for event in &events {
            fresh.replay(event).map_err(TestCaseError::fail)?;
        }
        prop_assert_eq!(fresh.state(), engine.state());
    }
}
