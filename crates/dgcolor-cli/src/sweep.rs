//! `dgcolor compare`, `dgcolor ablate-adain` and `dgcolor report`: the sweeps of the paper
//! (dataset x settings x methods x seeds) through a launcher (here, over local devices, or as
//! Slurm job arrays), then the collect step. Re-running a sweep skips finished runs and
//! resumes unfinished ones; `--status` says where each run stands.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use dgcolor_algorithms::{lookup, AlgorithmEntry, ALGORITHMS};
use dgcolor_report::write_report;
use dgcolor_runs::sweep::{
    ablation_jobs, compare_jobs, print_status, sweep_status, DryRun, Job, JobReport, LaunchContext,
    Launcher, Local, RunState, Setting, Slurm, SlurmOptions, SweepSize,
};
use dgcolor_runs::{signal_name, RunOptions, StopFlag, EXIT_STOPPED};

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
    /// local (runs here, then the report), slurm (submits a Slurm job array and returns; run
    /// `dgcolor report` once the runs are done) or dry-run (prints the commands).
    #[arg(long, default_value = "local")]
    pub launcher: String,
    /// Local launcher: runs at a time on each device (default: one per two cores; one per
    /// device with --devices).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub parallel: Option<u64>,
    /// Local launcher: spread the runs over these devices, round-robin, --parallel at a time
    /// on each (e.g. cuda:0,cuda:1,cuda:2,cuda:3: one run per GPU).
    #[arg(long, value_delimiter = ',', conflicts_with = "device")]
    pub devices: Vec<String>,
    #[command(flatten)]
    pub slurm: SlurmOptions,
    /// Print where each run stands instead of running anything: done, running, pending,
    /// failed, unfinished or new, its Slurm task and the step of its last record.
    #[arg(long, conflicts_with = "resubmit_failed")]
    pub status: bool,
    /// Launch only the runs that failed or stopped unfinished (neither done, nor queued, nor
    /// running), e.g. as a new Slurm job array.
    #[arg(long)]
    pub resubmit_failed: bool,
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
        let local = self.launcher == "local";
        if !local && (!self.devices.is_empty() || self.parallel.is_some()) {
            bail!("--devices and --parallel are options of the local launcher");
        }
        if self.launcher != "slurm" && self.slurm != SlurmOptions::default() {
            bail!("the --slurm-* options need --launcher slurm");
        }
        Ok(match self.launcher.as_str() {
            "local" => Box::new(match (self.parallel, self.devices.is_empty()) {
                (None, true) => Local::fitted(),
                (parallel, _) => Local {
                    parallel: parallel.unwrap_or(1) as usize,
                    devices: self.devices.clone(),
                },
            }),
            "slurm" => Box::new(Slurm {
                options: self.slurm.clone(),
                exe: std::env::current_exe()?,
            }),
            "dry-run" => Box::new(DryRun),
            other => bail!("--launcher `{other}`: expected local, slurm or dry-run"),
        })
    }

    /// `--status`, or runs the jobs (only the failed and unfinished ones with
    /// `--resubmit-failed`), then, when the launcher waited for them and unless
    /// `--no-report`, the report; prints where it is.
    fn execute(&self, jobs: &[Job], sweep_dir: &Path) -> Result<()> {
        if self.status {
            print!("{}", print_status(&sweep_status(jobs, sweep_dir)?));
            return Ok(());
        }
        let launcher = self.launcher()?;
        let retry: Vec<Job>;
        let jobs = if self.resubmit_failed {
            retry = sweep_status(jobs, sweep_dir)?
                .into_iter()
                .filter(|s| matches!(s.state, RunState::Failed | RunState::Unfinished))
                .map(|s| s.job)
                .collect();
            if retry.is_empty() {
                println!("no failed or unfinished run to resubmit");
                return Ok(());
            }
            &retry[..]
        } else {
            jobs
        };
        // Runs in this process stop at their next step, checkpointed, on SIGTERM / SIGUSR1.
        let stop = if launcher.waits() {
            StopFlag::on_signals()?
        } else {
            StopFlag::default()
        };
        let ctx = LaunchContext {
            sweep_dir: sweep_dir.to_path_buf(),
            data_root: self.runtime.data_root.clone(),
            device: self.runtime.device.clone(),
            stop: stop.clone(),
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
        if let Some(signal) = stop.signal() {
            eprintln!(
                "stopped by {}: the runs in progress are checkpointed; re-run the same command to resume",
                signal_name(signal)
            );
            std::process::exit(EXIT_STOPPED);
        }
        if !launcher.waits() || self.no_report {
            if !failed.is_empty() {
                bail!("{} of {} runs were not launched", failed.len(), jobs.len());
            }
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
