//! Finding the dispatcher that owns the shard. A dispatcher that does not
//! own it (a standby, or another district's shard) answers with
//! `unavailable` and names the owner's `HOST:PORT`, like Redis Cluster's
//! MOVED; clients connect there and try again (see [`crate::connect`]).
//! The metadata keys are the contract's, in `pingji_proto::owner`.

pub use pingji_proto::owner::{OWNER_METADATA, SERVED_BY_METADATA, SHARD_METADATA};

/// The owner's address (`HOST:PORT`) when `status` is a standby's answer.
pub fn named_owner(status: &tonic::Status) -> Option<String> {
    if status.code() != tonic::Code::Unavailable {
        return None;
    }
    let owner = status.metadata().get(OWNER_METADATA)?.to_str().ok()?.trim();
    (!owner.is_empty()).then(|| owner.to_string())
}

/// The URL of `owner` with the scheme of `current`: `https://` stays
/// `https://`, anything else is `http://`.
pub fn owner_url(current: &str, owner: &str) -> String {
    let scheme = if current.trim().starts_with("https://") { "https" } else { "http" };
    format!("{scheme}://{owner}")
}

/// The addresses in a server setting: one, or several separated by
/// commas (every dispatcher that may own the shard), in order.
pub fn server_list(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|address| !address.is_empty()).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_answer_names_the_owner() {
        let mut status = tonic::Status::unavailable("shard city is owned by the dispatcher at 10.0.0.2:50051");
        status.metadata_mut().insert(OWNER_METADATA, tonic::metadata::MetadataValue::from_static("10.0.0.2:50051"));
        assert_eq!(named_owner(&status).as_deref(), Some("10.0.0.2:50051"));
        assert_eq!(named_owner(&tonic::Status::unavailable("shutting down")), None);
        let mut other = tonic::Status::not_found("no such incident");
        other.metadata_mut().insert(OWNER_METADATA, tonic::metadata::MetadataValue::from_static("10.0.0.2:50051"));
        assert_eq!(named_owner(&other), None, "only unavailable is a redirect");
    }

    #[test]
    fn urls_keep_the_scheme_and_lists_split_on_commas() {
        assert_eq!(owner_url("https://a:1", "b:2"), "https://b:2");
        assert_eq!(owner_url("http://a:1", "b:2"), "http://b:2");
        assert_eq!(owner_url("a:1", "b:2"), "http://b:2");
        assert_eq!(server_list(" http://a:1, http://b:2 ,"), vec!["http://a:1", "http://b:2"]);
        assert_eq!(server_list("a:1"), vec!["a:1"]);
    }
}
