//! 8-bit sRGB to CIE L*a*b* (D65, 2° observer) with scikit-image's `rgb2lab` constants, so
//! that ΔE00 agrees with `deltaE_ciede2000(rgb2lab(pred), rgb2lab(gt))`. Kept private and in
//! f64: the metric must not depend on the training crates' f32 conversion.

/// `skimage.color.colorconv.xyz_from_rgb` (sRGB primaries, D65).
const XYZ_FROM_RGB: [[f64; 3]; 3] = [
    [0.412453, 0.357580, 0.180423],
    [0.212671, 0.715160, 0.072169],
    [0.019334, 0.119193, 0.950227],
];
/// skimage's D65 2° white, kept at its historical `lab_ref_white` value.
const WHITE: [f64; 3] = [0.95047, 1.0, 1.08883];
/// CIE epsilon (216/24389 rounded); below it the cube root is replaced by the linear segment
/// `7.787 t + 16/116`, i.e. L = 903.3 Y (kappa).
const EPSILON: f64 = 0.008856;

pub(crate) fn srgb_to_lab(rgb: [u8; 3]) -> [f64; 3] {
    let linear = rgb.map(|v| {
        let c = f64::from(v) / 255.0;
        if c > 0.04045 {
            ((c + 0.055) / 1.055).powf(2.4)
        } else {
            c / 12.92
        }
    });
    let f = |i: usize| {
        let xyz: f64 = XYZ_FROM_RGB[i].iter().zip(linear).map(|(m, c)| m * c).sum();
        let t = xyz / WHITE[i];
        if t > EPSILON {
            t.cbrt()
        } else {
            7.787 * t + 16.0 / 116.0
        }
    };
    let (fx, fy, fz) = (f(0), f(1), f(2));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by `skimage.color.rgb2lab(np.uint8([[[255, 255, 255], [255, 0, 0],
    /// [0, 0, 0], [10, 20, 30]]]))` (scikit-image 0.26).
    #[test]
    fn matches_skimage_rgb2lab() {
        let cases: [([u8; 3], [f64; 3]); 4] = [
            (
                [255, 255, 255],
                [100.0, -0.0024549378620508655, 0.004653421154054982],
            ),
            (
                [255, 0, 0],
                [53.2405879437449, 80.0923082256922, 67.2027510444287],
            ),
            ([0, 0, 0], [0.0, 0.0, 0.0]),
            (
                [10, 20, 30],
                [5.94847037984805, -0.6693107906908108, -8.136411786792259],
            ),
        ];
        for (rgb, want) in cases {
            let got = srgb_to_lab(rgb);
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-10, "{rgb:?}: {got:?} vs {want:?}");
            }
        }
    }
}
