//! One interface over all metrics, in the spirit of burn's `Metric`: each knows its name, its
//! unit and which direction is better, so the evaluation and report crates can loop over
//! [`all_metrics`] without special cases.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ciede2000::ciede2000_mean;
use crate::colourfulness::{colourfulness, colourfulness_ratio};
use crate::error::{MetricError, Result};
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

/// Fails with [`MetricError::ZeroReference`] on a grayscale ground truth.
#[derive(Debug, Clone, Copy, Default)]
pub struct ColourfulnessRatio;

impl Metric for ColourfulnessRatio {
    fn name(&self) -> &'static str {
        "colourfulness_ratio"
    }
    fn unit(&self) -> &'static str {
        ""
    }
    fn better(&self) -> Better {
        Better::CloserToOne
    }
    fn compute(&self, pred: RgbView, gt: RgbView) -> Result<f64> {
        colourfulness_ratio(pred, gt)
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

/// Every metric, in the column order of every results table.
pub fn all_metrics() -> Vec<Box<dyn Metric + Send + Sync>> {
    vec![
        Box::new(Psnr),
        Box::new(Ssim),
        Box::new(Colourfulness),
        Box::new(ColourfulnessRatio),
        Box::new(Ciede2000),
    ]
}

/// Every metric of [`all_metrics`] for one image pair, keyed by [`Metric::name`].
///
/// A metric that is undefined for this pair ([`MetricError::ZeroReference`]: the colourfulness
/// ratio against a grayscale ground truth) is left out of the map, so per-metric counts in a
/// summary say how many images it covers; any other error (sizes) fails the whole pair.
pub fn evaluate_pair(pred: RgbView, gt: RgbView) -> Result<BTreeMap<&'static str, f64>> {
    let mut values = BTreeMap::new();
    for metric in all_metrics() {
        match metric.compute(pred, gt) {
            Ok(value) => {
                values.insert(metric.name(), value);
            }
            Err(MetricError::ZeroReference { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(values)
}
