//! Supplies on the wire: depots, stock, units, requests and proposals, and
//! the supply events (`Event.body` 100 to 119) both ways.

use pingji_engine::Rejection;
use pingji_engine::engine::Engine;
use pingji_engine::ids::{ActivationId, AgentId, AreaId, IncidentId};
use pingji_engine::supplies::{
    Allocation, Depot, DepotId, DepotSpec, ItemId, ItemKind, Level, PlanSupplyMove, Proposal, RequestStatus, StockLine,
    StockMove, SupplyEvent, SupplyImport, SupplyLine, SupplyRequest, SupplyRequestId, Unit, UnitId, UnitSpec, UnitStatus,
};
use pingji_proto::v1 as pb;

use super::location;

pub fn kind_to_pb(kind: ItemKind) -> pb::ItemKind {
    match kind {
        ItemKind::Consumable => pb::ItemKind::Consumable,
        ItemKind::Equipment => pb::ItemKind::Equipment,
        ItemKind::Vehicle => pb::ItemKind::Vehicle,
    }
}

pub fn kind_from_pb(kind: i32) -> Result<ItemKind, String> {
    match pb::ItemKind::try_from(kind) {
        Ok(pb::ItemKind::Consumable) => Ok(ItemKind::Consumable),
        Ok(pb::ItemKind::Equipment) => Ok(ItemKind::Equipment),
        Ok(pb::ItemKind::Vehicle) => Ok(ItemKind::Vehicle),
        _ => Err(format!("item kind {kind} is not one of consumable, equipment, vehicle")),
    }
}

pub fn unit_status_to_pb(status: UnitStatus) -> pb::SupplyUnitStatus {
    match status {
        UnitStatus::Available => pb::SupplyUnitStatus::Available,
        UnitStatus::Reserved => pb::SupplyUnitStatus::Reserved,
        UnitStatus::Dispatched => pb::SupplyUnitStatus::Dispatched,
        UnitStatus::InRepair => pb::SupplyUnitStatus::InRepair,
    }
}

pub fn unit_status_from_pb(status: i32) -> Result<UnitStatus, String> {
    match pb::SupplyUnitStatus::try_from(status) {
        Ok(pb::SupplyUnitStatus::Available) => Ok(UnitStatus::Available),
        Ok(pb::SupplyUnitStatus::Reserved) => Ok(UnitStatus::Reserved),
        Ok(pb::SupplyUnitStatus::Dispatched) => Ok(UnitStatus::Dispatched),
        Ok(pb::SupplyUnitStatus::InRepair) => Ok(UnitStatus::InRepair),
        _ => Err(format!("unit status {status} is not one of available, reserved, dispatched, in repair")),
    }
}

fn request_status_to_pb(status: RequestStatus) -> pb::SupplyRequestStatus {
    match status {
        RequestStatus::Requested => pb::SupplyRequestStatus::Requested,
        RequestStatus::Reserved => pb::SupplyRequestStatus::Reserved,
        RequestStatus::Dispatched => pb::SupplyRequestStatus::Dispatched,
        RequestStatus::Delivered => pb::SupplyRequestStatus::Delivered,
        RequestStatus::Returned => pb::SupplyRequestStatus::Returned,
        RequestStatus::Cancelled => pb::SupplyRequestStatus::Cancelled,
    }
}

pub fn line_to_pb(line: &SupplyLine) -> pb::SupplyLine {
    pb::SupplyLine { item_id: line.item.to_string(), quantity: line.quantity }
}

pub fn line_from_pb(line: &pb::SupplyLine) -> SupplyLine {
    SupplyLine { item: ItemId::new(line.item_id.trim()), quantity: line.quantity }
}

fn lines_to_pb(lines: &[SupplyLine]) -> Vec<pb::SupplyLine> {
    lines.iter().map(line_to_pb).collect()
}

fn lines_from_pb(lines: &[pb::SupplyLine]) -> Vec<SupplyLine> {
    lines.iter().map(line_from_pb).collect()
}

pub fn allocation_to_pb(allocation: &Allocation, travel_s: f64) -> pb::SupplyAllocation {
    pb::SupplyAllocation {
        depot_id: allocation.depot.to_string(),
        item_id: allocation.item.to_string(),
        quantity: allocation.quantity,
        unit_ids: allocation.units.iter().map(ToString::to_string).collect(),
        travel_s,
    }
}

pub fn allocation_from_pb(allocation: &pb::SupplyAllocation) -> Allocation {
    Allocation {
        depot: DepotId::new(allocation.depot_id.trim()),
        item: ItemId::new(allocation.item_id.trim()),
        quantity: allocation.quantity,
        units: allocation.unit_ids.iter().map(|unit| UnitId::new(unit.trim())).collect(),
    }
}

fn allocations_to_pb(allocations: &[Allocation]) -> Vec<pb::SupplyAllocation> {
    allocations.iter().map(|allocation| allocation_to_pb(allocation, 0.0)).collect()
}

fn allocations_from_pb(allocations: &[pb::SupplyAllocation]) -> Vec<Allocation> {
    allocations.iter().map(allocation_from_pb).collect()
}

pub fn unit_to_pb(unit: &Unit) -> pb::SupplyUnit {
    pb::SupplyUnit {
        id: unit.spec.id.to_string(),
        item_id: unit.spec.item.to_string(),
        kind: kind_to_pb(unit.spec.kind).into(),
        depot_id: unit.spec.depot.to_string(),
        capacity: unit.spec.capacity,
        status: unit_status_to_pb(unit.status).into(),
        request_id: unit.held_by.as_ref().map(ToString::to_string).unwrap_or_default(),
    }
}

fn depot_spec_to_pb(spec: &DepotSpec) -> pb::Depot {
    pb::Depot {
        id: spec.id.to_string(),
        name: spec.name.clone(),
        location: Some(location(spec.at)),
        area_id: spec.area.as_ref().map(ToString::to_string).unwrap_or_default(),
        keeper: spec.keeper.clone(),
        stock: Vec::new(),
        units: Vec::new(),
    }
}

pub fn depot_to_pb(engine: &Engine, depot: &Depot) -> pb::Depot {
    let mut out = depot_spec_to_pb(&depot.spec);
    out.stock = depot
        .stock
        .iter()
        .map(|(item, stock)| pb::DepotStock {
            item_id: item.to_string(),
            on_hand: stock.on_hand,
            reserved: stock.reserved,
            available: stock.available(),
            minimum: stock.minimum,
            low: stock.low,
        })
        .collect();
    out.units = engine.supplies().units.values().filter(|unit| unit.spec.depot == depot.spec.id).map(unit_to_pb).collect();
    out
}

/// A depot read from the wire. The position must be given (in any of the
/// coordinate systems a client may use).
pub fn depot_spec_from_pb(depot: &pb::Depot, row: usize) -> Result<DepotSpec, Rejection> {
    let at = super::position(depot.location.as_ref(), "location")
        .map_err(|rejection| Rejection::InvalidArgument(format!("depot row {row}: {rejection}")))?;
    Ok(DepotSpec {
        id: DepotId::new(depot.id.trim()),
        name: depot.name.clone(),
        at,
        area: Some(depot.area_id.trim()).filter(|area| !area.is_empty()).map(AreaId::new),
        keeper: depot.keeper.clone(),
    })
}

fn stock_row_to_pb(line: &StockLine) -> pb::StockRow {
    pb::StockRow {
        depot_id: line.depot.to_string(),
        item_id: line.item.to_string(),
        quantity: line.quantity,
        minimum: line.minimum,
    }
}

pub fn stock_row_from_pb(row: &pb::StockRow) -> StockLine {
    StockLine {
        depot: DepotId::new(row.depot_id.trim()),
        item: ItemId::new(row.item_id.trim()),
        quantity: row.quantity,
        minimum: row.minimum,
    }
}

fn unit_row_to_pb(unit: &UnitSpec) -> pb::UnitRow {
    pb::UnitRow {
        unit_id: unit.id.to_string(),
        item_id: unit.item.to_string(),
        kind: kind_to_pb(unit.kind).into(),
        depot_id: unit.depot.to_string(),
        capacity: unit.capacity,
        in_repair: unit.in_repair,
    }
}

pub fn unit_row_from_pb(row: &pb::UnitRow, index: usize) -> Result<UnitSpec, Rejection> {
    let kind = kind_from_pb(row.kind).map_err(|problem| Rejection::InvalidArgument(format!("unit row {index}: {problem}")))?;
    Ok(UnitSpec {
        id: UnitId::new(row.unit_id.trim()),
        item: ItemId::new(row.item_id.trim()),
        kind,
        depot: DepotId::new(row.depot_id.trim()),
        capacity: row.capacity,
        in_repair: row.in_repair,
    })
}

pub fn import_from_pb(request: &pb::ImportSuppliesRequest) -> Result<SupplyImport, Rejection> {
    Ok(SupplyImport {
        depots: request
            .depots
            .iter()
            .enumerate()
            .map(|(index, depot)| depot_spec_from_pb(depot, index + 1))
            .collect::<Result<_, _>>()?,
        stock: request.stock.iter().map(stock_row_from_pb).collect(),
        units: request
            .units
            .iter()
            .enumerate()
            .map(|(index, unit)| unit_row_from_pb(unit, index + 1))
            .collect::<Result<_, _>>()?,
    })
}

pub fn request_to_pb(request: &SupplyRequest) -> pb::SupplyRequest {
    pb::SupplyRequest {
        id: request.id.to_string(),
        incident_id: request.incident.to_string(),
        lines: lines_to_pb(&request.lines),
        status: request_status_to_pb(request.status).into(),
        requested_at_ms: request.requested_at.0,
        requested_by: request.requested_by.clone(),
        allocations: allocations_to_pb(&request.allocations),
        short: lines_to_pb(&request.short),
        carrier_agent_id: request.carrier.as_ref().map(ToString::to_string).unwrap_or_default(),
        dispatched_at_ms: request.dispatched_at.map_or(0, |at| at.0),
        delivered_at_ms: request.delivered_at.map_or(0, |at| at.0),
        settled_at_ms: request.settled_at.map_or(0, |at| at.0),
        consumed: lines_to_pb(&request.consumed),
        reason: request.reason.clone(),
    }
}

pub fn proposal_to_pb(request: &SupplyRequestId, proposal: &Proposal) -> pb::SupplyProposal {
    pb::SupplyProposal {
        request_id: request.to_string(),
        allocations: proposal.allocations.iter().map(|(allocation, travel_s)| allocation_to_pb(allocation, *travel_s)).collect(),
        short: lines_to_pb(&proposal.short),
    }
}

pub fn level_to_pb(level: &Level) -> pb::StockLevel {
    pb::StockLevel {
        item_id: level.item.to_string(),
        kind: level.kind.map_or(pb::ItemKind::Unspecified, kind_to_pb).into(),
        on_hand: level.on_hand,
        reserved: level.reserved,
        available: level.on_hand.saturating_sub(level.reserved),
        minimum: level.minimum,
        low_depots: level.low_depots,
    }
}

pub fn plan_supply_from_pb(supply: &pb::PlanSupply) -> PlanSupplyMove {
    PlanSupplyMove {
        item: ItemId::new(&supply.item_id),
        quantity: supply.quantity,
        to: supply.to_depot_ids.iter().map(DepotId::new).collect(),
    }
}

pub fn event_to_pb(event: &SupplyEvent) -> pb::event::Body {
    use pb::event as e;
    use pb::event::Body;
    match event {
        SupplyEvent::SuppliesImported { import } => Body::SuppliesImported(e::SuppliesImported {
            depots: import.depots.iter().map(depot_spec_to_pb).collect(),
            stock: import.stock.iter().map(stock_row_to_pb).collect(),
            units: import.units.iter().map(unit_row_to_pb).collect(),
        }),
        SupplyEvent::SuppliesRequested { request, incident, lines } => Body::SuppliesRequested(e::SuppliesRequested {
            request_id: request.to_string(),
            incident_id: incident.to_string(),
            lines: lines_to_pb(lines),
        }),
        SupplyEvent::SuppliesReserved { request, incident, allocations, short } => Body::SuppliesReserved(e::SuppliesReserved {
            request_id: request.to_string(),
            incident_id: incident.to_string(),
            allocations: allocations_to_pb(allocations),
            short: lines_to_pb(short),
        }),
        SupplyEvent::SuppliesDispatched { request, incident, carrier } => Body::SuppliesDispatched(e::SuppliesDispatched {
            request_id: request.to_string(),
            incident_id: incident.to_string(),
            carrier_agent_id: carrier.as_ref().map(ToString::to_string).unwrap_or_default(),
        }),
        SupplyEvent::SuppliesDelivered { request, incident } => {
            Body::SuppliesDelivered(e::SuppliesDelivered { request_id: request.to_string(), incident_id: incident.to_string() })
        }
        SupplyEvent::SuppliesReturned { request, incident, returned, consumed, in_repair } => {
            Body::SuppliesReturned(e::SuppliesReturned {
                request_id: request.to_string(),
                incident_id: incident.to_string(),
                returned: allocations_to_pb(returned),
                consumed: lines_to_pb(consumed),
                in_repair_unit_ids: in_repair.iter().map(ToString::to_string).collect(),
            })
        }
        SupplyEvent::SupplyRequestCancelled { request, incident, reason } => {
            Body::SupplyRequestCancelled(e::SupplyRequestCancelled {
                request_id: request.to_string(),
                incident_id: incident.to_string(),
                reason: reason.clone(),
            })
        }
        SupplyEvent::StockLow { depot, item, available, minimum } => Body::StockLow(e::StockLow {
            depot_id: depot.to_string(),
            item_id: item.to_string(),
            available: *available,
            minimum: *minimum,
        }),
        SupplyEvent::StockRestored { depot, item, available } => Body::StockRestored(e::StockRestored {
            depot_id: depot.to_string(),
            item_id: item.to_string(),
            available: *available,
        }),
        SupplyEvent::StockMoved { moved } => Body::StockMoved(e::StockMoved {
            from_depot_id: moved.from.to_string(),
            to_depot_id: moved.to.to_string(),
            item_id: moved.item.to_string(),
            quantity: moved.quantity,
            activation_id: moved.activation.as_ref().map(ToString::to_string).unwrap_or_default(),
        }),
        SupplyEvent::UnitStatusSet { unit, status } => {
            Body::UnitStatusSet(e::UnitStatusSet { unit_id: unit.to_string(), status: unit_status_to_pb(*status).into() })
        }
    }
}

fn optional(id: &str) -> Option<String> {
    Some(id).filter(|id| !id.is_empty()).map(str::to_string)
}

/// A supply event read back from the wire; `None` for a body that is not one.
pub fn event_from_pb(body: &pb::event::Body) -> Option<Result<SupplyEvent, String>> {
    use pb::event::Body;
    let request = |id: &str| SupplyRequestId::new(id);
    let event = match body {
        Body::SuppliesImported(imported) => {
            let depots = imported
                .depots
                .iter()
                .enumerate()
                .map(|(index, depot)| depot_spec_from_pb(depot, index + 1).map_err(|rejection| rejection.to_string()))
                .collect::<Result<_, _>>();
            let units = imported
                .units
                .iter()
                .enumerate()
                .map(|(index, unit)| unit_row_from_pb(unit, index + 1).map_err(|rejection| rejection.to_string()))
                .collect::<Result<_, _>>();
            match (depots, units) {
                (Ok(depots), Ok(units)) => Ok(SupplyEvent::SuppliesImported {
                    import: SupplyImport { depots, stock: imported.stock.iter().map(stock_row_from_pb).collect(), units },
                }),
                (Err(problem), _) | (_, Err(problem)) => Err(problem),
            }
        }
        Body::SuppliesRequested(requested) => Ok(SupplyEvent::SuppliesRequested {
            request: request(&requested.request_id),
            incident: IncidentId::new(&requested.incident_id),
            lines: lines_from_pb(&requested.lines),
        }),
        Body::SuppliesReserved(reserved) => Ok(SupplyEvent::SuppliesReserved {
            request: request(&reserved.request_id),
            incident: IncidentId::new(&reserved.incident_id),
            allocations: allocations_from_pb(&reserved.allocations),
            short: lines_from_pb(&reserved.short),
        }),
        Body::SuppliesDispatched(dispatched) => Ok(SupplyEvent::SuppliesDispatched {
            request: request(&dispatched.request_id),
            incident: IncidentId::new(&dispatched.incident_id),
            carrier: optional(&dispatched.carrier_agent_id).map(AgentId::new),
        }),
        Body::SuppliesDelivered(delivered) => Ok(SupplyEvent::SuppliesDelivered {
            request: request(&delivered.request_id),
            incident: IncidentId::new(&delivered.incident_id),
        }),
        Body::SuppliesReturned(returned) => Ok(SupplyEvent::SuppliesReturned {
            request: request(&returned.request_id),
            incident: IncidentId::new(&returned.incident_id),
            returned: allocations_from_pb(&returned.returned),
            consumed: lines_from_pb(&returned.consumed),
            in_repair: returned.in_repair_unit_ids.iter().map(UnitId::new).collect(),
        }),
        Body::SupplyRequestCancelled(cancelled) => Ok(SupplyEvent::SupplyRequestCancelled {
            request: request(&cancelled.request_id),
            incident: IncidentId::new(&cancelled.incident_id),
            reason: cancelled.reason.clone(),
        }),
        Body::StockLow(low) => Ok(SupplyEvent::StockLow {
            depot: DepotId::new(&low.depot_id),
            item: ItemId::new(&low.item_id),
            available: low.available,
            minimum: low.minimum,
        }),
        Body::StockRestored(restored) => Ok(SupplyEvent::StockRestored {
            depot: DepotId::new(&restored.depot_id),
            item: ItemId::new(&restored.item_id),
            available: restored.available,
        }),
        Body::StockMoved(moved) => Ok(SupplyEvent::StockMoved {
            moved: StockMove {
                from: DepotId::new(&moved.from_depot_id),
                to: DepotId::new(&moved.to_depot_id),
                item: ItemId::new(&moved.item_id),
                quantity: moved.quantity,
                activation: optional(&moved.activation_id).map(ActivationId::new),
            },
        }),
        Body::UnitStatusSet(set) => {
            unit_status_from_pb(set.status).map(|status| SupplyEvent::UnitStatusSet { unit: UnitId::new(&set.unit_id), status })
        }
        _ => return None,
    };
    Some(event)
}
