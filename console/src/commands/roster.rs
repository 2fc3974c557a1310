//! `pingji roster import FILE.csv [--skip-bad]`, `pingji roster list`,
//! `pingji roster show ID`.

use std::path::Path;

use pingji_dispatcher::roster_csv::{RosterCsvError, parse_roster_csv_lenient};
use pingji_proto::v1 as pb;
use serde_json::json;

use crate::connection::Client;
use crate::error::{ConsoleError, bad_line_count, import_error, problem_lines};
use crate::table::Table;
use crate::{json, labels, output};

/// People asked for per `ListAgents` call (the dispatcher's own maximum page).
const PAGE: u32 = 1000;

/// Reads the roster, refuses it whole when a row is bad (unless
/// `skip_bad`), and imports it in one request: the dispatcher applies it
/// all or nothing.
pub async fn import(client: &mut Client, file: &Path, skip_bad: bool, as_json: bool) -> Result<(), ConsoleError> {
    let text = super::read_file(file)?;
    let (agents, problems) = parse_roster_csv_lenient(&text);
    if !problems.is_empty() && !skip_bad {
        return Err(ConsoleError::BadRoster { path: file.to_path_buf(), problems });
    }
    if agents.is_empty() {
        return Err(ConsoleError::EmptyRoster { path: file.to_path_buf(), problems });
    }
    let response =
        client.import_agents(pb::ImportAgentsRequest { agents }).await.map_err(|status| import_error(status, file))?.into_inner();
    if as_json {
        let skipped: Vec<_> =
            problems.iter().map(|problem| json!({ "line": problem.line, "message": problem.message })).collect();
        return output::json_document(&json!({ "imported": response.imported, "skipped": skipped }));
    }
    output::text(&import_text(file, response.imported, &problems))
}

pub fn import_text(file: &Path, imported: u32, skipped: &[RosterCsvError]) -> String {
    let mut text = format!("imported {imported} people from {}\n", file.display());
    if !skipped.is_empty() {
        let lines = bad_line_count(skipped);
        let noun = if lines == 1 { "line" } else { "lines" };
        text.push_str(&format!("skipped {lines} {noun} with problems:{}\n", problem_lines(skipped)));
    }
    text
}

/// What `roster list` asks for.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub area_id: Option<String>,
    pub status: Option<pb::AgentStatus>,
    pub connected_only: bool,
    /// At most this many people; `None`: all of them.
    pub limit: Option<usize>,
}

/// Every person matching `filter`, page by page.
pub async fn fetch_people(client: &mut Client, filter: &ListFilter) -> Result<Vec<pb::Agent>, ConsoleError> {
    let mut people = Vec::new();
    let mut after_id = String::new();
    loop {
        let wanted = filter.limit.map_or(PAGE as usize, |limit| limit.saturating_sub(people.len()).min(PAGE as usize));
        if wanted == 0 {
            break;
        }
        let request = pb::ListAgentsRequest {
            area_id: filter.area_id.clone().unwrap_or_default(),
            status: filter.status.unwrap_or(pb::AgentStatus::Unspecified) as i32,
            connected_only: filter.connected_only,
            limit: wanted as u32,
            after_id: after_id.clone(),
        };
        let page = client.list_agents(request).await?.into_inner().agents;
        let full = page.len() == wanted;
        match page.last().and_then(|agent| agent.spec.as_ref()) {
            Some(spec) => after_id = spec.id.clone(),
            None => break,
        }
        people.extend(page);
        if !full {
            break;
        }
    }
    Ok(people)
}

pub async fn list(client: &mut Client, filter: &ListFilter, as_json: bool) -> Result<(), ConsoleError> {
    let people = fetch_people(client, filter).await?;
    if as_json {
        return output::json_document(&json!({ "agents": people.iter().map(json::agent).collect::<Vec<_>>() }));
    }
    output::text(&people_text(&people))
}

pub fn people_text(people: &[pb::Agent]) -> String {
    if people.is_empty() {
        return "no people match\n".to_string();
    }
    let mut table = Table::new(&["ID", "NAME", "ROLE", "STATUS", "CONNECTED", "HOME", "SKILLS", "INCIDENT"]);
    for agent in people {
        let Some(spec) = agent.spec.as_ref() else {
            continue;
        };
        table.row(vec![
            spec.id.clone(),
            spec.name.clone(),
            labels::role_key(spec.role).to_string(),
            labels::agent_status_name(agent.status).to_string(),
            if agent.connected { "yes" } else { "" }.to_string(),
            spec.home_area_id.clone(),
            spec.skills.join(","),
            agent.current_incident_id.clone(),
        ]);
    }
    let mut text = table.render();
    text.push_str(&format!("{} people\n", people.len()));
    text
}

pub async fn show(client: &mut Client, id: &str, as_json: bool) -> Result<(), ConsoleError> {
    let agent = client.get_agent(pb::GetAgentRequest { id: id.to_string() }).await?.into_inner();
    if as_json {
        return output::json_document(&json::agent_detail(&agent));
    }
    output::text(&person_text(&agent, labels::now_ms()))
}

/// One person in full, phone included: `roster show` is an operator's tool.
pub fn person_text(agent: &pb::Agent, now_ms: i64) -> String {
    let spec = agent.spec.clone().unwrap_or_default();
    let live = match (&agent.location, agent.connected) {
        (Some(_), _) => {
            format!("{} ({} ago)", labels::location_text(agent.location.as_ref()), labels::age(agent.location_at_ms, now_ms))
        }
        (None, true) => "not reported yet".to_string(),
        (None, false) => String::new(),
    };
    let fields = [
        ("id", spec.id.clone()),
        ("name", spec.name.clone()),
        ("role", labels::role_key(spec.role).to_string()),
        ("status", labels::agent_status_name(agent.status).to_string()),
        ("skills", spec.skills.join(", ")),
        ("phone", spec.phone.clone()),
        ("home area", spec.home_area_id.clone()),
        ("home", labels::location_text(spec.home.as_ref())),
        ("travel mode", labels::travel_mode_key(spec.travel_mode).to_string()),
        ("on duty at start", if spec.on_duty { "yes" } else { "no" }.to_string()),
        ("connected", if agent.connected { "yes" } else { "no" }.to_string()),
        ("live location", live),
        ("in grid", agent.grid_id.clone()),
        ("current incident", agent.current_incident_id.clone()),
        ("recent assignments", agent.assignments_recent.to_string()),
    ];
    key_values(&fields)
}

/// `key: value` lines with the values aligned.
pub fn key_values(fields: &[(&str, String)]) -> String {
    let width = fields.iter().map(|(key, _)| key.len()).max().unwrap_or(0) + 1;
    fields.iter().map(|(key, value)| format!("{:<width$} {value}", format!("{key}:")).trim_end().to_string() + "\n").collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str, name: &str) -> pb::Agent {
        pb::Agent {
            spec: Some(pb::AgentSpec {
                id: id.into(),
                name: name.into(),
                role: pb::Role::Volunteer as i32,
                skills: vec!["first_aid".into(), "driving".into()],
                phone: "13900000000".into(),
                home_area_id: "d1-s1-c1-g1".into(),
                ..Default::default()
            }),
            status: pb::AgentStatus::Available as i32,
            connected: true,
            ..Default::default()
        }
    }

    #[test]
    fn the_people_table_aligns_chinese_names_and_hides_phones() {
        let text = people_text(&[person("p0001", "黄磊"), person("p0002", "欧阳桂英")]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ID     NAME      ROLE       STATUS     CONNECTED  HOME         SKILLS             INCIDENT");
        assert_eq!(lines[1], "p0001  黄磊      volunteer  available  yes        d1-s1-c1-g1  first_aid,driving");
        assert_eq!(lines[2], "p0002  欧阳桂英  volunteer  available  yes        d1-s1-c1-g1  first_aid,driving");
        assert_eq!(lines[3], "2 people");
        assert!(!text.contains("139"));
    }

    #[test]
    fn showing_one_person_includes_the_phone() {
        let text = person_text(&person("p0001", "黄磊"), 0);
        assert!(text.contains("phone:              13900000000\n"), "{text}");
        assert!(text.contains("live location:      not reported yet\n"), "{text}");
    }

    #[test]
    fn skipped_rows_are_listed_by_line() {
        let skipped = [
            RosterCsvError { line: 3, message: "unknown role \"boss\"".into() },
            RosterCsvError { line: 3, message: "name is empty".into() },
        ];
        assert_eq!(
            import_text(Path::new("r.csv"), 5, &skipped),
            "imported 5 people from r.csv\nskipped 1 line with problems:\n  line 3: unknown role \"boss\"\n  line 3: name is empty\n"
        );
    }
}
