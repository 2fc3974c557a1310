//! `pingji agents nearby --at LON,LAT [-k N] [--skill S]... [--available]`.

use pingji_proto::v1 as pb;
use serde_json::json;

use crate::connection::Client;
use crate::error::ConsoleError;
use crate::table::Table;
use pingji_client::labels;

use crate::{json, output};

pub async fn nearby(
    client: &mut Client,
    at: pb::Location,
    k: u32,
    skills: Vec<String>,
    available_only: bool,
    as_json: bool,
) -> Result<(), ConsoleError> {
    let request = pb::NearbyAgentsRequest { at: Some(at), k, skills, available_only };
    let nearby = client.nearby_agents(request).await?.into_inner().agents;
    if as_json {
        return output::json_document(&json!({ "agents": nearby.iter().map(json::nearby_agent).collect::<Vec<_>>() }));
    }
    output::text(&nearby_text(&nearby))
}

pub fn nearby_text(nearby: &[pb::NearbyAgent]) -> String {
    if nearby.is_empty() {
        return "nobody near there matches (only people with a live location count)\n".to_string();
    }
    let mut table = Table::new(&["#", "ID", "NAME", "ROLE", "STATUS", "DISTANCE", "ETA", "TRAVEL", "SKILLS"])
        .align_right(0)
        .align_right(5)
        .align_right(6);
    for (rank, candidate) in nearby.iter().enumerate() {
        let agent = candidate.agent.clone().unwrap_or_default();
        let spec = agent.spec.unwrap_or_default();
        table.row(vec![
            (rank + 1).to_string(),
            spec.id,
            spec.name,
            labels::role_key(spec.role).to_string(),
            labels::agent_status_name(agent.status).to_string(),
            format!("{:.0} m", candidate.distance_m),
            format!("{:.0} s", candidate.eta_s),
            labels::travel_mode_key(spec.travel_mode).to_string(),
            spec.skills.join(","),
        ]);
    }
    table.render()
}
