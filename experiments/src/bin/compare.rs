//! Every algorithm on every setting and seed (the Cartesian product), then the report.
//! Re-running the same command skips finished runs and resumes unfinished ones.

use anyhow::Result;
use clap::Parser;
use dgcolor_algorithms::{info, ALGORITHMS};
use dgcolor_eval::sweep::Job;
use dgcolor_experiments::SweepArgs;

#[derive(Parser)]
#[command(
    about = "Compare DG baselines and the proposed model: dataset x settings x algorithms x seeds, then the report"
)]
struct Cli {
    #[command(flatten)]
    sweep: SweepArgs,
    /// Algorithms, comma-separated (default: every registered one, in table order).
    #[arg(long, value_delimiter = ',')]
    algorithms: Vec<String>,
}

fn main() -> Result<()> {
    dgcolor_kernels::setup_process();
    let cli = Cli::parse();
    let algorithms: Vec<&str> = if cli.algorithms.is_empty() {
        ALGORITHMS.iter().map(|a| a.name).collect()
    } else {
        cli.algorithms
            .iter()
            .map(|a| info(a).map(|i| i.name))
            .collect::<Result<_, _>>()?
    };
    let dir = cli.sweep.sweep_dir(&format!(
        "compare-{}-{}",
        cli.sweep.data.replace(['/', ':'], "_"),
        cli.sweep.preset
    ));
    let mut jobs = Vec::new();
    for (sources, target) in cli.sweep.settings()? {
        for (order, algorithm) in algorithms.iter().enumerate() {
            for seed in 0..cli.sweep.seeds() {
                let spec = cli.sweep.spec(algorithm, &sources, &target, seed);
                jobs.push(Job::new(*algorithm, order, spec, &dir));
            }
        }
    }
    cli.sweep.execute(&jobs, &dir)?;
    Ok(())
}
