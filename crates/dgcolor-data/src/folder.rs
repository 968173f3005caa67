//! Multi-domain image folders, `<root>/<domain>/<class>/<file>`, the layout of PACS,
//! Office-Home and our `synth` benchmark. Class ids index the sorted *union* of class
//! directories over all domains, not each domain's own list: PACS domains lack some
//! classes in subsets, and per-domain numbering would silently give the same object two
//! ids. The train/validation split is ours to define (the reference code seeds a 90/10
//! per-class split), so it is written down here once.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;

use crate::benchmark::normalize_name;
use crate::error::{DataError, Result};
use crate::rng::{derived_rng, Stream};

/// File extensions (compared case-insensitively) that count as images.
pub const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "bmp"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub path: PathBuf,
    /// Index into [`MultiDomainFolder::classes`].
    pub class: usize,
}

pub struct MultiDomainFolder {
    pub root: PathBuf,
    /// Sorted domain directory names.
    pub domains: Vec<String>,
    /// Sorted union of the class directory names of all domains.
    pub classes: Vec<String>,
    samples: Vec<Vec<Sample>>,
    ignored: Vec<PathBuf>,
    /// The directory of each domain (its name may differ from `domains[i]` when a
    /// [`FolderLayout`] gave it a canonical spelling, e.g. `Real_World` -> `Real World`).
    domain_dirs: Vec<PathBuf>,
}

/// What a known benchmark says about a folder, for [`MultiDomainFolder::open_with`].
/// The default (nothing known) is the generic loader of [`MultiDomainFolder::open`].
#[derive(Clone, Debug, Default)]
pub struct FolderLayout {
    /// Class names in id order. Class directories match them case-insensitively (the
    /// directory's spelling is kept); directories matching none are appended after them
    /// in sorted order. Listed classes keep their ids even when no domain has them: PACS
    /// subsets lack whole classes, and ids must not shift with the subset.
    pub classes: Vec<String>,
    /// Canonical domain names; a directory whose [`normalize_name`] equals one's takes
    /// that name (`Real_World` -> `Real World`). Other directories keep their own name.
    pub domains: Vec<String>,
    /// Directories matching none of `domains` are not domains but [`MultiDomainFolder::ignored`]
    /// entries (a `splits/` folder beside the domains, say).
    pub only_known_domains: bool,
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// Sorted, non-hidden entries of a directory, split into (directories, files).
fn list_dir(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        if is_hidden(&path) {
            continue;
        }
        if path.is_dir() {
            dirs.push(path);
        } else {
            files.push(path);
        }
    }
    dirs.sort();
    files.sort();
    Ok((dirs, files))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl MultiDomainFolder {
    /// Scans `root`. Files without an image extension are not samples; they are listed in
    /// [`Self::ignored`] so a caller can warn about them (hidden files are skipped
    /// silently). Only the directory tree is read here; images are decoded later.
    pub fn open(root: &Path) -> Result<Self> {
        Self::open_with(root, &FolderLayout::default())
    }

    /// [`Self::open`] with a benchmark's fixed class order and domain spellings.
    pub fn open_with(root: &Path, layout: &FolderLayout) -> Result<Self> {
        if !root.is_dir() {
            return Err(DataError::MissingRoot {
                path: root.to_path_buf(),
            });
        }
        let (mut domain_dirs, root_files) = list_dir(root)?;
        let mut ignored = root_files;
        if layout.only_known_domains {
            let known: Vec<String> = layout.domains.iter().map(|d| normalize_name(d)).collect();
            let (keep, other): (Vec<_>, Vec<_>) = domain_dirs
                .into_iter()
                .partition(|d| known.contains(&normalize_name(&file_name(d))));
            domain_dirs = keep;
            ignored.extend(other);
        }
        if domain_dirs.is_empty() {
            return Err(DataError::NoDomains {
                path: root.to_path_buf(),
            });
        }
        let mut listing = Vec::new(); // per domain: (class name, sorted image paths)
        for dir in &domain_dirs {
            let (class_dirs, stray) = list_dir(dir)?;
            ignored.extend(stray);
            let mut classes = Vec::new();
            for class_dir in class_dirs {
                let (subdirs, files) = list_dir(&class_dir)?;
                ignored.extend(subdirs);
                let (images, other): (Vec<_>, Vec<_>) =
                    files.into_iter().partition(|p| is_image(p));
                ignored.extend(other);
                classes.push((file_name(&class_dir), images));
            }
            listing.push(classes);
        }
        let found: BTreeSet<String> = listing
            .iter()
            .flatten()
            .map(|(name, _)| name.clone())
            .collect();
        // Fixed classes first (in the directory's spelling when one matches), then any
        // unlisted directories, sorted.
        let mut classes: Vec<String> = layout
            .classes
            .iter()
            .map(|c| {
                found
                    .iter()
                    .find(|f| f.eq_ignore_ascii_case(c))
                    .cloned()
                    .unwrap_or_else(|| c.clone())
            })
            .collect();
        let extra: Vec<String> = found
            .iter()
            .filter(|f| !classes.contains(f))
            .cloned()
            .collect();
        classes.extend(extra);
        let class_index = |name: &str| classes.iter().position(|c| c == name);
        let samples = listing
            .into_iter()
            .map(|domain| {
                let mut samples: Vec<Sample> = domain
                    .into_iter()
                    .flat_map(|(name, images)| {
                        let class = class_index(&name).expect("class is in the union");
                        images.into_iter().map(move |path| Sample { path, class })
                    })
                    .collect();
                samples.sort_by(|a, b| a.path.cmp(&b.path));
                samples
            })
            .collect();
        ignored.sort();
        let domains = domain_dirs
            .iter()
            .map(|d| {
                let dir = file_name(d);
                let key = normalize_name(&dir);
                layout
                    .domains
                    .iter()
                    .find(|c| normalize_name(c) == key)
                    .cloned()
                    .unwrap_or(dir)
            })
            .collect();
        Ok(Self {
            root: root.to_path_buf(),
            domains,
            classes,
            samples,
            ignored,
            domain_dirs,
        })
    }

    /// Finds a domain by its exact name, else by [`normalize_name`] when that is
    /// unambiguous, so `Real_World`, `"Real World"` and `realworld` all work.
    fn index(&self, name: &str) -> Result<usize> {
        if let Some(i) = self.domains.iter().position(|d| d == name) {
            return Ok(i);
        }
        let key = normalize_name(name);
        let matches: Vec<usize> = (0..self.domains.len())
            .filter(|&i| normalize_name(&self.domains[i]) == key)
            .collect();
        match matches.as_slice() {
            [i] => Ok(*i),
            _ => Err(DataError::UnknownDomain {
                name: name.to_string(),
                root: self.root.clone(),
                available: self.domains.join(", "),
            }),
        }
    }

    /// The canonical name of a domain given as the user typed it.
    pub fn domain_name(&self, name: &str) -> Result<&str> {
        Ok(&self.domains[self.index(name)?])
    }

    /// The directory holding a domain's class folders.
    pub fn domain_dir(&self, name: &str) -> Result<&Path> {
        Ok(&self.domain_dirs[self.index(name)?])
    }

    /// The samples of a domain, possibly none (where [`Self::domain`] fails on none).
    pub fn domain_samples(&self, name: &str) -> Result<&[Sample]> {
        Ok(&self.samples[self.index(name)?])
    }

    /// The samples of one domain, sorted by path.
    pub fn domain(&self, name: &str) -> Result<&[Sample]> {
        let i = self.index(name)?;
        let samples = &self.samples[i];
        if samples.is_empty() {
            return Err(DataError::EmptyDomain {
                name: name.to_string(),
                path: self.domain_dirs[i].clone(),
            });
        }
        Ok(samples)
    }

    /// Images per class id (length `classes.len()`; zero for classes the domain lacks).
    pub fn class_counts(&self, domain: &str) -> Result<Vec<usize>> {
        let mut counts = vec![0; self.classes.len()];
        for s in self.domain(domain)? {
            counts[s.class] += 1;
        }
        Ok(counts)
    }

    /// Non-hidden files and directories that are not samples (wrong extension, or not at
    /// the `<domain>/<class>/<file>` depth).
    pub fn ignored(&self) -> &[PathBuf] {
        &self.ignored
    }
}

pub struct Split {
    pub train: Vec<Sample>,
    pub val: Vec<Sample>,
}

/// The per-class train/validation split of a source domain. For each class (samples in
/// the given order), a ChaCha8 RNG derived from `(seed, class)` shuffles the indices and
/// the first `round(n * val_fraction)` go to validation, clamped to `[1, n - 1]` when the
/// class has at least 2 images and `val_fraction > 0` (a class with one image stays in
/// training). Seeding per
/// class means adding images to one class never reshuffles another. Both halves keep the
/// input order.
pub fn reference_split(samples: &[Sample], val_fraction: f64, seed: u64) -> Split {
    per_class_split(samples, val_fraction, seed, Stream::Split)
}

/// The target domain's held-out oracle set (DomainBed's test-domain validation): the same
/// per-class rule as [`reference_split`] with its own random stream, `val` being the oracle
/// share and `train` the images the test metrics are computed on.
pub fn oracle_split(samples: &[Sample], oracle_fraction: f64, seed: u64) -> Split {
    per_class_split(samples, oracle_fraction, seed, Stream::Oracle)
}

fn per_class_split(samples: &[Sample], val_fraction: f64, seed: u64, stream: Stream) -> Split {
    let n_classes = samples.iter().map(|s| s.class + 1).max().unwrap_or(0);
    let mut is_val = vec![false; samples.len()];
    for class in 0..n_classes {
        let mut members: Vec<usize> = (0..samples.len())
            .filter(|&i| samples[i].class == class)
            .collect();
        let n = members.len();
        if n < 2 || val_fraction <= 0.0 {
            continue;
        }
        let n_val = ((n as f64 * val_fraction).round() as usize).clamp(1, n - 1);
        let mut rng = derived_rng(seed, stream, class as u64, 0);
        members.shuffle(&mut rng);
        for &i in &members[..n_val] {
            is_val[i] = true;
        }
    }
    let (val, train): (Vec<_>, Vec<_>) = samples.iter().cloned().zip(is_val).partition(|(_, v)| *v);
    Split {
        train: train.into_iter().map(|(s, _)| s).collect(),
        val: val.into_iter().map(|(s, _)| s).collect(),
    }
}
