//! One error type for the whole data path. A dataset problem is nearly always a bad file
//! or a bad directory layout, so every variant that concerns a file names it: a user
//! with 15 000 images must be able to find the one that broke a run.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a readable image (expected JPEG, PNG or BMP content): {source}")]
    Decode {
        path: PathBuf,
        source: image::ImageError,
    },
    /// The file ends before its image data does (PIL: "image file is truncated"): a cut
    /// download or copy. See [`crate::decode_rgb8`] for how it is detected.
    #[error("{path}: image file is truncated ({detail})")]
    Truncated { path: PathBuf, detail: String },
    #[error("{path}: cannot encode the image: {source}")]
    Encode {
        path: PathBuf,
        source: image::ImageError,
    },
    #[error("dataset root {path} does not exist or is not a directory")]
    MissingRoot { path: PathBuf },
    #[error(
        "dataset root {path} has no domain directories (expected <root>/<domain>/<class>/<image>)"
    )]
    NoDomains { path: PathBuf },
    #[error("unknown domain {name:?} in {root}; available: {available}")]
    UnknownDomain {
        name: String,
        root: PathBuf,
        available: String,
    },
    #[error("domain {name:?} ({path}) has no images (expected <class>/<file>.jpg|jpeg|png|bmp)")]
    EmptyDomain { name: String, path: PathBuf },
    #[error("{path}: not a valid manifest: {source}")]
    Manifest {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The loader thread's host-to-device copy.
    #[error("copying a batch to the device: {0}")]
    Device(#[from] candle_core::Error),
    /// PACS / Office-Home layouts, split files, parquet copies, the Hub.
    #[error(transparent)]
    Benchmark(#[from] crate::benchmark_error::BenchmarkError),
}

pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// The file the error concerns, when it concerns one: what `Skip` mode reports.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Self::Io { path, .. }
            | Self::Decode { path, .. }
            | Self::Truncated { path, .. }
            | Self::Encode { path, .. }
            | Self::MissingRoot { path }
            | Self::NoDomains { path }
            | Self::EmptyDomain { path, .. }
            | Self::Manifest { path, .. } => Some(path),
            Self::UnknownDomain { root, .. } => Some(root),
            Self::Config(_) | Self::Device(_) => None,
            Self::Benchmark(e) => e.path(),
        }
    }
}
