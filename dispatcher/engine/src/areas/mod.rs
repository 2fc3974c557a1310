//! The area hierarchy (city > district > street > community > grid > building),
//! its boundaries, and placing a point in it by point-in-polygon.

use std::collections::BTreeMap;

use geo::{BoundingRect, Centroid, InteriorPoint, Intersects, LineString, MultiPolygon, Point, Polygon};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};
use serde::{Deserialize, Serialize};

use crate::ids::AreaId;
use crate::spatial::Position;

mod check;
mod geojson;
#[cfg(test)]
mod tests;

pub use check::{MapCheck, MapDiff, MapProblem, ProblemKind};
pub use geojson::{MapProperties, MapReading, parse_geojson, read_geojson};

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

type BoxEntry = GeomWithData<Rectangle<[f64; 2]>, AreaId>;

/// Every imported area with its shape, indexed for point-in-polygon.
/// Serialises as its specs; shapes and the index are rebuilt on load.
#[derive(Default, Serialize, Deserialize)]
#[serde(from = "MapSnapshot", into = "MapSnapshot")]
pub struct AreaMap {
    specs: BTreeMap<AreaId, AreaSpec>,
    centres: BTreeMap<AreaId, ServiceCentreSpec>,
    /// Areas a newer map retired, kept for history: what incidents and
    /// reports name stays readable. Nothing is placed in them.
    retired: BTreeMap<AreaId, AreaSpec>,
    shapes: BTreeMap<AreaId, AreaShape>,
    index: RTree<BoxEntry>,
    /// Whether two areas touch, worked out once per pair when first asked
    /// (a border test of two district outlines can take milliseconds) and
    /// forgotten when the map changes.
    touching: std::sync::Mutex<std::collections::HashMap<(AreaId, AreaId), bool>>,
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

    /// The area's centre of mass, which for a concave area may lie outside
    /// it: for measures (coverage); to put something in the area, use
    /// [`AreaMap::inside_point`].
    pub fn centroid(&self, id: &AreaId) -> Option<Position> {
        self.shapes.get(id).and_then(|shape| shape.centroid)
    }

    /// A point inside the area, for placing what is given by area alone
    /// (a plan's task, a drill's incident or person): the centroid when it
    /// lies inside, otherwise a point on the surface.
    pub fn inside_point(&self, id: &AreaId) -> Option<Position> {
        self.shapes.get(id).and_then(|shape| shape.inside)
    }

    /// The bounding box of the whole map (south-west, north-east corners);
    /// `None` while no area has a boundary.
    pub fn bounds(&self) -> Option<(Position, Position)> {
        self.shapes.values().filter_map(|shape| shape.bounds).reduce(|(south_west, north_east), (low, high)| {
            (
                Position { lon: south_west.lon.min(low.lon), lat: south_west.lat.min(low.lat) },
                Position { lon: north_east.lon.max(high.lon), lat: north_east.lat.max(high.lat) },
            )
        })
    }

    /// The farthest a point of the area's bounding box can be from `from`, in
    /// metres: nobody farther away can be inside the area.
    pub fn farthest_extent_m(&self, id: &AreaId, from: Position) -> Option<f64> {
        let (south_west, north_east) = self.shapes.get(id)?.bounds?;
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
        let key = if a <= b { (a.clone(), b.clone()) } else { (b.clone(), a.clone()) };
        if let Some(known) = self.touching.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&key) {
            return *known;
        }
        let touching = match (self.shapes.get(a), self.shapes.get(b)) {
            (Some(first), Some(second)) => {
                let boxes_meet = match (first.bounds, second.bounds) {
                    (Some((south_west, north_east)), Some((other_south_west, other_north_east))) => {
                        south_west.lon <= other_north_east.lon
                            && other_south_west.lon <= north_east.lon
                            && south_west.lat <= other_north_east.lat
                            && other_south_west.lat <= north_east.lat
                    }
                    _ => false,
                };
                boxes_meet && first.shape.intersects(&second.shape)
            }
            _ => false,
        };
        self.touching.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(key, touching);
        touching
    }

    /// The area and its ancestors, the area first.
    pub fn lineage(&self, id: &AreaId) -> Vec<&AreaSpec> {
        let mut chain = Vec::new();
        let mut next = self.specs.get(id);
        while let Some(spec) = next {
            chain.push(spec);
            if chain.len() > AreaLevel::ALL.len() {
                break; // a validated map has no cycles; stay finite regardless
            }
            next = spec.parent.as_ref().and_then(|parent| self.specs.get(parent));
        }
        chain
    }

    /// The placement of an area itself (it and its ancestors).
    pub fn placement_of_area(&self, id: &AreaId) -> Placement {
        let mut placement = Placement::default();
        for spec in self.lineage(id) {
            placement.by_level[spec.level.depth()] = Some(spec.id.clone());
        }
        placement
    }

    /// Places a point in the deepest area whose boundary contains it. A point on
    /// a shared border goes to the area with the smallest id, so placing is
    /// deterministic.
    pub fn place(&self, at: Position) -> Placement {
        let point = Point::new(at.lon, at.lat);
        let deepest = self
            .index
            .locate_in_envelope_intersecting(&AABB::from_point([at.lon, at.lat]))
            .filter(|entry| self.shapes.get(&entry.data).is_some_and(|shape| shape.shape.intersects(&point)))
            .filter_map(|entry| self.specs.get(&entry.data))
            .max_by(|a, b| a.level.cmp(&b.level).then_with(|| b.id.cmp(&a.id)));
        match deepest {
            Some(spec) => self.placement_of_area(&spec.id),
            None => Placement::default(),
        }
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

    fn rebuild_shapes(&mut self) {
        self.shapes = self.specs.values().map(|spec| (spec.id.clone(), shape_of(&spec.polygons))).collect();
        let entries = self
            .shapes
            .iter()
            .filter_map(|(id, shape)| {
                let rect = shape.shape.bounding_rect()?;
                let envelope = Rectangle::from_corners([rect.min().x, rect.min().y], [rect.max().x, rect.max().y]);
                Some(GeomWithData::new(envelope, id.clone()))
            })
            .collect();
        self.index = RTree::bulk_load(entries);
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
