//! `FieldService` from Rust: a person's session in the browser's shape (a
//! server stream of what the dispatcher sends, one unary call per action),
//! for tests, load generators and any client that cannot hold a
//! bidirectional stream. Every call carries the person's id and token;
//! every action carries the session id from the welcome and an idempotency
//! key (a new one per action unless given: send the same key again to
//! retry the same action).

use std::sync::atomic::{AtomicU64, Ordering};

use pingji_proto::v1 as pb;
use pingji_proto::v1::field_service_client::FieldServiceClient;
use tonic::Status;
use tonic::codec::Streaming;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::auth::{AUTHORIZATION_HEADER, BearerToken};

/// The metadata naming the person.
pub const AGENT_ID_METADATA: &str = "x-pingji-agent-id";
/// Largest message: a photo of 10 MiB and its framing.
const MAX_FIELD_MESSAGE: usize = 11 * 1024 * 1024;

/// Names the person on every call: their id and `authorization: Bearer pja_…`.
#[derive(Clone, Debug)]
pub struct AgentCredentials {
    agent_id: AsciiMetadataValue,
    bearer: BearerToken,
}

impl AgentCredentials {
    /// The error never repeats the token.
    pub fn new(agent_id: &str, token: &str) -> Result<AgentCredentials, String> {
        let agent_id = MetadataValue::try_from(agent_id.trim())
            .map_err(|_| format!("agent id {agent_id:?} cannot be sent as a gRPC header"))?;
        let bearer = BearerToken::new(Some(token)).map_err(|problem| format!("the token cannot be used: {problem}"))?;
        Ok(AgentCredentials { agent_id, bearer })
    }
}

impl Interceptor for AgentCredentials {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let mut request = self.bearer.call(request)?;
        request.metadata_mut().insert(AGENT_ID_METADATA, self.agent_id.clone());
        debug_assert!(request.metadata().contains_key(AUTHORIZATION_HEADER));
        Ok(request)
    }
}

pub type FieldGrpcClient = FieldServiceClient<InterceptedService<Channel, AgentCredentials>>;

/// One person's calls. `session_id` is 0 until [`FieldClient::listen`]
/// has read the welcome.
#[derive(Debug)]
pub struct FieldClient {
    client: FieldGrpcClient,
    session_id: AtomicU64,
    next_key: AtomicU64,
    /// Unique per client, so that keys of two clients of one person differ.
    key_prefix: String,
}

impl FieldClient {
    pub fn new(channel: Channel, credentials: AgentCredentials) -> FieldClient {
        let client = FieldServiceClient::with_interceptor(channel, credentials)
            .max_decoding_message_size(MAX_FIELD_MESSAGE)
            .max_encoding_message_size(MAX_FIELD_MESSAGE);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_nanos());
        FieldClient {
            client,
            session_id: AtomicU64::new(0),
            next_key: AtomicU64::new(1),
            key_prefix: format!("{nanos:x}-{:x}", std::process::id()),
        }
    }

    /// The generated client, for calls not wrapped here.
    pub fn grpc(&self) -> FieldGrpcClient {
        self.client.clone()
    }

    pub fn session_id(&self) -> u64 {
        self.session_id.load(Ordering::Relaxed)
    }

    /// Uses `session_id` for the actions from now on (the welcome's, set by
    /// [`FieldClient::listen`]; a test may name an old one on purpose).
    pub fn use_session(&self, session_id: u64) {
        self.session_id.store(session_id, Ordering::Relaxed);
    }

    /// A fresh idempotency key.
    pub fn new_key(&self) -> String {
        format!("{}-{}", self.key_prefix, self.next_key.fetch_add(1, Ordering::Relaxed))
    }

    /// Opens the session (replacing any other of the person's) and reads
    /// its welcome; the rest of the stream follows.
    pub async fn listen(&self) -> Result<(pb::Welcome, Streaming<pb::DispatchMessage>), Status> {
        let mut stream = self.client.clone().listen(pb::ListenRequest {}).await?.into_inner();
        let first = stream.message().await?;
        let Some(pb::DispatchMessage { body: Some(pb::dispatch_message::Body::Welcome(welcome)) }) = first else {
            return Err(Status::internal(format!("the session did not start with a welcome: {first:?}")));
        };
        self.use_session(welcome.session_id);
        Ok((welcome, stream))
    }

    pub async fn report_location(&self, lon: f64, lat: f64) -> Result<pb::FieldActionResponse, Status> {
        let request = pb::ReportLocationRequest {
            session_id: self.session_id(),
            idempotency_key: String::new(),
            location: Some(pb::Location::wgs84(lon, lat)),
        };
        Ok(self.client.clone().report_location(request).await?.into_inner())
    }

    pub async fn set_status(&self, status: pb::AgentStatus) -> Result<pb::FieldActionResponse, Status> {
        let request =
            pb::SetStatusRequest { session_id: self.session_id(), idempotency_key: String::new(), status: status as i32 };
        Ok(self.client.clone().set_status(request).await?.into_inner())
    }

    /// Accepts `offer_id` under `key` (send the same key to retry).
    pub async fn accept_offer(&self, offer_id: &str, key: &str) -> Result<pb::FieldActionResponse, Status> {
        let request = pb::AcceptOfferRequest {
            session_id: self.session_id(),
            idempotency_key: key.to_string(),
            offer_id: offer_id.to_string(),
        };
        Ok(self.client.clone().accept_offer(request).await?.into_inner())
    }

    pub async fn decline_offer(&self, offer_id: &str, reason: &str) -> Result<pb::FieldActionResponse, Status> {
        let request = pb::DeclineOfferRequest {
            session_id: self.session_id(),
            idempotency_key: self.new_key(),
            offer_id: offer_id.to_string(),
            reason: reason.to_string(),
        };
        Ok(self.client.clone().decline_offer(request).await?.into_inner())
    }

    pub async fn report_arrival(&self, incident_id: &str) -> Result<pb::FieldActionResponse, Status> {
        let request = pb::ReportArrivalRequest {
            session_id: self.session_id(),
            idempotency_key: self.new_key(),
            incident_id: incident_id.to_string(),
        };
        Ok(self.client.clone().report_arrival(request).await?.into_inner())
    }

    pub async fn complete_assignment(
        &self,
        incident_id: &str,
        feedback: &str,
        photo_refs: &[String],
    ) -> Result<pb::FieldActionResponse, Status> {
        let request = pb::CompleteAssignmentRequest {
            session_id: self.session_id(),
            idempotency_key: self.new_key(),
            incident_id: incident_id.to_string(),
            feedback: feedback.to_string(),
            photo_refs: photo_refs.to_vec(),
        };
        Ok(self.client.clone().complete_assignment(request).await?.into_inner())
    }

    pub async fn check_in(&self, callup_id: &str) -> Result<pb::FieldActionResponse, Status> {
        let request = pb::CheckInRequest {
            session_id: self.session_id(),
            idempotency_key: self.new_key(),
            callup_id: callup_id.to_string(),
        };
        Ok(self.client.clone().check_in(request).await?.into_inner())
    }

    /// "I'm OK" (报平安) while holding an assignment.
    pub async fn safety_check_in(&self) -> Result<pb::FieldActionResponse, Status> {
        let request = pb::SafetyCheckInRequest { session_id: self.session_id(), idempotency_key: self.new_key() };
        Ok(self.client.clone().safety_check_in(request).await?.into_inner())
    }

    /// 求助 at `at` (else the dispatcher's best known position); never
    /// rate-limited, and carried out without a session too.
    pub async fn request_help(&self, at: Option<(f64, f64)>, text: &str) -> Result<pb::FieldActionResponse, Status> {
        let request = pb::RequestHelpRequest {
            session_id: self.session_id(),
            idempotency_key: self.new_key(),
            location: at.map(|(lon, lat)| pb::Location::wgs84(lon, lat)),
            text: text.to_string(),
        };
        Ok(self.client.clone().request_help(request).await?.into_inner())
    }

    pub async fn submit_field_report(
        &self,
        (lon, lat): (f64, f64),
        category: &str,
        text: &str,
        photo_refs: &[String],
    ) -> Result<pb::FieldActionResponse, Status> {
        let request = pb::SubmitFieldReportRequest {
            session_id: self.session_id(),
            idempotency_key: self.new_key(),
            location: Some(pb::Location::wgs84(lon, lat)),
            category: category.to_string(),
            text: text.to_string(),
            photo_refs: photo_refs.to_vec(),
        };
        Ok(self.client.clone().submit_field_report(request).await?.into_inner())
    }

    pub async fn reply_to_message(&self, message_id: &str, text: &str) -> Result<pb::FieldActionResponse, Status> {
        let request = pb::ReplyToMessageRequest {
            session_id: self.session_id(),
            idempotency_key: self.new_key(),
            message_id: message_id.to_string(),
            text: text.to_string(),
        };
        Ok(self.client.clone().reply_to_message(request).await?.into_inner())
    }

    pub async fn mark_message_read(&self, message_id: &str) -> Result<pb::FieldActionResponse, Status> {
        let request = pb::MarkMessageReadRequest {
            session_id: self.session_id(),
            idempotency_key: self.new_key(),
            message_id: message_id.to_string(),
        };
        Ok(self.client.clone().mark_message_read(request).await?.into_inner())
    }

    pub async fn upload_photo(&self, data: Vec<u8>) -> Result<pb::UploadPhotoResponse, Status> {
        Ok(self.client.clone().upload_photo(pb::UploadPhotoRequest { data }).await?.into_inner())
    }

    /// The caller's own activity record for `[from_ms, to_ms)` (`to_ms` 0: now).
    pub async fn my_activity(&self, from_ms: i64, to_ms: i64) -> Result<pb::MyActivityResponse, Status> {
        Ok(self.client.clone().my_activity(pb::MyActivityRequest { from_ms, to_ms }).await?.into_inner())
    }
}
