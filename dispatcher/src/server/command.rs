//! `CommandService`: what operators in the command centre do.

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::Arc;

use pingji_proto::v1 as pb;
use pingji_proto::v1::command_service_server::CommandService;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::agent_watch::{AgentWatch, MAX_WATCHED};
pub use super::audit::ReadAudits;
use super::audit::{self};
use super::auth::{Caller, caller};
use super::error;
use super::sharding::{Kind, PublishedOperator, Sharding};
use crate::convert;
use crate::runtime::Dispatcher;
use crate::server::error::rejection_status;
use crate::tokens;
use pingji_engine::accounts::{self, AgentTokenHash, Operator, OperatorRole};
use pingji_engine::engine::duplicates::DuplicateQuery;
use pingji_engine::engine::explain::ExplainQuery;
use pingji_engine::engine::queries::{AgentQuery, CallupQuery, IncidentQuery};
use pingji_engine::engine::{Command, Rejection};
use pingji_engine::event::EventKind;
use pingji_engine::ids::quote;
use pingji_engine::ids::{ActivationId, AgentId, AreaId, IncidentId, PlanId};
use pingji_engine::incident::IncidentSpec;
use pingji_engine::plans::parse_plan;
use pingji_engine::roster::normalise_skills;

const DEFAULT_LIMIT: usize = 1000;

pub struct CommandApi {
    pub dispatcher: Dispatcher,
    /// With one shard per district: where to send calls about incidents
    /// and people of another shard.
    pub sharding: Option<Arc<Sharding>>,
    /// The reads of personal data already in the audit, so that a screen
    /// polling the same people is audited once, not at every poll.
    pub audited: ReadAudits,
    /// People's photos; `None` where the dispatcher keeps none.
    pub photos: Option<crate::photos::PhotoStore>,
    /// The dispatcher's clock, told to live views (`GetClock`) so that
    /// they count deadlines down on it.
    pub clock: crate::runtime::Clock,
    /// What a replay (`dispatcher --replay`) plays and at what pace; `None`
    /// on a dispatcher serving its own journal.
    pub replay: Option<Arc<ReplayView>>,
}

/// A replay's journal and its clock, whose pace the viewer may change.
pub struct ReplayView {
    pub replay: super::config::Replay,
    pub clock: crate::runtime::Clock,
}

impl CommandApi {
    fn replay(&self) -> Result<&ReplayView, Status> {
        self.replay.as_deref().ok_or_else(|| {
            error::status(
                tonic::Code::FailedPrecondition,
                pb::ErrorReason::FailedPrecondition,
                "this dispatcher serves its own journal live, not a replay; GetReplay and SetReplay work on a \
                 dispatcher started with --replay JOURNAL",
            )
        })
    }

    async fn replay_state(&self) -> Result<pb::ReplayState, Status> {
        let view = self.replay()?;
        super::replay::state(&view.replay, &view.clock, &self.dispatcher)
            .await
            .map_err(|error| error::internal(format!("the replay's state cannot be read: {error:#}")))
    }
}

fn invalid(message: impl Into<String>) -> Status {
    error::invalid(message)
}

/// The id asked for (if any) and the spec of a report as a client gives it.
fn incident_spec(request: pb::CreateIncidentRequest) -> Result<(Option<IncidentId>, IncidentSpec), Status> {
    let at = convert::position(request.location.as_ref(), "location").map_err(rejection_status)?;
    let priority = u8::try_from(request.priority)
        .map_err(|_| invalid(format!("priority {} is out of range; use 1 (most urgent) to 4", request.priority)))?;
    let spec = IncidentSpec {
        at,
        category: request.category.trim().to_lowercase(),
        priority,
        skills: normalise_skills(&request.required_skills),
        headcount: request.headcount,
        description: request.description,
        source_id: String::new(),
    };
    let id = Some(request.id.trim().to_string()).filter(|id| !id.is_empty()).map(IncidentId::new);
    Ok((id, spec))
}

fn incident_from(events: &[pingji_engine::event::Event]) -> Option<IncidentId> {
    events.iter().find_map(|event| match &event.kind {
        EventKind::IncidentReported { incident, .. } => Some(incident.clone()),
        _ => None,
    })
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

#[tonic::async_trait]
impl CommandService for CommandApi {
    /// Who served: the area rows for everyone, the per-person rows (an
    /// audited read) for commanders and admins.
    #[instrument(skip_all)]
    async fn activity_report(
        &self,
        request: Request<pb::ActivityReportRequest>,
    ) -> Result<Response<pb::ActivityReportResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let query = super::activity::query_of(&self.dispatcher, &request).await?;
        let subject = format!(
            "activity {} from {} to {}",
            query.area.as_ref().map_or_else(|| "everywhere".to_string(), ToString::to_string),
            query.from.0,
            query.to.0
        );
        let (report, first_kept_at_ms) = super::activity::compute(&self.dispatcher, query).await?;
        let with_people = caller.role >= OperatorRole::Commander;
        if with_people {
            self.audit_read(&caller, "ActivityReport", subject, report.people.iter().map(|row| row.agent.as_str())).await;
        }
        Ok(Response::new(super::activity::report_to_pb(&report, with_people, first_kept_at_ms)))
    }

    #[instrument(skip_all)]
    async fn import_areas(&self, request: Request<pb::ImportAreasRequest>) -> Result<Response<pb::ImportAreasResponse>, Status> {
        let actor = caller(&request)?.actor();
        Ok(Response::new(super::maps::import(&self.dispatcher, actor, request.into_inner()).await?))
    }

    #[instrument(skip_all)]
    async fn retire_area(&self, request: Request<pb::RetireAreaRequest>) -> Result<Response<pb::RetireAreaResponse>, Status> {
        let actor = caller(&request)?.actor();
        Ok(Response::new(super::maps::retire(&self.dispatcher, actor, request.into_inner()).await?))
    }

    async fn list_areas(&self, request: Request<pb::ListAreasRequest>) -> Result<Response<pb::ListAreasResponse>, Status> {
        let request = request.into_inner();
        let level = convert::level_from_pb(request.level);
        let with_geometry = request.with_geometry;
        let response = self
            .dispatcher
            .query(move |engine, _| pb::ListAreasResponse {
                areas: engine.areas_at(level).map(|area| convert::area_to_pb(engine, area, with_geometry)).collect(),
                service_centres: engine
                    .service_centres()
                    .map(|centre| pb::ServiceCentre {
                        id: centre.id.to_string(),
                        name: centre.name.clone(),
                        area_id: centre.area.to_string(),
                        location: Some(convert::location(centre.at)),
                    })
                    .collect(),
            })
            .await?;
        Ok(Response::new(response))
    }

    #[instrument(skip_all)]
    async fn upsert_agent(&self, request: Request<pb::UpsertAgentRequest>) -> Result<Response<pb::Agent>, Status> {
        let actor = caller(&request)?.actor();
        let spec = request.into_inner().agent.ok_or_else(|| invalid("agent is missing; send the person's record"))?;
        let profile = convert::profile_from_pb(&spec).map_err(rejection_status)?;
        let id = profile.id.clone();
        // A person new to the roster gets a token, shown once in this answer.
        let lookup = id.clone();
        let is_new = self.dispatcher.query(move |engine, _| engine.agent(&lookup).is_none()).await?;
        let issued = if is_new { issue_tokens(vec![id.clone()]).await? } else { Vec::new() };
        let tokens = issued.iter().map(|(_, hash)| hash.clone()).collect();
        let agent = self
            .dispatcher
            .execute(Command::UpsertAgents { agents: vec![profile], all_new: false, tokens }, actor, move |engine, events| {
                let now = events.last().map(|event| event.at).unwrap_or_default();
                let record = engine.agent(&id)?;
                let mut agent = convert::agent_to_pb(engine, record, now);
                // Only if it was stored: someone else may have added the person meanwhile.
                if let Some((token, hash)) = issued.first()
                    && engine.agent_token_hash(&id) == Some(hash.token_hash.as_str())
                {
                    agent.issued_token = token.clone();
                }
                Some(agent)
            })
            .await?;
        agent.map(Response::new).ok_or_else(|| error::internal("the person was saved but cannot be read back"))
    }

    #[instrument(skip_all)]
    async fn import_agents(
        &self,
        request: Request<pb::ImportAgentsRequest>,
    ) -> Result<Response<pb::ImportAgentsResponse>, Status> {
        let actor = caller(&request)?.actor();
        let agents = request
            .into_inner()
            .agents
            .iter()
            .map(convert::profile_from_pb)
            .collect::<Result<Vec<_>, Rejection>>()
            .map_err(rejection_status)?;
        let imported = agents.len() as u32;
        // Every person of an import is new (or the import is refused): each gets a token.
        let issued = issue_tokens(agents.iter().map(|profile| profile.id.clone()).collect()).await?;
        let hashes = issued.iter().map(|(_, hash)| hash.clone()).collect();
        self.dispatcher.execute(Command::UpsertAgents { agents, all_new: true, tokens: hashes }, actor, |_, _| ()).await?;
        let tokens = issued
            .into_iter()
            .map(|(token, hash)| pb::IssuedToken { subject: hash.agent.to_string(), token, expires_at_ms: 0 })
            .collect();
        Ok(Response::new(pb::ImportAgentsResponse { imported, tokens }))
    }

    async fn get_agent(&self, request: Request<pb::GetAgentRequest>) -> Result<Response<pb::Agent>, Status> {
        let caller = caller(&request)?;
        let id = AgentId::new(request.into_inner().id.trim());
        let message = format!("agent {} is not on the roster; list agents to find the id", quote(&id));
        let lookup = id.clone();
        let agent = self
            .dispatcher
            .query(move |engine, now| engine.agent(&lookup).map(|record| convert::agent_to_pb(engine, record, now)))
            .await?;
        let mut agents: Vec<pb::Agent> = agent.into_iter().collect();
        self.disclose(&caller, "GetAgent", format!("agent {id}"), &mut agents).await;
        match agents.pop() {
            Some(agent) => Ok(Response::new(agent)),
            None => Err(self.elsewhere(Kind::Agent, id.as_str(), error::not_found(message)).await),
        }
    }

    async fn list_agents(&self, request: Request<pb::ListAgentsRequest>) -> Result<Response<pb::ListAgentsResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let subject = format!(
            "list: area \"{}\", status {}, connected only {}, after \"{}\"",
            quote(&request.area_id),
            request.status,
            request.connected_only,
            quote(&request.after_id)
        );
        let limit = if request.limit == 0 { DEFAULT_LIMIT } else { request.limit as usize };
        let status = match request.status {
            0 => None,
            status => Some(convert::status_from_pb(status).map_err(rejection_status)?),
        };
        let query = AgentQuery {
            status,
            area: Some(request.area_id.trim().to_string()).filter(|area| !area.is_empty()).map(AreaId::new),
            connected_only: request.connected_only,
            after: Some(request.after_id.clone()).filter(|after| !after.is_empty()).map(AgentId::new),
            limit,
        };
        let agents = self
            .dispatcher
            .query(move |engine, now| -> Result<Vec<pb::Agent>, Rejection> {
                Ok(engine.agents(&query)?.into_iter().map(|record| convert::agent_to_pb(engine, record, now)).collect())
            })
            .await?
            .map_err(rejection_status)?;
        let mut agents = agents;
        self.disclose(&caller, "ListAgents", subject, &mut agents).await;
        Ok(Response::new(pb::ListAgentsResponse { agents }))
    }

    async fn nearby_agents(
        &self,
        request: Request<pb::NearbyAgentsRequest>,
    ) -> Result<Response<pb::NearbyAgentsResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let at = convert::position(request.at.as_ref(), "at").map_err(rejection_status)?;
        let k = match request.k {
            0 => 10,
            k if k > 1000 => return Err(invalid(format!("k = {k} is too many; ask for at most 1000"))),
            k => k as usize,
        };
        let skills: BTreeSet<String> = normalise_skills(&request.skills);
        let agents = self
            .dispatcher
            .query(move |engine, now| {
                engine
                    .nearby(at, k, &skills, request.available_only, now)
                    .into_iter()
                    .filter_map(|candidate| {
                        let record = engine.agent(&candidate.agent)?;
                        Some(pb::NearbyAgent {
                            agent: Some(convert::agent_to_pb(engine, record, now)),
                            distance_m: candidate.distance_m.round(),
                            eta_s: candidate.eta_s,
                        })
                    })
                    .collect()
            })
            .await?;
        let mut found: Vec<pb::NearbyAgent> = agents;
        let subject = format!("nearby ({:.4}, {:.4}), {} asked", at.lon, at.lat, k);
        if caller.role.sees_precise_personal_data() {
            let mut people: Vec<pb::Agent> = found.iter_mut().filter_map(|nearby| nearby.agent.take()).collect();
            self.disclose(&caller, "NearbyAgents", subject, &mut people).await;
            for (nearby, agent) in found.iter_mut().zip(people) {
                nearby.agent = Some(agent);
            }
        } else {
            // Distances tell where people are as much as positions do: a
            // viewer gets them banded like the coarse locations, in an
            // order that says no more, and the read is audited too.
            for nearby in &mut found {
                if let Some(agent) = nearby.agent.as_mut() {
                    convert::mask_agent(agent);
                }
                convert::band_distance(nearby);
            }
            let id = |nearby: &pb::NearbyAgent| {
                nearby.agent.as_ref().and_then(|agent| agent.spec.as_ref()).map(|spec| spec.id.clone())
            };
            found.sort_by(|a, b| a.distance_m.total_cmp(&b.distance_m).then_with(|| id(a).cmp(&id(b))));
            let ids = found.iter().filter_map(|nearby| nearby.agent.as_ref()?.spec.as_ref()).map(|spec| spec.id.as_str());
            self.audit_read(&caller, "NearbyAgents", format!("{subject} (coarse)"), ids).await;
        }
        Ok(Response::new(pb::NearbyAgentsResponse { agents: found }))
    }

    #[instrument(skip_all)]
    async fn create_incident(&self, request: Request<pb::CreateIncidentRequest>) -> Result<Response<pb::Incident>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let force = request.force;
        let (id, spec) = incident_spec(request)?;
        let incident = self
            .dispatcher
            .execute(Command::CreateIncident { id, spec, force }, actor, |engine, events| {
                let id = incident_from(events)?;
                engine.incident(&id).map(|incident| convert::incident_to_pb(engine, incident))
            })
            .await?;
        let incident = incident.ok_or_else(|| error::internal("the incident was saved but cannot be read back"))?;
        tracing::info!(incident_id = %incident.id, priority = incident.priority, category = %incident.category, "incident reported");
        Ok(Response::new(incident))
    }

    async fn get_incident(&self, request: Request<pb::GetIncidentRequest>) -> Result<Response<pb::Incident>, Status> {
        let precise = caller(&request)?.role.sees_precise_personal_data();
        let id = IncidentId::new(request.into_inner().id.trim());
        let message = format!("incident {} does not exist; list incidents to find its id", quote(&id));
        let lookup = id.clone();
        let incident = self
            .dispatcher
            .query(move |engine, _| engine.incident(&lookup).map(|incident| convert::incident_to_pb(engine, incident)))
            .await?;
        match incident {
            Some(mut incident) => {
                if !precise {
                    mask_offers(&mut incident);
                }
                Ok(Response::new(incident))
            }
            None => Err(self.elsewhere(Kind::Incident, id.as_str(), error::not_found(message)).await),
        }
    }

    async fn incident_timeline(
        &self,
        request: Request<pb::IncidentTimelineRequest>,
    ) -> Result<Response<pb::IncidentTimelineResponse>, Status> {
        let disclosure = convert::event::Disclosure::for_role(caller(&request)?.role);
        let request = request.into_inner();
        let limit = match request.limit {
            0 => 500,
            limit if limit > 2000 => {
                return Err(error::invalid_field("limit", format!("limit {limit} is too many; ask for at most 2000")));
            }
            limit => limit as usize,
        };
        let id = IncidentId::new(request.incident_id.trim());
        let (mut stored, mut next) =
            self.dispatcher.read_incident_events(id.as_str().to_string(), request.from_seq, limit).await?;
        // One timeline: the events of the incidents merged into this one
        // are part of it, in journal order.
        let lookup = id.clone();
        let merged_from: Vec<IncidentId> = self
            .dispatcher
            .query(move |engine, _| engine.incident(&lookup).map(|incident| incident.merged_from.clone()).unwrap_or_default())
            .await?;
        for merged in merged_from {
            let (more, more_next) = self.dispatcher.read_incident_events(merged.to_string(), request.from_seq, limit).await?;
            stored.extend(more);
            next = match (next, more_next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        stored.sort_by_key(|event| event.seq);
        stored.dedup_by_key(|event| event.seq);
        // Past the first page's end in any one incident, the others' later
        // events wait for the next page.
        if let Some(next_seq) = next {
            stored.retain(|event| event.seq < next_seq);
        }
        if stored.len() > limit {
            next = Some(stored[limit].seq);
            stored.truncate(limit);
        }
        if stored.is_empty() && request.from_seq == 0 {
            let lookup = id.clone();
            if !self.dispatcher.query(move |engine, _| engine.incident(&lookup).is_some()).await? {
                let message = format!("incident {} has no events and does not exist; list incidents to find its id", quote(&id));
                return Err(self.elsewhere(Kind::Incident, id.as_str(), error::not_found(message)).await);
            }
        }
        // The first event of an incident is its report, by an operator or
        // from the field; without it the head went for the retention limit.
        let complete = request.from_seq == 0
            && stored.first().is_some_and(|first| matches!(first.kind.as_str(), "incident_reported" | "field_reported"));
        let events = stored.iter().map(|event| super::events::redacted(event, disclosure)).collect::<Result<_, _>>()?;
        Ok(Response::new(pb::IncidentTimelineResponse { events, next_seq: next.unwrap_or(0), complete }))
    }

    #[instrument(skip_all)]
    async fn export_eido(&self, request: Request<pb::ExportEidoRequest>) -> Result<Response<pb::EidoDocument>, Status> {
        let caller = caller(&request)?;
        let disclosure = convert::event::Disclosure::for_role(caller.role);
        let precise = caller.role.sees_precise_personal_data();
        let id = IncidentId::new(request.into_inner().incident_id.trim());
        let lookup = id.clone();
        let found = self
            .dispatcher
            .query(move |engine, _| {
                engine.incident(&lookup).map(|incident| {
                    let roles: Vec<String> = incident
                        .assignments
                        .iter()
                        .map(|assignment| {
                            engine.agent(&assignment.agent).map(|agent| role_name(agent.profile.role)).unwrap_or_default()
                        })
                        .collect();
                    (convert::incident_to_pb(engine, incident), roles)
                })
            })
            .await?;
        let Some((mut incident, roles)) = found else {
            let message = format!("incident {} does not exist; list incidents to find its id", quote(&id));
            return Err(self.elsewhere(Kind::Incident, id.as_str(), error::not_found(message)).await);
        };
        if !precise {
            mask_offers(&mut incident);
        }
        let mut timeline = Vec::new();
        let mut from_seq = 0;
        loop {
            let (stored, next) = self.dispatcher.read_incident_events(id.as_str().to_string(), from_seq, 2000).await?;
            for event in &stored {
                timeline.push(super::events::redacted(event, disclosure)?);
            }
            match next {
                Some(next) if next > from_seq && timeline.len() < crate::eido::MAX_NOTES => from_seq = next,
                _ => break,
            }
        }
        let responders: Vec<crate::eido::Responder<'_>> = incident
            .assignments
            .iter()
            .zip(&roles)
            .map(|(assignment, role)| crate::eido::Responder { agent_id: &assignment.agent_id, role, assignment })
            .collect();
        let document = crate::eido::export(&incident, &responders, &timeline);
        let json = serde_json::to_string_pretty(&document)
            .map_err(|error| error::internal(format!("the EIDO cannot be written: {error}")))?;
        tracing::info!(incident_id = %incident.id, notes = timeline.len(), "incident exported as eido");
        Ok(Response::new(pb::EidoDocument { json }))
    }

    #[instrument(skip_all)]
    async fn import_eido(&self, request: Request<pb::ImportEidoRequest>) -> Result<Response<pb::Incident>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let text = request.document.map(|document| document.json).unwrap_or_default();
        let imported = crate::eido::import(&text, &request.default_category)
            .map_err(|refusal| error::invalid_field(refusal.property, format!("the EIDO is refused: {refusal}")))?;
        let location = pb::Location { lon: imported.lon, lat: imported.lat, crs: 0 };
        let at = convert::position(Some(&location), "location").map_err(rejection_status)?;
        let spec = IncidentSpec {
            at,
            category: imported.category,
            priority: imported.priority,
            skills: BTreeSet::new(),
            headcount: 1,
            description: imported.description,
            source_id: imported.source_id,
        };
        let incident = self
            .dispatcher
            .execute(Command::CreateIncident { id: None, spec, force: request.force }, actor, |engine, events| {
                let id = incident_from(events)?;
                engine.incident(&id).map(|incident| convert::incident_to_pb(engine, incident))
            })
            .await?;
        let incident = incident.ok_or_else(|| error::internal("the incident was saved but cannot be read back"))?;
        tracing::info!(incident_id = %incident.id, priority = incident.priority, category = %incident.category, "incident imported from eido");
        Ok(Response::new(incident))
    }

    async fn get_replay(&self, _request: Request<pb::GetReplayRequest>) -> Result<Response<pb::ReplayState>, Status> {
        Ok(Response::new(self.replay_state().await?))
    }

    async fn set_replay(&self, request: Request<pb::SetReplayRequest>) -> Result<Response<pb::ReplayState>, Status> {
        let view = self.replay()?;
        let request = request.into_inner();
        let speed = match request.speed {
            0.0 => None,
            speed if speed > 0.0 && speed <= 10_000.0 => Some(speed),
            speed => {
                return Err(error::invalid_field(
                    "speed",
                    format!("speed {speed} cannot be used: replay between 0 and 10000 times real time (0 keeps it)"),
                ));
            }
        };
        let paused = match pb::ReplayPlay::try_from(request.play) {
            Ok(pb::ReplayPlay::Unspecified) => None,
            Ok(pb::ReplayPlay::Pause) => Some(true),
            Ok(pb::ReplayPlay::Play) => Some(false),
            Err(_) => return Err(error::invalid_field("play", format!("play {} is not a known value", request.play))),
        };
        let now = view.clock.now();
        let skip_to = match request.skip_to_ms {
            0 => None,
            at if at < now.0 => {
                return Err(error::invalid_field(
                    "skip_to_ms",
                    format!(
                        "a replay cannot go back (it is at {} ms, asked for {at} ms): start it again with \
                         dispatcher --replay to see it from the beginning",
                        now.0
                    ),
                ));
            }
            at => Some(pingji_engine::ids::Millis(at)),
        };
        if let Some(pace) = view.clock.pace() {
            pace.set(speed, paused, skip_to);
        }
        Ok(Response::new(self.replay_state().await?))
    }

    async fn list_incidents(
        &self,
        request: Request<pb::ListIncidentsRequest>,
    ) -> Result<Response<pb::ListIncidentsResponse>, Status> {
        let precise = caller(&request)?.role.sees_precise_personal_data();
        let request = request.into_inner();
        let limit = if request.limit == 0 { DEFAULT_LIMIT } else { request.limit as usize };
        let query = IncidentQuery {
            open_only: request.open_only,
            after: Some(request.after_id.clone()).filter(|after| !after.is_empty()).map(IncidentId::new),
            limit,
        };
        let incidents = self
            .dispatcher
            .query(move |engine, _| {
                engine.incidents(&query).into_iter().map(|incident| convert::incident_to_pb(engine, incident)).collect()
            })
            .await?;
        let mut incidents: Vec<pb::Incident> = incidents;
        if !precise {
            incidents.iter_mut().for_each(mask_offers);
        }
        Ok(Response::new(pb::ListIncidentsResponse { incidents }))
    }

    #[instrument(skip_all)]
    async fn cancel_incident(&self, request: Request<pb::CancelIncidentRequest>) -> Result<Response<pb::Incident>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let id = IncidentId::new(request.id.trim());
        self.end_incident(Command::CancelIncident { incident: id.clone(), reason: request.reason }, actor, id).await
    }

    #[instrument(skip_all)]
    async fn close_incident(&self, request: Request<pb::CloseIncidentRequest>) -> Result<Response<pb::Incident>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let id = IncidentId::new(request.id.trim());
        self.end_incident(Command::CloseIncident { incident: id.clone(), feedback: request.feedback }, actor, id).await
    }

    #[instrument(skip_all)]
    async fn set_mode(&self, request: Request<pb::SetModeRequest>) -> Result<Response<pb::Area>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let mode = convert::mode_from_pb(request.mode).map_err(rejection_status)?;
        let area = AreaId::new(request.area_id.trim());
        let command = Command::SetMode { area: area.clone(), mode, reason: request.reason.trim().to_string() };
        let switched = self
            .dispatcher
            .execute(command, actor.clone(), move |engine, _| {
                engine.area(&area).map(|spec| convert::area_to_pb(engine, spec, false))
            })
            .await?;
        let switched = switched.ok_or_else(|| error::internal("the mode was set but the area cannot be read back"))?;
        tracing::info!(area_id = %switched.id, mode = ?mode, %actor, "mode switched");
        Ok(Response::new(switched))
    }

    #[instrument(skip_all)]
    async fn import_plans(&self, request: Request<pb::ImportPlansRequest>) -> Result<Response<pb::ImportPlansResponse>, Status> {
        let actor = caller(&request)?.actor();
        // Each problem names its file as a field, plans_toml[INDEX], so a
        // client can say which file is wrong without reading the message.
        let field = |index: usize| format!("plans_toml[{index}]");
        let mut plans = Vec::new();
        for (index, text) in request.into_inner().plans_toml.iter().enumerate() {
            let plan = parse_plan(text)
                .map_err(|error| error::invalid_field(&field(index), format!("plan file #{}: {error}", index + 1)))?;
            if let Some(first) = plans.iter().position(|earlier: &pingji_engine::plans::PlanSpec| earlier.id == plan.id) {
                return Err(error::invalid_field(
                    &field(index),
                    format!(
                        "plan file #{}: plan {} is also defined in plan file #{}; give each plan its own id",
                        index + 1,
                        plan.id,
                        first + 1
                    ),
                ));
            }
            plans.push(plan);
        }
        let imported = plans.iter().map(convert::plan_to_pb).collect();
        let named_areas: Vec<Vec<pingji_engine::ids::AreaId>> = plans
            .iter()
            .map(|plan| {
                plan.tasks
                    .iter()
                    .filter_map(|task| match &task.place {
                        pingji_engine::plans::TaskPlace::Areas(areas) => Some(areas.clone()),
                        _ => None,
                    })
                    .flatten()
                    .collect()
            })
            .collect();
        let unknown_area = self
            .dispatcher
            .query(move |engine, _| {
                named_areas
                    .iter()
                    .enumerate()
                    .find_map(|(index, areas)| engine.first_unknown_area(areas).map(|area| (index, area.clone())))
            })
            .await?;
        if let Some((index, area)) = unknown_area {
            let message = format!(
                "plan file #{}: plan {} names area {area}, which is not on the map; import the areas first or fix the id",
                index + 1,
                plans[index].id
            );
            return Err(error::invalid_field(&field(index), message));
        }
        self.dispatcher.execute(Command::ImportPlans(plans), actor, |_, _| ()).await?;
        Ok(Response::new(pb::ImportPlansResponse { plans: imported }))
    }

    async fn list_plans(&self, _request: Request<pb::ListPlansRequest>) -> Result<Response<pb::ListPlansResponse>, Status> {
        let response = self
            .dispatcher
            .query(|engine, _| pb::ListPlansResponse {
                plans: engine.plans().map(convert::plan_to_pb).collect(),
                activations: engine.activations().map(convert::activation_to_pb).collect(),
            })
            .await?;
        Ok(Response::new(response))
    }

    #[instrument(skip_all)]
    async fn activate_plan(&self, request: Request<pb::ActivatePlanRequest>) -> Result<Response<pb::PlanActivation>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let command = Command::ActivatePlan {
            plan: PlanId::new(request.plan_id.trim()),
            area: AreaId::new(request.area_id.trim()),
            reason: request.reason.trim().to_string(),
        };
        let activation = self
            .dispatcher
            .execute(command, actor, |engine, events| {
                events.iter().find_map(|event| match &event.kind {
                    EventKind::PlanActivated { activation, .. } => engine.activation(activation).map(convert::activation_to_pb),
                    _ => None,
                })
            })
            .await?;
        activation.map(Response::new).ok_or_else(|| error::internal("the plan was activated but cannot be read back"))
    }

    #[instrument(skip_all)]
    async fn deactivate_plan(&self, request: Request<pb::DeactivatePlanRequest>) -> Result<Response<pb::PlanActivation>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let id = ActivationId::new(request.activation_id.trim());
        let command = Command::DeactivatePlan { activation: id.clone(), reason: request.reason.trim().to_string() };
        let activation = self
            .dispatcher
            .execute(command, actor, move |engine, _| engine.activation(&id).map(convert::activation_to_pb))
            .await?;
        activation.map(Response::new).ok_or_else(|| error::internal("the plan was deactivated but cannot be read back"))
    }

    #[instrument(skip_all)]
    async fn call_up(&self, request: Request<pb::CallUpRequest>) -> Result<Response<pb::Callup>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let roles = request
            .roles
            .iter()
            .map(|role| convert::role_from_pb_value(*role))
            .collect::<Result<Vec<_>, _>>()
            .map_err(rejection_status)?;
        let command = Command::CallUp {
            area: AreaId::new(request.area_id.trim()),
            roles,
            reason: request.reason.trim().to_string(),
            deadline_s: Some(u64::from(request.deadline_s)).filter(|seconds| *seconds > 0),
        };
        let callup = self
            .dispatcher
            .execute(command, actor, |engine, events| {
                events.iter().find_map(|event| match &event.kind {
                    EventKind::CallupIssued { callup, .. } => {
                        engine.callup(callup).map(|callup| convert::callup_to_pb(engine, callup))
                    }
                    _ => None,
                })
            })
            .await?;
        callup.map(Response::new).ok_or_else(|| error::internal("the call-up was issued but cannot be read back"))
    }

    async fn callup_status(
        &self,
        request: Request<pb::CallupStatusRequest>,
    ) -> Result<Response<pb::CallupStatusResponse>, Status> {
        let request = request.into_inner();
        let query = CallupQuery {
            open_only: request.open_only,
            area: Some(request.area_id.trim().to_string()).filter(|area| !area.is_empty()).map(AreaId::new),
        };
        let callups = self
            .dispatcher
            .query(move |engine, _| -> Result<Vec<pb::Callup>, Rejection> {
                Ok(engine.callups(&query)?.into_iter().map(|callup| convert::callup_to_pb(engine, callup)).collect())
            })
            .await?
            .map_err(rejection_status)?;
        Ok(Response::new(pb::CallupStatusResponse { callups }))
    }

    #[instrument(skip_all)]
    async fn triage_report(&self, request: Request<pb::TriageReportRequest>) -> Result<Response<pb::Incident>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let incident = IncidentId::new(request.report_id.trim());
        let command = match request.action {
            Some(pb::triage_report_request::Action::Accept(accept)) => Command::TriageAccept {
                incident: incident.clone(),
                priority: match accept.priority {
                    0 => None,
                    priority => Some(
                        u8::try_from(priority)
                            .map_err(|_| invalid(format!("priority {priority} is out of range; use 1 to 4")))?,
                    ),
                },
                headcount: Some(accept.headcount).filter(|headcount| *headcount > 0),
                skills: Some(normalise_skills(&accept.required_skills)).filter(|skills| !skills.is_empty()),
            },
            Some(pb::triage_report_request::Action::MergeInto(into)) => {
                Command::TriageMerge { incident: incident.clone(), into: IncidentId::new(into.trim()) }
            }
            Some(pb::triage_report_request::Action::RejectReason(reason)) => {
                Command::TriageReject { incident: incident.clone(), reason }
            }
            None => return Err(invalid("say what to do with the report: accept, merge_into or reject_reason")),
        };
        self.end_incident(command, actor, incident).await
    }

    async fn explain_incident(
        &self,
        request: Request<pb::ExplainIncidentRequest>,
    ) -> Result<Response<pb::ExplainIncidentResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let candidates = match request.candidates {
            0 => 10,
            n if n > 200 => {
                return Err(error::invalid_field("candidates", format!("candidates = {n} is too many; ask for at most 200")));
            }
            n => n as usize,
        };
        let passed_over = match request.passed_over {
            0 => 20,
            n if n > 500 => {
                return Err(error::invalid_field("passed_over", format!("passed_over = {n} is too many; ask for at most 500")));
            }
            n => n as usize,
        };
        let id = IncidentId::new(request.incident_id.trim());
        let agent = Some(request.agent_id.trim()).filter(|agent| !agent.is_empty()).map(AgentId::new);
        let query = ExplainQuery { incident: id.clone(), agent, candidates, passed_over };
        let explained = self
            .dispatcher
            .query(move |engine, now| {
                engine.explain(&query, now).map(|explanation| convert::explain::explanation_to_pb(&explanation, now))
            })
            .await?;
        let mut response = match explained {
            Ok(response) => response,
            Err(rejection) => return Err(self.elsewhere(Kind::Incident, id.as_str(), rejection_status(rejection)).await),
        };
        // Distances say where people are: the read is audited, and a
        // viewer gets them banded, without ETAs.
        let mut subject = format!("explain {id}");
        if !caller.role.sees_precise_personal_data() {
            convert::explain::mask_explanation(&mut response);
            subject.push_str(" (coarse)");
        }
        let ids = response
            .candidates
            .iter()
            .map(|candidate| candidate.agent_id.as_str())
            .chain(response.passed_over.iter().filter(|passed| passed.located).map(|passed| passed.agent_id.as_str()));
        self.audit_read(&caller, "ExplainIncident", subject, ids).await;
        Ok(Response::new(response))
    }

    async fn find_duplicates(
        &self,
        request: Request<pb::FindDuplicatesRequest>,
    ) -> Result<Response<pb::FindDuplicatesResponse>, Status> {
        let request = request.into_inner();
        let incident = request.incident_id.trim();
        let query = if incident.is_empty() {
            let at = convert::position(request.location.as_ref(), "location").map_err(rejection_status)?;
            let category = request.category.trim().to_lowercase();
            if category.is_empty() {
                return Err(error::invalid_field("category", "category is empty; say what kind of incident it is (e.g. fire)"));
            }
            DuplicateQuery::Report { at, category }
        } else {
            DuplicateQuery::Incident(IncidentId::new(incident))
        };
        let found = self
            .dispatcher
            .query(move |engine, now| {
                let rule = &engine.policy().duplicates;
                let (within_m, within_minutes) = (rule.within_m, rule.within_minutes);
                engine.duplicates(&query, now).map(|duplicates| pb::FindDuplicatesResponse {
                    duplicates: duplicates.iter().map(|duplicate| convert::explain::duplicate_to_pb(engine, duplicate)).collect(),
                    within_m,
                    within_minutes,
                })
            })
            .await?;
        let response = match found {
            Ok(response) => response,
            Err(rejection) => return Err(self.elsewhere(Kind::Incident, incident, rejection_status(rejection)).await),
        };
        Ok(Response::new(response))
    }

    #[instrument(skip_all)]
    async fn merge_incidents(&self, request: Request<pb::MergeIncidentsRequest>) -> Result<Response<pb::Incident>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let incident = request.incident_id.trim().to_string();
        let into = IncidentId::new(request.into_incident_id.trim());
        if into.as_str().is_empty() {
            return Err(error::invalid_field("into_incident_id", "name the open incident the duplicate is merged into"));
        }
        let command = match (request.report, incident.is_empty()) {
            (Some(report), true) => {
                let (id, spec) = incident_spec(report)?;
                Command::ReportDuplicate { id, spec, into: into.clone() }
            }
            (None, false) => Command::MergeIncidents { incident: IncidentId::new(&incident), into: into.clone() },
            _ => {
                return Err(invalid(
                    "name the duplicate: either incident_id (an incident already reported) or report (a new one), not both",
                ));
            }
        };
        let merged = self.end_incident(command, actor, into).await?;
        tracing::info!(into = %merged.get_ref().id, "incident merged");
        Ok(merged)
    }

    async fn coverage(&self, request: Request<pb::CoverageRequest>) -> Result<Response<pb::CoverageResponse>, Status> {
        let area = Some(request.into_inner().area_id.trim().to_string()).filter(|area| !area.is_empty()).map(AreaId::new);
        let response = self
            .dispatcher
            .query(move |engine, now| -> Result<pb::CoverageResponse, Rejection> {
                let report = engine.coverage_report(area.as_ref(), now)?;
                let name = |id: &AreaId| engine.area(id).map(|spec| spec.name.clone()).unwrap_or_default();
                Ok(pb::CoverageResponse {
                    communities: report
                        .communities
                        .into_iter()
                        .map(|row| pb::CommunityCoverage {
                            name: name(&row.community),
                            community_id: row.community.to_string(),
                            grids: row.grids,
                            grids_within_15_min: row.grids_within_15_min,
                            share: if row.grids == 0 { 0.0 } else { f64::from(row.grids_within_15_min) / f64::from(row.grids) },
                        })
                        .collect(),
                    grids: report
                        .grids
                        .into_iter()
                        .map(|staffing| pb::GridStaffing {
                            name: name(&staffing.grid),
                            grid_id: staffing.grid.to_string(),
                            available: staffing.available,
                            minimum: staffing.minimum,
                            below: staffing.available < staffing.minimum,
                        })
                        .collect(),
                    walk_mps: engine.policy().speeds.walk_mps,
                })
            })
            .await?
            .map_err(rejection_status)?;
        Ok(Response::new(response))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(&self, request: Request<pb::WatchEventsRequest>) -> Result<Response<Self::WatchEventsStream>, Status> {
        let watcher = super::events::Watcher { caller: caller(&request)?, sharding: self.sharding.clone() };
        let request = request.into_inner();
        let stream = super::events::event_stream(self.dispatcher.clone(), request.from_seq, request.replay_last, watcher).await?;
        Ok(Response::new(stream))
    }

    type WatchAgentsStream = Pin<Box<dyn Stream<Item = Result<pb::AgentsChanged, Status>> + Send>>;

    async fn watch_agents(&self, request: Request<pb::WatchAgentsRequest>) -> Result<Response<Self::WatchAgentsStream>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let watch = AgentWatch {
            dispatcher: self.dispatcher.clone(),
            sharding: self.sharding.clone(),
            audited: self.audited.clone(),
            caller,
            query: AgentQuery {
                area: Some(request.area_id.trim().to_string()).filter(|area| !area.is_empty()).map(AreaId::new),
                connected_only: request.connected_only,
                limit: MAX_WATCHED + 1,
                ..AgentQuery::default()
            },
            compact_moves: request.compact_moves,
        };
        Ok(Response::new(Box::pin(watch.start().await?)))
    }

    async fn who_am_i(&self, request: Request<pb::WhoAmIRequest>) -> Result<Response<pb::Operator>, Status> {
        let caller = caller(&request)?;
        let name = caller.name.clone();
        let operator = self
            .dispatcher
            .query(move |engine, _| engine.operator(&name).map(|operator| operator_to_pb(&name, operator)))
            .await?;
        let operator = match (operator, &self.sharding) {
            (Some(operator), _) => Some(operator),
            (None, Some(sharding)) => {
                sharding.published_operator(&caller.name).await.map(|account| published_to_pb(&caller.name, &account))
            }
            (None, None) => None,
        };
        operator.map(Response::new).ok_or_else(|| error::not_found("your account was removed just now"))
    }

    #[instrument(skip_all)]
    async fn rotate_own_token(&self, request: Request<pb::RotateOwnTokenRequest>) -> Result<Response<pb::IssuedToken>, Status> {
        let caller = caller(&request)?;
        let lifetime_ms = lifetime_ms(request.into_inner().expires_in_s);
        self.issue_operator_token_for(&caller, &caller.name, lifetime_ms).await.map(Response::new)
    }

    #[instrument(skip_all)]
    async fn issue_operator_token(
        &self,
        request: Request<pb::IssueOperatorTokenRequest>,
    ) -> Result<Response<pb::IssuedToken>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let name = request.name.trim().to_string();
        self.issue_operator_token_for(&caller, &name, lifetime_ms(request.expires_in_s)).await.map(Response::new)
    }

    #[instrument(skip_all)]
    async fn revoke_operator_token(
        &self,
        request: Request<pb::RevokeOperatorTokenRequest>,
    ) -> Result<Response<pb::Operator>, Status> {
        let actor = caller(&request)?.actor();
        let name = request.into_inner().name.trim().to_string();
        let lookup = name.clone();
        let revoked = self
            .dispatcher
            .execute(Command::RevokeOperatorToken { name: name.clone() }, actor, move |engine, _| {
                engine.operator(&lookup).map(|operator| operator_to_pb(&lookup, operator))
            })
            .await;
        match revoked {
            Ok(Some(operator)) => {
                tracing::info!(operator = %name, "operator token revoked");
                Ok(Response::new(operator))
            }
            Ok(None) => Err(error::internal("the token was revoked but the account cannot be read back")),
            Err(error) => Err(self.elsewhere(Kind::Operator, &name, error.into()).await),
        }
    }

    #[instrument(skip_all)]
    async fn issue_agent_token(&self, request: Request<pb::IssueAgentTokenRequest>) -> Result<Response<pb::IssuedToken>, Status> {
        let actor = caller(&request)?.actor();
        let agent = AgentId::new(request.into_inner().agent_id.trim());
        let Some((token, hash)) = issue_tokens(vec![agent.clone()]).await?.pop() else {
            return Err(error::internal("no token was made"));
        };
        let command = Command::IssueAgentToken { agent: agent.clone(), token_hash: hash.token_hash };
        if let Err(error) = self.dispatcher.execute(command, actor, |_, _| ()).await {
            return Err(self.elsewhere(Kind::Agent, agent.as_str(), error.into()).await);
        }
        Ok(Response::new(pb::IssuedToken { subject: agent.to_string(), token, expires_at_ms: 0 }))
    }

    #[instrument(skip_all)]
    async fn send_message(&self, request: Request<pb::SendMessageRequest>) -> Result<Response<pb::OperatorMessage>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let Some(to) = convert::audience_from_pb(request.to.as_ref()) else {
            return Err(error::invalid_field("to", "say who the message is for: one person, an incident's team or an area"));
        };
        let command = Command::SendMessage { to, text: request.text };
        let sent = self
            .dispatcher
            .execute(command, actor, |engine, events| {
                events.iter().find_map(|event| match &event.kind {
                    EventKind::MessageSent { message, .. } => engine.state().messages.get(message).map(convert::message_to_pb),
                    _ => None,
                })
            })
            .await?;
        sent.map(Response::new).ok_or_else(|| Status::internal("the message was sent but could not be read back"))
    }

    async fn list_messages(
        &self,
        request: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, Status> {
        let role = caller(&request)?.role;
        let request = request.into_inner();
        let limit = match request.limit {
            0 => 100,
            limit if limit > 1000 => {
                return Err(error::invalid_field("limit", format!("limit {limit} is too many; ask for at most 1000")));
            }
            limit => limit as usize,
        };
        let agent = Some(AgentId::new(request.agent_id.trim())).filter(|agent| !agent.as_str().is_empty());
        let incident = Some(IncidentId::new(request.incident_id.trim())).filter(|incident| !incident.as_str().is_empty());
        let mut messages = self
            .dispatcher
            .query(move |engine, _| {
                engine
                    .messages(limit, |record| {
                        agent.as_ref().is_none_or(|agent| record.recipients.contains(agent))
                            && incident
                                .as_ref()
                                .is_none_or(|incident| record.to == pingji_engine::message::Audience::Incident(incident.clone()))
                    })
                    .into_iter()
                    .map(convert::message_to_pb)
                    .collect::<Vec<_>>()
            })
            .await?;
        if !role.sees_precise_personal_data() {
            for message in &mut messages {
                message.text = convert::event::MASKED_TEXT.to_string();
                for reply in &mut message.replies {
                    reply.text = convert::event::MASKED_TEXT.to_string();
                }
            }
        }
        Ok(Response::new(pb::ListMessagesResponse { messages }))
    }

    async fn get_clock(&self, request: Request<pb::GetClockRequest>) -> Result<Response<pb::DispatcherClock>, Status> {
        caller(&request)?;
        Ok(Response::new(pb::DispatcherClock { now_ms: self.clock.now().0, speed: self.clock.speed() }))
    }

    async fn get_photo(&self, request: Request<pb::GetPhotoRequest>) -> Result<Response<pb::Photo>, Status> {
        let actor = caller(&request)?.actor();
        let photo_ref = request.into_inner().photo_ref.trim().to_string();
        let Some(photos) = self.photos.clone() else {
            return Err(crate::server::error::status(
                tonic::Code::NotFound,
                pb::ErrorReason::NotFound,
                "this dispatcher keeps no photos (it has no photo directory)",
            ));
        };
        let asked = photo_ref.clone();
        let (content_type, data) = tokio::task::spawn_blocking(move || photos.read(&asked))
            .await
            .map_err(|_| Status::internal("the photo could not be read; retry"))?
            .map_err(super::error::photo_status)?;
        tracing::info!(actor = %actor, "photo read");
        Ok(Response::new(pb::Photo { photo_ref, content_type: content_type.to_string(), data }))
    }

    async fn issue_agent_tokens(
        &self,
        request: Request<pb::IssueAgentTokensRequest>,
    ) -> Result<Response<pb::IssueAgentTokensResponse>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let limit = match request.limit {
            0 => MAX_TOKENS_A_CALL,
            limit if limit as usize > MAX_TOKENS_A_CALL => {
                return Err(invalid(format!("limit {limit} is too many; ask for at most {MAX_TOKENS_A_CALL} a call")));
            }
            limit => limit as usize,
        };
        let named: Vec<AgentId> = request.agent_ids.iter().map(|id| AgentId::new(id.trim())).collect();
        if named.len() > MAX_TOKENS_A_CALL {
            return Err(invalid(format!(
                "{} people in one call are too many; send at most {MAX_TOKENS_A_CALL} a call",
                named.len()
            )));
        }
        let (people, kept_ids) = match (named.is_empty(), request.without_token) {
            (false, true) => return Err(invalid("give agent_ids or without_token, not both")),
            (true, false) => return Err(invalid("say whose tokens to issue: agent_ids, or without_token")),
            (true, true) => {
                let people =
                    self.dispatcher.query(move |engine, _| engine.agents_without_token().take(limit).cloned().collect()).await?;
                (people, Vec::new())
            }
            (false, false) => {
                let replace = request.replace;
                self.dispatcher
                    .query(move |engine, _| {
                        named.into_iter().partition::<Vec<AgentId>, _>(|id| replace || engine.agent_token_hash(id).is_none())
                    })
                    .await?
            }
        };
        let issued = issue_tokens(people).await?;
        let hashes: Vec<AgentTokenHash> = issued.iter().map(|(_, hash)| hash.clone()).collect();
        let command = Command::IssueAgentTokens { tokens: hashes, replace: request.replace };
        let (stored, without_token) = self
            .dispatcher
            .execute(command, actor, move |engine, _| {
                // Only what was stored: someone else may have issued some meanwhile.
                let stored: Vec<pb::IssuedToken> = issued
                    .into_iter()
                    .filter(|(_, hash)| engine.agent_token_hash(&hash.agent) == Some(hash.token_hash.as_str()))
                    .map(|(token, hash)| pb::IssuedToken { subject: hash.agent.to_string(), token, expires_at_ms: 0 })
                    .collect();
                (stored, engine.agents_without_token().count() as u32)
            })
            .await?;
        tracing::info!(people = stored.len(), "agent tokens issued");
        Ok(Response::new(pb::IssueAgentTokensResponse {
            tokens: stored,
            kept_ids: kept_ids.into_iter().map(|id| id.to_string()).collect(),
            without_token,
        }))
    }

    #[instrument(skip_all)]
    async fn add_operator(&self, request: Request<pb::AddOperatorRequest>) -> Result<Response<pb::IssuedToken>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let name = request.name.trim().to_string();
        accounts::check_operator_name(&name).map_err(invalid)?;
        let role = role_from_pb(request.role)?;
        if let Some(sharding) = &self.sharding
            && let Some(shard) = sharding.find(Kind::Operator, &name).await
        {
            return Err(error::already_exists(format!(
                "operator {name} already exists (the account's home is shard {shard}); rotate their token, or remove \
                 them first to change the role"
            )));
        }
        let (token, token_hash) = new_operator_token(&name).await?;
        let command =
            Command::AddOperator { name: name.clone(), role, token_hash, lifetime_ms: lifetime_ms(request.expires_in_s) };
        let expires_at_ms = self.dispatcher.execute(command, actor, |_, events| token_expiry(events)).await?;
        Ok(Response::new(pb::IssuedToken { subject: name, token, expires_at_ms }))
    }

    #[instrument(skip_all)]
    async fn remove_operator(&self, request: Request<pb::RemoveOperatorRequest>) -> Result<Response<pb::Operator>, Status> {
        let actor = caller(&request)?.actor();
        let name = request.into_inner().name.trim().to_string();
        let lookup = name.clone();
        let account = self
            .dispatcher
            .query(move |engine, _| engine.operator(&lookup).map(|operator| operator_to_pb(&lookup, operator)))
            .await?;
        if let Err(error) = self.dispatcher.execute(Command::RemoveOperator { name: name.clone() }, actor, |_, _| ()).await {
            return Err(self.elsewhere(Kind::Operator, &name, error.into()).await);
        }
        let removed = account.unwrap_or(pb::Operator { name, role: pb::OperatorRole::Unspecified as i32, ..Default::default() });
        Ok(Response::new(removed))
    }

    async fn list_operators(
        &self,
        _request: Request<pb::ListOperatorsRequest>,
    ) -> Result<Response<pb::ListOperatorsResponse>, Status> {
        let operators = self
            .dispatcher
            .query(|engine, _| engine.operators().map(|(name, operator)| operator_to_pb(name, operator)).collect::<Vec<_>>())
            .await?;
        // With one shard per district, also the accounts other shards hold.
        let mut operators = operators;
        if let Some(sharding) = &self.sharding {
            let here: BTreeSet<String> = operators.iter().map(|operator| operator.name.clone()).collect();
            for (name, account) in sharding.published_operators().await {
                if !here.contains(&name) {
                    operators.push(published_to_pb(&name, &account));
                }
            }
            operators.sort_by(|left, right| left.name.cmp(&right.name));
        }
        Ok(Response::new(pb::ListOperatorsResponse { operators }))
    }
}

/// An incident as a viewer sees it: the distances and ETAs of the people
/// offered it banded to the kilometre, like the coarse positions (with the
/// incident's place, an exact distance is a position).
/// A roster role as EIDO exports name it: `grid_leader`.
fn role_name(role: pingji_engine::roster::Role) -> String {
    let wire = pb::Role::try_from(convert::role_to_pb_value(role)).unwrap_or(pb::Role::Unspecified);
    wire.as_str_name().trim_start_matches("ROLE_").to_lowercase()
}

fn mask_offers(incident: &mut pb::Incident) {
    incident.open_offers.iter_mut().for_each(convert::band_offer);
}

/// People given tokens in one `IssueAgentTokens` call at most: a call's
/// hashing takes about a tenth of a second of one core, and its event stays
/// small in the journal.
const MAX_TOKENS_A_CALL: usize = 1000;

/// A token lifetime asked for in seconds (0: the default) in milliseconds;
/// the engine checks the bounds (a lifetime too long to count is refused
/// there as out of range).
fn lifetime_ms(expires_in_s: u64) -> i64 {
    if expires_in_s == 0 {
        return accounts::DEFAULT_OPERATOR_TOKEN_LIFETIME_MS;
    }
    i64::try_from(expires_in_s).ok().and_then(|seconds| seconds.checked_mul(1000)).unwrap_or(i64::MAX)
}

/// The expiry of the operator token an account event just set.
fn token_expiry(events: &[pingji_engine::event::Event]) -> i64 {
    events
        .iter()
        .find_map(|event| match &event.kind {
            EventKind::OperatorAdded { expires_at, .. } | EventKind::OperatorTokenRotated { expires_at, .. } => *expires_at,
            _ => None,
        })
        .map_or(0, |at| at.0)
}

/// New tokens for `people`, with their hashes (hashing takes a moment each,
/// so it runs off the async workers).
async fn issue_tokens(people: Vec<AgentId>) -> Result<Vec<(String, AgentTokenHash)>, Status> {
    tokio::task::spawn_blocking(move || {
        people
            .into_iter()
            .map(|agent| {
                let token = tokens::new_agent_token();
                let token_hash = tokens::hash_token(&token).map_err(error::internal)?;
                Ok((token, AgentTokenHash { agent, token_hash }))
            })
            .collect()
    })
    .await
    .map_err(|_| error::internal("making tokens failed"))?
}

async fn new_operator_token(name: &str) -> Result<(String, String), Status> {
    let token = tokens::new_operator_token(name);
    let hashing = token.clone();
    let hash = tokio::task::spawn_blocking(move || tokens::hash_token(&hashing))
        .await
        .map_err(|_| error::internal("making a token failed"))?
        .map_err(error::internal)?;
    Ok((token, hash))
}

fn operator_to_pb(name: &str, operator: &Operator) -> pb::Operator {
    pb::Operator {
        name: name.to_string(),
        role: role_to_pb(operator.role) as i32,
        created_at_ms: operator.created_at.0,
        token_expires_at_ms: operator.token_expires_at.map_or(0, |at| at.0),
        token_revoked_at_ms: operator.token_revoked_at.map_or(0, |at| at.0),
    }
}

fn published_to_pb(name: &str, account: &PublishedOperator) -> pb::Operator {
    pb::Operator {
        name: name.to_string(),
        role: role_to_pb(account.role) as i32,
        created_at_ms: account.created_at_ms,
        token_expires_at_ms: account.token_expires_at_ms,
        token_revoked_at_ms: account.token_revoked_at_ms,
    }
}

fn role_to_pb(role: OperatorRole) -> pb::OperatorRole {
    match role {
        OperatorRole::Viewer => pb::OperatorRole::Viewer,
        OperatorRole::Dispatcher => pb::OperatorRole::Dispatcher,
        OperatorRole::Commander => pb::OperatorRole::Commander,
        OperatorRole::Admin => pb::OperatorRole::Admin,
    }
}

fn role_from_pb(role: i32) -> Result<OperatorRole, Status> {
    match pb::OperatorRole::try_from(role) {
        Ok(pb::OperatorRole::Viewer) => Ok(OperatorRole::Viewer),
        Ok(pb::OperatorRole::Dispatcher) => Ok(OperatorRole::Dispatcher),
        Ok(pb::OperatorRole::Commander) => Ok(OperatorRole::Commander),
        Ok(pb::OperatorRole::Admin) => Ok(OperatorRole::Admin),
        _ => Err(invalid("role is missing or unknown; give viewer, dispatcher, commander or admin")),
    }
}

impl CommandApi {
    /// A `not_found` for an incident or person that the directory places in
    /// another shard becomes a redirect to that shard's owner.
    async fn elsewhere(&self, kind: Kind, id: &str, status: Status) -> Status {
        match &self.sharding {
            Some(sharding) if status.code() == tonic::Code::NotFound => {
                sharding.redirect_to_holder(kind, id).await.unwrap_or(status)
            }
            _ => status,
        }
    }

    /// Viewers get people with phone numbers masked and locations to about
    /// 1 km; the other roles get them as they are. Either way the read is
    /// audited (a `personal_data_read` event; a viewer's subject ends
    /// "(coarse)"), once per operator, call, subject and set of people in
    /// the audit's window (see `audit`).
    async fn disclose(&self, caller: &Caller, rpc: &str, subject: String, agents: &mut [pb::Agent]) {
        let subject = if caller.role.sees_precise_personal_data() {
            subject
        } else {
            agents.iter_mut().for_each(convert::mask_agent);
            format!("{subject} (coarse)")
        };
        let ids = agents.iter().filter_map(|agent| agent.spec.as_ref()).map(|spec| spec.id.as_str());
        self.audit_read(caller, rpc, subject, ids).await;
    }

    /// Journals who read people's positions or distances, in which call,
    /// about whom (`subject`, the people `ids`), and how many people; a
    /// read already in the audit's window is not journaled again.
    async fn audit_read<'a>(&self, caller: &Caller, rpc: &str, subject: String, ids: impl Iterator<Item = &'a str> + Clone) {
        // A live view polling the same people is one read, not one a poll.
        if !self.audited.is_new(&caller.name, rpc, &subject, ids.clone()) {
            return;
        }
        audit::record_read(&self.dispatcher, caller, rpc, subject, ids.count()).await;
    }

    /// A new token for operator `name` (the caller's own, or another's by
    /// an admin), working for `lifetime_ms` from now.
    async fn issue_operator_token_for(&self, caller: &Caller, name: &str, lifetime_ms: i64) -> Result<pb::IssuedToken, Status> {
        let (token, token_hash) = new_operator_token(name).await?;
        let command = Command::RotateOperatorToken { name: name.to_string(), token_hash, lifetime_ms };
        match self.dispatcher.execute(command, caller.actor(), |_, events| token_expiry(events)).await {
            Ok(expires_at_ms) => Ok(pb::IssuedToken { subject: name.to_string(), token, expires_at_ms }),
            Err(error) => Err(self.elsewhere(Kind::Operator, name, error.into()).await),
        }
    }

    async fn end_incident(&self, command: Command, actor: String, id: IncidentId) -> Result<Response<pb::Incident>, Status> {
        let lookup = id.clone();
        let incident = match self
            .dispatcher
            .execute(command, actor, move |engine, _| {
                engine.incident(&lookup).map(|incident| convert::incident_to_pb(engine, incident))
            })
            .await
        {
            Ok(incident) => incident,
            Err(error) => return Err(self.elsewhere(Kind::Incident, id.as_str(), error.into()).await),
        };
        incident.map(Response::new).ok_or_else(|| error::internal("the incident was saved but cannot be read back"))
    }
}
