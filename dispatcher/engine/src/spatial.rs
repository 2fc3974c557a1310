//! Positions on the earth and the spatial index of people.
//!
//! The index stores each located person as a point on the unit sphere (3-D),
//! so that nearest-neighbour order in the R-tree is exactly great-circle order.
//! It keeps one R-tree per travel mode: within one tree everyone moves at the
//! same speed, so nearest order is also arrival-time order, and a search for
//! the k soonest to arrive can stop in each tree after the k-th qualified
//! person instead of walking out to where the fastest mode could still win.

use rstar::primitives::GeomWithData;
use rstar::{PointDistance, RTree};
use serde::{Deserialize, Serialize};

use crate::ids::AgentId;
use crate::travel::TravelMode;

/// Mean earth radius used for great-circle distances.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A WGS84 longitude/latitude in degrees.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub lon: f64,
    pub lat: f64,
}

impl Position {
    /// Checks the ranges; the message says what is wrong and what to do.
    pub fn checked(lon: f64, lat: f64) -> Result<Position, String> {
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(format!(
                "longitude {lon} is out of range; give WGS84 degrees between -180 and 180 (lon first, then lat)"
            ));
        }
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(format!("latitude {lat} is out of range; give WGS84 degrees between -90 and 90 (lon first, then lat)"));
        }
        Ok(Position { lon, lat })
    }

    /// Great-circle distance in metres (haversine).
    pub fn distance_m(self, other: Position) -> f64 {
        let (lat1, lat2) = (self.lat.to_radians(), other.lat.to_radians());
        let dlat = lat2 - lat1;
        let dlon = (other.lon - self.lon).to_radians();
        let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }

    /// The point on the unit sphere.
    pub fn unit_vector(self) -> [f64; 3] {
        let (lat, lon) = (self.lat.to_radians(), self.lon.to_radians());
        [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
    }

    /// This position rounded to about 100 metres (three decimals), for the
    /// record of where a responder came from.
    pub fn approximate(self) -> Position {
        Position { lon: (self.lon * 1000.0).round() / 1000.0, lat: (self.lat * 1000.0).round() / 1000.0 }
    }

    /// This position coarsened to about a kilometre (two decimals), for views
    /// that must not show precise locations.
    pub fn coarse(self) -> Position {
        Position { lon: (self.lon * 100.0).round() / 100.0, lat: (self.lat * 100.0).round() / 100.0 }
    }
}

/// Great-circle distance in metres for a squared chord length on the unit sphere.
fn chord2_to_metres(chord2: f64) -> f64 {
    let chord = chord2.max(0.0).sqrt().min(2.0);
    2.0 * (chord / 2.0).asin() * EARTH_RADIUS_M
}

type Entry = GeomWithData<[f64; 3], AgentId>;

/// Located people, nearest first, one tree per travel mode. Holds only who
/// is where; eligibility (status, skills, scope) is checked by the caller
/// while walking.
#[derive(Default)]
pub struct PeopleIndex {
    trees: [RTree<Entry>; 3],
}

fn lane(mode: TravelMode) -> usize {
    match mode {
        TravelMode::Walk => 0,
        TravelMode::Bike => 1,
        TravelMode::Car => 2,
    }
}

impl PeopleIndex {
    pub const MODES: [TravelMode; 3] = [TravelMode::Car, TravelMode::Bike, TravelMode::Walk];

    /// Adds a person under the travel mode they are indexed by; remove them
    /// with the same position and mode.
    pub fn insert(&mut self, agent: AgentId, at: Position, mode: TravelMode) {
        self.trees[lane(mode)].insert(GeomWithData::new(at.unit_vector(), agent));
    }

    pub fn remove(&mut self, agent: &AgentId, at: Position, mode: TravelMode) {
        let removed = self.trees[lane(mode)].remove(&GeomWithData::new(at.unit_vector(), agent.clone()));
        debug_assert!(removed.is_some(), "person removed from the index was not in it");
    }

    pub fn len(&self) -> usize {
        self.trees.iter().map(RTree::size).sum()
    }

    /// The distance in metres from `at` to someone indexed at `other`,
    /// computed as [`PeopleIndex::nearest`] gives it.
    pub fn distance_m(at: Position, other: Position) -> f64 {
        chord2_to_metres(at.unit_vector().distance_2(&other.unit_vector()))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// People of one travel mode in order of great-circle distance from
    /// `at`, with the distance in metres.
    pub fn nearest(&self, at: Position, mode: TravelMode) -> impl Iterator<Item = (&AgentId, f64)> + '_ {
        let query = at.unit_vector();
        self.trees[lane(mode)]
            .nearest_neighbor_iter_with_distance_2(&query)
            .map(|(entry, chord2)| (&entry.data, chord2_to_metres(chord2)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haversine_matches_known_distance() {
        // One degree of latitude is about 111.2 km.
        let a = Position { lon: 120.0, lat: 30.0 };
        let b = Position { lon: 120.0, lat: 31.0 };
        assert!((a.distance_m(b) - 111_195.0).abs() < 50.0);
    }

    #[test]
    fn index_returns_people_in_distance_order_with_haversine_distance() {
        let mut index = PeopleIndex::default();
        let centre = Position { lon: 120.15, lat: 30.27 };
        let walk = TravelMode::Walk;
        index.insert(AgentId::new("far"), Position { lon: 120.20, lat: 30.27 }, walk);
        index.insert(AgentId::new("near"), Position { lon: 120.151, lat: 30.27 }, walk);
        index.insert(AgentId::new("mid"), Position { lon: 120.16, lat: 30.28 }, walk);
        index.insert(AgentId::new("driver"), Position { lon: 120.1505, lat: 30.27 }, TravelMode::Car);
        let order: Vec<_> = index.nearest(centre, walk).map(|(id, _)| id.as_str().to_string()).collect();
        assert_eq!(order, ["near", "mid", "far"], "each travel mode has its own tree");
        let (_, metres) = index.nearest(centre, walk).next().expect("one person");
        let expected = centre.distance_m(Position { lon: 120.151, lat: 30.27 });
        assert!((metres - expected).abs() < 0.01, "{metres} vs {expected}");
        index.remove(&AgentId::new("near"), Position { lon: 120.151, lat: 30.27 }, walk);
        assert_eq!(index.len(), 3);
        assert_eq!(index.nearest(centre, TravelMode::Car).count(), 1);
    }

    #[test]
    fn out_of_range_coordinates_are_refused_with_a_reason() {
        assert!(Position::checked(181.0, 0.0).unwrap_err().contains("longitude"));
        assert!(Position::checked(0.0, -91.0).unwrap_err().contains("latitude"));
        assert!(Position::checked(f64::NAN, 0.0).is_err());
    }
}
