//! `dgcolor train`: one run of one algorithm, resumable.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use dgcolor_runs::{train, RunSpec, StopFlag, TrainOptions, EXIT_STOPPED};

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub spec: RunSpec,
    /// Run directory: config.toml, records.jsonl, checkpoint.safetensors, done. Re-running
    /// the same command on an unfinished directory resumes it; a directory another process
    /// is training is refused.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub runtime: Runtime,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Stop after this many steps of this invocation (checkpointed, resumable by re-running).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub stop_after: Option<u64>,
}

/// Where data is generated and which device computes: how a run executes, not what it is.
#[derive(Args, Clone, Debug)]
pub struct Runtime {
    /// Where `synth` is generated and parquet copies are extracted.
    #[arg(long, default_value = "data")]
    pub data_root: PathBuf,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Trains; on SIGTERM / SIGUSR1 the run checkpoints at its next step and the process exits
/// with status 75 ([`EXIT_STOPPED`]) after printing the outcome: re-run to resume.
pub fn run(args: &TrainArgs) -> Result<()> {
    // First, so a signal during the data preparation is not fatal either.
    let stop = StopFlag::on_signals()?;
    let prepared = args.spec.prepare(&args.runtime.data_root)?;
    let outcome = train(
        &prepared,
        &TrainOptions {
            out: args.out.clone(),
            device: dgcolor_eval::parse_device(&args.runtime.device)?,
            progress: !args.quiet,
            stop_after: args.stop_after,
            stop,
        },
    )?;
    println!("{}", serde_json::to_string_pretty(&outcome)?);
    if let Some(signal) = &outcome.stopped_by {
        eprintln!(
            "stopped by {signal} at step {}: checkpointed in {}; run the same command to resume",
            outcome.steps,
            args.out.display()
        );
        std::process::exit(EXIT_STOPPED);
    }
    Ok(())
}
