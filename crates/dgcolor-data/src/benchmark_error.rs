//! Errors of the real benchmarks (PACS, Office-Home, their split files, parquet copies
//! and the Hub download). Kept apart from [`crate::DataError`]'s file-level variants
//! because they carry more context: a split-file problem names the list file *and the
//! line*, a parquet problem the file *and the row*, so a user can open the right place.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum BenchmarkError {
    /// `PATH` is not, and does not contain, the expected image tree.
    #[error("{path}: no {dataset} image tree found (looked for {looked_for})")]
    Layout {
        path: PathBuf,
        dataset: &'static str,
        looked_for: String,
    },
    /// A class directory that is not one of the dataset's classes: its id would be
    /// arbitrary, so it is refused rather than silently numbered.
    #[error("{path}: unknown {dataset} class {name:?} (expected one of: {expected})")]
    UnknownClass {
        path: PathBuf,
        dataset: &'static str,
        name: String,
        expected: String,
    },
    /// No directory holding the official split files was found.
    #[error("no PACS split files (<domain>_train_kfold.txt ...) found; searched: {searched}")]
    SplitFilesNotFound { searched: String },
    /// A split file the run needs is absent from the split directory.
    #[error("{path}: split file not found")]
    MissingSplitFile { path: PathBuf },
    /// A malformed or inconsistent line of a split file (strict mode, or unusable line).
    #[error("{path}:{line}: {message}")]
    SplitLine {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// Files named by a split list are not on disk and the policy is to fail.
    #[error("{missing} of {listed} files listed in {path} are missing (first: line {first_line}, {first}); use the skip-missing policy to train on the rest")]
    MissingListed {
        path: PathBuf,
        missing: usize,
        listed: usize,
        first_line: usize,
        first: String,
    },
    /// Every file listed for a domain is missing: nothing to train on.
    #[error("{path}: none of the {listed} listed files exist under {root}")]
    NothingListed {
        path: PathBuf,
        listed: usize,
        root: PathBuf,
    },
    #[error("{path}: parquet: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("{path}: row {row}: {message}")]
    ParquetRow {
        path: PathBuf,
        row: usize,
        message: String,
    },
    #[error("Hugging Face Hub ({repo}): {message}")]
    Hub { repo: String, message: String },
    #[error(
        "{path}: downloaded size {actual} bytes, expected {expected}; delete it and fetch again"
    )]
    SizeMismatch {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
}

impl BenchmarkError {
    /// The file the error concerns, when it concerns one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Layout { path, .. }
            | Self::UnknownClass { path, .. }
            | Self::MissingSplitFile { path }
            | Self::SplitLine { path, .. }
            | Self::MissingListed { path, .. }
            | Self::NothingListed { path, .. }
            | Self::Parquet { path, .. }
            | Self::ParquetRow { path, .. }
            | Self::SizeMismatch { path, .. } => Some(path),
            Self::SplitFilesNotFound { .. } | Self::Hub { .. } => None,
        }
    }
}
