//! The `Metric` registry, `evaluate_pair`, the running summary, and the typed errors.

use std::collections::BTreeMap;

use dgcolor_metrics::{
    all_metrics, colourfulness, evaluate_pair, psnr, set_metrics, Better, MeanMetric, Metric,
    MetricError, MetricSummary, Psnr, RgbView, COLOURFULNESS_GT, PSNR_CAP_DB,
};

fn ramp(w: usize, h: usize) -> Vec<u8> {
    (0..w * h * 3).map(|i| (i * 37 % 256) as u8).collect()
}

#[test]
fn registry_order_names_units_and_directions() {
    let described: Vec<_> = all_metrics()
        .iter()
        .map(|m| (m.name(), m.unit(), m.better()))
        .collect();
    assert_eq!(
        described,
        [
            ("psnr", "dB", Better::Higher),
            ("ssim", "", Better::Higher),
            ("colourfulness", "", Better::Higher),
            ("ciede2000", "ΔE00", Better::Lower),
        ]
    );
    let set: Vec<_> = set_metrics()
        .iter()
        .map(|m| (m.name(), m.unit(), m.better()))
        .collect();
    assert_eq!(
        set,
        [
            ("colourfulness_ratio", "", Better::CloserToOne),
            ("delta_cf", "", Better::Lower),
        ]
    );
}

#[test]
fn psnr_metric_caps_identical_images_at_100_db() {
    let data = ramp(12, 12);
    let img = RgbView::new(&data, 12, 12).unwrap();
    assert_eq!(psnr(img, img).unwrap(), f64::INFINITY);
    assert_eq!(Psnr.compute(img, img).unwrap(), PSNR_CAP_DB);
}

#[test]
fn evaluate_pair_reports_every_metric() {
    let data = ramp(12, 12);
    let img = RgbView::new(&data, 12, 12).unwrap();
    let values = evaluate_pair(img, img).unwrap();
    let mut names: Vec<_> = all_metrics().iter().map(|m| m.name()).collect();
    names.push(COLOURFULNESS_GT);
    names.sort();
    assert_eq!(values.keys().copied().collect::<Vec<_>>(), names);
    assert_eq!(values["psnr"], 100.0);
    assert!((values["ssim"] - 1.0).abs() < 1e-12);
    assert_eq!(values["colourfulness"], values[COLOURFULNESS_GT]);
    assert_eq!(values["ciede2000"], 0.0);
}

fn view(d: &[u8]) -> RgbView<'_> {
    RgbView::new(d, 11, 11).unwrap()
}

/// The set metrics are ratios and differences of means, so a gray ground truth counts like
/// any other image: here two pairs, one with a gray truth (M = 0).
#[test]
fn set_metrics_use_means_over_every_image() {
    let (colour, gray) = (ramp(11, 11), vec![128; 11 * 11 * 3]);
    let pred = ramp(11, 11).iter().map(|v| v / 2).collect::<Vec<u8>>();
    let pairs = [(view(&pred), view(&colour)), (view(&pred), view(&gray))];
    let mut means: BTreeMap<String, f64> = BTreeMap::new();
    for (p, g) in pairs {
        for (k, v) in evaluate_pair(p, g).unwrap() {
            *means.entry(k.to_string()).or_default() += v / 2.0;
        }
    }
    let (m_pred, m_gt) = (
        colourfulness(view(&pred)),
        colourfulness(view(&colour)) / 2.0,
    );
    let set: BTreeMap<_, _> = set_metrics()
        .iter()
        .map(|m| (m.name(), m.compute(&means).unwrap()))
        .collect();
    assert!((set["colourfulness_ratio"] - m_pred / m_gt).abs() < 1e-12);
    assert!((set["delta_cf"] - (m_pred - m_gt).abs()).abs() < 1e-12);
    // An all-gray ground truth has no ratio, but a ΔCF.
    let all_gray = BTreeMap::from([
        ("colourfulness".to_string(), 3.0),
        (COLOURFULNESS_GT.to_string(), 0.0),
    ]);
    assert_eq!(set_metrics()[0].compute(&all_gray), None);
    assert_eq!(set_metrics()[1].compute(&all_gray), Some(3.0));
}

#[test]
fn mismatched_sizes_name_the_metric_and_both_sizes() {
    let (a, b) = (ramp(16, 12), ramp(12, 16));
    let pred = RgbView::new(&a, 16, 12).unwrap();
    let gt = RgbView::new(&b, 12, 16).unwrap();
    for metric in all_metrics() {
        let err = metric.compute(pred, gt).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: image sizes differ (pred 16x12 vs gt 12x16)",
                metric.name()
            )
        );
    }
    assert!(matches!(
        evaluate_pair(pred, gt),
        Err(MetricError::SizeMismatch { .. })
    ));
}

#[test]
fn views_are_checked_on_construction() {
    let data = [0u8; 11];
    assert_eq!(
        RgbView::new(&data, 2, 2).unwrap_err().to_string(),
        "rgb view: 2x2 RGB needs 12 bytes, got 11"
    );
    assert_eq!(
        RgbView::new(&[], 0, 5).unwrap_err(),
        MetricError::Empty {
            width: 0,
            height: 5
        }
    );
}

/// Values 1, 2, 3, 6: mean 3, sample variance (4 + 1 + 0 + 9) / 3 = 14/3,
/// standard error sqrt(14/3) / 2.
#[test]
fn mean_metric_summarises_a_stream() {
    let mut acc = MeanMetric::new();
    assert_eq!(acc.summary(), None);
    acc.update(2.0);
    assert_eq!(acc.summary().unwrap().std_err, None);
    for v in [1.0, 6.0, 3.0] {
        acc.update(v);
    }
    let s = acc.summary().unwrap();
    let want_err = (14.0f64 / 3.0).sqrt() / 2.0;
    assert_eq!((s.count, s.min, s.max), (4, 1.0, 6.0));
    assert!((s.mean - 3.0).abs() < 1e-15);
    assert!((s.std_err.unwrap() - want_err).abs() < 1e-15);
    acc.reset();
    assert_eq!(acc.summary(), None);
}

#[test]
#[should_panic(expected = "non-finite")]
fn mean_metric_refuses_infinity() {
    MeanMetric::new().update(f64::INFINITY);
}

#[test]
fn summary_serialises_with_named_fields() {
    let s = MetricSummary {
        count: 1,
        mean: 0.5,
        std_err: None,
        min: 0.5,
        max: 0.5,
    };
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(
        json,
        r#"{"count":1,"mean":0.5,"std_err":null,"min":0.5,"max":0.5}"#
    );
}
