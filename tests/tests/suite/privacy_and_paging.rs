//! Personal data on the event stream, the audit of reads of people (polled
//! and pushed), operator names, and paging.

use std::time::Duration;

use pingji_tests::people::shown_at;
use pingji_tests::{EventWatch, PeopleWatch, TestServer, add_operator, pb, person, typed};

const PROMPTLY: Duration = Duration::from_secs(20);

/// The audits of reads journaled so far by `actor`: (rpc, people, subject).
fn reads_by(watch: &EventWatch, actor: &str) -> Vec<(String, u32, String)> {
    watch
        .seen()
        .iter()
        .filter(|event| event.actor == actor)
        .filter_map(|event| match &event.body {
            Some(pb::event::Body::PersonalDataRead(read)) => Some((read.rpc.clone(), read.people, read.subject.clone())),
            _ => None,
        })
        .collect()
}

/// Adds a person `id` to the far district d2 and waits for the event: everything journaled
/// before it has been seen by `watch`.
async fn mark(server: &TestServer, watch: &mut EventWatch, id: &str) -> anyhow::Result<()> {
    let mut admin = server.command().await?;
    admin.upsert_agent(pb::UpsertAgentRequest { agent: Some(person(id, "d2-s1-c1-g1", &[])) }).await?;
    watch
        .wait_for(PROMPTLY, id, |event| {
            matches!(&event.body, Some(pb::event::Body::AgentsUpserted(upserted)) if upserted.agents.iter().any(|agent| agent.id == id))
        })
        .await?;
    Ok(())
}

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

/// Issue #17, item 1: a viewer's reads of people (coarse locations, masked
/// phones) are audited too, aggregated as a dispatcher's are: one event per
/// call, subject and set of people in the window, and another when the set
/// changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewers_reads_of_people_are_audited_once_per_set_of_people() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut admin = server.command().await?;
    for id in ["ann", "bo"] {
        let mut spec = person(id, "d1-s1-c1-g1", &[]);
        spec.phone = "13912345678".into();
        admin.upsert_agent(pb::UpsertAgentRequest { agent: Some(spec) }).await?;
    }
    let viewer = add_operator(&mut admin, "wang.viewer", pb::OperatorRole::Viewer).await?;
    let mut watch = EventWatch::start(&mut admin, 0).await?;
    let mut as_viewer = server.command_with(Some(&viewer)).await?;
    let list = pb::ListAgentsRequest { area_id: "d1".into(), ..Default::default() };
    for _ in 0..5 {
        as_viewer.list_agents(list.clone()).await?;
    }
    for _ in 0..3 {
        let ann = as_viewer.get_agent(pb::GetAgentRequest { id: "ann".into() }).await?.into_inner();
        assert_eq!(ann.spec.map(|spec| spec.phone), Some("139****5678".to_string()), "still masked");
    }
    admin.upsert_agent(pb::UpsertAgentRequest { agent: Some(person("cai", "d1-s1-c1-g1", &[])) }).await?;
    as_viewer.list_agents(list.clone()).await?;
    as_viewer.list_agents(list).await?;
    mark(&server, &mut watch, "marker").await?;

    let reads = reads_by(&watch, "operator:wang.viewer");
    let calls: Vec<(&str, u32)> = reads.iter().map(|(rpc, people, _)| (rpc.as_str(), *people)).collect();
    assert_eq!(
        calls,
        [("ListAgents", 2), ("GetAgent", 1), ("ListAgents", 3)],
        "five lists of the same two people are one read, three looks at ann one, the third person another"
    );
    assert!(reads.iter().all(|(_, _, subject)| subject.ends_with("(coarse)")), "{reads:?}");
    drop(watch);
    server.shutdown().await
}

/// Issue #17, item 1: with the incident's place known, an offered person's
/// exact distance is a position; a viewer gets it to the kilometre (at
/// least 1 km) in incident reads and on the event stream, as in
/// NearbyAgents, while a dispatcher gets it as measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_gets_offer_distances_to_the_kilometre() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut admin = server.command().await?;
    let viewer = add_operator(&mut admin, "wang.viewer", pb::OperatorRole::Viewer).await?;
    let (lon, lat) = (120.095, 30.232);
    let (person_lon, person_lat) = pingji_tests::offset_m(lon, lat, 340.0, 0.0);
    let _ann = server.connect_person_at(person("ann", "d1-s1-c1-g1", &["first_aid"]), person_lon, person_lat).await?;
    let mut as_viewer = server.command_with(Some(&viewer)).await?;
    let mut viewer_events = EventWatch::start(&mut as_viewer, 0).await?;
    let incident = admin
        .create_incident(pb::CreateIncidentRequest {
            location: Some(pb::Location::wgs84(lon, lat)),
            category: "medical".into(),
            priority: 1,
            required_skills: vec!["first_aid".into()],
            headcount: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    let offered = viewer_events.wait_for_kind(PROMPTLY, "offer_sent", &incident.id).await?;
    let offered = typed!(offered, OfferSent);
    assert_eq!(offered.distance_m, 1000.0, "{offered:?}");

    let exact = admin.get_incident(pb::GetIncidentRequest { id: incident.id.clone() }).await?.into_inner();
    let exact = exact.open_offers.first().map(|offer| offer.distance_m).expect("an open offer");
    assert!((exact - 340.0).abs() < 5.0, "a dispatcher's read is as measured: {exact}");
    let shown = as_viewer.get_incident(pb::GetIncidentRequest { id: incident.id.clone() }).await?.into_inner();
    assert_eq!(shown.open_offers.iter().map(|offer| offer.distance_m).collect::<Vec<_>>(), [1000.0]);
    let listed = as_viewer.list_incidents(pb::ListIncidentsRequest::default()).await?.into_inner().incidents;
    let offers: Vec<f64> = listed.iter().flat_map(|incident| incident.open_offers.iter().map(|offer| offer.distance_m)).collect();
    assert_eq!(offers, [1000.0]);
    drop(viewer_events);
    server.shutdown().await
}

/// Issue #17, item 2: the people a live view shows are pushed by
/// `WatchAgents` (moves arrive without asking again), masked for the role,
/// and audited once when the watch opens and again when the set of people
/// shown changes, not at every move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_of_people_is_pushed_and_audited_once_and_again_when_whom_it_shows_changes() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut admin = server.command().await?;
    let dispatcher = add_operator(&mut admin, "zhao.dispatcher", pb::OperatorRole::Dispatcher).await?;
    let viewer = add_operator(&mut admin, "wang.viewer", pb::OperatorRole::Viewer).await?;
    let (lon, lat) = (120.095_123, 30.232_111);
    let ann = server.connect_person_at(person("ann", "d1-s1-c1-g1", &[]), lon, lat).await?;
    let mut watch = EventWatch::start(&mut admin, 0).await?;

    let connected = pb::WatchAgentsRequest { area_id: String::new(), connected_only: true, ..Default::default() };
    let mut as_dispatcher = server.command_with(Some(&dispatcher)).await?;
    let mut people = PeopleWatch::open(&mut as_dispatcher, connected.clone()).await?;
    people.wait_for(PROMPTLY, "ann where she is", |shown| shown_at(shown, "ann") == Some((lon, lat))).await?;
    assert_eq!(people.people().len(), 1, "only connected people");
    // She moves three times, a round of the stream apart: each move is
    // pushed, none is audited again.
    for step in 1..=3 {
        let moved = (lon + 0.001 * f64::from(step), lat);
        ann.send_location(moved.0, moved.1).await?;
        people.wait_for(PROMPTLY, &format!("ann's move {step}"), |shown| shown_at(shown, "ann") == Some(moved)).await?;
    }
    // Bo connects: whom the watch shows changed.
    let bo = server.connect_person_at(person("bo", "d1-s1-c1-g1", &[]), lon, lat).await?;
    people.wait_for(PROMPTLY, "bo too", |shown| shown.contains_key("bo")).await?;

    // A viewer's watch shows the same people to about 1 km.
    let mut as_viewer = server.command_with(Some(&viewer)).await?;
    let mut coarse = PeopleWatch::open(&mut as_viewer, connected).await?;
    coarse.wait_for(PROMPTLY, "both, coarse", |shown| shown.len() == 2).await?;
    assert_eq!(shown_at(coarse.people(), "bo"), Some((120.10, 30.23)));
    mark(&server, &mut watch, "marker").await?;

    let reads = reads_by(&watch, "operator:zhao.dispatcher");
    let calls: Vec<(&str, u32)> = reads.iter().map(|(rpc, people, _)| (rpc.as_str(), *people)).collect();
    assert_eq!(calls, [("WatchAgents", 1), ("WatchAgents", 2)], "one read when it opened, one when bo joined: {reads:?}");
    assert!(people.messages >= 5, "the opening, three moves and bo came as pushes: {}", people.messages);
    let viewer_reads = reads_by(&watch, "operator:wang.viewer");
    assert_eq!(viewer_reads.len(), 1, "{viewer_reads:?}");
    assert!(viewer_reads[0].2.ends_with("(coarse)"), "{viewer_reads:?}");
    drop((ann, bo, people, coarse, watch));
    server.shutdown().await
}

/// Issue #18: an incident's whole timeline from the journal, a page at a
/// time, redacted for the caller's role as the event stream is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incidents_timeline_pages_through_its_events_only_and_is_redacted_for_a_viewer() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut admin = server.command().await?;
    let viewer = add_operator(&mut admin, "wang.viewer", pb::OperatorRole::Viewer).await?;
    let (lon, lat) = (120.095, 30.232);
    let (person_lon, person_lat) = pingji_tests::offset_m(lon, lat, 340.0, 0.0);
    let _ann = server.connect_person_at(person("ann", "d1-s1-c1-g1", &["first_aid"]), person_lon, person_lat).await?;
    let mut watch = EventWatch::start(&mut admin, 0).await?;
    let create = |category: &str| pb::CreateIncidentRequest {
        location: Some(pb::Location::wgs84(lon, lat)),
        category: category.into(),
        priority: 1,
        required_skills: vec!["first_aid".into()],
        headcount: 1,
        ..Default::default()
    };
    let incident = admin.create_incident(create("medical")).await?.into_inner();
    watch.wait_for_kind(PROMPTLY, "offer_sent", &incident.id).await?;
    let other = admin.create_incident(create("fire")).await?.into_inner();
    admin.cancel_incident(pb::CancelIncidentRequest { id: incident.id.clone(), reason: "a test".into() }).await?;
    let cancelled = watch.wait_for_kind(PROMPTLY, "incident_cancelled", &incident.id).await?.seq;

    // Compared up to the cancellation: what follows it may not be seen yet.
    let expected: Vec<(u64, String)> = watch
        .seen()
        .iter()
        .filter(|event| event.incident_id == incident.id && event.seq <= cancelled)
        .map(|event| (event.seq, event.kind.clone()))
        .collect();
    let whole = admin
        .incident_timeline(pb::IncidentTimelineRequest { incident_id: incident.id.clone(), ..Default::default() })
        .await?
        .into_inner();
    let got: Vec<(u64, String)> =
        whole.events.iter().filter(|event| event.seq <= cancelled).map(|event| (event.seq, event.kind.clone())).collect();
    assert_eq!(got, expected, "the incident's events, and no other's ({})", other.id);
    assert_eq!(got.first().map(|(_, kind)| kind.as_str()), Some("incident_reported"));
    assert!(got.iter().any(|(_, kind)| kind == "incident_cancelled"), "{got:?}");
    assert!(whole.complete, "nothing was forgotten");
    assert_eq!(whole.next_seq, 0, "one page held it all");

    // A page at a time gives the same events.
    let mut paged = Vec::new();
    let mut from_seq = 0;
    loop {
        let request = pb::IncidentTimelineRequest { incident_id: incident.id.clone(), from_seq, limit: 1 };
        let page = admin.incident_timeline(request).await?.into_inner();
        paged.extend(page.events.iter().map(|event| (event.seq, event.kind.clone())));
        if page.next_seq == 0 {
            break;
        }
        assert!(page.next_seq > from_seq, "paging goes forward");
        from_seq = page.next_seq;
    }
    paged.retain(|(seq, _)| *seq <= cancelled);
    assert_eq!(paged, expected);

    // A viewer reads the same timeline with distances to the kilometre.
    let mut as_viewer = server.command_with(Some(&viewer)).await?;
    let request = pb::IncidentTimelineRequest { incident_id: incident.id.clone(), ..Default::default() };
    let seen = as_viewer.incident_timeline(request).await?.into_inner();
    let offered = seen.events.iter().find(|event| event.kind == "offer_sent").expect("an offer in the timeline");
    assert_eq!(typed!(offered.clone(), OfferSent).distance_m, 1000.0);

    // An unknown incident and too large a page are refused, saying why.
    let unknown = admin
        .incident_timeline(pb::IncidentTimelineRequest { incident_id: "inc-nope".into(), ..Default::default() })
        .await
        .expect_err("an unknown incident");
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");
    assert!(unknown.message().contains("inc-nope"), "{}", unknown.message());
    let too_many = admin
        .incident_timeline(pb::IncidentTimelineRequest { incident_id: incident.id.clone(), from_seq: 0, limit: 5000 })
        .await
        .expect_err("too large a page");
    assert_eq!(too_many.code(), tonic::Code::InvalidArgument, "{too_many:?}");
    drop(watch);
    server.shutdown().await
}
