//! The one place where dispatcher errors become gRPC statuses.

use std::convert::Infallible;

use pingji_proto::owner::SHARD_METADATA;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::codegen::{BoxFuture, Service};
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use super::front::{Front, Fronted};

use crate::engine::Rejection;
use crate::runtime::DispatchError;

impl From<DispatchError> for Status {
    fn from(error: DispatchError) -> Self {
        match error {
            DispatchError::Rejected(rejection) => rejection.into(),
            DispatchError::Unavailable(message) => Status::unavailable(message),
        }
    }
}

impl From<Rejection> for Status {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::InvalidArgument(message) => Status::invalid_argument(message),
            Rejection::NotFound(message) => Status::not_found(message),
            Rejection::AlreadyExists(message) => Status::already_exists(message),
            Rejection::FailedPrecondition(message) => Status::failed_precondition(message),
            // The owner's address is added on the way out (`sharding::Routed`).
            Rejection::OtherShard { shard, message } => {
                let mut status = Status::unavailable(message);
                if let Ok(value) = MetadataValue::try_from(shard.as_str()) {
                    status.metadata_mut().insert(SHARD_METADATA, value);
                }
                status
            }
        }
    }
}

/// The gRPC code name of a rejection, as sent in an agent's `Refused` message.
pub fn code_name(rejection: &Rejection) -> &'static str {
    match rejection {
        Rejection::InvalidArgument(_) => "invalid_argument",
        Rejection::NotFound(_) => "not_found",
        Rejection::AlreadyExists(_) => "already_exists",
        Rejection::FailedPrecondition(_) => "failed_precondition",
        Rejection::OtherShard { .. } => "unavailable",
    }
}

/// A request over the command service's size limit, as tonic refuses it
/// (`out_of_range`), becomes `resource_exhausted` naming the limit: the
/// code the dispatcher answers for every limit (docs/security.md#limits).
/// Other statuses pass unchanged.
pub fn command_too_large(status: Status) -> Status {
    let limit_mib = super::MAX_COMMAND_MESSAGE >> 20;
    too_large(
        status,
        &format!("a command message may be at most {limit_mib} MiB: split the request (a roster or a map into parts)"),
    )
}

/// A message over an agent session's size limit, as
/// [`command_too_large`] does for commands.
pub fn session_message_too_large(status: Status) -> Status {
    let limit_kib = super::MAX_AGENT_MESSAGE >> 10;
    too_large(
        status,
        &format!(
            "a message on a person's session may be at most {limit_kib} KiB (a field report's text is at most 2,000 characters)"
        ),
    )
}

fn too_large(status: Status, advice: &str) -> Status {
    if status.code() != Code::OutOfRange {
        return status;
    }
    let detail = status.message().strip_prefix("Error, ").unwrap_or(status.message());
    Status::resource_exhausted(format!("{detail}; {advice}"))
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
