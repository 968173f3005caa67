//! The Slurm launcher: each submission is one `sbatch --array` job with one task per run that
//! is neither done nor already queued. Under `<sweep>/slurm/`:
//!
//! - `NNN/job.sbatch`: the batch script (its `#SBATCH` lines hold every option), and
//!   `NNN/tasks.txt` beside it: line `i + 1` is task `i`'s run directory and its
//!   `dgcolor train` command ([`Job::command`] with the submitting binary's absolute path);
//!   `NNN/task-<job>_<task>.out` is the batch shell's own output.
//! - `submissions.jsonl`: one [`Submission`] per `sbatch` (array job id, the runs in task
//!   order), which `--status` joins with `squeue`.
//!
//! Each task appends its trainer's output to `stdout.log` / `stderr.log` in the run directory
//! and one [`TaskEvent`] line to `slurm.jsonl` when it starts and when its trainer ends.
//!
//! Signals. The script asks for SIGUSR1 to the batch shell `--slurm-warn` seconds before the
//! time limit (`--signal=B:USR1@T`) and is `--requeue`-able. The shell passes SIGUSR1 and
//! SIGTERM on to the trainer, which checkpoints at its next step boundary, releases the run
//! directory's lock and exits with [`EXIT_STOPPED`]. After SIGUSR1 the script then requeues
//! its own task (`scontrol requeue <job>_<task>`), which starts again from the top and resumes
//! from the checkpoint. SIGTERM comes with a cancellation (the task then ends, `--status`
//! calls it failed, and `--resubmit-failed` resumes it), a preemption in requeue mode or an
//! `scontrol requeue` (Slurm puts the task back in the queue itself). The run directory's
//! lock keeps a second copy of a run from training while the first one still holds it.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Args;
use serde::{Deserialize, Serialize};

use super::{shell_join, Job, JobReport, JobState, LaunchContext, Launcher};
use crate::error::{Result, RunError};
use crate::stop::EXIT_STOPPED;

/// The sweep's Slurm directory (under the sweep directory).
pub const SLURM_DIR: &str = "slurm";
/// One [`Submission`] per line, in submission order (under [`SLURM_DIR`]).
pub const SUBMISSIONS: &str = "submissions.jsonl";
/// A run directory's [`TaskEvent`]s, one JSON line each.
pub const TASK_LOG: &str = "slurm.jsonl";
/// The trainer's output in a run directory, appended to by every task that runs it.
pub const STDOUT_LOG: &str = "stdout.log";
pub const STDERR_LOG: &str = "stderr.log";

/// The `sbatch` options of a submission (`dgcolor compare --launcher slurm --slurm-...`).
#[derive(Args, Clone, Debug, PartialEq)]
pub struct SlurmOptions {
    /// Slurm: the partition of the runs (sbatch --partition).
    #[arg(long = "slurm-partition", value_name = "NAME")]
    pub partition: Option<String>,
    /// Slurm: time limit of one run (sbatch --time: MINUTES, HH:MM:SS or D-HH:MM:SS). A run
    /// still training --slurm-warn seconds before it checkpoints and goes back into the queue.
    #[arg(long = "slurm-time", value_name = "TIME")]
    pub time: Option<String>,
    /// Slurm: generic resources of one run (sbatch --gres), e.g. gpu:1.
    #[arg(long = "slurm-gres", value_name = "GRES")]
    pub gres: Option<String>,
    /// Slurm: CPUs of one run (sbatch --cpus-per-task; also the run's RAYON_NUM_THREADS
    /// unless that is set when submitting).
    #[arg(long = "slurm-cpus", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub cpus: Option<u32>,
    /// Slurm: memory of one run (sbatch --mem), e.g. 32G.
    #[arg(long = "slurm-mem", value_name = "MEM")]
    pub mem: Option<String>,
    /// Slurm: at most K runs of a submission at once (sbatch --array=0-N%K).
    #[arg(long = "slurm-max-running", value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_running: Option<u64>,
    /// Slurm: seconds before the time limit at which a run is told to checkpoint and requeue
    /// itself (sbatch --signal=B:USR1@SECONDS; Slurm may send it up to a minute earlier).
    #[arg(long = "slurm-warn", value_name = "SECONDS", default_value_t = 120)]
    pub warn: u32,
    /// Slurm: one more #SBATCH line, e.g. --slurm-sbatch=--account=lab or
    /// --slurm-sbatch=--qos=long (repeatable).
    #[arg(
        long = "slurm-sbatch",
        value_name = "OPTION",
        allow_hyphen_values = true
    )]
    pub extra: Vec<String>,
}

impl Default for SlurmOptions {
    fn default() -> Self {
        Self {
            partition: None,
            time: None,
            gres: None,
            cpus: None,
            mem: None,
            max_running: None,
            warn: 120,
            extra: Vec::new(),
        }
    }
}

impl SlurmOptions {
    /// Every `#SBATCH` option of a submission of `tasks` runs, in the script's order.
    pub fn directives(&self, job_name: &str, tasks: usize, output: &Path) -> Vec<String> {
        let mut array = format!("--array=0-{}", tasks.saturating_sub(1));
        if let Some(k) = self.max_running {
            array.push_str(&format!("%{k}"));
        }
        let mut d = vec![
            format!("--job-name={job_name}"),
            array,
            format!("--output={}", output.display()),
            "--open-mode=append".into(),
            "--requeue".into(),
            format!("--signal=B:USR1@{}", self.warn),
        ];
        let mut opt = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                d.push(format!("--{flag}={v}"));
            }
        };
        opt("partition", self.partition.clone());
        opt("time", self.time.clone());
        opt("gres", self.gres.clone());
        opt("cpus-per-task", self.cpus.map(|c| c.to_string()));
        opt("mem", self.mem.clone());
        d.extend(self.extra.iter().map(|e| {
            e.trim()
                .strip_prefix("#SBATCH")
                .map_or(e.trim(), str::trim)
                .to_string()
        }));
        d
    }

    /// Refuses values a `#SBATCH` line cannot hold.
    fn check(&self) -> Result<()> {
        let values = [&self.partition, &self.time, &self.gres, &self.mem];
        for v in values.into_iter().flatten().chain(&self.extra) {
            if v.contains(['\n', '\r']) || v.trim().is_empty() {
                return Err(RunError::Config(format!(
                    "Slurm option `{}`: a #SBATCH line must be one non-empty line",
                    v.escape_debug()
                )));
            }
        }
        for e in &self.extra {
            let e = e.trim().strip_prefix("#SBATCH").map_or(e.trim(), str::trim);
            if !e.starts_with('-') {
                return Err(RunError::Config(format!(
                    "--slurm-sbatch `{e}`: expected an sbatch option such as --account=NAME"
                )));
            }
        }
        Ok(())
    }
}

/// The batch script of a submission: the `#SBATCH` lines, then the task's part: find its line
/// in `tasks_file`, run the trainer in the background with its output in the run directory,
/// pass SIGUSR1 / SIGTERM on to it, record how it ended, and requeue the task when a
/// time-limit warning (SIGUSR1) made it checkpoint and stop.
pub fn batch_script(header: &str, directives: &[String], tasks_file: &Path) -> String {
    let mut s = String::from("#!/bin/bash\n");
    for line in header.lines() {
        s.push_str(&format!("# {line}\n"));
    }
    for d in directives {
        s.push_str(&format!("#SBATCH {d}\n"));
    }
    let tasks = shell_join(&[tasks_file.display().to_string()]);
    s.push_str(
        &TASK_SCRIPT
            .replace("@TASKS@", &tasks)
            .replace("@STOPPED@", &EXIT_STOPPED.to_string()),
    );
    s
}

const TASK_SCRIPT: &str = r#"set -u
tasks=@TASKS@
line=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$tasks")
if [ -z "$line" ]; then
  echo "dgcolor: no task $SLURM_ARRAY_TASK_ID in $tasks" >&2
  exit 2
fi
# The line is shell-quoted words: the run directory, then the command.
eval "set -- $line"
run=$1
shift
mkdir -p "$run"
task=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}
if [ -n "${SLURM_CPUS_PER_TASK:-}" ] && [ -z "${RAYON_NUM_THREADS:-}" ]; then
  export RAYON_NUM_THREADS=$SLURM_CPUS_PER_TASK
fi
event() {
  printf '{"event":"%s","task":"%s","restart":%d,"host":"%s","time":%d%s}\n' \
    "$1" "$task" "${SLURM_RESTART_COUNT:-0}" "$(hostname)" "$(date +%s)" "${2:-}" \
    >>"$run/slurm.jsonl"
}
# Slurm signals this shell, not the trainer: SIGUSR1 before the time limit
# (--signal=B:USR1@T), SIGTERM when the task is cancelled, preempted or requeued. Both go on
# to the trainer, which checkpoints at its next step and exits with status @STOPPED@.
signal=
child=
interrupted=
trap 'signal=USR1; interrupted=1; [ -n "$child" ] && kill -USR1 "$child" 2>/dev/null' USR1
trap 'signal=TERM; interrupted=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM
event start
"$@" >>"$run/stdout.log" 2>>"$run/stderr.log" &
child=$!
status=
while :; do
  interrupted=
  wait "$child"
  rc=$?
  # 127 after a first status: that status was already collected (a signal came right
  # after the trainer ended).
  if [ "$rc" -ne 127 ] || [ -z "$status" ]; then
    status=$rc
  fi
  # A trapped signal ends `wait` early while the trainer is still checkpointing: wait again.
  [ -n "$interrupted" ] || break
done
event end ",\"status\":$status,\"signal\":\"$signal\""
if [ "$status" -eq @STOPPED@ ] && [ "$signal" = USR1 ]; then
  # Warned of the time limit, the run checkpointed: back into the queue, to resume there.
  # (Recorded first: Slurm ends this shell once the requeue is under way.)
  event requeue
  if scontrol requeue "$task"; then
    exit 0
  fi
  event requeue_failed
  echo "dgcolor: scontrol requeue $task failed; resubmit with --resubmit-failed" >&2
fi
exit "$status"
"#;

/// One `sbatch` of a sweep (a line of `submissions.jsonl`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// The array job's id.
    pub job_id: String,
    /// Run directory names (under `<sweep>/runs`): task `i` runs `runs[i]`.
    pub runs: Vec<String>,
    pub script: PathBuf,
    /// Seconds since the Unix epoch.
    pub submitted: u64,
}

/// A line of a run directory's `slurm.jsonl`, written by the batch script.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskEvent {
    /// `start`, `end` (the trainer ended), `requeue` (the task is requeueing itself after a
    /// time-limit warning) or `requeue_failed`.
    pub event: String,
    /// `<array job>_<index>`.
    pub task: String,
    /// Slurm's restart count of the task (requeues so far).
    pub restart: u32,
    pub host: String,
    pub time: u64,
    /// The trainer's exit status (`end`).
    #[serde(default)]
    pub status: Option<i32>,
    /// The signal the batch shell got and passed on, if any (`end`).
    #[serde(default)]
    pub signal: Option<String>,
}

/// The task events of a run directory, oldest first (unreadable lines skipped).
pub fn read_task_events(run_dir: &Path) -> Vec<TaskEvent> {
    std::fs::read_to_string(run_dir.join(TASK_LOG))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Every submission of the sweep, oldest first (none before the first).
pub fn read_submissions(sweep_dir: &Path) -> Result<Vec<Submission>> {
    let path = sweep_dir.join(SLURM_DIR).join(SUBMISSIONS);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path).map_err(RunError::io(&path))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| RunError::format(&path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}

/// The latest task of every run ever submitted: run directory name -> (array job, index).
pub(crate) fn latest_tasks(submissions: &[Submission]) -> HashMap<String, (String, usize)> {
    let mut tasks = HashMap::new();
    for s in submissions {
        for (i, run) in s.runs.iter().enumerate() {
            tasks.insert(run.clone(), (s.job_id.clone(), i));
        }
    }
    tasks
}

/// A task Slurm still holds (`squeue`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedTask {
    /// PENDING, RUNNING, COMPLETING, REQUEUED, ...
    pub state: String,
    /// Why it waits (`Resources`, `BeginTime`, ...; `None` while it runs).
    pub reason: String,
}

impl QueuedTask {
    /// Whether its processes are (or may still be) running.
    pub fn is_running(&self) -> bool {
        matches!(
            self.state.as_str(),
            "RUNNING" | "COMPLETING" | "CONFIGURING" | "SIGNALING" | "STAGE_OUT" | "RESIZING"
        )
    }
}

/// The tasks of the given array jobs that `squeue` lists (this user's), by (job, index).
/// Fails when `squeue` cannot run or fails: without it no queued task can be told apart from
/// a failed one.
pub fn squeue(job_ids: &[String]) -> Result<HashMap<(String, usize), QueuedTask>> {
    if job_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let out = Command::new("squeue")
        .args(["--noheader", "--array", "--me", "--format=%F|%K|%T|%r"])
        .output()
        .map_err(|e| RunError::Config(format!("cannot run squeue: {e}")))?;
    if !out.status.success() {
        return Err(RunError::Config(format!(
            "squeue failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(parse_squeue(&String::from_utf8_lossy(&out.stdout), job_ids))
}

fn parse_squeue(text: &str, job_ids: &[String]) -> HashMap<(String, usize), QueuedTask> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.trim().split('|');
            let (job, task, state, reason) = (f.next()?, f.next()?, f.next()?, f.next()?);
            let task: usize = task.parse().ok()?;
            job_ids.iter().any(|j| j == job).then(|| {
                (
                    (job.to_string(), task),
                    QueuedTask {
                        state: state.to_string(),
                        reason: reason.to_string(),
                    },
                )
            })
        })
        .collect()
}

/// How finished tasks of the given array jobs ended according to Slurm's accounting
/// (`sacct`: state and exit code, e.g. `TIMEOUT 0:0`), or `None` where accounting is off
/// (the test cluster) or `sacct` fails.
pub(crate) fn sacct(job_ids: &[String]) -> Option<HashMap<(String, usize), String>> {
    if job_ids.is_empty() {
        return Some(HashMap::new());
    }
    let out = Command::new("sacct")
        .args([
            "--noheader",
            "--parsable2",
            "--allocations",
            "--format=JobID,State,ExitCode",
        ])
        .arg(format!("--jobs={}", job_ids.join(",")))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| parse_sacct(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_sacct(text: &str) -> HashMap<(String, usize), String> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.trim().split('|');
            let (id, state, exit) = (f.next()?, f.next()?, f.next()?);
            let (job, task) = id.split_once('_')?;
            Some((
                (job.to_string(), task.parse().ok()?),
                format!("{state} {exit}"),
            ))
        })
        .collect()
}

/// Submits sweeps to Slurm as job arrays (see the module's documentation).
pub struct Slurm {
    pub options: SlurmOptions,
    /// The `dgcolor` binary the tasks run (the submitting one: `std::env::current_exe`).
    pub exe: PathBuf,
}

impl Launcher for Slurm {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn waits(&self) -> bool {
        false
    }

    fn launch(&self, jobs: &[Job], ctx: &LaunchContext) -> Vec<JobReport> {
        match self.submit(jobs, ctx) {
            Ok(reports) => reports,
            Err(e) => jobs
                .iter()
                .map(|job| JobReport {
                    job: job.clone(),
                    before: job.state(),
                    result: Err(e.to_string()),
                })
                .collect(),
        }
    }
}

impl Slurm {
    /// Submits every job that is neither done, nor queued or running in Slurm (its latest
    /// task still listed by `squeue`), nor locked by another process, as one array job.
    /// Before that each is prepared (its data opened, synth generated once, its options
    /// checked), so nothing that would fail in the first second of a task reaches the queue.
    pub fn submit(&self, jobs: &[Job], ctx: &LaunchContext) -> Result<Vec<JobReport>> {
        self.options.check()?;
        let absolute = |p: &Path| std::path::absolute(p).map_err(RunError::io(p));
        let sweep_dir = absolute(&ctx.sweep_dir)?;
        let data_root = absolute(&ctx.data_root)?;
        let slurm_dir = sweep_dir.join(SLURM_DIR);
        std::fs::create_dir_all(&slurm_dir).map_err(RunError::io(&slurm_dir))?;
        // One submitter at a time per sweep, so two never queue the same run.
        let lock_path = slurm_dir.join("submit.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(RunError::io(&lock_path))?;
        lock.lock().map_err(RunError::io(&lock_path))?;

        let submissions = read_submissions(&sweep_dir)?;
        let latest = latest_tasks(&submissions);
        let ids: Vec<String> = submissions.iter().map(|s| s.job_id.clone()).collect();
        let queue = squeue(&ids)?;
        let mut reports = Vec::new();
        let mut chosen = Vec::new();
        for job in jobs {
            let before = job.state();
            let queued = latest
                .get(&job.name())
                .filter(|t| queue.contains_key(*t))
                .map(|(id, i)| format!("{id}_{i}"));
            let note = match (before, queued) {
                (JobState::Done, _) => Some("already done".to_string()),
                (_, Some(task)) => Some(format!("already queued as {task}")),
                (JobState::Running, None) => {
                    Some("running elsewhere (its directory is locked)".into())
                }
                _ => None,
            };
            match note {
                Some(note) => {
                    eprintln!("{} ({}): {note}", job.label, job.name());
                    reports.push(JobReport {
                        job: job.clone(),
                        before,
                        result: Ok(()),
                    });
                }
                None => chosen.push((job, before)),
            }
        }
        let mut ready = Vec::new();
        for (job, before) in chosen {
            match job.spec.prepare(&data_root) {
                Ok(_) => {
                    job.write_sidecar()?;
                    ready.push((job, before));
                }
                Err(e) => reports.push(JobReport {
                    job: job.clone(),
                    before,
                    result: Err(e.to_string()),
                }),
            }
        }
        if ready.is_empty() {
            println!("nothing to submit");
            reports.sort_by_key(|r| r.job.order);
            return Ok(reports);
        }

        let dir = (submissions.len() + 1..)
            .map(|n| slurm_dir.join(format!("{n:03}")))
            .find(|d| !d.exists())
            .expect("a free submission directory");
        std::fs::create_dir_all(&dir).map_err(RunError::io(&dir))?;
        let exe = absolute(&self.exe)?;
        let mut tasks = String::new();
        for (job, _) in &ready {
            let run_dir = sweep_dir.join("runs").join(job.name());
            let mut command = Job {
                dir: run_dir.clone(),
                ..(*job).clone()
            }
            .command(&data_root);
            command[0] = exe.display().to_string();
            command.extend(["--device".into(), ctx.device.clone(), "--quiet".into()]);
            let mut words = vec![run_dir.display().to_string()];
            words.extend(command);
            if words.iter().any(|w| w.contains(['\n', '\r'])) {
                return Err(RunError::Config(format!(
                    "{}: a path with a line break cannot go into a tasks file",
                    run_dir.display()
                )));
            }
            tasks.push_str(&shell_join(&words));
            tasks.push('\n');
        }
        let tasks_file = dir.join("tasks.txt");
        std::fs::write(&tasks_file, &tasks).map_err(RunError::io(&tasks_file))?;
        let sweep_name = sweep_dir
            .file_name()
            .map_or("sweep".into(), |n| n.to_string_lossy().into_owned());
        let output = dir.join("task-%A_%a.out");
        if output.display().to_string().contains(char::is_whitespace) {
            return Err(RunError::Config(format!(
                "{}: Slurm's #SBATCH --output cannot hold a path with spaces; use another --results",
                sweep_dir.display()
            )));
        }
        let directives =
            self.options
                .directives(&format!("dgcolor:{sweep_name}"), ready.len(), &output);
        let header = format!(
            "dgcolor sweep {}: {} runs, one array task each. Task i runs line i+1 of\n\
             tasks.txt beside this script: the run directory, then its `dgcolor train` command.",
            sweep_dir.display(),
            ready.len()
        );
        let script = dir.join("job.sbatch");
        std::fs::write(&script, batch_script(&header, &directives, &tasks_file))
            .map_err(RunError::io(&script))?;

        let out = Command::new("sbatch")
            .arg("--parsable")
            .arg(&script)
            .output()
            .map_err(|e| RunError::Config(format!("cannot run sbatch: {e}")))?;
        if !out.status.success() {
            return Err(RunError::Config(format!(
                "sbatch {} failed ({}): {}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        // `--parsable` prints `<id>` or `<id>;<cluster>`.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let job_id = stdout.trim().split(';').next().unwrap_or("").to_string();
        if job_id.is_empty() || !job_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(RunError::Config(format!(
                "sbatch printed no job id: `{}`",
                stdout.trim()
            )));
        }
        let submission = Submission {
            job_id: job_id.clone(),
            runs: ready.iter().map(|(j, _)| j.name()).collect(),
            script: script.clone(),
            submitted: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let path = slurm_dir.join(SUBMISSIONS);
        let mut line =
            serde_json::to_string(&submission).map_err(|e| RunError::format(&path, e))?;
        line.push('\n');
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(RunError::io(&path))?;
        let what = match ready.len() {
            1 => "1 run as task 0".to_string(),
            n => format!("{n} runs as tasks 0-{}", n - 1),
        };
        println!(
            "submitted batch job {job_id}: {what} ({})",
            script.display()
        );
        for (job, before) in ready {
            reports.push(JobReport {
                job: job.clone(),
                before,
                result: Ok(()),
            });
        }
        reports.sort_by_key(|r| r.job.order);
        Ok(reports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_hold_every_option() {
        let options = SlurmOptions {
            partition: Some("gpu".into()),
            time: Some("2:00:00".into()),
            gres: Some("gpu:1".into()),
            cpus: Some(8),
            mem: Some("32G".into()),
            max_running: Some(4),
            warn: 300,
            extra: vec!["--account=lab".into(), "#SBATCH --qos=long".into()],
        };
        let d = options.directives("dgcolor:t", 12, Path::new("/s/slurm/001/task-%A_%a.out"));
        assert_eq!(
            d,
            [
                "--job-name=dgcolor:t",
                "--array=0-11%4",
                "--output=/s/slurm/001/task-%A_%a.out",
                "--open-mode=append",
                "--requeue",
                "--signal=B:USR1@300",
                "--partition=gpu",
                "--time=2:00:00",
                "--gres=gpu:1",
                "--cpus-per-task=8",
                "--mem=32G",
                "--account=lab",
                "--qos=long",
            ]
        );
        let d = SlurmOptions::default().directives("x", 1, Path::new("/o"));
        assert_eq!(d[1], "--array=0-0");
        assert_eq!(d[5], "--signal=B:USR1@120");
        assert_eq!(d.len(), 6);
    }

    #[test]
    fn bad_options_are_refused() {
        let bad = |o: SlurmOptions| o.check().unwrap_err().to_string();
        assert!(bad(SlurmOptions {
            partition: Some("a\nb".into()),
            ..Default::default()
        })
        .contains("one non-empty line"));
        assert!(bad(SlurmOptions {
            extra: vec!["account=lab".into()],
            ..Default::default()
        })
        .contains("expected an sbatch option"));
    }

    #[test]
    fn the_script_finds_its_task_line_and_passes_signals_on() {
        let s = batch_script(
            "a sweep\nsecond line",
            &["--array=0-1".into()],
            Path::new("/a b/tasks.txt"),
        );
        assert!(s.starts_with("#!/bin/bash\n# a sweep\n# second line\n#SBATCH --array=0-1\n"));
        assert!(s.contains("tasks='/a b/tasks.txt'\n"));
        assert!(s.contains("kill -USR1 \"$child\"") && s.contains("kill -TERM \"$child\""));
        assert!(s.contains("if [ \"$status\" -eq 75 ] && [ \"$signal\" = USR1 ]; then"));
        assert!(!s.contains("@TASKS@") && !s.contains("@STOPPED@"));
    }

    #[test]
    fn squeue_and_sacct_lines_are_read() {
        let q = parse_squeue(
            "12|0|RUNNING|None\n12|3|PENDING|BeginTime\n99|0|RUNNING|None\n13|N/A|PENDING|Priority\n",
            &["12".into(), "13".into()],
        );
        assert_eq!(q.len(), 2);
        assert!(q[&("12".into(), 0)].is_running());
        assert_eq!(q[&("12".into(), 3)].reason, "BeginTime");
        assert!(!q[&("12".into(), 3)].is_running());
        let a = parse_sacct("12_0|COMPLETED|0:0\n12_1|CANCELLED by 0|0:15\n12_[2-5]|PENDING|0:0\n");
        assert_eq!(a.len(), 2);
        assert_eq!(a[&("12".into(), 1)], "CANCELLED by 0 0:15");
    }

    #[test]
    fn the_latest_submission_of_a_run_wins() {
        let sub = |id: &str, runs: &[&str]| Submission {
            job_id: id.into(),
            runs: runs.iter().map(|r| r.to_string()).collect(),
            script: PathBuf::new(),
            submitted: 0,
        };
        let t = latest_tasks(&[sub("5", &["a", "b", "c"]), sub("9", &["c"])]);
        assert_eq!(t["a"], ("5".into(), 0));
        assert_eq!(t["c"], ("9".into(), 0));
    }
}
