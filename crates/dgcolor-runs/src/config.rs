//! The complete configuration of one run, written to its `config.toml` before the first
//! step: every value the run depends on, plus the process settings that change its
//! arithmetic. Two runs with equal configs compute the same thing.

use dgcolor_algorithms::{AlgorithmEntry, HParams, PresetName};
use dgcolor_data::{BatchMode, DataSpec, OnBadImage, Preprocess, SplitChoice, SynthConfig};
use dgcolor_kernels::{Precision, Settings};
use dgcolor_models::ModelConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RunError};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// [`crate::SCHEMA_VERSION`] of the dgcolor that wrote it.
    pub schema: u32,
    pub algorithm: &'static AlgorithmEntry,
    pub preset: PresetName,
    pub data: DataSpec,
    /// The generated benchmark's parameters, when `data` is `synth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synth: Option<SynthConfig>,
    pub sources: Vec<String>,
    pub target: String,
    pub seed: u64,
    /// 0: the default hyperparameters; N: random-search draw N (before `--set`).
    pub hparams_seed: u64,
    pub steps: u64,
    pub batch_size: usize,
    pub batch_mode: BatchMode,
    pub preprocess: Preprocess,
    pub flip: bool,
    pub val_fraction: f64,
    pub oracle_fraction: f64,
    pub split: SplitChoice,
    pub eval_every: u64,
    pub log_every: u64,
    pub on_bad_image: OnBadImage,
    pub precision: Precision,
    pub hparams: HParams,
    pub model: ModelConfig,
    /// The `DGCOLOR_*` switches in force: they choose kernels and so summation orders, so a
    /// run resumed under other switches would not end with the same weights.
    pub settings: Settings,
}

impl TrainConfig {
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self)
            .map_err(|e| RunError::Config(format!("cannot write the run config as TOML: {e}")))
    }

    /// The name tables and file names use for the run's dataset.
    pub fn dataset_name(&self) -> &'static str {
        self.data.table_name()
    }
}
