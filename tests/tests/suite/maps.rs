//! A real city's map over real gRPC and the console: boundary files with
//! their own property names and no parents, every problem of a file in one
//! answer, new versions that retire areas, and an admin retiring one.

use pingji_client::errors;
use pingji_tests::cli::run_pingji;
use pingji_tests::{TestServer, pb};
use serde_json::{Value, json};
use tonic::Code;

/// A square of `size` degrees with its south-west corner at (lon, lat).
fn square(lon: f64, lat: f64, size: f64) -> Value {
    json!({"type": "Polygon", "coordinates": [[[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]]})
}

fn collection(features: Vec<Value>) -> String {
    json!({"type": "FeatureCollection", "features": features}).to_string()
}

/// A district file as AMap's DataV exports it: codes, the parent as an
/// object, no grids.
fn districts() -> String {
    let coded = |adcode: u32, name: &str, level: &str, parent: Option<u32>, geometry: Value| {
        let mut properties = json!({"adcode": adcode, "name": name, "level": level});
        if let Some(parent) = parent {
            properties["parent"] = json!({"adcode": parent});
        }
        json!({"type": "Feature", "properties": properties, "geometry": geometry})
    };
    collection(vec![
        coded(
            330100,
            "杭州市",
            "city",
            None,
            json!({"type": "Polygon", "coordinates": [[[120.0, 30.0], [120.2, 30.0], [120.2, 30.1], [120.0, 30.1], [120.0, 30.0]]]}),
        ),
        coded(330102, "上城区", "district", Some(330100), square(120.0, 30.0, 0.1)),
        coded(330105, "拱墅区", "district", Some(330100), square(120.1, 30.0, 0.1)),
    ])
}

/// Grids without parents or levels in the file: `code` and `title`.
fn grid(code: &str, lon: f64, lat: f64) -> Value {
    json!({"type": "Feature", "properties": {"code": code, "title": format!("网格{code}")}, "geometry": square(lon, lat, 0.05)})
}

fn grid_properties() -> pb::MapProperties {
    pb::MapProperties { id: "code".into(), name: "title".into(), default_level: pb::AreaLevel::Grid as i32, ..Default::default() }
}

async fn area_ids(command: &mut pingji_tests::Commands) -> anyhow::Result<Vec<String>> {
    let areas = command.list_areas(pb::ListAreasRequest::default()).await?.into_inner().areas;
    Ok(areas.into_iter().map(|area| area.id).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_boundary_file_imports_and_every_problem_comes_back_at_once() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.areas_file = None).await?;
    let mut command = server.command().await?;
    let by_code = pb::MapProperties { id: "adcode".into(), ..Default::default() };
    let imported = command
        .import_areas(pb::ImportAreasRequest { geojson: districts(), properties: Some(by_code), ..Default::default() })
        .await?
        .into_inner();
    let kinds: Vec<i32> = imported.problems.iter().map(|problem| problem.kind).collect();
    assert!(imported.applied && kinds == [pb::MapProblemKind::NoGrids as i32], "{imported:?}");
    assert_eq!(imported.diff.as_ref().map(|diff| diff.added.len()), Some(3));

    // Grids: one in each half of 上城区, one drawn in 拱墅区, one copied.
    let grids = collection(vec![
        grid("g1", 120.0, 30.0),
        grid("g2", 120.05, 30.0),
        grid("g3", 120.1, 30.05),
        grid("g1-copy", 120.0, 30.0),
    ]);
    let before = area_ids(&mut command).await?;
    let dry = command
        .import_areas(pb::ImportAreasRequest {
            geojson: grids.clone(),
            dry_run: true,
            properties: Some(grid_properties()),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(!dry.applied);
    assert_eq!(dry.parents_inferred, 4, "every grid found its district by containment");
    let errors: Vec<&pb::MapProblem> = dry.problems.iter().filter(|problem| problem.error).collect();
    assert_eq!(errors.len(), 1, "the copy overlaps g1 entirely: {:?}", dry.problems);
    assert_eq!(errors[0].kind, pb::MapProblemKind::SiblingOverlap as i32);
    assert_eq!(errors[0].feature, Some(0));
    assert!(errors[0].size_m2 > 2.0e7, "about 5.3 km × 5.6 km: {}", errors[0].size_m2);
    assert_eq!(area_ids(&mut command).await?, before, "a dry run changes nothing");

    // Imported for real, the errors refuse it, one violation each.
    let refused = command
        .import_areas(pb::ImportAreasRequest { geojson: grids, properties: Some(grid_properties()), ..Default::default() })
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::InvalidArgument, "{}", refused.message());
    assert!(refused.message().contains("1 error") && refused.message().contains("g1-copy"), "{}", refused.message());
    assert_eq!(errors::bad_index(&refused, "geojson.features"), Some(0));
    assert_eq!(area_ids(&mut command).await?, before, "a refused import changes nothing");

    // Without the copy, it goes in, and a point in 拱墅区's grid is placed there.
    let good = collection(vec![grid("g1", 120.0, 30.0), grid("g2", 120.05, 30.0), grid("g3", 120.1, 30.05)]);
    let imported = command
        .import_areas(pb::ImportAreasRequest { geojson: good, properties: Some(grid_properties()), ..Default::default() })
        .await?
        .into_inner();
    assert!(imported.applied, "{imported:?}");
    assert_eq!(imported.diff.as_ref().map(|diff| diff.kept), Some(3), "the districts stay");
    let areas = command.list_areas(pb::ListAreasRequest::default()).await?.into_inner().areas;
    let g3 = areas.iter().find(|area| area.id == "g3").expect("imported");
    assert_eq!(g3.parent_id, "330105");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_map_version_retires_areas_rehomes_people_and_the_console_shows_the_difference() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.areas_file = None).await?;
    let url = format!("http://{}", server.address());
    let directory = tempfile::tempdir()?;
    let version1 = directory.path().join("v1.geojson");
    let version2 = directory.path().join("v2.geojson");
    let path = |path: &std::path::Path| path.to_string_lossy().into_owned();
    std::fs::write(&version1, districts())?;
    let mut with_grids: Value = serde_json::from_str(&districts())?;
    // Version 2: 上城区 now has two grids, given with their parent.
    let grid_under = |code: &str, lon: f64| json!({"type": "Feature", "properties": {"adcode": code, "name": code, "level": "grid", "parent": {"adcode": 330102}}, "geometry": square(lon, 30.0, 0.05)});
    if let Some(features) = with_grids["features"].as_array_mut() {
        features.push(grid_under("g-west", 120.0));
        features.push(grid_under("g-east", 120.05));
    }
    std::fs::write(&version2, with_grids.to_string())?;

    let first = run_pingji(&url, &["areas", "import", &path(&version1), "--id-property", "adcode"]).await?.success()?;
    assert!(first.stdout.contains("added 3, changed 0, unchanged 0, retired 0"), "{}", first.stdout);
    let second = run_pingji(&url, &["areas", "import", &path(&version2), "--id-property", "adcode"]).await?.success()?;
    assert!(second.stdout.contains("added 2, changed 0, unchanged 3, retired 0"), "{}", second.stdout);

    // A person at home in g-west, with a home position in it.
    let mut command = server.command().await?;
    let person = pb::AgentSpec {
        id: "p-west".into(),
        name: "王芳".into(),
        role: pb::Role::Volunteer as i32,
        phone: "13900000001".into(),
        home_area_id: "g-west".into(),
        on_duty: true,
        home: Some(pb::Location::wgs84(120.01, 30.01)),
        ..Default::default()
    };
    command.upsert_agent(pb::UpsertAgentRequest { agent: Some(person) }).await?;

    // Version 3 redraws the grids: g-west is gone, g-north and g-south cover it.
    let mut version3_json: Value = serde_json::from_str(&districts())?;
    let half = |code: &str, lat: f64| json!({"type": "Feature", "properties": {"adcode": code, "name": code, "level": "grid", "parent": {"adcode": 330102}}, "geometry": {"type": "Polygon", "coordinates": [[[120.0, lat], [120.1, lat], [120.1, lat + 0.05], [120.0, lat + 0.05], [120.0, lat]]]}});
    if let Some(features) = version3_json["features"].as_array_mut() {
        features.push(half("g-south", 30.0));
        features.push(half("g-north", 30.05));
    }
    let version3 = directory.path().join("v3.geojson");
    std::fs::write(&version3, version3_json.to_string())?;
    let dry = run_pingji(&url, &["areas", "import", &path(&version3), "--id-property", "adcode", "--replace", "--dry-run"])
        .await?
        .success()?;
    assert!(dry.stdout.contains("dry run"), "{}", dry.stdout);
    assert!(dry.stdout.contains("added 2, changed 0, unchanged 3, retired 2 (1 people"), "{}", dry.stdout);
    assert!(dry.stdout.contains("retired: g-east, g-west") || dry.stdout.contains("retired: g-west, g-east"), "{}", dry.stdout);
    assert!(area_ids(&mut command).await?.contains(&"g-west".to_string()), "a dry run changes nothing");
    let applied = run_pingji(&url, &["areas", "import", &path(&version3), "--id-property", "adcode", "--replace", "--json"])
        .await?
        .success()?
        .json()?;
    assert_eq!(applied["retired"], json!(["g-east", "g-west"]));
    assert_eq!(applied["people_rehomed"], json!(1));
    let ids = area_ids(&mut command).await?;
    assert!(!ids.contains(&"g-west".to_string()) && ids.contains(&"g-south".to_string()), "{ids:?}");
    let agent = command.get_agent(pb::GetAgentRequest { id: "p-west".into() }).await?.into_inner();
    assert_eq!(agent.spec.map(|spec| spec.home_area_id), Some("g-south".to_string()), "re-homed by home position");

    // An admin retires one area; one with children needs --with-children.
    let refused = run_pingji(&url, &["areas", "retire", "330102"]).await?;
    assert_eq!(refused.code(), Some(1), "{}", refused.stderr);
    assert!(refused.stderr.contains("--with-children"), "{}", refused.stderr);
    let retired = run_pingji(&url, &["areas", "retire", "g-north"]).await?.success()?;
    assert!(retired.stdout.contains("retired 1 area: g-north"), "{}", retired.stdout);
    assert!(!area_ids(&mut command).await?.contains(&"g-north".to_string()));
    server.shutdown().await
}
