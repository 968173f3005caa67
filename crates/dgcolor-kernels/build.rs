//! With the `cuda` feature, compiles `cuda/fused.cu` to PTX (loaded at run time by
//! `src/cuda.rs`) with the nvcc that also builds candle's kernels: `$CUDA_ROOT/bin/nvcc` (see
//! scripts/cuda-toolchain.sh) or the first nvcc on PATH, for `CUDA_COMPUTE_CAP` (default 80;
//! the driver JIT-compiles the PTX for newer cards).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=cuda/fused.cu");
    println!("cargo::rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo::rerun-if-env-changed=CUDA_ROOT");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let nvcc = std::env::var_os("CUDA_ROOT")
        .map(|root| PathBuf::from(root).join("bin").join("nvcc"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nvcc"));
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "80".into());
    let cap = cap.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("fused.ptx");
    let status = Command::new(&nvcc)
        .args(["--ptx", "-O3", "-std=c++17", "-fmad=false"])
        .arg(format!("--gpu-architecture=compute_{cap}"))
        .arg("cuda/fused.cu")
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("dgcolor-kernels: cannot run {} ({e}); install the CUDA toolchain with scripts/cuda-toolchain.sh and export its --env", nvcc.display()));
    if !status.success() {
        panic!(
            "dgcolor-kernels: {} failed on cuda/fused.cu ({status})",
            nvcc.display()
        );
    }
}
