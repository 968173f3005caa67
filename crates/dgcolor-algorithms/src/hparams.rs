//! The hyperparameter registry (DomainBed's `hparams_registry`): for every algorithm, each
//! hyperparameter has a default and a random-search distribution. Every draw uses its own
//! RNG stream keyed by (seed, name), so adding a parameter never changes another's draw.
//!
//! The common hyperparameters are listed here; each algorithm lists its own in its registry
//! entry (`ENTRY.hparams` in its file). The DG baselines' defaults and search ranges follow
//! DomainBed's `hparams_registry.py` unless their file says otherwise; every optimizer is the
//! reference Adam (betas 0.5/0.999, no weight decay).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::entry::AlgorithmEntry;

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

pub(crate) const fn spec(
    name: &'static str,
    default: f64,
    dist: Dist,
    help: &'static str,
) -> HParamSpec {
    HParamSpec {
        name,
        default,
        dist,
        help,
    }
}

/// Shared by every algorithm.
pub const COMMON: &[HParamSpec] = &[spec(
    "lr",
    1e-3,
    Dist::LogUniform(-4.0, -2.5),
    "Adam learning rate of every optimizer (betas 0.5/0.999)",
)];

/// Every hyperparameter of `algorithm`: the common ones, then its own.
pub fn specs(algorithm: &AlgorithmEntry) -> Vec<HParamSpec> {
    COMMON.iter().chain(algorithm.hparams).copied().collect()
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
    #[error(
        "hyperparameter override `{0}` is not of the form name=value with a finite numeric value"
    )]
    Syntax(String),
}

impl HParams {
    pub fn defaults(algorithm: &AlgorithmEntry) -> Self {
        Self(
            specs(algorithm)
                .iter()
                .map(|s| (s.name.to_string(), s.default))
                .collect(),
        )
    }

    /// A random-search draw: each name gets its own stream from (seed, name).
    pub fn random(algorithm: &AlgorithmEntry, seed: u64) -> Self {
        Self(
            specs(algorithm)
                .iter()
                .map(|s| {
                    let mut rng = ChaCha8Rng::seed_from_u64(
                        seed ^ dgcolor_kernels::stable_hash(s.name.as_bytes()),
                    );
                    (s.name.to_string(), s.dist.sample(&mut rng))
                })
                .collect(),
        )
    }

    /// Applies overrides; unknown names are errors listing the known ones.
    pub fn set(
        &mut self,
        algorithm: &AlgorithmEntry,
        overrides: &[HParamOverride],
    ) -> Result<(), HParamError> {
        for o in overrides {
            if !self.0.contains_key(&o.name) {
                return Err(HParamError::Unknown {
                    name: o.name.clone(),
                    algorithm: algorithm.name.into(),
                    known: self.0.keys().cloned().collect::<Vec<_>>().join(", "),
                });
            }
            self.0.insert(o.name.clone(), o.value);
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

/// One `--set name=value`: parsed at the command line, checked against the algorithm's
/// names when the run's config is made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HParamOverride {
    pub name: String,
    pub value: f64,
}

impl FromStr for HParamOverride {
    type Err = HParamError;

    fn from_str(s: &str) -> Result<Self, HParamError> {
        let syntax = || HParamError::Syntax(s.to_string());
        let (name, value) = s.split_once('=').ok_or_else(syntax)?;
        let value: f64 = value.trim().parse().map_err(|_| syntax())?;
        let name = name.trim();
        if name.is_empty() || !value.is_finite() {
            return Err(syntax());
        }
        Ok(Self {
            name: name.into(),
            value,
        })
    }
}

/// `name=value` with the shortest decimal that parses back to the same value.
impl fmt::Display for HParamOverride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.value)
    }
}

impl TryFrom<String> for HParamOverride {
    type Error = HParamError;
    fn try_from(s: String) -> Result<Self, HParamError> {
        s.parse()
    }
}

impl From<HParamOverride> for String {
    fn from(o: HParamOverride) -> String {
        o.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_reproducible_and_independent_per_name() {
        let (ours, erm) = (&crate::ours::ENTRY, &crate::erm::ENTRY);
        let a = HParams::random(ours, 7);
        assert_eq!(a, HParams::random(ours, 7));
        assert_ne!(a.get("lr"), HParams::random(ours, 8).get("lr"));
        // The learning rate draw does not depend on which other names are registered.
        assert_eq!(a.get("lr"), HParams::random(erm, 7).get("lr"));
        let lr = a.get("lr");
        assert!((1e-4..10f64.powf(-2.5)).contains(&lr), "{lr}");
    }

    #[test]
    fn overrides_are_checked() {
        let ours = &crate::ours::ENTRY;
        let mut h = HParams::defaults(ours);
        h.set(ours, &["w_adv=0.1".parse().unwrap()]).unwrap();
        assert_eq!(h.get("w_adv"), 0.1);
        let err = h
            .set(ours, &["nope=1".parse().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope") && err.contains("w_adv"), "{err}");
        for bad in ["w_adv", "w_adv=abc", "=1", "w_adv=inf"] {
            let err = bad.parse::<HParamOverride>().unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn overrides_print_back_to_the_same_value() {
        for text in [
            "lr=0.0002",
            "w_adv=1",
            "eta=1e-20",
            "gamma=0.30000000000000004",
        ] {
            let o: HParamOverride = text.parse().unwrap();
            assert_eq!(
                o.to_string().parse::<HParamOverride>().unwrap(),
                o,
                "{text}"
            );
        }
    }
}
