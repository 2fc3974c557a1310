//! `pingji incident create|list|show|timeline|export-eido|import-eido|cancel|close`
//! (`why` and `merge` are in [`super::why`]).

use pingji_proto::v1 as pb;
use serde_json::json;

use crate::cli::CreateIncidentArgs;
use crate::commands::roster::key_values;
use crate::connection::Client;
use crate::error::ConsoleError;
use crate::table::Table;
use pingji_client::{events, labels};

use crate::{json, output};

pub async fn create(client: &mut Client, args: CreateIncidentArgs, as_json: bool) -> Result<(), ConsoleError> {
    let request = pb::CreateIncidentRequest {
        id: args.id.unwrap_or_default(),
        location: Some(args.at),
        category: args.category,
        priority: args.priority,
        required_skills: args.skills,
        headcount: args.need,
        description: args.description,
        force: args.force,
    };
    let decision = match args.merge_into {
        Some(into) => super::why::Decision::MergeInto(into),
        None if args.anyway => super::why::Decision::Create,
        None => super::why::check_duplicates(client, &request).await?,
    };
    if let super::why::Decision::MergeInto(into) = decision {
        let merge =
            pb::MergeIncidentsRequest { incident_id: String::new(), into_incident_id: into.clone(), report: Some(request) };
        let incident = client.merge_incidents(merge).await?.into_inner();
        if as_json {
            return output::json_document(&json::incident(&incident));
        }
        let duplicate = incident.merged_from.last().cloned().unwrap_or_default();
        return output::line(&format!("recorded {duplicate} as a duplicate of {} (merged; offered to nobody)", incident.id));
    }
    let incident = client.create_incident(request).await?.into_inner();
    if as_json {
        return output::json_document(&json::incident(&incident));
    }
    output::text(&created_text(&incident))
}

pub fn created_text(incident: &pb::Incident) -> String {
    let place =
        if incident.grid_id.is_empty() { "outside every grid".to_string() } else { format!("in grid {}", incident.grid_id) };
    let mut text = format!(
        "reported {} ({} P{}, needs {}) {place}; {}, {} offer(s) out\n",
        incident.id,
        incident.category,
        incident.priority,
        people(incident.headcount),
        labels::incident_status_name(incident.status),
        incident.open_offers.len()
    );
    if let Some(shortfall) = &incident.unstaffable {
        text.push_str(&format!("it cannot be staffed: {}\n", events::roster_shortfall_words(shortfall)));
    }
    text
}

pub async fn list(client: &mut Client, open_only: bool, as_json: bool) -> Result<(), ConsoleError> {
    // Pages of 1000, sorted by id, until a short page.
    let mut incidents: Vec<pb::Incident> = Vec::new();
    loop {
        let after_id = incidents.last().map(|incident| incident.id.clone()).unwrap_or_default();
        let first = after_id.is_empty();
        let answer = client.list_incidents(pb::ListIncidentsRequest { open_only, limit: 1000, after_id }).await?;
        if first {
            output::shard_note(&answer, "incidents")?;
        }
        let page = answer.into_inner().incidents;
        let full = page.len() == 1000;
        incidents.extend(page);
        if !full {
            break;
        }
    }
    if as_json {
        return output::json_document(&json!({ "incidents": incidents.iter().map(json::incident).collect::<Vec<_>>() }));
    }
    output::text(&incidents_text(&incidents, labels::now_ms()))
}

pub fn incidents_text(incidents: &[pb::Incident], now_ms: i64) -> String {
    if incidents.is_empty() {
        return "no incidents\n".to_string();
    }
    let mut table = Table::new(&["ID", "STATUS", "P", "CATEGORY", "STAFFED", "OFFERS", "GRID", "MODE", "REPORTED", "AGE"])
        .align_right(4)
        .align_right(5);
    for incident in incidents {
        table.row(vec![
            incident.id.clone(),
            labels::incident_status_name(incident.status).to_string(),
            incident.priority.to_string(),
            incident.category.clone(),
            format!("{}/{}", incident.assignments.len(), incident.headcount),
            incident.open_offers.len().to_string(),
            incident.grid_id.clone(),
            labels::mode_key(incident.mode).to_string(),
            labels::utc_time(incident.reported_at_ms),
            labels::age(incident.reported_at_ms, now_ms),
        ]);
    }
    let mut text = table.render();
    let awaiting = incidents.iter().filter(|incident| incident.status == pb::IncidentStatus::Reported as i32).count();
    if awaiting > 0 {
        text.push_str(&format!(
            "{awaiting} field report(s) wait for triage (status reported): \
             pingji report triage ID accept | merge INTO_ID | reject --reason TEXT\n"
        ));
    }
    text
}

/// The incident as a NENA EIDO document, to stdout or a file.
pub async fn export_eido(client: &mut Client, id: &str, path: Option<&std::path::Path>) -> Result<(), ConsoleError> {
    let document = client.export_eido(pb::ExportEidoRequest { incident_id: id.to_string() }).await?.into_inner();
    match path {
        Some(path) => std::fs::write(path, document.json.as_bytes() as &[u8]).map_err(|error| ConsoleError::InFile {
            path: path.to_path_buf(),
            message: format!("cannot write the EIDO: {error}"),
        }),
        None => output::text(&format!("{}\n", document.json)),
    }
}

/// A NENA EIDO file reported as a new incident.
pub async fn import_eido(
    client: &mut Client,
    path: &std::path::Path,
    default_category: String,
    force: bool,
    as_json: bool,
) -> Result<(), ConsoleError> {
    let json = super::read_file(path)?;
    let request = pb::ImportEidoRequest { document: Some(pb::EidoDocument { json }), default_category, force };
    let incident = client.import_eido(request).await?.into_inner();
    if as_json {
        return output::json_document(&json::incident(&incident));
    }
    output::text(&format!("from EIDO {}: {}", incident.source_id, created_text(&incident)))
}

pub async fn show(client: &mut Client, id: &str, as_json: bool) -> Result<(), ConsoleError> {
    let incident = client.get_incident(pb::GetIncidentRequest { id: id.to_string() }).await?.into_inner();
    print_incident(&incident, as_json)?;
    // A field report awaiting triage: the open incidents it may repeat, so
    // that the operator can merge it (`report triage ID merge INTO_ID`).
    // Dispatchers and up may ask; for a viewer the question is left out.
    if !as_json && incident.status == pb::IncidentStatus::Reported as i32 {
        let query = pb::FindDuplicatesRequest { incident_id: incident.id.clone(), ..Default::default() };
        if let Ok(found) = client.find_duplicates(query).await {
            let found = found.into_inner();
            if !found.duplicates.is_empty() {
                output::text(&super::why::duplicates_text(&found))?;
            }
        }
    }
    Ok(())
}

/// Every event of the incident kept in the journal, a page at a time.
pub async fn timeline(client: &mut Client, id: &str, as_json: bool) -> Result<(), ConsoleError> {
    let mut events = Vec::new();
    let mut from_seq = 0;
    let mut complete = false;
    loop {
        let request = pb::IncidentTimelineRequest { incident_id: id.to_string(), from_seq, limit: 0 };
        let page = client.incident_timeline(request).await?.into_inner();
        if from_seq == 0 {
            complete = page.complete;
        }
        events.extend(page.events);
        if page.next_seq == 0 {
            break;
        }
        from_seq = page.next_seq;
    }
    if as_json {
        return output::json_document(&serde_json::Value::Array(events.iter().map(json::event).collect()));
    }
    let mut text = String::new();
    if !complete {
        text.push_str("(the incident's first events are no longer kept: the journal's retention limit)\n");
    }
    for event in &events {
        text.push_str(&pingji_client::events::line(event));
        text.push('\n');
    }
    output::text(&text)
}

pub async fn cancel(client: &mut Client, id: &str, reason: &str, as_json: bool) -> Result<(), ConsoleError> {
    let request = pb::CancelIncidentRequest { id: id.to_string(), reason: reason.to_string() };
    let incident = client.cancel_incident(request).await?.into_inner();
    if as_json {
        return output::json_document(&json::incident(&incident));
    }
    output::line(&format!("cancelled {}", incident.id))
}

pub async fn close(client: &mut Client, id: &str, feedback: &str, as_json: bool) -> Result<(), ConsoleError> {
    let request = pb::CloseIncidentRequest { id: id.to_string(), feedback: feedback.to_string() };
    let incident = client.close_incident(request).await?.into_inner();
    if as_json {
        return output::json_document(&json::incident(&incident));
    }
    output::line(&format!("closed {}", incident.id))
}

fn print_incident(incident: &pb::Incident, as_json: bool) -> Result<(), ConsoleError> {
    if as_json {
        return output::json_document(&json::incident(incident));
    }
    output::text(&incident_text(incident, labels::now_ms()))
}

/// One incident in full: its fields, then its open offers and assignments.
pub fn incident_text(incident: &pb::Incident, now_ms: i64) -> String {
    let places: Vec<String> = [
        ("district", &incident.district_id),
        ("street", &incident.street_id),
        ("community", &incident.community_id),
        ("grid", &incident.grid_id),
    ]
    .iter()
    .filter(|(_, id)| !id.is_empty())
    .map(|(level, id)| format!("{level} {id}"))
    .collect();
    let mut fields = vec![
        ("id", incident.id.clone()),
        ("status", labels::incident_status_name(incident.status).to_string()),
        ("category", incident.category.clone()),
        ("priority", incident.priority.to_string()),
        ("needs", format!("{}{}", people(incident.headcount), skills_text(&incident.required_skills))),
        ("description", incident.description.clone()),
        ("location", labels::location_text(incident.location.as_ref())),
        ("placed in", if places.is_empty() { "outside every area".to_string() } else { places.join(", ") }),
        ("mode", mode_now_and_when_reported(incident)),
        ("offered from", labels::level_name(incident.scope).to_string()),
        (
            "reported",
            format!(
                "{} by {} ({} ago)",
                labels::utc_time(incident.reported_at_ms),
                incident.reported_by,
                labels::age(incident.reported_at_ms, now_ms)
            ),
        ),
    ];
    if !incident.reported_by_agent.is_empty() {
        fields.push(("reporter", incident.reported_by_agent.clone()));
        fields.push(("report", incident.report_text.replace('\n', "; ")));
        if !incident.photo_ref.is_empty() {
            fields.push(("photo", incident.photo_ref.clone()));
        }
    }
    if let Some(shortfall) = &incident.unstaffable {
        fields.push(("unstaffable", format!("{}; change the roster or the incident", events::roster_shortfall_words(shortfall))));
    }
    if incident.status == pb::IncidentStatus::Reported as i32 {
        fields.push((
            "triage",
            format!(
                "waiting for an operator: pingji report triage {} accept | merge INTO_ID | reject --reason TEXT",
                incident.id
            ),
        ));
    }
    if !incident.plan_activation_id.is_empty() {
        fields.push(("plan activation", incident.plan_activation_id.clone()));
    }
    if !incident.merged_into.is_empty() {
        fields.push(("merged into", incident.merged_into.clone()));
    }
    if !incident.merged_from.is_empty() {
        fields.push(("merged from", incident.merged_from.join(", ")));
    }
    if incident.reporters.len() > 1 {
        fields.push(("reporters", incident.reporters.join(", ")));
    }
    if incident.ended_at_ms > 0 {
        fields.push(("ended", labels::utc_time(incident.ended_at_ms)));
    }
    if !incident.feedback.is_empty() {
        let label = if incident.status == pb::IncidentStatus::Rejected as i32 { "rejected because" } else { "feedback" };
        fields.push((label, incident.feedback.replace('\n', "; ")));
    }
    let mut text = key_values(&fields);
    text.push('\n');
    text.push_str(&offers_text(&incident.open_offers, now_ms));
    text.push('\n');
    text.push_str(&assignments_text(&incident.assignments));
    text.push_str(&photos_text(incident));
    text
}

/// The incident's photos, with how to save one; nothing when it has none.
pub fn photos_text(incident: &pb::Incident) -> String {
    let photos = super::photo::incident_photos(incident);
    if photos.is_empty() {
        return String::new();
    }
    let mut table = Table::new(&["FROM", "PHOTO"]);
    for (from, photo_ref) in photos {
        table.row(vec![from, photo_ref]);
    }
    format!("\nphotos (save one: pingji photo get PHOTO -o FILE):\n{}", table.render())
}

/// "1 person", "3 people".
fn people(count: u32) -> String {
    if count == 1 { "1 person".to_string() } else { format!("{count} people") }
}

/// The mode in force where the incident is now, and the one it was
/// reported (and first handled) in: a switch since makes them differ.
fn mode_now_and_when_reported(incident: &pb::Incident) -> String {
    let now = labels::mode_text(incident.mode);
    if incident.reported_mode == pb::Mode::Unspecified as i32 {
        return format!("{now} now (the mode when reported was not recorded)");
    }
    let then = labels::mode_text(incident.reported_mode);
    if incident.reported_mode == incident.mode {
        format!("{now} now, as when reported")
    } else {
        format!("{now} now, {then} when reported")
    }
}

fn skills_text(skills: &[String]) -> String {
    if skills.is_empty() { String::new() } else { format!(" with {}", skills.join(", ")) }
}

pub fn offers_text(offers: &[pb::Offer], now_ms: i64) -> String {
    if offers.is_empty() {
        return "open offers: none\n".to_string();
    }
    let mut table = Table::new(&["OFFER", "TO", "DISTANCE", "ETA", "LEVEL", "ANSWER WITHIN"]).align_right(2).align_right(3);
    for offer in offers {
        let left_s = (offer.deadline_ms - now_ms).max(0) / 1000;
        table.row(vec![
            offer.offer_id.clone(),
            offer.agent_id.clone(),
            format!("{:.0} m", offer.distance_m),
            format!("{:.0} s", offer.eta_s),
            labels::level_name(offer.level).to_string(),
            format!("{left_s} s"),
        ]);
    }
    format!("open offers:\n{}", table.render())
}

pub fn assignments_text(assignments: &[pb::Assignment]) -> String {
    if assignments.is_empty() {
        return "assignments: none\n".to_string();
    }
    let mut table = Table::new(&["PERSON", "OFFER", "ASSIGNED", "ARRIVED", "COMPLETED", "FEEDBACK"]);
    for assignment in assignments {
        table.row(vec![
            assignment.agent_id.clone(),
            assignment.offer_id.clone(),
            labels::utc_time(assignment.assigned_at_ms),
            labels::utc_time(assignment.arrived_at_ms),
            labels::utc_time(assignment.completed_at_ms),
            assignment.feedback.clone(),
        ]);
    }
    format!("assignments:\n{}", table.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident() -> pb::Incident {
        pb::Incident {
            id: "inc-000001".into(),
            category: "medical".into(),
            priority: 1,
            headcount: 2,
            status: pb::IncidentStatus::Offered as i32,
            reported_at_ms: 1_000_000,
            reported_by: "operator:li".into(),
            grid_id: "d1-s1-c1-g1".into(),
            mode: pb::Mode::Normal as i32,
            open_offers: vec![pb::Offer {
                offer_id: "off-2".into(),
                agent_id: "p0003".into(),
                distance_m: 240.4,
                eta_s: 173.0,
                deadline_ms: 1_300_000,
                level: pb::AreaLevel::Grid as i32,
                ..Default::default()
            }],
            assignments: vec![pb::Assignment {
                agent_id: "p0001".into(),
                offer_id: "off-1".into(),
                assigned_at_ms: 1_100_000,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn the_incident_list_shows_staffing_and_age() {
        let text = incidents_text(&[incident()], 1_000_000 + 125_000);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ID          STATUS   P  CATEGORY  STAFFED  OFFERS  GRID         MODE    REPORTED              AGE");
        assert_eq!(lines[1], "inc-000001  offered  1  medical       1/2       1  d1-s1-c1-g1  normal  1970-01-01 00:16:40Z  2m");
    }

    #[test]
    fn an_incident_shows_its_offers_and_assignments() {
        let text = incident_text(&incident(), 1_200_000);
        assert!(
            text.contains(
                "open offers:\nOFFER  TO     DISTANCE    ETA  LEVEL  ANSWER WITHIN\noff-2  p0003     240 m  173 s  grid   100 s\n"
            ),
            "{text}"
        );
        assert!(text.contains("assignments:\nPERSON  OFFER  ASSIGNED"), "{text}");
        assert!(text.contains("p0001   off-1  1970-01-01 00:18:20Z"), "{text}");
        assert!(text.contains("placed in:    grid d1-s1-c1-g1\n"), "{text}");
    }

    #[test]
    fn an_incident_shows_the_mode_now_and_when_reported_and_counts_people_in_the_singular() {
        let mut one = incident();
        one.headcount = 1;
        one.required_skills = vec!["first_aid".into()];
        one.mode = pb::Mode::EmergencyIi as i32;
        one.reported_mode = pb::Mode::Normal as i32;
        let text = incident_text(&one, 1_200_000);
        assert!(text.contains("needs:        1 person with first_aid\n"), "{text}");
        assert!(text.contains("mode:         emergency II (orange) now, normal when reported\n"), "{text}");
        assert!(created_text(&one).contains("(medical P1, needs 1 person)"), "{}", created_text(&one));
        one.reported_mode = one.mode;
        assert!(incident_text(&one, 0).contains("mode:         emergency II (orange) now, as when reported\n"));
        one.unstaffable = Some(pb::RosterShortfall { needed: 1, missing_skills: vec!["firstaid".into()], ..Default::default() });
        assert!(
            incident_text(&one, 0)
                .contains("unstaffable:  nobody on the roster has firstaid; change the roster or the incident\n"),
            "{}",
            incident_text(&one, 0)
        );
        assert!(
            created_text(&one).ends_with("\nit cannot be staffed: nobody on the roster has firstaid\n"),
            "{}",
            created_text(&one)
        );
        one.reported_mode = pb::Mode::Unspecified as i32;
        assert!(incident_text(&one, 0).contains("emergency II (orange) now (the mode when reported was not recorded)"));
        assert!(incident_text(&incident(), 0).contains("needs:        2 people\n"));
    }

    fn field_report() -> pb::Incident {
        pb::Incident {
            id: "inc-000002".into(),
            category: "flooding".into(),
            priority: 3,
            headcount: 1,
            status: pb::IncidentStatus::Reported as i32,
            reported_at_ms: 1_000_000,
            reported_by: "agent:p0042".into(),
            reported_by_agent: "p0042".into(),
            report_text: "积水没过脚踝".into(),
            photo_ref: "photos/42.jpg".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_field_report_shows_its_reporter_text_and_how_to_triage_it() {
        let text = incident_text(&field_report(), 1_060_000);
        assert!(text.contains("status:       reported\n"), "{text}");
        assert!(text.contains("reporter:     p0042\n"), "{text}");
        assert!(text.contains("report:       积水没过脚踝\n"), "{text}");
        assert!(text.contains("photo:        photos/42.jpg\n"), "{text}");
        assert!(text.contains("triage:       waiting for an operator: pingji report triage inc-000002 accept"), "{text}");
        let list = incidents_text(&[incident(), field_report()], 1_060_000);
        assert!(list.contains("inc-000002  reported  3  flooding      0/1"), "{list}");
        assert!(list.contains("1 field report(s) wait for triage (status reported)"), "{list}");
        assert!(!incidents_text(&[incident()], 0).contains("triage"));
    }
}
