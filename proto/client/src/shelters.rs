//! Shelters from the client's side: shelters read from and written to CSV,
//! shelter events told in words, and the names of the enums.
//!
//! One file, matched by column name (the header is line 1):
//! `id,name,lon,lat,area_id,capacity,facilities`. `area_id` may be empty
//! (the dispatcher places the shelter in the deepest area at its
//! position); `facilities` lists what the shelter offers, separated by `;`
//! (`accessible;medical`), and may be empty.
//!
//! Every problem is told with its line, and a file with any problem imports
//! nothing. The dispatcher's own checks name the row; [`locate_rows`] turns
//! that back into the line.

use std::collections::BTreeMap;

use pb::event::Body;
use pingji_proto::v1 as pb;
use pingji_rules::check_id;

/// The shelters file's columns, in the order written.
pub const SHELTER_COLUMNS: [&str; 7] = ["id", "name", "lon", "lat", "area_id", "capacity", "facilities"];

/// Shelters read from CSV, with the line of each row, ready for `ImportShelters`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShelterCsv {
    pub request: pb::ImportSheltersRequest,
    pub lines: Vec<usize>,
}

pub fn facility_name(facility: i32) -> &'static str {
    match pb::Facility::try_from(facility) {
        Ok(pb::Facility::Accessible) => "accessible",
        Ok(pb::Facility::Medical) => "medical",
        Ok(pb::Facility::Kitchen) => "kitchen",
        Ok(pb::Facility::Power) => "power",
        Ok(pb::Facility::Pets) => "pets",
        _ => "unspecified",
    }
}

/// A facility by name; `wheelchair` is read as `accessible`.
pub fn facility_from_name(name: &str) -> Option<pb::Facility> {
    match name.trim().to_ascii_lowercase().as_str() {
        "accessible" | "wheelchair" => Some(pb::Facility::Accessible),
        "medical" => Some(pb::Facility::Medical),
        "kitchen" => Some(pb::Facility::Kitchen),
        "power" => Some(pb::Facility::Power),
        "pets" => Some(pb::Facility::Pets),
        _ => None,
    }
}

/// Facilities from `accessible;medical` (`;`, `,` or spaces between them).
pub fn parse_facilities(text: &str) -> Result<Vec<i32>, String> {
    text.split([';', ',', ' '])
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            facility_from_name(name)
                .map(i32::from)
                .ok_or_else(|| format!("facility {name:?} is not one of accessible (wheelchair), medical, kitchen, power, pets"))
        })
        .collect()
}

/// Facilities as written in the CSV: `accessible;medical`.
pub fn facilities_words(facilities: &[i32]) -> String {
    facilities.iter().map(|facility| facility_name(*facility)).collect::<Vec<_>>().join(";")
}

pub fn level_name(level: i32) -> &'static str {
    match pb::ShelterLevel::try_from(level) {
        Ok(pb::ShelterLevel::Normal) => "normal",
        Ok(pb::ShelterLevel::NearlyFull) => "nearly full",
        Ok(pb::ShelterLevel::Full) => "full",
        _ => "unspecified",
    }
}

/// Reads the shelters file; `Err` lists every bad line (nothing is imported).
pub fn parse_shelter_csv(text: &str) -> Result<ShelterCsv, Vec<String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let header: Vec<String> = match reader.headers() {
        Ok(header) => header.iter().map(|name| name.trim().to_string()).collect(),
        Err(error) => return Err(vec![format!("shelters csv line 1: {error}")]),
    };
    for column in ["id", "name", "lon", "lat", "capacity"] {
        if !header.iter().any(|name| name == column) {
            return Err(vec![format!(
                "shelters csv line 1: column {column} is missing; the columns are {}",
                SHELTER_COLUMNS.join(",")
            )]);
        }
    }
    if let Some(unknown) = header.iter().find(|name| !SHELTER_COLUMNS.contains(&name.as_str())) {
        return Err(vec![format!(
            "shelters csv line 1: column {unknown:?} is unknown; the columns are {}",
            SHELTER_COLUMNS.join(",")
        )]);
    }
    let mut out = ShelterCsv::default();
    let mut problems = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let line = error.position().map_or(0, |position| position.line());
                problems.push(format!("shelters csv line {line}: {error}"));
                continue;
            }
        };
        let line = record.position().map_or(0, |position| position.line() as usize);
        if record.iter().all(|field| field.trim().is_empty()) {
            continue;
        }
        let row: BTreeMap<&str, &str> = header.iter().map(String::as_str).zip(record.iter().map(str::trim)).collect();
        let field = |name: &str| row.get(name).copied().unwrap_or("");
        let shelter = (|| -> Result<pb::Shelter, String> {
            check_id("shelter id", field("id"))?;
            if field("name").is_empty() {
                return Err("name is empty".to_string());
            }
            let lon: f64 = field("lon").parse().map_err(|_| format!("lon {:?} is not a number", field("lon")))?;
            let lat: f64 = field("lat").parse().map_err(|_| format!("lat {:?} is not a number", field("lat")))?;
            let capacity: u32 = field("capacity")
                .parse()
                .map_err(|_| format!("capacity {:?} is not a whole number of places", field("capacity")))?;
            if capacity == 0 {
                return Err("capacity is 0; a shelter has at least 1 place".to_string());
            }
            Ok(pb::Shelter {
                id: field("id").to_string(),
                name: field("name").to_string(),
                location: Some(pb::Location { lon, lat, crs: 0 }),
                area_id: field("area_id").to_string(),
                capacity,
                facilities: parse_facilities(field("facilities"))?,
                ..pb::Shelter::default()
            })
        })();
        match shelter {
            Ok(shelter) => {
                out.request.shelters.push(shelter);
                out.lines.push(line);
            }
            Err(problem) => problems.push(format!("shelters csv line {line}: {problem}")),
        }
    }
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

/// The dispatcher's "shelter row 3: ..." told as "shelters csv line 4
/// (shelter row 3): ...", so the file can be fixed where it is wrong.
pub fn locate_rows(message: &str, csv: &ShelterCsv) -> String {
    let prefix = "shelter row ";
    if let Some(start) = message.find(prefix) {
        let rest = &message[start + prefix.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(row) = digits.parse::<usize>()
            && let Some(line) = csv.lines.get(row.wrapping_sub(1))
        {
            return format!("{}shelters csv line {line} ({prefix}{row}){}", &message[..start], &rest[digits.len()..]);
        }
    }
    message.to_string()
}

/// The shelters file of these shelters (occupancy is not part of it).
pub fn shelters_csv(shelters: &[pb::Shelter]) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(SHELTER_COLUMNS);
    for shelter in shelters {
        let at = shelter.location.unwrap_or_default();
        let _ = writer.write_record([
            shelter.id.as_str(),
            shelter.name.as_str(),
            &at.lon.to_string(),
            &at.lat.to_string(),
            shelter.area_id.as_str(),
            &shelter.capacity.to_string(),
            &facilities_words(&shelter.facilities),
        ]);
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// The kind name of a shelter body; `None` for other bodies.
pub fn event_kind_name(body: &Body) -> Option<&'static str> {
    Some(match body {
        Body::SheltersImported(_) => "shelters_imported",
        Body::ShelterOpened(_) => "shelter_opened",
        Body::ShelterClosed(_) => "shelter_closed",
        Body::EvacuationAssigned(_) => "evacuation_assigned",
        Body::ArrivalsCheckedIn(_) => "arrivals_checked_in",
        Body::ResidentsLeft(_) => "residents_left",
        Body::PlacesReleased(_) => "places_released",
        Body::ShelterLevelChanged(_) => "shelter_level_changed",
        _ => return None,
    })
}

/// A shelter event in words; `None` for other bodies. Residents' names are
/// never shown, only how many there are.
pub fn event_summary(body: &Body) -> Option<String> {
    Some(match body {
        Body::SheltersImported(imported) => format!("{} shelters", imported.shelters.len()),
        Body::ShelterOpened(opened) => {
            let by = if opened.activation_id.is_empty() { String::new() } else { format!(" (plan {})", opened.activation_id) };
            format!("shelter {} opened{by}", opened.shelter_id)
        }
        Body::ShelterClosed(closed) => format!("shelter {} closed: {}", closed.shelter_id, closed.reason),
        Body::EvacuationAssigned(assigned) => {
            let needs = if assigned.needs.is_empty() {
                String::new()
            } else {
                format!(" needing {}", facilities_words(&assigned.needs).replace(';', "+"))
            };
            let overflow = if assigned.passed_over_shelter_ids.is_empty() {
                String::new()
            } else {
                format!(" ({} full)", assigned.passed_over_shelter_ids.join(", "))
            };
            format!(
                "{} of {}: {} residents{needs} to shelter {}{overflow}",
                assigned.evacuation_id, assigned.incident_id, assigned.residents, assigned.shelter_id
            )
        }
        Body::ArrivalsCheckedIn(arrived) => {
            let of =
                if arrived.evacuation_id.is_empty() { " walk-ins".to_string() } else { format!(" of {}", arrived.evacuation_id) };
            format!("{} arrived at shelter {}{of}", arrived.count, arrived.shelter_id)
        }
        Body::ResidentsLeft(left) => format!("{} left shelter {}", left.count, left.shelter_id),
        Body::PlacesReleased(released) => format!(
            "{} places of {} released at shelter {}: {}",
            released.places, released.evacuation_id, released.shelter_id, released.reason
        ),
        Body::ShelterLevelChanged(changed) => format!(
            "shelter {} {}: {} in, {} reserved of {}",
            changed.shelter_id,
            level_name(changed.level),
            changed.occupied,
            changed.reserved,
            changed.capacity
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHELTERS: &str = "id,name,lon,lat,area_id,capacity,facilities\n\
                            school-3,No. 3 School,120.15,30.27,,200,accessible;medical\n\
                            gym,Gym,120.16,30.28,g1,80,\n";

    #[test]
    fn shelters_read_and_write_back_the_same() {
        let read = parse_shelter_csv(SHELTERS).expect("a good file");
        assert_eq!(read.lines, [2, 3]);
        assert_eq!(read.request.shelters[0].facilities.len(), 2);
        let again = parse_shelter_csv(&shelters_csv(&read.request.shelters)).expect("written file read");
        assert_eq!(again.request, read.request);
    }

    #[test]
    fn a_bad_line_is_named_and_nothing_is_read() {
        let bad = format!("{SHELTERS}hall,Hall,120.1,30.2,,lots,\nbarn,Barn,120.1,30.2,,5,sauna\n");
        let problems = parse_shelter_csv(&bad).expect_err("bad lines");
        assert_eq!(
            problems,
            [
                "shelters csv line 4: capacity \"lots\" is not a whole number of places",
                "shelters csv line 5: facility \"sauna\" is not one of accessible (wheelchair), medical, kitchen, power, pets"
            ]
        );
        let read = parse_shelter_csv(SHELTERS).expect("good");
        assert_eq!(
            locate_rows("shelter row 2: area \"g1\" is not on the map", &read),
            "shelters csv line 3 (shelter row 2): area \"g1\" is not on the map"
        );
    }
}
