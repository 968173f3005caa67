//! Where each run of a sweep stands (`dgcolor compare --status`), from its run directory and,
//! for runs submitted to Slurm, from `squeue` (and `sacct` where accounting is on).

use std::path::Path;

use serde::Serialize;

use super::slurm::{latest_tasks, read_submissions, read_task_events, sacct, squeue, STDERR_LOG};
use super::Job;
use crate::error::Result;
use crate::record::Record;
use crate::run_dir::{RunDir, CONFIG};
use crate::stop::EXIT_STOPPED;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// The done marker is there.
    Done,
    /// Its Slurm task is running (or completing), or a process holds its directory's lock.
    Running,
    /// Its Slurm task waits in the queue (first start, requeued, held).
    Pending,
    /// It was submitted, and its latest task left the queue without finishing it
    /// (cancelled, failed, out of time or memory, stopped). `--resubmit-failed` resumes it.
    Failed,
    /// Started (its config is written) but never submitted and not running: a local run that
    /// was interrupted. `--resubmit-failed` resumes it too.
    Unfinished,
    /// Nothing of it yet.
    New,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Done => "done",
            RunState::Running => "running",
            RunState::Pending => "pending",
            RunState::Failed => "failed",
            RunState::Unfinished => "unfinished",
            RunState::New => "new",
        }
    }
}

/// One run's line of `--status`.
#[derive(Clone, Debug, Serialize)]
pub struct RunStatus {
    pub job: Job,
    pub state: RunState,
    /// Its latest Slurm task, `<array job>_<index>`.
    pub task: Option<String>,
    /// The step of its last record.
    pub step: Option<u64>,
    /// Its number of steps (from its config).
    pub steps: Option<u64>,
    /// Why it waits (the queue's reason) or how it ended (failed runs).
    pub note: String,
}

/// The status of every job, in the jobs' order. Decided in this order: the done marker;
/// the latest Slurm task of the run (from `<sweep>/slurm/submissions.jsonl`) as `squeue`
/// lists it, running or pending; the lock of the run directory (running); a submitted run
/// whose task left the queue unfinished is failed, with Slurm's accounting state where
/// `sacct` works and otherwise what the task recorded in `slurm.jsonl`; the config of a run
/// never submitted (unfinished); else new. Fails when runs were submitted but `squeue`
/// cannot be asked.
pub fn sweep_status(jobs: &[Job], sweep_dir: &Path) -> Result<Vec<RunStatus>> {
    let submissions = read_submissions(sweep_dir)?;
    let latest = latest_tasks(&submissions);
    let ids: Vec<String> = submissions.iter().map(|s| s.job_id.clone()).collect();
    let queue = squeue(&ids)?;
    let mut accounting = None;
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        let run = RunDir::new(&job.dir);
        let step = run.records().ok().and_then(|r| r.last().map(Record::step));
        let steps = std::fs::read_to_string(run.file(CONFIG))
            .ok()
            .and_then(|t| t.parse::<toml::Table>().ok())
            .and_then(|t| t.get("steps").and_then(|v| v.as_integer()))
            .map(|s| s as u64);
        let task = latest.get(&job.name());
        let queued = task.and_then(|t| queue.get(t));
        let (state, note) = if run.is_done() {
            (RunState::Done, String::new())
        } else if let Some(q) = queued {
            if q.is_running() {
                (RunState::Running, String::new())
            } else {
                let reason = if q.reason.is_empty() || q.reason == "None" {
                    String::new()
                } else {
                    format!(" ({})", q.reason)
                };
                (RunState::Pending, format!("{}{reason}", q.state))
            }
        } else if run.is_locked() {
            (RunState::Running, "not through Slurm".into())
        } else if let Some((id, index)) = task {
            let accounted = accounting.get_or_insert_with(|| sacct(&ids));
            let note = match accounted
                .as_ref()
                .and_then(|a| a.get(&(id.clone(), *index)))
            {
                Some(state) => format!("sacct: {state}"),
                None => ended(&job.dir, &format!("{id}_{index}")),
            };
            (RunState::Failed, note)
        } else if run.file(CONFIG).exists() {
            (RunState::Unfinished, "never submitted".into())
        } else {
            (RunState::New, String::new())
        };
        out.push(RunStatus {
            job: job.clone(),
            state,
            task: task.map(|(id, i)| format!("{id}_{i}")),
            step,
            steps,
            note,
        });
    }
    Ok(out)
}

/// How the task `task` of a run ended, from what its batch script recorded.
fn ended(run_dir: &Path, task: &str) -> String {
    let events: Vec<_> = read_task_events(run_dir)
        .into_iter()
        .filter(|e| e.task == task)
        .collect();
    let Some(last) = events.last() else {
        return "never started (cancelled while pending?)".into();
    };
    match (last.event.as_str(), last.status) {
        ("end", Some(EXIT_STOPPED)) => format!(
            "stopped by SIG{} and checkpointed (cancelled or preempted)",
            last.signal
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or("TERM")
        ),
        ("end", Some(status)) => {
            let why = last_line(&run_dir.join(STDERR_LOG));
            format!(
                "exit status {status}{}",
                why.map_or(String::new(), |w| format!(": {w}"))
            )
        }
        ("requeue", _) => "requeued itself but is not in the queue".into(),
        ("requeue_failed", _) => "stopped before its time limit; scontrol requeue failed".into(),
        _ => "ended without recording how (killed: time limit, memory, node failure?)".into(),
    }
}

/// The last non-empty line of a text file, shortened to 160 characters.
fn last_line(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?.trim();
    Some(if line.chars().count() > 160 {
        format!("{}...", line.chars().take(157).collect::<String>())
    } else {
        line.to_string()
    })
}

/// The `--status` table: one line per run (state, Slurm task, step of its last record / its
/// steps, run directory name, then label and note), then the count of each state.
pub fn print_status(statuses: &[RunStatus]) -> String {
    let mut s = format!(
        "{:<10} {:<12} {:<11} {}  {}\n",
        "STATE", "SLURM", "STEP", "RUN", "LABEL: NOTE"
    );
    for r in statuses {
        let step = match (r.step, r.steps) {
            (Some(a), Some(b)) => format!("{a}/{b}"),
            (Some(a), None) => a.to_string(),
            _ => "-".into(),
        };
        let note = if r.note.is_empty() {
            String::new()
        } else {
            format!(": {}", r.note)
        };
        s.push_str(&format!(
            "{:<10} {:<12} {:<11} {}  {}{note}\n",
            r.state.as_str(),
            r.task.as_deref().unwrap_or("-"),
            step,
            r.job.name(),
            r.job.label,
        ));
    }
    let mut counts = Vec::new();
    for state in [
        RunState::Done,
        RunState::Running,
        RunState::Pending,
        RunState::Failed,
        RunState::Unfinished,
        RunState::New,
    ] {
        let n = statuses.iter().filter(|r| r.state == state).count();
        if n > 0 {
            counts.push(format!("{n} {}", state.as_str()));
        }
    }
    s.push_str(&format!("{} runs: {}\n", statuses.len(), counts.join(", ")));
    s
}
