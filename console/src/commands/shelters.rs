//! `pingji shelters ...`: shelters (import and export as CSV, list, open,
//! close), evacuations of residents to them (propose, evacuate, check in,
//! check out, release, list) and a shelter's occupancy over time. Residents'
//! names are given with `--name` and never printed back (the dispatcher
//! masks them).

use std::path::Path;

use pingji_client::connect::ShelterClient;
use pingji_client::labels;
use pingji_client::shelters::{facilities_words, level_name, locate_rows, parse_facilities, parse_shelter_csv, shelters_csv};
use pingji_proto::v1 as pb;
use serde_json::Value;

use crate::error::ConsoleError;
use crate::output;

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn usage(message: String) -> ConsoleError {
    ConsoleError::Usage(clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("{message}\n")))
}

fn needs(text: &str) -> Result<Vec<i32>, ConsoleError> {
    parse_facilities(text).map_err(usage)
}

fn shelter_line(shelter: &pb::Shelter) -> String {
    let facilities = if shelter.facilities.is_empty() { "-".to_string() } else { facilities_words(&shelter.facilities) };
    format!(
        "{:<12} {:<6} {:>5} in {:>5} reserved {:>5} free of {:<5} {:<11} {}  area {}  {}",
        shelter.id,
        if shelter.open { "open" } else { "closed" },
        shelter.occupied,
        shelter.reserved,
        shelter.free,
        shelter.capacity,
        level_name(shelter.level),
        facilities,
        shelter.area_id,
        shelter.name
    )
}

fn evacuation_line(evacuation: &pb::Evacuation) -> String {
    let overflow = if evacuation.passed_over_shelter_ids.is_empty() {
        String::new()
    } else {
        format!("  (full: {})", evacuation.passed_over_shelter_ids.join(", "))
    };
    let needs =
        if evacuation.needs.is_empty() { String::new() } else { format!(" needing {}", facilities_words(&evacuation.needs)) };
    format!(
        "{}  {} -> {}: {} residents{needs}, {} arrived, {} released, {} places held{overflow}",
        evacuation.id,
        evacuation.incident_id,
        evacuation.shelter_id,
        evacuation.residents,
        evacuation.arrived,
        evacuation.released,
        evacuation.held
    )
}

fn answer_shelter(shelter: &pb::Shelter, as_json: bool) -> Result<(), ConsoleError> {
    if as_json {
        return output::json_document(&to_json(shelter));
    }
    output::line(&shelter_line(shelter))
}

fn answer_evacuation(evacuation: &pb::Evacuation, as_json: bool) -> Result<(), ConsoleError> {
    if as_json {
        return output::json_document(&to_json(evacuation));
    }
    output::line(&evacuation_line(evacuation))
}

/// `shelters import FILE`: nothing is imported when any line is bad.
pub async fn import(client: &mut ShelterClient, path: &Path, as_json: bool) -> Result<(), ConsoleError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConsoleError::ReadFile { path: path.to_path_buf(), source })?;
    let csv = parse_shelter_csv(&text).map_err(|problems| ConsoleError::InFile {
        path: path.to_path_buf(),
        message: format!("nothing imported; fix these lines and import again:\n{}", problems.join("\n")),
    })?;
    let imported = match client.import_shelters(csv.request.clone()).await {
        Ok(imported) => imported.into_inner(),
        Err(status) if status.code() == tonic::Code::InvalidArgument || status.code() == tonic::Code::FailedPrecondition => {
            return Err(ConsoleError::InFile {
                path: path.to_path_buf(),
                message: format!("nothing imported: {}", locate_rows(status.message(), &csv)),
            });
        }
        Err(status) => return Err(status.into()),
    };
    if as_json {
        return output::json_document(&to_json(&imported));
    }
    output::line(&format!("imported {} shelters", imported.shelters))
}

/// `shelters export FILE [--area AREA]`.
pub async fn export(client: &mut ShelterClient, path: &Path, area: &str) -> Result<(), ConsoleError> {
    let listed = client
        .list_shelters(pb::ListSheltersRequest { area_id: area.to_string(), open_only: false })
        .await?
        .into_inner()
        .shelters;
    std::fs::write(path, shelters_csv(&listed))
        .map_err(|error| ConsoleError::InFile { path: path.to_path_buf(), message: format!("cannot write it: {error}") })?;
    output::line(&format!("exported {} shelters to {}", listed.len(), path.display()))
}

pub async fn list(client: &mut ShelterClient, area: &str, open_only: bool, as_json: bool) -> Result<(), ConsoleError> {
    let listed = client.list_shelters(pb::ListSheltersRequest { area_id: area.to_string(), open_only }).await?.into_inner();
    if as_json {
        return output::json_document(&to_json(&listed));
    }
    let mut text: String = listed.shelters.iter().map(|shelter| shelter_line(shelter) + "\n").collect();
    if listed.shelters.is_empty() {
        text.push_str("no shelters\n");
    }
    output::text(&text)
}

pub async fn open(client: &mut ShelterClient, shelter: &str, as_json: bool) -> Result<(), ConsoleError> {
    let opened = client.open_shelter(pb::OpenShelterRequest { shelter_id: shelter.to_string() }).await?.into_inner();
    answer_shelter(&opened, as_json)
}

pub async fn close(client: &mut ShelterClient, shelter: &str, reason: &str, as_json: bool) -> Result<(), ConsoleError> {
    let closed = client
        .close_shelter(pb::CloseShelterRequest { shelter_id: shelter.to_string(), reason: reason.to_string() })
        .await?
        .into_inner();
    answer_shelter(&closed, as_json)
}

pub async fn propose(
    client: &mut ShelterClient,
    incident: &str,
    residents: u32,
    wanted: &str,
    as_json: bool,
) -> Result<(), ConsoleError> {
    let request = pb::ProposeSheltersRequest { incident_id: incident.to_string(), residents, needs: needs(wanted)? };
    let proposed = client.propose_shelters(request).await?.into_inner();
    if as_json {
        return output::json_document(&to_json(&proposed));
    }
    let mut text = format!("open shelters for {residents} residents of {incident}, nearest first:\n");
    for choice in &proposed.choices {
        text.push_str(&format!(
            "  {:<12} {:>6} by car  {:>5} free  {}\n",
            choice.shelter_id,
            labels::duration(choice.travel_s.round() as i64),
            choice.free,
            if choice.fits { "fits" } else { "no room" }
        ));
    }
    if proposed.choices.is_empty() {
        text.push_str("  none: open a shelter with the facilities\n");
    }
    output::text(&text)
}

pub async fn evacuate(
    client: &mut ShelterClient,
    incident: &str,
    residents: u32,
    wanted: &str,
    shelter: &str,
    id: &str,
    as_json: bool,
) -> Result<(), ConsoleError> {
    let request = pb::EvacuateRequest {
        id: id.to_string(),
        incident_id: incident.to_string(),
        residents,
        needs: needs(wanted)?,
        shelter_id: shelter.to_string(),
    };
    let made = client.evacuate(request).await?.into_inner();
    answer_evacuation(&made, as_json)
}

pub async fn check_in(
    client: &mut ShelterClient,
    count: u32,
    evacuation: &str,
    shelter: &str,
    names: Vec<String>,
    as_json: bool,
) -> Result<(), ConsoleError> {
    if evacuation.is_empty() && shelter.is_empty() {
        return Err(usage("give --evacuation ID (its arrivals) or --shelter ID (walk-ins)".to_string()));
    }
    let request =
        pb::CheckInArrivalsRequest { shelter_id: shelter.to_string(), evacuation_id: evacuation.to_string(), count, names };
    let after = client.check_in_arrivals(request).await?.into_inner();
    answer_shelter(&after, as_json)
}

pub async fn check_out(client: &mut ShelterClient, shelter: &str, count: u32, as_json: bool) -> Result<(), ConsoleError> {
    let after =
        client.check_out_residents(pb::CheckOutResidentsRequest { shelter_id: shelter.to_string(), count }).await?.into_inner();
    answer_shelter(&after, as_json)
}

pub async fn release(client: &mut ShelterClient, evacuation: &str, reason: &str, as_json: bool) -> Result<(), ConsoleError> {
    let after = client
        .release_places(pb::ReleasePlacesRequest { evacuation_id: evacuation.to_string(), reason: reason.to_string() })
        .await?
        .into_inner();
    answer_evacuation(&after, as_json)
}

pub async fn evacuations(
    client: &mut ShelterClient,
    incident: &str,
    shelter: &str,
    holding: bool,
    as_json: bool,
) -> Result<(), ConsoleError> {
    let request =
        pb::ListEvacuationsRequest { incident_id: incident.to_string(), shelter_id: shelter.to_string(), holding_only: holding };
    let listed = client.list_evacuations(request).await?.into_inner();
    if as_json {
        return output::json_document(&to_json(&listed));
    }
    let mut text: String = listed.evacuations.iter().map(|evacuation| evacuation_line(evacuation) + "\n").collect();
    if listed.evacuations.is_empty() {
        text.push_str("no evacuations\n");
    }
    output::text(&text)
}

pub async fn occupancy(client: &mut ShelterClient, shelter: &str, as_json: bool) -> Result<(), ConsoleError> {
    let answer = client.shelter_occupancy(pb::ShelterOccupancyRequest { shelter_id: shelter.to_string() }).await?.into_inner();
    if as_json {
        return output::json_document(&to_json(&answer));
    }
    let mut text = answer.shelter.as_ref().map(|shelter| shelter_line(shelter) + "\n").unwrap_or_default();
    for sample in &answer.samples {
        text.push_str(&format!(
            "  {}  {:>5} in  {:>5} reserved\n",
            labels::utc_time(sample.at_ms),
            sample.occupied,
            sample.reserved
        ));
    }
    output::text(&text)
}
