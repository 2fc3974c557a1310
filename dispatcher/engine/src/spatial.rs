//! Positions on the earth and the spatial index of people.
//!
//! The index stores each located person as a point on the unit sphere (3-D),
//! so that nearest-neighbour order in the R-tree is exactly great-circle order.
//! It keeps one R-tree per travel mode: within one tree everyone moves at the
//! same speed, so nearest order is also arrival-time order, and a search for
//! the k soonest to arrive can stop in each tree after the k-th qualified
//! person instead of walking out to where the fastest mode could still win.

use rstar::primitives::GeomWithData;
use rstar::{PointDistance, RStarInsertionStrategy, RTree as RTreeOf, RTreeParams};
use serde::{Deserialize, Serialize};

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

/// What the candidate search filters on, copied into a person's index
/// entry, so that walking past someone who cannot qualify reads nothing
/// but the tree's own leaves: no id, no hash look-up, no string compare.
/// Kept in step by the engine (`Live`), like the live copies it mirrors.
#[derive(Clone, Copy, Debug, Default)]
pub struct Indexed {
    /// The person's dense number: `Live::ids[slot]` is their id.
    pub slot: u32,
    /// Their skills as bits (`SkillBits`); skills beyond the bits are
    /// not in it, and a search asking for one of those filters on the
    /// rest only.
    pub skills: u64,
    /// A copy of "free to take an offer".
    pub free: bool,
}

/// Entries are the same person when their numbers are (what `remove` and
/// in-place updates look for).
impl PartialEq for Indexed {
    fn eq(&self, other: &Indexed) -> bool {
        self.slot == other.slot
    }
}

type Entry = GeomWithData<[f64; 3], Indexed>;

/// Wider nodes than rstar's default (6): a shallower tree, so that moving
/// someone (remove and insert) and walking outward touch fewer nodes of a
/// tree too big for the cache.
struct WideNodes;

impl RTreeParams for WideNodes {
    const MIN_SIZE: usize = 6;
    const MAX_SIZE: usize = 16;
    const REINSERTION_COUNT: usize = 3;
    type DefaultInsertionStrategy = RStarInsertionStrategy;
}

type RTree<T> = RTreeOf<T, WideNodes>;

/// A class of free people with a tree of their own: those holding one
/// skill bit (0 to 63). (No class of everyone free: a search without a
/// skill passes over the busy fifth from the leaves, which costs less
/// than moving every free person in one more tree at every update.)
pub type Class = usize;
const CLASSES: usize = 64;

/// The classes a person is in: none unless free; then one per skill bit.
fn classes(person: &Indexed) -> impl Iterator<Item = Class> + use<> {
    let bits = if person.free { person.skills } else { 0 };
    (0..64).filter(move |bit| bits & (1 << bit) != 0)
}

/// Located people, nearest first, one tree per travel mode. Holds who is
/// where and the copies the search filters on ([`Indexed`]); every other
/// check is made by the caller while walking.
///
/// Free people are also in one tree per class (everyone free, and each
/// skill bit) and travel mode, so that a search for free people with a
/// skill walks only the free holders of the rarest skill asked for, not
/// everyone nearer than the k-th who qualifies. That costs a location
/// update one more tree move per class the person is in.
#[derive(Default)]
pub struct PeopleIndex {
    trees: [RTree<Entry>; 3],
    /// By class (empty until someone free is indexed).
    free: Vec<[RTree<Entry>; 3]>,
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
    pub fn insert(&mut self, person: Indexed, at: Position, mode: TravelMode) {
        let point = at.unit_vector();
        self.trees[lane(mode)].insert(GeomWithData::new(point, person));
        self.insert_in_classes(person, point, mode);
    }

    fn insert_in_classes(&mut self, person: Indexed, point: [f64; 3], mode: TravelMode) {
        if !person.free || person.skills == 0 {
            return;
        }
        if self.free.is_empty() {
            self.free.resize_with(CLASSES, Default::default);
        }
        for class in classes(&person) {
            self.free[class][lane(mode)].insert(GeomWithData::new(point, person));
        }
    }

    fn remove_from_classes(&mut self, person: Indexed, point: [f64; 3], mode: TravelMode) {
        for class in classes(&person) {
            let removed = self.free[class][lane(mode)].remove(&GeomWithData::new(point, person));
            debug_assert!(removed.is_some(), "a free person was not in their class");
        }
    }

    pub fn remove(&mut self, slot: u32, at: Position, mode: TravelMode) {
        let point = at.unit_vector();
        let key = Indexed { slot, ..Indexed::default() };
        let removed = self.trees[lane(mode)].remove(&GeomWithData::new(point, key));
        debug_assert!(removed.is_some(), "person removed from the index was not in it");
        if let Some(removed) = removed {
            self.remove_from_classes(removed.data, point, mode);
        }
    }

    /// The entry of person `slot`, indexed at `at` under `mode`.
    pub fn entry(&self, slot: u32, at: Position, mode: TravelMode) -> Option<&Indexed> {
        self.trees[lane(mode)].locate_all_at_point(&at.unit_vector()).map(|entry| &entry.data).find(|data| data.slot == slot)
    }

    /// Changes the copies in person `slot`'s entry where it is (the point
    /// stays, so the tree does not change shape), and moves them between
    /// classes as that changes them.
    pub fn update(&mut self, slot: u32, at: Position, mode: TravelMode, change: impl FnOnce(&mut Indexed)) {
        let point = at.unit_vector();
        let found =
            self.trees[lane(mode)].locate_all_at_point_mut(&point).map(|entry| &mut entry.data).find(|data| data.slot == slot);
        debug_assert!(found.is_some(), "person updated in the index was not in it");
        let Some(data) = found else {
            return;
        };
        let before = *data;
        change(data);
        let after = *data;
        if (before.free, before.skills) != (after.free, after.skills) {
            self.remove_from_classes(before, point, mode);
            self.insert_in_classes(after, point, mode);
        }
    }

    /// How many free people are in `class`, over every travel mode.
    pub fn class_len(&self, class: Class) -> usize {
        self.free.get(class).map_or(0, |trees| trees.iter().map(RTree::size).sum())
    }

    /// The class with the fewest free people among those every person with
    /// all of `required` skill bits is in; `None` when no bit is required.
    pub fn rarest_class(&self, required: u64) -> Option<Class> {
        (0..64).filter(|bit| required & (1 << bit) != 0).min_by_key(|bit| self.class_len(*bit))
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
    pub fn nearest(&self, at: Position, mode: TravelMode) -> impl Iterator<Item = (&Indexed, f64)> + '_ {
        self.nearest_in(at, mode, None)
    }

    /// As [`PeopleIndex::nearest`], among the free people of `class` only
    /// when one is given.
    pub fn nearest_in(&self, at: Position, mode: TravelMode, class: Option<Class>) -> impl Iterator<Item = (&Indexed, f64)> + '_ {
        static EMPTY: std::sync::OnceLock<RTree<Entry>> = std::sync::OnceLock::new();
        let tree = match class {
            None => &self.trees[lane(mode)],
            Some(class) => {
                self.free.get(class).map_or_else(|| EMPTY.get_or_init(RTree::new_with_params), |trees| &trees[lane(mode)])
            }
        };
        let query = at.unit_vector();
        tree.nearest_neighbor_iter_with_distance_2(&query).map(|(entry, chord2)| (&entry.data, chord2_to_metres(chord2)))
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
        let person = |slot| Indexed { slot, skills: 0, free: true };
        let (far, near, mid, driver) = (0, 1, 2, 3);
        index.insert(person(far), Position { lon: 120.20, lat: 30.27 }, walk);
        index.insert(person(near), Position { lon: 120.151, lat: 30.27 }, walk);
        index.insert(person(mid), Position { lon: 120.16, lat: 30.28 }, walk);
        index.insert(person(driver), Position { lon: 120.1505, lat: 30.27 }, TravelMode::Car);
        let order: Vec<_> = index.nearest(centre, walk).map(|(found, _)| found.slot).collect();
        assert_eq!(order, [near, mid, far], "each travel mode has its own tree");
        let (_, metres) = index.nearest(centre, walk).next().expect("one person");
        let expected = centre.distance_m(Position { lon: 120.151, lat: 30.27 });
        assert!((metres - expected).abs() < 0.01, "{metres} vs {expected}");
        let skilled = |found: &mut Indexed| found.skills = 0b10;
        index.update(mid, Position { lon: 120.16, lat: 30.28 }, walk, skilled);
        index.update(near, Position { lon: 120.151, lat: 30.27 }, walk, skilled);
        assert_eq!(index.class_len(1), 2);
        index.update(mid, Position { lon: 120.16, lat: 30.28 }, walk, |found| found.free = false);
        assert_eq!(index.rarest_class(0b10), Some(1));
        let free_holders: Vec<_> = index.nearest_in(centre, walk, Some(1)).map(|(found, _)| found.slot).collect();
        assert_eq!(free_holders, [near], "only the free holders are in their class");
        assert_eq!(index.entry(mid, Position { lon: 120.16, lat: 30.28 }, walk).map(|found| found.free), Some(false));
        index.remove(near, Position { lon: 120.151, lat: 30.27 }, walk);
        assert_eq!(index.len(), 3);
        assert_eq!(index.class_len(1), 0, "removed from their classes too");
        assert_eq!(index.nearest(centre, TravelMode::Car).count(), 1);
    }

    #[test]
    fn out_of_range_coordinates_are_refused_with_a_reason() {
        assert!(Position::checked(181.0, 0.0).unwrap_err().contains("longitude"));
        assert!(Position::checked(0.0, -91.0).unwrap_err().contains("latitude"));
        assert!(Position::checked(f64::NAN, 0.0).is_err());
    }
}
