//! End-to-end: the `dgcolor` binary on the embedded benchmark at the smoke preset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::Device;
use dgcolor_algorithms::Checkpoint;
use dgcolor_runs::{read_records, EvalSplit, Record, SCHEMA_VERSION};

fn dgcolor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dgcolor"))
        .args(args)
        .output()
        .expect("run dgcolor")
}

fn ok(args: &[&str]) -> String {
    let out = dgcolor(args);
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

fn train_args<'a>(
    algorithm: &'a str,
    data_root: &'a Path,
    out: &'a Path,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut a = vec![
        "train",
        "--algorithm",
        algorithm,
        "--preset",
        "smoke",
        "--quiet",
        "--data-root",
        s(data_root),
        "--out",
        s(out),
    ];
    a.extend_from_slice(extra);
    a
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn smoke_training_of_both_algorithms_records_everything() {
    let tmp = tempfile::tempdir().unwrap();
    for algorithm in ["erm", "ours"] {
        let run = tmp.path().join(algorithm);
        let out = json(&ok(&train_args(algorithm, tmp.path(), &run, &[])));
        assert_eq!(out["finished"], true);
        assert_eq!(out["steps"], 6);
        let psnr = out["target_metrics"]["metrics"]["psnr"]["mean"]
            .as_f64()
            .unwrap();
        assert!(psnr.is_finite() && psnr > 5.0, "{psnr}");
        for f in [
            "config.toml",
            "records.jsonl",
            "checkpoint.safetensors",
            "done",
        ] {
            assert!(run.join(f).exists(), "{algorithm}: missing {f}");
        }
        let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
        assert!(
            config.contains(&format!("algorithm = \"{algorithm}\""))
                && config.contains("lr = 0.001"),
            "{config}"
        );
        let records = read_records(&run.join("records.jsonl")).unwrap();
        assert!(
            matches!(&records[0], Record::Start { schema, .. } if *schema == SCHEMA_VERSION),
            "{:?}",
            records[0]
        );
        let train: Vec<(&BTreeMap<String, f64>, f64)> = records
            .iter()
            .filter_map(|r| match r {
                Record::Train {
                    losses,
                    images_per_sec,
                    ..
                } => Some((losses, *images_per_sec)),
                _ => None,
            })
            .collect();
        assert!(!train.is_empty() && train.iter().all(|(l, _)| l["g_l1"].is_finite()));
        assert!(train.iter().all(|(_, speed)| *speed > 0.0));
        assert!(records.iter().any(|r| matches!(r,
            Record::Eval(e) if e.split == EvalSplit::Val && e.domain == "photo")));
        // Evaluation points and the final evaluation carry metrics in the same shape.
        let (eval, last) = records.iter().fold((None, None), |(e, f), r| match r {
            Record::Eval(x) if x.split == EvalSplit::Test => (Some(x), f),
            Record::Final(x) => (e, Some(x)),
            _ => (e, f),
        });
        let (eval, last) = (eval.unwrap(), last.unwrap());
        assert_eq!(last.domain, "art_painting");
        assert_eq!(
            eval.result.metrics.keys().collect::<Vec<_>>(),
            last.result.metrics.keys().collect::<Vec<_>>()
        );
        // Running it again reports the finished run without training.
        let again = json(&ok(&train_args(algorithm, tmp.path(), &run, &[])));
        assert_eq!(again["already_done"], true);
    }
    // A different config in the same directory is refused.
    let out = dgcolor(&train_args(
        "erm",
        tmp.path(),
        &tmp.path().join("erm"),
        &["--seed", "3"],
    ));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("different configuration"));
}

fn checkpoint_tensors(run: &Path) -> Vec<(String, Vec<f32>)> {
    let ckpt = Checkpoint::load(&run.join("checkpoint.safetensors"), &Device::Cpu).unwrap();
    ckpt.tensors
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            )
        })
        .collect()
}

#[test]
fn an_interrupted_run_resumes_to_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let straight = tmp.path().join("straight");
    ok(&train_args(
        "ours",
        tmp.path(),
        &straight,
        &["--steps", "5"],
    ));
    let resumed = tmp.path().join("resumed");
    let first = json(&ok(&train_args(
        "ours",
        tmp.path(),
        &resumed,
        &["--steps", "5", "--stop-after", "2"],
    )));
    assert_eq!(first["finished"], false);
    assert!(!resumed.join("done").exists());
    let second = json(&ok(&train_args(
        "ours",
        tmp.path(),
        &resumed,
        &["--steps", "5"],
    )));
    assert_eq!(second["resumed_from"], 2);
    assert_eq!(second["finished"], true);
    assert_eq!(checkpoint_tensors(&straight), checkpoint_tensors(&resumed));
    assert_eq!(
        second["target_metrics"],
        json(&ok(&train_args(
            "ours",
            tmp.path(),
            &straight,
            &["--steps", "5"]
        )))["target_metrics"]
    );
}

#[test]
fn colorize_and_eval_work_on_a_trained_run() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    ok(&train_args("erm", tmp.path(), &run, &[]));
    // Inputs of assorted sizes and formats: non-square RGB JPEG, 16-bit gray PNG, RGBA PNG.
    let inputs = tmp.path().join("inputs");
    std::fs::create_dir_all(inputs.join("nested")).unwrap();
    image::RgbImage::from_fn(75, 41, |x, y| {
        image::Rgb([(x * 3) as u8, (y * 5) as u8, 90])
    })
    .save(inputs.join("wide.jpg"))
    .unwrap();
    image::ImageBuffer::<image::Luma<u16>, _>::from_fn(20, 33, |x, y| {
        image::Luma([(x * 2000 + y * 300) as u16])
    })
    .save(inputs.join("nested/gray16.png"))
    .unwrap();
    image::RgbaImage::from_fn(32, 32, |x, _| image::Rgba([200, x as u8 * 8, 10, 128]))
        .save(inputs.join("alpha.png"))
        .unwrap();
    let out = tmp.path().join("colorized");
    ok(&[
        "colorize",
        "--checkpoint",
        s(&run),
        s(&inputs),
        "--out",
        s(&out),
    ]);
    for (rel, w, h) in [
        ("inputs/wide.png", 75, 41),
        ("inputs/nested/gray16.png", 20, 33),
        ("inputs/alpha.png", 32, 32),
    ] {
        let img = image::open(out.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(
            (img.width(), img.height()),
            (w, h),
            "{rel} keeps the input resolution"
        );
    }
    // A single file and the checkpoint file itself work too.
    let single = tmp.path().join("single");
    ok(&[
        "colorize",
        "--checkpoint",
        s(&run.join("checkpoint.safetensors")),
        s(&inputs.join("wide.jpg")),
        "--out",
        s(&single),
    ]);
    assert!(single.join("wide.png").exists());
    // A missing input is named.
    let err = dgcolor(&[
        "colorize",
        "--checkpoint",
        s(&run),
        "/nonexistent/x.png",
        "--out",
        s(&single),
    ]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("/nonexistent/x.png"));

    let metrics = json(&ok(&[
        "eval",
        "--checkpoint",
        s(&run),
        "--domain",
        "sketch",
        "--data-root",
        s(tmp.path()),
    ]));
    assert_eq!(metrics["domain"], "sketch");
    assert_eq!(metrics["result"]["images"], 7 * 16);
    assert!(
        metrics["result"]["metrics"]["ssim"]["mean"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}

#[test]
fn broken_images_fail_with_their_path_or_are_skipped_and_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("folder");
    for domain in ["a", "b", "c"] {
        for class in ["x", "y"] {
            let dir = data.join(domain).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..6u32 {
                image::RgbImage::from_fn(40, 40, |x, y| {
                    image::Rgb([(x * 6) as u8, (y * 6) as u8, (i * 40) as u8])
                })
                .save(dir.join(format!("{i}.png")))
                .unwrap();
            }
        }
    }
    let broken: PathBuf = data.join("a/x/broken.jpg");
    std::fs::write(&broken, b"not a jpeg at all").unwrap();
    let run = tmp.path().join("run");
    let args = [
        "train",
        "--algorithm",
        "erm",
        "--preset",
        "smoke",
        "--quiet",
        "--data",
        s(&data),
        "--sources",
        "a,b",
        "--target",
        "c",
        "--out",
        s(&run),
        "--steps",
        "12",
    ];
    let out = dgcolor(&args);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.jpg"), "{stderr}");

    let run2 = tmp.path().join("run2");
    let mut skip = args.to_vec();
    let out_index = skip.len() - 3;
    skip[out_index] = s(&run2);
    skip.push("--skip-bad-images");
    ok(&skip);
    let records = read_records(&run2.join("records.jsonl")).unwrap();
    assert!(
        records.iter().any(
            |r| matches!(r, Record::SkippedImage { path, .. } if path.ends_with("broken.jpg"))
        ),
        "the skipped file is recorded"
    );
}

const IMAGE_FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../dgcolor-data/tests/fixtures"
);

#[test]
fn colorize_writes_every_readable_input_and_lists_the_unreadable_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    ok(&train_args("erm", tmp.path(), &run, &[]));
    // A folder mixing good files, garbage, a phone-style rotated JPEG and truncated files;
    // sorted by name, the unreadable ones come first and in the middle.
    let inputs = tmp.path().join("mixed");
    std::fs::create_dir_all(&inputs).unwrap();
    let fixtures = Path::new(IMAGE_FIXTURES);
    std::fs::write(inputs.join("a_broken.jpg"), b"not an image, just bytes").unwrap();
    image::RgbImage::from_fn(30, 20, |x, y| {
        image::Rgb([(x * 8) as u8, (y * 12) as u8, 60])
    })
    .save(inputs.join("b_good.png"))
    .unwrap();
    std::fs::copy(
        fixtures.join("truncated/half.png"),
        inputs.join("c_cut.png"),
    )
    .unwrap();
    std::fs::copy(
        fixtures.join("exif/orientation_6.jpg"),
        inputs.join("d_rotated.jpg"),
    )
    .unwrap();
    std::fs::copy(
        fixtures.join("truncated/half.jpg"),
        inputs.join("e_truncated.jpg"),
    )
    .unwrap();
    std::fs::copy(
        fixtures.join("truncated/whole.jpg"),
        inputs.join("f_good.jpg"),
    )
    .unwrap();
    let out = tmp.path().join("colorized");
    let result = dgcolor(&[
        "colorize",
        "--checkpoint",
        s(&run),
        s(&inputs),
        "--out",
        s(&out),
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "{stderr}");
    for (rel, w, h) in [
        ("b_good.png", 30, 20),
        // Stored 40x24 with EXIF orientation 6: written as displayed.
        ("d_rotated.png", 24, 40),
        ("e_truncated.png", 128, 96),
        ("f_good.png", 128, 96),
    ] {
        let img = image::open(out.join("mixed").join(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}\n{stderr}"));
        assert_eq!((img.width(), img.height()), (w, h), "{rel}");
    }
    for rel in ["a_broken.png", "c_cut.png"] {
        assert!(!out.join("mixed").join(rel).exists(), "{rel}");
    }
    assert!(
        stderr.contains("2 of 6 inputs could not be colorized"),
        "{stderr}"
    );
    let listed = |name: &str, reason: &str| {
        stderr
            .lines()
            .any(|l| l.starts_with("  ") && l.contains(name) && l.contains(reason))
    };
    assert!(listed("a_broken.jpg", "not a readable image"), "{stderr}");
    assert!(listed("c_cut.png", "image file is truncated"), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("warning:") && l.contains("e_truncated.jpg")),
        "{stderr}"
    );
    assert!(!listed("e_truncated.jpg", ""), "{stderr}");
}

#[test]
fn a_second_trainer_on_a_busy_run_directory_exits_naming_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let args = train_args("erm", tmp.path(), &run, &["--steps", "100000"]);
    let mut first = Command::new(env!("CARGO_BIN_EXE_dgcolor"))
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first trainer holds the lock (it writes its pid after taking it).
    let pid = first.id().to_string();
    for _ in 0..3000 {
        if std::fs::read_to_string(run.join("lock")).is_ok_and(|p| p == pid) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let second = dgcolor(&args);
    first.kill().unwrap();
    first.wait().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    assert!(
        stderr.contains(&format!("{} is in use by pid {pid}", run.display())),
        "{stderr}"
    );
    // The killed trainer's lock went with it: the directory resumes (with fewer steps the
    // config differs, so the same arguments are used and the run is stopped early).
    let resumed = dgcolor(&train_args(
        "erm",
        tmp.path(),
        &run,
        &["--steps", "100000", "--stop-after", "1"],
    ));
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
}

/// The highest step of a training record so far (0 before the first).
fn trained_steps(run: &Path) -> u64 {
    std::fs::read_to_string(run.join("records.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("{\"kind\":\"train\""))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["step"].as_u64())
        .max()
        .unwrap_or(0)
}

/// Starts `args`, waits until a training record reaches `step`, sends `signal`, and returns
/// the exit status and the outcome printed on stdout.
fn signal_mid_run(args: &[&str], run: &Path, step: u64, signal: &str) -> (Option<i32>, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_dgcolor"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    while trained_steps(run) < step {
        assert!(
            std::time::Instant::now() < deadline,
            "no training record at step {step} after 240 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// SIGTERM (cancellation, preemption, requeue) and SIGUSR1 (Slurm's warning before a time
/// limit) stop `dgcolor train` at the next step boundary: checkpoint written, lock released,
/// exit status 75; re-running resumes, and the run ends with the checkpoint bytes of an
/// uninterrupted one.
#[test]
fn sigterm_and_sigusr1_checkpoint_and_the_resumed_run_matches_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let straight = tmp.path().join("straight");
    ok(&train_args(
        "erm",
        tmp.path(),
        &straight,
        &["--steps", "90"],
    ));
    let run = tmp.path().join("run");
    let args = train_args("erm", tmp.path(), &run, &["--steps", "90"]);
    let mut stopped_at = 0;
    for (signal, after) in [("TERM", 10), ("USR1", 40)] {
        let (code, stdout) = signal_mid_run(&args, &run, after, signal);
        let outcome = json(&stdout);
        assert_eq!(code, Some(75), "SIG{signal}: {stdout}");
        assert_eq!(outcome["stopped_by"], format!("SIG{signal}"));
        assert_eq!(outcome["finished"], false);
        let steps = outcome["steps"].as_u64().unwrap();
        assert!(steps > stopped_at && steps < 90, "stopped at step {steps}");
        if stopped_at > 0 {
            assert_eq!(outcome["resumed_from"], stopped_at);
        }
        stopped_at = steps;
        assert!(!run.join("done").exists());
        assert!(!dgcolor_runs::RunDir::new(&run).is_locked());
        // Every record is at or before the checkpoint's step: nothing to drop on resume.
        let records = read_records(&run.join("records.jsonl")).unwrap();
        assert_eq!(records.last().unwrap().step(), steps, "{records:?}");
    }
    let last = json(&ok(&args));
    assert_eq!(last["resumed_from"], stopped_at);
    assert_eq!(last["finished"], true);
    let bytes = |dir: &Path| std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    assert!(
        bytes(&straight) == bytes(&run),
        "the interrupted run ended with other weights"
    );
}
