//! Training presets: `smoke` for tests (seconds), `quick` for a CPU (minutes), `paper` for
//! the reference schedule (256 px, nf 64, depth 8, batch 128, 50 epochs, lr 1e-3).

use candle_core::{bail, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preset {
    pub name: String,
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
}

pub const PRESETS: &[&str] = &["smoke", "quick", "paper"];

impl Preset {
    pub fn get(name: &str) -> Result<Self> {
        let p = |size, nf, depth, batch_size, steps, epochs, eval_every, synth_per_class| Preset {
            name: name.to_string(),
            size,
            nf,
            depth,
            batch_size,
            steps,
            epochs,
            eval_every,
            synth_per_class,
        };
        Ok(match name {
            "smoke" => p(32, 4, 5, 4, Some(6), None, 3, 16),
            "quick" => p(64, 16, 6, 16, Some(100), None, 25, 100),
            "paper" => p(256, 64, 8, 128, None, Some(50), 500, 100),
            _ => bail!(
                "unknown preset `{name}`; choose one of {}",
                PRESETS.join(", ")
            ),
        })
    }
}
