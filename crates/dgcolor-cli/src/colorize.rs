//! `dgcolor colorize`: colourize files or folders with a trained model.
//!
//! Every readable input is written, even when others are not: a truncated JPEG is
//! colourized as far as it decodes, with a warning naming it, and the unreadable inputs
//! are listed with their reasons at the end, which makes the command fail.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use dgcolor_data::ResizeFilter;
use dgcolor_eval::{colorize_files, load_generator, parse_device, plan_outputs};
use dgcolor_runs::{checkpoint_file, Select};

#[derive(Args)]
pub struct ColorizeArgs {
    /// A run directory or a .safetensors checkpoint/model file.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Which checkpoint of a run directory: `val` (best source-validation point) or `last`.
    #[arg(long, default_value = "val")]
    pub select: Select,
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
    let generator = load_generator(&checkpoint_file(&args.checkpoint, args.select)?, &device)?;
    let filter = args.resize;
    let pairs = plan_outputs(&args.inputs, &args.out)?;
    let outcomes = colorize_files(&generator, &pairs, filter, &device, |o| {
        let (input, output) = (o.input.display(), o.output.display());
        match &o.result {
            Ok(None) => eprintln!("{input} -> {output}"),
            Ok(Some(why)) => eprintln!(
                "warning: {input}: image file is truncated ({why}); colorized as decoded, \
                 missing part filled in -> {output}"
            ),
            Err(_) => eprintln!("not colorized: {}", o.failure().unwrap_or_default()),
        }
    });
    let failures: Vec<String> = outcomes.iter().filter_map(|o| o.failure()).collect();
    if !failures.is_empty() {
        bail!(
            "{} of {} inputs could not be colorized:\n  {}",
            failures.len(),
            outcomes.len(),
            failures.join("\n  ")
        );
    }
    Ok(())
}
