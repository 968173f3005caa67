//! The run protocol: a spec's command line parses back to the same spec, run directories are
//! locked, identical runs write identical checkpoints, a stop request checkpoints and resumes
//! to the same weights, and records of another schema are refused.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};
use dgcolor_algorithms::{PresetName, ALGORITHMS};
use dgcolor_models::AdainSkip;
use dgcolor_runs::{
    read_records, train, EvalSplit, Record, RunDir, RunError, RunOptions, RunSpec, StopFlag,
    TrainOptions, SCHEMA_VERSION,
};

/// `dgcolor train`'s run arguments, as the CLI flattens them.
#[derive(Parser, Debug)]
struct Train {
    #[command(flatten)]
    spec: RunSpec,
}

fn parse(args: &[String]) -> RunSpec {
    Train::try_parse_from(std::iter::once("train".to_string()).chain(args.iter().cloned()))
        .unwrap_or_else(|e| panic!("{args:?} does not parse: {e}"))
        .spec
}

/// Option sets that between them set every field away from its default.
fn option_variants() -> Vec<RunOptions> {
    let base = RunOptions::default();
    vec![
        base.clone(),
        RunOptions {
            data: "pacs:/data/PACS".parse().unwrap(),
            steps: Some(7),
            batch_size: Some(3),
            balanced: true,
            set: vec!["lr=0.0002".parse().unwrap()],
            adain: Some(AdainSkip::None),
            resize: "antialias".parse().unwrap(),
            skip_bad_images: true,
            split: "official,skip-missing,dir=/data/pacs split"
                .parse()
                .unwrap(),
            precision: "bf16".parse().unwrap(),
            oracle_fraction: 0.0,
            ..base.clone()
        },
        RunOptions {
            data: "office-home-parquet:/hub/snapshot".parse().unwrap(),
            set: vec![
                "lr=1e-5".parse().unwrap(),
                "lr=0.30000000000000004".parse().unwrap(),
            ],
            adain: Some(AdainSkip::Index(2)),
            precision: "tf32".parse().unwrap(),
            oracle_fraction: 0.35,
            ..base.clone()
        },
        RunOptions {
            data: "/some/folder".parse().unwrap(),
            adain: Some(AdainSkip::Z),
            split: "official".parse().unwrap(),
            ..base
        },
    ]
}

#[test]
fn every_spec_command_line_parses_back_to_the_same_spec() {
    let mut checked = 0;
    for algorithm in ALGORITHMS {
        for preset in PresetName::ALL {
            for options in option_variants() {
                for (sources, target, seed, hparams_seed) in [
                    (vec!["photo", "cartoon"], "art_painting", 0, 0),
                    (vec!["Art", "Real World"], "Clipart", 12, 3),
                ] {
                    let spec = RunSpec {
                        algorithm,
                        sources: sources.iter().map(|s| s.to_string()).collect(),
                        target: target.into(),
                        seed,
                        hparams_seed,
                        options: RunOptions {
                            preset,
                            ..options.clone()
                        },
                    };
                    let args = spec.to_args();
                    assert_eq!(parse(&args), spec, "{args:?}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, ALGORITHMS.len() * 3 * 4 * 2);
}

#[test]
fn every_spec_field_is_a_command_line_option() {
    // to_args walks clap's arguments; a serde field without a flag would silently vanish.
    let serde_fields: BTreeSet<String> = match serde_json::to_value(parse(&[])).unwrap() {
        serde_json::Value::Object(m) => m.keys().cloned().collect(),
        _ => unreachable!(),
    };
    let clap_ids: BTreeSet<String> = Train::command()
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .filter(|id| id != "help")
        .collect();
    assert_eq!(serde_fields, clap_ids);
}

#[test]
fn bad_option_values_are_refused_with_the_option_named() {
    for (args, needle) in [
        (vec!["--steps", "0"], "--steps"),
        (vec!["--algorithm", "nope"], "unknown algorithm `nope`"),
        (vec!["--preset", "huge"], "unknown preset `huge`"),
        (vec!["--adain", "left"], "--adain `left`"),
        (vec!["--resize", "cubic"], "--resize `cubic`"),
        (vec!["--split", "official,bogus"], "unknown option `bogus`"),
        (vec!["--precision", "f16"], "--precision `f16`"),
        (vec!["--set", "lr"], "`lr`"),
        (vec!["--data", ""], "--data is empty"),
        (
            vec!["--oracle-fraction", "0.95"],
            "expected a fraction in [0, 0.9)",
        ),
    ] {
        let err = Train::try_parse_from(std::iter::once("train").chain(args.iter().copied()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

fn smoke(algorithm: &str, steps: u64) -> RunSpec {
    let mut spec = RunSpec::new(
        algorithm,
        &["photo", "cartoon"],
        "art_painting",
        PresetName::Smoke,
    )
    .unwrap();
    spec.options.steps = Some(steps);
    spec
}

fn options(out: &Path) -> TrainOptions {
    TrainOptions {
        out: out.to_path_buf(),
        device: candle_core::Device::Cpu,
        progress: false,
        stop_after: None,
        stop: Default::default(),
    }
}

#[test]
fn a_busy_run_directory_is_refused_and_a_dead_holder_is_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    let run = smoke("erm", 2).prepare(&tmp.path().join("data")).unwrap();
    let out = tmp.path().join("run");

    let held = RunDir::new(&out).lock().unwrap();
    let err = train(&run, &options(&out)).unwrap_err();
    assert!(matches!(err, RunError::Busy { .. }), "{err}");
    let pid = std::process::id().to_string();
    assert!(
        err.to_string()
            .contains(&format!("{} is in use by pid {pid}", out.display())),
        "{err}"
    );
    assert!(
        !out.join("config.toml").exists(),
        "nothing is written by the refused trainer"
    );
    drop(held);

    // A holder that dies leaves the file behind but not the lock. flock(1) runs `sleep`
    // holding the lock; both are killed together as their own process group.
    use std::os::unix::process::CommandExt;
    let mut holder = std::process::Command::new("flock")
        .arg(out.join("lock"))
        .args(["sleep", "60"])
        .process_group(0)
        .spawn()
        .expect("flock(1) from util-linux");
    let lock_taken = || RunDir::new(&out).is_locked();
    for _ in 0..200 {
        if lock_taken() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(lock_taken(), "the flock(1) child holds the lock");
    assert!(matches!(
        train(&run, &options(&out)),
        Err(RunError::Busy { .. })
    ));
    let group = format!("-{}", holder.id());
    let killed = std::process::Command::new("kill")
        .args(["-KILL", "--", &group])
        .status()
        .unwrap();
    assert!(killed.success());
    holder.wait().unwrap();
    // flock(1) is reaped here, but its `sleep` child, killed too and holding the same open
    // file, may not have exited yet on a loaded machine; the lock goes when it has.
    for _ in 0..1000 {
        if !lock_taken() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let outcome = train(&run, &options(&out)).unwrap();
    assert!(outcome.finished);
}

#[test]
fn identical_runs_write_identical_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let bytes = |name: &str| -> Vec<u8> {
        let run = smoke("ours", 3).prepare(&data).unwrap();
        let out: PathBuf = tmp.path().join(name);
        train(&run, &options(&out)).unwrap();
        std::fs::read(out.join("checkpoint.safetensors")).unwrap()
    };
    let (a, b) = (bytes("a"), bytes("b"));
    assert!(a.len() > 1000);
    assert!(
        a == b,
        "two identical runs wrote different checkpoint bytes"
    );
}

/// What SIGTERM / SIGUSR1 do to a run, without signals: a stop request ends the call after
/// the step in progress, checkpointed, with the steps since the last training record
/// recorded at that step; a later call resumes. Stopped after step 1 (by the request) and
/// after step 7 (neither a log nor an evaluation step), the run ends with the checkpoint
/// bytes and the evaluations of an uninterrupted one.
#[test]
fn a_stop_request_checkpoints_and_the_run_resumes_to_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let run = smoke("ours", 14).prepare(&tmp.path().join("data")).unwrap();
    let straight = tmp.path().join("straight");
    train(&run, &options(&straight)).unwrap();

    let out = tmp.path().join("stopped");
    let stop = StopFlag::default();
    stop.request(15);
    let first = train(
        &run,
        &TrainOptions {
            stop,
            ..options(&out)
        },
    )
    .unwrap();
    assert_eq!(
        (first.steps, first.finished, first.stopped_by.as_deref()),
        (1, false, Some("SIGTERM"))
    );
    assert!(!RunDir::new(&out).is_locked(), "the lock is released");
    assert!(out.join("checkpoint.safetensors").is_file() && !out.join("done").exists());
    let second = train(
        &run,
        &TrainOptions {
            stop_after: Some(6),
            ..options(&out)
        },
    )
    .unwrap();
    assert_eq!((second.resumed_from, second.steps), (Some(1), 7));
    let last = train(&run, &options(&out)).unwrap();
    assert_eq!((last.resumed_from, last.finished), (Some(7), true));

    let bytes = |dir: &Path| std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    assert!(bytes(&straight) == bytes(&out), "resumed weights differ");
    let records = |dir: &Path| read_records(&dir.join("records.jsonl")).unwrap();
    let (a, b) = (records(&straight), records(&out));
    let evals = |r: &[Record]| -> Vec<Record> {
        r.iter()
            .filter(|r| matches!(r, Record::Eval(_) | Record::Final(_) | Record::Kept { .. }))
            .cloned()
            .collect()
    };
    assert_eq!(evals(&a), evals(&b), "evaluations differ");
    let train_steps = |r: &[Record]| -> Vec<u64> {
        r.iter()
            .filter(|r| matches!(r, Record::Train { .. }))
            .map(Record::step)
            .collect()
    };
    assert_eq!(train_steps(&a), [10, 14]);
    assert_eq!(train_steps(&b), [1, 7, 10, 14]);
    assert_eq!(
        b.iter()
            .filter(|r| matches!(r, Record::Start { .. }))
            .count(),
        1
    );
    let test_steps: Vec<u64> = b
        .iter()
        .filter_map(|r| match r {
            Record::Eval(e) if e.split == EvalSplit::Test => Some(e.step),
            _ => None,
        })
        .collect();
    assert_eq!(test_steps, [3, 6, 9, 12, 14], "each evaluation point once");
}

#[test]
fn zero_steps_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let err = smoke("erm", 0)
        .prepare(&tmp.path().join("data"))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("--steps must be at least 1"),
        "{err}"
    );
}

#[test]
fn records_of_another_schema_version_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("records.jsonl");
    std::fs::write(
        &path,
        "{\"kind\":\"start\",\"step\":0,\"classes\":[],\"train_images\":[],\"test_images\":0}\n",
    )
    .unwrap();
    let err = read_records(&path).unwrap_err().to_string();
    assert!(
        err.contains("schema version 1")
            && err.contains(&format!("reads version {SCHEMA_VERSION}")),
        "{err}"
    );
    // A torn last line (a crash mid-write) is ignored; a bad line in the middle is not.
    let start = format!(
        "{{\"kind\":\"start\",\"schema\":{SCHEMA_VERSION},\"classes\":[],\"train_images\":[],\"oracle_images\":0,\"test_images\":0,\"split_notes\":[]}}\n"
    );
    std::fs::write(&path, format!("{start}{{\"kind\":\"tra")).unwrap();
    assert_eq!(read_records(&path).unwrap().len(), 1);
    std::fs::write(&path, format!("{start}{{\"kind\":\"tra\n{start}")).unwrap();
    assert!(read_records(&path)
        .unwrap_err()
        .to_string()
        .contains("line 2"));
}
