//! What a researcher asks for (algorithm, data, domains, preset, overrides) and how it
//! becomes the complete [`TrainConfig`] of a run. The CLI and the experiment binaries both
//! go through here, so a run means the same thing whichever tool started it.

use dgcolor_kernels::Precision;
use std::path::Path;

use dgcolor_algorithms::{info, HParams, Preset};
use dgcolor_data::{BatchMode, OnBadImage, Preprocess, ResizeFilter, SynthConfig};
use dgcolor_models::ModelConfig;
use serde::{Deserialize, Serialize};

use crate::dataset::{DataSpec, SplitChoice};
use crate::error::{EvalError, Result};
use crate::train::{TrainConfig, VAL_FRACTION};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub algorithm: String,
    /// `synth` or a dataset folder.
    pub data: String,
    pub sources: Vec<String>,
    pub target: String,
    pub preset: String,
    /// Updates (default: the preset's).
    pub steps: Option<u64>,
    pub seed: u64,
    /// Batch size (default: the preset's).
    pub batch_size: Option<usize>,
    /// Per-domain balanced batches even if the algorithm does not need them.
    pub balanced: bool,
    /// Hyperparameter overrides `name=value`.
    pub set: Vec<String>,
    /// AdaIN skip: `none`, `z` or a decoder index; `None` = the algorithm's default.
    pub adain: Option<String>,
    pub resize: ResizeFilter,
    pub skip_bad_images: bool,
    /// `reference` (default) or `official[,skip-missing][,dir=PATH]` (PACS split files).
    #[serde(default = "reference_split_name")]
    pub split: String,
    /// Convolution GEMM precision: `f32` (default), `tf32` or `bf16` (autocast). Left out of
    /// the JSON when f32, so the spec hashes (run directory names) of older sweeps hold.
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
}

fn reference_split_name() -> String {
    "reference".into()
}

impl RunSpec {
    /// A spec with the defaults of `dgcolor train`.
    pub fn new(algorithm: &str, sources: &[&str], target: &str, preset: &str) -> Self {
        Self {
            algorithm: algorithm.into(),
            data: "synth".into(),
            sources: sources.iter().map(|s| s.to_string()).collect(),
            target: target.into(),
            preset: preset.into(),
            steps: None,
            seed: 0,
            batch_size: None,
            balanced: false,
            set: Vec::new(),
            adain: None,
            resize: ResizeFilter::Nearest,
            skip_bad_images: false,
            split: reference_split_name(),
            precision: Precision::F32,
        }
    }

    /// The `dgcolor train` arguments that run this spec (without `--out` and runtime
    /// options): what the dry-run launcher prints and a cluster launcher would submit.
    pub fn to_args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--algorithm".into(),
            self.algorithm.clone(),
            "--data".into(),
            self.data.clone(),
            "--sources".into(),
            self.sources.join(","),
            "--target".into(),
            self.target.clone(),
            "--preset".into(),
            self.preset.clone(),
            "--seed".into(),
            self.seed.to_string(),
            "--resize".into(),
            match self.resize {
                ResizeFilter::Nearest => "nearest".into(),
                ResizeFilter::Antialias => "antialias".into(),
            },
        ];
        if let Some(s) = self.steps {
            a.extend(["--steps".into(), s.to_string()]);
        }
        if let Some(b) = self.batch_size {
            a.extend(["--batch-size".into(), b.to_string()]);
        }
        if self.balanced {
            a.push("--balanced".into());
        }
        for o in &self.set {
            a.extend(["--set".into(), o.clone()]);
        }
        if let Some(x) = &self.adain {
            a.extend(["--adain".into(), x.clone()]);
        }
        if self.skip_bad_images {
            a.push("--skip-bad-images".into());
        }
        if self.split != reference_split_name() {
            a.extend(["--split".into(), self.split.clone()]);
        }
        if !self.precision.is_f32() {
            a.extend(["--precision".into(), self.precision.as_str().into()]);
        }
        a
    }

    /// The complete config; opens the dataset (generating synth under `data_root` if needed)
    /// to learn its classes and size.
    pub fn config(&self, data_root: &Path) -> Result<TrainConfig> {
        let algo = info(&self.algorithm)?;
        let preset = Preset::get(&self.preset)?;
        let synth = SynthConfig {
            size: preset.size as u32,
            per_class: preset.synth_per_class,
            seed: 0,
        };
        let data = DataSpec::parse(&self.data, synth)?;
        let mut hparams = HParams::defaults(algo.name);
        hparams
            .set(algo.name, &self.set)
            .map_err(|e| EvalError::Config(e.to_string()))?;
        let mut model =
            ModelConfig::new(preset.size, preset.nf, preset.depth, 1, self.sources.len());
        model.adain_index = match self.adain.as_deref() {
            None => algo.adain.then(|| model.z_skip_index()),
            Some("none") => None,
            Some("z") => Some(model.z_skip_index()),
            Some(k) => Some(k.parse().map_err(|_| {
                EvalError::Config(format!(
                    "--adain `{k}`: expected none, z or an index 1..{}",
                    preset.depth - 1
                ))
            })?),
        };
        let folder = data.open(data_root)?;
        model.n_classes = folder.classes.len();
        model.validate()?;
        let batch_size = self.batch_size.unwrap_or(preset.batch_size);
        let mut train_images = 0;
        for s in &self.sources {
            train_images += folder.domain(s)?.len();
        }
        let steps = self.steps.unwrap_or_else(|| {
            TrainConfig::steps_for(
                &Preset {
                    batch_size,
                    ..preset.clone()
                },
                train_images,
            )
        });
        Ok(TrainConfig {
            algorithm: algo.name.to_string(),
            preset: preset.name.clone(),
            data,
            sources: self.sources.clone(),
            target: self.target.clone(),
            seed: self.seed,
            steps,
            batch_size,
            batch_mode: if self.balanced || algo.balanced {
                BatchMode::Balanced
            } else {
                BatchMode::Mixed
            },
            preprocess: Preprocess {
                size: preset.size,
                filter: self.resize,
            },
            flip: true,
            val_fraction: VAL_FRACTION,
            split: SplitChoice::parse(&self.split)?,
            eval_every: preset.eval_every.min(steps.max(1)),
            log_every: 10.min(steps.max(1)),
            on_bad_image: if self.skip_bad_images {
                OnBadImage::Skip
            } else {
                OnBadImage::Fail
            },
            model,
            hparams,
            precision: self.precision,
        })
    }
}
