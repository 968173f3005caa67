//! `dgcolor colorize`: colourize files or folders with a trained model.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use dgcolor_data::ResizeFilter;
use dgcolor_eval::{colorize_image, load_generator, parse_device, plan_outputs};
use dgcolor_runs::checkpoint_file;

#[derive(Args)]
pub struct ColorizeArgs {
    /// A run directory or a .safetensors checkpoint/model file.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Image files or folders (searched recursively).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    #[arg(long)]
    pub out: PathBuf,
    /// Filter that brings inputs to the model size: antialias or nearest (reference).
    #[arg(long, default_value = "antialias")]
    pub resize: ResizeFilter,
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(args: &ColorizeArgs) -> Result<()> {
    let device = parse_device(&args.device)?;
    let generator = load_generator(&checkpoint_file(&args.checkpoint)?, &device)?;
    let filter = args.resize;
    let pairs = plan_outputs(&args.inputs, &args.out)?;
    for (input, output) in &pairs {
        let rgb = colorize_image(&generator, input, filter, &device)?;
        if let Some(dir) = output.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        rgb.save(output)
            .with_context(|| format!("writing {}", output.display()))?;
        eprintln!("{} -> {}", input.display(), output.display());
    }
    Ok(())
}
