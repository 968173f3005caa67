//! One registered method as the rest of the workspace sees it: its name, summary, AdaIN
//! default, batch mode, hyperparameters and constructor. Each method declares its own
//! `ENTRY` in its file; [`crate::registry`] only orders them.

use std::fmt;

use candle_core::Result;
use dgcolor_data::BatchMode;

use crate::algorithm::{Algorithm, AlgorithmSpec};
use crate::hparams::HParamSpec;

/// Everything the trainer, the sweeps and the tables need to know about one method.
pub struct AlgorithmEntry {
    pub name: &'static str,
    pub summary: &'static str,
    /// Whether its generator uses the AdaIN skip by default (only the proposed model does).
    pub adain: bool,
    /// `Balanced`: the same number of images from every source domain per step (methods
    /// that compare domains within a step); `Mixed`: batches drawn from the sources' union.
    pub batches: BatchMode,
    /// Its own hyperparameters; the common ones ([`crate::hparams::COMMON`]) come first.
    pub hparams: &'static [HParamSpec],
    /// Builds a fresh instance (weights initialised from the spec's seed).
    pub make: fn(&AlgorithmSpec) -> Result<Box<dyn Algorithm>>,
}

impl AlgorithmEntry {
    pub fn build(&self, spec: &AlgorithmSpec) -> Result<Box<dyn Algorithm>> {
        (self.make)(spec)
    }
}

/// Entries are compared, printed and serialised by name, so a run spec can hold one.
impl PartialEq for AlgorithmEntry {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for AlgorithmEntry {}

impl fmt::Debug for AlgorithmEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AlgorithmEntry({})", self.name)
    }
}

impl fmt::Display for AlgorithmEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}
