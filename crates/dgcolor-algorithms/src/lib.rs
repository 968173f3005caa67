//! Training algorithms over the shared pix2pix generator: the [`Algorithm`] contract, the
//! registry in table order, the hyperparameter registry, presets, Adam and checkpoints.

mod algorithm;
pub mod checkpoint;
mod erm;
pub mod hparams;
mod optim;
mod ours;
pub mod params;
mod pix2pix;
mod preset;
mod registry;

pub use algorithm::{scalar, step_rng, union, Algorithm, AlgorithmSpec, Losses, Union};
pub use checkpoint::{write_atomic, Checkpoint, TrainState};
pub use erm::Erm;
pub use hparams::{HParamSpec, HParams};
pub use optim::{Adam, AdamConfig};
pub use ours::Ours;
pub use pix2pix::{Pix2Pix, TaskLoss};
pub use preset::{Preset, PRESETS};
pub use registry::{build, info, AlgorithmInfo, ALGORITHMS};
