//! `dgcolor data info|check|fetch` and the `--data` / `--split` forms, end to end, on
//! the real PACS subset in `fixtures/` and trees built in temp dirs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dgcolor_data::{
    make_splits, write_hf_parquet, DataSpec, HfImageRow, MissingPolicy, SplitChoice, SynthConfig,
    PACS_CLASSES,
};

const PACS_MINI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/pacs_mini");

fn dgcolor(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dgcolor"));
    c.args(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("run dgcolor")
}

fn stdout_ok(args: &[&str]) -> String {
    let out = dgcolor(args, &[]);
    assert!(
        out.status.success(),
        "dgcolor {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn info_prints_counts_published_comparison_and_split_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let data = format!("pacs:{PACS_MINI}");
    let out = stdout_ok(&[
        "data",
        "info",
        "--data",
        &data,
        "--data-root",
        s(tmp.path()),
    ]);
    assert!(
        out.contains("classes (7): dog, elephant, giraffe, guitar, horse, house, person"),
        "{out}"
    );
    assert!(
        out.contains("art_painting") && out.contains("2048 published"),
        "{out}"
    );
    assert!(out.contains("differs (10 here, 2038 fewer)"), "{out}");
    assert!(out.contains("split: reference"), "{out}");
    let out = stdout_ok(&[
        "data",
        "info",
        "--data",
        &data,
        "--split",
        "official,skip-missing",
        "--data-root",
        s(tmp.path()),
    ]);
    assert!(
        out.contains("art_painting_crossval_kfold.txt:1: label 0"),
        "{out}"
    );
    assert!(
        out.contains("art_painting_crossval_kfold.txt:17: duplicate of line 2"),
        "{out}"
    );
    assert!(out.contains("1830 of 1840 files listed in"), "{out}");
    assert!(out.contains("train 10 of 1840 listed"), "{out}");
}

fn pacs_mini_parquet(file: &Path) {
    let folder = format!("pacs:{PACS_MINI}")
        .parse::<DataSpec>()
        .unwrap()
        .open(Path::new("unused"), &SynthConfig::default())
        .unwrap();
    let mut rows = Vec::new();
    for d in &folder.domains {
        for smp in folder.domain(d).unwrap() {
            rows.push(HfImageRow {
                bytes: fs::read(&smp.path).unwrap(),
                path: Some(smp.path.file_name().unwrap().to_string_lossy().into_owned()),
                domain: d.clone(),
                label: smp.class as i64,
            });
        }
    }
    write_hf_parquet(file, &rows, Some(&PACS_CLASSES)).unwrap();
}

#[test]
fn parquet_and_office_home_specs_work_in_info_and_check() {
    let tmp = tempfile::tempdir().unwrap();
    let pq = tmp.path().join("pacs.parquet");
    pacs_mini_parquet(&pq);
    let root = tmp.path().join("root");
    let data = format!("pacs-parquet:{}", pq.display());
    let out = stdout_ok(&["data", "info", "--data", &data, "--data-root", s(&root)]);
    assert!(
        out.contains("total               10       10      10      10"),
        "{out}"
    );
    let out = stdout_ok(&["data", "check", "--data", &data, "--data-root", s(&root)]);
    assert!(
        out.contains("decoded 40 images") && out.contains("0 broken"),
        "{out}"
    );

    // Office-Home with a space in a domain and DomainBed's folder name.
    let oh = tmp.path().join("oh/office_home");
    for d in ["Art", "Clipart", "Product", "Real World"] {
        let dir = oh.join(d).join("Mug");
        fs::create_dir_all(&dir).unwrap();
        image::RgbImage::from_pixel(31, 17, image::Rgb([200, 30, 30]))
            .save(dir.join("00001.jpg"))
            .unwrap();
    }
    let data = format!("office-home:{}", tmp.path().join("oh").display());
    let out = stdout_ok(&["data", "info", "--data", &data, "--data-root", s(&root)]);
    assert!(
        out.contains("domains (4): Art, Clipart, Product, Real World"),
        "{out}"
    );
    assert!(
        out.contains("classes (65)") && out.contains("4357 published"),
        "{out}"
    );
}

#[test]
fn check_lists_a_broken_image_and_exits_non_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("PACS");
    let dir = root.join("photo/dog");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(
        Path::new(PACS_MINI).join("photo/dog/n02103406_1011.jpg"),
        dir.join("ok.jpg"),
    )
    .unwrap();
    let broken = dir.join("broken.jpg");
    fs::write(&broken, b"truncated").unwrap();
    let data = format!("pacs:{}", tmp.path().display());
    let out = dgcolor(&["data", "check", "--data", &data], &[]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("broken: {}", broken.display())),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 2 images are broken"));
}

#[test]
fn fetch_offline_uses_the_hf_cache_or_says_it_is_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("hf");
    let envs = [("HF_HOME", s(&home)), ("HF_HUB_OFFLINE", "1")];
    let out = dgcolor(&["data", "fetch", "pacs"], &envs);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("flwrlabs/pacs") && err.contains("not in the cache"),
        "{err}"
    );

    // The layout huggingface_hub and hf-hub write.
    let repo = home.join("hub/datasets--flwrlabs--pacs");
    let snap = repo.join("snapshots/abc123/data");
    fs::create_dir_all(&snap).unwrap();
    fs::create_dir_all(repo.join("refs")).unwrap();
    fs::write(repo.join("refs/main"), "abc123").unwrap();
    pacs_mini_parquet(&snap.join("train-00000-of-00001.parquet"));
    let out = dgcolor(&["data", "fetch", "pacs"], &envs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let snapshot = repo.join("snapshots/abc123");
    assert!(
        text.contains(&format!("--data pacs-parquet:{}", snapshot.display())),
        "{text}"
    );
    // ... and that directory is a valid --data.
    let out = stdout_ok(&[
        "data",
        "check",
        "--data",
        &format!("pacs-parquet:{}", snapshot.display()),
        "--data-root",
        s(&tmp.path().join("root")),
    ]);
    assert!(out.contains("decoded 40 images"), "{out}");
}

#[test]
fn data_and_split_specs_parse_and_official_splits_feed_training() {
    let synth = SynthConfig::default();
    assert_eq!(
        "synth".parse::<DataSpec>().unwrap(),
        DataSpec::Synth {
            palette_shift: false
        }
    );
    assert_eq!(
        "/x/y".parse::<DataSpec>().unwrap(),
        DataSpec::Folder {
            root: PathBuf::from("/x/y")
        }
    );
    assert_eq!(
        "pacs:/d".parse::<DataSpec>().unwrap(),
        DataSpec::Pacs { root: "/d".into() }
    );
    assert_eq!(
        "office-home:/d".parse::<DataSpec>().unwrap(),
        DataSpec::OfficeHome { root: "/d".into() }
    );
    assert!(matches!(
        "office-home-parquet:/f.parquet"
            .parse::<DataSpec>()
            .unwrap(),
        DataSpec::Parquet {
            dataset: dgcolor_data::Benchmark::OfficeHome,
            ..
        }
    ));
    assert!("pacs:".parse::<DataSpec>().is_err());
    assert_eq!(
        "reference".parse::<SplitChoice>().unwrap(),
        SplitChoice::Reference
    );
    assert_eq!(
        "official,skip-missing,dir=/s"
            .parse::<SplitChoice>()
            .unwrap(),
        SplitChoice::Official {
            dir: Some("/s".into()),
            missing: MissingPolicy::Skip
        }
    );
    assert!("official,bogus".parse::<SplitChoice>().is_err());

    let folder = format!("pacs:{PACS_MINI}")
        .parse::<DataSpec>()
        .unwrap()
        .open(Path::new("unused"), &synth)
        .unwrap();
    // Every form prints back to the string it was parsed from.
    for text in [
        "synth",
        "/x/y",
        "pacs:/d",
        "office-home:/d",
        "pacs-parquet:/f.parquet",
        "office-home-parquet:/f",
    ] {
        assert_eq!(text.parse::<DataSpec>().unwrap().to_string(), text);
    }
    for text in ["reference", "official", "official,skip-missing,dir=/s"] {
        assert_eq!(text.parse::<SplitChoice>().unwrap().to_string(), text);
    }
    let sources = vec!["art_painting".to_string(), "cartoon".to_string()];
    let official = "official,skip-missing".parse::<SplitChoice>().unwrap();
    let splits = make_splits(&folder, &official, &sources, "photo", (0.1, 0.0), 0).unwrap();
    assert_eq!(splits.train[0].samples.len(), 10);
    assert_eq!(splits.test.len(), 10);
    assert!(splits
        .notes
        .iter()
        .any(|n| n.contains("art_painting_crossval_kfold.txt:1:")));
    let fail = "official".parse::<SplitChoice>().unwrap();
    let err = make_splits(&folder, &fail, &sources, "photo", (0.1, 0.0), 0)
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("1830 of 1840 files listed in"),
        "{err}"
    );
}

#[test]
fn smoke_training_on_pacs_mini_with_the_official_split() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let data = format!("pacs:{PACS_MINI}");
    let text = stdout_ok(&[
        "train",
        "--algorithm",
        "erm",
        "--preset",
        "smoke",
        "--quiet",
        "--steps",
        "2",
        "--data",
        &data,
        "--split",
        "official,skip-missing",
        "--sources",
        "art_painting,cartoon",
        "--target",
        "photo",
        "--data-root",
        s(&tmp.path().join("root")),
        "--out",
        s(&out),
    ]);
    assert!(text.contains("\"finished\": true"), "{text}");
    let config = fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        config.contains("split = \"official,skip-missing\"") && config.contains("data = \"pacs:"),
        "{config}"
    );
}
