//! Resolving `--data` to a multi-domain image folder.

use std::path::{Path, PathBuf};

use dgcolor_data::{
    ensure_synth, reference_split, MultiDomainFolder, Sample, SourceSet, SynthConfig,
};
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// `synth` (the embedded benchmark, generated on first use) or a folder
/// `<root>/<domain>/<class>/<file>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataSpec {
    Synth(SynthConfig),
    Folder { root: PathBuf },
}

impl DataSpec {
    /// Parses `--data`: `synth` uses `synth` as configured, anything else is a folder path.
    pub fn parse(spec: &str, synth: SynthConfig) -> Result<Self> {
        match spec {
            "" => Err(EvalError::Config(
                "--data is empty: give `synth` or a dataset folder".into(),
            )),
            "synth" => Ok(DataSpec::Synth(synth)),
            path => Ok(DataSpec::Folder {
                root: PathBuf::from(path),
            }),
        }
    }

    /// Where the synth set of this config lives under `data_root`.
    pub fn synth_dir(data_root: &Path, cfg: &SynthConfig) -> PathBuf {
        data_root.join("synth").join(format!(
            "{}px-{}per-class-seed{}",
            cfg.size, cfg.per_class, cfg.seed
        ))
    }

    /// Opens the dataset, generating synth under `data_root` if needed.
    pub fn open(&self, data_root: &Path) -> Result<MultiDomainFolder> {
        let root = match self {
            DataSpec::Synth(cfg) => ensure_synth(&Self::synth_dir(data_root, cfg), cfg)?,
            DataSpec::Folder { root } => root.clone(),
        };
        Ok(MultiDomainFolder::open(&root)?)
    }
}

/// The train/validation split of each source and the target test set.
pub struct Splits {
    pub classes: Vec<String>,
    pub train: Vec<SourceSet>,
    pub val: Vec<(String, Vec<Sample>)>,
    pub test: Vec<Sample>,
}

/// Splits each source per class 90/10 with the run seed; the whole target is the test set.
pub fn make_splits(
    folder: &MultiDomainFolder,
    sources: &[String],
    target: &str,
    val_fraction: f64,
    seed: u64,
) -> Result<Splits> {
    if sources.is_empty() {
        return Err(EvalError::Config(
            "--sources: at least one source domain is needed".into(),
        ));
    }
    if sources.iter().any(|s| s == target) {
        return Err(EvalError::Config(format!(
            "--target {target} is also a source domain"
        )));
    }
    let mut train = Vec::new();
    let mut val = Vec::new();
    for (i, name) in sources.iter().enumerate() {
        let split = reference_split(folder.domain(name)?, val_fraction, seed);
        train.push(SourceSet {
            domain: i,
            samples: split.train,
        });
        val.push((name.clone(), split.val));
    }
    Ok(Splits {
        classes: folder.classes.clone(),
        train,
        val,
        test: folder.domain(target)?.to_vec(),
    })
}
