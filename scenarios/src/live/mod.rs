//! The live runner: the same drill file against a running dispatcher. Every
//! simulated person is a real gRPC session through `AgentClient`; incidents,
//! mode switches and cancellations go through the command API; the report is
//! made from the events the dispatcher streams back (`WatchEvents`).
//! Connecting, following the shard's owner and resuming the event stream
//! are `pingji-client`'s, as for the console and the field agent.
//!
//! A live drill is real traffic on a real dispatcher, so it looks first
//! ([`prepare`]): it says what it finds (open incidents, modes, plan
//! activations, call-ups, who is connected, plans) and does not start while
//! something else is using the dispatcher, unless told to go ahead
//! ([`LiveOptions::go_ahead`]). Its simulated people take only its own
//! incidents. When it ends, or is stopped, it leaves the dispatcher as it
//! found it: it ends its plan activations, switches its areas back, cancels
//! its incidents still open and signs its people off, then compares.
//!
//! `speed` compresses the drill: the timeline and people's delays run
//! `speed` times faster, and event times are stretched back, so figures are
//! in drill seconds. The dispatcher keeps its own policy in real time; for a
//! faithful rehearsal at speed N, give it a policy with timeouts divided by N,
//! or run it on a clock N times faster ([`LiveOptions::clock`]; `drill demo`
//! does), so that its timeouts and widenings keep the drill's pace.
//!
//! # Layout
//! - [`found`]: what the drill finds, why it would not start, how the
//!   dispatcher it leaves differs from the one it found.
//! - `operator`: the drill's command calls and event watches, per shard.
//! - `ours`: which incidents are the drill's.
//! - `person`: one simulated person on a real session.
//! - `leave`: putting the dispatcher back as found at the end.
//! - `stores`: the drill's depots, shelters and shifts, and its scripted
//!   supply requests and evacuations, through the dispatcher's services.

pub mod found;
mod leave;
mod operator;
mod ours;
mod person;
mod stores;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pingji_client::auth::BearerToken;
use pingji_client::connect::ConnectOptions;
use pingji_dispatcher::runtime::Clock;
use pingji_engine::areas::{AreaLevel, AreaMap};
use pingji_engine::event::Event;
use pingji_engine::ids::{AreaId, Millis};
use pingji_engine::roster::AgentProfile;
use pingji_engine::spatial::Position;
use pingji_field_agent::{AgentClient, AgentConfig, Location};
use pingji_proto::v1 as pb;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use self::found::{DrillFootprint, Finding, Found};
use self::leave::Switched;
use self::operator::{Operator, watch_shard};
use self::ours::Ours;
use self::person::{Control, Person};
use crate::drill::{Drill, TimelineEntry, parse_mode};
use crate::report::{LiveRun, Report};

/// Options of a live run.
#[derive(Clone)]
pub struct LiveOptions {
    /// The dispatchers, TLS (for the command connection and every person's
    /// session) and the operator token the drill acts with (an admin's: it
    /// imports the map, the roster and plans, and issues people's tokens).
    pub connect: ConnectOptions,
    pub speed: f64,
    /// Run even where the dispatcher is in use (`drill live --go-ahead`):
    /// what [`prepare`] found is then reported, not refused.
    pub go_ahead: bool,
    /// The dispatcher's clock as the drill reads it: the system clock, or
    /// (a dispatcher in this process) its own, which may run faster; event
    /// times are stretched back to drill time by `speed / clock.speed()`.
    pub clock: Clock,
}

impl LiveOptions {
    /// A run at real speed against `servers` (one address, or several
    /// comma separated) as the operator of `token`.
    pub fn new(servers: &str, token: Option<&str>) -> anyhow::Result<LiveOptions> {
        let mut connect = ConnectOptions::new(servers);
        connect.bearer = BearerToken::new(token)
            .map_err(|problem| anyhow::anyhow!("the operator token from --token or PINGJI_TOKEN cannot be used: {problem}"))?;
        Ok(LiveOptions { connect, speed: 1.0, go_ahead: false, clock: Clock::default() })
    }
}

/// The drill did not start: the dispatcher is in use. Nothing was changed.
#[derive(Debug)]
pub struct Refused {
    /// What the drill found, one line each.
    pub found: Vec<String>,
    /// Why it did not start.
    pub findings: Vec<Finding>,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(formatter, "the drill did not start, because the dispatcher is in use (nothing was changed):")?;
        for finding in &self.findings {
            writeln!(formatter, "  - {finding}")?;
        }
        write!(
            formatter,
            "run it on a dispatcher of its own (e.g. `dispatcher --ephemeral`), or end what is listed first, or pass \
             --go-ahead to run it alongside: its people then decline every incident that is not the drill's, and at the \
             end it undoes its own switches, plans and incidents and leaves the rest as found"
        )
    }
}

impl std::error::Error for Refused {}

/// Runs a drill against the dispatcher at `options.server` and writes the
/// report into `out`: [`prepare`], then [`Prepared::run`] to the end.
pub async fn run(
    drill: &Drill,
    options: &LiveOptions,
    out: &std::path::Path,
    progress: impl FnMut(u64),
) -> anyhow::Result<Report> {
    prepare(drill, options).await?.run(out, progress, std::future::pending()).await
}

/// Connects, reads what the dispatcher holds and decides whether the drill
/// may run there. Changes nothing. Fails with [`Refused`] when the
/// dispatcher is in use and `options.go_ahead` is not set.
pub async fn prepare<'drill>(drill: &'drill Drill, options: &LiveOptions) -> anyhow::Result<Prepared<'drill>> {
    anyhow::ensure!(options.speed > 0.0 && options.speed <= 1000.0, "speed must be between 0 and 1000");
    let areas = AreaMap::from(drill.map.clone());
    let (mut operator, served_by, actor) = Operator::connect(&options.connect).await?;
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
    let mut rng = StdRng::seed_from_u64(drill.file.seed);
    let people = match (&drill.roster_csv, &drill.file.roster.generate) {
        (Some(text), _) => crate::roster::from_csv(text).map_err(anyhow::Error::msg)?,
        (None, Some(generator)) => crate::roster::generate(&mut rng, &areas, generator),
        (None, None) => Vec::new(),
    };
    let plans = drill
        .plan_texts
        .iter()
        .map(|text| pingji_engine::plans::parse_plan(text).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let found = found::survey(operator.every_shard()?).await?;
    let footprint = DrillFootprint { drill, people: &people, plans };
    let findings = found::findings(&found, &footprint);
    if !findings.is_empty() && !options.go_ahead {
        return Err(Refused { found: found.lines(), findings }.into());
    }
    let (returning, _) = footprint.known_people(&found);
    let import_map = found.areas.is_empty() || {
        let (missing, different) = footprint.map_differences(&found);
        !(missing.is_empty() && different.is_empty())
    };
    let plans_to_import: Vec<String> = footprint
        .plans_to_import(&found)
        .iter()
        .filter_map(|plan| {
            let index = footprint.plans.iter().position(|candidate| candidate.id == plan.id)?;
            drill.plan_texts.get(index).cloned()
        })
        .collect();
    let switched_areas = footprint.switches().into_iter().map(|(area, _)| area).collect();
    let activated_plans = footprint.activations();
    Ok(Prepared {
        drill,
        options: options.clone(),
        operator,
        areas,
        people,
        rng,
        found,
        findings,
        returning,
        import_map,
        plans_to_import,
        actor,
        switched_areas,
        activated_plans,
    })
}

/// A drill ready to run on a dispatcher it has looked at.
pub struct Prepared<'drill> {
    drill: &'drill Drill,
    options: LiveOptions,
    operator: Operator,
    areas: AreaMap,
    people: Vec<AgentProfile>,
    /// Seeded by the drill and already used for its roster: the rest of
    /// the run draws from where the roster left it.
    rng: StdRng,
    found: Found,
    findings: Vec<Finding>,
    /// The drill's people the dispatcher has from an earlier run.
    returning: BTreeSet<String>,
    import_map: bool,
    plans_to_import: Vec<String>,
    actor: String,
    switched_areas: BTreeSet<String>,
    activated_plans: BTreeSet<(String, String)>,
}

impl Prepared<'_> {
    /// What the drill found, one line each, and what it will bring.
    pub fn found(&self) -> Vec<String> {
        let mut lines = self.found.lines();
        let new = self.people.len() - self.returning.len();
        lines.push(format!(
            "the drill brings {}: {new} new to the roster, {} from an earlier run",
            crate::report::plural(self.people.len(), "person", "people"),
            self.returning.len()
        ));
        if self.import_map && self.found.areas.is_empty() {
            lines.push(format!("the dispatcher has no map: the drill imports its own ({} areas)", self.drill.map.areas.len()));
        }
        lines
    }

    /// What the drill found that it runs alongside (with `go_ahead`; else
    /// [`prepare`] refused).
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Plays the drill, until its end or until `stop` completes (Ctrl-C),
    /// then leaves the dispatcher as found and writes the report into `out`.
    pub async fn run(
        mut self,
        out: &std::path::Path,
        mut progress: impl FnMut(u64),
        stop: impl Future<Output = ()>,
    ) -> anyhow::Result<Report> {
        let drill = self.drill;
        let wall_start = self.options.clock.now();
        // Incidents carry ids of this run, so that a create retried at a new
        // owner (its answer lost with the old one) cannot be made twice.
        let incident_ids = IncidentIds { run: format!("drill-{wall_start}"), next: Arc::new(AtomicU64::new(1)) };
        let ours = Ours::new(
            format!("{}-", incident_ids.run),
            self.actor.clone(),
            std::mem::take(&mut self.switched_areas),
            std::mem::take(&mut self.activated_plans),
        );
        ours.not_ours(self.found.incidents.keys().cloned());
        let switched: Switched = Arc::default();
        let mut stop = std::pin::pin!(stop);

        // Watch first (every shard), so that every event of the run is seen.
        let (event_sender, mut event_inbox) = mpsc::channel::<(usize, pb::Event)>(65_536);
        let mut watchers = Vec::new();
        for (index, shard_operator) in self.operator.every_shard()?.into_iter().enumerate() {
            let events = shard_operator.watch().await?;
            watchers.push(watch_shard(events, index, event_sender.clone()));
        }
        drop(event_sender);

        let mut persons = JoinSet::new();
        let mut controls: BTreeMap<String, mpsc::Sender<Control>> = BTreeMap::new();
        let set_up = self.set_up(&ours, &mut persons, &mut controls);
        let set_up = tokio::select! {
            set_up = set_up => set_up,
            () = &mut stop => Err(anyhow::anyhow!("stopped while setting up")),
        };
        let drill_people: BTreeSet<String> = self.people.iter().map(|profile| profile.id.to_string()).collect();
        let leaving = leave::Leaving {
            operator: &self.operator,
            ours: &ours,
            switched: &switched,
            found: &self.found,
            controls: &controls,
            drill_people: &drill_people,
            new_people: self.people.len() - self.returning.len(),
        };
        if let Err(error) = set_up {
            // Nothing of the timeline has happened: the people set up so far
            // are signed off.
            let left = leave::leave(&leaving).await;
            for control in controls.values() {
                let _ = control.send(Control::Stop).await;
            }
            while persons.join_next().await.is_some() {}
            for watcher in &watchers {
                watcher.abort();
            }
            return Err(error.context(format!("the drill did not start; {}", left.join("; "))));
        }

        let started = Instant::now();
        let started_at = crate::sim::DRILL_START;
        let scale = self.options.speed;
        let mut timeline = JoinSet::new();
        for (_, entry) in drill.timeline.clone() {
            let at = started + Duration::from_secs_f64(entry.at_s as f64 / scale);
            let mut performer = Performer {
                operator: self.operator.clone(),
                incident_ids: incident_ids.clone(),
                controls: controls.clone(),
                people: self.people.clone(),
                areas: self.areas.clone(),
                switched: switched.clone(),
                found_modes: self.found.modes.clone(),
                scale,
                seed: drill.file.seed ^ entry.at_s,
            };
            timeline.spawn(async move {
                tokio::time::sleep_until(at).await;
                performer.perform(&entry).await
            });
        }

        let end = started + Duration::from_secs_f64(drill.file.duration_s as f64 / scale);
        let mut events = Vec::new();
        let mut interrupted_at_s = None;
        let mut failure = None;
        'drill: loop {
            tokio::select! {
                () = tokio::time::sleep_until(end) => break,
                () = &mut stop => {
                    interrupted_at_s = Some(started.elapsed().as_secs_f64() * scale);
                    break;
                }
                Some(event) = event_inbox.recv() => {
                    ours.learn(&event.1);
                    events.push(event);
                }
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            progress(((started.elapsed().as_secs_f64() * scale) as u64).min(drill.file.duration_s));
            while let Some(done) = timeline.try_join_next() {
                let result = done.map_err(anyhow::Error::from).and_then(|performed| performed);
                if let Err(error) = result {
                    failure = Some(error);
                    break 'drill;
                }
            }
        }
        timeline.abort_all();
        // The report covers the drill up to here; what follows is putting
        // the dispatcher back.
        let cut = self.options.clock.now();
        if interrupted_at_s.is_none() && failure.is_none() {
            progress(drill.file.duration_s);
        }
        let left = leave::leave(&leaving).await;
        for control in controls.values() {
            let _ = control.send(Control::Stop).await;
        }
        while persons.join_next().await.is_some() {}
        // The last events of the drill may still be on their way.
        while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(500), event_inbox.recv()).await {
            if event.1.at_ms <= cut.0 {
                ours.learn(&event.1);
                events.push(event);
            }
        }
        for watcher in &watchers {
            watcher.abort();
        }
        if let Some(error) = failure {
            let left = left.join("; ");
            return Err(error.context(format!("the drill stopped early; at its end: {left}")));
        }

        let stretch = scale / self.options.clock.speed();
        let events = drill_events(&events, &ours, wall_start, cut, started_at, stretch);
        let ended_at = match interrupted_at_s {
            Some(seconds) => started_at.plus_seconds(seconds.ceil() as u64),
            None => started_at.plus_seconds(drill.file.duration_s),
        };
        let mut report = crate::build_report(drill, &events, started_at, ended_at);
        report.drill.people = self.people.len();
        report.live = Some(LiveRun {
            found: self.found(),
            went_ahead_despite: self.findings.iter().map(Finding::to_string).collect(),
            left,
            interrupted_at_s: interrupted_at_s.map(|seconds| (seconds * 10.0).round() / 10.0),
        });
        if interrupted_at_s.is_some() {
            report.passed = false;
        }
        crate::files::write(&report, &drill.map, out)?;
        Ok(report)
    }

    /// The map and plans where the dispatcher lacks them, the drill's people
    /// (new ones off duty: each goes on duty when their session starts), and
    /// a session for each on-duty person.
    async fn set_up(
        &mut self,
        ours: &Ours,
        persons: &mut JoinSet<()>,
        controls: &mut BTreeMap<String, mpsc::Sender<Control>>,
    ) -> anyhow::Result<()> {
        let drill = self.drill;
        let map_text = if self.import_map { Some(drill.map_geojson.clone()) } else { None };
        for mut shard_operator in self.operator.every_shard()? {
            if let Some(map_text) = &map_text {
                let request = pb::ImportAreasRequest { geojson: map_text.clone(), ..Default::default() };
                shard_operator
                    .call("importing the map", |mut commands| {
                        let request = request.clone();
                        async move { commands.import_areas(request).await }
                    })
                    .await?;
            }
            if !self.plans_to_import.is_empty() {
                let request = pb::ImportPlansRequest { plans_toml: self.plans_to_import.clone() };
                shard_operator
                    .call("importing the plans", |mut commands| {
                        let request = request.clone();
                        async move { commands.import_plans(request).await }
                    })
                    .await?;
            }
        }
        // Each district's people at its shard.
        let mut tokens = BTreeMap::new();
        let mut home_shard: BTreeMap<String, Operator> = BTreeMap::new();
        for (mut shard_operator, shard) in self.operator.every_shard()?.into_iter().zip(shard_names(&self.operator)) {
            let theirs: Vec<AgentProfile> = self
                .people
                .iter()
                .filter(|profile| {
                    shard.is_none()
                        || district_of(&self.areas, profile).or_else(|| self.operator.shards.first().cloned()) == shard
                })
                .cloned()
                .collect();
            tokens.extend(import_people(&mut shard_operator, &theirs, &self.returning).await?);
            for profile in &theirs {
                home_shard.insert(profile.id.to_string(), shard_operator.clone());
            }
        }

        // Shifts name the drill's people: after they are on the roster.
        stores::set_up(&self.operator, drill, &self.areas, &self.people).await?;

        let connected_share = if drill.roster_csv.is_some() { drill.file.roster.connected_share } else { 1.0 };
        for (index, profile) in self.people.iter().enumerate() {
            if !profile.on_duty || self.rng.random::<f64>() >= connected_share {
                continue;
            }
            let home = profile
                .home
                .or_else(|| profile.home_area.as_ref().and_then(|area| self.areas.inside_point(area)))
                .unwrap_or(Position { lon: 0.0, lat: 0.0 });
            // People imported now came with tokens; people a dispatcher already
            // knew (a re-run) are given new ones.
            let token = match tokens.remove(profile.id.as_str()) {
                Some(token) => token,
                None => {
                    let mut at_home = home_shard.get(profile.id.as_str()).cloned().unwrap_or_else(|| self.operator.clone());
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
            let config = AgentConfig::with_options(self.options.connect.clone(), profile.id.to_string(), token);
            let (client, agent_events) = AgentClient::start(config)?;
            let (control, control_inbox) = mpsc::channel(8);
            controls.insert(profile.id.to_string(), control);
            let person = Person::new(
                client,
                drill.behaviour(profile.role).clone(),
                profile.travel_mode,
                home,
                self.options.speed,
                StdRng::seed_from_u64(drill.file.seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                ours.clone(),
            );
            persons.spawn(person.run(agent_events, control_inbox));
        }
        Ok(())
    }
}

/// The events of the drill for its report, on the drill clock: up to `cut`
/// (what came after is the drill putting things back), in the order they
/// happened across shards, without events about incidents that are not
/// the drill's.
fn drill_events(
    events: &[(usize, pb::Event)],
    ours: &Ours,
    wall_start: Millis,
    cut: Millis,
    started_at: Millis,
    stretch: f64,
) -> Vec<Event> {
    let mut events: Vec<&(usize, pb::Event)> = events
        .iter()
        .filter(|(_, event)| event.at_ms <= cut.0)
        .filter(|(_, event)| event.incident_id.is_empty() || ours.is_ours(&event.incident_id) == Some(true))
        .collect();
    events.sort_by_key(|(shard, event)| (event.at_ms, *shard, event.seq));
    // Every event goes into the report; one this drill cannot read (a newer
    // dispatcher's kind) is named on stderr, never dropped silently.
    let mut unreadable = Vec::new();
    let read: Vec<Event> = events
        .iter()
        .map(|(_, event)| event)
        .filter_map(|event| match pingji_dispatcher::convert::event::event_from_pb(event) {
            Ok(read) => {
                // Stretch the dispatcher's times back to drill time.
                let drill_ms = ((event.at_ms - wall_start.0) as f64 * stretch) as i64;
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
    read
}

/// Adds the people the dispatcher does not have yet (`returning` are the
/// drill's people it has from an earlier run), off duty: each goes on duty
/// when their session starts, so that everyone the drill adds is signed off
/// at its end. Returns the new people's tokens by id.
async fn import_people(
    operator: &mut Operator,
    people: &[AgentProfile],
    returning: &BTreeSet<String>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let new: Vec<pb::AgentSpec> = people
        .iter()
        .filter(|profile| !returning.contains(profile.id.as_str()))
        .map(|profile| pb::AgentSpec { on_duty: false, ..pingji_dispatcher::convert::profile_to_pb(profile) })
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

/// What one entry of the timeline needs to be carried out.
struct Performer {
    operator: Operator,
    incident_ids: IncidentIds,
    controls: BTreeMap<String, mpsc::Sender<Control>>,
    people: Vec<AgentProfile>,
    areas: AreaMap,
    switched: Switched,
    /// Areas in a mode other than normal when the drill started.
    found_modes: BTreeMap<String, i32>,
    scale: f64,
    seed: u64,
}

impl Performer {
    async fn perform(&mut self, entry: &TimelineEntry) -> anyhow::Result<()> {
        let Performer { operator, incident_ids, controls, people, areas, switched, found_modes, scale, seed } = self;
        perform(operator, incident_ids, entry, controls, people, areas, (switched, found_modes), *scale, *seed).await
    }
}

#[allow(clippy::too_many_arguments)]
async fn perform(
    operator: &mut Operator,
    incident_ids: &IncidentIds,
    entry: &TimelineEntry,
    controls: &BTreeMap<String, mpsc::Sender<Control>>,
    people: &[AgentProfile],
    areas: &AreaMap,
    (switched, found_modes): (&Switched, &BTreeMap<String, i32>),
    scale: f64,
    seed: u64,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    if let Some(mode) = &entry.mode {
        let mode_value = parse_mode(&mode.grade).map_or(pb::Mode::Normal, pingji_dispatcher::convert::mode_to_pb);
        // Recorded before the call, so that the plan it may activate is
        // known as the drill's by the time its events arrive, and so that the
        // end of the drill switches the area back.
        {
            let mut switched = switched.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let found = found_modes.get(&mode.area).copied().unwrap_or(pb::Mode::Normal as i32);
            switched.entry(mode.area.clone()).or_insert((found, found)).1 = mode_value as i32;
        }
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
            (None, Some(area)) => areas.inside_point(&AreaId::new(area)).unwrap_or(Position { lon: 0.0, lat: 0.0 }),
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
    if let Some(help) = &entry.help {
        // The person named, or one at home in the area drawn as the fast runner draws.
        let chosen = match (&help.agent, &help.area) {
            (Some(agent), _) => Some(agent.clone()),
            (None, Some(area)) => {
                let area = AreaId::new(area);
                let level = areas.get(&area).map(|spec| spec.level);
                let candidates: Vec<&AgentProfile> = people
                    .iter()
                    .filter(|profile| profile.on_duty)
                    .filter(|profile| match (&profile.home_area, level) {
                        (Some(home), Some(level)) => areas.placement_of_area(home).within(level, &area),
                        _ => false,
                    })
                    .collect();
                (!candidates.is_empty()).then(|| candidates[rng.random_range(0..candidates.len())].id.to_string())
            }
            (None, None) => None,
        };
        if let Some(control) = chosen.as_deref().and_then(|agent| controls.get(agent)) {
            let at = help.at.map(|[lon, lat]| Location::new(lon, lat));
            let _ = control.send(Control::Help { at, text: help.text.clone() }).await;
        }
    }
    if let Some(supplies) = &entry.supplies {
        stores::request_supplies(operator, &incident_ids.run, entry.at_s, supplies, scale).await?;
    }
    if let Some(evacuate) = &entry.evacuate {
        stores::evacuate(operator, &incident_ids.run, entry.at_s, evacuate, scale).await?;
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
