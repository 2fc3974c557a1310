//! Reading a map from GeoJSON.

use super::{AreaImport, AreaLevel, AreaSpec, ServiceCentreSpec};
use crate::crs::CoordinateSystem;
use crate::ids::{AreaId, check_id, quote};
use crate::spatial::Position;

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
