//! `--checkpoint` and `--select`, as every command that reads a trained model takes them.

use anyhow::Result;
use clap::Args;
use dgcolor_runs::{CheckpointRef, ResolvedCheckpoint, Select};

/// Which of a run directory's checkpoints a command reads.
#[derive(Args, Clone, Copy, Debug)]
pub struct SelectArg {
    /// Which checkpoint of a run directory: `val` (the one kept at the evaluation point with
    /// the best mean source-validation PSNR, what model selection picks) or `last`.
    #[arg(long, default_value = "val")]
    pub select: Select,
}

/// A model to read.
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// A run directory, a published model folder, a .safetensors checkpoint/model file, or
    /// hf:OWNER/NAME[@REVISION] (a model on the Hugging Face Hub, through its cache).
    #[arg(long)]
    pub checkpoint: CheckpointRef,
    #[command(flatten)]
    pub select: SelectArg,
}

impl ModelArgs {
    /// The local file of the model, printing which model it is (and any warning).
    pub fn resolve(&self) -> Result<ResolvedCheckpoint> {
        let resolved = self.checkpoint.resolve(self.select.select)?;
        eprintln!("{}", resolved.summary());
        Ok(resolved)
    }
}
