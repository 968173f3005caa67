//! The training driver: one run of one algorithm on one (sources -> target) setting,
//! resumable. Everything it does is decided by a [`TrainConfig`], written to the run's
//! `config.toml` before the first step; re-running with the same config continues from the
//! latest checkpoint and ends with the same weights as an uninterrupted run (CPU, same seed).
//! A call can end early, resumable: after `stop_after` steps, or at the first step boundary
//! after a stop request ([`StopFlag`], set by SIGTERM / SIGUSR1 in the binaries).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use dgcolor_algorithms::{Algorithm, AlgorithmSpec, Checkpoint, Losses};
use dgcolor_data::{LoaderConfig, Splits, TrainLoader};
use dgcolor_eval::{evaluate, DomainMetrics};
use dgcolor_models::InferenceGenerator;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::config::TrainConfig;
use crate::error::{Result, RunError};
use crate::per_image::write_per_image;
use crate::record::{EvalSplit, Evaluation, Record, SCHEMA_VERSION, SELECTION_METRIC};
use crate::run_dir::{RunDir, Select, CHECKPOINT, CHECKPOINT_VAL, RECORDS};
use crate::spec::PreparedRun;
use crate::stop::{signal_name, StopFlag};

/// How one call of [`train`] runs; none of it changes what the run computes.
pub struct TrainOptions {
    pub out: PathBuf,
    pub device: Device,
    pub progress: bool,
    /// Stop (after writing a checkpoint) once this many steps ran in this call, leaving the
    /// run resumable: for schedulers with time limits.
    pub stop_after: Option<u64>,
    /// Checked after every step: once set, the call checkpoints and returns, resumable.
    pub stop: StopFlag,
}

#[derive(Debug, Serialize)]
pub struct TrainOutcome {
    pub algorithm: String,
    pub steps: u64,
    /// The step a resume started from, if this call resumed.
    pub resumed_from: Option<u64>,
    pub already_done: bool,
    /// False when `stop_after` or a stop request ended this call before the last step.
    pub finished: bool,
    /// The signal whose stop request ended this call (`SIGTERM`, `SIGUSR1`).
    pub stopped_by: Option<String>,
    pub target: String,
    /// Final target-domain metrics (absent while the run is unfinished).
    pub target_metrics: Option<DomainMetrics>,
}

/// Runs (or resumes, or just re-reports) one training run. Holds the run directory's lock
/// for the whole call.
pub fn train(run: &PreparedRun, opts: &TrainOptions) -> Result<TrainOutcome> {
    let cfg = &run.config;
    let splits = &run.splits;
    dgcolor_kernels::set_precision(cfg.precision);
    let dir = RunDir::new(&opts.out);
    let _lock = dir.lock()?;
    dir.write_or_check_config(&cfg.to_toml()?)?;
    let spec = AlgorithmSpec {
        model: cfg.model.clone(),
        hparams: cfg.hparams.clone(),
        seed: cfg.seed,
        device: opts.device.clone(),
    };
    let mut alg = cfg.algorithm.build(&spec)?;
    let mut resumed_from = None;
    if let Some(path) = dir.checkpoint() {
        let ckpt = Checkpoint::load(&path, &opts.device)?;
        alg.restore(&ckpt).map_err(|e| RunError::format(&path, e))?;
        dir.truncate_records_after(alg.steps())?;
        resumed_from = Some(alg.steps());
    }
    let outcome = |alg: &dyn Algorithm, finished, already_done, target_metrics| TrainOutcome {
        algorithm: cfg.algorithm.name.into(),
        steps: alg.steps(),
        resumed_from,
        already_done,
        finished,
        stopped_by: None,
        target: cfg.target.clone(),
        target_metrics,
    };
    if dir.is_done() {
        let metrics = final_metrics_from_records(&dir)?;
        return Ok(outcome(alg.as_ref(), true, true, Some(metrics)));
    }
    if resumed_from.is_none() {
        dir.append(&Record::Start {
            schema: SCHEMA_VERSION,
            classes: splits.classes.clone(),
            train_images: splits.train.iter().map(|s| s.samples.len()).collect(),
            oracle_images: splits.oracle.len(),
            test_images: splits.test.len(),
            split_notes: splits.notes.clone(),
        })?;
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
    // The best mean source-validation PSNR of the points evaluated so far (resumes see it in
    // the records they keep).
    let mut best_val = dir
        .records()?
        .iter()
        .fold(None, |best: Option<f64>, r| match r {
            Record::Kept { score, .. } => Some(best.map_or(*score, |b| b.max(*score))),
            _ => best,
        });
    let mut last_test = None;
    let progress = progress_bar(opts.progress, cfg.steps, start);
    let mut window = Window::default();
    let mut stream = loader.stream(start, &opts.device);
    for step in start..cfg.steps {
        let waited = Instant::now();
        let Some(batches) = stream.next() else {
            return Err(RunError::Config("the batch stream ended early".into()));
        };
        let batches = batches?;
        let wait = waited.elapsed().as_secs_f64();
        for path in &batches.skipped {
            dir.append(&Record::SkippedImage {
                step,
                path: path.display().to_string(),
            })?;
        }
        let computed = Instant::now();
        let losses = alg.update(&batches.tensors)?;
        if let Some((name, v)) = losses.iter().find(|(_, v)| !v.is_finite()) {
            return Err(RunError::Config(format!(
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
            progress.set_message(window.message());
            dir.append(&window.record(done))?;
            window = Window::default();
        }
        let evaluated = done % cfg.eval_every == 0 || done == cfg.steps;
        if evaluated {
            let point = evaluate_point(&dir, alg.as_ref(), splits, cfg, &opts.device, done)?;
            if let Some(score) = point.val_score {
                if best_val.is_none_or(|best| score > best) {
                    best_val = Some(score);
                    alg.checkpoint()?.save(&dir.file(CHECKPOINT_VAL))?;
                    dir.append(&Record::Kept {
                        step: done,
                        selection: Select::Val.to_string(),
                        score,
                    })?;
                }
            }
            alg.checkpoint()?.save(&dir.file(CHECKPOINT))?;
            last_test = Some(point.test);
        }
        let signal = opts.stop.signal();
        let stop_after = opts.stop_after.is_some_and(|n| done - start >= n);
        if (signal.is_some() || stop_after) && done < cfg.steps {
            // The steps since the last training record get theirs, at this step: every
            // training record then averages the steps since the one before it, and a resume
            // keeps it (it drops only records after the checkpoint's step).
            if window.steps > 0 {
                dir.append(&window.record(done))?;
            }
            if !evaluated {
                alg.checkpoint()?.save(&dir.file(CHECKPOINT))?;
            }
            progress.finish_and_clear();
            return Ok(TrainOutcome {
                stopped_by: signal.map(signal_name),
                ..outcome(alg.as_ref(), false, false, None)
            });
        }
    }
    progress.finish_and_clear();
    // The last step is always an evaluation point: its test evaluation is the final one.
    let Some(test) = last_test else {
        return Err(RunError::Config(format!(
            "run {} ended without evaluating its last step",
            dir.path.display()
        )));
    };
    let metrics = test.result.clone();
    dir.append(&Record::Final(test))?;
    dir.mark_done()?;
    Ok(outcome(alg.as_ref(), true, false, Some(metrics)))
}

/// What one evaluation point measured that the trainer acts on.
struct Point {
    /// Mean PSNR over the source-validation sets (`None` without validation images).
    val_score: Option<f64>,
    test: Evaluation,
}

/// Source-validation, target-oracle and target-test metrics at one step (each test image's
/// values to `per_image/`), for model selection by training-domain validation (DomainBed),
/// by the test-domain oracle, or by last step.
fn evaluate_point(
    dir: &RunDir,
    alg: &dyn Algorithm,
    splits: &Splits,
    cfg: &TrainConfig,
    device: &Device,
    step: u64,
) -> Result<Point> {
    // BatchNorm folded, no graph: the eval-mode network as `colorize` runs it.
    let generator = InferenceGenerator::from_generator(alg.generator(), alg.varmap())?;
    let run = |samples: &[dgcolor_data::Sample]| {
        evaluate(
            &generator,
            samples,
            &cfg.preprocess,
            cfg.on_bad_image,
            device,
        )
    };
    let mut val_scores = Vec::new();
    for (domain, samples) in &splits.val {
        if samples.is_empty() {
            continue;
        }
        let result = run(samples)?.metrics;
        val_scores.extend(result.value(SELECTION_METRIC));
        dir.append(&Record::Eval(Evaluation {
            step,
            domain: domain.clone(),
            split: EvalSplit::Val,
            result,
        }))?;
    }
    if !splits.oracle.is_empty() {
        dir.append(&Record::Eval(Evaluation {
            step,
            domain: cfg.target.clone(),
            split: EvalSplit::Oracle,
            result: run(&splits.oracle)?.metrics,
        }))?;
    }
    let evaluated = run(&splits.test)?;
    write_per_image(
        &dir.per_image_file(step),
        &splits.root,
        &cfg.target,
        &splits.classes,
        &evaluated.images,
    )?;
    let test = Evaluation {
        step,
        domain: cfg.target.clone(),
        split: EvalSplit::Test,
        result: evaluated.metrics,
    };
    dir.append(&Record::Eval(test.clone()))?;
    Ok(Point {
        val_score: (!val_scores.is_empty())
            .then(|| val_scores.iter().sum::<f64>() / val_scores.len() as f64),
        test,
    })
}

fn final_metrics_from_records(dir: &RunDir) -> Result<DomainMetrics> {
    dir.records()?
        .into_iter()
        .rev()
        .find_map(|r| match r {
            Record::Final(e) => Some(e.result),
            _ => None,
        })
        .ok_or_else(|| {
            RunError::format(
                dir.file(RECORDS),
                "run is marked done but has no final record",
            )
        })
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
    sums: BTreeMap<&'static str, (f64, u64)>,
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

    fn means(&self) -> BTreeMap<String, f64> {
        self.sums
            .iter()
            .map(|(k, (sum, n))| (k.to_string(), sum / *n as f64))
            .collect()
    }

    fn images_per_sec(&self) -> f64 {
        self.images as f64 / self.total.max(1e-9)
    }

    fn record(&self, step: u64) -> Record {
        Record::Train {
            step,
            losses: self.means(),
            images_per_sec: self.images_per_sec(),
            data_wait_share: self.wait / self.total.max(1e-9),
        }
    }

    fn message(&self) -> String {
        let losses: Vec<String> = self
            .means()
            .iter()
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect();
        format!("{} | {:.1} img/s", losses.join(" "), self.images_per_sec())
    }
}
