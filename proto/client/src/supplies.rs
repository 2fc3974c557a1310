//! Supplies from the client's side: depots and stock read from and written
//! to CSV, supply events told in words, and the names of the enums.
//!
//! Two files, matched by column name (the header is line 1):
//! - depots: `id,name,lon,lat,area_id,keeper` (`area_id` may be empty: the
//!   dispatcher places the depot in the deepest area at its position);
//! - stock: `depot_id,item_id,kind,quantity,minimum,unit_id,status,capacity`:
//!   a `consumable` row gives a quantity and a minimum (the low-stock
//!   alert's threshold, 0 for none); an `equipment` or `vehicle` row is one
//!   unit, with its `unit_id`, `status` (`available` or `in_repair`) and,
//!   for a vehicle, its capacity.
//!
//! Every problem is told with its line, and a file with any problem imports
//! nothing. The dispatcher's own checks (a depot unknown, an item counted
//! two ways) name the row; [`locate_rows`] turns that back into the line.

use std::collections::BTreeMap;

use pb::event::Body;
use pingji_proto::v1 as pb;
use pingji_rules::check_id;

/// The depots file's columns, in the order written.
pub const DEPOT_COLUMNS: [&str; 6] = ["id", "name", "lon", "lat", "area_id", "keeper"];
/// The stock file's columns, in the order written.
pub const STOCK_COLUMNS: [&str; 8] = ["depot_id", "item_id", "kind", "quantity", "minimum", "unit_id", "status", "capacity"];

/// Depots and stock read from CSV, with the line of each row, ready for `ImportSupplies`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SupplyCsv {
    pub request: pb::ImportSuppliesRequest,
    pub depot_lines: Vec<usize>,
    pub stock_lines: Vec<usize>,
    pub unit_lines: Vec<usize>,
}

pub fn kind_name(kind: i32) -> &'static str {
    match pb::ItemKind::try_from(kind) {
        Ok(pb::ItemKind::Consumable) => "consumable",
        Ok(pb::ItemKind::Equipment) => "equipment",
        Ok(pb::ItemKind::Vehicle) => "vehicle",
        _ => "unspecified",
    }
}

pub fn kind_from_name(name: &str) -> Option<pb::ItemKind> {
    match name.trim().to_ascii_lowercase().as_str() {
        "consumable" => Some(pb::ItemKind::Consumable),
        "equipment" => Some(pb::ItemKind::Equipment),
        "vehicle" => Some(pb::ItemKind::Vehicle),
        _ => None,
    }
}

pub fn unit_status_name(status: i32) -> &'static str {
    match pb::SupplyUnitStatus::try_from(status) {
        Ok(pb::SupplyUnitStatus::Available) => "available",
        Ok(pb::SupplyUnitStatus::Reserved) => "reserved",
        Ok(pb::SupplyUnitStatus::Dispatched) => "dispatched",
        Ok(pb::SupplyUnitStatus::InRepair) => "in_repair",
        _ => "unspecified",
    }
}

pub fn unit_status_from_name(name: &str) -> Option<pb::SupplyUnitStatus> {
    match name.trim().to_ascii_lowercase().replace([' ', '-'], "_").as_str() {
        "available" => Some(pb::SupplyUnitStatus::Available),
        "reserved" => Some(pb::SupplyUnitStatus::Reserved),
        "dispatched" => Some(pb::SupplyUnitStatus::Dispatched),
        "in_repair" => Some(pb::SupplyUnitStatus::InRepair),
        _ => None,
    }
}

pub fn request_status_name(status: i32) -> &'static str {
    match pb::SupplyRequestStatus::try_from(status) {
        Ok(pb::SupplyRequestStatus::Requested) => "requested",
        Ok(pb::SupplyRequestStatus::Reserved) => "reserved",
        Ok(pb::SupplyRequestStatus::Dispatched) => "dispatched",
        Ok(pb::SupplyRequestStatus::Delivered) => "delivered",
        Ok(pb::SupplyRequestStatus::Returned) => "returned",
        Ok(pb::SupplyRequestStatus::Cancelled) => "cancelled",
        _ => "unspecified",
    }
}

/// Rows of one CSV file by column name, each with its line.
fn rows(what: &str, text: &str, columns: &[&str], required: &[&str]) -> Result<Vec<(usize, BTreeMap<String, String>)>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|error| format!("{what} csv line 1: {error}"))?
        .iter()
        .map(|name| name.trim().to_string())
        .collect();
    for column in required {
        if !header.iter().any(|name| name == column) {
            return Err(format!("{what} csv line 1: column {column} is missing; the columns are {}", columns.join(",")));
        }
    }
    if let Some(unknown) = header.iter().find(|name| !columns.contains(&name.as_str())) {
        return Err(format!("{what} csv line 1: column {unknown:?} is unknown; the columns are {}", columns.join(",")));
    }
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|error| {
            let line = error.position().map_or(0, |position| position.line());
            format!("{what} csv line {line}: {error}")
        })?;
        let line = record.position().map_or(0, |position| position.line() as usize);
        if record.iter().all(|field| field.trim().is_empty()) {
            continue;
        }
        let row = header.iter().cloned().zip(record.iter().map(|field| field.trim().to_string())).collect();
        out.push((line, row));
    }
    Ok(out)
}

fn field<'a>(row: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    row.get(name).map_or("", String::as_str)
}

fn number<T: std::str::FromStr>(row: &BTreeMap<String, String>, name: &str, default: Option<T>) -> Result<T, String> {
    let text = field(row, name);
    if text.is_empty()
        && let Some(default) = default
    {
        return Ok(default);
    }
    text.parse().map_err(|_| format!("{name} {text:?} is not a number"))
}

/// Reads the depots and stock files; `Err` lists every bad line (nothing is imported).
pub fn parse_supply_csv(depots: Option<&str>, stock: Option<&str>) -> Result<SupplyCsv, Vec<String>> {
    let mut out = SupplyCsv::default();
    let mut problems = Vec::new();
    if let Some(text) = depots {
        match rows("depots", text, &DEPOT_COLUMNS, &["id", "name", "lon", "lat"]) {
            Err(problem) => problems.push(problem),
            Ok(rows) => {
                for (line, row) in rows {
                    let depot = (|| -> Result<pb::Depot, String> {
                        check_id("depot id", field(&row, "id"))?;
                        let lon: f64 = number(&row, "lon", None)?;
                        let lat: f64 = number(&row, "lat", None)?;
                        if field(&row, "name").is_empty() {
                            return Err("name is empty".to_string());
                        }
                        Ok(pb::Depot {
                            id: field(&row, "id").to_string(),
                            name: field(&row, "name").to_string(),
                            location: Some(pb::Location { lon, lat, crs: 0 }),
                            area_id: field(&row, "area_id").to_string(),
                            keeper: field(&row, "keeper").to_string(),
                            stock: Vec::new(),
                            units: Vec::new(),
                        })
                    })();
                    match depot {
                        Ok(depot) => {
                            out.request.depots.push(depot);
                            out.depot_lines.push(line);
                        }
                        Err(problem) => problems.push(format!("depots csv line {line}: {problem}")),
                    }
                }
            }
        }
    }
    if let Some(text) = stock {
        match rows("stock", text, &STOCK_COLUMNS, &["depot_id", "item_id", "kind"]) {
            Err(problem) => problems.push(problem),
            Ok(rows) => {
                for (line, row) in rows {
                    let parsed = (|| -> Result<Result<pb::StockRow, pb::UnitRow>, String> {
                        check_id("depot_id", field(&row, "depot_id"))?;
                        check_id("item_id", field(&row, "item_id"))?;
                        let kind = kind_from_name(field(&row, "kind"))
                            .ok_or_else(|| format!("kind {:?} is not consumable, equipment or vehicle", field(&row, "kind")))?;
                        if kind == pb::ItemKind::Consumable {
                            if !field(&row, "unit_id").is_empty() {
                                return Err("a consumable row has no unit_id (units are equipment or vehicles)".to_string());
                            }
                            return Ok(Ok(pb::StockRow {
                                depot_id: field(&row, "depot_id").to_string(),
                                item_id: field(&row, "item_id").to_string(),
                                quantity: number(&row, "quantity", None)?,
                                minimum: number(&row, "minimum", Some(0))?,
                            }));
                        }
                        check_id("unit_id", field(&row, "unit_id"))?;
                        let status = match field(&row, "status") {
                            "" | "available" => false,
                            "in_repair" => true,
                            other => {
                                return Err(format!(
                                    "status {other:?} cannot be imported; give available or in_repair (reserved and \
                                     dispatched are set by requests)"
                                ));
                            }
                        };
                        Ok(Err(pb::UnitRow {
                            unit_id: field(&row, "unit_id").to_string(),
                            item_id: field(&row, "item_id").to_string(),
                            kind: kind.into(),
                            depot_id: field(&row, "depot_id").to_string(),
                            capacity: number(&row, "capacity", Some(0))?,
                            in_repair: status,
                        }))
                    })();
                    match parsed {
                        Ok(Ok(stock)) => {
                            out.request.stock.push(stock);
                            out.stock_lines.push(line);
                        }
                        Ok(Err(unit)) => {
                            out.request.units.push(unit);
                            out.unit_lines.push(line);
                        }
                        Err(problem) => problems.push(format!("stock csv line {line}: {problem}")),
                    }
                }
            }
        }
    }
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

/// The dispatcher's "stock row 3: ..." told as "stock csv line 5 (stock
/// row 3): ...", so the file can be fixed where it is wrong.
pub fn locate_rows(message: &str, csv: &SupplyCsv) -> String {
    for (prefix, file, lines) in [
        ("depot row ", "depots", &csv.depot_lines),
        ("stock row ", "stock", &csv.stock_lines),
        ("unit row ", "stock", &csv.unit_lines),
    ] {
        if let Some(start) = message.find(prefix) {
            let rest = &message[start + prefix.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(row) = digits.parse::<usize>()
                && let Some(line) = lines.get(row.wrapping_sub(1))
            {
                return format!("{}{file} csv line {line} ({prefix}{row}){}", &message[..start], &rest[digits.len()..]);
            }
        }
    }
    message.to_string()
}

/// The depots file of these depots.
pub fn depots_csv(depots: &[pb::Depot]) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(DEPOT_COLUMNS);
    for depot in depots {
        let at = depot.location.unwrap_or_default();
        let _ = writer.write_record([
            depot.id.as_str(),
            depot.name.as_str(),
            &at.lon.to_string(),
            &at.lat.to_string(),
            depot.area_id.as_str(),
            depot.keeper.as_str(),
        ]);
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// The stock file of these depots: a row per consumable, a row per unit.
pub fn stock_csv(depots: &[pb::Depot]) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(STOCK_COLUMNS);
    for depot in depots {
        for stock in &depot.stock {
            let _ = writer.write_record([
                depot.id.as_str(),
                stock.item_id.as_str(),
                "consumable",
                &stock.on_hand.to_string(),
                &stock.minimum.to_string(),
                "",
                "",
                "",
            ]);
        }
        for unit in &depot.units {
            let _ = writer.write_record([
                depot.id.as_str(),
                unit.item_id.as_str(),
                kind_name(unit.kind),
                "",
                "",
                unit.id.as_str(),
                unit_status_name(unit.status),
                &unit.capacity.to_string(),
            ]);
        }
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Items and quantities as people type them: `sandbag=500 pump=2`.
pub fn parse_lines(words: &[String]) -> Result<Vec<pb::SupplyLine>, String> {
    words
        .iter()
        .map(|word| {
            let (item, quantity) =
                word.split_once('=').ok_or_else(|| format!("{word:?} is not ITEM=QUANTITY, e.g. sandbag=500"))?;
            let quantity =
                quantity.trim().parse().map_err(|_| format!("quantity {quantity:?} of {item} is not a whole number"))?;
            Ok(pb::SupplyLine { item_id: item.trim().to_string(), quantity })
        })
        .collect()
}

pub fn lines_words(lines: &[pb::SupplyLine]) -> String {
    lines.iter().map(|line| format!("{} x{}", line.item_id, line.quantity)).collect::<Vec<_>>().join(", ")
}

pub fn allocation_words(allocation: &pb::SupplyAllocation) -> String {
    let units = if allocation.unit_ids.is_empty() { String::new() } else { format!(" ({})", allocation.unit_ids.join(", ")) };
    format!("{} x{} from {}{units}", allocation.item_id, allocation.quantity, allocation.depot_id)
}

/// The kind name of a supply body; `None` for other bodies.
pub fn event_kind_name(body: &Body) -> Option<&'static str> {
    Some(match body {
        Body::SuppliesImported(_) => "supplies_imported",
        Body::SuppliesRequested(_) => "supplies_requested",
        Body::SuppliesReserved(_) => "supplies_reserved",
        Body::SuppliesDispatched(_) => "supplies_dispatched",
        Body::SuppliesDelivered(_) => "supplies_delivered",
        Body::SuppliesReturned(_) => "supplies_returned",
        Body::SupplyRequestCancelled(_) => "supply_request_cancelled",
        Body::StockLow(_) => "stock_low",
        Body::StockRestored(_) => "stock_restored",
        Body::StockMoved(_) => "stock_moved",
        Body::UnitStatusSet(_) => "unit_status_set",
        _ => return None,
    })
}

/// A supply event in words; `None` for other bodies.
pub fn event_summary(body: &Body) -> Option<String> {
    Some(match body {
        Body::SuppliesImported(imported) => {
            format!("{} depots, {} stock rows, {} units", imported.depots.len(), imported.stock.len(), imported.units.len())
        }
        Body::SuppliesRequested(requested) => {
            format!("{} for {}: {}", requested.request_id, requested.incident_id, lines_words(&requested.lines))
        }
        Body::SuppliesReserved(reserved) => {
            let taken: Vec<String> = reserved.allocations.iter().map(allocation_words).collect();
            let short =
                if reserved.short.is_empty() { String::new() } else { format!("; short {}", lines_words(&reserved.short)) };
            format!("{} reserved: {}{short}", reserved.request_id, taken.join(", "))
        }
        Body::SuppliesDispatched(dispatched) => {
            let carrier = if dispatched.carrier_agent_id.is_empty() {
                String::new()
            } else {
                format!(" carried by {}", dispatched.carrier_agent_id)
            };
            format!("{} on its way to {}{carrier}", dispatched.request_id, dispatched.incident_id)
        }
        Body::SuppliesDelivered(delivered) => format!("{} delivered to {}", delivered.request_id, delivered.incident_id),
        Body::SuppliesReturned(returned) => format!(
            "{} settled: used {}{}",
            returned.request_id,
            if returned.consumed.is_empty() { "nothing".to_string() } else { lines_words(&returned.consumed) },
            if returned.in_repair_unit_ids.is_empty() {
                String::new()
            } else {
                format!("; in repair {}", returned.in_repair_unit_ids.join(", "))
            }
        ),
        Body::SupplyRequestCancelled(cancelled) => format!("{} cancelled: {}", cancelled.request_id, cancelled.reason),
        Body::StockLow(low) => {
            format!("{} low at depot {}: {} free, minimum {}", low.item_id, low.depot_id, low.available, low.minimum)
        }
        Body::StockRestored(restored) => {
            format!("{} restored at depot {}: {} free", restored.item_id, restored.depot_id, restored.available)
        }
        Body::StockMoved(moved) => format!(
            "{} {} moved {} -> {}{}",
            moved.quantity,
            moved.item_id,
            moved.from_depot_id,
            moved.to_depot_id,
            if moved.activation_id.is_empty() { String::new() } else { format!(" (plan {})", moved.activation_id) }
        ),
        Body::UnitStatusSet(set) => format!("unit {} is {}", set.unit_id, unit_status_name(set.status)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPOTS: &str = "id,name,lon,lat,area_id,keeper\nriverside-1,Riverside 1,120.15,30.27,,Li\n";
    const STOCK: &str = "depot_id,item_id,kind,quantity,minimum,unit_id,status,capacity\n\
                         riverside-1,sandbag,consumable,2000,500,,,\n\
                         riverside-1,pump,equipment,,,P-07,available,\n\
                         riverside-1,boat,vehicle,,,B-02,in_repair,8\n";

    #[test]
    fn depots_and_stock_read_and_write_back_the_same() {
        let read = parse_supply_csv(Some(DEPOTS), Some(STOCK)).expect("good files");
        assert_eq!(read.request.stock.len(), 1);
        assert_eq!(read.request.units.len(), 2);
        assert_eq!((read.stock_lines.clone(), read.unit_lines.clone()), (vec![2], vec![3, 4]));
        let mut depot = read.request.depots[0].clone();
        depot.stock = vec![pb::DepotStock { item_id: "sandbag".into(), on_hand: 2000, minimum: 500, ..Default::default() }];
        depot.units = read
            .request
            .units
            .iter()
            .map(|unit| pb::SupplyUnit {
                id: unit.unit_id.clone(),
                item_id: unit.item_id.clone(),
                kind: unit.kind,
                depot_id: unit.depot_id.clone(),
                capacity: unit.capacity,
                status: if unit.in_repair { pb::SupplyUnitStatus::InRepair } else { pb::SupplyUnitStatus::Available }.into(),
                request_id: String::new(),
            })
            .collect();
        let again =
            parse_supply_csv(Some(&depots_csv(&[depot.clone()])), Some(&stock_csv(&[depot]))).expect("written files read");
        assert_eq!(again.request, read.request);
    }

    #[test]
    fn a_bad_line_is_named_and_nothing_is_read() {
        let bad = format!("{STOCK}riverside-1,water,consumable,lots,,,,\n");
        let problems = parse_supply_csv(Some(DEPOTS), Some(&bad)).expect_err("a bad quantity");
        assert_eq!(problems, ["stock csv line 5: quantity \"lots\" is not a number"]);
        let read = parse_supply_csv(None, Some(STOCK)).expect("good");
        assert_eq!(
            locate_rows("unit row 2: depot \"x\" is neither known nor in the import", &read),
            "stock csv line 4 (unit row 2): depot \"x\" is neither known nor in the import"
        );
    }
}
