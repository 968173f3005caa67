//! PSNR, SSIM and mean CIEDE2000 against scikit-image 0.26 (numpy 2.4, scipy 1.17).
//!
//! The test images are defined by integer formulas written identically here and in the
//! generating script, pasted verbatim:
//!
//! ```python
//! import numpy as np
//! from skimage.color import deltaE_ciede2000, rgb2lab
//! from skimage.metrics import peak_signal_noise_ratio, structural_similarity
//!
//!
//! def grid(h, w):
//!     return np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing="ij")
//!
//!
//! def hashed(h, w, k):
//!     y, x, c = grid(h, w)
//!     i = (y * w + x) * 3 + c
//!     return ((i * k) % 2**32 >> 24).astype(np.uint8)
//!
//!
//! def gradient(h, w):
//!     y, x, c = grid(h, w)
//!     return ((8 * x + 4 * y + 30 * c) % 256).astype(np.uint8)
//!
//!
//! def noisy(img):
//!     h, w, _ = img.shape
//!     y, x, c = grid(h, w)
//!     return np.clip(img + (7 * x + 13 * y + 5 * c) % 17 - 8, 0, 255).astype(np.uint8)
//!
//!
//! cases = {
//!     "hash_16x16": (hashed(16, 16, 2654435761), hashed(16, 16, 2246822519)),
//!     "hash_23x17": (hashed(23, 17, 2654435761), hashed(23, 17, 2246822519)),
//!     "gradient_noisy_16x16": (gradient(16, 16), noisy(gradient(16, 16))),
//!     "gradient_noisy_11x13": (gradient(11, 13), noisy(gradient(11, 13))),
//!     "identical_16x16": (hashed(16, 16, 2654435761), hashed(16, 16, 2654435761)),
//! }
//! for name, (pred, gt) in cases.items():
//!     psnr = peak_signal_noise_ratio(gt, pred, data_range=255)
//!     ssim = structural_similarity(
//!         pred, gt, channel_axis=2, data_range=255,
//!         gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
//!     )
//!     de = deltaE_ciede2000(rgb2lab(pred), rgb2lab(gt)).mean()
//!     print(f"{name}: psnr {float(psnr)!r} ssim {float(ssim)!r} ciede2000 {float(de)!r}")
//! ```
//!
//! which printed:
//!
//! ```text
//! hash_16x16: psnr 7.760807823782071 ssim 0.05130813346097433 ciede2000 41.777365682042934
//! hash_23x17: psnr 7.766618536860226 ssim 0.021519168478708033 ciede2000 41.617274703195015
//! gradient_noisy_16x16: psnr 34.34356066744027 ssim 0.9457165374124236 ciede2000 4.013688934625548
//! gradient_noisy_11x13: psnr 34.356195683867334 ssim 0.9457389075401971 ciede2000 4.053375286091716
//! identical_16x16: psnr inf ssim 1.0 ciede2000 0.0
//! ```

use dgcolor_metrics::{ciede2000_mean, psnr, ssim, MetricError, RgbView};

/// An interleaved RGB image from `f(y, x, c)`, in the script's (row, column, channel) order.
fn image(h: usize, w: usize, f: impl Fn(u64, u64, u64) -> u8) -> (Vec<u8>, usize, usize) {
    let mut data = Vec::with_capacity(h * w * 3);
    for y in 0..h as u64 {
        for x in 0..w as u64 {
            for c in 0..3 {
                data.push(f(y, x, c));
            }
        }
    }
    (data, w, h)
}

fn hashed(h: usize, w: usize, k: u64) -> (Vec<u8>, usize, usize) {
    image(h, w, |y, x, c| {
        let i = (y * w as u64 + x) * 3 + c;
        (((i * k) % (1 << 32)) >> 24) as u8
    })
}

fn gradient(h: usize, w: usize) -> (Vec<u8>, usize, usize) {
    image(h, w, |y, x, c| ((8 * x + 4 * y + 30 * c) % 256) as u8)
}

fn noisy(h: usize, w: usize) -> (Vec<u8>, usize, usize) {
    let (clean, ..) = gradient(h, w);
    image(h, w, |y, x, c| {
        let v = clean[((y * w as u64 + x) * 3 + c) as usize] as i64;
        let noise = ((7 * x + 13 * y + 5 * c) % 17) as i64 - 8;
        (v + noise).clamp(0, 255) as u8
    })
}

struct Case {
    name: &'static str,
    pred: (Vec<u8>, usize, usize),
    gt: (Vec<u8>, usize, usize),
    psnr: f64,
    ssim: f64,
    ciede2000: f64,
}

const K_A: u64 = 2654435761;
const K_B: u64 = 2246822519;

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "hash_16x16",
            pred: hashed(16, 16, K_A),
            gt: hashed(16, 16, K_B),
            psnr: 7.760807823782071,
            ssim: 0.05130813346097433,
            ciede2000: 41.777365682042934,
        },
        Case {
            name: "hash_23x17",
            pred: hashed(23, 17, K_A),
            gt: hashed(23, 17, K_B),
            psnr: 7.766618536860226,
            ssim: 0.021519168478708033,
            ciede2000: 41.617274703195015,
        },
        Case {
            name: "gradient_noisy_16x16",
            pred: gradient(16, 16),
            gt: noisy(16, 16),
            psnr: 34.34356066744027,
            ssim: 0.9457165374124236,
            ciede2000: 4.013688934625548,
        },
        Case {
            name: "gradient_noisy_11x13",
            pred: gradient(11, 13),
            gt: noisy(11, 13),
            psnr: 34.356195683867334,
            ssim: 0.9457389075401971,
            ciede2000: 4.053375286091716,
        },
        Case {
            name: "identical_16x16",
            pred: hashed(16, 16, K_A),
            gt: hashed(16, 16, K_A),
            psnr: f64::INFINITY,
            ssim: 1.0,
            ciede2000: 0.0,
        },
    ]
}

fn view((data, w, h): &(Vec<u8>, usize, usize)) -> RgbView<'_> {
    RgbView::new(data, *w, *h).unwrap()
}

fn assert_close(name: &str, metric: &str, got: f64, want: f64, tol: f64) {
    let ok = if want.is_infinite() {
        got == want
    } else {
        (got - want).abs() <= tol
    };
    assert!(ok, "{name}: {metric} = {got}, scikit-image gives {want}");
}

#[test]
fn psnr_matches_skimage() {
    for case in cases() {
        let got = psnr(view(&case.pred), view(&case.gt)).unwrap();
        assert_close(case.name, "psnr", got, case.psnr, 1e-9);
    }
}

#[test]
fn ssim_matches_skimage() {
    for case in cases() {
        let got = ssim(view(&case.pred), view(&case.gt)).unwrap();
        assert_close(case.name, "ssim", got, case.ssim, 1e-6);
    }
}

#[test]
fn ciede2000_mean_matches_skimage() {
    for case in cases() {
        let got = ciede2000_mean(view(&case.pred), view(&case.gt)).unwrap();
        assert_close(case.name, "ciede2000", got, case.ciede2000, 1e-9);
    }
}

#[test]
fn ssim_rejects_images_smaller_than_the_window() {
    let img = gradient(10, 16);
    let err = ssim(view(&img), view(&img)).unwrap_err();
    assert_eq!(
        err,
        MetricError::TooSmall {
            metric: "ssim",
            width: 16,
            height: 10,
            min: 11
        }
    );
    assert_eq!(
        err.to_string(),
        "ssim: 16x10 is smaller than the 11x11 window"
    );
}
