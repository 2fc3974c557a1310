//! `pingji mode set AREA normal|emergency --grade G --reason TEXT` and
//! `pingji mode show`.

use pingji_proto::v1 as pb;
use serde_json::json;

use crate::connection::Client;
use crate::error::ConsoleError;
use crate::table::Table;
use pingji_client::labels;

use crate::{json, output};

pub async fn set(client: &mut Client, area_id: &str, mode: pb::Mode, reason: &str, as_json: bool) -> Result<(), ConsoleError> {
    let request = pb::SetModeRequest { area_id: area_id.to_string(), mode: mode as i32, reason: reason.to_string() };
    let area = client.set_mode(request).await?.into_inner();
    if as_json {
        return output::json_document(&json::area(&area));
    }
    let mut text = format!("{} ({}) is now in {} mode", area.id, area.name, labels::mode_text(area.mode));
    if area.effective_mode != area.mode {
        text.push_str(&format!("; {} applies there through a wider area", labels::mode_text(area.effective_mode)));
    }
    output::line(&text)
}

/// Areas whose own or effective mode is not normal, widest level first.
pub fn areas_not_normal(areas: &[pb::Area]) -> Vec<&pb::Area> {
    let mut not_normal: Vec<&pb::Area> =
        areas.iter().filter(|area| labels::is_emergency(area.mode) || labels::is_emergency(area.effective_mode)).collect();
    not_normal.sort_by(|a, b| (a.level, &a.id).cmp(&(b.level, &b.id)));
    not_normal
}

pub async fn show(client: &mut Client, as_json: bool) -> Result<(), ConsoleError> {
    let response = client.list_areas(pb::ListAreasRequest::default()).await?.into_inner();
    let not_normal = areas_not_normal(&response.areas);
    if as_json {
        return output::json_document(&json!({ "areas": not_normal.iter().map(|area| json::area(area)).collect::<Vec<_>>() }));
    }
    output::text(&modes_text(&not_normal))
}

/// The table of `mode show`: areas switched themselves first, then those in
/// an emergency only through a wider area, or "all areas normal".
pub fn modes_text(not_normal: &[&pb::Area]) -> String {
    if not_normal.is_empty() {
        return "all areas normal\n".to_string();
    }
    let mut table = Table::new(&["AREA", "NAME", "LEVEL", "OWN MODE", "EFFECTIVE MODE"]);
    let (switched, inherited): (Vec<&&pb::Area>, Vec<&&pb::Area>) =
        not_normal.iter().partition(|area| labels::is_emergency(area.mode));
    for area in switched.iter().chain(inherited.iter()) {
        table.row(vec![
            area.id.clone(),
            area.name.clone(),
            labels::level_name(area.level).to_string(),
            labels::mode_text(area.mode).to_string(),
            labels::mode_text(area.effective_mode).to_string(),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn area(id: &str, level: pb::AreaLevel, mode: pb::Mode, effective: pb::Mode) -> pb::Area {
        pb::Area {
            id: id.into(),
            name: format!("{id}区"),
            level: level as i32,
            mode: mode as i32,
            effective_mode: effective as i32,
            ..Default::default()
        }
    }

    #[test]
    fn all_normal_says_so() {
        let areas = [area("d1", pb::AreaLevel::District, pb::Mode::Normal, pb::Mode::Normal)];
        assert_eq!(modes_text(&areas_not_normal(&areas)), "all areas normal\n");
    }

    #[test]
    fn switched_areas_come_before_those_that_inherit() {
        let areas = [
            area("d1-s1", pb::AreaLevel::Street, pb::Mode::Normal, pb::Mode::EmergencyIi),
            area("d2", pb::AreaLevel::District, pb::Mode::Normal, pb::Mode::Normal),
            area("d1", pb::AreaLevel::District, pb::Mode::EmergencyIi, pb::Mode::EmergencyIi),
        ];
        let text = modes_text(&areas_not_normal(&areas));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1].starts_with("d1     d1区"), "{text}");
        assert!(lines[2].starts_with("d1-s1  d1-s1区  street    normal"), "{text}");
        assert!(!text.contains("d2"));
    }
}
