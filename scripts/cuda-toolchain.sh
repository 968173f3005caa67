#!/usr/bin/env bash
# Installs a CUDA 13.0 build toolchain from PyPI wheels (no system CUDA, no GPU needed) and
# prints the environment to export before `cargo build --release --features cuda`.
#
#   scripts/cuda-toolchain.sh [--check-only] [--cudnn]     # installs into .cuda/
#   eval "$(scripts/cuda-toolchain.sh --env)"              # exports the environment
#
# --check-only installs just what `cargo check --features cuda` needs (nvcc, NVVM, headers;
# CI uses it); the default adds the libraries a release build links against; --cudnn adds
# cuDNN for `--features cudnn`. CUDA 13.0 is pinned because the GPU machines run a CUDA 13.0
# driver (580) and the PTX version of candle's kernels follows nvcc's. Override the folder
# with DGCOLOR_CUDA_DIR and the interpreter with PYTHON.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=${DGCOLOR_CUDA_DIR:-$ROOT/.cuda}
PY=${PYTHON:-python3}
CUDA=$DEST/root

print_env() {
  cat <<ENV
export CUDA_ROOT=$CUDA CUDA_PATH=$CUDA CUDA_HOME=$CUDA
export PATH=$CUDA/bin:\$PATH
export CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-90}
ENV
}

check_only=0 cudnn=0
for arg in "$@"; do
  case $arg in
    --env) print_env; exit 0 ;;
    --check-only) check_only=1 ;;
    --cudnn) cudnn=1 ;;
    *) echo "cuda-toolchain.sh: unknown option '$arg' (expected --check-only, --cudnn or --env)" >&2; exit 2 ;;
  esac
done

# nvvm must be pinned with nvcc, or pip pulls a newer NVVM whose libnvvm the 13.0 nvcc rejects.
pkgs=(nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 'nvidia-cuda-crt==13.0.*'
      'nvidia-cuda-runtime==13.0.*' 'nvidia-cuda-cccl==13.0.*')
if [[ $check_only == 0 ]]; then
  # (cupti: headers and library for scripts/kernel-profile.c)
  pkgs+=('nvidia-cuda-nvrtc==13.0.*' 'nvidia-cublas==13.0.*' 'nvidia-curand<10.5' 'nvidia-cuda-cupti==13.0.*')
fi
[[ $cudnn == 1 ]] && pkgs+=('nvidia-cudnn-cu13==9.*')

echo "installing ${pkgs[*]} into $DEST/pip" >&2
"$PY" -m pip install --quiet --disable-pip-version-check --no-deps --upgrade \
  --target "$DEST/pip" "${pkgs[@]}"

# A CUDA-like folder: bin, include, nvvm and lib64 (with the unversioned names the linker
# wants; the wheels ship only libX.so.N).
CU=$DEST/pip/nvidia/cu13
rm -rf "$CUDA"
mkdir -p "$CUDA/lib64/stubs"
ln -s "$CU/bin" "$CUDA/bin"
ln -s "$CU/include" "$CUDA/include"
ln -s "$CU/nvvm" "$CUDA/nvvm"
chmod +x "$CU"/bin/* "$CU"/nvvm/bin/* 2>/dev/null || true
for dir in "$CU/lib" "$DEST/pip/nvidia/cudnn/lib"; do
  [[ -d $dir ]] || continue
  for lib in "$dir"/lib*.so.*; do
    [[ -e $lib ]] || continue
    base=$(basename "$lib"); unversioned=${base%%.so.*}.so
    ln -sf "$lib" "$CUDA/lib64/$base"
    [[ -e $CUDA/lib64/$unversioned ]] || ln -s "$lib" "$CUDA/lib64/$unversioned"
  done
done
if [[ -d $DEST/pip/nvidia/cudnn/include ]]; then
  for h in "$DEST"/pip/nvidia/cudnn/include/*.h; do ln -sf "$h" "$CU/include/$(basename "$h")"; done
fi

# No wheel ships the driver library. The link only needs a libcuda.so whose soname is the
# driver's (libcuda.so.1) and that defines the entry points cudarc declares; every stub
# returns CUDA_ERROR_STUB_LIBRARY (34). It lives in lib64/stubs, which cudarc searches at link
# time; never put it on LD_LIBRARY_PATH, where it would shadow the real driver.
if [[ $check_only == 0 ]]; then
  sys=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs 2>/dev/null | tail -1 || true)
  if [[ -z $sys ]]; then
    (cd "$ROOT" && cargo fetch --quiet) && \
      sys=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs | tail -1)
  fi
  grep -oE '\bfn cu[A-Za-z0-9_]+\(' "$sys" | sort -u | sed -E 's/fn (.*)\(/int \1(void) { return 34; }/' \
    > "$CUDA/lib64/stubs/libcuda_stub.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$CUDA/lib64/stubs/libcuda.so" \
    "$CUDA/lib64/stubs/libcuda_stub.c"
fi

"$CUDA/bin/nvcc" --version | tail -2 >&2
echo "toolchain ready in $CUDA; export this environment (or eval \"\$($0 --env)\"):" >&2
print_env
