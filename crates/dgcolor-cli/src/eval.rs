//! `dgcolor eval`: metrics of a trained model on one domain, as JSON.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use dgcolor_data::{OnBadImage, Preprocess, ResizeFilter, SynthConfig};
use dgcolor_eval::{evaluate, load_generator, parse_device, DataSpec, TrainConfig};

#[derive(Args)]
pub struct EvalArgs {
    /// A run directory (its data settings are reused) or a .safetensors file.
    #[arg(long)]
    pub checkpoint: PathBuf,
    #[arg(long, default_value = "synth")]
    pub data: String,
    #[arg(long)]
    pub domain: String,
    #[arg(long, default_value = "data")]
    pub data_root: PathBuf,
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(args: &EvalArgs) -> Result<()> {
    let device = parse_device(&args.device)?;
    let generator = load_generator(&args.checkpoint, &device)?;
    let model = generator.config();
    let run_config = args.checkpoint.join(dgcolor_eval::run::CONFIG);
    let saved: Option<TrainConfig> = if run_config.is_file() {
        let text = std::fs::read_to_string(&run_config)?;
        Some(toml::from_str(&text).with_context(|| format!("reading {}", run_config.display()))?)
    } else {
        None
    };
    let synth = match &saved {
        Some(TrainConfig {
            data: DataSpec::Synth(cfg),
            ..
        }) => *cfg,
        _ => SynthConfig {
            size: model.size as u32,
            ..SynthConfig::default()
        },
    };
    let pre = saved.as_ref().map(|c| c.preprocess).unwrap_or(Preprocess {
        size: model.size,
        filter: ResizeFilter::Nearest,
    });
    let folder = DataSpec::parse(&args.data, synth)?.open(&args.data_root)?;
    let metrics = evaluate(
        &generator,
        folder.domain(&args.domain)?,
        &pre,
        OnBadImage::Fail,
        &device,
    )?;
    println!(
        "{}",
        serde_json::to_string_pretty(
            &serde_json::json!({"domain": args.domain, "result": metrics})
        )?
    );
    Ok(())
}
