//! Training algorithms over the shared pix2pix generator: the [`Algorithm`] contract, the
//! registry in table order, the hyperparameter registry, presets, Adam and checkpoints, and
//! one file per method: ERM (pix2pix), the DG baselines of docs/METHOD.md §4 (DANN, CORAL,
//! MMD, GroupDRO, SagNet, MLDG, Jigsaw, Mixup) and the proposed model.

mod algorithm;
mod alignment;
pub mod baseline;
pub mod checkpoint;
pub mod coral;
pub mod dann;
mod entry;
mod erm;
pub mod group_dro;
pub mod hparams;
pub mod jigsaw;
pub mod mixup;
pub mod mldg;
pub mod mmd;
pub mod npy;
mod optim;
mod ours;
pub mod params;
mod pix2pix;
mod preset;
pub mod registry;
pub mod sagnet;

pub use algorithm::{scalar, step_rng, union, Algorithm, AlgorithmSpec, Losses, Union};
pub use alignment::{AlignedPix2Pix, Penalty};
pub use checkpoint::{write_atomic, Checkpoint, TrainState};
pub use dann::Dann;
pub use entry::AlgorithmEntry;
pub use erm::Erm;
pub use group_dro::GroupDro;
pub use hparams::{HParamOverride, HParamSpec, HParams};
pub use jigsaw::Jigsaw;
pub use mixup::Mixup;
pub use mldg::Mldg;
pub use optim::{Adam, AdamConfig};
pub use ours::Ours;
pub use pix2pix::{Pix2Pix, TaskLoss};
pub use preset::{Preset, PresetName};
pub use registry::{lookup, UnknownAlgorithm, ALGORITHMS};
pub use sagnet::SagNet;
