//! Sharing models: `dgcolor publish` (weights, config.json, a model card whose metrics are
//! the run's records), `--checkpoint hf:OWNER/NAME[@REV]` resolved from a Hugging Face cache
//! laid out as `hf-hub` / `huggingface_hub` lay it out, offline, and used by `colorize`,
//! `eval` and `export-reference`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use dgcolor_algorithms::Checkpoint;
use dgcolor_data::{decode_rgb8, lab_image, resize_rgb8, ResizeFilter};
use dgcolor_eval::{load_generator, PublishedConfig};
use dgcolor_models::{Generator, InferenceGenerator};
use dgcolor_runs::{read_records, Record, TrainConfig};

const OWNER_NAME: &str = "someone/dgcolor-smoke";
const COMMIT: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

fn dgcolor_env(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dgcolor"));
    cmd.args(args);
    // Never reach a network: an unreachable endpoint, offline by default.
    for k in ["HF_HOME", "HF_HUB_CACHE", "HF_TOKEN", "HF_HUB_OFFLINE"] {
        cmd.env_remove(k);
    }
    cmd.env("HF_ENDPOINT", "http://127.0.0.1:9");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run dgcolor")
}

fn dgcolor(args: &[&str]) -> Output {
    dgcolor_env(args, &[])
}

fn ok_env(args: &[&str], env: &[(&str, &Path)]) -> String {
    let out = dgcolor_env(args, env);
    assert!(
        out.status.success(),
        "dgcolor {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn ok(args: &[&str]) -> String {
    ok_env(args, &[])
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pacs_mini")
}

/// A finished `ours` run at the smoke preset (AdaIN skip on), in `tmp/run`.
fn smoke_run(tmp: &Path, extra: &[&str]) -> PathBuf {
    let run = tmp.join("run");
    let mut args = vec![
        "train",
        "--algorithm",
        "ours",
        "--preset",
        "smoke",
        "--quiet",
        "--data-root",
        s(tmp),
        "--out",
        s(&run),
    ];
    args.extend_from_slice(extra);
    ok(&args);
    run
}

fn publish(run: &Path, out: &Path) -> serde_json::Value {
    let text = ok(&[
        "publish",
        "--checkpoint",
        s(run),
        "--out",
        s(out),
        "--repo",
        OWNER_NAME,
    ]);
    serde_json::from_str(&text).unwrap()
}

/// The YAML front matter of a model card.
fn front_matter(card: &str) -> serde_norway::Value {
    let rest = card.strip_prefix("---\n").expect("card starts with ---");
    let end = rest.find("\n---\n").expect("front matter ends with ---");
    serde_norway::from_str(&rest[..end]).expect("front matter is YAML")
}

/// The step of the kept `val` checkpoint and the table metrics of its target test
/// evaluation, as records.jsonl holds them.
fn selected_metrics(run: &Path) -> (u64, BTreeMap<String, f64>) {
    let records = read_records(&run.join("records.jsonl")).unwrap();
    let step = records
        .iter()
        .rev()
        .find_map(|r| match r {
            Record::Kept { step, .. } => Some(*step),
            _ => None,
        })
        .unwrap();
    let test = records
        .iter()
        .find_map(|r| match r {
            Record::Eval(e) if e.step == step && e.split == dgcolor_runs::EvalSplit::Test => {
                Some(e)
            }
            _ => None,
        })
        .unwrap();
    let names = dgcolor_metrics::all_metrics()
        .iter()
        .map(|m| m.name())
        .chain(dgcolor_metrics::set_metrics().iter().map(|m| m.name()))
        .collect::<Vec<_>>();
    let metrics = names
        .into_iter()
        .filter_map(|n| Some((n.to_string(), test.result.value(n)?)))
        .collect();
    (step, metrics)
}

/// L of a few fixture images at `size`, `[n, 1, size, size]`.
fn fixture_l(size: usize, n: usize) -> Tensor {
    let mut files: Vec<PathBuf> = ["photo", "art_painting", "cartoon", "sketch"]
        .iter()
        .flat_map(|d| {
            let mut f: Vec<PathBuf> = walk(&fixtures().join(d));
            f.sort();
            f.into_iter().take(1)
        })
        .collect();
    files.truncate(n);
    let mut l = Vec::new();
    for f in &files {
        let rgb = resize_rgb8(
            &decode_rgb8(f).unwrap(),
            size as u32,
            size as u32,
            ResizeFilter::Antialias,
        );
        l.extend(lab_image(&rgb).l);
    }
    Tensor::from_vec(l, (files.len(), 1, size, size), &Device::Cpu).unwrap()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn publish_writes_weights_config_and_a_model_card_with_the_runs_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let run = smoke_run(tmp.path(), &[]);
    // A qualitative figure in the run directory is published with it.
    image::RgbImage::from_pixel(8, 8, image::Rgb([200, 40, 40]))
        .save(run.join("figure.png"))
        .unwrap();
    let out = tmp.path().join("published");
    let summary = publish(&run, &out);
    assert_eq!(summary["repo"], OWNER_NAME);
    // The checkpoint training-domain validation kept, and its evaluation.
    assert_eq!(summary["selection"], "val");
    let (kept_step, recorded) = selected_metrics(&run);
    for f in [
        "model.safetensors",
        "config.json",
        "README.md",
        "figure.png",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }

    // The model card's front matter, and its metrics against the run's final record.
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    let yaml = front_matter(&card);
    assert_eq!(yaml["library_name"].as_str(), Some("dgcolor"));
    assert_eq!(yaml["license"].as_str(), Some("mit"));
    assert_eq!(yaml["pipeline_tag"].as_str(), Some("image-to-image"));
    let tags: Vec<&str> = yaml["tags"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for t in [
        "dgcolor",
        "colorization",
        "domain-generalization",
        "ours",
        "synth",
    ] {
        assert!(tags.contains(&t), "{tags:?}");
    }
    assert_eq!(yaml["datasets"][0].as_str(), Some("synth"));
    let index = &yaml["model-index"][0];
    assert_eq!(index["name"].as_str(), Some(OWNER_NAME));
    let result = &index["results"][0];
    assert_eq!(result["task"]["type"].as_str(), Some("image-to-image"));
    assert_eq!(result["dataset"]["split"].as_str(), Some("art_painting"));
    let card_metrics: BTreeMap<String, f64> = result["metrics"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["type"].as_str().unwrap().to_string(),
                m["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert!(recorded.contains_key("psnr") && recorded.contains_key("colourfulness_ratio"));
    assert_eq!(card_metrics, recorded, "card metrics vs records.jsonl");
    for section in [
        "## Training data and settings",
        "## Intended use",
        "## Limitations",
        "Domain gap",
        "## How to use it",
        "dgcolor colorize --checkpoint hf:someone/dgcolor-smoke",
        "![Qualitative results",
    ] {
        assert!(card.contains(section), "card lacks {section:?}");
    }

    // config.json alone rebuilds the network: the published weights predict exactly what
    // the run's checkpoint predicts.
    let published = PublishedConfig::read(&out.join("config.json")).unwrap();
    let train: TrainConfig =
        toml::from_str(&std::fs::read_to_string(run.join("config.toml")).unwrap()).unwrap();
    assert_eq!(published.model, train.model);
    assert_eq!(published.resize_filter, train.preprocess.filter);
    let training = published.training.as_ref().unwrap();
    assert_eq!((training.step, training.steps), (kept_step, train.steps));
    assert_eq!(training.sources, train.sources);
    let weights = Checkpoint::load(&out.join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(weights
        .tensors
        .keys()
        .all(|k| k.starts_with("head.") || k.starts_with("tail.") || k.starts_with("decoder.")));
    assert!(!weights.meta.contains_key("model_config"));
    let varmap = VarMap::new();
    let g = Generator::new(
        &published.model,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .unwrap();
    weights.restore_varmap(&varmap).unwrap();
    let rebuilt = InferenceGenerator::from_generator(&g, &varmap).unwrap();
    let original = load_generator(&run.join("checkpoint-val.safetensors"), &Device::Cpu).unwrap();
    let l = fixture_l(published.model.size, 4);
    let diff = max_abs_diff(
        &rebuilt.forward(&l).unwrap(),
        &original.forward(&l).unwrap(),
    );
    assert_eq!(diff, 0.0);

    // The folder is a model for every command: colorize it as a local path.
    let col = tmp.path().join("col");
    let input = fixtures().join("photo");
    ok(&[
        "colorize",
        "--checkpoint",
        s(&out),
        s(&input),
        "--out",
        s(&col),
    ]);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(col.join("colorize.json")).unwrap()).unwrap();
    assert_eq!(record["model"]["source"], "local");
}

#[test]
fn an_unfinished_run_is_not_published() {
    let tmp = tempfile::tempdir().unwrap();
    let run = smoke_run(tmp.path(), &["--stop-after", "2"]);
    assert!(!run.join("done").exists());
    let out = tmp.path().join("published");
    let res = dgcolor(&["publish", "--checkpoint", s(&run), "--out", s(&out)]);
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("not finished") && err.contains("step 2 of 6"),
        "{err}"
    );
    assert!(!out.exists());
    // Not a run directory at all.
    let res = dgcolor(&["publish", "--checkpoint", s(tmp.path()), "--out", s(&out)]);
    assert!(String::from_utf8_lossy(&res.stderr).contains("not a run directory"));
}

/// `<hf_home>/hub/models--someone--dgcolor-smoke/` as the Hub's cache holds a download of
/// the published folder at [`COMMIT`]: content-addressed `blobs/`, `snapshots/<commit>/`
/// of relative symlinks to them, `refs/main` holding the commit.
fn hub_cache(published: &Path, hf_home: &Path) -> PathBuf {
    let repo = hf_home.join("hub").join("models--someone--dgcolor-smoke");
    let snapshot = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    for (i, entry) in std::fs::read_dir(published).unwrap().enumerate() {
        let src = entry.unwrap().path();
        let blob = format!("{i:040x}");
        std::fs::copy(&src, repo.join("blobs").join(&blob)).unwrap();
        std::os::unix::fs::symlink(
            Path::new("../../blobs").join(&blob),
            snapshot.join(src.file_name().unwrap()),
        )
        .unwrap();
    }
    std::fs::write(repo.join("refs").join("main"), COMMIT).unwrap();
    snapshot
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn hf_names_resolve_offline_from_the_hub_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let run = smoke_run(tmp.path(), &[]);
    let published = tmp.path().join("published");
    publish(&run, &published);
    let hf_home = tmp.path().join("hf");
    let snapshot = hub_cache(&published, &hf_home);
    let one = Path::new("1");
    let env: [(&str, &Path); 2] = [("HF_HOME", &hf_home), ("HF_HUB_OFFLINE", one)];

    let input = fixtures().join("cartoon");
    let reference = tmp.path().join("from-run");
    ok(&[
        "colorize",
        "--checkpoint",
        s(&run),
        s(&input),
        "--out",
        s(&reference),
    ]);
    for (name, revision) in [
        (format!("hf:{OWNER_NAME}"), "main"),
        (format!("hf:{OWNER_NAME}@main"), "main"),
        (format!("hf:{OWNER_NAME}@{COMMIT}"), COMMIT),
    ] {
        let out = tmp.path().join(format!("hub-{revision}"));
        ok_env(
            &[
                "colorize",
                "--checkpoint",
                &name,
                s(&input),
                "--out",
                s(&out),
            ],
            &env,
        );
        let record = read_json(&out.join("colorize.json"));
        assert_eq!(record["checkpoint"], name.as_str());
        let model = &record["model"];
        assert_eq!(model["source"], "hub");
        assert_eq!(model["repo"], OWNER_NAME);
        assert_eq!(model["revision"], revision);
        assert_eq!(model["commit"], COMMIT);
        assert_eq!(model["offline"], true);
        assert_eq!(model["file"], s(&snapshot.join("model.safetensors")));
        // The same model as the run's checkpoint: the same pixels.
        let written = walk(&out.join("cartoon"));
        assert!(!written.is_empty());
        for f in written {
            let same = reference.join(f.strip_prefix(&out).unwrap());
            assert_eq!(std::fs::read(&f).unwrap(), std::fs::read(&same).unwrap());
        }
    }

    // HF_HUB_CACHE names the hub folder directly (and wins over HF_HOME).
    let elsewhere = tmp.path().join("elsewhere");
    let out = tmp.path().join("hub-cache-var");
    ok_env(
        &[
            "colorize",
            "--checkpoint",
            &format!("hf:{OWNER_NAME}"),
            s(&input),
            "--out",
            s(&out),
        ],
        &[
            ("HF_HOME", &elsewhere),
            ("HF_HUB_CACHE", &hf_home.join("hub")),
            ("HF_HUB_OFFLINE", one),
        ],
    );

    // eval and export-reference record the commit too.
    let eval: serde_json::Value = serde_json::from_str(&ok_env(
        &[
            "eval",
            "--checkpoint",
            &format!("hf:{OWNER_NAME}"),
            "--data",
            "synth",
            "--domain",
            "art_painting",
            "--data-root",
            s(tmp.path()),
        ],
        &env,
    ))
    .unwrap();
    assert_eq!(eval["checkpoint"]["commit"], COMMIT);
    assert!(eval["result"]["metrics"]["psnr"]["mean"].as_f64().unwrap() > 5.0);
    let pth = tmp.path().join("pth");
    ok_env(
        &[
            "export-reference",
            "--checkpoint",
            &format!("hf:{OWNER_NAME}"),
            "--out",
            s(&pth),
        ],
        &env,
    );
    assert!(pth.join("F.pth").is_file());
    assert_eq!(
        read_json(&pth.join("source.json"))["model"]["commit"],
        COMMIT
    );

    // What is not in the cache fails offline, naming what was looked for.
    for (name, wanted) in [
        (
            "hf:someone/missing".to_string(),
            "models--someone--missing".to_string(),
        ),
        (format!("hf:{OWNER_NAME}@dev"), "refs/dev".to_string()),
    ] {
        let res = dgcolor_env(
            &[
                "colorize",
                "--checkpoint",
                &name,
                s(&input),
                "--out",
                s(&out),
            ],
            &env,
        );
        assert!(!res.status.success());
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(
            err.contains(&wanted) && err.contains("HF_HUB_OFFLINE") && err.contains(&name),
            "{err}"
        );
    }
    // A malformed name is a usage error.
    let res = dgcolor(&[
        "colorize",
        "--checkpoint",
        "hf:nobody",
        s(&input),
        "--out",
        s(&out),
    ]);
    assert!(String::from_utf8_lossy(&res.stderr).contains("OWNER/NAME"));
}
