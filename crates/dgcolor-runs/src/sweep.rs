//! Sweeps (DomainBed's `sweep.py`): a list of jobs, one run directory per job named by the
//! hash of its spec, executed through a [`Launcher`]: [`Local`] (in this process, spread over
//! devices), [`Slurm`] (one job array per submission) or [`DryRun`]. Finished runs (done
//! marker) are skipped and unfinished ones resume, so re-running a sweep continues where it
//! stopped; [`sweep_status`] says where each run stands. The two sweeps of the paper are built
//! here: every method on every setting ([`compare_jobs`]) and the ablation of the proposed
//! model ([`ablation_jobs`]).

mod local;
mod slurm;
mod status;

pub use local::{worker_devices, Local};
pub use slurm::{
    batch_script, read_submissions, read_task_events, squeue, QueuedTask, Slurm, SlurmOptions,
    Submission, TaskEvent, SLURM_DIR, STDERR_LOG, STDOUT_LOG, SUBMISSIONS, TASK_LOG,
};
pub use status::{print_status, sweep_status, RunState, RunStatus};

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use dgcolor_algorithms::{write_atomic, AlgorithmEntry, HParamOverride};
use dgcolor_data::{leave_one_out_settings, paper_settings, DataSpec};
use dgcolor_models::AdainSkip;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RunError};
use crate::run_dir::{RunDir, CONFIG};
use crate::spec::{RunOptions, RunSpec};
use crate::stop::StopFlag;

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
    /// Another process holds the run directory's lock.
    Running,
    Done,
}

impl Job {
    /// A job whose directory is `<sweep_dir>/runs/<algorithm>-<target>-h<draw>-s<trial>-<hash>`.
    pub fn new(label: impl Into<String>, order: usize, spec: RunSpec, sweep_dir: &Path) -> Self {
        let dir = sweep_dir.join("runs").join(format!(
            "{}-{}-h{}-s{}-{:016x}",
            spec.algorithm.name,
            spec.target.replace(' ', "_"),
            spec.hparams_seed,
            spec.seed,
            spec.hash()
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
        } else if run.is_locked() {
            JobState::Running
        } else if run.file(CONFIG).exists() {
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

    /// The name of the run directory (unique within its sweep).
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub(crate) fn write_sidecar(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(RunError::io(&self.dir))?;
        let path = self.dir.join(JOB_FILE);
        let text = serde_json::to_string_pretty(self).map_err(|e| RunError::format(&path, e))?;
        write_atomic(&path, text.as_bytes()).map_err(RunError::io(&path))
    }
}

/// What every launcher gets besides the jobs.
pub struct LaunchContext {
    /// The sweep's directory (the jobs' run directories are under its `runs/`).
    pub sweep_dir: PathBuf,
    pub data_root: PathBuf,
    /// `--device` as given (cpu, cuda, cuda:N): the local launcher opens it, a cluster
    /// launcher passes it on to its runs.
    pub device: String,
    /// Ends in-process runs at their next step boundary, checkpointed (SIGTERM / SIGUSR1).
    pub stop: StopFlag,
}

/// The outcome of one job.
#[derive(Debug)]
pub struct JobReport {
    pub job: Job,
    pub before: JobState,
    pub result: std::result::Result<(), String>,
}

/// Runs jobs somewhere: [`Local`], [`Slurm`] (which submits [`Job::command`] lines to the
/// scheduler) or [`DryRun`]. `launch` reports on every job it was given.
pub trait Launcher {
    fn name(&self) -> &'static str;
    /// Whether `launch` returns only after the runs ended, so the report can follow; a
    /// scheduler's launcher returns once they are submitted.
    fn waits(&self) -> bool {
        true
    }
    fn launch(&self, jobs: &[Job], ctx: &LaunchContext) -> Vec<JobReport>;
}

/// Prints each job's command and state; runs nothing.
pub struct DryRun;

impl Launcher for DryRun {
    fn name(&self) -> &'static str {
        "dry-run"
    }

    fn waits(&self) -> bool {
        false
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

/// Quotes arguments for a POSIX shell where needed.
pub fn shell_join(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./,=:+".contains(c))
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
    let entries = std::fs::read_dir(&runs).map_err(RunError::io(&runs))?;
    for entry in entries {
        let path = entry.map_err(RunError::io(&runs))?.path().join(JOB_FILE);
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(RunError::io(&path))?;
        jobs.push(serde_json::from_str::<Job>(&text).map_err(|e| RunError::format(&path, e))?);
    }
    jobs.sort_by(|a, b| (a.order, &a.dir).cmp(&(b.order, &b.dir)));
    Ok(jobs)
}

/// One (sources -> target) setting, as `--settings` takes it: `src1+src2:target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub sources: Vec<String>,
    pub target: String,
}

impl FromStr for Setting {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let Some((sources, target)) = s.split_once(':') else {
            return Err(format!("--settings `{s}`: expected src1+src2:target"));
        };
        let sources: Vec<String> = sources.split('+').map(str::to_string).collect();
        if sources.iter().any(String::is_empty) || target.is_empty() {
            return Err(format!("--settings `{s}`: empty domain name"));
        }
        Ok(Self {
            sources,
            target: target.into(),
        })
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.sources.join("+"), self.target)
    }
}

impl Setting {
    /// The paper's settings of a dataset (its two-source settings, or leave-one-domain-out).
    pub fn defaults(data: &DataSpec, leave_one_out: bool) -> Result<Vec<Setting>> {
        let Some(name) = data.settings_name() else {
            return Err(RunError::Config(format!(
                "--data {data}: a plain folder has no paper settings; give --settings src1+src2:target"
            )));
        };
        let settings = if leave_one_out {
            leave_one_out_settings(name)
        } else {
            paper_settings(name)
        };
        Ok(settings
            .into_iter()
            .map(|(s, t)| Setting {
                sources: s.iter().map(|x| x.to_string()).collect(),
                target: t.to_string(),
            })
            .collect())
    }
}

/// How many runs of each (method, setting) a sweep makes (DomainBed's random search):
/// `hparams` hyperparameter draws (draw 0 is the defaults, draws 1.. are random-search
/// draws seeded by their index alone) times `trials` trial seeds (weights, batches, splits),
/// the two independent, so a draw means the same hyperparameters in every trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepSize {
    pub hparams: u64,
    pub trials: u64,
}

impl SweepSize {
    /// (hparams seed, trial seed) of every run.
    fn runs(self) -> impl Iterator<Item = (u64, u64)> {
        (0..self.hparams).flat_map(move |h| (0..self.trials).map(move |t| (h, t)))
    }
}

/// Every algorithm on every setting, hyperparameter draw and trial (the Cartesian
/// product), in table order.
pub fn compare_jobs(
    options: &RunOptions,
    algorithms: &[&'static AlgorithmEntry],
    settings: &[Setting],
    size: SweepSize,
    sweep_dir: &Path,
) -> Vec<Job> {
    let mut jobs = Vec::new();
    for setting in settings {
        for algorithm in algorithms {
            // The registry's position, not the position in `algorithms`: a sweep built by
            // several invocations (`--algorithms dann`, then `--algorithms erm`) keeps one
            // row order.
            let order = algorithm.order();
            for (hparams_seed, seed) in size.runs() {
                let spec = RunSpec {
                    algorithm,
                    sources: setting.sources.clone(),
                    target: setting.target.clone(),
                    seed,
                    hparams_seed,
                    options: options.clone(),
                };
                jobs.push(Job::new(algorithm.name, order, spec, sweep_dir));
            }
        }
    }
    jobs
}

/// The proposed model with the AdaIN skip off and at every valid skip index, plus the model
/// without the adversarial update, without the class head and without content
/// randomization, on every setting, hyperparameter draw and trial.
pub fn ablation_jobs(
    options: &RunOptions,
    settings: &[Setting],
    size: SweepSize,
    sweep_dir: &Path,
) -> Vec<Job> {
    let ours: &'static AlgorithmEntry =
        dgcolor_algorithms::lookup("ours").expect("ours is registered");
    let depth = options.preset.preset().depth;
    let z = AdainSkip::Z.index(depth);
    let flag = |name: &str| HParamOverride {
        name: name.into(),
        value: 0.0,
    };
    // (label, AdaIN skip, extra overrides)
    let mut variants: Vec<(String, Option<AdainSkip>, Vec<HParamOverride>)> =
        vec![("ours".into(), None, vec![])];
    variants.push(("ours, AdaIN off".into(), Some(AdainSkip::None), vec![]));
    for k in 1..depth {
        let note = if Some(k) == z { " (z, default)" } else { "" };
        variants.push((
            format!("ours, AdaIN at skip {k}{note}"),
            Some(AdainSkip::Index(k)),
            vec![],
        ));
    }
    variants.push((
        "ours, no adversarial update".into(),
        None,
        vec![flag("use_adv")],
    ));
    variants.push(("ours, no class head".into(), None, vec![flag("use_class")]));
    variants.push((
        "ours, no content randomization".into(),
        None,
        vec![flag("use_cr")],
    ));
    let mut jobs = Vec::new();
    for setting in settings {
        for (order, (label, adain, set)) in variants.iter().enumerate() {
            for (hparams_seed, seed) in size.runs() {
                let mut options = options.clone();
                if adain.is_some() {
                    options.adain = *adain;
                }
                options.set.extend(set.iter().cloned());
                let spec = RunSpec {
                    algorithm: ours,
                    sources: setting.sources.clone(),
                    target: setting.target.clone(),
                    seed,
                    hparams_seed,
                    options,
                };
                jobs.push(Job::new(label.clone(), order, spec, sweep_dir));
            }
        }
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_rows_follow_the_registry_whatever_the_order_asked() {
        let pick = |names: &[&str]| -> Vec<&'static AlgorithmEntry> {
            names
                .iter()
                .map(|n| dgcolor_algorithms::lookup(n).unwrap())
                .collect()
        };
        let settings = [Setting {
            sources: vec!["photo".into(), "cartoon".into()],
            target: "art_painting".into(),
        }];
        let size = SweepSize {
            hparams: 1,
            trials: 1,
        };
        let order_of = |names: &[&str]| -> Vec<(String, usize)> {
            let jobs = compare_jobs(
                &RunOptions::default(),
                &pick(names),
                &settings,
                size,
                Path::new("s"),
            );
            jobs.into_iter().map(|j| (j.label, j.order)).collect()
        };
        // Two invocations of one sweep, each with its own --algorithms list.
        assert_eq!(
            order_of(&["ours", "dann"]),
            [("ours".into(), 9), ("dann".into(), 1)]
        );
        assert_eq!(order_of(&["erm"]), [("erm".into(), 0)]);
    }
}
