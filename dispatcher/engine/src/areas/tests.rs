use super::*;
use crate::crs::CoordinateSystem;

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
    let worst =
        |import: &AreaImport| vertices(&original).iter().zip(vertices(import)).map(|(a, b)| a.distance_m(b)).fold(0.0, f64::max);
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
