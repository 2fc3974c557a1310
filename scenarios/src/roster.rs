//! The people of a drill: read from a roster CSV, or generated per grid with
//! a mix of roles and skills and homes inside the grid polygons.

use pingji_client::roster_csv::parse_roster_csv;
use pingji_dispatcher::convert::profile_from_pb;
use pingji_engine::areas::{AreaLevel, AreaMap, AreaSpec};
use pingji_engine::ids::AgentId;
use pingji_engine::roster::{AgentProfile, TravelMode};
use pingji_engine::spatial::Position;
use rand::Rng;
use rand::rngs::StdRng;

use crate::drill::{RosterGenerator, parse_role};

const SURNAMES: [&str; 20] =
    ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "林", "罗", "高"];
const GIVEN: [&str; 20] = [
    "伟", "芳", "娜", "敏", "静", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛", "明", "超", "秀英", "桂英", "建华", "晓东",
    "丽",
];

/// Reads people from roster CSV text.
pub fn from_csv(text: &str) -> Result<Vec<AgentProfile>, String> {
    let specs = parse_roster_csv(text).map_err(|errors| errors.to_string())?;
    specs.iter().map(|spec| profile_from_pb(spec).map_err(|rejection| rejection.to_string())).collect()
}

/// Picks a key by weight.
pub fn weighted<'a>(rng: &mut StdRng, weights: impl IntoIterator<Item = (&'a String, &'a f64)>) -> Option<&'a String> {
    let weights: Vec<(&String, f64)> = weights.into_iter().map(|(key, weight)| (key, weight.max(0.0))).collect();
    let total: f64 = weights.iter().map(|(_, weight)| weight).sum();
    if total <= 0.0 {
        return None;
    }
    let mut pick = rng.random::<f64>() * total;
    for (key, weight) in &weights {
        if pick < *weight {
            return Some(key);
        }
        pick -= weight;
    }
    weights.last().map(|(key, _)| *key)
}

/// The bounding box of an area: (west, south, east, north).
pub fn bounds(spec: &AreaSpec) -> Option<(f64, f64, f64, f64)> {
    let points = spec.polygons.iter().flat_map(|polygon| polygon.first()).flatten();
    points.fold(None, |bounds, [lon, lat]| {
        Some(match bounds {
            None => (*lon, *lat, *lon, *lat),
            Some((west, south, east, north)) => (west.min(*lon), south.min(*lat), east.max(*lon), north.max(*lat)),
        })
    })
}

/// A random point inside an area (rejection sampling in its bounding box),
/// or its centroid when the shape is too thin to hit.
pub fn random_point_in(rng: &mut StdRng, areas: &AreaMap, spec: &AreaSpec) -> Option<Position> {
    let (west, south, east, north) = bounds(spec)?;
    for _ in 0..1000 {
        let candidate =
            Position { lon: west + (east - west) * rng.random::<f64>(), lat: south + (north - south) * rng.random::<f64>() };
        if areas.place(candidate).within(spec.level, &spec.id) {
            return Some(candidate);
        }
    }
    areas.inside_point(&spec.id)
}

/// People generated for every grid of the map, in grid id order.
pub fn generate(rng: &mut StdRng, areas: &AreaMap, generator: &RosterGenerator) -> Vec<AgentProfile> {
    let mut people = Vec::new();
    let grids: Vec<&AreaSpec> = areas.areas().filter(|spec| spec.level == AreaLevel::Grid).collect();
    for grid in grids {
        for _ in 0..generator.per_grid {
            let number = people.len() + 1;
            let role = weighted(rng, &generator.roles)
                .and_then(|name| parse_role(name))
                .unwrap_or(pingji_engine::roster::Role::Volunteer);
            let skills = generator
                .skills
                .iter()
                .filter(|(_, share)| rng.random::<f64>() < **share)
                .map(|(skill, _)| skill.clone())
                .collect();
            let travel_mode = match weighted(rng, &generator.travel).map(String::as_str) {
                Some("bike") => TravelMode::Bike,
                Some("car") => TravelMode::Car,
                _ => TravelMode::Walk,
            };
            let name = format!("{}{}", SURNAMES[rng.random_range(0..SURNAMES.len())], GIVEN[rng.random_range(0..GIVEN.len())]);
            people.push(AgentProfile {
                id: AgentId::new(format!("p{number:06}")),
                name,
                role,
                skills,
                phone: format!("139{:08}", rng.random_range(0..100_000_000u32)),
                home_area: Some(grid.id.clone()),
                travel_mode,
                on_duty: rng.random::<f64>() < generator.on_duty_share,
                home: random_point_in(rng, areas, grid),
            });
        }
    }
    people
}
