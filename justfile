# Common tasks. `just` is optional: every recipe is a plain cargo command.

# The main job: every method on the embedded synthetic benchmark, quick preset, one setting.
main:
    cargo run --release -- compare --settings photo+cartoon:art_painting

# All three paper settings with the quick preset (about three times as long).
main-all:
    cargo run --release -- compare

# The AdaIN ablation on one setting.
ablate:
    cargo run --release -- ablate-adain --settings photo+cartoon:art_painting

# The CPU benchmark against PyTorch (needs `pip install torch`).
bench:
    python3 bench/compare.py --threads 2 --runs 3

# The GPU path: build and pack the CUDA binaries here (toolchain from PyPI, ~15 min cold);
# then run `OUT=<dir> bash scripts/gpu-check.sh` on the GPU machine with target-cuda/gpu.
gpu-build:
    scripts/gpu-build.sh

# The test suite (what CI runs).
test:
    cargo test --workspace --release

# The embedded synthetic benchmark at its default size.
synth out="data/synth/default":
    cargo run --release -p dgcolor-cli -- data synth --out {{out}}

# Lint and format checks.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --release --all-targets -- -D warnings
