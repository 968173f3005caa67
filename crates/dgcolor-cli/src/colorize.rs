//! `dgcolor colorize`: colourize files or folders with a trained model.
//!
//! Every readable input is written, even when others are not: a truncated JPEG is
//! colourized as far as it decodes, with a warning naming it, and the unreadable inputs
//! are listed with their reasons at the end, which makes the command fail. `colorize.json` in
//! `--out` records the model used (for a Hub model, the commit) and what was written.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use dgcolor_algorithms::write_atomic;
use dgcolor_data::ResizeFilter;
use dgcolor_eval::{colorize_files, load_generator, parse_device, plan_outputs};

use crate::model_arg::ModelArgs;

/// Written into `--out`: which model (and, for a Hub model, which commit) made the outputs.
pub const RECORD_FILE: &str = "colorize.json";

#[derive(Args)]
pub struct ColorizeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
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
    let resolved = args.model.resolve()?;
    let generator = load_generator(&resolved.file, &device)?;
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
    let record = serde_json::json!({
        "checkpoint": args.model.checkpoint.to_string(),
        "model": resolved.provenance,
        "resize": filter,
        "written": outcomes.iter().filter(|o| o.result.is_ok()).map(|o| &o.output).collect::<Vec<_>>(),
        "failed": failures,
    });
    let record_path = args.out.join(RECORD_FILE);
    write_atomic(
        &record_path,
        serde_json::to_string_pretty(&record)?.as_bytes(),
    )
    .with_context(|| format!("writing {}", record_path.display()))?;
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
