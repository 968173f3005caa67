//! `--checkpoint`, as every command that takes a model reads it: a run directory (its latest
//! checkpoint), a published folder (its `model.safetensors` and `config.json`), a
//! `.safetensors` file, or `hf:OWNER/NAME[@REVISION]`, a model repository on the Hugging
//! Face Hub. [`CheckpointRef`] parses it; [`CheckpointRef::resolve`] turns it into a local
//! file plus its [`Provenance`], which commands record in what they write.
//!
//! Hub models are resolved the way `huggingface_hub` does it, in its cache, so Python and
//! dgcolor share one copy ([`HubConfig::from_env`]: `HF_HUB_CACHE`, else `HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`; `HF_ENDPOINT`, `HF_TOKEN`; `HF_HUB_OFFLINE`):
//! - online, the Hub is asked which commit the revision is now (`/api/models/..`, via the
//!   `hf-hub` crate); files already in that commit's snapshot are used as they are, missing
//!   ones are downloaded by `hf-hub` into `blobs/` and linked into `snapshots/<commit>/`,
//!   and `refs/<revision>` is updated; when the Hub cannot be asked, the revision's cached
//!   snapshot is used, with a note (as `huggingface_hub` does);
//! - offline (`HF_HUB_OFFLINE=1`), nothing touches the network: a branch or tag is looked up
//!   in `refs/<revision>`, a 40-hex commit directly in `snapshots/`. `hf-hub` 0.4 has no
//!   offline mode of its own (its cache lookup only reads `refs/`, so it cannot find a
//!   commit, and it knows neither `HF_HUB_OFFLINE` nor `HF_HUB_CACHE`), hence this code.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use dgcolor_data::hub::HubConfig;
use dgcolor_data::ResizeFilter;
use dgcolor_eval::{config_beside, PublishedConfig, CONFIG_FILE, MODEL_FILE};
use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::{Result, RunError};
use crate::run_dir::{checkpoint_file, Select, CHECKPOINT, CONFIG};

/// The prefix of a Hub model reference.
pub const HF_PREFIX: &str = "hf:";
/// The revision of a Hub reference without `@REVISION`.
pub const DEFAULT_REVISION: &str = "main";
/// The files a published model consists of, in the order they are fetched.
pub const PUBLISHED_FILES: [&str; 2] = [MODEL_FILE, CONFIG_FILE];

/// A model repository on the Hub: `OWNER/NAME` and an optional revision (branch, tag or
/// commit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubModel {
    pub repo: String,
    pub revision: Option<String>,
}

impl HubModel {
    /// The revision asked for, `main` by default.
    pub fn revision(&self) -> &str {
        self.revision.as_deref().unwrap_or(DEFAULT_REVISION)
    }

    /// `<cache>/models--OWNER--NAME`.
    pub fn cache_dir(&self, cache: &Path) -> PathBuf {
        cache.join(Repo::new(self.repo.clone(), RepoType::Model).folder_name())
    }
}

/// What `--checkpoint` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckpointRef {
    /// A run directory, a published folder or a `.safetensors` file.
    Local(PathBuf),
    /// `hf:OWNER/NAME[@REVISION]`.
    Hub(HubModel),
}

/// Where a resolved model came from, as commands record it (`colorize.json`, `eval`'s
/// JSON, ONNX metadata).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Provenance {
    Local {
        /// What `--checkpoint` said.
        path: PathBuf,
        /// The weights file it resolved to.
        file: PathBuf,
    },
    Hub {
        /// `OWNER/NAME`.
        repo: String,
        /// The revision asked for (`main` by default).
        revision: String,
        /// The commit it resolved to.
        commit: String,
        /// The weights file in the cache.
        file: PathBuf,
        /// Whether it was resolved from the cache alone (`HF_HUB_OFFLINE`).
        offline: bool,
    },
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provenance::Local { file, .. } => write!(f, "{}", file.display()),
            Provenance::Hub {
                repo,
                revision,
                commit,
                ..
            } => write!(f, "{HF_PREFIX}{repo}@{revision} (commit {commit})"),
        }
    }
}

/// A `--checkpoint` made local.
#[derive(Clone, Debug)]
pub struct ResolvedCheckpoint {
    /// The weights (`load_generator` reads it).
    pub file: PathBuf,
    pub provenance: Provenance,
    /// The run directory, when `--checkpoint` named one (its `config.toml` describes the
    /// data the model was trained on).
    pub run_dir: Option<PathBuf>,
    /// The published `config.json` beside the weights, when there is one.
    pub published: Option<PublishedConfig>,
    /// Something the user should know (the Hub could not be asked and the cache served).
    pub note: Option<String>,
}

impl ResolvedCheckpoint {
    /// `model: <provenance>`, and a warning line when there is a [`note`](Self::note): what
    /// commands print.
    pub fn summary(&self) -> String {
        match &self.note {
            Some(note) => format!("model: {}\nwarning: {note}", self.provenance),
            None => format!("model: {}", self.provenance),
        }
    }

    /// The training config of the run directory `--checkpoint` named, if it named one.
    pub fn train_config(&self) -> Result<Option<TrainConfig>> {
        let Some(dir) = &self.run_dir else {
            return Ok(None);
        };
        let path = dir.join(CONFIG);
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(RunError::io(&path))?;
        toml::from_str(&text)
            .map(Some)
            .map_err(|e| RunError::format(&path, e))
    }

    /// How images were resized for this model in training, when known (a run's config or a
    /// published `config.json`).
    pub fn resize_filter(&self) -> Result<Option<ResizeFilter>> {
        if let Some(p) = &self.published {
            return Ok(Some(p.resize_filter));
        }
        Ok(self.train_config()?.map(|c| c.preprocess.filter))
    }
}

fn valid_name_part(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl FromStr for CheckpointRef {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let Some(rest) = s.strip_prefix(HF_PREFIX) else {
            if s.is_empty() {
                return Err("--checkpoint: empty path".into());
            }
            return Ok(CheckpointRef::Local(PathBuf::from(s)));
        };
        let bad = |why: &str| {
            format!("--checkpoint `{s}`: {why}; expected {HF_PREFIX}OWNER/NAME[@REVISION]")
        };
        let (repo, revision) = match rest.split_once('@') {
            Some((repo, rev)) => {
                if rev.is_empty() || rev.contains('@') || rev.chars().any(char::is_whitespace) {
                    return Err(bad("invalid revision"));
                }
                (repo, Some(rev.to_string()))
            }
            None => (rest, None),
        };
        match repo.split_once('/') {
            Some((owner, name)) if valid_name_part(owner) && valid_name_part(name) => {
                Ok(CheckpointRef::Hub(HubModel {
                    repo: repo.to_string(),
                    revision,
                }))
            }
            _ => Err(bad(
                "the repository must be OWNER/NAME (letters, digits, '-', '_', '.')",
            )),
        }
    }
}

impl fmt::Display for CheckpointRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointRef::Local(p) => write!(f, "{}", p.display()),
            CheckpointRef::Hub(m) => {
                write!(f, "{HF_PREFIX}{}", m.repo)?;
                match &m.revision {
                    Some(r) => write!(f, "@{r}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl CheckpointRef {
    /// Resolves with the Hub settings of the environment; `select` picks a run directory's
    /// checkpoint (a file, a published folder and a Hub model have one).
    pub fn resolve(&self, select: Select) -> Result<ResolvedCheckpoint> {
        self.resolve_with(&HubConfig::from_env(), select)
    }

    pub fn resolve_with(&self, hub: &HubConfig, select: Select) -> Result<ResolvedCheckpoint> {
        match self {
            CheckpointRef::Local(path) => resolve_local(path, select),
            CheckpointRef::Hub(model) => resolve_hub(model, hub),
        }
    }
}

fn published_beside(file: &Path) -> Result<Option<PublishedConfig>> {
    config_beside(file)
        .map(|p| PublishedConfig::read(&p))
        .transpose()
        .map_err(Into::into)
}

fn resolve_local(path: &Path, select: Select) -> Result<ResolvedCheckpoint> {
    let (file, run_dir) = if path.is_dir() {
        if path.join(MODEL_FILE).is_file() && !path.join(CHECKPOINT).is_file() {
            (path.join(MODEL_FILE), None)
        } else if path.join(CONFIG).is_file() || path.join(CHECKPOINT).is_file() {
            (checkpoint_file(path, select)?, Some(path.to_path_buf()))
        } else {
            return Err(RunError::format(
                path,
                format!(
                    "neither a run directory with a checkpoint ({CHECKPOINT}) nor a \
                     published model folder ({MODEL_FILE})"
                ),
            ));
        }
    } else if path.is_file() {
        (path.to_path_buf(), None)
    } else {
        return Err(RunError::format(
            path,
            "no such run directory, model folder or checkpoint file",
        ));
    };
    Ok(ResolvedCheckpoint {
        published: published_beside(&file)?,
        provenance: Provenance::Local {
            path: path.to_path_buf(),
            file: file.clone(),
        },
        file,
        run_dir,
        note: None,
    })
}

fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit())
}

fn hub_error(model: &HubModel, message: impl fmt::Display) -> RunError {
    RunError::Config(format!(
        "{HF_PREFIX}{}@{}: {message}",
        model.repo,
        model.revision()
    ))
}

fn resolve_hub(model: &HubModel, hub: &HubConfig) -> Result<ResolvedCheckpoint> {
    let mut note = None;
    let mut from_cache = hub.offline;
    let (snapshot, commit) = if hub.offline {
        cached_snapshot(model, hub)?
    } else {
        match download(model, hub) {
            Ok(found) => found,
            // Like huggingface_hub: a Hub that cannot be asked leaves the cached copy.
            Err(Download::Unreachable(why)) => match cached_snapshot(model, hub) {
                Ok((snapshot, commit)) => {
                    note = Some(format!(
                        "{why}; using the cached snapshot {commit} (set HF_HUB_OFFLINE=1 to \
                         skip asking)"
                    ));
                    from_cache = true;
                    (snapshot, commit)
                }
                Err(_) => {
                    return Err(hub_error(
                        model,
                        format!(
                            "{why}, and it is not in the Hugging Face cache {}",
                            hub.cache.display()
                        ),
                    ))
                }
            },
            Err(Download::Failed(e)) => return Err(e),
        }
    };
    let file = snapshot.join(MODEL_FILE);
    let config = snapshot.join(CONFIG_FILE);
    Ok(ResolvedCheckpoint {
        published: Some(PublishedConfig::read(&config)?),
        provenance: Provenance::Hub {
            repo: model.repo.clone(),
            revision: model.revision().to_string(),
            commit,
            file: file.clone(),
            offline: from_cache,
        },
        file,
        run_dir: None,
        note,
    })
}

/// Why [`download`] failed: the Hub could not be asked (the cache may still serve), or
/// something after that.
enum Download {
    Unreachable(String),
    Failed(RunError),
}

impl From<RunError> for Download {
    fn from(e: RunError) -> Self {
        Download::Failed(e)
    }
}

/// The snapshot of the revision in the cache and its commit, without the network.
pub fn cached_snapshot(model: &HubModel, hub: &HubConfig) -> Result<(PathBuf, String)> {
    let repo_dir = model.cache_dir(&hub.cache);
    let revision = model.revision();
    let refs = repo_dir.join("refs").join(revision);
    let commit = match std::fs::read_to_string(&refs) {
        Ok(text) => text.trim().to_string(),
        Err(_) if is_commit(revision) && repo_dir.join("snapshots").join(revision).is_dir() => {
            revision.to_string()
        }
        Err(_) => {
            let commit_too = if is_commit(revision) {
                format!(
                    " nor {}",
                    repo_dir.join("snapshots").join(revision).display()
                )
            } else {
                String::new()
            };
            return Err(hub_error(
                model,
                format!(
                    "not in the Hugging Face cache and HF_HUB_OFFLINE is set: there is no {}{} \
                     (cache {}, from HF_HUB_CACHE / HF_HOME); download it once with network \
                     access, or point HF_HOME at a cache that has it",
                    refs.display(),
                    commit_too,
                    hub.cache.display()
                ),
            ));
        }
    };
    let snapshot = repo_dir.join("snapshots").join(&commit);
    check_snapshot(model, &snapshot, "HF_HUB_OFFLINE is set")?;
    Ok((snapshot, commit))
}

fn check_snapshot(model: &HubModel, snapshot: &Path, why: &str) -> Result<()> {
    let missing: Vec<String> = PUBLISHED_FILES
        .iter()
        .map(|f| snapshot.join(f))
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(hub_error(
        model,
        format!(
            "the cached snapshot lacks {} ({why}); a dgcolor model repository holds {} \
             (written by `dgcolor publish`)",
            missing.join(" and "),
            PUBLISHED_FILES.join(" and ")
        ),
    ))
}

/// Asks the Hub for the revision's commit, downloads what its snapshot lacks, and returns
/// the snapshot and the commit.
fn download(model: &HubModel, hub: &HubConfig) -> std::result::Result<(PathBuf, String), Download> {
    let mut builder = ApiBuilder::from_cache(Cache::new(hub.cache.clone()))
        .with_endpoint(hub.endpoint.clone())
        .with_progress(hub.progress);
    if hub.token.is_some() {
        builder = builder.with_token(hub.token.clone());
    }
    let api = builder.build().map_err(|e| hub_error(model, e))?;
    let revision = model.revision();
    let repo = Repo::with_revision(model.repo.clone(), RepoType::Model, revision.into());
    let api_repo = api.repo(repo.clone());
    let info = api_repo.info().map_err(|e| {
        Download::Unreachable(format!(
            "cannot ask {} for the revision ({e})",
            hub.endpoint
        ))
    })?;
    let commit = info.sha;
    let snapshot = model.cache_dir(&hub.cache).join("snapshots").join(&commit);
    for name in PUBLISHED_FILES {
        if snapshot.join(name).is_file() {
            continue;
        }
        let path = api_repo
            .download(name)
            .map_err(|e| hub_error(model, format!("downloading {name}: {e}")))?;
        if path.parent() != Some(snapshot.as_path()) {
            return Err(Download::Failed(hub_error(
                model,
                format!(
                    "{name} came from another commit than {commit} ({}): the revision moved \
                     while downloading; run again",
                    path.display()
                ),
            )));
        }
    }
    if !is_commit(revision) || revision != commit {
        Cache::new(hub.cache.clone())
            .repo(repo)
            .create_ref(&commit)
            .map_err(RunError::io(model.cache_dir(&hub.cache).join("refs")))?;
    }
    check_snapshot(model, &snapshot, "after downloading")?;
    Ok((snapshot, commit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(s: &str) -> CheckpointRef {
        s.parse().unwrap()
    }

    #[test]
    fn parses_paths_and_hub_names() {
        assert_eq!(
            hub("results/ours-art"),
            CheckpointRef::Local("results/ours-art".into())
        );
        assert_eq!(
            hub("hf:owner/name"),
            CheckpointRef::Hub(HubModel {
                repo: "owner/name".into(),
                revision: None
            })
        );
        let pinned = hub("hf:Some-Org/dg.color_v2@v1.0");
        assert_eq!(
            pinned,
            CheckpointRef::Hub(HubModel {
                repo: "Some-Org/dg.color_v2".into(),
                revision: Some("v1.0".into())
            })
        );
        for s in [
            "hf:owner/name",
            "hf:o/n@0123abc",
            "runs/x",
            "hf:o/n@refs/pr/1",
        ] {
            assert_eq!(hub(s).to_string(), s);
        }
        for bad in [
            "hf:",
            "hf:owner",
            "hf:/name",
            "hf:owner/",
            "hf:a/b/c",
            "hf:o/n@",
            "hf:o/n@a@b",
            "hf:o w/n",
            "hf:../n",
            "",
        ] {
            let err = bad.parse::<CheckpointRef>().unwrap_err();
            assert!(err.contains("--checkpoint"), "{bad}: {err}");
        }
    }

    fn published_json() -> String {
        PublishedConfig::new(
            dgcolor_models::ModelConfig::new(32, 4, 5, 7, 2),
            ResizeFilter::Antialias,
            None,
        )
        .to_json()
    }

    fn offline(cache: &Path) -> HubConfig {
        HubConfig {
            cache: cache.to_path_buf(),
            endpoint: "http://127.0.0.1:9".into(),
            offline: true,
            token: None,
            progress: false,
        }
    }

    #[test]
    fn offline_lookups_follow_the_cache_layout() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path();
        let model = |rev: Option<&str>| HubModel {
            repo: "owner/name".into(),
            revision: rev.map(Into::into),
        };
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let repo = cache.join("models--owner--name");
        let snap = repo.join("snapshots").join(commit);
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        // A trailing newline in refs/main (hand-written caches) is fine.
        std::fs::write(repo.join("refs/main"), format!("{commit}\n")).unwrap();
        // Files missing from the snapshot are named.
        let err = cached_snapshot(&model(None), &offline(cache))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(MODEL_FILE) && err.contains(CONFIG_FILE),
            "{err}"
        );
        for f in PUBLISHED_FILES {
            std::fs::write(snap.join(f), b"x").unwrap();
        }
        for rev in [None, Some("main"), Some(commit)] {
            let (s, c) = cached_snapshot(&model(rev), &offline(cache)).unwrap();
            assert_eq!((s.as_path(), c.as_str()), (snap.as_path(), commit));
        }
        // An unknown branch and an unknown commit say what was looked for.
        let err = cached_snapshot(&model(Some("dev")), &offline(cache))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("hf:owner/name@dev")
                && err.contains(&repo.join("refs").join("dev").display().to_string())
                && err.contains("HF_HUB_OFFLINE"),
            "{err}"
        );
        let other = "f".repeat(40);
        let err = cached_snapshot(&model(Some(&other)), &offline(cache))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("snapshots/{other}")), "{err}");
        // Online with a Hub that cannot be reached, the cache serves, with a note.
        let unreachable = HubConfig {
            offline: false,
            ..offline(cache)
        };
        std::fs::write(snap.join(CONFIG_FILE), published_json()).unwrap();
        let r = CheckpointRef::Hub(model(None))
            .resolve_with(&unreachable, Select::Val)
            .unwrap();
        assert_eq!(r.file, snap.join(MODEL_FILE));
        assert!(matches!(
            r.provenance,
            Provenance::Hub { offline: true, .. }
        ));
        assert!(
            r.summary().contains("using the cached snapshot"),
            "{}",
            r.summary()
        );
        let missing = HubModel {
            repo: "owner/missing".into(),
            revision: None,
        };
        let err = CheckpointRef::Hub(missing.clone())
            .resolve_with(&unreachable, Select::Val)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not in the Hugging Face cache"), "{err}");
        let err = cached_snapshot(&missing, &offline(cache))
            .unwrap_err()
            .to_string();
        assert!(err.contains("models--owner--missing"), "{err}");
    }

    /// A stand-in for the Hub on 127.0.0.1: the model API (`/api/models/..`) and `resolve`
    /// with the headers `hf-hub` reads (`x-repo-commit`, `etag`, `content-range`). Returns
    /// its endpoint and the log of requested paths.
    fn fake_hub(
        commit: &'static str,
        files: Vec<(&'static str, Vec<u8>)>,
    ) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut range = None;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
                        let (a, b) = v.trim().split_once('-').unwrap();
                        range = Some((a.parse::<usize>().unwrap(), b.parse::<usize>().ok()));
                    }
                }
                seen.lock().unwrap().push(path.clone());
                let (status, headers, body) = if path.starts_with("/api/models/") {
                    let body = format!(r#"{{"sha":"{commit}","siblings":[]}}"#).into_bytes();
                    (
                        "200 OK",
                        "content-type: application/json\r\n".to_string(),
                        body,
                    )
                } else if let Some((_, data)) =
                    files.iter().find(|(f, _)| path.ends_with(&format!("/{f}")))
                {
                    let (a, b) = range.unwrap_or((0, None));
                    let b = b.unwrap_or(data.len() - 1).min(data.len() - 1);
                    let headers = format!(
                        "x-repo-commit: {commit}\r\netag: \"blob-{}\"\r\n\
                         content-range: bytes {a}-{b}/{}\r\n",
                        data.len(),
                        data.len()
                    );
                    ("206 Partial Content", headers, data[a..=b].to_vec())
                } else {
                    ("404 Not Found", String::new(), b"not found".to_vec())
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        (endpoint, log)
    }

    #[test]
    fn online_resolution_asks_the_hub_for_the_commit_and_downloads_what_is_missing() {
        let commit = "89abcdef0123456789abcdef0123456789abcdef";
        let config = published_json();
        let weights = b"not really safetensors, resolution does not read them".to_vec();
        let (endpoint, log) = fake_hub(
            commit,
            vec![
                (MODEL_FILE, weights.clone()),
                (CONFIG_FILE, config.into_bytes()),
            ],
        );
        let dir = tempfile::tempdir().unwrap();
        let hub = HubConfig {
            cache: dir.path().to_path_buf(),
            endpoint,
            offline: false,
            token: None,
            progress: false,
        };
        let name: CheckpointRef = "hf:someone/model".parse().unwrap();
        let resolved = name.resolve_with(&hub, Select::Val).unwrap();
        let snapshot = dir
            .path()
            .join("models--someone--model/snapshots")
            .join(commit);
        assert_eq!(resolved.file, snapshot.join(MODEL_FILE));
        assert_eq!(std::fs::read(&resolved.file).unwrap(), weights);
        assert_eq!(resolved.published.as_ref().unwrap().model.size, 32);
        assert_eq!(
            resolved.provenance,
            Provenance::Hub {
                repo: "someone/model".into(),
                revision: "main".into(),
                commit: commit.into(),
                file: snapshot.join(MODEL_FILE),
                offline: false,
            }
        );
        let downloads = |log: &[String]| log.iter().filter(|p| p.contains("/resolve/")).count();
        assert!(log.lock().unwrap()[0].starts_with("/api/models/someone/model/revision/main"));
        assert!(downloads(&log.lock().unwrap()) >= 2);
        // Cached now: the Hub is asked for the commit again, nothing is downloaded.
        let before = log.lock().unwrap().len();
        name.resolve_with(&hub, Select::Val).unwrap();
        let after: Vec<String> = log.lock().unwrap()[before..].to_vec();
        assert_eq!(after.len(), 1, "{after:?}");
        assert_eq!(downloads(&after), 0);
        // And offline, refs/main (written by the download) finds the same snapshot.
        let offline = HubConfig {
            offline: true,
            ..hub.clone()
        };
        let cached = name.resolve_with(&offline, Select::Val).unwrap();
        assert_eq!(cached.file, resolved.file);
        // A pinned commit resolves to its snapshot.
        let pinned: CheckpointRef = format!("hf:someone/model@{commit}").parse().unwrap();
        assert_eq!(
            pinned.resolve_with(&hub, Select::Val).unwrap().file,
            resolved.file
        );
        assert!(log.lock().unwrap().last().unwrap().ends_with(commit));
    }
}
