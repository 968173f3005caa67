//! The one contract every method implements (DomainBed's `Algorithm`): an update on
//! per-domain batches that owns its optimizers, eval-mode prediction, and a checkpoint of
//! everything a resume needs.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Result, Tensor};
use dgcolor_data::DomainBatch;
use dgcolor_models::{Generator, ModelConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::Checkpoint;
use crate::hparams::HParams;

/// Named loss values of one update, e.g. `{"d": .., "g_l1": .., "style": ..}`.
pub type Losses = BTreeMap<&'static str, f32>;

/// What every algorithm is built from.
#[derive(Clone, Debug)]
pub struct AlgorithmSpec {
    pub model: ModelConfig,
    pub hparams: HParams,
    pub seed: u64,
    pub device: Device,
}

pub trait Algorithm {
    fn name(&self) -> &'static str;

    /// One training iteration on one batch per source domain present in this step.
    fn update(&mut self, batches: &[DomainBatch]) -> Result<Losses>;

    /// The generator, for eval-mode prediction and export.
    fn generator(&self) -> &Generator;

    /// Every variable of every network (weights and BatchNorm running statistics).
    fn varmap(&self) -> &candle_nn::VarMap;

    /// Predicted ab `[B, 2, S, S]` in [-1, 1] for L `[B, 1, S, S]`, eval mode.
    fn predict(&self, l: &Tensor) -> Result<Tensor> {
        self.generator().forward(l, &dgcolor_models::Mode::Eval)
    }

    /// Completed updates.
    fn steps(&self) -> u64;

    /// Weights, optimizer moments and scalar state.
    fn checkpoint(&self) -> Result<Checkpoint>;

    /// Restores what [`Algorithm::checkpoint`] saved.
    fn restore(&mut self, ckpt: &Checkpoint) -> Result<()>;
}

/// A fresh RNG for one purpose of one step: counter-based, so no RNG state needs saving and
/// a resumed run draws exactly what an uninterrupted one would.
pub fn step_rng(seed: u64, step: u64, purpose: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&step.to_le_bytes());
    key[16..24].copy_from_slice(&purpose.to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

/// The union of the per-domain batches: L, ab, class ids and domain ids.
pub struct Union {
    pub l: Tensor,
    pub ab: Tensor,
    pub class: Tensor,
    pub domain: Tensor,
}

pub fn union(batches: &[DomainBatch]) -> Result<Union> {
    let Some(first) = batches.first() else {
        candle_core::bail!("update: no batches")
    };
    let cat = |f: fn(&DomainBatch) -> &Tensor| -> Result<Tensor> {
        let parts: Vec<&Tensor> = batches.iter().map(f).collect();
        Tensor::cat(&parts, 0)
    };
    let domain: Vec<u32> = batches
        .iter()
        .flat_map(|b| std::iter::repeat_n(b.domain as u32, b.class.dim(0).unwrap_or(0)))
        .collect();
    let n = domain.len();
    Ok(Union {
        l: cat(|b| &b.l)?,
        ab: cat(|b| &b.ab)?,
        class: cat(|b| &b.class)?,
        domain: Tensor::from_vec(domain, n, first.l.device())?,
    })
}

/// A loss tensor's value for the records.
pub fn scalar(t: &Tensor) -> Result<f32> {
    t.to_dtype(DType::F32)?.to_scalar::<f32>()
}
