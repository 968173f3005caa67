//! MMD-AAE's alignment term: Li, Pan, Wang & Kot, "Domain Generalization with Adversarial
//! Feature Learning", CVPR 2018, in DomainBed's form (Gulrajani & Lopez-Paz, ICLR 2021;
//! `domainbed/algorithms.py`, classes `AbstractMMD` / `MMD`), on the pix2pix generator
//! (docs/METHOD.md §4).
//!
//! After the colour-discriminator update, the generator minimises
//! `task + gamma * sg(task) * mean_{i<j} MMD^2(f_i, f_j)` (`task = mean_m task_m`) with the
//! biased MMD estimate `mean K(f_i, f_i) + mean K(f_j, f_j) - 2 mean K(f_i, f_j)` and
//! DomainBed's Gaussian kernel `K(x, y) = sum_g exp(-g ||x - y||^2)`, g in {0.001, 0.01, 0.1,
//! 1, 10, 100, 1000} (see [`dgcolor_losses::mmd`]); f is the pooled feature at `align_at`.
//!
//! Deviations from DomainBed's MMD, and why:
//! - The task loss replaces classification cross-entropy; D scores the whole union once and
//!   each domain's LSGAN term is its slice.
//! - The penalty is scaled by the task loss ([`crate::baseline::task_scaled`]), so `gamma`
//!   keeps DomainBed's meaning with a task loss of 10-50 instead of about 1; its search range
//!   reaches one decade lower, 10^U(-2, 1).
//! - `align_at` chooses the feature ([`crate::baseline::AlignAt`]).
//! - As in DomainBed (and unlike MMD-AAE) there is no autoencoder and no adversarial prior
//!   on the feature: only the kernel penalty.

use candle_core::{Result, Tensor};

use dgcolor_data::BatchMode;

use crate::algorithm::AlgorithmSpec;
use crate::alignment::AlignedPix2Pix;
use crate::baseline::ALIGN_AT;
use crate::entry::AlgorithmEntry;
use crate::hparams::{spec, Dist};

const NAME: &str = "mmd";

/// The registry entry (see [`crate::registry`]).
pub const ENTRY: AlgorithmEntry = AlgorithmEntry {
    name: NAME,
    summary:
        "pix2pix + Gaussian-kernel MMD between source domains' bottleneck features (Li et al. 2018)",
    adain: false,
    batches: BatchMode::Balanced,
    hparams: &[
        spec(
            "gamma",
            1.0,
            Dist::LogUniform(-2.0, 1.0),
            "weight of the Gaussian-kernel MMD penalty (mean over domain pairs), relative to the task loss",
        ),
        ALIGN_AT,
    ],
    make: |spec| Ok(Box::new(new(spec)?)),
};

fn gaussian_mmd(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    dgcolor_losses::mmd(x, y, &dgcolor_losses::MMD_GAMMAS)
}

/// MMD is [`AlignedPix2Pix`] with its penalty.
pub fn new(spec: &AlgorithmSpec) -> Result<AlignedPix2Pix> {
    AlignedPix2Pix::new(spec, NAME, gaussian_mmd, 1)
}
