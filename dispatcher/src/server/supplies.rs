//! `SupplyService`: depots, stock levels and incidents' requests for
//! supplies (roles in `pingji_engine::accounts::role_needed`). Every change
//! goes through the engine as `Command::Supplies` and is journaled before
//! the answer; reads are answered from the engine's state.

use pingji_engine::Rejection;
use pingji_engine::engine::Command;
use pingji_engine::ids::{AgentId, AreaId, IncidentId, quote};
use pingji_engine::supplies::SupplyCommand;
use pingji_engine::supplies::{DepotId, ItemId, SupplyRequestId, UnitId};
use pingji_proto::v1 as pb;
use pingji_proto::v1::supply_service_server::SupplyService;
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::convert::supplies::{
    allocation_from_pb, depot_to_pb, import_from_pb, level_to_pb, line_from_pb, proposal_to_pb, request_to_pb,
    unit_status_from_pb, unit_to_pb,
};
use crate::runtime::Dispatcher;
use crate::server::auth::caller;
use crate::server::error;

pub struct SupplyApi {
    pub dispatcher: Dispatcher,
}

fn request_id(id: &str) -> Result<SupplyRequestId, Status> {
    let id = id.trim();
    if id.is_empty() {
        return Err(error::invalid_field("request_id", "request_id is empty; give the id RequestSupplies returned"));
    }
    Ok(SupplyRequestId::new(id))
}

fn optional_agent(id: &str) -> Option<AgentId> {
    Some(id.trim()).filter(|id| !id.is_empty()).map(AgentId::new)
}

/// An area the caller named, checked to be on the map (empty: none).
fn area_filter(engine: &pingji_engine::Engine, area: &str) -> Result<Option<AreaId>, Rejection> {
    let area = area.trim();
    if area.is_empty() {
        return Ok(None);
    }
    let area = AreaId::new(area);
    if !engine.state().areas.contains(&area) {
        return Err(Rejection::NotFound(format!("area {} is not on the map; list areas to find its id", quote(area.as_str()))));
    }
    Ok(Some(area))
}

impl SupplyApi {
    /// Carries out a command about one request and answers with the request as it is after.
    async fn on_request(
        &self,
        command: SupplyCommand,
        id: SupplyRequestId,
        actor: String,
    ) -> Result<Response<pb::SupplyRequest>, Status> {
        let request = self
            .dispatcher
            .execute(Command::Supplies(command), actor, move |engine, _| engine.supplies().requests.get(&id).map(request_to_pb))
            .await?;
        request.map(Response::new).ok_or_else(|| error::internal("the request was changed but cannot be read back"))
    }
}

#[tonic::async_trait]
impl SupplyService for SupplyApi {
    #[instrument(skip_all)]
    async fn import_supplies(
        &self,
        request: Request<pb::ImportSuppliesRequest>,
    ) -> Result<Response<pb::ImportSuppliesResponse>, Status> {
        let actor = caller(&request)?.actor();
        let import = import_from_pb(request.get_ref()).map_err(error::rejection_status)?;
        let counts = pb::ImportSuppliesResponse {
            depots: import.depots.len() as u32,
            stock_rows: import.stock.len() as u32,
            units: import.units.len() as u32,
        };
        self.dispatcher.execute(Command::Supplies(SupplyCommand::Import(import)), actor, |_, _| ()).await?;
        Ok(Response::new(counts))
    }

    #[instrument(skip_all)]
    async fn list_depots(&self, request: Request<pb::ListDepotsRequest>) -> Result<Response<pb::ListDepotsResponse>, Status> {
        let area = request.into_inner().area_id;
        let depots = self
            .dispatcher
            .query(move |engine, _| {
                let area = area_filter(engine, &area)?;
                Ok::<_, Rejection>(
                    engine
                        .supplies()
                        .depots
                        .values()
                        .filter(|depot| area.as_ref().is_none_or(|area| engine.depot_in_area(depot, area)))
                        .map(|depot| depot_to_pb(engine, depot))
                        .collect(),
                )
            })
            .await?
            .map_err(error::rejection_status)?;
        Ok(Response::new(pb::ListDepotsResponse { depots }))
    }

    #[instrument(skip_all)]
    async fn stock_levels(&self, request: Request<pb::StockLevelsRequest>) -> Result<Response<pb::StockLevelsResponse>, Status> {
        let area_id = request.into_inner().area_id;
        let levels = {
            let area_id = area_id.clone();
            self.dispatcher
                .query(move |engine, _| {
                    let area = area_filter(engine, &area_id)?;
                    let levels =
                        engine.supplies().levels(|depot| area.as_ref().is_none_or(|area| engine.depot_in_area(depot, area)));
                    Ok::<_, Rejection>(levels.iter().map(level_to_pb).collect())
                })
                .await?
                .map_err(error::rejection_status)?
        };
        Ok(Response::new(pb::StockLevelsResponse { area_id: area_id.trim().to_string(), levels }))
    }

    #[instrument(skip_all)]
    async fn request_supplies(
        &self,
        request: Request<pb::RequestSuppliesRequest>,
    ) -> Result<Response<pb::SupplyRequest>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let incident = request.incident_id.trim();
        if incident.is_empty() {
            return Err(error::invalid_field("incident_id", "incident_id is empty; name the incident the supplies are for"));
        }
        let named = Some(request.id.trim()).filter(|id| !id.is_empty()).map(SupplyRequestId::new);
        let command = SupplyCommand::Request {
            id: named.clone(),
            incident: IncidentId::new(incident),
            lines: request.lines.iter().map(line_from_pb).collect(),
        };
        let made =
            self.dispatcher
                .execute(Command::Supplies(command), actor, move |engine, events| {
                    // A retry under its id makes nothing new: the request made.
                    let id = named.or_else(|| {
                        events.iter().find_map(|event| match &event.kind {
                            pingji_engine::event::EventKind::Supplies(
                                pingji_engine::supplies::SupplyEvent::SuppliesRequested { request, .. },
                            ) => Some(request.clone()),
                            _ => None,
                        })
                    })?;
                    engine.supplies().requests.get(&id).map(request_to_pb)
                })
                .await?;
        made.map(Response::new).ok_or_else(|| error::internal("the request was made but cannot be read back"))
    }

    #[instrument(skip_all)]
    async fn propose_supplies(
        &self,
        request: Request<pb::ProposeSuppliesRequest>,
    ) -> Result<Response<pb::SupplyProposal>, Status> {
        let id = request_id(&request.into_inner().request_id)?;
        let proposal = self
            .dispatcher
            .query(move |engine, _| engine.supply_proposal(&id).map(|proposal| proposal_to_pb(&id, &proposal)))
            .await?
            .map_err(error::rejection_status)?;
        Ok(Response::new(proposal))
    }

    #[instrument(skip_all)]
    async fn confirm_supplies(
        &self,
        request: Request<pb::ConfirmSuppliesRequest>,
    ) -> Result<Response<pb::SupplyRequest>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let id = request_id(&request.request_id)?;
        let allocations =
            (!request.allocations.is_empty()).then(|| request.allocations.iter().map(allocation_from_pb).collect::<Vec<_>>());
        self.on_request(SupplyCommand::Confirm { request: id.clone(), allocations }, id, actor).await
    }

    #[instrument(skip_all)]
    async fn dispatch_supplies(
        &self,
        request: Request<pb::DispatchSuppliesRequest>,
    ) -> Result<Response<pb::SupplyRequest>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let id = request_id(&request.request_id)?;
        let carrier = optional_agent(&request.carrier_agent_id);
        self.on_request(SupplyCommand::Dispatch { request: id.clone(), carrier }, id, actor).await
    }

    #[instrument(skip_all)]
    async fn deliver_supplies(
        &self,
        request: Request<pb::DeliverSuppliesRequest>,
    ) -> Result<Response<pb::SupplyRequest>, Status> {
        let actor = caller(&request)?.actor();
        let id = request_id(&request.into_inner().request_id)?;
        self.on_request(SupplyCommand::Deliver { request: id.clone() }, id, actor).await
    }

    #[instrument(skip_all)]
    async fn return_supplies(&self, request: Request<pb::ReturnSuppliesRequest>) -> Result<Response<pb::SupplyRequest>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let id = request_id(&request.request_id)?;
        let command = SupplyCommand::Return {
            request: id.clone(),
            returned: request.returned.iter().map(line_from_pb).collect(),
            in_repair: request.in_repair_unit_ids.iter().map(|unit| UnitId::new(unit.trim())).collect(),
        };
        self.on_request(command, id, actor).await
    }

    #[instrument(skip_all)]
    async fn cancel_supply_request(
        &self,
        request: Request<pb::CancelSupplyRequestRequest>,
    ) -> Result<Response<pb::SupplyRequest>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let id = request_id(&request.request_id)?;
        self.on_request(SupplyCommand::Cancel { request: id.clone(), reason: request.reason }, id, actor).await
    }

    #[instrument(skip_all)]
    async fn list_supply_requests(
        &self,
        request: Request<pb::ListSupplyRequestsRequest>,
    ) -> Result<Response<pb::ListSupplyRequestsResponse>, Status> {
        let request = request.into_inner();
        let incident = Some(request.incident_id.trim().to_string()).filter(|id| !id.is_empty()).map(IncidentId::new);
        let open_only = request.open_only;
        let requests = self
            .dispatcher
            .query(move |engine, _| {
                engine
                    .supplies()
                    .requests
                    .values()
                    .filter(|record| incident.as_ref().is_none_or(|incident| &record.incident == incident))
                    .filter(|record| !open_only || record.is_open())
                    .map(request_to_pb)
                    .collect()
            })
            .await?;
        Ok(Response::new(pb::ListSupplyRequestsResponse { requests }))
    }

    #[instrument(skip_all)]
    async fn set_unit_status(&self, request: Request<pb::SetUnitStatusRequest>) -> Result<Response<pb::SupplyUnit>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let status = unit_status_from_pb(request.status).map_err(|problem| error::invalid_field("status", problem))?;
        let unit = UnitId::new(request.unit_id.trim());
        let command = SupplyCommand::SetUnitStatus { unit: unit.clone(), status };
        let answer = self
            .dispatcher
            .execute(Command::Supplies(command), actor, move |engine, _| engine.supplies().units.get(&unit).map(unit_to_pb))
            .await?;
        answer.map(Response::new).ok_or_else(|| error::internal("the unit was changed but cannot be read back"))
    }

    #[instrument(skip_all)]
    async fn move_stock(&self, request: Request<pb::MoveStockRequest>) -> Result<Response<pb::Depot>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let to = DepotId::new(request.to_depot_id.trim());
        let command = SupplyCommand::MoveStock {
            from: DepotId::new(request.from_depot_id.trim()),
            to: to.clone(),
            item: ItemId::new(request.item_id.trim()),
            quantity: request.quantity,
        };
        let answer = self
            .dispatcher
            .execute(Command::Supplies(command), actor, move |engine, _| {
                engine.supplies().depots.get(&to).map(|depot| depot_to_pb(engine, depot))
            })
            .await?;
        answer.map(Response::new).ok_or_else(|| error::internal("the stock was moved but the depot cannot be read back"))
    }
}
