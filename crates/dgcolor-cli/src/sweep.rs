//! `dgcolor compare`, `dgcolor ablate-adain` and `dgcolor report`: the sweeps of the paper
//! (dataset x settings x methods x seeds) through a launcher, then the collect step.
//! Re-running a sweep skips finished runs and resumes unfinished ones.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use dgcolor_algorithms::{lookup, AlgorithmEntry, ALGORITHMS};
use dgcolor_report::write_report;
use dgcolor_runs::sweep::{
    ablation_jobs, compare_jobs, DryRun, Job, JobReport, LaunchContext, Launcher, Local, Setting,
    SweepSize,
};
use dgcolor_runs::RunOptions;

use crate::train::Runtime;

/// Options every sweep takes.
#[derive(Args, Clone, Debug)]
pub struct SweepArgs {
    #[command(flatten)]
    pub options: RunOptions,
    /// Settings `src1+src2:target`, comma-separated (default: the paper's three two-source
    /// settings of the dataset: PACS names for synth and pacs, Office-Home's for office-home).
    #[arg(long, value_delimiter = ',')]
    pub settings: Vec<Setting>,
    /// Default settings leave one domain out (every other domain is a source) instead.
    #[arg(long)]
    pub leave_one_out: bool,
    /// Hyperparameter draws per (method, setting): draw 0 is the defaults, draws 1.. are
    /// random-search draws seeded by their index alone (DomainBed's `hparams_seed`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub hparams: u64,
    /// Trials (seeds of weights, batches and splits) per draw (default: the preset's).
    #[arg(long, alias = "seeds", value_parser = clap::value_parser!(u64).range(1..))]
    pub trials: Option<u64>,
    /// Sweep name: runs go to <results>/<sweep>/runs, the report to <results>/<sweep>/report.
    #[arg(long)]
    pub sweep: Option<String>,
    /// Parent of all sweeps.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// local (runs here) or dry-run (prints the commands).
    #[arg(long, default_value = "local")]
    pub launcher: String,
    /// Runs in parallel for the local launcher (default: one per two cores).
    #[arg(long)]
    pub parallel: Option<usize>,
    #[command(flatten)]
    pub runtime: Runtime,
    /// Skip the report after the sweep.
    #[arg(long)]
    pub no_report: bool,
}

#[derive(Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub sweep: SweepArgs,
    /// Algorithms, comma-separated (default: every registered one, in table order).
    #[arg(long, value_delimiter = ',')]
    pub algorithms: Vec<String>,
}

#[derive(Args)]
pub struct AblateArgs {
    #[command(flatten)]
    pub sweep: SweepArgs,
}

#[derive(Args)]
pub struct ReportArgs {
    /// The sweep directory (holding runs/).
    pub sweep_dir: PathBuf,
    #[command(flatten)]
    pub runtime: Runtime,
}

impl SweepArgs {
    fn settings(&self) -> Result<Vec<Setting>> {
        if self.settings.is_empty() {
            Ok(Setting::defaults(&self.options.data, self.leave_one_out)?)
        } else {
            Ok(self.settings.clone())
        }
    }

    fn size(&self) -> SweepSize {
        SweepSize {
            hparams: self.hparams,
            trials: self
                .trials
                .unwrap_or_else(|| self.options.preset.preset().trials),
        }
    }

    /// `<results>/<--sweep or <kind>-<dataset>-<preset>>`.
    fn dir(&self, kind: &str) -> PathBuf {
        self.results.join(self.sweep.clone().unwrap_or_else(|| {
            format!(
                "{kind}-{}-{}",
                self.options.data.to_string().replace(['/', ':'], "_"),
                self.options.preset
            )
        }))
    }

    fn launcher(&self) -> Result<Box<dyn Launcher>> {
        Ok(match self.launcher.as_str() {
            "local" => Box::new(match self.parallel {
                Some(n) => Local { parallel: n.max(1) },
                None => Local::fitted(),
            }),
            "dry-run" => Box::new(DryRun),
            other => bail!("--launcher `{other}`: expected local or dry-run"),
        })
    }

    /// Runs the jobs, then (unless a dry run or --no-report) the report; prints where it is.
    fn execute(&self, jobs: &[Job], sweep_dir: &Path) -> Result<()> {
        let launcher = self.launcher()?;
        let ctx = LaunchContext {
            data_root: self.runtime.data_root.clone(),
            device: dgcolor_eval::parse_device(&self.runtime.device)?,
        };
        eprintln!(
            "{}: {} runs under {} ({} launcher)",
            sweep_dir.display(),
            jobs.len(),
            sweep_dir.join("runs").display(),
            launcher.name()
        );
        let reports: Vec<JobReport> = launcher.launch(jobs, &ctx);
        let failed: Vec<&JobReport> = reports.iter().filter(|r| r.result.is_err()).collect();
        for r in &failed {
            eprintln!(
                "FAILED {} ({}): {}",
                r.job.label,
                r.job.dir.display(),
                r.result.as_ref().unwrap_err()
            );
        }
        if launcher.name() == "dry-run" || self.no_report {
            return Ok(());
        }
        report(sweep_dir, &self.runtime)?;
        if !failed.is_empty() {
            bail!(
                "{} of {} runs failed (re-run the same command to retry them)",
                failed.len(),
                jobs.len()
            );
        }
        Ok(())
    }
}

pub fn compare(args: &CompareArgs) -> Result<()> {
    let algorithms: Vec<&'static AlgorithmEntry> = if args.algorithms.is_empty() {
        ALGORITHMS.to_vec()
    } else {
        args.algorithms
            .iter()
            .map(|a| lookup(a))
            .collect::<Result<_, _>>()?
    };
    let s = &args.sweep;
    let dir = s.dir("compare");
    let jobs = compare_jobs(&s.options, &algorithms, &s.settings()?, s.size(), &dir);
    s.execute(&jobs, &dir)
}

pub fn ablate(args: &AblateArgs) -> Result<()> {
    let s = &args.sweep;
    let dir = s.dir("ablate-adain");
    let jobs = ablation_jobs(&s.options, &s.settings()?, s.size(), &dir);
    s.execute(&jobs, &dir)
}

fn report(sweep_dir: &Path, runtime: &Runtime) -> Result<()> {
    let device = dgcolor_eval::parse_device(&runtime.device)?;
    let files = write_report(sweep_dir, &runtime.data_root, &device)?;
    println!("report: {}", files.index.display());
    println!(
        "tables: {} ({} tables, {} plots, {} figures)",
        files.dir.join("tables").display(),
        files.tables.len(),
        files.plots.len(),
        files.figures.len()
    );
    Ok(())
}

pub fn run_report(args: &ReportArgs) -> Result<()> {
    report(&args.sweep_dir, &args.runtime)
}
