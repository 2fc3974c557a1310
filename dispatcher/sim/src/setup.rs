//! What every run starts from: the sample city's map, two district shards
//! (d1 and d2, which touch along a north-south border) each switched to
//! emergency grade II, and three people living in each. Built once per
//! test process with the real engine; each run starts from a copy.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use pingji_dispatcher::convert;
use pingji_dispatcher::journal::StoredEvent;
use pingji_engine::areas::parse_geojson;
use pingji_engine::engine::{Command, Engine, State};
use pingji_engine::ids::{AgentId, AreaId, Millis};
use pingji_engine::policy::{Mode, Policy};
use pingji_engine::roster::{AgentProfile, Role, TravelMode};
use pingji_engine::spatial::{EARTH_RADIUS_M, Position};

/// The simulated clock starts here (ms since the epoch).
pub const T0: i64 = 1_700_000_000_000;
/// The border between d1 (west) and d2 (east) in the sample city.
pub const BORDER: Position = Position { lon: 120.154038, lat: 30.27 };
pub const SHARDS: [&str; 2] = ["d1", "d2"];
pub const PEOPLE_PER_SHARD: usize = 3;

/// One shard's start: its journal (the setup's events) and the state after
/// them, which is also its snapshot.
pub struct ShardStart {
    pub shard: String,
    pub journal: Vec<StoredEvent>,
    pub state: Arc<State>,
    /// The state as the snapshot stores it (JSON).
    pub snapshot: Vec<u8>,
    pub people: Vec<AgentId>,
}

pub struct Start {
    pub policy: Policy,
    pub shards: Vec<ShardStart>,
}

/// The dispatch rules of the run: the defaults, with grade II offers timing
/// out after 8 s so that a run sees many offers end (the protocol's
/// timings are relative to the offer's deadline, not fixed).
pub fn policy() -> Policy {
    let mut policy = Policy { staffing_check_s: 0, location_stale_s: 24 * 3600, ..Policy::default() };
    policy.emergency_ii.offer_timeout_s = 8;
    policy.emergency_ii.call_up = Vec::new();
    policy
}

/// `metres` east of the border (west when negative) and `north` metres north.
pub fn near_border(east: f64, north: f64) -> Position {
    let metres_to_degrees = 180.0 / std::f64::consts::PI / EARTH_RADIUS_M;
    Position {
        lon: BORDER.lon + east * metres_to_degrees / BORDER.lat.to_radians().cos(),
        lat: BORDER.lat + north * metres_to_degrees,
    }
}

pub fn start() -> &'static Start {
    static START: OnceLock<Start> = OnceLock::new();
    START.get_or_init(|| build().unwrap_or_else(|problem| panic!("the simulation's start cannot be built: {problem}")))
}

fn build() -> Result<Start, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/maps/sample-city.geojson");
    let text = std::fs::read_to_string(path).map_err(|error| format!("{path}: {error}"))?;
    let map = parse_geojson(&text)?;
    let policy = policy();
    let mut shards = Vec::new();
    for shard in SHARDS {
        let mut engine = Engine::new(policy.clone());
        let mut events = Vec::new();
        let actor = "operator:sim";
        let at = Millis(T0);
        let mut run = |engine: &mut Engine, command: Command| -> Result<(), String> {
            let made = engine.execute(command, actor, at).map_err(|rejection| format!("{shard}: {rejection:?}"))?;
            events.extend(made.iter().map(convert::stored_event));
            Ok(())
        };
        run(&mut engine, Command::ImportAreas(map.clone()))?;
        run(&mut engine, Command::SetMode { area: AreaId::new(shard), mode: Mode::EmergencyIi, reason: "flood".into() })?;
        let people: Vec<AgentId> = (1..=PEOPLE_PER_SHARD).map(|n| AgentId::new(format!("{shard}-p{n}"))).collect();
        let profiles = people
            .iter()
            .map(|id| AgentProfile {
                id: id.clone(),
                name: format!("person {id}"),
                role: Role::Volunteer,
                skills: BTreeSet::new(),
                phone: String::new(),
                home_area: Some(AreaId::new(shard)),
                travel_mode: TravelMode::Walk,
                on_duty: true,
                home: None,
            })
            .collect();
        run(&mut engine, Command::UpsertAgents { agents: profiles, all_new: true, tokens: Vec::new() })?;
        let state = engine.into_state();
        let snapshot = serde_json::to_vec(&state).map_err(|error| format!("{shard}: the snapshot: {error}"))?;
        shards.push(ShardStart { shard: shard.to_owned(), journal: events, state: Arc::new(state), snapshot, people });
    }
    Ok(Start { policy, shards })
}

/// The shard a person lives in, from their id (the simulation's
/// directory: `pingji:{directory}:agents` in the real system).
pub fn home_shard(agent: &str) -> &str {
    agent.split('-').next().unwrap_or_default()
}

/// The shard that made an incident, from its id (`d1-inc-000042`): the
/// directory's `pingji:{directory}:incidents`.
pub fn incident_shard(incident: &str) -> &str {
    incident.split('-').next().unwrap_or_default()
}
