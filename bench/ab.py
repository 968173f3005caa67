#!/usr/bin/env python3
"""A/B of two or more builds of the `bench` binary on the same cells, interleaved process by
process (A, B, A, B, ... within each cell), so every build sees the same machine load: for
measuring one change, e.g. candle-core with and without vendor/candle-core.patch.

    python3 bench/ab.py --bin pristine=target/saved/bench-pristine --bin patched=target/release/bench \
        --configs quick,s64-nf32-d6-b16 --modes gstep,erm,ours --runs 5 --threads 2
    # on a GPU, as scripts/gpu-check.sh runs it:
    python3 bench/ab.py --device cuda --precision tf32 --bin pristine=... --bin patched=... \
        --configs s256-nf64-d8-b128 --modes erm,ours --runs 3

Prints a markdown table: per cell and build the median images/s over `--runs` processes (each
the median of `--iters` iterations), the range, the ratio of each build to the first, and the
peak RSS (CPU) or peak GPU memory (nvidia-smi, as compare.py measures it).
"""
import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import LABEL, run_json  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", action="append", required=True, metavar="NAME=PATH",
                   help="a bench binary; the first is the baseline of the ratios")
    p.add_argument("--configs", default="quick")
    p.add_argument("--modes", default="gstep,erm,ours")
    p.add_argument("--runs", type=int, default=5, help="processes per cell and build")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="RAYON_NUM_THREADS (default: unset)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="f32")
    p.add_argument("--timeout", type=float, default=None)
    p.add_argument("--json", help="also write every raw measurement here")
    args = p.parse_args()

    bins = []
    for spec in args.bin:
        name, _, path = spec.partition("=")
        if not path or not os.path.exists(path):
            raise SystemExit(f"--bin {spec}: expected NAME=PATH of an existing binary")
        bins.append((name, path))
    env = dict(os.environ)
    if args.threads:
        env["RAYON_NUM_THREADS"] = str(args.threads)
    gpu = args.device != "cpu"
    raw, rows = [], []
    for cfg in args.configs.split(","):
        for mode in args.modes.split(","):
            common = ["--config", cfg, "--mode", mode, "--warmup", str(args.warmup), "--iters",
                      str(args.iters), "--device", args.device, "--precision", args.precision]
            got = {name: [] for name, _ in bins}
            for _ in range(args.runs):
                for name, path in bins:
                    r = run_json([path] + common, env, gpu, args.timeout)
                    if r:
                        r["build"] = name
                        got[name].append(r)
                        raw.append(r)
            mem = "peak_gpu_smi_mib" if gpu else "peak_rss_mib"
            cells = []
            for name, _ in bins:
                v = [x["images_per_sec"] for x in got[name]]
                m = [x[mem] for x in got[name]]
                cells.append((statistics.median(v) if v else float("nan"),
                              min(v) if v else float("nan"), max(v) if v else float("nan"),
                              max(m) if m else float("nan")))
            rows.append((cfg, LABEL.get(mode, mode), cells))
            print(f"  {cfg} {mode}: " + ", ".join(f"{n} {c[0]:.2f}" for (n, _), c in zip(bins, cells)),
                  file=sys.stderr)
    unit = "peak GPU MiB" if gpu else "peak RSS MiB"
    base = bins[0][0]
    print(f"\n{args.device}, precision {args.precision}, threads {args.threads or 'default'}; "
          f"img/s = median of {args.runs} processes (range), each the median of {args.iters} "
          f"iterations; builds interleaved process by process\n")
    head = "| config | mode |" + "".join(
        f" {n} img/s |" + ("" if i == 0 else f" {n} / {base} |") for i, (n, _) in enumerate(bins))
    head += "".join(f" {n} {unit} |" for n, _ in bins)
    print(head)
    print("|---|---|" + "---|" * (2 * len(bins) - 1 + len(bins)))
    for cfg, mode, cells in rows:
        line = f"| {cfg} | {mode} |"
        for i, (med, lo, hi, _) in enumerate(cells):
            line += f" {med:.2f} ({lo:.2f}–{hi:.2f}) |"
            if i > 0:
                line += f" {med / cells[0][0]:.3f} |"
        line += "".join(f" {c[3]:.0f} |" for c in cells)
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)


if __name__ == "__main__":
    main()
