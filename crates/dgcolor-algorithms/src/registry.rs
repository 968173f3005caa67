//! The registered algorithms, in the fixed order every table uses.

use candle_core::{bail, Result};

use crate::algorithm::{Algorithm, AlgorithmSpec};
use crate::{
    coral::Coral, dann::Dann, erm::Erm, group_dro::GroupDro, jigsaw::Jigsaw, mixup::Mixup,
    mldg::Mldg, mmd::Mmd, ours::Ours, sagnet::SagNet,
};

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
        name: "dann",
        summary: "pix2pix + domain-adversarial MLP on the pooled bottleneck, alternating D and G steps (Ganin et al. 2016)",
        adain: false,
        balanced: true,
    },
    AlgorithmInfo {
        name: "coral",
        summary: "pix2pix + alignment of bottleneck means and covariances across source domains (Sun & Saenko 2016)",
        adain: false,
        balanced: true,
    },
    AlgorithmInfo {
        name: "mmd",
        summary: "pix2pix + Gaussian-kernel MMD between source domains' bottleneck features (Li et al. 2018)",
        adain: false,
        balanced: true,
    },
    AlgorithmInfo {
        name: "group_dro",
        summary: "pix2pix minimising an adaptively weighted sum of per-domain task losses (Sagawa et al. 2020)",
        adain: false,
        balanced: true,
    },
    AlgorithmInfo {
        name: "sagnet",
        summary: "pix2pix with style-randomised z in the generator and an adversarial style head on content-randomised z (Nam et al. 2021)",
        adain: false,
        balanced: true,
    },
    AlgorithmInfo {
        name: "mldg",
        summary: "pix2pix with first-order meta-learning: meta-train step on one domain, meta-test on another (Li et al. 2018)",
        adain: false,
        balanced: true,
    },
    AlgorithmInfo {
        name: "jigsaw",
        summary: "pix2pix on 3x3-tile-shuffled images (L and ab alike) + a jigsaw-permutation head (JiGen, Carlucci et al. 2019)",
        adain: false,
        balanced: false,
    },
    AlgorithmInfo {
        name: "mixup",
        summary: "pix2pix on inter-domain mixtures of L and ab with lam ~ Beta(alpha, alpha) (Yan et al. 2020)",
        adain: false,
        balanced: true,
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
        "dann" => Box::new(Dann::new(spec)?),
        "coral" => Box::new(Coral::new(spec)?),
        "mmd" => Box::new(Mmd::new(spec)?),
        "group_dro" => Box::new(GroupDro::new(spec)?),
        "sagnet" => Box::new(SagNet::new(spec)?),
        "mldg" => Box::new(Mldg::new(spec)?),
        "jigsaw" => Box::new(Jigsaw::new(spec)?),
        "mixup" => Box::new(Mixup::new(spec)?),
        "ours" => Box::new(Ours::new(spec)?),
        other => bail!("algorithm `{other}` is registered but has no constructor"),
    })
}
