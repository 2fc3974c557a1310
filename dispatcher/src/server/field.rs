//! `FieldService`: a person's session for browsers (the phone app), which
//! cannot open a bidirectional stream. `Listen` is the session's outgoing
//! half (it opens the session, as `Session`'s hello does); each unary call
//! is one message of the incoming half, carried out by the very path of
//! `Session` ([`People::act`]). Served on the gRPC port and, over grpc-web,
//! on the web port.
//!
//! Every call names the person in metadata: `authorization: Bearer pja_…`
//! and `x-pingji-agent-id`. Actions name the session they belong to (from
//! the welcome), so that calls of a phone whose session was replaced by a
//! sign-in elsewhere are refused, and carry an idempotency key, so that an
//! action queued offline and sent twice is applied once.
//!
//! Each person's calls are rate limited with the native session's policy
//! (`limits.agent_messages_per_s`, bursts of twice that), in two budgets:
//! location reports, and everything else (Listen, status, answers, reports,
//! messages, photos), so that a phone stuck sending locations cannot keep
//! its own accept out. A call over its budget changes nothing and is
//! answered `resource_exhausted` (`LIMIT_EXCEEDED`) with a `RetryInfo`
//! saying when one will go through: the app drops that location (the next
//! one replaces it) and keeps an action in its outbox until then.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use pingji_proto::v1 as pb;
use pingji_proto::v1::agent_message::Body;
use pingji_proto::v1::field_service_server::FieldService;
use tokio::sync::{OnceCell, oneshot};
use tokio::time::Instant;
use tokio_stream::{Stream, StreamExt};
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status};
use tracing::{Instrument, debug, info, info_span};

use super::agent::{OpenSession, People, RateLimit, stuck_status};
use super::connections::ConnectionOfCall;
use super::error;
use crate::photos::MAX_PHOTO_BYTES;
use crate::push::Pusher;
use crate::sessions::{OutboxStream, Stuck};
use pingji_engine::ids::AgentId;

/// The metadata naming the person.
pub const AGENT_ID_METADATA: &str = "x-pingji-agent-id";
/// How long an action's answer is remembered under its idempotency key.
const KEY_KEPT_FOR: Duration = Duration::from_secs(24 * 3600);
/// Answers remembered at most (all people together); over it, those older
/// than [`KEY_KEPT_FOR`] go, and if that is not enough, all of them.
const MAX_KEYS: usize = 100_000;
/// The longest idempotency key.
const MAX_KEY_CHARS: usize = 128;
/// Largest request: a photo and its framing.
pub(super) const MAX_FIELD_MESSAGE: usize = MAX_PHOTO_BYTES + 64 * 1024;

pub struct FieldApi {
    people: People,
    answers: Answers,
    budgets: Budgets,
    /// Web Push subscriptions; `None` where nothing is pushed (a replay).
    push: Option<Arc<Pusher>>,
}

impl FieldApi {
    pub fn new(people: People) -> Self {
        let budgets = Budgets::new(people.messages_per_s());
        FieldApi { people, answers: Answers::default(), budgets, push: None }
    }

    /// Serves the Web Push calls with `pusher`.
    pub fn with_push(mut self, pusher: Option<Arc<Pusher>>) -> Self {
        self.push = pusher;
        self
    }

    /// The caller of a push call, within their budget, and the pusher.
    async fn push_caller<T>(&self, request: &Request<T>) -> Result<(AgentId, Arc<Pusher>), Status> {
        self.people.check_certificate(request)?;
        let agent = self.caller(request.metadata()).await?;
        self.budgets.spend(&agent, Budget::Calls)?;
        let Some(pusher) = self.push.clone() else {
            return Err(error::status(
                Code::FailedPrecondition,
                pb::ErrorReason::FailedPrecondition,
                "this dispatcher sends no push notifications (a replay)",
            ));
        };
        Ok((agent, pusher))
    }

    /// The person a call about their own record is from, within their budget.
    async fn own_call<T>(&self, request: &Request<T>) -> Result<AgentId, Status> {
        self.people.check_certificate(request)?;
        let agent = self.caller(request.metadata()).await?;
        self.budgets.spend(&agent, Budget::Calls)?;
        Ok(agent)
    }

    /// The person a call is from, by the token in its metadata.
    async fn caller(&self, metadata: &MetadataMap) -> Result<AgentId, Status> {
        let agent_id = metadata.get(AGENT_ID_METADATA).and_then(|value| value.to_str().ok()).unwrap_or_default();
        if agent_id.trim().is_empty() {
            return Err(error::invalid(format!(
                "no {AGENT_ID_METADATA} header: send your roster id in it, and your token as 'authorization: Bearer pja_…'"
            )));
        }
        let token = metadata
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().strip_prefix("Bearer "))
            .unwrap_or_default();
        self.people.sign_in(agent_id, token).await
    }

    /// One action of the person's: checked, applied once per idempotency
    /// key, within the session it names.
    async fn act<T>(
        &self,
        request: Request<T>,
        key_required: bool,
        parts: impl FnOnce(T) -> (u64, String, Body),
    ) -> Result<Response<pb::FieldActionResponse>, Status> {
        self.people.check_certificate(&request)?;
        let agent = self.caller(request.metadata()).await?;
        let (session, key, body) = parts(request.into_inner());
        let is_help = matches!(body, Body::Help(_));
        let budget = if matches!(body, Body::Location(_)) { Budget::Locations } else { Budget::Calls };
        // 求助 is never rate-limited, and goes through without a session:
        // whoever presses it must not be told to wait or to reconnect.
        if !is_help {
            self.budgets.spend(&agent, budget)?;
        }
        let session = if is_help && session == 0 { None } else { Some(session) };
        if session == Some(0) {
            return Err(error::status(
                Code::FailedPrecondition,
                pb::ErrorReason::NoSession,
                "no session_id: open Listen first and send the session_id of its welcome with every call",
            ));
        }
        let key = key.trim().to_string();
        if key.chars().count() > MAX_KEY_CHARS {
            return Err(error::invalid_field(
                "idempotency_key",
                format!("the idempotency key is longer than {MAX_KEY_CHARS} characters; use a UUID"),
            ));
        }
        let message = pb::AgentMessage { body: Some(body) };
        if key.is_empty() {
            if key_required {
                return Err(error::invalid_field(
                    "idempotency_key",
                    "no idempotency key: make one (a UUID) when the person acts, keep it with the action, and send the \
                     same key on every retry",
                ));
            }
            self.people.act(&agent, message, session).await.map_err(|problem| problem.into_status())?;
            return Ok(Response::new(pb::FieldActionResponse { duplicate: false }));
        }
        let answer = self.answers.cell(&agent, key);
        let mut applied_now = false;
        // Concurrent calls with one key wait for the first; a failure is
        // not kept (nothing changed), so a retry is carried out afresh.
        answer
            .get_or_try_init(|| async {
                applied_now = true;
                self.people.act(&agent, message, session).await.map_err(|problem| problem.into_status())
            })
            .await?;
        Ok(Response::new(pb::FieldActionResponse { duplicate: !applied_now }))
    }
}

/// Which of a person's budgets a call spends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Budget {
    Locations,
    Calls,
}

/// Each person's two budgets of calls.
struct Budgets {
    per_s: u32,
    people: Mutex<(HashMap<AgentId, [RateLimit; 2]>, Instant)>,
}

/// How often full budgets (of people who stopped calling) are forgotten.
const FORGET_FULL_EVERY: Duration = Duration::from_secs(60);

impl Budgets {
    fn new(per_s: u32) -> Self {
        Budgets { per_s, people: Mutex::new((HashMap::new(), Instant::now())) }
    }

    /// Takes one call from `agent`'s `budget`, or refuses it with when to retry.
    fn spend(&self, agent: &AgentId, budget: Budget) -> Result<(), Status> {
        let mut guard = self.people.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (people, forgot_at) = &mut *guard;
        if forgot_at.elapsed() >= FORGET_FULL_EVERY {
            people.retain(|_, buckets| !buckets.iter().all(RateLimit::full));
            *forgot_at = Instant::now();
        }
        let buckets = people.entry(agent.clone()).or_insert_with(|| [RateLimit::new(self.per_s), RateLimit::new(self.per_s)]);
        let bucket = &mut buckets[usize::from(budget == Budget::Calls)];
        if bucket.allow() {
            return Ok(());
        }
        let retry_after = bucket.wait().max(Duration::from_millis(1));
        let per_s = self.per_s;
        let what = match budget {
            Budget::Locations => "location reports (this one is dropped: send the next one later)",
            Budget::Calls => "calls besides location reports (nothing was done: send it again after the retry delay)",
        };
        debug!(agent_id = %agent, "field call refused: over the person's rate limit");
        Err(error::rate_limited(
            format!("more than {per_s} {what} a second from this person; retry in {} ms", retry_after.as_millis().max(1)),
            retry_after,
        ))
    }
}

/// An action's key: the person and their idempotency key.
type ActionKey = (AgentId, String);
/// When the key was first seen, and whether its action was applied (set
/// once it was; concurrent calls with the key wait on it).
type Applied = (Instant, Arc<OnceCell<()>>);

/// Actions applied, by person and idempotency key.
#[derive(Default)]
struct Answers {
    applied: Mutex<HashMap<ActionKey, Applied>>,
}

impl Answers {
    fn cell(&self, agent: &AgentId, key: String) -> Arc<OnceCell<()>> {
        let mut applied = self.applied.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if applied.len() >= MAX_KEYS {
            applied.retain(|_, (at, _)| now.duration_since(*at) < KEY_KEPT_FOR);
            if applied.len() >= MAX_KEYS {
                applied.clear();
            }
        }
        let entry = applied.entry((agent.clone(), key)).or_insert_with(|| (now, Arc::new(OnceCell::new())));
        if now.duration_since(entry.0) >= KEY_KEPT_FOR {
            *entry = (now, Arc::new(OnceCell::new()));
        }
        entry.1.clone()
    }
}

/// The session's messages until the browser goes; dropping it tells the
/// session's task.
struct UntilGone {
    messages: OutboxStream,
    _gone: oneshot::Sender<()>,
}

impl Stream for UntilGone {
    type Item = Result<pb::DispatchMessage, Stuck>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.messages).poll_next(context)
    }
}

type ListenStream = Pin<Box<dyn Stream<Item = Result<pb::DispatchMessage, Status>> + Send>>;

#[tonic::async_trait]
impl FieldService for FieldApi {
    type ListenStream = ListenStream;

    async fn listen(&self, request: Request<pb::ListenRequest>) -> Result<Response<ListenStream>, Status> {
        self.people.check_certificate(&request)?;
        let slot = self.people.session_slot()?;
        let connection = request.extensions().get::<ConnectionOfCall>().cloned();
        let agent = self.caller(request.metadata()).await?;
        self.budgets.spend(&agent, Budget::Calls)?;
        let OpenSession { id: session, refusals, messages } = self.people.open(&agent).await?;
        let (gone, browser_gone) = oneshot::channel();
        let dispatcher = self.people.dispatcher().clone();
        let span = info_span!("field_session", agent_id = %agent, session);
        tokio::spawn(
            async move {
                let _slot = slot;
                tokio::select! {
                    () = refusals.stuck() => {
                        if let Some(connection) = &connection {
                            connection.close_if_alone();
                        }
                    }
                    _ = browser_gone => {}
                }
                info!("field session ended");
                dispatcher.close_session(agent, session).await;
            }
            .instrument(span),
        );
        let stream = UntilGone { messages, _gone: gone };
        Ok(Response::new(Box::pin(stream.map(|message| message.map_err(stuck_status)))))
    }

    async fn report_location(
        &self,
        request: Request<pb::ReportLocationRequest>,
    ) -> Result<Response<pb::FieldActionResponse>, Status> {
        self.act(request, false, |call| {
            (call.session_id, call.idempotency_key, Body::Location(call.location.unwrap_or_default()))
        })
        .await
    }

    async fn set_status(&self, request: Request<pb::SetStatusRequest>) -> Result<Response<pb::FieldActionResponse>, Status> {
        self.act(request, false, |call| (call.session_id, call.idempotency_key, Body::Status(call.status))).await
    }

    async fn accept_offer(&self, request: Request<pb::AcceptOfferRequest>) -> Result<Response<pb::FieldActionResponse>, Status> {
        self.act(request, true, |call| {
            (call.session_id, call.idempotency_key, Body::Accept(pb::Accept { offer_id: call.offer_id }))
        })
        .await
    }

    async fn decline_offer(
        &self,
        request: Request<pb::DeclineOfferRequest>,
    ) -> Result<Response<pb::FieldActionResponse>, Status> {
        self.act(request, true, |call| {
            (call.session_id, call.idempotency_key, Body::Decline(pb::Decline { offer_id: call.offer_id, reason: call.reason }))
        })
        .await
    }

    async fn report_arrival(
        &self,
        request: Request<pb::ReportArrivalRequest>,
    ) -> Result<Response<pb::FieldActionResponse>, Status> {
        self.act(request, true, |call| {
            (call.session_id, call.idempotency_key, Body::Arrived(pb::Arrived { incident_id: call.incident_id }))
        })
        .await
    }

    async fn complete_assignment(
        &self,
        request: Request<pb::CompleteAssignmentRequest>,
    ) -> Result<Response<pb::FieldActionResponse>, Status> {
        self.act(request, true, |call| {
            let completed = pb::Completed { incident_id: call.incident_id, feedback: call.feedback, photo_refs: call.photo_refs };
            (call.session_id, call.idempotency_key, Body::Completed(completed))
        })
        .await
    }

    async fn check_in(&self, request: Request<pb::CheckInRequest>) -> Result<Response<pb::FieldActionResponse>, Status> {
        self.act(request, true, |call| {
            (call.session_id, call.idempotency_key, Body::CheckIn(pb::CheckIn { callup_id: call.callup_id }))
        })
        .await
    }

    async fn safety_check_in(
        &self,
        request: Request<pb::SafetyCheckInRequest>,
    ) -> Result<Response<pb::FieldActionResponse>, Status> {
        self.act(request, true, |call| (call.session_id, call.idempotency_key, Body::SafetyCheckIn(pb::SafetyCheckIn {}))).await
    }

    async fn request_help(&self, request: Request<pb::RequestHelpRequest>) -> Result<Response<pb::FieldActionResponse>, Status> {
        self.act(request, true, |call| {
            (call.session_id, call.idempotency_key, Body::Help(pb::HelpRequest { location: call.location, text: call.text }))
        })
        .await
    }

    async fn submit_field_report(
        &self,
        request: Request<pb::SubmitFieldReportRequest>,
    ) -> Result<Response<pb::FieldActionResponse>, Status> {
        self.act(request, true, |call| {
            let report = pb::FieldReport {
                location: call.location,
                category: call.category,
                text: call.text,
                photo_ref: String::new(),
                photo_refs: call.photo_refs,
            };
            (call.session_id, call.idempotency_key, Body::FieldReport(report))
        })
        .await
    }

    async fn reply_to_message(
        &self,
        request: Request<pb::ReplyToMessageRequest>,
    ) -> Result<Response<pb::FieldActionResponse>, Status> {
        self.act(request, true, |call| {
            (
                call.session_id,
                call.idempotency_key,
                Body::Reply(pb::MessageReply { message_id: call.message_id, text: call.text }),
            )
        })
        .await
    }

    async fn mark_message_read(
        &self,
        request: Request<pb::MarkMessageReadRequest>,
    ) -> Result<Response<pb::FieldActionResponse>, Status> {
        self.act(request, true, |call| {
            (call.session_id, call.idempotency_key, Body::Read(pb::MessageReadReceipt { message_id: call.message_id }))
        })
        .await
    }

    async fn upload_photo(&self, request: Request<pb::UploadPhotoRequest>) -> Result<Response<pb::UploadPhotoResponse>, Status> {
        self.people.check_certificate(&request)?;
        let agent = self.caller(request.metadata()).await?;
        self.budgets.spend(&agent, Budget::Calls)?;
        let Some(photos) = self.people.photos().cloned() else {
            return Err(error::status(
                Code::FailedPrecondition,
                pb::ErrorReason::FailedPrecondition,
                "this dispatcher keeps no photos (it has no photo directory: --photos-dir); send the report or \
                 completion without photos",
            ));
        };
        let data = request.into_inner().data;
        let stored = tokio::task::spawn_blocking(move || photos.store(&data))
            .await
            .map_err(|_| error::status(Code::Internal, pb::ErrorReason::Internal, "the photo could not be stored; retry"))?
            .map_err(error::photo_status)?;
        info!(agent_id = %agent, size = stored.size, already_stored = stored.already_stored, "photo uploaded");
        Ok(Response::new(pb::UploadPhotoResponse {
            photo_ref: stored.photo_ref,
            content_type: stored.content_type.to_string(),
            size: stored.size as u64,
            location_removed: stored.location_removed,
            already_stored: stored.already_stored,
        }))
    }

    async fn get_push_key(&self, request: Request<pb::GetPushKeyRequest>) -> Result<Response<pb::GetPushKeyResponse>, Status> {
        let (_, pusher) = self.push_caller(&request).await?;
        Ok(Response::new(pb::GetPushKeyResponse { application_server_key: pusher.public_key().to_string() }))
    }

    async fn register_push(
        &self,
        request: Request<pb::RegisterPushRequest>,
    ) -> Result<Response<pb::RegisterPushResponse>, Status> {
        let (agent, pusher) = self.push_caller(&request).await?;
        let call = request.into_inner();
        let count =
            pusher.register(agent.as_str(), &call.endpoint, &call.p256dh, &call.auth).await.map_err(error::push_status)?;
        Ok(Response::new(pb::RegisterPushResponse { subscriptions: u32::try_from(count).unwrap_or(u32::MAX) }))
    }

    async fn my_activity(&self, request: Request<pb::MyActivityRequest>) -> Result<Response<pb::MyActivityResponse>, Status> {
        self.people.check_certificate(&request)?;
        let agent = self.caller(request.metadata()).await?;
        self.budgets.spend(&agent, Budget::Calls)?;
        let call = request.into_inner();
        let record = super::activity::own_record(self.people.dispatcher(), &agent, call.from_ms, call.to_ms).await?;
        Ok(Response::new(record))
    }

    async fn my_shifts(&self, request: Request<pb::MyShiftsRequest>) -> Result<Response<pb::MyShiftsResponse>, Status> {
        let agent = self.own_call(&request).await?;
        let answer = super::rosters::own_shifts(self.people.dispatcher(), &agent, request.get_ref().days).await?;
        Ok(Response::new(answer))
    }

    async fn check_in_my_shift(
        &self,
        request: Request<pb::CheckInMyShiftRequest>,
    ) -> Result<Response<pb::ShiftAttendance>, Status> {
        let agent = self.own_call(&request).await?;
        let answer = super::rosters::own_check_in(self.people.dispatcher(), &agent, &request.get_ref().shift_id).await?;
        Ok(Response::new(answer))
    }

    async fn check_out_my_shift(
        &self,
        request: Request<pb::CheckOutMyShiftRequest>,
    ) -> Result<Response<pb::ShiftAttendance>, Status> {
        let agent = self.own_call(&request).await?;
        Ok(Response::new(super::rosters::own_check_out(self.people.dispatcher(), &agent).await?))
    }

    async fn request_my_swap(&self, request: Request<pb::RequestMySwapRequest>) -> Result<Response<pb::Swap>, Status> {
        let agent = self.own_call(&request).await?;
        let answer = super::rosters::own_swap(self.people.dispatcher(), &agent, request.into_inner()).await?;
        Ok(Response::new(answer))
    }

    async fn create_my_calendar_link(
        &self,
        request: Request<pb::CreateMyCalendarLinkRequest>,
    ) -> Result<Response<pb::CalendarLink>, Status> {
        let agent = self.own_call(&request).await?;
        let actor = format!("agent:{agent}");
        Ok(Response::new(super::rosters::create_calendar_link(self.people.dispatcher(), &agent, actor).await?))
    }

    async fn revoke_my_calendar_link(
        &self,
        request: Request<pb::RevokeMyCalendarLinkRequest>,
    ) -> Result<Response<pb::RevokeCalendarLinkResponse>, Status> {
        let agent = self.own_call(&request).await?;
        let actor = format!("agent:{agent}");
        super::rosters::revoke_calendar_link(self.people.dispatcher(), &agent, actor).await?;
        Ok(Response::new(pb::RevokeCalendarLinkResponse {}))
    }

    async fn remove_push(&self, request: Request<pb::RemovePushRequest>) -> Result<Response<pb::RemovePushResponse>, Status> {
        let (agent, pusher) = self.push_caller(&request).await?;
        let removed = pusher.remove(agent.as_str(), &request.into_inner().endpoint).await.map_err(error::push_status)?;
        Ok(Response::new(pb::RemovePushResponse { removed }))
    }
}
