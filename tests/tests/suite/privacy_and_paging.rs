//! Personal data on the event stream, operator names, and paging.

use std::time::Duration;

use pingji_tests::{EventWatch, TestServer, pb, person, typed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_masks_phones_and_drops_home_locations() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let mut spec = person("canary", "d1-s1-c1-g1", &[]);
    spec.phone = "13912345678".to_string();
    spec.home = Some(pb::Location::wgs84(120.0912345, 30.2412345));
    command.upsert_agent(pb::UpsertAgentRequest { agent: Some(spec) }).await?;
    let mut watch = EventWatch::start(&mut command, 1).await?;
    let upserted = watch
        .wait_for(Duration::from_secs(20), "the roster event", |event| {
            matches!(&event.body, Some(pb::event::Body::AgentsUpserted(upserted)) if upserted.agents.iter().any(|agent| agent.id == "canary"))
        })
        .await?;
    let shown = format!("{upserted:?}");
    assert!(!shown.contains("13912345678"), "{shown}");
    let agents = typed!(upserted, AgentsUpserted).agents;
    let agent = agents.iter().find(|agent| agent.id == "canary").expect("the canary");
    assert_eq!(agent.phone, "139****5678");
    // The admin watching sees the home as recorded; a viewer's watch would
    // see it to about 1 km (the redaction is tested in the dispatcher).
    assert_eq!(agent.home.map(|home| (home.lon, home.lat)), Some((120.0912345, 30.2412345)));
    // Operators who look the person up still see the number (an operator tool).
    let stored = command.get_agent(pb::GetAgentRequest { id: "canary".into() }).await?.into_inner();
    assert_eq!(stored.spec.map(|spec| spec.phone), Some("13912345678".to_string()));
    drop(watch);
    server.shutdown().await
}

/// The actor is the account of the token: a name the caller claims (the
/// old `x-pingji-operator` header) changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_operator_name_does_not_change_who_acted() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let mut claimed = tonic::Request::new(pb::CreateIncidentRequest {
        location: Some(pb::Location::wgs84(120.1, 30.23)),
        category: "medical".into(),
        priority: 1,
        headcount: 1,
        ..Default::default()
    });
    claimed.metadata_mut().insert("x-pingji-operator", "zhang.wei".parse()?);
    let incident = command.create_incident(claimed).await?.into_inner();
    assert_eq!(incident.reported_by, "operator:admin");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_page_by_id() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    for _ in 0..7 {
        command
            .create_incident(pb::CreateIncidentRequest {
                location: Some(pb::Location::wgs84(120.1, 30.23)),
                category: "errand".into(),
                priority: 3,
                headcount: 1,
                ..Default::default()
            })
            .await?;
    }
    let mut seen = Vec::new();
    let mut after_id = String::new();
    loop {
        let page = command
            .list_incidents(pb::ListIncidentsRequest { open_only: true, limit: 3, after_id: after_id.clone() })
            .await?
            .into_inner()
            .incidents;
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        after_id = page.last().map(|incident| incident.id.clone()).unwrap_or_default();
        seen.extend(page.into_iter().map(|incident| incident.id));
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen.len(), 7);
    assert_eq!(seen, sorted, "pages are in id order without repeats");
    server.shutdown().await
}

/// A screen polling the same people (the console's watch lists them every
/// 2 s) is one audited read, not one a poll; a change in whom it shows is
/// audited again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_the_same_people_is_audited_once_and_again_when_they_change() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut admin = server.command().await?;
    for id in ["ann", "bo"] {
        admin.upsert_agent(pb::UpsertAgentRequest { agent: Some(person(id, "d1-s1-c1-g1", &[])) }).await?;
    }
    let mut watch = EventWatch::start(&mut admin, 1).await?;
    let list = pb::ListAgentsRequest { area_id: "d1".into(), ..Default::default() };
    for _ in 0..5 {
        admin.list_agents(list.clone()).await?;
    }
    admin.upsert_agent(pb::UpsertAgentRequest { agent: Some(person("cai", "d1-s1-c1-g1", &[])) }).await?;
    admin.list_agents(list.clone()).await?;
    // A marker, so that everything before it has been seen.
    admin.upsert_agent(pb::UpsertAgentRequest { agent: Some(person("marker", "d2-s1-c1-g1", &[])) }).await?;
    watch
        .wait_for(Duration::from_secs(20), "the marker", |event| {
            matches!(&event.body, Some(pb::event::Body::AgentsUpserted(upserted)) if upserted.agents.iter().any(|agent| agent.id == "marker"))
        })
        .await?;
    let reads: Vec<u32> = watch
        .seen()
        .iter()
        .filter_map(|event| match &event.body {
            Some(pb::event::Body::PersonalDataRead(read)) if read.rpc == "ListAgents" => Some(read.people),
            _ => None,
        })
        .collect();
    assert_eq!(reads, vec![2, 3], "five polls of the same two people are one read; the third person makes another");
    let last = watch.seen().iter().rev().find(|event| event.kind == "personal_data_read").cloned().expect("a read");
    assert_eq!(typed!(last, PersonalDataRead).people, 3);
    drop(watch);
    server.shutdown().await
}
