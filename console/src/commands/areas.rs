//! `pingji areas import FILE.geojson` and `pingji areas list [--level L]`.

use std::path::Path;

use pingji_proto::v1 as pb;
use serde_json::json;

use crate::connection::Client;
use crate::error::{ConsoleError, import_error};
use crate::table::Table;
use pingji_client::labels;

use crate::{json, output};

pub async fn import(client: &mut Client, file: &Path, as_json: bool) -> Result<(), ConsoleError> {
    let geojson = super::read_file(file)?;
    let counts =
        client.import_areas(pb::ImportAreasRequest { geojson }).await.map_err(|status| import_error(status, file))?.into_inner();
    if as_json {
        return output::json_document(&json!({ "areas": counts.areas, "service_centres": counts.service_centres }));
    }
    output::line(&format!(
        "imported {} areas and {} service centres from {}",
        counts.areas,
        counts.service_centres,
        file.display()
    ))
}

pub async fn list(client: &mut Client, level: Option<pb::AreaLevel>, as_json: bool) -> Result<(), ConsoleError> {
    let request = pb::ListAreasRequest { level: level.unwrap_or(pb::AreaLevel::Unspecified) as i32, with_geometry: false };
    let response = client.list_areas(request).await?.into_inner();
    if as_json {
        return output::json_document(&json::areas(&response));
    }
    // Service centres are not a level: shown only with the whole map.
    output::text(&areas_text(&response, level.is_none()))
}

/// The areas as a table, with the service centres below when `with_centres`.
pub fn areas_text(response: &pb::ListAreasResponse, with_centres: bool) -> String {
    if response.areas.is_empty() {
        return "no areas; import them with `pingji areas import FILE.geojson`\n".to_string();
    }
    let mut areas = Table::new(&["ID", "NAME", "LEVEL", "PARENT", "MODE", "EFFECTIVE"]);
    for area in &response.areas {
        areas.row(vec![
            area.id.clone(),
            area.name.clone(),
            labels::level_name(area.level).to_string(),
            area.parent_id.clone(),
            labels::mode_text(area.mode).to_string(),
            labels::mode_text(area.effective_mode).to_string(),
        ]);
    }
    let mut text = areas.render();
    if with_centres && !response.service_centres.is_empty() {
        let mut centres = Table::new(&["SERVICE CENTRE", "NAME", "SERVES", "LOCATION"]);
        for centre in &response.service_centres {
            centres.row(vec![
                centre.id.clone(),
                centre.name.clone(),
                centre.area_id.clone(),
                labels::location_text(centre.location.as_ref()),
            ]);
        }
        text.push('\n');
        text.push_str(&centres.render());
    }
    text
}
