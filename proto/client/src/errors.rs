//! What a dispatcher's error status says, read from its details
//! (`google.rpc.ErrorInfo`, `BadRequest`, `RetryInfo`), never from its
//! message, which is for people. See `ErrorReason` in the .proto.

use std::time::Duration;

use pingji_proto::v1::ErrorReason;
use tonic::Status;
use tonic_types::StatusExt;

/// The `ErrorInfo.domain` of every Pingji error.
pub const DOMAIN: &str = "pingji.v1";

/// The reason a Pingji dispatcher gave; `None` for a status without one
/// (from the transport, a proxy, or an older dispatcher).
pub fn reason(status: &Status) -> Option<ErrorReason> {
    let details = status.get_error_details();
    let info = details.error_info().filter(|info| info.domain == DOMAIN)?;
    ErrorReason::from_str_name(&format!("ERROR_REASON_{}", info.reason))
}

/// The fields the dispatcher named as wrong, with what is wrong with each.
pub fn bad_fields(status: &Status) -> Vec<(String, String)> {
    let details = status.get_error_details();
    let Some(bad_request) = details.bad_request() else {
        return Vec::new();
    };
    bad_request.field_violations.iter().map(|violation| (violation.field.clone(), violation.description.clone())).collect()
}

/// The index `i` of a field named `name[i]` among the bad fields.
pub fn bad_index(status: &Status, name: &str) -> Option<usize> {
    bad_fields(status).iter().find_map(|(field, _)| field.strip_prefix(name)?.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

/// The dispatcher to call instead (HOST:PORT), when the status sends the
/// caller to the owner of a shard.
pub fn owner(status: &Status) -> Option<String> {
    let details = status.get_error_details();
    let from_details = details.error_info().and_then(|info| info.metadata.get("owner")).cloned();
    from_details.or_else(|| crate::owner::named_owner(status)).filter(|owner| !owner.trim().is_empty())
}

/// How long to wait before trying the same call again, when the dispatcher
/// said that would help.
pub fn retry_after(status: &Status) -> Option<Duration> {
    status.get_error_details().retry_info().and_then(|retry| retry.retry_delay)
}
