//! Conversions between the wire types (`pingji_proto::v1`) and the engine's
//! domain types. Everything a client controls is checked here or in the
//! engine; nothing here panics on client input.
//!
//! # Layout
//! - [`event`]: events as typed proto messages, their redaction, and back.
//! - [`explain`]: explanations of a dispatch, shortfalls, possible duplicates.
//! - [`place`]: locations and area levels on the wire (used by the others).
//! - [`border`]: border reservations between district shards and their events.
//! - [`supplies`]: depots, stock, supply requests and their events.
//! - [`rosters`]: shifts, availability, absences, swaps, attendance and their events.
//! - [`shelters`]: shelters, evacuations, occupancy and their events.

pub mod border;
pub mod cap;
pub mod event;
pub mod explain;
pub mod place;
pub mod rosters;
pub mod shelters;
pub mod supplies;

use pingji_proto::v1 as pb;

pub use place::{level_from_pb, level_to_pb, location};

use crate::journal::StoredEvent;
use pingji_engine::areas::AreaLevel;
use pingji_engine::border::ReservationEnd;
use pingji_engine::crs::CoordinateSystem;
use pingji_engine::engine::{Engine, Rejection};
use pingji_engine::event::{Event, EventKind, WithdrawReason};
use pingji_engine::ids::quote;
use pingji_engine::ids::{AgentId, AreaId, IncidentId, Millis};
use pingji_engine::incident::{Incident, IncidentStatus, OfferRecord};
use pingji_engine::message::{Audience, MessageRecord};
use pingji_engine::plans::TaskPlace;
use pingji_engine::policy::Mode;
use pingji_engine::roster::{AgentProfile, AgentRecord, AgentStatus, Role, TravelMode, normalise_skills};
use pingji_engine::spatial::Position;

pub fn position(location: Option<&pb::Location>, what: &str) -> Result<Position, Rejection> {
    let location = location.ok_or_else(|| Rejection::InvalidArgument(format!("{what} is missing; give lon and lat")))?;
    let (lon, lat) = wgs84_of(location).map_err(|message| Rejection::InvalidArgument(format!("{what}: {message}")))?;
    Position::checked(lon, lat).map_err(|message| Rejection::InvalidArgument(format!("{what}: {message}")))
}

/// A client's location in WGS84, converted from the system it says it
/// uses; not range-checked (the engine refuses bad values).
pub fn wgs84_of(location: &pb::Location) -> Result<(f64, f64), String> {
    let system = match pb::CoordinateSystem::try_from(location.crs) {
        Ok(pb::CoordinateSystem::Unspecified | pb::CoordinateSystem::Wgs84) => CoordinateSystem::Wgs84,
        Ok(pb::CoordinateSystem::Gcj02) => CoordinateSystem::Gcj02,
        Ok(pb::CoordinateSystem::Bd09) => CoordinateSystem::Bd09,
        Err(_) => {
            return Err(format!(
                "crs = {} is not a coordinate system this dispatcher knows; use COORDINATE_SYSTEM_WGS84, _GCJ02 or _BD09",
                location.crs
            ));
        }
    };
    Ok(system.to_wgs84(location.lon, location.lat))
}

pub fn mode_from_pb(mode: i32) -> Result<Mode, Rejection> {
    match pb::Mode::try_from(mode) {
        Ok(pb::Mode::Normal) => Ok(Mode::Normal),
        Ok(pb::Mode::EmergencyIv) => Ok(Mode::EmergencyIv),
        Ok(pb::Mode::EmergencyIii) => Ok(Mode::EmergencyIii),
        Ok(pb::Mode::EmergencyIi) => Ok(Mode::EmergencyIi),
        Ok(pb::Mode::EmergencyI) => Ok(Mode::EmergencyI),
        _ => Err(Rejection::InvalidArgument(
            "mode is missing or unknown; use MODE_NORMAL or MODE_EMERGENCY_IV, _III, _II, _I".to_string(),
        )),
    }
}

pub fn mode_to_pb(mode: Mode) -> pb::Mode {
    match mode {
        Mode::Normal => pb::Mode::Normal,
        Mode::EmergencyIv => pb::Mode::EmergencyIv,
        Mode::EmergencyIii => pb::Mode::EmergencyIii,
        Mode::EmergencyIi => pb::Mode::EmergencyIi,
        Mode::EmergencyI => pb::Mode::EmergencyI,
    }
}

pub fn status_from_pb(status: i32) -> Result<AgentStatus, Rejection> {
    match pb::AgentStatus::try_from(status) {
        Ok(pb::AgentStatus::Available) => Ok(AgentStatus::Available),
        Ok(pb::AgentStatus::Busy) => Ok(AgentStatus::Busy),
        Ok(pb::AgentStatus::OffDuty) => Ok(AgentStatus::OffDuty),
        _ => Err(Rejection::InvalidArgument("status is unknown; use available, busy or off duty".to_string())),
    }
}

pub fn status_to_pb(status: AgentStatus) -> pb::AgentStatus {
    match status {
        AgentStatus::Available => pb::AgentStatus::Available,
        AgentStatus::Busy => pb::AgentStatus::Busy,
        AgentStatus::OffDuty => pb::AgentStatus::OffDuty,
    }
}

fn role_from_pb(role: i32, agent: &str) -> Result<Role, Rejection> {
    Ok(match pb::Role::try_from(role) {
        Ok(pb::Role::CommunityWorker) => Role::CommunityWorker,
        Ok(pb::Role::GridLeader) => Role::GridLeader,
        Ok(pb::Role::BuildingLeader) => Role::BuildingLeader,
        Ok(pb::Role::UnitLeader) => Role::UnitLeader,
        Ok(pb::Role::RegisteredMember) => Role::RegisteredMember,
        Ok(pb::Role::SunkCadre) => Role::SunkCadre,
        Ok(pb::Role::Volunteer) => Role::Volunteer,
        Ok(pb::Role::NewEmployment) => Role::NewEmployment,
        Ok(pb::Role::PropertyStaff) => Role::PropertyStaff,
        Ok(pb::Role::OwnersCommittee) => Role::OwnersCommittee,
        _ => {
            return Err(Rejection::InvalidArgument(format!(
                "agent {}: role is missing or unknown; set one of the ROLE_ values",
                quote(agent)
            )));
        }
    })
}

fn role_to_pb(role: Role) -> pb::Role {
    match role {
        Role::CommunityWorker => pb::Role::CommunityWorker,
        Role::GridLeader => pb::Role::GridLeader,
        Role::BuildingLeader => pb::Role::BuildingLeader,
        Role::UnitLeader => pb::Role::UnitLeader,
        Role::RegisteredMember => pb::Role::RegisteredMember,
        Role::SunkCadre => pb::Role::SunkCadre,
        Role::Volunteer => pb::Role::Volunteer,
        Role::NewEmployment => pb::Role::NewEmployment,
        Role::PropertyStaff => pb::Role::PropertyStaff,
        Role::OwnersCommittee => pb::Role::OwnersCommittee,
    }
}

/// Unset means walking, as an empty `travel_mode` in the roster CSV does; a
/// value outside the enum is refused, as an unknown name in the CSV is.
fn travel_mode_from_pb(mode: i32, agent: &str) -> Result<TravelMode, Rejection> {
    match pb::TravelMode::try_from(mode) {
        Ok(pb::TravelMode::Unspecified | pb::TravelMode::Walk) => Ok(TravelMode::Walk),
        Ok(pb::TravelMode::Bike) => Ok(TravelMode::Bike),
        Ok(pb::TravelMode::Car) => Ok(TravelMode::Car),
        Err(_) => Err(Rejection::InvalidArgument(format!(
            "agent {}: travel_mode {mode} is unknown; use TRAVEL_MODE_WALK, TRAVEL_MODE_BIKE or TRAVEL_MODE_CAR, or leave \
             it unset for walking",
            quote(agent)
        ))),
    }
}

pub(crate) fn travel_mode_to_pb(mode: TravelMode) -> pb::TravelMode {
    match mode {
        TravelMode::Walk => pb::TravelMode::Walk,
        TravelMode::Bike => pb::TravelMode::Bike,
        TravelMode::Car => pb::TravelMode::Car,
    }
}

pub fn profile_from_pb(spec: &pb::AgentSpec) -> Result<AgentProfile, Rejection> {
    let id = spec.id.trim();
    let home = match &spec.home {
        Some(home) => Some(
            Position::checked(home.lon, home.lat)
                .map_err(|message| Rejection::InvalidArgument(format!("agent {} home: {message}", quote(id))))?,
        ),
        None => None,
    };
    Ok(AgentProfile {
        id: AgentId::new(id),
        name: spec.name.trim().to_string(),
        role: role_from_pb(spec.role, id)?,
        skills: normalise_skills(&spec.skills),
        phone: spec.phone.trim().to_string(),
        home_area: Some(spec.home_area_id.trim()).filter(|area| !area.is_empty()).map(AreaId::new),
        travel_mode: travel_mode_from_pb(spec.travel_mode, id)?,
        on_duty: spec.on_duty,
        home,
    })
}

pub fn profile_to_pb(profile: &AgentProfile) -> pb::AgentSpec {
    pb::AgentSpec {
        id: profile.id.to_string(),
        name: profile.name.clone(),
        role: role_to_pb(profile.role) as i32,
        skills: profile.skills.iter().cloned().collect(),
        phone: profile.phone.clone(),
        home_area_id: profile.home_area.as_ref().map(|area| area.to_string()).unwrap_or_default(),
        travel_mode: travel_mode_to_pb(profile.travel_mode) as i32,
        on_duty: profile.on_duty,
        home: profile.home.map(location),
    }
}

pub fn agent_to_pb(engine: &Engine, record: &AgentRecord, now: Millis) -> pb::Agent {
    let live = engine.live_agent(&record.profile.id);
    pb::Agent {
        spec: Some(profile_to_pb(&record.profile)),
        status: status_to_pb(record.status) as i32,
        connected: live.is_some_and(|live| live.connected),
        location: live.and_then(|live| live.location).map(location),
        location_at_ms: live.filter(|live| live.location.is_some()).map_or(0, |live| live.located_at.0),
        current_incident_id: record.current_incident.as_ref().map(|id| id.to_string()).unwrap_or_default(),
        grid_id: live
            .and_then(|live| engine.live_placement(live).at(AreaLevel::Grid))
            .map(|id| id.to_string())
            .unwrap_or_default(),
        assignments_recent: engine.recent_assignments(record, now),
        issued_token: String::new(),
    }
}

pub fn incident_status_to_pb(status: IncidentStatus) -> pb::IncidentStatus {
    match status {
        IncidentStatus::Waiting => pb::IncidentStatus::Waiting,
        IncidentStatus::Offered => pb::IncidentStatus::Offered,
        IncidentStatus::Staffed => pb::IncidentStatus::Staffed,
        IncidentStatus::Cancelled => pb::IncidentStatus::Cancelled,
        IncidentStatus::Closed => pb::IncidentStatus::Closed,
        IncidentStatus::Reported => pb::IncidentStatus::Reported,
        IncidentStatus::Merged => pb::IncidentStatus::Merged,
        IncidentStatus::Rejected => pb::IncidentStatus::Rejected,
    }
}

pub fn offer_to_pb(incident: &Incident, offer: &OfferRecord) -> pb::Offer {
    pb::Offer {
        offer_id: offer.id.to_string(),
        incident_id: incident.id.to_string(),
        category: incident.spec.category.clone(),
        priority: i32::from(incident.spec.priority),
        location: Some(location(incident.spec.at)),
        distance_m: offer.distance_m,
        eta_s: offer.eta_s,
        deadline_ms: offer.deadline.0,
        required_skills: incident.spec.skills.iter().cloned().collect(),
        description: incident.spec.description.clone(),
        agent_id: offer.agent.to_string(),
        level: level_to_pb(offer.level) as i32,
    }
}

pub fn incident_to_pb(engine: &Engine, incident: &Incident) -> pb::Incident {
    let placed = |level| incident.placement.at(level).map(|id: &AreaId| id.to_string()).unwrap_or_default();
    pb::Incident {
        id: incident.id.to_string(),
        category: incident.spec.category.clone(),
        priority: i32::from(incident.spec.priority),
        location: Some(location(incident.spec.at)),
        required_skills: incident.spec.skills.iter().cloned().collect(),
        headcount: incident.spec.headcount,
        description: incident.spec.description.clone(),
        status: incident_status_to_pb(incident.status()) as i32,
        reported_at_ms: incident.reported_at.0,
        reported_by: incident.reported_by.clone(),
        grid_id: placed(AreaLevel::Grid),
        community_id: placed(AreaLevel::Community),
        street_id: placed(AreaLevel::Street),
        district_id: placed(AreaLevel::District),
        scope: level_to_pb(incident.scope) as i32,
        mode: mode_to_pb(engine.state().effective_mode(&incident.placement).0) as i32,
        open_offers: incident.open_offers.values().map(|offer| offer_to_pb(incident, offer)).collect(),
        assignments: incident
            .assignments
            .iter()
            .map(|assignment| pb::Assignment {
                agent_id: assignment.agent.to_string(),
                offer_id: assignment.offer.to_string(),
                assigned_at_ms: assignment.assigned_at.0,
                arrived_at_ms: assignment.arrived_at.map_or(0, |at| at.0),
                completed_at_ms: assignment.completed_at.map_or(0, |at| at.0),
                feedback: assignment.feedback.clone().unwrap_or_default(),
                photo_refs: assignment.photo_refs.clone(),
            })
            .collect(),
        feedback: incident.feedback.clone().unwrap_or_default(),
        ended_at_ms: incident.ending.map_or(0, |(_, at)| at.0),
        reported_by_agent: incident.report.as_ref().map(|report| report.agent.to_string()).unwrap_or_default(),
        plan_activation_id: incident.activation.as_ref().map(|id| id.to_string()).unwrap_or_default(),
        merged_into: incident.merged_into.as_ref().map(|id| id.to_string()).unwrap_or_default(),
        report_text: incident.report.as_ref().map(|report| report.text.clone()).unwrap_or_default(),
        photo_ref: incident.report.as_ref().map(|report| report.photo_ref.clone()).unwrap_or_default(),
        photo_refs: incident.report.as_ref().map(|report| report.photo_refs.clone()).unwrap_or_default(),
        source_id: incident.spec.source_id.clone(),
        merged_from: incident.merged_from.iter().map(|id| id.to_string()).collect(),
        reporters: incident.reporters.iter().map(|id| id.to_string()).collect(),
        merged_photo_refs: incident
            .merged_from
            .iter()
            .filter_map(|id| engine.incident(id)?.report.as_ref())
            .flat_map(|report| report.photo_refs.iter().cloned())
            .collect(),
        reported_mode: incident.reported_mode.map_or(pb::Mode::Unspecified, mode_to_pb) as i32,
        unstaffable: engine.roster_shortfall(incident).map(|shortfall| pb::RosterShortfall {
            needed: shortfall.needed,
            possible: shortfall.possible,
            missing_skills: shortfall.missing_skills.into_iter().collect(),
            beyond_reach: shortfall.beyond_reach,
        }),
    }
}

/// An area's outline on the wire: polygons of rings of points.
pub fn polygons_to_pb(polygons: &pingji_engine::areas::Rings) -> Vec<pb::Polygon> {
    polygons
        .iter()
        .map(|rings| pb::Polygon {
            rings: rings
                .iter()
                .map(|ring| pb::Ring { points: ring.iter().map(|[lon, lat]| pb::Location::wgs84(*lon, *lat)).collect() })
                .collect(),
        })
        .collect()
}

pub fn area_to_pb(engine: &Engine, area: &pingji_engine::areas::AreaSpec, with_geometry: bool) -> pb::Area {
    let polygons = if with_geometry { polygons_to_pb(&area.polygons) } else { Vec::new() };
    let (own, effective) = engine.state().area_modes(&area.id);
    pb::Area {
        id: area.id.to_string(),
        name: area.name.clone(),
        level: level_to_pb(area.level) as i32,
        parent_id: area.parent.as_ref().map(|id| id.to_string()).unwrap_or_default(),
        mode: mode_to_pb(own) as i32,
        effective_mode: mode_to_pb(effective) as i32,
        centroid: engine.state().areas.centroid(&area.id).map(location),
        polygons,
    }
}

/// The journal's stored form of an event.
pub fn stored_event(event: &Event) -> StoredEvent {
    StoredEvent {
        seq: event.seq,
        at_ms: event.at.0,
        actor: event.actor.clone(),
        kind: event.kind.name().to_string(),
        incident_id: event.kind.incident_id().map(|id| id.to_string()),
        agent_id: event.kind.agent_id().map(|id| id.to_string()),
        area_id: event.kind.area_id().map(|id| id.to_string()),
        // Serialising plain data to JSON cannot fail.
        body: serde_json::to_string(&event.kind).unwrap_or_default(),
    }
}

/// An event read back from the journal.
pub fn event_from_stored(stored: &StoredEvent) -> Result<Event, String> {
    let kind: EventKind = serde_json::from_str(&stored.body)
        .map_err(|error| format!("event {} ({}) in the journal cannot be read: {error}", stored.seq, stored.kind))?;
    Ok(Event { seq: stored.seq, at: Millis(stored.at_ms), actor: stored.actor.clone(), kind })
}

/// The last message of a session the dispatcher ends (`code` says why:
/// `replaced`, `unauthenticated`); the client does not reconnect on its own.
pub fn session_ended(code: &str, reason: pb::ErrorReason, message: &str) -> pb::DispatchMessage {
    let refused = pb::Refused {
        code: code.to_string(),
        message: message.to_string(),
        offer_id: String::new(),
        incident_id: String::new(),
        reason: reason as i32,
    };
    pb::DispatchMessage { body: Some(pb::dispatch_message::Body::Refused(refused)) }
}

/// A person as a viewer sees them: phone masked, live and home locations
/// to about 1 km.
pub fn mask_agent(agent: &mut pb::Agent) {
    if let Some(spec) = agent.spec.as_mut() {
        spec.phone = mask_phone(&spec.phone);
        spec.home = spec.home.map(coarsen);
    }
    agent.location = agent.location.map(coarsen);
}

/// How far a viewer is told someone is: to the kilometre (about the
/// precision of a coarse location, 0.01 degrees), at least 1 km, with the
/// ETA for that distance. Exact distances from a few points would give
/// the person's live position away.
pub fn band_distance(nearby: &mut pb::NearbyAgent) {
    band(&mut nearby.distance_m, &mut nearby.eta_s);
}

/// An offer as a viewer sees it: the person's distance and ETA banded as
/// [`band_distance`] does.
pub fn band_offer(offer: &mut pb::Offer) {
    band(&mut offer.distance_m, &mut offer.eta_s);
}

/// A distance to the kilometre (at least 1 km) and the ETA for that distance.
pub fn band(distance_m: &mut f64, eta_s: &mut f64) {
    let banded = ((*distance_m / 1000.0).round() * 1000.0).max(1000.0);
    if *distance_m > 0.0 {
        *eta_s = (*eta_s * banded / *distance_m).round();
    }
    *distance_m = banded;
}

/// A location rounded to 0.01 degrees: about 1.1 km north-south and under
/// 1 km east-west at Chinese latitudes.
pub fn coarsen(at: pb::Location) -> pb::Location {
    pb::Location::wgs84((at.lon * 100.0).round() / 100.0, (at.lat * 100.0).round() / 100.0)
}

/// "13912345678" becomes "139****5678".
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().collect();
    if digits.len() < 7 {
        return "*".repeat(digits.len());
    }
    let head: String = digits[..3].iter().collect();
    let tail: String = digits[digits.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// The messages an event sends to people's sessions.
pub fn messages_for_agents(engine: &Engine, event: &Event) -> Vec<(AgentId, pb::DispatchMessage)> {
    use pb::dispatch_message::Body;
    let state = engine.state();
    let message = |body| pb::DispatchMessage { body: Some(body) };
    match &event.kind {
        EventKind::MessageSent { message: id, recipients, .. } => match state.messages.get(id) {
            Some(record) => {
                recipients.iter().map(|agent| (agent.clone(), message(Body::Message(message_for_person(record))))).collect()
            }
            None => Vec::new(),
        },
        EventKind::OfferSent { offer } => {
            let incident = &state.incidents[&offer.incident];
            vec![(offer.agent.clone(), message(Body::Offer(offer_to_pb(incident, offer))))]
        }
        EventKind::Assigned { offer, incident, agent } => {
            let record = &state.incidents[incident];
            let mut confirmed = offer_to_pb(
                record,
                &OfferRecord {
                    id: offer.clone(),
                    incident: incident.clone(),
                    agent: agent.clone(),
                    sent_at: event.at,
                    deadline: event.at,
                    distance_m: 0.0,
                    eta_s: 0.0,
                    level: record.scope,
                    flat: false,
                    origin: None,
                    from_area: None,
                },
            );
            confirmed.deadline_ms = 0;
            let mut messages =
                vec![(agent.clone(), message(Body::AssignmentConfirmed(pb::AssignmentConfirmed { offer: Some(confirmed) })))];
            if let Some(due) = safety_check_due(engine, agent).filter(|due| due.due_ms != 0) {
                messages.push((agent.clone(), message(Body::SafetyCheckDue(due))));
            }
            messages
        }
        EventKind::SafetyCheckIn { agent, .. } | EventKind::SafetyCheckMissed { agent, .. } => {
            let due = safety_check_due(engine, agent).unwrap_or_default();
            vec![(agent.clone(), message(Body::SafetyCheckDue(due)))]
        }
        EventKind::HelpRequested { agent, incident, at, text, team, .. } => {
            let name = state.agents.get(agent).map(|record| record.profile.name.clone()).unwrap_or_default();
            let call = pb::HelpCall {
                agent_id: agent.to_string(),
                name,
                incident_id: incident.to_string(),
                location: Some(location(*at)),
                text: text.clone(),
                at_ms: event.at.0,
            };
            team.iter().map(|member| (member.clone(), message(Body::HelpCall(call.clone())))).collect()
        }
        EventKind::OfferWithdrawn { offer, incident, agent, reason: WithdrawReason::Filled } => vec![(
            agent.clone(),
            message(Body::NoLongerNeeded(pb::NoLongerNeeded { offer_id: offer.to_string(), incident_id: incident.to_string() })),
        )],
        EventKind::OfferWithdrawn { offer, incident, agent, reason } => {
            let words = match reason {
                WithdrawReason::Disconnected => "your session ended",
                WithdrawReason::Unavailable => "you are no longer available",
                WithdrawReason::IncidentEnded => "the incident was cancelled or closed",
                WithdrawReason::Filled => "no longer needed",
            };
            let cause = match reason {
                WithdrawReason::Disconnected => pb::WithdrawReason::Disconnected,
                WithdrawReason::Unavailable => pb::WithdrawReason::Unavailable,
                WithdrawReason::IncidentEnded => pb::WithdrawReason::IncidentEnded,
                WithdrawReason::Filled => pb::WithdrawReason::Filled,
            };
            vec![(agent.clone(), withdrawn(offer.to_string(), incident, words, cause))]
        }
        EventKind::OfferTimedOut { offer, incident, agent } => {
            vec![(agent.clone(), withdrawn(offer.to_string(), incident, "the offer timed out", pb::WithdrawReason::TimedOut))]
        }
        EventKind::IncidentCancelled { incident, released, reason } => released
            .iter()
            .map(|agent| {
                let ended = pb::AssignmentEnded { incident_id: incident.to_string(), reason: format!("cancelled: {reason}") };
                (agent.clone(), message(Body::AssignmentEnded(ended)))
            })
            .chain(to_reporters(state, incident, |_| {
                report_outcome(incident, pb::report_outcome::Kind::Cancelled, incident, reason, "")
            }))
            .collect(),
        EventKind::IncidentClosed { incident, released, feedback } => released
            .iter()
            .map(|agent| {
                let ended =
                    pb::AssignmentEnded { incident_id: incident.to_string(), reason: "closed by an operator".to_string() };
                (agent.clone(), message(Body::AssignmentEnded(ended)))
            })
            .chain(to_reporters(state, incident, |_| {
                report_outcome(incident, pb::report_outcome::Kind::Closed, incident, "", feedback)
            }))
            .collect(),
        EventKind::CallupIssued { callup, area, reason, deadline, people, .. } => people
            .iter()
            .map(|agent| {
                let call = pb::CallUp {
                    callup_id: callup.to_string(),
                    area_id: area.to_string(),
                    reason: reason.clone(),
                    deadline_ms: deadline.0,
                };
                (agent.clone(), message(Body::CallUp(call)))
            })
            .collect(),
        EventKind::CallupStoodDown { callup, reason } => state
            .callups
            .get(callup)
            .map(|record| {
                record
                    .people
                    .keys()
                    .map(|agent| {
                        let stand_down = pb::StandDown {
                            callup_id: callup.to_string(),
                            area_id: record.area.to_string(),
                            reason: reason.clone(),
                        };
                        (agent.clone(), message(Body::StandDown(stand_down)))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        EventKind::FieldReported { incident, agent, .. } => {
            vec![(agent.clone(), report_outcome(incident, pb::report_outcome::Kind::Received, incident, "", ""))]
        }
        EventKind::ReportAccepted { incident, .. } => {
            to_reporters(state, incident, |_| report_outcome(incident, pb::report_outcome::Kind::Accepted, incident, "", ""))
        }
        EventKind::ReportMerged { incident, into } => to_reporters(state, incident, |_| {
            report_outcome(incident, pb::report_outcome::Kind::Merged, into, &format!("merged into {into}"), "")
        }),
        EventKind::ReportRejected { incident, reason } => {
            to_reporters(state, incident, |_| report_outcome(incident, pb::report_outcome::Kind::Rejected, incident, reason, ""))
        }
        EventKind::ModeSwitched { area, reason, .. } => engine
            .connected_agents_in(area)
            .into_iter()
            .map(|agent| {
                let mode = engine.mode_for_agent(&agent);
                let changed = pb::ModeChanged {
                    area_id: area.to_string(),
                    mode: mode_to_pb(mode) as i32,
                    reason: reason.clone(),
                    location_interval_s: engine.policy().for_mode(mode).location_interval_s,
                };
                (agent, message(Body::ModeChanged(changed)))
            })
            .collect(),
        EventKind::BorderReserved { reservation } => {
            vec![(reservation.agent.clone(), message(Body::Offer(border::offer_to_pb(reservation))))]
        }
        EventKind::BorderAccepted { offer, agent, .. } => match state.border.get(offer) {
            Some(reservation) => {
                let mut confirmed = border::offer_to_pb(reservation);
                confirmed.deadline_ms = 0;
                let mut messages =
                    vec![(agent.clone(), message(Body::AssignmentConfirmed(pb::AssignmentConfirmed { offer: Some(confirmed) })))];
                if let Some(due) = safety_check_due(engine, agent).filter(|due| due.due_ms != 0) {
                    messages.push((agent.clone(), message(Body::SafetyCheckDue(due))));
                }
                messages
            }
            None => Vec::new(),
        },
        EventKind::BorderReleased { offer, incident, agent, end, .. } => match end {
            ReservationEnd::Declined => Vec::new(),
            ReservationEnd::Refused => vec![(
                agent.clone(),
                message(Body::NoLongerNeeded(pb::NoLongerNeeded {
                    offer_id: offer.to_string(),
                    incident_id: incident.to_string(),
                })),
            )],
            ReservationEnd::Ended => {
                let ended = pb::AssignmentEnded {
                    incident_id: incident.to_string(),
                    reason: "ended at the incident's district".to_owned(),
                };
                vec![(agent.clone(), message(Body::AssignmentEnded(ended)))]
            }
            ReservationEnd::Expired | ReservationEnd::Withdrawn => vec![(
                agent.clone(),
                withdrawn(offer.to_string(), incident, "the offer was withdrawn or timed out", pb::WithdrawReason::TimedOut),
            )],
        },
        _ => Vec::new(),
    }
}

/// The reporters of an incident (field reports), each with a message.
fn to_reporters(
    state: &pingji_engine::engine::State,
    incident: &IncidentId,
    message: impl Fn(&AgentId) -> pb::DispatchMessage,
) -> Vec<(AgentId, pb::DispatchMessage)> {
    state
        .incidents
        .get(incident)
        .map(|record| record.reporters.iter().map(|agent| (agent.clone(), message(agent))).collect())
        .unwrap_or_default()
}

fn report_outcome(
    report: &IncidentId,
    kind: pb::report_outcome::Kind,
    incident: &IncidentId,
    reason: &str,
    feedback: &str,
) -> pb::DispatchMessage {
    // The words are the kind's name: "received", "closed", ...
    let outcome = kind.as_str_name().trim_start_matches("KIND_").to_lowercase();
    pb::DispatchMessage {
        body: Some(pb::dispatch_message::Body::ReportOutcome(pb::ReportOutcome {
            report_id: report.to_string(),
            outcome,
            kind: kind as i32,
            incident_id: incident.to_string(),
            reason: reason.to_string(),
            feedback: feedback.to_string(),
        })),
    }
}

fn withdrawn(offer_id: String, incident: &IncidentId, reason: &str, cause: pb::WithdrawReason) -> pb::DispatchMessage {
    pb::DispatchMessage {
        body: Some(pb::dispatch_message::Body::OfferWithdrawn(pb::OfferWithdrawn {
            offer_id,
            incident_id: incident.to_string(),
            reason: reason.to_string(),
            cause: cause as i32,
        })),
    }
}

/// The first message of a session.
pub fn welcome(engine: &Engine, agent: &AgentId, session: u64, now: Millis) -> Option<pb::DispatchMessage> {
    let record = engine.state().agents.get(agent)?;
    let mode = engine.mode_for_agent(agent);
    let open_offers = record
        .open_offer
        .as_ref()
        .and_then(|(offer, incident)| match engine.state().incidents.get(incident) {
            Some(incident) => Some(offer_to_pb(incident, incident.open_offers.get(offer)?)),
            // Another shard's incident: what the border reservation shows.
            None => engine.state().border.get(offer).map(border::offer_to_pb),
        })
        .into_iter()
        .collect();
    let current_incident = record
        .current_incident
        .as_ref()
        .and_then(|id| engine.state().incidents.get(id))
        .map(|incident| incident_to_pb(engine, incident));
    Some(pb::DispatchMessage {
        body: Some(pb::dispatch_message::Body::Welcome(pb::Welcome {
            agent: Some(agent_to_pb(engine, record, now)),
            mode: mode_to_pb(mode) as i32,
            location_interval_s: engine.policy().for_mode(mode).location_interval_s,
            open_offers,
            current_incident,
            call_ups: open_callups_for(engine, agent),
            session_id: session,
            unread_messages: engine.unread_messages(agent).into_iter().map(message_for_person).collect(),
            safety_check_due: safety_check_due(engine, agent).filter(|due| due.due_ms != 0),
        })),
    })
}

/// When a person on an assignment must next check in (报平安): due when
/// the clock says; after a welfare check went out, overdue since the last
/// miss until they check in. `None` without an assignment that asks for
/// check-ins.
pub fn safety_check_due(engine: &Engine, agent: &AgentId) -> Option<pb::SafetyCheckDue> {
    if let Some(due) = engine.safety_due(agent) {
        return Some(pb::SafetyCheckDue {
            incident_id: due.incident.to_string(),
            due_ms: due.due.0,
            interval_s: u32::try_from(due.interval_s).unwrap_or(u32::MAX),
            misses: due.misses,
        });
    }
    let clock = engine.state().safety.get(agent)?;
    let holds = engine.state().agents.get(agent).and_then(|record| record.current_incident.as_ref());
    if holds != Some(&clock.incident) || clock.welfare.is_none() {
        return Some(pb::SafetyCheckDue::default());
    }
    Some(pb::SafetyCheckDue {
        incident_id: clock.incident.to_string(),
        due_ms: clock.since.0,
        interval_s: 0,
        misses: clock.misses,
    })
}

/// Who a message is for, on the wire.
pub fn audience_to_pb(to: &Audience) -> pb::MessageAudience {
    use pb::message_audience::To;
    let to = match to {
        Audience::Agent(agent) => To::AgentId(agent.to_string()),
        Audience::Incident(incident) => To::IncidentId(incident.to_string()),
        Audience::Area(area) => To::AreaId(area.to_string()),
    };
    pb::MessageAudience { to: Some(to) }
}

/// Who a message is for, from the wire (ids trimmed); `None` when not said.
pub fn audience_from_pb(to: Option<&pb::MessageAudience>) -> Option<Audience> {
    use pb::message_audience::To;
    Some(match to?.to.as_ref()? {
        To::AgentId(agent) => Audience::Agent(AgentId::new(agent.trim())),
        To::IncidentId(incident) => Audience::Incident(IncidentId::new(incident.trim())),
        To::AreaId(area) => Audience::Area(AreaId::new(area.trim())),
    })
}

/// A message as operators see it: who it reached, replies and read receipts.
pub fn message_to_pb(record: &MessageRecord) -> pb::OperatorMessage {
    pb::OperatorMessage {
        recipient_ids: record.recipients.iter().map(ToString::to_string).collect(),
        replies: record
            .replies
            .iter()
            .map(|reply| pb::MessageReplyRecord {
                agent_id: reply.agent.to_string(),
                text: reply.text.clone(),
                at_ms: reply.at.0,
            })
            .collect(),
        read_by: record
            .read_by
            .iter()
            .map(|(agent, at)| pb::MessageReceipt { agent_id: agent.to_string(), read_at_ms: at.0 })
            .collect(),
        ..message_for_person(record)
    }
}

/// A message as a person gets it: not who else it reached or what they said.
pub fn message_for_person(record: &MessageRecord) -> pb::OperatorMessage {
    pb::OperatorMessage {
        id: record.id.clone(),
        sent_at_ms: record.sent_at.0,
        from: record.from.clone(),
        to: Some(audience_to_pb(&record.to)),
        text: record.text.clone(),
        ..Default::default()
    }
}

/// Call-ups a person has not checked in to yet.
fn open_callups_for(engine: &Engine, agent: &AgentId) -> Vec<pb::CallUp> {
    engine
        .state()
        .callups
        .values()
        .filter(|callup| callup.is_open() && callup.people.get(agent).is_some_and(Option::is_none))
        .map(|callup| pb::CallUp {
            callup_id: callup.id.to_string(),
            area_id: callup.area.to_string(),
            reason: callup.reason.clone(),
            deadline_ms: callup.deadline.0,
        })
        .collect()
}

/// Where a plan's task goes, on the wire.
pub fn task_place_to_pb(place: &TaskPlace) -> pb::TaskPlace {
    use pb::task_place::Kind;
    match place {
        TaskPlace::ServiceCentres => pb::TaskPlace { kind: Kind::ServiceCentres as i32, ..pb::TaskPlace::default() },
        TaskPlace::Centroid => pb::TaskPlace { kind: Kind::Centroid as i32, ..pb::TaskPlace::default() },
        TaskPlace::At(at) => pb::TaskPlace { kind: Kind::At as i32, at: Some(location(*at)), area_ids: Vec::new() },
        TaskPlace::Areas(areas) => {
            pb::TaskPlace { kind: Kind::Areas as i32, at: None, area_ids: areas.iter().map(ToString::to_string).collect() }
        }
    }
}

pub fn role_to_pb_value(role: Role) -> i32 {
    role_to_pb(role) as i32
}

pub fn role_from_pb_value(role: i32) -> Result<Role, Rejection> {
    role_from_pb(role, "call-up")
}

pub fn plan_to_pb(plan: &pingji_engine::plans::PlanSpec) -> pb::Plan {
    pb::Plan {
        id: plan.id.to_string(),
        name: plan.name.clone(),
        category: plan.category.clone(),
        grade: mode_to_pb(plan.grade) as i32,
        auto_activate: plan.auto_activate,
        tasks: plan
            .tasks
            .iter()
            .map(|task| pb::PlanTask {
                category: task.category.clone(),
                r#where: task.place.summary(),
                required_skills: task.skills.iter().cloned().collect(),
                headcount: task.need,
                priority: i32::from(task.priority),
                description: task.description.clone(),
                place: Some(task_place_to_pb(&task.place)),
            })
            .collect(),
        call_up: plan.call_up.iter().map(|role| role_to_pb(*role) as i32).collect(),
        public_alert: plan.public.as_ref().map(public_to_pb),
        supplies: plan
            .supplies
            .iter()
            .map(|supply| pb::PlanSupply {
                item_id: supply.item.to_string(),
                quantity: supply.quantity,
                to_depot_ids: supply.to.iter().map(ToString::to_string).collect(),
            })
            .collect(),
        open_shelter_ids: plan.shelters.iter().map(ToString::to_string).collect(),
    }
}

pub fn public_to_pb(public: &pingji_engine::cap::PublicAlert) -> pb::CapPublicAlert {
    pb::CapPublicAlert {
        headline: public.headline.clone(),
        description: public.description.clone(),
        instruction: public.instruction.clone(),
        category: public.category.clone(),
        event: public.event.clone(),
        urgency: public.urgency.clone(),
        severity: public.severity.clone(),
        certainty: public.certainty.clone(),
        inbound_events: public.inbound_events.clone(),
    }
}

pub fn public_from_pb(public: &pb::CapPublicAlert) -> pingji_engine::cap::PublicAlert {
    pingji_engine::cap::PublicAlert {
        headline: public.headline.clone(),
        description: public.description.clone(),
        instruction: public.instruction.clone(),
        category: public.category.clone(),
        event: public.event.clone(),
        urgency: public.urgency.clone(),
        severity: public.severity.clone(),
        certainty: public.certainty.clone(),
        inbound_events: public.inbound_events.clone(),
    }
}

pub fn activation_to_pb(activation: &pingji_engine::engine::Activation) -> pb::PlanActivation {
    pb::PlanActivation {
        id: activation.id.to_string(),
        plan_id: activation.plan.to_string(),
        area_id: activation.area.to_string(),
        activated_at_ms: activation.at.0,
        activated_by: activation.by.clone(),
        reason: activation.reason.clone(),
        automatic: activation.automatic,
        incident_ids: activation.incidents.iter().map(|id| id.to_string()).collect(),
        ended_at_ms: activation.ended.map_or(0, |at| at.0),
        callup_id: activation.callup.as_ref().map(|id| id.to_string()).unwrap_or_default(),
    }
}

pub fn callup_to_pb(engine: &Engine, callup: &pingji_engine::engine::Callup) -> pb::Callup {
    let people: Vec<pb::CalledPerson> = callup
        .people
        .iter()
        .map(|(agent, checked_in)| {
            let record = engine.state().agents.get(agent);
            pb::CalledPerson {
                agent_id: agent.to_string(),
                name: record.map(|record| record.profile.name.clone()).unwrap_or_default(),
                role: record.map_or(0, |record| role_to_pb(record.profile.role) as i32),
                checked_in_at_ms: checked_in.map_or(0, |at| at.0),
                connected: engine.live_agent(agent).is_some_and(|live| live.connected),
                reached: callup
                    .reached
                    .get(agent)
                    .map(|(channel, outcome)| format!("{} {}", channel.name(), outcome.name()))
                    .unwrap_or_default(),
            }
        })
        .collect();
    let checked_in = people.iter().filter(|person| person.checked_in_at_ms > 0).count() as u32;
    pb::Callup {
        id: callup.id.to_string(),
        area_id: callup.area.to_string(),
        reason: callup.reason.clone(),
        issued_by: callup.by.clone(),
        issued_at_ms: callup.issued_at.0,
        deadline_ms: callup.deadline.0,
        ended_at_ms: callup.ended.map_or(0, |at| at.0),
        missing: people.len() as u32 - checked_in,
        checked_in,
        people,
    }
}
