//! Border reservations (see [`pingji_engine::border`]) to and from the wire.

use std::collections::BTreeSet;

use pingji_engine::border::{BorderOfferView, BorderReservation, ReservationEnd, ReservationState};
use pingji_engine::event::EventKind;
use pingji_engine::ids::{AgentId, IncidentId, Millis, OfferId};
use pingji_engine::spatial::Position;
use pingji_proto::v1 as pb;
use pingji_proto::v1::event::Body;

use super::place::{level_from_pb, level_to_pb, location};

/// The body of a border event.
pub fn event_to_pb(kind: &BorderKind<'_>) -> Body {
    use pb::event as e;
    match kind {
        BorderKind::Reserved(reservation) => Body::BorderReserved(e::BorderReserved {
            offer_id: reservation.offer.to_string(),
            incident_id: reservation.incident.to_string(),
            agent_id: reservation.agent.to_string(),
            incident_shard: reservation.incident_shard.clone(),
            epoch: reservation.epoch,
            deadline_ms: reservation.deadline.0,
            expires_at_ms: reservation.expires_at.0,
            distance_m: reservation.view.distance_m,
            eta_s: reservation.view.eta_s,
            sent_at_ms: reservation.sent_at.0,
            category: reservation.view.category.clone(),
            priority: i32::from(reservation.view.priority),
            location: Some(location(reservation.view.at)),
            required_skills: reservation.view.skills.iter().cloned().collect(),
            description: reservation.view.description.clone(),
            level: level_to_pb(reservation.view.level) as i32,
            safety_interval_s: reservation.view.safety_interval_s.map_or(0, |seconds| u32::try_from(seconds).unwrap_or(u32::MAX)),
        }),
        BorderKind::Accepted(offer, incident, agent) => Body::BorderAccepted(e::BorderAccepted {
            offer_id: offer.to_string(),
            incident_id: incident.to_string(),
            agent_id: agent.to_string(),
        }),
        BorderKind::Confirmed(offer, incident, agent) => Body::BorderConfirmed(e::BorderConfirmed {
            offer_id: offer.to_string(),
            incident_id: incident.to_string(),
            agent_id: agent.to_string(),
        }),
        BorderKind::Released(offer, incident, agent, end, reason) => Body::BorderReleased(e::BorderReleased {
            offer_id: offer.to_string(),
            incident_id: incident.to_string(),
            agent_id: agent.to_string(),
            end: end.name().to_owned(),
            reason: (*reason).clone(),
        }),
    }
}

/// The border events' fields, borrowed from an [`EventKind`].
pub enum BorderKind<'a> {
    Reserved(&'a BorderReservation),
    Accepted(&'a OfferId, &'a IncidentId, &'a AgentId),
    Confirmed(&'a OfferId, &'a IncidentId, &'a AgentId),
    Released(&'a OfferId, &'a IncidentId, &'a AgentId, ReservationEnd, &'a String),
}

/// A border reservation from its event body.
pub fn reserved_from_pb(reserved: &pb::event::BorderReserved) -> Result<EventKind, String> {
    let level = level_from_pb(reserved.level).ok_or("level is not an area level")?;
    let priority = u8::try_from(reserved.priority).map_err(|_| format!("priority {} is out of range", reserved.priority))?;
    let at = match reserved.location.as_ref() {
        Some(at) => Position::checked(at.lon, at.lat).map_err(|error| format!("location: {error}"))?,
        None => return Err("location is missing".to_owned()),
    };
    Ok(EventKind::BorderReserved {
        reservation: BorderReservation {
            offer: OfferId::new(&reserved.offer_id),
            incident: IncidentId::new(&reserved.incident_id),
            incident_shard: reserved.incident_shard.clone(),
            epoch: reserved.epoch,
            agent: AgentId::new(&reserved.agent_id),
            sent_at: Millis(reserved.sent_at_ms),
            deadline: Millis(reserved.deadline_ms),
            expires_at: Millis(reserved.expires_at_ms),
            view: BorderOfferView {
                category: reserved.category.clone(),
                priority,
                at,
                skills: reserved.required_skills.iter().cloned().collect::<BTreeSet<_>>(),
                description: reserved.description.clone(),
                distance_m: reserved.distance_m,
                eta_s: reserved.eta_s,
                level,
                safety_interval_s: (reserved.safety_interval_s != 0).then_some(u64::from(reserved.safety_interval_s)),
            },
            state: ReservationState::Offered,
        },
    })
}

/// How a border reservation ended, from its name.
pub fn end_from_pb(end: &str) -> Result<ReservationEnd, String> {
    ReservationEnd::from_name(end).ok_or_else(|| format!("{end:?} is not how a border reservation ends"))
}

/// What the person is shown of a border offer, as an offer.
pub fn offer_to_pb(reservation: &BorderReservation) -> pb::Offer {
    pb::Offer {
        offer_id: reservation.offer.to_string(),
        incident_id: reservation.incident.to_string(),
        category: reservation.view.category.clone(),
        priority: i32::from(reservation.view.priority),
        location: Some(location(reservation.view.at)),
        distance_m: reservation.view.distance_m,
        eta_s: reservation.view.eta_s,
        deadline_ms: reservation.deadline.0,
        required_skills: reservation.view.skills.iter().cloned().collect(),
        description: reservation.view.description.clone(),
        agent_id: reservation.agent.to_string(),
        level: level_to_pb(reservation.view.level) as i32,
    }
}
