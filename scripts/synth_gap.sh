#!/usr/bin/env bash
# The domain gap of the embedded `synth` benchmark, per target: pix2pix (erm, quick preset,
# 400 steps) trained on the target domain itself ("in-domain") vs on the two other paper
# domains ("cross-domain"), both evaluated on a held-out synth set drawn with another seed,
# against predicting gray; over several training seeds. Prints a Markdown table (mean ±
# standard error over seeds, ddof 0) and keeps every number under the work directory.
# Usage: scripts/synth_gap.sh [workdir] [seeds] [data]   (defaults: results/synth-gap, 3, synth)
set -euo pipefail
work=${1:-results/synth-gap}
seeds=${2:-3}
data=${3:-synth}
cargo build --release -q -p dgcolor-cli
bin=target/release/dgcolor
mkdir -p "$work"
heldout_flags=()
[[ $data == synth:palette-shift ]] && heldout_flags=(--palette-shift)
$bin data synth --out "$work/heldout" --seed 1 --size 64 --per-class 100 "${heldout_flags[@]}" >/dev/null
for target in photo art_painting cartoon; do
  others=$(printf '%s\n' photo art_painting cartoon | grep -vx "$target" | paste -sd, -)
  for seed in $(seq 0 $((seeds - 1))); do
    for model in in-domain cross-domain; do
      out="$work/$target/$model-s$seed"
      if [[ $model == in-domain ]]; then sources=$target; run_target=sketch; else sources=$others; run_target=$target; fi
      $bin train --algorithm erm --preset quick --steps 400 --seed "$seed" --data "$data" \
        --sources "$sources" --target "$run_target" --out "$out" --quiet > /dev/null
      $bin eval --checkpoint "$out" --select last --data "$work/heldout" --domain "$target" > "$out.json"
    done
  done
  $bin eval --gray --size 64 --data "$work/heldout" --domain "$target" > "$work/$target/gray.json"
done
python3 - "$work" "$seeds" <<'PY'
import json, math, sys
work, seeds = sys.argv[1], int(sys.argv[2])
def load(p):
    r = json.load(open(p))["result"]
    v = {k: m["mean"] for k, m in r["metrics"].items()}
    v.update(r.get("set", {}))
    return v
def cell(xs):
    m = sum(xs) / len(xs)
    se = math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs)) / math.sqrt(len(xs))
    return f"{m:.2f} ± {se:.2f}" if len(xs) > 1 else f"{m:.2f}"
print(f"| target | model | PSNR (dB) ↑ | SSIM ↑ | CIEDE2000 ↓ | colourfulness ratio |")
print("|---|---|---|---|---|---|")
for target in ["photo", "art_painting", "cartoon"]:
    rows = {m: [load(f"{work}/{target}/{m}-s{s}.json") for s in range(seeds)] for m in ["in-domain", "cross-domain"]}
    rows["gray"] = [load(f"{work}/{target}/gray.json")]
    for m, vs in rows.items():
        print(f"| {target} | {m} | " + " | ".join(cell([v[k] for v in vs]) for k in ["psnr", "ssim", "ciede2000", "colourfulness_ratio"]) + " |")
    gap = [a["psnr"] - b["psnr"] for a, b in zip(rows["in-domain"], rows["cross-domain"])]
    print(f"| {target} | gap (in - cross) | {cell(gap)} | | | |")
PY
