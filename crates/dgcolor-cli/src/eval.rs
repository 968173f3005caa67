//! `dgcolor eval`: metrics of a trained model (or of the gray baseline) on one domain, as
//! JSON.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use dgcolor_data::{DataSpec, OnBadImage, Preprocess, ResizeFilter, SynthConfig};
use dgcolor_eval::{evaluate, evaluate_gray, load_generator, parse_device};
use dgcolor_runs::{checkpoint_file, Select, TrainConfig};

#[derive(Args)]
pub struct EvalArgs {
    /// A run directory (its data settings are reused) or a .safetensors file.
    #[arg(long, required_unless_present = "gray")]
    pub checkpoint: Option<PathBuf>,
    /// Which checkpoint of a run directory: `val` (best source-validation point) or `last`.
    #[arg(long, default_value = "val")]
    pub select: Select,
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

/// The training config of a run directory, if `path` is one.
fn run_config(path: &std::path::Path) -> Result<Option<TrainConfig>> {
    let file = path.join(dgcolor_runs::CONFIG);
    if !file.is_file() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    Ok(Some(
        toml::from_str(&text).with_context(|| format!("parsing {}", file.display()))?,
    ))
}

pub fn run(args: &EvalArgs) -> Result<()> {
    let device = parse_device(&args.device)?;
    let generator = match &args.checkpoint {
        Some(path) => Some(load_generator(
            &checkpoint_file(path, args.select)?,
            &device,
        )?),
        None => None,
    };
    let saved = match &args.checkpoint {
        Some(path) => run_config(path)?,
        None => None,
    };
    let size = generator.as_ref().map_or(args.size, |g| g.config().size);
    if size == 0 {
        bail!("--size must be positive");
    }
    let synth = saved.as_ref().and_then(|c| c.synth).unwrap_or(SynthConfig {
        size: size as u32,
        ..SynthConfig::default()
    });
    let pre = saved.as_ref().map(|c| c.preprocess).unwrap_or(Preprocess {
        size,
        filter: ResizeFilter::Nearest,
    });
    let folder = args.data.open(&args.data_root, &synth)?;
    let samples = folder.domain(&args.domain)?;
    let metrics = match &generator {
        Some(g) => evaluate(g, samples, &pre, OnBadImage::Fail, &device)?.metrics,
        None => evaluate_gray(samples, &pre, OnBadImage::Fail)?.metrics,
    };
    let result = serde_json::json!({"domain": args.domain, "model": if args.gray { "gray" } else { "checkpoint" }, "result": metrics});
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}
