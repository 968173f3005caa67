//! The registered algorithms, in the fixed order every table uses.

use candle_core::{bail, Result};

use crate::algorithm::{Algorithm, AlgorithmSpec};
use crate::{erm::Erm, ours::Ours};

pub struct AlgorithmInfo {
    pub name: &'static str,
    pub summary: &'static str,
    /// Whether its generator uses the AdaIN skip by default (only the proposed model does).
    pub adain: bool,
    /// Whether it needs the same number of images from every source domain per step.
    pub balanced: bool,
}

pub const ALGORITHMS: &[AlgorithmInfo] = &[
    AlgorithmInfo {
        name: "erm",
        summary: "pix2pix on the union of the sources (the paper's 'None' baseline)",
        adain: false,
        balanced: false,
    },
    AlgorithmInfo {
        name: "ours",
        summary: "the proposed model: CR + style discriminator + BN-only adversarial update, class head, AdaIN skip",
        adain: true,
        balanced: false,
    },
];

pub fn info(name: &str) -> Result<&'static AlgorithmInfo> {
    match ALGORITHMS.iter().find(|a| a.name == name) {
        Some(a) => Ok(a),
        None => bail!(
            "unknown algorithm `{name}`; registered: {}",
            ALGORITHMS
                .iter()
                .map(|a| a.name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub fn build(name: &str, spec: &AlgorithmSpec) -> Result<Box<dyn Algorithm>> {
    Ok(match info(name)?.name {
        "erm" => Box::new(Erm::new(spec)?),
        "ours" => Box::new(Ours::new(spec)?),
        other => bail!("algorithm `{other}` is registered but has no constructor"),
    })
}
