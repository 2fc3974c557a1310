//! Positions on the earth and the spatial index of people.
//!
//! The index stores each located person as a point on the unit sphere (3-D),
//! so that nearest-neighbour order in the R-tree is exactly great-circle order.
//! It keeps one R-tree per travel mode: within one tree everyone moves at the
//! same speed, so nearest order is also arrival-time order, and one walk
//! through the three trees, ordered by a lower bound of the time to arrive
//! ([`PeopleIndex::soonest_with`]), finds the k soonest to arrive and stops
//! after them, walking no tree farther than its people could still win.

mod tree;

use serde::{Deserialize, Serialize};

pub use self::tree::Indexed;
use self::tree::{Entry, Filter, Nearest, Place, Tree, Within};

use crate::travel::{Speeds, TravelMode};

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

/// Someone [`PeopleIndex::soonest_with`] found.
pub struct Soonest<'a> {
    pub person: &'a Indexed,
    pub metres: f64,
    pub mode: TravelMode,
    /// No more than the time this person takes, nor than that of anyone
    /// the walk finds after them: once it is too long, so is everyone after.
    pub at_least_s: f64,
}

/// Three empty trees, for a class nobody is in.
static EMPTY_LANES: std::sync::OnceLock<[Tree; 3]> = std::sync::OnceLock::new();

/// A skill bit (0 to 63): [`PeopleIndex::class_len`] counts the free
/// people holding it.
pub type Class = usize;

/// Located people, nearest first, one tree per travel mode ([`tree`]: our
/// own R-tree, whose nodes summarise the free people below them). Holds
/// who is where and the copies the search filters on ([`Indexed`]); every
/// other check is made by the caller while walking.
///
/// Free people are also in one tree per skill bit they hold (a class) and
/// travel mode, so that a search for free holders of some skills walks
/// only the free holders of the rarest of them: with a skill held by one
/// in ten, the summaries of the trees of everyone prune too little (most
/// leaves hold a free holder), and the walk opened twice the nodes. A
/// move within a leaf's box is made in place in every tree.
pub struct PeopleIndex {
    trees: [Tree; 3],
    /// Where each person's entry is, by dense number: their travel mode's
    /// lane and their place in its tree.
    places: Vec<Option<(u8, Place)>>,
    /// By skill bit (empty until someone free holding it is indexed).
    classes: Vec<ClassTrees>,
    /// How many free people hold each skill bit.
    free_holders: [u32; 64],
}

/// The free holders of one skill bit, one tree per travel mode.
#[derive(Default)]
struct ClassTrees {
    trees: [Tree; 3],
    /// Where each one is in their travel mode's tree, by dense number.
    places: Vec<Option<Place>>,
}

impl ClassTrees {
    fn insert(&mut self, entry: Entry, lane_number: usize) {
        let slot = entry.data.slot as usize;
        if self.places.len() <= slot {
            self.places.resize(slot + 1, None);
        }
        let places = &mut self.places;
        self.trees[lane_number].insert(entry, &mut |slot, place| places[slot as usize] = Some(place));
    }

    fn remove(&mut self, slot: u32, lane_number: usize) {
        let found = self.places.get_mut(slot as usize).and_then(Option::take);
        debug_assert!(found.is_some(), "a free holder was not in their class");
        let Some(place) = found else {
            return;
        };
        let places = &mut self.places;
        self.trees[lane_number].remove(place, &mut |slot, place| places[slot as usize] = Some(place));
    }

    fn relocate(&mut self, slot: u32, point: [f64; 3], lane_number: usize) {
        let found = self.places.get(slot as usize).copied().flatten();
        debug_assert!(found.is_some(), "a free holder was not in their class");
        let Some(place) = found else {
            return;
        };
        if self.trees[lane_number].move_within_leaf(place, point) {
            return;
        }
        let data = self.trees[lane_number].entry(place).data;
        self.remove(slot, lane_number);
        self.insert(Entry { point, data }, lane_number);
    }
}

impl Default for PeopleIndex {
    fn default() -> PeopleIndex {
        PeopleIndex { trees: Default::default(), places: Vec::new(), classes: Vec::new(), free_holders: [0; 64] }
    }
}

fn lane(mode: TravelMode) -> usize {
    match mode {
        TravelMode::Walk => 0,
        TravelMode::Bike => 1,
        TravelMode::Car => 2,
    }
}

/// The travel mode of lane `number` ([`lane`]'s inverse).
fn mode_of(number: usize) -> TravelMode {
    match number {
        0 => TravelMode::Walk,
        1 => TravelMode::Bike,
        _ => TravelMode::Car,
    }
}

/// The skill bits whose class `person` is in: none unless free.
fn class_bits(person: &Indexed) -> impl Iterator<Item = usize> + use<> {
    let mut bits = if person.free { person.skills } else { 0 };
    std::iter::from_fn(move || {
        if bits == 0 {
            return None;
        }
        let bit = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        Some(bit)
    })
}

impl PeopleIndex {
    pub const MODES: [TravelMode; 3] = [TravelMode::Car, TravelMode::Bike, TravelMode::Walk];

    /// Adds a person under the travel mode they are indexed by; remove them
    /// with the same position and mode.
    pub fn insert(&mut self, person: Indexed, at: Position, mode: TravelMode) {
        let slot = person.slot as usize;
        if self.places.len() <= slot {
            self.places.resize(slot + 1, None);
        }
        debug_assert!(self.places[slot].is_none(), "a person is indexed once");
        let lane_number = lane(mode);
        let places = &mut self.places;
        let entry = Entry { point: at.unit_vector(), data: person };
        self.trees[lane_number].insert(entry, &mut |slot, place| places[slot as usize] = Some((lane_number as u8, place)));
        self.insert_in_classes(entry, lane_number);
    }

    fn insert_in_classes(&mut self, entry: Entry, lane_number: usize) {
        for bit in class_bits(&entry.data) {
            if self.classes.len() <= bit {
                self.classes.resize_with(bit + 1, ClassTrees::default);
            }
            self.classes[bit].insert(entry, lane_number);
            self.free_holders[bit] += 1;
        }
    }

    fn remove_from_classes(&mut self, person: &Indexed, lane_number: usize) {
        for bit in class_bits(person) {
            self.classes[bit].remove(person.slot, lane_number);
            self.free_holders[bit] -= 1;
        }
    }

    /// Where person `slot` is in the tree of `mode`, when indexed at `at`
    /// (checked in debug builds).
    fn place(&self, slot: u32, at: Position, mode: TravelMode) -> Option<Place> {
        let (lane_number, place) = self.places.get(slot as usize).copied().flatten()?;
        debug_assert_eq!(lane_number as usize, lane(mode), "person {slot} is indexed under another travel mode");
        debug_assert!(
            self.trees[lane_number as usize].entry(place).point == at.unit_vector(),
            "person {slot} is indexed at another point"
        );
        let _ = at;
        Some(place)
    }

    pub fn remove(&mut self, slot: u32, at: Position, mode: TravelMode) {
        let found = self.place(slot, at, mode);
        debug_assert!(found.is_some(), "person removed from the index was not in it");
        let Some(place) = found else {
            return;
        };
        let places = &mut self.places;
        places[slot as usize] = None;
        let lane_number = lane(mode);
        let removed =
            self.trees[lane_number].remove(place, &mut |slot, place| places[slot as usize] = Some((lane_number as u8, place)));
        self.remove_from_classes(&removed.data, lane_number);
    }

    /// Moves person `slot` from `from` to `to` (same travel mode), in each
    /// tree they are in: in place when the new point stays inside the
    /// leaf's box, else out and in.
    pub fn relocate(&mut self, slot: u32, from: Position, to: Position, mode: TravelMode) {
        let found = self.place(slot, from, mode);
        debug_assert!(found.is_some(), "person moved in the index was not in it");
        let Some(place) = found else {
            return;
        };
        let lane_number = lane(mode);
        let point = to.unit_vector();
        let person = self.trees[lane_number].entry(place).data;
        for bit in class_bits(&person) {
            self.classes[bit].relocate(slot, point, lane_number);
        }
        if self.trees[lane_number].move_within_leaf(place, point) {
            return;
        }
        let places = &mut self.places;
        self.trees[lane_number].remove(place, &mut |slot, place| places[slot as usize] = Some((lane_number as u8, place)));
        self.trees[lane_number]
            .insert(Entry { point, data: person }, &mut |slot, place| places[slot as usize] = Some((lane_number as u8, place)));
    }

    /// The entry of person `slot`, indexed at `at` under `mode`.
    pub fn entry(&self, slot: u32, at: Position, mode: TravelMode) -> Option<&Indexed> {
        let (lane_number, place) = self.places.get(slot as usize).copied().flatten()?;
        let entry = self.trees[lane_number as usize].entry(place);
        (lane_number as usize == lane(mode) && entry.point == at.unit_vector() && entry.data.slot == slot).then_some(&entry.data)
    }

    /// Changes the copies in person `slot`'s entry where it is (the point
    /// stays, so the tree does not change shape; the summaries above it
    /// follow), and moves them between classes as that changes them.
    pub fn update(&mut self, slot: u32, at: Position, mode: TravelMode, change: impl FnOnce(&mut Indexed)) {
        let found = self.place(slot, at, mode);
        debug_assert!(found.is_some(), "person updated in the index was not in it");
        let Some(place) = found else {
            return;
        };
        let lane_number = lane(mode);
        let (before, after) = self.trees[lane_number].update(place, change);
        if (before.free, before.skills) != (after.free, after.skills) {
            self.remove_from_classes(&before, lane_number);
            self.insert_in_classes(Entry { point: self.trees[lane_number].entry(place).point, data: after }, lane_number);
        }
    }

    /// How many free people hold skill bit `class`, over every travel mode.
    pub fn class_len(&self, class: Class) -> usize {
        self.free_holders.get(class).map_or(0, |count| *count as usize)
    }

    pub fn len(&self) -> usize {
        self.trees.iter().map(Tree::len).sum()
    }

    /// The distance in metres from `at` to someone indexed at `other`,
    /// computed as [`PeopleIndex::nearest`] gives it.
    pub fn distance_m(at: Position, other: Position) -> f64 {
        chord2_to_metres(tree::distance_2(other.unit_vector(), at.unit_vector()))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// People of one travel mode in order of great-circle distance from
    /// `at`, with the distance in metres.
    pub fn nearest(&self, at: Position, mode: TravelMode) -> impl Iterator<Item = (&Indexed, f64)> + '_ {
        self.nearest_with(at, mode, 0, false)
    }

    /// As [`PeopleIndex::nearest`], only people holding every bit of
    /// `skills`, and only free ones when `free_only`: a walk of the class
    /// of the rarest bit asked for when free people are, else of everyone,
    /// skipping whole subtrees without such a person.
    pub fn nearest_with(
        &self,
        at: Position,
        mode: TravelMode,
        skills: u64,
        free_only: bool,
    ) -> impl Iterator<Item = (&Indexed, f64)> + '_ {
        static EMPTY: std::sync::OnceLock<Tree> = std::sync::OnceLock::new();
        let filter = Filter { skills, free: free_only };
        let rarest = (0..64).filter(|bit| skills & (1 << bit) != 0).min_by_key(|bit| self.free_holders[*bit]);
        let tree = match rarest.filter(|_| free_only) {
            None => &self.trees[lane(mode)],
            Some(bit) => self.classes.get(bit).map_or_else(|| EMPTY.get_or_init(Tree::default), |class| &class.trees[lane(mode)]),
        };
        tree.nearest(at.unit_vector(), filter).map(|found| (found.data, chord2_to_metres(found.distance_2)))
    }

    /// People of every travel mode in the order of the time they take to
    /// reach `at` at `speeds` (metres per second, by travel mode), in one
    /// walk through the three trees, with the same filters as
    /// [`PeopleIndex::nearest_with`]: no need to walk each mode's tree out
    /// to where the k-th best of that mode alone would be. Goes no farther
    /// than `within_m` metres and `within_s` seconds (walks everywhere
    /// given infinity); the caller still checks both on what it finds.
    pub fn soonest_with(
        &self,
        at: Position,
        speeds: &Speeds,
        filter: (u64, bool),
        within_m: f64,
        within_s: f64,
    ) -> impl Iterator<Item = Soonest<'_>> + '_ {
        let (skills, free_only) = filter;
        let rarest = (0..64).filter(|bit| skills & (1 << bit) != 0).min_by_key(|bit| self.free_holders[*bit]);
        let trees: &[Tree; 3] = match rarest.filter(|_| free_only) {
            None => &self.trees,
            Some(bit) => self.classes.get(bit).map_or_else(|| EMPTY_LANES.get_or_init(Default::default), |class| &class.trees),
        };
        // A chord is never longer than its arc: the key, the squared
        // chord in metres over the squared speed, is a lower bound of the
        // squared time, made strictly so by shrinking it by one part in a
        // billion (against rounding); the bounds are widened alike. Both
        // only stop the walk early: what it finds is still checked.
        const SLACK: f64 = 1e-9;
        let weight = |number: usize| (EARTH_RADIUS_M / mode_of(number).speed_mps(speeds)).powi(2) * (1.0 - SLACK);
        let lanes = [(&trees[0], weight(0)), (&trees[1], weight(1)), (&trees[2], weight(2))];
        let within =
            Within { distance_2: (within_m / EARTH_RADIUS_M).powi(2) * (1.0 + SLACK), key: within_s.powi(2) * (1.0 + SLACK) };
        let filter = Filter { skills, free: free_only };
        Nearest::through(&lanes, at.unit_vector(), filter, within).map(move |found| {
            let mode = mode_of(found.lane);
            Soonest { person: found.data, metres: chord2_to_metres(found.distance_2), mode, at_least_s: found.key.sqrt() }
        })
    }

    /// Checks the trees (boxes, summaries, counts) and that the index
    /// knows where each entry is: for the engine's invariants.
    pub fn check(&self) -> Result<(), String> {
        for (lane_number, tree) in self.trees.iter().enumerate() {
            tree.check(|slot| {
                self.places
                    .get(slot as usize)
                    .copied()
                    .flatten()
                    .filter(|(in_lane, _)| *in_lane as usize == lane_number)
                    .map(|(_, place)| place)
            })?;
        }
        let placed = self.places.iter().flatten().count();
        if placed != self.len() {
            return Err(format!("the index knows the places of {placed} people and holds {}", self.len()));
        }
        for (bit, class) in self.classes.iter().enumerate() {
            for tree in &class.trees {
                tree.check(|slot| class.places.get(slot as usize).copied().flatten())?;
            }
            let held: usize = class.trees.iter().map(Tree::len).sum();
            if held != self.free_holders[bit] as usize || class.places.iter().flatten().count() != held {
                return Err(format!("the class of skill bit {bit} holds {held} people, {} counted", self.free_holders[bit]));
            }
        }
        Ok(())
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
        assert_eq!(index.class_len(1), 1);
        let free_holders: Vec<_> = index.nearest_with(centre, walk, 0b10, true).map(|(found, _)| found.slot).collect();
        assert_eq!(free_holders, [near], "only the free holders pass");
        let holders: Vec<_> = index.nearest_with(centre, walk, 0b10, false).map(|(found, _)| found.slot).collect();
        assert_eq!(holders, [near, mid], "busy holders pass when free is not asked for");
        assert_eq!(index.entry(mid, Position { lon: 120.16, lat: 30.28 }, walk).map(|found| found.free), Some(false));
        index.remove(near, Position { lon: 120.151, lat: 30.27 }, walk);
        assert_eq!(index.len(), 3);
        assert_eq!(index.class_len(1), 0, "no free holder left");
        assert_eq!(index.nearest(centre, TravelMode::Car).count(), 1);
        index.check().expect("the trees hold together");
    }

    /// Many people moving, leaving and changing: every walk gives what a
    /// sort of everyone by distance gives, and the trees hold together.
    #[test]
    fn the_tree_walks_in_distance_order_through_moves_splits_and_removals() {
        let mut index = PeopleIndex::default();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut unit = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let walk = TravelMode::Walk;
        let mut people: Vec<Option<(Position, Indexed)>> = Vec::new();
        for step in 0..6_000u32 {
            let slot = (unit() * 700.0) as u32;
            if people.len() <= slot as usize {
                people.resize(slot as usize + 1, None);
            }
            // Mostly small moves (staying in the leaf), some far jumps.
            let near_or_far = if unit() < 0.7 { 0.001 } else { 0.1 };
            let at = |base: Position, unit: &mut dyn FnMut() -> f64| Position {
                lon: base.lon + (unit() - 0.5) * near_or_far,
                lat: base.lat + (unit() - 0.5) * near_or_far,
            };
            match people[slot as usize] {
                None => {
                    let person = Indexed { slot, skills: (unit() * 8.0) as u64, free: unit() < 0.7 };
                    let where_ = at(Position { lon: 120.15, lat: 30.27 }, &mut unit);
                    index.insert(person, where_, walk);
                    people[slot as usize] = Some((where_, person));
                }
                Some((from, person)) if step % 7 == 0 => {
                    index.remove(slot, from, walk);
                    let _ = person;
                    people[slot as usize] = None;
                }
                Some((from, mut person)) if step % 5 == 0 => {
                    person.free = !person.free;
                    person.skills ^= 0b100;
                    index.update(slot, from, walk, |found| *found = person);
                    people[slot as usize] = Some((from, person));
                }
                Some((from, person)) => {
                    let to = at(from, &mut unit);
                    index.relocate(slot, from, to, walk);
                    people[slot as usize] = Some((to, person));
                }
            }
            if step % 500 == 0 {
                index.check().expect("the trees hold together");
                let centre = Position { lon: 120.1 + unit() * 0.1, lat: 30.22 + unit() * 0.1 };
                for (skills, free) in [(0, false), (0b1, true), (0b110, true), (0b10, false)] {
                    let walked: Vec<f64> = index.nearest_with(centre, walk, skills, free).map(|(_, metres)| metres).collect();
                    let mut expected: Vec<f64> = people
                        .iter()
                        .flatten()
                        .filter(|(_, person)| person.skills & skills == skills && (person.free || !free))
                        .map(|(at, _)| PeopleIndex::distance_m(centre, *at))
                        .collect();
                    expected.sort_by(f64::total_cmp);
                    assert_eq!(walked, expected, "step {step}, skills {skills:b}, free only {free}");
                }
                let free_skills: usize = people
                    .iter()
                    .flatten()
                    .filter(|(_, person)| person.free)
                    .map(|(_, person)| person.skills.count_ones() as usize)
                    .sum();
                assert_eq!((0..64).map(|class| index.class_len(class)).sum::<usize>(), free_skills);
            }
        }
        index.check().expect("the trees hold together");
    }

    /// The walk through the three travel modes gives everyone within its
    /// bounds who passes the filter, each once, with a lower bound of
    /// their time that never decreases along the walk.
    #[test]
    fn one_walk_through_the_travel_modes_goes_soonest_first_within_its_bounds() {
        let mut index = PeopleIndex::default();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut unit = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let speeds = Speeds { walk_mps: 1.4, bike_mps: 4.0, car_mps: 8.0 };
        let mut people = Vec::new();
        for slot in 0..2_000u32 {
            let at = Position { lon: 120.1 + unit() * 0.1, lat: 30.22 + unit() * 0.1 };
            let mode = [TravelMode::Walk, TravelMode::Bike, TravelMode::Car][slot as usize % 3];
            let person = Indexed { slot, skills: (unit() * 4.0) as u64, free: unit() < 0.8 };
            index.insert(person, at, mode);
            people.push((at, mode, person));
        }
        let centre = Position { lon: 120.15, lat: 30.27 };
        for (within_m, within_s) in [(f64::INFINITY, f64::INFINITY), (2_000.0, f64::INFINITY), (f64::INFINITY, 600.0)] {
            let walked: Vec<Soonest<'_>> = index.soonest_with(centre, &speeds, (0b10, true), within_m, within_s).collect();
            for pair in walked.windows(2) {
                assert!(pair[0].at_least_s <= pair[1].at_least_s, "soonest first");
            }
            for found in &walked {
                assert!(found.at_least_s <= found.metres / found.mode.speed_mps(&speeds), "a lower bound of the time");
            }
            let mut slots: Vec<u32> = walked.iter().map(|found| found.person.slot).collect();
            slots.sort_unstable();
            let expected: Vec<u32> = people
                .iter()
                .filter(|(_, _, person)| person.free && person.skills & 0b10 != 0)
                .filter(|(at, mode, _)| {
                    let metres = PeopleIndex::distance_m(centre, *at);
                    metres <= within_m && metres / mode.speed_mps(&speeds) <= within_s
                })
                .map(|(_, _, person)| person.slot)
                .collect();
            assert_eq!(slots, expected, "within {within_m} m and {within_s} s");
        }
    }

    #[test]
    fn out_of_range_coordinates_are_refused_with_a_reason() {
        assert!(Position::checked(181.0, 0.0).unwrap_err().contains("longitude"));
        assert!(Position::checked(0.0, -91.0).unwrap_err().contains("latitude"));
        assert!(Position::checked(f64::NAN, 0.0).is_err());
    }
}
