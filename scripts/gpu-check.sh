#!/usr/bin/env bash
# The whole GPU check in one run, on a machine with an NVIDIA GPU, PyTorch with CUDA and no
# Rust toolchain. Build and pack here first (scripts/gpu-build.sh), carry target-cuda/gpu,
# then from the repo root:
#
#   OUT=/some/dir bash scripts/gpu-check.sh      # results in $OUT (default results/gpu-check)
#
# In order, each step with its own time limit so the whole run stays under 10 minutes:
#   1. GPU tests: the convolution custom ops and the fused kernels (BatchNorm, activations,
#      relu_cat, dropout, AdaIN, the L1 / LSGAN losses, Adam) on CUDA against the CPU, then
#      the parity suite (PyTorch fixtures) run on CUDA with the CPU's tolerances;
#   2. the side-by-side benchmark against PyTorch CUDA eager at the paper's configuration
#      (256 px, nf 64, depth 8; batch 128 and 16): one erm iteration, one ours iteration,
#      inference; images/s, ratio, peak GPU memory;
#   2b. the candle-core patch (vendor/candle-core.patch): the same benchmark built against
#      pristine and patched candle-core, interleaved process by process (bench/ab.py);
#   3. what each change does: the erm iteration at batch 128 and 16 with each of the CUDA
#      changes switched off in turn (DGCOLOR_KERNELS=convs: fused kernels; DGCOLOR_CUDA_POOL=
#      trim: memory pool; DGCOLOR_CUDA_EVENTS=1: per-allocation events; DGCOLOR_CUDNN_CACHE=0:
#      algorithm cache); then a kernel profile of erm and ours iterations (nsys where
#      the machine has it, else the CUPTI injection library built from kernel-profile.c);
#   4. a short `ours` training on synth at 256 px, to show the losses falling;
#   5. if time is left: bf16 autocast on both sides, torch.compile, and the convolutions
#      without cuDNN (DGCOLOR_KERNELS=lowered, then candle's own) for the before/after.
# $OUT/summary.md collects everything; the raw outputs sit beside it. STEPS picks sections
# (default "tests bench patch profile train extras"; "ablation", section 3's switches, measured
# on 2026-11-27, is left out so that the whole default run fits one 10-minute device call).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/gpu-check}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PACK=${DGCOLOR_GPU_PACK:-target-cuda/gpu}
BIN=$(mktemp -d)
START=$(date +%s)
SUMMARY=$OUT/summary.md
STEPS=" ${STEPS:-tests bench patch profile train extras} "
want() { [[ $STEPS == *" $1 "* ]]; }
: > "$SUMMARY"

say() { echo "$*" | tee -a "$SUMMARY"; }
elapsed() { echo $(( $(date +%s) - START )); }
# step NAME SECONDS CMD...: runs CMD with a time limit, output to $OUT/NAME.log, status noted.
step() {
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  timeout --kill-after=5 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  local verdict=ok
  [[ $rc == 124 || $rc == 137 ]] && verdict="TIMED OUT after ${limit}s"
  [[ $rc != 0 && $verdict == ok ]] && verdict="FAILED (exit $rc)"
  say "- $name: $verdict in $(( $(date +%s) - t0 ))s (log: $name.log)"
  return $rc
}

say "# dgcolor GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say ""
say "- card: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1)"
say "- torch: $(python3 -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)' 2>&1)"

# Binaries, and the CUDA runtime libraries from PyTorch's wheels (libcuda comes with the driver).
for f in "$PACK"/*.xz; do
  xz -dc "$f" > "$BIN/$(basename "$f" .xz)" && chmod +x "$BIN/$(basename "$f" .xz)"
done
libdirs=$(python3 - <<'PY'
import glob, os, site, sys
roots = site.getsitepackages() + [site.getusersitepackages()]
want = ["libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libnvrtc.so.13",
        "libcudnn.so.9", "libcupti.so.13"]
dirs = []
for name in want:
    for root in roots:
        hits = glob.glob(os.path.join(root, "nvidia", "**", name + "*"), recursive=True)
        if hits:
            d = os.path.dirname(hits[0])
            if d not in dirs:
                dirs.append(d)
            break
    else:
        print(f"missing {name}", file=sys.stderr)
print(":".join(dirs))
PY
)
# The curand shim (see gpu-build.sh) goes last: a real libcurand.so.10 wins.
mkdir -p "$BIN/fallback" && mv "$BIN/libcurand.so.10" "$BIN/fallback/"
export LD_LIBRARY_PATH=$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}:$BIN/fallback
say "- runtime libraries: $(ldd "$BIN/dgcolor" | grep -E 'libcu|libnv' | awk '{print $3}' | tr '\n' ' ')"
if ldd "$BIN/dgcolor" | grep -q "not found"; then
  say "- missing libraries: $(ldd "$BIN/dgcolor" | grep 'not found' | tr -s ' \n' ' ')"
fi
if want tests; then
say ""
say "## 1. GPU tests"
step kernel-tests 90 "$BIN/matches_candle" cuda:: --test-threads=1
step parity-on-cuda 120 env DGCOLOR_TEST_DEVICE=cuda \
  DGCOLOR_PARITY_DIR="$PWD/crates/dgcolor-algorithms/tests/parity" "$BIN/parity" --test-threads=1 --nocapture
grep -E "^test |test result" "$OUT/kernel-tests.log" "$OUT/parity-on-cuda.log" | sed 's/^/    /' | tee -a "$SUMMARY"

fi

if want bench; then
say ""
say "## 2. Benchmark vs PyTorch CUDA eager (candle tf32 = PyTorch's default TF32 convolutions)"
step bench-tf32 200 python3 bench/compare.py --device cuda --no-build --rust-bin "$BIN/bench" \
  --configs s256-nf64-d8-b128,s256-nf64-d8-b16 --modes erm,ours,infer --runs 1 --warmup 2 \
  --iters 5 --precision tf32 --timeout 60 --json "$OUT/bench-tf32.json"
grep "^|\|^device" "$OUT/bench-tf32.log" | tee -a "$SUMMARY"

fi

if want patch; then
say ""
say "## 2b. candle-core with and without vendor/candle-core.patch (huggingface/candle#3822), tf32, interleaved"
if [[ -x $BIN/bench-pristine ]]; then
  step patch-ab 240 python3 bench/ab.py --device cuda --precision tf32 \
    --bin pristine="$BIN/bench-pristine" --bin patched="$BIN/bench" \
    --configs s256-nf64-d8-b128,s256-nf64-d8-b16 --modes erm,ours --runs 3 --warmup 2 --iters 5 \
    --timeout 60 --json "$OUT/patch-ab.json"
  grep "^|\|^cuda" "$OUT/patch-ab.log" | tee -a "$SUMMARY"
else
  say "    (no bench-pristine in $PACK: scripts/gpu-build.sh builds it)"
fi

fi

if want ablation; then
say ""
say "## 3. What each change does (bench binary alone: erm iteration, tf32)"
# imgs LOG: images/s from the bench binary's JSON line.
imgs() {
  python3 - "$1" <<'PY' 2>&1 | tail -1
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(f"{r['images_per_sec']:.1f} img/s ({1000 * r['sec_per_iter']:.0f} ms/iter)")
PY
}
ablation=(
  "DGCOLOR_KERNELS=convs DGCOLOR_CUDA_POOL=trim DGCOLOR_CUDA_EVENTS=1 DGCOLOR_CUDNN_CACHE=0"  # cuDNN convs only
  "DGCOLOR_CUDA_POOL=trim"       # all but the kept memory pool
  "DGCOLOR_KERNELS=convs"        # all but the fused BatchNorm / LeakyReLU / Adam / bias kernels
  "DGCOLOR_CUDA_EVENTS=1"        # all but the per-allocation events turned off
  "DGCOLOR_CUDNN_CACHE=0"        # all but the cuDNN algorithm cache
  "DGCOLOR_KERNELS=auto"         # everything (the default)
)
for config in s256-nf64-d8-b128 s256-nf64-d8-b16; do
  say "  $config:"
  for i in "${!ablation[@]}"; do
    step "ablation-${config##*-}-$i" 40 env ${ablation[$i]} "$BIN/bench" --device cuda --config $config \
      --mode erm --warmup 2 --iters 5 --precision tf32
    say "    ${ablation[$i]}: $(imgs "$OUT/ablation-${config##*-}-$i.log")"
  done
done

fi

if want profile; then
say ""
say "## 3b. Where the GPU time goes (kernel profile; totals over the profiled process)"
NSYS=$(command -v nsys || ls /usr/local/cuda*/bin/nsys /opt/nvidia/nsight-systems*/bin/nsys 2>/dev/null | head -1)
for run in "erm s256-nf64-d8-b128 bench" "ours s256-nf64-d8-b128 bench" "erm s256-nf64-d8-b16 bench" \
           "erm s256-nf64-d8-b128 bench-pristine"; do
  read -r mode config exe <<< "$run"
  [[ -x $BIN/$exe ]] || continue
  name=prof-$mode-${config##*-}${exe#bench}
  if [[ -n $NSYS ]]; then
    step "$name" 60 "$NSYS" profile --force-overwrite true -o "$OUT/$name" "$BIN/$exe" --device cuda \
      --config "$config" --mode "$mode" --warmup 1 --iters 3 --precision tf32
    step "$name-stats" 45 "$NSYS" stats --force-export true -r cuda_gpu_kern_sum -f csv \
      -o "$OUT/$name" "$OUT/$name.nsys-rep"
    rm -f "$OUT"/*.nsys-rep "$OUT"/*.sqlite
  elif [[ -f $BIN/libkernel_profile.so ]]; then
    # CUPTI injection (scripts/kernel-profile.c): one line per kernel name, by total time.
    step "$name" 60 env CUDA_INJECTION64_PATH="$BIN/libkernel_profile.so" \
      DGCOLOR_KERNEL_PROFILE="$OUT/$name.txt" "$BIN/$exe" --device cuda \
      --config "$config" --mode "$mode" --warmup 1 --iters 3 --precision tf32
    [[ -f $OUT/$name.txt ]] && { say "    $mode $config, $exe (4 iterations + set-up), top 25:"; head -27 "$OUT/$name.txt" | cut -c1-200 | sed 's/^/    /' | tee -a "$SUMMARY"; }
  fi
done
fi

if want train; then
say ""
say "## 4. Short ours training on synth, 256 px (paper model, batch 32, 60 steps, tf32)"
step train-ours 150 "$BIN/dgcolor" train --algorithm ours --data synth --sources photo,cartoon \
  --target art_painting --preset paper --steps 60 --batch-size 32 --device cuda --precision tf32 \
  --data-root "$OUT/data" --out "$OUT/train-ours" --quiet
python3 - "$OUT/train-ours/records.jsonl" <<'PY' 2>&1 | tee -a "$SUMMARY"
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("kind") == "train":
        losses = " ".join(f"{k} {v:.3f}" for k, v in r["losses"].items())
        print(f"    step {r['step']:>3}: {losses} | {r['images_per_sec']:.1f} img/s, data wait {100 * r['data_wait_share']:.1f}%")
    elif r.get("kind") in ("eval", "final"):
        print(f"    {r['kind']} step {r['step']}: {json.dumps(r.get('metrics', r))[:200]}")
PY

fi

if want extras; then
say ""
say "## 5. Extras (as time allows)"
if (( $(elapsed) < 420 )); then
  step bench-bf16 100 python3 bench/compare.py --device cuda --no-build --rust-bin "$BIN/bench" \
    --configs s256-nf64-d8-b128 --modes erm,ours --runs 1 --warmup 2 --iters 5 \
    --precision bf16 --amp bf16 --timeout 45 --json "$OUT/bench-bf16.json"
  grep "^|" "$OUT/bench-bf16.log" | tee -a "$SUMMARY"
fi
if (( $(elapsed) < 470 )); then
  step bench-compile 90 python3 bench/compare.py --device cuda --no-build --rust-bin "$BIN/bench" \
    --configs s256-nf64-d8-b128 --modes erm --runs 1 --warmup 3 --iters 5 --precision tf32 \
    --torch-compile --timeout 80 --json "$OUT/bench-compile.json"
  grep "^|" "$OUT/bench-compile.log" | tee -a "$SUMMARY"
fi
for kernels in lowered candle; do
  if (( $(elapsed) < 520 )); then
    step "bench-$kernels-convs" 45 env DGCOLOR_KERNELS=$kernels "$BIN/bench" --device cuda \
      --config s256-nf64-d8-b16 --mode erm --warmup 1 --iters 2 --precision tf32
    say "    DGCOLOR_KERNELS=$kernels, erm, s256-nf64-d8-b16: $(tail -1 "$OUT/bench-$kernels-convs.log" | cut -c1-300)"
  fi
done
fi
say ""
say "total: $(elapsed)s"
rm -rf "$BIN" "$OUT/data"
# The device tool returns only a handful of files from $OUT: keep the summary loose and
# everything else (logs, JSON, run records; not the checkpoint) in one archive.
# (The archive is written outside $OUT: tar fails on a directory that changes as it reads it.)
ARCHIVE=$(mktemp --suffix=.tar.gz)
tar -czf "$ARCHIVE" -C "$OUT" --exclude=summary.md --exclude='*.safetensors' . &&
  find "$OUT" -mindepth 1 ! -name summary.md -delete && mv "$ARCHIVE" "$OUT/logs.tar.gz"
