//! Sweeps (DomainBed's `sweep.py`): a list of jobs, one run directory per job named by a
//! hash of its spec, executed through a [`Launcher`]. Finished runs (done marker) are
//! skipped and unfinished ones resume, so re-running a sweep continues where it stopped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use candle_core::Device;
use dgcolor_algorithms::write_atomic;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::run::RunDir;
use crate::spec::RunSpec;
use crate::train::{train, TrainOptions};

/// Sidecar of every run directory of a sweep: what to call the run in tables and where it
/// goes in row order.
pub const JOB_FILE: &str = "job.json";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Row label in tables (the algorithm, or an ablation variant).
    pub label: String,
    /// Row order in tables.
    pub order: usize,
    pub spec: RunSpec,
    pub dir: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum JobState {
    New,
    Unfinished,
    Done,
}

impl Job {
    /// A job whose directory is `<sweep_dir>/runs/<algorithm>-<target>-s<seed>-<hash>`.
    pub fn new(label: impl Into<String>, order: usize, spec: RunSpec, sweep_dir: &Path) -> Self {
        let dir = sweep_dir.join("runs").join(format!(
            "{}-{}-s{}-{:016x}",
            spec.algorithm,
            spec.target.replace(' ', "_"),
            spec.seed,
            spec_hash(&spec)
        ));
        Self {
            label: label.into(),
            order,
            spec,
            dir,
        }
    }

    pub fn state(&self) -> JobState {
        let run = RunDir::new(&self.dir);
        if run.is_done() {
            JobState::Done
        } else if run.file(crate::run::CONFIG).exists() {
            JobState::Unfinished
        } else {
            JobState::New
        }
    }

    /// The command line that runs this job with the CLI.
    pub fn command(&self, data_root: &Path) -> Vec<String> {
        let mut c = vec!["dgcolor".to_string(), "train".into()];
        c.extend(self.spec.to_args());
        c.extend([
            "--data-root".into(),
            data_root.display().to_string(),
            "--out".into(),
            self.dir.display().to_string(),
        ]);
        c
    }

    fn write_sidecar(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(EvalError::io(&self.dir))?;
        let path = self.dir.join(JOB_FILE);
        let text = serde_json::to_string_pretty(self).map_err(|e| EvalError::format(&path, e))?;
        write_atomic(&path, text.as_bytes()).map_err(EvalError::io(&path))
    }
}

/// A stable 64-bit FNV-1a hash of the spec's JSON (field order is the struct's).
pub fn spec_hash(spec: &RunSpec) -> u64 {
    let json = serde_json::to_string(spec).expect("RunSpec serialises");
    json.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What every launcher gets besides the jobs.
pub struct LaunchContext {
    pub data_root: PathBuf,
    pub device: Device,
}

/// The outcome of one job.
#[derive(Debug)]
pub struct JobReport {
    pub job: Job,
    pub before: JobState,
    pub result: std::result::Result<(), String>,
}

/// Runs jobs somewhere. `local` and `dry-run` ship; a cluster launcher submits
/// [`Job::command`] lines to its scheduler and implements the same trait.
pub trait Launcher {
    fn name(&self) -> &'static str;
    fn launch(&self, jobs: &[Job], ctx: &LaunchContext) -> Vec<JobReport>;
}

/// Prints each job's command and state; runs nothing.
pub struct DryRun;

impl Launcher for DryRun {
    fn name(&self) -> &'static str {
        "dry-run"
    }

    fn launch(&self, jobs: &[Job], ctx: &LaunchContext) -> Vec<JobReport> {
        jobs.iter()
            .map(|job| {
                let state = job.state();
                println!(
                    "# {} [{:?}]\n{}",
                    job.label,
                    state,
                    shell_join(&job.command(&ctx.data_root))
                );
                JobReport {
                    job: job.clone(),
                    before: state,
                    result: Ok(()),
                }
            })
            .collect()
    }
}

/// Runs jobs in this process, `parallel` at a time (each run also uses candle's own
/// threads). Done jobs are skipped; a failing job is reported and the others go on.
pub struct Local {
    pub parallel: usize,
}

impl Local {
    /// One run per two cores: candle already spreads each run over the cores it has.
    pub fn fitted() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            parallel: (cores / 2).max(1),
        }
    }
}

impl Launcher for Local {
    fn name(&self) -> &'static str {
        "local"
    }

    fn launch(&self, jobs: &[Job], ctx: &LaunchContext) -> Vec<JobReport> {
        let next = AtomicUsize::new(0);
        let finished = AtomicUsize::new(0);
        let reports = Mutex::new(Vec::new());
        let work = || loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(job) = jobs.get(i) else { break };
            let before = job.state();
            let result = if before == JobState::Done {
                Ok(())
            } else {
                run_job(job, ctx).map_err(|e| e.to_string())
            };
            let n = finished.fetch_add(1, Ordering::SeqCst) + 1;
            let status = match (&result, before) {
                (Err(e), _) => format!("FAILED: {e}"),
                (Ok(()), JobState::Done) => "already done".into(),
                (Ok(()), JobState::Unfinished) => "resumed and finished".into(),
                (Ok(()), JobState::New) => "finished".into(),
            };
            eprintln!(
                "[{n}/{}] {} {}->{} seed {}: {status}",
                jobs.len(),
                job.label,
                job.spec.sources.join("+"),
                job.spec.target,
                job.spec.seed
            );
            reports.lock().expect("reports lock").push(JobReport {
                job: job.clone(),
                before,
                result,
            });
        };
        // The calling thread is one of the workers: in a binary it is the main thread, a
        // worker of rayon's pool (`dgcolor_kernels::setup_process`), where a training run's
        // parallel sections start without a hand-off; a spawned thread would leave it idle.
        std::thread::scope(|scope| {
            for _ in 1..self.parallel.max(1).min(jobs.len().max(1)) {
                scope.spawn(work);
            }
            work();
        });
        let mut reports = reports.into_inner().expect("reports lock");
        reports.sort_by_key(|r| r.job.order);
        reports
    }
}

fn run_job(job: &Job, ctx: &LaunchContext) -> Result<()> {
    job.write_sidecar()?;
    let config = job.spec.config(&ctx.data_root)?;
    train(&TrainOptions {
        config,
        out: job.dir.clone(),
        data_root: ctx.data_root.clone(),
        device: ctx.device.clone(),
        progress: false,
        stop_after: None,
    })?;
    Ok(())
}

/// Quotes arguments for a POSIX shell where needed.
pub fn shell_join(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./,=:".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every job sidecar under `<sweep_dir>/runs`, in row order.
pub fn read_jobs(sweep_dir: &Path) -> Result<Vec<Job>> {
    let runs = sweep_dir.join("runs");
    let mut jobs = Vec::new();
    let entries = std::fs::read_dir(&runs).map_err(EvalError::io(&runs))?;
    for entry in entries {
        let path = entry.map_err(EvalError::io(&runs))?.path().join(JOB_FILE);
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(EvalError::io(&path))?;
        jobs.push(serde_json::from_str::<Job>(&text).map_err(|e| EvalError::format(&path, e))?);
    }
    jobs.sort_by(|a, b| (a.order, &a.dir).cmp(&(b.order, &b.dir)));
    Ok(jobs)
}
