//! The Pingji gRPC API (package `pingji.v1`) and its generated code.
//!
//! # Layout
//! - `proto/pingji/v1/pingji.proto`: the API, documented inline.
//! - [`v1`]: messages and the tonic clients and servers generated from it.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for gRPC reflection.
//! - [`owner`]: the names of the metadata a dispatcher sends a client to
//!   the owner of a shard with; following them is `pingji-client`'s job.

#![forbid(unsafe_code)]

pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("pingji.v1");
    include!(concat!(env!("OUT_DIR"), "/pingji.v1.serde.rs"));
}

impl v1::Location {
    /// A position in WGS84, the system the dispatcher keeps and answers in.
    pub fn wgs84(lon: f64, lat: f64) -> Self {
        v1::Location { lon, lat, crs: v1::CoordinateSystem::Unspecified as i32 }
    }
}

/// Encoded `FileDescriptorSet` of the API, served by the reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("pingji_descriptor");

/// The metadata keys of a redirect to the dispatcher that owns a shard,
/// part of the contract as much as the `.proto`: the dispatcher sets them,
/// clients in any language read them. A dispatcher that does not own the
/// shard (a standby) answers with `unavailable` naming the owner's
/// `HOST:PORT` in `OWNER_METADATA`, like Redis Cluster's MOVED. Following
/// them is `pingji_client::owner`.
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
}
