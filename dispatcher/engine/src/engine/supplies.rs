//! Supplies in the engine: deciding supply commands into events, folding
//! the events into [`SupplyState`], and what follows other changes (an
//! ended incident's reservations released, a plan's supplies pre-positioned,
//! low-stock alerts). The domain types are in `crate::supplies`.

use std::collections::{BTreeMap, BTreeSet};

use super::decide::check_text;
use super::{Engine, Rejection};
use crate::event::{DISPATCHER, Event, EventKind};
use crate::ids::{ActivationId, AreaId, IncidentId, Millis, check_id, quote};
use crate::plans::PlanSpec;
use crate::spatial::Position;
use crate::supplies::{
    Allocation, Depot, DepotId, ItemId, ItemKind, Proposal, RequestStatus, Stock, StockMove, SupplyCommand, SupplyEvent,
    SupplyImport, SupplyLine, SupplyRequest, SupplyRequestId, SupplyState, Unit, UnitId, UnitStatus,
};

/// Rows one import may hold, of each kind.
pub const MAX_IMPORT_ROWS: usize = 20_000;
/// Lines one request may hold.
pub const MAX_REQUEST_LINES: usize = 50;
/// The most of one item one request may ask for.
pub const MAX_QUANTITY: u64 = 1_000_000;

fn invalid(message: String) -> Rejection {
    Rejection::InvalidArgument(message)
}

fn check_quantity(what: &str, quantity: u64) -> Result<(), Rejection> {
    if quantity == 0 || quantity > MAX_QUANTITY {
        return Err(invalid(format!("{what}: quantity {quantity} is out of range; give 1 to {MAX_QUANTITY}")));
    }
    Ok(())
}

impl Engine {
    pub fn supplies(&self) -> &SupplyState {
        &self.state.supplies
    }

    /// Seconds from `at` to the incident's place by car (supplies travel by vehicle).
    pub fn supply_travel_s(&self, from: Position, to: Position) -> f64 {
        from.distance_m(to) / self.policy.speeds.car_mps
    }

    /// What the dispatcher proposes for a request now.
    pub fn supply_proposal(&self, request: &SupplyRequestId) -> Result<Proposal, Rejection> {
        let record = self.supply_request(request)?;
        let at =
            self.state.incidents.get(&record.incident).map(|incident| incident.spec.at).ok_or_else(|| {
                Rejection::NotFound(format!("incident {} of request {request} does not exist", record.incident))
            })?;
        Ok(self.state.supplies.propose(&record.lines, |depot| self.supply_travel_s(depot, at)))
    }

    pub fn supply_request(&self, request: &SupplyRequestId) -> Result<&SupplyRequest, Rejection> {
        self.state.supplies.requests.get(request).ok_or_else(|| {
            Rejection::NotFound(format!(
                "supply request {} does not exist; list the incident's requests",
                quote(request.as_str())
            ))
        })
    }

    /// Whether a depot lies in `area` (its own area or one below it).
    pub fn depot_in_area(&self, depot: &Depot, area: &AreaId) -> bool {
        let Some(level) = self.state.areas.get(area).map(|spec| spec.level) else { return false };
        let Some(own) = &depot.spec.area else { return false };
        own == area || self.state.areas.area_placement(own).is_some_and(|placement| placement.within(level, area))
    }

    pub(super) fn decide_supplies(&self, command: &SupplyCommand) -> Result<Vec<EventKind>, Rejection> {
        let event = match command {
            SupplyCommand::Import(import) => self.decide_supply_import(import)?,
            SupplyCommand::Request { id, incident, lines } => match self.decide_supply_request(id.as_ref(), incident, lines)? {
                Some(event) => event,
                None => return Ok(Vec::new()),
            },
            SupplyCommand::Confirm { request, allocations } => self.decide_confirm(request, allocations.as_deref())?,
            SupplyCommand::Dispatch { request, carrier } => {
                let record = self.request_in(request, &[RequestStatus::Reserved], "dispatched")?;
                if let Some(carrier) = carrier
                    && !self.state.agents.contains_key(carrier)
                {
                    return Err(Rejection::NotFound(format!(
                        "agent {} (the carrier) is not on the roster; check the id",
                        quote(carrier.as_str())
                    )));
                }
                SupplyEvent::SuppliesDispatched {
                    request: request.clone(),
                    incident: record.incident.clone(),
                    carrier: carrier.clone(),
                }
            }
            SupplyCommand::Deliver { request } => {
                let record = self.request_in(request, &[RequestStatus::Dispatched], "delivered")?;
                SupplyEvent::SuppliesDelivered { request: request.clone(), incident: record.incident.clone() }
            }
            SupplyCommand::Return { request, returned, in_repair } => self.decide_return(request, returned, in_repair)?,
            SupplyCommand::Cancel { request, reason } => {
                check_text("the reason", reason, false)?;
                let record = self.request_in(request, &[RequestStatus::Requested, RequestStatus::Reserved], "cancelled")?;
                SupplyEvent::SupplyRequestCancelled {
                    request: request.clone(),
                    incident: record.incident.clone(),
                    reason: reason.trim().to_string(),
                }
            }
            SupplyCommand::SetUnitStatus { unit, status } => {
                let Some(record) = self.state.supplies.units.get(unit) else {
                    return Err(Rejection::NotFound(format!(
                        "unit {} does not exist; list a depot's stock",
                        quote(unit.as_str())
                    )));
                };
                if !matches!(status, UnitStatus::Available | UnitStatus::InRepair) {
                    return Err(invalid(format!(
                        "a unit is set {} only by a request; set it available or in_repair",
                        status.name()
                    )));
                }
                if let Some(held_by) = &record.held_by {
                    return Err(Rejection::FailedPrecondition(format!(
                        "unit {unit} is {} for request {held_by}; settle or cancel that request first",
                        record.status.name()
                    )));
                }
                if record.status == *status {
                    return Ok(Vec::new());
                }
                SupplyEvent::UnitStatusSet { unit: unit.clone(), status: *status }
            }
            SupplyCommand::MoveStock { from, to, item, quantity } => {
                check_quantity(&format!("moving {item}"), *quantity)?;
                self.existing_depot(to)?;
                if from == to {
                    return Err(invalid(format!("stock is moved from depot {from} to itself; name another depot")));
                }
                if self.state.supplies.items.get(item).is_some_and(|kind| kind.by_unit()) {
                    return Err(invalid(format!("{item} is counted by unit; units are not moved as stock")));
                }
                let available = self.existing_depot(from)?.stock.get(item).map_or(0, Stock::available);
                if available < *quantity {
                    return Err(Rejection::FailedPrecondition(format!(
                        "depot {from} has {available} {item} free to move, fewer than {quantity}; nothing was moved"
                    )));
                }
                SupplyEvent::StockMoved {
                    moved: StockMove {
                        from: from.clone(),
                        to: to.clone(),
                        item: item.clone(),
                        quantity: *quantity,
                        activation: None,
                    },
                }
            }
        };
        Ok(vec![EventKind::Supplies(event)])
    }

    fn existing_depot(&self, depot: &DepotId) -> Result<&Depot, Rejection> {
        self.state.supplies.depots.get(depot).ok_or_else(|| {
            Rejection::NotFound(format!("depot {} does not exist; list depots to find its id", quote(depot.as_str())))
        })
    }

    fn request_in(
        &self,
        request: &SupplyRequestId,
        allowed: &[RequestStatus],
        becoming: &str,
    ) -> Result<&SupplyRequest, Rejection> {
        let record = self.supply_request(request)?;
        if !allowed.contains(&record.status) {
            let allowed: Vec<&str> = allowed.iter().map(|status| status.name()).collect();
            return Err(Rejection::FailedPrecondition(format!(
                "supply request {request} is {}; only a request {} can be {becoming}",
                record.status.name(),
                allowed.join(" or ")
            )));
        }
        Ok(record)
    }

    fn decide_supply_import(&self, import: &SupplyImport) -> Result<SupplyEvent, Rejection> {
        let supplies = &self.state.supplies;
        for (what, rows) in [("depot", import.depots.len()), ("stock", import.stock.len()), ("unit", import.units.len())] {
            if rows > MAX_IMPORT_ROWS {
                return Err(invalid(format!("{rows} {what} rows given; at most {MAX_IMPORT_ROWS} per import: split the file")));
            }
        }
        if import.depots.is_empty() && import.stock.is_empty() && import.units.is_empty() {
            return Err(invalid("the import is empty; give depots, stock or units".to_string()));
        }
        let mut depots = Vec::with_capacity(import.depots.len());
        let mut new_depots = BTreeSet::new();
        for (index, depot) in import.depots.iter().enumerate() {
            let row = |message: String| invalid(format!("depot row {}: {message}", index + 1));
            check_id("depot id", depot.id.as_str()).map_err(row)?;
            if !new_depots.insert(&depot.id) {
                return Err(row(format!("depot {} is given twice", depot.id)));
            }
            if depot.name.trim().is_empty() || depot.name.chars().count() > 100 {
                return Err(row("the name is empty or longer than 100 characters".to_string()));
            }
            if depot.keeper.chars().count() > 100 || depot.keeper.chars().any(char::is_control) {
                return Err(row("the keeper is longer than 100 characters or has control characters".to_string()));
            }
            let at = Position::checked(depot.at.lon, depot.at.lat).map_err(row)?;
            let area = match &depot.area {
                Some(area) if !self.state.areas.contains(area) => {
                    return Err(row(format!("area {} is not on the map; list areas to find its id", quote(area.as_str()))));
                }
                Some(area) => Some(area.clone()),
                None => {
                    let placement = self.state.areas.place(at);
                    placement.deepest().and_then(|level| placement.at(level).cloned())
                }
            };
            let mut depot = depot.clone();
            depot.at = at;
            depot.area = area;
            depot.name = depot.name.trim().to_string();
            depot.keeper = depot.keeper.trim().to_string();
            depots.push(depot);
        }
        let depot_known = |depot: &DepotId| new_depots.contains(depot) || supplies.depots.contains_key(depot);
        let mut kinds: BTreeMap<&ItemId, ItemKind> = BTreeMap::new();
        let kind_of = |kinds: &BTreeMap<&ItemId, ItemKind>, item: &ItemId, kind: ItemKind| -> Result<(), String> {
            let known = supplies.items.get(item).copied().or_else(|| kinds.get(item).copied());
            match known {
                Some(known) if known != kind => Err(format!("{item} is counted as {}, not as {}", known.name(), kind.name())),
                _ => Ok(()),
            }
        };
        let mut stock_seen = BTreeSet::new();
        for (index, line) in import.stock.iter().enumerate() {
            let row = |message: String| invalid(format!("stock row {}: {message}", index + 1));
            check_id("item id", line.item.as_str()).map_err(row)?;
            if !depot_known(&line.depot) {
                return Err(row(format!("depot {} is neither known nor in the import", quote(line.depot.as_str()))));
            }
            if !stock_seen.insert((&line.depot, &line.item)) {
                return Err(row(format!("{} at depot {} is given twice", line.item, line.depot)));
            }
            if line.quantity > MAX_QUANTITY * 100 || line.minimum > MAX_QUANTITY * 100 {
                return Err(row(format!("quantities are at most {}", MAX_QUANTITY * 100)));
            }
            kind_of(&kinds, &line.item, ItemKind::Consumable).map_err(row)?;
            let reserved =
                supplies.depots.get(&line.depot).and_then(|depot| depot.stock.get(&line.item)).map_or(0, |stock| stock.reserved);
            if line.quantity < reserved {
                return Err(Rejection::FailedPrecondition(format!(
                    "stock row {}: depot {} has {reserved} {} reserved for requests; a quantity of {} would leave less \
                     than that (stock cannot go below zero): settle or cancel those requests first",
                    index + 1,
                    line.depot,
                    line.item,
                    line.quantity
                )));
            }
            kinds.insert(&line.item, ItemKind::Consumable);
        }
        let mut units_seen = BTreeSet::new();
        for (index, unit) in import.units.iter().enumerate() {
            let row = |message: String| invalid(format!("unit row {}: {message}", index + 1));
            check_id("unit id", unit.id.as_str()).map_err(row)?;
            check_id("item id", unit.item.as_str()).map_err(row)?;
            if !units_seen.insert(&unit.id) {
                return Err(row(format!("unit {} is given twice", unit.id)));
            }
            if !unit.kind.by_unit() {
                return Err(row(format!("unit {} is a consumable; units are equipment or vehicles", unit.id)));
            }
            if !depot_known(&unit.depot) {
                return Err(row(format!("depot {} is neither known nor in the import", quote(unit.depot.as_str()))));
            }
            kind_of(&kinds, &unit.item, unit.kind).map_err(row)?;
            kinds.insert(&unit.item, unit.kind);
            if let Some(existing) = supplies.units.get(&unit.id)
                && let Some(held_by) = &existing.held_by
            {
                return Err(Rejection::FailedPrecondition(format!(
                    "unit row {}: unit {} is {} for request {held_by}; it cannot be changed until that request is settled",
                    index + 1,
                    unit.id,
                    existing.status.name()
                )));
            }
        }
        Ok(SupplyEvent::SuppliesImported {
            import: SupplyImport { depots, stock: import.stock.clone(), units: import.units.clone() },
        })
    }

    /// A new request, or `None` for a retry of one made under the same id.
    fn decide_supply_request(
        &self,
        id: Option<&SupplyRequestId>,
        incident: &IncidentId,
        lines: &[SupplyLine],
    ) -> Result<Option<SupplyEvent>, Rejection> {
        if let Some(id) = id {
            check_id("supply request id", id.as_str()).map_err(invalid)?;
            if let Some(made) = self.state.supplies.requests.get(id) {
                let (mut asked, mut kept) = (lines.to_vec(), made.lines.clone());
                asked.sort();
                kept.sort();
                if &made.incident == incident && asked == kept {
                    return Ok(None);
                }
                return Err(Rejection::AlreadyExists(format!(
                    "supply request {id} was made before for other items or another incident; give a new id for a new \
                     request"
                )));
            }
        }
        let Some(record) = self.state.incidents.get(incident) else {
            return Err(Rejection::NotFound(format!("incident {} does not exist; check the id", quote(incident.as_str()))));
        };
        if !record.is_open() {
            return Err(Rejection::FailedPrecondition(format!("incident {incident} has ended; supplies go to open incidents")));
        }
        if lines.is_empty() || lines.len() > MAX_REQUEST_LINES {
            return Err(invalid(format!("a request names 1 to {MAX_REQUEST_LINES} items; {} given", lines.len())));
        }
        let mut seen = BTreeSet::new();
        for line in lines {
            if !self.state.supplies.items.contains_key(&line.item) {
                return Err(Rejection::InvalidField {
                    field: "lines",
                    message: format!(
                        "item {} is in no depot's stock; list stock levels to see the items",
                        quote(line.item.as_str())
                    ),
                });
            }
            if !seen.insert(&line.item) {
                return Err(invalid(format!("item {} is asked for twice; give it once with the total", line.item)));
            }
            check_quantity(&format!("item {}", line.item), line.quantity)?;
        }
        let request = match id {
            Some(id) => id.clone(),
            None => self.next_supply_request_id(),
        };
        Ok(Some(SupplyEvent::SuppliesRequested { request, incident: incident.clone(), lines: lines.to_vec() }))
    }

    /// The next numbered id no request holds (a caller may have named one).
    fn next_supply_request_id(&self) -> SupplyRequestId {
        (self.state.supplies.requests_made + 1..)
            .map(|number| SupplyRequestId::new(format!("sup-{number:06}")))
            .find(|id| !self.state.supplies.requests.contains_key(id))
            .expect("a free number")
    }

    fn decide_confirm(&self, request: &SupplyRequestId, given: Option<&[Allocation]>) -> Result<SupplyEvent, Rejection> {
        let record = self.request_in(request, &[RequestStatus::Requested], "confirmed")?;
        let allocations = match given {
            Some(allocations) => {
                self.check_allocations(record, allocations)?;
                allocations.to_vec()
            }
            None => self.supply_proposal(request)?.allocations.into_iter().map(|(allocation, _)| allocation).collect(),
        };
        if allocations.is_empty() {
            let items: Vec<&str> = record.lines.iter().map(|line| line.item.as_str()).collect();
            return Err(Rejection::FailedPrecondition(format!(
                "no depot has any of {} free now; nothing was reserved: restock, or cancel the request",
                items.join(", ")
            )));
        }
        let mut short = Vec::new();
        for line in &record.lines {
            let allocated: u64 =
                allocations.iter().filter(|allocation| allocation.item == line.item).map(|allocation| allocation.quantity).sum();
            if allocated < line.quantity {
                short.push(SupplyLine { item: line.item.clone(), quantity: line.quantity - allocated });
            }
        }
        Ok(SupplyEvent::SuppliesReserved { request: request.clone(), incident: record.incident.clone(), allocations, short })
    }

    /// Allocations an operator confirms: each from a depot that has it free
    /// now, units not held by another request, never beyond the request.
    fn check_allocations(&self, record: &SupplyRequest, allocations: &[Allocation]) -> Result<(), Rejection> {
        let supplies = &self.state.supplies;
        let mut taken: BTreeMap<(&DepotId, &ItemId), u64> = BTreeMap::new();
        let mut per_item: BTreeMap<&ItemId, u64> = BTreeMap::new();
        let mut units_taken = BTreeSet::new();
        for allocation in allocations {
            let depot = self.existing_depot(&allocation.depot)?;
            let Some(line) = record.lines.iter().find(|line| line.item == allocation.item) else {
                return Err(invalid(format!("request {} does not ask for {}", record.id, allocation.item)));
            };
            let by_unit = supplies.items.get(&allocation.item).is_some_and(|kind| kind.by_unit());
            if by_unit {
                if allocation.units.len() as u64 != allocation.quantity {
                    return Err(invalid(format!(
                        "{} is counted by unit; name the {} units taken from depot {}",
                        allocation.item, allocation.quantity, allocation.depot
                    )));
                }
                for unit_id in &allocation.units {
                    let Some(unit) = supplies.units.get(unit_id) else {
                        return Err(Rejection::NotFound(format!("unit {} does not exist", quote(unit_id.as_str()))));
                    };
                    if unit.spec.depot != allocation.depot || unit.spec.item != allocation.item {
                        return Err(invalid(format!(
                            "unit {unit_id} is not a {} at depot {}",
                            allocation.item, allocation.depot
                        )));
                    }
                    if let Some(held_by) = &unit.held_by {
                        let incident = supplies
                            .requests
                            .get(held_by)
                            .map_or(String::new(), |other| format!(" (incident {})", other.incident));
                        return Err(Rejection::FailedPrecondition(format!(
                            "unit {unit_id} is already held by request {held_by}{incident}; nothing was reserved: ask for a new \
                             proposal"
                        )));
                    }
                    if unit.status != UnitStatus::Available {
                        return Err(Rejection::FailedPrecondition(format!(
                            "unit {unit_id} is {}; nothing was reserved: ask for a new proposal",
                            unit.status.name()
                        )));
                    }
                    if !units_taken.insert(unit_id) {
                        return Err(invalid(format!("unit {unit_id} is named twice")));
                    }
                }
            } else {
                if !allocation.units.is_empty() {
                    return Err(invalid(format!("{} is counted by quantity; name no units", allocation.item)));
                }
                check_quantity(&format!("{} from depot {}", allocation.item, allocation.depot), allocation.quantity)?;
                let total = taken.entry((&allocation.depot, &allocation.item)).or_default();
                *total += allocation.quantity;
                let available = depot.stock.get(&allocation.item).map_or(0, Stock::available);
                if *total > available {
                    return Err(Rejection::FailedPrecondition(format!(
                        "depot {} has {available} {} free, fewer than the {} asked of it (stock cannot go below zero); \
                         nothing was reserved: ask for a new proposal",
                        allocation.depot, allocation.item, total
                    )));
                }
            }
            let item_total = per_item.entry(&allocation.item).or_default();
            *item_total += allocation.quantity;
            if *item_total > line.quantity {
                return Err(invalid(format!(
                    "{} {} allocated, more than the {} request {} asks for",
                    item_total, allocation.item, line.quantity, record.id
                )));
            }
        }
        Ok(())
    }

    fn decide_return(
        &self,
        request: &SupplyRequestId,
        returned: &[SupplyLine],
        in_repair: &[UnitId],
    ) -> Result<SupplyEvent, Rejection> {
        let record = self.request_in(request, &[RequestStatus::Dispatched, RequestStatus::Delivered], "returned")?;
        for unit in in_repair {
            if !record.held_units().any(|held| held == unit) {
                return Err(invalid(format!("unit {unit} was not sent with request {request}")));
            }
        }
        // Consumables coming back go to the depots they came from, in the
        // order they were taken.
        let mut back: Vec<Allocation> = Vec::new();
        let mut consumed = Vec::new();
        let mut seen = BTreeSet::new();
        for line in returned {
            if !seen.insert(&line.item) {
                return Err(invalid(format!("item {} is returned twice; give it once with the total", line.item)));
            }
            let sent: u64 = record
                .allocations
                .iter()
                .filter(|allocation| allocation.item == line.item && allocation.units.is_empty())
                .map(|allocation| allocation.quantity)
                .sum();
            if line.quantity > sent {
                return Err(invalid(format!(
                    "{} {} returned, more than the {sent} consumable {} sent with request {request}",
                    line.quantity, line.item, line.item
                )));
            }
        }
        for allocation in &record.allocations {
            if !allocation.units.is_empty() {
                back.push(allocation.clone());
                continue;
            }
            let earlier: u64 = back
                .iter()
                .filter(|earlier| earlier.item == allocation.item && earlier.units.is_empty())
                .map(|earlier| earlier.quantity)
                .sum();
            let coming_back = returned.iter().find(|line| line.item == allocation.item).map_or(0, |line| line.quantity);
            let here = coming_back.saturating_sub(earlier).min(allocation.quantity);
            if here > 0 {
                back.push(Allocation {
                    depot: allocation.depot.clone(),
                    item: allocation.item.clone(),
                    quantity: here,
                    units: vec![],
                });
            }
        }
        for line in &record.lines {
            if self.state.supplies.items.get(&line.item).is_some_and(|kind| kind.by_unit()) {
                continue;
            }
            let sent: u64 = record
                .allocations
                .iter()
                .filter(|allocation| allocation.item == line.item)
                .map(|allocation| allocation.quantity)
                .sum();
            let coming_back = returned.iter().find(|returned| returned.item == line.item).map_or(0, |returned| returned.quantity);
            if sent > coming_back {
                consumed.push(SupplyLine { item: line.item.clone(), quantity: sent - coming_back });
            }
        }
        Ok(SupplyEvent::SuppliesReturned {
            request: request.clone(),
            incident: record.incident.clone(),
            returned: back,
            consumed,
            in_repair: in_repair.to_vec(),
        })
    }

    /// What follows a command's events: reservations of incidents that
    /// ended are released, and low-stock alerts raised or restored for
    /// every depot and item the events touched.
    pub(super) fn follow_supplies(&mut self, now: Millis, out: &mut Vec<Event>) {
        if self.state.supplies.depots.is_empty() && self.state.supplies.requests.is_empty() {
            return;
        }
        let ended: Vec<IncidentId> = out
            .iter()
            .filter_map(|event| match &event.kind {
                EventKind::IncidentCancelled { incident, .. }
                | EventKind::IncidentClosed { incident, .. }
                | EventKind::ReportMerged { incident, .. }
                | EventKind::ReportRejected { incident, .. } => Some(incident.clone()),
                _ => None,
            })
            .collect();
        for incident in ended {
            let waiting: Vec<SupplyRequestId> = self
                .state
                .supplies
                .requests
                .values()
                .filter(|request| {
                    request.incident == incident && matches!(request.status, RequestStatus::Requested | RequestStatus::Reserved)
                })
                .map(|request| request.id.clone())
                .collect();
            for request in waiting {
                let cancelled = SupplyEvent::SupplyRequestCancelled {
                    request,
                    incident: incident.clone(),
                    reason: "the incident ended before the items left".to_string(),
                };
                self.emit(out, DISPATCHER, now, EventKind::Supplies(cancelled));
            }
        }
        let mut touched: BTreeSet<(DepotId, ItemId)> = BTreeSet::new();
        for event in out.iter() {
            let EventKind::Supplies(supply) = &event.kind else { continue };
            match supply {
                SupplyEvent::SuppliesImported { import } => {
                    touched.extend(import.stock.iter().map(|line| (line.depot.clone(), line.item.clone())));
                }
                SupplyEvent::SuppliesReserved { allocations, .. }
                | SupplyEvent::SuppliesReturned { returned: allocations, .. } => {
                    touched.extend(allocations.iter().map(|allocation| (allocation.depot.clone(), allocation.item.clone())));
                }
                SupplyEvent::SupplyRequestCancelled { request, .. } => {
                    if let Some(record) = self.state.supplies.requests.get(request) {
                        touched.extend(
                            record.allocations.iter().map(|allocation| (allocation.depot.clone(), allocation.item.clone())),
                        );
                    }
                }
                SupplyEvent::StockMoved { moved } => {
                    touched.insert((moved.from.clone(), moved.item.clone()));
                    touched.insert((moved.to.clone(), moved.item.clone()));
                }
                _ => {}
            }
        }
        for (depot, item) in touched {
            let Some(stock) = self.state.supplies.depots.get(&depot).and_then(|record| record.stock.get(&item)) else {
                continue;
            };
            let available = stock.available();
            let alert = if stock.minimum > 0 && available < stock.minimum && !stock.low {
                SupplyEvent::StockLow { depot, item, available, minimum: stock.minimum }
            } else if stock.low && available >= stock.minimum {
                SupplyEvent::StockRestored { depot, item, available }
            } else {
                continue;
            };
            self.emit(out, DISPATCHER, now, EventKind::Supplies(alert));
        }
    }

    /// A plan's supplies moved to their depots when it activates, taken
    /// from the nearest other depots with stock free (as much as there is).
    pub(super) fn preposition_supplies(
        &mut self,
        plan: &PlanSpec,
        activation: &ActivationId,
        actor: &str,
        now: Millis,
        out: &mut Vec<Event>,
    ) {
        for supply in &plan.supplies {
            let targets: Vec<&DepotId> = supply.to.iter().filter(|to| self.state.supplies.depots.contains_key(*to)).collect();
            if targets.is_empty() {
                continue;
            }
            let share = supply.quantity / targets.len() as u64;
            let mut extra = supply.quantity % targets.len() as u64;
            for to in targets {
                let mut wanted = share + u64::from(extra > 0);
                extra = extra.saturating_sub(1);
                let Some(to_at) = self.state.supplies.depots.get(to).map(|depot| depot.spec.at) else { continue };
                let mut sources: Vec<(f64, DepotId)> = self
                    .state
                    .supplies
                    .depots
                    .values()
                    .filter(|depot| !supply.to.contains(&depot.spec.id))
                    .filter(|depot| depot.stock.get(&supply.item).is_some_and(|stock| stock.available() > 0))
                    .map(|depot| (depot.spec.at.distance_m(to_at), depot.spec.id.clone()))
                    .collect();
                sources.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
                for (_, from) in sources {
                    if wanted == 0 {
                        break;
                    }
                    let available = self.state.supplies.depots[&from].stock.get(&supply.item).map_or(0, Stock::available);
                    let quantity = available.min(wanted);
                    wanted -= quantity;
                    let moved = StockMove {
                        from,
                        to: to.clone(),
                        item: supply.item.clone(),
                        quantity,
                        activation: Some(activation.clone()),
                    };
                    self.emit(out, actor, now, EventKind::Supplies(SupplyEvent::StockMoved { moved }));
                }
            }
        }
    }

    pub(super) fn apply_supplies(&mut self, event: &SupplyEvent, at: Millis, actor: &str) {
        let supplies = &mut self.state.supplies;
        match event {
            SupplyEvent::SuppliesImported { import } => {
                for depot in &import.depots {
                    supplies
                        .depots
                        .entry(depot.id.clone())
                        .and_modify(|record| record.spec = depot.clone())
                        .or_insert_with(|| Depot { spec: depot.clone(), stock: BTreeMap::new() });
                }
                for line in &import.stock {
                    supplies.items.entry(line.item.clone()).or_insert(ItemKind::Consumable);
                    if let Some(depot) = supplies.depots.get_mut(&line.depot) {
                        let stock = depot.stock.entry(line.item.clone()).or_default();
                        stock.on_hand = line.quantity;
                        stock.minimum = line.minimum;
                    }
                }
                for unit in &import.units {
                    supplies.items.entry(unit.item.clone()).or_insert(unit.kind);
                    let status = if unit.in_repair { UnitStatus::InRepair } else { UnitStatus::Available };
                    supplies.units.insert(unit.id.clone(), Unit { spec: unit.clone(), status, held_by: None });
                }
            }
            SupplyEvent::SuppliesRequested { request, incident, lines } => {
                supplies.requests_made += 1;
                supplies.requests.insert(
                    request.clone(),
                    SupplyRequest {
                        id: request.clone(),
                        incident: incident.clone(),
                        lines: lines.clone(),
                        status: RequestStatus::Requested,
                        requested_at: at,
                        requested_by: actor.to_string(),
                        allocations: Vec::new(),
                        short: Vec::new(),
                        carrier: None,
                        dispatched_at: None,
                        delivered_at: None,
                        settled_at: None,
                        consumed: Vec::new(),
                        reason: String::new(),
                    },
                );
            }
            SupplyEvent::SuppliesReserved { request, allocations, short, .. } => {
                for allocation in allocations {
                    hold(supplies, allocation, request);
                }
                if let Some(record) = supplies.requests.get_mut(request) {
                    record.status = RequestStatus::Reserved;
                    record.allocations = allocations.clone();
                    record.short = short.clone();
                }
            }
            SupplyEvent::SuppliesDispatched { request, carrier, .. } => {
                let Some(record) = supplies.requests.get_mut(request) else { return };
                record.status = RequestStatus::Dispatched;
                record.carrier = carrier.clone();
                record.dispatched_at = Some(at);
                for allocation in &record.allocations {
                    if allocation.units.is_empty() {
                        if let Some(stock) =
                            supplies.depots.get_mut(&allocation.depot).and_then(|d| d.stock.get_mut(&allocation.item))
                        {
                            debug_assert!(stock.reserved >= allocation.quantity && stock.on_hand >= allocation.quantity);
                            stock.reserved = stock.reserved.saturating_sub(allocation.quantity);
                            stock.on_hand = stock.on_hand.saturating_sub(allocation.quantity);
                        }
                    }
                    for unit in &allocation.units {
                        if let Some(unit) = supplies.units.get_mut(unit) {
                            unit.status = UnitStatus::Dispatched;
                        }
                    }
                }
            }
            SupplyEvent::SuppliesDelivered { request, .. } => {
                if let Some(record) = supplies.requests.get_mut(request) {
                    record.status = RequestStatus::Delivered;
                    record.delivered_at = Some(at);
                }
            }
            SupplyEvent::SuppliesReturned { request, returned, consumed, in_repair, .. } => {
                for allocation in returned {
                    if allocation.units.is_empty() {
                        if let Some(depot) = supplies.depots.get_mut(&allocation.depot) {
                            depot.stock.entry(allocation.item.clone()).or_default().on_hand += allocation.quantity;
                        }
                    }
                }
                let Some(record) = supplies.requests.get_mut(request) else { return };
                for unit in record.allocations.iter().flat_map(|allocation| allocation.units.iter()) {
                    if let Some(unit_record) = supplies.units.get_mut(unit) {
                        unit_record.held_by = None;
                        unit_record.status = if in_repair.contains(unit) { UnitStatus::InRepair } else { UnitStatus::Available };
                    }
                }
                record.status = RequestStatus::Returned;
                record.settled_at = Some(at);
                record.consumed = consumed.clone();
            }
            SupplyEvent::SupplyRequestCancelled { request, reason, .. } => {
                let Some(record) = supplies.requests.get_mut(request) else { return };
                if record.status == RequestStatus::Reserved {
                    for allocation in &record.allocations {
                        release(&mut supplies.depots, &mut supplies.units, allocation);
                    }
                }
                record.status = RequestStatus::Cancelled;
                record.settled_at = Some(at);
                record.reason = reason.clone();
            }
            SupplyEvent::StockLow { depot, item, .. } | SupplyEvent::StockRestored { depot, item, .. } => {
                let low = matches!(event, SupplyEvent::StockLow { .. });
                if let Some(stock) = supplies.depots.get_mut(depot).and_then(|record| record.stock.get_mut(item)) {
                    stock.low = low;
                }
            }
            SupplyEvent::StockMoved { moved } => {
                supplies.items.entry(moved.item.clone()).or_insert(ItemKind::Consumable);
                if let Some(stock) = supplies.depots.get_mut(&moved.from).and_then(|record| record.stock.get_mut(&moved.item)) {
                    debug_assert!(stock.available() >= moved.quantity, "a move takes only free stock");
                    stock.on_hand = stock.on_hand.saturating_sub(moved.quantity);
                }
                if let Some(depot) = supplies.depots.get_mut(&moved.to) {
                    depot.stock.entry(moved.item.clone()).or_default().on_hand += moved.quantity;
                }
            }
            SupplyEvent::UnitStatusSet { unit, status } => {
                if let Some(unit) = supplies.units.get_mut(unit) {
                    unit.status = *status;
                }
            }
        }
    }
}

fn hold(supplies: &mut SupplyState, allocation: &Allocation, request: &SupplyRequestId) {
    if allocation.units.is_empty() {
        if let Some(stock) = supplies.depots.get_mut(&allocation.depot).and_then(|depot| depot.stock.get_mut(&allocation.item)) {
            debug_assert!(stock.available() >= allocation.quantity, "reserved beyond the stock");
            stock.reserved += allocation.quantity;
        }
    }
    for unit in &allocation.units {
        if let Some(unit) = supplies.units.get_mut(unit) {
            debug_assert!(unit.held_by.is_none(), "a unit held twice");
            unit.status = UnitStatus::Reserved;
            unit.held_by = Some(request.clone());
        }
    }
}

fn release(depots: &mut BTreeMap<DepotId, Depot>, units: &mut BTreeMap<UnitId, Unit>, allocation: &Allocation) {
    if allocation.units.is_empty()
        && let Some(stock) = depots.get_mut(&allocation.depot).and_then(|depot| depot.stock.get_mut(&allocation.item))
    {
        stock.reserved = stock.reserved.saturating_sub(allocation.quantity);
    }
    for unit in &allocation.units {
        if let Some(unit) = units.get_mut(unit) {
            unit.status = UnitStatus::Available;
            unit.held_by = None;
        }
    }
}

#[cfg(test)]
mod tests;
