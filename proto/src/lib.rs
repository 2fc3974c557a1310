//! The Pingji gRPC API (package `pingji.v1`) and its generated code.
//!
//! # Layout
//! - `proto/pingji/v1/pingji.proto`: the API, documented inline.
//! - [`v1`]: messages and the tonic clients and servers generated from it.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for gRPC reflection.

#![forbid(unsafe_code)]

pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("pingji.v1");
}

/// Encoded `FileDescriptorSet` of the API, served by the reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("pingji_descriptor");
