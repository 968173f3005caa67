//! Running and measuring: run directories with config, JSONL records, checkpoints and a
//! done marker; the resumable training driver; metrics of a generator on a domain; and
//! colourization of arbitrary files.

mod colorize;
mod dataset;
mod device;
mod error;
mod evaluate;
pub mod report;
pub mod run;
mod spec;
pub mod sweep;
mod train;

pub use colorize::{
    colorize_file, colorize_files, colorize_image, colorize_rgb, load_generator, plan_outputs,
    resize_bilinear, ColorizeOutcome, Colorized,
};
pub use dataset::{make_splits, make_splits_with, DataSpec, SplitChoice, Splits};
pub use device::{parse_device, parse_precision};
pub use dgcolor_kernels::Precision;
pub use error::{EvalError, Result};
pub use evaluate::{evaluate, evaluate_gray, predict_rgb, DomainMetrics, EVAL_BATCH};
pub use run::{read_records, RunDir};
pub use spec::RunSpec;
pub use train::{train, TrainConfig, TrainOptions, TrainOutcome, VAL_FRACTION};
