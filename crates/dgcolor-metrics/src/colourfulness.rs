//! Colourfulness (Hasler & Süsstrunk, "Measuring colourfulness in natural images", SPIE Human
//! Vision and Electronic Imaging VIII, 2003), in the opponent space of their eq. (1)-(3).
//!
//! Computed exactly as docs/METHOD.md §6 states it, on raw 0..255 values with population
//! statistics and signed opponents (no absolute values), so that numbers are comparable with
//! the paper we reproduce: `rg = R - G`, `yb = (R + G) / 2 - B`,
//! `M = sqrt(std_rg² + std_yb²) + 0.3 * sqrt(mean_rg² + mean_yb²)`.

use crate::error::{MetricError, Result};
use crate::view::RgbView;

/// M of one image; never negative, 0 exactly when every pixel is gray (R = G = B).
pub fn colourfulness(img: RgbView) -> f64 {
    let opponents = || {
        img.pixels().map(|[r, g, b]| {
            let (r, g, b) = (f64::from(r), f64::from(g), f64::from(b));
            (r - g, (r + g) / 2.0 - b)
        })
    };
    let n = img.pixel_count() as f64;
    let (sum_rg, sum_yb) = opponents().fold((0.0, 0.0), |(a, b), (rg, yb)| (a + rg, b + yb));
    let (mean_rg, mean_yb) = (sum_rg / n, sum_yb / n);
    // Two passes: the textbook E[x²] - E[x]² loses digits on near-uniform images.
    let (ss_rg, ss_yb) = opponents().fold((0.0, 0.0), |(a, b), (rg, yb)| {
        (a + (rg - mean_rg).powi(2), b + (yb - mean_yb).powi(2))
    });
    let (var_rg, var_yb) = (ss_rg / n, ss_yb / n);
    (var_rg + var_yb).sqrt() + 0.3 * mean_rg.hypot(mean_yb)
}

/// `M(pred) / M(gt)`: below 1 the prediction is desaturated, the failure mode the paper
/// attributes to domain-generalization baselines.
///
/// A grayscale ground truth (M = 0) is an error, [`MetricError::ZeroReference`], rather than
/// an infinity or NaN that would silently poison a mean over a test set.
pub fn colourfulness_ratio(pred: RgbView, gt: RgbView) -> Result<f64> {
    const METRIC: &str = "colourfulness_ratio";
    RgbView::check_same_size(METRIC, &pred, &gt)?;
    let reference = colourfulness(gt);
    if reference == 0.0 {
        return Err(MetricError::ZeroReference { metric: METRIC });
    }
    Ok(colourfulness(pred) / reference)
}
