//! Measuring and using a trained generator: every metric of it on a set of images (as the
//! trainer's evaluation points and `dgcolor eval` run it), the no-colour floor, and
//! colourization of arbitrary image files at their own resolution, and the published model
//! format (`model.safetensors` + `config.json`).

mod colorize;
mod device;
mod error;
mod evaluate;
mod published;

pub use colorize::{
    colorize_file, colorize_files, colorize_image, colorize_rgb, load_generator, plan_outputs,
    resize_bilinear, ColorizeOutcome, Colorized,
};
pub use device::parse_device;
pub use error::{EvalError, Result};
pub use evaluate::{
    evaluate, evaluate_gray, predict_rgb, DomainMetrics, Evaluated, ImageResult, EVAL_BATCH,
};
pub use published::{
    config_beside, ChannelScaling, PublishedConfig, TrainingSummary, CONFIG_FILE, MODEL_FILE,
    PUBLISHED_FORMAT, PUBLISHED_FORMAT_VERSION,
};
