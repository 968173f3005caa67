use std::path::PathBuf;

/// Everything that can go wrong building, serving, exporting or reporting a study.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error(transparent)]
    Run(#[from] dgcolor_runs::RunError),
    #[error(transparent)]
    Eval(#[from] dgcolor_eval::EvalError),
    #[error(transparent)]
    Data(#[from] dgcolor_data::DataError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file that exists but does not hold what it should.
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    /// The SQLite store (path of the database, what was being done, SQLite's message).
    #[error("{path}: {what}: {source}")]
    Store {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// A request the options or the sweep cannot satisfy.
    #[error("{0}")]
    Config(String),
    /// Another `dgcolor study serve` holds the study.
    #[error("{path} is being served by pid {pid}; stop that server first")]
    Busy { path: PathBuf, pid: String },
    /// The plotting library failed.
    #[error("drawing: {0}")]
    Draw(String),
}

impl StudyError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StudyError::Io { path, source }
    }

    pub fn format(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        StudyError::Format {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, StudyError>;
