#!/usr/bin/env python3
"""Runs the Rust benchmark (`target/release/bench`) and the PyTorch reference
(`bench/torch_reference.py`) on identical configurations, alternating them cell by cell so
both see the same machine load, and prints a markdown table of images/s, the ratio
candle / PyTorch and each side's peak resident memory.

    python3 bench/compare.py                       # everything, threads = RAYON_NUM_THREADS or all cores
    python3 bench/compare.py --threads 2 --runs 3  # the README table
    python3 bench/compare.py --configs quick --modes gstep,infer --runs 1

On a GPU (`scripts/gpu-check.sh` runs this):

    python3 bench/compare.py --device cuda --rust-bin target-cuda/release/bench --no-build \
        --configs s256-nf64-d8-b16,s256-nf64-d8-b128 --modes erm,ours,infer --precision tf32

`--precision` is candle's convolution GEMM precision and `--amp bf16` PyTorch's autocast
(use `--precision bf16 --amp bf16` together); `--torch-compile` adds a torch.compile column.
Peak GPU memory is nvidia-smi's device memory in use during the process, minus before it
(the same measure for both sides, CUDA context included).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading

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


def gpu_used_mib():
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                          "-i", "0"], capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[0])


class GpuPeak:
    """Polls nvidia-smi every 50 ms while a benchmark process runs."""

    def __enter__(self):
        self.base = gpu_used_mib()
        self.peak = self.base
        self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                                      "-i", "0", "-lms", "50"], stdout=subprocess.PIPE, text=True)

        def read():
            for line in self.proc.stdout:
                try:
                    self.peak = max(self.peak, float(line.strip()))
                except ValueError:
                    pass
        self.thread = threading.Thread(target=read, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.thread.join(timeout=2)

    def mib(self):
        return self.peak - self.base


def run_json(cmd, env, gpu=False, timeout=None):
    peak = GpuPeak() if gpu else None
    try:
        if peak:
            peak.__enter__()
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        sys.stderr.write(f"timed out after {timeout} s: {' '.join(cmd)}\n")
        return None
    finally:
        if peak:
            peak.__exit__()
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"failed: {' '.join(cmd)}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if peak:
        out["peak_gpu_smi_mib"] = peak.mib()
    return out


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
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--precision", default="f32", help="candle's conv GEMM precision: f32, tf32, bf16")
    p.add_argument("--amp", default="none", choices=["none", "bf16"], help="PyTorch autocast")
    p.add_argument("--torch-compile", action="store_true", help="also time torch.compile")
    p.add_argument("--rust-bin", default=os.path.join(ROOT, "target", "release", "bench"))
    p.add_argument("--timeout", type=float, default=None, help="seconds per process; a cell that runs over is left empty")
    p.add_argument("--no-data", action="store_true", help="skip the data-pipeline and GEMM rows")
    p.add_argument("--json", help="also write every raw measurement here")
    args = p.parse_args()

    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "dgcolor-bench", "--bin", "bench"],
                       cwd=ROOT, check=True)
    gpu = args.device != "cpu"
    rust = [args.rust_bin, "--device", args.device, "--precision", args.precision]
    torch = [sys.executable, os.path.join(ROOT, "bench", "torch_reference.py"),
             "--threads", str(args.threads), "--device", args.device, "--amp", args.amp]
    raw = []
    rows = []
    for cfg in args.configs.split(","):
        for mode in args.modes.split(","):
            common = ["--config", cfg, "--mode", mode, "--warmup", str(args.warmup),
                      "--iters", str(args.iters)]
            tmode = "infer" if mode == "infer_graph" else mode
            tcommon = ["--config", cfg, "--mode", tmode, "--warmup", str(args.warmup),
                       "--iters", str(args.iters)]
            rs, ts, cs = [], [], []
            for _ in range(args.runs):
                rs.append(run_json(rust + common, env, gpu, args.timeout))
                ts.append(run_json(torch + tcommon, env, gpu, args.timeout))
                if args.torch_compile:
                    cs.append(run_json(torch + tcommon + ["--compile"], env, gpu, args.timeout))
            rs, ts, cs = ([x for x in v if x] for v in (rs, ts, cs))
            raw += rs + ts + cs
            mem = "peak_gpu_smi_mib" if gpu else "peak_rss_mib"
            ips = lambda v: statistics.median(x["images_per_sec"] for x in v) if v else float("nan")
            peak = lambda v: max(x[mem] for x in v) if v else float("nan")
            r, t, c = ips(rs), ips(ts), ips(cs)
            rows.append((cfg, LABEL.get(mode, mode), r, t, c, peak(rs), peak(ts)))
            print(f"  {cfg} {mode}: candle {r:.2f} img/s, pytorch {t:.2f} img/s", file=sys.stderr)
    if gpu:
        card = next((x["gpu"] for x in raw if x.get("gpu")), "GPU")
        print(f"\ndevice: {card}; candle precision {args.precision}, PyTorch amp {args.amp} "
              f"(cuDNN TF32 allowed, its default); medians of {args.runs} process runs x median "
              f"of {args.iters} iterations\n")
    else:
        print(f"\nthreads: {args.threads} (RAYON_NUM_THREADS for candle, torch.set_num_threads for "
              f"PyTorch); medians of {args.runs} process runs x median of {args.iters} iterations\n")
    unit = "peak GPU MiB" if gpu else "peak RSS MiB"
    compiled = " PyTorch compile img/s | ratio vs compile |" if args.torch_compile else ""
    print(f"| config | mode | candle img/s | PyTorch img/s | ratio |{compiled} candle {unit} | PyTorch {unit} |")
    print("|---|---|---|---|---|" + ("---|---|" if args.torch_compile else "") + "---|---|")
    for cfg, mode, r, t, c, rm, tm in rows:
        extra = f" {c:.2f} | {r / c:.2f} |" if args.torch_compile else ""
        print(f"| {cfg} | {mode} | {r:.2f} | {t:.2f} | {r / t:.2f} |{extra} {rm:.0f} | {tm:.0f} |")
    if not args.no_data and not gpu:
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
        print(f"| dgcolor load_lab_planes (the training loader), rayon ({args.threads} threads) | {par:.0f} | {par / ref:.1f}x |")
        print(f"| dgcolor load_lab_planes, 1 thread | {one:.0f} | {one / ref:.1f}x |")
        print(f"| PIL open + resize NEAREST + skimage rgb2lab, per image | {ref:.0f} | 1.0x |")
        gf = statistics.median(x["gflops"] for x in g)
        print(f"\nPeak f32 GEMM (gemm 0.19, 2048^3, {args.threads} threads): {gf:.1f} GFLOP/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)


if __name__ == "__main__":
    main()
