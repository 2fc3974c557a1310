//! `pingji areas import FILE.geojson`, `pingji areas retire ID` and `pingji areas list [--level L]`.

use std::path::Path;

use pingji_proto::v1 as pb;
use serde_json::json;

use crate::connection::Client;
use crate::error::{ConsoleError, import_error};
use crate::table::Table;
use pingji_client::labels;

use crate::{json, output};

/// How to import a map file: check only, replace the whole map, and which
/// properties hold what.
pub struct ImportHow {
    pub dry_run: bool,
    pub replace: bool,
    pub properties: pb::MapProperties,
}

pub async fn import(client: &mut Client, file: &Path, how: ImportHow, as_json: bool) -> Result<(), ConsoleError> {
    let geojson = super::read_file(file)?;
    let request =
        pb::ImportAreasRequest { geojson, dry_run: how.dry_run, replace: how.replace, properties: Some(how.properties) };
    let response = client.import_areas(request).await.map_err(|status| import_error(status, file))?.into_inner();
    if as_json {
        return output::json_document(&import_json(&response));
    }
    output::text(&import_text(&response, &file.display().to_string()))
}

fn import_json(response: &pb::ImportAreasResponse) -> serde_json::Value {
    let diff = response.diff.clone().unwrap_or_default();
    json!({
        "applied": response.applied,
        "areas": response.areas,
        "service_centres": response.service_centres,
        "parents_inferred": response.parents_inferred,
        "people_rehomed": response.people_rehomed,
        "added": diff.added,
        "changed": diff.changed.iter().map(|change| json!({"area_id": change.area_id, "changes": change.changes})).collect::<Vec<_>>(),
        "unchanged": diff.unchanged,
        "retired": diff.retired,
        "kept": diff.kept,
        "service_centres_added": diff.service_centres_added,
        "service_centres_changed": diff.service_centres_changed,
        "service_centres_removed": diff.service_centres_removed,
        "problems": response.problems.iter().map(|problem| json!({
            "error": problem.error,
            "kind": pb::MapProblemKind::try_from(problem.kind).map_or("unspecified", |kind| kind.as_str_name()),
            "feature": problem.feature,
            "area_id": problem.area_id,
            "message": problem.message,
            "size_m2": problem.size_m2,
            "size_m": problem.size_m,
        })).collect::<Vec<_>>(),
    })
}

/// At most this many ids or problems of one kind are printed; the JSON has all.
const SHOWN: usize = 20;

/// What an import did (or, on a dry run, would do), and every problem.
pub fn import_text(response: &pb::ImportAreasResponse, file: &str) -> String {
    let diff = response.diff.clone().unwrap_or_default();
    let errors = response.problems.iter().filter(|problem| problem.error).count();
    let warnings = response.problems.len() - errors;
    let mut text = if response.applied {
        format!("imported {} areas and {} service centres from {file}\n", response.areas, response.service_centres)
    } else if errors > 0 {
        format!("dry run: {file} has errors; importing it would change nothing until they are fixed\n")
    } else {
        format!("dry run: {} areas and {} service centres in {file}; nothing changed\n", response.areas, response.service_centres)
    };
    if response.parents_inferred > 0 {
        text.push_str(&format!("parents found by containment: {}\n", response.parents_inferred));
    }
    text.push_str(&format!(
        "added {}, changed {}, unchanged {}, retired {}",
        diff.added.len(),
        diff.changed.len(),
        diff.unchanged,
        diff.retired.len()
    ));
    if response.people_rehomed > 0 {
        text.push_str(&format!(" ({} people at home there re-homed by position)", response.people_rehomed));
    }
    text.push('\n');
    let list = |ids: &[String]| {
        let shown: Vec<&str> = ids.iter().take(SHOWN).map(String::as_str).collect();
        let more = if ids.len() > SHOWN { format!(" … and {} more", ids.len() - SHOWN) } else { String::new() };
        format!("{}{more}", shown.join(", "))
    };
    if !diff.added.is_empty() {
        text.push_str(&format!("  added: {}\n", list(&diff.added)));
    }
    for change in diff.changed.iter().take(SHOWN) {
        text.push_str(&format!("  changed {}: {}\n", change.area_id, change.changes.join("; ")));
    }
    if diff.changed.len() > SHOWN {
        text.push_str(&format!("  … and {} more changed\n", diff.changed.len() - SHOWN));
    }
    if !diff.retired.is_empty() {
        text.push_str(&format!("  retired: {}\n", list(&diff.retired)));
    }
    if diff.kept > 0 {
        text.push_str(&format!("{} known areas are not in the file and stay; import with --replace to retire them\n", diff.kept));
    }
    let centres = [
        ("added", &diff.service_centres_added),
        ("changed", &diff.service_centres_changed),
        ("removed", &diff.service_centres_removed),
    ];
    for (what, ids) in centres {
        if !ids.is_empty() {
            text.push_str(&format!("  service centres {what}: {}\n", list(ids)));
        }
    }
    if !response.problems.is_empty() {
        text.push_str(&format!("problems: {errors} errors, {warnings} warnings\n"));
        // Errors first: they are what stops the import.
        let mut problems: Vec<&pb::MapProblem> = response.problems.iter().collect();
        problems.sort_by_key(|problem| !problem.error);
        for problem in problems {
            let place = match (problem.feature, problem.area_id.is_empty()) {
                (Some(index), false) => format!("feature #{index} (id {})", problem.area_id),
                (Some(index), true) => format!("feature #{index}"),
                (None, false) => format!("area {}", problem.area_id),
                (None, true) => String::new(),
            };
            let severity = if problem.error { "error  " } else { "warning" };
            text.push_str(&format!("  {severity} {place}: {}\n", problem.message));
        }
    }
    text
}

pub async fn retire(
    client: &mut Client,
    area: &str,
    with_children: bool,
    dry_run: bool,
    as_json: bool,
) -> Result<(), ConsoleError> {
    let request = pb::RetireAreaRequest { area_id: area.to_string(), with_children, dry_run };
    let response = client.retire_area(request).await?.into_inner();
    if as_json {
        return output::json_document(&json!({
            "applied": response.applied,
            "retired": response.retired,
            "service_centres_removed": response.service_centres_removed,
            "people_rehomed": response.people_rehomed,
        }));
    }
    let verb = if response.applied { "retired" } else { "dry run: would retire" };
    let mut text = format!(
        "{verb} {} area{}: {}\n",
        response.retired.len(),
        if response.retired.len() == 1 { "" } else { "s" },
        response.retired.join(", ")
    );
    if !response.service_centres_removed.is_empty() {
        text.push_str(&format!("service centres removed: {}\n", response.service_centres_removed.join(", ")));
    }
    if response.people_rehomed > 0 {
        text.push_str(&format!("{} people at home there re-homed by their home position\n", response.people_rehomed));
    }
    output::text(&text)
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
