//! sRGB <-> CIE Lab exactly as scikit-image's `rgb2lab` / `lab2rgb` compute them (D65,
//! 2 degree observer, sRGB companding, the CIE epsilon/kappa branch with skimage's
//! rounded constants 0.008856 / 7.787), because the reference code trains and reports
//! through those functions: a different white point or companding would shift every
//! target and every metric.
//!
//! Values are stored as f32 (what the networks consume) but the nonlinear maths runs in
//! f64, so that a round trip RGB8 -> Lab -> RGB8 is exact. Planes are laid out as the
//! tensors want them (`[n]` for L, `[2n]` a-plane then b-plane for ab).

use rayon::prelude::*;

/// skimage's `xyz_from_rgb` (sRGB primaries, D65).
const XYZ_FROM_RGB: [[f64; 3]; 3] = [
    [0.412453, 0.357580, 0.180423],
    [0.212671, 0.715160, 0.072169],
    [0.019334, 0.119193, 0.950227],
];
/// skimage computes `rgb_from_xyz = linalg.inv(xyz_from_rgb)`; so do we.
const RGB_FROM_XYZ: [[f64; 3]; 3] = invert3(XYZ_FROM_RGB);
/// D65 white, 2 degree observer.
const WHITE: [f64; 3] = [0.95047, 1.0, 1.08883];
/// Its reciprocals: the forward conversion multiplies (a division per channel and pixel
/// would be a third of its divisions; the results differ from dividing by at most an f64
/// ulp).
const INV_WHITE: [f64; 3] = [1.0 / WHITE[0], 1.0 / WHITE[1], 1.0 / WHITE[2]];

/// Pixel counts above which the plane conversions fan out over rayon.
const PAR_THRESHOLD: usize = 1 << 14;

const fn invert3(m: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let c00 = m[1][1] * m[2][2] - m[1][2] * m[2][1];
    let c01 = m[1][2] * m[2][0] - m[1][0] * m[2][2];
    let c02 = m[1][0] * m[2][1] - m[1][1] * m[2][0];
    let det = m[0][0] * c00 + m[0][1] * c01 + m[0][2] * c02;
    [
        [
            c00 / det,
            (m[0][2] * m[2][1] - m[0][1] * m[2][2]) / det,
            (m[0][1] * m[1][2] - m[0][2] * m[1][1]) / det,
        ],
        [
            c01 / det,
            (m[0][0] * m[2][2] - m[0][2] * m[2][0]) / det,
            (m[0][2] * m[1][0] - m[0][0] * m[1][2]) / det,
        ],
        [
            c02 / det,
            (m[0][1] * m[2][0] - m[0][0] * m[2][1]) / det,
            (m[0][0] * m[1][1] - m[0][1] * m[1][0]) / det,
        ],
    ]
}

fn mat_vec(m: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    std::array::from_fn(|i| m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2])
}

fn srgb_to_linear(c: f64) -> f64 {
    if c > 0.04045 {
        ((c + 0.055) / 1.055).powf(2.4)
    } else {
        c / 12.92
    }
}

fn linear_to_srgb(c: f64) -> f64 {
    if c > 0.0031308 {
        1.055 * c.powf(1.0 / 2.4) - 0.055
    } else {
        c * 12.92
    }
}

/// Pixels converted together: the per-pixel maths below is written over arrays of this many
/// lanes so that the compiler turns it into vector instructions (8 f64 = one AVX-512
/// register).
const LANES: usize = 8;

/// Linear RGB of `LANES` pixels (one array per channel) -> unscaled Lab.
#[inline(always)]
fn linear_rgb_to_lab(lin: [[f64; LANES]; 3]) -> [[f32; LANES]; 3] {
    let mut f = [[0.0f64; LANES]; 3];
    for (i, (row, inv_white)) in XYZ_FROM_RGB.iter().zip(INV_WHITE).enumerate() {
        for k in 0..LANES {
            let t = (row[0] * lin[0][k] + row[1] * lin[1][k] + row[2] * lin[2][k]) * inv_white;
            let root = cbrt(t);
            f[i][k] = if t > 0.008856 {
                root
            } else {
                7.787 * t + 16.0 / 116.0
            };
        }
    }
    let mut lab = [[0.0f32; LANES]; 3];
    for k in 0..LANES {
        let [fx, fy, fz] = [f[0][k], f[1][k], f[2][k]];
        lab[0][k] = (116.0 * fy - 16.0) as f32;
        lab[1][k] = (500.0 * (fx - fy)) as f32;
        lab[2][k] = (200.0 * (fy - fz)) as f32;
    }
    lab
}

/// The cube root of `t > 0` without a division (divisions would bound the vectorised
/// conversion): `r = t^(-1/3)` from a bit-level first guess (dividing the bit pattern by 3
/// divides the exponent by 3; taken through f32, whose 32-bit division by 3 vectorises where
/// a 64-bit one does not), four Newton steps `r <- r (4 - t r^3) / 3` (quadratic: 4 % error
/// -> 6e-3 -> 4e-5 -> 1e-9 -> rounding; the first two in f32), then `t r^2`. Within 1e-15
/// relative of libm's `cbrt` over the Lab range. For `t <= 0` it returns a finite value that
/// callers discard.
#[inline(always)]
fn cbrt(t: f64) -> f64 {
    // The first two steps need only f32's precision, and an f32 vector holds twice the
    // lanes; the last two run in f64.
    let tf = t as f32;
    let mut r = f32::from_bits(0x54A2_FA8C - tf.to_bits() / 3);
    for _ in 0..2 {
        r *= (4.0 - tf * r * r * r) * (1.0 / 3.0);
    }
    let mut r = r as f64;
    for _ in 0..2 {
        r *= (4.0 - t * r * r * r) * (1.0 / 3.0);
    }
    t * r * r
}

/// `rgb` in [0, 1] -> unscaled Lab (L in [0, 100]).
pub fn srgb_to_lab(rgb: [f32; 3]) -> [f32; 3] {
    let lab = linear_rgb_to_lab(rgb.map(|c| [srgb_to_linear(c as f64); LANES]));
    lab.map(|ch| ch[0])
}

/// Unscaled Lab -> sRGB in [0, 1]. Like skimage, a negative Z is clipped to 0 and the
/// result is clipped to the unit cube, so out-of-gamut colours land on its surface.
pub fn lab_to_srgb(lab: [f32; 3]) -> [f32; 3] {
    lab_to_srgb_f64(lab).map(|c| c as f32)
}

fn lab_to_srgb_f64([l, a, b]: [f32; 3]) -> [f64; 3] {
    let fy = (l as f64 + 16.0) / 116.0;
    let fx = a as f64 / 500.0 + fy;
    let fz = (fy - b as f64 / 200.0).max(0.0);
    let xyz: [f64; 3] = std::array::from_fn(|i| {
        let f = [fx, fy, fz][i];
        let t = if f > 0.2068966 {
            f * f * f
        } else {
            (f - 16.0 / 116.0) / 7.787
        };
        t * WHITE[i]
    });
    mat_vec(&RGB_FROM_XYZ, xyz).map(|c| linear_to_srgb(c).clamp(0.0, 1.0))
}

/// The 256 possible linearised channel values of an RGB8 image.
fn linear_lut() -> &'static [f64; 256] {
    static LUT: std::sync::OnceLock<[f64; 256]> = std::sync::OnceLock::new();
    LUT.get_or_init(|| std::array::from_fn(|i| srgb_to_linear(i as f64 / 255.0)))
}

/// Interleaved RGB8 (`3n` bytes) -> (L plane `[n]`, ab planes `[2n]`), unscaled Lab.
pub fn rgb8_to_lab_planes(rgb: &[u8]) -> (Vec<f32>, Vec<f32>) {
    lab_planes(rgb, false)
}

/// The same planes scaled for the networks ([`scale_l`], [`scale_ab`]), in the same pass.
pub(crate) fn rgb8_to_scaled_lab_planes(rgb: &[u8]) -> (Vec<f32>, Vec<f32>) {
    lab_planes(rgb, true)
}

fn lab_planes(rgb: &[u8], scaled: bool) -> (Vec<f32>, Vec<f32>) {
    assert!(
        rgb.len().is_multiple_of(3),
        "rgb8_to_lab_planes: {} bytes is not a multiple of 3",
        rgb.len()
    );
    let n = rgb.len() / 3;
    let (mut l, mut ab) = (vec![0.0; n], vec![0.0; 2 * n]);
    let (a, b) = ab.split_at_mut(n);
    let convert = |rgb: &[u8], l: &mut [f32], a: &mut [f32], b: &mut [f32]| {
        dgcolor_kernels::simd(
            #[inline(always)]
            || rgb8_to_lab_block(rgb, [l, a, b], scaled),
        )
    };
    if n >= PAR_THRESHOLD {
        const BLOCK: usize = 4096;
        rgb.par_chunks(3 * BLOCK)
            .zip(l.par_chunks_mut(BLOCK))
            .zip(a.par_chunks_mut(BLOCK).zip(b.par_chunks_mut(BLOCK)))
            .for_each(|((rgb, l), (a, b))| convert(rgb, l, a, b));
    } else {
        convert(rgb, &mut l, a, b);
    }
    (l, ab)
}

/// Pixels staged at a time by [`rgb8_to_lab_block`] (a multiple of `LANES`): their
/// linearised channels (3 x 2 KiB) stay in L1 between the table look-ups and the maths.
const STAGE: usize = 256;

/// The body of [`lab_planes`] for one run of pixels. The table look-ups run first, as a
/// plain loop over a stage of pixels into three channel arrays, and the maths then reads
/// `LANES` contiguous values per channel. Built in place from its look-ups, each vector
/// compiles to one masked broadcast per value (24 per 8 pixels), which costs about as much
/// as the maths (measurements in bench/README.md, 'What moved it', Lab planes).
#[inline(always)]
fn rgb8_to_lab_block(rgb: &[u8], mut out: [&mut [f32]; 3], scaled: bool) {
    let lut = linear_lut();
    let mut lin = [[0.0f64; STAGE]; 3];
    for (s, px) in rgb.chunks(3 * STAGE).enumerate() {
        let len = px.len() / 3;
        for (i, c) in px.chunks_exact(3).enumerate() {
            for ch in 0..3 {
                lin[ch][i] = lut[c[ch] as usize];
            }
        }
        // A short last stage is padded with black and only its real lanes are written.
        for ch in &mut lin {
            ch[len..].fill(0.0);
        }
        for p in 0..len.div_ceil(LANES) {
            let lanes =
                |ch: &[f64; STAGE]| -> [f64; LANES] { std::array::from_fn(|k| ch[p * LANES + k]) };
            let mut lab = linear_rgb_to_lab([lanes(&lin[0]), lanes(&lin[1]), lanes(&lin[2])]);
            if scaled {
                lab[0] = lab[0].map(scale_l);
                lab[1] = lab[1].map(scale_ab);
                lab[2] = lab[2].map(scale_ab);
            }
            let n = LANES.min(len - p * LANES);
            for (plane, vals) in out.iter_mut().zip(&lab) {
                plane[s * STAGE + p * LANES..][..n].copy_from_slice(&vals[..n]);
            }
        }
    }
}

/// Unscaled L `[n]` and ab `[2n]` -> interleaved RGB8, rounded to nearest (truncation
/// would darken every image by half a level on average).
pub fn lab_planes_to_rgb8(l: &[f32], ab: &[f32]) -> Vec<u8> {
    let n = l.len();
    assert_eq!(
        ab.len(),
        2 * n,
        "lab_planes_to_rgb8: ab has {} values for {} pixels",
        ab.len(),
        n
    );
    let convert =
        |i: usize| lab_to_srgb_f64([l[i], ab[i], ab[n + i]]).map(|c| (c * 255.0).round() as u8);
    let px: Vec<[u8; 3]> = if n >= PAR_THRESHOLD {
        (0..n).into_par_iter().map(convert).collect()
    } else {
        (0..n).map(convert).collect()
    };
    px.into_iter().flatten().collect()
}

/// The reference network input scaling: L in [0, 100] -> [-1, 1].
#[inline]
pub fn scale_l(l: f32) -> f32 {
    l / 50.0 - 1.0
}

#[inline]
pub fn unscale_l(x: f32) -> f32 {
    (x + 1.0) * 50.0
}

/// The reference target scaling: ab -> ab / 100, matching the generator's tanh range.
#[inline]
pub fn scale_ab(ab: f32) -> f32 {
    ab / 100.0
}

#[inline]
pub fn unscale_ab(x: f32) -> f32 {
    x * 100.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn fast_cbrt_matches_libm() {
        // The Lab branch takes cube roots of t in (0.008856, ~1.1]; check well beyond.
        let mut worst = 0.0f64;
        let mut t = 1e-4;
        while t < 10.0 {
            let (got, want) = (super::cbrt(t), t.cbrt());
            worst = worst.max(((got - want) / want).abs());
            t *= 1.000_37;
        }
        assert!(worst < 1e-14, "worst relative error {worst:e}");
    }
}
