//! Durability: the real `dispatcher` binary with a SQLite journal, killed with
//! SIGKILL in the middle of a burst and started again on the same file.
//! Whatever the dispatcher acknowledged before the kill must be there after.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pingji_dispatcher::server::Store;
use pingji_proto::v1::agent_service_client::AgentServiceClient;
use pingji_proto::v1::dispatch_message::Body as Incoming;
use pingji_tests::{
    AgentSession, AreaBox, DispatcherProcess, EventWatch, ProcessOptions, TestServer, area_box, available_people,
    connect_located, pb, quick_policy_toml, sample_city, sample_roster,
};
use tokio::sync::mpsc;

const PROMPTLY: Duration = Duration::from_secs(20);
const PEOPLE: usize = 20;
const INCIDENTS: usize = 50;
const CREATORS: usize = 10;

fn options(dir: &Path, normal_offer_timeout_s: u64) -> anyhow::Result<ProcessOptions> {
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, quick_policy_toml(normal_offer_timeout_s))?;
    Ok(ProcessOptions {
        data: dir.join("p.db"),
        policy: Some(policy),
        areas: Some(sample_city()),
        agents: Some(sample_roster()),
        // Small, so that recovery reads a snapshot and then the events after it.
        snapshot_every: Some(40),
        log: dir.join("dispatcher.log"),
    })
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_millis() as i64).unwrap_or_default()
}

/// A small deterministic generator (xorshift), seeded per run and printed so
/// that a failing run can be replayed.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fraction(&mut self) -> f64 {
        (self.next() % 10_000) as f64 / 10_000.0
    }

    fn point_in(&mut self, area: &AreaBox) -> (f64, f64) {
        // Stay off the borders so placement is never ambiguous.
        area.at(0.05 + 0.9 * self.fraction(), 0.05 + 0.9 * self.fraction())
    }
}

/// An assignment the dispatcher confirmed to a person.
#[derive(Clone, Debug)]
struct Confirmed {
    agent_id: String,
    offer_id: String,
    incident_id: String,
}

/// Answers every offer with accept, and completes each assignment once
/// confirmed, until the session ends (the process was killed).
async fn auto_accept(mut session: AgentSession, confirmations: mpsc::Sender<Confirmed>) {
    let _ended = answer_until_closed(&mut session, &confirmations).await;
}

async fn answer_until_closed(session: &mut AgentSession, confirmations: &mpsc::Sender<Confirmed>) -> anyhow::Result<()> {
    loop {
        match session.next_message_within(Duration::from_secs(60)).await? {
            Incoming::Offer(offer) => session.accept(&offer.offer_id).await?,
            Incoming::AssignmentConfirmed(pb::AssignmentConfirmed { offer: Some(offer) }) => {
                let record = Confirmed {
                    agent_id: session.agent_id().to_string(),
                    offer_id: offer.offer_id,
                    incident_id: offer.incident_id.clone(),
                };
                confirmations.send(record).await?;
                session.complete(&offer.incident_id, "handled").await?;
            }
            _ => {}
        }
    }
}

/// Creates incidents until `count` are done or the dispatcher stops
/// answering; returns the ids it acknowledged.
async fn create_incidents(mut command: pingji_tests::Commands, requests: Vec<pb::CreateIncidentRequest>) -> Vec<String> {
    let mut acknowledged = Vec::new();
    for request in requests {
        match command.create_incident(request).await {
            Ok(response) => acknowledged.push(response.into_inner().id),
            Err(_) => break,
        }
    }
    acknowledged
}

/// Reads the whole record up to a marker written now; checks that sequence
/// numbers run 1, 2, 3 ... and returns the events.
async fn whole_record(command: &mut pingji_tests::Commands) -> anyhow::Result<Vec<pb::Event>> {
    let mut watch = EventWatch::start(command, 1).await?;
    let marker = pb::AgentSpec { name: format!("record marker {}", now_ms()), ..pingji_tests::person("record-marker", "", &[]) };
    let marker_name = marker.name.clone();
    command.upsert_agent(pb::UpsertAgentRequest { agent: Some(marker) }).await?;
    watch
        .wait_for(Duration::from_secs(60), "the record marker", |event| {
            matches!(&event.body, Some(pb::event::Body::AgentsUpserted(upserted)) if upserted.agents.iter().any(|agent| agent.name == marker_name))
        })
        .await?;
    let seqs: Vec<u64> = watch.seen().iter().map(|event| event.seq).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    anyhow::ensure!(seqs == expected, "the record has gaps or repeats: {seqs:?}");
    Ok(watch.seen().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_changes_survive_sigkill_mid_burst() -> anyhow::Result<()> {
    let seed = (now_ms() as u64) | 1;
    let mut dice = Dice(seed);
    let kill_after = 3 + (dice.next() % 10) as usize;
    println!("seed {seed}: killing after {kill_after} confirmed assignments");

    let dir = tempfile::tempdir()?;
    let options = options(dir.path(), 3)?;
    let first = DispatcherProcess::start(&options).await?;
    let channel = first.channel().await?;
    let mut command = pingji_tests::commands(channel.clone());
    let community = area_box(&mut command, "d1-s1-c1").await?;

    // On-duty people of the sample roster who live in the community.
    let people = available_people(&mut command, "d1-s1-c1", PEOPLE).await?;
    anyhow::ensure!(people.len() >= 15, "the sample roster has only {} people on duty in d1-s1-c1", people.len());

    let (confirmations, mut confirmed_stream) = mpsc::channel(4 * INCIDENTS);
    let mut agent_tasks = Vec::new();
    for id in &people {
        let (lon, lat) = dice.point_in(&community);
        let session = connect_located(&mut command, &mut AgentServiceClient::new(channel.clone()), id, lon, lat).await?;
        agent_tasks.push(tokio::spawn(auto_accept(session, confirmations.clone())));
    }
    drop(confirmations);

    let mut batches: Vec<Vec<pb::CreateIncidentRequest>> = vec![Vec::new(); CREATORS];
    for index in 0..INCIDENTS {
        let (lon, lat) = dice.point_in(&community);
        batches[index % CREATORS].push(pb::CreateIncidentRequest {
            id: format!("burst-{index:02}"),
            location: Some(pb::Location::wgs84(lon, lat)),
            category: "welfare_check".into(),
            priority: 1 + (index % 4) as i32,
            required_skills: vec![],
            headcount: 1 + (index % 3 == 0) as u32,
            description: "burst".into(),
            force: false,
        });
    }
    let creators: Vec<_> =
        batches.into_iter().map(|batch| tokio::spawn(create_incidents(pingji_tests::commands(channel.clone()), batch))).collect();

    let mut confirmed: Vec<Confirmed> = Vec::new();
    while confirmed.len() < kill_after {
        let next = tokio::time::timeout(Duration::from_secs(60), confirmed_stream.recv()).await;
        match next {
            Ok(Some(record)) => confirmed.push(record),
            Ok(None) => anyhow::bail!("every session ended after {} confirmations; log:\n{}", confirmed.len(), first.log()),
            Err(_) => anyhow::bail!("only {} confirmations within 60 s; log:\n{}", confirmed.len(), first.log()),
        }
    }
    first.kill().await?;

    let mut acknowledged = Vec::new();
    for creator in creators {
        acknowledged.extend(creator.await?);
    }
    for task in agent_tasks {
        task.await?;
    }
    // Confirmations that arrived just before the kill count too.
    while let Some(record) = confirmed_stream.recv().await {
        confirmed.push(record);
    }
    println!("acknowledged {} incidents and {} assignments before the kill", acknowledged.len(), confirmed.len());

    let second = DispatcherProcess::start(&options).await?;
    let mut command = second.command().await?;
    for id in &acknowledged {
        let incident = command.get_incident(pb::GetIncidentRequest { id: id.clone() }).await;
        anyhow::ensure!(incident.is_ok(), "acknowledged incident {id} is gone after the restart: {incident:?}");
    }
    for record in &confirmed {
        let incident = command.get_incident(pb::GetIncidentRequest { id: record.incident_id.clone() }).await?.into_inner();
        let present = incident
            .assignments
            .iter()
            .any(|assignment| assignment.agent_id == record.agent_id && assignment.offer_id == record.offer_id);
        anyhow::ensure!(
            present,
            "confirmed assignment {record:?} is missing after the restart; assignments: {:?}",
            incident.assignments
        );
    }

    // Nobody holds two open assignments, and people's records agree with the incidents.
    let incidents = command
        .list_incidents(pb::ListIncidentsRequest { open_only: false, limit: 0, ..Default::default() })
        .await?
        .into_inner()
        .incidents;
    let mut held: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for incident in &incidents {
        let open = ![pb::IncidentStatus::Cancelled as i32, pb::IncidentStatus::Closed as i32].contains(&incident.status);
        anyhow::ensure!(incident.assignments.len() as u32 <= incident.headcount, "more assigned than needed on {}", incident.id);
        for assignment in incident.assignments.iter().filter(|assignment| open && assignment.completed_at_ms == 0) {
            held.entry(assignment.agent_id.clone()).or_default().push(incident.id.clone());
        }
    }
    for (agent, holding) in &held {
        anyhow::ensure!(holding.len() == 1, "{agent} is the current assignee of several open incidents: {holding:?}");
    }
    let agents = command
        .list_agents(pb::ListAgentsRequest { area_id: "d1-s1-c1".into(), ..Default::default() })
        .await?
        .into_inner()
        .agents;
    for agent in &agents {
        let id = agent.spec.as_ref().map(|spec| spec.id.clone()).unwrap_or_default();
        let expected = held.get(&id).and_then(|holding| holding.first()).cloned().unwrap_or_default();
        anyhow::ensure!(
            agent.current_incident_id == expected,
            "{id} holds {:?} but the incidents say {expected:?}",
            agent.current_incident_id
        );
    }
    let reported: BTreeSet<&str> = incidents.iter().map(|incident| incident.id.as_str()).collect();
    anyhow::ensure!(reported.len() <= INCIDENTS);

    let record = whole_record(&mut command).await?;
    let journaled: BTreeSet<&str> =
        record.iter().filter(|event| event.kind == "incident_reported").map(|event| event.incident_id.as_str()).collect();
    assert_eq!(journaled, reported, "the incidents are exactly the ones the record reports");

    drop(command);
    second.kill().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_whose_deadline_passed_while_down_times_out_after_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let options = options(dir.path(), 4)?;
    let first = DispatcherProcess::start(&options).await?;
    let channel = first.channel().await?;
    let mut command = pingji_tests::commands(channel.clone());
    let grid = area_box(&mut command, "d1-s1-c1-g1").await?;
    let (lon, lat) = grid.centre();
    let agent_id = available_people(&mut command, "d1-s1-c1-g1", 1).await?.pop();
    let agent_id = agent_id.ok_or_else(|| anyhow::anyhow!("nobody on duty in d1-s1-c1-g1"))?;
    let mut session = connect_located(&mut command, &mut AgentServiceClient::new(channel.clone()), &agent_id, lon, lat).await?;

    let request = pb::CreateIncidentRequest {
        id: "unanswered".into(),
        location: Some(pb::Location::wgs84(lon, lat)),
        category: "fall".into(),
        priority: 2,
        required_skills: vec![],
        headcount: 1,
        description: String::new(),
        force: false,
    };
    command.create_incident(request).await?;
    let offer = session.expect_offer_within(PROMPTLY).await?;
    let mut events = EventWatch::start(&mut command, 1).await?;
    let sent =
        events.wait_for(PROMPTLY, "the offer", |event| event.kind == "offer_sent" && event.offer_id == offer.offer_id).await?;
    // Still open when the process dies: the timeout cannot have been recorded.
    let incident = command.get_incident(pb::GetIncidentRequest { id: "unanswered".into() }).await?.into_inner();
    anyhow::ensure!(incident.open_offers.iter().any(|open| open.offer_id == offer.offer_id), "the offer closed before the kill");
    // Killed before the session closes: a closed session would withdraw the
    // offer first (seen once on a loaded machine).
    first.kill().await?;
    drop((session, events, command, channel));

    pingji_tests::wait_until(Duration::from_secs(30), "the offer's deadline has passed", async || {
        Ok(now_ms() > offer.deadline_ms + 200)
    })
    .await?;
    let restarted_at = now_ms();
    let second = DispatcherProcess::start(&options).await?;
    let mut command = second.command().await?;
    let mut events = EventWatch::start(&mut command, 1).await?;
    let timed_out = events
        .wait_for(PROMPTLY, "the offer times out", |event| event.kind == "offer_timed_out" && event.offer_id == offer.offer_id)
        .await?;
    assert!(timed_out.seq > sent.seq);
    assert!(timed_out.at_ms >= restarted_at, "timed out at {} but the restart began at {restarted_at}", timed_out.at_ms);
    assert_eq!(timed_out.agent_id, agent_id);
    let incident = command.get_incident(pb::GetIncidentRequest { id: "unanswered".into() }).await?.into_inner();
    assert!(incident.open_offers.is_empty(), "open offers after the restart: {:?}", incident.open_offers);

    drop((events, command));
    second.kill().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_restart_keeps_the_assignment_and_welcomes_its_holder_back() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let journal = dir.path().join("graceful.db");
    let store = Store::Sqlite(journal.clone());
    let first = TestServer::start(|config| config.store = store.clone()).await?;
    let mut command = first.command().await?;
    let (lon, lat) = area_box(&mut command, "d2-s1-c1-g2").await?.centre();
    let holder = pingji_tests::person("keeper", "d2-s1-c1-g2", &[]);
    let mut session = first.connect_person_at(holder, lon, lat).await?;
    let request = pb::CreateIncidentRequest {
        id: "kept".into(),
        location: Some(pb::Location::wgs84(lon, lat)),
        category: "elder_care".into(),
        priority: 3,
        required_skills: vec![],
        headcount: 1,
        description: String::new(),
        force: false,
    };
    command.create_incident(request).await?;
    let offer = session.expect_offer_within(PROMPTLY).await?;
    session.accept(&offer.offer_id).await?;
    session.expect_assignment_confirmed_within(PROMPTLY).await?;
    let before = whole_record(&mut command).await?;
    // Shut down with the person's session still open: the drain gives up on
    // it after the drain timeout and the server stops cleanly.
    drop(command);
    first.shutdown().await?;
    drop(session);

    let second = TestServer::start(|config| config.store = store).await?;
    let mut command = second.command().await?;
    let incident = command.get_incident(pb::GetIncidentRequest { id: "kept".into() }).await?.into_inner();
    assert_eq!(incident.status, pb::IncidentStatus::Staffed as i32);
    assert_eq!(
        incident.assignments.iter().map(|assignment| assignment.offer_id.as_str()).collect::<Vec<_>>(),
        vec![offer.offer_id.as_str()]
    );
    let session = second.open_session("keeper").await?;
    let welcome = session.welcome().clone();
    assert_eq!(welcome.current_incident.map(|incident| incident.id), Some("kept".to_string()));
    assert_eq!(welcome.agent.map(|agent| agent.status), Some(pb::AgentStatus::Busy as i32));

    let mut events = EventWatch::start(&mut command, 1).await?;
    session.complete("kept", "handled").await?;
    events.wait_for_kind(PROMPTLY, "incident_closed", "kept").await?;
    let closed = command.get_incident(pb::GetIncidentRequest { id: "kept".into() }).await?.into_inner();
    assert_eq!(closed.status, pb::IncidentStatus::Closed as i32);
    assert!(closed.feedback.contains("keeper: handled"), "feedback: {}", closed.feedback);
    // The record before the restart is the start of the record after it.
    let after = whole_record(&mut command).await?;
    assert_eq!(&after[..before.len()], before.as_slice());

    drop((session, events, command));
    second.shutdown().await
}

/// A journal that refuses a write must not leave the dispatcher serving as if
/// nothing happened: the command is refused with a retriable `unavailable`,
/// the process stops with the reason (for its supervisor to restart it), and
/// after a restart the refused change is not there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_write_failure_refuses_the_command_and_stops_the_dispatcher() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let options = options(dir.path(), 30)?;
    let mut process = DispatcherProcess::start(&options).await?;
    let mut command = process.command().await?;
    // The disk refuses writes, as a trigger makes SQLite do.
    let journal = rusqlite::Connection::open(&options.data)?;
    journal.busy_timeout(Duration::from_secs(5))?;
    journal.execute_batch(
        "CREATE TRIGGER refuse_writes BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'disk refuses writes'); END;",
    )?;
    let refused = command
        .create_incident(pb::CreateIncidentRequest {
            location: Some(pb::Location::wgs84(120.1, 30.23)),
            category: "never-written".into(),
            priority: 1,
            headcount: 1,
            ..Default::default()
        })
        .await
        .expect_err("a change the journal refused is not acknowledged");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    let status = process.wait_exit(Duration::from_secs(30)).await?;
    assert!(!status.success(), "the dispatcher exits with an error: {status:?}");
    assert!(process.log().contains("journal"), "the log says why:\n{}", process.log());

    journal.execute_batch("DROP TRIGGER refuse_writes;")?;
    drop(journal);
    let restarted = DispatcherProcess::start(&options).await?;
    let incidents = restarted.command().await?.list_incidents(pb::ListIncidentsRequest::default()).await?.into_inner().incidents;
    assert!(incidents.iter().all(|incident| incident.category != "never-written"), "{incidents:?}");
    restarted.kill().await
}
