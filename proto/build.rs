//! Compiles the `.proto` files with protox (pure Rust, no system `protoc`) into prost types with
//! pbjson serde impls, so the same messages load from YAML/JSON and travel over gRPC, and the
//! discovery service into tonic client and server code (from the same descriptors).

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/mesh/config/v1/config.proto",
    "proto/mesh/discovery/v1/discovery.proto",
    "proto/mesh/ca/v1/ca.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let descriptor_path = out_dir.join("mesh_descriptor.bin");
    std::fs::write(
        &descriptor_path,
        prost::Message::encode_to_vec(&descriptors),
    )?;

    prost_build::Config::new()
        .file_descriptor_set_path(&descriptor_path)
        .compile_well_known_types()
        .extern_path(".google.protobuf", "::pbjson_types")
        // Sorted maps encode deterministically: equal configs encode to equal bytes, so the
        // control plane hashes an encoding straight into a resource version.
        .btree_map(["."])
        .service_generator(
            tonic_prost_build::configure()
                .build_transport(false)
                .service_generator(),
        )
        .skip_protoc_run()
        .compile_protos(PROTOS, &["proto"])?;

    let descriptor_set = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_set)?
        .btree_map(["."])
        .build(&[".mesh.config"])?;
    Ok(())
}
