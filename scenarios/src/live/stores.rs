//! The drill's depots, shelters and shifts on a live dispatcher, through
//! its `SupplyService`, `ShelterService` and `RosterService` as an
//! operator would use them, and the timeline's scripted supply requests and
//! evacuations: what the in-process drill does with the engine directly
//! (`sim`), so that the live report has the same sections.
//!
//! With the city split by district, each depot, shelter and shift goes to
//! the shard of its district (the first shard when it lies in none): a
//! shard's incidents draw on its own depots and shelters. What the drill
//! brings stays on the dispatcher afterwards, as its map and plans do;
//! reservations of its incidents are released when they are cancelled at
//! the end.

use std::time::Duration;

use pingji_engine::areas::{AreaLevel, AreaMap};
use pingji_engine::ids::AreaId;
use pingji_engine::roster::AgentProfile;
use pingji_engine::shelters::Facility;
use pingji_engine::spatial::Position;
use pingji_engine::supplies::SupplyImport;
use pingji_proto::v1 as pb;

use super::operator::Operator;
use crate::drill::Drill;
use crate::shelters::EvacuateEntry;
use crate::supplies::SupplyEntry;

/// Imports the drill's depots and stock, its shifts (over its people, who
/// must be on the roster already) and its shelters, opening those open from
/// the start.
pub(super) async fn set_up(operator: &Operator, drill: &Drill, areas: &AreaMap, people: &[AgentProfile]) -> anyhow::Result<()> {
    if !drill.file.depots.is_empty() {
        let import = crate::supplies::import(&drill.file.depots, areas).map_err(anyhow::Error::msg)?;
        for (mut shard, import) in by_shard(operator, areas, import)? {
            let request = import_to_pb(&import);
            shard
                .call_with("importing the depots", |connection| {
                    let mut supplies = connection.supplies();
                    let request = request.clone();
                    async move { supplies.import_supplies(request).await }
                })
                .await?;
        }
    }
    if !drill.file.shifts.is_empty() {
        let shifts = crate::shifts::shifts(&drill.file.shifts, people, areas).map_err(anyhow::Error::msg)?;
        for mut shard in operator.every_shard()? {
            let theirs: Vec<pb::Shift> = shifts
                .iter()
                .filter(|shift| shard.serves(district(areas, Some(&shift.area), None).as_deref()))
                .map(pingji_dispatcher::convert::rosters::shift_to_pb)
                .collect();
            if theirs.is_empty() {
                continue;
            }
            let request = pb::SetShiftsRequest { shifts: theirs };
            shard
                .call_with("setting the shifts", |connection| {
                    let mut rosters = connection.rosters();
                    let request = request.clone();
                    async move { rosters.set_shifts(request).await }
                })
                .await?;
        }
    }
    if !drill.file.shelters.is_empty() {
        let (specs, open) = crate::shelters::import(&drill.file.shelters, areas).map_err(anyhow::Error::msg)?;
        for mut shard in operator.every_shard()? {
            let theirs: Vec<pb::Shelter> = specs
                .iter()
                .filter(|spec| shard.serves(district(areas, spec.area.as_ref(), Some(spec.at)).as_deref()))
                .map(|spec| pb::Shelter {
                    id: spec.id.to_string(),
                    name: spec.name.clone(),
                    location: Some(pb::Location::wgs84(spec.at.lon, spec.at.lat)),
                    area_id: spec.area.as_ref().map(ToString::to_string).unwrap_or_default(),
                    capacity: spec.capacity,
                    facilities: facilities_to_pb(&spec.facilities),
                    ..pb::Shelter::default()
                })
                .collect();
            if theirs.is_empty() {
                continue;
            }
            let to_open: Vec<String> = theirs
                .iter()
                .map(|shelter| shelter.id.clone())
                .filter(|id| open.iter().any(|open| open.as_str() == id))
                .collect();
            let request = pb::ImportSheltersRequest { shelters: theirs };
            shard
                .call_with("importing the shelters", |connection| {
                    let mut shelters = connection.shelters();
                    let request = request.clone();
                    async move { shelters.import_shelters(request).await }
                })
                .await?;
            for shelter_id in to_open {
                let request = pb::OpenShelterRequest { shelter_id };
                // Open already (an earlier run): nothing to do.
                shard
                    .call_with("opening a shelter", |connection| {
                        let mut shelters = connection.shelters();
                        let request = request.clone();
                        async move {
                            match shelters.open_shelter(request).await {
                                Err(status) if status.code() == tonic::Code::FailedPrecondition => Ok(()),
                                other => other.map(|_| ()),
                            }
                        }
                    })
                    .await?;
            }
        }
    }
    Ok(())
}

/// Every open incident of the drill (ids starting with `run`) of the
/// entry's category asks for its items; the proposal of now is confirmed
/// and sent at once (what no depot has is short), and delivered
/// `deliver_after_s` (drill time) later. A request refused (its incident
/// ended meanwhile) is left out, as in the in-process drill. Each request
/// is named by its incident and the entry's time (`at_s`), so that a call
/// repeated after a broken connection makes it once.
pub(super) async fn request_supplies(
    operator: &Operator,
    run: &str,
    at_s: u64,
    entry: &SupplyEntry,
    scale: f64,
) -> anyhow::Result<()> {
    let lines: Vec<pb::SupplyLine> =
        entry.items.iter().map(|(item, quantity)| pb::SupplyLine { item_id: item.clone(), quantity: *quantity }).collect();
    let mut sent = Vec::new();
    for (mut shard, incident_id) in drill_incidents(operator, run, &entry.category).await? {
        let id = format!("{incident_id}-sup-{at_s}");
        let request = pb::RequestSuppliesRequest { incident_id, lines: lines.clone(), id };
        let made = shard
            .call_with("requesting supplies", |connection| {
                let mut supplies = connection.supplies();
                let request = request.clone();
                async move { supplies.request_supplies(request).await }
            })
            .await;
        let Ok(made) = made else { continue };
        let request_id = made.into_inner().id;
        let confirm = pb::ConfirmSuppliesRequest { request_id: request_id.clone(), allocations: Vec::new() };
        shard
            .call_with("confirming supplies", |connection| {
                let mut supplies = connection.supplies();
                let confirm = confirm.clone();
                async move { supplies.confirm_supplies(confirm).await }
            })
            .await?;
        let dispatch = pb::DispatchSuppliesRequest { request_id: request_id.clone(), carrier_agent_id: String::new() };
        shard
            .call_with("dispatching supplies", |connection| {
                let mut supplies = connection.supplies();
                let dispatch = dispatch.clone();
                async move { supplies.dispatch_supplies(dispatch).await }
            })
            .await?;
        sent.push((shard, request_id));
    }
    tokio::time::sleep(Duration::from_secs_f64(entry.deliver_after_s as f64 / scale)).await;
    for (mut shard, request_id) in sent {
        let request = pb::DeliverSuppliesRequest { request_id };
        shard
            .call_with("delivering supplies", |connection| {
                let mut supplies = connection.supplies();
                let request = request.clone();
                async move { supplies.deliver_supplies(request).await }
            })
            .await?;
    }
    Ok(())
}

/// Every open incident of the drill of the entry's category sends its
/// group to the nearest open shelter with room (a group no shelter has
/// room for stays where it is); `arrive_after_s` (drill time) later the
/// places each group still holds are checked in (those of incidents that
/// ended on the way were released). Each evacuation is named by its
/// incident and the entry's time, as supply requests are.
pub(super) async fn evacuate(operator: &Operator, run: &str, at_s: u64, entry: &EvacuateEntry, scale: f64) -> anyhow::Result<()> {
    let needs = facilities_to_pb(&entry.facilities().map_err(anyhow::Error::msg)?);
    let mut sent = Vec::new();
    for (mut shard, incident_id) in drill_incidents(operator, run, &entry.category).await? {
        let request = pb::EvacuateRequest {
            id: format!("{incident_id}-eva-{at_s}"),
            incident_id: incident_id.clone(),
            residents: entry.residents,
            needs: needs.clone(),
            shelter_id: String::new(),
        };
        let assigned = shard
            .call_with("evacuating", |connection| {
                let mut shelters = connection.shelters();
                let request = request.clone();
                async move { shelters.evacuate(request).await }
            })
            .await;
        if let Ok(assigned) = assigned {
            sent.push((shard, incident_id, assigned.into_inner().id));
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(entry.arrive_after_s as f64 / scale)).await;
    for (mut shard, incident_id, evacuation_id) in sent {
        let request = pb::ListEvacuationsRequest { incident_id, shelter_id: String::new(), holding_only: true };
        let holding = shard
            .call_with("listing evacuations", |connection| {
                let mut shelters = connection.shelters();
                let request = request.clone();
                async move { shelters.list_evacuations(request).await }
            })
            .await?
            .into_inner()
            .evacuations;
        let Some(held) = holding.iter().find(|evacuation| evacuation.id == evacuation_id).map(|evacuation| evacuation.held)
        else {
            continue;
        };
        let request = pb::CheckInArrivalsRequest { shelter_id: String::new(), evacuation_id, count: held, names: Vec::new() };
        shard
            .call_with("checking in arrivals", |connection| {
                let mut shelters = connection.shelters();
                let request = request.clone();
                async move { shelters.check_in_arrivals(request).await }
            })
            .await?;
    }
    Ok(())
}

/// The drill's open incidents of `category`, each with the operator of its shard.
async fn drill_incidents(operator: &Operator, run: &str, category: &str) -> anyhow::Result<Vec<(Operator, String)>> {
    let prefix = format!("{run}-");
    let mut found = Vec::new();
    for mut shard in operator.every_shard()? {
        for incident in shard.open_incidents().await? {
            if incident.id.starts_with(&prefix) && incident.category == category {
                found.push((shard.clone(), incident.id));
            }
        }
    }
    Ok(found)
}

/// The import split by the shard each depot goes to (stock and units with their depot).
fn by_shard(operator: &Operator, areas: &AreaMap, import: SupplyImport) -> anyhow::Result<Vec<(Operator, SupplyImport)>> {
    let mut split = Vec::new();
    for shard in operator.every_shard()? {
        let depots: Vec<_> = import
            .depots
            .iter()
            .filter(|depot| shard.serves(district(areas, depot.area.as_ref(), Some(depot.at)).as_deref()))
            .cloned()
            .collect();
        if depots.is_empty() {
            continue;
        }
        let has = |depot: &pingji_engine::supplies::DepotId| depots.iter().any(|theirs| &theirs.id == depot);
        let stock = import.stock.iter().filter(|line| has(&line.depot)).cloned().collect();
        let units = import.units.iter().filter(|unit| has(&unit.depot)).cloned().collect();
        split.push((shard, SupplyImport { depots, stock, units }));
    }
    Ok(split)
}

fn import_to_pb(import: &SupplyImport) -> pb::ImportSuppliesRequest {
    use pingji_dispatcher::convert::supplies::kind_to_pb;
    pb::ImportSuppliesRequest {
        depots: import
            .depots
            .iter()
            .map(|depot| pb::Depot {
                id: depot.id.to_string(),
                name: depot.name.clone(),
                location: Some(pb::Location::wgs84(depot.at.lon, depot.at.lat)),
                area_id: depot.area.as_ref().map(ToString::to_string).unwrap_or_default(),
                keeper: depot.keeper.clone(),
                ..pb::Depot::default()
            })
            .collect(),
        stock: import
            .stock
            .iter()
            .map(|line| pb::StockRow {
                depot_id: line.depot.to_string(),
                item_id: line.item.to_string(),
                quantity: line.quantity,
                minimum: line.minimum,
            })
            .collect(),
        units: import
            .units
            .iter()
            .map(|unit| pb::UnitRow {
                unit_id: unit.id.to_string(),
                item_id: unit.item.to_string(),
                kind: kind_to_pb(unit.kind) as i32,
                depot_id: unit.depot.to_string(),
                capacity: unit.capacity,
                in_repair: unit.in_repair,
            })
            .collect(),
    }
}

fn facilities_to_pb(facilities: &[Facility]) -> Vec<i32> {
    facilities.iter().map(|facility| pingji_dispatcher::convert::shelters::facility_to_pb(*facility) as i32).collect()
}

/// The district of an area, or else of a position, on the drill's map.
fn district(areas: &AreaMap, area: Option<&AreaId>, at: Option<Position>) -> Option<String> {
    let placement = match (area, at) {
        (Some(area), _) => areas.placement_of_area(area),
        (None, Some(at)) => areas.place(at),
        (None, None) => return None,
    };
    placement.at(AreaLevel::District).map(ToString::to_string)
}
