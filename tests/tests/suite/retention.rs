//! The journal's retention limit seen by a client over real gRPC: once a
//! snapshot lets old events go, a watcher asking for them is told where the
//! history kept starts, and can watch from there or from now on.

use std::time::Duration;

use pingji_tests::{EventWatch, TestServer, pb, wait_until};

const PROMPTLY: Duration = Duration::from_secs(30);

fn person(n: u32) -> pb::AgentSpec {
    pb::AgentSpec {
        id: format!("r{n:04}"),
        name: format!("person {n}"),
        role: pb::Role::Volunteer as i32,
        travel_mode: pb::TravelMode::Walk as i32,
        on_duty: true,
        ..pb::AgentSpec::default()
    }
}

/// The first seq kept, from a refusal's message ("events before seq N ...").
fn first_kept(message: &str) -> Option<u64> {
    message.split("events before seq ").nth(1)?.split(' ').next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_asking_for_deleted_events_is_told_where_history_starts() -> anyhow::Result<()> {
    let server = TestServer::start(|config| {
        config.snapshot_every = 5;
        // Days in production; here every event is old a millisecond later,
        // so each snapshot lets everything before it go.
        config.retention = Some(Duration::from_millis(1));
    })
    .await?;
    let mut command = server.command().await?;
    for n in 1..=12 {
        command.import_agents(pb::ImportAgentsRequest { agents: vec![person(n)] }).await?;
    }

    let mut refusal = None;
    wait_until(PROMPTLY, "a watch from seq 1 is refused", async || {
        let mut stream = command.watch_events(pb::WatchEventsRequest { from_seq: 1, replay_last: 0 }).await?.into_inner();
        match tokio::time::timeout(PROMPTLY, stream.message()).await? {
            Err(status) => {
                refusal = Some(status);
                Ok(true)
            }
            Ok(_) => Ok(false),
        }
    })
    .await?;
    let status = refusal.expect("set when the wait ends");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    let first = first_kept(status.message()).unwrap_or_else(|| panic!("no seq in {:?}", status.message()));
    assert!(first > 1, "{}", status.message());
    assert!(status.message().contains("retention"), "{}", status.message());

    // From the first event kept, the history is whole.
    let mut from_first = EventWatch::start(&mut command, first).await?;
    assert_eq!(from_first.next_within(PROMPTLY).await?.seq, first);
    // And watching new events only is not affected.
    let mut from_now = EventWatch::start(&mut command, 0).await?;
    command.import_agents(pb::ImportAgentsRequest { agents: vec![person(13)] }).await?;
    let event = from_now.wait_for(PROMPTLY, "the new person", |event| event.kind == "agents_upserted").await?;
    assert!(event.seq > first);
    drop((from_first, from_now));
    server.shutdown().await
}

/// Photo retention (`photos.retention_days`): a rejected report's photo is
/// deleted once its retention has passed on the dispatcher's clock, as is a
/// photo no report or completion named; a photo of a report still waiting
/// for triage is kept however old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_are_deleted_their_retention_after_the_incident_ended_and_kept_while_it_is_open() -> anyhow::Result<()> {
    use pingji_client::field::{AgentCredentials, FieldClient};
    use pingji_tests::{TestClock, agent_token, area_box, sample_roster};

    const KEEP_DAYS: u64 = 30;
    let photos = tempfile::tempdir()?;
    let photos_dir = photos.path().to_path_buf();
    let start_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let clock = TestClock::at(start_ms);
    let dispatcher_clock = clock.for_dispatcher();
    let server = TestServer::start(move |config| {
        config.agents_file = Some(sample_roster());
        config.photos_dir = Some(photos_dir);
        config.photo_retention = Some(Duration::from_secs(KEEP_DAYS * 86_400));
        config.photo_sweep_every = Duration::from_millis(100);
        config.clock = dispatcher_clock;
    })
    .await?;
    let mut command = server.command().await?;
    let grid = "d1-s1-c1-g1";
    command.upsert_agent(pb::UpsertAgentRequest { agent: Some(pingji_tests::person("snapper", grid, &["first_aid"])) }).await?;
    let token = agent_token(&mut command, "snapper").await?;
    let phone = FieldClient::new(server.channel().await?, AgentCredentials::new("snapper", &token).map_err(anyhow::Error::msg)?);
    let (_, _stream) = phone.listen().await?;
    let at = area_box(&mut command, grid).await?.centre();
    phone.report_location(at.0, at.1).await?;
    // Three different photos: a PNG with a byte added after its end each.
    let photo = |n: u8| {
        let mut bytes = include_bytes!("../../../dispatcher/web/src/field/icon-512.png").to_vec();
        bytes.push(n);
        bytes
    };
    let rejected = phone.upload_photo(photo(1)).await?.photo_ref;
    let waiting = phone.upload_photo(photo(2)).await?.photo_ref;
    let never_named = phone.upload_photo(photo(3)).await?.photo_ref;
    phone.submit_field_report(at, "litter", "bags on the pavement", std::slice::from_ref(&rejected)).await?;
    phone.submit_field_report(at, "flood", "water rising", std::slice::from_ref(&waiting)).await?;
    let mut reports = Vec::new();
    wait_until(PROMPTLY, "both reports wait for triage", async || {
        let open = command.list_incidents(pb::ListIncidentsRequest { open_only: true, ..Default::default() }).await?;
        reports = open.into_inner().incidents.into_iter().filter(|incident| !incident.photo_refs.is_empty()).collect();
        Ok(reports.len() == 2)
    })
    .await?;
    let to_reject = reports.iter().find(|report| report.photo_refs.contains(&rejected)).expect("the report").id.clone();
    command
        .triage_report(pb::TriageReportRequest {
            report_id: to_reject,
            action: Some(pb::triage_report_request::Action::RejectReason("cleared already".into())),
        })
        .await?;
    let stored = |photo_ref: &str| photos.path().join(photo_ref.trim_start_matches("sha256:")).exists();

    // Within the retention, sweeps keep every photo.
    clock.advance(Duration::from_secs((KEEP_DAYS - 1) * 86_400));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(stored(&rejected) && stored(&waiting) && stored(&never_named), "all kept within {KEEP_DAYS} days");

    // Past it, the rejected report's photo and the one never named go.
    clock.advance(Duration::from_secs(2 * 86_400));
    wait_until(PROMPTLY, "the photos past their retention are deleted", async || Ok(!stored(&rejected) && !stored(&never_named)))
        .await?;
    assert!(stored(&waiting), "the waiting report's photo is kept");
    let gone = command.get_photo(pb::GetPhotoRequest { photo_ref: rejected.clone() }).await.expect_err("deleted");
    assert_eq!(gone.code(), tonic::Code::NotFound, "{gone:?}");
    command.get_photo(pb::GetPhotoRequest { photo_ref: waiting }).await?;
    server.shutdown().await
}
