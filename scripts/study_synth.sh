#!/usr/bin/env bash
# The committed study on synth (docs/study-synth/): every method on the paper's three
# settings, then the ablation of the proposed model, both with DomainBed's protocol (model
# selection by training-domain validation, the test-domain oracle and the last step) and
# paired per-image statistics; the report tables and the figure are copied into the docs.
# Usage: scripts/study_synth.sh [results-dir]   (STEPS, TRIALS, HPARAMS override the defaults)
set -euo pipefail
results=${1:-results}
steps=${STEPS:-200}
trials=${TRIALS:-2}
hparams=${HPARAMS:-1}
cargo build --release -q -p dgcolor-cli
bin=target/release/dgcolor
common=(--preset quick --steps "$steps" --trials "$trials" --hparams "$hparams" --results "$results")
start=$(date +%s)
$bin compare "${common[@]}" --sweep study-synth
$bin ablate-adain "${common[@]}" --sweep study-synth-ablation
end=$(date +%s)
out=docs/study-synth
mkdir -p "$out/tables" "$out/ablation"
cp "$results"/study-synth/report/tables/*.md "$out/tables/"
cp "$results"/study-synth/report/figure_synth.png "$out/"
cp "$results"/study-synth-ablation/report/tables/*.md "$out/ablation/"
{
  echo "command: STEPS=$steps TRIALS=$trials HPARAMS=$hparams scripts/study_synth.sh"
  echo "commit: $(git rev-parse --short HEAD)"
  echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
  echo "wall time: $(( (end - start) / 60 )) min $(( (end - start) % 60 )) s"
} > "$out/run.txt"
cat "$out/run.txt"
