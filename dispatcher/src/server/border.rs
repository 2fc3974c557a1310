//! Across district borders: the people of a neighbouring shard for an
//! incident near the border (docs/redis.md, "Across borders").
//!
//! A person is written only by their home shard's owner and an incident
//! only by its own shard's owner, so nobody holds two assignments:
//!
//! 1. The incident's owner ([`keep_border`]) asks each neighbouring
//!    district's owner for its best free people
//!    (`ShardService.NearestCandidates`: the neighbour's own search,
//!    [`pingji_engine::engine::Engine::border_candidates`], over the
//!    incident's flat area as the neighbour sees it).
//! 2. When the best of them arrives sooner than everyone the incident is
//!    offered to now (or nobody is), it asks the person's home shard to
//!    reserve them and send the offer (`ReserveAndOffer`, with its lease
//!    epoch; idempotent by the offer's id). The home shard journals
//!    `border_reserved`; the incident's shard then journals `offer_sent`
//!    (`from_area_id`: the neighbour's area) and times it out as any offer.
//! 3. The person answers at home. An acceptance is journaled there
//!    (`border_accepted`: the person is busy) and sent to the incident's
//!    shard (`AnswerBorderOffer`), which journals `assigned` if the offer is
//!    still open; the home shard then journals `border_confirmed`, or
//!    `border_released` (refused) when it was not.
//! 4. The incident's shard tells the home shard when its offer timed out,
//!    was withdrawn, or the assignment ended or was done
//!    (`SettleReservation`).
//! 5. The person's arrival and completion, sent at home where their session
//!    is, are carried out at the incident's shard (`ForwardReport`).
//! 6. The home shard asks the incident's shard, every
//!    [`CHECK_HELD_EVERY`], whether it still holds each person it lent
//!    (`CheckAssignment`), and frees those it does not: a settlement lost
//!    with its sender changes nothing for long.
//!
//! A lost message or a dead neighbour leaves no reservation behind: the
//! home shard releases every reservation unanswered or unconfirmed a few
//! seconds past the offer's deadline (`RESERVATION_GRACE_MS`), and the
//! incident's shard times its offer out and goes on with its own people.
//! Every call carries the sender's lease epoch, and a call from an owner
//! whose shard has a newer fence is refused (`FENCED`) before anything is
//! journaled. Calls between dispatchers carry the city's peer secret.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingji_proto::v1 as pb;
use pingji_proto::v1::ErrorReason;
use pingji_proto::v1::shard_service_client::ShardServiceClient;
use tokio::sync::broadcast::error::RecvError;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};
use tracing::{debug, info, warn};

use super::error;
use super::sharding::{Kind, Sharding};
use crate::convert;
use crate::runtime::{DispatchError, Dispatcher};
use pingji_engine::areas::AreaLevel;
use pingji_engine::border::{BorderOfferView, BorderReservation, RESERVATION_GRACE_MS, ReservationEnd, ReservationState};
use pingji_engine::engine::border::BorderQuery;
use pingji_engine::engine::{Command, Engine, Rejection};
use pingji_engine::ids::{AgentId, AreaId, IncidentId, Millis, OfferId};
use pingji_engine::incident::OfferRecord;
use pingji_engine::policy::Mode;

/// The metadata key of the city's peer secret on calls between dispatchers.
pub const PEER_METADATA: &str = "x-pingji-peer";
/// How long one call to another shard's owner may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How often waiting incidents are looked at again, unanswered messages
/// retried and expired reservations released.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// How long a person's confirmed assignment across the border goes before
/// their home shard asks the incident's shard whether it still holds it
/// (and again as long as it does): a settlement lost with its sender's
/// memory frees the person within this.
const CHECK_HELD_EVERY: Duration = Duration::from_secs(10);
/// The actor of what a border call journals.
fn peer_actor(shard: &str) -> String {
    format!("shard:{shard}")
}

/// `ShardService`: what the owners of district shards ask each other.
pub struct ShardApi {
    pub dispatcher: Dispatcher,
    pub sharding: Arc<Sharding>,
}

impl ShardApi {
    async fn check_peer<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let shown = request.metadata().get(PEER_METADATA).and_then(|value| value.to_str().ok()).unwrap_or_default();
        let secret = self.sharding.peer_secret().await.map_err(|error| {
            warn!(%error, "cannot read the peer secret");
            error::retry_later(ErrorReason::StoreUnavailable, "the peer secret cannot be read now; retry in a moment")
        })?;
        if shown.is_empty() || !same_secret(shown, &secret) {
            return Err(error::unauthenticated(
                ErrorReason::TokenInvalid,
                "calls between dispatchers need the city's peer secret (x-pingji-peer)",
            ));
        }
        Ok(())
    }

    /// Refuses a call from an owner of `shard` older than its current one.
    async fn check_epoch(&self, shard: &str, epoch: u64) -> Result<(), Status> {
        let fence = self.sharding.fence_of(shard).await.map_err(|error| {
            warn!(%error, shard, "cannot read another shard's fence");
            error::retry_later(ErrorReason::StoreUnavailable, "the sender's fence cannot be read now; retry in a moment")
        })?;
        if epoch < fence {
            return Err(error::status(
                Code::FailedPrecondition,
                ErrorReason::Fenced,
                format!(
                    "the sender's lease on shard {shard} (epoch {epoch}) was taken over (fence {fence}); \
                     its owner now decides for that shard"
                ),
            ));
        }
        Ok(())
    }
}

/// Compares without stopping at the first difference.
fn same_secret(shown: &str, secret: &str) -> bool {
    shown.len() == secret.len() && shown.bytes().zip(secret.bytes()).fold(0u8, |differ, (a, b)| differ | (a ^ b)) == 0
}

#[tonic::async_trait]
impl pb::shard_service_server::ShardService for ShardApi {
    async fn nearest_candidates(
        &self,
        request: Request<pb::NearestCandidatesRequest>,
    ) -> Result<Response<pb::NearestCandidatesResponse>, Status> {
        self.check_peer(&request).await?;
        let asked = request.into_inner();
        let at = asked.location.ok_or_else(|| error::invalid_field("location", "the incident's location is missing"))?;
        let at = pingji_engine::spatial::Position::checked(at.lon, at.lat)
            .map_err(|problem| error::invalid_field("location", problem))?;
        let mode = convert::mode_from_pb(asked.mode).map_err(error::rejection_status)?;
        let emergency_level = convert::level_from_pb(asked.emergency_level)
            .ok_or_else(|| error::invalid_field("emergency_level", "not an area level"))?;
        let k = (asked.k as usize).clamp(1, 16);
        let excluded: BTreeSet<AgentId> = asked.excluded_agent_ids.iter().map(AgentId::new).collect();
        let skills = asked.required_skills.iter().cloned().collect();
        let emergency_area = AreaId::new(&asked.emergency_area_id);
        let candidates = self
            .dispatcher
            .query(move |engine, now| {
                let query = BorderQuery { at, skills, mode, emergency_level, emergency_area, excluded, k, now };
                engine.border_candidates(&query)
            })
            .await?;
        Ok(Response::new(pb::NearestCandidatesResponse {
            shard: self.sharding.shard().to_string(),
            candidates: candidates
                .into_iter()
                .map(|candidate| pb::BorderCandidate {
                    agent_id: candidate.agent.to_string(),
                    distance_m: candidate.distance_m,
                    eta_s: candidate.eta_s,
                    recent_assignments: candidate.recent_assignments,
                    from_area_id: candidate.via.map(|area| area.to_string()).unwrap_or_default(),
                })
                .collect(),
        }))
    }

    async fn reserve_and_offer(
        &self,
        request: Request<pb::ReserveAndOfferRequest>,
    ) -> Result<Response<pb::ReserveAndOfferResponse>, Status> {
        self.check_peer(&request).await?;
        let asked = request.into_inner();
        self.check_epoch(&asked.incident_shard, asked.epoch).await?;
        let offer = asked.offer.ok_or_else(|| error::invalid_field("offer", "the offer is missing"))?;
        let at = offer.location.ok_or_else(|| error::invalid_field("offer.location", "the incident's location is missing"))?;
        let at = pingji_engine::spatial::Position::checked(at.lon, at.lat)
            .map_err(|problem| error::invalid_field("offer.location", problem))?;
        let priority = u8::try_from(offer.priority).map_err(|_| error::invalid_field("offer.priority", "out of range"))?;
        let level =
            convert::level_from_pb(offer.level).ok_or_else(|| error::invalid_field("offer.level", "not an area level"))?;
        if offer.offer_id.is_empty() || offer.incident_id.is_empty() || offer.agent_id.is_empty() {
            return Err(error::invalid("a border offer needs its offer, incident and agent ids"));
        }
        let now = self.dispatcher.query(|_, now| now).await?;
        let reservation = BorderReservation {
            offer: OfferId::new(&offer.offer_id),
            incident: IncidentId::new(&offer.incident_id),
            incident_shard: asked.incident_shard.clone(),
            epoch: asked.epoch,
            agent: AgentId::new(&offer.agent_id),
            sent_at: now,
            deadline: Millis(offer.deadline_ms),
            expires_at: Millis(asked.expires_at_ms),
            view: BorderOfferView {
                category: offer.category,
                priority,
                at,
                skills: offer.required_skills.into_iter().collect(),
                description: offer.description,
                distance_m: offer.distance_m,
                eta_s: offer.eta_s,
                level,
                safety_interval_s: (asked.safety_interval_s != 0).then_some(u64::from(asked.safety_interval_s)),
            },
            state: ReservationState::Offered,
        };
        let offer_id = reservation.offer.clone();
        self.dispatcher.execute(Command::BorderReserve(reservation), peer_actor(&asked.incident_shard), |_, _| ()).await?;
        info!(offer_id = %offer_id, incident_shard = %asked.incident_shard, "person reserved for an incident across the border");
        Ok(Response::new(pb::ReserveAndOfferResponse { shard: self.sharding.shard().to_string() }))
    }

    async fn settle_reservation(
        &self,
        request: Request<pb::SettleReservationRequest>,
    ) -> Result<Response<pb::SettleReservationResponse>, Status> {
        self.check_peer(&request).await?;
        let asked = request.into_inner();
        self.check_epoch(&asked.incident_shard, asked.epoch).await?;
        let offer = OfferId::new(&asked.offer_id);
        let command = match asked.outcome.as_str() {
            "confirmed" => Command::BorderConfirm { offer },
            "withdrawn" => Command::BorderRelease { offer, end: ReservationEnd::Withdrawn, reason: asked.reason },
            "refused" => Command::BorderRelease { offer, end: ReservationEnd::Refused, reason: asked.reason },
            "ended" => Command::BorderRelease { offer, end: ReservationEnd::Ended, reason: asked.reason },
            other => {
                return Err(error::invalid_field("outcome", format!("{other:?}: use confirmed, withdrawn, refused or ended")));
            }
        };
        self.dispatcher.execute(command, peer_actor(&asked.incident_shard), |_, _| ()).await?;
        Ok(Response::new(pb::SettleReservationResponse {}))
    }

    async fn answer_border_offer(
        &self,
        request: Request<pb::AnswerBorderOfferRequest>,
    ) -> Result<Response<pb::AnswerBorderOfferResponse>, Status> {
        self.check_peer(&request).await?;
        let asked = request.into_inner();
        self.check_epoch(&asked.home_shard, asked.epoch).await?;
        let offer = OfferId::new(&asked.offer_id);
        let agent = AgentId::new(&asked.agent_id);
        let incident = IncidentId::new(&asked.incident_id);
        let command =
            Command::BorderAnswer { offer: offer.clone(), agent: agent.clone(), accepted: asked.accepted, reason: asked.reason };
        let holds = move |engine: &Engine| {
            engine
                .state()
                .incidents
                .get(&incident)
                .is_some_and(|record| record.assignments.iter().any(|held| held.offer == offer && held.agent == agent))
        };
        match self.dispatcher.execute(command, peer_actor(&asked.home_shard), move |engine, _| holds(engine)).await {
            Ok(assigned) => Ok(Response::new(pb::AnswerBorderOfferResponse { assigned: assigned && asked.accepted })),
            // Timed out, withdrawn or filled here: not assigned, nothing changed.
            Err(DispatchError::Rejected(Rejection::OfferNotOpen(_) | Rejection::FailedPrecondition(_))) => {
                Ok(Response::new(pb::AnswerBorderOfferResponse { assigned: false }))
            }
            Err(other) => Err(other.into()),
        }
    }

    async fn forward_report(
        &self,
        request: Request<pb::ForwardReportRequest>,
    ) -> Result<Response<pb::ForwardReportResponse>, Status> {
        self.check_peer(&request).await?;
        let asked = request.into_inner();
        self.check_epoch(&asked.home_shard, asked.epoch).await?;
        let agent = AgentId::new(asked.agent_id.trim());
        let command = match asked.report.and_then(|report| report.body) {
            Some(pb::agent_message::Body::Arrived(arrived)) => {
                Command::Arrive { agent: agent.clone(), incident: IncidentId::new(arrived.incident_id.trim()) }
            }
            Some(pb::agent_message::Body::Completed(completed)) => Command::Complete {
                agent: agent.clone(),
                incident: IncidentId::new(completed.incident_id.trim()),
                feedback: completed.feedback,
                photo_refs: completed.photo_refs.into_iter().map(|reference| reference.trim().to_owned()).collect(),
            },
            _ => return Err(error::invalid_field("report", "only arrived and completed reports are forwarded")),
        };
        self.dispatcher.execute(command, format!("agent:{agent}"), |_, _| ()).await?;
        Ok(Response::new(pb::ForwardReportResponse {}))
    }

    async fn check_assignment(
        &self,
        request: Request<pb::CheckAssignmentRequest>,
    ) -> Result<Response<pb::CheckAssignmentResponse>, Status> {
        self.check_peer(&request).await?;
        let asked = request.into_inner();
        self.check_epoch(&asked.home_shard, asked.epoch).await?;
        let (offer, incident, agent) =
            (OfferId::new(&asked.offer_id), IncidentId::new(&asked.incident_id), AgentId::new(&asked.agent_id));
        let held = self
            .dispatcher
            .query(move |engine, _| {
                let state = engine.state();
                state.open_incidents.contains(&incident)
                    && state.incidents.get(&incident).is_some_and(|record| {
                        record
                            .assignments
                            .iter()
                            .any(|held| held.offer == offer && held.agent == agent && held.completed_at.is_none())
                    })
            })
            .await?;
        Ok(Response::new(pb::CheckAssignmentResponse { held }))
    }
}

/// The shard of the incident a person's arrival or completion is about,
/// when they hold it across the border: their session is here, at home,
/// and the incident is written only by its own shard. With `session` (a
/// browser's call), refused unless it is the person's open session.
pub(super) async fn held_across(
    dispatcher: &Dispatcher,
    command: &Command,
    session: Option<u64>,
) -> Result<Option<String>, DispatchError> {
    let (agent, incident) = match command {
        Command::Arrive { agent, incident } | Command::Complete { agent, incident, .. } => (agent.clone(), incident.clone()),
        _ => return Ok(None),
    };
    let caller = agent.clone();
    let view = move |engine: &Engine, _| {
        engine
            .state()
            .border
            .values()
            .find(|held| held.agent == agent && held.incident == incident && held.state != ReservationState::Offered)
            .map(|held| held.incident_shard.clone())
    };
    match session {
        Some(session) => dispatcher.query_in_session(caller, session, view).await,
        None => dispatcher.query(view).await,
    }
}

/// Carries a person's arrival or completion to the shard of the incident
/// they hold across the border; its answer is the person's answer.
pub(super) async fn forward_report(
    sharding: &Arc<Sharding>,
    incident_shard: &str,
    agent: &AgentId,
    report: pb::AgentMessage,
) -> Result<(), DispatchError> {
    let mut peers = Peers { sharding: sharding.clone(), channels: HashMap::new() };
    let unreachable = || {
        DispatchError::Unavailable(format!(
            "the dispatcher of district {incident_shard}, which holds this incident, cannot be reached now; send the \
             report again in a moment"
        ))
    };
    let Some((mut client, secret)) = peers.client(incident_shard).await else {
        return Err(unreachable());
    };
    let message = pb::ForwardReportRequest {
        home_shard: sharding.shard().to_string(),
        epoch: sharding.epoch(),
        agent_id: agent.to_string(),
        report: Some(report),
    };
    match client.forward_report(with_secret(message, &secret)).await {
        Ok(_) => Ok(()),
        Err(status) => Err(match status.code() {
            Code::InvalidArgument => Rejection::InvalidArgument(status.message().to_owned()).into(),
            Code::NotFound => Rejection::NotFound(status.message().to_owned()).into(),
            Code::FailedPrecondition => Rejection::FailedPrecondition(status.message().to_owned()).into(),
            _ => {
                debug!(code = ?status.code(), incident_shard, "a report across the border was not taken");
                unreachable()
            }
        }),
    }
}

/// Clients of other shards' owners, by address.
struct Peers {
    sharding: Arc<Sharding>,
    channels: HashMap<String, Channel>,
}

impl Peers {
    async fn client(&mut self, shard: &str) -> Option<(ShardServiceClient<Channel>, String)> {
        let address = self.sharding.owner_of(shard).await?;
        let secret = match self.sharding.peer_secret().await {
            Ok(secret) => secret,
            Err(error) => {
                warn!(%error, "cannot read the peer secret");
                return None;
            }
        };
        let channel = match self.channels.get(&address) {
            Some(channel) => channel.clone(),
            None => {
                let scheme = if self.sharding.peer_tls().is_some() { "https" } else { "http" };
                let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
                    .ok()?
                    .timeout(CALL_TIMEOUT)
                    .connect_timeout(CALL_TIMEOUT);
                if let Some(tls) = self.sharding.peer_tls() {
                    endpoint = match endpoint.tls_config(tls.clone()) {
                        Ok(endpoint) => endpoint,
                        Err(error) => {
                            warn!(%error, "cannot set up TLS for calls to other dispatchers");
                            return None;
                        }
                    };
                }
                let channel = endpoint.connect_lazy();
                self.channels.insert(address.clone(), channel.clone());
                channel
            }
        };
        Some((ShardServiceClient::new(channel), secret))
    }

    fn forget(&mut self, error: &Status) {
        if matches!(error.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown) {
            self.channels.clear();
        }
    }
}

fn with_secret<T>(message: T, secret: &str) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = secret.parse() {
        request.metadata_mut().insert(PEER_METADATA, value);
    }
    request
}

/// An incident of this shard that may want people from across the border.
pub struct Wanting {
    pub incident: IncidentId,
    pub at: pingji_engine::spatial::Position,
    pub skills: Vec<String>,
    pub mode: Mode,
    pub emergency_level: AreaLevel,
    pub emergency_area: AreaId,
    pub excluded: Vec<String>,
    /// The best ETA among its open offers (`None`: no offer open).
    pub best_open_eta_s: Option<f64>,
    pub offer_timeout_s: u64,
    pub spec: pingji_engine::incident::IncidentSpec,
    /// Widened to the city in normal mode: every district is asked, not
    /// only the neighbours.
    pub whole_city: bool,
    /// Seconds between safety check-ins at its grade (`None`: none asked),
    /// told to the home shard of a person it reserves.
    pub safety_interval_s: Option<u64>,
}

/// What [`wanting`] finds: the incidents, the districts next to this one,
/// and every other district of the city.
pub type Wanted = (Vec<Wanting>, Vec<String>, Vec<String>);

/// This shard's open incidents in emergency, or widened to the city in
/// normal mode, that still need people; the districts next to this one
/// (touching, or lending people by mutual aid); and every other district.
/// Each district is a shard. Public so that the simulation (`pingji-sim`)
/// runs this very choice rather than a copy of it.
pub fn wanting(engine: &Engine, district: &AreaId) -> Wanted {
    let state = engine.state();
    let areas = &state.areas;
    let others: Vec<String> = areas
        .areas()
        .filter(|area| area.level == AreaLevel::District && &area.id != district)
        .map(|area| area.id.to_string())
        .collect();
    let mut neighbours: BTreeSet<String> = areas
        .areas()
        .filter(|area| area.level == AreaLevel::District && &area.id != district && areas.touch(district, &area.id))
        .map(|area| area.id.to_string())
        .collect();
    for rule in &engine.policy().mutual_aid {
        for from in &rule.from {
            if let Some(other) = areas.placement_of_area(from).at(AreaLevel::District).filter(|other| *other != district) {
                neighbours.insert(other.to_string());
            }
        }
    }
    if others.is_empty() {
        return (Vec::new(), Vec::new(), Vec::new());
    }
    let incidents = state
        .open_incidents
        .iter()
        .filter_map(|id| state.incidents.get(id))
        // Offers out to its own people do not stop a look across: someone
        // sooner may be there. One border offer per person still needed.
        .filter(|incident| {
            let across = incident.open_offers.values().filter(|offer| !state.agents.contains_key(&offer.agent)).count();
            !incident.triage_pending && incident.still_needed() as usize > across
        })
        // Held for the batch window's matching: its own people are offered
        // first, and someone across must then be sooner than they are.
        .filter(|incident| !engine.live().batch_queue.contains(&incident.id))
        .filter_map(|incident| {
            let (mode, emergency) = state.effective_mode(&incident.placement);
            // In normal mode, from the ladder's district step: people of
            // other districts standing in this one (their shard holds
            // their location), then, at the city step, anyone in the city.
            let ladder_step = (!mode.is_emergency() && matches!(incident.scope, AreaLevel::District | AreaLevel::City))
                .then_some(incident.scope);
            let whole_city = ladder_step == Some(AreaLevel::City);
            let (emergency_level, emergency_area) = match ladder_step {
                Some(level) => (level, incident.placement.at(level)?.clone()),
                None => emergency.filter(|_| mode.is_emergency())?,
            };
            let mut excluded: BTreeSet<String> = incident.excluded.iter().map(ToString::to_string).collect();
            excluded.extend(incident.open_offers.values().map(|offer| offer.agent.to_string()));
            Some(Wanting {
                incident: incident.id.clone(),
                at: incident.spec.at,
                skills: incident.spec.skills.iter().cloned().collect(),
                mode,
                emergency_level,
                emergency_area,
                excluded: excluded.into_iter().collect(),
                best_open_eta_s: incident.open_offers.values().map(|offer| offer.eta_s).reduce(f64::min),
                offer_timeout_s: engine.policy().for_mode(mode).offer_timeout_s,
                spec: incident.spec.clone(),
                whole_city,
                safety_interval_s: engine.safety_interval_s(&incident.id),
            })
        })
        .collect();
    (incidents, neighbours.into_iter().collect(), others)
}

/// What the home side still has to tell an incident's shard. Public for
/// the simulation (`pingji-sim`), which runs the same choice.
#[derive(Clone, Debug)]
pub struct Answer {
    pub incident_shard: String,
    pub incident: IncidentId,
    pub agent: AgentId,
    pub accepted: bool,
    pub reason: String,
}

/// Runs both sides of the border protocol for this shard while its owner
/// serves: offering its incidents across the border, and answering for its
/// people reserved by other shards.
pub async fn keep_border(dispatcher: Dispatcher, sharding: Arc<Sharding>) {
    let district = AreaId::new(sharding.shard().as_str());
    let mut peers = Peers { sharding: sharding.clone(), channels: HashMap::new() };
    let mut events = dispatcher.subscribe();
    let mut follow = tokio::time::interval(FOLLOW_EVERY);
    // Home side: answers to send, by offer; from the start, the acceptances
    // a previous owner journaled but may not have told.
    let mut answers = untold_acceptances(&dispatcher).await;
    // Incident side: reservations to settle at the person's home shard
    // (offer → (agent, outcome)).
    let mut settle: BTreeMap<OfferId, (AgentId, &'static str, String)> = BTreeMap::new();
    // Home side: when each confirmed reservation was last checked.
    let mut checked: HashMap<OfferId, Instant> = HashMap::new();
    let mut look = true;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => look |= note(&dispatcher, &event, &mut answers, &mut settle).await,
                Err(RecvError::Lagged(_)) => look = true,
                Err(RecvError::Closed) => return,
            },
            _ = follow.tick() => {
                look = true;
                expire(&dispatcher).await;
                check_held(&dispatcher, &sharding, &mut peers, &mut checked).await;
            }
        }
        while let Ok(event) = events.try_recv() {
            look |= note(&dispatcher, &event, &mut answers, &mut settle).await;
        }
        send_answers(&dispatcher, &sharding, &mut peers, &mut answers).await;
        send_settlements(&sharding, &mut peers, &mut settle).await;
        if look {
            look = false;
            offer_across(&dispatcher, &sharding, &mut peers, &district).await;
        }
    }
}

/// The acceptances journaled here that the incident's shard has not
/// confirmed or refused yet: a new owner tells them again (the answer is
/// idempotent there), since they no longer expire on their own.
async fn untold_acceptances(dispatcher: &Dispatcher) -> BTreeMap<OfferId, Answer> {
    dispatcher.query(|engine, _| accepted_here(engine)).await.unwrap_or_default()
}

/// Every reservation here accepted and not yet confirmed or refused, as
/// the answer to tell its incident's shard.
pub fn accepted_here(engine: &Engine) -> BTreeMap<OfferId, Answer> {
    engine
        .state()
        .border
        .values()
        .filter(|held| held.state == ReservationState::Accepted)
        .map(|held| {
            let answer = Answer {
                incident_shard: held.incident_shard.clone(),
                incident: held.incident.clone(),
                agent: held.agent.clone(),
                accepted: true,
                reason: String::new(),
            };
            (held.offer.clone(), answer)
        })
        .collect()
}

/// Takes what an event asks of the border protocol; true when this
/// shard's incidents should be looked at again.
async fn note(
    dispatcher: &Dispatcher,
    event: &pb::Event,
    answers: &mut BTreeMap<OfferId, Answer>,
    settle: &mut BTreeMap<OfferId, (AgentId, &'static str, String)>,
) -> bool {
    use pb::event::Body;
    let Some(body) = &event.body else { return false };
    match body {
        Body::BorderAccepted(accepted) => {
            let offer = OfferId::new(&accepted.offer_id);
            let shard = reservation_shard(dispatcher, &offer).await;
            if let Some(incident_shard) = shard {
                answers.insert(
                    offer,
                    Answer {
                        incident_shard,
                        incident: IncidentId::new(&accepted.incident_id),
                        agent: AgentId::new(&accepted.agent_id),
                        accepted: true,
                        reason: String::new(),
                    },
                );
            }
            false
        }
        Body::BorderReserved(_) | Body::BorderConfirmed(_) => false,
        Body::BorderReleased(released) => {
            let offer = OfferId::new(&released.offer_id);
            answers.remove(&offer);
            // A decline is told once (the incident's shard times the offer
            // out otherwise); the reservation is gone from the state, so the
            // incident's shard is looked up in the directory.
            if released.end == ReservationEnd::Declined.name() {
                answers.insert(
                    offer,
                    Answer {
                        incident_shard: String::new(),
                        incident: IncidentId::new(&released.incident_id),
                        agent: AgentId::new(&released.agent_id),
                        accepted: false,
                        reason: released.reason.clone(),
                    },
                );
            }
            true
        }
        // Incident side: an offer to another shard's person that ended here.
        Body::OfferTimedOut(ended) => {
            note_foreign(dispatcher, &ended.offer_id, &ended.agent_id, "withdrawn", "timed out", settle).await;
            true
        }
        Body::OfferWithdrawn(ended) => {
            note_foreign(dispatcher, &ended.offer_id, &ended.agent_id, "withdrawn", "withdrawn", settle).await;
            true
        }
        Body::AssignmentCompleted(completed) => {
            if let Some(offer) = assignment_offer(dispatcher, &event.incident_id, &completed.agent_id).await {
                note_foreign(dispatcher, &offer, &completed.agent_id, "ended", "the task is done", settle).await;
            }
            true
        }
        Body::IncidentCancelled(pb::event::IncidentCancelled { released_agent_ids: released, .. })
        | Body::IncidentClosed(pb::event::IncidentClosed { released_agent_ids: released, .. }) => {
            for agent in released {
                let offer = assignment_offer(dispatcher, &event.incident_id, agent).await;
                if let Some(offer) = offer {
                    note_foreign(dispatcher, &offer, agent, "ended", "the incident ended", settle).await;
                }
            }
            true
        }
        Body::IncidentReported(_)
        | Body::OfferSent(_)
        | Body::OfferDeclined(_)
        | Body::NoCandidates(_)
        | Body::ModeSwitched(_) => true,
        _ => false,
    }
}

/// The shard of the incident a reservation here is for.
async fn reservation_shard(dispatcher: &Dispatcher, offer: &OfferId) -> Option<String> {
    let offer = offer.clone();
    dispatcher
        .query(move |engine, _| engine.state().border.get(&offer).map(|reservation| reservation.incident_shard.clone()))
        .await
        .ok()
        .flatten()
}

/// The offer by which `agent` holds `incident` here.
async fn assignment_offer(dispatcher: &Dispatcher, incident: &str, agent: &str) -> Option<String> {
    let (incident, agent) = (IncidentId::new(incident), AgentId::new(agent));
    dispatcher
        .query(move |engine, _| {
            let record = engine.state().incidents.get(&incident)?;
            record.assignments.iter().find(|held| held.agent == agent).map(|held| held.offer.to_string())
        })
        .await
        .ok()
        .flatten()
}

/// Notes that `agent`'s offer ended here, when the person is another shard's.
async fn note_foreign(
    dispatcher: &Dispatcher,
    offer: &str,
    agent: &str,
    outcome: &'static str,
    reason: &str,
    settle: &mut BTreeMap<OfferId, (AgentId, &'static str, String)>,
) {
    let id = AgentId::new(agent);
    let ours = dispatcher.query(move |engine, _| engine.state().agents.contains_key(&id)).await.unwrap_or(true);
    if !ours {
        settle.insert(OfferId::new(offer), (AgentId::new(agent), outcome, reason.to_owned()));
    }
}

/// Releases this shard's reservations past their expiry.
async fn expire(dispatcher: &Dispatcher) {
    let any = dispatcher
        .query(|engine, now| {
            engine.state().border.values().any(|held| held.expires_at <= now && held.state == ReservationState::Offered)
        })
        .await;
    if !matches!(any, Ok(true)) {
        return;
    }
    match dispatcher
        .execute(Command::ExpireBorderReservations, pingji_engine::event::DISPATCHER.to_owned(), |_, events| events.len())
        .await
    {
        Ok(released) => info!(released, "border reservations expired"),
        Err(error) => warn!(%error, "cannot release expired border reservations; trying again"),
    }
}

/// Home side: asks the incident's shard of each confirmed reservation,
/// every [`CHECK_HELD_EVERY`], whether it still holds the person, and
/// frees them when it says it does not (the incident ended or the task was
/// done, and the settlement never came).
async fn check_held(dispatcher: &Dispatcher, sharding: &Sharding, peers: &mut Peers, checked: &mut HashMap<OfferId, Instant>) {
    let confirmed = dispatcher
        .query(|engine, _| {
            engine
                .state()
                .border
                .values()
                .filter(|held| held.state == ReservationState::Confirmed)
                .map(|held| (held.offer.clone(), held.incident.clone(), held.agent.clone(), held.incident_shard.clone()))
                .collect::<Vec<_>>()
        })
        .await;
    let Ok(confirmed) = confirmed else { return };
    checked.retain(|offer, _| confirmed.iter().any(|(held, ..)| held == offer));
    let now = Instant::now();
    for (offer, incident, agent, incident_shard) in confirmed {
        let since = *checked.entry(offer.clone()).or_insert(now);
        if now.duration_since(since) < CHECK_HELD_EVERY {
            continue;
        }
        checked.insert(offer.clone(), now);
        let Some((mut client, secret)) = peers.client(&incident_shard).await else { continue };
        let message = pb::CheckAssignmentRequest {
            home_shard: sharding.shard().to_string(),
            epoch: sharding.epoch(),
            offer_id: offer.to_string(),
            incident_id: incident.to_string(),
            agent_id: agent.to_string(),
        };
        match client.check_assignment(with_secret(message, &secret)).await {
            Ok(answer) if !answer.get_ref().held => {
                let reason = format!("district {incident_shard} no longer holds the assignment");
                let command = Command::BorderRelease { offer: offer.clone(), end: ReservationEnd::Ended, reason };
                match dispatcher.execute(command, pingji_engine::event::DISPATCHER.to_owned(), |_, _| ()).await {
                    Ok(()) => info!(offer_id = %offer, incident_shard, "a border assignment ended there is released here"),
                    Err(error) => warn!(%error, offer_id = %offer, "cannot release a border assignment ended elsewhere"),
                }
            }
            Ok(_) => {}
            Err(status) => {
                debug!(code = ?status.code(), offer_id = %offer, "cannot ask whether a border assignment is still held");
                peers.forget(&status);
            }
        }
    }
}

/// Home side: tells incidents' shards what their border offers' people
/// answered, and journals the outcome of acceptances.
async fn send_answers(dispatcher: &Dispatcher, sharding: &Sharding, peers: &mut Peers, answers: &mut BTreeMap<OfferId, Answer>) {
    let pending: Vec<(OfferId, Answer)> = answers.iter().map(|(offer, answer)| (offer.clone(), answer.clone())).collect();
    for (offer, mut answer) in pending {
        if answer.incident_shard.is_empty() {
            // A decline: the reservation is gone; ask the directory.
            match sharding.find(Kind::Incident, answer.incident.as_str()).await {
                Some(shard) => answer.incident_shard = shard,
                None => {
                    answers.remove(&offer);
                    continue;
                }
            }
        }
        let Some((mut client, secret)) = peers.client(&answer.incident_shard).await else {
            if !answer.accepted {
                answers.remove(&offer);
            }
            continue;
        };
        let message = pb::AnswerBorderOfferRequest {
            home_shard: sharding.shard().to_string(),
            epoch: sharding.epoch(),
            offer_id: offer.to_string(),
            incident_id: answer.incident.to_string(),
            agent_id: answer.agent.to_string(),
            accepted: answer.accepted,
            reason: answer.reason.clone(),
        };
        let result = client.answer_border_offer(with_secret(message, &secret)).await;
        if !answer.accepted {
            answers.remove(&offer);
            continue;
        }
        let command = match result {
            Ok(response) if response.get_ref().assigned => Command::BorderConfirm { offer: offer.clone() },
            Ok(_) => Command::BorderRelease {
                offer: offer.clone(),
                end: ReservationEnd::Refused,
                reason: "the offer was no longer open at the incident's district".to_owned(),
            },
            Err(status) => {
                // Kept until the reservation expires: tried again each second.
                debug!(code = ?status.code(), offer_id = %offer, "cannot tell the incident's shard of an acceptance yet");
                peers.forget(&status);
                continue;
            }
        };
        match dispatcher.execute(command, pingji_engine::event::DISPATCHER.to_owned(), |_, _| ()).await {
            Ok(()) | Err(DispatchError::Rejected(_)) => {
                answers.remove(&offer);
            }
            // Told again next time (the incident's shard answers the same):
            // dropped here, the acceptance would hold the person for good.
            Err(error) => warn!(%error, offer_id = %offer, "cannot journal the outcome of a border acceptance; trying again"),
        }
    }
}

/// Incident side: tells people's home shards that their offers ended here.
async fn send_settlements(
    sharding: &Sharding,
    peers: &mut Peers,
    settle: &mut BTreeMap<OfferId, (AgentId, &'static str, String)>,
) {
    let pending: Vec<_> = settle.iter().map(|(offer, value)| (offer.clone(), value.clone())).collect();
    for (offer, (agent, outcome, reason)) in pending {
        // Told once: a lost message is covered by the reservation's expiry.
        settle.remove(&offer);
        let Some(home) = sharding.find(Kind::Agent, agent.as_str()).await else { continue };
        let Some((mut client, secret)) = peers.client(&home).await else { continue };
        let message = pb::SettleReservationRequest {
            incident_shard: sharding.shard().to_string(),
            epoch: sharding.epoch(),
            offer_id: offer.to_string(),
            outcome: outcome.to_owned(),
            reason,
        };
        if let Err(status) = client.settle_reservation(with_secret(message, &secret)).await {
            debug!(code = ?status.code(), offer_id = %offer, "cannot settle a border reservation; it expires by itself");
            peers.forget(&status);
        }
    }
}

/// Incident side: for each of this shard's incidents in emergency that
/// still needs people, asks the neighbours for their best, and reserves
/// the best of all when they arrive sooner than anyone offered it now.
async fn offer_across(dispatcher: &Dispatcher, sharding: &Sharding, peers: &mut Peers, district: &AreaId) {
    let mine = district.clone();
    let Ok((incidents, neighbours, others)) = dispatcher.query(move |engine, _| wanting(engine, &mine)).await else { return };
    for incident in incidents {
        let mut best: Option<(String, pb::BorderCandidate)> = None;
        for neighbour in if incident.whole_city { &others } else { &neighbours } {
            let Some((mut client, secret)) = peers.client(neighbour).await else { continue };
            let message = pb::NearestCandidatesRequest {
                incident_shard: sharding.shard().to_string(),
                incident_id: incident.incident.to_string(),
                location: Some(pb::Location::wgs84(incident.at.lon, incident.at.lat)),
                required_skills: incident.skills.clone(),
                mode: convert::mode_to_pb(incident.mode) as i32,
                emergency_area_id: incident.emergency_area.to_string(),
                emergency_level: convert::level_to_pb(incident.emergency_level) as i32,
                excluded_agent_ids: incident.excluded.clone(),
                k: 1,
            };
            match client.nearest_candidates(with_secret(message, &secret)).await {
                Ok(response) => {
                    for candidate in response.into_inner().candidates {
                        if best.as_ref().is_none_or(|(_, held)| candidate.eta_s < held.eta_s) {
                            best = Some((neighbour.clone(), candidate));
                        }
                    }
                }
                Err(status) => {
                    debug!(code = ?status.code(), neighbour, "a neighbouring shard did not answer for candidates");
                    peers.forget(&status);
                }
            }
        }
        let Some((home, candidate)) = best else { continue };
        // By ETA across all: only someone sooner than everyone offered now.
        if incident.best_open_eta_s.is_some_and(|open| open <= candidate.eta_s) {
            continue;
        }
        reserve_across(dispatcher, sharding, peers, &incident, &home, candidate).await;
    }
}

async fn reserve_across(
    dispatcher: &Dispatcher,
    sharding: &Sharding,
    peers: &mut Peers,
    incident: &Wanting,
    home: &str,
    candidate: pb::BorderCandidate,
) {
    let Some((mut client, secret)) = peers.client(home).await else { return };
    let Ok(now) = dispatcher.query(|_, now| now).await else { return };
    let agent = AgentId::new(&candidate.agent_id);
    // One id per attempt: an answer to an earlier offer of the same person
    // (delayed on the way) never counts for a later one.
    let offer_id = OfferId::new(format!("{}-x-{}-{}", incident.incident, agent, now.0));
    let deadline = Millis(now.0 + incident.offer_timeout_s as i64 * 1000);
    let expires_at = Millis(deadline.0 + RESERVATION_GRACE_MS);
    // In normal mode (the ladder's district or city step), the person's
    // home district.
    let from_area = if !incident.mode.is_emergency() {
        Some(AreaId::new(home))
    } else {
        Some(candidate.from_area_id.clone()).filter(|area| !area.is_empty()).map(AreaId::new)
    };
    let offer = OfferRecord {
        id: offer_id.clone(),
        incident: incident.incident.clone(),
        agent: agent.clone(),
        sent_at: now,
        deadline,
        distance_m: candidate.distance_m,
        eta_s: candidate.eta_s,
        level: incident.emergency_level,
        flat: incident.mode.is_emergency(),
        origin: None,
        from_area,
    };
    // The offer is journaled here before the person is reserved at home:
    // their acceptance can then never find it not made yet (and be refused,
    // freeing them at home, before a delayed copy of it assigns them here).
    let journaled =
        dispatcher.execute(Command::BorderOffer { offer }, pingji_engine::event::DISPATCHER.to_owned(), |_, _| ()).await;
    if let Err(error) = journaled {
        debug!(%error, offer_id = %offer_id, "a border offer was not journaled (filled or ended meanwhile)");
        return;
    }
    let shown = pb::Offer {
        offer_id: offer_id.to_string(),
        incident_id: incident.incident.to_string(),
        category: incident.spec.category.clone(),
        priority: i32::from(incident.spec.priority),
        location: Some(convert::location(incident.spec.at)),
        distance_m: candidate.distance_m,
        eta_s: candidate.eta_s,
        deadline_ms: deadline.0,
        required_skills: incident.skills.clone(),
        description: incident.spec.description.clone(),
        agent_id: agent.to_string(),
        level: convert::level_to_pb(incident.emergency_level) as i32,
    };
    let message = pb::ReserveAndOfferRequest {
        incident_shard: sharding.shard().to_string(),
        epoch: sharding.epoch(),
        offer: Some(shown),
        expires_at_ms: expires_at.0,
        safety_interval_s: incident.safety_interval_s.map_or(0, |seconds| u32::try_from(seconds).unwrap_or(u32::MAX)),
    };
    match client.reserve_and_offer(with_secret(message, &secret)).await {
        Ok(_) => info!(incident_id = %incident.incident, offer_id = %offer_id, home, "offered across the border"),
        Err(status) => {
            // Refused, or not known to be made: the offer goes (and the
            // home shard is told, which frees an unanswered reservation).
            debug!(code = ?status.code(), offer_id = %offer_id, "the neighbour did not reserve its person");
            peers.forget(&status);
            let withdraw = Command::BorderWithdraw { offer: offer_id.clone() };
            if let Err(error) = dispatcher.execute(withdraw, pingji_engine::event::DISPATCHER.to_owned(), |_, _| ()).await {
                warn!(%error, offer_id = %offer_id, "cannot withdraw a border offer; it times out by itself");
            }
        }
    }
}
