//! JSON for `--json`: the proto messages written out by hand (prost types do
//! not derive `Serialize`), with the proto's snake_case field names and the
//! enums as short names (see [`pingji_client::labels`]).
//!
//! Personal data (phone, home location) appears only where the brief of the
//! command is to show one person ([`agent_detail`]), not in lists.

use pingji_proto::v1 as pb;
use serde_json::{Value, json};

use pingji_client::labels;

pub fn location(location: Option<&pb::Location>) -> Value {
    match location {
        Some(at) => json!({ "lon": at.lon, "lat": at.lat }),
        None => Value::Null,
    }
}

pub fn area(area: &pb::Area) -> Value {
    json!({
        "id": area.id,
        "name": area.name,
        "level": labels::level_name(area.level),
        "parent_id": area.parent_id,
        "mode": labels::mode_key(area.mode),
        "effective_mode": labels::mode_key(area.effective_mode),
        "centroid": location(area.centroid.as_ref()),
    })
}

pub fn service_centre(centre: &pb::ServiceCentre) -> Value {
    json!({
        "id": centre.id,
        "name": centre.name,
        "area_id": centre.area_id,
        "location": location(centre.location.as_ref()),
    })
}

pub fn areas(response: &pb::ListAreasResponse) -> Value {
    json!({
        "areas": response.areas.iter().map(area).collect::<Vec<_>>(),
        "service_centres": response.service_centres.iter().map(service_centre).collect::<Vec<_>>(),
    })
}

/// A person's record without personal data (phone, home): for lists.
fn agent_spec(spec: &pb::AgentSpec) -> serde_json::Map<String, Value> {
    let mut object = serde_json::Map::new();
    object.insert("id".into(), json!(spec.id));
    object.insert("name".into(), json!(spec.name));
    object.insert("role".into(), json!(labels::role_key(spec.role)));
    object.insert("skills".into(), json!(spec.skills));
    object.insert("home_area_id".into(), json!(spec.home_area_id));
    object.insert("travel_mode".into(), json!(labels::travel_mode_key(spec.travel_mode)));
    object.insert("on_duty".into(), json!(spec.on_duty));
    object
}

fn agent_with_spec(agent: &pb::Agent, spec: serde_json::Map<String, Value>) -> Value {
    json!({
        "spec": spec,
        "status": labels::agent_status_name(agent.status),
        "connected": agent.connected,
        "location": location(agent.location.as_ref()),
        "location_at_ms": agent.location_at_ms,
        "current_incident_id": agent.current_incident_id,
        "grid_id": agent.grid_id,
        "assignments_recent": agent.assignments_recent,
    })
}

/// A person as listed: no phone, no home location.
pub fn agent(agent: &pb::Agent) -> Value {
    let spec = agent.spec.as_ref().map(agent_spec).unwrap_or_default();
    agent_with_spec(agent, spec)
}

/// One person in full, for `roster show`: with phone and home location.
pub fn agent_detail(agent: &pb::Agent) -> Value {
    let spec = agent
        .spec
        .as_ref()
        .map(|spec| {
            let mut object = agent_spec(spec);
            object.insert("phone".into(), json!(spec.phone));
            object.insert("home".into(), location(spec.home.as_ref()));
            object
        })
        .unwrap_or_default();
    agent_with_spec(agent, spec)
}

/// An operator account (never with a token: the dispatcher keeps only hashes).
pub fn operator(operator: &pb::Operator) -> Value {
    json!({
        "name": operator.name,
        "role": labels::operator_role_name(operator.role),
        "created_at_ms": operator.created_at_ms,
        "token_expires_at_ms": operator.token_expires_at_ms,
        "token_revoked_at_ms": operator.token_revoked_at_ms,
    })
}

/// A token just issued: the one place a token is written out.
pub fn issued_token(issued: &pb::IssuedToken) -> Value {
    json!({ "subject": issued.subject, "token": issued.token, "expires_at_ms": issued.expires_at_ms })
}

pub fn nearby_agent(nearby: &pb::NearbyAgent) -> Value {
    json!({
        "agent": nearby.agent.as_ref().map_or(Value::Null, agent),
        "distance_m": nearby.distance_m,
        "eta_s": nearby.eta_s,
    })
}

pub fn offer(offer: &pb::Offer) -> Value {
    json!({
        "offer_id": offer.offer_id,
        "incident_id": offer.incident_id,
        "agent_id": offer.agent_id,
        "distance_m": offer.distance_m,
        "eta_s": offer.eta_s,
        "deadline_ms": offer.deadline_ms,
        "level": labels::level_name(offer.level),
    })
}

pub fn assignment(assignment: &pb::Assignment) -> Value {
    json!({
        "agent_id": assignment.agent_id,
        "offer_id": assignment.offer_id,
        "assigned_at_ms": assignment.assigned_at_ms,
        "arrived_at_ms": assignment.arrived_at_ms,
        "completed_at_ms": assignment.completed_at_ms,
        "feedback": assignment.feedback,
        "photo_refs": assignment.photo_refs,
    })
}

pub fn incident(incident: &pb::Incident) -> Value {
    json!({
        "id": incident.id,
        "category": incident.category,
        "priority": incident.priority,
        "location": location(incident.location.as_ref()),
        "required_skills": incident.required_skills,
        "headcount": incident.headcount,
        "description": incident.description,
        "status": labels::incident_status_name(incident.status),
        "reported_at_ms": incident.reported_at_ms,
        "reported_by": incident.reported_by,
        "grid_id": incident.grid_id,
        "community_id": incident.community_id,
        "street_id": incident.street_id,
        "district_id": incident.district_id,
        "scope": labels::level_name(incident.scope),
        "mode": labels::mode_key(incident.mode),
        "reported_mode": labels::mode_key(incident.reported_mode),
        "unstaffable": incident.unstaffable.as_ref().map(|shortfall| json!({
            "needed": shortfall.needed,
            "possible": shortfall.possible,
            "missing_skills": shortfall.missing_skills,
            "beyond_reach": shortfall.beyond_reach,
        })),
        "open_offers": incident.open_offers.iter().map(offer).collect::<Vec<_>>(),
        "assignments": incident.assignments.iter().map(assignment).collect::<Vec<_>>(),
        "feedback": incident.feedback,
        "ended_at_ms": incident.ended_at_ms,
        "reported_by_agent": incident.reported_by_agent,
        "report_text": incident.report_text,
        "photo_ref": incident.photo_ref,
        "photo_refs": incident.photo_refs,
        "merged_into": incident.merged_into,
        "merged_from": incident.merged_from,
        "merged_photo_refs": incident.merged_photo_refs,
        "reporters": incident.reporters,
        "plan_activation_id": incident.plan_activation_id,
        "source_id": incident.source_id,
    })
}

pub fn plan(plan: &pb::Plan) -> Value {
    json!({
        "id": plan.id,
        "name": plan.name,
        "category": plan.category,
        "grade": labels::mode_key(plan.grade),
        "auto_activate": plan.auto_activate,
        "tasks": plan.tasks.iter().map(plan_task).collect::<Vec<_>>(),
        "call_up": plan.call_up.iter().map(|role| labels::role_key(*role)).collect::<Vec<_>>(),
    })
}

fn plan_task(task: &pb::PlanTask) -> Value {
    json!({
        "category": task.category,
        "where": task.r#where,
        "required_skills": task.required_skills,
        "headcount": task.headcount,
        "priority": task.priority,
        "description": task.description,
    })
}

pub fn activation(activation: &pb::PlanActivation) -> Value {
    json!({
        "id": activation.id,
        "plan_id": activation.plan_id,
        "area_id": activation.area_id,
        "activated_at_ms": activation.activated_at_ms,
        "activated_by": activation.activated_by,
        "reason": activation.reason,
        "automatic": activation.automatic,
        "incident_ids": activation.incident_ids,
        "ended_at_ms": activation.ended_at_ms,
        "callup_id": activation.callup_id,
    })
}

pub fn callup(callup: &pb::Callup) -> Value {
    json!({
        "id": callup.id,
        "area_id": callup.area_id,
        "reason": callup.reason,
        "issued_by": callup.issued_by,
        "issued_at_ms": callup.issued_at_ms,
        "deadline_ms": callup.deadline_ms,
        "ended_at_ms": callup.ended_at_ms,
        "people": callup.people.iter().map(called_person).collect::<Vec<_>>(),
        "checked_in": callup.checked_in,
        "missing": callup.missing,
    })
}

fn called_person(person: &pb::CalledPerson) -> Value {
    json!({
        "agent_id": person.agent_id,
        "name": person.name,
        "role": labels::role_key(person.role),
        "checked_in_at_ms": person.checked_in_at_ms,
        "connected": person.connected,
        "reached": person.reached,
    })
}

pub fn coverage(coverage: &pb::CoverageResponse) -> Value {
    json!({
        "walk_mps": coverage.walk_mps,
        "communities": coverage.communities.iter().map(|community| json!({
            "community_id": community.community_id,
            "name": community.name,
            "grids": community.grids,
            "grids_within_15_min": community.grids_within_15_min,
            "share": community.share,
        })).collect::<Vec<_>>(),
        "grids": coverage.grids.iter().map(|grid| json!({
            "grid_id": grid.grid_id,
            "name": grid.name,
            "available": grid.available,
            "minimum": grid.minimum,
            "below": grid.below,
        })).collect::<Vec<_>>(),
    })
}

/// An event; its typed body is given as `detail`, in the proto3 JSON mapping
/// with the .proto's field names (enums as their names, 64-bit numbers as
/// strings). `null` for a kind this console does not know.
pub fn event(event: &pb::Event) -> Value {
    let detail = match &event.body {
        Some(_) => serde_json::to_value(event).ok().and_then(|whole| whole.get(&event.kind).cloned()).unwrap_or(Value::Null),
        None => Value::Null,
    };
    json!({
        "seq": event.seq,
        "at_ms": event.at_ms,
        "actor": event.actor,
        "kind": event.kind,
        "incident_id": event.incident_id,
        "agent_id": event.agent_id,
        "area_id": event.area_id,
        "offer_id": event.offer_id,
        "detail": detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_agent() -> pb::Agent {
        pb::Agent {
            spec: Some(pb::AgentSpec {
                id: "p0001".into(),
                name: "黄磊".into(),
                role: pb::Role::GridLeader as i32,
                skills: vec!["first_aid".into()],
                phone: "13959505353".into(),
                home_area_id: "d1-s1-c1-g1".into(),
                travel_mode: pb::TravelMode::Bike as i32,
                on_duty: true,
                home: Some(pb::Location::wgs84(120.08983, 30.229495)),
            }),
            status: pb::AgentStatus::Available as i32,
            connected: true,
            location: Some(pb::Location::wgs84(120.1, 30.2)),
            location_at_ms: 1_700_000_000_000,
            current_incident_id: String::new(),
            grid_id: "d1-s1-c1-g1".into(),
            assignments_recent: 2,
            issued_token: String::new(),
        }
    }

    #[test]
    fn an_incident_has_the_proto_fields_in_snake_case() {
        let incident = pb::Incident {
            id: "inc-000001".into(),
            category: "medical".into(),
            priority: 1,
            location: Some(pb::Location::wgs84(120.15, 30.27)),
            required_skills: vec!["first_aid".into()],
            headcount: 2,
            description: "老人摔倒".into(),
            status: pb::IncidentStatus::Offered as i32,
            reported_at_ms: 1_700_000_000_000,
            reported_by: "operator:li".into(),
            grid_id: "d1-s1-c1-g1".into(),
            scope: pb::AreaLevel::Grid as i32,
            mode: pb::Mode::EmergencyIi as i32,
            open_offers: vec![pb::Offer {
                offer_id: "off-1".into(),
                incident_id: "inc-000001".into(),
                agent_id: "p0001".into(),
                distance_m: 120.0,
                eta_s: 86.0,
                deadline_ms: 1_700_000_090_000,
                level: pb::AreaLevel::Grid as i32,
                ..Default::default()
            }],
            assignments: vec![pb::Assignment {
                agent_id: "p0002".into(),
                offer_id: "off-0".into(),
                assigned_at_ms: 5,
                ..Default::default()
            }],
            ..Default::default()
        };
        let value = incident_json_roundtrip(&incident);
        assert_eq!(value["id"], "inc-000001");
        assert_eq!(value["status"], "offered");
        assert_eq!(value["mode"], "emergency_ii");
        assert_eq!(value["reported_mode"], "unspecified", "not recorded for this incident");
        assert_eq!(value["scope"], "grid");
        assert_eq!(value["location"], json!({ "lon": 120.15, "lat": 30.27 }));
        assert_eq!(value["required_skills"], json!(["first_aid"]));
        assert_eq!(value["description"], "老人摔倒");
        assert_eq!(value["open_offers"][0]["agent_id"], "p0001");
        assert_eq!(value["open_offers"][0]["level"], "grid");
        assert_eq!(value["assignments"][0]["agent_id"], "p0002");
        assert_eq!(value["assignments"][0]["arrived_at_ms"], 0);
        assert_eq!(value["community_id"], "");
        let mut keys: Vec<&str> = value.as_object().expect("object").keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "assignments",
                "category",
                "community_id",
                "description",
                "district_id",
                "ended_at_ms",
                "feedback",
                "grid_id",
                "headcount",
                "id",
                "location",
                "merged_from",
                "merged_into",
                "merged_photo_refs",
                "mode",
                "open_offers",
                "photo_ref",
                "photo_refs",
                "plan_activation_id",
                "priority",
                "report_text",
                "reported_at_ms",
                "reported_by",
                "reported_by_agent",
                "reported_mode",
                "reporters",
                "required_skills",
                "scope",
                "source_id",
                "status",
                "street_id",
                "unstaffable",
            ]
        );
    }

    fn incident_json_roundtrip(incident: &pb::Incident) -> Value {
        // Through text, as a script would read it.
        serde_json::from_str(&incident_text(incident)).expect("valid JSON")
    }

    fn incident_text(incident: &pb::Incident) -> String {
        super::incident(incident).to_string()
    }

    #[test]
    fn listed_people_carry_no_personal_data_but_shown_ones_do() {
        let agent = sample_agent();
        let listed = super::agent(&agent);
        assert_eq!(listed["spec"]["id"], "p0001");
        assert_eq!(listed["spec"]["name"], "黄磊");
        assert_eq!(listed["spec"]["role"], "grid_leader");
        assert_eq!(listed["spec"]["travel_mode"], "bike");
        assert_eq!(listed["status"], "available");
        assert_eq!(listed["connected"], true);
        assert!(listed["spec"].get("phone").is_none());
        assert!(listed["spec"].get("home").is_none());
        let shown = agent_detail(&agent);
        assert_eq!(shown["spec"]["phone"], "13959505353");
        assert_eq!(shown["spec"]["home"]["lat"], 30.229495);
    }

    #[test]
    fn an_area_names_its_level_and_modes() {
        let value = area(&pb::Area {
            id: "d1".into(),
            name: "东湖区".into(),
            level: pb::AreaLevel::District as i32,
            parent_id: "city".into(),
            mode: pb::Mode::EmergencyIi as i32,
            effective_mode: pb::Mode::EmergencyI as i32,
            centroid: None,
            polygons: Vec::new(),
        });
        assert_eq!(
            value,
            json!({
                "id": "d1", "name": "东湖区", "level": "district", "parent_id": "city",
                "mode": "emergency_ii", "effective_mode": "emergency_i", "centroid": null,
            })
        );
    }

    #[test]
    fn an_event_carries_its_detail_as_json() {
        let value = event(&pb::Event {
            seq: 7,
            at_ms: 1_700_000_000_000,
            actor: "operator:li".into(),
            kind: "mode_switched".into(),
            area_id: "d1".into(),
            body: Some(pb::event::Body::ModeSwitched(pb::event::ModeSwitched {
                area_id: "d1".into(),
                mode: pb::Mode::EmergencyIi as i32,
                previous: pb::Mode::Normal as i32,
                reason: "台风".into(),
            })),
            ..Default::default()
        });
        assert_eq!(value["seq"], 7);
        assert_eq!(value["kind"], "mode_switched");
        assert_eq!(value["detail"]["reason"], "台风");
        assert_eq!(value["detail"]["mode"], "MODE_EMERGENCY_II");
        assert_eq!(value["incident_id"], "");
        // A line of `events --follow --json` is one line.
        assert!(!value.to_string().contains('\n'));
    }

    #[test]
    fn a_plan_and_its_activation_name_grades_and_roles() {
        let value = plan(&pb::Plan {
            id: "flood-ii".into(),
            name: "防汛二级".into(),
            category: "flood".into(),
            grade: pb::Mode::EmergencyIi as i32,
            auto_activate: true,
            tasks: vec![pb::PlanTask {
                category: "sandbags".into(),
                r#where: "every service centre".into(),
                required_skills: vec!["sandbagging".into()],
                headcount: 3,
                priority: 2,
                description: String::new(),
                place: None,
            }],
            call_up: vec![pb::Role::SunkCadre as i32],
            public_alert: None,
            supplies: Vec::new(),
            open_shelter_ids: Vec::new(),
        });
        assert_eq!(value["grade"], "emergency_ii");
        assert_eq!(value["call_up"], json!(["sunk_cadre"]));
        assert_eq!(value["tasks"][0]["where"], "every service centre");
        assert_eq!(value["tasks"][0]["headcount"], 3);
        let value = activation(&pb::PlanActivation {
            id: "flood-ii@d1-1".into(),
            plan_id: "flood-ii".into(),
            area_id: "d1".into(),
            incident_ids: vec!["inc-000001".into()],
            callup_id: "callup-0001".into(),
            automatic: true,
            ..Default::default()
        });
        assert_eq!(value["incident_ids"], json!(["inc-000001"]));
        assert_eq!(value["automatic"], true);
        assert_eq!(value["ended_at_ms"], 0);
        assert_eq!(value["callup_id"], "callup-0001");
    }
}
