//! Observability end to end: the real `dispatcher` binary with
//! `--metrics-addr`, real gRPC clients, and `/metrics` scraped over HTTP;
//! with `--otlp-endpoint`, a real OTLP/gRPC collector receiving its spans.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use pingji_proto::v1::agent_service_client::AgentServiceClient;
use pingji_tests::metrics::{http_get, scrape, value, value_or_zero};
use pingji_tests::otlp::{Collector, ReceivedSpan};
use pingji_tests::process::free_port;
use pingji_tests::{DispatcherProcess, ProcessOptions, area_box, connect_located, pb, quick_policy_toml, sample_city};

const PROMPTLY: Duration = Duration::from_secs(20);

fn options(dir: &Path) -> anyhow::Result<ProcessOptions> {
    let policy = dir.join("policy.toml");
    // A long offer timeout: the person answers, nothing times out.
    std::fs::write(&policy, quick_policy_toml(300))?;
    Ok(ProcessOptions {
        data: dir.join("p.db"),
        policy: Some(policy),
        areas: Some(sample_city()),
        agents: None,
        snapshot_every: None,
        log: dir.join("dispatcher.log"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_when_an_incident_is_offered_accepted_and_staffed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let metrics_addr = free_port()?;
    let extra: Vec<OsString> = vec!["--metrics-addr".into(), metrics_addr.to_string().into()];
    let mut process = DispatcherProcess::start_with_args(&options(dir.path())?, &extra).await?;

    let before = scrape(metrics_addr).await?;
    assert_eq!(value(&before, "pingji_ready"), Some(1.0), "{before}");
    assert_eq!(value(&before, "pingji_connected_agents"), Some(0.0), "{before}");
    let sent_before = value_or_zero(&before, "pingji_offers_sent_total");
    let accepted_before = value_or_zero(&before, "pingji_offers_accepted_total");
    let (status, _) = http_get(metrics_addr, "/nothing-here").await?;
    assert!(status.contains(" 404 "), "{status}");

    let mut command = process.command().await?;
    let (lon, lat) = area_box(&mut command, "d2-s1-c1-g2").await?.centre();
    let mut holder = pingji_tests::person("metered", "d2-s1-c1-g2", &["first_aid"]);
    holder.phone = "13912345678".into();
    command.upsert_agent(pb::UpsertAgentRequest { agent: Some(holder) }).await?;
    let mut agents = AgentServiceClient::new(process.channel().await?);
    let mut session = connect_located(&mut command, &mut agents, "metered", lon, lat).await?;

    let connected = scrape(metrics_addr).await?;
    assert_eq!(value(&connected, "pingji_connected_agents"), Some(1.0), "{connected}");
    assert_eq!(value(&connected, "pingji_available_people{district=\"d2\"}"), Some(1.0), "{connected}");

    let request = pb::CreateIncidentRequest {
        id: "metered-1".into(),
        location: Some(pb::Location::wgs84(lon, lat)),
        category: "medical".into(),
        priority: 1,
        required_skills: vec!["first_aid".into()],
        headcount: 1,
        description: String::new(),
        force: false,
    };
    command.create_incident(request).await?;
    let offer = session.expect_offer_within(PROMPTLY).await?;
    let offered = scrape(metrics_addr).await?;
    assert_eq!(value(&offered, "pingji_open_incidents{status=\"offered\",priority=\"1\"}"), Some(1.0), "{offered}");
    session.accept(&offer.offer_id).await?;
    session.expect_assignment_confirmed_within(PROMPTLY).await?;

    // The observer counts from the event broadcast, just after the answer:
    // wait for it rather than for a time.
    let mut after = String::new();
    // The acceptance and the staffing are two events: wait for both.
    pingji_tests::wait_until(PROMPTLY, "the acceptance and the staffing are counted", async || {
        after = scrape(metrics_addr).await?;
        Ok(value_or_zero(&after, "pingji_offers_accepted_total") > accepted_before
            && value_or_zero(&after, "pingji_time_to_staff_seconds_count{priority=\"1\"}") > 0.0)
    })
    .await?;
    assert_eq!(value_or_zero(&after, "pingji_offers_sent_total"), sent_before + 1.0, "{after}");
    assert_eq!(value_or_zero(&after, "pingji_offers_accepted_total"), accepted_before + 1.0, "{after}");
    assert_eq!(value(&after, "pingji_incidents_reported_total{priority=\"1\"}"), Some(1.0), "{after}");
    assert_eq!(value(&after, "pingji_time_to_accept_seconds_count{priority=\"1\"}"), Some(1.0), "{after}");
    assert_eq!(value(&after, "pingji_time_to_staff_seconds_count{priority=\"1\"}"), Some(1.0), "{after}");
    assert_eq!(value(&after, "pingji_open_incidents{status=\"staffed\",priority=\"1\"}"), Some(1.0), "{after}");
    assert!(value_or_zero(&after, "pingji_journal_append_seconds_count") >= 3.0, "{after}");
    assert_eq!(value(&after, "pingji_events_total{kind=\"assigned\"}"), Some(1.0), "{after}");
    assert!(value(&after, "pingji_command_queue_depth").is_some(), "{after}");
    // Personal data stays out of the metrics.
    assert!(!after.contains("13912345678") && !after.contains(&lon.to_string()), "{after}");

    // Nobody fits an incident needing an electrician: it widens level by level.
    let request = pb::CreateIncidentRequest {
        id: "metered-2".into(),
        location: Some(pb::Location::wgs84(lon, lat)),
        category: "power".into(),
        priority: 2,
        required_skills: vec!["electrician".into()],
        headcount: 1,
        description: String::new(),
        force: true,
    };
    command.create_incident(request).await?;
    let mut widened = String::new();
    pingji_tests::wait_until(PROMPTLY, "the widening is counted", async || {
        widened = scrape(metrics_addr).await?;
        Ok(value(&widened, "pingji_widenings_total{level=\"community\"}") == Some(1.0))
    })
    .await?;
    assert_eq!(value(&widened, "pingji_open_incidents{status=\"waiting\",priority=\"2\"}"), Some(1.0), "{widened}");
    // Nobody on the roster is an electrician: not just waiting, unstaffable.
    pingji_tests::wait_until(PROMPTLY, "the unstaffable incident is counted", async || {
        widened = scrape(metrics_addr).await?;
        Ok(value(&widened, "pingji_events_total{kind=\"incident_unstaffable\"}") == Some(1.0))
    })
    .await?;
    assert_eq!(value(&widened, "pingji_unstaffable_incidents{priority=\"2\"}"), Some(1.0), "{widened}");

    // A switch to an emergency grade shows as the area's mode.
    command
        .set_mode(pb::SetModeRequest { area_id: "d2".into(), mode: pb::Mode::EmergencyIi as i32, reason: "drill".into() })
        .await?;
    let switched = scrape(metrics_addr).await?;
    assert_eq!(value(&switched, "pingji_area_mode{area=\"d2\",grade=\"II\"}"), Some(1.0), "{switched}");
    // Every series the Grafana dashboard in docs/ queries is in a scrape
    // (a family with no series yet, such as nobody available, is left out).
    let scrapes = [connected.as_str(), offered.as_str(), after.as_str(), widened.as_str(), switched.as_str()].concat();
    for name in dashboard_metric_names()? {
        assert!(scrapes.contains(&name), "the dashboard queries {name}, which the dispatcher does not export:\n{scrapes}");
    }

    drop((session, agents, command));
    process.terminate().await?;
    let exit = process.wait_exit(PROMPTLY).await?;
    assert!(exit.success(), "exit {exit}; log:\n{}", process.log());
    let log = process.log();
    assert!(log.contains("metrics on http://"), "{log}");
    assert!(!log.contains("13912345678"), "a phone number was logged:\n{log}");
    assert!(!log.contains(&lon.to_string()) && !log.contains(&lat.to_string()), "a location was logged:\n{log}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incidents_spans_reach_an_otlp_collector_with_their_offers_as_children() -> anyhow::Result<()> {
    let collector = Collector::start().await?;
    let dir = tempfile::tempdir()?;
    let extra: Vec<OsString> = vec!["--otlp-endpoint".into(), collector.endpoint().into(), "--log-format".into(), "json".into()];
    let mut process = DispatcherProcess::start_with_args(&options(dir.path())?, &extra).await?;

    let mut command = process.command().await?;
    let (lon, lat) = area_box(&mut command, "d1-s1-c1-g1").await?.centre();
    let mut holder = pingji_tests::person("traced", "d1-s1-c1-g1", &[]);
    holder.phone = "13987654321".into();
    command.upsert_agent(pb::UpsertAgentRequest { agent: Some(holder) }).await?;
    let mut agents = AgentServiceClient::new(process.channel().await?);
    let mut session = connect_located(&mut command, &mut agents, "traced", lon, lat).await?;
    let request = pb::CreateIncidentRequest {
        id: "traced-1".into(),
        location: Some(pb::Location::wgs84(lon, lat)),
        category: "elder_care".into(),
        priority: 2,
        required_skills: vec![],
        headcount: 1,
        description: String::new(),
        force: false,
    };
    command.create_incident(request).await?;
    let offer = session.expect_offer_within(PROMPTLY).await?;
    session.accept(&offer.offer_id).await?;
    session.expect_assignment_confirmed_within(PROMPTLY).await?;
    session.complete("traced-1", "handled").await?;
    pingji_tests::wait_until(PROMPTLY, "the incident is closed", async || {
        let incident = command.get_incident(pb::GetIncidentRequest { id: "traced-1".into() }).await?.into_inner();
        Ok(incident.status == pb::IncidentStatus::Closed as i32)
    })
    .await?;

    // An incident nobody can staff is still open when the dispatcher stops.
    let open = pb::CreateIncidentRequest {
        id: "traced-open".into(),
        location: Some(pb::Location::wgs84(lon, lat)),
        category: "power".into(),
        priority: 3,
        required_skills: vec!["electrician".into()],
        headcount: 1,
        description: String::new(),
        force: true,
    };
    command.create_incident(open).await?;

    // A graceful stop closes the open spans and flushes what the batch
    // exporter still holds.
    drop((session, agents, command));
    process.terminate().await?;
    let exit = process.wait_exit(PROMPTLY).await?;
    assert!(exit.success(), "exit {exit}; log:\n{}", process.log());
    let named = |spans: &[ReceivedSpan], name: &str, incident: &str| {
        spans
            .iter()
            .filter(|received| received.span.name == name && received.attribute("incident_id").as_deref() == Some(incident))
            .cloned()
            .collect::<Vec<_>>()
    };
    pingji_tests::wait_until(Duration::from_secs(30), "the incident's span reaches the collector", async || {
        Ok(!named(&collector.spans(), "incident", "traced-1").is_empty())
    })
    .await?;
    let spans = collector.spans();
    let incidents = named(&spans, "incident", "traced-1");
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let incident = &incidents[0];
    assert!(incident.span.parent_span_id.is_empty(), "an incident is the root of its trace");
    assert_eq!(incident.attribute("outcome").as_deref(), Some("closed"));
    let mut keys: Vec<&str> = incident.span.attributes.iter().map(|pair| pair.key.as_str()).collect();
    let all = keys.len();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), all, "an attribute recorded twice: {:?}", incident.span.attributes);
    assert_eq!(incident.attribute("priority").as_deref(), Some("2"));
    assert_eq!(incident.attribute("grid").as_deref(), Some("d1-s1-c1-g1"));
    assert!(incident.span.events.iter().any(|event| event.name == "incident staffed"), "{:?}", incident.span.events);
    assert_eq!(incident.resource_attribute("service.name").as_deref(), Some("pingji-dispatcher"));
    assert_eq!(incident.resource_attribute("service.version").as_deref(), Some(env!("CARGO_PKG_VERSION")));

    let still_open = named(&spans, "incident", "traced-open");
    assert_eq!(still_open.len(), 1, "{still_open:?}");
    assert_eq!(still_open[0].attribute("outcome").as_deref(), Some("open_at_stop"));

    let offers = named(&spans, "offer", "traced-1");
    assert_eq!(offers.len(), 1, "{offers:?}");
    let offer_span = &offers[0];
    assert_eq!(offer_span.attribute("offer_id"), Some(offer.offer_id.clone()));
    assert_eq!(offer_span.attribute("outcome").as_deref(), Some("accepted"));
    assert_eq!(offer_span.span.trace_id, incident.span.trace_id, "the offer is in the incident's trace");
    assert_eq!(offer_span.span.parent_span_id, incident.span.span_id, "the offer is a child of the incident");

    assert!(
        spans.iter().any(|received| received.span.name == "rpc"
            && received.attribute("rpc.method").is_some_and(|method| method.ends_with("/CreateIncident"))),
        "an rpc span for CreateIncident"
    );
    assert!(spans.iter().any(|received| received.span.name == "journal_append"), "journal append spans");
    // No personal data in any exported attribute.
    let exported = format!("{spans:?}");
    assert!(!exported.contains("13987654321") && !exported.contains(&format!("{lon}")), "personal data exported");
    let metrics = collector.metric_names();
    for expected in
        ["pingji.offers_accepted", "pingji.time_to_accept", "pingji.time_to_staff", "pingji.journal_append", "pingji.events"]
    {
        assert!(metrics.iter().any(|name| name == expected), "{expected} not exported: {metrics:?}");
    }

    // The log is JSON, one object a line, and carries no phone number.
    let log = process.log();
    assert!(!log.contains("13987654321"), "a phone number was logged:\n{log}");
    assert!(!log.contains(&lon.to_string()) && !log.contains(&lat.to_string()), "a location was logged:\n{log}");
    for line in log.lines().filter(|line| !line.trim().is_empty()) {
        serde_json::from_str::<serde_json::Value>(line).map_err(|error| anyhow::anyhow!("not JSON ({error}): {line}"))?;
    }
    collector.shutdown().await
}

/// The `pingji_*` series that docs/grafana-dashboard.json queries.
fn dashboard_metric_names() -> anyhow::Result<Vec<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let mut names = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default();
            for (start, _) in expr.match_indices("pingji_") {
                let name: String = expr[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    anyhow::ensure!(names.len() >= 10, "the dashboard queries only {names:?}");
    Ok(names)
}
