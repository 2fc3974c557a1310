//! The sample city and roster, policies with short timeouts, people specs and
//! points inside areas.

use std::path::PathBuf;

use crate::auth::Commands;
use anyhow::Context;
use pingji_engine::policy::Policy;
use pingji_proto::v1 as pb;

/// Metres per degree of latitude (and of longitude at the equator).
const METRES_PER_DEGREE: f64 = 111_320.0;

fn maps_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/maps")
}

/// `scenarios/maps/sample-city.geojson`: city, d1, d1-s1, d1-s1-c1, d1-s1-c1-g1 ...
pub fn sample_city() -> PathBuf {
    maps_dir().join("sample-city.geojson")
}

/// `scenarios/maps/sample-roster.csv`: 320 people, p0001 ..., ten per grid.
pub fn sample_roster() -> PathBuf {
    maps_dir().join("sample-roster.csv")
}

/// The default policy with offer timeouts short enough for timeout tests:
/// 2 s in normal mode, 2 s down to 1 s in the emergency grades. Widening
/// waits keep their defaults (minutes), so only "nobody fits" widens.
pub fn quick_policy() -> Policy {
    let mut policy = Policy::default();
    policy.normal.offer_timeout_s = 2;
    policy.emergency_iv.offer_timeout_s = 2;
    policy.emergency_iii.offer_timeout_s = 2;
    policy.emergency_ii.offer_timeout_s = 1;
    policy.emergency_i.offer_timeout_s = 1;
    policy.staffing_check_s = 0;
    policy
}

/// A policy file for the `dispatcher` binary with the given normal-mode offer
/// timeout; the emergency grades get the same or shorter.
pub fn quick_policy_toml(normal_offer_timeout_s: u64) -> String {
    let emergency = normal_offer_timeout_s.clamp(1, 2);
    format!(
        "staffing_check_s = 0\n[normal]\noffer_timeout_s = {normal_offer_timeout_s}\n\
         [emergency_iv]\noffer_timeout_s = {emergency}\n\
         [emergency_iii]\noffer_timeout_s = {emergency}\n\
         [emergency_ii]\noffer_timeout_s = 1\n\
         [emergency_i]\noffer_timeout_s = 1\n"
    )
}

/// A volunteer who walks, is on duty and has `skills`, living in `home_area`.
pub fn person(id: &str, home_area: &str, skills: &[&str]) -> pb::AgentSpec {
    pb::AgentSpec {
        id: id.to_string(),
        name: format!("test person {id}"),
        role: pb::Role::Volunteer as i32,
        skills: skills.iter().map(|skill| skill.to_string()).collect(),
        phone: String::new(),
        home_area_id: home_area.to_string(),
        travel_mode: pb::TravelMode::Walk as i32,
        on_duty: true,
        home: None,
    }
}

/// The point `east_m` metres east and `north_m` metres north of (lon, lat).
pub fn offset_m(lon: f64, lat: f64, east_m: f64, north_m: f64) -> (f64, f64) {
    let lat_degrees = north_m / METRES_PER_DEGREE;
    let lon_degrees = east_m / (METRES_PER_DEGREE * lat.to_radians().cos());
    (lon + lon_degrees, lat + lat_degrees)
}

/// The bounding box of an area's boundary, as the dispatcher has it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AreaBox {
    pub min_lon: f64,
    pub min_lat: f64,
    pub max_lon: f64,
    pub max_lat: f64,
}

impl AreaBox {
    /// The point at fractions (0..1) of the box's width and height.
    pub fn at(&self, east_fraction: f64, north_fraction: f64) -> (f64, f64) {
        (
            self.min_lon + (self.max_lon - self.min_lon) * east_fraction,
            self.min_lat + (self.max_lat - self.min_lat) * north_fraction,
        )
    }

    pub fn centre(&self) -> (f64, f64) {
        self.at(0.5, 0.5)
    }
}

/// The ids of up to `limit` people of the roster who are available and live
/// in `area_id` (`ListAgents`), in the dispatcher's order.
pub async fn available_people(command: &mut Commands, area_id: &str, limit: usize) -> anyhow::Result<Vec<String>> {
    let request = pb::ListAgentsRequest {
        area_id: area_id.into(),
        status: pb::AgentStatus::Available as i32,
        limit: u32::try_from(limit).unwrap_or(u32::MAX),
        ..Default::default()
    };
    let agents = command.list_agents(request).await?.into_inner().agents;
    Ok(agents.iter().filter_map(|agent| agent.spec.as_ref()).map(|spec| spec.id.clone()).take(limit).collect())
}

/// Reads an area's boundary with `ListAreas` and returns its bounding box.
/// The sample's areas are rectangles, so every point of the box is inside.
pub async fn area_box(command: &mut Commands, area_id: &str) -> anyhow::Result<AreaBox> {
    let areas = command.list_areas(pb::ListAreasRequest { level: 0, with_geometry: true }).await?.into_inner().areas;
    let area = areas.iter().find(|area| area.id == area_id).with_context(|| format!("area {area_id} is not on the map"))?;
    let points: Vec<&pb::Location> =
        area.polygons.iter().flat_map(|polygon| polygon.rings.first()).flat_map(|ring| ring.points.iter()).collect();
    anyhow::ensure!(!points.is_empty(), "area {area_id} has no boundary points");
    let mut bounds = AreaBox { min_lon: f64::MAX, min_lat: f64::MAX, max_lon: f64::MIN, max_lat: f64::MIN };
    for point in points {
        bounds.min_lon = bounds.min_lon.min(point.lon);
        bounds.min_lat = bounds.min_lat.min(point.lat);
        bounds.max_lon = bounds.max_lon.max(point.lon);
        bounds.max_lat = bounds.max_lat.max(point.lat);
    }
    Ok(bounds)
}
