#!/usr/bin/env bash
# Builds everything scripts/gpu-check.sh runs, with --features cudnn, and packs it for the GPU
# machine (which has no Rust toolchain): xz-compressed binaries in target-cuda/gpu/, small
# enough for the device tool's 64 MiB carry. Everything is built against the patched
# candle-core (vendor/candle-core, see vendor/README.md); `bench-pristine` is the benchmark
# built against the pristine crate, for the A/B of the patch.
#
#   scripts/gpu-build.sh            # ~15 min on 2 cores from clean (most of it nvcc)
#   # then, on the GPU machine, from the repo root with target-cuda/gpu carried:
#   bash scripts/gpu-check.sh
#
# FEATURES=cuda scripts/gpu-build.sh builds without cuDNN (convolutions on the lowered GEMM
# path); the default is `cudnn`, the fast path.
set -euo pipefail
cd "$(dirname "$0")/.."
FEATURES=${FEATURES:-cudnn}
[[ $FEATURES == cuda || $FEATURES == cudnn ]] || { echo "gpu-build.sh: FEATURES must be cuda or cudnn, got '$FEATURES'" >&2; exit 2; }
toolchain_opts=()
[[ $FEATURES == cudnn ]] && toolchain_opts=(--cudnn)
if ! [[ -x .cuda/root/bin/nvcc && -e .cuda/root/lib64/stubs/libcuda.so && -e .cuda/root/include/cupti.h ]] ||
   { [[ $FEATURES == cudnn ]] && ! [[ -e .cuda/root/lib64/libcudnn.so ]]; }; then
  scripts/cuda-toolchain.sh "${toolchain_opts[@]}" >/dev/null
fi
eval "$(scripts/cuda-toolchain.sh --env)"
export CARGO_TARGET_DIR=$PWD/target-cuda
cargo build --release --features "$FEATURES" -p dgcolor-cli
# The benchmark alone, exactly as its pristine twin below is built: building it together with
# dgcolor-cli would unify their dependencies' features and give another binary, so the A/B
# would compare more than the patch.
cargo build --release --features "$FEATURES" -p dgcolor-bench --bin bench
# The test binaries' paths are only known from cargo's JSON messages.
cargo test --release --features "$FEATURES" -p dgcolor-kernels -p dgcolor-algorithms --no-run
tests=$(cargo test --release --features "$FEATURES" -p dgcolor-kernels -p dgcolor-algorithms --no-run \
          --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("matches_candle", "parity"):
        print(m["target"]["name"], m["executable"])')
mkdir -p target-cuda/gpu
rm -f target-cuda/gpu/*.xz
pack() { xz -T0 -6 -c "$2" > "target-cuda/gpu/$1.xz"; }
pack dgcolor target-cuda/release/dgcolor
pack bench target-cuda/release/bench
while read -r name path; do pack "$name" "$path"; done <<< "$tests"
# The same bench against pristine candle-core 0.11.1 (without vendor/candle-core.patch), for
# gpu-check.sh's A/B of the patch; built into the same target directory, then the patched
# bench rebuilt (a couple of minutes: the pristine build's manifest swap makes cargo rebuild
# the crates above candle-core) and checked to be the packed one byte for byte.
scripts/candle-patch.sh build-pristine --release --features "$FEATURES" -p dgcolor-bench --bin bench
pack bench-pristine target-cuda/release/bench
cargo build --release --features "$FEATURES" -p dgcolor-bench --bin bench
cmp -s target-cuda/release/bench <(xz -dc target-cuda/gpu/bench.xz) ||
  { echo "gpu-build.sh: target-cuda/release/bench is not the patched build after the pristine one" >&2; exit 1; }
# A fallback libcurand.so.10 for a machine whose PyTorch lacks it (the real one is 42 MB
# compressed, too big to carry): candle creates a cuRAND generator with every CUDA device
# but dgcolor never draws from it (all randomness is generated on the CPU), so creating,
# seeding and destroying succeed and every generate call fails loudly (status 999).
# gpu-check.sh puts it last on LD_LIBRARY_PATH, so a real libcurand wins.
cat > target-cuda/curand_shim.c <<'C'
int curandCreateGenerator(void **g, int type) { (void)type; *g = (void *)1; return 0; }
int curandDestroyGenerator(void *g) { (void)g; return 0; }
int curandSetPseudoRandomGeneratorSeed(void *g, unsigned long long s) { (void)g; (void)s; return 0; }
int curandSetStream(void *g, void *s) { (void)g; (void)s; return 0; }
int curandGenerateUniform(void) { return 999; }
int curandGenerateUniformDouble(void) { return 999; }
int curandGenerateNormal(void) { return 999; }
int curandGenerateNormalDouble(void) { return 999; }
C
echo 'libcurand.so.10 { global: curand*; local: *; };' > target-cuda/curand_shim.map
cc -shared -fPIC -O2 -Wl,-soname,libcurand.so.10 -Wl,--version-script=target-cuda/curand_shim.map \
  -o target-cuda/libcurand.so.10 target-cuda/curand_shim.c
missing=$(nm -D --undefined-only target-cuda/release/dgcolor | awk '{print $2}' | cut -d@ -f1 | grep '^curand' | sort -u |
  while read -r sym; do nm -D --defined-only target-cuda/libcurand.so.10 | grep -q " $sym@" || echo "$sym"; done)
[[ -z $missing ]] || { echo "curand shim lacks: $missing" >&2; exit 1; }
pack libcurand.so.10 target-cuda/libcurand.so.10
# The kernel profiler (CUPTI injection library) gpu-check.sh uses where nsys is missing.
cc -shared -fPIC -O2 -I.cuda/root/include -o target-cuda/libkernel_profile.so scripts/kernel-profile.c \
  -L.cuda/root/lib64 -l:libcupti.so.13
pack libkernel_profile.so target-cuda/libkernel_profile.so
ls -la target-cuda/gpu
du -sh target-cuda/gpu
