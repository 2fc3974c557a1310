//! CAP records between the engine's form and the contract's.

use pingji_engine::cap::{
    CapCircle, CapMsgType, CapReference, CapSuggestion, CapSuggestionSpec, IssuedCapAlert, ReceivedCapAlert, SuggestionState,
};
use pingji_engine::ids::{ActivationId, AreaId, Millis, PlanId};
use pingji_proto::v1 as pb;

use super::{mode_from_pb, mode_to_pb};

fn rings_to_pb(rings: &[Vec<[f64; 2]>]) -> Vec<pb::Ring> {
    rings
        .iter()
        .map(|ring| pb::Ring { points: ring.iter().map(|[lon, lat]| pb::Location::wgs84(*lon, *lat)).collect() })
        .collect()
}

fn rings_from_pb(rings: &[pb::Ring]) -> Vec<Vec<[f64; 2]>> {
    rings.iter().map(|ring| ring.points.iter().map(|point| [point.lon, point.lat]).collect()).collect()
}

pub fn issued_to_pb(alert: &IssuedCapAlert, sent: Option<Millis>) -> pb::CapIssuedAlert {
    pb::CapIssuedAlert {
        identifier: alert.identifier.clone(),
        msg_type: alert.msg_type.name().to_string(),
        references: alert
            .references
            .iter()
            .map(|reference| pb::CapReference { identifier: reference.identifier.clone(), sent_ms: reference.sent.0 })
            .collect(),
        activation_id: alert.activation.to_string(),
        plan_id: alert.plan.to_string(),
        area_id: alert.area.to_string(),
        area_name: alert.area_name.clone(),
        mode: mode_to_pb(alert.mode) as i32,
        headline: alert.headline.clone(),
        description: alert.description.clone(),
        instruction: alert.instruction.clone(),
        category: alert.category.clone(),
        event: alert.event.clone(),
        urgency: alert.urgency.clone(),
        severity: alert.severity.clone(),
        certainty: alert.certainty.clone(),
        polygons: super::polygons_to_pb(&alert.polygons),
        sent_ms: sent.map_or(0, |at| at.0),
    }
}

pub fn issued_from_pb(alert: &pb::CapIssuedAlert) -> Result<IssuedCapAlert, String> {
    Ok(IssuedCapAlert {
        identifier: alert.identifier.clone(),
        msg_type: CapMsgType::parse(&alert.msg_type)
            .ok_or_else(|| format!("msg_type {:?} is not Alert, Update or Cancel", alert.msg_type))?,
        references: alert
            .references
            .iter()
            .map(|reference| CapReference { identifier: reference.identifier.clone(), sent: Millis(reference.sent_ms) })
            .collect(),
        activation: ActivationId::new(&alert.activation_id),
        plan: PlanId::new(&alert.plan_id),
        area: AreaId::new(&alert.area_id),
        area_name: alert.area_name.clone(),
        mode: mode_from_pb(alert.mode).map_err(|rejection| rejection.to_string())?,
        headline: alert.headline.clone(),
        description: alert.description.clone(),
        instruction: alert.instruction.clone(),
        category: alert.category.clone(),
        event: alert.event.clone(),
        urgency: alert.urgency.clone(),
        severity: alert.severity.clone(),
        certainty: alert.certainty.clone(),
        polygons: alert
            .polygons
            .iter()
            .map(|polygon| {
                polygon.rings.iter().map(|ring| ring.points.iter().map(|point| [point.lon, point.lat]).collect()).collect()
            })
            .collect(),
    })
}

pub fn received_to_pb(alert: &ReceivedCapAlert, received_at: Option<Millis>) -> pb::CapReceivedAlert {
    pb::CapReceivedAlert {
        identifier: alert.identifier.clone(),
        sender: alert.sender.clone(),
        sent: alert.sent.clone(),
        status: alert.status.clone(),
        msg_type: alert.msg_type.clone(),
        references: alert.references.clone(),
        category: alert.category.clone(),
        event: alert.event.clone(),
        urgency: alert.urgency.clone(),
        severity: alert.severity.clone(),
        certainty: alert.certainty.clone(),
        headline: alert.headline.clone(),
        area_desc: alert.area_desc.clone(),
        polygons: rings_to_pb(&alert.polygons),
        circles: alert
            .circles
            .iter()
            .map(|circle| pb::CapCircle { lon: circle.lon, lat: circle.lat, radius_km: circle.radius_km })
            .collect(),
        received_at_ms: received_at.map_or(0, |at| at.0),
    }
}

pub fn received_from_pb(alert: &pb::CapReceivedAlert) -> ReceivedCapAlert {
    ReceivedCapAlert {
        identifier: alert.identifier.clone(),
        sender: alert.sender.clone(),
        sent: alert.sent.clone(),
        status: alert.status.clone(),
        msg_type: alert.msg_type.clone(),
        references: alert.references.clone(),
        category: alert.category.clone(),
        event: alert.event.clone(),
        urgency: alert.urgency.clone(),
        severity: alert.severity.clone(),
        certainty: alert.certainty.clone(),
        headline: alert.headline.clone(),
        area_desc: alert.area_desc.clone(),
        polygons: rings_from_pb(&alert.polygons),
        circles: alert
            .circles
            .iter()
            .map(|circle| CapCircle { lon: circle.lon, lat: circle.lat, radius_km: circle.radius_km })
            .collect(),
    }
}

pub fn suggestion_spec_to_pb(spec: &CapSuggestionSpec) -> pb::CapSuggestionSpec {
    pb::CapSuggestionSpec {
        id: spec.id.clone(),
        area_ids: spec.areas.iter().map(ToString::to_string).collect(),
        mode: mode_to_pb(spec.mode) as i32,
        plan_id: spec.plan.as_ref().map(ToString::to_string).unwrap_or_default(),
    }
}

pub fn suggestion_spec_from_pb(spec: &pb::CapSuggestionSpec) -> Result<CapSuggestionSpec, String> {
    Ok(CapSuggestionSpec {
        id: spec.id.clone(),
        areas: spec.area_ids.iter().map(AreaId::new).collect(),
        mode: mode_from_pb(spec.mode).map_err(|rejection| rejection.to_string())?,
        plan: Some(&spec.plan_id).filter(|id| !id.is_empty()).map(PlanId::new),
    })
}

pub fn suggestion_to_pb(suggestion: &CapSuggestion) -> pb::CapSuggestion {
    pb::CapSuggestion {
        spec: Some(suggestion_spec_to_pb(&suggestion.spec)),
        alert: Some(received_to_pb(&suggestion.alert, Some(suggestion.received_at))),
        received_at_ms: suggestion.received_at.0,
        state: suggestion.state.name().to_string(),
        decided_by: suggestion.decided_by.clone(),
        reason: suggestion.reason.clone(),
        decided_at_ms: suggestion.decided_at.map_or(0, |at| at.0),
    }
}

/// Whether a suggestion is still waiting for the commander.
pub fn is_pending(suggestion: &CapSuggestion) -> bool {
    suggestion.state == SuggestionState::Pending
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingji_engine::event::{Event, EventKind};
    use pingji_engine::policy::Mode;

    fn round_trip(kind: EventKind) {
        let event = Event { seq: 7, at: Millis(1_757_808_000_000), actor: "cap:weather".into(), kind };
        let wire = crate::convert::event::event_to_pb(&event);
        assert_eq!(crate::convert::event::event_from_pb(&wire).as_ref(), Ok(&event));
    }

    #[test]
    fn cap_events_cross_the_wire_unchanged() {
        round_trip(EventKind::CapAlertIssued {
            alert: IssuedCapAlert {
                identifier: "pingji-cap-000002".into(),
                msg_type: CapMsgType::Update,
                references: vec![CapReference { identifier: "pingji-cap-000001".into(), sent: Millis(1) }],
                activation: ActivationId::new("flood-ii@d1-s1-1"),
                plan: PlanId::new("flood-ii"),
                area: AreaId::new("d1-s1"),
                area_name: "湖滨街道".into(),
                mode: Mode::EmergencyI,
                headline: "h".into(),
                description: "d".into(),
                instruction: "i".into(),
                category: "Met".into(),
                event: "暴雨内涝".into(),
                urgency: "Immediate".into(),
                severity: "Extreme".into(),
                certainty: "Likely".into(),
                polygons: vec![vec![vec![[120.1, 30.2], [120.2, 30.2], [120.2, 30.3], [120.1, 30.2]]]],
            },
        });
        round_trip(EventKind::CapAlertReceived {
            alert: ReceivedCapAlert {
                identifier: "TY-1".into(),
                sender: "weather".into(),
                references: vec!["TY-0".into()],
                polygons: vec![vec![[120.1, 30.2], [120.2, 30.2], [120.2, 30.3], [120.1, 30.2]]],
                circles: vec![CapCircle { lon: 120.1, lat: 30.2, radius_km: 5.0 }],
                ..ReceivedCapAlert::default()
            },
            suggestion: Some(CapSuggestionSpec {
                id: "cap-0001".into(),
                areas: vec![AreaId::new("d1-s1"), AreaId::new("d2-s1")],
                mode: Mode::EmergencyIi,
                plan: Some(PlanId::new("flood-ii")),
            }),
            withdrawn: vec!["cap-0000".into()],
        });
        round_trip(EventKind::CapSuggestionApproved { suggestion: "cap-0001".into() });
        round_trip(EventKind::CapSuggestionDismissed { suggestion: "cap-0001".into(), reason: "已处置".into() });
    }
}
