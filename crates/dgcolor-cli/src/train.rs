//! `dgcolor train` and `dgcolor compare`: the run options shared by every command that
//! trains, turned into a [`RunSpec`].

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use dgcolor_data::ResizeFilter;
use dgcolor_eval::{
    parse_device, parse_precision, train, DomainMetrics, Precision, RunSpec, TrainOptions,
};

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
    /// Train/validation split: `reference` (seeded 90/10 per class) or `official` (PACS
    /// `<domain>_{train,crossval}_kfold.txt`), with options `,skip-missing` and `,dir=PATH`.
    #[arg(long, default_value = "reference")]
    pub split: String,
    /// Where `synth` is generated.
    #[arg(long, default_value = "data")]
    pub data_root: PathBuf,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Precision of the convolutions' matrix products: f32; tf32 (CUDA: TF32 tensor cores,
    /// PyTorch's default for convolutions; same as f32 on the CPU); bf16 (autocast: operands
    /// rounded to bfloat16, everything else f32).
    #[arg(long, default_value = "f32", value_parser = parse_precision)]
    pub precision: Precision,
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

impl RunArgs {
    pub fn spec(&self, algorithm: &str) -> Result<RunSpec> {
        Ok(RunSpec {
            algorithm: algorithm.into(),
            data: self.data.clone(),
            sources: self.sources.clone(),
            target: self.target.clone(),
            preset: self.preset.clone(),
            steps: self.steps,
            seed: self.seed,
            batch_size: self.batch_size,
            balanced: self.balanced,
            set: self.set.clone(),
            adain: self.adain.clone(),
            resize: parse_filter(&self.resize)?,
            skip_bad_images: self.skip_bad_images,
            split: self.split.clone(),
            precision: self.precision,
        })
    }
}

pub fn train_options(algorithm: &str, run: &RunArgs, out: PathBuf) -> Result<TrainOptions> {
    Ok(TrainOptions {
        config: run.spec(algorithm)?.config(&run.data_root)?,
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
