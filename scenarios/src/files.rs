//! The report's files: report.json, report.md and the pictures, written
//! side by side into one folder.

use std::path::Path;

use pingji_engine::areas::AreaImport;

use crate::report::{Report, markdown};
use crate::svg;

/// Writes report.json, report.md and the pictures into `dir`.
pub fn write(report: &Report, map: &AreaImport, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut json = serde_json::to_string_pretty(report)?;
    json.push('\n');
    std::fs::write(dir.join("report.json"), json)?;
    std::fs::write(dir.join("report.md"), markdown(report))?;
    std::fs::write(dir.join("accept.svg"), svg::distribution(report, svg::Measure::Accept))?;
    std::fs::write(dir.join("arrive.svg"), svg::distribution(report, svg::Measure::Arrive))?;
    std::fs::write(dir.join("staffing.svg"), svg::staffing(report))?;
    std::fs::write(dir.join("map.svg"), svg::map::map(report, map))?;
    if !report.shelters.is_empty() {
        std::fs::write(dir.join("shelters.svg"), crate::svg::shelters(&report.shelters, report.drill.started_at_ms))?;
    }
    Ok(())
}
