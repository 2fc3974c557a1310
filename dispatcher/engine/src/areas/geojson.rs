//! Reading a map from GeoJSON.

use std::collections::BTreeMap;

use super::problems::{MapProblem, ProblemKind};
use super::{AreaImport, AreaLevel, AreaSpec, ServiceCentreSpec};
use crate::crs::CoordinateSystem;
use crate::ids::{AreaId, check_id, quote};
use crate::spatial::Position;

/// Which feature properties hold an area's id, name, level and parent.
/// Real boundary files name areas by administrative code (`adcode`) and
/// often carry no level: map their properties to ours, and give a level
/// for features without one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapProperties {
    pub id: String,
    pub name: String,
    pub level: String,
    pub parent: String,
    /// The level of features that have none.
    pub default_level: Option<AreaLevel>,
}

impl Default for MapProperties {
    fn default() -> Self {
        MapProperties {
            id: "id".to_string(),
            name: "name".to_string(),
            level: "level".to_string(),
            parent: "parent".to_string(),
            default_level: None,
        }
    }
}

/// A map file as read: the areas it could read, which feature each came
/// from, and every problem found on the way (not only the first).
#[derive(Debug, Default)]
pub struct MapReading {
    pub import: AreaImport,
    /// The feature index of each area and service centre read.
    pub features: BTreeMap<AreaId, usize>,
    pub problems: Vec<MapProblem>,
}

impl MapReading {
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|problem| problem.error)
    }

    /// Notes the feature an id came from; an id seen before is a problem
    /// of the later feature.
    fn note_id(&mut self, id: &AreaId, index: usize) {
        if let Some(first) = self.features.get(id) {
            let message = format!("id {id} is used twice (also by feature #{first}); give every feature a unique id");
            self.problems.push(MapProblem::error(ProblemKind::DuplicateId, id, message).at_feature(index));
            return;
        }
        self.features.insert(id.clone(), index);
    }

    /// Adds problems found later, naming the feature of the area each is
    /// about; one already reported (same kind, same area) is not repeated.
    pub fn add(&mut self, problems: Vec<MapProblem>) {
        for mut problem in problems {
            let known = self.problems.iter().any(|seen| seen.kind == problem.kind && seen.area == problem.area);
            if known {
                continue;
            }
            if problem.feature.is_none() {
                problem.feature = problem.area.as_ref().and_then(|area| self.features.get(area)).copied();
            }
            self.problems.push(problem);
        }
    }
}

/// Reads a GeoJSON FeatureCollection whose features carry `id`, `name`,
/// `level` and `parent` properties; the first problem is the error. Use
/// [`read_geojson`] to see every problem and to map other property names.
pub fn parse_geojson(text: &str) -> Result<AreaImport, String> {
    let reading = read_geojson(text, &MapProperties::default())?;
    match reading.problems.into_iter().find(|problem| problem.error) {
        Some(problem) => Err(problem.to_string()),
        None => Ok(reading.import),
    }
}

/// Reads a GeoJSON FeatureCollection, every feature it can. A file that is
/// not a FeatureCollection at all is the error; a feature that cannot be
/// read is a problem in the reading, and the others are still read.
pub fn read_geojson(text: &str, properties: &MapProperties) -> Result<MapReading, String> {
    let root: serde_json::Value =
        serde_json::from_str(text).map_err(|error| format!("the GeoJSON is not valid JSON ({error}); check the file"))?;
    if root.get("type").and_then(|t| t.as_str()) != Some("FeatureCollection") {
        return Err("the GeoJSON must be a FeatureCollection (\"type\": \"FeatureCollection\")".to_string());
    }
    let features = root.get("features").and_then(|f| f.as_array()).ok_or("the FeatureCollection has no \"features\" array")?;
    let system = declared_system(&root)?;
    let mut reading = MapReading::default();
    for (index, feature) in features.iter().enumerate() {
        match read_feature(feature, properties) {
            Ok(Feature::Area(spec)) => {
                if spec.name.is_empty() {
                    let message = format!("has no name; set its `{}` property so operators can tell it apart", properties.name);
                    reading.problems.push(MapProblem::warning(ProblemKind::Unnamed, &spec.id, message).at_feature(index));
                }
                reading.note_id(&spec.id, index);
                reading.import.areas.push(spec);
            }
            Ok(Feature::Centre(centre)) => {
                reading.note_id(&centre.id, index);
                reading.import.service_centres.push(centre);
            }
            Err((kind, id, message)) => {
                let problem =
                    MapProblem { kind, error: true, feature: Some(index), area: id, message, size_m2: None, size_m: None };
                reading.problems.push(problem);
            }
        }
    }
    if reading.import.areas.is_empty() && !reading.has_errors() {
        return Err("the FeatureCollection holds no areas".to_string());
    }
    if system != CoordinateSystem::Wgs84 {
        to_wgs84(&mut reading.import, system);
    }
    Ok(reading)
}

enum Feature {
    Area(AreaSpec),
    Centre(ServiceCentreSpec),
}

type FeatureProblem = (ProblemKind, Option<AreaId>, String);

fn read_feature(feature: &serde_json::Value, names: &MapProperties) -> Result<Feature, FeatureProblem> {
    let properties = feature.get("properties").and_then(|p| p.as_object()).ok_or((
        ProblemKind::Unreadable,
        None,
        "has no properties object".to_string(),
    ))?;
    let text_property = |name: &str| -> Option<String> { scalar_text(properties.get(name)?) };
    let id = text_property(&names.id).filter(|id| !id.is_empty()).ok_or_else(|| {
        (ProblemKind::MissingId, None, format!("property `{}` is missing or empty; every area needs a unique id", names.id))
    })?;
    check_id(&format!("property `{}`", names.id), &id).map_err(|problem| (ProblemKind::MissingId, None, problem))?;
    let area_id = AreaId::new(id.clone());
    let fail = |kind: ProblemKind, message: String| (kind, Some(area_id.clone()), message);
    let name = text_property(&names.name).unwrap_or_default();
    // A parent may be an id, or an object holding one (DataV files write
    // `"parent": {"adcode": 330100}`).
    let parent = match properties.get(&names.parent) {
        Some(serde_json::Value::Object(fields)) => fields.get(&names.id).or_else(|| fields.values().next()).and_then(scalar_text),
        Some(value) => scalar_text(value),
        None => None,
    }
    .filter(|parent| !parent.is_empty())
    .map(AreaId::new);
    let geometry = feature.get("geometry").ok_or_else(|| fail(ProblemKind::BadGeometry, "has no geometry".to_string()))?;
    let geometry_type = geometry.get("type").and_then(|t| t.as_str()).unwrap_or("");
    let coordinates =
        geometry.get("coordinates").ok_or_else(|| fail(ProblemKind::BadGeometry, "geometry has no coordinates".to_string()))?;
    let level_text = text_property(&names.level);
    if level_text.as_deref() == Some("service_centre") {
        let Some(area) = parent else {
            let message = format!("a service centre needs `{}`: the street or community it serves", names.parent);
            return Err(fail(ProblemKind::NoParent, message));
        };
        if geometry_type != "Point" {
            return Err(fail(
                ProblemKind::BadGeometry,
                format!("a service centre must be a Point, not {}", quote(geometry_type)),
            ));
        }
        let [lon, lat] = parse_position(coordinates).map_err(|problem| fail(ProblemKind::BadGeometry, problem))?;
        let at = Position::checked(lon, lat).map_err(|problem| fail(ProblemKind::BadGeometry, problem))?;
        return Ok(Feature::Centre(ServiceCentreSpec { id: area_id.clone(), name, area, at }));
    }
    let level = match level_text {
        Some(text) => level_named(&text).ok_or_else(|| {
            let message = format!(
                "level \"{}\" is unknown; use city, district, street, community, grid, building or service_centre \
                 (or 市, 区, 街道, 社区, 网格, 楼栋)",
                quote(&text)
            );
            fail(ProblemKind::UnknownLevel, message)
        })?,
        None => names.default_level.ok_or_else(|| {
            let message = format!(
                "property `{}` is missing; set it, or give the level of all such features when importing (--level)",
                names.level
            );
            fail(ProblemKind::UnknownLevel, message)
        })?,
    };
    let polygons = match geometry_type {
        "Polygon" => vec![parse_polygon(coordinates).map_err(|problem| fail(ProblemKind::BadGeometry, problem))?],
        "MultiPolygon" => coordinates
            .as_array()
            .ok_or_else(|| "MultiPolygon coordinates must be an array".to_string())
            .and_then(|parts| parts.iter().map(parse_polygon).collect::<Result<_, _>>())
            .map_err(|problem| fail(ProblemKind::BadGeometry, problem))?,
        other => {
            let message = format!("an area must be a Polygon or MultiPolygon, not \"{}\"", quote(other));
            return Err(fail(ProblemKind::BadGeometry, message));
        }
    };
    Ok(Feature::Area(AreaSpec { id: area_id.clone(), name, level, parent, polygons }))
}

/// A property's value as text: strings trimmed, numbers (administrative
/// codes such as 330102) as written.
fn scalar_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.trim().to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Our level names, and the Chinese ones boundary files use.
fn level_named(text: &str) -> Option<AreaLevel> {
    AreaLevel::from_name(text).or(match text {
        "市" => Some(AreaLevel::City),
        "区" | "县" | "县级市" => Some(AreaLevel::District),
        "街道" | "镇" | "乡" => Some(AreaLevel::Street),
        "社区" | "村" => Some(AreaLevel::Community),
        "网格" => Some(AreaLevel::Grid),
        "楼栋" => Some(AreaLevel::Building),
        _ => None,
    })
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
