//! A run directory, DomainBed style: `config.toml` (every value used, written before the
//! first step), `records.jsonl` (append-only, one JSON object per line), the latest
//! `checkpoint.safetensors`, and a `done` marker once the final evaluation is recorded.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use dgcolor_algorithms::write_atomic;
use serde_json::Value;

use crate::error::{EvalError, Result};

pub const CONFIG: &str = "config.toml";
pub const RECORDS: &str = "records.jsonl";
pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const DONE: &str = "done";

#[derive(Clone, Debug)]
pub struct RunDir {
    pub path: PathBuf,
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

    pub fn checkpoint(&self) -> Option<PathBuf> {
        Some(self.file(CHECKPOINT)).filter(|p| p.exists())
    }

    /// Writes the config, or checks that an existing one is identical, so a resumed run
    /// can never silently continue with other settings.
    pub fn write_or_check_config(&self, toml_text: &str) -> Result<()> {
        std::fs::create_dir_all(&self.path).map_err(EvalError::io(&self.path))?;
        let path = self.file(CONFIG);
        if path.exists() {
            let existing = std::fs::read_to_string(&path).map_err(EvalError::io(&path))?;
            if existing != toml_text {
                return Err(EvalError::format(
                    &path,
                    "this run directory holds a run with a different configuration; \
                     choose another --out or delete the directory",
                ));
            }
            return Ok(());
        }
        write_atomic(&path, toml_text.as_bytes()).map_err(EvalError::io(&path))
    }

    /// Appends one record as a single write, so a crash leaves at most a torn last line,
    /// which [`RunDir::records`] ignores.
    pub fn append(&self, record: &Value) -> Result<()> {
        let path = self.file(RECORDS);
        let mut line = serde_json::to_string(record).map_err(|e| EvalError::format(&path, e))?;
        line.push('\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(EvalError::io(&path))?;
        f.write_all(line.as_bytes()).map_err(EvalError::io(&path))
    }

    /// Every complete record.
    pub fn records(&self) -> Result<Vec<Value>> {
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
        for r in self.records()? {
            if r.get("step")
                .and_then(Value::as_u64)
                .is_some_and(|s| s > step)
            {
                continue;
            }
            text.push_str(&r.to_string());
            text.push('\n');
        }
        write_atomic(&path, text.as_bytes()).map_err(EvalError::io(&path))
    }

    pub fn mark_done(&self) -> Result<()> {
        let path = self.file(DONE);
        write_atomic(&path, b"").map_err(EvalError::io(&path))
    }
}

/// Parses a JSONL file, skipping a torn final line (from a crash mid-write).
pub fn read_records(path: &Path) -> Result<Vec<Value>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(EvalError::io(path))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(v) => out.push(v),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => return Err(EvalError::format(path, format!("line {}: {e}", i + 1))),
        }
    }
    Ok(out)
}
