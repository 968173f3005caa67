//! The records of a run (`records.jsonl`, one JSON object per line, DomainBed's
//! `results.jsonl`): one typed enum written by the trainer and read by the report, so a field
//! is defined once. Evaluation points and the final evaluation carry their metrics in the same
//! shape ([`DomainMetrics`]). The start record holds [`SCHEMA_VERSION`]; readers refuse records
//! of another version instead of misreading them.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use dgcolor_eval::DomainMetrics;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RunError};

/// Version of the record and config layout. Bump it whenever a record or `config.toml` field
/// changes meaning or shape.
pub const SCHEMA_VERSION: u32 = 2;

/// The metric training-domain validation maximises (mean over the source-validation sets),
/// both for the kept checkpoint and in the report.
pub const SELECTION_METRIC: &str = "psnr";

/// Which images an evaluation covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalSplit {
    /// A source domain's held-out validation images (training-domain model selection).
    Val,
    /// The target domain's held-out oracle images (test-domain model selection only).
    Oracle,
    /// The target domain's test images (every reported test metric).
    Test,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// First line of every run.
    Start {
        schema: u32,
        classes: Vec<String>,
        /// Training images per source domain, in source order.
        train_images: Vec<usize>,
        /// Target images held out for test-domain (oracle) selection.
        oracle_images: usize,
        test_images: usize,
        /// Problems of the split files a reader should know about.
        split_notes: Vec<String>,
    },
    /// Losses and throughput averaged over the steps since the previous one.
    Train {
        step: u64,
        losses: BTreeMap<String, f64>,
        images_per_sec: f64,
        /// Share of the wall time spent waiting for the data loader.
        data_wait_share: f64,
    },
    /// Metrics at an evaluation point (one record per source validation set and one for the
    /// target test set).
    Eval(Evaluation),
    /// The target test metrics of the finished model; the run is done after it.
    Final(Evaluation),
    /// An unreadable training image skipped under `--skip-bad-images`.
    SkippedImage { step: u64, path: String },
    /// The checkpoint of the best evaluation point so far under a selection rule was kept
    /// (`checkpoint-val.safetensors` for training-domain validation).
    Kept {
        step: u64,
        selection: String,
        /// The score it was kept for (mean source-validation PSNR).
        score: f64,
    },
}

/// Metrics of the model at `step` on one domain's split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub step: u64,
    pub domain: String,
    pub split: EvalSplit,
    #[serde(flatten)]
    pub result: DomainMetrics,
}

impl Evaluation {
    /// The mean of `metric` over the images, if it was computed.
    pub fn mean(&self, metric: &str) -> Option<f64> {
        self.result.metrics.get(metric).map(|m| m.mean)
    }
}

impl Record {
    /// The step the record belongs to (0 for the start record).
    pub fn step(&self) -> u64 {
        match self {
            Record::Start { .. } => 0,
            Record::Train { step, .. }
            | Record::SkippedImage { step, .. }
            | Record::Kept { step, .. } => *step,
            Record::Eval(e) | Record::Final(e) => e.step,
        }
    }
}

/// Appends one record as a single write, so a crash leaves at most a torn last line, which
/// [`read_records`] ignores.
pub fn append_record(path: &Path, record: &Record) -> Result<()> {
    let mut line = serde_json::to_string(record).map_err(|e| RunError::format(path, e))?;
    line.push('\n');
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(RunError::io(path))?;
    f.write_all(line.as_bytes()).map_err(RunError::io(path))
}

/// Just enough of a line to learn its kind and, for a start record, its schema version
/// (absent before version 2).
#[derive(Deserialize)]
struct Probe {
    kind: String,
    schema: Option<u32>,
}

/// Every complete record of a JSONL file, skipping a torn final line (from a crash
/// mid-write). Refuses a file whose start record has another schema version, naming both.
pub fn read_records(path: &Path) -> Result<Vec<Record>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(RunError::io(path))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let torn = |i: usize| i + 1 == lines.len() && !text.ends_with('\n');
    if let Some(first) = lines.first() {
        match serde_json::from_str::<Probe>(first) {
            Ok(p) if p.kind == "start" && p.schema != Some(SCHEMA_VERSION) => {
                return Err(RunError::Schema {
                    path: path.to_path_buf(),
                    found: p.schema.unwrap_or(1),
                    expected: SCHEMA_VERSION,
                })
            }
            Ok(p) if p.kind != "start" => {
                return Err(RunError::format(
                    path,
                    format!("line 1 is a `{}` record; a run starts with `start`", p.kind),
                ))
            }
            Err(_) if torn(0) => return Ok(Vec::new()),
            Err(e) => return Err(RunError::format(path, format!("line 1: {e}"))),
            Ok(_) => {}
        }
    }
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(r) => out.push(r),
            Err(_) if torn(i) => {}
            Err(e) => return Err(RunError::format(path, format!("line {}: {e}", i + 1))),
        }
    }
    Ok(out)
}
