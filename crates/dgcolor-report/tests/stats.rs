//! The comparison statistics against scipy / statsmodels (`tests/stats/make_reference.py`
//! wrote `tests/stats/reference.json`).

use dgcolor_report::stats::{bootstrap_mean_ci, holm, wilcoxon};
use serde_json::Value;

fn reference() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/stats/reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn wilcoxon_matches_scipy() {
    for (name, case) in reference()["wilcoxon"].as_object().unwrap() {
        let r = wilcoxon(&floats(&case["d"]));
        let (stat, p) = (
            case["statistic"].as_f64().unwrap(),
            case["pvalue"].as_f64().unwrap(),
        );
        assert_eq!(r.statistic, stat, "{name}: statistic");
        assert!(
            (r.pvalue - p).abs() <= 1e-12 + 1e-9 * p,
            "{name}: p {} vs scipy {p}",
            r.pvalue
        );
    }
}

#[test]
fn holm_matches_statsmodels() {
    for (name, case) in reference()["holm"].as_object().unwrap() {
        let got = holm(&floats(&case["p"]));
        let want = floats(&case["adjusted"]);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-12, "{name}: {got:?} vs {want:?}");
        }
    }
}

#[test]
fn bootstrap_ci_is_seeded_and_agrees_with_the_normal_interval() {
    // A constant difference has a degenerate interval.
    let (mean, lo, hi) = bootstrap_mean_ci(&[0.3; 50], 0.95, 500, 1);
    assert!((mean - 0.3).abs() < 1e-12 && lo == mean && hi == mean);
    // Same seed, same interval; another seed moves it only a little.
    let d: Vec<f64> = (0..2000)
        .map(|i| ((i * 7919 % 1000) as f64 / 1000.0 - 0.4) * 2.0)
        .collect();
    let a = bootstrap_mean_ci(&d, 0.95, 2000, 7);
    assert_eq!(a, bootstrap_mean_ci(&d, 0.95, 2000, 7));
    let b = bootstrap_mean_ci(&d, 0.95, 2000, 8);
    assert!(
        (a.1 - b.1).abs() < 0.01 && (a.2 - b.2).abs() < 0.01,
        "{a:?} {b:?}"
    );
    // For a large sample the percentile interval is close to mean +- 1.96 s / sqrt(n).
    let n = d.len() as f64;
    let mean = d.iter().sum::<f64>() / n;
    let sd = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let half = 1.959964 * sd / n.sqrt();
    assert!((a.0 - mean).abs() < 1e-12);
    assert!(
        (a.1 - (mean - half)).abs() < 0.1 * half,
        "{a:?} vs {mean} +- {half}"
    );
    assert!(
        (a.2 - (mean + half)).abs() < 0.1 * half,
        "{a:?} vs {mean} +- {half}"
    );
}
