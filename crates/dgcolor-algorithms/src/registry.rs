//! The registered algorithms, in the fixed order every table uses. Each method declares
//! itself once, as the `ENTRY` of its own file (name, summary, AdaIN default, how it wants
//! its batches, hyperparameters with their search distributions, constructor); this list
//! only orders them. Adding a method is its file plus one line here.

use std::fmt;

use candle_core::Result;
use dgcolor_data::BatchMode;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::algorithm::{Algorithm, AlgorithmSpec};
use crate::hparams::HParamSpec;
use crate::{coral, dann, erm, group_dro, jigsaw, mixup, mldg, mmd, ours, sagnet};

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

/// Every method, in table order.
pub const ALGORITHMS: &[&AlgorithmEntry] = &[
    &erm::ENTRY,
    &dann::ENTRY,
    &coral::ENTRY,
    &mmd::ENTRY,
    &group_dro::ENTRY,
    &sagnet::ENTRY,
    &mldg::ENTRY,
    &jigsaw::ENTRY,
    &mixup::ENTRY,
    &ours::ENTRY,
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown algorithm `{name}`; registered: {known}")]
pub struct UnknownAlgorithm {
    pub name: String,
    pub known: String,
}

/// The registered method called `name`.
pub fn lookup(name: &str) -> std::result::Result<&'static AlgorithmEntry, UnknownAlgorithm> {
    ALGORITHMS
        .iter()
        .copied()
        .find(|a| a.name == name)
        .ok_or_else(|| UnknownAlgorithm {
            name: name.into(),
            known: ALGORITHMS
                .iter()
                .map(|a| a.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

impl AlgorithmEntry {
    pub fn build(&self, spec: &AlgorithmSpec) -> Result<Box<dyn Algorithm>> {
        (self.make)(spec)
    }

    /// Row order in tables.
    pub fn order(&self) -> usize {
        ALGORITHMS
            .iter()
            .position(|a| a.name == self.name)
            .expect("entries come from the registry")
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

impl Serialize for &'static AlgorithmEntry {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name)
    }
}

impl<'de> Deserialize<'de> for &'static AlgorithmEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        lookup(&name).map_err(serde::de::Error::custom)
    }
}
