//! Generates the ONNX protobuf types from the vendored official schema (`proto/README.md`):
//! `protox` compiles it to a descriptor set (no system `protoc`), `prost-build` writes Rust.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let schema = "proto/onnx.proto3";
    println!("cargo:rerun-if-changed={schema}");
    let descriptors = protox::compile([schema], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
