//! Tables from hand-made runs: the three selection rules over hyperparameter draws and
//! evaluation points, mean ± standard error over trials (ddof 0), and the comparison with
//! erm recomputed from the per-image files the runs hold.

use std::collections::BTreeMap;
use std::path::Path;

use dgcolor_algorithms::PresetName;
use dgcolor_eval::{DomainMetrics, ImageResult};
use dgcolor_metrics::{Better, MetricSummary};
use dgcolor_report::stats::{bootstrap_mean_ci, wilcoxon};
use dgcolor_report::{picks, Cell, PerImage, RunResult, Selection, Table};
use dgcolor_runs::sweep::Job;
use dgcolor_runs::{write_per_image, EvalSplit, Evaluation, Record, RunDir, RunSpec, TrainConfig};

fn metrics(values: &[(&str, f64)]) -> DomainMetrics {
    DomainMetrics {
        images: 3,
        skipped: Vec::new(),
        metrics: values
            .iter()
            .map(|&(name, mean)| {
                let summary = MetricSummary {
                    count: 3,
                    mean,
                    std_err: None,
                    min: mean,
                    max: mean,
                };
                (name.to_string(), summary)
            })
            .collect(),
        set: BTreeMap::new(),
    }
}

fn eval(step: u64, domain: &str, split: EvalSplit, psnr: f64) -> Record {
    Record::Eval(Evaluation {
        step,
        domain: domain.into(),
        split,
        result: metrics(&[("psnr", psnr)]),
    })
}

/// A run with evaluation points at steps 10 and 20: source-validation PSNR `val[i]`, oracle
/// PSNR `oracle[i]`, test PSNR `test[i]`; the final record repeats step 20.
struct Spec<'a> {
    label: &'a str,
    order: usize,
    target: &'a str,
    trial: u64,
    draw: u64,
    val: [f64; 2],
    oracle: [f64; 2],
    test: [f64; 2],
}

fn run(s: Spec, config: &TrainConfig, sweep: &Path) -> RunResult {
    let mut spec =
        RunSpec::new(s.label, &["photo", "cartoon"], s.target, PresetName::Smoke).unwrap();
    spec.seed = s.trial;
    spec.hparams_seed = s.draw;
    let mut config = config.clone();
    config.target = s.target.into();
    config.seed = s.trial;
    config.hparams_seed = s.draw;
    let mut records = Vec::new();
    for i in 0..2 {
        let step = 10 * (i as u64 + 1);
        for domain in ["photo", "cartoon"] {
            records.push(eval(step, domain, EvalSplit::Val, s.val[i]));
        }
        records.push(eval(step, s.target, EvalSplit::Oracle, s.oracle[i]));
        records.push(eval(step, s.target, EvalSplit::Test, s.test[i]));
    }
    records.push(Record::Final(Evaluation {
        step: 20,
        domain: s.target.into(),
        split: EvalSplit::Test,
        result: metrics(&[("psnr", s.test[1])]),
    }));
    RunResult {
        job: Job::new(s.label, s.order, spec, sweep),
        config,
        records,
    }
}

fn smoke_config(tmp: &Path) -> TrainConfig {
    RunSpec::new(
        "erm",
        &["photo", "cartoon"],
        "art_painting",
        PresetName::Smoke,
    )
    .unwrap()
    .prepare(&tmp.join("data"))
    .unwrap()
    .config
}

#[test]
fn selection_rules_over_draws_and_points_and_standard_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let config = smoke_config(tmp.path());
    let sweep = tmp.path().join("sweep");
    let s = |label, order, target, trial, draw, val, oracle, test| Spec {
        label,
        order,
        target,
        trial,
        draw,
        val,
        oracle,
        test,
    };
    let runs = [
        // erm, art_painting, trial 0: draw 1 has the best validation (21 at step 10), draw 0
        // the best oracle (30 at step 20); at the last step draw 0 validates better.
        run(
            s(
                "erm",
                0,
                "art_painting",
                0,
                0,
                [18.0, 20.0],
                [25.0, 30.0],
                [15.0, 17.0],
            ),
            &config,
            &sweep,
        ),
        run(
            s(
                "erm",
                0,
                "art_painting",
                0,
                1,
                [21.0, 19.0],
                [24.0, 24.0],
                [14.0, 16.0],
            ),
            &config,
            &sweep,
        ),
        // erm, art_painting, trial 1: one draw.
        run(
            s(
                "erm",
                0,
                "art_painting",
                1,
                0,
                [20.0, 19.0],
                [20.0, 21.0],
                [16.0, 18.0],
            ),
            &config,
            &sweep,
        ),
        // erm, photo.
        run(
            s(
                "erm",
                0,
                "photo",
                0,
                0,
                [20.0, 22.0],
                [20.0, 20.0],
                [25.0, 26.0],
            ),
            &config,
            &sweep,
        ),
        run(
            s(
                "erm",
                0,
                "photo",
                1,
                0,
                [20.0, 22.0],
                [20.0, 20.0],
                [27.0, 28.0],
            ),
            &config,
            &sweep,
        ),
        // ours: validation peaks at step 20 everywhere.
        run(
            s(
                "ours",
                1,
                "art_painting",
                0,
                0,
                [18.0, 22.0],
                [20.0, 20.0],
                [14.0, 19.0],
            ),
            &config,
            &sweep,
        ),
        run(
            s(
                "ours",
                1,
                "art_painting",
                1,
                0,
                [18.0, 22.0],
                [20.0, 20.0],
                [14.0, 21.0],
            ),
            &config,
            &sweep,
        ),
        run(
            s(
                "ours",
                1,
                "photo",
                0,
                0,
                [18.0, 22.0],
                [20.0, 20.0],
                [24.0, 25.0],
            ),
            &config,
            &sweep,
        ),
        run(
            s(
                "ours",
                1,
                "photo",
                1,
                0,
                [18.0, 22.0],
                [20.0, 20.0],
                [24.0, 27.0],
            ),
            &config,
            &sweep,
        ),
    ];
    let refs: Vec<&RunResult> = runs.iter().collect();
    let per_image = PerImage::default();
    let table = |selection| {
        Table::build(
            "synth",
            "psnr",
            Better::Higher,
            true,
            selection,
            &picks(selection, &refs),
            &per_image,
        )
        .unwrap()
    };
    let val = table(Selection::TrainingDomainValidation);
    assert_eq!(val.columns, ["art_painting", "photo", "Avg"]);
    assert_eq!(
        val.rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["erm", "ours"]
    );
    // erm, art_painting: trial 0 -> draw 1 at step 10 (test 14); trial 1 -> step 10 (16).
    // Mean 15, population std 1, s.e. 1 / sqrt(2).
    let se = |pop_std: f64| Some(pop_std / 2f64.sqrt());
    assert_eq!(
        val.rows[0].1[0].unwrap(),
        Cell {
            mean: 15.0,
            se: se(1.0),
            n: 2
        }
    );
    // erm, photo at step 20: 26 and 28.
    assert_eq!(
        val.rows[0].1[1].unwrap(),
        Cell {
            mean: 27.0,
            se: se(1.0),
            n: 2
        }
    );
    // Avg per trial: (14 + 26) / 2 = 20, (16 + 28) / 2 = 22.
    assert_eq!(
        val.rows[0].1[2].unwrap(),
        Cell {
            mean: 21.0,
            se: se(1.0),
            n: 2
        }
    );
    // ours, art_painting at step 20: 19 and 21.
    assert_eq!(
        val.rows[1].1[0].unwrap(),
        Cell {
            mean: 20.0,
            se: se(1.0),
            n: 2
        }
    );

    // Oracle: erm art_painting trial 0 -> draw 0 at step 20 (17); trial 1 -> step 20 (18).
    let oracle = table(Selection::Oracle);
    assert_eq!(
        oracle.rows[0].1[0].unwrap(),
        Cell {
            mean: 17.5,
            se: se(0.5),
            n: 2
        }
    );
    // Last step: trial 0 -> draw 0 (validation 20 > 19 at step 20): 17; trial 1: 18.
    let last = table(Selection::LastStep);
    assert_eq!(
        last.rows[0].1[0].unwrap(),
        Cell {
            mean: 17.5,
            se: se(0.5),
            n: 2
        }
    );

    // Without per-image files there is nothing to test: no marks, no bold cell.
    assert!(val.comparisons.is_empty() && val.best.iter().all(Option::is_none));
    assert!(
        val.caption().contains("ddof 0") && val.caption().contains("training-domain validation")
    );
    assert_eq!(
        Cell::of(&[3.0]),
        Some(Cell {
            mean: 3.0,
            se: None,
            n: 1
        })
    );
    assert_eq!(Cell::of(&[]), None);
}

/// Writes per-image PSNR values for `files` at `step` of `run`.
fn write_images(run: &RunResult, step: u64, values: &[f64]) {
    let images: Vec<ImageResult> = values
        .iter()
        .enumerate()
        .map(|(i, v)| ImageResult {
            path: Path::new("/data")
                .join(&run.config.target)
                .join("c")
                .join(format!("{i:03}.png")),
            class: 0,
            values: BTreeMap::from([("psnr", *v)]),
        })
        .collect();
    let dir = RunDir::new(&run.job.dir);
    std::fs::create_dir_all(dir.path.join("per_image")).unwrap();
    write_per_image(
        &dir.per_image_file(step),
        Path::new("/data"),
        &run.config.target,
        &["c".into()],
        &images,
    )
    .unwrap();
}

#[test]
fn marks_and_bold_follow_paired_tests_on_the_per_image_files() {
    let tmp = tempfile::tempdir().unwrap();
    let config = smoke_config(tmp.path());
    let sweep = tmp.path().join("sweep");
    // 60 images per (target, trial). On art_painting ours is 1 dB above erm on every image;
    // on photo ours and erm differ by +-0.3 symmetrically. mixup is erm minus a little.
    let values = |label: &str, target: &str, trial: u64| -> Vec<f64> {
        let b: Vec<f64> = (0..60)
            .map(|i| {
                20.0 + ((i * 37 + trial as usize * 11) % 17) as f64 * 0.25
                    + if target == "photo" { 5.0 } else { 0.0 }
            })
            .collect();
        match (label, target) {
            ("erm", _) => b,
            ("ours", "art_painting") => b.iter().map(|x| x + 1.0).collect(),
            ("ours", _) => b
                .iter()
                .enumerate()
                .map(|(i, x)| x + if i % 2 == 0 { 0.3 } else { -0.3 })
                .collect(),
            _ => b
                .iter()
                .enumerate()
                .map(|(i, x)| x - 0.05 - (i % 3) as f64 * 0.01)
                .collect(),
        }
    };
    let mut runs = Vec::new();
    for (order, label) in ["erm", "ours", "mixup"].into_iter().enumerate() {
        for target in ["art_painting", "photo"] {
            for trial in [0, 1] {
                let v = values(label, target, trial);
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                let r = run(
                    Spec {
                        label,
                        order,
                        target,
                        trial,
                        draw: 0,
                        val: [1.0, 2.0],
                        oracle: [0.0, 0.0],
                        test: [mean, mean],
                    },
                    &config,
                    &sweep,
                );
                write_images(&r, 20, &v);
                runs.push(r);
            }
        }
    }
    let refs: Vec<&RunResult> = runs.iter().collect();
    let per_image = PerImage::default();
    let picked = picks(Selection::TrainingDomainValidation, &refs);
    let t = Table::build(
        "synth",
        "psnr",
        Better::Higher,
        true,
        Selection::TrainingDomainValidation,
        &picked,
        &per_image,
    )
    .unwrap();
    let row = |label: &str| t.rows.iter().position(|r| r.0 == label).unwrap();
    let (ours, mixup) = (row("ours"), row("mixup"));

    // Recompute every comparison from the files: pairs by (target, trial, file), trials pooled.
    for c in &t.comparisons {
        let targets: Vec<&str> = if t.columns[c.column] == "Avg" {
            vec!["art_painting", "photo"]
        } else {
            vec![t.columns[c.column].as_str()]
        };
        let mut d = Vec::new();
        for target in targets {
            for trial in [0, 1] {
                let file = |label: &str| {
                    let r = runs
                        .iter()
                        .find(|r| {
                            r.job.label == label
                                && r.config.target == target
                                && r.config.seed == trial
                        })
                        .unwrap();
                    dgcolor_runs::read_per_image(&RunDir::new(&r.job.dir).per_image_file(20))
                        .unwrap()
                };
                let (m, e) = (file(&t.rows[c.row].0), file("erm"));
                d.extend(m.iter().zip(&e).map(|(a, b)| {
                    assert_eq!(a.file, b.file);
                    a.values["psnr"] - b.values["psnr"]
                }));
            }
        }
        assert_eq!(c.n, d.len());
        assert!((c.diff - d.iter().sum::<f64>() / d.len() as f64).abs() < 1e-9);
        assert_eq!(c.p, wilcoxon(&d).pvalue);
        assert!(c.ci.0 <= c.diff && c.diff <= c.ci.1);
        let seed_free = bootstrap_mean_ci(&d, 0.95, 2000, 0);
        assert!((seed_free.1 - c.ci.0).abs() < 0.05 && (seed_free.2 - c.ci.1).abs() < 0.05);
        // Holm over two methods: the smaller p doubled, the larger kept (or the doubled one).
        let others: Vec<f64> = t
            .comparisons
            .iter()
            .filter(|x| x.column == c.column)
            .map(|x| x.p)
            .collect();
        let rank = others.iter().filter(|&&p| p < c.p).count();
        assert!(
            c.p_holm >= c.p
                && c.p_holm
                    <= (c.p * (others.len() - rank) as f64)
                        .max(others.iter().cloned().fold(0.0, f64::max))
                        .min(1.0)
                        + 1e-12
        );
    }
    let cmp = |r, col| t.comparison(r, col).unwrap();
    // ours wins on art_painting (+1 dB everywhere): a mark, and a bold best cell.
    assert_eq!(cmp(ours, 0).verdict(Better::Higher), 1);
    assert!((cmp(ours, 0).diff - 1.0).abs() < 1e-9);
    assert_eq!(t.best[0], Some(ours));
    // On photo the symmetric +-0.3 is no difference: no mark; the best (erm) is not
    // significantly ahead of ours, so nothing is bold.
    assert_eq!(cmp(ours, 1).verdict(Better::Higher), 0);
    assert_eq!(t.best[1], None);
    // mixup is a little below erm on every image: a significant loss.
    assert_eq!(cmp(mixup, 0).verdict(Better::Higher), -1);
    let md = t.markdown();
    assert!(md.contains("▲") && md.contains("▼"), "{md}");
    let csv = t.csv();
    assert!(
        csv.starts_with("method,column,mean,se,n,best,vs_erm_diff"),
        "{csv}"
    );
}
