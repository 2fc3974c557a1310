//! With one shard per district, a switch of an area above the districts
//! (the city) reaches every district's shard.
//!
//! The shard where an operator switches the city journals it as usual and
//! publishes it (`pingji:{city_modes}:switches`, area → the switch as JSON,
//! kept only when newer than the one there: a Lua compare-and-set on its
//! time). Every owner reads the published switches each second and journals
//! those it has not made itself, with the operator who switched and a
//! reason naming the shard it came from. The latest switch wins, so shards
//! that switched at once agree in the end. Until a shard has caught up (a
//! second, or while Redis is away), it keeps its own mode: the city is
//! eventually switched everywhere, not atomically.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pingji_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

use super::sharding::Sharding;
use crate::convert;
use crate::runtime::{DispatchError, Dispatcher};
use crate::shard::RedisStoreError;
use pingji_engine::areas::AreaLevel;
use pingji_engine::engine::{Command, Rejection};
use pingji_engine::ids::AreaId;
use pingji_engine::policy::Mode;

const KEY: &str = "pingji:{city_modes}:switches";
/// How often the published switches are read.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// Sets `ARGV[2]` (a switch as JSON) at field `ARGV[1]` unless the switch
/// there is at least as recent (`at_ms`, `ARGV[3]`).
const PUBLISH: &str = r"
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and decoded.at_ms and decoded.at_ms >= tonumber(ARGV[3]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
";

/// One switch of an area above the districts, as published.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Switch {
    mode: Mode,
    reason: String,
    actor: String,
    at_ms: i64,
    /// The shard where it was made.
    shard: String,
}

/// Publishes this shard's switches of areas above the districts and takes
/// in the others', while the owner serves.
pub async fn keep_city_modes(dispatcher: Dispatcher, sharding: Arc<Sharding>) {
    let mine = sharding.shard().to_string();
    let mut events = dispatcher.subscribe();
    let mut follow = tokio::time::interval(FOLLOW_EVERY);
    let mut pending: Vec<(String, Switch)> = Vec::new();
    // Per area, the time of the latest published switch taken into account.
    let mut seen: HashMap<String, i64> = HashMap::new();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    if let Some(switch) = switch_of(&event, &mine) {
                        pending.push(switch);
                    }
                }
                Err(RecvError::Lagged(_)) => warn!("missed events; a city-wide switch made here may not reach other shards"),
                Err(RecvError::Closed) => return,
            },
            _ = follow.tick() => {
                follow_published(&dispatcher, &sharding, &mine, &mut seen).await;
            }
        }
        if pending.is_empty() {
            continue;
        }
        let above = areas_above_districts(&dispatcher, pending.iter().map(|(area, _)| area.clone()).collect()).await;
        pending.retain(|(area, _)| above.contains(area));
        let publishing = std::mem::take(&mut pending);
        let shared = sharding.clone();
        let result =
            tokio::task::spawn_blocking(move || publish(&shared, &publishing).map_err(|error| (error, publishing))).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err((error, unpublished))) => {
                warn!(%error, "cannot publish a city-wide switch; trying again");
                pending = unpublished;
            }
            Err(_) => return,
        }
    }
}

/// A switch journaled here, as published.
fn switch_of(event: &pb::Event, mine: &str) -> Option<(String, Switch)> {
    let Some(pb::event::Body::ModeSwitched(switched)) = &event.body else {
        return None;
    };
    let mode = convert::mode_from_pb(switched.mode).ok()?;
    let switch =
        Switch { mode, reason: switched.reason.clone(), actor: event.actor.clone(), at_ms: event.at_ms, shard: mine.to_owned() };
    Some((switched.area_id.clone(), switch))
}

/// Those of `areas` on the map above the districts (the city).
async fn areas_above_districts(dispatcher: &Dispatcher, areas: Vec<String>) -> Vec<String> {
    dispatcher
        .query(move |engine, _| {
            let map = &engine.state().areas;
            areas
                .into_iter()
                .filter(|area| {
                    let id = AreaId::new(area.as_str());
                    map.get(&id).is_some() && map.placement_of_area(&id).at(AreaLevel::District).is_none()
                })
                .collect()
        })
        .await
        .unwrap_or_default()
}

/// Over the connection the process keeps for keys of no shard, rather than
/// one opened each time (on a Redis Cluster, opening one reads the slot map
/// and connects to every node).
fn publish(sharding: &Sharding, switches: &[(String, Switch)]) -> Result<(), RedisStoreError> {
    let action = format!("publish a city-wide switch in {KEY}");
    let script = redis::Script::new(PUBLISH);
    for (area, switch) in switches {
        let json = serde_json::to_string(switch).map_err(|error| sharding.unexpected(&action, error))?;
        sharding
            .run_shared(&action, |connection| script.key(KEY).arg(area).arg(&json).arg(switch.at_ms).invoke::<i64>(connection))?;
    }
    Ok(())
}

fn read_published(sharding: &Sharding) -> Result<HashMap<String, String>, RedisStoreError> {
    sharding.run_shared(&format!("read {KEY}"), |connection| redis::cmd("HGETALL").arg(KEY).query(connection))
}

/// Journals the published switches made at other shards that this one
/// has not taken in yet.
async fn follow_published(dispatcher: &Dispatcher, sharding: &Arc<Sharding>, mine: &str, seen: &mut HashMap<String, i64>) {
    let shared = sharding.clone();
    let published = match tokio::task::spawn_blocking(move || read_published(&shared)).await {
        Ok(Ok(published)) => published,
        Ok(Err(error)) => {
            warn!(%error, "cannot read the city-wide switches");
            return;
        }
        Err(_) => return,
    };
    for (area, text) in published {
        let Ok(switch) = serde_json::from_str::<Switch>(&text) else { continue };
        if seen.get(&area).is_some_and(|at_ms| *at_ms >= switch.at_ms) {
            continue;
        }
        seen.insert(area.clone(), switch.at_ms);
        if switch.shard == mine {
            continue;
        }
        let command = Command::SetMode {
            area: AreaId::new(area.as_str()),
            mode: switch.mode,
            reason: format!("{} (switched at shard {})", switch.reason, switch.shard),
        };
        match dispatcher.execute(command, switch.actor.clone(), |_, _| ()).await {
            Ok(()) => info!(area, from_shard = %switch.shard, "city-wide switch taken in"),
            // Already in that mode.
            Err(DispatchError::Rejected(Rejection::FailedPrecondition(_))) => {}
            // Refused here (the area is not on this shard's map): said once.
            Err(DispatchError::Rejected(rejection)) => {
                warn!(%rejection, area, from_shard = %switch.shard, "a city-wide switch cannot be taken in here");
            }
            // The store is away: the next read tries again.
            Err(error) => {
                warn!(%error, area, "cannot take in a city-wide switch; trying again");
                seen.remove(&area);
            }
        }
    }
}
