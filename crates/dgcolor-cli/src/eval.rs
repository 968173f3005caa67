//! `dgcolor eval`: metrics of a trained model (or of the gray baseline) on one domain, as
//! JSON.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use dgcolor_data::{DataSpec, OnBadImage, Preprocess, ResizeFilter, SynthConfig};
use dgcolor_eval::{evaluate, evaluate_gray, load_generator, parse_device};
use dgcolor_runs::CheckpointRef;

use crate::model_arg::SelectArg;

#[derive(Args)]
pub struct EvalArgs {
    /// A run directory (its data settings are reused), a published model folder or
    /// hf:OWNER/NAME[@REVISION] (their config.json's settings are reused), or a .safetensors
    /// file.
    #[arg(long, required_unless_present = "gray")]
    pub checkpoint: Option<CheckpointRef>,
    #[command(flatten)]
    pub select: SelectArg,
    /// Evaluate the no-colour baseline (ab = 0) instead of a model.
    #[arg(long, conflicts_with = "checkpoint")]
    pub gray: bool,
    /// Image side for --gray (a model's own size is used otherwise).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    #[arg(long, default_value = "synth")]
    pub data: DataSpec,
    #[arg(long)]
    pub domain: String,
    #[arg(long, default_value = "data")]
    pub data_root: PathBuf,
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(args: &EvalArgs) -> Result<()> {
    let device = parse_device(&args.device)?;
    let resolved = args
        .checkpoint
        .as_ref()
        .map(|c| c.resolve(args.select.select))
        .transpose()?;
    if let Some(r) = &resolved {
        eprintln!("{}", r.summary());
    }
    let generator = match &resolved {
        Some(r) => Some(load_generator(&r.file, &device)?),
        None => None,
    };
    let saved = match &resolved {
        Some(r) => r.train_config()?,
        None => None,
    };
    let published = resolved.as_ref().and_then(|r| r.published.as_ref());
    let size = generator.as_ref().map_or(args.size, |g| g.config().size);
    if size == 0 {
        bail!("--size must be positive");
    }
    let synth = saved
        .as_ref()
        .and_then(|c| c.synth)
        .or_else(|| published.and_then(|p| p.training.as_ref()?.synth))
        .unwrap_or(SynthConfig {
            size: size as u32,
            ..SynthConfig::default()
        });
    let pre = match (&saved, published) {
        (Some(c), _) => c.preprocess,
        (None, Some(p)) => Preprocess {
            size,
            filter: p.resize_filter,
        },
        (None, None) => Preprocess {
            size,
            filter: ResizeFilter::Nearest,
        },
    };
    let folder = args.data.open(&args.data_root, &synth)?;
    let samples = folder.domain(&args.domain)?;
    let metrics = match &generator {
        Some(g) => evaluate(g, samples, &pre, OnBadImage::Fail, &device)?.metrics,
        None => evaluate_gray(samples, &pre, OnBadImage::Fail)?.metrics,
    };
    let result = serde_json::json!({
        "domain": args.domain,
        "model": if args.gray { "gray" } else { "checkpoint" },
        "checkpoint": resolved.as_ref().map(|r| &r.provenance),
        "result": metrics,
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}
