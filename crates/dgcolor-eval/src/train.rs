//! The training driver: one run of one algorithm on one (sources -> target) setting,
//! resumable. Everything it does is decided by a [`TrainConfig`], written to the run's
//! `config.toml` before the first step; re-running with the same config continues from the
//! latest checkpoint and ends with the same weights as an uninterrupted run (CPU, same seed).

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use dgcolor_algorithms::{build, AlgorithmSpec, Checkpoint, HParams, Losses, Preset};
use dgcolor_data::{BatchMode, LoaderConfig, OnBadImage, Preprocess, TrainLoader};
use dgcolor_kernels::Precision;
use dgcolor_models::{InferenceGenerator, ModelConfig};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::dataset::{make_splits_with, DataSpec, SplitChoice, Splits};
use crate::error::{EvalError, Result};
use crate::evaluate::{evaluate, DomainMetrics};
use crate::run::{RunDir, CHECKPOINT};

/// Share of each source domain held out for validation (the reference's 90/10 split).
pub const VAL_FRACTION: f64 = 0.1;

/// Every value a run depends on. Two runs with equal configs are the same run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub algorithm: String,
    pub preset: String,
    pub data: DataSpec,
    pub sources: Vec<String>,
    pub target: String,
    pub seed: u64,
    pub steps: u64,
    pub batch_size: usize,
    pub batch_mode: BatchMode,
    pub preprocess: Preprocess,
    pub flip: bool,
    pub val_fraction: f64,
    /// Reference 90/10 split (default; omitted from config.toml so older run directories
    /// keep their config) or the official PACS lists.
    #[serde(default, skip_serializing_if = "SplitChoice::is_reference")]
    pub split: SplitChoice,
    pub eval_every: u64,
    pub log_every: u64,
    pub on_bad_image: OnBadImage,
    pub model: ModelConfig,
    pub hparams: HParams,
    /// Convolution GEMM precision (autocast); omitted from config.toml when f32, so older
    /// run directories keep their config.
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
}

impl TrainConfig {
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self)
            .map_err(|e| EvalError::Config(format!("cannot write the run config as TOML: {e}")))
    }

    /// Steps for a preset that states epochs, given the training-set size.
    pub fn steps_for(preset: &Preset, train_images: usize) -> u64 {
        match (preset.steps, preset.epochs) {
            (Some(s), _) => s,
            (None, Some(e)) => e * (train_images / preset.batch_size).max(1) as u64,
            (None, None) => 1,
        }
    }
}

pub struct TrainOptions {
    pub config: TrainConfig,
    pub out: PathBuf,
    /// Where `synth` is generated (`data/` by default).
    pub data_root: PathBuf,
    pub device: Device,
    pub progress: bool,
    /// Stop (after writing a checkpoint) once this many steps ran in this call, leaving the
    /// run resumable: for schedulers with time limits.
    pub stop_after: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct TrainOutcome {
    pub algorithm: String,
    pub steps: u64,
    /// The step a resume started from, if this call resumed.
    pub resumed_from: Option<u64>,
    pub already_done: bool,
    /// False when `stop_after` ended this call before the last step.
    pub finished: bool,
    pub target: String,
    /// Final target-domain metrics (absent while the run is unfinished).
    pub target_metrics: Option<DomainMetrics>,
}

/// Runs (or resumes, or just re-reports) one training run.
pub fn train(opts: &TrainOptions) -> Result<TrainOutcome> {
    let cfg = &opts.config;
    dgcolor_kernels::set_precision(cfg.precision);
    let run = RunDir::new(&opts.out);
    run.write_or_check_config(&cfg.to_toml()?)?;
    let folder = cfg.data.open(&opts.data_root)?;
    let splits = make_splits_with(
        &folder,
        &cfg.split,
        &cfg.sources,
        &cfg.target,
        cfg.val_fraction,
        cfg.seed,
    )?;
    let spec = AlgorithmSpec {
        model: cfg.model.clone(),
        hparams: cfg.hparams.clone(),
        seed: cfg.seed,
        device: opts.device.clone(),
    };
    let mut alg = build(&cfg.algorithm, &spec)?;
    let mut resumed_from = None;
    if let Some(path) = run.checkpoint() {
        let ckpt = Checkpoint::load(&path, &opts.device)?;
        alg.restore(&ckpt)
            .map_err(|e| EvalError::format(&path, e))?;
        run.truncate_records_after(alg.steps())?;
        resumed_from = Some(alg.steps());
    }
    let already_done = run.is_done();
    if !already_done {
        if resumed_from.is_none() {
            let counts: Vec<_> = splits.train.iter().map(|s| s.samples.len()).collect();
            run.append(&json!({"kind": "start", "step": 0, "classes": splits.classes, "train_images": counts,
                "test_images": splits.test.len(), "split_notes": splits.notes}))?;
        }
        let loader = TrainLoader::new(
            splits.train.clone(),
            LoaderConfig {
                batch_size: cfg.batch_size,
                mode: cfg.batch_mode,
                preprocess: cfg.preprocess,
                flip: cfg.flip,
                seed: cfg.seed,
                on_bad: cfg.on_bad_image,
                prefetch: 4,
                cache_bytes: 2 << 30,
            },
        )?;
        let start = alg.steps();
        let progress = progress_bar(opts.progress, cfg.steps, start);
        let mut window = Window::default();
        let mut stream = loader.stream(start, &opts.device);
        for step in start..cfg.steps {
            let waited = Instant::now();
            let Some(batches) = stream.next() else {
                return Err(EvalError::Config("the batch stream ended early".into()));
            };
            let batches = batches?;
            let wait = waited.elapsed().as_secs_f64();
            for path in &batches.skipped {
                run.append(&json!({"kind": "skipped_image", "step": step, "path": path.display().to_string()}))?;
            }
            let computed = Instant::now();
            let losses = alg.update(&batches.tensors)?;
            if let Some((name, v)) = losses.iter().find(|(_, v)| !v.is_finite()) {
                return Err(EvalError::Config(format!(
                    "training diverged at step {step}: loss `{name}` is {v}"
                )));
            }
            let images: usize = batches.batches.iter().map(|b| b.len()).sum();
            window.add(
                &losses,
                images,
                wait,
                computed.elapsed().as_secs_f64() + wait,
            );
            let done = step + 1;
            progress.set_position(done);
            if done % cfg.log_every == 0 || done == cfg.steps {
                let record = window.record(done);
                progress.set_message(window.message());
                run.append(&record)?;
                window = Window::default();
            }
            if done % cfg.eval_every == 0 || done == cfg.steps {
                evaluate_point(&run, alg.as_ref(), &splits, cfg, &opts.device, done, "eval")?;
                alg.checkpoint()?.save(&run.file(CHECKPOINT))?;
            }
            if opts.stop_after.is_some_and(|n| done - start >= n) && done < cfg.steps {
                if done % cfg.eval_every != 0 {
                    alg.checkpoint()?.save(&run.file(CHECKPOINT))?;
                }
                progress.finish_and_clear();
                return Ok(TrainOutcome {
                    algorithm: cfg.algorithm.clone(),
                    steps: done,
                    resumed_from,
                    already_done: false,
                    finished: false,
                    target: cfg.target.clone(),
                    target_metrics: None,
                });
            }
        }
        progress.finish_and_clear();
    }
    let target_metrics = if already_done {
        final_metrics_from_records(&run)?
    } else {
        let m = evaluate(
            &InferenceGenerator::from_generator(alg.generator(), alg.varmap())?,
            &splits.test,
            &cfg.preprocess,
            cfg.on_bad_image,
            &opts.device,
        )?;
        run.append(&json!({"kind": "final", "step": alg.steps(), "domain": cfg.target, "split": "test", "metrics": m}))?;
        run.mark_done()?;
        m
    };
    Ok(TrainOutcome {
        algorithm: cfg.algorithm.clone(),
        steps: alg.steps(),
        resumed_from,
        already_done,
        finished: true,
        target: cfg.target.clone(),
        target_metrics: Some(target_metrics),
    })
}

/// Source-validation and target-test metrics at one step, for model selection by
/// training-domain validation (DomainBed) or by last step.
fn evaluate_point(
    run: &RunDir,
    alg: &dyn dgcolor_algorithms::Algorithm,
    splits: &Splits,
    cfg: &TrainConfig,
    device: &Device,
    step: u64,
    kind: &str,
) -> Result<()> {
    // BatchNorm folded, no graph: the eval-mode network as `colorize` runs it.
    let generator = InferenceGenerator::from_generator(alg.generator(), alg.varmap())?;
    for (domain, samples) in &splits.val {
        let m = evaluate(
            &generator,
            samples,
            &cfg.preprocess,
            cfg.on_bad_image,
            device,
        )?;
        run.append(&json!({"kind": kind, "step": step, "domain": domain, "split": "val", "metrics": m.means(), "images": m.images}))?;
    }
    let m = evaluate(
        &generator,
        &splits.test,
        &cfg.preprocess,
        cfg.on_bad_image,
        device,
    )?;
    run.append(&json!({"kind": kind, "step": step, "domain": cfg.target, "split": "test", "metrics": m.means(), "images": m.images}))
}

fn final_metrics_from_records(run: &RunDir) -> Result<DomainMetrics> {
    let records = run.records()?;
    let last = records.iter().rev().find(|r| r["kind"] == "final");
    let Some(r) = last else {
        return Err(EvalError::format(
            run.file(crate::run::RECORDS),
            "run is marked done but has no final record",
        ));
    };
    serde_json::from_value(r["metrics"].clone())
        .map_err(|e| EvalError::format(run.file(crate::run::RECORDS), e))
}

fn progress_bar(enabled: bool, total: u64, start: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .expect("valid template"),
    );
    bar.set_position(start);
    bar
}

/// Losses and throughput averaged over the steps since the last training record. Each loss
/// is averaged over the steps that reported it (DANN, for one, alternates loss sets).
#[derive(Default)]
struct Window {
    sums: std::collections::BTreeMap<&'static str, (f64, u64)>,
    steps: u64,
    images: usize,
    wait: f64,
    total: f64,
}

impl Window {
    fn add(&mut self, losses: &Losses, images: usize, wait: f64, total: f64) {
        for (k, v) in losses {
            let (sum, n) = self.sums.entry(k).or_default();
            *sum += *v as f64;
            *n += 1;
        }
        self.steps += 1;
        self.images += images;
        self.wait += wait;
        self.total += total;
    }

    fn means(&self) -> std::collections::BTreeMap<&'static str, f64> {
        self.sums
            .iter()
            .map(|(k, (sum, n))| (*k, sum / *n as f64))
            .collect()
    }

    fn record(&self, step: u64) -> serde_json::Value {
        json!({"kind": "train", "step": step, "losses": self.means(),
            "images_per_sec": self.images as f64 / self.total.max(1e-9),
            "data_wait_share": self.wait / self.total.max(1e-9)})
    }

    fn message(&self) -> String {
        let losses: Vec<String> = self
            .means()
            .iter()
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect();
        format!(
            "{} | {:.1} img/s",
            losses.join(" "),
            self.images as f64 / self.total.max(1e-9)
        )
    }
}
