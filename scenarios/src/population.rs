//! A city's registered people, generated with a realistic density: many in
//! the centre, fewer towards the edge, as in a real Chinese city, for
//! city-scale runs where a million rows must be made in seconds.
//!
//! Density falls off with the distance `r` from the centre as `e^(-r/b)`
//! (Clark's classic urban density model), with `b` = [`DENSITY_SCALE_M`]:
//! the centre districts hold several times the people per km² of the outer
//! ones. Each person lives in the district their home falls in (their
//! `home_area`), so a district's shard holds exactly the people of its
//! ground. Deterministic: the same map, count and seed give the same people.

use std::fmt::Write as _;

use pingji_engine::areas::{AreaLevel, AreaMap};
use pingji_engine::spatial::Position;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::citymap::CITY_CENTRE;

/// The distance over which density falls by a factor e (about 5 km in
/// large Chinese cities' fitted density curves).
pub const DENSITY_SCALE_M: f64 = 5_000.0;

/// Roles of generated people with their shares: mostly volunteers and
/// community workers, as in a district's mobilisable roster.
const ROLES: [(&str, f64); 5] = [
    ("volunteer", 0.55),
    ("community_worker", 0.15),
    ("registered_member", 0.15),
    ("grid_leader", 0.05),
    ("property_staff", 0.10),
];
/// How people travel, with shares.
const TRAVEL: [(&str, f64); 3] = [("walk", 0.5), ("bike", 0.4), ("car", 0.1)];

/// One generated person: where they live and what the roster says of them.
#[derive(Clone, Debug, PartialEq)]
pub struct Resident {
    pub id: String,
    pub district: String,
    pub home: Position,
    pub role: &'static str,
    pub travel_mode: &'static str,
    pub first_aid: bool,
}

/// A point of the city drawn with the density above: an angle uniform
/// around the centre and a radius from the density times the circle's
/// length at that radius (a Gamma(2, b) draw). `None` when it falls outside
/// every district (drawn again by the caller).
pub fn dense_point(rng: &mut StdRng, areas: &AreaMap) -> Option<(Position, String)> {
    let radius =
        -DENSITY_SCALE_M * (rng.random::<f64>().max(f64::MIN_POSITIVE).ln() + rng.random::<f64>().max(f64::MIN_POSITIVE).ln());
    let angle = rng.random::<f64>() * std::f64::consts::TAU;
    let (lon0, lat0) = CITY_CENTRE;
    let metres_per_lon = 111_320.0 * lat0.to_radians().cos();
    let at = Position { lon: lon0 + radius * angle.cos() / metres_per_lon, lat: lat0 + radius * angle.sin() / 110_574.0 };
    let district = areas.place(at).at(AreaLevel::District)?.to_string();
    Some((at, district))
}

/// `count` people of the city `areas`, numbered `p0000001`….
pub fn residents(seed: u64, areas: &AreaMap, count: usize) -> Vec<Resident> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut people = Vec::with_capacity(count);
    while people.len() < count {
        let Some((home, district)) = dense_point(&mut rng, areas) else { continue };
        let role = pick(&mut rng, &ROLES);
        let travel_mode = pick(&mut rng, &TRAVEL);
        let first_aid = rng.random::<f64>() < 0.2;
        people.push(Resident { id: format!("p{:07}", people.len() + 1), district, home, role, travel_mode, first_aid });
    }
    people
}

fn pick(rng: &mut StdRng, shares: &[(&'static str, f64)]) -> &'static str {
    let mut left = rng.random::<f64>() * shares.iter().map(|(_, share)| share).sum::<f64>();
    for (name, share) in shares {
        if left < *share {
            return name;
        }
        left -= share;
    }
    shares[shares.len() - 1].0
}

/// The roster CSV of `people` (the columns of `scenarios/maps/README.md`),
/// everyone on duty, each living in their district. Names and phone
/// numbers are made up from the id.
pub fn to_csv(people: &[Resident]) -> String {
    const SURNAMES: [&str; 8] = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵"];
    const GIVEN: [&str; 8] = ["伟", "芳", "娜", "敏", "静", "强", "磊", "军"];
    let mut csv = String::with_capacity(people.len() * 90);
    csv.push_str("id,name,role,skills,phone,home_area_id,travel_mode,on_duty,home_lon,home_lat\n");
    for (n, person) in people.iter().enumerate() {
        let name = format!("{}{}", SURNAMES[n % SURNAMES.len()], GIVEN[(n / SURNAMES.len()) % GIVEN.len()]);
        let skills = if person.first_aid { "first_aid" } else { "" };
        let _ = writeln!(
            csv,
            "{},{name},{},{skills},139{:08},{},{},true,{:.6},{:.6}",
            person.id,
            person.role,
            n % 100_000_000,
            person.district,
            person.travel_mode,
            person.home.lon,
            person.home.lat
        );
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_centre_districts_are_denser_and_the_roster_reads_back() {
        let map = AreaMap::from(crate::citymap::city(7, 6).expect("city"));
        let people = residents(7, &map, 6000);
        assert_eq!(people, residents(7, &map, 6000), "same seed, same people");
        let per_km2 = |district: &str| {
            let spec = map.get(&pingji_engine::ids::AreaId::new(district)).expect("district");
            let shape = geo::MultiPolygon::new(
                spec.polygons
                    .iter()
                    .map(|rings| {
                        let ring = |points: &Vec<[f64; 2]>| {
                            geo::LineString::from(points.iter().map(|[x, y]| (*x * 96_000.0, *y * 110_574.0)).collect::<Vec<_>>())
                        };
                        geo::Polygon::new(ring(&rings[0]), rings[1..].iter().map(ring).collect())
                    })
                    .collect(),
            );
            let km2 = geo::Area::unsigned_area(&shape) / 1e6;
            people.iter().filter(|person| person.district == district).count() as f64 / km2
        };
        // d1 is the district nearest the centre, d6 the farthest.
        assert!(per_km2("d1") > 2.0 * per_km2("d6"), "d1 {} per km², d6 {}", per_km2("d1"), per_km2("d6"));
        let roster = crate::roster::from_csv(&to_csv(&people)).expect("a valid roster");
        assert_eq!(roster.len(), 6000);
        assert_eq!(roster[0].home_area.as_ref().map(|area| area.to_string()), Some(people[0].district.clone()));
    }
}
