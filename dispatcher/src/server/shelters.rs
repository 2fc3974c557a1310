//! `ShelterService`: shelters, evacuations of residents to them and their
//! occupancy (roles in `pingji_engine::accounts::role_needed`). Every
//! change goes through the engine as `Command::Shelters` and is journaled
//! before the answer; reads are answered from the engine's state.
//! Residents' names are personal data: never logged, masked in every answer.

use pingji_engine::Rejection;
use pingji_engine::engine::Command;
use pingji_engine::event::EventKind;
use pingji_engine::ids::{AreaId, IncidentId, quote};
use pingji_engine::shelters::{EvacuationId, ShelterCommand, ShelterEvent, ShelterId};
use pingji_proto::v1 as pb;
use pingji_proto::v1::shelter_service_server::ShelterService;
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::convert::shelters::{choice_to_pb, evacuation_to_pb, facilities_from_pb, import_from_pb, sample_to_pb, shelter_to_pb};
use crate::runtime::Dispatcher;
use crate::server::auth::caller;
use crate::server::error;

pub struct ShelterApi {
    pub dispatcher: Dispatcher,
}

fn shelter_id(id: &str) -> Result<ShelterId, Status> {
    let id = id.trim();
    if id.is_empty() {
        return Err(error::invalid_field("shelter_id", "shelter_id is empty; list shelters to find its id"));
    }
    Ok(ShelterId::new(id))
}

fn evacuation_id(id: &str) -> Result<EvacuationId, Status> {
    let id = id.trim();
    if id.is_empty() {
        return Err(error::invalid_field("evacuation_id", "evacuation_id is empty; give the id Evacuate returned"));
    }
    Ok(EvacuationId::new(id))
}

fn incident_id(id: &str) -> Result<IncidentId, Status> {
    let id = id.trim();
    if id.is_empty() {
        return Err(error::invalid_field("incident_id", "incident_id is empty; name the incident the residents are moved for"));
    }
    Ok(IncidentId::new(id))
}

fn optional(id: &str) -> Option<&str> {
    Some(id.trim()).filter(|id| !id.is_empty())
}

fn needs(needs: &[i32]) -> Result<Vec<pingji_engine::shelters::Facility>, Status> {
    facilities_from_pb(needs).map_err(|problem| error::invalid_field("needs", problem))
}

/// An area the caller named, checked to be on the map (empty: none).
fn area_filter(engine: &pingji_engine::Engine, area: &str) -> Result<Option<AreaId>, Rejection> {
    let Some(area) = optional(area) else { return Ok(None) };
    let area = AreaId::new(area);
    if !engine.state().areas.contains(&area) {
        return Err(Rejection::NotFound(format!("area {} is not on the map; list areas to find its id", quote(area.as_str()))));
    }
    Ok(Some(area))
}

impl ShelterApi {
    /// Carries out a command about one shelter and answers with the shelter as it is after.
    async fn on_shelter(&self, command: ShelterCommand, id: ShelterId, actor: String) -> Result<Response<pb::Shelter>, Status> {
        let shelter = self
            .dispatcher
            .execute(Command::Shelters(command), actor, move |engine, _| engine.shelters().shelters.get(&id).map(shelter_to_pb))
            .await?;
        shelter.map(Response::new).ok_or_else(|| error::internal("the shelter was changed but cannot be read back"))
    }
}

#[tonic::async_trait]
impl ShelterService for ShelterApi {
    #[instrument(skip_all)]
    async fn import_shelters(
        &self,
        request: Request<pb::ImportSheltersRequest>,
    ) -> Result<Response<pb::ImportSheltersResponse>, Status> {
        let actor = caller(&request)?.actor();
        let shelters = import_from_pb(request.get_ref()).map_err(error::rejection_status)?;
        let count = shelters.len() as u32;
        self.dispatcher.execute(Command::Shelters(ShelterCommand::Import(shelters)), actor, |_, _| ()).await?;
        Ok(Response::new(pb::ImportSheltersResponse { shelters: count }))
    }

    #[instrument(skip_all)]
    async fn list_shelters(
        &self,
        request: Request<pb::ListSheltersRequest>,
    ) -> Result<Response<pb::ListSheltersResponse>, Status> {
        let request = request.into_inner();
        let shelters = self
            .dispatcher
            .query(move |engine, _| {
                let area = area_filter(engine, &request.area_id)?;
                Ok::<_, Rejection>(
                    engine
                        .shelters()
                        .shelters
                        .values()
                        .filter(|shelter| !request.open_only || shelter.open)
                        .filter(|shelter| area.as_ref().is_none_or(|area| engine.shelter_in_area(shelter, area)))
                        .map(shelter_to_pb)
                        .collect(),
                )
            })
            .await?
            .map_err(error::rejection_status)?;
        Ok(Response::new(pb::ListSheltersResponse { shelters }))
    }

    #[instrument(skip_all)]
    async fn open_shelter(&self, request: Request<pb::OpenShelterRequest>) -> Result<Response<pb::Shelter>, Status> {
        let actor = caller(&request)?.actor();
        let id = shelter_id(&request.into_inner().shelter_id)?;
        self.on_shelter(ShelterCommand::Open { shelter: id.clone() }, id, actor).await
    }

    #[instrument(skip_all)]
    async fn close_shelter(&self, request: Request<pb::CloseShelterRequest>) -> Result<Response<pb::Shelter>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let id = shelter_id(&request.shelter_id)?;
        self.on_shelter(ShelterCommand::Close { shelter: id.clone(), reason: request.reason }, id, actor).await
    }

    #[instrument(skip_all)]
    async fn propose_shelters(
        &self,
        request: Request<pb::ProposeSheltersRequest>,
    ) -> Result<Response<pb::ProposeSheltersResponse>, Status> {
        let request = request.into_inner();
        let incident = incident_id(&request.incident_id)?;
        let needs = needs(&request.needs)?;
        let residents = request.residents.max(1);
        let choices = self
            .dispatcher
            .query(move |engine, _| {
                engine.shelter_candidates(&incident, residents, &needs).map(|choices| choices.iter().map(choice_to_pb).collect())
            })
            .await?
            .map_err(error::rejection_status)?;
        Ok(Response::new(pb::ProposeSheltersResponse { choices }))
    }

    #[instrument(skip_all)]
    async fn evacuate(&self, request: Request<pb::EvacuateRequest>) -> Result<Response<pb::Evacuation>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let named = optional(&request.id).map(EvacuationId::new);
        let command = ShelterCommand::Evacuate {
            id: named.clone(),
            incident: incident_id(&request.incident_id)?,
            residents: request.residents,
            needs: needs(&request.needs)?,
            shelter: optional(&request.shelter_id).map(ShelterId::new),
        };
        let made = self
            .dispatcher
            .execute(Command::Shelters(command), actor, move |engine, events| {
                // A retry under its id makes nothing new: the evacuation made.
                let id = named.or_else(|| {
                    events.iter().find_map(|event| match &event.kind {
                        EventKind::Shelters(ShelterEvent::EvacuationAssigned { evacuation, .. }) => Some(evacuation.clone()),
                        _ => None,
                    })
                })?;
                engine.shelters().evacuations.get(&id).map(evacuation_to_pb)
            })
            .await?;
        made.map(Response::new).ok_or_else(|| error::internal("the evacuation was made but cannot be read back"))
    }

    #[instrument(skip_all)]
    async fn check_in_arrivals(&self, request: Request<pb::CheckInArrivalsRequest>) -> Result<Response<pb::Shelter>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let evacuation = optional(&request.evacuation_id).map(EvacuationId::new);
        let shelter = optional(&request.shelter_id).map(ShelterId::new);
        let command = ShelterCommand::CheckIn {
            shelter: shelter.clone(),
            evacuation: evacuation.clone(),
            count: request.count,
            names: request.names,
        };
        let answer = self
            .dispatcher
            .execute(Command::Shelters(command), actor, move |engine, events| {
                let id = events.iter().find_map(|event| match &event.kind {
                    EventKind::Shelters(ShelterEvent::ArrivalsCheckedIn { shelter, .. }) => Some(shelter.clone()),
                    _ => None,
                })?;
                engine.shelters().shelters.get(&id).map(shelter_to_pb)
            })
            .await?;
        answer
            .map(Response::new)
            .ok_or_else(|| error::internal("the arrivals were checked in but the shelter cannot be read back"))
    }

    #[instrument(skip_all)]
    async fn check_out_residents(&self, request: Request<pb::CheckOutResidentsRequest>) -> Result<Response<pb::Shelter>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let id = shelter_id(&request.shelter_id)?;
        self.on_shelter(ShelterCommand::CheckOut { shelter: id.clone(), count: request.count }, id, actor).await
    }

    #[instrument(skip_all)]
    async fn release_places(&self, request: Request<pb::ReleasePlacesRequest>) -> Result<Response<pb::Evacuation>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let id = evacuation_id(&request.evacuation_id)?;
        let command = ShelterCommand::Release { evacuation: id.clone(), reason: request.reason };
        let answer = self
            .dispatcher
            .execute(Command::Shelters(command), actor, move |engine, _| {
                engine.shelters().evacuations.get(&id).map(evacuation_to_pb)
            })
            .await?;
        answer
            .map(Response::new)
            .ok_or_else(|| error::internal("the places were released but the evacuation cannot be read back"))
    }

    #[instrument(skip_all)]
    async fn list_evacuations(
        &self,
        request: Request<pb::ListEvacuationsRequest>,
    ) -> Result<Response<pb::ListEvacuationsResponse>, Status> {
        let request = request.into_inner();
        let incident = optional(&request.incident_id).map(IncidentId::new);
        let shelter = optional(&request.shelter_id).map(ShelterId::new);
        let holding_only = request.holding_only;
        let evacuations = self
            .dispatcher
            .query(move |engine, _| {
                engine
                    .shelters()
                    .evacuations
                    .values()
                    .filter(|evacuation| incident.as_ref().is_none_or(|incident| &evacuation.incident == incident))
                    .filter(|evacuation| shelter.as_ref().is_none_or(|shelter| &evacuation.shelter == shelter))
                    .filter(|evacuation| !holding_only || evacuation.held() > 0)
                    .map(evacuation_to_pb)
                    .collect()
            })
            .await?;
        Ok(Response::new(pb::ListEvacuationsResponse { evacuations }))
    }

    #[instrument(skip_all)]
    async fn shelter_occupancy(
        &self,
        request: Request<pb::ShelterOccupancyRequest>,
    ) -> Result<Response<pb::ShelterOccupancyResponse>, Status> {
        let id = shelter_id(&request.into_inner().shelter_id)?;
        let answer = self
            .dispatcher
            .query(move |engine, _| {
                engine.shelter(&id).map(|shelter| pb::ShelterOccupancyResponse {
                    shelter: Some(shelter_to_pb(shelter)),
                    samples: shelter.history.iter().map(sample_to_pb).collect(),
                })
            })
            .await?
            .map_err(error::rejection_status)?;
        Ok(Response::new(answer))
    }
}
