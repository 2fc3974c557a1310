//! The one place where dispatcher errors become gRPC statuses.

use pingji_proto::owner::SHARD_METADATA;
use tonic::Status;
use tonic::metadata::MetadataValue;

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
