//! `dgcolor data ...`: make and inspect datasets.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use dgcolor_data::{generate_synth, SynthConfig};

#[derive(Subcommand)]
pub enum DataCommand {
    /// Write the embedded synthetic benchmark: <out>/<domain>/<class>/*.png plus manifest.json.
    Synth {
        #[arg(long)]
        out: PathBuf,
        /// Image side in pixels.
        #[arg(long, default_value_t = 64)]
        size: u32,
        /// Images per class and domain.
        #[arg(long, default_value_t = 100)]
        per_class: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Synth {
            out,
            size,
            per_class,
            seed,
        } => {
            let cfg = SynthConfig {
                size,
                per_class,
                seed,
            };
            let started = std::time::Instant::now();
            let manifest = generate_synth(&out, &cfg)?;
            eprintln!(
                "wrote {} images to {} in {:.1}s",
                manifest.files.len(),
                out.display(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
