//! Generates the wire types and gRPC stubs from `proto/` with protox, a protobuf
//! compiler in Rust, so no system `protoc` is needed.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the build script runs, not when it was compiled: a build
    // script compiled in one checkout and reused by another (a copied
    // target/) would otherwise read the first checkout's protos.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "vitalgate/v1/common.proto",
        "vitalgate/v1/ttp.proto",
        "vitalgate/v1/hsp.proto",
        "vitalgate/v1/clinician.proto",
    ];
    let descriptors = protox::compile(files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // Server reflection serves this descriptor set.
    std::fs::write(
        out.join("vitalgate_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    for file in files {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    Ok(())
}
