//! One interface over all metrics, in the spirit of burn's `Metric`: each knows its name, its
//! unit and which direction is better, so the evaluation and report crates can loop over
//! [`all_metrics`] and [`set_metrics`] without special cases.
//!
//! Two kinds: a [`Metric`] has a value per image pair (averaged over a set, compared image by
//! image between methods); a [`SetMetric`] is defined over a whole set from its per-image
//! means: the colourfulness ratio (a ratio of means, so near-gray ground truths cannot blow
//! it up) and DDColor's ΔCF. Every image counts in every metric, gray ground truths
//! included.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ciede2000::ciede2000_mean;
use crate::colourfulness::colourfulness;
use crate::error::Result;
use crate::psnr::{psnr, PSNR_CAP_DB};
use crate::ssim::ssim;
use crate::view::RgbView;

/// Which way a metric improves. A bool cannot say it for the colourfulness ratio, where both
/// desaturation (< 1) and over-saturation (> 1) are failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Higher,
    Lower,
    CloserToOne,
}

pub trait Metric {
    /// Stable key for records and table columns.
    fn name(&self) -> &'static str;
    /// Unit for table headers; empty when dimensionless.
    fn unit(&self) -> &'static str;
    fn better(&self) -> Better;
    /// One finite value per image pair, ready to be averaged.
    fn compute(&self, pred: RgbView, gt: RgbView) -> Result<f64>;
}

/// PSNR clamped to [`PSNR_CAP_DB`], so identical images cannot make a mean infinite.
#[derive(Debug, Clone, Copy, Default)]
pub struct Psnr;

impl Metric for Psnr {
    fn name(&self) -> &'static str {
        "psnr"
    }
    fn unit(&self) -> &'static str {
        "dB"
    }
    fn better(&self) -> Better {
        Better::Higher
    }
    fn compute(&self, pred: RgbView, gt: RgbView) -> Result<f64> {
        Ok(psnr(pred, gt)?.min(PSNR_CAP_DB))
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Ssim;

impl Metric for Ssim {
    fn name(&self) -> &'static str {
        "ssim"
    }
    fn unit(&self) -> &'static str {
        ""
    }
    fn better(&self) -> Better {
        Better::Higher
    }
    fn compute(&self, pred: RgbView, gt: RgbView) -> Result<f64> {
        ssim(pred, gt)
    }
}

/// Colourfulness of the prediction alone; `gt` only has to match its size. Higher is better
/// because the paper's complaint is desaturation; compare with the ratio for over-shoot.
#[derive(Debug, Clone, Copy, Default)]
pub struct Colourfulness;

impl Metric for Colourfulness {
    fn name(&self) -> &'static str {
        "colourfulness"
    }
    fn unit(&self) -> &'static str {
        ""
    }
    fn better(&self) -> Better {
        Better::Higher
    }
    fn compute(&self, pred: RgbView, gt: RgbView) -> Result<f64> {
        RgbView::check_same_size(self.name(), &pred, &gt)?;
        Ok(colourfulness(pred))
    }
}

/// Mean per-pixel ΔE00.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ciede2000;

impl Metric for Ciede2000 {
    fn name(&self) -> &'static str {
        "ciede2000"
    }
    fn unit(&self) -> &'static str {
        "ΔE00"
    }
    fn better(&self) -> Better {
        Better::Lower
    }
    fn compute(&self, pred: RgbView, gt: RgbView) -> Result<f64> {
        ciede2000_mean(pred, gt)
    }
}

/// Every per-image metric, in the column order of every results table.
pub fn all_metrics() -> Vec<Box<dyn Metric + Send + Sync>> {
    vec![
        Box::new(Psnr),
        Box::new(Ssim),
        Box::new(Colourfulness),
        Box::new(Ciede2000),
    ]
}

/// The ground truth's colourfulness, kept per image beside the metrics so that set metrics
/// can be computed from per-image values (it is not a quality metric and has no table).
pub const COLOURFULNESS_GT: &str = "colourfulness_gt";

/// Every metric of [`all_metrics`] for one image pair, keyed by [`Metric::name`], plus the
/// ground truth's colourfulness under [`COLOURFULNESS_GT`].
pub fn evaluate_pair(pred: RgbView, gt: RgbView) -> Result<BTreeMap<&'static str, f64>> {
    let mut values = BTreeMap::new();
    for metric in all_metrics() {
        values.insert(metric.name(), metric.compute(pred, gt)?);
    }
    values.insert(COLOURFULNESS_GT, colourfulness(gt));
    Ok(values)
}

/// A metric of a whole set, computed from the means of the per-image values of
/// [`evaluate_pair`] over the set.
pub trait SetMetric {
    fn name(&self) -> &'static str;
    fn unit(&self) -> &'static str;
    fn better(&self) -> Better;
    /// `None` when the set does not define it (a ratio over an all-gray ground truth).
    fn compute(&self, means: &BTreeMap<String, f64>) -> Option<f64>;
}

/// `mean M(pred) / mean M(gt)` over the set: below 1 the predictions are desaturated, the
/// failure mode the paper attributes to domain-generalization baselines. A ratio of means,
/// not a mean of per-image ratios, which near-gray ground truths make heavy-tailed.
#[derive(Debug, Clone, Copy, Default)]
pub struct ColourfulnessRatio;

impl SetMetric for ColourfulnessRatio {
    fn name(&self) -> &'static str {
        "colourfulness_ratio"
    }
    fn unit(&self) -> &'static str {
        ""
    }
    fn better(&self) -> Better {
        Better::CloserToOne
    }
    fn compute(&self, means: &BTreeMap<String, f64>) -> Option<f64> {
        let (pred, gt) = (means.get("colourfulness")?, means.get(COLOURFULNESS_GT)?);
        (*gt > 0.0).then(|| pred / gt)
    }
}

/// DDColor's ΔCF: `|mean M(pred) - mean M(gt)|` over the set (Kang et al., ICCV 2023).
#[derive(Debug, Clone, Copy, Default)]
pub struct DeltaColourfulness;

impl SetMetric for DeltaColourfulness {
    fn name(&self) -> &'static str {
        "delta_cf"
    }
    fn unit(&self) -> &'static str {
        ""
    }
    fn better(&self) -> Better {
        Better::Lower
    }
    fn compute(&self, means: &BTreeMap<String, f64>) -> Option<f64> {
        Some((means.get("colourfulness")? - means.get(COLOURFULNESS_GT)?).abs())
    }
}

/// Every set metric, in table order (after [`all_metrics`]).
pub fn set_metrics() -> Vec<Box<dyn SetMetric + Send + Sync>> {
    vec![Box::new(ColourfulnessRatio), Box::new(DeltaColourfulness)]
}
