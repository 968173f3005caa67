//! `dgcolor train` and `dgcolor compare`: the run options shared by every command that
//! trains, and how they become a [`TrainConfig`].

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use dgcolor_algorithms::{info, HParams, Preset};
use dgcolor_data::{BatchMode, OnBadImage, Preprocess, ResizeFilter, SynthConfig};
use dgcolor_eval::{
    parse_device, train, DataSpec, DomainMetrics, TrainConfig, TrainOptions, VAL_FRACTION,
};
use dgcolor_models::ModelConfig;

#[derive(Args, Clone)]
pub struct RunArgs {
    /// `synth` (generated under --data-root on first use) or a folder <root>/<domain>/<class>/<image>.
    #[arg(long, default_value = "synth")]
    pub data: String,
    /// Comma-separated source domains.
    #[arg(long, value_delimiter = ',', default_value = "photo,cartoon")]
    pub sources: Vec<String>,
    /// The unseen target domain.
    #[arg(long, default_value = "art_painting")]
    pub target: String,
    /// smoke (seconds, for tests), quick (CPU minutes) or paper (256 px, nf 64, depth 8, batch 128, 50 epochs).
    #[arg(long, default_value = "quick")]
    pub preset: String,
    /// Number of updates (default: the preset's).
    #[arg(long)]
    pub steps: Option<u64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Batch size (default: the preset's).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Take the same number of images from each source per step instead of shuffling their union.
    #[arg(long)]
    pub balanced: bool,
    /// Override a hyperparameter, e.g. --set w_adv=0.1 (repeatable; see `dgcolor hparams`).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// AdaIN skip: a decoder index 1..depth-1, `z` (the skip carrying the head output, the
    /// default of `ours`) or `none` (the default of the baselines).
    #[arg(long)]
    pub adain: Option<String>,
    /// Resize filter: nearest (reference) or antialias.
    #[arg(long, default_value = "nearest")]
    pub resize: String,
    /// Skip unreadable images (reported in the records) instead of failing.
    #[arg(long)]
    pub skip_bad_images: bool,
    /// Where `synth` is generated.
    #[arg(long, default_value = "data")]
    pub data_root: PathBuf,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Stop after this many steps of this invocation (checkpointed, resumable by re-running).
    #[arg(long)]
    pub stop_after: Option<u64>,
}

#[derive(Args)]
pub struct TrainArgs {
    /// ours, erm, ... (see `dgcolor algorithms`).
    #[arg(long, default_value = "ours")]
    pub algorithm: String,
    #[command(flatten)]
    pub run: RunArgs,
    /// Run directory: config.toml, records.jsonl, checkpoint.safetensors, done. Re-running
    /// the same command on an unfinished directory resumes it.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct CompareArgs {
    /// Comma-separated algorithms, in table order.
    #[arg(long, value_delimiter = ',', default_value = "erm,ours")]
    pub algorithms: Vec<String>,
    #[command(flatten)]
    pub run: RunArgs,
    /// Parent of one run directory per algorithm.
    #[arg(long, default_value = "results/quickstart")]
    pub out: PathBuf,
}

pub fn run_train(args: &TrainArgs) -> Result<()> {
    let outcome = train(&train_options(
        &args.algorithm,
        &args.run,
        args.out.clone(),
    )?)?;
    println!("{}", serde_json::to_string_pretty(&outcome)?);
    Ok(())
}

pub fn parse_filter(s: &str) -> Result<ResizeFilter> {
    match s {
        "nearest" => Ok(ResizeFilter::Nearest),
        "antialias" => Ok(ResizeFilter::Antialias),
        _ => bail!("--resize `{s}`: expected nearest or antialias"),
    }
}

pub fn train_options(algorithm: &str, run: &RunArgs, out: PathBuf) -> Result<TrainOptions> {
    let algo = info(algorithm)?;
    let preset = Preset::get(&run.preset)?;
    let synth = SynthConfig {
        size: preset.size as u32,
        per_class: preset.synth_per_class,
        seed: 0,
    };
    let data = DataSpec::parse(&run.data, synth)?;
    let mut hparams = HParams::defaults(algo.name);
    hparams.set(algo.name, &run.set)?;
    let mut model = ModelConfig::new(preset.size, preset.nf, preset.depth, 1, run.sources.len());
    model.adain_index = match run.adain.as_deref() {
        None => algo.adain.then(|| model.z_skip_index()),
        Some("none") => None,
        Some("z") => Some(model.z_skip_index()),
        Some(k) => Some(k.parse().with_context(|| {
            format!(
                "--adain `{k}`: expected none, z or an index 1..{}",
                preset.depth - 1
            )
        })?),
    };
    // The class count comes from the data; open it once here so the config is complete.
    let folder = data.open(&run.data_root)?;
    model.n_classes = folder.classes.len();
    model.validate()?;
    let batch_size = run.batch_size.unwrap_or(preset.batch_size);
    let train_images: usize = run
        .sources
        .iter()
        .map(|s| folder.domain(s).map(|d| d.len()))
        .sum::<std::result::Result<_, _>>()?;
    let steps = run.steps.unwrap_or_else(|| {
        TrainConfig::steps_for(
            &Preset {
                batch_size,
                ..preset.clone()
            },
            train_images,
        )
    });
    let config = TrainConfig {
        algorithm: algo.name.to_string(),
        preset: preset.name.clone(),
        data,
        sources: run.sources.clone(),
        target: run.target.clone(),
        seed: run.seed,
        steps,
        batch_size,
        batch_mode: if run.balanced {
            BatchMode::Balanced
        } else {
            BatchMode::Mixed
        },
        preprocess: Preprocess {
            size: preset.size,
            filter: parse_filter(&run.resize)?,
        },
        flip: true,
        val_fraction: VAL_FRACTION,
        eval_every: preset.eval_every.min(steps.max(1)),
        log_every: 10.min(steps.max(1)),
        on_bad_image: if run.skip_bad_images {
            OnBadImage::Skip
        } else {
            OnBadImage::Fail
        },
        model,
        hparams,
    };
    Ok(TrainOptions {
        config,
        out,
        data_root: run.data_root.clone(),
        device: parse_device(&run.device)?,
        progress: !run.quiet,
        stop_after: run.stop_after,
    })
}

pub fn compare(args: &CompareArgs) -> Result<()> {
    let mut rows = Vec::new();
    for algorithm in &args.algorithms {
        eprintln!(
            "== {algorithm}: {} -> {}",
            args.run.sources.join("+"),
            args.run.target
        );
        let outcome = train(&train_options(
            algorithm,
            &args.run,
            args.out.join(algorithm),
        )?)?;
        rows.push(outcome);
    }
    let finished: Vec<(&str, &DomainMetrics)> = rows
        .iter()
        .filter_map(|r| Some((r.algorithm.as_str(), r.target_metrics.as_ref()?)))
        .collect();
    let Some((_, first)) = finished.first() else {
        eprintln!("no run finished yet (re-run the same command to continue)");
        return Ok(());
    };
    println!(
        "target {} ({} images), mean over images:",
        args.run.target, first.images
    );
    print!("{:<10}", "algorithm");
    for n in first.metrics.keys() {
        print!(" {n:>20}");
    }
    println!();
    for (name, m) in &finished {
        print!("{name:<10}");
        for summary in m.metrics.values() {
            print!(" {:>20.4}", summary.mean);
        }
        println!();
    }
    Ok(())
}
