//! `RosterService`: duty rosters (roles in
//! `pingji_engine::accounts::role_needed`). Every change goes through the
//! engine as `Command::Rosters` and is journaled before the answer; reads
//! are answered from the engine's state at the dispatcher's clock.

use pingji_engine::Rejection;
use pingji_engine::engine::{Command, Engine};
use pingji_engine::event::EventKind;
use pingji_engine::ids::{AgentId, AreaId, Millis, quote};
use pingji_engine::rosters::{RosterCommand, RosterEvent, ShiftId, SwapId, local_day, to_ics};
use pingji_proto::v1 as pb;
use pingji_proto::v1::roster_service_server::RosterService;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::convert::rosters::{
    absence_from_pb, absence_to_pb, attendance_to_pb, occurrence_to_pb, shift_from_pb, shift_to_pb, swap_to_pb, window_from_pb,
    window_to_pb,
};
use crate::runtime::Dispatcher;
use crate::server::auth::caller;
use crate::server::error;

/// Days a calendar covers when the request does not say, and at most.
const CALENDAR_DAYS: u32 = 28;
const MAX_CALENDAR_DAYS: u32 = 366;

pub struct RosterApi {
    pub dispatcher: Dispatcher,
}

fn required(field: &'static str, value: &str, what: &str) -> Result<String, Status> {
    let value = value.trim();
    if value.is_empty() {
        return Err(error::invalid_field(field, &format!("{field} is empty; {what}")));
    }
    Ok(value.to_string())
}

/// An area the caller named, checked to be on the map (empty: none).
fn area_filter(engine: &Engine, area: &str) -> Result<Option<AreaId>, Rejection> {
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

fn swap_view(engine: &Engine, swap: &SwapId) -> Option<pb::Swap> {
    let rosters = engine.rosters();
    rosters.swaps.get(swap).map(|record| swap_to_pb(record, rosters, engine.roster_utc_offset()))
}

impl RosterApi {
    async fn run(&self, command: RosterCommand, actor: String) -> Result<(), Status> {
        self.dispatcher.execute(Command::Rosters(command), actor, |_, _| ()).await?;
        Ok(())
    }
}

#[tonic::async_trait]
impl RosterService for RosterApi {
    #[instrument(skip_all)]
    async fn set_shifts(&self, request: Request<pb::SetShiftsRequest>) -> Result<Response<pb::SetShiftsResponse>, Status> {
        let actor = caller(&request)?.actor();
        let shifts: Vec<_> = request.get_ref().shifts.iter().map(shift_from_pb).collect();
        let count = shifts.len() as u32;
        self.run(RosterCommand::SetShifts(shifts), actor).await?;
        Ok(Response::new(pb::SetShiftsResponse { shifts: count }))
    }

    #[instrument(skip_all)]
    async fn remove_shift(&self, request: Request<pb::RemoveShiftRequest>) -> Result<Response<pb::Shift>, Status> {
        let actor = caller(&request)?.actor();
        let id = ShiftId::new(required("shift_id", &request.get_ref().shift_id, "name the shift to remove")?);
        let removed = self
            .dispatcher
            .query({
                let id = id.clone();
                move |engine, _| engine.rosters().shifts.get(&id).map(shift_to_pb)
            })
            .await?;
        self.run(RosterCommand::RemoveShift(id), actor).await?;
        removed.map(Response::new).ok_or_else(|| error::internal("the shift was removed but cannot be read back"))
    }

    #[instrument(skip_all)]
    async fn list_shifts(&self, request: Request<pb::ListShiftsRequest>) -> Result<Response<pb::ListShiftsResponse>, Status> {
        let area = request.into_inner().area_id;
        let shifts = self
            .dispatcher
            .query(move |engine, _| {
                let area = area_filter(engine, &area)?;
                Ok::<_, Rejection>(engine.shifts_in(area.as_ref()).into_iter().map(shift_to_pb).collect())
            })
            .await?
            .map_err(error::rejection_status)?;
        Ok(Response::new(pb::ListShiftsResponse { shifts }))
    }

    #[instrument(skip_all)]
    async fn on_duty_now(&self, request: Request<pb::OnDutyNowRequest>) -> Result<Response<pb::OnDutyNowResponse>, Status> {
        let area = request.into_inner().area_id;
        let answer = self
            .dispatcher
            .query(move |engine, now| {
                let area = area_filter(engine, &area)?;
                let on_duty = engine.on_duty(area.as_ref(), now);
                Ok::<_, Rejection>(pb::OnDutyNowResponse {
                    on_duty: on_duty.iter().map(|occurrence| occurrence_to_pb(occurrence, engine.rosters())).collect(),
                    now_ms: now.0,
                    utc_offset_minutes: engine.roster_utc_offset(),
                })
            })
            .await?
            .map_err(error::rejection_status)?;
        Ok(Response::new(answer))
    }

    #[instrument(skip_all)]
    async fn set_availability(
        &self,
        request: Request<pb::SetAvailabilityRequest>,
    ) -> Result<Response<pb::SetAvailabilityResponse>, Status> {
        let actor = caller(&request)?.actor();
        let agent = AgentId::new(required("agent_id", &request.get_ref().agent_id, "name the person")?);
        let windows = request.get_ref().windows.iter().map(window_from_pb).collect();
        let answer = self
            .dispatcher
            .execute(
                Command::Rosters(RosterCommand::SetAvailability { agent: agent.clone(), windows }),
                actor,
                move |engine, _| pb::SetAvailabilityResponse {
                    agent_id: agent.to_string(),
                    windows: engine
                        .rosters()
                        .availability
                        .get(&agent)
                        .map(|windows| windows.iter().map(window_to_pb).collect())
                        .unwrap_or_default(),
                },
            )
            .await?;
        Ok(Response::new(answer))
    }

    #[instrument(skip_all)]
    async fn record_absence(&self, request: Request<pb::RecordAbsenceRequest>) -> Result<Response<pb::Absence>, Status> {
        let actor = caller(&request)?.actor();
        let Some(absence) = request.get_ref().absence.as_ref() else {
            return Err(error::invalid_field("absence", "absence is missing; give agent_id, from_ms, until_ms and kind"));
        };
        let absence = absence_from_pb(absence).map_err(error::rejection_status)?;
        let answer = absence_to_pb(&absence);
        self.run(RosterCommand::RecordAbsence(absence), actor).await?;
        Ok(Response::new(answer))
    }

    #[instrument(skip_all)]
    async fn request_swap(&self, request: Request<pb::RequestSwapRequest>) -> Result<Response<pb::Swap>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let shift = ShiftId::new(required("shift_id", &request.shift_id, "name the shift")?);
        let from = AgentId::new(required("from_agent_id", &request.from_agent_id, "name who gives the shift away")?);
        let to = AgentId::new(required("to_agent_id", &request.to_agent_id, "name who takes it")?);
        let day = match (request.day, request.starts_at_ms) {
            (0, 0) => {
                return Err(error::invalid_field(
                    "day",
                    "name the occurrence: its local date as day (days since 1970-01-01) or a time on that date as starts_at_ms",
                ));
            }
            (0, at) => {
                let offset = self.dispatcher.query(|engine, _| engine.roster_utc_offset()).await?;
                local_day(Millis(at), offset)
            }
            (day, _) => day,
        };
        let command = RosterCommand::RequestSwap { shift, day, from, to };
        Ok(Response::new(requested_swap(&self.dispatcher, command, actor).await?))
    }

    #[instrument(skip_all)]
    async fn decide_swap(&self, request: Request<pb::DecideSwapRequest>) -> Result<Response<pb::Swap>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let swap = SwapId::new(required("swap_id", &request.swap_id, "name the swap RequestSwap returned")?);
        let command = RosterCommand::DecideSwap { swap: swap.clone(), approve: request.approve, reason: request.reason };
        let answer = self.dispatcher.execute(Command::Rosters(command), actor, move |engine, _| swap_view(engine, &swap)).await?;
        answer.map(Response::new).ok_or_else(|| error::internal("the swap was decided but cannot be read back"))
    }

    #[instrument(skip_all)]
    async fn list_swaps(&self, request: Request<pb::ListSwapsRequest>) -> Result<Response<pb::ListSwapsResponse>, Status> {
        let agent = request.into_inner().agent_id.trim().to_string();
        let swaps = self
            .dispatcher
            .query(move |engine, _| {
                let rosters = engine.rosters();
                rosters
                    .swaps
                    .values()
                    .filter(|swap| agent.is_empty() || swap.from.as_str() == agent || swap.to.as_str() == agent)
                    .map(|swap| swap_to_pb(swap, rosters, engine.roster_utc_offset()))
                    .collect()
            })
            .await?;
        Ok(Response::new(pb::ListSwapsResponse { swaps }))
    }

    #[instrument(skip_all)]
    async fn check_in_shift(&self, request: Request<pb::CheckInShiftRequest>) -> Result<Response<pb::ShiftAttendance>, Status> {
        let actor = caller(&request)?.actor();
        let agent = AgentId::new(required("agent_id", &request.get_ref().agent_id, "name the person")?);
        let shift = ShiftId::new(required("shift_id", &request.get_ref().shift_id, "name the shift")?);
        let command = RosterCommand::CheckIn { agent: agent.clone(), shift };
        let answer = self
            .dispatcher
            .execute(Command::Rosters(command), actor, move |engine, _| {
                engine.rosters().checked_in.get(&agent).map(|attendance| attendance_to_pb(&agent, attendance, None))
            })
            .await?;
        answer.map(Response::new).ok_or_else(|| error::internal("the check-in was made but cannot be read back"))
    }

    #[instrument(skip_all)]
    async fn check_out_shift(&self, request: Request<pb::CheckOutShiftRequest>) -> Result<Response<pb::ShiftAttendance>, Status> {
        let actor = caller(&request)?.actor();
        let agent = AgentId::new(required("agent_id", &request.get_ref().agent_id, "name the person")?);
        let command = RosterCommand::CheckOut { agent: agent.clone() };
        let answer = self.dispatcher.execute(Command::Rosters(command), actor, checked_out).await?;
        answer.map(Response::new).ok_or_else(|| error::internal("the check-out was made but cannot be read back"))
    }

    #[instrument(skip_all)]
    async fn person_calendar(
        &self,
        request: Request<pb::PersonCalendarRequest>,
    ) -> Result<Response<pb::PersonCalendarResponse>, Status> {
        let agent = AgentId::new(required("agent_id", &request.get_ref().agent_id, "name the person")?);
        let days = match request.get_ref().days {
            0 => CALENDAR_DAYS,
            days if days > MAX_CALENDAR_DAYS => {
                return Err(error::invalid_field("days", &format!("days = {days}; give 1 to {MAX_CALENDAR_DAYS}")));
            }
            days => days,
        };
        let answer = self
            .dispatcher
            .query(move |engine, now| {
                if !engine.state().agents.contains_key(&agent) {
                    return Err(Rejection::NotFound(format!(
                        "agent {} is not on the roster; list agents to find their id",
                        quote(agent.as_str())
                    )));
                }
                let (ics, shifts) = calendar_of(engine, &agent, days, now);
                Ok(pb::PersonCalendarResponse { ics, shifts })
            })
            .await?
            .map_err(error::rejection_status)?;
        Ok(Response::new(answer))
    }

    #[instrument(skip_all)]
    async fn create_calendar_link(
        &self,
        request: Request<pb::CreateCalendarLinkRequest>,
    ) -> Result<Response<pb::CalendarLink>, Status> {
        let actor = caller(&request)?.actor();
        let agent = AgentId::new(required("agent_id", &request.get_ref().agent_id, "name the person")?);
        Ok(Response::new(create_calendar_link(&self.dispatcher, &agent, actor).await?))
    }

    #[instrument(skip_all)]
    async fn revoke_calendar_link(
        &self,
        request: Request<pb::RevokeCalendarLinkRequest>,
    ) -> Result<Response<pb::RevokeCalendarLinkResponse>, Status> {
        let actor = caller(&request)?.actor();
        let agent = AgentId::new(required("agent_id", &request.get_ref().agent_id, "name the person")?);
        revoke_calendar_link(&self.dispatcher, &agent, actor).await?;
        Ok(Response::new(pb::RevokeCalendarLinkResponse {}))
    }
}

/// A person's calendar for `days` from the start of today (local time),
/// and how many shifts it holds.
fn calendar_of(engine: &Engine, agent: &AgentId, days: u32, now: Millis) -> (String, u32) {
    let offset = engine.roster_utc_offset();
    let from = Millis(local_day(now, offset) * 86_400_000 - i64::from(offset) * 60_000);
    let until = from.plus_seconds(u64::from(days) * 86_400);
    let occurrences = engine.shifts_of(agent, from, until);
    let area_name = |area: &AreaId| engine.state().areas.get(area).map_or_else(|| area.to_string(), |spec| spec.name.clone());
    (to_ics(agent, &occurrences, area_name, now), occurrences.len() as u32)
}

/// The SHA-256 of a calendar link's secret, in hex: what the record keeps.
fn secret_sha256(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Gives `agent` a new calendar link (the old one stops working) and
/// answers its path, the only place the secret is ever shown.
pub async fn create_calendar_link(dispatcher: &Dispatcher, agent: &AgentId, actor: String) -> Result<pb::CalendarLink, Status> {
    let secret = crate::tokens::random_hex();
    let command = RosterCommand::SetCalendarLink { agent: agent.clone(), secret_sha256: secret_sha256(&secret) };
    dispatcher.execute(Command::Rosters(command), actor, |_, _| ()).await?;
    Ok(pb::CalendarLink { agent_id: agent.to_string(), path: format!("{CALENDAR_PREFIX}{secret}.ics") })
}

pub async fn revoke_calendar_link(dispatcher: &Dispatcher, agent: &AgentId, actor: String) -> Result<(), Status> {
    let command = RosterCommand::RevokeCalendarLink { agent: agent.clone() };
    dispatcher.execute(Command::Rosters(command), actor, |_, _| ()).await?;
    Ok(())
}

/// Where calendar links live on the web port. The web port's request spans
/// leave out the rest of such a path: it is the secret.
pub const CALENDAR_PREFIX: &str = "/calendar/";

/// `GET /calendar/<secret>.ics` on the web port: the person's calendar for
/// the next [`CALENDAR_DAYS`] days, for a calendar app to poll. An unknown
/// or revoked secret is `404` with the same words as any missing file, so
/// that nothing tells whether a person exists.
pub fn calendar_router(dispatcher: Dispatcher) -> axum::Router {
    axum::Router::new().route("/calendar/{file}", axum::routing::get(calendar_feed)).with_state(dispatcher)
}

async fn calendar_feed(
    axum::extract::State(dispatcher): axum::extract::State<Dispatcher>,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let not_found =
        || (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "not found\n").into_response();
    let Some(secret) = file.strip_suffix(".ics") else {
        return not_found();
    };
    let hash = secret_sha256(secret);
    let answer = dispatcher
        .query(move |engine, now| {
            let agent = engine.calendar_link_owner(&hash)?;
            Some(calendar_of(engine, agent, CALENDAR_DAYS, now).0)
        })
        .await;
    match answer {
        Ok(Some(ics)) => (
            [
                (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
                // The link is a password: no shared cache keeps the answer.
                (header::CACHE_CONTROL, "private, max-age=300"),
            ],
            ics,
        )
            .into_response(),
        Ok(None) => not_found(),
        Err(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "the dispatcher is not serving right now; try again shortly\n").into_response()
        }
    }
}

/// Days 我的班次 covers when the phone does not say, and at most.
const OWN_SHIFT_DAYS: u32 = 7;
const MAX_OWN_SHIFT_DAYS: u32 = 31;

/// 我的班次 (`FieldService.MyShifts`): `agent`'s own shifts running now or
/// starting within `days`, their swaps, and the colleagues a swap can go
/// to: the people of other shifts in the same areas.
pub async fn own_shifts(dispatcher: &Dispatcher, agent: &AgentId, days: u32) -> Result<pb::MyShiftsResponse, Status> {
    let days = match days {
        0 => OWN_SHIFT_DAYS,
        days if days > MAX_OWN_SHIFT_DAYS => {
            return Err(error::invalid_field("days", format!("days = {days}; give 1 to {MAX_OWN_SHIFT_DAYS}")));
        }
        days => days,
    };
    let agent = agent.clone();
    dispatcher.query(move |engine, now| own_shifts_view(engine, &agent, days, now)).await.map_err(Status::from)
}

fn own_shifts_view(engine: &Engine, agent: &AgentId, days: u32, now: Millis) -> pb::MyShiftsResponse {
    let rosters = engine.rosters();
    let offset = engine.roster_utc_offset();
    // A shift that started yesterday may still be running: look back a day.
    let from = Millis(now.0 - 86_400_000);
    let until = now.plus_seconds(u64::from(days) * 86_400);
    let mut occurrences: Vec<_> =
        engine.shifts_of(agent, from, until).into_iter().filter(|occurrence| occurrence.end > now).collect();
    occurrences.sort_by_key(|occurrence| (occurrence.start > now, occurrence.start));
    let checked_in = rosters.checked_in.get(agent);
    let area_name = |area: &AreaId| engine.state().areas.get(area).map_or_else(|| area.to_string(), |spec| spec.name.clone());
    let shifts = occurrences
        .iter()
        .map(|occurrence| {
            let running = occurrence.start <= now;
            pb::MyShift {
                occurrence: Some(occurrence_to_pb(occurrence, rosters)),
                area_name: area_name(&occurrence.area),
                now: running,
                checked_in: running && checked_in.is_some_and(|attendance| attendance.shift == occurrence.shift),
            }
        })
        .collect();
    let swaps = rosters
        .swaps
        .values()
        .filter(|swap| &swap.from == agent || &swap.to == agent)
        .map(|swap| swap_to_pb(swap, rosters, offset))
        .collect();
    let my_areas: Vec<&AreaId> =
        rosters.shifts.values().filter(|shift| shift.people.contains(agent)).map(|shift| &shift.area).collect();
    let mut colleague_ids: Vec<&AgentId> = rosters
        .shifts
        .values()
        .filter(|shift| my_areas.contains(&&shift.area))
        .flat_map(|shift| shift.people.iter())
        .filter(|person| *person != agent)
        .collect();
    colleague_ids.sort();
    colleague_ids.dedup();
    let colleagues = colleague_ids
        .into_iter()
        .map(|person| pb::Colleague {
            agent_id: person.to_string(),
            name: engine.state().agents.get(person).map(|record| record.profile.name.clone()).unwrap_or_default(),
        })
        .collect();
    pb::MyShiftsResponse {
        shifts,
        swaps,
        colleagues,
        checked_in: checked_in.map(|attendance| attendance_to_pb(agent, attendance, None)),
        now_ms: now.0,
        utc_offset_minutes: offset,
    }
}

/// Checks `agent` in to their own `shift` (`FieldService.CheckInMyShift`).
pub async fn own_check_in(dispatcher: &Dispatcher, agent: &AgentId, shift: &str) -> Result<pb::ShiftAttendance, Status> {
    let shift = ShiftId::new(required("shift_id", shift, "name the shift you are on (from MyShifts)")?);
    let command = RosterCommand::CheckIn { agent: agent.clone(), shift };
    let agent = agent.clone();
    let answer = dispatcher
        .execute(Command::Rosters(command), format!("agent:{agent}"), move |engine, _| {
            engine.rosters().checked_in.get(&agent).map(|attendance| attendance_to_pb(&agent, attendance, None))
        })
        .await?;
    answer.ok_or_else(|| error::internal("the check-in was made but cannot be read back"))
}

/// Checks `agent` out of the shift they are checked in to
/// (`FieldService.CheckOutMyShift`).
pub async fn own_check_out(dispatcher: &Dispatcher, agent: &AgentId) -> Result<pb::ShiftAttendance, Status> {
    let command = RosterCommand::CheckOut { agent: agent.clone() };
    let answer = dispatcher.execute(Command::Rosters(command), format!("agent:{agent}"), checked_out).await?;
    answer.ok_or_else(|| error::internal("the check-out was made but cannot be read back"))
}

/// The attendance a check-out closed, from its event.
fn checked_out(_: &Engine, events: &[pingji_engine::event::Event]) -> Option<pb::ShiftAttendance> {
    events.iter().find_map(|event| match &event.kind {
        EventKind::Rosters(RosterEvent::ShiftCheckedOut { agent, shift, area, since }) => Some(pb::ShiftAttendance {
            agent_id: agent.to_string(),
            shift_id: shift.to_string(),
            area_id: area.to_string(),
            since_ms: since.0,
            until_ms: event.at.0,
        }),
        _ => None,
    })
}

/// `agent` asks a colleague to work one occurrence of their own shift
/// (`FieldService.RequestMySwap`); a commander decides it as any swap.
pub async fn own_swap(dispatcher: &Dispatcher, agent: &AgentId, call: pb::RequestMySwapRequest) -> Result<pb::Swap, Status> {
    let shift = ShiftId::new(required("shift_id", &call.shift_id, "name your shift (from MyShifts)")?);
    let to = AgentId::new(required("to_agent_id", &call.to_agent_id, "choose the colleague who takes the shift")?);
    if call.day == 0 {
        return Err(error::invalid_field("day", "name the occurrence by its day (from MyShifts)"));
    }
    let command = RosterCommand::RequestSwap { shift, day: call.day, from: agent.clone(), to };
    requested_swap(dispatcher, command, format!("agent:{agent}")).await
}

async fn requested_swap(dispatcher: &Dispatcher, command: RosterCommand, actor: String) -> Result<pb::Swap, Status> {
    let swap = dispatcher
        .execute(Command::Rosters(command), actor, |engine, events| {
            let id = events.iter().find_map(|event| match &event.kind {
                EventKind::Rosters(RosterEvent::SwapRequested { swap, .. }) => Some(swap.clone()),
                _ => None,
            })?;
            swap_view(engine, &id)
        })
        .await?;
    swap.ok_or_else(|| error::internal("the swap was requested but cannot be read back"))
}
