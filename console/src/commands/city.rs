//! A city split into one shard per district (docs/redis.md): a plan
//! activation or a call-up on an area above the districts (the city) goes
//! to every district's shard, once each, and the roll-call of the city
//! gathers every shard's call-ups into one.
//!
//! Each district's shard is reached with `x-pingji-shard` (as `pingji
//! --shard dN` does), so any dispatcher of the city can be asked first.

use pingji_client::connect::Connection;
use pingji_client::owner::SERVED_BY_METADATA;
use pingji_proto::v1 as pb;

use crate::error::ConsoleError;

/// The districts whose shards a command on `area` must reach: every one
/// when the city is split and `area` lies above the districts (or, for
/// `None`, any roll-call of the whole city); `None` otherwise (one shard
/// decides, as for any other command).
pub async fn districts_for(connection: &Connection, area: Option<&str>) -> Result<Option<Vec<String>>, ConsoleError> {
    let mut commands = connection.commands();
    let answer = commands.list_areas(pb::ListAreasRequest { level: 0, with_geometry: false }).await?;
    if answer.metadata().get(SERVED_BY_METADATA).is_none() {
        return Ok(None);
    }
    let areas = answer.into_inner().areas;
    let above_districts = match area {
        None => true,
        Some(area) => areas.iter().any(|known| known.id == area && known.level == pb::AreaLevel::City as i32),
    };
    if !above_districts {
        return Ok(None);
    }
    let districts: Vec<String> =
        areas.into_iter().filter(|known| known.level == pb::AreaLevel::District as i32).map(|known| known.id).collect();
    Ok(Some(districts).filter(|districts| districts.len() > 1))
}

/// Makes `call` at the owner of `district`'s shard (`x-pingji-shard`),
/// following it when it moves.
async fn at_district<T, Answer>(
    connection: &Connection,
    district: &str,
    call: impl FnMut(&Connection) -> Answer,
) -> Result<T, ConsoleError>
where
    Answer: std::future::Future<Output = Result<T, ConsoleError>>,
{
    let mut at = connection
        .for_shard(district)
        .map_err(|message| ConsoleError::Server(tonic::Status::internal(format!("district {district}: {message}"))))?;
    at.call(call).await
}

/// Issues the call-up at every district's shard.
pub async fn call_up(
    connection: &Connection,
    districts: &[String],
    request: &pb::CallUpRequest,
) -> Result<Vec<pb::Callup>, ConsoleError> {
    let mut callups = Vec::new();
    for district in districts {
        let callup = at_district(connection, district, |connection| {
            let mut commands = connection.commands();
            let request = request.clone();
            async move { Ok(commands.call_up(request).await?.into_inner()) }
        })
        .await?;
        callups.push(callup);
    }
    Ok(callups)
}

/// Imports the plans at every district's shard: each needs them to
/// activate a plan for its part of the city. Each shard checks them alike,
/// so a wrong file is refused at the first and none takes them; a shard
/// that cannot be reached after others took them is named with those (an
/// import again replaces the plans by id, so it is safe to repeat).
pub async fn import_plans(
    connection: &Connection,
    districts: &[String],
    request: &pb::ImportPlansRequest,
) -> Result<pb::ImportPlansResponse, ConsoleError> {
    let mut imported: Vec<&str> = Vec::new();
    let mut response = pb::ImportPlansResponse::default();
    for district in districts {
        let answer = at_district(connection, district, |connection| {
            let mut commands = connection.commands();
            let request = request.clone();
            async move { Ok(commands.import_plans(request).await?.into_inner()) }
        })
        .await;
        match answer {
            Ok(answer) => response = answer,
            Err(ConsoleError::Server(status)) if !imported.is_empty() => {
                return Err(ConsoleError::Server(tonic::Status::new(
                    status.code(),
                    format!(
                        "the plans were imported at {} but not at district {district}: {}; run the same import again \
                         once it answers (plans are replaced by id)",
                        imported.join(", "),
                        status.message()
                    ),
                )));
            }
            Err(error) => return Err(error),
        }
        imported.push(district);
    }
    Ok(response)
}

/// Activates the plan at every district's shard.
pub async fn activate(
    connection: &Connection,
    districts: &[String],
    request: &pb::ActivatePlanRequest,
) -> Result<Vec<pb::PlanActivation>, ConsoleError> {
    let mut activations = Vec::new();
    for district in districts {
        let activation = at_district(connection, district, |connection| {
            let mut commands = connection.commands();
            let request = request.clone();
            async move { Ok(commands.activate_plan(request).await?.into_inner()) }
        })
        .await?;
        activations.push(activation);
    }
    Ok(activations)
}

/// Every district shard's call-ups, each city-wide one made of its shards'
/// parts (same area, reason and deadline) shown as one.
pub async fn roll_call(
    connection: &Connection,
    districts: &[String],
    request: &pb::CallupStatusRequest,
) -> Result<Vec<pb::Callup>, ConsoleError> {
    let mut all = Vec::new();
    for district in districts {
        let callups = at_district(connection, district, |connection| {
            let mut commands = connection.commands();
            let request = request.clone();
            async move { Ok(commands.callup_status(request).await?.into_inner().callups) }
        })
        .await?;
        all.extend(callups);
    }
    Ok(merge(all))
}

/// One call-up per city-wide call-up: the parts issued at each shard for
/// the same area with the same reason share it.
pub fn merge(callups: Vec<pb::Callup>) -> Vec<pb::Callup> {
    let mut merged: Vec<pb::Callup> = Vec::new();
    for callup in callups {
        match merged.iter_mut().find(|held| held.area_id == callup.area_id && held.reason == callup.reason) {
            Some(held) => {
                held.id = format!("{}+{}", held.id, callup.id);
                held.people.extend(callup.people);
                held.checked_in += callup.checked_in;
                held.missing += callup.missing;
                held.deadline_ms = held.deadline_ms.max(callup.deadline_ms);
                held.issued_at_ms = held.issued_at_ms.min(callup.issued_at_ms);
                held.ended_at_ms =
                    if held.ended_at_ms > 0 && callup.ended_at_ms > 0 { held.ended_at_ms.max(callup.ended_at_ms) } else { 0 };
            }
            None => merged.push(callup),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(id: &str, area: &str, people: usize, checked_in: u32) -> pb::Callup {
        pb::Callup {
            id: id.into(),
            area_id: area.into(),
            reason: "typhoon".into(),
            people: (0..people).map(|n| pb::CalledPerson { agent_id: format!("{id}-{n}"), ..Default::default() }).collect(),
            checked_in,
            deadline_ms: 10,
            ..Default::default()
        }
    }

    #[test]
    fn the_parts_of_a_city_wide_callup_make_one_roll_call() {
        let merged = merge(vec![part("d1-c1", "city", 3, 1), part("d2-c1", "city", 2, 2), part("d1-c2", "d1-s1", 1, 0)]);
        assert_eq!(merged.len(), 2, "{merged:?}");
        assert_eq!(merged[0].id, "d1-c1+d2-c1");
        assert_eq!((merged[0].people.len(), merged[0].checked_in), (5, 3));
        assert_eq!(merged[1].id, "d1-c2");
    }
}
