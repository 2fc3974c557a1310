//! Graceful shutdown under load: the real `dispatcher` binary gets SIGTERM
//! while operators create incidents and people accept offers. Every change
//! it acknowledged is there after a restart, every client that was refused
//! got a retriable status, and the process exits by itself, cleanly.

use std::time::Duration;

use pingji_proto::v1::agent_service_client::AgentServiceClient;
use pingji_proto::v1::dispatch_message::Body as Incoming;
use pingji_tests::{
    AgentSession, DispatcherProcess, ProcessOptions, area_box, available_people, connect_located, pb, quick_policy_toml,
};
use pingji_tests::{sample_city, sample_roster};
use tokio::sync::mpsc;
use tonic::Code;

const PEOPLE: usize = 12;
const CREATORS: usize = 6;
/// Each creator stops at this many incidents if the stop has not come first.
const PER_CREATOR: usize = 200;
/// SIGTERM goes out once this many incidents were acknowledged.
const TERMINATE_AFTER: usize = 30;

/// How one creator's run ended.
struct CreatorRun {
    acknowledged: Vec<String>,
    refusal: Option<tonic::Status>,
}

async fn create_until_refused(
    mut command: pingji_tests::Commands,
    creator: usize,
    (lon, lat): (f64, f64),
    acks: mpsc::Sender<()>,
) -> CreatorRun {
    let mut acknowledged = Vec::new();
    for index in 0..PER_CREATOR {
        let request = pb::CreateIncidentRequest {
            id: format!("load-{creator}-{index:03}"),
            location: Some(pb::Location::wgs84(lon, lat)),
            category: "welfare_check".into(),
            priority: 3,
            required_skills: vec![],
            headcount: 1,
            description: String::new(),
            force: false,
        };
        match command.create_incident(request).await {
            Ok(response) => {
                acknowledged.push(response.into_inner().id);
                let _ = acks.try_send(());
            }
            Err(status) => return CreatorRun { acknowledged, refusal: Some(status) },
        }
    }
    CreatorRun { acknowledged, refusal: None }
}

/// Accepts every offer; returns the confirmed (incident, offer) pairs and
/// the refusal that ended the session, if one came.
async fn accept_until_closed(mut session: AgentSession) -> (Vec<(String, String)>, Option<pb::Refused>) {
    let mut confirmed = Vec::new();
    loop {
        match session.next_message_within(Duration::from_secs(60)).await {
            Ok(Incoming::Offer(offer)) => {
                if session.accept(&offer.offer_id).await.is_err() {
                    return (confirmed, None);
                }
            }
            Ok(Incoming::AssignmentConfirmed(pb::AssignmentConfirmed { offer: Some(offer) })) => {
                confirmed.push((offer.incident_id.clone(), offer.offer_id.clone()));
                // Done at once, so that the person takes the next offer.
                if session.complete(&offer.incident_id, "handled").await.is_err() {
                    return (confirmed, None);
                }
            }
            Ok(Incoming::Refused(refused)) if refused.code == "unavailable" => return (confirmed, Some(refused)),
            Ok(_) => {}
            Err(_) => return (confirmed, None),
        }
    }
}

fn retriable(status: &tonic::Status) -> bool {
    // Unavailable is what gRPC clients retry: refused by a draining server,
    // or the connection closed by it.
    status.code() == Code::Unavailable
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_loses_no_acknowledged_change_and_refuses_retriably() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, quick_policy_toml(30))?;
    let options = ProcessOptions {
        data: dir.path().join("p.db"),
        policy: Some(policy),
        areas: Some(sample_city()),
        agents: Some(sample_roster()),
        snapshot_every: Some(50),
        log: dir.path().join("dispatcher.log"),
    };
    let mut first = DispatcherProcess::start(&options).await?;
    let channel = first.channel().await?;
    let mut command = pingji_tests::commands(channel.clone());
    let community = area_box(&mut command, "d1-s1-c1").await?;
    let people = available_people(&mut command, "d1-s1-c1", PEOPLE).await?;
    anyhow::ensure!(people.len() >= 8, "only {} people on duty in d1-s1-c1", people.len());
    let mut sessions = Vec::new();
    for (index, id) in people.iter().enumerate() {
        let (lon, lat) = community.at(0.1 + 0.8 * (index as f64 / PEOPLE as f64), 0.5);
        let session = connect_located(&mut command, &mut AgentServiceClient::new(channel.clone()), id, lon, lat).await?;
        sessions.push(tokio::spawn(accept_until_closed(session)));
    }

    let (lon, lat) = community.centre();
    let (acks, mut acked) = mpsc::channel(CREATORS * PER_CREATOR);
    let creators: Vec<_> = (0..CREATORS)
        .map(|creator| {
            let channel = channel.clone();
            let acks = acks.clone();
            tokio::spawn(create_until_refused(pingji_tests::commands(channel), creator, (lon, lat), acks))
        })
        .collect();
    drop(acks);
    for _ in 0..TERMINATE_AFTER {
        tokio::time::timeout(Duration::from_secs(60), acked.recv())
            .await
            .map_err(|_| anyhow::anyhow!("fewer than {TERMINATE_AFTER} incidents acknowledged in 60 s; log:\n{}", first.log()))?;
    }
    first.terminate().await?;

    let mut acknowledged = Vec::new();
    let mut refusals = Vec::new();
    for creator in creators {
        let run = creator.await?;
        acknowledged.extend(run.acknowledged);
        refusals.extend(run.refusal);
    }
    let mut confirmed = Vec::new();
    let mut told_to_reconnect = 0;
    for session in sessions {
        let (pairs, refused) = session.await?;
        confirmed.extend(pairs);
        told_to_reconnect += usize::from(refused.is_some());
    }
    let exit = first.wait_exit(Duration::from_secs(60)).await?;
    assert!(exit.success(), "the dispatcher exited with {exit} after SIGTERM; log:\n{}", first.log());
    println!(
        "acknowledged {} incidents and {} assignments; {} creators refused; {told_to_reconnect} sessions told to reconnect",
        acknowledged.len(),
        confirmed.len(),
        refusals.len()
    );
    for status in &refusals {
        assert!(retriable(status), "a client got a status it would not retry: {status:?}");
    }
    assert!(!refusals.is_empty(), "every creator finished before the stop: the load did not overlap the shutdown");
    assert!(told_to_reconnect > 0, "no session was told to reconnect");
    assert!(first.log().contains("SIGTERM received"), "{}", first.log());

    let second = DispatcherProcess::start(&options).await?;
    let mut command = second.command().await?;
    for id in &acknowledged {
        let incident = command.get_incident(pb::GetIncidentRequest { id: id.clone() }).await;
        anyhow::ensure!(incident.is_ok(), "acknowledged incident {id} is gone after the restart: {incident:?}");
    }
    for (incident_id, offer_id) in &confirmed {
        let incident = command.get_incident(pb::GetIncidentRequest { id: incident_id.clone() }).await?.into_inner();
        anyhow::ensure!(
            incident.assignments.iter().any(|assignment| &assignment.offer_id == offer_id),
            "confirmed assignment {offer_id} of {incident_id} is missing after the restart"
        );
    }
    drop(command);
    second.kill().await
}

/// Something holds the stop past the grace period (here another process
/// holds the journal's write lock, so the final snapshot waits on SQLite's
/// 5 s busy timeout): the process exits anyway, when the 2 s grace ends,
/// with its own exit code. Nothing acknowledged is lost by that: every
/// acknowledged change was committed before it was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_grace_period_the_process_exits_anyway() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let options = ProcessOptions {
        data: dir.path().join("p.db"),
        policy: None,
        areas: Some(sample_city()),
        agents: None,
        snapshot_every: None,
        log: dir.path().join("dispatcher.log"),
    };
    let extra: Vec<std::ffi::OsString> = vec!["--drain-timeout-s".into(), "1".into(), "--shutdown-grace-s".into(), "2".into()];
    let mut process = DispatcherProcess::start_with_args(&options, &extra).await?;
    let blocker = rusqlite::Connection::open(&options.data)?;
    blocker.execute_batch("BEGIN EXCLUSIVE")?;
    process.terminate().await?;
    let exit = process.wait_exit(Duration::from_secs(60)).await?;
    blocker.execute_batch("ROLLBACK")?;
    let log = process.log();
    assert_eq!(exit.code(), Some(2), "expected the grace exit (2), got {exit}; log:\n{log}");
    assert!(log.contains("shutdown grace period passed"), "{log}");
    Ok(())
}
