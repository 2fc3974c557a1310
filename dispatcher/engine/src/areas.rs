//! The area hierarchy (city > district > street > community > grid > building),
//! its boundaries, and placing a point in it by point-in-polygon.

use std::collections::{BTreeMap, BTreeSet};

use geo::{BoundingRect, Centroid, InteriorPoint, Intersects, LineString, MultiPolygon, Point, Polygon};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};
use serde::{Deserialize, Serialize};

use crate::crs::CoordinateSystem;
use crate::ids::{AreaId, check_id, quote};
use crate::spatial::Position;

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
#[serde(from = "AreaImport", into = "AreaImport")]
pub struct AreaMap {
    specs: BTreeMap<AreaId, AreaSpec>,
    centres: BTreeMap<AreaId, ServiceCentreSpec>,
    shapes: BTreeMap<AreaId, AreaShape>,
    index: RTree<BoxEntry>,
    /// Whether two areas touch, worked out once per pair when first asked
    /// (a border test of two district outlines can take milliseconds) and
    /// forgotten when the map changes.
    touching: std::sync::Mutex<std::collections::HashMap<(AreaId, AreaId), bool>>,
}

impl PartialEq for AreaMap {
    fn eq(&self, other: &Self) -> bool {
        self.specs == other.specs && self.centres == other.centres
    }
}

impl std::fmt::Debug for AreaMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AreaMap({} areas, {} service centres)", self.specs.len(), self.centres.len())
    }
}

impl Clone for AreaMap {
    fn clone(&self) -> Self {
        AreaMap::from(self.clone_specs())
    }
}

impl AreaMap {
    fn clone_specs(&self) -> AreaImport {
        AreaImport { areas: self.specs.values().cloned().collect(), service_centres: self.centres.values().cloned().collect() }
    }

    pub fn get(&self, id: &AreaId) -> Option<&AreaSpec> {
        self.specs.get(id)
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

    /// Checks an import against this map (areas with existing ids are
    /// replaced) without changing anything.
    pub fn validate_import(&self, import: &AreaImport) -> Result<(), String> {
        let mut merged: BTreeMap<&AreaId, &AreaSpec> = self.specs.iter().collect();
        let mut seen = BTreeSet::new();
        for spec in &import.areas {
            if !seen.insert(&spec.id) {
                return Err(format!("area id {} appears twice in the import; give every feature a unique id", spec.id));
            }
            merged.insert(&spec.id, spec);
        }
        for spec in &import.areas {
            if spec.polygons.is_empty() {
                return Err(format!("area {} has no polygon; give it a Polygon or MultiPolygon geometry", spec.id));
            }
            let Some(parent_id) = &spec.parent else {
                if spec.level != AreaLevel::City {
                    return Err(format!(
                        "area {} ({}) has no parent; only a city may be top-level, so set its `parent` property",
                        spec.id,
                        spec.level.name()
                    ));
                }
                continue;
            };
            // Walk up to catch cycles before judging levels.
            let mut path = vec![spec.id.clone()];
            let mut cursor = Some(parent_id);
            while let Some(id) = cursor {
                if path.contains(id) {
                    path.push(id.clone());
                    let chain: Vec<_> = path.iter().map(|id| id.as_str()).collect();
                    return Err(format!("the parent links form a cycle: {}; fix the `parent` properties", chain.join(" -> ")));
                }
                path.push(id.clone());
                cursor = merged.get(id).and_then(|parent| parent.parent.as_ref());
            }
            let Some(parent) = merged.get(parent_id) else {
                return Err(format!(
                    "area {} names parent {} which is neither in the import nor already known; import the parent too",
                    spec.id,
                    quote(parent_id)
                ));
            };
            if parent.level >= spec.level {
                return Err(format!(
                    "area {} is a {} but its parent {} is a {}; a parent must be a wider level",
                    spec.id,
                    spec.level.name(),
                    parent.id,
                    parent.level.name()
                ));
            }
        }
        for centre in &import.service_centres {
            if !seen.insert(&centre.id) || merged.contains_key(&centre.id) {
                return Err(format!("id {} is used twice; give every feature a unique id", centre.id));
            }
            if !merged.contains_key(&centre.area) {
                return Err(format!(
                    "service centre {} names area {} which is unknown; set `parent` to a street or community id",
                    centre.id,
                    quote(&centre.area)
                ));
            }
        }
        Ok(())
    }

    /// Adds (or replaces) the areas of a validated import.
    pub fn apply_import(&mut self, import: &AreaImport) {
        self.touching.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
        for spec in &import.areas {
            self.specs.insert(spec.id.clone(), spec.clone());
        }
        for centre in &import.service_centres {
            self.centres.insert(centre.id.clone(), centre.clone());
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

impl From<AreaMap> for AreaImport {
    fn from(map: AreaMap) -> Self {
        map.clone_specs()
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

/// Reads a GeoJSON FeatureCollection whose features carry `id`, `name`,
/// `level` and `parent` properties. Errors name the feature and the field.
pub fn parse_geojson(text: &str) -> Result<AreaImport, String> {
    let root: serde_json::Value =
        serde_json::from_str(text).map_err(|error| format!("the GeoJSON is not valid JSON ({error}); check the file"))?;
    if root.get("type").and_then(|t| t.as_str()) != Some("FeatureCollection") {
        return Err("the GeoJSON must be a FeatureCollection (\"type\": \"FeatureCollection\")".to_string());
    }
    let features = root.get("features").and_then(|f| f.as_array()).ok_or("the FeatureCollection has no \"features\" array")?;
    let system = declared_system(&root)?;
    let mut import = AreaImport::default();
    for (index, feature) in features.iter().enumerate() {
        let where_ = |field: &str| format!("feature #{index}: {field}");
        let properties =
            feature.get("properties").and_then(|p| p.as_object()).ok_or_else(|| where_("has no properties object"))?;
        let text_property = |name: &str| -> Option<String> {
            match properties.get(name) {
                Some(serde_json::Value::String(s)) => Some(s.trim().to_string()),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            }
        };
        let id = text_property("id").filter(|id| !id.is_empty()).ok_or_else(|| where_("property `id` is missing or empty"))?;
        check_id("property `id`", &id).map_err(|problem| where_(&problem))?;
        let where_id = |what: String| format!("feature #{index} (id {id}): {what}");
        let name = text_property("name").unwrap_or_default();
        let level = text_property("level").ok_or_else(|| where_id("property `level` is missing".into()))?;
        let parent = text_property("parent").filter(|p| !p.is_empty()).map(AreaId::new);
        let geometry = feature.get("geometry").ok_or_else(|| where_id("has no geometry".into()))?;
        let geometry_type = geometry.get("type").and_then(|t| t.as_str()).unwrap_or("");
        let coordinates = geometry.get("coordinates").ok_or_else(|| where_id("geometry has no coordinates".into()))?;
        if level == "service_centre" {
            let Some(area) = parent else {
                return Err(where_id("a service centre needs `parent`: the street or community it serves".into()));
            };
            if geometry_type != "Point" {
                return Err(where_id(format!("a service centre must be a Point, not {}", quote(geometry_type))));
            }
            let [lon, lat] = parse_position(coordinates).map_err(where_id)?;
            let at = Position::checked(lon, lat).map_err(where_id)?;
            import.service_centres.push(ServiceCentreSpec { id: AreaId::new(id.clone()), name, area, at });
            continue;
        }
        let level = AreaLevel::from_name(&level).ok_or_else(|| {
            where_id(format!(
                "level \"{}\" is unknown; use city, district, street, community, grid, building or service_centre",
                quote(&level)
            ))
        })?;
        let polygons = match geometry_type {
            "Polygon" => vec![parse_polygon(coordinates).map_err(where_id)?],
            "MultiPolygon" => coordinates
                .as_array()
                .ok_or_else(|| where_id("MultiPolygon coordinates must be an array".into()))?
                .iter()
                .map(parse_polygon)
                .collect::<Result<_, _>>()
                .map_err(where_id)?,
            other => return Err(where_id(format!("an area must be a Polygon or MultiPolygon, not \"{}\"", quote(other)))),
        };
        import.areas.push(AreaSpec { id: AreaId::new(id.clone()), name, level, parent, polygons });
    }
    if import.areas.is_empty() {
        return Err("the FeatureCollection holds no areas".to_string());
    }
    if system != CoordinateSystem::Wgs84 {
        to_wgs84(&mut import, system);
    }
    Ok(import)
}

/// The coordinate system a map file declares in its top-level `crs`
/// member: a name (`"crs": "gcj02"`) or GeoJSON 2008's named form
/// (`{"type": "name", "properties": {"name": "EPSG:4326"}}`). Without
/// one, WGS84, as RFC 7946 says.
fn declared_system(root: &serde_json::Value) -> Result<CoordinateSystem, String> {
    let name = match root.get("crs") {
        None | Some(serde_json::Value::Null) => return Ok(CoordinateSystem::Wgs84),
        Some(serde_json::Value::String(name)) => name.as_str(),
        Some(named) => named.pointer("/properties/name").and_then(|name| name.as_str()).ok_or(
            "the map's `crs` member is neither a name (\"crs\": \"gcj02\") nor {\"type\": \"name\", \"properties\": {\"name\": ...}}",
        )?,
    };
    CoordinateSystem::parse(name).map_err(|problem| format!("the map's `crs` member: {problem}"))
}

/// Converts every position of `import` from `system` to WGS84.
fn to_wgs84(import: &mut AreaImport, system: CoordinateSystem) {
    for spec in &mut import.areas {
        for point in spec.polygons.iter_mut().flatten().flatten() {
            let (lon, lat) = system.to_wgs84(point[0], point[1]);
            *point = [lon, lat];
        }
    }
    for centre in &mut import.service_centres {
        let (lon, lat) = system.to_wgs84(centre.at.lon, centre.at.lat);
        centre.at = Position { lon, lat };
    }
}

fn parse_position(value: &serde_json::Value) -> Result<[f64; 2], String> {
    let pair = value.as_array().filter(|pair| pair.len() >= 2).ok_or("a position must be [lon, lat]")?;
    let lon = pair[0].as_f64().ok_or("a longitude is not a number")?;
    let lat = pair[1].as_f64().ok_or("a latitude is not a number")?;
    Position::checked(lon, lat)?;
    Ok([lon, lat])
}

fn parse_polygon(value: &serde_json::Value) -> Result<Vec<Vec<[f64; 2]>>, String> {
    let rings = value.as_array().filter(|rings| !rings.is_empty()).ok_or("a polygon must be a non-empty array of rings")?;
    rings
        .iter()
        .map(|ring| {
            let points = ring.as_array().ok_or("a ring must be an array of positions")?;
            let points = points.iter().map(parse_position).collect::<Result<Vec<_>, _>>()?;
            if points.len() < 4 || points.first() != points.last() {
                return Err("a ring needs at least 4 positions and must end where it starts".to_string());
            }
            Ok(points)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x0: f64, y0: f64, x1: f64, y1: f64) -> serde_json::Value {
        serde_json::json!({"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]})
    }

    fn feature(id: &str, level: &str, parent: &str, geometry: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"type": "Feature", "properties": {"id": id, "name": id, "level": level, "parent": parent}, "geometry": geometry})
    }

    fn collection(features: Vec<serde_json::Value>) -> String {
        serde_json::json!({"type": "FeatureCollection", "features": features}).to_string()
    }

    fn small_map() -> AreaMap {
        let text = collection(vec![
            feature("city", "city", "", square(0.0, 0.0, 2.0, 1.0)),
            feature("d1", "district", "city", square(0.0, 0.0, 1.0, 1.0)),
            feature("d2", "district", "city", square(1.0, 0.0, 2.0, 1.0)),
            feature("g1", "grid", "d1", square(0.0, 0.0, 0.5, 1.0)),
        ]);
        let import = parse_geojson(&text).expect("valid");
        let map = AreaMap::default();
        map.validate_import(&import).expect("valid hierarchy");
        AreaMap::from(import)
    }

    #[test]
    fn places_a_point_in_its_deepest_area_with_ancestors() {
        let map = small_map();
        let placement = map.place(Position { lon: 0.25, lat: 0.5 });
        assert_eq!(placement.at(AreaLevel::Grid), Some(&AreaId::new("g1")));
        assert_eq!(placement.at(AreaLevel::District), Some(&AreaId::new("d1")));
        assert_eq!(placement.at(AreaLevel::City), Some(&AreaId::new("city")));
        let east = map.place(Position { lon: 1.5, lat: 0.5 });
        assert_eq!(east.deepest(), Some(AreaLevel::District));
        assert_eq!(east.at(AreaLevel::District), Some(&AreaId::new("d2")));
        assert_eq!(map.place(Position { lon: 5.0, lat: 5.0 }).deepest(), None);
    }

    #[test]
    fn snapshot_round_trip_rebuilds_the_index() {
        let map = small_map();
        let json = serde_json::to_string(&map).expect("serialise");
        let back: AreaMap = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back.place(Position { lon: 0.25, lat: 0.5 }).at(AreaLevel::Grid), Some(&AreaId::new("g1")));
    }

    #[test]
    fn bad_hierarchies_are_refused_with_the_reason() {
        let cycle = collection(vec![
            feature("a", "district", "b", square(0.0, 0.0, 1.0, 1.0)),
            feature("b", "street", "a", square(0.0, 0.0, 1.0, 1.0)),
        ]);
        let error = AreaMap::default().validate_import(&parse_geojson(&cycle).expect("parses")).unwrap_err();
        assert!(error.contains("cycle"), "{error}");

        let orphan = collection(vec![feature("s", "street", "nowhere", square(0.0, 0.0, 1.0, 1.0))]);
        let error = AreaMap::default().validate_import(&parse_geojson(&orphan).expect("parses")).unwrap_err();
        assert!(error.contains("nowhere"), "{error}");

        let upside_down = collection(vec![
            feature("c", "city", "", square(0.0, 0.0, 1.0, 1.0)),
            feature("g", "grid", "c", square(0.0, 0.0, 1.0, 1.0)),
            feature("d", "district", "g", square(0.0, 0.0, 1.0, 1.0)),
        ]);
        let error = AreaMap::default().validate_import(&parse_geojson(&upside_down).expect("parses")).unwrap_err();
        assert!(error.contains("wider level"), "{error}");

        let duplicate = collection(vec![
            feature("c", "city", "", square(0.0, 0.0, 1.0, 1.0)),
            feature("c", "city", "", square(0.0, 0.0, 1.0, 1.0)),
        ]);
        let error = AreaMap::default().validate_import(&parse_geojson(&duplicate).expect("parses")).unwrap_err();
        assert!(error.contains("twice"), "{error}");
    }

    #[test]
    fn malformed_geojson_names_the_feature_and_field() {
        assert!(parse_geojson("{").unwrap_err().contains("not valid JSON"));
        let bad_level = collection(vec![feature("x", "county", "", square(0.0, 0.0, 1.0, 1.0))]);
        let error = parse_geojson(&bad_level).unwrap_err();
        assert!(error.contains("id x") && error.contains("county"), "{error}");
        let open_ring = collection(vec![feature(
            "x",
            "city",
            "",
            serde_json::json!({"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]]}),
        )]);
        assert!(parse_geojson(&open_ring).unwrap_err().contains("ring"));
        let out_of_range = collection(vec![feature("x", "city", "", square(0.0, 0.0, 200.0, 1.0))]);
        assert!(parse_geojson(&out_of_range).unwrap_err().contains("longitude"));
    }

    /// A map drawn in GCJ-02 (as AMap exports it) and declared so lands on
    /// the same ground as the WGS84 original: every vertex within a
    /// centimetre, so points fall in the same grids. Undeclared, the same
    /// file would be hundreds of metres off.
    #[test]
    fn a_map_declared_in_gcj02_is_converted_to_wgs84_on_import() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/maps/sample-city.geojson");
        let text = std::fs::read_to_string(path).expect("sample city present");
        let original = parse_geojson(&text).expect("sample city parses");
        let mut shifted: serde_json::Value = serde_json::from_str(&text).expect("json");
        fn shift(value: &mut serde_json::Value) {
            match value {
                serde_json::Value::Array(items) if items.len() == 2 && items.iter().all(|item| item.is_f64()) => {
                    let (lon, lat) = CoordinateSystem::Gcj02
                        .from_wgs84(items[0].as_f64().unwrap_or_default(), items[1].as_f64().unwrap_or_default());
                    *value = serde_json::json!([lon, lat]);
                }
                serde_json::Value::Array(items) => items.iter_mut().for_each(shift),
                serde_json::Value::Object(fields) => fields.values_mut().for_each(shift),
                _ => {}
            }
        }
        shift(&mut shifted);
        let undeclared = parse_geojson(&shifted.to_string()).expect("parses as WGS84");
        shifted["crs"] = serde_json::json!("GCJ-02");
        let declared = parse_geojson(&shifted.to_string()).expect("parses as GCJ-02");
        let vertices = |import: &AreaImport| -> Vec<Position> {
            let mut points: Vec<Position> = import
                .areas
                .iter()
                .flat_map(|spec| spec.polygons.iter().flatten().flatten())
                .map(|[lon, lat]| Position { lon: *lon, lat: *lat })
                .collect();
            points.extend(import.service_centres.iter().map(|centre| centre.at));
            points
        };
        let worst = |import: &AreaImport| {
            vertices(&original).iter().zip(vertices(import)).map(|(a, b)| a.distance_m(b)).fold(0.0, f64::max)
        };
        assert!(worst(&declared) < 0.01, "declared GCJ-02: {} m off", worst(&declared));
        assert!(worst(&undeclared) > 300.0, "undeclared: {} m off", worst(&undeclared));
        let named = serde_json::json!({"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}});
        shifted["crs"] = named;
        assert!(parse_geojson(&shifted.to_string()).is_ok());
        shifted["crs"] = serde_json::json!("EPSG:3857");
        assert!(parse_geojson(&shifted.to_string()).is_err_and(|error| error.contains("crs")));
    }

    /// An L-shaped street whose centroid falls outside it (in the corner
    /// the L leaves open, which belongs to its neighbour): what is placed
    /// by area alone goes inside the street, not at the centroid.
    #[test]
    fn a_point_placed_by_area_alone_lies_inside_a_concave_area() {
        let square = |west: f64, south: f64, east: f64, north: f64| {
            vec![vec![[west, south], [east, south], [east, north], [west, north], [west, south]]]
        };
        let l_shape = vec![vec![[0.0, 0.0], [0.03, 0.0], [0.03, 0.005], [0.005, 0.005], [0.005, 0.03], [0.0, 0.03], [0.0, 0.0]]];
        let spec = |id: &str, level, parent: Option<&str>, polygons| AreaSpec {
            id: AreaId::new(id),
            name: id.to_string(),
            level,
            parent: parent.map(AreaId::new),
            polygons,
        };
        let map = AreaMap::from(AreaImport {
            areas: vec![
                spec("city", AreaLevel::City, None, vec![square(0.0, 0.0, 0.03, 0.03)]),
                spec("l", AreaLevel::District, Some("city"), vec![l_shape]),
                spec("corner", AreaLevel::District, Some("city"), vec![square(0.005, 0.005, 0.03, 0.03)]),
            ],
            service_centres: Vec::new(),
        });
        let centroid = map.centroid(&AreaId::new("l")).expect("a centroid");
        assert!(map.place(centroid).within(AreaLevel::District, &AreaId::new("corner")), "the centroid is in the corner");
        let inside = map.inside_point(&AreaId::new("l")).expect("a point inside");
        assert!(map.place(inside).within(AreaLevel::District, &AreaId::new("l")), "{inside:?} is inside the L");
        let square_centre = map.inside_point(&AreaId::new("city")).expect("a point");
        assert_eq!(Some(square_centre), map.centroid(&AreaId::new("city")), "a convex area keeps its centroid");
    }

    /// The rule for a point closer to a border than the data's precision:
    /// the deepest area whose outline contains it decides, and its
    /// ancestors follow the declared hierarchy. A grid that overhangs its
    /// district by a centimetre (as real boundary files do) keeps a point
    /// in the overhang in that grid and in the grid's own district, never
    /// in the grid of one district and the district of another.
    #[test]
    fn a_point_in_a_grid_overhanging_its_district_follows_the_grid() {
        let square = |west: f64, south: f64, east: f64, north: f64| {
            vec![vec![[west, south], [east, south], [east, north], [west, north], [west, south]]]
        };
        let spec = |id: &str, level, parent: Option<&str>, polygons| AreaSpec {
            id: AreaId::new(id),
            name: id.to_string(),
            level,
            parent: parent.map(AreaId::new),
            polygons,
        };
        // About 1 cm of overhang at this latitude: 1e-7 degrees.
        let overhang = 1e-7;
        let map = AreaMap::from(AreaImport {
            areas: vec![
                spec("city", AreaLevel::City, None, vec![square(0.0, 0.0, 0.02, 0.01)]),
                spec("west", AreaLevel::District, Some("city"), vec![square(0.0, 0.0, 0.01, 0.01)]),
                spec("east", AreaLevel::District, Some("city"), vec![square(0.01, 0.0, 0.02, 0.01)]),
                spec("west-grid", AreaLevel::Grid, Some("west"), vec![square(0.005, 0.0, 0.01 + overhang, 0.01)]),
            ],
            service_centres: Vec::new(),
        });
        let in_the_overhang = Position { lon: 0.01 + overhang / 2.0, lat: 0.005 };
        let placed = map.place(in_the_overhang);
        assert!(placed.within(AreaLevel::Grid, &AreaId::new("west-grid")));
        assert!(placed.within(AreaLevel::District, &AreaId::new("west")), "the grid's own district, not east");
        assert!(!placed.within(AreaLevel::District, &AreaId::new("east")));
    }
}
