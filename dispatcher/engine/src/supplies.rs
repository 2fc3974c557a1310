//! Supplies and equipment (应急物资): depots holding typed items, and the
//! requests incidents make of them.
//!
//! Consumables (sandbags, life jackets, water) are counted by quantity per
//! depot; equipment (pump P-07) and vehicles (boat B-02, with a capacity)
//! are counted by unit, each unit with a status. A request names items and
//! quantities; the proposal takes them from the depots nearest the incident
//! by travel time, splitting across depots when one is short; once an
//! operator confirms, the items are reserved, then dispatched (with the
//! person carrying them, if any), delivered, and consumed or returned.
//!
//! Two rules always hold (checked by `engine::invariants`): stock never
//! goes below zero (nothing is reserved beyond what a depot holds), and a
//! unit is never held by two requests. The engine's part (deciding and
//! folding the events) is in `engine::supplies`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{ActivationId, AgentId, AreaId, IncidentId, Millis};
use crate::spatial::Position;

crate::ids::string_id!(
    /// A depot (物资储备点), e.g. `riverside-1`.
    DepotId
);
crate::ids::string_id!(
    /// A type of item, e.g. `sandbag`, `pump`, `boat`.
    ItemId
);
crate::ids::string_id!(
    /// One piece of equipment or one vehicle, e.g. `P-07`.
    UnitId
);
crate::ids::string_id!(
    /// One request of an incident for supplies, e.g. `sup-000001`.
    SupplyRequestId
);

/// How an item is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// By quantity (sandbags, life jackets, bottles of water).
    Consumable,
    /// By unit, each with a status (pumps, generators).
    Equipment,
    /// By unit, each with a status and a capacity (boats, trucks).
    Vehicle,
}

impl ItemKind {
    pub fn name(self) -> &'static str {
        match self {
            ItemKind::Consumable => "consumable",
            ItemKind::Equipment => "equipment",
            ItemKind::Vehicle => "vehicle",
        }
    }

    pub fn parse(text: &str) -> Option<ItemKind> {
        match text.trim().to_ascii_lowercase().as_str() {
            "consumable" => Some(ItemKind::Consumable),
            "equipment" => Some(ItemKind::Equipment),
            "vehicle" => Some(ItemKind::Vehicle),
            _ => None,
        }
    }

    pub fn by_unit(self) -> bool {
        self != ItemKind::Consumable
    }
}

/// Where a unit of equipment or a vehicle is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    #[default]
    Available,
    /// Held for a confirmed request, still at its depot.
    Reserved,
    /// On its way to, or at, an incident.
    Dispatched,
    InRepair,
}

impl UnitStatus {
    pub fn name(self) -> &'static str {
        match self {
            UnitStatus::Available => "available",
            UnitStatus::Reserved => "reserved",
            UnitStatus::Dispatched => "dispatched",
            UnitStatus::InRepair => "in_repair",
        }
    }

    pub fn parse(text: &str) -> Option<UnitStatus> {
        match text.trim().to_ascii_lowercase().replace([' ', '-'], "_").as_str() {
            "available" => Some(UnitStatus::Available),
            "reserved" => Some(UnitStatus::Reserved),
            "dispatched" => Some(UnitStatus::Dispatched),
            "in_repair" => Some(UnitStatus::InRepair),
            _ => None,
        }
    }
}

/// A depot as imported: where it is, the area it serves and who keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepotSpec {
    pub id: DepotId,
    pub name: String,
    pub at: Position,
    /// The area it belongs to (the deepest area at its position when the
    /// import gives none).
    pub area: Option<AreaId>,
    /// Who keeps it: a name or a roster id (never a phone number).
    pub keeper: String,
}

/// A consumable's stock at a depot, as imported: the quantity held and the
/// minimum below which a low-stock alert is raised (0: no alert).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLine {
    pub depot: DepotId,
    pub item: ItemId,
    pub quantity: u64,
    pub minimum: u64,
}

/// A unit of equipment or a vehicle, as imported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitSpec {
    pub id: UnitId,
    pub item: ItemId,
    /// Equipment or vehicle.
    pub kind: ItemKind,
    pub depot: DepotId,
    /// A vehicle's capacity (people or load, as the item means it); 0 for equipment.
    pub capacity: u32,
    /// Imported as in repair (otherwise available).
    pub in_repair: bool,
}

/// Depots, stock and units to add or change (a CSV import, an API call).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SupplyImport {
    pub depots: Vec<DepotSpec>,
    pub stock: Vec<StockLine>,
    pub units: Vec<UnitSpec>,
}

/// An item and how many of it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SupplyLine {
    pub item: ItemId,
    pub quantity: u64,
}

/// Part of a request taken from one depot: a quantity of a consumable, or
/// these units (then `quantity` is their number).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Allocation {
    pub depot: DepotId,
    pub item: ItemId,
    pub quantity: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<UnitId>,
}

/// What the dispatcher proposes for a request: allocations nearest first,
/// with the travel time from each depot, and what no depot has.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Proposal {
    pub allocations: Vec<(Allocation, f64)>,
    pub short: Vec<SupplyLine>,
}

/// A consumable held at a depot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stock {
    pub on_hand: u64,
    /// Held for confirmed requests (never more than `on_hand`).
    pub reserved: u64,
    pub minimum: u64,
    /// A low-stock alert is out (raised, not yet restored).
    #[serde(default)]
    pub low: bool,
}

impl Stock {
    pub fn available(&self) -> u64 {
        self.on_hand.saturating_sub(self.reserved)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Depot {
    pub spec: DepotSpec,
    pub stock: BTreeMap<ItemId, Stock>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    pub spec: UnitSpec,
    pub status: UnitStatus,
    /// The request holding it (reserved or dispatched).
    pub held_by: Option<SupplyRequestId>,
}

/// Where a request is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Made; waiting for an operator to confirm a proposal.
    Requested,
    Reserved,
    Dispatched,
    Delivered,
    /// Settled: units back at their depots, consumables returned or used.
    Returned,
    Cancelled,
}

impl RequestStatus {
    pub fn name(self) -> &'static str {
        match self {
            RequestStatus::Requested => "requested",
            RequestStatus::Reserved => "reserved",
            RequestStatus::Dispatched => "dispatched",
            RequestStatus::Delivered => "delivered",
            RequestStatus::Returned => "returned",
            RequestStatus::Cancelled => "cancelled",
        }
    }

    /// Holding stock at a depot (reserved, not yet gone).
    pub fn holds_reservation(self) -> bool {
        self == RequestStatus::Reserved
    }

    /// Its items are out of their depots.
    pub fn out(self) -> bool {
        matches!(self, RequestStatus::Dispatched | RequestStatus::Delivered)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SupplyRequest {
    pub id: SupplyRequestId,
    pub incident: IncidentId,
    pub lines: Vec<SupplyLine>,
    pub status: RequestStatus,
    pub requested_at: Millis,
    pub requested_by: String,
    pub allocations: Vec<Allocation>,
    /// What no depot had when it was confirmed.
    pub short: Vec<SupplyLine>,
    pub carrier: Option<AgentId>,
    pub dispatched_at: Option<Millis>,
    pub delivered_at: Option<Millis>,
    pub settled_at: Option<Millis>,
    /// Consumables used up (not returned).
    pub consumed: Vec<SupplyLine>,
    pub reason: String,
}

impl SupplyRequest {
    pub fn is_open(&self) -> bool {
        !matches!(self.status, RequestStatus::Returned | RequestStatus::Cancelled)
    }

    /// Units this request holds now.
    pub fn held_units(&self) -> impl Iterator<Item = &UnitId> {
        let holding = self.status.holds_reservation() || self.status.out();
        self.allocations.iter().filter(move |_| holding).flat_map(|allocation| allocation.units.iter())
    }
}

/// A plan's supplies moved when it activates: `quantity` of a consumable,
/// split evenly over the `to` depots, taken from the nearest other depots.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanSupplyMove {
    pub item: ItemId,
    pub quantity: u64,
    pub to: Vec<DepotId>,
}

/// A consumable moved between depots (a plan pre-positioning, or by hand).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StockMove {
    pub from: DepotId,
    pub to: DepotId,
    pub item: ItemId,
    pub quantity: u64,
    /// The plan activation that moved it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<ActivationId>,
}

/// The supplies part of the durable state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SupplyState {
    /// How each item is counted, fixed by its first import.
    pub items: BTreeMap<ItemId, ItemKind>,
    pub depots: BTreeMap<DepotId, Depot>,
    pub units: BTreeMap<UnitId, Unit>,
    pub requests: BTreeMap<SupplyRequestId, SupplyRequest>,
    /// Requests made so far: the next one's number.
    pub requests_made: u64,
}

/// An item's total over an area's depots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Level {
    pub item: ItemId,
    pub kind: Option<ItemKind>,
    pub on_hand: u64,
    pub reserved: u64,
    pub minimum: u64,
    /// Depots of the area below their minimum of this item.
    pub low_depots: u32,
}

impl SupplyState {
    /// Units of `item` at `depot` free to reserve, in id order.
    pub fn available_units<'a>(&'a self, depot: &'a DepotId, item: &'a ItemId) -> impl Iterator<Item = &'a Unit> + 'a {
        self.units
            .values()
            .filter(move |unit| &unit.spec.depot == depot && &unit.spec.item == item && unit.status == UnitStatus::Available)
    }

    /// How many of `item` `depot` could give now.
    pub fn available_at(&self, depot: &DepotId, item: &ItemId) -> u64 {
        match self.items.get(item) {
            Some(kind) if kind.by_unit() => self.available_units(depot, item).count() as u64,
            _ => self.depots.get(depot).and_then(|record| record.stock.get(item)).map_or(0, Stock::available),
        }
    }

    /// The proposal for `lines` at `at`: each item from the depots with
    /// travel time `travel_s(depot position)` ascending, splitting when the
    /// nearest is short. Ties go to the depot id, so it is deterministic.
    pub fn propose(&self, lines: &[SupplyLine], travel_s: impl Fn(Position) -> f64) -> Proposal {
        let mut by_time: Vec<(f64, &DepotId)> =
            self.depots.values().map(|depot| (travel_s(depot.spec.at), &depot.spec.id)).collect();
        by_time.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        let mut proposal = Proposal::default();
        for line in lines {
            let mut remaining = line.quantity;
            let by_unit = self.items.get(&line.item).is_some_and(|kind| kind.by_unit());
            // The item's free units by depot, found in one pass over the
            // units rather than one per depot.
            let mut free_units: BTreeMap<&DepotId, Vec<&UnitId>> = BTreeMap::new();
            if by_unit {
                for unit in self.units.values() {
                    if unit.spec.item == line.item && unit.status == UnitStatus::Available {
                        free_units.entry(&unit.spec.depot).or_default().push(&unit.spec.id);
                    }
                }
            }
            for (seconds, depot) in &by_time {
                if remaining == 0 {
                    break;
                }
                let allocation = if by_unit {
                    let units: Vec<UnitId> = free_units
                        .get(*depot)
                        .into_iter()
                        .flatten()
                        .take(remaining as usize)
                        .map(|unit| (*unit).clone())
                        .collect();
                    Allocation { depot: (*depot).clone(), item: line.item.clone(), quantity: units.len() as u64, units }
                } else {
                    let quantity = self.available_at(depot, &line.item).min(remaining);
                    Allocation { depot: (*depot).clone(), item: line.item.clone(), quantity, units: Vec::new() }
                };
                if allocation.quantity == 0 {
                    continue;
                }
                remaining -= allocation.quantity;
                proposal.allocations.push((allocation, *seconds));
            }
            if remaining > 0 {
                proposal.short.push(SupplyLine { item: line.item.clone(), quantity: remaining });
            }
        }
        proposal
    }

    /// Each item's total over the depots `in_area` says are in the area.
    pub fn levels(&self, in_area: impl Fn(&Depot) -> bool) -> Vec<Level> {
        let mut levels: BTreeMap<&ItemId, Level> = BTreeMap::new();
        for depot in self.depots.values().filter(|depot| in_area(depot)) {
            for (item, stock) in &depot.stock {
                let level = levels.entry(item).or_insert_with(|| Level { item: item.clone(), ..Level::default() });
                level.on_hand += stock.on_hand;
                level.reserved += stock.reserved;
                level.minimum += stock.minimum;
                level.low_depots += u32::from(stock.low);
            }
        }
        for unit in self.units.values() {
            let Some(depot) = self.depots.get(&unit.spec.depot).filter(|depot| in_area(depot)) else { continue };
            let _ = depot;
            let level =
                levels.entry(&unit.spec.item).or_insert_with(|| Level { item: unit.spec.item.clone(), ..Level::default() });
            match unit.status {
                UnitStatus::Available => level.on_hand += 1,
                UnitStatus::Reserved => {
                    level.on_hand += 1;
                    level.reserved += 1;
                }
                UnitStatus::Dispatched | UnitStatus::InRepair => {}
            }
        }
        levels
            .into_values()
            .map(|mut level| {
                level.kind = self.items.get(&level.item).copied();
                level
            })
            .collect()
    }
}

/// The supply commands (`Command::Supplies`).
#[derive(Clone, Debug, PartialEq)]
pub enum SupplyCommand {
    /// Adds or changes depots, consumables' stock and units.
    Import(SupplyImport),
    /// An incident asks for items. With `id` (the caller's), a retry that
    /// asks the same again changes nothing: the request made stands.
    Request {
        id: Option<SupplyRequestId>,
        incident: IncidentId,
        lines: Vec<SupplyLine>,
    },
    /// An operator confirms a request: `allocations` as proposed to them, or
    /// `None` for the proposal of now. The items are reserved.
    Confirm {
        request: SupplyRequestId,
        allocations: Option<Vec<Allocation>>,
    },
    Dispatch {
        request: SupplyRequestId,
        carrier: Option<AgentId>,
    },
    Deliver {
        request: SupplyRequestId,
    },
    /// Settles a delivered (or dispatched) request: units go back to their
    /// depots (`in_repair` ones for repair), `returned` consumables go back
    /// in stock, the rest counts as used.
    Return {
        request: SupplyRequestId,
        returned: Vec<SupplyLine>,
        in_repair: Vec<UnitId>,
    },
    Cancel {
        request: SupplyRequestId,
        reason: String,
    },
    /// Takes a unit out for repair or puts it back in service.
    SetUnitStatus {
        unit: UnitId,
        status: UnitStatus,
    },
    MoveStock {
        from: DepotId,
        to: DepotId,
        item: ItemId,
        quantity: u64,
    },
}

/// The supply events (Event.body tags 100 to 119 on the wire). Every
/// request event names its incident, so watchers can filter on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "supply", rename_all = "snake_case")]
pub enum SupplyEvent {
    /// Depots, stock and units added or changed; a depot's area is the one
    /// given, else the deepest at its position.
    SuppliesImported {
        import: SupplyImport,
    },
    SuppliesRequested {
        request: SupplyRequestId,
        incident: IncidentId,
        lines: Vec<SupplyLine>,
    },
    /// An operator confirmed: these are held at their depots; `short` is
    /// what no depot had.
    SuppliesReserved {
        request: SupplyRequestId,
        incident: IncidentId,
        allocations: Vec<Allocation>,
        short: Vec<SupplyLine>,
    },
    SuppliesDispatched {
        request: SupplyRequestId,
        incident: IncidentId,
        carrier: Option<AgentId>,
    },
    SuppliesDelivered {
        request: SupplyRequestId,
        incident: IncidentId,
    },
    /// Settled: units back at their depots (those in `in_repair` for
    /// repair), consumables in `returned` back in stock, the rest used up.
    SuppliesReturned {
        request: SupplyRequestId,
        incident: IncidentId,
        returned: Vec<Allocation>,
        consumed: Vec<SupplyLine>,
        in_repair: Vec<UnitId>,
    },
    /// Cancelled by an operator, or because its incident ended before the
    /// items left: what it held is free again.
    SupplyRequestCancelled {
        request: SupplyRequestId,
        incident: IncidentId,
        reason: String,
    },
    /// A depot's available stock of an item fell below its minimum.
    StockLow {
        depot: DepotId,
        item: ItemId,
        available: u64,
        minimum: u64,
    },
    StockRestored {
        depot: DepotId,
        item: ItemId,
        available: u64,
    },
    StockMoved {
        moved: StockMove,
    },
    /// A unit taken out for repair, or back in service.
    UnitStatusSet {
        unit: UnitId,
        status: UnitStatus,
    },
}

impl SupplyEvent {
    pub fn name(&self) -> &'static str {
        match self {
            SupplyEvent::SuppliesImported { .. } => "supplies_imported",
            SupplyEvent::SuppliesRequested { .. } => "supplies_requested",
            SupplyEvent::SuppliesReserved { .. } => "supplies_reserved",
            SupplyEvent::SuppliesDispatched { .. } => "supplies_dispatched",
            SupplyEvent::SuppliesDelivered { .. } => "supplies_delivered",
            SupplyEvent::SuppliesReturned { .. } => "supplies_returned",
            SupplyEvent::SupplyRequestCancelled { .. } => "supply_request_cancelled",
            SupplyEvent::StockLow { .. } => "stock_low",
            SupplyEvent::StockRestored { .. } => "stock_restored",
            SupplyEvent::StockMoved { .. } => "stock_moved",
            SupplyEvent::UnitStatusSet { .. } => "unit_status_set",
        }
    }

    pub fn incident_id(&self) -> Option<&IncidentId> {
        match self {
            SupplyEvent::SuppliesRequested { incident, .. }
            | SupplyEvent::SuppliesReserved { incident, .. }
            | SupplyEvent::SuppliesDispatched { incident, .. }
            | SupplyEvent::SuppliesDelivered { incident, .. }
            | SupplyEvent::SuppliesReturned { incident, .. }
            | SupplyEvent::SupplyRequestCancelled { incident, .. } => Some(incident),
            _ => None,
        }
    }

    pub fn agent_id(&self) -> Option<&AgentId> {
        match self {
            SupplyEvent::SuppliesDispatched { carrier, .. } => carrier.as_ref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depot(id: &str, lon: f64) -> Depot {
        Depot {
            spec: DepotSpec {
                id: DepotId::new(id),
                name: id.to_string(),
                at: Position { lon, lat: 30.0 },
                area: None,
                keeper: String::new(),
            },
            stock: BTreeMap::new(),
        }
    }

    fn with_sandbags(mut depot: Depot, quantity: u64) -> Depot {
        depot.stock.insert(ItemId::new("sandbag"), Stock { on_hand: quantity, ..Stock::default() });
        depot
    }

    #[test]
    fn the_nearest_depot_gives_first_and_the_next_makes_up_its_shortfall() {
        let mut state = SupplyState::default();
        state.items.insert(ItemId::new("sandbag"), ItemKind::Consumable);
        for depot in [with_sandbags(depot("far", 120.2), 1000), with_sandbags(depot("near", 120.01), 300), depot("empty", 120.0)]
        {
            state.depots.insert(depot.spec.id.clone(), depot);
        }
        let incident = Position { lon: 120.0, lat: 30.0 };
        let lines = [SupplyLine { item: ItemId::new("sandbag"), quantity: 500 }];
        let proposal = state.propose(&lines, |at| at.distance_m(incident) / 8.0);
        let taken: Vec<(&str, u64)> =
            proposal.allocations.iter().map(|(allocation, _)| (allocation.depot.as_str(), allocation.quantity)).collect();
        assert_eq!(taken, [("near", 300), ("far", 200)]);
        assert!(proposal.short.is_empty());
        let too_many = [SupplyLine { item: ItemId::new("sandbag"), quantity: 1500 }];
        let proposal = state.propose(&too_many, |at| at.distance_m(incident) / 8.0);
        assert_eq!(proposal.short, [SupplyLine { item: ItemId::new("sandbag"), quantity: 200 }]);
    }
}
