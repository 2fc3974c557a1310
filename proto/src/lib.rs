//! The Pingji gRPC API (package `pingji.v1`) and its generated code.
//!
//! # Layout
//! - `proto/pingji/v1/pingji.proto`: the API, documented inline.
//! - [`v1`]: messages and the tonic clients and servers generated from it.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for gRPC reflection.
//! - [`auth`]: the operator's token on every call (clients).
//! - [`owner`]: finding the dispatcher that owns the shard (clients).
//! - [`tls`]: the clients' TLS settings (`--ca`, client certificates).

#![forbid(unsafe_code)]

pub mod auth;
pub mod tls;

pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("pingji.v1");
    include!(concat!(env!("OUT_DIR"), "/pingji.v1.serde.rs"));
}

/// Encoded `FileDescriptorSet` of the API, served by the reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("pingji_descriptor");

/// Finding the dispatcher that owns the shard. A dispatcher that does not
/// own it (a standby) answers every call with `unavailable` and names the
/// owner's `HOST:PORT` in the metadata [`OWNER_METADATA`], like Redis
/// Cluster's MOVED; clients connect there and try again.
pub mod owner {
    /// The metadata key naming the owner's address in a standby's answer.
    pub const OWNER_METADATA: &str = "x-pingji-owner";
    /// The metadata key naming a shard: on a request, the shard the call is
    /// for (a console's `--shard`); on an answer, the shard whose owner the
    /// caller must ask instead.
    pub const SHARD_METADATA: &str = "x-pingji-shard";
    /// The metadata key on every answer of a district's shard naming that
    /// shard: how a client (a live drill) learns the city is split.
    pub const SERVED_BY_METADATA: &str = "x-pingji-served-by";

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
}
