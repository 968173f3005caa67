//! Deep CORAL: Sun & Saenko, "Deep CORAL: Correlation Alignment for Deep Domain
//! Adaptation", ECCV Workshops 2016, in DomainBed's multi-source form (Gulrajani &
//! Lopez-Paz, ICLR 2021; `domainbed/algorithms.py`, classes `AbstractMMD` / `CORAL`), on the
//! pix2pix generator (docs/METHOD.md §4).
//!
//! After the colour-discriminator update, the generator minimises
//! `task + gamma * sg(task) * mean_{i<j} [mean((mu_i - mu_j)^2) + mean((C_i - C_j)^2)]`
//! with `task = mean_m task_m`, where f is the pooled feature at `align_at` (the bottleneck
//! x_D or z), `mu_m`/`C_m` its mean and unbiased covariance over domain m's images, and
//! `task_m` domain m's `100 * L1 + LSGAN` (see [`dgcolor_losses::coral`]).
//!
//! Deviations from DomainBed's CORAL, and why:
//! - The task loss replaces classification cross-entropy; D scores the whole union once and
//!   each domain's LSGAN term is its slice (DomainBed also runs the network on the union).
//! - The penalty is scaled by the task loss, `sg(task)` ([`crate::baseline::task_scaled`]):
//!   the task loss is 10-50 here instead of about 1, and without the scale DomainBed's
//!   `gamma` would be 10-50x weaker than DomainBed meant. The search range reaches one decade
//!   lower, 10^U(-2, 1).
//! - `align_at` chooses the feature ([`crate::baseline::AlignAt`]): x_D, DomainBed's
//!   featurizer output, is bypassed by the U-Net's skips.
//! - A domain with a single image in a step has no unbiased covariance; it is left out of
//!   that step's penalty (DomainBed would divide by zero). With fewer than two usable
//!   domains the penalty is 0 and the step is ERM on per-domain mean losses.

use candle_core::Result;
use dgcolor_data::BatchMode;

use crate::algorithm::AlgorithmSpec;
use crate::alignment::AlignedPix2Pix;
use crate::baseline::ALIGN_AT;
use crate::entry::AlgorithmEntry;
use crate::hparams::{spec, Dist};

const NAME: &str = "coral";

/// The registry entry (see [`crate::registry`]).
pub const ENTRY: AlgorithmEntry = AlgorithmEntry {
    name: NAME,
    summary: "pix2pix + alignment of bottleneck means and covariances across source domains (Sun & Saenko 2016)",
    adain: false,
    batches: BatchMode::Balanced,
    hparams: &[
        spec(
            "gamma",
            1.0,
            Dist::LogUniform(-2.0, 1.0),
            "weight of the CORAL penalty (mean over domain pairs), relative to the task loss",
        ),
        ALIGN_AT,
    ],
    make: |spec| Ok(Box::new(new(spec)?)),
};

/// CORAL is [`AlignedPix2Pix`] with its penalty.
pub fn new(spec: &AlgorithmSpec) -> Result<AlignedPix2Pix> {
    AlignedPix2Pix::new(spec, NAME, dgcolor_losses::coral, 2)
}
