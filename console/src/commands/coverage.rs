//! `pingji coverage [AREA]`: per community, the share of its grids whose
//! centre is within 15 minutes' walk of a service centre (15分钟服务圈); per
//! grid, the people available now against its minimum.

use pingji_proto::v1 as pb;

use crate::connection::Client;
use crate::error::ConsoleError;
use crate::table::Table;
use crate::{json, output};

pub async fn show(client: &mut Client, area: Option<&str>, as_json: bool) -> Result<(), ConsoleError> {
    let request = pb::CoverageRequest { area_id: area.unwrap_or_default().to_string() };
    let coverage = client.coverage(request).await?.into_inner();
    if as_json {
        return output::json_document(&json::coverage(&coverage));
    }
    output::text(&coverage_text(&coverage))
}

/// A share as a whole percentage: "75%".
fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

pub fn coverage_text(coverage: &pb::CoverageResponse) -> String {
    if coverage.communities.is_empty() && coverage.grids.is_empty() {
        return "no communities or grids there; import the map with `pingji areas import`\n".to_string();
    }
    let mut text = String::new();
    if !coverage.communities.is_empty() {
        text.push_str(&format!(
            "15-minute circle: grid centres within {:.0} m of a service centre (walking at {} m/s)\n",
            coverage.walk_mps * 900.0,
            coverage.walk_mps
        ));
        let mut table = Table::new(&["COMMUNITY", "NAME", "WITHIN 15 MIN", "SHARE"]).align_right(2).align_right(3);
        for community in &coverage.communities {
            table.row(vec![
                community.community_id.clone(),
                community.name.clone(),
                format!("{} of {}", community.grids_within_15_min, community.grids),
                percent(community.share),
            ]);
        }
        text.push_str(&table.render());
        let grids: u32 = coverage.communities.iter().map(|community| community.grids).sum();
        let within: u32 = coverage.communities.iter().map(|community| community.grids_within_15_min).sum();
        let share = if grids == 0 { 0.0 } else { f64::from(within) / f64::from(grids) };
        text.push_str(&format!(
            "{} communities: {within} of {grids} grids within 15 minutes ({})\n",
            coverage.communities.len(),
            percent(share)
        ));
    }
    if !coverage.grids.is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        let mut table = Table::new(&["GRID", "NAME", "AVAILABLE", "MINIMUM", ""]).align_right(2).align_right(3);
        for grid in &coverage.grids {
            table.row(vec![
                grid.grid_id.clone(),
                grid.name.clone(),
                grid.available.to_string(),
                grid.minimum.to_string(),
                if grid.below { "BELOW" } else { "" }.to_string(),
            ]);
        }
        text.push_str(&table.render());
        let below = coverage.grids.iter().filter(|grid| grid.below).count();
        text.push_str(&format!("{below} of {} grids below their minimum of available people\n", coverage.grids.len()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn communities_show_their_share_and_grids_are_flagged_below() {
        let coverage = pb::CoverageResponse {
            communities: vec![pb::CommunityCoverage {
                community_id: "d1-s1-c1".into(),
                name: "柳岸社区".into(),
                grids: 4,
                grids_within_15_min: 3,
                share: 0.75,
            }],
            grids: vec![
                pb::GridStaffing {
                    grid_id: "d1-s1-c1-g1".into(),
                    name: "柳岸社区第1网格".into(),
                    available: 0,
                    minimum: 3,
                    below: true,
                },
                pb::GridStaffing {
                    grid_id: "d1-s1-c1-g2".into(),
                    name: "柳岸社区第2网格".into(),
                    available: 4,
                    minimum: 3,
                    below: false,
                },
            ],
            walk_mps: 1.4,
        };
        let text = coverage_text(&coverage);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "15-minute circle: grid centres within 1260 m of a service centre (walking at 1.4 m/s)");
        assert_eq!(lines[1], "COMMUNITY  NAME      WITHIN 15 MIN  SHARE");
        assert_eq!(lines[2], "d1-s1-c1   柳岸社区         3 of 4    75%");
        assert_eq!(lines[3], "1 communities: 3 of 4 grids within 15 minutes (75%)");
        assert_eq!(lines[5], "GRID         NAME             AVAILABLE  MINIMUM");
        assert_eq!(lines[6], "d1-s1-c1-g1  柳岸社区第1网格          0        3  BELOW");
        assert_eq!(lines[7], "d1-s1-c1-g2  柳岸社区第2网格          4        3");
        assert_eq!(lines[8], "1 of 2 grids below their minimum of available people");
    }
}
