//! The gradient check of the candle-core patch (`vendor/candle-core.patch`).
//!
//! `grad_dump --out FILE`: the exact bits of the gradients of every network (the U-Net with
//! and without the AdaIN skip, the colour discriminator, the class head, the style
//! discriminator, the frozen networks of the adversarial update) and of the whole training
//! state (weights, BatchNorm statistics, Adam moments, scalars) after two updates of every
//! registered algorithm, on the CPU at the smoke size with seeded inputs.
//!
//! `grad_dump --compare A B`: compares two dumps bit for bit (differences in the sign of a
//! zero are reported apart) and exits non-zero if anything else differs.
//!
//! Without `--out` or `--compare` (as `cargo test` runs it, `harness = false`, filters and
//! libtest options included): checks that this build uses the patched candle-core (the
//! probe below) and that two dumps in a row are identical.
//!
//! It is a test target rather than a binary so that `scripts/candle-patch.sh gradcheck`
//! builds it with the features `cargo test --workspace` resolves: after CI's test run the
//! patched build is already there, and only the pristine one is compiled.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::{backprop::GradStore, DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use clap::Parser;
use dgcolor_algorithms::{lookup, AlgorithmSpec, HParams, ALGORITHMS};
use dgcolor_bench::gradcheck::{self, Entry};
use dgcolor_bench::uniform;
use dgcolor_data::DomainBatch;
use dgcolor_losses as losses;
use dgcolor_models::{
    content_randomize, init_weights, prefix, ClassHead, ColorDiscriminator, Generator, Mode,
    ModelConfig, StyleDiscriminator,
};

#[derive(Parser, Debug)]
struct Args {
    /// Write the dump here.
    #[arg(long, conflicts_with = "compare")]
    out: Option<PathBuf>,
    /// Compare two dumps instead.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    compare: Option<Vec<PathBuf>>,
    /// With --compare: a difference in the sign of a zero fails too.
    #[arg(long)]
    strict: bool,
    /// With --compare: fail unless A came from a build against the patched candle-core and
    /// B from one against the pristine crate (so the check cannot pass vacuously).
    #[arg(long)]
    patched_vs_pristine: bool,
}

/// Which backward the binary was built with, from the one case where the two differ: the
/// gradient of `sum(x * -0.0)` for `x` is `-0.0` when the first gradient is stored as it is
/// (patched), `+0.0` when it is added into zeros (pristine candle-core 0.11.1).
fn probe_backward() -> Result<f32> {
    let x = Var::from_tensor(&Tensor::new(&[1.0f32], &Device::Cpu)?)?;
    let minus_zero = Tensor::new(&[-0.0f32], &Device::Cpu)?;
    let grads = x.as_tensor().mul(&minus_zero)?.sum_all()?.backward()?;
    Ok(values(grads.get(x.as_tensor()).context("probe: no gradient")?)?[0])
}

const PROBE: &str = "probe/grad_of_x_times_minus_zero";

fn build_kind(entries: &[Entry]) -> &'static str {
    match entries
        .iter()
        .find(|e| e.name == PROBE)
        .map(|e| e.bits[..].to_vec())
    {
        Some(b) if b == [0x8000_0000] => "patched",
        Some(b) if b == [0] => "pristine",
        _ => "unknown",
    }
}

/// The smoke preset's network (32 px, nf 4, depth 5), 3 classes, 2 domains.
fn config(adain: bool) -> ModelConfig {
    let mut cfg = ModelConfig::new(32, 4, 5, 3, 2);
    if !adain {
        cfg.adain_index = None;
    }
    cfg
}

fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

/// Every network of the proposed model in one VarMap, initialised from a seed.
struct Nets {
    varmap: VarMap,
    generator: Generator,
    color: ColorDiscriminator,
    class: ClassHead,
    style: StyleDiscriminator,
}

fn nets(cfg: &ModelConfig, seed: u64) -> Result<Nets> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let nets = Nets {
        generator: Generator::new(cfg, vb.clone())?,
        color: ColorDiscriminator::new(cfg, vb.pp(prefix::COLOR_DISC))?,
        class: ClassHead::new(cfg, vb.pp(prefix::CLASS_HEAD))?,
        style: StyleDiscriminator::new(cfg, vb.pp(prefix::STYLE_DISC))?,
        varmap: varmap.clone(),
    };
    init_weights(&varmap, seed)?;
    Ok(nets)
}

/// The gradient of every variable that has one (sorted by name), of the named inputs, and
/// how many tensors the store holds (so a gradient kept that was not before shows too).
fn dump_grads(
    out: &mut Vec<Entry>,
    section: &str,
    varmap: &VarMap,
    grads: &GradStore,
    inputs: &[(&str, &Var)],
) -> Result<()> {
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut with_grad = 0usize;
    for name in names {
        if let Some(g) = grads.get(data[name].as_tensor()) {
            out.push(Entry::new(format!("{section}/grad/{name}"), &values(g)?));
            with_grad += 1;
        }
    }
    for (name, var) in inputs {
        let g = grads
            .get(var.as_tensor())
            .with_context(|| format!("{section}: no gradient for input {name}"))?;
        out.push(Entry::new(
            format!("{section}/grad/input.{name}"),
            &values(g)?,
        ));
    }
    let counts = [with_grad as f32, grads.get_ids().count() as f32];
    out.push(Entry::new(format!("{section}/grad_counts"), &counts));
    Ok(())
}

/// Gradients of each network's own loss, as the updates compute them.
fn network_gradients(out: &mut Vec<Entry>) -> Result<()> {
    let dev = Device::Cpu;
    for adain in [false, true] {
        let cfg = config(adain);
        let tag = if adain { "adain" } else { "plain" };
        let n = nets(&cfg, 3)?;
        let l = Var::from_tensor(&uniform(&[4, 1, 32, 32], 10, &dev)?)?;
        let ab = (uniform(&[4, 2, 32, 32], 11, &dev)? * 0.5)?;

        // The U-Net through the frozen colour discriminator: 100 * L1 + LSGAN.
        let mode = Mode::Train { dropout_seed: 12 };
        let fake = n.generator.forward(l.as_tensor(), &mode)?;
        let scores = n.color.frozen().forward_t(l.as_tensor(), &fake, true)?;
        let (total, _, _) = losses::pix2pix_generator(&fake, &ab, &scores)?;
        let grads = total.backward()?;
        dump_grads(out, &format!("{tag}/unet"), &n.varmap, &grads, &[("l", &l)])?;

        // The colour discriminator's own loss.
        let ab_var = Var::from_tensor(&ab)?;
        let fake_scores = n.color.forward_t(l.as_tensor(), &fake.detach(), true)?;
        let real_scores = n.color.forward_t(l.as_tensor(), ab_var.as_tensor(), true)?;
        let loss = losses::pix2pix_discriminator(&fake_scores, &real_scores)?;
        let grads = loss.backward()?;
        dump_grads(
            out,
            &format!("{tag}/color_disc"),
            &n.varmap,
            &grads,
            &[("ab", &ab_var)],
        )?;

        // The class head on the bottleneck (E_h, E_t, f_c).
        let class = Tensor::new(&[0u32, 1, 2, 1], &dev)?;
        let enc = n.generator.encode(l.as_tensor(), true, &[])?;
        let logits = n.class.forward(enc.innermost()?)?;
        let grads = losses::cross_entropy(&logits, &class)?.backward()?;
        dump_grads(
            out,
            &format!("{tag}/class"),
            &n.varmap,
            &grads,
            &[("l", &l)],
        )?;

        // The style discriminator on content-randomised z (f_s only, z as an input).
        let domain = Tensor::new(&[0u32, 1, 0, 1], &dev)?;
        let perm = Tensor::new(&[2u32, 0, 3, 1], &dev)?;
        let z = n.generator.head.forward_t(l.as_tensor(), true)?;
        let z_var = Var::from_tensor(&z.detach())?;
        let logits = n
            .style
            .forward_t(&content_randomize(z_var.as_tensor(), &perm)?, true)?;
        let grads = losses::cross_entropy(&logits, &domain)?.backward()?;
        dump_grads(
            out,
            &format!("{tag}/style_disc"),
            &n.varmap,
            &grads,
            &[("z", &z_var)],
        )?;

        // The adversarial update's frozen networks: only E_h's BatchNorm affine gets one.
        let z = n
            .generator
            .head
            .with_frozen_convs()
            .forward_t(l.as_tensor(), true)?;
        let logits = n
            .style
            .frozen()
            .forward_t(&content_randomize(&z, &perm)?, true)?;
        let adv = (losses::cross_entropy(&logits, &domain)? * -1.0)?;
        let grads = adv.backward()?;
        dump_grads(out, &format!("{tag}/adversarial"), &n.varmap, &grads, &[])?;
    }
    Ok(())
}

/// Two source domains of `b` images each at 32 px.
fn batches(b: usize, seed: u64) -> Result<Vec<DomainBatch>> {
    let dev = Device::Cpu;
    (0..2)
        .map(|d| {
            let s = seed * 10 + d as u64;
            let l = uniform(&[b, 1, 32, 32], s, &dev)?;
            let ab = (uniform(&[b, 2, 32, 32], s + 5, &dev)? * 0.5)?;
            let class: Vec<u32> = (0..b as u32).map(|i| (i + d as u32) % 3).collect();
            Ok(DomainBatch {
                domain: d,
                l,
                ab,
                class: Tensor::from_vec(class, b, &dev)?,
            })
        })
        .collect()
}

/// Two updates of every registered algorithm, then its whole checkpoint: weights, running
/// statistics, Adam moments (the first moment after one step is `(1 - beta1) * gradient`),
/// step counts and scalars.
fn algorithm_updates(out: &mut Vec<Entry>) -> Result<()> {
    for entry in ALGORITHMS {
        let name = entry.name;
        let spec = AlgorithmSpec {
            model: config(entry.adain),
            hparams: HParams::defaults(lookup(name)?),
            seed: 7,
            device: Device::Cpu,
        };
        let mut alg = entry.build(&spec)?;
        for step in 0..2 {
            let losses = alg.update(&batches(3, step)?)?;
            let v: Vec<f32> = losses.values().copied().collect();
            out.push(Entry::new(format!("{name}/update{step}/losses"), &v));
        }
        let ckpt = alg.checkpoint()?;
        for (key, t) in &ckpt.tensors {
            out.push(Entry::new(format!("{name}/state/{key}"), &values(t)?));
        }
        let meta: BTreeMap<_, _> = ckpt.meta.iter().collect();
        for (key, text) in meta {
            out.push(Entry {
                name: format!("{name}/meta/{key}"),
                bits: text.bytes().map(u32::from).collect(),
            });
        }
    }
    Ok(())
}

/// Every array of the dump.
fn dump() -> Result<Vec<Entry>> {
    let mut entries = vec![Entry::new(PROBE, &[probe_backward()?])];
    network_gradients(&mut entries)?;
    algorithm_updates(&mut entries)?;
    Ok(entries)
}

/// What `cargo test` checks.
fn self_test() -> Result<()> {
    let (a, b) = (dump()?, dump()?);
    let kind = build_kind(&a);
    if kind != "patched" {
        bail!("this build uses {kind} candle-core; the workspace should use vendor/candle-core (its [patch.crates-io])");
    }
    let c = gradcheck::compare(&a, &b);
    if !c.equal_up_to_zero_signs() || c.zero_sign_values() > 0 {
        bail!("two dumps in a row differ:\n{}", c.report());
    }
    println!(
        "grad_dump: patched candle-core; {} arrays, {} values, identical run to run",
        c.entries, c.values
    );
    Ok(())
}

/// The name `cargo test` filters match against (it runs this target like any test binary).
const TEST_NAME: &str = "patched_backward_and_repeatable_dumps";

/// Invoked as a test (`cargo test [FILTER...] [-- libtest options]`): whether to run the
/// self-test. libtest's options are accepted and ignored, a filter selects it by substring
/// (`--exact`: by equality), `--list` lists it, `--ignored` skips it.
fn as_test(args: &[String]) -> bool {
    let exact = args.iter().any(|a| a == "--exact");
    if args.iter().any(|a| a == "--list") {
        println!("{TEST_NAME}: test");
        return false;
    }
    if args.iter().any(|a| a == "--ignored") {
        return false;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    filters.is_empty()
        || filters.iter().any(|f| {
            if exact {
                *f == TEST_NAME
            } else {
                TEST_NAME.contains(f.as_str())
            }
        })
}

fn main() -> Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if !argv.iter().any(|a| a == "--out" || a == "--compare") {
        if as_test(&argv) {
            dgcolor_kernels::setup_process()?;
            self_test()?;
            println!("test {TEST_NAME} ... ok");
        } else {
            println!("running 0 tests");
        }
        return Ok(());
    }
    let args = Args::parse();
    if let Some(files) = &args.compare {
        let read = |p: &PathBuf| -> Result<Vec<Entry>> {
            let mut f = std::fs::File::open(p).with_context(|| format!("{}", p.display()))?;
            gradcheck::read(&mut f).with_context(|| format!("{}", p.display()))
        };
        let (mut a, mut b) = (read(&files[0])?, read(&files[1])?);
        let kinds = (build_kind(&a), build_kind(&b));
        println!(
            "{}: built against {} candle-core; {}: {}",
            files[0].display(),
            kinds.0,
            files[1].display(),
            kinds.1
        );
        if args.patched_vs_pristine && kinds != ("patched", "pristine") {
            bail!("expected a patched build's dump first and a pristine build's second");
        }
        // The probe differs by design; everything else is compared.
        a.retain(|e| e.name != PROBE);
        b.retain(|e| e.name != PROBE);
        let c = gradcheck::compare(&a, &b);
        print!("{}", c.report());
        let neg_zeros = |d: &[Entry]| -> usize {
            d.iter()
                .map(|e| e.bits.iter().filter(|&&b| b == 0x8000_0000).count())
                .sum()
        };
        println!(
            "-0.0 values: {} in {}, {} in {}",
            neg_zeros(&a),
            files[0].display(),
            neg_zeros(&b),
            files[1].display()
        );
        if !c.equal_up_to_zero_signs() || (args.strict && c.zero_sign_values() > 0) {
            bail!("the dumps differ");
        }
        println!("equal");
        return Ok(());
    }
    let Some(path) = &args.out else {
        bail!("give --out FILE or --compare A B")
    };
    dgcolor_kernels::setup_process()?;
    let entries = dump()?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    gradcheck::write(&mut f, &entries)?;
    let values: usize = entries.iter().map(|e| e.bits.len()).sum();
    println!(
        "{}: {} arrays, {values} values, built against {} candle-core",
        path.display(),
        entries.len(),
        build_kind(&entries)
    );
    Ok(())
}
