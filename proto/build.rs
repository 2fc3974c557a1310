//! Generates the Rust code for the API with protox (pure Rust, no protoc).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/pingji/v1/pingji.proto";
    println!("cargo:rerun-if-changed={proto}");
    let file_descriptors = protox::compile([proto], ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("pingji_descriptor.bin");
    std::fs::write(&descriptor_path, prost::Message::encode_to_vec(&file_descriptors))?;
    tonic_prost_build::configure().file_descriptor_set_path(&descriptor_path).skip_protoc_run().compile_fds(file_descriptors)?;
    // serde for every message in the proto3 JSON mapping (field names as in
    // the .proto), for clients that print or log messages as JSON.
    let descriptor_set = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new().register_descriptors(&descriptor_set)?.preserve_proto_field_names().build(&[".pingji.v1"])?;
    Ok(())
}
