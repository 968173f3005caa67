//! CIEDE2000 colour difference (Sharma, Wu & Dalal, "The CIEDE2000 color-difference formula:
//! implementation notes, supplementary test data, and mathematical observations", Color
//! Research & Application 30(1), 2005), with kL = kC = kH = 1.
//!
//! Follows the paper's equations (1)-(22) step by step, in degrees, including its conventions
//! for achromatic colours (h' = 0 when a' = b = 0; mean hue h1' + h2' when a chroma is zero),
//! which its 34 test pairs exercise.

use crate::error::Result;
use crate::lab::srgb_to_lab;
use crate::view::RgbView;

/// ΔE00 between two CIE L*a*b* colours.
pub fn ciede2000(lab1: [f64; 3], lab2: [f64; 3]) -> f64 {
    let [l1, a1, b1] = lab1;
    let [l2, a2, b2] = lab2;

    // (2)-(7): stretch a* so that near-neutral colours get their hue difference right.
    let c_bar = (a1.hypot(b1) + a2.hypot(b2)) / 2.0;
    let g = 0.5 * (1.0 - seventh_power_ratio(c_bar));
    let (a1p, a2p) = ((1.0 + g) * a1, (1.0 + g) * a2);
    let (c1p, c2p) = (a1p.hypot(b1), a2p.hypot(b2));
    let (h1p, h2p) = (hue_degrees(b1, a1p), hue_degrees(b2, a2p));

    // (8)-(10): differences.
    let dlp = l2 - l1;
    let dcp = c2p - c1p;
    let chroma_product = c1p * c2p;
    let dhp = if chroma_product == 0.0 {
        0.0
    } else {
        let d = h2p - h1p;
        if d > 180.0 {
            d - 360.0
        } else if d < -180.0 {
            d + 360.0
        } else {
            d
        }
    };
    let d_big_hp = 2.0 * chroma_product.sqrt() * (dhp.to_radians() / 2.0).sin();

    // (12)-(14): means, with the hue mean taken the short way round the circle.
    let lp_bar = (l1 + l2) / 2.0;
    let cp_bar = (c1p + c2p) / 2.0;
    let hp_bar = if chroma_product == 0.0 {
        h1p + h2p
    } else if (h1p - h2p).abs() <= 180.0 {
        (h1p + h2p) / 2.0
    } else if h1p + h2p < 360.0 {
        (h1p + h2p + 360.0) / 2.0
    } else {
        (h1p + h2p - 360.0) / 2.0
    };

    // (15)-(21): weighting functions and the blue-region rotation term.
    let t = 1.0 - 0.17 * (hp_bar - 30.0).to_radians().cos()
        + 0.24 * (2.0 * hp_bar).to_radians().cos()
        + 0.32 * (3.0 * hp_bar + 6.0).to_radians().cos()
        - 0.20 * (4.0 * hp_bar - 63.0).to_radians().cos();
    let d_theta = 30.0 * (-((hp_bar - 275.0) / 25.0).powi(2)).exp();
    let r_c = 2.0 * seventh_power_ratio(cp_bar);
    let lp_offset = (lp_bar - 50.0).powi(2);
    let s_l = 1.0 + 0.015 * lp_offset / (20.0 + lp_offset).sqrt();
    let s_c = 1.0 + 0.045 * cp_bar;
    let s_h = 1.0 + 0.015 * cp_bar * t;
    let r_t = -(2.0 * d_theta).to_radians().sin() * r_c;

    // (22)
    let (l_term, c_term, h_term) = (dlp / s_l, dcp / s_c, d_big_hp / s_h);
    (l_term.powi(2) + c_term.powi(2) + h_term.powi(2) + r_t * c_term * h_term).sqrt()
}

/// Mean per-pixel ΔE00 after converting both images from sRGB to L*a*b* (D65).
pub fn ciede2000_mean(pred: RgbView, gt: RgbView) -> Result<f64> {
    RgbView::check_same_size("ciede2000", &pred, &gt)?;
    let total: f64 = pred
        .pixels()
        .zip(gt.pixels())
        .map(|(p, g)| ciede2000(srgb_to_lab(p), srgb_to_lab(g)))
        .sum();
    Ok(total / pred.pixel_count() as f64)
}

/// `sqrt(C^7 / (C^7 + 25^7))`, shared by G (eq. 4) and R_C (eq. 19).
fn seventh_power_ratio(c: f64) -> f64 {
    let c7 = c.powi(7);
    (c7 / (c7 + 25f64.powi(7))).sqrt()
}

/// Hue angle in [0, 360), with the paper's h' = 0 for a' = b = 0 (eq. 7).
fn hue_degrees(b: f64, a_prime: f64) -> f64 {
    if a_prime == 0.0 && b == 0.0 {
        0.0
    } else {
        b.atan2(a_prime).to_degrees().rem_euclid(360.0)
    }
}
