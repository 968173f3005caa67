//! Training presets: `smoke` for tests (seconds), `quick` for a CPU (minutes), `paper` for
//! the reference schedule (256 px, nf 64, depth 8, batch 128, 50 epochs, lr 1e-3).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The name of a preset, as `--preset` takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresetName {
    Smoke,
    Quick,
    Paper,
}

impl PresetName {
    pub const ALL: [PresetName; 3] = [PresetName::Smoke, PresetName::Quick, PresetName::Paper];

    pub fn as_str(self) -> &'static str {
        match self {
            PresetName::Smoke => "smoke",
            PresetName::Quick => "quick",
            PresetName::Paper => "paper",
        }
    }

    pub fn preset(self) -> Preset {
        Preset::of(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown preset `{0}`; choose one of smoke, quick, paper")]
pub struct UnknownPreset(pub String);

impl FromStr for PresetName {
    type Err = UnknownPreset;

    fn from_str(s: &str) -> Result<Self, UnknownPreset> {
        PresetName::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPreset(s.into()))
    }
}

impl fmt::Display for PresetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preset {
    pub name: PresetName,
    pub size: usize,
    pub nf: usize,
    pub depth: usize,
    pub batch_size: usize,
    /// Number of updates; `paper` states epochs instead and the trainer converts them.
    pub steps: Option<u64>,
    pub epochs: Option<u64>,
    /// Steps between validation/checkpoint points.
    pub eval_every: u64,
    /// Images per synth class and domain when the preset generates synth data.
    pub synth_per_class: usize,
    /// Trials (seeds) per (method, setting, hyperparameters) in a sweep: one on a CPU, three
    /// at the paper's scale.
    pub trials: u64,
}

impl Preset {
    pub fn of(name: PresetName) -> Self {
        let p = |size, nf, depth, batch_size, steps, epochs, eval_every, trials| Preset {
            name,
            size,
            nf,
            depth,
            batch_size,
            steps,
            epochs,
            eval_every,
            synth_per_class: if name == PresetName::Smoke { 16 } else { 100 },
            trials,
        };
        match name {
            PresetName::Smoke => p(32, 4, 5, 4, Some(6), None, 3, 1),
            PresetName::Quick => p(64, 16, 6, 16, Some(100), None, 25, 1),
            PresetName::Paper => p(256, 64, 8, 128, None, Some(50), 500, 3),
        }
    }

    /// Updates of a run on `train_images` source images with batch size `batch_size`: the
    /// preset's steps, or its epochs converted.
    pub fn steps_for(&self, batch_size: usize, train_images: usize) -> u64 {
        match (self.steps, self.epochs) {
            (Some(s), _) => s,
            (None, Some(e)) => e * (train_images / batch_size.max(1)).max(1) as u64,
            (None, None) => 1,
        }
    }
}
