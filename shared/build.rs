//! Compiles `../proto` with protox (pure Rust), so building needs no system
//! `protoc`. Generated code goes to `OUT_DIR` only.
use std::{env, fs, path::PathBuf};

use protox::prost::Message as _;

const PROTO_ROOT: &str = "../proto";
const PROTOS: &[&str] = &[
    "../proto/lapor/sync/v1/complaint.proto",
    "../proto/lapor/sync/v1/event.proto",
    "../proto/lapor/sync/v1/intake.proto",
    "../proto/lapor/sync/v1/complaints.proto",
    "../proto/lapor/sync/v1/replication.proto",
    "../proto/lapor/sync/v1/certificates.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `compile_fds` emits no rerun-if-changed lines; watch the whole tree.
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let fds = protox::compile(PROTOS, [PROTO_ROOT])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    // Written by hand: `compile_fds` ignores `file_descriptor_set_path`.
    fs::write(out_dir.join("lapor_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
