#!/usr/bin/env python3
"""Run-level comparison of every method of a sweep with a baseline: the seed-level check
that the report's per-image tests do not make.

The report's marks pair test images (trials pooled), so they say whether two *trained
models* differ; whether the *methods* differ again with another seed is a question about
runs. Here each run (target, hparams draw, trial) gives one number, the mean test metric at
the step that training-domain validation (or the last step) selects, and each method is
compared with the baseline's run of the same (target, draw, trial): the mean difference, how
many runs it wins, and a paired t-test over runs (scipy), whose p is only as good as the
number of runs.

Usage: scripts/run_level.py SWEEP [--baseline erm] [--select val|last] [--metric psnr]
"""
import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import ttest_rel

sys.path.insert(0, str(Path(__file__).parent))
from compare_sweeps import selected_step  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sweep", type=Path)
    ap.add_argument("--baseline", default="erm")
    ap.add_argument("--select", default="val", choices=["val", "last"])
    ap.add_argument("--metric", default="psnr")
    args = ap.parse_args()
    runs = defaultdict(dict)
    order = {}
    for job_file in sorted((args.sweep / "runs").glob("*/job.json")):
        job = json.load(open(job_file))
        spec = job["spec"]
        step = selected_step(job_file.parent, args.select)
        if step is None:
            print(f"skipped {job_file.parent}: not finished", file=sys.stderr)
            continue
        with open(job_file.parent / "per_image" / f"test-step-{step:06d}.csv") as f:
            values = [float(r[args.metric]) for r in csv.DictReader(f)]
        key = (spec["target"], spec["hparams_seed"], spec["seed"])
        runs[job["label"]][key] = float(np.mean(values))
        order[job["label"]] = job["order"]
    base = runs.get(args.baseline)
    if not base:
        sys.exit(f"no finished run of {args.baseline} in {args.sweep}")
    print(f"{args.metric} at the {args.select}-selected step, one number per run; "
          f"difference = method - {args.baseline} over runs of the same (target, draw, trial)")
    print()
    print(f"| method | runs | mean difference | runs above the baseline | paired t-test p (runs) |")
    print("|---|---|---|---|---|")
    for label in sorted(runs, key=lambda l: order[l]):
        if label == args.baseline:
            continue
        keys = sorted(set(runs[label]) & set(base))
        a = np.array([runs[label][k] for k in keys])
        b = np.array([base[k] for k in keys])
        d = a - b
        p = ttest_rel(a, b).pvalue if len(keys) > 1 else float("nan")
        print(f"| {label} | {len(keys)} | {d.mean():+.3f} | {(d > 0).sum()} of {len(keys)} "
              f"| {p:.2g} |")


if __name__ == "__main__":
    main()
