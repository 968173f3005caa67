//! The registered algorithms, in the fixed order every table uses. Each method declares
//! itself once, as the `ENTRY` of its own file (name, summary, AdaIN default, how it wants
//! its batches, hyperparameters with their search distributions, constructor); this list
//! only orders them. Adding a method is its file plus one line here.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::entry::AlgorithmEntry;
use crate::{coral, dann, erm, group_dro, jigsaw, mixup, mldg, mmd, ours, sagnet};

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
    /// Row order in tables.
    pub fn order(&self) -> usize {
        ALGORITHMS
            .iter()
            .position(|a| a.name == self.name)
            .expect("entries come from the registry")
    }
}

/// Entries are stored by name (a run spec, a config); reading one looks the name up.
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
