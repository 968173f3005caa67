#!/usr/bin/env python3
"""Expected values for `tests/parity.rs`, computed by PyTorch.

Generated with torch 2.15.0 (CPU, float32), numpy 2.4.6, scikit-image 0.26.0 and the
`safetensors` pip package; rerun with

    pip install torch numpy scikit-image safetensors
    python3 crates/dgcolor-algorithms/tests/parity/make_fixtures.py

and commit the files it writes beside itself (see README.md).

The modules below are written for this script from the *semantics* of the reference code
(Lhyejin/DG-Colorization, `src/model.py` and `src/train.py`), generalised to any depth so the
quick preset (depth 6) can be checked too. At depth 8 their state-dict keys and shapes are the
reference's. Deliberately reproduced quirks of the reference:

* `DownConv` runs an *in-place* LeakyReLU(0.2) on its input, so every encoder output that a
  later level consumes is overwritten with LeakyReLU(x_i) before the decoder reads it as a
  skip (and before AdaIN normalises it);
* `UpConv` builds `nn.ReLU(0.5)`, i.e. `inplace=0.5` (truthy): an in-place ReLU;
* every DownConv/UpConv owns a BatchNorm2d even where it is not applied (level 1, level D,
  the last up block), so F/C/D state dicts hold those unused tensors;
* dropout p = 0 here (the reference uses 0.5 in up1..up3 in training), because PyTorch's
  masks cannot be reproduced in candle; our side sets `ModelConfig::dropout = 0`.

Weights and inputs are not stored: both sides draw them from one tiny counter-based
generator (`det_uniform`, mirrored by `det_uniform` in parity.rs), keyed by our VarMap names,
so the fixtures hold only expected outputs and stay small.
"""

import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
M32 = 0xFFFFFFFF
SAMPLE = 128  # values kept per large parameter tensor (plus its sum and absolute sum)
LR = 1e-3
BETAS = (0.5, 0.999)


# ---------------------------------------------------------------- deterministic values
def fnv1a32(s):
    h = 0x811C9DC5
    for b in s.encode():
        h = ((h ^ b) * 0x01000193) & M32
    return h


def det_uniform(name, n, lo, hi):
    """n float32 values in [lo, hi): lowbias32 hash of (fnv1a(name), index)."""
    u64 = np.uint64
    h = (np.arange(n, dtype=u64) + u64((fnv1a32(name) * 0x9E3779B9) & M32)) & u64(M32)
    h ^= h >> u64(16)
    h = (h * u64(0x7FEB352D)) & u64(M32)
    h ^= h >> u64(15)
    h = (h * u64(0x846CA68B)) & u64(M32)
    h ^= h >> u64(16)
    u = (h >> u64(8)).astype(np.float32) / np.float32(16777216.0)
    return np.float32(lo) + np.float32(hi - lo) * u


def det_tensor(name, shape, lo, hi):
    n = int(np.prod(shape)) if len(shape) else 1
    return torch.from_numpy(det_uniform(name, n, lo, hi).reshape(shape))


def param_range(name, shape):
    """The (lo, hi) every fixture parameter is drawn from; parity.rs has the same rule."""
    if name.endswith("upconv.weight"):  # [in, out, 4, 4]; each output sees in * 4 taps
        a = math.sqrt(6.0 / (shape[0] * 4))
        return -a, a
    if name.endswith("conv.weight"):  # [out, in, 4, 4]
        a = math.sqrt(6.0 / (shape[1] * shape[2] * shape[3]))
        return -a, a
    if name.endswith("conv.bias"):
        return -0.1, 0.1
    if name.endswith("bn.weight") or name.endswith("running_var"):
        return 0.8, 1.2
    if name.endswith("bn.bias") or name.endswith("running_mean"):
        return -0.1, 0.1
    # Linear layers: weight [out, in] in +-1/sqrt(in); bias [out] in +-0.1.
    if len(shape) == 1:
        return -0.1, 0.1
    a = 1.0 / math.sqrt(shape[1])
    return -a, a


def width(nf, level):
    return nf << min(level - 1, 3)


# ---------------------------------------------------------------- reference-shaped modules
class DownConv(nn.Module):
    def __init__(self, cin, cout, stride=2, act=True, bn=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 4, stride, 1)
        self.bn = nn.BatchNorm2d(cout)  # exists even when unused, like the reference
        self.act, self.use_bn = act, bn

    def forward(self, x):
        if self.act:
            x = F.leaky_relu_(x, 0.2)  # in place: overwrites the caller's tensor
        y = self.conv(x)
        return self.bn(y) if self.use_bn else y


class UpConv(nn.Module):
    def __init__(self, cin, cout, bn=True):
        super().__init__()
        self.upconv = nn.ConvTranspose2d(cin, cout, 4, 2, 1)
        self.bn = nn.BatchNorm2d(cout)
        self.use_bn = bn
        self.drop = nn.Dropout(0.0)  # reference: 0.5 in up1..up3 (train only)

    def forward(self, x):
        y = self.upconv(F.relu_(x))  # in place, as nn.ReLU(0.5)
        if self.use_bn:
            y = self.bn(y)
        return self.drop(y)


class Encoder(nn.Module):
    """down1..downD; subclasses run a range of levels."""

    def __init__(self, depth, nf, in_nc=1):
        super().__init__()
        self.depth = depth
        for i in range(1, depth + 1):
            cin = in_nc if i == 1 else width(nf, i - 1)
            self.add_module(f"down{i}", DownConv(cin, width(nf, i), act=i > 1, bn=1 < i < depth))

    def run(self, x, first, last):
        outs = []
        for i in range(first, last + 1):
            x = getattr(self, f"down{i}")(x)
            outs.append(x)
        return outs


class HeadEncoder(Encoder):
    def forward(self, l):
        return self.run(l, 1, 3)


class TailEncoder(Encoder):
    def forward(self, z):
        return self.run(z, 4, self.depth)


def adain(content, style, eps=1e-5):
    cm, cv = content.mean((2, 3), keepdim=True), content.var((2, 3), keepdim=True)
    sm, sv = style.mean((2, 3), keepdim=True), style.var((2, 3), keepdim=True)
    return (content - cm) / (cv + eps).sqrt() * (sv + eps).sqrt() + sm


def content_randomize(x, perm, eps=1e-5):
    b, c = x.shape[:2]
    flat = x.reshape(b, c, -1)
    mean, var = flat.mean(-1, keepdim=True), flat.var(-1, keepdim=True)
    normed = ((flat - mean) / (var + eps).sqrt())[perm].detach()
    return (normed * (var + eps).sqrt() + mean).reshape(x.shape)


class Decoder(nn.Module):
    def __init__(self, depth, nf):
        super().__init__()
        self.depth = depth
        for k in range(1, depth + 1):
            cin = width(nf, depth) if k == 1 else 2 * width(nf, depth - k + 1)
            cout = width(nf, depth - k) if k < depth else 2
            self.add_module(f"up{k}", UpConv(cin, cout, bn=k < depth))

    def forward(self, feats, adain_index):
        d = self.depth
        o = self.up1(feats[d - 1])
        for k in range(1, d):
            skip = feats[d - 1 - k]  # x_{D-k}, already LeakyReLU'd in place by level D-k+1
            if k == adain_index:
                skip = adain(skip, o)
            o = getattr(self, f"up{k + 1}")(torch.cat([o, skip], 1))
        return torch.tanh(o)


def mlp(cin, n):
    return nn.Sequential(nn.Linear(cin, 256), nn.LeakyReLU(0.2), nn.Linear(256, 128),
                         nn.LeakyReLU(0.2), nn.Linear(128, n))


class ClassHead(nn.Module):
    def __init__(self, cin, n):
        super().__init__()
        self.layer = mlp(cin, n)

    def forward(self, h):
        return self.layer(h.mean((2, 3)))


class StyleDiscriminator(Encoder):
    def __init__(self, depth, nf, n):
        super().__init__(depth, nf)
        self.linear_layer = mlp(width(nf, depth), n)

    def forward(self, z):
        return self.linear_layer(self.run(z, 4, self.depth)[-1].mean((2, 3)))


class ColorDiscriminator(nn.Module):
    def __init__(self, nf):
        super().__init__()
        self.conv1 = DownConv(3, nf, act=False, bn=False)
        self.conv2 = DownConv(nf, 2 * nf)
        self.conv3 = DownConv(2 * nf, 4 * nf)
        self.conv4 = DownConv(4 * nf, 8 * nf, stride=1)
        self.conv5 = DownConv(8 * nf, 1, stride=1, bn=False)

    def forward(self, lab):
        for i in range(1, 6):
            lab = getattr(self, f"conv{i}")(lab)
        return lab


# ---------------------------------------------------------------- our names <-> modules
def block_names(prefix, kind, bn):
    conv = "upconv" if kind == "up" else "conv"
    names = [f"{prefix}.{conv}.weight", f"{prefix}.{conv}.bias"]
    if bn:
        names += [f"{prefix}.bn.{s}" for s in ("weight", "bias", "running_mean", "running_var")]
    return names


def our_names(nets, depth):
    """(our VarMap name, module, attribute path) for every variable our models create."""
    out = []

    def add(net_prefix, module, local_prefix, kind, bn):
        for n in block_names(local_prefix, kind, bn):
            out.append((f"{net_prefix}.{n}", module, n))

    if "head" in nets:
        for i in (1, 2, 3):
            add("head", nets["head"], f"down{i}", "down", i > 1)
    if "tail" in nets:
        for i in range(4, depth + 1):
            add("tail", nets["tail"], f"down{i}", "down", i < depth)
    if "decoder" in nets:
        for k in range(1, depth + 1):
            add("decoder", nets["decoder"], f"up{k}", "up", k < depth)
    if "class_head" in nets:
        for j in (0, 2, 4):
            for s in ("weight", "bias"):
                out.append((f"class_head.layer.{j}.{s}", nets["class_head"], f"layer.{j}.{s}"))
    if "style_disc" in nets:
        for i in range(4, depth + 1):
            add("style_disc", nets["style_disc"], f"down{i}", "down", i < depth)
        for j in (0, 2, 4):
            for s in ("weight", "bias"):
                out.append((f"style_disc.linear_layer.{j}.{s}", nets["style_disc"],
                            f"linear_layer.{j}.{s}"))
    if "color_disc" in nets:
        for i in range(1, 6):
            add("color_disc", nets["color_disc"], f"conv{i}", "down", i in (2, 3, 4))
    return out


def get_attr(module, path):
    for p in path.split("."):
        module = getattr(module, p)
    return module


def init_from_names(named):
    with torch.no_grad():
        for name, module, path in named:
            t = get_attr(module, path)
            lo, hi = param_range(name, list(t.shape))
            t.copy_(det_tensor(name, list(t.shape), lo, hi))


def build(depth, nf, n_classes=3, n_domains=2, which=("head", "tail", "decoder")):
    nets = {}
    if "head" in which:
        nets["head"] = HeadEncoder(depth, nf)
    if "tail" in which:
        nets["tail"] = TailEncoder(depth, nf)
    if "decoder" in which:
        nets["decoder"] = Decoder(depth, nf)
    if "class_head" in which:
        nets["class_head"] = ClassHead(width(nf, depth), n_classes)
    if "style_disc" in which:
        nets["style_disc"] = StyleDiscriminator(depth, nf, n_domains)
    if "color_disc" in which:
        nets["color_disc"] = ColorDiscriminator(nf)
    named = our_names(nets, depth)
    init_from_names(named)
    return nets, named


def generate(nets, l, adain_index):
    feats = nets["head"](l)
    feats = feats + nets["tail"](feats[-1])
    return nets["decoder"](feats, adain_index)


def set_train(nets, train):
    for n in nets.values():
        n.train(train)


# ---------------------------------------------------------------- fixture helpers
def sample(t):
    """Up to SAMPLE values of a tensor (indices floor(i * n / SAMPLE)), for large tensors."""
    flat = t.detach().reshape(-1)
    n = flat.numel()
    if n <= SAMPLE:
        return flat.clone()
    return flat[(torch.arange(SAMPLE) * n) // SAMPLE].clone()


def sums(t):
    flat = t.detach().double().reshape(-1)
    return torch.stack([flat.sum(), flat.abs().sum()])


class Out:
    def __init__(self):
        self.t = {}

    def put(self, key, t):
        assert key not in self.t, key
        self.t[key] = t.detach().contiguous().clone()

    def put_sampled(self, key, t):
        self.put(key, sample(t).float())
        self.put(key + ".sums", sums(t))

    def save(self, file, meta=None):
        meta = dict(meta or {})
        meta["torch"] = torch.__version__
        save_file(self.t, os.path.join(HERE, file), metadata=meta)
        size = os.path.getsize(os.path.join(HERE, file))
        print(f"{file}: {len(self.t)} tensors, {size / 1024:.1f} KiB")


# ---------------------------------------------------------------- the fixtures
def lab_fixture():
    from skimage import color

    out = Out()
    n = 1000
    rgb = np.floor(det_uniform("lab.rgb", 3 * n, 0.0, 256.0)).astype(np.uint8).reshape(n, 3)
    rgb[:256] = np.arange(256, dtype=np.uint8)[:, None]  # every gray level
    rgb[256:264] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255],
                    [255, 0, 255], [255, 255, 255], [0, 0, 0]]
    lab = color.rgb2lab(rgb.reshape(1, n, 3).astype(np.float64) / 255.0).reshape(n, 3)
    out.put("rgb8", torch.from_numpy(rgb.copy()))
    out.put("lab", torch.from_numpy(lab.astype(np.float32)))
    # Lab -> sRGB over the whole box, out-of-gamut colours included (skimage clips).
    lab_in = np.stack([det_uniform("lab.l", n, 0.0, 100.0), det_uniform("lab.a", n, -100.0, 100.0),
                       det_uniform("lab.b", n, -100.0, 100.0)], 1)
    rgb_out = color.lab2rgb(lab_in.astype(np.float64).reshape(1, n, 3)).reshape(n, 3)
    out.put("lab_in", torch.from_numpy(lab_in))
    out.put("rgb_out", torch.from_numpy(rgb_out.astype(np.float32)))
    out.save("lab.safetensors")


def bn_stats(out, key, named):
    for name, module, path in named:
        if name.endswith("running_mean") or name.endswith("running_var"):
            out.put(f"{key}.{name}", get_attr(module, path))


def blocks_fixture():
    out = Out()
    # Down block 4 -> 8 (LeakyReLU, conv, BN) and up block 8 -> 4 (ReLU, convT, BN).
    down = DownConv(4, 8)
    up = UpConv(8, 4)
    named = [(n, down, n[len("blk.down."):]) for n in block_names("blk.down", "down", True)]
    named += [(n, up, n[len("blk.up."):]) for n in block_names("blk.up", "up", True)]
    init_from_names(named)
    for blk, key, shape in ((down, "down", [2, 4, 8, 8]), (up, "up", [2, 8, 4, 4])):
        x = det_tensor(f"blk.{key}.x", shape, -1.0, 1.0)
        blk.eval()
        out.put(f"{key}.eval_before", blk(x.clone()))
        blk.train()
        out.put(f"{key}.train", blk(x.clone()))
        out.put(f"{key}.train2", blk(x.clone() * 0.5 + 0.25))  # a second running-stat update
        out.put(f"{key}.running_mean", blk.bn.running_mean)
        out.put(f"{key}.running_var", blk.bn.running_var)
        blk.eval()
        out.put(f"{key}.eval_after", blk(x.clone()))
    # AdaIN and content randomization (value and gradient through the statistics).
    c = det_tensor("adain.content", [2, 4, 5, 5], -1.0, 2.0)
    s = det_tensor("adain.style", [2, 4, 3, 3], -0.5, 1.5)
    out.put("adain", adain(c, s))
    x = det_tensor("cr.x", [4, 3, 6, 6], -1.0, 2.0).requires_grad_(True)
    w = det_tensor("cr.w", [4, 3, 6, 6], -1.0, 1.0)
    perm = torch.tensor([2, 0, 3, 1])
    y = content_randomize(x, perm)
    (y * w).sum().backward()
    out.put("cr", y)
    out.put("cr.grad", x.grad)
    # Adam (betas 0.5/0.999) over six steps of a quadratic with a moving target.
    p = det_tensor("adam.w", [64], -1.0, 1.0).requires_grad_(True)
    c = det_tensor("adam.c", [64], -1.0, 1.0)
    opt = torch.optim.Adam([p], lr=0.05, betas=BETAS)
    for step in range(6):
        opt.zero_grad()
        ((p - c * (1 + 0.1 * step)) ** 2 * (1 + c)).sum().backward()
        opt.step()
        out.put(f"adam.step{step + 1}", p)
    out.put("adam.exp_avg", opt.state[p]["exp_avg"])
    out.put("adam.exp_avg_sq", opt.state[p]["exp_avg_sq"])
    out.save("blocks.safetensors")


def networks_fixture():
    out = Out()
    # The generator at the reference depth 8 (256 px is the smallest size whose bottleneck is
    # 1x1; at 128 px level 8 would be empty), nf 4, batch 2, AdaIN on the z skip (index 5),
    # and at the quick depth 6 (64 px, AdaIN index 3).
    for depth, size, ai in ((8, 256, 5), (6, 64, 3)):
        key = f"gen{depth}"
        nets, named = build(depth, 4)
        l = det_tensor(f"{key}.l", [2, 1, size, size], -1.0, 1.0)
        set_train(nets, False)
        with torch.no_grad():
            y = generate(nets, l.clone(), ai)
        print(f"{key} eval: mean |ab| {y.abs().mean():.3f}, max {y.abs().max():.3f}")
        out.put_sampled(f"{key}.eval", y)
        set_train(nets, True)
        with torch.no_grad():
            y = generate(nets, l.clone(), ai)
        print(f"{key} train: mean |ab| {y.abs().mean():.3f}, max {y.abs().max():.3f}")
        out.put_sampled(f"{key}.train", y)
        bn_stats(out, key, named)
    # Discriminators and heads (depth 6, nf 4, 3 classes, 2 domains).
    nets, named = build(6, 4, which=("class_head", "style_disc", "color_disc"))
    lab = det_tensor("disc.lab", [2, 3, 32, 32], -1.0, 1.0)
    set_train(nets, False)
    with torch.no_grad():
        out.put("color_disc.eval", nets["color_disc"](lab.clone()))
        set_train(nets, True)
        out.put("color_disc.train", nets["color_disc"](lab.clone()))
        h = det_tensor("class.h", [2, 32, 2, 2], -1.0, 1.0)
        out.put("class_head", nets["class_head"](h))
        z = det_tensor("style.z", [4, 16, 8, 8], -1.0, 1.0)
        out.put("style_disc.train", nets["style_disc"](z.clone()))
        set_train(nets, False)
        out.put("style_disc.eval", nets["style_disc"](z.clone()))
    bn_stats(out, "disc", named)
    out.save("networks.safetensors")


# One `ours` iteration and one `erm` iteration: depth 6, 64 px, nf 4, batch 4 = two domains
# of two images, 3 classes; labels and permutations are fixed here and in parity.rs.
UPD_DEPTH, UPD_SIZE, UPD_NF = 6, 64, 4
CLASSES = [0, 2, 1, 1]
DOMAINS = [0, 0, 1, 1]
PERM_STYLE = [2, 0, 3, 1]
PERM_ADV = [1, 3, 0, 2]


def snapshot(named):
    return {name: get_attr(m, p).detach().clone() for name, m, p in named}


def record_changes(out, key, named, before):
    """Every tensor that changed in this step (sampled); parity.rs checks the rest did not."""
    now = snapshot(named)
    changed = [n for n in now if not torch.equal(now[n], before[n])]
    for n in changed:
        out.put_sampled(f"{key}.p.{n}", now[n])
    return now


def record_moments(out, key, opt_name, opt, named):
    params = {id(get_attr(m, p)): n for n, m, p in named}
    for p, st in opt.state.items():
        if id(p) in params:
            out.put_sampled(f"{key}.m.{opt_name}.{params[id(p)]}", st["exp_avg"])


def batch():
    l = det_tensor("batch.l", [4, 1, UPD_SIZE, UPD_SIZE], -1.0, 1.0)
    ab = det_tensor("batch.ab", [4, 2, UPD_SIZE, UPD_SIZE], -0.6, 0.6)
    return l, ab, torch.tensor(CLASSES), torch.tensor(DOMAINS)


def adam(params):
    return torch.optim.Adam(params, lr=LR, betas=BETAS)


def lsgan(scores, label):
    return ((scores - label) ** 2).mean()


def ours_fixture():
    out = Out()
    nets, named = build(UPD_DEPTH, UPD_NF, which=("head", "tail", "decoder", "class_head",
                                                   "style_disc", "color_disc"))
    head, tail, dec = nets["head"], nets["tail"], nets["decoder"]
    cls, sty, disc = nets["class_head"], nets["style_disc"], nets["color_disc"]
    set_train(nets, True)
    opts = {
        "disc": adam(disc.parameters()),
        "head": adam(head.parameters()),
        "tail": adam(tail.parameters()),
        "decoder": adam(dec.parameters()),
        "class": adam(cls.parameters()),
        "style": adam(sty.parameters()),
        "head_bn": adam([p for n, p in head.named_parameters() if "bn" in n]),
    }
    l, ab, y_cls, y_dom = batch()
    ai = UPD_DEPTH - 3
    before = snapshot(named)

    def gen():
        return generate(nets, l.clone(), ai)

    # 1. colour discriminator
    opts["disc"].zero_grad()
    fake = gen()
    loss_d = 0.5 * (lsgan(disc(torch.cat([l, fake], 1)), 0.0) + lsgan(disc(torch.cat([l, ab], 1)), 1.0))
    loss_d.backward()
    opts["disc"].step()
    out.put("s1.loss", loss_d.detach().reshape(1))
    before = record_changes(out, "s1", named, before)
    record_moments(out, "s1", "disc", opts["disc"], named)
    # 2. class head through both encoders
    for k in ("head", "tail", "class"):
        opts[k].zero_grad()
    feats = head(l.clone())
    feats = feats + tail(feats[-1])
    loss_c = F.cross_entropy(cls(feats[-1]), y_cls)
    loss_c.backward()
    for k in ("head", "tail", "class"):
        opts[k].step()
    out.put("s2.loss", loss_c.detach().reshape(1))
    before = record_changes(out, "s2", named, before)
    for k in ("head", "tail", "class"):
        record_moments(out, "s2", k, opts[k], named)
    # 3. generator: 100 L1 + LSGAN
    for k in ("head", "tail", "decoder"):
        opts[k].zero_grad()
    fake = gen()
    l1 = (fake - ab).abs().mean()
    gan = lsgan(disc(torch.cat([l, fake], 1)), 1.0)
    loss_g = 100 * l1 + gan
    loss_g.backward()
    for k in ("head", "tail", "decoder"):
        opts[k].step()
    out.put("s3.loss", torch.stack([loss_g, l1, gan]).detach())
    before = record_changes(out, "s3", named, before)
    for k in ("head", "tail", "decoder"):
        record_moments(out, "s3", k, opts[k], named)
    # 4. style discriminator on CR(z)
    opts["style"].zero_grad()
    z = head(l.clone())[-1]
    loss_s = F.cross_entropy(sty(content_randomize(z, torch.tensor(PERM_STYLE))), y_dom)
    loss_s.backward()
    opts["style"].step()
    out.put("s4.loss", loss_s.detach().reshape(1))
    before = record_changes(out, "s4", named, before)
    record_moments(out, "s4", "style", opts["style"], named)
    # 5. adversarial: -w_adv CE, head BatchNorm affine only (w_adv = 1)
    opts["head_bn"].zero_grad()
    z = head(l.clone())[-1]
    loss_a = -1.0 * F.cross_entropy(sty(content_randomize(z, torch.tensor(PERM_ADV))), y_dom)
    loss_a.backward()
    opts["head_bn"].step()
    out.put("s5.loss", loss_a.detach().reshape(1))
    record_changes(out, "s5", named, before)
    record_moments(out, "s5", "head_bn", opts["head_bn"], named)
    out.save("ours.safetensors")


def erm_fixture():
    out = Out()
    nets, named = build(UPD_DEPTH, UPD_NF, which=("head", "tail", "decoder", "color_disc"))
    head, tail, dec, disc = nets["head"], nets["tail"], nets["decoder"], nets["color_disc"]
    set_train(nets, True)
    opt_d = adam(disc.parameters())
    opt_g = adam(list(head.parameters()) + list(tail.parameters()) + list(dec.parameters()))
    l, ab, _, _ = batch()
    before = snapshot(named)
    opt_d.zero_grad()
    fake = generate(nets, l.clone(), None)  # ERM: plain U-Net, no AdaIN
    loss_d = 0.5 * (lsgan(disc(torch.cat([l, fake.detach()], 1)), 0.0)
                    + lsgan(disc(torch.cat([l, ab], 1)), 1.0))
    loss_d.backward()
    opt_d.step()
    opt_g.zero_grad()
    fake = generate(nets, l.clone(), None)
    l1 = (fake - ab).abs().mean()
    gan = lsgan(disc(torch.cat([l, fake], 1)), 1.0)
    loss_g = 100 * l1 + gan
    loss_g.backward()
    opt_g.step()
    out.put("loss", torch.stack([loss_d, loss_g, l1, gan]).detach())
    record_changes(out, "erm", named, before)
    record_moments(out, "erm", "disc", opt_d, named)
    record_moments(out, "erm", "gen", opt_g, named)
    out.save("erm.safetensors")


def reference_checkpoint_fixture():
    """F/C/D .pth files at the reference depth 8 with nf 1 (tiny), written by torch.save, with
    the unused levels and BatchNorms filled with other values so an importer that reads the
    wrong ones fails; plus the eval-mode output of that generator on a 256 px input."""
    depth, nf = 8, 1
    nets, named = build(depth, nf)
    ours = {n for n, _, _ in named}
    with torch.no_grad():
        for net_prefix in ("head", "tail", "decoder"):
            for key, t in nets[net_prefix].state_dict(keep_vars=True).items():
                if f"{net_prefix}.{key}" in ours:
                    continue
                if key.endswith("num_batches_tracked"):
                    t.fill_(123)
                else:
                    t.copy_(det_tensor(f"unused.{net_prefix}.{key}", list(t.shape), 2.0, 3.0))
    d = os.path.join(HERE, "reference_nf1")
    os.makedirs(d, exist_ok=True)
    for file, net in (("F.pth", "head"), ("C.pth", "tail"), ("D.pth", "decoder")):
        torch.save(nets[net].state_dict(), os.path.join(d, file))
    out = Out()
    set_train(nets, False)
    l = det_tensor("ref.l", [1, 1, 256, 256], -1.0, 1.0)
    with torch.no_grad():
        out.put_sampled("eval", generate(nets, l.clone(), 5))
    out.save("reference_nf1/expected.safetensors")


def check_export(d, depth, nf, adain_index):
    """`--check-export DIR DEPTH NF`: load F/C/D written by `dgcolor export-reference` into
    the reference-shaped modules with strict=True and print the eval output on the parity
    input, for comparison with `dgcolor` on the same checkpoint (see README.md)."""
    nets = {"head": HeadEncoder(depth, nf), "tail": TailEncoder(depth, nf),
            "decoder": Decoder(depth, nf)}
    for file, net in (("F.pth", "head"), ("C.pth", "tail"), ("D.pth", "decoder")):
        sd = torch.load(os.path.join(d, file), weights_only=True)
        nets[net].load_state_dict(sd, strict=True)
    set_train(nets, False)
    size = 1 << depth
    l = det_tensor("ref.l", [1, 1, size, size], -1.0, 1.0)
    with torch.no_grad():
        y = generate(nets, l, adain_index)
    return y


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--check-export":
        d, depth, nf = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        ai = None if len(sys.argv) > 5 and sys.argv[5] == "none" else depth - 3
        y = check_export(d, depth, nf, ai)
        torch.save(y, os.path.join(d, "pytorch_eval.pt"))
        print("loaded strict=True; eval output sum", float(y.double().sum()),
              "abs sum", float(y.double().abs().sum()))
        return
    torch.manual_seed(0)
    torch.set_num_threads(1)
    lab_fixture()
    blocks_fixture()
    networks_fixture()
    ours_fixture()
    erm_fixture()
    reference_checkpoint_fixture()


if __name__ == "__main__":
    main()
