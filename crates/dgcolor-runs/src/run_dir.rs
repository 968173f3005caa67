//! A run directory, DomainBed style: `config.toml` (every value used, written before the
//! first step), `records.jsonl` (append-only typed [`Record`]s), the latest
//! `checkpoint.safetensors`, the checkpoint training-domain validation selects
//! (`checkpoint-val.safetensors`), each test evaluation's per-image results
//! (`per_image/test-step-NNNNNN.csv`), a `done` marker once the final evaluation is
//! recorded, and a `lock` file held by the process that trains it.
//!
//! The lock is an advisory `flock` on `lock`, taken before anything is written and released
//! by the operating system when the process ends, however it ends: a second trainer or sweep
//! job on a busy directory stops with "RUN_DIR is in use by pid N", and a lock left by a dead
//! process is simply taken over.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use dgcolor_algorithms::write_atomic;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RunError};
use crate::record::{append_record, read_records, Record};

pub const CONFIG: &str = "config.toml";
pub const RECORDS: &str = "records.jsonl";
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// The checkpoint of the evaluation point with the best mean source-validation PSNR.
pub const CHECKPOINT_VAL: &str = "checkpoint-val.safetensors";
pub const PER_IMAGE: &str = "per_image";
pub const DONE: &str = "done";
pub const LOCK: &str = "lock";

#[derive(Clone, Debug)]
pub struct RunDir {
    pub path: PathBuf,
}

/// Holds a run directory's lock until dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn is_done(&self) -> bool {
        self.file(DONE).exists()
    }

    /// The latest checkpoint, if one was written.
    pub fn checkpoint(&self) -> Option<PathBuf> {
        Some(self.file(CHECKPOINT)).filter(|p| p.exists())
    }

    /// The checkpoint a selection rule picks, if it was kept.
    pub fn selected_checkpoint(&self, select: Select) -> Option<PathBuf> {
        match select {
            Select::Last => self.checkpoint(),
            Select::Val => Some(self.file(CHECKPOINT_VAL)).filter(|p| p.exists()),
        }
    }

    /// The per-image results of the test evaluation at `step`.
    pub fn per_image_file(&self, step: u64) -> PathBuf {
        self.path
            .join(PER_IMAGE)
            .join(format!("test-step-{step:06}.csv"))
    }

    /// Takes the directory's exclusive lock (creating the directory), or fails with the pid
    /// of the process that holds it.
    pub fn lock(&self) -> Result<RunLock> {
        std::fs::create_dir_all(&self.path).map_err(RunError::io(&self.path))?;
        let path = self.file(LOCK);
        match take_pid_lock(&path).map_err(RunError::io(&path))? {
            Ok(file) => Ok(RunLock { _file: file }),
            Err(pid) => Err(RunError::Busy {
                path: self.path.clone(),
                pid,
            }),
        }
    }

    /// Whether another process holds the lock now.
    pub fn is_locked(&self) -> bool {
        let Ok(file) = File::open(self.file(LOCK)) else {
            return false;
        };
        matches!(
            file.try_lock_shared(),
            Err(std::fs::TryLockError::WouldBlock)
        )
    }

    /// Writes the config, or checks that an existing one is identical, so a resumed run can
    /// never silently continue with other settings.
    pub fn write_or_check_config(&self, toml_text: &str) -> Result<()> {
        std::fs::create_dir_all(&self.path).map_err(RunError::io(&self.path))?;
        let path = self.file(CONFIG);
        if path.exists() {
            let existing = std::fs::read_to_string(&path).map_err(RunError::io(&path))?;
            if existing != toml_text {
                return Err(RunError::format(
                    &path,
                    format!(
                        "this run directory holds a run with a different configuration{}; \
                         choose another --out or delete the directory",
                        first_difference(&existing, toml_text)
                    ),
                ));
            }
            return Ok(());
        }
        write_atomic(&path, toml_text.as_bytes()).map_err(RunError::io(&path))
    }

    pub fn append(&self, record: &Record) -> Result<()> {
        append_record(&self.file(RECORDS), record)
    }

    /// Every complete record.
    pub fn records(&self) -> Result<Vec<Record>> {
        read_records(&self.file(RECORDS))
    }

    /// Drops records written after the checkpoint a resume starts from (their steps will be
    /// run again), rewriting the file atomically.
    pub fn truncate_records_after(&self, step: u64) -> Result<()> {
        let path = self.file(RECORDS);
        if !path.exists() {
            return Ok(());
        }
        let mut text = String::new();
        for r in self.records()?.into_iter().filter(|r| r.step() <= step) {
            text.push_str(&serde_json::to_string(&r).map_err(|e| RunError::format(&path, e))?);
            text.push('\n');
        }
        write_atomic(&path, text.as_bytes()).map_err(RunError::io(&path))
    }

    pub fn mark_done(&self) -> Result<()> {
        let path = self.file(DONE);
        write_atomic(&path, b"").map_err(RunError::io(&path))
    }
}

/// " (first difference at line N: `old` vs `new`)" for the config mismatch message.
fn first_difference(existing: &str, new: &str) -> String {
    let mut a = existing.lines();
    let mut b = new.lines();
    for line in 1.. {
        match (a.next(), b.next()) {
            (None, None) => return String::new(),
            (x, y) if x != y => {
                return format!(
                    " (first difference at line {line}: `{}` there, `{}` now)",
                    x.unwrap_or(""),
                    y.unwrap_or("")
                )
            }
            _ => {}
        }
    }
    unreachable!()
}

/// Which of a run's checkpoints to use (`--select`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Select {
    /// The evaluation point with the best mean source-validation PSNR (DomainBed's
    /// training-domain validation; the target is never looked at).
    #[default]
    Val,
    /// The last step.
    Last,
}

impl FromStr for Select {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "val" => Ok(Select::Val),
            "last" => Ok(Select::Last),
            _ => Err(format!("--select `{s}`: expected val or last")),
        }
    }
}

impl fmt::Display for Select {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Select::Val => "val",
            Select::Last => "last",
        })
    }
}

/// An exclusive advisory lock on the file `path` (created if missing) that records the
/// holder's pid: `Ok(Ok(file))` while `file` is open (the operating system drops the lock
/// when the process dies, however it dies), `Ok(Err(pid))` when another process holds it
/// (`"unknown"` if it has not written its pid yet). Run directories and the user study's
/// server take their locks through it.
pub fn take_pid_lock(path: &Path) -> std::io::Result<std::result::Result<File, String>> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Ok(Err(if pid.is_empty() {
                "unknown".into()
            } else {
                pid.into()
            }));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    file.flush()?;
    Ok(Ok(file))
}

/// Resolves `--checkpoint`: the checkpoint `select` picks in a run directory, or a
/// checkpoint file as it is.
pub fn checkpoint_file(path: &Path, select: Select) -> Result<PathBuf> {
    if path.is_dir() {
        let run = RunDir::new(path);
        return run.selected_checkpoint(select).ok_or_else(|| match select {
            Select::Last => RunError::format(path, "this run directory has no checkpoint yet"),
            Select::Val => RunError::format(
                path,
                format!(
                    "no {CHECKPOINT_VAL} here (the run has not reached an evaluation point with \
                     source-validation images yet); use --select last for its latest checkpoint"
                ),
            ),
        });
    }
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    Err(RunError::format(
        path,
        "no such run directory or checkpoint file",
    ))
}
