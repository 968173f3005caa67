#!/usr/bin/env python3
"""Runs the Rust benchmark (`target/release/bench`) and the PyTorch reference
(`bench/torch_reference.py`) on identical configurations, alternating them cell by cell so
both see the same machine load, and prints a markdown table of images/s, the ratio
candle / PyTorch and each side's peak resident memory.

    python3 bench/compare.py                       # everything, threads = RAYON_NUM_THREADS or all cores
    python3 bench/compare.py --threads 2 --runs 3  # the README table
    python3 bench/compare.py --configs quick --modes gstep,infer --runs 1
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = ["s64-nf32-d6-b16", "s256-nf64-d8-b4", "quick"]
MODES = ["gstep", "erm", "ours", "infer"]
LABEL = {
    "gstep": "G train step (100 L1 + Adam)",
    "erm": "pix2pix iteration (D + G step)",
    "ours": "`ours` iteration (5 updates)",
    "infer": "inference (eval)",
    "infer_graph": "inference, graph path",
}


def run_json(cmd, env):
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int,
                   default=int(os.environ.get("RAYON_NUM_THREADS", os.cpu_count() or 1)))
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--runs", type=int, default=3, help="processes per cell and side; median taken")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--no-data", action="store_true", help="skip the data-pipeline and GEMM rows")
    p.add_argument("--json", help="also write every raw measurement here")
    args = p.parse_args()

    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "dgcolor-bench", "--bin", "bench"],
                       cwd=ROOT, check=True)
    rust = [os.path.join(ROOT, "target", "release", "bench")]
    torch = [sys.executable, os.path.join(ROOT, "bench", "torch_reference.py"),
             "--threads", str(args.threads)]
    raw = []
    rows = []
    for cfg in args.configs.split(","):
        for mode in args.modes.split(","):
            common = ["--config", cfg, "--mode", mode, "--warmup", str(args.warmup),
                      "--iters", str(args.iters)]
            tmode = "infer" if mode == "infer_graph" else mode
            tcommon = ["--config", cfg, "--mode", tmode, "--warmup", str(args.warmup),
                       "--iters", str(args.iters)]
            rs, ts = [], []
            for _ in range(args.runs):
                rs.append(run_json(rust + common, env))
                ts.append(run_json(torch + tcommon, env))
            raw += rs + ts
            r = statistics.median(x["images_per_sec"] for x in rs)
            t = statistics.median(x["images_per_sec"] for x in ts)
            rows.append((cfg, LABEL.get(mode, mode), r, t, max(x["peak_rss_mib"] for x in rs),
                         max(x["peak_rss_mib"] for x in ts)))
            print(f"  {cfg} {mode}: candle {r:.2f} img/s, pytorch {t:.2f} img/s", file=sys.stderr)
    print(f"\nthreads: {args.threads} (RAYON_NUM_THREADS for candle, torch.set_num_threads for "
          f"PyTorch); medians of {args.runs} process runs x median of {args.iters} iterations\n")
    print("| config | mode | candle img/s | PyTorch img/s | ratio | candle peak RSS MiB | PyTorch peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    for cfg, mode, r, t, rm, tm in rows:
        print(f"| {cfg} | {mode} | {r:.2f} | {t:.2f} | {r / t:.2f} | {rm:.0f} | {tm:.0f} |")
    if not args.no_data:
        d_r = [run_json(rust + ["--mode", "data", "--iters", "3"], env) for _ in range(args.runs)]
        d_t = [run_json(torch + ["--mode", "data", "--iters", "3"], env) for _ in range(args.runs)]
        g = [run_json(rust + ["--mode", "gemm", "--iters", "5"], env) for _ in range(args.runs)]
        raw += d_r + d_t + g
        par = statistics.median(x["images_per_sec"] for x in d_r)
        one = statistics.median(x["images_per_sec_one_thread"] for x in d_r)
        ref = statistics.median(x["images_per_sec"] for x in d_t)
        print(f"\nData (decode + resize NEAREST to {d_r[0]['size']} + Lab, {d_r[0]['images']} files "
              f"of {os.path.basename(d_r[0].get('dir', 'pacs_mini'))}):\n")
        print("| path | images/s | vs PIL + scikit-image |")
        print("|---|---|---|")
        print(f"| dgcolor load_lab, rayon ({args.threads} threads) | {par:.0f} | {par / ref:.1f}x |")
        print(f"| dgcolor load_lab, 1 thread | {one:.0f} | {one / ref:.1f}x |")
        print(f"| PIL open + resize NEAREST + skimage rgb2lab, per image | {ref:.0f} | 1.0x |")
        gf = statistics.median(x["gflops"] for x in g)
        print(f"\nPeak f32 GEMM (gemm 0.19, 2048^3, {args.threads} threads): {gf:.1f} GFLOP/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)


if __name__ == "__main__":
    main()
