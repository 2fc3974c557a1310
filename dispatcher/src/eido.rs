//! NENA EIDO (Emergency Incident Data Object, NENA-STA-021.1b, JSON): an
//! incident and its timeline written as an EIDO for another system, and an
//! EIDO from another system read into what `CreateIncident` needs.
//!
//! The format is external: the document is built and read as JSON values
//! here, never as our wire types. What we write and how types and
//! priorities map is documented in `docs/integrations.md` ("EIDO"); the
//! table is [`TYPE_TABLE`]. No I/O here: the server reads the incident and
//! its timeline and creates the incident.

use pingji_proto::v1 as pb;
use serde_json::{Map, Value, json};

use crate::journal::iso8601_utc_from_ms;

/// The EIDO version written and accepted.
pub const EIDO_VERSION: &str = "1.0";
/// Who we are in the documents we write: the agency and the functional
/// element that issues them.
pub const AGENCY_ID: &str = "pingji";
pub const ISSUER_ID: &str = "pingji-dispatcher";
/// A document larger than this is refused before it is parsed.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Priority for an imported incident whose type came from the default
/// category and that gives no priority of its own.
pub const DEFAULT_PRIORITY: u8 = 3;
/// At most this many timeline events are written as notes (the oldest).
pub const MAX_NOTES: usize = 20_000;

/// EIDO incident types (`incidentTypeCommonRegistryText`, matched without
/// regard to case, whole or by the part before its first `.`, `-`, `/`,
/// `_` or space) to our categories, with the priority used when the EIDO
/// gives none. On export a category is written as the first type mapping
/// to it; a category in no row is written as `Other` with the category as
/// `incidentTypeInternalCode`.
pub const TYPE_TABLE: &[(&str, &str, u8)] = &[
    ("Fire", "fire", 1),
    ("Medical", "medical", 1),
    ("EMS", "medical", 1),
    ("Rescue", "rescue", 1),
    ("Hazmat", "hazmat", 1),
    ("Flood", "flood", 2),
    ("Water", "flood", 2),
    ("Weather", "weather", 2),
    ("Traffic", "traffic", 2),
    ("Police", "public_order", 2),
    ("Law", "public_order", 2),
    ("PublicHealth", "public_health", 2),
    ("Utility", "power_outage", 3),
    ("Power", "power_outage", 3),
    ("Welfare", "elder_care", 3),
    ("Evacuation", "evacuation", 2),
];

/// What is wrong with an EIDO offered for import; said so a person can fix
/// the document. `property` names the JSON property at fault.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{message}")]
pub struct EidoError {
    pub property: &'static str,
    pub message: String,
}

fn refuse(property: &'static str, message: impl Into<String>) -> EidoError {
    EidoError { property, message: message.into() }
}

/// An EIDO read for import: what `CreateIncident` needs.
#[derive(Debug, PartialEq)]
pub struct Imported {
    /// The EIDO's `$id`: the incident's id in the system it came from.
    pub source_id: String,
    pub lon: f64,
    pub lat: f64,
    pub category: String,
    pub priority: u8,
    pub description: String,
}

/// A person assigned to the incident, by id and role only.
pub struct Responder<'a> {
    pub agent_id: &'a str,
    /// The role's name (`grid_leader`); empty where the person left the roster.
    pub role: &'a str,
    pub assignment: &'a pb::Assignment,
}

/// The EIDO `$id` of one of our incidents.
pub fn incident_urn(incident_id: &str) -> String {
    format!("urn:emergency:uid:incidentid:{incident_id}:{AGENCY_ID}")
}

/// The EIDO type our category is written as: its table row, or `Other`.
pub fn type_for_category(category: &str) -> &'static str {
    TYPE_TABLE.iter().find(|(_, ours, _)| *ours == category).map_or("Other", |(eido_type, _, _)| eido_type)
}

/// Our category and default priority for an EIDO incident type.
pub fn category_for_type(eido_type: &str) -> Option<(&'static str, u8)> {
    let wanted = eido_type.trim().to_lowercase();
    let leading = wanted.split(['.', '-', '/', '_', ' ']).next().unwrap_or_default();
    let find = |key: &str| {
        TYPE_TABLE.iter().find(|(eido, _, _)| eido.to_lowercase() == key).map(|(_, category, priority)| (*category, *priority))
    };
    find(&wanted).or_else(|| find(leading))
}

fn status_registry(status: pb::IncidentStatus) -> &'static str {
    use pb::IncidentStatus::*;
    match status {
        Closed | Cancelled | Merged | Rejected => "Closed",
        Reported => "Pending",
        Waiting | Offered | Staffed | Unspecified => "Active",
    }
}

fn status_name(status: pb::IncidentStatus) -> &'static str {
    use pb::IncidentStatus::*;
    match status {
        Unspecified => "unspecified",
        Waiting => "waiting",
        Offered => "offered",
        Staffed => "staffed",
        Cancelled => "cancelled",
        Closed => "closed",
        Reported => "reported",
        Merged => "merged",
        Rejected => "rejected",
    }
}

/// Notes are HTML5: text is escaped.
fn html_text(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A PIDF-LO presence document with one WGS84 point (EPSG:4326, latitude
/// first, as GML writes it).
fn pidf_point(entity: &str, lon: f64, lat: f64) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
         xmlns:gp=\"urn:ietf:params:xml:ns:pidf:geopriv10\" xmlns:gml=\"http://www.opengis.net/gml\" \
         entity=\"{entity}\"><tuple id=\"incident\"><status><gp:geopriv><gp:location-info>\
         <gml:Point srsName=\"urn:ogc:def:crs:EPSG::4326\"><gml:pos>{lat} {lon}</gml:pos></gml:Point>\
         </gp:location-info><gp:usage-rules/><gp:method>Manual</gp:method></gp:geopriv></status></tuple></presence>"
    )
}

fn prologue(id: String, at_ms: i64) -> Map<String, Value> {
    let mut component = Map::new();
    component.insert("$id".into(), Value::String(id));
    component.insert("lastUpdateTimeStamp".into(), Value::String(iso8601_utc_from_ms(at_ms)));
    component.insert("updatedByAgencyReference".into(), json!({ "$ref": AGENCY_ID }));
    component
}

fn component(id: String, at_ms: i64, fields: Value) -> Value {
    let mut component = prologue(id, at_ms);
    if let Value::Object(fields) = fields {
        component.extend(fields);
    }
    Value::Object(component)
}

/// The incident and its timeline (oldest first, already redacted for the
/// caller) as an EIDO document.
pub fn export(incident: &pb::Incident, responders: &[Responder<'_>], timeline: &[pb::Event]) -> Value {
    let urn = incident_urn(&incident.id);
    let status = pb::IncidentStatus::try_from(incident.status).unwrap_or(pb::IncidentStatus::Unspecified);
    let last_update = timeline.last().map_or(incident.reported_at_ms, |event| event.at_ms).max(incident.ended_at_ms);

    let location_id = format!("{urn}:location");
    let mut locations = Vec::new();
    if let Some(at) = &incident.location {
        let areas = [&incident.grid_id, &incident.community_id, &incident.street_id, &incident.district_id];
        let areas = areas.iter().filter(|id| !id.is_empty()).map(|id| id.as_str()).collect::<Vec<_>>().join(", ");
        locations.push(component(
            location_id.clone(),
            incident.reported_at_ms,
            json!({
                "locationTypeDescriptionRegistryText": "Incident",
                "locationByValue": pidf_point(&urn, at.lon, at.lat),
                "locationDescriptionText": areas,
            }),
        ));
    }

    let notes: Vec<Value> = timeline
        .iter()
        .map(|event| {
            let text = format!("{} [{}] {}", event.kind, event.actor, pingji_client::events::summary(event));
            let mut note = prologue(format!("{urn}:event:{}", event.seq), event.at_ms);
            note.insert("notesActionComments".into(), Value::String(html_text(text.trim())));
            Value::Object(note)
        })
        .collect();
    let note_refs: Vec<Value> = notes.iter().map(|note| json!({ "$ref": note["$id"] })).collect();

    let mut agents = Vec::new();
    let mut resources = Vec::new();
    for responder in responders {
        let agent_ref = format!("{urn}:agent:{}", responder.agent_id);
        let assignment = responder.assignment;
        let unit_status = if assignment.completed_at_ms > 0 {
            "Available"
        } else if assignment.arrived_at_ms > 0 {
            "OnScene"
        } else {
            "Dispatched"
        };
        let changed_at = assignment.completed_at_ms.max(assignment.arrived_at_ms).max(assignment.assigned_at_ms);
        agents.push(component(
            agent_ref.clone(),
            changed_at,
            json!({ "agentRoleRegistryText": ["Responder"], "agencyReference": { "$ref": AGENCY_ID } }),
        ));
        let role = if responder.role.is_empty() { "unknown" } else { responder.role };
        resources.push(component(
            format!("{urn}:resource:{}", responder.agent_id),
            changed_at,
            json!({
                "agentReference": [{ "$ref": agent_ref }],
                "emergencyResourceTypeCommonRegistryText": "Person",
                "emergencyResourceName": responder.agent_id,
                "resourceAttributeRegistryText": ["Other"],
                "resourceAttributeInternalText": [role],
                "primaryUnitStatusRegistryText": unit_status,
                "secondaryUnitStatusRegistryText": [],
                "activeOnIncidentId": urn,
            }),
        ));
    }

    let mut incident_fields = json!({
        "incidentTypeCommonRegistryText": type_for_category(&incident.category),
        "incidentTypeInternalCode": incident.category,
        "incidentTypeInternalText": if incident.description.is_empty() { &incident.category } else { &incident.description },
        "incidentStatusCommonRegistryText": [status_registry(status)],
        "incidentStatusInternalText": [status_name(status)],
        "internalIncidentId": incident.id,
        "incidentCommonPriorityNumber": incident.priority,
        "incidentPriorityInternalText": format!("P{}", incident.priority),
        "notesReference": note_refs,
    });
    if !locations.is_empty() {
        incident_fields["locationReference"] = json!([{ "$ref": location_id }]);
    }
    if !agents.is_empty() {
        incident_fields["agentReference"] = Value::Array(agents.iter().map(|agent| json!({ "$ref": agent["$id"] })).collect());
    }

    let mut document = prologue(urn.clone(), last_update);
    document.insert("eidoVersion".into(), Value::String(EIDO_VERSION.into()));
    document.insert("issuingElementIdentification".into(), Value::String(ISSUER_ID.into()));
    document.insert("incidentComponent".into(), component(format!("{urn}:incident"), last_update, incident_fields));
    document.insert(
        "agencyComponent".into(),
        json!([component(
            AGENCY_ID.into(),
            incident.reported_at_ms,
            json!({ "agencyRoleDescriptionRegistryText": ["Dispatch"], "agencyType": ["other"] })
        )]),
    );
    if !incident.source_id.is_empty() {
        // Imported here: say where from, so that the other system can link it.
        document.insert(
            "linkComponent".into(),
            json!([component(
                format!("{urn}:source"),
                incident.reported_at_ms,
                json!({ "incidentTrackingIdentifier": incident.source_id, "linkDirectionCode": "RELATED",
                        "transactionReasonText": "imported from this incident" })
            )]),
        );
    }
    if !agents.is_empty() {
        document.insert("agentComponent".into(), Value::Array(agents));
        document.insert("emergencyResourceComponent".into(), Value::Array(resources));
    }
    if !locations.is_empty() {
        document.insert("locationComponent".into(), Value::Array(locations));
    }
    if !notes.is_empty() {
        document.insert("notesComponent".into(), Value::Array(notes));
    }
    Value::Object(document)
}

fn required_string<'a>(object: &'a Map<String, Value>, property: &'static str, whose: &str) -> Result<&'a str, EidoError> {
    match object.get(property) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.trim()),
        Some(Value::String(_)) => Err(refuse(property, format!("{whose} `{property}` is empty; the EIDO schema requires it"))),
        Some(other) => Err(refuse(property, format!("{whose} `{property}` is {}, not a string", kind_of(other)))),
        None => Err(refuse(property, format!("{whose} has no `{property}`; the EIDO schema requires it"))),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn optional_array<'a>(object: &'a Map<String, Value>, property: &'static str) -> Result<&'a [Value], EidoError> {
    match object.get(property) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(refuse(property, format!("the EIDO's `{property}` is {}, not an array", kind_of(other)))),
    }
}

/// Reads an EIDO for import: checks what the schema requires of the
/// document and of the parts we use, then maps its type, priority and
/// location. `default_category` (possibly empty) is used for a type not in
/// [`TYPE_TABLE`] or no type at all.
pub fn import(text: &str, default_category: &str) -> Result<Imported, EidoError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(refuse("json", format!("the EIDO is {} bytes; at most {MAX_DOCUMENT_BYTES} are accepted", text.len())));
    }
    let value: Value = serde_json::from_str(text).map_err(|error| refuse("json", format!("the EIDO is not JSON: {error}")))?;
    let Value::Object(document) = value else {
        return Err(refuse("json", format!("the EIDO is {}, not a JSON object", kind_of(&value))));
    };
    let source_id = required_string(&document, "$id", "the EIDO")?.to_string();
    required_string(&document, "lastUpdateTimeStamp", "the EIDO")?;
    if !matches!(document.get("updatedByAgencyReference"), Some(Value::Object(reference)) if reference.get("$ref").is_some_and(Value::is_string))
    {
        return Err(refuse(
            "updatedByAgencyReference",
            "the EIDO has no `updatedByAgencyReference` with a `$ref`; the EIDO schema requires it",
        ));
    }
    let version = required_string(&document, "eidoVersion", "the EIDO")?;
    if version != EIDO_VERSION {
        return Err(refuse("eidoVersion", format!("EIDO version {version:?} is not supported; only {EIDO_VERSION:?} is")));
    }
    required_string(&document, "issuingElementIdentification", "the EIDO")?;
    if !matches!(document.get("agencyComponent"), Some(Value::Array(_))) {
        return Err(refuse("agencyComponent", "the EIDO has no `agencyComponent` array; the EIDO schema requires it"));
    }

    let incident = match document.get("incidentComponent") {
        None | Some(Value::Null) => None,
        Some(Value::Object(incident)) => Some(incident),
        Some(other) => {
            return Err(refuse(
                "incidentComponent",
                format!("the EIDO's `incidentComponent` is {}, not an object", kind_of(other)),
            ));
        }
    };
    let eido_type = match incident {
        Some(incident) => Some(required_string(incident, "incidentTypeCommonRegistryText", "the incident component")?),
        None => None,
    };
    let default_category = default_category.trim().to_lowercase();
    let (category, table_priority) = match eido_type.and_then(category_for_type) {
        Some((category, priority)) => (category.to_string(), priority),
        None if !default_category.is_empty() => (default_category, DEFAULT_PRIORITY),
        None => {
            let known = TYPE_TABLE.iter().map(|(eido, _, _)| *eido).collect::<Vec<_>>().join(", ");
            let message = match eido_type {
                Some(eido_type) => format!(
                    "EIDO incident type {eido_type:?} is not in the mapping table ({known}); give a default category for it"
                ),
                None => "the EIDO has no `incidentComponent`, so no incident type; give a default category for it".to_string(),
            };
            return Err(refuse("incidentTypeCommonRegistryText", message));
        }
    };
    let priority = match incident.and_then(|incident| incident.get("incidentCommonPriorityNumber")) {
        None | Some(Value::Null) => table_priority,
        Some(Value::Number(number)) => match number.as_i64() {
            Some(given) if given >= 1 => given.min(4) as u8,
            _ => {
                return Err(refuse(
                    "incidentCommonPriorityNumber",
                    format!("EIDO priority {number} is not a whole number of 1 or more (1 is the most urgent)"),
                ));
            }
        },
        Some(other) => {
            return Err(refuse(
                "incidentCommonPriorityNumber",
                format!("the EIDO's `incidentCommonPriorityNumber` is {}, not a number", kind_of(other)),
            ));
        }
    };
    let description = incident
        .and_then(|incident| incident.get("incidentTypeInternalText").and_then(Value::as_str))
        .or(eido_type)
        .unwrap_or_default()
        .chars()
        .take(500)
        .collect();

    let (lon, lat) = location(&document, incident)?;
    Ok(Imported { source_id, lon, lat, category, priority, description })
}

/// The first geodetic point among the locations the incident refers to,
/// then among all the EIDO's locations.
fn location(document: &Map<String, Value>, incident: Option<&Map<String, Value>>) -> Result<(f64, f64), EidoError> {
    let locations = optional_array(document, "locationComponent")?;
    let referenced: Vec<&str> = incident
        .and_then(|incident| incident.get("locationReference"))
        .and_then(Value::as_array)
        .map(|references| references.iter().filter_map(|reference| reference.get("$ref").and_then(Value::as_str)).collect())
        .unwrap_or_default();
    let id_of = |location: &Value| location.get("$id").and_then(Value::as_str).unwrap_or_default().to_string();
    let mut ordered: Vec<&Value> = locations.iter().filter(|location| referenced.contains(&id_of(location).as_str())).collect();
    ordered.extend(locations.iter().filter(|location| !referenced.contains(&id_of(location).as_str())));
    for location in ordered {
        let Some(by_value) = location.get("locationByValue").and_then(Value::as_str) else {
            continue;
        };
        if let Some(point) = gml_pos(by_value) {
            return point.map_err(|message| refuse("locationByValue", message));
        }
    }
    Err(refuse(
        "locationComponent",
        format!(
            "the EIDO has no geodetic location: none of its {} location components has a PIDF-LO point (gml:pos); civic \
             addresses and locations by reference are not geocoded here, so add a point",
            locations.len()
        ),
    ))
}

/// The first `<gml:pos>lat lon</gml:pos>` (any prefix, or none) in a
/// PIDF-LO document, as (lon, lat); `None` where it has none.
fn gml_pos(pidf: &str) -> Option<Result<(f64, f64), String>> {
    let mut rest = pidf;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let tag_end = after.find('>')?;
        let tag = &after[..tag_end];
        let name = tag.split_whitespace().next().unwrap_or_default();
        let local = name.rsplit(':').next().unwrap_or_default();
        rest = &after[tag_end + 1..];
        if local != "pos" || name.starts_with('/') || tag.ends_with('/') {
            continue;
        }
        let content = rest.split('<').next().unwrap_or_default();
        let numbers: Vec<&str> = content.split_whitespace().collect();
        let parsed: Vec<f64> = numbers.iter().filter_map(|number| number.parse().ok()).collect();
        if numbers.len() < 2 || parsed.len() != numbers.len() {
            return Some(Err(format!("the PIDF-LO position {:?} is not \"latitude longitude\" in degrees", content.trim())));
        }
        return Some(Ok((parsed[1], parsed[0])));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_category_in_the_table_maps_back_to_itself() {
        for (_, category, priority) in TYPE_TABLE {
            assert_eq!(category_for_type(type_for_category(category)), Some((*category, *priority)));
        }
        assert_eq!(category_for_type("fire.structure"), Some(("fire", 1)));
        assert_eq!(category_for_type("MEDICAL"), Some(("medical", 1)));
        assert_eq!(category_for_type("alien landing"), None);
        assert_eq!(type_for_category("door_to_door_list"), "Other");
    }

    #[test]
    fn a_gml_position_is_read_latitude_first() {
        let pidf = pidf_point("x", 121.5, 31.25);
        assert_eq!(gml_pos(&pidf), Some(Ok((121.5, 31.25))));
        assert_eq!(gml_pos("<civicAddress><A1>DE</A1></civicAddress>"), None);
        assert!(matches!(gml_pos("<pos>north 3</pos>"), Some(Err(_))));
    }
}
