//! The sweep end to end on the smoke preset: runs, resume of an interrupted run, skipping of
//! finished ones, `--status` and `--resubmit-failed`, launcher options refused where they do
//! not apply, and a report whose files exist and parse. (`--launcher slurm` against a real
//! cluster: tests/slurm.rs.)

use std::path::Path;
use std::process::Command;

use dgcolor_algorithms::PresetName;
use dgcolor_report::FigureLayout;
use dgcolor_runs::sweep::Job;
use dgcolor_runs::{read_records, train, Record, RunSpec, TrainOptions};

fn dgcolor(subcommand: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dgcolor"));
    c.arg(subcommand);
    c
}

fn compare(results: &Path, data_root: &Path, extra: &[&str]) -> (bool, String, String) {
    let out = dgcolor("compare")
        .args([
            "--preset",
            "smoke",
            "--algorithms",
            "erm,ours",
            "--settings",
            "photo+cartoon:art_painting,cartoon+photo:sketch",
        ])
        .args([
            "--results",
            results.to_str().unwrap(),
            "--data-root",
            data_root.to_str().unwrap(),
            "--sweep",
            "t",
        ])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn sweep_resumes_skips_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let (results, data_root) = (tmp.path().join("results"), tmp.path().join("data"));
    let sweep = results.join("t");

    // An interrupted run: `ours` on art_painting stopped after 2 of its 6 smoke steps.
    let spec = RunSpec {
        seed: 0,
        ..RunSpec::new(
            "ours",
            &["photo", "cartoon"],
            "art_painting",
            PresetName::Smoke,
        )
        .unwrap()
    };
    let job = Job::new("ours", 1, spec.clone(), &sweep);
    let partial = train(
        &spec.prepare(&data_root).unwrap(),
        &TrainOptions {
            out: job.dir.clone(),
            device: candle_core::Device::Cpu,
            progress: false,
            stop_after: Some(2),
            stop: Default::default(),
        },
    )
    .unwrap();
    assert!(!partial.finished);

    // The dry run lists four `dgcolor train` commands and runs nothing.
    let (ok, stdout, _) = compare(&results, &data_root, &["--launcher", "dry-run"]);
    assert!(ok);
    assert_eq!(stdout.matches("dgcolor train").count(), 4, "{stdout}");
    assert!(stdout.contains("[Unfinished]") && stdout.contains(job.dir.to_str().unwrap()));

    // --status: the interrupted run is unfinished at step 2 of 6, the others new.
    let (ok, stdout, stderr) = compare(&results, &data_root, &["--status"]);
    assert!(ok, "{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.contains(&job.name()))
        .unwrap_or_else(|| panic!("{stdout}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[..3], ["unfinished", "-", "2/6"], "{line}");
    assert!(
        stdout.ends_with("4 runs: 1 unfinished, 3 new\n"),
        "{stdout}"
    );

    // --resubmit-failed launches only that one.
    let (ok, _, stderr) = compare(&results, &data_root, &["--resubmit-failed", "--no-report"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(
            "[1/1] ours photo+cartoon->art_painting hparams 0 seed 0: resumed and finished"
        ),
        "{stderr}"
    );

    let (ok, stdout, stderr) = compare(&results, &data_root, &[]);
    assert!(ok, "{stderr}");
    assert_eq!(stderr.matches("already done").count(), 1, "{stderr}");
    assert_eq!(stderr.matches(": finished").count(), 3, "{stderr}");
    assert!(stdout.contains("report: "));
    let records = read_records(&job.dir.join("records.jsonl")).unwrap();
    assert_eq!(
        records
            .iter()
            .filter(|r| matches!(r, Record::Start { .. }))
            .count(),
        1,
        "the resumed run keeps its records"
    );

    // Re-running skips everything.
    let (ok, _, stderr) = compare(&results, &data_root, &[]);
    assert!(ok);
    assert_eq!(stderr.matches("already done").count(), 4, "{stderr}");
    let (ok, stdout, _) = compare(&results, &data_root, &["--status"]);
    assert!(ok && stdout.ends_with("4 runs: 4 done\n"), "{stdout}");
    let (ok, stdout, _) = compare(&results, &data_root, &["--resubmit-failed"]);
    assert!(
        ok && stdout.contains("no failed or unfinished run"),
        "{stdout}"
    );

    // Report files exist and parse.
    let report = sweep.join("report");
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("data:image/png;base64,"));
    assert!(!html.contains("src=\"http"), "the report is self-contained");
    for selection in ["val", "oracle", "last"] {
        let csv =
            std::fs::read_to_string(report.join(format!("tables/synth_psnr_{selection}.csv")))
                .unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[0].starts_with("method,column,mean,se,n,best,vs_erm_diff"));
        // 2 methods x (2 targets + Avg)
        assert_eq!(lines.len(), 1 + 6, "{csv}");
        for line in &lines[1..] {
            let fields: Vec<&str> = line.split(',').collect();
            assert!(fields[2].parse::<f64>().unwrap().is_finite());
        }
        let md = std::fs::read_to_string(report.join(format!("tables/synth_psnr_{selection}.md")))
            .unwrap();
        assert!(
            md.contains("| method | art_painting | sketch | Avg |"),
            "{md}"
        );
        assert!(
            std::fs::read_to_string(report.join(format!("tables/synth_psnr_{selection}.tex")))
                .unwrap()
                .contains("\\begin{tabular}")
        );
    }
    for plot in [
        "synth_psnr_bars",
        "synth_curves_art_painting",
        "synth_colourfulness_vs_psnr",
    ] {
        assert!(
            image::open(report.join(format!("plots/{plot}.png"))).is_ok(),
            "{plot}.png"
        );
        assert!(
            std::fs::read_to_string(report.join(format!("plots/{plot}.svg")))
                .unwrap()
                .contains("<svg")
        );
    }
    // Golden layout of the figure: 2 settings x 3 images, rows input + 2 methods + ground truth.
    let figure = image::open(report.join("figure_synth.png")).unwrap();
    let layout = FigureLayout::new(2, 2, 32);
    assert_eq!((figure.width(), figure.height()), layout.size());
    assert_eq!(layout.panels(), 4 * 2 * 3);
    assert_eq!(layout.size(), (130 + 2 * 3 * 96 + 10, 30 + 4 * 96));
    // Every panel was drawn: no panel is left blank white.
    let rgb = figure.to_rgb8();
    for row in 0..layout.rows {
        for s in 0..layout.settings {
            for k in 0..layout.per_setting {
                let (x, y) = layout.origin(row, s, k);
                let centre = rgb.get_pixel(x + layout.tile / 2, y + layout.tile / 2);
                let corner = rgb.get_pixel(x + 1, y + 1);
                assert!(
                    centre.0 != [255, 255, 255] || corner.0 != [255, 255, 255],
                    "panel ({row}, {s}, {k}) is empty"
                );
            }
        }
    }
}

#[test]
fn ablation_lists_every_adain_index_and_component() {
    let tmp = tempfile::tempdir().unwrap();
    let out = dgcolor("ablate-adain")
        .args([
            "--preset",
            "smoke",
            "--settings",
            "photo+cartoon:art_painting",
            "--launcher",
            "dry-run",
        ])
        .args([
            "--results",
            tmp.path().to_str().unwrap(),
            "--data-root",
            tmp.path().join("data").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // smoke depth 5: default, off, indices 1..4, and three component ablations.
    assert_eq!(
        stdout.matches("dgcolor train").count(),
        1 + 1 + 4 + 3,
        "{stdout}"
    );
    for needle in [
        "--adain none",
        "--adain 1",
        "--adain 4",
        "--set use_adv=0",
        "--set use_class=0",
        "--set use_cr=0",
        "AdaIN at skip 2 (z, default)",
    ] {
        assert!(stdout.contains(needle), "missing {needle}:\n{stdout}");
    }
}

#[test]
fn default_settings_follow_the_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |data: &str, extra: &[&str]| {
        let out = dgcolor("compare")
            .args([
                "--preset",
                "smoke",
                "--algorithms",
                "erm",
                "--launcher",
                "dry-run",
                "--data",
                data,
            ])
            .args([
                "--results",
                tmp.path().to_str().unwrap(),
                "--data-root",
                tmp.path().join("data").to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, stdout, stderr) = run("synth", &[]);
    assert!(ok, "{stderr}");
    for s in [
        "--sources art_painting,cartoon --target photo",
        "--sources cartoon,photo --target art_painting",
        "--sources photo,art_painting --target cartoon",
    ] {
        assert!(stdout.contains(s), "missing {s}:\n{stdout}");
    }
    let (ok, stdout, _) = run("synth", &["--leave-one-out"]);
    assert!(ok);
    assert_eq!(stdout.matches("dgcolor train").count(), 4, "{stdout}");
    // A plain folder has no paper settings: the error says what to give instead.
    let (ok, _, stderr) = run(tmp.path().to_str().unwrap(), &[]);
    assert!(!ok && stderr.contains("--settings"), "{stderr}");
}

#[test]
fn precision_reaches_the_run_commands_and_bad_values_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |precision: &str| {
        dgcolor("compare")
            .args([
                "--preset",
                "smoke",
                "--algorithms",
                "erm",
                "--launcher",
                "dry-run",
            ])
            .args([
                "--settings",
                "photo+cartoon:art_painting",
                "--precision",
                precision,
            ])
            .args(["--results", tmp.path().to_str().unwrap()])
            .args(["--data-root", tmp.path().join("data").to_str().unwrap()])
            .output()
            .unwrap()
    };
    let out = run("bf16");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("--precision bf16"));
    // f32 is the default and stays out of the command (older run hashes are unchanged).
    let out = run("f32");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("--precision"));
    let out = run("fp8");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--precision") && err.contains("expected f32, tf32 or bf16"),
        "{err}"
    );
}

/// With one thread the binaries leave rayon's pool its own worker (`pool_on_main_thread`):
/// made the pool's only worker, the main thread waited for the loader's batch while the
/// loader's decoding waited for it. A one-thread sweep must finish.
#[test]
fn one_thread_sweep_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = dgcolor("compare")
        .env("RAYON_NUM_THREADS", "1")
        .args(["--preset", "smoke", "--algorithms", "erm"])
        .args(["--settings", "photo+cartoon:art_painting", "--no-report"])
        .args(["--results", tmp.path().join("results").to_str().unwrap()])
        .args(["--data-root", tmp.path().join("data").to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("a one-thread smoke sweep did not finish in 300 s (deadlocked?)");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(status.success(), "{status}");
}

/// DomainBed's protocol on the smoke preset: two hyperparameter draws x two trials; every run
/// keeps per-image results and its validation checkpoint; one table per selection rule; the
/// table's comparison with erm agrees with a recomputation from the per-image files.
#[test]
fn random_search_sweep_keeps_what_selection_needs_and_reports_per_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let (results, data_root) = (tmp.path().join("results"), tmp.path().join("data"));
    let out = dgcolor("compare")
        .args([
            "--preset",
            "smoke",
            "--algorithms",
            "erm,ours",
            "--settings",
            "photo+cartoon:art_painting",
        ])
        .args(["--hparams", "2", "--trials", "2", "--sweep", "rs"])
        .args([
            "--results",
            results.to_str().unwrap(),
            "--data-root",
            data_root.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sweep = results.join("rs");
    let jobs = dgcolor_runs::sweep::read_jobs(&sweep).unwrap();
    assert_eq!(jobs.len(), 8);
    let mut draws: Vec<(u64, u64)> = jobs
        .iter()
        .map(|j| (j.spec.hparams_seed, j.spec.seed))
        .collect();
    draws.sort();
    draws.dedup();
    assert_eq!(draws, [(0, 0), (0, 1), (1, 0), (1, 1)]);
    for job in &jobs {
        let run = dgcolor_runs::RunDir::new(&job.dir);
        assert!(
            run.file("checkpoint-val.safetensors").is_file(),
            "{}",
            job.dir.display()
        );
        for step in [3, 6] {
            let rows = dgcolor_runs::read_per_image(&run.per_image_file(step)).unwrap();
            assert!(!rows.is_empty() && rows.iter().all(|r| r.values.contains_key("psnr")));
        }
        // The draw's hyperparameters: defaults for draw 0, a random-search draw otherwise.
        let config: dgcolor_runs::TrainConfig =
            toml::from_str(&std::fs::read_to_string(run.file("config.toml")).unwrap()).unwrap();
        let lr = config.hparams.get("lr");
        assert_eq!(lr == 1e-3, job.spec.hparams_seed == 0, "lr {lr}");
    }
    let tables = sweep.join("report/tables");
    for rule in ["val", "oracle", "last"] {
        for ext in ["csv", "md", "tex"] {
            assert!(
                tables.join(format!("synth_psnr_{rule}.{ext}")).is_file(),
                "{rule}.{ext}"
            );
        }
        assert!(tables
            .join(format!("synth_psnr_{rule}_vs_erm.md"))
            .is_file());
        assert!(tables.join(format!("synth_hparams_{rule}.md")).is_file());
        assert!(tables.join(format!("synth_per_class_{rule}.md")).is_file());
    }
    // Recompute ours vs erm under the last-step rule: each trial's draw with the better mean
    // source-validation PSNR at the last step, its per-image PSNR at step 6, paired by file.
    let pick = |label: &str, trial: u64| {
        jobs.iter()
            .filter(|j| j.label == label && j.spec.seed == trial)
            .max_by(|a, b| {
                let score = |j: &Job| {
                    let records = read_records(&j.dir.join("records.jsonl")).unwrap();
                    let v: Vec<f64> = records
                        .iter()
                        .filter_map(|r| match r {
                            Record::Eval(e)
                                if e.step == 6 && e.split == dgcolor_runs::EvalSplit::Val =>
                            {
                                e.result.value("psnr")
                            }
                            _ => None,
                        })
                        .collect();
                    v.iter().sum::<f64>() / v.len() as f64
                };
                // Ties go to the lower draw, as the report's rule does.
                score(a)
                    .total_cmp(&score(b))
                    .then(b.spec.hparams_seed.cmp(&a.spec.hparams_seed))
            })
            .unwrap()
    };
    let mut d = Vec::new();
    for trial in [0, 1] {
        let rows = |label| {
            dgcolor_runs::read_per_image(
                &dgcolor_runs::RunDir::new(&pick(label, trial).dir).per_image_file(6),
            )
            .unwrap()
        };
        let (ours, erm) = (rows("ours"), rows("erm"));
        for (a, b) in ours.iter().zip(&erm) {
            assert_eq!(a.file, b.file);
            d.push(a.values["psnr"] - b.values["psnr"]);
        }
    }
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    let csv = std::fs::read_to_string(tables.join("synth_psnr_last.csv")).unwrap();
    let line = csv
        .lines()
        .find(|l| l.starts_with("ours,art_painting,"))
        .unwrap();
    let fields: Vec<&str> = line.split(',').collect();
    let (diff, lo, hi, p): (f64, f64, f64, f64) = (
        fields[6].parse().unwrap(),
        fields[7].parse().unwrap(),
        fields[8].parse().unwrap(),
        fields[9].parse().unwrap(),
    );
    assert!((diff - mean).abs() < 1e-9, "{diff} vs {mean}");
    assert!(lo <= diff && diff <= hi);
    assert_eq!(fields[11].parse::<usize>().unwrap(), d.len());
    assert_eq!(p, dgcolor_report::stats::wilcoxon(&d).pvalue);
}

/// Options of one launcher given to another, and devices this build cannot open, are refused
/// before anything runs.
#[test]
fn launcher_options_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let (results, data_root) = (tmp.path().join("results"), tmp.path().join("data"));
    let (ok, _, stderr) = compare(&results, &data_root, &["--slurm-partition", "gpu"]);
    assert!(!ok && stderr.contains("need --launcher slurm"), "{stderr}");
    let (ok, _, stderr) = compare(
        &results,
        &data_root,
        &["--launcher", "slurm", "--devices", "cuda:0,cuda:1"],
    );
    assert!(
        !ok && stderr.contains("options of the local launcher"),
        "{stderr}"
    );
    let (ok, _, stderr) = compare(
        &results,
        &data_root,
        &["--devices", "cpu", "--device", "cpu"],
    );
    assert!(!ok && stderr.contains("cannot be used with"), "{stderr}");
    let (ok, _, stderr) = compare(
        &results,
        &data_root,
        &["--launcher", "slurm", "--slurm-sbatch", "qos=x"],
    );
    assert!(
        !ok && stderr.contains("expected an sbatch option"),
        "{stderr}"
    );
    if !candle_core::utils::cuda_is_available() {
        let (ok, _, stderr) = compare(&results, &data_root, &["--devices", "cuda:0,cuda:1"]);
        assert!(
            !ok && stderr.contains("--device cuda:0: this binary was built without CUDA support"),
            "{stderr}"
        );
        assert!(
            !results.join("t/runs").exists()
                || std::fs::read_dir(results.join("t/runs"))
                    .unwrap()
                    .all(|e| !e.unwrap().path().join("config.toml").exists())
        );
    }
}

/// SIGTERM stops a local sweep as it stops `dgcolor train`: the run in progress checkpoints
/// and releases its directory, no other run starts, and the sweep exits with status 75.
#[test]
fn a_local_sweep_stops_cleanly_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let (results, data_root) = (tmp.path().join("results"), tmp.path().join("data"));
    let args = |extra: &[&str]| {
        let mut c = dgcolor("compare");
        c.args([
            "--preset",
            "smoke",
            "--algorithms",
            "erm,ours",
            "--steps",
            "200",
        ])
        .args(["--settings", "photo+cartoon:art_painting", "--sweep", "t"])
        .args(["--results", results.to_str().unwrap()])
        .args(["--data-root", data_root.to_str().unwrap()])
        .args(["--parallel", "1"])
        .args(extra);
        c
    };
    let child = args(&[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    let first = loop {
        let found = std::fs::read_dir(results.join("t/runs"))
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().path())
            .find(|p| {
                std::fs::read_to_string(p.join("records.jsonl"))
                    .is_ok_and(|r| r.contains("\"kind\":\"train\""))
            });
        if let Some(run) = found {
            break run;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no run trained in 240 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("stopped by SIGTERM at step"), "{stderr}");
    assert!(first.join("checkpoint.safetensors").is_file() && !first.join("done").exists());
    assert!(!dgcolor_runs::RunDir::new(&first).is_locked());
    let out = args(&["--status"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.ends_with("2 runs: 1 unfinished, 1 new\n"),
        "{stdout}"
    );
}
