//! The Rust half of the side-by-side benchmark. One invocation measures one (config, mode)
//! and prints one JSON line, so each measurement's peak memory is its own; `bench/compare.py`
//! runs this and `bench/torch_reference.py` cell by cell and prints the table.
//!
//! Modes: `gstep` (generator train step: forward in train mode, 100 * L1, backward, Adam),
//! `erm` (one pix2pix iteration: D step + G step), `ours` (one iteration of the proposed
//! model: five updates), `infer` (eval-mode forward through the BatchNorm-folded, graph-free
//! `InferenceGenerator`), `infer_graph` (the same through `Generator::forward(Eval)`),
//! `data` (decode + resize + Lab of image files, as the training loader does it: `load_lab_planes`), `gemm` (peak f32 GEMM GFLOP/s).
//!
//! `--device cuda` runs the model modes on GPU 0 (a `--features cuda` build), synchronising
//! after every timed call; `--precision tf32|bf16` sets the convolutions' GEMM precision.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use clap::Parser;
use dgcolor_algorithms::{
    params, union, Adam, AdamConfig, Algorithm, AlgorithmSpec, Erm, HParams, Ours, Union,
};
use dgcolor_bench::{domain_batches, generator_conv_flops, uniform, BenchConfig};
use dgcolor_data::DomainBatch;
use dgcolor_data::{load_lab_planes, Preprocess, ResizeFilter};
use dgcolor_kernels::Precision;
use dgcolor_models::{init_weights, prefix, Generator, InferenceGenerator, Mode};
use rayon::prelude::*;

#[derive(Parser, Debug)]
struct Args {
    /// s64-nf32-d6-b16, s256-nf64-d8-b4 or quick.
    #[arg(long, default_value = "quick")]
    config: String,
    /// gstep, erm, ours, infer, infer_graph, data or gemm.
    #[arg(long, default_value = "gstep")]
    mode: String,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Image folder for `data` (searched recursively).
    #[arg(long, default_value = "fixtures/pacs_mini")]
    images: PathBuf,
    /// Side the `data` mode resizes to.
    #[arg(long, default_value_t = 256)]
    data_size: usize,
    /// cpu or cuda (device 0).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// f32, tf32 or bf16: the convolutions' GEMM precision.
    #[arg(long, default_value = "f32")]
    precision: String,
    /// `ours` only: also time each of the five updates on its own (median seconds each).
    #[arg(long)]
    breakdown: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Seconds per call of `f`: `warmup` untimed calls, then the median of `iters` timed ones,
/// each ended by a device synchronisation (GPU work is asynchronous).
fn time(
    device: &Device,
    warmup: usize,
    iters: usize,
    mut f: impl FnMut() -> Result<()>,
) -> Result<(f64, Vec<f64>)> {
    for _ in 0..warmup {
        f()?;
    }
    device.synchronize()?;
    let times = (0..iters.max(1))
        .map(|_| {
            let t = Instant::now();
            f()?;
            device.synchronize()?;
            Ok(t.elapsed().as_secs_f64())
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((median(times.clone()), times))
}

/// Peak resident memory of this process (VmHWM), MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Median seconds of each of `ours`' five updates, each timed on its own in every iteration
/// (the same names as `torch_reference.py --breakdown`). The updates are called directly, so
/// the step counter (dropout and permutation draws) does not advance; timing is unaffected.
fn ours_breakdown(
    alg: &mut Ours,
    batches: &[DomainBatch],
    device: &Device,
    args: &Args,
) -> Result<serde_json::Value> {
    type Update = fn(&mut Ours, &Union) -> candle_core::Result<()>;
    let parts: [(&str, Update); 5] = [
        ("disc", |a, u| a.discriminator_update(u).map(drop)),
        ("class", |a, u| a.class_update(u).map(drop)),
        ("generator", |a, u| a.generator_update(u).map(drop)),
        ("style", |a, u| a.style_update(u).map(drop)),
        ("adversarial", |a, u| a.adversarial_update(u).map(drop)),
    ];
    let u = union(batches)?;
    let mut out = serde_json::Map::new();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); parts.len()];
    for it in 0..args.warmup + args.iters.max(1) {
        for ((_, update), times) in parts.iter().zip(&mut times) {
            device.synchronize()?;
            let t = Instant::now();
            update(alg, &u)?;
            device.synchronize()?;
            if it >= args.warmup {
                times.push(t.elapsed().as_secs_f64());
            }
        }
    }
    for ((name, _), times) in parts.iter().zip(times) {
        out.insert(name.to_string(), median(times).into());
    }
    Ok(out.into())
}

fn spec(cfg: &BenchConfig, algorithm: &str, device: &Device) -> AlgorithmSpec {
    let mut model = cfg.model();
    model.dropout = 0.5;
    AlgorithmSpec {
        model,
        hparams: HParams::defaults(
            dgcolor_algorithms::lookup(algorithm).expect("a registered algorithm"),
        ),
        seed: 0,
        device: device.clone(),
    }
}

fn collect_images(dir: &std::path::Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_images(&p, out)?;
        } else if matches!(
            p.extension()
                .and_then(|e| e.to_str())
                .map(|e| e.to_ascii_lowercase())
                .as_deref(),
            Some("jpg" | "jpeg" | "png")
        ) {
            out.push(p);
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let settings = dgcolor_kernels::setup_process()?;
    let args = Args::parse();
    let threads = dgcolor_kernels::num_threads();
    let device = match args.device.as_str() {
        "cpu" => Device::Cpu,
        "cuda" => dgcolor_kernels::cuda_device(0)?,
        other => bail!("--device `{other}`: expected cpu or cuda"),
    };
    let precision: Precision = args.precision.parse().map_err(anyhow::Error::msg)?;
    dgcolor_kernels::set_precision(precision);
    let mut out = serde_json::json!({
        "framework": "candle",
        "mode": args.mode,
        "threads": threads,
        "device": args.device,
        "precision": precision.as_str(),
        // The DGCOLOR_* switches in force: they choose the kernels, hence the summation order.
        "settings": settings,
    });
    match args.mode.as_str() {
        "gemm" => {
            let n = 2048;
            let a = vec![0.5f32; n * n];
            let b = vec![0.25f32; n * n];
            let mut c = vec![0.0f32; n * n];
            let (t, _) = time(&device, 1, args.iters, || {
                dgcolor_kernels::matmul_f32(&a, &b, &mut c, n, n, n);
                Ok(())
            })?;
            out["gflops"] = (2.0 * (n * n * n) as f64 / t / 1e9).into();
            out["n"] = n.into();
        }
        "data" => {
            let mut files = Vec::new();
            collect_images(&args.images, &mut files)?;
            if files.is_empty() {
                bail!("no images under {}", args.images.display());
            }
            let pre = Preprocess {
                size: args.data_size,
                filter: ResizeFilter::Nearest,
            };
            // The same file list the torch script reads: every image, repeated to >= 200.
            let reps = 200usize.div_ceil(files.len());
            let list: Vec<PathBuf> = (0..reps).flat_map(|_| files.iter().cloned()).collect();
            let (t_par, _) = time(&device, 1, args.iters, || {
                list.par_iter()
                    .map(|p| load_lab_planes(p, &pre).map(|_| ()))
                    .collect::<std::result::Result<Vec<()>, _>>()?;
                Ok(())
            })?;
            let (t_seq, _) = time(&device, 1, args.iters, || {
                for p in &list {
                    load_lab_planes(p, &pre)?;
                }
                Ok(())
            })?;
            out["images"] = list.len().into();
            out["images_per_sec"] = (list.len() as f64 / t_par).into();
            out["images_per_sec_one_thread"] = (list.len() as f64 / t_seq).into();
            out["size"] = args.data_size.into();
        }
        mode => {
            let cfg = BenchConfig::get(&args.config)
                .with_context(|| format!("unknown config `{}`", args.config))?;
            out["config"] = cfg.name.into();
            out["batch"] = cfg.batch.into();
            let batches = domain_batches(&cfg, 1, &device)?;
            let (t, times) = match mode {
                "erm" => {
                    let mut alg = Erm::new(&spec(&cfg, "erm", &device))?;
                    time(&device, args.warmup, args.iters, || {
                        alg.update(&batches)?;
                        Ok(())
                    })?
                }
                "ours" => {
                    let mut alg = Ours::new(&spec(&cfg, "ours", &device))?;
                    if args.breakdown {
                        out["breakdown"] = ours_breakdown(&mut alg, &batches, &device, &args)?;
                    }
                    time(&device, args.warmup, args.iters, || {
                        alg.update(&batches)?;
                        Ok(())
                    })?
                }
                "gstep" | "infer" | "infer_graph" => {
                    let model = cfg.model();
                    let varmap = VarMap::new();
                    let g = Generator::new(
                        &model,
                        VarBuilder::from_varmap(&varmap, DType::F32, &device),
                    )?;
                    init_weights(&varmap, 0)?;
                    let l = uniform(&[cfg.batch, 1, cfg.size, cfg.size], 3, &device)?;
                    let ab = (uniform(&[cfg.batch, 2, cfg.size, cfg.size], 4, &device)? * 0.5)?;
                    match mode {
                        "gstep" => {
                            // The benchmark's "train step": G forward (train mode), 100 * L1,
                            // backward, Adam over the generator.
                            let vars = [prefix::HEAD, prefix::TAIL, prefix::DECODER]
                                .iter()
                                .flat_map(|p| params::trainable(&varmap, p))
                                .collect();
                            let mut opt = Adam::new(vars, AdamConfig::reference(1e-3))?;
                            let mut step = 0u64;
                            out["conv_gflop_per_iter"] =
                                (3.0 * generator_conv_flops(&cfg) / 1e9).into();
                            time(&device, args.warmup, args.iters, || {
                                step += 1;
                                let fake = g.forward(&l, &Mode::Train { dropout_seed: step })?;
                                let loss = (dgcolor_losses::l1(&fake, &ab)? * 100.0)?;
                                opt.step(&loss.backward()?)?;
                                Ok(())
                            })?
                        }
                        "infer" => {
                            let fast = InferenceGenerator::from_generator(&g, &varmap)?;
                            out["conv_gflop_per_iter"] = (generator_conv_flops(&cfg) / 1e9).into();
                            time(&device, args.warmup, args.iters, || {
                                fast.forward(&l)?;
                                Ok(())
                            })?
                        }
                        _ => time(&device, args.warmup, args.iters, || {
                            g.forward(&l, &Mode::Eval)?;
                            Ok(())
                        })?,
                    }
                }
                other => bail!("unknown mode `{other}`"),
            };
            out["sec_per_iter"] = t.into();
            out["times"] = times.into();
            out["images_per_sec"] = (cfg.batch as f64 / t).into();
            if let Some(gf) = out.get("conv_gflop_per_iter").and_then(|v| v.as_f64()) {
                out["conv_gflops_achieved"] = (gf / t).into();
            }
        }
    }
    out["peak_rss_mib"] = peak_rss_mib().into();
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}
