use std::path::PathBuf;

use dgcolor_runs::RunError;

/// What can fail in the collect step. A file that cannot be read or parsed is reported as
/// the run directory's errors are ([`RunError::Io`], [`RunError::Format`]).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Eval(#[from] dgcolor_eval::EvalError),
    #[error(transparent)]
    Data(#[from] dgcolor_data::DataError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The plotting library failed to draw a plot or the figure.
    #[error("drawing: {0}")]
    Draw(String),
}

impl ReportError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let wrap = RunError::io(path);
        move |source| ReportError::Run(wrap(source))
    }

    pub fn format(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        ReportError::Run(RunError::format(path, message))
    }
}

pub type Result<T> = std::result::Result<T, ReportError>;
