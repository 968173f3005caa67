#!/usr/bin/env python3
"""PyTorch (eager, CPU or CUDA) reference of dgcolor's networks and updates, for the
side-by-side benchmark. One invocation measures one (config, mode) and prints one JSON line, exactly like
`target/release/bench`; `bench/compare.py` runs both and prints the table.

The networks follow docs/METHOD.md section 2 and the reference code (Lhyejin/DG-Colorization):
U-Net generator with head/tail encoder and AdaIN skip, PatchGAN colour discriminator, class
head, style discriminator; Adam(lr 1e-3, betas 0.5/0.999) per network; the five updates of
the proposed model; pix2pix's D step + G step.

Modes: gstep (G forward in train mode, 100 * L1, backward, Adam), erm (D step + G step),
ours (five updates), infer (eval mode under torch.inference_mode), data (PIL open -> resize
NEAREST -> skimage rgb2lab per image, the reference's preprocessing).

GPU options: --device cuda (timings synchronise the device; peak_gpu_mib is
torch.cuda.max_memory_reserved), --compile (torch.compile the networks, default mode),
--amp bf16 (torch.autocast around the forward passes). PyTorch's own defaults are kept:
cuDNN convolutions may use TF32, matmuls may not.
"""
import argparse
import contextlib
import json
import os
import resource
import statistics
import sys
import time

CONFIGS = {
    "s64-nf32-d6-b16": dict(size=64, nf=32, depth=6, batch=16),
    "s256-nf64-d8-b4": dict(size=256, nf=64, depth=8, batch=4),
    "quick": dict(size=64, nf=16, depth=6, batch=16),
    "s256-nf64-d8-b16": dict(size=256, nf=64, depth=8, batch=16),
    "s256-nf64-d8-b128": dict(size=256, nf=64, depth=8, batch=128),
}
N_CLASSES, N_DOMAINS, HEAD_LEVELS = 7, 2, 3


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def median_time(fn, warmup, iters, sync=lambda: None):
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(max(1, iters)):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def breakdown(parts, warmup, iters, sync):
    """Median seconds of each named update, every update timed on its own in each iteration."""
    for _ in range(warmup):
        for _, update in parts:
            update()
    times = {name: [] for name, _ in parts}
    for _ in range(max(1, iters)):
        for name, update in parts:
            sync()
            t = time.perf_counter()
            update()
            sync()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(v) for name, v in times.items()}


def build(torch, nn, F):
    def width(nf, level):
        return nf << min(level - 1, 3)

    def leaky(x):
        return F.leaky_relu(x, 0.2)

    class Down(nn.Module):
        def __init__(self, cin, cout, act, bn, stride=2):
            super().__init__()
            self.act = act
            self.conv = nn.Conv2d(cin, cout, 4, stride, 1)
            self.bn = nn.BatchNorm2d(cout) if bn else None

        def forward(self, x):
            if self.act:
                x = leaky(x)
            x = self.conv(x)
            return self.bn(x) if self.bn is not None else x

    class Up(nn.Module):
        def __init__(self, cin, cout, bn, dropout):
            super().__init__()
            self.upconv = nn.ConvTranspose2d(cin, cout, 4, 2, 1)
            self.bn = nn.BatchNorm2d(cout) if bn else None
            self.dropout = dropout

        def forward(self, x):
            x = self.upconv(F.relu(x))
            if self.bn is not None:
                x = self.bn(x)
            if self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)
            return x

    def stats(x):
        b, c = x.shape[:2]
        flat = x.reshape(b, c, -1)
        return flat.mean(-1).reshape(b, c, 1, 1), flat.var(-1, unbiased=True).reshape(b, c, 1, 1)

    def adain(content, style, eps=1e-5):
        mc, vc = stats(content)
        ms, vs = stats(style)
        return (content - mc) / torch.sqrt(vc + eps) * torch.sqrt(vs + eps) + ms

    def content_randomize(z, perm, eps=1e-5):
        m, v = stats(z)
        std = torch.sqrt(v + eps)
        normed = ((z - m) / std).detach()
        return normed[perm] * std + m

    def levels(nf, depth, first, last):
        return nn.ModuleList(
            Down(1 if i == 1 else width(nf, i - 1), width(nf, i), i > 1, 1 < i < depth)
            for i in range(first, last + 1))

    class Generator(nn.Module):
        def __init__(self, nf, depth, dropout=0.5):
            super().__init__()
            self.depth = depth
            self.head = levels(nf, depth, 1, HEAD_LEVELS)
            self.tail = levels(nf, depth, HEAD_LEVELS + 1, depth)
            d = depth
            self.ups = nn.ModuleList(
                Up(width(nf, d) if k == 1 else 2 * width(nf, d - k + 1),
                   2 if k == d else width(nf, d - k), k < d,
                   dropout if (k <= 3 and k < d) else 0.0)
                for k in range(1, d + 1))
            self.adain_index = d - 3

        def head_forward(self, l):
            feats, x = [], l
            for m in self.head:
                x = m(x)
                feats.append(x)
            return feats

        def encode(self, l):
            feats = self.head_forward(l)
            x = feats[-1]
            for m in self.tail:
                x = m(x)
                feats.append(x)
            return feats

        def forward(self, l):
            feats = self.encode(l)
            d = self.depth
            o = self.ups[0](feats[d - 1])
            for k in range(1, d):
                skip = leaky(feats[d - 1 - k])
                if k == self.adain_index:
                    skip = adain(skip, o)
                o = self.ups[k](torch.cat([o, skip], 1))
            return torch.tanh(o)

    class Mlp(nn.Module):
        def __init__(self, cin, n):
            super().__init__()
            self.layer = nn.Sequential(nn.Linear(cin, 256), nn.LeakyReLU(0.2),
                                       nn.Linear(256, 128), nn.LeakyReLU(0.2), nn.Linear(128, n))

        def forward(self, x):
            return self.layer(x.mean((2, 3)))

    class StyleDisc(nn.Module):
        def __init__(self, nf, depth):
            super().__init__()
            self.levels = levels(nf, depth, HEAD_LEVELS + 1, depth)
            self.mlp = Mlp(width(nf, depth), N_DOMAINS)

        def forward(self, z):
            for m in self.levels:
                z = m(z)
            return self.mlp(z)

    class ColorDisc(nn.Module):
        def __init__(self, nf):
            super().__init__()
            spec = [(3, nf, False, False, 2), (nf, 2 * nf, True, True, 2),
                    (2 * nf, 4 * nf, True, True, 2), (4 * nf, 8 * nf, True, True, 1),
                    (8 * nf, 1, True, False, 1)]
            self.convs = nn.Sequential(*[Down(*s) for s in spec])

        def forward(self, l, ab):
            return self.convs(torch.cat([l, ab], 1))

    def init(module):
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    return dict(Generator=Generator, Mlp=Mlp, StyleDisc=StyleDisc, ColorDisc=ColorDisc,
                init=init, content_randomize=content_randomize, width=width)


def run_model(args, torch, nn, F):
    cfg = CONFIGS[args.config]
    S, nf, D, B = cfg["size"], cfg["nf"], cfg["depth"], cfg["batch"]
    m = build(torch, nn, F)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    gen = m["Generator"](nf, D).to(dev)
    m["init"](gen)
    l = (torch.rand(B, 1, S, S) * 2 - 1).to(dev)
    ab = ((torch.rand(B, 2, S, S) * 2 - 1) * 0.5).to(dev)
    cls = (torch.arange(B) % N_CLASSES).to(dev)
    dom = (torch.arange(B) // (B // N_DOMAINS)).to(dev)
    adam = lambda params: torch.optim.Adam(params, lr=1e-3, betas=(0.5, 0.999))
    out = {"config": args.config, "batch": B}
    # Forward passes under autocast (--amp bf16) and compiled modules (--compile) if asked;
    # parameters, optimisers and losses stay f32 as in torch's AMP recipe.
    amp = (lambda: torch.autocast(args.device, dtype=torch.bfloat16)) if args.amp == "bf16" \
        else contextlib.nullcontext
    fwd = (lambda mod: torch.compile(mod)) if args.compile else (lambda mod: mod)
    run_gen = fwd(gen)

    if args.mode == "infer":
        gen.eval()

        def step():
            with torch.inference_mode(), amp():
                run_gen(l)
    elif args.mode == "gstep":
        gen.train()
        opt = adam(gen.parameters())

        def step():
            opt.zero_grad(set_to_none=True)
            with amp():
                fake = run_gen(l)
            loss = 100 * F.l1_loss(fake.float(), ab)
            loss.backward()
            opt.step()
    else:
        disc = m["ColorDisc"](nf).to(dev)
        m["init"](disc)
        run_disc = fwd(disc)
        opt_d = adam(disc.parameters())
        gen.train()
        disc.train()

        def d_update():
            opt_d.zero_grad(set_to_none=True)
            with amp():
                fake = run_gen(l).detach()
                fs, rs = run_disc(l, fake).float(), run_disc(l, ab).float()
            loss = 0.5 * (F.mse_loss(fs, torch.zeros_like(fs)) + F.mse_loss(rs, torch.ones_like(rs)))
            loss.backward()
            opt_d.step()

        def task_loss():
            # D frozen while the graph is recorded (pix2pix's set_requires_grad(netD, False)):
            # the generator's update computes no weight gradients for D, as in dgcolor.
            disc.requires_grad_(False)
            with amp():
                fake = run_gen(l)
                scores = run_disc(l, fake)
            disc.requires_grad_(True)
            fake, scores = fake.float(), scores.float()
            return 100 * F.l1_loss(fake, ab) + F.mse_loss(scores, torch.ones_like(scores))

        if args.mode == "erm":
            opt_g = adam(gen.parameters())

            def step():
                d_update()
                opt_g.zero_grad(set_to_none=True)
                opt_d.zero_grad(set_to_none=True)
                task_loss().backward()
                opt_g.step()
        elif args.mode == "ours":
            head_cls = m["Mlp"](m["width"](nf, D), N_CLASSES).to(dev)
            style = m["StyleDisc"](nf, D).to(dev)
            m["init"](style)
            opt_head, opt_tail = adam(gen.head.parameters()), adam(gen.tail.parameters())
            opt_dec, opt_cls = adam(gen.ups.parameters()), adam(head_cls.parameters())
            opt_style = adam(style.parameters())
            bn_affine = [p for mod in gen.head.modules() if isinstance(mod, nn.BatchNorm2d)
                         for p in mod.parameters()]
            opt_bn = adam(bn_affine)
            bn_ids = {id(p) for p in bn_affine}
            adv_frozen = [p for p in gen.head.parameters() if id(p) not in bn_ids] + \
                list(style.parameters())
            all_params = list(gen.parameters()) + list(disc.parameters()) + \
                list(head_cls.parameters()) + list(style.parameters())
            cr = m["content_randomize"]

            def zero():
                for p in all_params:
                    p.grad = None

            def class_update():
                zero()
                with amp():
                    logits = head_cls(gen.encode(l)[-1])
                F.cross_entropy(logits.float(), cls).backward()
                opt_head.step(); opt_tail.step(); opt_cls.step()

            def generator_update():
                zero()
                task_loss().backward()
                opt_head.step(); opt_tail.step(); opt_dec.step()

            def style_update():
                # f_s on CR(z), z detached
                zero()
                with amp():
                    z = gen.head_forward(l)[-1].detach()
                    logits = style(cr(z, torch.randperm(B, device=dev)))
                F.cross_entropy(logits.float(), dom).backward()
                opt_style.step()

            def adversarial_update():
                # head BN affine only; the head's convolutions and f_s frozen while the graph
                # is recorded (no weight gradients that would be thrown away), as in dgcolor
                zero()
                for p in adv_frozen:
                    p.requires_grad_(False)
                with amp():
                    z = gen.head_forward(l)[-1]
                    logits = style(cr(z, torch.randperm(B, device=dev)))
                for p in adv_frozen:
                    p.requires_grad_(True)
                (-1.0 * F.cross_entropy(logits.float(), dom)).backward()
                opt_bn.step()

            # docs/METHOD.md section 3's order; the names match the Rust bench's `--breakdown`.
            parts = [("disc", d_update), ("class", class_update), ("generator", generator_update),
                     ("style", style_update), ("adversarial", adversarial_update)]

            def step():
                for _, update in parts:
                    update()
        else:
            raise SystemExit(f"unknown mode {args.mode}")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if args.breakdown:
        if args.mode != "ours":
            raise SystemExit("--breakdown: only for --mode ours")
        out["breakdown"] = breakdown(parts, args.warmup, args.iters, sync)
    t, times = median_time(step, args.warmup, args.iters, sync)
    out.update(sec_per_iter=t, times=times, images_per_sec=B / t)
    if dev.type == "cuda":
        out.update(peak_gpu_mib=torch.cuda.max_memory_reserved() / 2**20,
                   gpu=torch.cuda.get_device_name(0))
    return out


def run_data(args):
    import numpy as np
    from PIL import Image
    from skimage import color

    files = []
    for root, _, names in os.walk(args.images):
        files += [os.path.join(root, n) for n in names
                  if n.lower().endswith((".jpg", ".jpeg", ".png"))]
    files.sort()
    reps = -(-200 // len(files))
    files = files * reps
    S = args.data_size

    def load(path):
        img = Image.open(path).convert("RGB").resize((S, S), Image.NEAREST)
        lab = color.rgb2lab(np.asarray(img))
        return (lab[..., 0] / 50.0 - 1.0).astype(np.float32), (lab[..., 1:] / 100.0).astype(np.float32)

    def step():
        for f in files:
            load(f)

    t, times = median_time(step, 1, args.iters)
    return {"images": len(files), "images_per_sec": len(files) / t, "size": S, "times": times}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="quick", choices=sorted(CONFIGS))
    p.add_argument("--mode", default="gstep")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--threads", type=int,
                   default=int(os.environ.get("RAYON_NUM_THREADS", os.cpu_count() or 1)))
    p.add_argument("--images", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "pacs_mini"))
    p.add_argument("--data-size", type=int, default=256)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--compile", action="store_true", help="torch.compile the networks")
    p.add_argument("--amp", default="none", choices=["none", "bf16"])
    p.add_argument("--breakdown", action="store_true",
                   help="ours only: also time each of the five updates on its own")
    p.add_argument("--flush-denormal", action="store_true",
                   help="torch.set_flush_denormal(True) (off by default, PyTorch's default)")
    args = p.parse_args()

    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    if args.flush_denormal:
        torch.set_flush_denormal(True)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    base_rss = peak_rss_mib()
    if args.mode == "data":
        out = run_data(args)
    else:
        out = run_model(args, torch, nn, F)
    out.update(framework="pytorch", mode=args.mode, device=args.device, compile=args.compile,
               amp=args.amp, threads=torch.get_num_threads(),
               torch=torch.__version__, peak_rss_mib=peak_rss_mib(), rss_after_import_mib=base_rss)
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
