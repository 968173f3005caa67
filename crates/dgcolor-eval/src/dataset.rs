//! Resolving `--data` to a multi-domain image folder, and the train/validation/test
//! splits of a run.
//!
//! `--data` forms (a prefix picks the loader; anything else is a generic folder):
//!
//! | form | meaning |
//! | --- | --- |
//! | `synth` | the embedded benchmark, generated under `--data-root` on first use |
//! | `PATH` | a generic folder `<PATH>/<domain>/<class>/<file>`; classes = sorted union |
//! | `pacs:PATH` | PACS: `PATH/kfold/`, `PATH/PACS/` or `PATH` itself; the 7 classes in official order |
//! | `office-home:PATH` | Office-Home: `PATH/OfficeHomeDataset_10072016/`, `PATH/office_home/` or `PATH` itself |
//! | `pacs-parquet:FILE_OR_DIR` | the Hub's parquet copy (e.g. the snapshot `dgcolor data fetch pacs` prints), extracted once under `--data-root/parquet/` |
//! | `office-home-parquet:FILE_OR_DIR` | likewise for Office-Home |
//!
//! Splits ([`SplitChoice`]): the reference's seeded 90/10 per-class split of each source
//! (default), or the official PACS lists (`official`: train = `<d>_train_kfold.txt`,
//! validation = `<d>_crossval_kfold.txt`). In both, the test set is the *whole* target
//! domain as found on disk (the official `<d>_test_kfold.txt` lists the whole domain too,
//! so on a complete copy the two agree; on a partial copy the folder is what exists).

use std::path::{Path, PathBuf};

use dgcolor_data::{
    ensure_synth, extract_parquet, find_split_dir, official_split, open_office_home, open_pacs,
    open_tree, parquet_files, reference_split, Benchmark, MissingPolicy, MultiDomainFolder, Sample,
    SourceSet, SynthConfig,
};
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// What `--data` names (see the module table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataSpec {
    Synth(SynthConfig),
    Folder { root: PathBuf },
    Pacs { root: PathBuf },
    OfficeHome { root: PathBuf },
    Parquet { dataset: Benchmark, path: PathBuf },
}

impl DataSpec {
    /// Parses `--data` (see the module table).
    pub fn parse(spec: &str, synth: SynthConfig) -> Result<Self> {
        const PREFIXES: [(&str, Option<Benchmark>, bool); 6] = [
            ("pacs-parquet:", Some(Benchmark::Pacs), true),
            ("office-home-parquet:", Some(Benchmark::OfficeHome), true),
            ("office_home-parquet:", Some(Benchmark::OfficeHome), true),
            ("pacs:", Some(Benchmark::Pacs), false),
            ("office-home:", Some(Benchmark::OfficeHome), false),
            ("office_home:", Some(Benchmark::OfficeHome), false),
        ];
        match spec {
            "" => {
                return Err(EvalError::Config(
                    "--data is empty: give `synth`, a dataset folder, pacs:PATH, office-home:PATH, pacs-parquet:PATH or office-home-parquet:PATH".into(),
                ))
            }
            "synth" => return Ok(DataSpec::Synth(synth)),
            _ => {}
        }
        for (prefix, bench, parquet) in PREFIXES {
            if let Some(rest) = spec.strip_prefix(prefix) {
                if rest.is_empty() {
                    return Err(EvalError::Config(format!(
                        "--data {spec}: a path must follow `{prefix}`"
                    )));
                }
                let path = PathBuf::from(rest);
                let bench = bench.expect("every prefix names a dataset");
                return Ok(match (bench, parquet) {
                    (_, true) => DataSpec::Parquet {
                        dataset: bench,
                        path,
                    },
                    (Benchmark::Pacs, false) => DataSpec::Pacs { root: path },
                    (Benchmark::OfficeHome, false) => DataSpec::OfficeHome { root: path },
                });
            }
        }
        Ok(DataSpec::Folder {
            root: PathBuf::from(spec),
        })
    }

    /// The benchmark whose published shape this data has (`None`: synth or generic folder).
    pub fn benchmark(&self) -> Option<Benchmark> {
        match self {
            DataSpec::Pacs { .. } => Some(Benchmark::Pacs),
            DataSpec::OfficeHome { .. } => Some(Benchmark::OfficeHome),
            DataSpec::Parquet { dataset, .. } => Some(*dataset),
            DataSpec::Synth(_) | DataSpec::Folder { .. } => None,
        }
    }

    /// The name [`dgcolor_data::paper_settings`] takes: `pacs`, `office-home`, `synth`;
    /// `None` for a generic folder.
    pub fn settings_name(&self) -> Option<&'static str> {
        match self {
            DataSpec::Synth(_) => Some("synth"),
            DataSpec::Folder { .. } => None,
            _ => self.benchmark().map(Benchmark::name),
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
        Ok(match self {
            DataSpec::Synth(cfg) => {
                MultiDomainFolder::open(&ensure_synth(&Self::synth_dir(data_root, cfg), cfg)?)?
            }
            DataSpec::Folder { root } => MultiDomainFolder::open(root)?,
            DataSpec::Pacs { root } => open_pacs(root)?,
            DataSpec::OfficeHome { root } => open_office_home(root)?,
            DataSpec::Parquet { dataset, path } => {
                let files = parquet_files(path)?;
                let tree = extract_parquet(&files, *dataset, &data_root.join("parquet"))?;
                open_tree(&tree, *dataset)?
            }
        })
    }
}

/// Which train/validation split a run uses (the test set is always the whole target).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SplitChoice {
    /// The reference code's seeded per-class 90/10 split of each source.
    #[default]
    Reference,
    /// The official PACS lists: `<d>_train_kfold.txt` / `<d>_crossval_kfold.txt`, found
    /// in `dir` or by [`dgcolor_data::find_split_dir`]'s search next to the image tree.
    Official {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dir: Option<PathBuf>,
        #[serde(default)]
        missing: MissingPolicy,
    },
}

impl SplitChoice {
    pub fn is_reference(&self) -> bool {
        matches!(self, SplitChoice::Reference)
    }

    /// Parses `--split`: `reference`, or `official` with comma-separated options
    /// `skip-missing` (train on the listed files that exist, reporting how many are
    /// missing; default: fail) and `dir=PATH` (where the `*_kfold.txt` files are), e.g.
    /// `official,skip-missing,dir=/data/pacs_label`.
    pub fn parse(spec: &str) -> Result<Self> {
        let mut parts = spec.split(',').map(str::trim);
        match parts.next() {
            Some("reference") | Some("") => {
                if let Some(p) = parts.next() {
                    return Err(EvalError::Config(format!(
                        "--split {spec}: `reference` takes no option (got `{p}`)"
                    )));
                }
                Ok(SplitChoice::Reference)
            }
            Some("official") => {
                let (mut dir, mut missing) = (None, MissingPolicy::Fail);
                for p in parts {
                    if p == "skip-missing" {
                        missing = MissingPolicy::Skip;
                    } else if p == "fail-missing" {
                        missing = MissingPolicy::Fail;
                    } else if let Some(d) = p.strip_prefix("dir=") {
                        dir = Some(PathBuf::from(d));
                    } else {
                        return Err(EvalError::Config(format!(
                            "--split {spec}: unknown option `{p}` (expected skip-missing, fail-missing or dir=PATH)"
                        )));
                    }
                }
                Ok(SplitChoice::Official { dir, missing })
            }
            _ => Err(EvalError::Config(format!(
                "--split {spec}: expected `reference` or `official[,skip-missing][,dir=PATH]`"
            ))),
        }
    }
}

/// The train/validation split of each source and the target test set.
pub struct Splits {
    pub classes: Vec<String>,
    pub train: Vec<SourceSet>,
    pub val: Vec<(String, Vec<Sample>)>,
    pub test: Vec<Sample>,
    /// What a reader of the run should know: split-file problems (`file:line: ...`) and
    /// "N of M files listed in X are missing" under the skip policy. Empty for the
    /// reference split.
    pub notes: Vec<String>,
}

/// Splits each source per class 90/10 with the run seed; the whole target is the test set.
pub fn make_splits(
    folder: &MultiDomainFolder,
    sources: &[String],
    target: &str,
    val_fraction: f64,
    seed: u64,
) -> Result<Splits> {
    make_splits_with(
        folder,
        &SplitChoice::Reference,
        sources,
        target,
        val_fraction,
        seed,
    )
}

/// [`make_splits`] with a choice of split: the reference one, or the official PACS lists
/// (`val_fraction` and `seed` then play no part).
pub fn make_splits_with(
    folder: &MultiDomainFolder,
    split: &SplitChoice,
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
    if sources.iter().any(|s| dgcolor_data::same_domain(s, target)) {
        return Err(EvalError::Config(format!(
            "--target {target} is also a source domain"
        )));
    }
    let mut train = Vec::new();
    let mut val = Vec::new();
    let mut notes = Vec::new();
    let split_dir = match split {
        SplitChoice::Reference => None,
        SplitChoice::Official { dir, .. } => Some(find_split_dir(&folder.root, dir.as_deref())?),
    };
    for (i, name) in sources.iter().enumerate() {
        let (train_samples, val_samples) = match (split, &split_dir) {
            (SplitChoice::Official { missing, .. }, Some(dir)) => {
                let official = official_split(folder, dir, name, *missing)?;
                notes.extend(official.train.report());
                notes.extend(official.val.report());
                (official.train.samples, official.val.samples)
            }
            _ => {
                let split = reference_split(folder.domain(name)?, val_fraction, seed);
                (split.train, split.val)
            }
        };
        train.push(SourceSet {
            domain: i,
            samples: train_samples,
        });
        val.push((name.clone(), val_samples));
    }
    Ok(Splits {
        classes: folder.classes.clone(),
        train,
        val,
        test: folder.domain(target)?.to_vec(),
        notes,
    })
}
