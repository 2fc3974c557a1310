//! Shelters on the wire: shelters, evacuations, choices and occupancy, and
//! the shelter events (`Event.body` 120 to 129) both ways. Residents' names
//! leave the dispatcher masked (see [`mask_names`]).

use pingji_engine::Rejection;
use pingji_engine::ids::{ActivationId, AreaId, IncidentId};
use pingji_engine::shelters::{
    Evacuation, EvacuationId, Facility, OccupancySample, Shelter, ShelterChoice, ShelterEvent, ShelterId, ShelterLevel,
    ShelterSpec, mask_name,
};
use pingji_proto::v1 as pb;

use super::location;

pub fn facility_to_pb(facility: Facility) -> pb::Facility {
    match facility {
        Facility::Accessible => pb::Facility::Accessible,
        Facility::Medical => pb::Facility::Medical,
        Facility::Kitchen => pb::Facility::Kitchen,
        Facility::Power => pb::Facility::Power,
        Facility::Pets => pb::Facility::Pets,
    }
}

pub fn facility_from_pb(facility: i32) -> Result<Facility, String> {
    match pb::Facility::try_from(facility) {
        Ok(pb::Facility::Accessible) => Ok(Facility::Accessible),
        Ok(pb::Facility::Medical) => Ok(Facility::Medical),
        Ok(pb::Facility::Kitchen) => Ok(Facility::Kitchen),
        Ok(pb::Facility::Power) => Ok(Facility::Power),
        Ok(pb::Facility::Pets) => Ok(Facility::Pets),
        _ => Err(format!("facility {facility} is not one of accessible, medical, kitchen, power, pets")),
    }
}

fn facilities_to_pb(facilities: &[Facility]) -> Vec<i32> {
    facilities.iter().map(|facility| facility_to_pb(*facility).into()).collect()
}

pub fn facilities_from_pb(facilities: &[i32]) -> Result<Vec<Facility>, String> {
    facilities.iter().map(|facility| facility_from_pb(*facility)).collect()
}

pub fn level_to_pb(level: ShelterLevel) -> pb::ShelterLevel {
    match level {
        ShelterLevel::Normal => pb::ShelterLevel::Normal,
        ShelterLevel::NearlyFull => pb::ShelterLevel::NearlyFull,
        ShelterLevel::Full => pb::ShelterLevel::Full,
    }
}

fn level_from_pb(level: i32) -> Result<ShelterLevel, String> {
    match pb::ShelterLevel::try_from(level) {
        Ok(pb::ShelterLevel::Normal) => Ok(ShelterLevel::Normal),
        Ok(pb::ShelterLevel::NearlyFull) => Ok(ShelterLevel::NearlyFull),
        Ok(pb::ShelterLevel::Full) => Ok(ShelterLevel::Full),
        _ => Err(format!("shelter level {level} is not one of normal, nearly full, full")),
    }
}

fn spec_to_pb(spec: &ShelterSpec) -> pb::Shelter {
    pb::Shelter {
        id: spec.id.to_string(),
        name: spec.name.clone(),
        location: Some(location(spec.at)),
        area_id: spec.area.as_ref().map(ToString::to_string).unwrap_or_default(),
        capacity: spec.capacity,
        facilities: facilities_to_pb(&spec.facilities),
        ..pb::Shelter::default()
    }
}

pub fn shelter_to_pb(shelter: &Shelter) -> pb::Shelter {
    pb::Shelter {
        open: shelter.open,
        occupied: shelter.occupied,
        reserved: shelter.reserved,
        free: shelter.free(),
        level: level_to_pb(shelter.level).into(),
        opened_by_activation_id: shelter.opened_by.as_ref().map(ToString::to_string).unwrap_or_default(),
        ..spec_to_pb(&shelter.spec)
    }
}

/// A shelter read from the wire (row numbers from 1, for the error). The
/// position must be given (in any of the coordinate systems a client may use).
pub fn spec_from_pb(shelter: &pb::Shelter, row: usize) -> Result<ShelterSpec, Rejection> {
    let in_row = |problem: String| Rejection::InvalidArgument(format!("shelter row {row}: {problem}"));
    let at = super::position(shelter.location.as_ref(), "location").map_err(|rejection| in_row(rejection.to_string()))?;
    Ok(ShelterSpec {
        id: ShelterId::new(shelter.id.trim()),
        name: shelter.name.clone(),
        at,
        area: Some(shelter.area_id.trim()).filter(|area| !area.is_empty()).map(AreaId::new),
        capacity: shelter.capacity,
        facilities: facilities_from_pb(&shelter.facilities).map_err(in_row)?,
    })
}

pub fn import_from_pb(request: &pb::ImportSheltersRequest) -> Result<Vec<ShelterSpec>, Rejection> {
    request.shelters.iter().enumerate().map(|(index, shelter)| spec_from_pb(shelter, index + 1)).collect()
}

pub fn evacuation_to_pb(evacuation: &Evacuation) -> pb::Evacuation {
    pb::Evacuation {
        id: evacuation.id.to_string(),
        incident_id: evacuation.incident.to_string(),
        shelter_id: evacuation.shelter.to_string(),
        residents: evacuation.residents,
        needs: facilities_to_pb(&evacuation.needs),
        passed_over_shelter_ids: evacuation.passed_over.iter().map(ToString::to_string).collect(),
        arrived: evacuation.arrived,
        released: evacuation.released,
        held: evacuation.held(),
        assigned_at_ms: evacuation.assigned_at.0,
        assigned_by: evacuation.assigned_by.clone(),
    }
}

pub fn choice_to_pb(choice: &ShelterChoice) -> pb::ShelterChoice {
    pb::ShelterChoice { shelter_id: choice.shelter.to_string(), travel_s: choice.travel_s, free: choice.free, fits: choice.fits }
}

pub fn sample_to_pb(sample: &OccupancySample) -> pb::OccupancySample {
    pb::OccupancySample { at_ms: sample.at.0, occupied: sample.occupied, reserved: sample.reserved }
}

/// Residents' names as every watcher and reader sees them: "王**".
pub fn mask_names(names: &mut [String]) {
    for name in names {
        *name = mask_name(name);
    }
}

fn optional(id: &str) -> Option<&str> {
    Some(id).filter(|id| !id.is_empty())
}

pub fn event_to_pb(event: &ShelterEvent) -> pb::event::Body {
    use pb::event as e;
    use pb::event::Body;
    match event {
        ShelterEvent::SheltersImported { shelters } => {
            Body::SheltersImported(e::SheltersImported { shelters: shelters.iter().map(spec_to_pb).collect() })
        }
        ShelterEvent::ShelterOpened { shelter, activation } => Body::ShelterOpened(e::ShelterOpened {
            shelter_id: shelter.to_string(),
            activation_id: activation.as_ref().map(ToString::to_string).unwrap_or_default(),
        }),
        ShelterEvent::ShelterClosed { shelter, reason } => {
            Body::ShelterClosed(e::ShelterClosed { shelter_id: shelter.to_string(), reason: reason.clone() })
        }
        ShelterEvent::EvacuationAssigned { evacuation, incident, shelter, residents, needs, passed_over } => {
            Body::EvacuationAssigned(e::EvacuationAssigned {
                evacuation_id: evacuation.to_string(),
                incident_id: incident.to_string(),
                shelter_id: shelter.to_string(),
                residents: *residents,
                needs: facilities_to_pb(needs),
                passed_over_shelter_ids: passed_over.iter().map(ToString::to_string).collect(),
            })
        }
        ShelterEvent::ArrivalsCheckedIn { shelter, evacuation, incident, count, names } => {
            Body::ArrivalsCheckedIn(e::ArrivalsCheckedIn {
                shelter_id: shelter.to_string(),
                evacuation_id: evacuation.as_ref().map(ToString::to_string).unwrap_or_default(),
                incident_id: incident.as_ref().map(ToString::to_string).unwrap_or_default(),
                count: *count,
                names: names.clone(),
            })
        }
        ShelterEvent::ResidentsLeft { shelter, count } => {
            Body::ResidentsLeft(e::ResidentsLeft { shelter_id: shelter.to_string(), count: *count })
        }
        ShelterEvent::PlacesReleased { evacuation, incident, shelter, places, reason } => {
            Body::PlacesReleased(e::PlacesReleased {
                evacuation_id: evacuation.to_string(),
                incident_id: incident.to_string(),
                shelter_id: shelter.to_string(),
                places: *places,
                reason: reason.clone(),
            })
        }
        ShelterEvent::ShelterLevelChanged { shelter, level, occupied, reserved, capacity } => {
            Body::ShelterLevelChanged(e::ShelterLevelChanged {
                shelter_id: shelter.to_string(),
                level: level_to_pb(*level).into(),
                occupied: *occupied,
                reserved: *reserved,
                capacity: *capacity,
            })
        }
    }
}

/// A shelter event read back from the wire; `None` for a body that is not one.
pub fn event_from_pb(body: &pb::event::Body) -> Option<Result<ShelterEvent, String>> {
    use pb::event::Body;
    let event = match body {
        Body::SheltersImported(imported) => imported
            .shelters
            .iter()
            .enumerate()
            .map(|(index, shelter)| spec_from_pb(shelter, index + 1).map_err(|rejection| rejection.to_string()))
            .collect::<Result<_, _>>()
            .map(|shelters| ShelterEvent::SheltersImported { shelters }),
        Body::ShelterOpened(opened) => Ok(ShelterEvent::ShelterOpened {
            shelter: ShelterId::new(&opened.shelter_id),
            activation: optional(&opened.activation_id).map(ActivationId::new),
        }),
        Body::ShelterClosed(closed) => {
            Ok(ShelterEvent::ShelterClosed { shelter: ShelterId::new(&closed.shelter_id), reason: closed.reason.clone() })
        }
        Body::EvacuationAssigned(assigned) => facilities_from_pb(&assigned.needs).map(|needs| ShelterEvent::EvacuationAssigned {
            evacuation: EvacuationId::new(&assigned.evacuation_id),
            incident: IncidentId::new(&assigned.incident_id),
            shelter: ShelterId::new(&assigned.shelter_id),
            residents: assigned.residents,
            needs,
            passed_over: assigned.passed_over_shelter_ids.iter().map(ShelterId::new).collect(),
        }),
        Body::ArrivalsCheckedIn(arrived) => Ok(ShelterEvent::ArrivalsCheckedIn {
            shelter: ShelterId::new(&arrived.shelter_id),
            evacuation: optional(&arrived.evacuation_id).map(EvacuationId::new),
            incident: optional(&arrived.incident_id).map(IncidentId::new),
            count: arrived.count,
            names: arrived.names.clone(),
        }),
        Body::ResidentsLeft(left) => {
            Ok(ShelterEvent::ResidentsLeft { shelter: ShelterId::new(&left.shelter_id), count: left.count })
        }
        Body::PlacesReleased(released) => Ok(ShelterEvent::PlacesReleased {
            evacuation: EvacuationId::new(&released.evacuation_id),
            incident: IncidentId::new(&released.incident_id),
            shelter: ShelterId::new(&released.shelter_id),
            places: released.places,
            reason: released.reason.clone(),
        }),
        Body::ShelterLevelChanged(changed) => level_from_pb(changed.level).map(|level| ShelterEvent::ShelterLevelChanged {
            shelter: ShelterId::new(&changed.shelter_id),
            level,
            occupied: changed.occupied,
            reserved: changed.reserved,
            capacity: changed.capacity,
        }),
        _ => return None,
    };
    Some(event)
}
