use std::fmt;
use std::str::FromStr;

use candle_core::{bail, Result};
use serde::{Deserialize, Serialize};

/// Where the AdaIN skip goes, as `--adain` takes it: `none` (a plain U-Net), `z` (the skip
/// carrying the head encoder's output, the paper's choice) or a decoder index `k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum AdainSkip {
    None,
    Z,
    Index(usize),
}

impl AdainSkip {
    /// The decoder index for a model of this depth; checked by [`ModelConfig::validate`].
    pub fn index(self, depth: usize) -> Option<usize> {
        match self {
            AdainSkip::None => None,
            AdainSkip::Z => depth.checked_sub(3),
            AdainSkip::Index(k) => Some(k),
        }
    }
}

impl FromStr for AdainSkip {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "none" => Ok(AdainSkip::None),
            "z" => Ok(AdainSkip::Z),
            k => k.parse().map(AdainSkip::Index).map_err(|_| {
                format!("--adain `{s}`: expected none, z or a decoder index 1..depth-1")
            }),
        }
    }
}

impl fmt::Display for AdainSkip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdainSkip::None => f.write_str("none"),
            AdainSkip::Z => f.write_str("z"),
            AdainSkip::Index(k) => write!(f, "{k}"),
        }
    }
}

impl TryFrom<String> for AdainSkip {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse()
    }
}

impl From<AdainSkip> for String {
    fn from(a: AdainSkip) -> String {
        a.to_string()
    }
}

/// Size of every network of the method. `Config::paper()` is the reference (256 px, nf 64,
/// depth 8); the quick preset shrinks all three so a CPU trains it in minutes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Training image side S.
    pub size: usize,
    /// Base width nf.
    pub nf: usize,
    /// Number of encoder levels D (S = 2^D gives a 1x1 bottleneck, as in the reference).
    pub depth: usize,
    /// Decoder index k of the AdaIN skip, or `None` for a plain U-Net.
    ///
    /// Up block k+1 consumes `concat(o, skip_k)` with `skip_k = x_{D-k}`, k = 1..D-1. So
    /// the skip carrying the head encoder's output z = x_3 is k = D-3: index 5 at the
    /// reference depth 8, index 3 at depth 6.
    pub adain_index: Option<usize>,
    pub n_classes: usize,
    pub n_domains: usize,
    /// Dropout probability of the three innermost up blocks in training (reference 0.5;
    /// 0 turns it off, e.g. to compare updates with a reference whose masks differ).
    #[serde(default = "reference_dropout")]
    pub dropout: f32,
}

fn reference_dropout() -> f32 {
    0.5
}

impl ModelConfig {
    /// The reference model: 256 px, nf 64, depth 8, AdaIN on the skip of z (index 5).
    pub fn paper(n_classes: usize, n_domains: usize) -> Self {
        Self::new(256, 64, 8, n_classes, n_domains)
    }

    /// A model of the given size with AdaIN on the skip carrying z.
    pub fn new(size: usize, nf: usize, depth: usize, n_classes: usize, n_domains: usize) -> Self {
        Self {
            size,
            nf,
            depth,
            adain_index: depth.checked_sub(3),
            n_classes,
            n_domains,
            dropout: reference_dropout(),
        }
    }

    /// The decoder index whose skip carries z = x_3.
    pub fn z_skip_index(&self) -> usize {
        self.depth - 3
    }

    /// Width of encoder level i (1-based): nf, 2nf, 4nf, 8nf, 8nf, ...
    pub fn width(&self, level: usize) -> usize {
        level_width(self.nf, level)
    }

    pub fn validate(&self) -> Result<()> {
        if self.depth < 4 {
            bail!(
                "model config: depth {} < 4 (the head encoder alone has 3 levels)",
                self.depth
            )
        }
        if self.nf == 0 {
            bail!("model config: nf must be positive")
        }
        if !self.size.is_multiple_of(1 << self.depth) {
            bail!(
                "model config: size {} is not divisible by 2^depth = {} (depth {})",
                self.size,
                1usize << self.depth,
                self.depth
            )
        }
        // The colour discriminator shrinks S by 8 then by 2 (two stride-1 4x4 convs).
        if self.size / 8 < 3 {
            bail!(
                "model config: size {} is too small for the colour discriminator (need >= 24)",
                self.size
            )
        }
        if let Some(k) = self.adain_index {
            if k == 0 || k >= self.depth {
                bail!(
                    "model config: adain index {k} out of range 1..={} for depth {}",
                    self.depth - 1,
                    self.depth
                )
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail!("model config: dropout {} must be in [0, 1)", self.dropout)
        }
        if self.n_classes == 0 || self.n_domains == 0 {
            bail!("model config: need at least one class and one domain")
        }
        Ok(())
    }
}

/// Width of encoder level i (1-based) for base width nf: doubles up to 8nf, then stays.
pub fn level_width(nf: usize, level: usize) -> usize {
    nf << (level - 1).min(3)
}
