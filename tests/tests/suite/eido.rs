//! NENA EIDO (NENA-STA-021.1b, JSON): an incident exported with its
//! timeline is checked against our own statement of what the standard
//! requires of the parts Pingji writes and reads
//! (`tests/data/eido/eido-subset.json`, written for these tests from the
//! standard's names; not NENA's schema, see the README there); a sample of
//! our own composing, as another CAD might send in a call transfer, and our
//! own export are imported as new incidents, over real gRPC, on real
//! dispatchers.

use std::path::PathBuf;
use std::time::Duration;

use pingji_tests::{EventWatch, TestServer, add_operator, area_box, offset_m, pb, person};
use serde_json::{Value, json};

const PROMPTLY: Duration = Duration::from_secs(20);

/// `tests/data/eido/sample-transfer.json`: its `$id`, its sender (agency)
/// and the id of its civic location.
const SAMPLE: &str = "sample-transfer.json";
const SAMPLE_ID: &str = "urn:emergency:uid:incidentid:7c2e91f04b:cad.hx-120.example.org";
const SAMPLE_AGENCY: &str = "hx-120.example.org";
const SAMPLE_LOCATION_ID: &str = "urn:emergency:uid:incidentid:7c2e91f04b:cad.hx-120.example.org:location:1";

fn eido_data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/eido").join(name)
}

fn read_json(name: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&std::fs::read_to_string(eido_data(name))?)?)
}

/// What `value` breaks of the OpenAPI 3.0 schema `schema`, checked by hand
/// for the keywords `eido-subset.json` uses: `$ref` (within the document;
/// any other reference is itself a problem), `allOf`, `required`, `type`,
/// `properties`, `items`, `enum` and `format: date-time`. Properties the
/// schema does not name are allowed.
fn schema_problems(value: &Value, schema: &Value, components: &Value, path: &str, problems: &mut Vec<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        match reference.strip_prefix("#/components/schemas/") {
            Some(name) => match components["schemas"].get(name) {
                Some(target) => schema_problems(value, target, components, path, problems),
                None => problems.push(format!("{path}: the schema has no component {name}")),
            },
            None => problems.push(format!("{path}: the schema refers outside itself, to {reference}")),
        }
        return;
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for part in parts {
            schema_problems(value, part, components, path, problems);
        }
    }
    if let Some(wanted) = schema.get("type").and_then(Value::as_str) {
        let fits = match wanted {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        if !fits {
            problems.push(format!("{path}: {value} is not of type {wanted}"));
            return;
        }
    }
    if let (Some(allowed), Some(_)) = (schema.get("enum").and_then(Value::as_array), value.as_str())
        && !allowed.contains(value)
    {
        problems.push(format!("{path}: {value} is not one of {allowed:?}"));
    }
    if schema.get("format").and_then(Value::as_str) == Some("date-time")
        && let Some(text) = value.as_str()
        && !is_rfc3339(text)
    {
        problems.push(format!("{path}: {text:?} is not an RFC 3339 date-time"));
    }
    if let Some(object) = value.as_object() {
        for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                problems.push(format!("{path}: the required property {name} is missing"));
            }
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                if let Some(inner) = object.get(name) {
                    schema_problems(inner, property, components, &format!("{path}/{name}"), problems);
                }
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (index, item) in array.iter().enumerate() {
            schema_problems(item, items, components, &format!("{path}/{index}"), problems);
        }
    }
}

/// `2026-12-07T04:31:00.000Z` or with an offset: the shape RFC 3339 gives.
fn is_rfc3339(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| range.clone().all(|at| bytes.get(at).is_some_and(u8::is_ascii_digit));
    text.len() >= 20
        && digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10)
        && matches!(bytes[10], b'T' | b't')
        && digits(11..13)
        && bytes[13] == b':'
        && digits(14..16)
        && bytes[16] == b':'
        && digits(17..19)
        && (text.ends_with('Z') || text[19..].contains(['+', '-']))
}

fn eido_problems(document: &Value) -> anyhow::Result<Vec<String>> {
    let components = read_json("eido-subset.json")?["components"].take();
    let mut problems = Vec::new();
    let root = json!({ "$ref": "#/components/schemas/EmergencyIncidentDataObjectType" });
    schema_problems(document, &root, &components, "", &mut problems);
    Ok(problems)
}

fn import_request(document: &Value, default_category: &str) -> pb::ImportEidoRequest {
    pb::ImportEidoRequest {
        document: Some(pb::EidoDocument { json: document.to_string() }),
        default_category: default_category.to_string(),
        force: false,
    }
}

async fn incident_count(command: &mut pingji_tests::Commands) -> anyhow::Result<usize> {
    Ok(command.list_incidents(pb::ListIncidentsRequest::default()).await?.into_inner().incidents.len())
}

/// Every `$ref` in `schema`, with where it is.
fn references(schema: &Value, path: &str, found: &mut Vec<(String, String)>) {
    match schema {
        Value::Object(object) => {
            for (key, inner) in object {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(reference)) => found.push((path.to_string(), reference.clone())),
                    _ => references(inner, &format!("{path}/{key}"), found),
                }
            }
        }
        Value::Array(items) => items.iter().enumerate().for_each(|(at, item)| references(item, &format!("{path}/{at}"), found)),
        _ => {}
    }
}

fn remove(object: &mut Value, property: &str) {
    if let Some(object) = object.as_object_mut() {
        object.remove(property);
    }
}

#[test]
fn the_checker_passes_our_sample_and_catches_each_way_of_breaking_it() -> anyhow::Result<()> {
    // A checker that passes everything would prove nothing: the sample
    // passes, and each break of it is caught, alone and where it is.
    let components = read_json("eido-subset.json")?["components"].take();
    let mut found = Vec::new();
    references(&components, "", &mut found);
    assert!(found.len() > 20, "{found:?}");
    for (at, reference) in &found {
        let name = reference.strip_prefix("#/components/schemas/").unwrap_or_default();
        assert!(components["schemas"].get(name).is_some(), "{at}: {reference} names no component");
    }
    let sample = read_json(SAMPLE)?;
    assert_eq!(eido_problems(&sample)?, Vec::<String>::new());
    let prologue = json!({
        "$id": "x", "lastUpdateTimeStamp": "2026-11-18T21:05:00Z", "updatedByAgencyReference": { "$ref": SAMPLE_AGENCY }
    });
    let with = |fields: Value| {
        let mut component = prologue.clone();
        component.as_object_mut().expect("an object").extend(fields.as_object().cloned().unwrap_or_default());
        component
    };
    let mut complete = sample.clone();
    complete["incidentComponent"] =
        with(json!({ "incidentTypeCommonRegistryText": "Medical", "incidentCommonPriorityNumber": 2 }));
    complete["linkComponent"] = json!([with(json!({ "incidentTrackingIdentifier": "y", "linkDirectionCode": "RELATED" }))]);
    assert_eq!(eido_problems(&complete)?, Vec::<String>::new());

    type Break = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Break, &str)> = vec![
        ("no agency", Box::new(|eido| remove(eido, "agencyComponent")), ": the required property agencyComponent is missing"),
        (
            "agencies as an object",
            Box::new(|eido| eido["agencyComponent"] = json!({})),
            "/agencyComponent: {} is not of type array",
        ),
        ("a version not in the enum", Box::new(|eido| eido["eidoVersion"] = json!("2.0")), "/eidoVersion: \"2.0\" is not one of"),
        (
            "a time in words",
            Box::new(|eido| eido["lastUpdateTimeStamp"] = json!("yesterday")),
            "/lastUpdateTimeStamp: \"yesterday\" is not an RFC 3339 date-time",
        ),
        (
            "a component without its prologue's $id",
            Box::new(|eido| remove(&mut eido["locationComponent"][0], "$id")),
            "/locationComponent/0: the required property $id is missing",
        ),
        (
            "a reference without $ref",
            Box::new(|eido| eido["agentComponent"][0]["agencyReference"] = json!({ "id": SAMPLE_AGENCY })),
            "/agentComponent/0/agencyReference: the required property $ref is missing",
        ),
        (
            "a note as a number",
            Box::new(|eido| eido["notesComponent"][1]["notesActionComments"] = json!(42)),
            "/notesComponent/1/notesActionComments: 42 is not of type string",
        ),
        (
            "an incident without a type",
            Box::new(|eido| remove(&mut eido["incidentComponent"], "incidentTypeCommonRegistryText")),
            "/incidentComponent: the required property incidentTypeCommonRegistryText is missing",
        ),
        (
            "a priority in words",
            Box::new(|eido| eido["incidentComponent"]["incidentCommonPriorityNumber"] = json!("urgent")),
            "/incidentComponent/incidentCommonPriorityNumber: \"urgent\" is not of type integer",
        ),
        (
            "a link direction not in the enum",
            Box::new(|eido| eido["linkComponent"][0]["linkDirectionCode"] = json!("SIDEWAYS")),
            "/linkComponent/0/linkDirectionCode: \"SIDEWAYS\" is not one of",
        ),
    ];
    for (what, break_it, said) in cases {
        let mut broken = complete.clone();
        break_it(&mut broken);
        assert_ne!(broken, complete, "{what}: nothing was broken");
        let problems = eido_problems(&broken)?;
        assert!(problems.len() == 1 && problems[0].starts_with(said), "{what}: {problems:?} is not just {said:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_incident_follows_the_eido_schema_with_its_timeline_and_no_phones() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let grid = area_box(&mut command, "d1-s1-c1-g1").await?;
    let (lon, lat) = grid.centre();
    let mut spec = person("li-na", "d1-s1-c1-g1", &["first_aid"]);
    spec.role = pb::Role::GridLeader as i32;
    spec.phone = "13912345678".to_string();
    let (near_lon, near_lat) = offset_m(lon, lat, 200.0, 0.0);
    let mut li_na = server.connect_person_at(spec, near_lon, near_lat).await?;
    let mut events = EventWatch::start(&mut command, 1).await?;
    let incident = command
        .create_incident(pb::CreateIncidentRequest {
            id: "fire-1".into(),
            location: Some(pb::Location::wgs84(lon, lat)),
            category: "fire".into(),
            priority: 2,
            required_skills: vec!["first_aid".into()],
            headcount: 1,
            description: "smoke from a kitchen on the third floor".into(),
            force: false,
        })
        .await?
        .into_inner();
    let offer = li_na.expect_offer_within(PROMPTLY).await?;
    li_na.accept(&offer.offer_id).await?;
    events.wait_for_kind(PROMPTLY, "assigned", "fire-1").await?;

    let exported = command.export_eido(pb::ExportEidoRequest { incident_id: incident.id.clone() }).await?.into_inner();
    let document: Value = serde_json::from_str(&exported.json)?;
    assert_eq!(eido_problems(&document)?, Vec::<String>::new(), "the export breaks the EIDO schema:\n{}", exported.json);
    assert!(!exported.json.contains("13912345678") && !exported.json.contains("5678"), "a phone in the EIDO");

    assert_eq!(document["$id"], "urn:emergency:uid:incidentid:fire-1:pingji");
    let about = &document["incidentComponent"];
    assert_eq!(about["incidentTypeCommonRegistryText"], "Fire");
    assert_eq!(about["incidentTypeInternalCode"], "fire");
    assert_eq!(about["incidentCommonPriorityNumber"], 2);
    assert_eq!(about["incidentStatusCommonRegistryText"], json!(["Active"]));
    assert_eq!(about["incidentStatusInternalText"], json!(["staffed"]));
    let pidf = document["locationComponent"][0]["locationByValue"].as_str().unwrap_or_default();
    assert!(pidf.contains(&format!("<gml:pos>{lat} {lon}</gml:pos>")), "{pidf}");
    // The person assigned, by id and role only.
    let resource = &document["emergencyResourceComponent"][0];
    assert_eq!(resource["emergencyResourceName"], "li-na");
    assert_eq!(resource["resourceAttributeInternalText"], json!(["grid_leader"]));
    assert_eq!(resource["primaryUnitStatusRegistryText"], "Dispatched");
    // The whole timeline, as notes, oldest first.
    let notes: Vec<&str> = document["notesComponent"]
        .as_array()
        .map(|notes| notes.iter().filter_map(|note| note["notesActionComments"].as_str()).collect())
        .unwrap_or_default();
    let kinds: Vec<&str> = notes.iter().filter_map(|note| note.split(' ').next()).collect();
    assert_eq!(kinds.first(), Some(&"incident_reported"), "{notes:?}");
    assert!(kinds.contains(&"offer_sent") && kinds.contains(&"assigned"), "{notes:?}");

    // A viewer may export (as reading an incident) but not import.
    let viewer_token = add_operator(&mut command, "zhou.viewer", pb::OperatorRole::Viewer).await?;
    let mut viewer = server.command_with(Some(&viewer_token)).await?;
    let seen = viewer.export_eido(pb::ExportEidoRequest { incident_id: "fire-1".into() }).await?.into_inner();
    assert_eq!(eido_problems(&serde_json::from_str(&seen.json)?)?, Vec::<String>::new());
    assert!(!seen.json.contains("13912345678"));
    let before = incident_count(&mut command).await?;
    let mut copy = document.clone();
    copy["$id"] = json!("urn:emergency:uid:incidentid:viewer-try:elsewhere");
    let refused = viewer.import_eido(import_request(&copy, "")).await.expect_err("a viewer may not import");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert_eq!(incident_count(&mut command).await?, before, "a refused import creates nothing");

    let missing = command.export_eido(pb::ExportEidoRequest { incident_id: "nope".into() }).await.expect_err("no such incident");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    drop(events);
    drop(li_na);
    server.shutdown().await
}

/// Our transfer sample with a point where its incident location is: it
/// carries only a civic address and a location by reference, which the
/// dispatcher does not geocode.
fn sample_with_point(lon: f64, lat: f64) -> anyhow::Result<Value> {
    let mut sample = read_json(SAMPLE)?;
    let civic = sample["locationComponent"][0]["locationByValue"].as_str().unwrap_or_default().to_string();
    let point = format!(
        "<gml:Point xmlns:gml=\"http://www.opengis.net/gml\" srsName=\"urn:ogc:def:crs:EPSG::4326\"><gml:pos>{lat} {lon}</gml:pos></gml:Point>"
    );
    let with_point = civic.replacen("</civicAddress>", &format!("</civicAddress>{point}"), 1);
    assert_ne!(civic, with_point, "the sample's incident location has a civic address");
    sample["locationComponent"][0]["locationByValue"] = json!(with_point);
    Ok(sample)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_sample_imports_as_a_new_incident_with_its_id_kept_once() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let grid = area_box(&mut command, "d1-s1-c1-g1").await?;
    let (lon, lat) = grid.centre();
    let sample = read_json(SAMPLE)?;
    let sample_id = SAMPLE_ID;

    // As sent, it has no incident type and no point: each is said.
    let no_type = command.import_eido(import_request(&sample, "")).await.expect_err("no type, no default");
    assert_eq!(no_type.code(), tonic::Code::InvalidArgument);
    assert!(
        no_type.message().contains("no `incidentComponent`") && no_type.message().contains("default category"),
        "{no_type:?}"
    );
    let no_point = command.import_eido(import_request(&sample, "medical")).await.expect_err("no point");
    assert_eq!(no_point.code(), tonic::Code::InvalidArgument);
    assert!(no_point.message().contains("no geodetic location"), "{no_point:?}");
    assert_eq!(incident_count(&mut command).await?, 0, "nothing created on a refusal");

    let located = sample_with_point(lon, lat)?;
    let incident = command.import_eido(import_request(&located, "medical")).await?.into_inner();
    assert_eq!(incident.source_id, sample_id);
    assert_eq!((incident.category.as_str(), incident.priority), ("medical", 3), "the default category, priority 3");
    assert_eq!(incident.grid_id, "d1-s1-c1-g1");
    let at = incident.location.expect("a location");
    assert!((at.lon - lon).abs() < 1e-9 && (at.lat - lat).abs() < 1e-9);
    let read = command.get_incident(pb::GetIncidentRequest { id: incident.id.clone() }).await?.into_inner();
    assert_eq!(read.source_id, sample_id);

    // The same EIDO again is refused, naming the incident it became.
    let again = command.import_eido(import_request(&located, "medical")).await.expect_err("a duplicate");
    assert_eq!(again.code(), tonic::Code::AlreadyExists);
    assert!(again.message().contains(&incident.id), "{again:?}");
    assert_eq!(incident_count(&mut command).await?, 1);

    // With an incident component: the type and priority are mapped by the table.
    let mut typed = located.clone();
    typed["$id"] = json!(format!("{SAMPLE_ID}-b77"));
    typed["incidentComponent"] = json!({
        "$id": format!("{SAMPLE_ID}-b77:incident"),
        "lastUpdateTimeStamp": "2026-11-18T21:06:00.000+08:00",
        "updatedByAgencyReference": { "$ref": SAMPLE_AGENCY },
        "incidentTypeCommonRegistryText": "Fire.Structure",
        "incidentCommonPriorityNumber": 7,
        "locationReference": [{ "$ref": SAMPLE_LOCATION_ID }]
    });
    assert_eq!(eido_problems(&typed)?, Vec::<String>::new());
    let fire = command.import_eido(import_request(&typed, "")).await?.into_inner();
    assert_eq!((fire.category.as_str(), fire.priority), ("fire", 4), "Fire.* is fire; priorities above 4 are 4");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_trip_to_a_second_dispatcher_keeps_location_category_priority_and_source() -> anyhow::Result<()> {
    let first = TestServer::start(|_| {}).await?;
    let second = TestServer::start(|_| {}).await?;
    let mut here = first.command().await?;
    let mut there = second.command().await?;
    let grid = area_box(&mut here, "d1-s1-c2-g1").await?;
    let (lon, lat) = grid.centre();
    let incident = here
        .create_incident(pb::CreateIncidentRequest {
            location: Some(pb::Location::wgs84(lon, lat)),
            category: "flood".into(),
            priority: 2,
            headcount: 2,
            description: "water in the underground garage".into(),
            force: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    let exported = here.export_eido(pb::ExportEidoRequest { incident_id: incident.id.clone() }).await?.into_inner();
    let imported = there
        .import_eido(pb::ImportEidoRequest { document: Some(exported.clone()), default_category: String::new(), force: false })
        .await?
        .into_inner();
    assert_eq!(imported.source_id, format!("urn:emergency:uid:incidentid:{}:pingji", incident.id));
    assert_eq!((imported.category.as_str(), imported.priority), ("flood", 2));
    assert_eq!(imported.description, "water in the underground garage");
    assert_eq!(imported.grid_id, incident.grid_id);
    let (from, to) = (incident.location.expect("located"), imported.location.expect("located"));
    assert!((from.lon - to.lon).abs() < 1e-9 && (from.lat - to.lat).abs() < 1e-9, "{from:?} became {to:?}");

    // Sent back, the copy says where it came from (a link), and the second
    // dispatcher's export passes the schema too.
    let back = there.export_eido(pb::ExportEidoRequest { incident_id: imported.id.clone() }).await?.into_inner();
    let back: Value = serde_json::from_str(&back.json)?;
    assert_eq!(eido_problems(&back)?, Vec::<String>::new());
    assert_eq!(back["linkComponent"][0]["incidentTrackingIdentifier"], json!(imported.source_id));
    second.shutdown().await?;
    first.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_eido_is_refused_saying_why_and_creates_nothing() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let grid = area_box(&mut command, "d1-s1-c1-g1").await?;
    let (lon, lat) = grid.centre();
    let good = sample_with_point(lon, lat)?;

    let mut no_location = good.clone();
    no_location.as_object_mut().expect("an object").remove("locationComponent");
    let mut unknown_type = good.clone();
    unknown_type["incidentComponent"] = json!({
        "$id": "x", "lastUpdateTimeStamp": "2026-11-18T21:06:00.000+08:00", "updatedByAgencyReference": { "$ref": SAMPLE_AGENCY },
        "incidentTypeCommonRegistryText": "Alien.Landing"
    });
    let mut no_id = good.clone();
    no_id.as_object_mut().expect("an object").remove("$id");
    let mut wrong_version = good.clone();
    wrong_version["eidoVersion"] = json!("9.9");
    let mut far_away = sample_with_point(-75.55, 39.74)?;
    far_away["$id"] = json!(format!("{SAMPLE_ID}-far"));
    let mut bad_priority = unknown_type.clone();
    bad_priority["incidentComponent"]["incidentTypeCommonRegistryText"] = json!("Medical");
    bad_priority["incidentComponent"]["incidentCommonPriorityNumber"] = json!("urgent");

    let cases: Vec<(&str, pb::ImportEidoRequest, &str)> = vec![
        (
            "not JSON",
            pb::ImportEidoRequest { document: Some(pb::EidoDocument { json: "<eido/>".into() }), ..Default::default() },
            "not JSON",
        ),
        ("no document", pb::ImportEidoRequest::default(), "not JSON"),
        ("no location", import_request(&no_location, "medical"), "no geodetic location"),
        ("an unknown type without a default", import_request(&unknown_type, ""), "\"Alien.Landing\" is not in the mapping table"),
        ("no $id", import_request(&no_id, "medical"), "no `$id`"),
        ("a wrong version", import_request(&wrong_version, "medical"), "version \"9.9\" is not supported"),
        ("outside the map", import_request(&far_away, "medical"), "location"),
        ("a priority in words", import_request(&bad_priority, ""), "not a number"),
    ];
    for (what, request, said) in cases {
        let refused = command.import_eido(request).await.expect_err(what);
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{what}: {refused:?}");
        assert!(refused.message().contains(said), "{what}: {:?} does not say {said:?}", refused.message());
    }
    assert_eq!(incident_count(&mut command).await?, 0, "a refused import creates nothing");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_exports_to_a_file_and_imports_it_on_another_dispatcher() -> anyhow::Result<()> {
    use pingji_tests::cli::run_pingji;
    let first = TestServer::start(|_| {}).await?;
    let second = TestServer::start(|_| {}).await?;
    let mut here = first.command().await?;
    let grid = area_box(&mut here, "d1-s1-c1-g1").await?;
    let (lon, lat) = grid.centre();
    let incident = here
        .create_incident(pb::CreateIncidentRequest {
            location: Some(pb::Location::wgs84(lon, lat)),
            category: "medical".into(),
            priority: 1,
            headcount: 1,
            force: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    let folder = tempfile::tempdir()?;
    let file = folder.path().join("incident.eido.json");
    let file_arg = file.to_str().expect("a UTF-8 path").to_string();
    let first_url = format!("http://{}", first.address());
    let second_url = format!("http://{}", second.address());
    run_pingji(&first_url, &["incident", "export-eido", &incident.id, "-o", &file_arg]).await?.success()?;
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
    assert_eq!(eido_problems(&written)?, Vec::<String>::new());

    let imported = run_pingji(&second_url, &["incident", "import-eido", &file_arg, "--json"]).await?.success()?.json()?;
    assert_eq!(imported["source_id"], json!(format!("urn:emergency:uid:incidentid:{}:pingji", incident.id)));
    assert_eq!((imported["category"].as_str(), imported["priority"].as_i64()), (Some("medical"), Some(1)));
    let again = run_pingji(&second_url, &["incident", "import-eido", &file_arg]).await?;
    assert_ne!(again.code(), Some(0));
    assert!(again.stderr.contains("imported before"), "{}", again.stderr);
    second.shutdown().await?;
    first.shutdown().await
}
