//! The live drill runner against a real dispatcher: every simulated person a
//! real gRPC session through `AgentClient`. A live drill says what it finds,
//! does not start on a dispatcher in use unless told to go ahead, takes only
//! its own incidents, and leaves the dispatcher as it found it, at its end
//! and when stopped half-way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pingji_scenarios::live::{LiveOptions, Refused};
use pingji_tests::{Commands, EventWatch, TestServer, pb};

fn smoke_drill() -> anyhow::Result<pingji_scenarios::drill::Drill> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/drills/smoke.toml");
    pingji_scenarios::drill::load(&path).map_err(anyhow::Error::msg)
}

fn sample_plans() -> anyhow::Result<Vec<String>> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/plans");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(folder)?.map(|entry| entry.map(|entry| entry.path())).collect::<Result<_, _>>()?;
    files.sort();
    files.iter().map(|file| Ok(std::fs::read_to_string(file)?)).collect()
}

fn options(server: &TestServer) -> anyhow::Result<LiveOptions> {
    let mut options = LiveOptions::new(&format!("http://{}", server.address()), Some(pingji_tests::ADMIN_TOKEN))?;
    options.speed = 180.0;
    Ok(options)
}

/// Where d1-s1-c1-g1 is (the README's first incident).
const IN_D1_S1_C1_G1: (f64, f64) = (120.096, 30.233);
/// A point in district d2.
const IN_D2: (f64, f64) = (120.18, 30.26);

/// What the drill must leave as it found it, read by the test itself: every
/// area's mode, the open incidents with their status and who holds them,
/// open plan activations and call-ups, the plans, and each person's status,
/// session and task.
#[derive(Debug, PartialEq)]
struct State {
    modes: BTreeMap<String, i32>,
    open_incidents: BTreeMap<String, (i32, BTreeSet<String>)>,
    open_activations: BTreeSet<String>,
    open_callups: BTreeSet<String>,
    plans: Vec<pb::Plan>,
    people: BTreeMap<String, Person>,
}

#[derive(Clone, Debug, PartialEq)]
struct Person {
    status: i32,
    connected: bool,
    incident: String,
}

async fn state(command: &mut Commands) -> anyhow::Result<State> {
    let modes = command
        .list_areas(pb::ListAreasRequest::default())
        .await?
        .into_inner()
        .areas
        .into_iter()
        .map(|area| (area.id, area.mode))
        .collect();
    let incidents = command
        .list_incidents(pb::ListIncidentsRequest { open_only: true, limit: 1000, ..Default::default() })
        .await?
        .into_inner()
        .incidents;
    let open_incidents = incidents
        .into_iter()
        .map(|incident| {
            let holders = incident
                .assignments
                .iter()
                .filter(|assignment| assignment.completed_at_ms == 0)
                .map(|assignment| assignment.agent_id.clone())
                .collect();
            (incident.id, (incident.status, holders))
        })
        .collect();
    let plans = command.list_plans(pb::ListPlansRequest {}).await?.into_inner();
    let open_activations = plans
        .activations
        .iter()
        .filter(|activation| activation.ended_at_ms == 0)
        .map(|activation| activation.id.clone())
        .collect();
    let open_callups = command
        .callup_status(pb::CallupStatusRequest { area_id: String::new(), open_only: true })
        .await?
        .into_inner()
        .callups
        .into_iter()
        .map(|callup| callup.id)
        .collect();
    let mut people = BTreeMap::new();
    let mut after = String::new();
    loop {
        let page = command
            .list_agents(pb::ListAgentsRequest { limit: 1000, after_id: after.clone(), ..Default::default() })
            .await?
            .into_inner()
            .agents;
        let Some(last) = page.last().and_then(|agent| agent.spec.as_ref()).map(|spec| spec.id.clone()) else { break };
        for agent in page {
            let Some(spec) = agent.spec else { continue };
            people.insert(
                spec.id,
                Person { status: agent.status, connected: agent.connected, incident: agent.current_incident_id },
            );
        }
        after = last;
    }
    Ok(State { modes, open_incidents, open_activations, open_callups, plans: plans.plans, people })
}

/// `after` without the people who were not in `before` (the drill's, new
/// to the roster), and those people.
fn split_new_people(before: &State, mut after: State) -> (State, BTreeMap<String, Person>) {
    let (kept, new): (BTreeMap<String, Person>, BTreeMap<String, Person>) =
        after.people.into_iter().partition(|(id, _)| before.people.contains_key(id));
    after.people = kept;
    (after, new)
}

fn assert_signed_off(people: &BTreeMap<String, Person>) {
    for (id, person) in people {
        assert_eq!(
            (person.status, person.connected, person.incident.as_str()),
            (pb::AgentStatus::OffDuty as i32, false, ""),
            "{id}: the drill's people are signed off: off duty, no session, no task"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smoke_drill_runs_live_and_leaves_the_dispatcher_as_found() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.agents_file = Some(pingji_tests::sample_roster())).await?;
    let drill = smoke_drill()?;
    let out = tempfile::tempdir()?;
    let mut command = server.command().await?;
    // An incident closed before the drill: history, not work in progress.
    let (lon, lat) = IN_D2;
    let earlier = command
        .create_incident(pb::CreateIncidentRequest {
            location: Some(pb::Location::wgs84(lon, lat)),
            category: "medical".into(),
            priority: 2,
            headcount: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    command.cancel_incident(pb::CancelIncidentRequest { id: earlier.id, reason: "false alarm".into() }).await?;
    let before = state(&mut command).await?;

    let mut most_connected = 0;
    let options = options(&server)?;
    let run = pingji_scenarios::live::run(&drill, &options, out.path(), |_| {});
    tokio::pin!(run);
    let report = loop {
        tokio::select! {
            report = &mut run => break report?,
            () = tokio::time::sleep(Duration::from_secs(2)) => {
                let connected = command
                    .list_agents(pb::ListAgentsRequest { connected_only: true, limit: 5000, ..Default::default() })
                    .await?
                    .into_inner()
                    .agents
                    .len();
                most_connected = most_connected.max(connected);
            }
        }
    };

    assert!(report.drill.people >= 200, "{} people", report.drill.people);
    assert!(most_connected >= 200, "at most {most_connected} people were connected at once");
    assert_eq!(report.totals.incidents, 8, "every incident of the timeline was created, and only those");
    assert_eq!(report.totals.mode_switches, 1, "the drill's switch; switching back afterwards is not the drill's");
    assert!(report.totals.accepted >= 1, "people accepted offers over their sessions");
    // The headline adds up: each incident stood in one place at the end.
    let totals = &report.totals;
    assert_eq!(
        totals.closed + totals.cancelled + totals.staffed_at_end + totals.unstaffed_at_end,
        totals.incidents,
        "{totals:?}"
    );
    let markdown = std::fs::read_to_string(out.path().join("report.md"))?;
    assert!(markdown.contains(&totals.headline()), "report.md gives the headline:\n{markdown}");
    for file in ["report.md", "report.json", "accept.svg", "arrive.svg", "staffing.svg", "map.svg"] {
        assert!(out.path().join(file).exists(), "{file} written");
    }
    let live = report.live.as_ref().expect("a live run reports the dispatcher as found and left");
    assert!(live.found.iter().any(|line| line == "open incidents: none"), "{:?}", live.found);
    assert!(live.went_ahead_despite.is_empty(), "{:?}", live.went_ahead_despite);
    assert!(live.left.last().is_some_and(|line| line.starts_with("the dispatcher is as the drill found it")), "{:?}", live.left);

    // As found: d1 back in normal mode, no incident left open (the drill's
    // were cancelled, releasing whoever held them), nobody of the sample
    // roster changed, and the drill's people signed off.
    let (after, drill_people) = split_new_people(&before, state(&mut command).await?);
    assert_eq!(after, before, "the dispatcher after the drill, apart from the drill's people, is as before");
    assert_eq!(drill_people.len(), report.drill.people, "the drill added its people to the roster");
    assert_signed_off(&drill_people);
    server.shutdown().await
}

/// A dispatcher with no map yet serves nobody: a drill that brings its map
/// and plans (the typhoon drill, the README's demo) starts on it without
/// `--go-ahead`. (The demo's own fresh dispatcher refused the typhoon drill
/// once it brought a plan.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_bringing_plans_starts_on_a_fresh_dispatcher() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.areas_file = None).await?;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/drills/typhoon.toml");
    let drill = pingji_scenarios::drill::load(&path).map_err(anyhow::Error::msg)?;
    assert!(!drill.file.plans.is_empty(), "the typhoon drill brings a plan");
    let prepared = pingji_scenarios::live::prepare(&drill, &options(&server)?).await?;
    assert!(prepared.findings().is_empty(), "{:?}", prepared.findings());
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_drill_does_not_start_on_a_dispatcher_in_use_and_says_why() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.agents_file = Some(pingji_tests::sample_roster())).await?;
    let mut command = server.command().await?;
    // What the README's walkthrough leaves: plans imported (one activates by
    // itself at the grade the smoke drill switches d1 to), an incident
    // waiting, a person in the field; and a district in emergency, its
    // plan's tasks open and its reserves called up.
    command.import_plans(pb::ImportPlansRequest { plans_toml: sample_plans()? }).await?;
    let (lon, lat) = IN_D2;
    let waiting = command
        .create_incident(pb::CreateIncidentRequest {
            location: Some(pb::Location::wgs84(lon, lat)),
            category: "medical".into(),
            priority: 1,
            headcount: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    let field_agent = pingji_tests::connect_located(&mut command, &mut server.agents().await?, "p0002", lon, lat).await?;
    command
        .set_mode(pb::SetModeRequest { area_id: "d2".into(), mode: pb::Mode::EmergencyIv as i32, reason: "cold wave".into() })
        .await?;
    command.call_up(pb::CallUpRequest { area_id: "d2".into(), reason: "cold wave".into(), ..Default::default() }).await?;
    let before = state(&mut command).await?;

    let drill = smoke_drill()?;
    let out = tempfile::tempdir()?;
    let error = match pingji_scenarios::live::run(&drill, &options(&server)?, out.path(), |_| {}).await {
        Ok(report) => anyhow::bail!("the drill ran on a dispatcher in use: {:?}", report.totals),
        Err(error) => error,
    };
    let refused = error.downcast_ref::<Refused>().ok_or_else(|| anyhow::anyhow!("not a refusal: {error:#}"))?;
    let said = refused.to_string();
    for expected in [
        // The waiting one and the cold-wave plan's tasks.
        "7 open incidents (",
        &waiting.id,
        "1 area not in normal mode: d2 in emergency IV (blue)",
        "plan activation open: cold-wave-iv on d2",
        "1 call-up not stood down: callup-0001 in d2",
        "1 person connected who is not the drill's: p0002",
        "switching d1 to grade III activates a plan the drill does not bring: public-health-iii",
        "--go-ahead",
    ] {
        assert!(said.contains(expected), "the refusal names {expected:?}:\n{said}");
    }
    assert!(
        refused.found.iter().any(|line| line.starts_with("people: 320 on the roster, 1 connected (p0002)")),
        "{:?}",
        refused.found
    );
    // Nothing changed: no people added, no incident, no switch.
    assert_eq!(state(&mut command).await?, before);
    assert!(!out.path().join("report.md").exists(), "no report of a drill that did not run");
    field_agent.disconnect();
    server.shutdown().await
}

/// Reads the whole record (from seq 1) until it has been quiet for a moment.
async fn record(command: &mut Commands) -> anyhow::Result<Vec<pb::Event>> {
    let mut watch = EventWatch::start(command, 1).await?;
    while watch.next_within(Duration::from_secs(1)).await.is_ok() {}
    Ok(watch.seen().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_told_to_go_ahead_and_stopped_half_way_takes_only_its_own_incidents_and_leaves_the_rest_as_found()
-> anyhow::Result<()> {
    let server = TestServer::start(|config| {
        config.agents_file = Some(pingji_tests::sample_roster());
        config.policy = pingji_tests::quick_policy();
    })
    .await?;
    let mut command = server.command().await?;
    command.import_plans(pb::ImportPlansRequest { plans_toml: sample_plans()? }).await?;
    // Someone's real incident in a grid full of the drill's people, and a
    // real person connected elsewhere, who answers nothing.
    let (lon, lat) = IN_D1_S1_C1_G1;
    let real = command
        .create_incident(pb::CreateIncidentRequest {
            location: Some(pb::Location::wgs84(lon, lat)),
            category: "elder_care".into(),
            priority: 2,
            headcount: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    let (lon, lat) = IN_D2;
    let mut field_agent = pingji_tests::connect_located(&mut command, &mut server.agents().await?, "p0300", lon, lat).await?;
    // Its messages are read, so that its stream never fills up.
    let (done, mut finished) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut finished => return field_agent,
                _ = field_agent.next_message_within(Duration::from_secs(3600)) => {}
            }
        }
    });
    let before = state(&mut command).await?;

    // Stopped (as by Ctrl-C) a moment after the drill's switch of d1 has
    // activated the public-health plan.
    let mut watch = EventWatch::start(&mut command, 0).await?;
    let stop = async move {
        let activated = watch.wait_for(Duration::from_secs(60), "the drill's switch activates a plan", |event| {
            event.kind == "plan_activated" && event.area_id == "d1"
        });
        if activated.await.is_ok() {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    };
    let drill = smoke_drill()?;
    let out = tempfile::tempdir()?;
    let mut options = options(&server)?;
    options.go_ahead = true;
    let prepared = pingji_scenarios::live::prepare(&drill, &options).await?;
    assert!(prepared.findings().len() >= 3, "open incident, a person connected, a plan of grade III: {:?}", prepared.findings());
    let report = prepared.run(out.path(), |_| {}, stop).await?;

    let live = report.live.as_ref().expect("a live run reports the dispatcher as found and left");
    let stopped_at = live.interrupted_at_s.expect("the drill says it was stopped");
    assert!(stopped_at > 300.0 && stopped_at < 1800.0, "stopped after the switch at 300 s, before the end: {stopped_at}");
    assert!(!report.passed, "a drill stopped half-way does not pass");
    assert!(!live.went_ahead_despite.is_empty());
    // Its incidents: the timeline's up to the stop and the tasks of the plan
    // its switch activated, never the real one; the headline adds up.
    let ids: BTreeSet<&str> = report.incidents.iter().map(|figures| figures.id.as_str()).collect();
    assert!(!ids.contains(real.id.as_str()), "{ids:?}");
    assert!(ids.iter().any(|id| id.starts_with("drill-")), "{ids:?}");
    assert!(ids.iter().any(|id| !id.starts_with("drill-")), "the plan's tasks are the drill's incidents: {ids:?}");
    let totals = &report.totals;
    assert_eq!(
        totals.closed + totals.cancelled + totals.staffed_at_end + totals.unstaffed_at_end,
        totals.incidents,
        "{totals:?}"
    );

    // As found: d1 back in normal mode, the plan ended, its call-up stood
    // down, the real incident open and held by nobody, the real person as
    // they were, the drill's people signed off.
    let (after, drill_people) = split_new_people(&before, state(&mut command).await?);
    assert!(!drill_people.is_empty());
    assert_signed_off(&drill_people);
    let real_before = before.open_incidents.get(&real.id).cloned();
    let real_after = after.open_incidents.get(&real.id).cloned();
    assert!(real_before.is_some());
    assert!(real_after.as_ref().is_some_and(|(_, holders)| holders.is_empty()), "{real_after:?}");
    let without_real = |mut state: State| {
        // Its offers come and go (the real person lets them lapse).
        state.open_incidents.remove(&real.id);
        state
    };
    assert_eq!(without_real(after), without_real(before), "apart from the real incident's offers, as found");

    // The drill's people were offered the real incident and declined it.
    let events = record(&mut command).await?;
    let real_events: Vec<&pb::Event> = events.iter().filter(|event| event.incident_id == real.id).collect();
    assert!(
        real_events.iter().any(|event| event.kind == "offer_declined"
            && matches!(&event.body, Some(pb::event::Body::OfferDeclined(declined)) if declined.reason.contains("simulated"))),
        "a drill person declined the real incident: {:?}",
        real_events.iter().map(|event| (&event.kind, &event.agent_id)).collect::<Vec<_>>()
    );
    assert!(
        !real_events.iter().any(|event| event.kind == "assigned" && drill_people.contains_key(&event.agent_id)),
        "no drill person took the real incident"
    );
    let _ = done.send(());
    reader.await?.disconnect();
    server.shutdown().await
}

/// A small drill with depots, shelters and a shift, whose incidents nobody
/// can take (a skill nobody has), so they stay open while the timeline asks
/// for supplies and moves residents; one more incident anyone may take, so
/// that offers go out and the duty figure counts them.
const STORES_DRILL: &str = r#"
name = "Depots, shelters and shifts, live"
seed = 22
duration_s = 900
map = "../maps/sample-city.geojson"

[roster.generate]
per_grid = 3
on_duty_share = 1.0
roles = { community_worker = 1, volunteer = 2 }
travel = { walk = 1 }

[[depot]]
id = "central"
area = "d1-s1-c1"
keeper = "district emergency office"
stock = { sandbag = 500 }
minimum = { sandbag = 100 }
equipment = { pump = ["P-01"] }

[[shelter]]
id = "school"
area = "d1-s1-c1"
capacity = 20
facilities = ["accessible"]

[[shelter]]
id = "hall"
area = "d1-s1-c2"
capacity = 50
facilities = ["accessible", "kitchen"]

[[shelter]]
id = "stadium"
area = "d1-s2-c1"
capacity = 300
facilities = ["accessible"]
open = false

[[shift]]
id = "d1-duty"
area = "d1"
duty = "duty_officer"
start = "00:00"
hours = 24
role = "community_worker"
count = 2

[[timeline]]
at_s = 0
incident = { area = "d1-s1-c1", category = "sandbags", priority = 2, need = 1, skills = ["diving"] }

[[timeline]]
at_s = 0
incident = { area = "d1-s1-c1", category = "elder_evacuation", priority = 1, need = 1, skills = ["diving"] }

[[timeline]]
at_s = 30
incident = { area = "d1-s1-c2", category = "medical", priority = 2, need = 1 }

[[timeline]]
at_s = 60
supplies = { category = "sandbags", items = { sandbag = 300, pump = 1 }, deliver_after_s = 300 }

[[timeline]]
at_s = 60
evacuate = { category = "elder_evacuation", residents = 12, needs = ["accessible"], arrive_after_s = 300 }

[[timeline]]
at_s = 120
evacuate = { category = "elder_evacuation", residents = 12, needs = ["accessible"], arrive_after_s = 300 }
"#;

/// A live drill applies its depots, shelters and shifts through the
/// dispatcher's SupplyService, ShelterService and RosterService, carries
/// out its scripted requests and evacuations there, and its report has the
/// sections the in-process drill's has, from the events streamed back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_drill_brings_its_depots_shelters_and_shifts_and_reports_them() -> anyhow::Result<()> {
    let server = TestServer::start(|config| config.areas_file = None).await?;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/drills/live-stores.toml");
    let drill = pingji_scenarios::drill::parse(&path, STORES_DRILL).map_err(anyhow::Error::msg)?;
    let out = tempfile::tempdir()?;
    let report = pingji_scenarios::live::run(&drill, &options(&server)?, out.path(), |_| {}).await?;

    let supplies: BTreeMap<&str, (u64, u64, u64, u64)> = report
        .supplies
        .iter()
        .map(|item| (item.item.as_str(), (item.asked, item.reserved, item.delivered, item.short)))
        .collect();
    assert_eq!(
        supplies,
        BTreeMap::from([("pump", (1, 1, 1, 0)), ("sandbag", (300, 300, 300, 0))]),
        "asked, reserved, delivered, short: {:?}",
        report.supplies
    );
    let shelters: BTreeMap<&str, (u32, u32, u32, u32)> = report
        .shelters
        .iter()
        .map(|shelter| (shelter.shelter.as_str(), (shelter.evacuations, shelter.residents, shelter.arrived, shelter.overflowed)))
        .collect();
    assert_eq!(
        shelters,
        BTreeMap::from([("hall", (1, 12, 12, 0)), ("school", (1, 12, 12, 1)), ("stadium", (0, 0, 0, 0))]),
        "groups, residents, arrived, overflowed: the second group passed the school over for the hall: {:?}",
        report.shelters
    );
    let shifts = report.shifts.as_ref().expect("the drill's shift was set through RosterService");
    assert_eq!(shifts.shifts, 1);
    assert!(shifts.offers >= 1, "the medical incident was offered: {shifts:?}");

    let markdown = std::fs::read_to_string(out.path().join("report.md"))?;
    for section in ["## Supplies", "## Shelters", "## Duty rosters"] {
        assert!(markdown.contains(section), "report.md has {section}:\n{markdown}");
    }
    assert!(out.path().join("shelters.svg").exists(), "the occupancy picture is drawn");

    // What the drill brought is on the dispatcher, as an operator sees it;
    // its incidents were cancelled at its end, which released nothing
    // (everything had arrived or been delivered).
    let channel = server.channel().await?;
    let bearer = || pingji_client::auth::BearerToken::new(Some(pingji_tests::ADMIN_TOKEN)).unwrap_or_default();
    let mut shelter_service = pb::shelter_service_client::ShelterServiceClient::with_interceptor(channel.clone(), bearer());
    let listed = shelter_service.list_shelters(pb::ListSheltersRequest::default()).await?.into_inner().shelters;
    let occupied: BTreeMap<String, (bool, u32, u32)> =
        listed.into_iter().map(|shelter| (shelter.id, (shelter.open, shelter.occupied, shelter.reserved))).collect();
    assert_eq!(
        occupied,
        BTreeMap::from([
            ("hall".to_string(), (true, 12, 0)),
            ("school".to_string(), (true, 12, 0)),
            ("stadium".to_string(), (false, 0, 0))
        ])
    );
    let mut roster_service = pb::roster_service_client::RosterServiceClient::with_interceptor(channel, bearer());
    let shifts = roster_service.list_shifts(pb::ListShiftsRequest::default()).await?.into_inner().shifts;
    assert_eq!(shifts.iter().map(|shift| (shift.id.as_str(), shift.agent_ids.len())).collect::<Vec<_>>(), [("d1-duty", 2)]);
    server.shutdown().await
}
