//! The `Metric` registry, `evaluate_pair`, the running summary, and the typed errors.

use dgcolor_metrics::{
    all_metrics, evaluate_pair, psnr, Better, MeanMetric, Metric, MetricError, MetricSummary, Psnr,
    RgbView, PSNR_CAP_DB,
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
            ("colourfulness_ratio", "", Better::CloserToOne),
            ("ciede2000", "ΔE00", Better::Lower),
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
    let names: Vec<_> = all_metrics().iter().map(|m| m.name()).collect();
    assert_eq!(values.keys().copied().collect::<Vec<_>>(), {
        let mut sorted = names.clone();
        sorted.sort();
        sorted
    });
    assert_eq!(values["psnr"], 100.0);
    assert!((values["ssim"] - 1.0).abs() < 1e-12);
    assert_eq!(values["colourfulness_ratio"], 1.0);
    assert_eq!(values["ciede2000"], 0.0);
}

#[test]
fn evaluate_pair_leaves_out_the_ratio_for_a_grayscale_reference() {
    let pred = ramp(11, 11);
    let gt = vec![128; 11 * 11 * 3];
    let values = evaluate_pair(
        RgbView::new(&pred, 11, 11).unwrap(),
        RgbView::new(&gt, 11, 11).unwrap(),
    )
    .unwrap();
    assert!(!values.contains_key("colourfulness_ratio"));
    assert_eq!(values.len(), 4);
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
