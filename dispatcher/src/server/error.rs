//! The one place where dispatcher errors become gRPC statuses.
//!
//! Every status the dispatcher sends carries a `google.rpc.ErrorInfo` in
//! its details: domain `pingji.v1` and a stable reason from the proto's
//! `ErrorReason` (e.g. `OTHER_SHARD`), with `BadRequest` field violations
//! where a field is wrong, `RetryInfo` where trying again later helps, and
//! the owning dispatcher's address for a redirect. Clients act on those,
//! never on the message, which is for people.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use pingji_engine::engine::Rejection;
use pingji_proto::owner::{OWNER_METADATA, SHARD_METADATA};
use pingji_proto::v1::ErrorReason;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::codegen::{BoxFuture, Service};
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::front::{Front, Fronted};

use crate::photos::PhotoError;
use crate::runtime::DispatchError;

/// The `ErrorInfo.domain` of every Pingji error.
pub const DOMAIN: &str = "pingji.v1";

/// How long a client should wait before retrying a call that met a store or
/// a dispatcher briefly away: about one lease renewal.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The reason as sent: the enum value's name without its `ERROR_REASON_` prefix.
pub fn reason_name(reason: ErrorReason) -> &'static str {
    let name = reason.as_str_name();
    name.strip_prefix("ERROR_REASON_").unwrap_or(name)
}

fn info(reason: ErrorReason, metadata: HashMap<String, String>) -> ErrorDetails {
    ErrorDetails::with_error_info(reason_name(reason), DOMAIN, metadata)
}

/// A status with its reason in the details.
pub fn status(code: Code, reason: ErrorReason, message: impl Into<String>) -> Status {
    Status::with_error_details(code, message, info(reason, HashMap::new()))
}

/// `invalid_argument` naming the wrong `field` (a path such as
/// `plans_toml[2]` or `location.lat`) in a BadRequest violation.
pub fn invalid_field(field: &str, message: impl Into<String>) -> Status {
    let message = message.into();
    let mut details = info(ErrorReason::InvalidArgument, HashMap::new());
    details.add_bad_request_violation(field, message.clone());
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// `invalid_argument` without a single field to name.
pub fn invalid(message: impl Into<String>) -> Status {
    status(Code::InvalidArgument, ErrorReason::InvalidArgument, message)
}

pub fn not_found(message: impl Into<String>) -> Status {
    status(Code::NotFound, ErrorReason::NotFound, message)
}

pub fn already_exists(message: impl Into<String>) -> Status {
    status(Code::AlreadyExists, ErrorReason::AlreadyExists, message)
}

/// Something that should not happen; the message names what, not how.
pub fn internal(message: impl Into<String>) -> Status {
    status(Code::Internal, ErrorReason::Internal, message)
}

/// `unauthenticated`: the token is missing, wrong, or of the wrong kind.
pub fn unauthenticated(reason: ErrorReason, message: impl Into<String>) -> Status {
    status(Code::Unauthenticated, reason, message)
}

/// `unavailable` with a RetryInfo: the same call may work in a moment.
pub fn retry_later(reason: ErrorReason, message: impl Into<String>) -> Status {
    let mut details = info(reason, HashMap::new());
    details.set_retry_info(Some(RETRY_AFTER));
    Status::with_error_details(Code::Unavailable, message, details)
}

/// `resource_exhausted` (`LIMIT_EXCEEDED`) for a caller over its rate
/// limit, with a RetryInfo: the same call goes through after `retry_after`.
pub fn rate_limited(message: impl Into<String>, retry_after: Duration) -> Status {
    let mut details = info(ErrorReason::LimitExceeded, HashMap::new());
    details.set_retry_info(Some(retry_after));
    Status::with_error_details(Code::ResourceExhausted, message, details)
}

/// `unavailable` sending the caller to the dispatcher at `owner` (HOST:PORT),
/// which owns `shard`: in the ErrorInfo's metadata and, for clients that
/// read headers, in `x-pingji-owner`.
pub fn redirect(reason: ErrorReason, message: impl Into<String>, shard: &str, owner: &str) -> Status {
    let metadata = HashMap::from([("shard".to_string(), shard.to_string()), ("owner".to_string(), owner.to_string())]);
    let mut status = Status::with_error_details(Code::Unavailable, message, info(reason, metadata));
    if let Ok(value) = MetadataValue::try_from(owner) {
        status.metadata_mut().insert(OWNER_METADATA, value);
    }
    status
}

impl From<DispatchError> for Status {
    fn from(error: DispatchError) -> Self {
        match error {
            DispatchError::Rejected(rejection) => rejection_status(rejection),
            DispatchError::Unavailable(message) => retry_later(ErrorReason::StoreUnavailable, message),
            DispatchError::NotInSession(message) => status(Code::FailedPrecondition, ErrorReason::NoSession, message),
        }
    }
}

/// The reason of an engine's rejection, as sent in a status or a person's
/// `Refused` message.
pub fn rejection_reason(rejection: &Rejection) -> ErrorReason {
    match rejection {
        Rejection::InvalidArgument(_) | Rejection::InvalidField { .. } => ErrorReason::InvalidArgument,
        Rejection::NotFound(_) => ErrorReason::NotFound,
        Rejection::AlreadyExists(_) => ErrorReason::AlreadyExists,
        Rejection::FailedPrecondition(_) => ErrorReason::FailedPrecondition,
        Rejection::OfferNotOpen(_) => ErrorReason::OfferNotOpen,
        Rejection::OtherShard { .. } => ErrorReason::OtherShard,
    }
}

/// The status of an engine's rejection: nothing changed, and the message
/// says what to do.
pub fn rejection_status(rejection: Rejection) -> Status {
    match rejection {
        Rejection::InvalidArgument(message) => invalid(message),
        Rejection::InvalidField { field, message } => invalid_field(field, message),
        Rejection::NotFound(message) => status(Code::NotFound, ErrorReason::NotFound, message),
        Rejection::AlreadyExists(message) => status(Code::AlreadyExists, ErrorReason::AlreadyExists, message),
        Rejection::FailedPrecondition(message) => status(Code::FailedPrecondition, ErrorReason::FailedPrecondition, message),
        Rejection::OfferNotOpen(message) => status(Code::FailedPrecondition, ErrorReason::OfferNotOpen, message),
        // The owner's address is added on the way out (`sharding::Routed`).
        Rejection::OtherShard { shard, message } => {
            let metadata = HashMap::from([("shard".to_string(), shard.to_string())]);
            let mut status = Status::with_error_details(Code::Unavailable, message, info(ErrorReason::OtherShard, metadata));
            if let Ok(value) = MetadataValue::try_from(shard.as_str()) {
                status.metadata_mut().insert(SHARD_METADATA, value);
            }
            status
        }
    }
}

/// The gRPC code name of a rejection, as sent in an agent's `Refused` message.
pub fn code_name(rejection: &Rejection) -> &'static str {
    match rejection {
        Rejection::InvalidArgument(_) | Rejection::InvalidField { .. } => "invalid_argument",
        Rejection::NotFound(_) => "not_found",
        Rejection::AlreadyExists(_) => "already_exists",
        Rejection::FailedPrecondition(_) | Rejection::OfferNotOpen(_) => "failed_precondition",
        Rejection::OtherShard { .. } => "unavailable",
    }
}

/// A request over the command service's size limit, as tonic refuses it
/// (`out_of_range`), becomes `resource_exhausted` naming the limit: the
/// code the dispatcher answers for every limit (docs/security.md#limits).
/// Other statuses pass unchanged.
pub fn command_too_large(status: Status) -> Status {
    let limit_mib = super::sizes::MAX_COMMAND_MESSAGE >> 20;
    too_large(
        status,
        &format!("a command message may be at most {limit_mib} MiB: split the request (a roster or a map into parts)"),
    )
}

/// A message over an agent session's size limit, as
/// [`command_too_large`] does for commands.
pub fn session_message_too_large(status: Status) -> Status {
    let limit_kib = super::sizes::MAX_AGENT_MESSAGE >> 10;
    too_large(
        status,
        &format!(
            "a message on a person's session may be at most {limit_kib} KiB (a field report's text is at most 2,000 characters)"
        ),
    )
}

fn too_large(refused: Status, advice: &str) -> Status {
    if refused.code() != Code::OutOfRange {
        return refused;
    }
    let detail = refused.message().strip_prefix("Error, ").unwrap_or(refused.message());
    status(Code::ResourceExhausted, ErrorReason::LimitExceeded, format!("{detail}; {advice}"))
}

/// `inner` (the command service) with [`command_too_large`] applied to its
/// answers.
pub fn size_limited<S>(inner: S) -> Fronted<S, TooLarge> {
    Fronted::new(inner, TooLarge)
}

/// The [`Front`] of [`size_limited`].
#[derive(Clone)]
pub struct TooLarge;

impl<S> Front<S> for TooLarge
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    fn call(&self, mut inner: S, request: http::Request<Body>) -> BoxFuture<http::Response<Body>, Infallible> {
        Box::pin(async move {
            let response = inner.call(request).await?;
            // A request refused before its handler ran is answered with the
            // status in the headers (trailers-only).
            match Status::from_header_map(response.headers()) {
                Some(status) if status.code() == Code::OutOfRange => Ok(command_too_large(status).into_http()),
                _ => Ok(response),
            }
        })
    }
}

/// The status of a photo refused or not found.
pub fn photo_status(problem: PhotoError) -> Status {
    match problem {
        PhotoError::TooLarge { .. } => status(Code::ResourceExhausted, ErrorReason::LimitExceeded, problem.to_string()),
        PhotoError::NotAnImage => status(Code::InvalidArgument, ErrorReason::NotAnImage, problem.to_string()),
        PhotoError::Empty => invalid_field("data", problem.to_string()),
        PhotoError::BadReference(_) => invalid_field("photo_ref", problem.to_string()),
        PhotoError::NotFound(_) => status(Code::NotFound, ErrorReason::NotFound, problem.to_string()),
        PhotoError::Io(io) => {
            tracing::error!(error = %io, "photo store failure");
            status(Code::Unavailable, ErrorReason::Internal, "the photo store could not be written or read; retry later")
        }
    }
}

/// The status of a Web Push call refused or failed.
pub fn push_status(problem: crate::push::PushError) -> Status {
    use crate::push::PushError;
    match problem {
        PushError::Refused(refused) => invalid_field(refused.field, refused.reason),
        other => {
            tracing::error!(error = %other, "push store failure");
            status(Code::Unavailable, ErrorReason::Internal, "push subscriptions cannot be kept or read now; retry later")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_names_its_reason_and_a_redirect_its_owner() {
        let status = rejection_status(Rejection::NotFound("no incident inc-9".into()));
        let details = status.get_error_details();
        let info = details.error_info().expect("an ErrorInfo");
        assert_eq!((info.reason.as_str(), info.domain.as_str()), ("NOT_FOUND", DOMAIN));

        let moved = redirect(ErrorReason::NotOwner, "shard d1 is owned elsewhere", "d1", "10.0.0.2:50051");
        let info = moved.get_error_details().error_info().cloned().expect("an ErrorInfo");
        assert_eq!(info.reason, "NOT_OWNER");
        assert_eq!(info.metadata.get("owner").map(String::as_str), Some("10.0.0.2:50051"));
        assert_eq!(pingji_client::owner::named_owner(&moved).as_deref(), Some("10.0.0.2:50051"));

        let field = invalid_field("plans_toml[2]", "grade is missing");
        let violations = field.get_error_details().bad_request().cloned().expect("a BadRequest").field_violations;
        assert_eq!(violations[0].field, "plans_toml[2]");

        let busy = retry_later(ErrorReason::StoreUnavailable, "the store is away");
        assert_eq!(busy.get_error_details().retry_info().and_then(|retry| retry.retry_delay), Some(RETRY_AFTER));
    }
}
