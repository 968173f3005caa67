#!/usr/bin/env bash
# Measures the domain gap and the learnable signal of the embedded `synth` benchmark:
# pix2pix (erm, quick preset) trained on the target domain itself vs on two other domains,
# both evaluated on a held-out synth set drawn with another seed, against predicting gray.
# Usage: scripts/synth_gap.sh [target] [workdir]   (defaults: art_painting, results/synth-gap)
set -euo pipefail
target=${1:-art_painting}
work=${2:-results/synth-gap}
others=$(printf '%s\n' photo art_painting cartoon | grep -vx "$target" | paste -sd, -)
cargo build --release -p dgcolor-cli
bin=target/release/dgcolor
mkdir -p "$work"
$bin data synth --out "$work/heldout" --seed 1 --size 64 --per-class 100
$bin train --algorithm erm --preset quick --steps 400 --sources "$target" --target sketch --out "$work/in-domain" --quiet > /dev/null
$bin train --algorithm erm --preset quick --steps 400 --sources "$others" --target "$target" --out "$work/cross-domain" --quiet > /dev/null
for model in in-domain cross-domain gray; do
  if [ "$model" = gray ]; then args=(--gray --size 64); else args=(--checkpoint "$work/$model"); fi
  $bin eval "${args[@]}" --data "$work/heldout" --domain "$target" > "$work/$model.json"
  python3 - "$work/$model.json" "$model" <<'PY' 2>/dev/null || cat "$work/$model.json"
import json, sys
m = json.load(open(sys.argv[1]))["result"]["metrics"]
print(f"{sys.argv[2]:>13}: " + "  ".join(f"{k} {v['mean']:.3f}" for k, v in m.items()))
PY
done
