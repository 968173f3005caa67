#!/usr/bin/env python3
"""Paired comparison of two sweeps that differ in one setting (e.g. `--set align_at=1`).

Runs are paired by (algorithm, sources, target, hparams draw, trial) from their `job.json`;
each run's test images are taken at the step that training-domain validation selects (the
mean source-validation PSNR, ties to the earliest step, as `dgcolor report` does) or at
the last step. Per algorithm it prints the mean test PSNR of both sweeps (mean over
targets of the mean over trials) and the paired difference B - A over every test image of
every target and trial: mean, a seeded percentile-bootstrap 95% CI over images, and the
Wilcoxon signed-rank p-value (scipy), plus the per-target differences.

Usage: scripts/compare_sweeps.py SWEEP_A SWEEP_B [--select val|last] [--metric psnr]
"""
import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon


SELECTION_METRIC = "psnr"  # what training-domain validation maximises, as in `dgcolor report`


def selected_step(run: Path, select: str) -> int:
    records = [json.loads(line) for line in open(run / "records.jsonl")]
    final = [r for r in records if r["kind"] == "final"]
    if not final:
        return None
    if select == "last":
        return final[-1]["step"]
    scores = defaultdict(list)
    test_steps = []
    for r in records:
        if r["kind"] != "eval":
            continue
        if r["split"] == "val":
            scores[r["step"]].append(r["metrics"][SELECTION_METRIC]["mean"])
        elif r["split"] == "test":
            test_steps.append(r["step"])
    best = None
    for step in test_steps:
        if step in scores:
            v = sum(scores[step]) / len(scores[step])
            if best is None or v > best[1]:
                best = (step, v)
    return best[0]


def load(sweep: Path, select: str, metric: str):
    runs = {}
    for job in sorted((sweep / "runs").glob("*/job.json")):
        run = job.parent
        spec = json.load(open(job))["spec"]
        key = (spec["algorithm"], "+".join(spec["sources"]), spec["target"],
               spec["hparams_seed"], spec["seed"])
        step = selected_step(run, select)
        if step is None:
            print(f"skipped {run}: not finished (no final record)", file=sys.stderr)
            continue
        with open(run / "per_image" / f"test-step-{step:06d}.csv") as f:
            rows = {r["file"]: float(r[metric]) for r in csv.DictReader(f)}
        runs[key] = rows
    return runs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--select", default="val", choices=["val", "last"])
    ap.add_argument("--metric", default="psnr")
    ap.add_argument("--resamples", type=int, default=10000)
    args = ap.parse_args()
    a = load(args.a, args.select, args.metric)
    b = load(args.b, args.select, args.metric)
    keys = sorted(set(a) & set(b))
    if not keys:
        sys.exit("no run of one sweep has a partner in the other")
    rng = np.random.default_rng(0)
    print(f"A = {args.a}, B = {args.b}; {args.metric} at the {args.select}-selected step; "
          f"{len(keys)} paired runs")
    print()
    print("| algorithm | A | B | B - A (images pooled) | 95% CI | Wilcoxon p | per target B - A |")
    print("|---|---|---|---|---|---|---|")
    for alg in sorted({k[0] for k in keys}):
        diffs, per_target, mean_a, mean_b = [], defaultdict(list), defaultdict(list), defaultdict(list)
        for k in (k for k in keys if k[0] == alg):
            files = sorted(set(a[k]) & set(b[k]))
            d = np.array([b[k][f] - a[k][f] for f in files])
            diffs.append(d)
            per_target[k[2]].append(d.mean())
            mean_a[k[2]].append(np.mean([a[k][f] for f in files]))
            mean_b[k[2]].append(np.mean([b[k][f] for f in files]))
        d = np.concatenate(diffs)
        boot = np.array([rng.choice(d, d.size).mean() for _ in range(args.resamples)])
        lo, hi = np.percentile(boot, [2.5, 97.5])
        p = wilcoxon(d).pvalue
        ma = np.mean([np.mean(v) for v in mean_a.values()])
        mb = np.mean([np.mean(v) for v in mean_b.values()])
        targets = ", ".join(f"{t} {np.mean(v):+.2f}" for t, v in sorted(per_target.items()))
        print(f"| {alg} | {ma:.2f} | {mb:.2f} | {d.mean():+.3f} | [{lo:+.3f}, {hi:+.3f}] "
              f"| {p:.2g} | {targets} |")


if __name__ == "__main__":
    main()
