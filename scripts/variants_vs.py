#!/usr/bin/env python3
"""Every row (label) of a sweep against one baseline row, image by image: what the report's
`_vs_erm` tables do, for sweeps without an erm row such as `ablate-adain`'s (baseline `ours`).

Runs are paired by (target, hparams draw, trial); each run's test images are taken at the
step training-domain validation selects (or the last step). Per label: the mean difference
over paired images (pooled over runs), a seeded percentile-bootstrap 95% CI, the Wilcoxon
signed-rank p-value (scipy; not corrected for the number of rows), and the number of runs.

Usage: scripts/variants_vs.py SWEEP [--baseline ours] [--select val|last] [--metric psnr]
"""
import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon

sys.path.insert(0, str(Path(__file__).parent))
from compare_sweeps import selected_step  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sweep", type=Path)
    ap.add_argument("--baseline", default="ours")
    ap.add_argument("--select", default="val", choices=["val", "last"])
    ap.add_argument("--metric", default="psnr")
    ap.add_argument("--resamples", type=int, default=10000)
    args = ap.parse_args()
    runs, order = defaultdict(dict), {}
    for job_file in sorted((args.sweep / "runs").glob("*/job.json")):
        job = json.load(open(job_file))
        spec = job["spec"]
        step = selected_step(job_file.parent, args.select)
        if step is None:
            print(f"skipped {job_file.parent}: not finished", file=sys.stderr)
            continue
        with open(job_file.parent / "per_image" / f"test-step-{step:06d}.csv") as f:
            values = {r["file"]: float(r[args.metric]) for r in csv.DictReader(f)}
        runs[job["label"]][(spec["target"], spec["hparams_seed"], spec["seed"])] = values
        order[job["label"]] = job["order"]
    base = runs.get(args.baseline)
    if not base:
        sys.exit(f"no finished run labelled {args.baseline!r} in {args.sweep}")
    rng = np.random.default_rng(0)
    print(f"{args.metric} at the {args.select}-selected step; difference = row - "
          f"{args.baseline!r}, paired over test images of runs with the same (target, draw, trial)")
    print()
    print("| row | runs | difference | 95% CI | Wilcoxon p |")
    print("|---|---|---|---|---|")
    for label in sorted(runs, key=lambda l: order[l]):
        if label == args.baseline:
            continue
        keys = sorted(set(runs[label]) & set(base))
        d = np.concatenate([
            np.array([runs[label][k][f] - base[k][f] for f in sorted(set(base[k]) & set(runs[label][k]))])
            for k in keys
        ])
        if not np.any(d):
            print(f"| {label} | {len(keys)} | 0 (identical images) | | |")
            continue
        boot = np.array([rng.choice(d, d.size).mean() for _ in range(args.resamples)])
        lo, hi = np.percentile(boot, [2.5, 97.5])
        print(f"| {label} | {len(keys)} | {d.mean():+.3f} | [{lo:+.3f}, {hi:+.3f}] "
              f"| {wilcoxon(d).pvalue:.2g} |")


if __name__ == "__main__":
    main()
