#!/usr/bin/env bash
# The committed study on synth (docs/study-synth/), with DomainBed's protocol (model selection
# by training-domain validation, the test-domain oracle and the last step) and paired
# per-image statistics:
#   1. every method on the paper's three settings, TRIALS seeds each (the main comparison);
#   2. the proposed model without its AdaIN skip on the same settings and seeds, compared run
#      by run with (1)'s `ours` (the AdaIN claim, with seeds);
#   3. dann, coral, mmd and jigsaw with align_at=1 (aligning z instead of the bottleneck) on
#      the same settings, ALIGN_TRIALS seeds, compared with (1) (the align_at default);
#   4. `ablate-adain` (every AdaIN position and each component off) on ABLATION_SETTINGS,
#      ABLATION_TRIALS seeds.
# The report tables, plots and the figure are copied into docs/study-synth/.
# Usage: scripts/study_synth.sh [results-dir]
#   STEPS (200), TRIALS (2), HPARAMS (1), ALIGN_TRIALS (1), ABLATION_TRIALS (1) and
#   ABLATION_SETTINGS (photo+cartoon:art_painting) override the defaults; DGCOLOR_BIN runs a
#   given binary instead of building target/release/dgcolor. Runs already done are reused.
set -euo pipefail
results=${1:-results}
steps=${STEPS:-200}
trials=${TRIALS:-2}
hparams=${HPARAMS:-1}
align_trials=${ALIGN_TRIALS:-1}
ablation_trials=${ABLATION_TRIALS:-1}
ablation_settings=${ABLATION_SETTINGS:-photo+cartoon:art_painting}
if [[ -n ${DGCOLOR_BIN:-} ]]; then
  bin=$DGCOLOR_BIN
else
  cargo build --release -q -p dgcolor-cli
  bin=target/release/dgcolor
fi
common=(--preset quick --steps "$steps" --hparams "$hparams" --results "$results")
start=$(date +%s)
$bin compare "${common[@]}" --trials "$trials" --sweep study-synth
$bin compare "${common[@]}" --trials "$trials" --algorithms ours --adain none \
  --sweep study-synth-adain-off --no-report
$bin compare "${common[@]}" --trials "$align_trials" --algorithms dann,coral,mmd,jigsaw \
  --set align_at=1 --sweep study-synth-align-z --no-report
$bin ablate-adain "${common[@]}" --trials "$ablation_trials" --settings "$ablation_settings" \
  --sweep study-synth-ablation
end=$(date +%s)
out=docs/study-synth
mkdir -p "$out/tables" "$out/ablation"
cp "$results"/study-synth/report/tables/*.md "$results"/study-synth/report/tables/*.csv "$out/tables/"
cp "$results"/study-synth/report/figure_synth.png "$out/"
cp "$results"/study-synth/report/plots/*.png "$out/" 2>/dev/null || true
cp "$results"/study-synth-ablation/report/tables/*.md "$results"/study-synth-ablation/report/tables/*.csv "$out/ablation/"
for select in val last; do
  for metric in psnr ssim ciede2000 colourfulness; do
    python3 scripts/run_level.py --select "$select" --metric "$metric" "$results"/study-synth \
      > "$out/run_level_${metric}_$select.md"
  done
  python3 scripts/compare_sweeps.py --select "$select" "$results"/study-synth \
    "$results"/study-synth-adain-off > "$out/adain_off_vs_on_$select.md"
  python3 scripts/compare_sweeps.py --select "$select" "$results"/study-synth \
    "$results"/study-synth-align-z > "$out/align_z_vs_bottleneck_$select.md"
  python3 scripts/variants_vs.py --select "$select" "$results"/study-synth-ablation \
    > "$out/ablation/variants_vs_ours_$select.md"
done
{
  echo "command: STEPS=$steps TRIALS=$trials HPARAMS=$hparams ALIGN_TRIALS=$align_trials ABLATION_TRIALS=$ablation_trials ABLATION_SETTINGS=$ablation_settings scripts/study_synth.sh"
  echo "commit: $(git rev-parse --short HEAD)"
  echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
  echo "wall time of this invocation: $(( (end - start) / 60 )) min $(( (end - start) % 60 )) s"
} > "$out/run.txt"
cat "$out/run.txt"
