//! The hyperparameter registry (DomainBed's `hparams_registry`): for every algorithm, each
//! hyperparameter has a default and a random-search distribution. Every draw uses its own
//! RNG stream keyed by (seed, name), so adding a parameter never changes another's draw.

use std::collections::BTreeMap;
use std::fmt;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A random-search distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dist {
    /// 10^U(lo, hi).
    LogUniform(f64, f64),
    Uniform(f64, f64),
    Choice(&'static [f64]),
}

impl Dist {
    fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        match *self {
            Dist::LogUniform(lo, hi) => 10f64.powf(rng.random_range(lo..hi)),
            Dist::Uniform(lo, hi) => rng.random_range(lo..hi),
            Dist::Choice(values) => values[rng.random_range(0..values.len())],
        }
    }
}

impl fmt::Display for Dist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dist::LogUniform(lo, hi) => write!(f, "10^U({lo}, {hi})"),
            Dist::Uniform(lo, hi) => write!(f, "U({lo}, {hi})"),
            Dist::Choice(v) => write!(f, "choice{v:?}"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct HParamSpec {
    pub name: &'static str,
    pub default: f64,
    pub dist: Dist,
    pub help: &'static str,
}

const fn spec(name: &'static str, default: f64, dist: Dist, help: &'static str) -> HParamSpec {
    HParamSpec {
        name,
        default,
        dist,
        help,
    }
}

/// Shared by every algorithm.
const COMMON: &[HParamSpec] = &[spec(
    "lr",
    1e-3,
    Dist::LogUniform(-4.0, -2.5),
    "Adam learning rate of every optimizer (betas 0.5/0.999)",
)];

const OURS: &[HParamSpec] = &[
    spec(
        "w_adv",
        1.0,
        Dist::Choice(&[0.1, 0.3, 1.0, 3.0]),
        "weight of the adversarial style loss (reference CLI 1.0; its yaml's 0.1 is never read)",
    ),
    spec(
        "use_class",
        1.0,
        Dist::Choice(&[1.0]),
        "1 = run the class-head update (2), 0 = skip it (ablation)",
    ),
    spec(
        "use_adv",
        1.0,
        Dist::Choice(&[1.0]),
        "1 = run the style updates (4, 5), 0 = skip them (ablation)",
    ),
    spec(
        "use_cr",
        1.0,
        Dist::Choice(&[1.0]),
        "1 = content-randomise z before the style discriminator, 0 = feed z as is (ablation)",
    ),
];

// The DG baselines. Defaults and search ranges follow DomainBed's `hparams_registry.py`
// unless noted; every optimizer is the reference Adam (betas 0.5/0.999, no weight decay).

const DANN: &[HParamSpec] = &[
    spec(
        "lambda",
        1.0,
        Dist::LogUniform(-2.0, 2.0),
        "weight of the domain-confusion term: G minimises task - lambda * CE_domain",
    ),
    spec(
        "d_steps_per_g",
        1.0,
        Dist::Choice(&[1.0, 2.0, 4.0, 8.0]),
        "domain-discriminator iterations per generator iteration (DomainBed 2^U{0..3})",
    ),
    spec(
        "lr_d",
        1e-3,
        Dist::LogUniform(-4.5, -2.5),
        "Adam learning rate of the domain discriminator",
    ),
];

const CORAL: &[HParamSpec] = &[spec(
    "gamma",
    1.0,
    Dist::LogUniform(-1.0, 1.0),
    "weight of the CORAL penalty (mean over domain pairs)",
)];

const MMD: &[HParamSpec] = &[spec(
    "gamma",
    1.0,
    Dist::LogUniform(-1.0, 1.0),
    "weight of the Gaussian-kernel MMD penalty (mean over domain pairs)",
)];

const GROUP_DRO: &[HParamSpec] = &[spec(
    "eta",
    1e-2,
    Dist::LogUniform(-3.0, -1.0),
    "step size of the exponentiated-gradient update of the domain weights q",
)];

const SAGNET: &[HParamSpec] = &[spec(
    "w_adv",
    0.1,
    Dist::LogUniform(-2.0, 1.0),
    "weight of the adversarial term pushing the style head towards uniform",
)];

const MLDG: &[HParamSpec] = &[spec(
    "beta",
    1.0,
    Dist::LogUniform(-1.0, 1.0),
    "weight of the meta-test gradient (first order)",
)];

const JIGSAW: &[HParamSpec] = &[
    spec(
        "jig_weight",
        0.7,
        Dist::Uniform(0.1, 1.0),
        "weight of the jigsaw cross-entropy (JiGen alpha; its paper searches 0.1..1)",
    ),
    spec(
        "bias_whole_image",
        0.9,
        Dist::Uniform(0.6, 0.95),
        "probability that an image is left whole (JiGen beta; its paper uses 0.6..0.9)",
    ),
];

const MIXUP: &[HParamSpec] = &[spec(
    "alpha",
    0.2,
    Dist::LogUniform(-1.0, 1.0),
    "lam ~ Beta(alpha, alpha) mixes each pair of domains",
)];

/// Algorithm-specific entries (the common ones come first).
fn specific(algorithm: &str) -> &'static [HParamSpec] {
    match algorithm {
        "dann" => DANN,
        "coral" => CORAL,
        "mmd" => MMD,
        "group_dro" => GROUP_DRO,
        "sagnet" => SAGNET,
        "mldg" => MLDG,
        "jigsaw" => JIGSAW,
        "mixup" => MIXUP,
        "ours" => OURS,
        _ => &[],
    }
}

pub fn specs(algorithm: &str) -> Vec<HParamSpec> {
    COMMON.iter().chain(specific(algorithm)).copied().collect()
}

/// Checked hyperparameter values, written verbatim into a run's config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HParams(BTreeMap<String, f64>);

#[derive(Debug, thiserror::Error)]
pub enum HParamError {
    #[error("unknown hyperparameter `{name}` for {algorithm}; known: {known}")]
    Unknown {
        name: String,
        algorithm: String,
        known: String,
    },
    #[error("hyperparameter override `{0}` is not of the form name=value with a numeric value")]
    Syntax(String),
}

impl HParams {
    pub fn defaults(algorithm: &str) -> Self {
        Self(
            specs(algorithm)
                .iter()
                .map(|s| (s.name.to_string(), s.default))
                .collect(),
        )
    }

    /// A random-search draw: each name gets its own stream from (seed, name).
    pub fn random(algorithm: &str, seed: u64) -> Self {
        Self(
            specs(algorithm)
                .iter()
                .map(|s| {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ name_hash(s.name));
                    (s.name.to_string(), s.dist.sample(&mut rng))
                })
                .collect(),
        )
    }

    /// Applies `name=value` overrides; unknown names are errors listing the known ones.
    pub fn set(&mut self, algorithm: &str, overrides: &[String]) -> Result<(), HParamError> {
        for o in overrides {
            let (name, value) = o
                .split_once('=')
                .ok_or_else(|| HParamError::Syntax(o.clone()))?;
            let value: f64 = value
                .trim()
                .parse()
                .map_err(|_| HParamError::Syntax(o.clone()))?;
            let name = name.trim();
            if !self.0.contains_key(name) {
                return Err(HParamError::Unknown {
                    name: name.into(),
                    algorithm: algorithm.into(),
                    known: self.0.keys().cloned().collect::<Vec<_>>().join(", "),
                });
            }
            self.0.insert(name.into(), value);
        }
        Ok(())
    }

    /// A registered value; algorithms only ask for names they registered.
    pub fn get(&self, name: &str) -> f64 {
        *self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("hyperparameter `{name}` is not registered"))
    }

    pub fn flag(&self, name: &str) -> bool {
        self.get(name) != 0.0
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &f64)> {
        self.0.iter()
    }
}

fn name_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_reproducible_and_independent_per_name() {
        let a = HParams::random("ours", 7);
        assert_eq!(a, HParams::random("ours", 7));
        assert_ne!(a.get("lr"), HParams::random("ours", 8).get("lr"));
        // The learning rate draw does not depend on which other names are registered.
        assert_eq!(a.get("lr"), HParams::random("erm", 7).get("lr"));
        let lr = a.get("lr");
        assert!((1e-4..10f64.powf(-2.5)).contains(&lr), "{lr}");
    }

    #[test]
    fn overrides_are_checked() {
        let mut h = HParams::defaults("ours");
        h.set("ours", &["w_adv=0.1".into()]).unwrap();
        assert_eq!(h.get("w_adv"), 0.1);
        let err = h.set("ours", &["nope=1".into()]).unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("w_adv"), "{err}");
        assert!(h.set("ours", &["w_adv".into()]).is_err());
        assert!(h.set("ours", &["w_adv=abc".into()]).is_err());
    }
}
