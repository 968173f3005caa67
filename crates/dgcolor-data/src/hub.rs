//! `dgcolor data fetch pacs|office-home`: the Hugging Face parquet copies
//! (`flwrlabs/pacs`, `flwrlabs/office-home`) downloaded into the standard Hub cache, so
//! Python's `datasets` and this tool share one copy.
//!
//! What the `hf-hub` crate (sync API, ureq + rustls, no OpenSSL, no tokio) gives and what
//! is added here:
//! - cache location: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`
//!   (the `huggingface_hub` rules); layout `datasets--flwrlabs--pacs/{blobs,refs,snapshots}`.
//! - endpoint: `HF_ENDPOINT` (a mirror), default `https://huggingface.co`; token:
//!   `HF_TOKEN`, else the cache's `token` file.
//! - offline: `HF_HUB_OFFLINE=1` (also `true`/`yes`/`on`) touches no network and returns
//!   the files of the cached `main` snapshot, or says that nothing is cached.
//! - resume: hf-hub downloads into `blobs/<etag>.part` with HTTP ranges and appends to a
//!   `.part` left by an interrupted run; a file already in the snapshot is not fetched again.
//! - verification: hf-hub checks nothing after a download, so every file's size is
//!   compared with the size the Hub's API lists for it (`?blobs=true`); a mismatch is an
//!   error naming the file. (No sha256: the Hub lists it, but hashing 2 GB needs a crate
//!   we do not otherwise need; size catches truncation, the failure seen in practice.)

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::benchmark::Benchmark;
use crate::benchmark_error::BenchmarkError;
use crate::error::{DataError, Result};

/// Where and how to reach the Hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubConfig {
    /// The `hub` cache directory (holding `datasets--owner--name/`).
    pub cache: PathBuf,
    pub endpoint: String,
    pub offline: bool,
    pub token: Option<String>,
    pub progress: bool,
}

/// Whether an `HF_HUB_OFFLINE` value means offline.
pub fn truthy(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

impl HubConfig {
    /// From `HF_HUB_CACHE` / `HF_HOME`, `HF_ENDPOINT`, `HF_HUB_OFFLINE`, `HF_TOKEN`.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let cache = match var("HF_HUB_CACHE") {
            Some(dir) => PathBuf::from(dir),
            None => Cache::from_env().path().clone(),
        };
        Self {
            cache,
            endpoint: var("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".into()),
            offline: truthy(var("HF_HUB_OFFLINE").as_deref()),
            token: var("HF_TOKEN"),
            progress: true,
        }
    }

    /// `<cache>/datasets--owner--name`.
    pub fn repo_dir(&self, bench: Benchmark) -> PathBuf {
        self.cache
            .join(Repo::new(bench.hub_repo().into(), RepoType::Dataset).folder_name())
    }
}

/// The parquet files of a dataset and where they are.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The snapshot directory: pass it as `--data <dataset>-parquet:DIR`.
    pub snapshot: PathBuf,
    /// (file, size in bytes).
    pub files: Vec<(PathBuf, u64)>,
}

fn hub_err(bench: Benchmark, message: impl std::fmt::Display) -> DataError {
    BenchmarkError::Hub {
        repo: bench.hub_repo().into(),
        message: message.to_string(),
    }
    .into()
}

/// The cached `main` snapshot's parquet files, without the network.
pub fn cached(cfg: &HubConfig, bench: Benchmark) -> Result<Fetched> {
    let repo = cfg.repo_dir(bench);
    let refs = repo.join("refs").join("main");
    let commit = std::fs::read_to_string(&refs).map_err(|_| {
        hub_err(
            bench,
            format!(
                "not in the cache {} (no {}); run `dgcolor data fetch {}` with network access",
                cfg.cache.display(),
                refs.display(),
                bench.name()
            ),
        )
    })?;
    let snapshot = repo.join("snapshots").join(commit.trim());
    let files = crate::parquet::parquet_files(&snapshot)?
        .into_iter()
        .map(|f| {
            let len = std::fs::metadata(&f)
                .map_err(|e| DataError::io(&f, e))?
                .len();
            Ok((f, len))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Fetched { snapshot, files })
}

/// Downloads (or finds in the cache) every parquet file of the dataset's `main`
/// revision and checks its size; offline, returns [`cached`].
pub fn fetch(cfg: &HubConfig, bench: Benchmark) -> Result<Fetched> {
    if cfg.offline {
        return cached(cfg, bench);
    }
    let mut builder = ApiBuilder::from_cache(Cache::new(cfg.cache.clone()))
        .with_endpoint(cfg.endpoint.clone())
        .with_progress(cfg.progress);
    if cfg.token.is_some() {
        builder = builder.with_token(cfg.token.clone());
    }
    let api = builder.build().map_err(|e| hub_err(bench, e))?;
    let repo = api.repo(Repo::with_revision(
        bench.hub_repo().into(),
        RepoType::Dataset,
        "main".into(),
    ));
    let info: serde_json::Value = repo
        .info_request()
        .query("blobs", "true")
        .call()
        .map_err(|e| hub_err(bench, format!("cannot list files at {}: {e}", cfg.endpoint)))?
        .into_json()
        .map_err(|e| hub_err(bench, format!("unreadable file list: {e}")))?;
    let listed: Vec<(String, Option<u64>)> = info["siblings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let name = s["rfilename"].as_str()?;
            name.ends_with(".parquet")
                .then(|| (name.to_string(), s["size"].as_u64()))
        })
        .collect();
    if listed.is_empty() {
        return Err(hub_err(bench, "the repository lists no .parquet files"));
    }
    let mut files = Vec::new();
    for (name, size) in listed {
        let path = repo
            .get(&name)
            .map_err(|e| hub_err(bench, format!("{name}: {e}")))?;
        let actual = std::fs::metadata(&path)
            .map_err(|e| DataError::io(&path, e))?
            .len();
        if let Some(expected) = size {
            if actual != expected {
                return Err(BenchmarkError::SizeMismatch {
                    path,
                    expected,
                    actual,
                }
                .into());
            }
        }
        files.push((path, actual));
    }
    let snapshot = snapshot_of(&files[0].0, files[0].0.parent().unwrap_or(Path::new(".")));
    Ok(Fetched { snapshot, files })
}

/// The `snapshots/<commit>` ancestor of a cached file.
fn snapshot_of(file: &Path, fallback: &Path) -> PathBuf {
    file.ancestors()
        .find(|a| {
            a.parent()
                .and_then(|p| p.file_name())
                .is_some_and(|n| n == "snapshots")
        })
        .map(Path::to_path_buf)
        .unwrap_or_else(|| fallback.to_path_buf())
}
