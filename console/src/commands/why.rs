//! `pingji incident why ID [--agent P]`, `incident merge ID --into ID`, and
//! the look for duplicates that `incident create` makes first.

use std::io::{BufRead, IsTerminal, Write};

use pingji_proto::v1 as pb;
use serde_json::{Value, json};

use crate::connection::Client;
use crate::error::ConsoleError;
use crate::table::Table;
use pingji_client::labels;

use crate::{json, output};

pub async fn why(
    client: &mut Client,
    id: &str,
    agent: Option<String>,
    candidates: u32,
    passed_over: u32,
    as_json: bool,
) -> Result<(), ConsoleError> {
    let request =
        pb::ExplainIncidentRequest { incident_id: id.to_string(), agent_id: agent.unwrap_or_default(), candidates, passed_over };
    let explanation = client.explain_incident(request).await?.into_inner();
    if as_json {
        return output::json_document(&explanation_json(&explanation));
    }
    output::text(&explanation_text(&explanation))
}

/// What one person was passed over for, with the detail that lets the
/// operator act: "lacks first_aid", "busy on inc-000003", "location stale
/// since 08:01:12".
pub fn reason_words(passed: &pb::PassedOverAgent) -> String {
    match pb::PassOverReason::try_from(passed.reason) {
        Ok(pb::PassOverReason::LacksSkill) => format!("lacks {}", passed.lacking_skills.join(", ")),
        Ok(pb::PassOverReason::Busy) if !passed.incident_id.is_empty() => format!("busy on {}", passed.incident_id),
        Ok(pb::PassOverReason::Reserve) => format!("reserve in {} mode", labels::mode_key(passed.mode)),
        Ok(pb::PassOverReason::LocationStale) => format!("location stale since {}", labels::utc_time(passed.located_at_ms)),
        Ok(pb::PassOverReason::BeyondTravelLimit) => format!("beyond the travel limit ({} min)", passed.max_travel_s / 60),
        Ok(pb::PassOverReason::Declined) => "declined this incident earlier (or let its offer lapse)".to_string(),
        Ok(pb::PassOverReason::OutsideArea) => format!("outside the area at {} level", labels::level_name(passed.level)),
        Ok(pb::PassOverReason::HoldsOffer) => format!("already holds an offer of {}", passed.incident_id),
        _ => labels::pass_over_reason_name(passed.reason).to_string(),
    }
}

fn distance_words(distance_m: f64) -> String {
    if distance_m >= 1000.0 { format!("{:.1} km", distance_m / 1000.0) } else { format!("{distance_m:.0} m") }
}

pub fn explanation_text(explanation: &pb::ExplainIncidentResponse) -> String {
    let mut text = format!(
        "{}: {} mode, searching at {} level, needs {} more{}\n",
        explanation.incident_id,
        labels::mode_key(explanation.mode),
        labels::level_name(explanation.level),
        explanation.still_needed,
        if explanation.dispatchable { "" } else { " (not being dispatched: the ranking is what it would be)" }
    );
    if explanation.candidates.is_empty() {
        text.push_str("no candidates\n");
    } else {
        // A viewer's answer has no ranks and no ETAs (rank 0).
        let ranked = explanation.candidates.iter().any(|candidate| candidate.rank > 0);
        let mut table = Table::new(&["RANK", "AGENT", "ETA", "DISTANCE", "MODE", "VIA", "RECENT", "OFFER"]).align_right(0);
        for candidate in &explanation.candidates {
            table.row(vec![
                if ranked { candidate.rank.to_string() } else { "-".to_string() },
                candidate.agent_id.clone(),
                if ranked { format!("{:.0} s", candidate.eta_s) } else { "-".to_string() },
                distance_words(candidate.distance_m),
                labels::travel_mode_key(candidate.travel_mode).to_string(),
                candidate.via_area_id.clone(),
                candidate.recent_assignments.to_string(),
                if candidate.offered { "offered now".to_string() } else { String::new() },
            ]);
        }
        text.push_str(&format!("candidates ({} of {}):\n", explanation.candidates.len(), explanation.candidates_total));
        text.push_str(&table.render());
    }
    if !explanation.passed_over.is_empty() {
        let mut table = Table::new(&["AGENT", "DISTANCE", "WHY NOT"]);
        for passed in &explanation.passed_over {
            let distance = if passed.located { distance_words(passed.distance_m) } else { "-".to_string() };
            table.row(vec![passed.agent_id.clone(), distance, reason_words(passed)]);
        }
        text.push_str("passed over, nearest first:\n");
        text.push_str(&table.render());
    }
    if !explanation.reason_counts.is_empty() {
        let counts: Vec<String> = explanation
            .reason_counts
            .iter()
            .map(|count| format!("{} {}", count.people, labels::pass_over_reason_name(count.reason)))
            .collect();
        text.push_str(&format!("everyone passed over: {}\n", counts.join(", ")));
    }
    text
}

fn explanation_json(explanation: &pb::ExplainIncidentResponse) -> Value {
    json!({
        "incident_id": explanation.incident_id,
        "mode": labels::mode_key(explanation.mode),
        "level": labels::level_name(explanation.level),
        "still_needed": explanation.still_needed,
        "dispatchable": explanation.dispatchable,
        "max_travel_s": explanation.max_travel_s,
        "candidates_total": explanation.candidates_total,
        "candidates": explanation.candidates.iter().map(|candidate| json!({
            "rank": candidate.rank,
            "agent_id": candidate.agent_id,
            "eta_s": candidate.eta_s,
            "distance_m": candidate.distance_m,
            "travel_mode": labels::travel_mode_key(candidate.travel_mode),
            "via_area_id": candidate.via_area_id,
            "recent_assignments": candidate.recent_assignments,
            "offered": candidate.offered,
        })).collect::<Vec<_>>(),
        "passed_over": explanation.passed_over.iter().map(|passed| json!({
            "agent_id": passed.agent_id,
            "reason": reason_key(passed.reason),
            "why": reason_words(passed),
            "distance_m": if passed.located { json!(passed.distance_m) } else { Value::Null },
        })).collect::<Vec<_>>(),
        "reason_counts": explanation.reason_counts.iter().map(|count| (reason_key(count.reason).to_string(), json!(count.people))).collect::<serde_json::Map<_, _>>(),
    })
}

fn reason_key(reason: i32) -> &'static str {
    pb::PassOverReason::try_from(reason)
        .map(|reason| reason.as_str_name().trim_start_matches("PASS_OVER_REASON_"))
        .unwrap_or("UNSPECIFIED")
}

pub async fn merge(client: &mut Client, id: &str, into: &str, as_json: bool) -> Result<(), ConsoleError> {
    let request = pb::MergeIncidentsRequest { incident_id: id.to_string(), into_incident_id: into.to_string(), report: None };
    let incident = client.merge_incidents(request).await?.into_inner();
    if as_json {
        return output::json_document(&json::incident(&incident));
    }
    output::line(&format!("merged {id} into {}", incident.id))
}

/// The possible duplicates as lines: "inc-000001 fire P1, 120 m away,
/// reported 4 min ago (offered)".
pub fn duplicates_text(found: &pb::FindDuplicatesResponse) -> String {
    let mut text = format!(
        "possible duplicates (open, within {} m and {} min, same or similar category):\n",
        found.within_m, found.within_minutes
    );
    for duplicate in &found.duplicates {
        let Some(incident) = &duplicate.incident else {
            continue;
        };
        text.push_str(&format!(
            "  {} {} P{}, {} away, reported {} min ago, {}{}\n",
            incident.id,
            incident.category,
            incident.priority,
            distance_words(duplicate.distance_m),
            duplicate.minutes_ago,
            labels::incident_status_name(incident.status),
            if duplicate.same_category { "" } else { " (similar category)" }
        ));
    }
    text
}

/// What to do with a report that may repeat an open incident.
pub enum Decision {
    Create,
    MergeInto(String),
}

/// Looks for open incidents the report may repeat; with some found, asks
/// at a terminal (create anyway, merge into one, or stop) and refuses
/// elsewhere, naming `--anyway` and `--merge-into`.
pub async fn check_duplicates(client: &mut Client, request: &pb::CreateIncidentRequest) -> Result<Decision, ConsoleError> {
    let query =
        pb::FindDuplicatesRequest { location: request.location, category: request.category.clone(), incident_id: String::new() };
    let found = client.find_duplicates(query).await?.into_inner();
    if found.duplicates.is_empty() {
        return Ok(Decision::Create);
    }
    let text = duplicates_text(&found);
    let first = found.duplicates.iter().find_map(|duplicate| duplicate.incident.as_ref()).map(|incident| incident.id.clone());
    let first = first.unwrap_or_default();
    if !std::io::stdin().is_terminal() {
        return Err(ConsoleError::PossibleDuplicate(format!(
            "{}nothing created: run again with --anyway to create it, or --merge-into {first} to record it as that incident's duplicate",
            text
        )));
    }
    output::to_stderr(&text)?;
    output::to_stderr(&format!(
        "create anyway [c], merge into {first} [m], merge into another (type its id), or stop [Enter]? "
    ))?;
    std::io::stderr().flush().map_err(ConsoleError::Output)?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(ConsoleError::Terminal)?;
    match answer.trim() {
        "c" | "C" => Ok(Decision::Create),
        "m" | "M" => Ok(Decision::MergeInto(first)),
        "" => Err(ConsoleError::PossibleDuplicate("stopped: nothing created".to_string())),
        other => Ok(Decision::MergeInto(other.to_string())),
    }
}
