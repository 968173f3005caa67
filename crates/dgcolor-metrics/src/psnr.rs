//! Peak signal-to-noise ratio on 8-bit sRGB, as `skimage.metrics.peak_signal_noise_ratio`
//! computes it with `data_range=255`: one MSE over all pixels and all three channels.

use crate::error::Result;
use crate::view::RgbView;

/// What [`crate::Psnr`] reports for identical images, so that a mean over a test set stays
/// finite; 100 dB is far above any real reconstruction (an MSE of 6.5e-6 on 0..255).
pub const PSNR_CAP_DB: f64 = 100.0;

/// PSNR in dB with MAX = 255.
///
/// Identical images give `f64::INFINITY`, the mathematically honest answer; aggregate through
/// [`crate::Psnr`], which clamps to [`PSNR_CAP_DB`].
pub fn psnr(pred: RgbView, gt: RgbView) -> Result<f64> {
    RgbView::check_same_size("psnr", &pred, &gt)?;
    // Integer squared errors sum exactly, so the only rounding is the final division.
    let sse: u64 = pred
        .data()
        .iter()
        .zip(gt.data())
        .map(|(&p, &g)| {
            let d = u64::from(p.abs_diff(g));
            d * d
        })
        .sum();
    let mse = sse as f64 / pred.data().len() as f64;
    Ok(10.0 * (255.0 * 255.0 / mse).log10())
}
