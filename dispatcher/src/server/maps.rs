//! Importing and retiring areas: the file is read and checked away from the
//! owner (geometry checks of a city take seconds), on a copy of the map;
//! the engine checks the structure again when the command runs.

use std::collections::BTreeSet;

use pingji_engine::areas::{AreaMap, MapCheck, MapDiff, MapProblem, MapProperties, ProblemKind};
use pingji_engine::engine::Command;
use pingji_engine::ids::AreaId;
use pingji_proto::v1 as pb;
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

use super::error;
use crate::convert;
use crate::runtime::Dispatcher;

/// Errors listed in a refusal's message; all of them are in its details
/// up to [`MAX_VIOLATIONS`], and a dry run returns every one.
const ERRORS_IN_MESSAGE: usize = 10;
const MAX_VIOLATIONS: usize = 200;

pub async fn import(
    dispatcher: &Dispatcher,
    actor: String,
    request: pb::ImportAreasRequest,
) -> Result<pb::ImportAreasResponse, Status> {
    let properties = properties_from_pb(request.properties.as_ref())?;
    let replace = request.replace;
    let current = dispatcher.query(|engine, _| engine.state().areas.to_import()).await?;
    let text = request.geojson;
    let check = tokio::task::spawn_blocking(move || AreaMap::from(current).check_file(&text, &properties, replace))
        .await
        .map_err(|_| error::internal("the map check stopped"))?
        .map_err(error::invalid)?;
    let people_rehomed = rehomed(dispatcher, &check.diff.retired).await?;
    let mut response = pb::ImportAreasResponse {
        areas: check.reading.import.areas.len() as u32,
        service_centres: check.reading.import.service_centres.len() as u32,
        applied: false,
        diff: Some(diff_to_pb(&check.diff)),
        problems: check.reading.problems.iter().map(problem_to_pb).collect(),
        parents_inferred: check.parents_inferred as u32,
        people_rehomed,
    };
    if request.dry_run {
        return Ok(response);
    }
    if check.errors().next().is_some() {
        return Err(refusal(&check));
    }
    let import = check.reading.import;
    let command = if replace { Command::ReplaceAreas(import) } else { Command::ImportAreas(import) };
    dispatcher.execute(command, actor, |_, _| ()).await?;
    response.applied = true;
    Ok(response)
}

pub async fn retire(
    dispatcher: &Dispatcher,
    actor: String,
    request: pb::RetireAreaRequest,
) -> Result<pb::RetireAreaResponse, Status> {
    let area = AreaId::new(request.area_id.trim());
    let probe = area.clone();
    let (retired, service_centres_removed) = dispatcher
        .query(move |engine, _| {
            let map = &engine.state().areas;
            if !map.contains(&probe) {
                return (Vec::new(), Vec::new());
            }
            let areas: Vec<AreaId> = map.area_and_descendants(&probe).into_iter().cloned().collect();
            let centres =
                map.service_centres().filter(|centre| areas.contains(&centre.area)).map(|centre| centre.id.to_string()).collect();
            (areas, centres)
        })
        .await?;
    let people_rehomed = rehomed(dispatcher, &retired).await?;
    let mut response = pb::RetireAreaResponse {
        retired: retired.iter().map(ToString::to_string).collect(),
        service_centres_removed,
        people_rehomed,
        applied: false,
    };
    let command = Command::RetireArea { area, with_children: request.with_children };
    if request.dry_run {
        // The engine decides, without executing, so a dry run refuses what the real call would.
        let probe = command.clone();
        dispatcher.query(move |engine, now| engine.check(&probe, now)).await?.map_err(error::rejection_status)?;
        return Ok(response);
    }
    dispatcher.execute(command, actor, |_, _| ()).await?;
    response.applied = true;
    Ok(response)
}

/// How many people are at home in the areas about to be retired.
async fn rehomed(dispatcher: &Dispatcher, retired: &[AreaId]) -> Result<u32, Status> {
    if retired.is_empty() {
        return Ok(0);
    }
    let retired: BTreeSet<AreaId> = retired.iter().cloned().collect();
    let count = dispatcher
        .query(move |engine, _| {
            engine
                .state()
                .agents
                .values()
                .filter(|record| record.profile.home_area.as_ref().is_some_and(|home| retired.contains(home)))
                .count()
        })
        .await?;
    Ok(count as u32)
}

fn properties_from_pb(properties: Option<&pb::MapProperties>) -> Result<MapProperties, Status> {
    let mut names = MapProperties::default();
    let Some(given) = properties else {
        return Ok(names);
    };
    for (field, value) in [
        (&mut names.id, &given.id),
        (&mut names.name, &given.name),
        (&mut names.level, &given.level),
        (&mut names.parent, &given.parent),
    ] {
        if !value.trim().is_empty() {
            *field = value.trim().to_string();
        }
    }
    names.default_level = convert::level_from_pb(given.default_level);
    if given.default_level != 0 && names.default_level.is_none() {
        return Err(error::invalid_field(
            "properties.default_level",
            format!(
                "default_level {} is not an area level; use city, district, street, community, grid or building",
                given.default_level
            ),
        ));
    }
    Ok(names)
}

/// INVALID_ARGUMENT naming every error (up to a bound) as a BadRequest
/// violation of `geojson.features[N]`; the message lists the first ones.
fn refusal(check: &MapCheck) -> Status {
    let errors: Vec<&MapProblem> = check.errors().collect();
    let warnings = check.reading.problems.len() - errors.len();
    let mut message = format!(
        "the map has {} error{} and {warnings} warning{}; nothing was imported:",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" }
    );
    for problem in errors.iter().take(ERRORS_IN_MESSAGE) {
        message.push_str(&format!("\n  {problem}"));
    }
    if errors.len() > ERRORS_IN_MESSAGE {
        message.push_str(&format!("\n  … and {} more; a dry run lists them all", errors.len() - ERRORS_IN_MESSAGE));
    }
    let mut details = ErrorDetails::with_error_info(
        error::reason_name(pb::ErrorReason::InvalidArgument),
        error::DOMAIN,
        std::collections::HashMap::new(),
    );
    for problem in errors.iter().take(MAX_VIOLATIONS) {
        let field = problem.feature.map_or("geojson".to_string(), |index| format!("geojson.features[{index}]"));
        details.add_bad_request_violation(field, problem.to_string());
    }
    Status::with_error_details(tonic::Code::InvalidArgument, message, details)
}

fn diff_to_pb(diff: &MapDiff) -> pb::MapDiff {
    let ids = |ids: &[AreaId]| ids.iter().map(ToString::to_string).collect();
    pb::MapDiff {
        added: ids(&diff.added),
        changed: diff
            .changed
            .iter()
            .map(|(id, changes)| pb::AreaChange { area_id: id.to_string(), changes: changes.clone() })
            .collect(),
        unchanged: diff.unchanged as u32,
        retired: ids(&diff.retired),
        kept: diff.kept as u32,
        service_centres_added: ids(&diff.service_centres_added),
        service_centres_changed: ids(&diff.service_centres_changed),
        service_centres_removed: ids(&diff.service_centres_removed),
    }
}

fn problem_to_pb(problem: &MapProblem) -> pb::MapProblem {
    use pb::MapProblemKind as K;
    let kind = match problem.kind {
        ProblemKind::Unreadable => K::Unreadable,
        ProblemKind::MissingId => K::MissingId,
        ProblemKind::DuplicateId => K::DuplicateId,
        ProblemKind::UnknownLevel => K::UnknownLevel,
        ProblemKind::BadGeometry => K::BadGeometry,
        ProblemKind::NoParent => K::NoParent,
        ProblemKind::UnknownParent => K::UnknownParent,
        ProblemKind::ParentCycle => K::ParentCycle,
        ProblemKind::LevelOrder => K::LevelOrder,
        ProblemKind::OutsideParent => K::OutsideParent,
        ProblemKind::SiblingOverlap => K::SiblingOverlap,
        ProblemKind::Sliver => K::Sliver,
        ProblemKind::Unnamed => K::Unnamed,
        ProblemKind::NoGrids => K::NoGrids,
    };
    pb::MapProblem {
        kind: kind as i32,
        error: problem.error,
        feature: problem.feature.map(|index| index as u32),
        area_id: problem.area.as_ref().map(ToString::to_string).unwrap_or_default(),
        message: problem.message.clone(),
        size_m2: problem.size_m2.unwrap_or_default(),
        size_m: problem.size_m.unwrap_or_default(),
    }
}
