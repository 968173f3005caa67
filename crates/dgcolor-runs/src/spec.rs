//! What a researcher asks for, as typed values parsed once at the command line: the run
//! options ([`RunOptions`], shared by `dgcolor train` and every sweep) and one run
//! ([`RunSpec`]: algorithm, domains, seed, options). Both derive clap's `Args`, so each option
//! is defined here and nowhere else, and serde, so a spec hashes to its run directory's name
//! and a sweep writes the `dgcolor train` command line of a run from the spec itself
//! ([`RunSpec::to_args`]; it parses back to the same spec, tested for every algorithm,
//! preset and option).

use std::path::Path;

use clap::Args;
use dgcolor_algorithms::{lookup, AlgorithmEntry, HParamOverride, HParams, PresetName};
use dgcolor_data::{
    make_splits, DataSpec, OnBadImage, Preprocess, ResizeFilter, SplitChoice, Splits, SynthConfig,
    ORACLE_FRACTION, VAL_FRACTION,
};
use dgcolor_kernels::Precision;
use dgcolor_models::{AdainSkip, ModelConfig};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::{Result, RunError};
use crate::record::SCHEMA_VERSION;

/// The options of a run other than its algorithm, domains and seed: what a sweep shares
/// among its runs.
#[derive(Args, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunOptions {
    /// `synth` (generated under --data-root on first use), a folder
    /// <root>/<domain>/<class>/<image>, pacs:PATH, office-home:PATH, pacs-parquet:PATH or
    /// office-home-parquet:PATH.
    #[arg(long, default_value = "synth")]
    pub data: DataSpec,
    /// smoke (seconds, for tests), quick (CPU minutes) or paper (256 px, nf 64, depth 8,
    /// batch 128, 50 epochs).
    #[arg(long, default_value = "quick")]
    pub preset: PresetName,
    /// Number of updates (default: the preset's); at least 1.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub steps: Option<u64>,
    /// Batch size (default: the preset's).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: Option<u64>,
    /// Take the same number of images from each source per step even if the algorithm
    /// does not need it.
    #[arg(long)]
    pub balanced: bool,
    /// Override hyperparameters, e.g. --set lr=2e-4,w_adv=0.3 (repeatable; see
    /// `dgcolor hparams`).
    #[arg(long = "set", value_name = "NAME=VALUE", value_delimiter = ',')]
    pub set: Vec<HParamOverride>,
    /// AdaIN skip: a decoder index 1..depth-1, `z` (the skip carrying the head output, the
    /// default of `ours`) or `none` (the default of the baselines).
    #[arg(long)]
    pub adain: Option<AdainSkip>,
    /// Resize filter: nearest (the reference) or antialias.
    #[arg(long, default_value = "nearest")]
    pub resize: ResizeFilter,
    /// Skip unreadable images (recorded in records.jsonl) instead of failing.
    #[arg(long)]
    pub skip_bad_images: bool,
    /// Train/validation split: `reference` (seeded 90/10 per class) or `official` (PACS
    /// `<domain>_{train,crossval}_kfold.txt`), with options `,skip-missing` and `,dir=PATH`.
    #[arg(long, default_value = "reference")]
    pub split: SplitChoice,
    /// Share of the target domain held out for test-domain ("oracle") model selection; the
    /// test metrics are computed on the rest (0: the whole target is the test set).
    #[arg(long, default_value = "0.2", value_parser = parse_fraction)]
    pub oracle_fraction: f64,
    /// Precision of the convolutions' matrix products: f32; tf32 (CUDA: TF32 tensor cores,
    /// PyTorch's default for convolutions; the same as f32 on the CPU); bf16 (autocast:
    /// operands rounded to bfloat16, everything else f32).
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            data: DataSpec::Synth {
                palette_shift: false,
            },
            preset: PresetName::Quick,
            steps: None,
            batch_size: None,
            balanced: false,
            set: Vec::new(),
            adain: None,
            resize: ResizeFilter::Nearest,
            skip_bad_images: false,
            split: SplitChoice::Reference,
            oracle_fraction: ORACLE_FRACTION,
            precision: Precision::F32,
        }
    }
}

fn parse_fraction(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..0.9).contains(&f) => Ok(f),
        _ => Err(format!("`{s}`: expected a fraction in [0, 0.9)")),
    }
}

/// One run: an algorithm on source domains, evaluated on a target, with a seed.
#[derive(Args, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// ours, erm, ... (see `dgcolor algorithms`).
    #[arg(long, default_value = "ours", value_parser = parse_algorithm)]
    pub algorithm: &'static AlgorithmEntry,
    /// Comma-separated source domains.
    #[arg(long, value_delimiter = ',', default_value = "photo,cartoon")]
    pub sources: Vec<String>,
    /// The unseen target domain.
    #[arg(long, default_value = "art_painting")]
    pub target: String,
    /// The trial seed: weights, batches, dropout and every split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The hyperparameters: 0 = the registry's defaults, N > 0 = the random-search draw N
    /// (DomainBed's `hparams_seed`; independent of the trial seed). `--set` applies on top.
    #[arg(long, default_value_t = 0)]
    pub hparams_seed: u64,
    #[command(flatten)]
    #[serde(flatten)]
    pub options: RunOptions,
}

fn parse_algorithm(name: &str) -> std::result::Result<&'static AlgorithmEntry, String> {
    lookup(name).map_err(|e| e.to_string())
}

/// A run's resolved config and its splits: the dataset is opened once, here.
pub struct PreparedRun {
    pub config: TrainConfig,
    pub splits: Splits,
}

impl RunSpec {
    pub fn new(
        algorithm: &str,
        sources: &[&str],
        target: &str,
        preset: PresetName,
    ) -> Result<Self> {
        Ok(Self {
            algorithm: lookup(algorithm).map_err(|e| RunError::Config(e.to_string()))?,
            sources: sources.iter().map(|s| s.to_string()).collect(),
            target: target.into(),
            seed: 0,
            hparams_seed: 0,
            options: RunOptions {
                preset,
                ..RunOptions::default()
            },
        })
    }

    /// The `dgcolor train` arguments that run this spec (without `--out` and the runtime
    /// options), in the order `dgcolor train --help` lists them: each field as `--name value`
    /// with its serde value (which is its command-line string), lists comma-joined, flags
    /// only when set; the run's identity (algorithm, domains, seed) always, the options only
    /// where they differ from their defaults. Nothing here names a field: clap's definition
    /// gives the flags and defaults, serde the values.
    pub fn to_args(&self) -> Vec<String> {
        let serde_json::Value::Object(fields) =
            serde_json::to_value(self).expect("a run spec serialises")
        else {
            unreachable!("a struct serialises to an object")
        };
        let command = <RunSpec as Args>::augment_args(clap::Command::new("train"));
        let options = <RunOptions as Args>::augment_args(clap::Command::new("options"));
        let is_option = |id: &str| options.get_arguments().any(|a| a.get_id() == id);
        let mut args = Vec::new();
        for arg in command.get_arguments() {
            let flag = format!(
                "--{}",
                arg.get_long().expect("every run option is a --flag")
            );
            let default: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let value = fields.get(arg.get_id().as_str());
            let text = match value {
                Some(serde_json::Value::Array(items)) => {
                    Some(items.iter().map(scalar_arg).collect::<Vec<_>>().join(","))
                }
                Some(v @ (serde_json::Value::String(_) | serde_json::Value::Number(_))) => {
                    Some(scalar_arg(v))
                }
                _ => None,
            };
            if is_option(arg.get_id().as_str()) && text == Some(default.join(",")) {
                continue;
            }
            match value {
                None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false)) => {}
                Some(serde_json::Value::Bool(true)) => args.push(flag),
                Some(serde_json::Value::Array(items)) if items.is_empty() => {}
                Some(serde_json::Value::Array(items)) => {
                    args.push(flag);
                    args.push(items.iter().map(scalar_arg).collect::<Vec<_>>().join(","));
                }
                Some(other) => {
                    args.push(flag);
                    args.push(scalar_arg(other));
                }
            }
        }
        args
    }

    /// The stable hash of the spec's JSON: the last part of its run directory's name.
    pub fn hash(&self) -> u64 {
        dgcolor_kernels::stable_hash(
            serde_json::to_string(self)
                .expect("a run spec serialises")
                .as_bytes(),
        )
    }

    /// The complete config of the run and its splits (opening the dataset, generating synth
    /// under `data_root` if needed). Everything a run could fail on before its first step is
    /// checked here: hyperparameter names, the model shape, the domains, the split files.
    pub fn prepare(&self, data_root: &Path) -> Result<PreparedRun> {
        let algo = self.algorithm;
        let o = &self.options;
        let preset = o.preset.preset();
        let synth = match o.data {
            DataSpec::Synth { palette_shift } => Some(SynthConfig {
                size: preset.size as u32,
                per_class: preset.synth_per_class,
                seed: 0,
                palette_shift,
            }),
            _ => None,
        };
        let mut hparams = match self.hparams_seed {
            0 => HParams::defaults(algo),
            draw => HParams::random(algo, draw),
        };
        hparams.set(algo, &o.set)?;
        let mut model =
            ModelConfig::new(preset.size, preset.nf, preset.depth, 1, self.sources.len());
        let adain = o.adain.unwrap_or(if algo.adain {
            AdainSkip::Z
        } else {
            AdainSkip::None
        });
        model.adain_index = adain.index(preset.depth);
        let folder = o.data.open(data_root, &synth.unwrap_or_default())?;
        model.n_classes = folder.classes.len();
        model.validate()?;
        let batch_size = o.batch_size.map_or(preset.batch_size, |b| b as usize);
        let mut train_images = 0;
        for s in &self.sources {
            train_images += folder.domain(s)?.len();
        }
        // The target must exist before anything is trained.
        folder.domain(&self.target)?;
        let steps = o
            .steps
            .unwrap_or_else(|| preset.steps_for(batch_size, train_images));
        if steps == 0 {
            return Err(RunError::Config("--steps must be at least 1".into()));
        }
        let config = TrainConfig {
            schema: SCHEMA_VERSION,
            algorithm: algo,
            preset: o.preset,
            data: o.data.clone(),
            synth,
            sources: self.sources.clone(),
            target: self.target.clone(),
            seed: self.seed,
            hparams_seed: self.hparams_seed,
            steps,
            batch_size,
            batch_mode: if o.balanced {
                dgcolor_data::BatchMode::Balanced
            } else {
                algo.batches
            },
            preprocess: Preprocess {
                size: preset.size,
                filter: o.resize,
            },
            flip: true,
            val_fraction: VAL_FRACTION,
            oracle_fraction: o.oracle_fraction,
            split: o.split.clone(),
            eval_every: preset.eval_every.min(steps),
            log_every: 10.min(steps),
            on_bad_image: if o.skip_bad_images {
                OnBadImage::Skip
            } else {
                OnBadImage::Fail
            },
            model,
            hparams,
            precision: o.precision,
            settings: *dgcolor_kernels::settings(),
        };
        let splits = make_splits(
            &folder,
            &config.split,
            &config.sources,
            &config.target,
            (config.val_fraction, config.oracle_fraction),
            config.seed,
        )?;
        Ok(PreparedRun { config, splits })
    }
}

fn scalar_arg(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
