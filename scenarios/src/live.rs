//! The live runner: the same drill file against a running dispatcher. Every
//! simulated person is a real gRPC session through `AgentClient`; incidents,
//! mode switches and cancellations go through the command API; the report is
//! made from the events the dispatcher streams back (`WatchEvents`).
//! Connecting, following the shard's owner and resuming the event stream
//! are `pingji-client`'s, as for the console and the field agent.
//!
//! `speed` compresses the drill: the timeline and people's delays run
//! `speed` times faster, and event times are stretched back, so figures are
//! in drill seconds. The dispatcher keeps its own policy in real time; for a
//! faithful rehearsal at speed N, give it a policy with timeouts divided by N.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pingji_client::auth::BearerToken;
use pingji_client::backoff::BackoffPolicy;
use pingji_client::connect::{CommandClient, ConnectOptions, Connection};
use pingji_client::event_stream::{EventStream, Watched};
use pingji_client::owner::SERVED_BY_METADATA;
use pingji_engine::areas::{AreaLevel, AreaMap};
use pingji_engine::event::Event;
use pingji_engine::ids::{AreaId, Millis};
use pingji_engine::roster::{AgentProfile, TravelMode};
use pingji_engine::spatial::Position;
use pingji_field_agent::{AgentClient, AgentConfig, AgentEvent, IncidentId, Location, OfferId};
use pingji_proto::v1 as pb;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::drill::{Behaviour, Drill, TimelineEntry, parse_mode};
use crate::report::Report;
use crate::sim::triangular;

/// Options of a live run.
pub struct LiveOptions {
    /// The dispatchers, TLS (for the command connection and every person's
    /// session) and the operator token the drill acts with (an admin's: it
    /// imports the map, the roster and plans, and issues people's tokens).
    pub connect: ConnectOptions,
    pub speed: f64,
}

impl LiveOptions {
    /// A run at real speed against `servers` (one address, or several
    /// comma separated) as the operator of `token`.
    pub fn new(servers: &str, token: Option<&str>) -> anyhow::Result<LiveOptions> {
        let mut connect = ConnectOptions::new(servers);
        connect.bearer = BearerToken::new(token)
            .map_err(|problem| anyhow::anyhow!("the operator token from --token or PINGJI_TOKEN cannot be used: {problem}"))?;
        Ok(LiveOptions { connect, speed: 1.0 })
    }
}

fn status_error(what: &str, status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{what}: {} ({:?})", status.message(), status.code())
}

/// How long an operator call keeps following the owner (a takeover after
/// the owner died takes a few seconds: the lease's ttl and a renewal).
const FOLLOW_OWNER_FOR: Duration = Duration::from_secs(20);
/// Waits between tries to resume a shard's events after its owner went away.
const WATCH_BACKOFF: BackoffPolicy =
    BackoffPolicy { initial: Duration::from_millis(200), cap: Duration::from_secs(2), healthy_after: Duration::from_secs(10) };

/// The drill's operator: calls go to the owner of the shard, and follow it
/// when it changes during the run (a standby's redirect, or the owner gone
/// and another taking over: `Connection::call`). With one shard per
/// district, a call goes to whichever district's owner the dispatcher names.
#[derive(Clone)]
struct Operator {
    connection: Connection,
    /// The districts' shards when the city is split, in order; empty when
    /// the city is one shard.
    shards: Vec<String>,
}

impl Operator {
    /// The operator, and the district shard that answered (if the city is
    /// split).
    async fn connect(options: &LiveOptions) -> anyhow::Result<(Operator, Option<String>)> {
        let mut connection = Connection::open(options.connect.clone()).await.map_err(|error| anyhow::anyhow!(error.detail()))?;
        // At the owner (a standby names it): who the drill acts as, and
        // whether the city is split. Refused here, the run stops at once;
        // from now on calls keep looking for an owner that went away.
        let answer = connection
            .call(|connection| {
                let mut commands = connection.commands();
                async move { commands.who_am_i(pb::WhoAmIRequest {}).await }
            })
            .await
            .map_err(|status| {
                let reason = connection.options().explained(connection.url(), &status);
                anyhow::anyhow!("asking {} who the drill acts as: {reason} ({:?})", connection.url(), status.code())
            })?;
        let served_by = answer.metadata().get(SERVED_BY_METADATA).and_then(|value| value.to_str().ok()).map(str::to_string);
        let operator = Operator { connection: connection.finding_owner_for(FOLLOW_OWNER_FOR), shards: Vec::new() };
        Ok((operator, served_by))
    }

    /// The same operator with its calls for `shard` (`x-pingji-shard`).
    fn at_shard(&self, shard: &str) -> anyhow::Result<Operator> {
        let connection = self.connection.for_shard(shard).map_err(anyhow::Error::msg)?;
        Ok(Operator { connection, shards: self.shards.clone() })
    }

    /// One operator per district's shard; just this one for a city run as
    /// one shard.
    fn every_shard(&self) -> anyhow::Result<Vec<Operator>> {
        if self.shards.is_empty() {
            return Ok(vec![self.clone()]);
        }
        self.shards.iter().map(|shard| self.at_shard(shard)).collect()
    }

    /// Where a plan activation on `area` goes: to every district's shard for
    /// an area above the districts (the city) when the city is split; else
    /// to the shard the dispatcher finds for it.
    fn for_area(&self, areas: &AreaMap, area: &str) -> anyhow::Result<Vec<Operator>> {
        let area = AreaId::new(area);
        let above_districts = areas.get(&area).is_some() && areas.placement_of_area(&area).at(AreaLevel::District).is_none();
        if above_districts { self.every_shard() } else { Ok(vec![self.clone()]) }
    }

    /// Runs `call` at the owner (see `Connection::call`: again at the owner
    /// when refused because the owner moved or because another shard's
    /// owner holds what it is about, for up to [`FOLLOW_OWNER_FOR`]). A call
    /// that is retried must be safe to repeat (incidents carry their own ids
    /// for this).
    async fn call<T, Call>(&mut self, what: &str, mut call: impl FnMut(CommandClient) -> Call) -> anyhow::Result<T>
    where
        Call: Future<Output = Result<T, tonic::Status>>,
    {
        self.connection.call(|connection| call(connection.commands())).await.map_err(|status| status_error(what, status))
    }

    /// Events from the start of the watch on, at the owner, resumed after a
    /// failover from the event after the last one seen.
    async fn watch(&self) -> anyhow::Result<EventStream> {
        EventStream::opened(self.connection.clone(), 0, WATCH_BACKOFF)
            .await
            .map_err(|status| status_error("watching events", status))
    }
}

/// Follows one shard's events into `sender` (tagged with `shard`, an
/// index), resuming at the owner after a failover, until aborted.
fn watch_shard(mut events: EventStream, shard: usize, sender: mpsc::Sender<(usize, pb::Event)>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match events.next().await {
                Watched::Event(event) => {
                    if sender.send((shard, *event)).await.is_err() {
                        return;
                    }
                }
                // A break: the stream says when it tries again.
                Watched::Opened | Watched::Lost { .. } => {}
            }
        }
    })
}

/// Runs a drill against the dispatcher at `options.server` and writes the report into `out`.
pub async fn run(
    drill: &Drill,
    options: &LiveOptions,
    out: &std::path::Path,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<Report> {
    anyhow::ensure!(options.speed > 0.0 && options.speed <= 1000.0, "speed must be between 0 and 1000");
    let areas = AreaMap::from(drill.map.clone());
    let (mut operator, served_by) = Operator::connect(options).await?;
    if let Some(shard) = served_by {
        let districts: Vec<String> =
            areas.areas().filter(|area| area.level == AreaLevel::District).map(|area| area.id.to_string()).collect();
        anyhow::ensure!(
            districts.contains(&shard),
            "the dispatcher serves district shard {shard}, which is not a district of the drill's map ({}); run the \
             drill with the map the dispatchers serve",
            districts.join(", ")
        );
        operator.shards = districts;
    }
    // Watch first (every shard), so that every event of the run is seen.
    let (event_sender, mut event_inbox) = mpsc::channel::<(usize, pb::Event)>(65_536);
    let mut watchers = Vec::new();
    for (index, shard_operator) in operator.every_shard()?.into_iter().enumerate() {
        let events = shard_operator.watch().await?;
        watchers.push(watch_shard(events, index, event_sender.clone()));
    }
    drop(event_sender);
    // Setting up: the map and plans at every shard.
    let map_text = std::fs::read_to_string(drill.path.parent().unwrap_or(std::path::Path::new(".")).join(&drill.file.map))?;
    for mut shard_operator in operator.every_shard()? {
        let request = pb::ImportAreasRequest { geojson: map_text.clone() };
        shard_operator
            .call("importing the map", |mut commands| {
                let request = request.clone();
                async move { commands.import_areas(request).await }
            })
            .await?;
        if !drill.plan_texts.is_empty() {
            let request = pb::ImportPlansRequest { plans_toml: drill.plan_texts.clone() };
            shard_operator
                .call("importing the plans", |mut commands| {
                    let request = request.clone();
                    async move { commands.import_plans(request).await }
                })
                .await?;
        }
    }
    let mut rng = StdRng::seed_from_u64(drill.file.seed);
    let people = match (&drill.roster_csv, &drill.file.roster.generate) {
        (Some(text), _) => crate::roster::from_csv(text).map_err(anyhow::Error::msg)?,
        (None, Some(generator)) => crate::roster::generate(&mut rng, &areas, generator),
        (None, None) => Vec::new(),
    };
    // Each district's people at its shard.
    let mut tokens = BTreeMap::new();
    let mut home_shard: BTreeMap<String, Operator> = BTreeMap::new();
    for (mut shard_operator, shard) in operator.every_shard()?.into_iter().zip(shard_names(&operator)) {
        let theirs: Vec<AgentProfile> = people
            .iter()
            .filter(|profile| {
                shard.is_none() || district_of(&areas, profile).or_else(|| operator.shards.first().cloned()) == shard
            })
            .cloned()
            .collect();
        tokens.extend(import_people(&mut shard_operator, &theirs).await?);
        for profile in &theirs {
            home_shard.insert(profile.id.to_string(), shard_operator.clone());
        }
    }

    let started = Instant::now();
    let started_at = crate::sim::DRILL_START;
    let wall_start = pingji_dispatcher::runtime::system_now();
    let scale = options.speed;
    let connected_share = if drill.roster_csv.is_some() { drill.file.roster.connected_share } else { 1.0 };

    let mut persons = JoinSet::new();
    let mut controls: BTreeMap<String, mpsc::Sender<Control>> = BTreeMap::new();
    for (index, profile) in people.iter().enumerate() {
        if !profile.on_duty || rng.random::<f64>() >= connected_share {
            continue;
        }
        let home = profile
            .home
            .or_else(|| profile.home_area.as_ref().and_then(|area| areas.centroid(area)))
            .unwrap_or(Position { lon: 0.0, lat: 0.0 });
        // People imported now came with tokens; people a dispatcher already
        // knew (a re-run) are given new ones.
        let token = match tokens.remove(profile.id.as_str()) {
            Some(token) => token,
            None => {
                let mut at_home = home_shard.get(profile.id.as_str()).cloned().unwrap_or_else(|| operator.clone());
                let request = pb::IssueAgentTokenRequest { agent_id: profile.id.to_string() };
                at_home
                    .call(&format!("issuing a token for {}", profile.id), |mut commands| {
                        let request = request.clone();
                        async move { commands.issue_agent_token(request).await }
                    })
                    .await?
                    .into_inner()
                    .token
            }
        };
        let config = AgentConfig::with_options(options.connect.clone(), profile.id.to_string(), token);
        let (client, agent_events) = AgentClient::start(config)?;
        let (control, control_inbox) = mpsc::channel(8);
        controls.insert(profile.id.to_string(), control);
        let person = Person {
            client,
            behaviour: drill.behaviour(profile.role).clone(),
            travel_mode: profile.travel_mode,
            at: home,
            scale,
            rng: StdRng::seed_from_u64(drill.file.seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            pending: Vec::new(),
        };
        persons.spawn(person.run(agent_events, control_inbox));
    }

    // Incidents carry ids of this run, so that a create retried at a new
    // owner (its answer lost with the old one) cannot be made twice.
    let incident_ids = IncidentIds { run: format!("drill-{wall_start}"), next: Arc::new(AtomicU64::new(1)) };
    let mut timeline = JoinSet::new();
    for (_, entry) in drill.timeline.clone() {
        let at = started + Duration::from_secs_f64(entry.at_s as f64 / scale);
        let mut operator = operator.clone();
        let incident_ids = incident_ids.clone();
        let controls = controls.clone();
        let people = people.clone();
        let areas = areas.clone();
        let seed = drill.file.seed ^ entry.at_s;
        timeline.spawn(async move {
            tokio::time::sleep_until(at).await;
            perform(&mut operator, &incident_ids, &entry, &controls, &people, &areas, scale, seed).await
        });
    }

    let end = started + Duration::from_secs_f64(drill.file.duration_s as f64 / scale);
    let mut events = Vec::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(end) => break,
            Some(event) = event_inbox.recv() => events.push(event),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        progress((started.elapsed().as_secs_f64() * scale) as u64);
        while let Some(done) = timeline.try_join_next() {
            done??;
        }
    }
    progress(drill.file.duration_s);
    timeline.abort_all();
    for control in controls.values() {
        let _ = control.send(Control::Stop).await;
    }
    while persons.join_next().await.is_some() {}
    // The last events of the run may still be on their way.
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(500), event_inbox.recv()).await {
        events.push(event);
    }
    for watcher in &watchers {
        watcher.abort();
    }

    // Several shards' events, in the order they happened.
    events.sort_by_key(|(shard, event)| (event.at_ms, *shard, event.seq));
    // Every event goes into the report; one this drill cannot read (a newer
    // dispatcher's kind) is named on stderr, never dropped silently.
    let mut unreadable = Vec::new();
    let events: Vec<Event> = events
        .iter()
        .map(|(_, event)| event)
        .filter_map(|event| match pingji_dispatcher::convert::event::event_from_pb(event) {
            Ok(read) => {
                // Stretch wall-clock times back to drill time.
                let drill_ms = ((event.at_ms - wall_start.0) as f64 * scale) as i64;
                Some(Event { at: Millis(started_at.0 + drill_ms), ..read })
            }
            Err(error) => {
                unreadable.push(error);
                None
            }
        })
        .collect();
    if let Some(first) = unreadable.first() {
        eprintln!(
            "drill: {} event(s) could not be read and are not in the report (first: {first}); is the dispatcher newer than this drill?",
            unreadable.len()
        );
    }
    let mut report = crate::build_report(drill, &events, started_at, started_at.plus_seconds(drill.file.duration_s));
    report.drill.people = people.len();
    crate::files::write(&report, &drill.map, out)?;
    Ok(report)
}

/// Adds the people the dispatcher does not know yet (a re-run keeps the
/// rest); returns the new people's tokens by id.
async fn import_people(operator: &mut Operator, people: &[AgentProfile]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut known = std::collections::BTreeSet::new();
    let mut after = String::new();
    loop {
        let request = pb::ListAgentsRequest { limit: 1000, after_id: after.clone(), ..Default::default() };
        let page = operator
            .call("listing people", |mut commands| {
                let request = request.clone();
                async move { commands.list_agents(request).await }
            })
            .await?
            .into_inner()
            .agents;
        let Some(last) = page.last().and_then(|agent| agent.spec.as_ref()).map(|spec| spec.id.clone()) else { break };
        known.extend(page.into_iter().filter_map(|agent| agent.spec.map(|spec| spec.id)));
        after = last;
    }
    let new: Vec<pb::AgentSpec> = people
        .iter()
        .filter(|profile| !known.contains(profile.id.as_str()))
        .map(pingji_dispatcher::convert::profile_to_pb)
        .collect();
    let mut tokens = BTreeMap::new();
    for chunk in new.chunks(2000) {
        let request = pb::ImportAgentsRequest { agents: chunk.to_vec() };
        let imported = operator
            .call("importing people", |mut commands| {
                let request = request.clone();
                async move { commands.import_agents(request).await }
            })
            .await?
            .into_inner();
        tokens.extend(imported.tokens.into_iter().map(|issued| (issued.subject, issued.token)));
    }
    Ok(tokens)
}

/// The shard of each of `operator.every_shard()`: the district, or `None`
/// for a city run as one shard.
fn shard_names(operator: &Operator) -> Vec<Option<String>> {
    if operator.shards.is_empty() { vec![None] } else { operator.shards.iter().cloned().map(Some).collect() }
}

/// The district a person lives in, on the drill's map.
fn district_of(areas: &AreaMap, profile: &AgentProfile) -> Option<String> {
    let home = profile.home_area.as_ref()?;
    areas.placement_of_area(home).at(AreaLevel::District).map(|district| district.to_string())
}

#[allow(clippy::too_many_arguments)]
async fn perform(
    operator: &mut Operator,
    incident_ids: &IncidentIds,
    entry: &TimelineEntry,
    controls: &BTreeMap<String, mpsc::Sender<Control>>,
    people: &[AgentProfile],
    areas: &AreaMap,
    scale: f64,
    seed: u64,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    if let Some(mode) = &entry.mode {
        let mode_value = parse_mode(&mode.grade).map_or(pb::Mode::Normal, pingji_dispatcher::convert::mode_to_pb);
        let request = pb::SetModeRequest { area_id: mode.area.clone(), mode: mode_value as i32, reason: mode.reason.clone() };
        // Already in that mode (an earlier run, or a retry): nothing to do.
        // (A switch of the whole city reaches every district's shard by itself.)
        operator
            .call("switching mode", |mut commands| {
                let request = request.clone();
                async move {
                    match commands.set_mode(request).await {
                        Err(status) if status.code() == tonic::Code::FailedPrecondition => Ok(()),
                        other => other.map(|_| ()),
                    }
                }
            })
            .await?;
    }
    if let Some(incident) = &entry.incident {
        let at = match (incident.at, &incident.area) {
            (Some([lon, lat]), _) => Position { lon, lat },
            (None, Some(area)) => areas.centroid(&AreaId::new(area)).unwrap_or(Position { lon: 0.0, lat: 0.0 }),
            (None, None) => Position { lon: 0.0, lat: 0.0 },
        };
        let request = pb::CreateIncidentRequest {
            id: incident_ids.next(),
            location: Some(pb::Location::wgs84(at.lon, at.lat)),
            category: incident.category.clone(),
            priority: i32::from(incident.priority),
            required_skills: incident.skills.clone(),
            headcount: incident.need,
            description: incident.description.clone(),
            force: true,
        };
        create_incident(operator, request).await?;
    }
    if let Some(burst) = &entry.burst {
        let Some(spec) = areas.get(&AreaId::new(&burst.area)).cloned() else { return Ok(()) };
        let begun = Instant::now();
        for number in 0..burst.count {
            let offset = burst.over_s as f64 * f64::from(number) / f64::from(burst.count) / scale;
            tokio::time::sleep_until(begun + Duration::from_secs_f64(offset)).await;
            let at = crate::roster::random_point_in(&mut rng, areas, &spec).unwrap_or(Position { lon: 0.0, lat: 0.0 });
            let category = crate::roster::weighted(&mut rng, &burst.categories).cloned().unwrap_or_else(|| "other".into());
            let request = pb::CreateIncidentRequest {
                id: incident_ids.next(),
                location: Some(pb::Location::wgs84(at.lon, at.lat)),
                priority: i32::from(burst.priority[rng.random_range(0..burst.priority.len())]),
                headcount: burst.need[rng.random_range(0..burst.need.len())],
                required_skills: burst.skills.get(&category).cloned().unwrap_or_default(),
                description: format!("{category} #{} of a burst in {}", number + 1, spec.name),
                category,
                force: true,
            };
            create_incident(operator, request).await?;
        }
    }
    if let Some(cancel) = &entry.cancel {
        let chosen: Vec<String> = match (&cancel.incident, cancel.share) {
            (Some(id), _) => vec![id.clone()],
            (None, Some(share)) => {
                let mut open = Vec::new();
                for mut shard in operator.every_shard()? {
                    let listed = shard
                        .call("listing incidents", |mut commands| async move {
                            let request = pb::ListIncidentsRequest { open_only: true, limit: 0, ..Default::default() };
                            commands.list_incidents(request).await
                        })
                        .await?;
                    open.extend(listed.into_inner().incidents);
                }
                open.into_iter().filter(|_| rng.random::<f64>() < share).map(|incident| incident.id).collect()
            }
            (None, None) => Vec::new(),
        };
        for id in chosen {
            // An incident that ended meanwhile cannot be cancelled; that is fine in a drill.
            let request = pb::CancelIncidentRequest { id, reason: cancel.reason.clone() };
            let _ = operator
                .call("cancelling", |mut commands| {
                    let request = request.clone();
                    async move { commands.cancel_incident(request).await }
                })
                .await;
        }
    }
    if let Some(plan) = &entry.plan {
        if let Some(id) = &plan.activate {
            let request =
                pb::ActivatePlanRequest { plan_id: id.clone(), area_id: plan.area.clone(), reason: plan.reason.clone() };
            for mut target in operator.for_area(areas, &plan.area)? {
                target
                    .call("activating a plan", |mut commands| {
                        let request = request.clone();
                        async move { commands.activate_plan(request).await }
                    })
                    .await?;
            }
        } else if let Some(id) = &plan.deactivate {
            // Each shard ends its own activation (with the district's shard
            // when the plan is on one district's area: the dispatcher finds it).
            for mut target in operator.every_shard()? {
                let listed = target
                    .call("listing plans", |mut commands| async move { commands.list_plans(pb::ListPlansRequest {}).await })
                    .await?
                    .into_inner();
                let open = listed.activations.into_iter().find(|activation| {
                    activation.ended_at_ms == 0 && &activation.plan_id == id && activation.area_id == plan.area
                });
                if let Some(activation) = open {
                    let request = pb::DeactivatePlanRequest { activation_id: activation.id, reason: plan.reason.clone() };
                    target
                        .call("ending a plan", |mut commands| {
                            let request = request.clone();
                            async move { commands.deactivate_plan(request).await }
                        })
                        .await?;
                }
            }
        }
    }
    if let Some(off) = &entry.off_duty {
        let area = off.area.as_ref().map(AreaId::new);
        let level = area.as_ref().and_then(|area| areas.get(area)).map(|spec| spec.level);
        let role = off.role.as_deref().and_then(crate::drill::parse_role);
        for profile in people {
            let in_area = match (&area, level) {
                (Some(area), Some(level)) => {
                    profile.home_area.as_ref().is_some_and(|home| areas.placement_of_area(home).within(level, area))
                }
                _ => true,
            };
            if in_area
                && role.is_none_or(|role| profile.role == role)
                && rng.random::<f64>() < off.share
                && let Some(control) = controls.get(profile.id.as_str())
            {
                let _ = control.send(Control::OffDuty).await;
            }
        }
    }
    Ok(())
}

/// Ids for the incidents of one run: `drill-<start ms>-<n>`.
#[derive(Clone)]
struct IncidentIds {
    run: String,
    next: Arc<AtomicU64>,
}

impl IncidentIds {
    fn next(&self) -> String {
        format!("{}-{}", self.run, self.next.fetch_add(1, Ordering::Relaxed))
    }
}

/// Creates an incident at the owner; a retry that finds it already made
/// (the first try landed, its answer was lost) counts as done.
async fn create_incident(operator: &mut Operator, request: pb::CreateIncidentRequest) -> anyhow::Result<()> {
    let mut tries = 0;
    operator
        .call("creating an incident", |mut commands| {
            tries += 1;
            let retried = tries > 1;
            let request = request.clone();
            async move {
                match commands.create_incident(request).await {
                    Err(status) if retried && status.code() == tonic::Code::AlreadyExists => Ok(()),
                    other => other.map(|_| ()),
                }
            }
        })
        .await
}

enum Control {
    OffDuty,
    Stop,
}

enum Step {
    CheckIn { callup: String },
    Answer { offer: OfferId, accept: bool, reason: String },
    Arrive { incident: IncidentId, at: Position },
    Complete { incident: IncidentId },
}

/// One simulated person on a real session.
struct Person {
    client: AgentClient,
    behaviour: Behaviour,
    travel_mode: TravelMode,
    at: Position,
    scale: f64,
    rng: StdRng,
    pending: Vec<(Instant, Step)>,
}

impl Person {
    fn later(&self, drill_seconds: f64) -> Instant {
        Instant::now() + Duration::from_secs_f64((drill_seconds / self.scale).max(0.0))
    }

    async fn run(mut self, mut events: mpsc::Receiver<AgentEvent>, mut control: mpsc::Receiver<Control>) {
        let _ = self.client.report_location(Location::new(self.at.lon, self.at.lat));
        loop {
            let next = self.pending.iter().map(|(at, _)| *at).min();
            tokio::select! {
                event = events.recv() => match event {
                    Some(AgentEvent::Stopped { .. }) | None => break,
                    Some(event) => self.on_event(event),
                },
                command = control.recv() => match command {
                    Some(Control::OffDuty) => {
                        let _ = self.client.set_status(pb::AgentStatus::OffDuty);
                    }
                    Some(Control::Stop) | None => break,
                },
                () = async { if let Some(at) = next { tokio::time::sleep_until(at).await } else { std::future::pending().await } } => {
                    self.fire_due();
                }
            }
        }
        self.client.close().await;
    }

    fn on_event(&mut self, event: AgentEvent) {
        match event {
            AgentEvent::Offer(offer) => {
                let roll = self.rng.random::<f64>();
                let delay = triangular(&mut self.rng, self.behaviour.decide_s);
                if roll < self.behaviour.accept {
                    self.pending
                        .push((self.later(delay), Step::Answer { offer: offer.offer_id, accept: true, reason: String::new() }));
                } else if roll < self.behaviour.accept + self.behaviour.decline {
                    let reasons = &self.behaviour.decline_reasons;
                    let reason = reasons[self.rng.random_range(0..reasons.len())].clone();
                    self.pending.push((self.later(delay), Step::Answer { offer: offer.offer_id, accept: false, reason }));
                }
            }
            AgentEvent::AssignmentConfirmed(offer) => {
                if self.rng.random::<f64>() < self.behaviour.silent {
                    return;
                }
                let target = offer.location.map_or(self.at, |at| Position { lon: at.lon, lat: at.lat });
                let speed = match self.travel_mode {
                    TravelMode::Walk => self.behaviour.walk_mps,
                    TravelMode::Bike => self.behaviour.bike_mps,
                    TravelMode::Car => self.behaviour.car_mps,
                };
                let travel_s = 60.0 + self.at.distance_m(target) / speed;
                self.pending.push((self.later(travel_s), Step::Arrive { incident: offer.incident_id, at: target }));
            }
            AgentEvent::AssignmentEnded { incident_id, .. } => {
                self.pending.retain(|(_, step)| match step {
                    Step::Arrive { incident, .. } | Step::Complete { incident } => incident != &incident_id,
                    Step::Answer { .. } | Step::CheckIn { .. } => true,
                });
            }
            AgentEvent::CallUp { callup_id, .. } if self.rng.random::<f64>() < self.behaviour.check_in => {
                let delay = triangular(&mut self.rng, self.behaviour.check_in_s);
                self.pending.push((self.later(delay), Step::CheckIn { callup: callup_id }));
            }
            AgentEvent::StandDown { callup_id, .. } => {
                self.pending.retain(|(_, step)| !matches!(step, Step::CheckIn { callup } if callup == &callup_id));
            }
            AgentEvent::OfferWithdrawn { offer_id, .. } | AgentEvent::NoLongerNeeded { offer_id, .. } => {
                self.pending.retain(|(_, step)| !matches!(step, Step::Answer { offer, .. } if offer == &offer_id));
            }
            _ => {}
        }
    }

    fn fire_due(&mut self) {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending).into_iter().partition(|(at, _)| *at <= now);
        self.pending = later;
        for (_, step) in due {
            match step {
                Step::CheckIn { callup } => {
                    let _ = self.client.check_in(&callup);
                }
                Step::Answer { offer, accept: true, .. } => {
                    let _ = self.client.accept(&offer);
                }
                Step::Answer { offer, accept: false, reason } => {
                    let _ = self.client.decline(&offer, &reason);
                }
                Step::Arrive { incident, at } => {
                    self.at = at;
                    let _ = self.client.arrived(&incident);
                    let on_scene = triangular(&mut self.rng, self.behaviour.on_scene_s);
                    self.pending.push((self.later(on_scene), Step::Complete { incident }));
                }
                Step::Complete { incident } => {
                    let _ = self.client.completed(&incident, "handled on site");
                    let _ = self.client.report_location(Location::new(self.at.lon, self.at.lat));
                }
            }
        }
    }
}
