//! A published generator: the folder `dgcolor publish` writes (and a Hugging Face model
//! repository holds) with [`MODEL_FILE`], the generator's weights under dgcolor's names, and
//! [`CONFIG_FILE`], everything needed to rebuild the network and feed it: its size, width,
//! depth and AdaIN skip ([`ModelConfig`]), the Lab scaling of its input and output and the
//! resize filter it was trained with. `config.json` is the only place the architecture is
//! written: the weights file carries no model config of its own, so the two cannot disagree.

use std::path::{Path, PathBuf};

use dgcolor_data::{ResizeFilter, SynthConfig};
use dgcolor_models::ModelConfig;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// The weights of a published model.
pub const MODEL_FILE: &str = "model.safetensors";
/// Its configuration, [`PublishedConfig`] as JSON.
pub const CONFIG_FILE: &str = "config.json";
/// `format` of a [`PublishedConfig`].
pub const PUBLISHED_FORMAT: &str = "dgcolor-generator";
/// `format_version` of a [`PublishedConfig`]; bumped when a field changes meaning.
pub const PUBLISHED_FORMAT_VERSION: u32 = 1;

/// How a channel is scaled for the network: `network = value / divisor + offset`, so
/// `value = (network - offset) * divisor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelScaling {
    /// The channels, in tensor order (`["L"]`, `["a", "b"]`).
    pub channels: Vec<String>,
    pub divisor: f64,
    pub offset: f64,
    /// The same, as a formula for people.
    pub formula: String,
}

impl ChannelScaling {
    /// The network's input: CIE L* in [0, 100] as `L / 50 - 1` (`dgcolor_data::scale_l`).
    pub fn lightness() -> Self {
        Self {
            channels: vec!["L".into()],
            divisor: 50.0,
            offset: -1.0,
            formula: "L / 50 - 1 (L* in [0, 100] -> [-1, 1])".into(),
        }
    }

    /// The network's output: a*, b* as `ab / 100` (`dgcolor_data::scale_ab`), the range of
    /// its tanh.
    pub fn chroma() -> Self {
        Self {
            channels: vec!["a".into(), "b".into()],
            divisor: 100.0,
            offset: 0.0,
            formula: "ab / 100 (multiply the output by 100 for a*, b*)".into(),
        }
    }
}

/// What a model was trained on and how, for people and for `dgcolor eval` (which
/// regenerates the run's synth benchmark from `synth`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub algorithm: String,
    pub preset: String,
    /// `synth`, `pacs`, `office-home` or `data`.
    pub dataset: String,
    /// The dataset's Hugging Face id, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_hub_id: Option<String>,
    pub sources: Vec<String>,
    pub target: String,
    pub seed: u64,
    pub steps: u64,
    pub batch_size: usize,
    /// The training step of the published weights.
    pub step: u64,
    /// How those weights were chosen among the run's checkpoints (`last`).
    pub selection: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synth: Option<SynthConfig>,
}

/// `config.json` of a published model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublishedConfig {
    /// [`PUBLISHED_FORMAT`].
    pub format: String,
    /// [`PUBLISHED_FORMAT_VERSION`].
    pub format_version: u32,
    /// `dgcolor`.
    pub library_name: String,
    /// A pix2pix U-Net with a head/tail encoder split and an optional AdaIN skip.
    pub architecture: String,
    /// Size S, base width nf, depth D, AdaIN skip index (null: none), classes, domains.
    pub model: ModelConfig,
    /// The input `L` `[B, 1, S, S]`.
    pub input: ChannelScaling,
    /// The output `ab` `[B, 2, S, S]`.
    pub output: ChannelScaling,
    /// How images were brought to S x S in training (`antialias` or `nearest`).
    pub resize_filter: ResizeFilter,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingSummary>,
}

impl PublishedConfig {
    pub fn new(
        model: ModelConfig,
        resize_filter: ResizeFilter,
        training: Option<TrainingSummary>,
    ) -> Self {
        Self {
            format: PUBLISHED_FORMAT.into(),
            format_version: PUBLISHED_FORMAT_VERSION,
            library_name: "dgcolor".into(),
            architecture: "pix2pix U-Net (head encoder levels 1-3, tail encoder, decoder with \
                           an AdaIN skip), BatchNorm in eval mode"
                .into(),
            model,
            input: ChannelScaling::lightness(),
            output: ChannelScaling::chroma(),
            resize_filter,
            training,
        }
    }

    /// Reads and checks a `config.json`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(EvalError::io(path))?;
        let cfg: Self = serde_json::from_str(&text).map_err(|e| EvalError::format(path, e))?;
        if cfg.format != PUBLISHED_FORMAT || cfg.format_version != PUBLISHED_FORMAT_VERSION {
            return Err(EvalError::format(
                path,
                format!(
                    "format `{}` version {}; this dgcolor reads `{PUBLISHED_FORMAT}` version \
                     {PUBLISHED_FORMAT_VERSION}",
                    cfg.format, cfg.format_version
                ),
            ));
        }
        if cfg.input != ChannelScaling::lightness() || cfg.output != ChannelScaling::chroma() {
            return Err(EvalError::format(
                path,
                "the input/output scaling differs from dgcolor's (L / 50 - 1 in, ab / 100 out)",
            ));
        }
        cfg.model
            .validate()
            .map_err(|e| EvalError::format(path, e))?;
        Ok(cfg)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain data serialises") + "\n"
    }
}

/// The `config.json` beside a weights file, if there is one.
pub fn config_beside(weights: &Path) -> Option<PathBuf> {
    let path = weights.parent()?.join(CONFIG_FILE);
    path.is_file().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dgcolor_data::{scale_ab, scale_l};

    #[test]
    fn scalings_are_the_data_pipelines() {
        let (l, ab) = (ChannelScaling::lightness(), ChannelScaling::chroma());
        for v in [0.0f32, 12.5, 37.0, 50.0, 99.9, 100.0] {
            let ours = (v as f64 / l.divisor + l.offset) as f32;
            assert!((ours - scale_l(v)).abs() <= f32::EPSILON, "L {v}");
        }
        for v in [-128.0f32, -40.5, 0.0, 3.25, 127.0] {
            let ours = (v as f64 / ab.divisor + ab.offset) as f32;
            assert!((ours - scale_ab(v)).abs() <= f32::EPSILON, "ab {v}");
        }
    }

    #[test]
    fn config_round_trips_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = PublishedConfig::new(
            ModelConfig::new(32, 4, 5, 7, 2),
            ResizeFilter::Antialias,
            None,
        );
        let path = dir.path().join(CONFIG_FILE);
        std::fs::write(&path, cfg.to_json()).unwrap();
        assert_eq!(PublishedConfig::read(&path).unwrap(), cfg);
        let mut bad = cfg.clone();
        bad.format_version = 99;
        std::fs::write(&path, bad.to_json()).unwrap();
        let err = PublishedConfig::read(&path).unwrap_err().to_string();
        assert!(err.contains("version 99"), "{err}");
    }
}
