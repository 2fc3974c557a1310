use super::*;
use crate::areas::problems::{MapProblem, ProblemKind};
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
    let spec_of = |id: &str| AreaSpec {
        id: AreaId::new(id),
        name: id.to_string(),
        level: AreaLevel::City,
        parent: None,
        polygons: vec![vec![vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]]],
    };
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
    let error = parse_geojson(&duplicate).unwrap_err();
    assert!(error.contains("twice") && error.contains("feature #1"), "{error}");
    let twice = AreaImport { areas: vec![spec_of("c"), spec_of("c")], service_centres: Vec::new() };
    let error = AreaMap::default().validate_import(&twice).unwrap_err();
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

fn sample_text() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/maps/sample-city.geojson");
    std::fs::read_to_string(path).expect("sample city present")
}

fn kinds(problems: &[MapProblem]) -> Vec<(ProblemKind, bool, Option<usize>, Option<String>)> {
    problems
        .iter()
        .map(|problem| (problem.kind, problem.error, problem.feature, problem.area.as_ref().map(|id| id.to_string())))
        .collect()
}

#[test]
fn the_sample_city_has_no_problems() {
    let check = AreaMap::default().check_file(&sample_text(), &MapProperties::default(), false).expect("reads");
    assert_eq!(kinds(&check.reading.problems), vec![]);
    assert_eq!(check.diff.added.len(), check.reading.import.areas.len());
}

/// One file with a problem of every kind: all are reported in one pass,
/// each with its feature, its id and, for geometry, its size.
#[test]
fn every_problem_of_a_file_is_reported_at_once() {
    // About 1.1 km per 0.01 degree here (the equator): squares of districts
    // 0.01 wide, grids 0.005.
    let text = collection(vec![
        feature("city", "city", "", square(0.0, 0.0, 0.02, 0.01)),
        feature("west", "district", "city", square(0.0, 0.0, 0.01, 0.01)),
        feature("east", "district", "city", square(0.01, 0.0, 0.02, 0.01)),
        // #3: a grid of west drawn inside east (moved across the border).
        feature("moved", "grid", "west", square(0.012, 0.0, 0.017, 0.005)),
        // #4 and #5: the same grid twice under two ids.
        feature("g1", "grid", "west", square(0.0, 0.0, 0.005, 0.005)),
        feature("g1-copy", "grid", "west", square(0.0, 0.0, 0.005, 0.005)),
        // #6: no id.
        serde_json::json!({"type": "Feature", "properties": {"name": "nameless", "level": "grid", "parent": "west"}, "geometry": square(0.0, 0.005, 0.005, 0.01)}),
        feature("g3", "grid", "west", square(0.005, 0.005, 0.01, 0.01)),
        // #8: an unknown level.
        feature("x", "county", "city", square(0.0, 0.0, 0.01, 0.01)),
        // #9: no name, and a sliver as a second part.
        serde_json::json!({"type": "Feature", "properties": {"id": "g2", "level": "grid", "parent": "east"}, "geometry": {
        "type": "MultiPolygon", "coordinates": [
            [[[0.015, 0.005], [0.02, 0.005], [0.02, 0.01], [0.015, 0.01], [0.015, 0.005]]],
            [[[0.011, 0.005], [0.014, 0.005], [0.014, 0.0050001], [0.011, 0.0050001], [0.011, 0.005]]]
        ]}}),
        // #10: a parent nobody has.
        feature("orphan", "grid", "nowhere", square(0.011, 0.006, 0.012, 0.007)),
        // #11: g3's id again.
        feature("g3", "grid", "west", square(0.005, 0.0, 0.01, 0.005)),
    ]);
    let check = AreaMap::default().check_file(&text, &MapProperties::default(), false).expect("reads");
    let found = kinds(&check.reading.problems);
    let has = |kind: ProblemKind, error: bool, feature: usize| {
        found.iter().any(|(k, e, f, _)| *k == kind && *e == error && *f == Some(feature))
    };
    assert!(has(ProblemKind::OutsideParent, true, 3), "{found:?}");
    assert!(has(ProblemKind::SiblingOverlap, true, 4) || has(ProblemKind::SiblingOverlap, true, 5), "{found:?}");
    assert!(has(ProblemKind::MissingId, true, 6), "{found:?}");
    assert!(has(ProblemKind::DuplicateId, true, 11), "{found:?}");
    assert_eq!(found.iter().filter(|(kind, ..)| *kind == ProblemKind::DuplicateId).count(), 1, "{found:?}");
    assert!(has(ProblemKind::UnknownLevel, true, 8), "{found:?}");
    assert!(has(ProblemKind::Unnamed, false, 9), "{found:?}");
    assert!(has(ProblemKind::Sliver, false, 9), "{found:?}");
    assert!(has(ProblemKind::UnknownParent, true, 10), "{found:?}");
    let moved = check.reading.problems.iter().find(|problem| problem.kind == ProblemKind::OutsideParent).expect("found");
    assert!(moved.message.contains("100 % outside its parent west") && moved.message.contains("it lies in east"), "{moved}");
    let size = moved.size_m2.expect("sized");
    assert!((size - 0.005 * 0.005 * 111_195.0f64.powi(2)).abs() / size < 0.01, "{size} m²");
    let sliver = check.reading.problems.iter().find(|problem| problem.kind == ProblemKind::Sliver).expect("found");
    assert!(sliver.size_m.is_some_and(|width| width < 0.1), "{sliver:?}");
    // The first error is also what the plain reading refuses with.
    assert!(parse_geojson(&text).is_err());
}

/// A district file as DataV/AMap exports it: administrative codes, the
/// parent as an object, levels their own; and a street file with neither
/// parents nor levels, placed by containment.
#[test]
fn codes_map_to_ids_and_missing_parents_are_found_by_containment() {
    let coded = |adcode: u32, name: &str, level: &str, parent: Option<u32>, geometry: serde_json::Value| {
        let mut properties = serde_json::json!({"adcode": adcode, "name": name, "level": level});
        if let Some(parent) = parent {
            properties["parent"] = serde_json::json!({"adcode": parent});
        }
        serde_json::json!({"type": "Feature", "properties": properties, "geometry": geometry})
    };
    let districts = collection(vec![
        coded(330100, "杭州市", "city", None, square(0.0, 0.0, 0.02, 0.01)),
        coded(330102, "上城区", "district", Some(330100), square(0.0, 0.0, 0.01, 0.01)),
        coded(330105, "拱墅区", "district", Some(330100), square(0.01, 0.0, 0.02, 0.01)),
    ]);
    let by_code = MapProperties { id: "adcode".into(), ..MapProperties::default() };
    let map = AreaMap::default();
    let check = map.check_file(&districts, &by_code, false).expect("reads");
    let no_grids = vec![(ProblemKind::NoGrids, false, None, None)];
    assert_eq!(kinds(&check.reading.problems), no_grids, "a district file imports, with a word on grids");
    assert!(
        check.reading.problems[0].message.contains("only city, district")
            && check.reading.problems[0].message.contains("subdivide")
    );
    let district = check.reading.import.areas.iter().find(|spec| spec.id.as_str() == "330102").expect("read");
    assert_eq!(district.parent, Some(AreaId::new("330100")));
    let mut map = AreaMap::from(check.reading.import);

    let street = |code: &str, name: &str, geometry: serde_json::Value| serde_json::json!({"type": "Feature", "properties": {"code": code, "title": name}, "geometry": geometry});
    let streets = collection(vec![
        street("330102001", "湖滨街道", square(0.0, 0.0, 0.005, 0.01)),
        street("330105001", "米市巷街道", square(0.012, 0.0, 0.02, 0.01)),
    ]);
    let as_streets = MapProperties {
        id: "code".into(),
        name: "title".into(),
        default_level: Some(AreaLevel::Street),
        ..MapProperties::default()
    };
    let check = map.check_file(&streets, &as_streets, false).expect("reads");
    assert_eq!(kinds(&check.reading.problems), no_grids);
    assert_eq!(check.parents_inferred, 2);
    let parents: Vec<_> = check.reading.import.areas.iter().map(|spec| spec.parent.clone().map(|id| id.to_string())).collect();
    assert_eq!(parents, vec![Some("330102".to_string()), Some("330105".to_string())]);
    assert_eq!(check.diff.kept, 3, "the districts stay");
    map.apply_import(&check.reading.import);
    let placed = map.place(Position { lon: 0.015, lat: 0.005 });
    assert_eq!(placed.at(AreaLevel::Street), Some(&AreaId::new("330105001")));
    assert_eq!(placed.at(AreaLevel::District), Some(&AreaId::new("330105")));

    // Without a level, and without a way to tell it, the file says how.
    let check = map.check_file(&streets, &MapProperties { id: "code".into(), ..MapProperties::default() }, false).expect("reads");
    assert!(
        check
            .reading
            .problems
            .iter()
            .all(|problem| problem.kind == ProblemKind::UnknownLevel && problem.message.contains("--level"))
    );
}

/// A new version of the map: added, changed and retired areas, with the
/// difference; the retired are kept for history and nothing is placed in them.
#[test]
fn a_replacing_import_retires_what_the_file_lacks() {
    let map = small_map();
    let text = collection(vec![
        feature("city", "city", "", square(0.0, 0.0, 2.0, 1.0)),
        feature("d1", "district", "city", square(0.0, 0.0, 1.0, 1.0)),
        serde_json::json!({"type": "Feature", "properties": {"id": "d2", "name": "d2 renamed", "level": "district", "parent": "city"}, "geometry": square(1.0, 0.0, 2.0, 1.0)}),
        feature("g2", "grid", "d1", square(0.5, 0.0, 1.0, 1.0)),
    ]);
    let check = map.check_file(&text, &MapProperties::default(), true).expect("reads");
    assert_eq!(kinds(&check.reading.problems), vec![]);
    assert_eq!(check.diff.added, vec![AreaId::new("g2")]);
    assert_eq!(check.diff.changed, vec![(AreaId::new("d2"), vec!["name d2 → d2 renamed".to_string()])]);
    assert_eq!(check.diff.unchanged, 2);
    assert_eq!(check.diff.retired, vec![AreaId::new("g1")]);
    let merged = map.check_file(&text, &MapProperties::default(), false).expect("reads");
    assert_eq!((merged.diff.retired.len(), merged.diff.kept), (0, 1));

    let mut map = map;
    map.apply_import(&check.reading.import);
    map.retire(&check.diff.retired, &[]);
    assert_eq!(map.place(Position { lon: 0.25, lat: 0.5 }).deepest(), Some(AreaLevel::District));
    assert!(map.get(&AreaId::new("g1")).is_none());
    assert_eq!(map.get_any(&AreaId::new("g1")).map(|spec| spec.name.as_str()), Some("g1"));
    let json = serde_json::to_string(&map).expect("serialise");
    let back: AreaMap = serde_json::from_str(&json).expect("deserialise");
    assert_eq!(back, map, "the retired survive a snapshot");
}
