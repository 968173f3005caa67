use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Data(#[from] dgcolor_data::DataError),
    #[error(transparent)]
    Eval(#[from] dgcolor_eval::EvalError),
    #[error(transparent)]
    HParam(#[from] dgcolor_algorithms::hparams::HParamError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{0}")]
    Config(String),
    /// Another process holds the run directory's lock.
    #[error("{} is in use by pid {pid} (another trainer or sweep job is running it)", path.display())]
    Busy { path: PathBuf, pid: String },
    #[error(
        "{}: records of schema version {found}; this dgcolor reads version {expected} \
         (re-run the sweep into a new directory, or read it with the dgcolor that wrote it)",
        path.display()
    )]
    Schema {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
}

impl RunError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| RunError::Io { path, source }
    }

    pub fn format(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        RunError::Format {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, RunError>;
