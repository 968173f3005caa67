//! Finding and opening PACS and Office-Home image trees in the shapes people download
//! them in. Both are `<tree>/<domain>/<class>/<file>`; what differs is where the tree
//! sits under the path a user gives:
//!
//! | dataset | accepted under `PATH` (first match wins) |
//! | --- | --- |
//! | PACS | `kfold/` (official release), `PACS/` and `pacs/` (DomainBed's rename), `PACS/kfold/`, `pacs/kfold/`, or `PATH` itself |
//! | Office-Home | `OfficeHomeDataset_10072016/` (release), `office_home/` (DomainBed), `OfficeHome/`, `office-home/`, `officehome/`, or `PATH` itself |
//!
//! A candidate is the tree when it has at least one directory named like a domain of the
//! dataset (compared with [`normalize_name`], so `Real_World` is `Real World`). Domain
//! directories take the canonical spelling; other directories beside them (a `splits/`
//! folder) and files (Office-Home's `ImageInfo.csv`) are listed as ignored, not domains.
//! Class ids follow the dataset's class list, not the classes present: PACS subsets lack
//! classes in some domains, and an id must mean the same object in every run. A class
//! directory outside the list is an error naming it.

use std::path::{Path, PathBuf};

use crate::benchmark::{normalize_name, Benchmark};
use crate::benchmark_error::BenchmarkError;
use crate::error::Result;
use crate::folder::{FolderLayout, MultiDomainFolder};

fn candidates(bench: Benchmark) -> &'static [&'static str] {
    match bench {
        Benchmark::Pacs => &["kfold", "PACS", "pacs", "PACS/kfold", "pacs/kfold", ""],
        Benchmark::OfficeHome => &[
            "OfficeHomeDataset_10072016",
            "office_home",
            "OfficeHome",
            "office-home",
            "officehome",
            "",
        ],
    }
}

fn has_domain_dir(dir: &Path, bench: Benchmark) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        e.path().is_dir()
            && bench
                .canonical_domain(&e.file_name().to_string_lossy())
                .is_some()
    })
}

/// The directory under `path` that holds the domain folders (see the module table).
pub fn locate_tree(path: &Path, bench: Benchmark) -> Result<PathBuf> {
    if !path.is_dir() {
        return Err(crate::DataError::MissingRoot {
            path: path.to_path_buf(),
        });
    }
    for sub in candidates(bench) {
        let dir = if sub.is_empty() {
            path.to_path_buf()
        } else {
            path.join(sub)
        };
        if dir.is_dir() && has_domain_dir(&dir, bench) {
            return Ok(dir);
        }
    }
    let looked_for = candidates(bench)
        .iter()
        .map(|s| {
            if s.is_empty() {
                "./".to_string()
            } else {
                format!("{s}/")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    Err(BenchmarkError::Layout {
        path: path.to_path_buf(),
        dataset: bench.title(),
        looked_for: format!(
            "{looked_for} holding domain folders {}",
            bench.domains().join(", ")
        ),
    }
    .into())
}

/// The folder layout of a benchmark: its class order and domain spellings.
pub fn benchmark_layout(bench: Benchmark) -> FolderLayout {
    FolderLayout {
        classes: bench.classes().iter().map(|s| s.to_string()).collect(),
        domains: bench.domains().iter().map(|s| s.to_string()).collect(),
        only_known_domains: true,
    }
}

/// Opens an image tree (the directory holding the domain folders) as `bench`, refusing
/// class folders outside its class list.
pub fn open_tree(tree: &Path, bench: Benchmark) -> Result<MultiDomainFolder> {
    let folder = MultiDomainFolder::open_with(tree, &benchmark_layout(bench))?;
    let known = bench.classes().len();
    if folder.classes.len() > known {
        let name = folder.classes[known].clone();
        // Name a directory that has it, so the user can find it.
        let path = folder
            .domains
            .iter()
            .filter_map(|d| folder.domain_dir(d).ok())
            .map(|d| d.join(&name))
            .find(|p| p.is_dir())
            .unwrap_or_else(|| tree.join(&name));
        return Err(BenchmarkError::UnknownClass {
            path,
            dataset: bench.title(),
            name,
            expected: bench.classes().join(", "),
        }
        .into());
    }
    Ok(folder)
}

/// `--data pacs:PATH`: finds the tree under `path` and opens it.
pub fn open_pacs(path: &Path) -> Result<MultiDomainFolder> {
    open_tree(&locate_tree(path, Benchmark::Pacs)?, Benchmark::Pacs)
}

/// `--data office-home:PATH`: finds the tree under `path` and opens it.
pub fn open_office_home(path: &Path) -> Result<MultiDomainFolder> {
    open_tree(
        &locate_tree(path, Benchmark::OfficeHome)?,
        Benchmark::OfficeHome,
    )
}

/// Whether two domain names denote the same domain.
pub fn same_domain(a: &str, b: &str) -> bool {
    normalize_name(a) == normalize_name(b)
}
