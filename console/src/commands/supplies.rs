//! `pingji supplies ...`: depots and stock (import and export as CSV,
//! levels per area), and incidents' requests for supplies: request,
//! propose, confirm, dispatch, deliver, return, cancel, list.

use std::path::{Path, PathBuf};

use pingji_client::connect::SupplyClient;
use pingji_client::supplies::{
    allocation_words, depots_csv, kind_name, lines_words, locate_rows, parse_lines, parse_supply_csv, request_status_name,
    stock_csv, unit_status_name,
};
use pingji_proto::v1 as pb;
use serde_json::Value;

use crate::error::ConsoleError;
use crate::output;

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn read(path: &Path) -> Result<String, ConsoleError> {
    std::fs::read_to_string(path).map_err(|source| ConsoleError::ReadFile { path: path.to_path_buf(), source })
}

/// `supplies import [--depots FILE] [--stock FILE]`: nothing is imported when any line is bad.
pub async fn import(
    client: &mut SupplyClient,
    depots: Option<PathBuf>,
    stock: Option<PathBuf>,
    as_json: bool,
) -> Result<(), ConsoleError> {
    let named = depots.clone().or(stock.clone()).unwrap_or_default();
    if depots.is_none() && stock.is_none() {
        return Err(ConsoleError::InFile { path: named, message: "give --depots FILE, --stock FILE or both".to_string() });
    }
    let depots_text = depots.as_deref().map(read).transpose()?;
    let stock_text = stock.as_deref().map(read).transpose()?;
    let csv = parse_supply_csv(depots_text.as_deref(), stock_text.as_deref()).map_err(|problems| ConsoleError::InFile {
        path: named.clone(),
        message: format!("nothing imported; fix these lines and import again:\n{}", problems.join("\n")),
    })?;
    let imported = match client.import_supplies(csv.request.clone()).await {
        Ok(imported) => imported.into_inner(),
        Err(status) if status.code() == tonic::Code::InvalidArgument || status.code() == tonic::Code::FailedPrecondition => {
            return Err(ConsoleError::InFile {
                path: named,
                message: format!("nothing imported: {}", locate_rows(status.message(), &csv)),
            });
        }
        Err(status) => return Err(status.into()),
    };
    if as_json {
        return output::json_document(&to_json(&imported));
    }
    output::line(&format!("imported {} depots, {} stock rows, {} units", imported.depots, imported.stock_rows, imported.units))
}

/// `supplies export --depots FILE --stock FILE [--area AREA]`.
pub async fn export(client: &mut SupplyClient, depots: &Path, stock: &Path, area: &str) -> Result<(), ConsoleError> {
    let listed = client.list_depots(pb::ListDepotsRequest { area_id: area.to_string() }).await?.into_inner().depots;
    for (path, text) in [(depots, depots_csv(&listed)), (stock, stock_csv(&listed))] {
        std::fs::write(path, text)
            .map_err(|error| ConsoleError::InFile { path: path.to_path_buf(), message: format!("cannot write it: {error}") })?;
    }
    output::line(&format!("exported {} depots to {} and their stock to {}", listed.len(), depots.display(), stock.display()))
}

pub async fn depots(client: &mut SupplyClient, area: &str, as_json: bool) -> Result<(), ConsoleError> {
    let listed = client.list_depots(pb::ListDepotsRequest { area_id: area.to_string() }).await?.into_inner();
    if as_json {
        return output::json_document(&to_json(&listed));
    }
    let mut text = String::new();
    for depot in &listed.depots {
        text.push_str(&format!("{}  {}  area {}  keeper {}\n", depot.id, depot.name, depot.area_id, depot.keeper));
        for stock in &depot.stock {
            text.push_str(&format!(
                "  {:<14} {:>8} held  {:>8} reserved  minimum {}{}\n",
                stock.item_id,
                stock.on_hand,
                stock.reserved,
                stock.minimum,
                if stock.low { "  LOW" } else { "" }
            ));
        }
        for unit in &depot.units {
            let held = if unit.request_id.is_empty() { String::new() } else { format!(" for {}", unit.request_id) };
            text.push_str(&format!(
                "  {:<14} {} {} {}{held}\n",
                unit.item_id,
                kind_name(unit.kind),
                unit.id,
                unit_status_name(unit.status)
            ));
        }
    }
    if listed.depots.is_empty() {
        text.push_str("no depots\n");
    }
    output::text(&text)
}

pub async fn levels(client: &mut SupplyClient, area: &str, as_json: bool) -> Result<(), ConsoleError> {
    let levels = client.stock_levels(pb::StockLevelsRequest { area_id: area.to_string() }).await?.into_inner();
    if as_json {
        return output::json_document(&to_json(&levels));
    }
    let mut text = format!("stock in {}:\n", if area.is_empty() { "every depot" } else { area });
    for level in &levels.levels {
        text.push_str(&format!(
            "  {:<14} {:<10} {:>8} held  {:>8} reserved  {:>8} free{}\n",
            level.item_id,
            kind_name(level.kind),
            level.on_hand,
            level.reserved,
            level.available,
            if level.low_depots > 0 { format!("  low at {} depots", level.low_depots) } else { String::new() }
        ));
    }
    output::text(&text)
}

fn request_text(request: &pb::SupplyRequest) -> String {
    let mut text = format!(
        "{}  {}  for {}: {}\n",
        request.id,
        request_status_name(request.status),
        request.incident_id,
        lines_words(&request.lines)
    );
    for allocation in &request.allocations {
        text.push_str(&format!("  {}\n", allocation_words(allocation)));
    }
    if !request.short.is_empty() {
        text.push_str(&format!("  short: {}\n", lines_words(&request.short)));
    }
    if !request.carrier_agent_id.is_empty() {
        text.push_str(&format!("  carried by {}\n", request.carrier_agent_id));
    }
    if !request.consumed.is_empty() {
        text.push_str(&format!("  used: {}\n", lines_words(&request.consumed)));
    }
    text
}

fn show(request: &pb::SupplyRequest, as_json: bool) -> Result<(), ConsoleError> {
    if as_json { output::json_document(&to_json(request)) } else { output::text(&request_text(request)) }
}

fn lines(words: &[String]) -> Result<Vec<pb::SupplyLine>, ConsoleError> {
    parse_lines(words).map_err(|message| ConsoleError::InFile { path: PathBuf::from("(command line)"), message })
}

pub async fn request(
    client: &mut SupplyClient,
    incident: &str,
    items: &[String],
    id: &str,
    as_json: bool,
) -> Result<(), ConsoleError> {
    let lines = lines(items)?;
    let request = pb::RequestSuppliesRequest { incident_id: incident.to_string(), lines, id: id.to_string() };
    let made = client.request_supplies(request).await?;
    show(&made.into_inner(), as_json)
}

pub async fn propose(client: &mut SupplyClient, request: &str, as_json: bool) -> Result<(), ConsoleError> {
    let proposal = client.propose_supplies(pb::ProposeSuppliesRequest { request_id: request.to_string() }).await?.into_inner();
    if as_json {
        return output::json_document(&to_json(&proposal));
    }
    let mut text = format!("proposal for {}:\n", proposal.request_id);
    for allocation in &proposal.allocations {
        text.push_str(&format!("  {}  ({:.0} min by road)\n", allocation_words(allocation), allocation.travel_s / 60.0));
    }
    if !proposal.short.is_empty() {
        text.push_str(&format!("  short: {}\n", lines_words(&proposal.short)));
    }
    output::text(&text)
}

/// Confirms the proposal of now (shown before, with `propose`).
pub async fn confirm(client: &mut SupplyClient, request: &str, as_json: bool) -> Result<(), ConsoleError> {
    let confirmed =
        client.confirm_supplies(pb::ConfirmSuppliesRequest { request_id: request.to_string(), allocations: vec![] }).await?;
    show(&confirmed.into_inner(), as_json)
}

pub async fn dispatch(client: &mut SupplyClient, request: &str, carrier: &str, as_json: bool) -> Result<(), ConsoleError> {
    let sent = client
        .dispatch_supplies(pb::DispatchSuppliesRequest { request_id: request.to_string(), carrier_agent_id: carrier.to_string() })
        .await?;
    show(&sent.into_inner(), as_json)
}

pub async fn deliver(client: &mut SupplyClient, request: &str, as_json: bool) -> Result<(), ConsoleError> {
    let delivered = client.deliver_supplies(pb::DeliverSuppliesRequest { request_id: request.to_string() }).await?;
    show(&delivered.into_inner(), as_json)
}

pub async fn settle(
    client: &mut SupplyClient,
    request: &str,
    returned: &[String],
    in_repair: Vec<String>,
    as_json: bool,
) -> Result<(), ConsoleError> {
    let returned = lines(returned)?;
    let settled = client
        .return_supplies(pb::ReturnSuppliesRequest { request_id: request.to_string(), returned, in_repair_unit_ids: in_repair })
        .await?;
    show(&settled.into_inner(), as_json)
}

pub async fn cancel(client: &mut SupplyClient, request: &str, reason: &str, as_json: bool) -> Result<(), ConsoleError> {
    let cancelled = client
        .cancel_supply_request(pb::CancelSupplyRequestRequest { request_id: request.to_string(), reason: reason.to_string() })
        .await?;
    show(&cancelled.into_inner(), as_json)
}

pub async fn requests(client: &mut SupplyClient, incident: &str, open_only: bool, as_json: bool) -> Result<(), ConsoleError> {
    let listed = client
        .list_supply_requests(pb::ListSupplyRequestsRequest { incident_id: incident.to_string(), open_only })
        .await?
        .into_inner();
    if as_json {
        return output::json_document(&to_json(&listed));
    }
    let text: String = listed.requests.iter().map(request_text).collect();
    output::text(if text.is_empty() { "no supply requests\n" } else { &text })
}

pub async fn move_stock(
    client: &mut SupplyClient,
    from: &str,
    to: &str,
    item: &str,
    quantity: u64,
    as_json: bool,
) -> Result<(), ConsoleError> {
    let depot = client
        .move_stock(pb::MoveStockRequest {
            from_depot_id: from.to_string(),
            to_depot_id: to.to_string(),
            item_id: item.to_string(),
            quantity,
        })
        .await?
        .into_inner();
    if as_json {
        return output::json_document(&to_json(&depot));
    }
    let held = depot.stock.iter().find(|stock| stock.item_id == item).map_or(0, |stock| stock.on_hand);
    output::line(&format!("moved {quantity} {item} from {from} to {to}; {to} holds {held}"))
}

pub async fn repair(client: &mut SupplyClient, unit: &str, back: bool, as_json: bool) -> Result<(), ConsoleError> {
    let status = if back { pb::SupplyUnitStatus::Available } else { pb::SupplyUnitStatus::InRepair };
    let unit = client.set_unit_status(pb::SetUnitStatusRequest { unit_id: unit.to_string(), status: status.into() }).await?;
    let unit = unit.into_inner();
    if as_json {
        return output::json_document(&to_json(&unit));
    }
    output::line(&format!("unit {} at {} is {}", unit.id, unit.depot_id, unit_status_name(unit.status)))
}
