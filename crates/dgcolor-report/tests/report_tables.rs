//! Tables from hand-made records: selection rules, mean ± standard error, best marking.

use std::collections::BTreeMap;

use dgcolor_algorithms::PresetName;
use dgcolor_eval::DomainMetrics;
use dgcolor_metrics::{Better, MetricSummary};
use dgcolor_report::{Cell, RunResult, Selection, Table};
use dgcolor_runs::sweep::Job;
use dgcolor_runs::{EvalSplit, Evaluation, Record, RunSpec, TrainConfig};

/// Metrics whose means are the given values (the tables read only means).
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
            .collect::<BTreeMap<_, _>>(),
    }
}

fn evaluation(step: u64, domain: &str, split: EvalSplit, values: &[(&str, f64)]) -> Evaluation {
    Evaluation {
        step,
        domain: domain.into(),
        split,
        result: metrics(values),
    }
}

/// A run whose records say: PSNR on the target is `test[i]` at step 10*(i+1), with source
/// validation PSNR `val[i]`; the final record repeats the last test value.
fn run(
    label: &str,
    order: usize,
    target: &str,
    seed: u64,
    val: &[f64],
    test: &[f64],
    config: &TrainConfig,
) -> RunResult {
    let mut spec = RunSpec::new(label, &["photo", "cartoon"], target, PresetName::Smoke).unwrap();
    spec.seed = seed;
    let mut config = config.clone();
    config.target = target.into();
    config.seed = seed;
    let mut records = Vec::new();
    for (i, (v, t)) in val.iter().zip(test).enumerate() {
        let step = 10 * (i as u64 + 1);
        for domain in ["photo", "cartoon"] {
            records.push(Record::Eval(evaluation(
                step,
                domain,
                EvalSplit::Val,
                &[("psnr", *v)],
            )));
        }
        records.push(Record::Eval(evaluation(
            step,
            target,
            EvalSplit::Test,
            &[("psnr", *t), ("ssim", t / 100.0)],
        )));
    }
    let last = *test.last().unwrap();
    records.push(Record::Final(evaluation(
        10 * test.len() as u64,
        target,
        EvalSplit::Test,
        &[("psnr", last)],
    )));
    RunResult {
        job: Job::new(label, order, spec, std::path::Path::new("/tmp/unused")),
        config,
        records,
    }
}

#[test]
fn selection_aggregation_and_best_marking() {
    let tmp = tempfile::tempdir().unwrap();
    let config = RunSpec::new(
        "erm",
        &["photo", "cartoon"],
        "art_painting",
        PresetName::Smoke,
    )
    .unwrap()
    .prepare(tmp.path())
    .unwrap()
    .config;
    let runs = [
        // erm: validation peaks at step 10 in both seeds.
        run(
            "erm",
            0,
            "art_painting",
            0,
            &[20.0, 18.0],
            &[15.0, 17.0],
            &config,
        ),
        run(
            "erm",
            0,
            "art_painting",
            1,
            &[21.0, 19.0],
            &[16.0, 18.0],
            &config,
        ),
        run("erm", 0, "photo", 0, &[20.0, 22.0], &[25.0, 26.0], &config),
        run("erm", 0, "photo", 1, &[20.0, 22.0], &[27.0, 28.0], &config),
        // ours: validation peaks at step 20.
        run(
            "ours",
            1,
            "art_painting",
            0,
            &[18.0, 22.0],
            &[14.0, 19.0],
            &config,
        ),
        run(
            "ours",
            1,
            "art_painting",
            1,
            &[18.0, 22.0],
            &[14.0, 21.0],
            &config,
        ),
        run("ours", 1, "photo", 0, &[18.0, 22.0], &[24.0, 25.0], &config),
        run("ours", 1, "photo", 1, &[18.0, 22.0], &[24.0, 27.0], &config),
    ];
    let refs: Vec<&RunResult> = runs.iter().collect();
    let val = Table::build(
        "synth",
        "psnr",
        Better::Higher,
        Selection::TrainingDomainValidation,
        &refs,
    );
    assert_eq!(val.columns, ["art_painting", "photo", "Avg"]);
    assert_eq!(
        val.rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["erm", "ours"]
    );
    // erm, art_painting, selected at step 10: seeds 15 and 16 -> mean 15.5, sample std
    // sqrt(0.5), s.e. sqrt(0.5)/sqrt(2) = 0.5.
    let c = val.rows[0].1[0].unwrap();
    assert_eq!(
        c,
        Cell {
            mean: 15.5,
            se: Some(0.5),
            n: 2
        }
    );
    // erm, photo: validation prefers step 20 (22 > 20): 26 and 28 -> 27 ± 1.
    assert_eq!(
        val.rows[0].1[1].unwrap(),
        Cell {
            mean: 27.0,
            se: Some(1.0),
            n: 2
        }
    );
    // ours, art_painting at step 20: 19 and 21 -> 20 ± 1.
    assert_eq!(
        val.rows[1].1[0].unwrap(),
        Cell {
            mean: 20.0,
            se: Some(1.0),
            n: 2
        }
    );
    // Avg: per seed over targets: erm (15+26)/2 = 20.5, (16+28)/2 = 22 -> 21.25 ± 0.75.
    assert_eq!(
        val.rows[0].1[2].unwrap(),
        Cell {
            mean: 21.25,
            se: Some(0.75),
            n: 2
        }
    );
    // ours, photo at step 20: 25 and 27 -> 26 ± 1; its Avg: (19+25)/2 = 22, (21+27)/2 = 24
    // -> 23 ± 1, above erm's 21.25.
    assert_eq!(
        val.rows[1].1[2].unwrap(),
        Cell {
            mean: 23.0,
            se: Some(1.0),
            n: 2
        }
    );
    // Best per column: ours on art_painting, erm on photo, ours on average.
    assert_eq!(val.best, [Some(1), Some(0), Some(1)]);
    let md = val.markdown();
    assert!(
        md.contains("| ours | **20.000 ± 1.000** | 26.000 ± 1.000 | **23.000 ± 1.000** |"),
        "{md}"
    );
    let tex = val.latex();
    assert!(
        tex.contains("\\textbf{20.000 $\\pm$ 1.000}") && tex.contains("art\\_painting"),
        "{tex}"
    );
    let csv = val.csv();
    assert!(csv.starts_with("method,column,mean,se,n,best\n"));
    assert!(csv.contains("ours,art_painting,20,1,2,true"), "{csv}");

    // Last step: erm art_painting 17 and 18.
    let last = Table::build("synth", "psnr", Better::Higher, Selection::LastStep, &refs);
    assert_eq!(
        last.rows[0].1[0].unwrap(),
        Cell {
            mean: 17.5,
            se: Some(0.5),
            n: 2
        }
    );

    // Lower-is-better and closer-to-one directions pick the other extreme.
    let lower = Table::build("synth", "psnr", Better::Lower, Selection::LastStep, &refs);
    assert_eq!(lower.best[0], Some(0), "erm's 17.5 < ours' 20");
}

#[test]
fn single_seed_has_no_standard_error() {
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
