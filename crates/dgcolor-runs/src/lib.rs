//! Running experiments: what a run is ([`RunSpec`] -> [`TrainConfig`]), where it lives (a
//! locked [`RunDir`] with its config, typed [`Record`]s, checkpoint and done marker), the
//! resumable trainer (stopped cleanly by SIGTERM / SIGUSR1: [`StopFlag`]), and sweeps of runs
//! through a launcher (in this process, or as a Slurm job array). The collect step that
//! reads the records into tables is `dgcolor-report`. [`CheckpointRef`] is what
//! `--checkpoint` names: a run directory, a published model folder, a file or a Hugging Face
//! model.

mod checkpoint_ref;
mod config;
mod error;
mod per_image;
mod record;
mod run_dir;
mod spec;
mod stop;
pub mod sweep;
mod trainer;

pub use checkpoint_ref::{
    cached_snapshot, CheckpointRef, HubModel, Provenance, ResolvedCheckpoint, DEFAULT_REVISION,
    HF_PREFIX, PUBLISHED_FILES,
};
pub use config::TrainConfig;
pub use error::{Result, RunError};
pub use per_image::{read_per_image, write_per_image, ImageRow};
pub use record::{
    append_record, read_records, EvalSplit, Evaluation, Record, SCHEMA_VERSION, SELECTION_METRIC,
};
pub use run_dir::{
    checkpoint_file, take_pid_lock, RunDir, RunLock, Select, CHECKPOINT, CHECKPOINT_VAL, CONFIG,
    DONE, LOCK, PER_IMAGE, RECORDS,
};
pub use spec::{PreparedRun, RunOptions, RunSpec};
pub use stop::{signal_name, StopFlag, EXIT_STOPPED};
pub use trainer::{train, TrainOptions, TrainOutcome};
