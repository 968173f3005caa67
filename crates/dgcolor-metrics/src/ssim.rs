//! Structural similarity (Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from
//! error visibility to structural similarity", IEEE TIP 13(4), 2004).
//!
//! Reproduces `skimage.metrics.structural_similarity(pred, gt, channel_axis=2, data_range=255,
//! gaussian_weights=True, sigma=1.5, use_sample_covariance=False)` to floating-point rounding,
//! because published colorization numbers are computed that way: local statistics come from
//! `scipy.ndimage.gaussian_filter(sigma=1.5, truncate=3.5)`, the SSIM map is averaged after
//! cropping the filter radius from every border, and channels are averaged last.
//!
//! skimage filters with `mode='reflect'`, but its crop discards exactly the pixels whose window
//! reaches past the border, so the padding never reaches the mean. We therefore filter only
//! the valid region and need no padding at all.

use crate::error::{MetricError, Result};
use crate::view::RgbView;

const SIGMA: f64 = 1.5;
/// skimage's choice: `int(3.5 * 1.5 + 0.5) = 5`, an 11-tap window as in Wang et al.
const RADIUS: usize = 5;
const WIN_SIZE: usize = 2 * RADIUS + 1;
const K1: f64 = 0.01;
const K2: f64 = 0.03;
const DATA_RANGE: f64 = 255.0;

/// Mean SSIM over the three RGB channels, in [-1, 1].
///
/// Images smaller than the 11x11 window are rejected, as skimage rejects them: nothing would
/// be left after the crop.
pub fn ssim(pred: RgbView, gt: RgbView) -> Result<f64> {
    RgbView::check_same_size("ssim", &pred, &gt)?;
    let (w, h) = (pred.width(), pred.height());
    if w < WIN_SIZE || h < WIN_SIZE {
        return Err(MetricError::TooSmall {
            metric: "ssim",
            width: w,
            height: h,
            min: WIN_SIZE,
        });
    }
    let kernel = gaussian_kernel();
    let total: f64 = (0..3)
        .map(|c| channel_ssim(&pred.plane(c), &gt.plane(c), w, h, &kernel))
        .sum();
    Ok(total / 3.0)
}

fn channel_ssim(x: &[f64], y: &[f64], w: usize, h: usize, kernel: &[f64]) -> f64 {
    let blur = |img: &[f64]| valid_gaussian(img, w, h, kernel);
    let product = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| a * b).collect::<Vec<_>>();
    let ux = blur(x);
    let uy = blur(y);
    let uxx = blur(&product(x, x));
    let uyy = blur(&product(y, y));
    let uxy = blur(&product(x, y));

    let c1 = (K1 * DATA_RANGE).powi(2);
    let c2 = (K2 * DATA_RANGE).powi(2);
    let sum: f64 = (0..ux.len())
        .map(|i| {
            // Population (co)variances: `use_sample_covariance=False` matches Wang et al.
            let vx = uxx[i] - ux[i] * ux[i];
            let vy = uyy[i] - uy[i] * uy[i];
            let vxy = uxy[i] - ux[i] * uy[i];
            let a1 = 2.0 * ux[i] * uy[i] + c1;
            let a2 = 2.0 * vxy + c2;
            let b1 = ux[i] * ux[i] + uy[i] * uy[i] + c1;
            let b2 = vx + vy + c2;
            (a1 * a2) / (b1 * b2)
        })
        .sum();
    sum / ux.len() as f64
}

/// `scipy.ndimage._gaussian_kernel1d`: sampled, then normalised to sum to one.
fn gaussian_kernel() -> Vec<f64> {
    let weights: Vec<f64> = (-(RADIUS as i32)..=RADIUS as i32)
        .map(|x| (-0.5 / (SIGMA * SIGMA) * f64::from(x * x)).exp())
        .collect();
    let sum: f64 = weights.iter().sum();
    weights.into_iter().map(|v| v / sum).collect()
}

/// Separable Gaussian over the pixels whose whole window lies inside the image, i.e. skimage's
/// filtered map already cropped by `RADIUS`: [h, w] -> [h - 2R, w - 2R], rows (scipy's axis 0)
/// first.
fn valid_gaussian(img: &[f64], w: usize, h: usize, kernel: &[f64]) -> Vec<f64> {
    let (out_w, out_h) = (w - 2 * RADIUS, h - 2 * RADIUS);
    // [out_h, w]
    let mut vertical = Vec::with_capacity(out_h * w);
    for row in 0..out_h {
        for col in 0..w {
            let taps = kernel.iter().enumerate();
            vertical.push(
                taps.map(|(k, wt)| wt * img[(row + k) * w + col])
                    .sum::<f64>(),
            );
        }
    }
    // [out_h, out_w]
    let mut out = Vec::with_capacity(out_h * out_w);
    for row in 0..out_h {
        for col in 0..out_w {
            let taps = kernel.iter().enumerate();
            out.push(
                taps.map(|(k, wt)| wt * vertical[row * w + col + k])
                    .sum::<f64>(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_normalised_and_symmetric() {
        let k = gaussian_kernel();
        assert_eq!(k.len(), WIN_SIZE);
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert_eq!(k[0], k[WIN_SIZE - 1]);
    }
}
