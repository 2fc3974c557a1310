//! Shelters and evacuation points (#22) on real dispatchers over real
//! gRPC: the nearest open shelter with room and the facilities a group
//! needs is chosen (a closed one never), the overflow goes to the next,
//! two evacuations racing for the last places (one gets them, the other
//! the next shelter or a clear error and no change), arrivals checked in
//! as counts with alerts at the policy's threshold and when full (names
//! masked on the stream), places released when the incident ends, a plan
//! that opens its shelters, CSV round trip and a bad line refused with its
//! number, role checks, and the lifecycle journaled in SQLite and there
//! after a SIGKILL, and the command map's shelters with their occupancy
//! bars in a real headless Chromium (screenshots of a desk and a phone in
//! `target/web-screenshots/`).

use std::time::Duration;

use pingji_client::auth::BearerToken;
use pingji_client::shelters::{locate_rows, parse_shelter_csv, shelters_csv};
use pingji_proto::v1::shelter_service_client::ShelterServiceClient;
use pingji_tests::browser::{
    self, DESK, PHONE, TestBrowser, accessibility_problems, eval, resize, screenshot, screenshot_folder, wait_for,
};
use pingji_tests::cli::run_pingji;
use pingji_tests::{
    ADMIN_TOKEN, Commands, DispatcherProcess, EventWatch, ProcessOptions, TestServer, add_operator, pb, sample_city,
    sample_roster,
};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Shelters = ShelterServiceClient<InterceptedService<Channel, BearerToken>>;

const WITHIN: Duration = Duration::from_secs(20);

fn shelters_with(channel: Channel, token: &str) -> Shelters {
    ShelterServiceClient::with_interceptor(channel, BearerToken::new(Some(token)).unwrap_or_default())
}

/// The incident's place: the middle of the sample city.
const INCIDENT: (f64, f64) = (120.15, 30.27);

fn shelter(id: &str, lon: f64, capacity: u32, facilities: &[pb::Facility]) -> pb::Shelter {
    pb::Shelter {
        id: id.to_string(),
        name: format!("Shelter {id}"),
        location: Some(pb::Location::wgs84(lon, 30.27)),
        capacity,
        facilities: facilities.iter().map(|facility| i32::from(*facility)).collect(),
        ..Default::default()
    }
}

/// East of the incident: `near` (0.5 km, 10 places, no ramp), `school`
/// (1 km, 20, accessible), `far` (5 km, 100, accessible and medical), all
/// open; `closed` (0.1 km, 500, everything) stays closed.
async fn four_shelters(shelters: &mut Shelters) -> anyhow::Result<()> {
    use pb::Facility::{Accessible, Kitchen, Medical};
    shelters
        .import_shelters(pb::ImportSheltersRequest {
            shelters: vec![
                shelter("near", 120.155, 10, &[]),
                shelter("school", 120.16, 20, &[Accessible]),
                shelter("far", 120.2, 100, &[Accessible, Medical]),
                shelter("closed", 120.151, 500, &[Accessible, Medical, Kitchen]),
            ],
        })
        .await?;
    for id in ["near", "school", "far"] {
        shelters.open_shelter(pb::OpenShelterRequest { shelter_id: id.into() }).await?;
    }
    Ok(())
}

async fn incident(command: &mut Commands, (lon, lat): (f64, f64)) -> anyhow::Result<String> {
    let created = command
        .create_incident(pb::CreateIncidentRequest {
            location: Some(pb::Location::wgs84(lon, lat)),
            category: "evacuation".into(),
            priority: 2,
            headcount: 1,
            force: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(created.id)
}

fn evacuate_request(incident: &str, residents: u32, needs: &[pb::Facility]) -> pb::EvacuateRequest {
    pb::EvacuateRequest {
        incident_id: incident.into(),
        residents,
        needs: needs.iter().map(|need| i32::from(*need)).collect(),
        ..Default::default()
    }
}

async fn listed(shelters: &mut Shelters, id: &str) -> anyhow::Result<pb::Shelter> {
    let all = shelters.list_shelters(pb::ListSheltersRequest::default()).await?.into_inner().shelters;
    all.into_iter().find(|shelter| shelter.id == id).ok_or_else(|| anyhow::anyhow!("no shelter {id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nearest_open_shelter_with_room_and_the_facilities_is_chosen_and_the_overflow_goes_to_the_next() -> anyhow::Result<()>
{
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let mut shelters = shelters_with(server.channel().await?, ADMIN_TOKEN);
    four_shelters(&mut shelters).await?;
    let incident = incident(&mut command, INCIDENT).await?;

    let proposed = shelters
        .propose_shelters(pb::ProposeSheltersRequest {
            incident_id: incident.clone(),
            residents: 15,
            needs: vec![pb::Facility::Accessible.into()],
        })
        .await?
        .into_inner();
    let order: Vec<(&str, bool)> = proposed.choices.iter().map(|choice| (choice.shelter_id.as_str(), choice.fits)).collect();
    assert_eq!(order, [("school", true), ("far", true)], "the closed shelter and the one without a ramp are left out");
    assert!(proposed.choices[0].travel_s < proposed.choices[1].travel_s);

    let first = shelters.evacuate(evacuate_request(&incident, 8, &[])).await?.into_inner();
    assert_eq!((first.shelter_id.as_str(), first.held), ("near", 8), "nearest open shelter, never the closed one");
    let second = shelters.evacuate(evacuate_request(&incident, 5, &[])).await?.into_inner();
    assert_eq!(second.shelter_id, "school", "near has 2 places left: the overflow goes to the next");
    assert_eq!(second.passed_over_shelter_ids, ["near"]);
    let wheelchairs = shelters.evacuate(evacuate_request(&incident, 16, &[pb::Facility::Accessible])).await?.into_inner();
    assert_eq!(wheelchairs.shelter_id, "far", "school has 15 places left of its 20");
    assert_eq!(wheelchairs.passed_over_shelter_ids, ["school"]);
    let medical = shelters.evacuate(evacuate_request(&incident, 3, &[pb::Facility::Medical])).await?.into_inner();
    assert_eq!(medical.shelter_id, "far");

    let refused = shelters.evacuate(evacuate_request(&incident, 500, &[])).await.expect_err("no shelter has room");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("no open shelter has room for 500 residents"), "{}", refused.message());
    let refused = shelters
        .evacuate(pb::EvacuateRequest { shelter_id: "closed".into(), ..evacuate_request(&incident, 1, &[]) })
        .await
        .expect_err("a closed shelter");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("shelter closed is closed"), "{}", refused.message());
    assert_eq!(listed(&mut shelters, "closed").await?.reserved, 0);
    let refused = shelters.evacuate(evacuate_request(&incident, 0, &[])).await.expect_err("an empty group");
    assert_eq!(refused.code(), Code::InvalidArgument);
    server.shutdown().await
}

/// An evacuation named by the caller is made once: the same request again
/// (a retry after a lost answer) answers the evacuation made and holds no
/// more places; the name used for another group is refused, changing
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evacuation_named_by_the_caller_is_made_once_however_often_it_is_sent() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let mut shelters = shelters_with(server.channel().await?, ADMIN_TOKEN);
    four_shelters(&mut shelters).await?;
    let incident = incident(&mut command, INCIDENT).await?;
    let asked = pb::EvacuateRequest { id: "flood-block-7".into(), ..evacuate_request(&incident, 4, &[]) };
    let made = shelters.evacuate(asked.clone()).await?.into_inner();
    assert_eq!((made.id.as_str(), made.held), ("flood-block-7", 4), "{made:?}");
    let again = shelters.evacuate(asked.clone()).await?.into_inner();
    assert_eq!(again, made, "a retry answers the evacuation made");
    let other = shelters.evacuate(pb::EvacuateRequest { residents: 5, ..asked }).await.expect_err("another group");
    assert_eq!(other.code(), Code::AlreadyExists, "{other:?}");
    assert!(other.message().contains("give a new id"), "{}", other.message());
    let all = shelters.list_evacuations(pb::ListEvacuationsRequest::default()).await?.into_inner().evacuations;
    assert_eq!(all.len(), 1, "{all:?}");
    let shelter = listed(&mut shelters, &made.shelter_id).await?;
    assert_eq!(shelter.reserved, 4, "places held once: {shelter:?}");
    // Unnamed, the next is numbered as before.
    let numbered = shelters.evacuate(evacuate_request(&incident, 2, &[])).await?.into_inner();
    assert_eq!(numbered.id, "eva-000002");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_evacuations_racing_for_the_last_places_never_overfill_a_shelter() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let mut shelters = shelters_with(server.channel().await?, ADMIN_TOKEN);
    four_shelters(&mut shelters).await?;
    let incident_a = incident(&mut command, INCIDENT).await?;
    let incident_b = incident(&mut command, (120.151, 30.27)).await?;
    // Both operators ask for the same shelter's last 6 places of 10.
    shelters.evacuate(pb::EvacuateRequest { shelter_id: "near".into(), ..evacuate_request(&incident_a, 4, &[]) }).await?;
    let mut first = shelters.clone();
    let mut second = shelters.clone();
    let (one, two) = tokio::join!(
        first.evacuate(pb::EvacuateRequest { shelter_id: "near".into(), ..evacuate_request(&incident_a, 6, &[]) }),
        second.evacuate(pb::EvacuateRequest { shelter_id: "near".into(), ..evacuate_request(&incident_b, 6, &[]) }),
    );
    let (won, refusal) = match (one, two) {
        (Ok(won), Err(refusal)) | (Err(refusal), Ok(won)) => (won.into_inner(), refusal),
        other => anyhow::bail!("exactly one evacuation should get the last places: {other:?}"),
    };
    assert_eq!(won.held, 6);
    assert_eq!(refusal.code(), Code::FailedPrecondition, "{refusal:?}");
    assert!(refusal.message().contains("shelter near has 0 places free"), "{}", refusal.message());
    let near = listed(&mut shelters, "near").await?;
    assert_eq!((near.reserved, near.free), (10, 0));
    let all = shelters.list_evacuations(pb::ListEvacuationsRequest::default()).await?.into_inner().evacuations;
    assert_eq!(all.len(), 2, "the refused evacuation changed nothing");
    // Left to the dispatcher, the same race sends the loser to the next shelter.
    let (one, two) = tokio::join!(
        first.evacuate(evacuate_request(&incident_a, 15, &[])),
        second.evacuate(evacuate_request(&incident_b, 15, &[])),
    );
    let mut taken = vec![one?.into_inner().shelter_id, two?.into_inner().shelter_id];
    taken.sort();
    assert_eq!(taken, ["far", "school"]);
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrivals_are_counted_and_alerts_go_out_at_the_threshold_and_when_full() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let mut shelters = shelters_with(server.channel().await?, ADMIN_TOKEN);
    four_shelters(&mut shelters).await?;
    let mut watch = EventWatch::start(&mut command, 0).await?;
    let incident = incident(&mut command, INCIDENT).await?;
    let evacuation = shelters.evacuate(evacuate_request(&incident, 9, &[])).await?.into_inner();
    let nearly = watch.wait_for(WITHIN, "shelter_level_changed", |event| event.kind == "shelter_level_changed").await?;
    let Some(pb::event::Body::ShelterLevelChanged(nearly)) = nearly.body else { anyhow::bail!("no body") };
    assert_eq!(
        (nearly.shelter_id.as_str(), nearly.level, nearly.reserved, nearly.capacity),
        ("near", pb::ShelterLevel::NearlyFull as i32, 9, 10),
        "9 of 10 places taken reaches the 90 % threshold"
    );
    let after = shelters
        .check_in_arrivals(pb::CheckInArrivalsRequest {
            evacuation_id: evacuation.id.clone(),
            count: 4,
            names: vec!["王小明".into(), "李四".into()],
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!((after.occupied, after.reserved), (4, 5));
    let arrived = watch.wait_for(WITHIN, "arrivals_checked_in", |event| event.kind == "arrivals_checked_in").await?;
    let Some(pb::event::Body::ArrivalsCheckedIn(arrived)) = arrived.body else { anyhow::bail!("no body") };
    assert_eq!(arrived.names, ["王**", "李*"], "names are masked on the stream, like phone numbers");
    assert_eq!(arrived.incident_id, incident);

    let refused = shelters
        .check_in_arrivals(pb::CheckInArrivalsRequest { evacuation_id: evacuation.id.clone(), count: 6, ..Default::default() })
        .await
        .expect_err("more than the places held");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("holds 5 places, fewer than the 6 arrivals"), "{}", refused.message());
    shelters.check_in_arrivals(pb::CheckInArrivalsRequest { shelter_id: "near".into(), count: 1, ..Default::default() }).await?;
    let full = watch
        .wait_for(WITHIN, "full", |event| {
            matches!(&event.body, Some(pb::event::Body::ShelterLevelChanged(changed)) if changed.level == pb::ShelterLevel::Full as i32)
        })
        .await?;
    let Some(pb::event::Body::ShelterLevelChanged(full)) = full.body else { anyhow::bail!("no body") };
    assert_eq!(
        (full.shelter_id.as_str(), full.occupied, full.reserved),
        ("near", 5, 5),
        "4 arrived, 1 walked in, 5 on their way"
    );
    let refused = shelters
        .check_in_arrivals(pb::CheckInArrivalsRequest { shelter_id: "near".into(), count: 1, ..Default::default() })
        .await
        .expect_err("a full shelter");
    assert!(refused.message().contains("has 0 places free"), "{}", refused.message());
    shelters
        .check_in_arrivals(pb::CheckInArrivalsRequest { evacuation_id: evacuation.id.clone(), count: 2, ..Default::default() })
        .await?;

    // The incident ends with 3 residents not there: their places go back.
    command.close_incident(pb::CloseIncidentRequest { id: incident.clone(), feedback: "moved".into() }).await?;
    let released = watch.wait_for(WITHIN, "places_released", |event| event.kind == "places_released").await?;
    let Some(pb::event::Body::PlacesReleased(released)) = released.body else { anyhow::bail!("no body") };
    assert_eq!(released.places, 3);
    let occupancy = shelters.shelter_occupancy(pb::ShelterOccupancyRequest { shelter_id: "near".into() }).await?.into_inner();
    let samples: Vec<(u32, u32)> = occupancy.samples.iter().map(|sample| (sample.occupied, sample.reserved)).collect();
    assert_eq!(samples.last(), Some(&(7, 0)));
    assert!(samples.contains(&(0, 9)) && samples.contains(&(4, 5)), "{samples:?}");
    assert_eq!(occupancy.shelter.map(|shelter| shelter.level), Some(pb::ShelterLevel::Normal as i32));
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_opens_its_shelters_when_it_activates() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let mut shelters = shelters_with(server.channel().await?, ADMIN_TOKEN);
    four_shelters(&mut shelters).await?;
    let plan = r#"
id = "typhoon-ii"
name = "Typhoon, grade II"
category = "typhoon"
grade = "II"
open_shelters = ["closed"]
"#;
    command.import_plans(pb::ImportPlansRequest { plans_toml: vec![plan.to_string()] }).await?;
    let plans = command.list_plans(pb::ListPlansRequest::default()).await?.into_inner().plans;
    assert_eq!(plans[0].open_shelter_ids, ["closed"]);
    let incident = incident(&mut command, INCIDENT).await?;
    let before = shelters.evacuate(evacuate_request(&incident, 1, &[pb::Facility::Kitchen])).await.expect_err("none open");
    assert_eq!(before.code(), Code::FailedPrecondition);
    command
        .activate_plan(pb::ActivatePlanRequest { plan_id: "typhoon-ii".into(), area_id: "d1".into(), reason: "typhoon".into() })
        .await?;
    let opened = listed(&mut shelters, "closed").await?;
    assert!(opened.open);
    assert!(opened.opened_by_activation_id.starts_with("typhoon-ii@d1"), "{opened:?}");
    let sent = shelters.evacuate(evacuate_request(&incident, 1, &[pb::Facility::Kitchen])).await?.into_inner();
    assert_eq!(sent.shelter_id, "closed");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shelters_round_trip_through_csv_and_a_bad_line_imports_nothing() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut shelters = shelters_with(server.channel().await?, ADMIN_TOKEN);
    let file = "id,name,lon,lat,area_id,capacity,facilities\n\
                school-3,No. 3 School,120.15,30.27,,200,accessible;medical\n\
                gym,Gym,120.2,30.3,d2,80,\n";
    let read = parse_shelter_csv(file).map_err(|problems| anyhow::anyhow!("{problems:?}"))?;
    assert_eq!(shelters.import_shelters(read.request.clone()).await?.into_inner().shelters, 2);
    let listed = shelters.list_shelters(pb::ListSheltersRequest::default()).await?.into_inner().shelters;
    let school = listed.iter().find(|shelter| shelter.id == "school-3").expect("listed");
    assert!(!school.area_id.is_empty(), "placed in the area at its position");
    assert!(!school.open, "a new shelter starts closed");
    let again = parse_shelter_csv(&shelters_csv(&listed)).map_err(|problems| anyhow::anyhow!("{problems:?}"))?;
    let mut expected = read.request.shelters.clone();
    expected[0].area_id = school.area_id.clone();
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    let mut exported = again.request.shelters.clone();
    exported.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(exported, expected, "export then import gives the same shelters");

    let bad = format!("{file}hall,Hall,120.1,30.2,,many,\n");
    let problems = parse_shelter_csv(&bad).expect_err("a capacity that is no number");
    assert_eq!(problems, ["shelters csv line 4: capacity \"many\" is not a whole number of places"]);
    // A line the dispatcher refuses (an area not on the map): nothing imported.
    let refused_file = "id,name,lon,lat,area_id,capacity,facilities\n\
                        gym,Gym,120.2,30.3,d2,999,\n\
                        hall,Hall,120.1,30.2,atlantis,50,\n";
    let read = parse_shelter_csv(refused_file).map_err(|problems| anyhow::anyhow!("{problems:?}"))?;
    let refused = shelters.import_shelters(read.request.clone()).await.expect_err("an unknown area");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let told = locate_rows(refused.message(), &read);
    assert!(told.starts_with("shelters csv line 3 (shelter row 2): area atlantis"), "{told}");
    let listed = shelters.list_shelters(pb::ListSheltersRequest::default()).await?.into_inner().shelters;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed.iter().find(|shelter| shelter.id == "gym").map(|gym| gym.capacity), Some(80), "nothing imported");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_read_shelters_dispatchers_evacuate_and_commanders_open_and_import() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let mut admin = shelters_with(server.channel().await?, ADMIN_TOKEN);
    four_shelters(&mut admin).await?;
    let incident = incident(&mut command, INCIDENT).await?;
    let viewer_token = add_operator(&mut command, "viewer-1", pb::OperatorRole::Viewer).await?;
    let dispatcher_token = add_operator(&mut command, "dispatcher-1", pb::OperatorRole::Dispatcher).await?;
    let mut viewer = shelters_with(server.channel().await?, &viewer_token);
    let mut dispatcher = shelters_with(server.channel().await?, &dispatcher_token);

    viewer.list_shelters(pb::ListSheltersRequest { area_id: "d1".into(), open_only: true }).await?;
    viewer.shelter_occupancy(pb::ShelterOccupancyRequest { shelter_id: "near".into() }).await?;
    let refused = viewer.evacuate(evacuate_request(&incident, 2, &[])).await.expect_err("a viewer cannot evacuate");
    assert!(refused.message().contains("Evacuate needs the dispatcher role"), "{refused}");
    let sent = dispatcher.evacuate(evacuate_request(&incident, 2, &[])).await?.into_inner();
    dispatcher
        .check_in_arrivals(pb::CheckInArrivalsRequest { evacuation_id: sent.id.clone(), count: 2, ..Default::default() })
        .await?;
    let refused = dispatcher
        .open_shelter(pb::OpenShelterRequest { shelter_id: "closed".into() })
        .await
        .expect_err("a dispatcher cannot open a shelter");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let refused = dispatcher
        .import_shelters(pb::ImportSheltersRequest { shelters: vec![shelter("new", 120.1, 5, &[])] })
        .await
        .expect_err("a dispatcher cannot import");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let refused = admin
        .list_shelters(pb::ListSheltersRequest { area_id: "atlantis".into(), open_only: false })
        .await
        .expect_err("an unknown area");
    assert_eq!(refused.code(), Code::NotFound);
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_is_journaled_and_there_after_a_sigkill() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let options = ProcessOptions {
        data: dir.path().join("p.db"),
        policy: None,
        areas: Some(sample_city()),
        agents: Some(sample_roster()),
        snapshot_every: Some(5),
        log: dir.path().join("dispatcher.log"),
    };
    let first = DispatcherProcess::start(&options).await?;
    let mut command = first.command().await?;
    let mut shelters = shelters_with(first.channel().await?, ADMIN_TOKEN);
    four_shelters(&mut shelters).await?;
    let incident = incident(&mut command, INCIDENT).await?;
    let sent = shelters.evacuate(evacuate_request(&incident, 15, &[pb::Facility::Accessible])).await?.into_inner();
    assert_eq!(sent.shelter_id, "school");
    shelters
        .check_in_arrivals(pb::CheckInArrivalsRequest {
            evacuation_id: sent.id.clone(),
            count: 6,
            names: vec!["张三".into()],
            ..Default::default()
        })
        .await?;
    shelters.close_shelter(pb::CloseShelterRequest { shelter_id: "near".into(), reason: "flooded".into() }).await?;
    first.kill().await?;

    let second = DispatcherProcess::start(&options).await?;
    let mut shelters = shelters_with(second.channel().await?, ADMIN_TOKEN);
    let school = listed(&mut shelters, "school").await?;
    assert_eq!((school.occupied, school.reserved, school.open), (6, 9, true));
    assert!(!listed(&mut shelters, "near").await?.open, "closed stays closed");
    let evacuations = shelters.list_evacuations(pb::ListEvacuationsRequest { holding_only: true, ..Default::default() }).await?;
    let record = evacuations.into_inner().evacuations.into_iter().next().expect("the evacuation survived");
    assert_eq!((record.arrived, record.held), (6, 9));
    shelters
        .check_in_arrivals(pb::CheckInArrivalsRequest { evacuation_id: sent.id.clone(), count: 9, ..Default::default() })
        .await?;
    second.kill().await?;

    let third = DispatcherProcess::start(&options).await?;
    let mut shelters = shelters_with(third.channel().await?, ADMIN_TOKEN);
    let school = listed(&mut shelters, "school").await?;
    assert_eq!((school.occupied, school.reserved), (15, 0));
    let occupancy = shelters.shelter_occupancy(pb::ShelterOccupancyRequest { shelter_id: "school".into() }).await?;
    assert_eq!(occupancy.into_inner().samples.len(), 3, "reserved, 6 in, all in");
    let log = std::fs::read_to_string(&options.log)?;
    assert!(!log.contains("张三"), "a resident's name never reaches the log");
    third.kill().await
}

/// The console: `pingji shelters import` reads the CSV (a bad line is named
/// with its line, and nothing is imported), then shelters are opened, a
/// group is evacuated (the overflow told), arrivals checked in, and
/// `export` writes a file that reads back as the same shelters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_imports_opens_evacuates_checks_in_and_exports() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let url = format!("http://{}", server.address());
    let mut command = server.command().await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("shelters.csv");
    let path = |path: &std::path::Path| path.to_string_lossy().into_owned();
    std::fs::write(
        &file,
        "id,name,lon,lat,area_id,capacity,facilities\nnear,Near,120.155,30.27,,10,\nschool,School,120.16,30.27,,20,sauna\n",
    )?;
    let refused = run_pingji(&url, &["shelters", "import", &path(&file)]).await?;
    assert_ne!(refused.code(), Some(0));
    assert!(refused.stderr.contains("shelters csv line 3: facility \"sauna\""), "{}", refused.stderr);
    let listed = shelters_with(server.channel().await?, ADMIN_TOKEN).list_shelters(pb::ListSheltersRequest::default()).await?;
    assert!(listed.into_inner().shelters.is_empty(), "nothing was imported");

    std::fs::write(&file, std::fs::read_to_string(&file)?.replace("sauna", "accessible;medical"))?;
    let imported = run_pingji(&url, &["shelters", "import", &path(&file)]).await?.success()?;
    assert!(imported.stdout.contains("imported 2 shelters"), "{}", imported.stdout);
    for shelter in ["near", "school"] {
        run_pingji(&url, &["shelters", "open", shelter]).await?.success()?;
    }
    let incident = incident(&mut command, INCIDENT).await?;
    let first = run_pingji(&url, &["--json", "shelters", "evacuate", &incident, "8"]).await?.success()?;
    assert_eq!(first.json()?["shelter_id"].as_str(), Some("near"), "{}", first.stdout);
    let second = run_pingji(&url, &["shelters", "evacuate", &incident, "5", "--needs", "wheelchair"]).await?.success()?;
    assert!(second.stdout.contains("eva-000002") && second.stdout.contains("-> school"), "{}", second.stdout);
    let overflow = run_pingji(&url, &["shelters", "evacuate", &incident, "3"]).await?.success()?;
    assert!(overflow.stdout.contains("(full: near)"), "{}", overflow.stdout);
    let arrived =
        run_pingji(&url, &["shelters", "check-in", "4", "--evacuation", "eva-000001", "--name", "王小明"]).await?.success()?;
    assert!(arrived.stdout.contains("near") && arrived.stdout.contains("4 in"), "{}", arrived.stdout);
    assert!(!arrived.stdout.contains("王小明"));
    let occupancy = run_pingji(&url, &["shelters", "occupancy", "near"]).await?.success()?;
    assert!(occupancy.stdout.contains("4 in"), "{}", occupancy.stdout);

    let exported = dir.path().join("exported.csv");
    run_pingji(&url, &["shelters", "export", &path(&exported)]).await?.success()?;
    let read = parse_shelter_csv(&std::fs::read_to_string(&exported)?).map_err(|problems| anyhow::anyhow!("{problems:?}"))?;
    let ids: Vec<(&str, u32)> = read.request.shelters.iter().map(|shelter| (shelter.id.as_str(), shelter.capacity)).collect();
    assert_eq!(ids, [("near", 10), ("school", 20)]);
    server.shutdown().await
}

/// The command map shows the shelters (a square each, dashed when closed,
/// with a bar filled to the places taken) and a panel listing them with
/// their occupancy, on a desk and on a phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_map_shows_shelters_with_occupancy_bars() -> anyhow::Result<()> {
    let Some(chromium) = browser::chromium()? else {
        return Ok(());
    };
    let server = TestServer::start_with_web(|_| {}).await?;
    let url = format!("http://{}/", server.web_address().ok_or_else(|| anyhow::anyhow!("no web port"))?);
    let mut command = server.command().await?;
    let mut shelters = shelters_with(server.channel().await?, ADMIN_TOKEN);
    four_shelters(&mut shelters).await?;
    let incident = incident(&mut command, INCIDENT).await?;
    let sent = shelters.evacuate(evacuate_request(&incident, 9, &[])).await?.into_inner();
    shelters
        .check_in_arrivals(pb::CheckInArrivalsRequest { evacuation_id: sent.id.clone(), count: 5, ..Default::default() })
        .await?;

    let browser = TestBrowser::launch(&chromium).await?;
    let page = browser.open(&url).await?;
    wait_for(&page, "the login form shows", "!document.getElementById('login-view').hidden").await?;
    page.find_element("#token").await?.click().await?.type_str(ADMIN_TOKEN).await?.press_key("Enter").await?;
    wait_for(
        &page,
        "four shelters are drawn, one closed",
        "document.querySelectorAll('#map rect.shelter:not(.closed)').length === 3 && document.querySelectorAll('#map g[data-shelter-id]').length === 4",
    )
    .await?;
    wait_for(
        &page,
        "the near shelter's bar is orange (nearly full)",
        "!!document.querySelector('#map g[data-shelter-id=near] rect.shelter-bar.nearly-full')",
    )
    .await?;
    wait_for(
        &page,
        "the shelters panel lists them",
        "document.querySelectorAll('#shelter-list li[data-shelter-id]').length === 4",
    )
    .await?;
    let near: String = eval(&page, "document.querySelector('#shelter-list li[data-shelter-id=near]').textContent").await?;
    assert!(near.contains("5 人在内，4 个预留，共 10 个位置") && near.contains("接近满员"), "{near}");
    let closed: String = eval(&page, "document.querySelector('#shelter-list li[data-shelter-id=closed]').textContent").await?;
    assert!(closed.contains("关闭"), "{closed}");
    // Another arrival fills it: the map follows the events.
    shelters.check_in_arrivals(pb::CheckInArrivalsRequest { shelter_id: "near".into(), count: 1, ..Default::default() }).await?;
    wait_for(
        &page,
        "the near shelter's bar turns red (full)",
        "!!document.querySelector('#map g[data-shelter-id=near] rect.shelter-bar.full')",
    )
    .await?;
    let problems = accessibility_problems(&page).await?;
    anyhow::ensure!(problems.is_empty(), "axe-core finds serious problems:\n{}", problems.join("\n"));
    screenshot(&page, &screenshot_folder().join("desk-shelters-map-zh.png")).await?;
    eval::<bool>(&page, "(() => { document.getElementById('shelters-panel').scrollIntoView(); return true; })()").await?;
    screenshot(&page, &screenshot_folder().join("desk-shelters-zh.png")).await?;
    resize(&page, PHONE).await?;
    eval::<bool>(&page, "(() => { document.getElementById('shelters-panel').scrollIntoView(); return true; })()").await?;
    screenshot(&page, &screenshot_folder().join("phone-shelters-zh.png")).await?;
    resize(&page, DESK).await?;
    browser.close().await?;
    server.shutdown().await
}
