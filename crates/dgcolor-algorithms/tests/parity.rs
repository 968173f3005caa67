//! Parity with the reference PyTorch code (Lhyejin/DG-Colorization), block by block and
//! update by update. Expected values come from `tests/parity/make_fixtures.py` (PyTorch,
//! float32, CPU); see `tests/parity/README.md` for how to regenerate them and for the measured
//! deviations. Weights and inputs are not stored in the fixtures: both sides draw them from
//! the same counter-based generator ([`det_uniform`]) keyed by our VarMap names.
//!
//! Every check prints `PARITY | check | max abs err | max rel err`; run
//! `cargo test -p dgcolor-algorithms --test parity -- --nocapture --test-threads=1` to see
//! the table. The relative error of an element is `|got - want| / max(|want|, 0.01 * max|want|)`.
//!
//! `DGCOLOR_TEST_DEVICE=cuda` runs the whole suite on CUDA device 0 (a `--features cuda`
//! build; `scripts/gpu-check.sh`), with the same fixtures and tolerances: the GPU path must
//! match PyTorch as closely as the CPU path does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use dgcolor_algorithms::{
    lookup, union, Adam, AdamConfig, Algorithm, AlgorithmSpec, Checkpoint, Erm, HParams, Ours,
};
use dgcolor_data::{lab_to_srgb, rgb8_to_lab_planes, DomainBatch};
use dgcolor_models::{
    adain, content_randomize, down_block, import_reference, read_state_dict, up_block, ClassHead,
    ColorDiscriminator, DownConfig, Generator, Mode, ModelConfig, StyleDiscriminator, UpConfig,
};

type R<T> = candle_core::Result<T>;

/// The device the networks run on: the CPU, or CUDA with `DGCOLOR_TEST_DEVICE=cuda` (one
/// device for the whole process: candle does not mix tensors of two `new_cuda` handles).
fn dev() -> Device {
    static DEV: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
    DEV.get_or_init(|| match std::env::var("DGCOLOR_TEST_DEVICE").as_deref() {
        Ok("cuda") => {
            dgcolor_kernels::cuda_device(0).expect("DGCOLOR_TEST_DEVICE=cuda needs CUDA device 0")
        }
        Ok("cpu") | Err(_) => Device::Cpu,
        Ok(other) => panic!("DGCOLOR_TEST_DEVICE=`{other}`: expected cpu or cuda"),
    })
    .clone()
}

// ------------------------------------------------------------------ tolerances
/// Forward values of a single block or op (one or two reductions deep).
const TOL_OP: Tol = Tol::new(1e-5, 1e-4);
/// Whole networks: 8 levels of 4x4 convolutions whose summation order differs from PyTorch's.
const TOL_NET: Tol = Tol::new(1e-4, 1e-3);
/// Parameters after an Adam step (lr 1e-3: an error of 1e-6 is 0.1 % of one step).
const TOL_PARAM: Tol = Tol::new(2e-6, 1e-4);
/// Adam's first moment after a step, i.e. half the gradient: the direct gradient check.
const TOL_GRAD: Tol = Tol::new(1e-6, 2e-3);
/// Loss values.
const TOL_LOSS: Tol = Tol::new(1e-6, 1e-5);

#[derive(Clone, Copy)]
struct Tol {
    abs: f64,
    rel: f64,
}

impl Tol {
    const fn new(abs: f64, rel: f64) -> Self {
        Self { abs, rel }
    }
}

/// Asserts `|got - want| <= abs + rel * |want|` elementwise; prints and returns the
/// maximum absolute and relative errors.
fn check(name: &str, got: &[f32], want: &[f32], tol: Tol) -> (f64, f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let scale = want.iter().fold(0f64, |m, &w| m.max((w as f64).abs()));
    let (mut max_abs, mut max_rel) = (0f64, 0f64);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (g as f64, w as f64);
        let err = (g - w).abs();
        assert!(
            err <= tol.abs + tol.rel * w.abs(),
            "{name}[{i}]: got {g}, want {w} (err {err:.3e}, tolerance {} + {} * |want|)",
            tol.abs,
            tol.rel
        );
        max_abs = max_abs.max(err);
        max_rel = max_rel.max(err / w.abs().max(0.01 * scale).max(1e-30));
    }
    println!("PARITY | {name} | {max_abs:.2e} | {max_rel:.2e}");
    (max_abs, max_rel)
}

fn values(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .expect("tensor values")
}

// ------------------------------------------------------------------ fixtures
/// `DGCOLOR_PARITY_DIR` when set (a test binary carried to another machine, as
/// `scripts/gpu-check.sh` does), else this crate's `tests/parity`.
fn fixture_dir() -> PathBuf {
    match std::env::var_os("DGCOLOR_PARITY_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/parity"),
    }
}

struct Fixture {
    name: &'static str,
    t: HashMap<String, Tensor>,
}

impl Fixture {
    fn load(name: &'static str) -> Self {
        let path = fixture_dir().join(name);
        let t = candle_core::safetensors::load(&path, &Device::Cpu)
            .unwrap_or_else(|e| panic!("{}: {e} (see tests/parity/README.md)", path.display()));
        Self { name, t }
    }

    fn get(&self, key: &str) -> Vec<f32> {
        values(
            self.t
                .get(key)
                .unwrap_or_else(|| panic!("{}: no `{key}`", self.name)),
        )
    }

    fn has(&self, key: &str) -> bool {
        self.t.contains_key(key)
    }

    fn keys_with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.t
            .keys()
            .filter(move |k| k.starts_with(prefix) && !k.ends_with(".sums"))
            .map(|k| k.as_str())
    }

    /// Compares a full tensor.
    fn expect(&self, key: &str, got: &Tensor, tol: Tol) -> (f64, f64) {
        check(key, &values(got), &self.get(key), tol)
    }

    /// Compares a tensor stored as [`sample`] plus its sum and absolute sum.
    fn expect_sampled(&self, key: &str, got: &[f32], tol: Tol) -> (f64, f64) {
        let errs = check(key, &sample(got), &self.get(key), tol);
        let sums: Vec<f64> = values(&self.t[&format!("{key}.sums")])
            .into_iter()
            .map(f64::from)
            .collect();
        let (s, a) = (
            got.iter().map(|&v| v as f64).sum::<f64>(),
            got.iter().map(|&v| (v as f64).abs()).sum::<f64>(),
        );
        // Sums over all elements: errors of every element, relative to the absolute sum.
        let bound = tol.abs * got.len() as f64 + tol.rel * sums[1];
        assert!(
            (s - sums[0]).abs() <= bound && (a - sums[1]).abs() <= bound,
            "{key}: sums ({s}, {a}) vs ({}, {}), bound {bound}",
            sums[0],
            sums[1]
        );
        errs
    }
}

/// The values the fixtures keep of a large tensor: up to 128 at indices floor(i * n / 128).
fn sample(v: &[f32]) -> Vec<f32> {
    const K: usize = 128;
    if v.len() <= K {
        return v.to_vec();
    }
    (0..K).map(|i| v[i * v.len() / K]).collect()
}

// ------------------------------------------------------------------ deterministic values
fn fnv1a32(s: &str) -> u32 {
    s.bytes()
        .fold(0x811C_9DC5, |h, b| (h ^ b as u32).wrapping_mul(0x0100_0193))
}

/// `n` values in [lo, hi): the lowbias32 hash of (fnv1a(name), index), mirrored bit for bit
/// by `det_uniform` in make_fixtures.py.
fn det_uniform(name: &str, n: usize, lo: f64, hi: f64) -> Vec<f32> {
    let seed = fnv1a32(name).wrapping_mul(0x9E37_79B9);
    (0..n)
        .map(|k| {
            let mut h = (k as u32).wrapping_add(seed);
            h ^= h >> 16;
            h = h.wrapping_mul(0x7FEB_352D);
            h ^= h >> 15;
            h = h.wrapping_mul(0x846C_A68B);
            h ^= h >> 16;
            let u = (h >> 8) as f32 / 16_777_216.0;
            lo as f32 + (hi - lo) as f32 * u
        })
        .collect()
}

fn det_tensor(name: &str, shape: &[usize], lo: f64, hi: f64) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(det_uniform(name, n, lo, hi), shape, &dev()).unwrap()
}

/// The range of each fixture parameter, as `param_range` in make_fixtures.py.
fn param_range(name: &str, shape: &[usize]) -> (f64, f64) {
    if name.ends_with("upconv.weight") {
        let a = (6.0 / (shape[0] * 4) as f64).sqrt();
        (-a, a)
    } else if name.ends_with("conv.weight") {
        let a = (6.0 / (shape[1] * shape[2] * shape[3]) as f64).sqrt();
        (-a, a)
    } else if name.ends_with("conv.bias")
        || name.ends_with("bn.bias")
        || name.ends_with("running_mean")
    {
        (-0.1, 0.1)
    } else if name.ends_with("bn.weight") || name.ends_with("running_var") {
        (0.8, 1.2)
    } else if shape.len() == 1 {
        (-0.1, 0.1)
    } else {
        let a = 1.0 / (shape[1] as f64).sqrt();
        (-a, a)
    }
}

fn init_varmap(varmap: &VarMap) {
    for (name, var) in varmap.data().lock().unwrap().iter() {
        let (lo, hi) = param_range(name, var.dims());
        var.set(&det_tensor(name, var.dims(), lo, hi)).unwrap();
    }
}

fn snapshot(varmap: &VarMap) -> BTreeMap<String, Vec<f32>> {
    varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(n, v)| (n.clone(), values(v.as_tensor())))
        .collect()
}

fn config(size: usize, depth: usize, adain_index: Option<usize>) -> ModelConfig {
    ModelConfig {
        adain_index,
        dropout: 0.0,
        ..ModelConfig::new(size, 4, depth, 3, 2)
    }
}

fn train() -> Mode {
    Mode::Train { dropout_seed: 0 }
}

// ------------------------------------------------------------------ checks
#[test]
fn lab_conversion_matches_skimage() {
    let f = Fixture::load("lab.safetensors");
    let rgb: Vec<u8> = f.t["rgb8"].flatten_all().unwrap().to_vec1::<u8>().unwrap();
    let n = rgb.len() / 3;
    let (l, ab) = rgb8_to_lab_planes(&rgb);
    let want = f.get("lab");
    for (c, got) in [&l[..], &ab[..n], &ab[n..]].into_iter().enumerate() {
        let want_c: Vec<f32> = (0..n).map(|i| want[3 * i + c]).collect();
        check(
            &format!("lab.rgb2lab[{}]", ["L", "a", "b"][c]),
            got,
            &want_c,
            Tol::new(1e-4, 0.0),
        );
    }
    let lab_in = f.get("lab_in");
    let got: Vec<f32> = lab_in
        .chunks(3)
        .flat_map(|p| lab_to_srgb([p[0], p[1], p[2]]))
        .collect();
    check("lab.lab2rgb", &got, &f.get("rgb_out"), Tol::new(1e-6, 0.0));
}

#[test]
fn blocks_adain_cr_and_adam() {
    let f = Fixture::load("blocks.safetensors");
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev());
    let down = down_block(4, 8, DownConfig::default(), vb.pp("blk.down")).unwrap();
    let up_cfg = UpConfig {
        batch_norm: true,
        dropout: 0.0,
    };
    let up = up_block(8, 4, up_cfg, 0, vb.pp("blk.up")).unwrap();
    init_varmap(&varmap);
    type Fwd<'a> = Box<dyn Fn(&Tensor, bool) -> R<Tensor> + 'a>;
    let blocks: [(&str, Fwd, [usize; 4]); 2] = [
        ("down", Box::new(|x, t| down.forward_t(x, t)), [2, 4, 8, 8]),
        (
            "up",
            Box::new(|x, t| {
                up.forward(
                    x,
                    if t {
                        &Mode::Train { dropout_seed: 0 }
                    } else {
                        &Mode::Eval
                    },
                )
            }),
            [2, 8, 4, 4],
        ),
    ];
    for (key, fwd, shape) in &blocks {
        let x = det_tensor(&format!("blk.{key}.x"), shape, -1.0, 1.0);
        f.expect(
            &format!("{key}.eval_before"),
            &fwd(&x, false).unwrap(),
            TOL_OP,
        );
        f.expect(&format!("{key}.train"), &fwd(&x, true).unwrap(), TOL_OP);
        let x2 = ((&x * 0.5).unwrap() + 0.25).unwrap();
        f.expect(&format!("{key}.train2"), &fwd(&x2, true).unwrap(), TOL_OP);
        let data = varmap.data().lock().unwrap();
        for stat in ["running_mean", "running_var"] {
            let var = &data[&format!("blk.{key}.bn.{stat}")];
            f.expect(&format!("{key}.{stat}"), var.as_tensor(), TOL_OP);
        }
        drop(data);
        f.expect(
            &format!("{key}.eval_after"),
            &fwd(&x, false).unwrap(),
            TOL_OP,
        );
    }

    let c = det_tensor("adain.content", &[2, 4, 5, 5], -1.0, 2.0);
    let s = det_tensor("adain.style", &[2, 4, 3, 3], -0.5, 1.5);
    f.expect("adain", &adain(&c, &s).unwrap(), TOL_OP);

    let x = Var::from_tensor(&det_tensor("cr.x", &[4, 3, 6, 6], -1.0, 2.0)).unwrap();
    let w = det_tensor("cr.w", &[4, 3, 6, 6], -1.0, 1.0);
    let perm = Tensor::new(&[2u32, 0, 3, 1], &dev()).unwrap();
    let y = content_randomize(x.as_tensor(), &perm).unwrap();
    f.expect("cr", &y, TOL_OP);
    let grads = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
    f.expect("cr.grad", grads.get(x.as_tensor()).unwrap(), TOL_OP);

    let p = Var::from_tensor(&det_tensor("adam.w", &[64], -1.0, 1.0)).unwrap();
    let c = det_tensor("adam.c", &[64], -1.0, 1.0);
    let cfg = AdamConfig {
        lr: 0.05,
        ..AdamConfig::reference(0.05)
    };
    let mut adam = Adam::new(vec![("p".into(), p.clone())], cfg).unwrap();
    let weight = (&c + 1.0).unwrap();
    for step in 0..6 {
        let target = (&c * (1.0 + 0.1 * step as f64)).unwrap();
        let loss = (p.as_tensor() - &target)
            .and_then(|d| d.sqr())
            .and_then(|d| d * &weight)
            .and_then(|d| d.sum_all())
            .unwrap();
        adam.step(&loss.backward().unwrap()).unwrap();
        f.expect(&format!("adam.step{}", step + 1), p.as_tensor(), TOL_OP);
    }
    let mut state = BTreeMap::new();
    adam.state("adam", &mut state);
    f.expect("adam.exp_avg", &state["adam.m.p"], TOL_OP);
    f.expect("adam.exp_avg_sq", &state["adam.v.p"], TOL_OP);
}

#[test]
fn generators_at_depth_8_and_6() {
    let f = Fixture::load("networks.safetensors");
    for (depth, size, ai) in [(8, 256, 5), (6, 64, 3)] {
        let key = format!("gen{depth}");
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev());
        let g = Generator::new(&config(size, depth, Some(ai)), vb).unwrap();
        init_varmap(&varmap);
        let l = det_tensor(&format!("{key}.l"), &[2, 1, size, size], -1.0, 1.0);
        let eval = g.forward(&l, &Mode::Eval).unwrap();
        f.expect_sampled(&format!("{key}.eval"), &values(&eval), TOL_NET);
        let tr = g.forward(&l, &train()).unwrap();
        f.expect_sampled(&format!("{key}.train"), &values(&tr), TOL_NET);
        for (name, v) in snapshot(&varmap) {
            if name.contains("running") {
                check(
                    &format!("{key}.{name}"),
                    &v,
                    &f.get(&format!("{key}.{name}")),
                    TOL_NET,
                );
            }
        }
    }
}

#[test]
fn discriminators_and_heads() {
    let f = Fixture::load("networks.safetensors");
    let cfg = config(64, 6, Some(3));
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev());
    let color = ColorDiscriminator::new(&cfg, vb.pp("color_disc")).unwrap();
    let class = ClassHead::new(&cfg, vb.pp("class_head")).unwrap();
    let style = StyleDiscriminator::new(&cfg, vb.pp("style_disc")).unwrap();
    init_varmap(&varmap);
    let lab = det_tensor("disc.lab", &[2, 3, 32, 32], -1.0, 1.0);
    let (l, ab) = (lab.narrow(1, 0, 1).unwrap(), lab.narrow(1, 1, 2).unwrap());
    f.expect(
        "color_disc.eval",
        &color.forward_t(&l, &ab, false).unwrap(),
        TOL_NET,
    );
    f.expect(
        "color_disc.train",
        &color.forward_t(&l, &ab, true).unwrap(),
        TOL_NET,
    );
    let h = det_tensor("class.h", &[2, 32, 2, 2], -1.0, 1.0);
    f.expect("class_head", &class.forward(&h).unwrap(), TOL_NET);
    let z = det_tensor("style.z", &[4, 16, 8, 8], -1.0, 1.0);
    f.expect(
        "style_disc.train",
        &style.forward_t(&z, true).unwrap(),
        TOL_NET,
    );
    f.expect(
        "style_disc.eval",
        &style.forward_t(&z, false).unwrap(),
        TOL_NET,
    );
    for (name, v) in snapshot(&varmap) {
        if name.contains("running") {
            check(
                &format!("disc.{name}"),
                &v,
                &f.get(&format!("disc.{name}")),
                TOL_NET,
            );
        }
    }
}

// ------------------------------------------------------------------ updates
const CLASSES: [u32; 4] = [0, 2, 1, 1];
const PERM_STYLE: [u32; 4] = [2, 0, 3, 1];
const PERM_ADV: [u32; 4] = [1, 3, 0, 2];

/// The fixture batch as two per-domain batches of two images (domains 0, 0, 1, 1).
fn batches() -> Vec<DomainBatch> {
    let l = det_tensor("batch.l", &[4, 1, 64, 64], -1.0, 1.0);
    let ab = det_tensor("batch.ab", &[4, 2, 64, 64], -0.6, 0.6);
    (0..2)
        .map(|d| DomainBatch {
            domain: d,
            l: l.narrow(0, 2 * d, 2).unwrap(),
            ab: ab.narrow(0, 2 * d, 2).unwrap(),
            class: Tensor::new(&CLASSES[2 * d..2 * d + 2], &dev()).unwrap(),
        })
        .collect()
}

fn spec(algorithm: &str, adain_index: Option<usize>) -> AlgorithmSpec {
    AlgorithmSpec {
        model: config(64, 6, adain_index),
        hparams: HParams::defaults(lookup(algorithm).unwrap()),
        seed: 0,
        device: dev(),
    }
}

/// A convolution bias directly followed by a BatchNorm in training mode has a gradient that
/// is zero in exact arithmetic (the BatchNorm subtracts the batch mean); what both sides
/// compute is round-off, ~1e-10, which Adam's `m / (sqrt(v) + eps)` with eps 1e-8 turns into
/// a step of arbitrary sign and size of order lr. These biases cannot agree; they are only
/// checked to stay within a few such steps (4 lr) of PyTorch's.
const TOL_NOISE_BIAS: Tol = Tol::new(4e-3, 0.0);
/// Their gradients are round-off of the loss's scale (up to ~1e-5 for `100 * L1`).
const TOL_NOISE_GRAD: Tol = Tol::new(2e-5, 0.0);
/// The running mean of such a BatchNorm then differs by momentum (0.1) times the bias
/// difference, accumulated over the forwards since the bias moved.
const TOL_NOISE_RUNNING_MEAN: Tol = Tol::new(1.5e-3, 0.0);

/// Blocks whose convolution bias differs between two snapshots.
fn moved_biases(
    a: &BTreeMap<String, Vec<f32>>,
    b: &BTreeMap<String, Vec<f32>>,
) -> BTreeSet<String> {
    a.iter()
        .filter(|(n, v)| n.ends_with("conv.bias") && b[*n] != **v)
        .filter_map(|(n, _)| n.rsplit_once('.').and_then(|(p, _)| p.rsplit_once('.')))
        .map(|(block, _)| block.to_string())
        .collect()
}

/// Which tolerance a variable gets after an update; `moved` are the blocks whose bias took a
/// (round-off driven) Adam step before one of this update's forwards.
fn param_class(
    name: &str,
    before: &BTreeMap<String, Vec<f32>>,
    moved: &BTreeSet<String>,
) -> (&'static str, Tol) {
    let block = name
        .rsplit_once(".conv.")
        .or_else(|| name.rsplit_once(".upconv."))
        .or_else(|| name.rsplit_once(".bn."))
        .map(|(b, _)| b)
        .unwrap_or("");
    let has_bn = before.contains_key(&format!("{block}.bn.weight"));
    if has_bn && (name.ends_with("conv.bias")) {
        return ("bias before BN (round-off gradient)", TOL_NOISE_BIAS);
    }
    if name.ends_with("running_mean") {
        return if moved.contains(block) {
            (
                "running mean after such a bias moved",
                TOL_NOISE_RUNNING_MEAN,
            )
        } else {
            ("running statistics", TOL_NET)
        };
    }
    if name.ends_with("running_var") {
        return ("running statistics", TOL_NET);
    }
    ("parameters", TOL_PARAM)
}

/// After an update: every variable PyTorch changed matches its fixture, every other one is
/// bit-identical to `before`, and the moments of the optimizers that stepped match.
fn check_step(
    f: &Fixture,
    step: &str,
    varmap: &VarMap,
    ckpt: &Checkpoint,
    before: &BTreeMap<String, Vec<f32>>,
    moved: &BTreeSet<String>,
) -> BTreeMap<String, Vec<f32>> {
    let now = snapshot(varmap);
    let prefix = format!("{step}.p.");
    for key in f.keys_with_prefix(&prefix) {
        let name = &key[prefix.len()..];
        assert!(
            now.contains_key(name),
            "{key}: we have no variable `{name}`"
        );
    }
    let mut worst: BTreeMap<&str, (usize, f64, f64)> = BTreeMap::new();
    for (name, v) in &now {
        let key = format!("{prefix}{name}");
        if f.has(&key) {
            let (class, tol) = param_class(name, before, moved);
            let (a, r) = f.expect_sampled(&key, v, tol);
            let w = worst.entry(class).or_default();
            *w = (w.0 + 1, w.1.max(a), w.2.max(r));
        } else {
            assert!(
                v == &before[name],
                "{step}: `{name}` changed but PyTorch's did not"
            );
        }
    }
    let prefix = format!("{step}.m.");
    for key in f.keys_with_prefix(&prefix) {
        let rest = &key[prefix.len()..];
        let (opt, var) = rest.split_once('.').unwrap();
        let ours = ckpt
            .tensors
            .get(&format!("optim/{opt}.m.{var}"))
            .unwrap_or_else(|| panic!("{key}: optimizer `{opt}` has no moment for `{var}`"));
        let (class, tol) = if param_class(var, before, moved).1.abs == TOL_NOISE_BIAS.abs {
            (
                "Adam first moments of those biases (round-off)",
                TOL_NOISE_GRAD,
            )
        } else {
            ("Adam first moments (gradients / 2)", TOL_GRAD)
        };
        let (a, r) = f.expect_sampled(key, &values(ours), tol);
        let w = worst.entry(class).or_default();
        *w = (w.0 + 1, w.1.max(a), w.2.max(r));
    }
    for (class, (n, a, r)) in worst {
        println!("PARITY | {step}: {class} ({n} tensors) | {a:.2e} | {r:.2e}");
    }
    now
}

#[test]
fn ours_iteration_update_by_update() {
    let f = Fixture::load("ours.safetensors");
    let mut ours = Ours::new(&spec("ours", Some(3))).unwrap();
    init_varmap(ours.varmap());
    let u = union(&batches()).unwrap();
    let dev = dev();
    let initial = snapshot(ours.varmap());
    let mut before = initial.clone();

    let d = ours.discriminator_update(&u).unwrap();
    check("s1.loss (D)", &[d], &f.get("s1.loss"), TOL_LOSS);
    before = check_step(
        &f,
        "s1",
        ours.varmap(),
        &ours.checkpoint().unwrap(),
        &before,
        &moved_biases(&before, &initial),
    );

    let c = ours.class_update(&u).unwrap();
    check("s2.loss (class)", &[c], &f.get("s2.loss"), TOL_LOSS);
    before = check_step(
        &f,
        "s2",
        ours.varmap(),
        &ours.checkpoint().unwrap(),
        &before,
        &moved_biases(&before, &initial),
    );

    let g = ours.generator_update(&u).unwrap();
    check(
        "s3.loss (G, L1, GAN)",
        &[g["g"], g["g_l1"], g["g_gan"]],
        &f.get("s3.loss"),
        TOL_LOSS,
    );
    before = check_step(
        &f,
        "s3",
        ours.varmap(),
        &ours.checkpoint().unwrap(),
        &before,
        &moved_biases(&before, &initial),
    );

    let perm = Tensor::new(&PERM_STYLE, &dev).unwrap();
    let s = ours.style_update_with_perm(&u, &perm).unwrap();
    check("s4.loss (style)", &[s], &f.get("s4.loss"), TOL_LOSS);
    before = check_step(
        &f,
        "s4",
        ours.varmap(),
        &ours.checkpoint().unwrap(),
        &before,
        &moved_biases(&before, &initial),
    );

    let perm = Tensor::new(&PERM_ADV, &dev).unwrap();
    let a = ours.adversarial_update_with_perm(&u, &perm).unwrap();
    check("s5.loss (adv)", &[a], &f.get("s5.loss"), TOL_LOSS);
    check_step(
        &f,
        "s5",
        ours.varmap(),
        &ours.checkpoint().unwrap(),
        &before,
        &moved_biases(&before, &initial),
    );
}

#[test]
fn erm_iteration() {
    let f = Fixture::load("erm.safetensors");
    let mut erm = Erm::new(&spec("erm", None)).unwrap();
    init_varmap(erm.varmap());
    let before = snapshot(erm.varmap());
    let losses = erm.update(&batches()).unwrap();
    // D's biases move in the discriminator step, before D runs again in the generator step.
    let moved: BTreeSet<String> = moved_biases(&snapshot(erm.varmap()), &before)
        .into_iter()
        .filter(|b| b.starts_with("color_disc."))
        .collect();
    check(
        "erm.loss (D, G, L1, GAN)",
        &[losses["d"], losses["g"], losses["g_l1"], losses["g_gan"]],
        &f.get("loss"),
        TOL_LOSS,
    );
    check_step(
        &f,
        "erm",
        erm.varmap(),
        &erm.checkpoint().unwrap(),
        &before,
        &moved,
    );
}

// ------------------------------------------------------------------ reference checkpoints
#[test]
fn imported_reference_checkpoint_matches_pytorch_eval() {
    let dir = fixture_dir().join("reference_nf1");
    let f = Fixture::load("reference_nf1/expected.safetensors");
    let read = |n: &str| read_state_dict(&dir.join(n)).unwrap();
    let (nf, depth, vars) =
        import_reference(&read("F.pth"), &read("C.pth"), &read("D.pth")).unwrap();
    assert_eq!((nf, depth), (1, 8));
    let cfg = ModelConfig::new(256, nf, depth, 1, 1);
    assert_eq!(cfg.adain_index, Some(5));
    let varmap = VarMap::new();
    let g = Generator::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, &dev())).unwrap();
    let ckpt = Checkpoint {
        tensors: vars,
        ..Default::default()
    };
    ckpt.restore_varmap(&varmap).unwrap();
    let l = det_tensor("ref.l", &[1, 1, 256, 256], -1.0, 1.0);
    let y = g.forward(&l, &Mode::Eval).unwrap();
    f.expect_sampled("eval", &values(&y), TOL_NET);
}
