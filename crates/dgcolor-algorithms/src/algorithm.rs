//! The one contract every method implements (DomainBed's `Algorithm`): an update on
//! per-domain batches that owns its optimizers, eval-mode prediction, and a checkpoint of
//! everything a resume needs.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Result, Tensor};
use dgcolor_data::DomainBatch;
use dgcolor_models::{Generator, ModelConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::{Checkpoint, TrainState};
use crate::hparams::HParams;
use crate::optim::Adam;
use crate::pix2pix::Pix2Pix;

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

/// Permission to change an algorithm's training state; constructible only in this crate.
pub struct Token(());

/// What each method keeps around the shared [`Pix2Pix`] core. [`Algorithm`]'s accessors,
/// checkpoint and restore are written once in terms of it, so every checkpoint has the same
/// layout and a method states only its optimizers and scalars of its own (usually through
/// `trained!`). The methods that change state take a [`Token`], which only this crate can
/// make, so outside it the step counter, the optimizers and the extra state change only
/// through [`Algorithm::update`] and [`Algorithm::restore`]:
///
/// ```compile_fail,E0061
/// fn rewind(alg: &mut dyn dgcolor_algorithms::Algorithm) {
///     alg.set_step(0); // needs a `Token`
/// }
/// ```
///
/// ```compile_fail,E0603
/// use dgcolor_algorithms::algorithm::Token; // private: no `Token` outside the crate
/// ```
pub trait Trained {
    fn core(&self) -> &Pix2Pix;

    /// Completed updates; the step RNGs are keyed by it, so a resume must restore it.
    fn step(&self) -> u64;

    fn set_step(&mut self, step: u64, _: Token);

    /// Every optimizer under its checkpoint name (moments under `optim/<name>`).
    fn optimizers(&self) -> Vec<(&'static str, &Adam)>;

    /// The same list, mutable, for restoring the moments.
    fn optimizers_mut(&mut self, _: Token) -> Vec<(&'static str, &mut Adam)>;

    /// Scalars of the method's own that a resume needs ([`TrainState::extra`]).
    fn extra_state(&self) -> BTreeMap<String, Vec<f64>> {
        BTreeMap::new()
    }

    /// Takes back what [`Trained::extra_state`] saved.
    fn restore_extra_state(&mut self, _extra: &BTreeMap<String, Vec<f64>>, _: Token) -> Result<()> {
        Ok(())
    }
}

/// Implements [`Trained`] for a struct with fields `core: Pix2Pix` and `step: u64` from its
/// optimizers, `"checkpoint name" => field`: the accessors would otherwise be the same in
/// every method. A trailing `{ .. }` holds the extra-state hooks, if any.
macro_rules! trained {
    ($ty:ty, [$($name:literal => $($field:ident).+),+ $(,)?] $({ $($hooks:tt)* })?) => {
        impl $crate::algorithm::Trained for $ty {
            fn core(&self) -> &$crate::pix2pix::Pix2Pix {
                &self.core
            }

            fn step(&self) -> u64 {
                self.step
            }

            fn set_step(&mut self, step: u64, _: $crate::algorithm::Token) {
                self.step = step;
            }

            fn optimizers(&self) -> Vec<(&'static str, &$crate::optim::Adam)> {
                vec![$(($name, &self.$($field).+)),+]
            }

            fn optimizers_mut(
                &mut self,
                _: $crate::algorithm::Token,
            ) -> Vec<(&'static str, &mut $crate::optim::Adam)> {
                vec![$(($name, &mut self.$($field).+)),+]
            }

            $($($hooks)*)?
        }
    };
}
pub(crate) use trained;

pub trait Algorithm: Trained {
    fn name(&self) -> &'static str;

    /// One training iteration on one batch per source domain present in this step.
    fn update(&mut self, batches: &[DomainBatch]) -> Result<Losses>;

    /// The generator, for eval-mode prediction and export.
    fn generator(&self) -> &Generator {
        &self.core().generator
    }

    /// Every variable of every network (weights and BatchNorm running statistics).
    fn varmap(&self) -> &candle_nn::VarMap {
        &self.core().varmap
    }

    /// Predicted ab `[B, 2, S, S]` in [-1, 1] for L `[B, 1, S, S]`, eval mode.
    fn predict(&self, l: &Tensor) -> Result<Tensor> {
        self.generator().forward(l, &dgcolor_models::Mode::Eval)
    }

    /// Completed updates.
    fn steps(&self) -> u64 {
        self.step()
    }

    /// Weights, optimizer moments and scalar state.
    fn checkpoint(&self) -> Result<Checkpoint> {
        let mut ckpt = self.core().checkpoint_base()?;
        let state = TrainState {
            step: self.step(),
            extra: self.extra_state(),
            ..Default::default()
        };
        ckpt.add_state(self.name(), state, &self.optimizers())?;
        Ok(ckpt)
    }

    /// Restores what [`Algorithm::checkpoint`] saved.
    fn restore(&mut self, ckpt: &Checkpoint) -> Result<()> {
        ckpt.restore_varmap(self.varmap())?;
        let state = ckpt.restore_state(self.name(), &mut self.optimizers_mut(Token(())))?;
        self.set_step(state.step, Token(()));
        self.restore_extra_state(&state.extra, Token(()))
    }
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
