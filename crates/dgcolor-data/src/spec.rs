//! What a run asks of its data, as typed values with one string form each: `--data` (which
//! dataset), `--split` (how the sources are split into train and validation) and `--resize`
//! (how images reach the training size). Each type parses its command-line string once
//! ([`FromStr`]) and writes the same string back ([`fmt::Display`]); serde uses that string,
//! so a run's config, its spec hash and the command line that re-creates it agree.
//!
//! `--data` forms (a prefix picks the loader; anything else is a generic folder):
//!
//! | form | meaning |
//! | --- | --- |
//! | `synth` | the embedded benchmark, generated under `--data-root` on first use |
//! | `synth:palette-shift` | the same with the colour shift of art_painting and cartoon on |
//! | `PATH` | a generic folder `<PATH>/<domain>/<class>/<file>`; classes = sorted union |
//! | `pacs:PATH` | PACS: `PATH/kfold/`, `PATH/PACS/` or `PATH` itself; the 7 classes in official order |
//! | `office-home:PATH` | Office-Home: `PATH/OfficeHomeDataset_10072016/`, `PATH/office_home/` or `PATH` itself |
//! | `pacs-parquet:FILE_OR_DIR` | the Hub's parquet copy (e.g. the snapshot `dgcolor data fetch pacs` prints), extracted once under `--data-root/parquet/` |
//! | `office-home-parquet:FILE_OR_DIR` | likewise for Office-Home |
//!
//! Splits ([`SplitChoice`]): the reference's seeded 90/10 per-class split of each source
//! (default), or the official PACS lists (`official`: train = `<d>_train_kfold.txt`,
//! validation = `<d>_crossval_kfold.txt`). In both, the target domain as found on disk (the
//! official `<d>_test_kfold.txt` lists the whole domain too) is split per class, seeded,
//! into an oracle share (default [`ORACLE_FRACTION`], for test-domain model selection) and
//! the test set every reported metric is computed on.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::benchmark::Benchmark;
use crate::benchmark_tree::{open_office_home, open_pacs, open_tree, same_domain};
use crate::error::{DataError, Result};
use crate::folder::{oracle_split, reference_split, MultiDomainFolder, Sample};
use crate::image_io::ResizeFilter;
use crate::kfold::{find_split_dir, official_split, MissingPolicy};
use crate::loader::SourceSet;
use crate::parquet::{extract_parquet, parquet_files};
use crate::synth::{ensure_synth, SynthConfig, SYNTH_VERSION};

/// What `--data` names (see the module table).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DataSpec {
    /// The embedded benchmark (`synth`, or `synth:palette-shift` with the colour shift of
    /// [`SynthConfig::palette_shift`]); its size comes from the run (see [`DataSpec::open`]).
    Synth {
        palette_shift: bool,
    },
    Folder {
        root: PathBuf,
    },
    Pacs {
        root: PathBuf,
    },
    OfficeHome {
        root: PathBuf,
    },
    Parquet {
        dataset: Benchmark,
        path: PathBuf,
    },
}

/// `--data` prefixes: (prefix, dataset, parquet copy). The first of each dataset's
/// spellings is the one [`DataSpec`]'s `Display` writes.
const DATA_PREFIXES: [(&str, Benchmark, bool); 6] = [
    ("pacs-parquet:", Benchmark::Pacs, true),
    ("office-home-parquet:", Benchmark::OfficeHome, true),
    ("office_home-parquet:", Benchmark::OfficeHome, true),
    ("pacs:", Benchmark::Pacs, false),
    ("office-home:", Benchmark::OfficeHome, false),
    ("office_home:", Benchmark::OfficeHome, false),
];

impl FromStr for DataSpec {
    type Err = DataError;

    fn from_str(spec: &str) -> Result<Self> {
        match spec {
            "" => {
                return Err(DataError::Config(
                    "--data is empty: give `synth`, a dataset folder, pacs:PATH, office-home:PATH, pacs-parquet:PATH or office-home-parquet:PATH".into(),
                ))
            }
            "synth" => return Ok(DataSpec::Synth { palette_shift: false }),
            "synth:palette-shift" => return Ok(DataSpec::Synth { palette_shift: true }),
            _ => {}
        }
        for (prefix, bench, parquet) in DATA_PREFIXES {
            if let Some(rest) = spec.strip_prefix(prefix) {
                if rest.is_empty() {
                    return Err(DataError::Config(format!(
                        "--data {spec}: a path must follow `{prefix}`"
                    )));
                }
                let path = PathBuf::from(rest);
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
}

impl fmt::Display for DataSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = |bench: Benchmark, parquet: bool| {
            DATA_PREFIXES
                .iter()
                .find(|(_, b, p)| *b == bench && *p == parquet)
                .map(|(prefix, _, _)| *prefix)
                .expect("every dataset has a prefix")
        };
        match self {
            DataSpec::Synth {
                palette_shift: false,
            } => f.write_str("synth"),
            DataSpec::Synth {
                palette_shift: true,
            } => f.write_str("synth:palette-shift"),
            DataSpec::Folder { root } => write!(f, "{}", root.display()),
            DataSpec::Pacs { root } => {
                write!(f, "{}{}", prefix(Benchmark::Pacs, false), root.display())
            }
            DataSpec::OfficeHome { root } => {
                write!(
                    f,
                    "{}{}",
                    prefix(Benchmark::OfficeHome, false),
                    root.display()
                )
            }
            DataSpec::Parquet { dataset, path } => {
                write!(f, "{}{}", prefix(*dataset, true), path.display())
            }
        }
    }
}

impl TryFrom<String> for DataSpec {
    type Error = DataError;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<DataSpec> for String {
    fn from(d: DataSpec) -> String {
        d.to_string()
    }
}

impl DataSpec {
    /// The benchmark whose published shape this data has (`None`: synth or generic folder).
    pub fn benchmark(&self) -> Option<Benchmark> {
        match self {
            DataSpec::Pacs { .. } => Some(Benchmark::Pacs),
            DataSpec::OfficeHome { .. } => Some(Benchmark::OfficeHome),
            DataSpec::Parquet { dataset, .. } => Some(*dataset),
            DataSpec::Synth { .. } | DataSpec::Folder { .. } => None,
        }
    }

    /// The name [`crate::paper_settings`] takes: `pacs`, `office-home`, `synth`; `None` for
    /// a generic folder.
    pub fn settings_name(&self) -> Option<&'static str> {
        match self {
            DataSpec::Synth { .. } => Some("synth"),
            DataSpec::Folder { .. } => None,
            _ => self.benchmark().map(Benchmark::name),
        }
    }

    /// The dataset's name in tables and file names: `synth`, `pacs`, `office-home`, or
    /// `data` for a generic folder.
    pub fn table_name(&self) -> &'static str {
        self.settings_name().unwrap_or("data")
    }

    /// Where the synth set of `cfg` lives under `data_root`: one folder per generator
    /// version and configuration, so a set of another version is never mixed in.
    pub fn synth_dir(data_root: &Path, cfg: &SynthConfig) -> PathBuf {
        data_root.join("synth").join(format!(
            "v{SYNTH_VERSION}-{}px-{}per-class-seed{}{}",
            cfg.size,
            cfg.per_class,
            cfg.seed,
            if cfg.palette_shift {
                "-palette-shift"
            } else {
                ""
            }
        ))
    }

    /// Opens the dataset. `synth` is generated under `data_root` from `synth` (the run's
    /// size and images per class; the palette shift comes from the spec) if it is not there
    /// yet; other datasets ignore it.
    pub fn open(&self, data_root: &Path, synth: &SynthConfig) -> Result<MultiDomainFolder> {
        match self {
            DataSpec::Synth { palette_shift } => {
                let cfg = SynthConfig {
                    palette_shift: *palette_shift,
                    ..*synth
                };
                MultiDomainFolder::open(&ensure_synth(&Self::synth_dir(data_root, &cfg), &cfg)?)
            }
            DataSpec::Folder { root } => MultiDomainFolder::open(root),
            DataSpec::Pacs { root } => open_pacs(root),
            DataSpec::OfficeHome { root } => open_office_home(root),
            DataSpec::Parquet { dataset, path } => {
                let files = parquet_files(path)?;
                let tree = extract_parquet(&files, *dataset, &data_root.join("parquet"))?;
                open_tree(&tree, *dataset)
            }
        }
    }
}

/// Which train/validation split a run uses (the test set is always the whole target).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SplitChoice {
    /// The reference code's seeded per-class 90/10 split of each source.
    #[default]
    Reference,
    /// The official PACS lists: `<d>_train_kfold.txt` / `<d>_crossval_kfold.txt`, found
    /// in `dir` or by [`find_split_dir`]'s search next to the image tree.
    Official {
        dir: Option<PathBuf>,
        missing: MissingPolicy,
    },
}

impl FromStr for SplitChoice {
    type Err = DataError;

    /// `reference`, or `official` with comma-separated options `skip-missing` (train on the
    /// listed files that exist, reporting how many are missing; default: fail) and
    /// `dir=PATH` (where the `*_kfold.txt` files are), e.g.
    /// `official,skip-missing,dir=/data/pacs_label`.
    fn from_str(spec: &str) -> Result<Self> {
        let mut parts = spec.split(',').map(str::trim);
        match parts.next() {
            Some("reference") | Some("") => {
                if let Some(p) = parts.next() {
                    return Err(DataError::Config(format!(
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
                        return Err(DataError::Config(format!(
                            "--split {spec}: unknown option `{p}` (expected skip-missing, fail-missing or dir=PATH)"
                        )));
                    }
                }
                Ok(SplitChoice::Official { dir, missing })
            }
            _ => Err(DataError::Config(format!(
                "--split {spec}: expected `reference` or `official[,skip-missing][,dir=PATH]`"
            ))),
        }
    }
}

impl fmt::Display for SplitChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SplitChoice::Reference => f.write_str("reference"),
            SplitChoice::Official { dir, missing } => {
                f.write_str("official")?;
                if *missing == MissingPolicy::Skip {
                    f.write_str(",skip-missing")?;
                }
                if let Some(d) = dir {
                    write!(f, ",dir={}", d.display())?;
                }
                Ok(())
            }
        }
    }
}

impl TryFrom<String> for SplitChoice {
    type Error = DataError;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<SplitChoice> for String {
    fn from(s: SplitChoice) -> String {
        s.to_string()
    }
}

impl FromStr for ResizeFilter {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "nearest" => Ok(ResizeFilter::Nearest),
            "antialias" => Ok(ResizeFilter::Antialias),
            _ => Err(DataError::Config(format!(
                "--resize `{s}`: expected nearest or antialias"
            ))),
        }
    }
}

impl fmt::Display for ResizeFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResizeFilter::Nearest => "nearest",
            ResizeFilter::Antialias => "antialias",
        })
    }
}

/// Share of each source domain the reference split holds out for validation (the
/// reference's 90/10 split).
pub const VAL_FRACTION: f64 = 0.1;

/// Share of the target domain held out as the oracle set of test-domain model selection
/// (DomainBed's 80/20 split of every domain); the test metrics are computed on the rest.
pub const ORACLE_FRACTION: f64 = 0.2;

/// The train/validation split of each source, and the target's oracle and test sets.
pub struct Splits {
    /// The dataset's root: image paths in results are written relative to it.
    pub root: PathBuf,
    pub classes: Vec<String>,
    pub train: Vec<SourceSet>,
    pub val: Vec<(String, Vec<Sample>)>,
    /// The target images test-domain ("oracle") model selection may look at.
    pub oracle: Vec<Sample>,
    /// The target images every reported test metric is computed on.
    pub test: Vec<Sample>,
    /// What a reader of the run should know: split-file problems (`file:line: ...`) and
    /// "N of M files listed in X are missing" under the skip policy. Empty for the
    /// reference split.
    pub notes: Vec<String>,
}

/// The splits of one run: each source split by `split` (the reference split per class with
/// `val_fraction` and `seed`; the official lists ignore both); the target split per class
/// into the oracle share `oracle_fraction` and the test set (the whole target when it is 0).
pub fn make_splits(
    folder: &MultiDomainFolder,
    split: &SplitChoice,
    sources: &[String],
    target: &str,
    fractions: (f64, f64),
    seed: u64,
) -> Result<Splits> {
    let (val_fraction, oracle_fraction) = fractions;
    if sources.is_empty() {
        return Err(DataError::Config(
            "--sources: at least one source domain is needed".into(),
        ));
    }
    if sources.iter().any(|s| same_domain(s, target)) {
        return Err(DataError::Config(format!(
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
    let target = oracle_split(folder.domain(target)?, oracle_fraction, seed);
    Ok(Splits {
        root: folder.root.clone(),
        classes: folder.classes.clone(),
        train,
        val,
        oracle: target.val,
        test: target.train,
        notes,
    })
}
