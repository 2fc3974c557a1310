//! The area hierarchy (city > district > street > community > grid > building),
//! its boundaries, and placing a point in it by point-in-polygon.

use std::collections::{BTreeMap, HashMap};

use geo::{BoundingRect, Centroid, Coord, InteriorPoint, Intersects, LineString, MultiPolygon, Polygon};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};
use serde::{Deserialize, Serialize};

use crate::ids::AreaId;
use crate::spatial::Position;

mod check;
mod geojson;
mod problems;
#[cfg(test)]
mod tests;

pub use check::{MapCheck, MapDiff};
pub use geojson::{MapProperties, MapReading, parse_geojson, read_geojson};
pub use problems::{MapProblem, ProblemKind};

/// A level of the hierarchy; `City` is the top.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AreaLevel {
    City,
    District,
    Street,
    Community,
    Grid,
    Building,
}

impl AreaLevel {
    pub const ALL: [AreaLevel; 6] =
        [AreaLevel::City, AreaLevel::District, AreaLevel::Street, AreaLevel::Community, AreaLevel::Grid, AreaLevel::Building];

    pub fn depth(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            AreaLevel::City => "city",
            AreaLevel::District => "district",
            AreaLevel::Street => "street",
            AreaLevel::Community => "community",
            AreaLevel::Grid => "grid",
            AreaLevel::Building => "building",
        }
    }

    pub fn from_name(name: &str) -> Option<AreaLevel> {
        AreaLevel::ALL.into_iter().find(|level| level.name() == name)
    }

    /// The next wider level, `None` above the city.
    pub fn wider(self) -> Option<AreaLevel> {
        match self {
            AreaLevel::City => None,
            other => Some(AreaLevel::ALL[other.depth() - 1]),
        }
    }
}

/// Polygon rings as plain coordinates: `polygons[p][ring][point] = [lon, lat]`,
/// ring 0 the exterior. Kept plain so events and snapshots stay simple JSON.
pub type Rings = Vec<Vec<Vec<[f64; 2]>>>;

/// One area as imported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AreaSpec {
    pub id: AreaId,
    pub name: String,
    pub level: AreaLevel,
    pub parent: Option<AreaId>,
    pub polygons: Rings,
}

/// A party-mass service centre (党群服务中心): a point serving a street or community.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceCentreSpec {
    pub id: AreaId,
    pub name: String,
    pub area: AreaId,
    pub at: Position,
}

/// The areas of one import.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AreaImport {
    pub areas: Vec<AreaSpec>,
    pub service_centres: Vec<ServiceCentreSpec>,
}

/// Where a point lies: the area at each level, where there is one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    by_level: [Option<AreaId>; 6],
}

impl Placement {
    /// A placement naming these areas, one per level (a later one of the
    /// same level wins): how a placement read from the wire is rebuilt.
    pub fn from_areas(areas: impl IntoIterator<Item = (AreaLevel, AreaId)>) -> Placement {
        let mut placement = Placement::default();
        for (level, area) in areas {
            placement.by_level[level.depth()] = Some(area);
        }
        placement
    }

    pub fn at(&self, level: AreaLevel) -> Option<&AreaId> {
        self.by_level[level.depth()].as_ref()
    }

    /// The deepest level the point was placed at, `None` when outside every area.
    pub fn deepest(&self) -> Option<AreaLevel> {
        AreaLevel::ALL.into_iter().rev().find(|level| self.at(*level).is_some())
    }

    /// Is `area` (at `level`) this point's area or one of its ancestors?
    pub fn within(&self, level: AreaLevel, area: &AreaId) -> bool {
        self.at(level) == Some(area)
    }

    pub fn areas(&self) -> impl Iterator<Item = (AreaLevel, &AreaId)> {
        AreaLevel::ALL.into_iter().filter_map(|level| self.at(level).map(|id| (level, id)))
    }
}

struct AreaShape {
    shape: MultiPolygon<f64>,
    centroid: Option<Position>,
    /// A point inside the area: the centroid when it lies inside, otherwise
    /// a point on the surface (an L-shaped street's centroid can fall in
    /// the neighbouring district).
    inside: Option<Position>,
    /// Bounding box corners (south-west, north-east).
    bounds: Option<(Position, Position)>,
}

impl AreaShape {
    /// Whether the point lies inside or on the border: geo's `intersects`,
    /// with the bounding box it would compute on every call (a walk over
    /// every vertex) taken from the one computed at import.
    fn covers(&self, at: Position) -> bool {
        let Some((south_west, north_east)) = self.bounds else {
            return false;
        };
        let in_box = south_west.lon <= at.lon && at.lon <= north_east.lon && south_west.lat <= at.lat && at.lat <= north_east.lat;
        let point = Coord { x: at.lon, y: at.lat };
        in_box && self.shape.iter().any(|polygon| polygon.intersects(&point))
    }
}

/// What the map knows of one area beyond its spec, worked out once per
/// import so that questions asked per person or per grid (where is this
/// point, which district is this grid in) are look-ups.
struct AreaFacts {
    level: AreaLevel,
    shape: AreaShape,
    /// The area and its ancestors by number, the area first.
    lineage: Vec<u32>,
    /// The same lineage as a placement.
    placement: Placement,
    /// The areas whose parent this is, by number.
    children: Vec<u32>,
}

/// An entry of the bounding-box index: an area's box and its number.
type BoxEntry = GeomWithData<Rectangle<[f64; 2]>, u32>;

/// Every imported area with its shape, indexed for point-in-polygon.
/// Serialises as its specs; shapes and the index are rebuilt on load.
///
/// Areas are numbered densely in id order on every change of the map (ids
/// interned), so that what is derived from the specs sits in vectors and
/// comparing two areas' numbers orders them as their ids.
#[derive(Default, Serialize, Deserialize)]
#[serde(from = "MapSnapshot", into = "MapSnapshot")]
pub struct AreaMap {
    specs: BTreeMap<AreaId, AreaSpec>,
    centres: BTreeMap<AreaId, ServiceCentreSpec>,
    /// Areas a newer map retired, kept for history: what incidents and
    /// reports name stays readable. Nothing is placed in them.
    retired: BTreeMap<AreaId, AreaSpec>,
    /// Each area's number: its position in `ids` and `facts`.
    numbers: HashMap<AreaId, u32>,
    ids: Vec<AreaId>,
    facts: Vec<AreaFacts>,
    /// The grids, listed once per change of the map (the staffing check walks them).
    grids: Vec<AreaId>,
    /// The bounding box of the whole map.
    bounds: Option<(Position, Position)>,
    index: RTree<BoxEntry>,
    /// Whether two areas (by number) touch, worked out once per pair when
    /// first asked (a border test of two district outlines can take
    /// milliseconds) and forgotten when the map changes.
    touching: std::sync::Mutex<HashMap<(u32, u32), bool>>,
}

/// The map as a snapshot stores it: its specs, and the retired areas.
#[derive(Serialize, Deserialize)]
struct MapSnapshot {
    areas: Vec<AreaSpec>,
    service_centres: Vec<ServiceCentreSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    retired: Vec<AreaSpec>,
}

impl PartialEq for AreaMap {
    fn eq(&self, other: &Self) -> bool {
        self.specs == other.specs && self.centres == other.centres && self.retired == other.retired
    }
}

impl std::fmt::Debug for AreaMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AreaMap({} areas, {} service centres)", self.specs.len(), self.centres.len())
    }
}

impl Clone for AreaMap {
    fn clone(&self) -> Self {
        AreaMap::from(MapSnapshot::from(self))
    }
}

impl AreaMap {
    /// The map's areas and service centres as an import (retired areas left out).
    pub fn to_import(&self) -> AreaImport {
        self.clone_specs()
    }

    fn clone_specs(&self) -> AreaImport {
        AreaImport { areas: self.specs.values().cloned().collect(), service_centres: self.centres.values().cloned().collect() }
    }

    pub fn get(&self, id: &AreaId) -> Option<&AreaSpec> {
        self.specs.get(id)
    }

    /// An area in force or retired: for naming what history refers to.
    pub fn get_any(&self, id: &AreaId) -> Option<&AreaSpec> {
        self.specs.get(id).or_else(|| self.retired.get(id))
    }

    /// Areas retired by a newer map, kept for history.
    pub fn retired(&self) -> impl Iterator<Item = &AreaSpec> {
        self.retired.values()
    }

    pub fn contains(&self, id: &AreaId) -> bool {
        self.specs.contains_key(id)
    }

    pub fn areas(&self) -> impl Iterator<Item = &AreaSpec> {
        self.specs.values()
    }

    pub fn service_centres(&self) -> impl Iterator<Item = &ServiceCentreSpec> {
        self.centres.values()
    }

    pub fn len(&self) -> usize {
        self.specs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    fn facts(&self, id: &AreaId) -> Option<&AreaFacts> {
        self.numbers.get(id).and_then(|number| self.facts.get(*number as usize))
    }

    /// The area's centre of mass, which for a concave area may lie outside
    /// it: for measures (coverage); to put something in the area, use
    /// [`AreaMap::inside_point`].
    pub fn centroid(&self, id: &AreaId) -> Option<Position> {
        self.facts(id).and_then(|facts| facts.shape.centroid)
    }

    /// A point inside the area, for placing what is given by area alone
    /// (a plan's task, a drill's incident or person): the centroid when it
    /// lies inside, otherwise a point on the surface.
    pub fn inside_point(&self, id: &AreaId) -> Option<Position> {
        self.facts(id).and_then(|facts| facts.shape.inside)
    }

    /// The bounding box of the whole map (south-west, north-east corners);
    /// `None` while no area has a boundary.
    pub fn bounds(&self) -> Option<(Position, Position)> {
        self.bounds
    }

    /// The farthest a point of the area's bounding box can be from `from`, in
    /// metres: nobody farther away can be inside the area.
    pub fn farthest_extent_m(&self, id: &AreaId, from: Position) -> Option<f64> {
        let (south_west, north_east) = self.facts(id)?.shape.bounds?;
        let corners = [
            south_west,
            north_east,
            Position { lon: south_west.lon, lat: north_east.lat },
            Position { lon: north_east.lon, lat: south_west.lat },
        ];
        // Corners bound the box well at city scale; pad for the curvature of edges.
        corners.iter().map(|corner| from.distance_m(*corner)).reduce(f64::max).map(|metres| metres * 1.01 + 1.0)
    }

    /// Whether areas `a` and `b` touch: their outlines meet or overlap (a
    /// shared border, as in every boundary file cut from one source). A gap
    /// between them, however narrow, keeps them apart; an area off the map
    /// touches nothing.
    pub fn touch(&self, a: &AreaId, b: &AreaId) -> bool {
        let (Some(first_number), Some(second_number)) = (self.numbers.get(a).copied(), self.numbers.get(b).copied()) else {
            return false;
        };
        let key = (first_number.min(second_number), first_number.max(second_number));
        if let Some(known) = self.touching.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&key) {
            return *known;
        }
        let touching = match (self.facts.get(first_number as usize), self.facts.get(second_number as usize)) {
            (Some(first), Some(second)) => {
                let boxes_meet = match (first.shape.bounds, second.shape.bounds) {
                    (Some((south_west, north_east)), Some((other_south_west, other_north_east))) => {
                        south_west.lon <= other_north_east.lon
                            && other_south_west.lon <= north_east.lon
                            && south_west.lat <= other_north_east.lat
                            && other_south_west.lat <= north_east.lat
                    }
                    _ => false,
                };
                boxes_meet && first.shape.shape.intersects(&second.shape.shape)
            }
            _ => false,
        };
        self.touching.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(key, touching);
        touching
    }

    /// The area and its ancestors, the area first.
    pub fn lineage(&self, id: &AreaId) -> Vec<&AreaSpec> {
        let Some(facts) = self.facts(id) else {
            return Vec::new();
        };
        facts
            .lineage
            .iter()
            .filter_map(|number| self.ids.get(*number as usize))
            .filter_map(|ancestor| self.specs.get(ancestor))
            .collect()
    }

    /// The placement of an area itself (it and its ancestors).
    pub fn placement_of_area(&self, id: &AreaId) -> Placement {
        self.area_placement(id).cloned().unwrap_or_default()
    }

    /// The placement of an area itself, without a copy; `None` for an area
    /// not on the map.
    pub fn area_placement(&self, id: &AreaId) -> Option<&Placement> {
        self.facts(id).map(|facts| &facts.placement)
    }

    /// The area and every area under it (by parent links), the area first;
    /// none for an area not on the map.
    pub fn area_and_descendants(&self, id: &AreaId) -> Vec<&AreaId> {
        let Some(number) = self.numbers.get(id).copied() else {
            return Vec::new();
        };
        let mut found = vec![number];
        let mut next = 0;
        // A validated map is a tree; the bound keeps a corrupt one finite.
        while next < found.len() && found.len() <= self.facts.len() {
            if let Some(facts) = self.facts.get(found[next] as usize) {
                found.extend(facts.children.iter().copied());
            }
            next += 1;
        }
        found.into_iter().filter_map(|number| self.ids.get(number as usize)).collect()
    }

    /// The grids of the map, in id order.
    pub fn grids(&self) -> &[AreaId] {
        &self.grids
    }

    /// Places a point in the deepest area whose boundary contains it. A point on
    /// a shared border goes to the area with the smallest id, so placing is
    /// deterministic.
    pub fn place(&self, at: Position) -> Placement {
        self.placement_by_number(self.locate(at, &mut Vec::new())).clone()
    }

    /// [`AreaMap::place`] as the number of the deepest area (`None` outside
    /// every area), which [`AreaMap::placement_by_number`] turns into the
    /// placement: what a live location keeps, so that an update copies no
    /// area ids. `candidates` is a buffer the caller keeps, so that placing
    /// allocates nothing. A number holds until the map changes.
    pub fn locate(&self, at: Position, candidates: &mut Vec<(AreaLevel, u32)>) -> Option<u32> {
        // The boxes holding the point, deepest level first and, within a
        // level, smallest id first: the first area that holds the point is
        // the answer, and the outlines of its ancestors (a city's thousands
        // of vertices) are never walked.
        candidates.clear();
        candidates.extend(
            self.index
                .locate_in_envelope_intersecting(&AABB::from_point([at.lon, at.lat]))
                .filter_map(|entry| self.facts.get(entry.data as usize).map(|facts| (facts.level, entry.data))),
        );
        candidates.sort_unstable_by(|(level, number), (other_level, other_number)| {
            other_level.cmp(level).then_with(|| number.cmp(other_number))
        });
        candidates
            .iter()
            .map(|(_, number)| *number)
            .find(|number| self.facts.get(*number as usize).is_some_and(|facts| facts.shape.covers(at)))
    }

    /// The placement of the area numbered `number` ([`AreaMap::locate`]):
    /// the area and its ancestors; nowhere for `None`.
    pub fn placement_by_number(&self, number: Option<u32>) -> &Placement {
        static NOWHERE: Placement = Placement { by_level: [const { None }; 6] };
        number.and_then(|number| self.facts.get(number as usize)).map_or(&NOWHERE, |facts| &facts.placement)
    }

    /// Adds (or replaces) the areas of a validated import.
    pub fn apply_import(&mut self, import: &AreaImport) {
        self.touching.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
        for spec in &import.areas {
            self.retired.remove(&spec.id);
            self.specs.insert(spec.id.clone(), spec.clone());
        }
        for centre in &import.service_centres {
            self.centres.insert(centre.id.clone(), centre.clone());
        }
        self.rebuild_shapes();
    }

    /// Retires areas (kept for history, no longer placed in) and removes
    /// service centres: a newer map lacks them, or an admin retired them.
    pub fn retire(&mut self, areas: &[AreaId], service_centres: &[AreaId]) {
        self.touching.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
        for id in areas {
            if let Some(spec) = self.specs.remove(id) {
                self.retired.insert(id.clone(), spec);
            }
        }
        for id in service_centres {
            self.centres.remove(id);
        }
        self.rebuild_shapes();
    }

    /// Rebuilds everything derived from the specs: numbers, shapes,
    /// lineages, the grid list, the bounding boxes and their index.
    fn rebuild_shapes(&mut self) {
        self.ids = self.specs.keys().cloned().collect();
        self.numbers = self.ids.iter().enumerate().map(|(number, id)| (id.clone(), number as u32)).collect();
        self.touching.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
        let facts: Vec<AreaFacts> = self
            .specs
            .values()
            .map(|spec| {
                let lineage = self.walk_lineage(&spec.id);
                let mut placement = Placement::default();
                for number in &lineage {
                    if let Some(ancestor) = self.specs.get(&self.ids[*number as usize]) {
                        placement.by_level[ancestor.level.depth()] = Some(ancestor.id.clone());
                    }
                }
                AreaFacts { level: spec.level, shape: shape_of(&spec.polygons), lineage, placement, children: Vec::new() }
            })
            .collect();
        self.facts = facts;
        for (number, spec) in self.specs.values().enumerate() {
            let parent = spec.parent.as_ref().and_then(|parent| self.numbers.get(parent)).copied();
            if let Some(parent_facts) = parent.and_then(|parent| self.facts.get_mut(parent as usize)) {
                parent_facts.children.push(number as u32);
            }
        }
        self.grids = self.specs.values().filter(|spec| spec.level == AreaLevel::Grid).map(|spec| spec.id.clone()).collect();
        self.bounds = self.facts.iter().filter_map(|facts| facts.shape.bounds).reduce(|(south_west, north_east), (low, high)| {
            (
                Position { lon: south_west.lon.min(low.lon), lat: south_west.lat.min(low.lat) },
                Position { lon: north_east.lon.max(high.lon), lat: north_east.lat.max(high.lat) },
            )
        });
        let entries = self
            .facts
            .iter()
            .enumerate()
            .filter_map(|(number, facts)| {
                let (south_west, north_east) = facts.shape.bounds?;
                let envelope = Rectangle::from_corners([south_west.lon, south_west.lat], [north_east.lon, north_east.lat]);
                Some(GeomWithData::new(envelope, number as u32))
            })
            .collect();
        self.index = RTree::bulk_load(entries);
    }

    /// The numbers of the area and its ancestors by parent links, the area
    /// first; used while the numbers are being assigned.
    fn walk_lineage(&self, id: &AreaId) -> Vec<u32> {
        let mut chain = Vec::new();
        let mut next = self.specs.get(id);
        while let Some(spec) = next {
            let Some(number) = self.numbers.get(&spec.id) else { break };
            chain.push(*number);
            if chain.len() > AreaLevel::ALL.len() {
                break; // a validated map has no cycles; stay finite regardless
            }
            next = spec.parent.as_ref().and_then(|parent| self.specs.get(parent));
        }
        chain
    }
}

impl From<AreaImport> for AreaMap {
    fn from(import: AreaImport) -> Self {
        let mut map = AreaMap::default();
        map.apply_import(&import);
        map
    }
}

impl From<MapSnapshot> for AreaMap {
    fn from(snapshot: MapSnapshot) -> Self {
        let mut map = AreaMap::from(AreaImport { areas: snapshot.areas, service_centres: snapshot.service_centres });
        map.retired = snapshot.retired.into_iter().map(|spec| (spec.id.clone(), spec)).collect();
        map
    }
}

impl From<&AreaMap> for MapSnapshot {
    fn from(map: &AreaMap) -> Self {
        let AreaImport { areas, service_centres } = map.clone_specs();
        MapSnapshot { areas, service_centres, retired: map.retired.values().cloned().collect() }
    }
}

impl From<AreaMap> for MapSnapshot {
    fn from(map: AreaMap) -> Self {
        MapSnapshot::from(&map)
    }
}

fn shape_of(rings: &Rings) -> AreaShape {
    let polygons: Vec<Polygon<f64>> = rings
        .iter()
        .filter(|polygon| !polygon.is_empty())
        .map(|polygon| {
            let mut rings = polygon.iter().map(|ring| LineString::from(ring.iter().map(|[x, y]| (*x, *y)).collect::<Vec<_>>()));
            let exterior = rings.next().unwrap_or_else(|| LineString::new(vec![]));
            Polygon::new(exterior, rings.collect())
        })
        .collect();
    let shape = MultiPolygon::new(polygons);
    let centroid_point = shape.centroid();
    let centroid = centroid_point.map(|point| Position { lon: point.x(), lat: point.y() });
    let inside_point = match centroid_point {
        Some(point) if shape.intersects(&point) => Some(point),
        _ => shape.interior_point(),
    };
    let inside = inside_point.map(|point| Position { lon: point.x(), lat: point.y() });
    let bounds = shape
        .bounding_rect()
        .map(|rect| (Position { lon: rect.min().x, lat: rect.min().y }, Position { lon: rect.max().x, lat: rect.max().y }));
    AreaShape { shape, centroid, inside, bounds }
}
