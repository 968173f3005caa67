//! The three convolution kernels for a geometry with a single column channel (`M = 1`: the
//! PatchGAN's last layer, 8nf -> 1 filter), computed directly from the image instead of through
//! the columns. With one filter the GEMM is a matrix-vector product over a column matrix
//! `kh * kw` times the size of the image, so building the columns costs far more than the
//! arithmetic; computed directly, the layer runs several times faster than through the
//! columns (measurements in bench/README.md, 'What moved it', convolutions with one filter).
//!
//! The image side is worked on channels-last (`[B, H, W, C]`, one transposed copy), so every
//! inner loop is a dot product or an `axpy` over the channels: contiguous and long even when
//! the planes are a few pixels wide (7 x 7 at 64 px), where loops along a row would run on
//! 6 elements. Each output element is summed in a fixed order, so results do not depend on the
//! thread count.

use rayon::prelude::*;

use crate::cpu::simd;
use crate::geom::ConvGeom;

/// For each kernel index `k` in `0..k_len`, the output indices `o` in `0..o_len` whose input
/// index `o * s + k - p` lies in `0..in_len`.
fn valid_ranges(
    o_len: usize,
    in_len: usize,
    k_len: usize,
    s: usize,
    p: usize,
) -> Vec<std::ops::Range<usize>> {
    (0..k_len)
        .map(|k| {
            let lo = p.saturating_sub(k).div_ceil(s);
            let hi = if in_len + p > k {
                o_len.min((in_len - 1 + p - k) / s + 1)
            } else {
                0
            };
            lo.min(hi)..hi
        })
        .collect()
}

/// Per kernel row and per kernel column, the output rows / columns that read inside the image
/// (what every kernel below loops over).
type TapRanges = (Vec<std::ops::Range<usize>>, Vec<std::ops::Range<usize>>);

fn tap_ranges(g: &ConvGeom) -> TapRanges {
    debug_assert_eq!(g.m, 1);
    (
        valid_ranges(g.oh, g.h, g.kh, g.stride, g.padding),
        valid_ranges(g.ow, g.w, g.kw, g.stride, g.padding),
    )
}

/// `[B, C, HW]` -> `[B, HW, C]`.
fn to_channels_last(x: &[f32], b: usize, c: usize, hw: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; b * c * hw];
    transpose_each(x, &mut out, c, hw);
    out
}

/// Transposes each `[rows, cols]` matrix of `src` (one per image) into `dst`, in parallel over
/// the images.
fn transpose_each(src: &[f32], dst: &mut [f32], rows: usize, cols: usize) {
    let len = (rows * cols).max(1);
    dst.par_chunks_mut(len)
        .zip(src.par_chunks(len))
        .for_each(|(dst, src)| {
            simd(
                #[inline(always)]
                || transpose(src, dst, rows, cols),
            )
        });
}

/// `dst [cols, rows]` = `src [rows, cols]`^T, by 16 x 16 tiles (16 rows read and 16 written
/// as contiguous runs, instead of one strided access per element).
#[inline(always)]
fn transpose(src: &[f32], dst: &mut [f32], rows: usize, cols: usize) {
    const T: usize = 16;
    let mut tile = [[0.0f32; T]; T];
    for r0 in (0..rows).step_by(T) {
        let rn = T.min(rows - r0);
        for c0 in (0..cols).step_by(T) {
            let cn = T.min(cols - c0);
            for (i, row) in tile.iter_mut().enumerate().take(rn) {
                row[..cn].copy_from_slice(&src[(r0 + i) * cols + c0..][..cn]);
            }
            for j in 0..cn {
                let out = &mut dst[(c0 + j) * rows + r0..][..rn];
                for (i, o) in out.iter_mut().enumerate() {
                    *o = tile[i][j];
                }
            }
        }
    }
}

/// `sum(a[i] * b[i])` with 64 running partial sums (four independent vector chains) added in
/// a fixed order: vectorised, and the result depends only on the inputs.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 64;
    let mut acc = [0.0f32; LANES];
    let n16 = a.len() / LANES * LANES;
    for (ac, bc) in a[..n16]
        .chunks_exact(LANES)
        .zip(b[..n16].chunks_exact(LANES))
    {
        for i in 0..LANES {
            acc[i] += ac[i] * bc[i];
        }
    }
    let mut sum = 0.0;
    for v in acc {
        sum += v;
    }
    for (&x, &y) in a[n16..].iter().zip(&b[n16..]) {
        sum += x * y;
    }
    sum
}

/// `y += a * x`.
#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// The filter as `[kh*kw, C]` (tap-major) from `[1, C, kh, kw]`.
fn taps_by_channel(w: &[f32], c: usize, taps: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; c * taps];
    transpose(w, &mut out, c, taps);
    out
}

/// `out [B, 1, OH, OW]` = conv(image `[B, C, H, W]`, `w [1, C*kh*kw]`) + bias. One task per
/// output row; each output is the sum over taps (in order) of a dot product over channels.
pub(crate) fn forward(img: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeom) -> Vec<f32> {
    let (c, hw, taps, s, p) = (g.c, g.h * g.w, g.kh * g.kw, g.stride, g.padding);
    let (rows, cols) = tap_ranges(g);
    let x = to_channels_last(img, g.b, c, hw);
    let wt = taps_by_channel(w, c, taps);
    let b0 = bias.map_or(0.0, |b| b[0]);
    let mut out = vec![0.0f32; g.b * g.oh * g.ow];
    // Each task's body compiled for the wide vector unit (rayon runs task bodies outside
    // any `simd` wrapper around the loop).
    out.par_chunks_mut(g.ow.max(1))
        .enumerate()
        .for_each(|(row, out)| {
            simd(
                #[inline(always)]
                || {
                    let (b, oy) = (row / g.oh, row % g.oh);
                    let x = &x[b * hw * c..][..hw * c];
                    for (ox, o) in out.iter_mut().enumerate() {
                        let mut sum = b0;
                        for ky in (0..g.kh).filter(|&ky| rows[ky].contains(&oy)) {
                            let iy = oy * s + ky - p;
                            for kx in (0..g.kw).filter(|&kx| cols[kx].contains(&ox)) {
                                let ix = ox * s + kx - p;
                                let t = ky * g.kw + kx;
                                sum += dot(&wt[t * c..][..c], &x[(iy * g.w + ix) * c..][..c]);
                            }
                        }
                        *o = sum;
                    }
                },
            )
        });
    out
}

/// `img [B, C, H, W]` = adjoint of conv (`w [1, C*kh*kw]`) applied to `cols [B, 1, OH, OW]`,
/// plus `bias [C]`. Built channels-last, one task per input row (each adds its taps in order),
/// then transposed back.
pub(crate) fn backward_data(
    cols: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeom,
) -> Vec<f32> {
    let (c, hw, ohw, taps) = (g.c, g.h * g.w, g.oh * g.ow, g.kh * g.kw);
    let (s, p) = (g.stride, g.padding);
    let (rows, colr) = tap_ranges(g);
    let wt = taps_by_channel(w, c, taps);
    // [B, H, W, C]. Each task's body compiled for the wide vector unit (rayon runs task
    // bodies outside any `simd` wrapper around the loop).
    let mut xt = vec![0.0f32; g.b * hw * c];
    xt.par_chunks_mut((g.w * c).max(1))
        .enumerate()
        .for_each(|(row, dst)| {
            simd(
                #[inline(always)]
                || {
                    let (b, iy) = (row / g.h, row % g.h);
                    if let Some(bias) = bias {
                        for px in dst.chunks_exact_mut(c) {
                            px.copy_from_slice(bias);
                        }
                    }
                    let dy = &cols[b * ohw..][..ohw];
                    for (ky, oy_range) in rows.iter().enumerate() {
                        // Output row oy reads input row iy through tap ky when oy*s + ky - p == iy.
                        let Some(num) = (iy + p).checked_sub(ky) else {
                            continue;
                        };
                        if num % s != 0 || !oy_range.contains(&(num / s)) {
                            continue;
                        }
                        let oy = num / s;
                        for (kx, ox_range) in colr.iter().enumerate() {
                            let t = ky * g.kw + kx;
                            let wtap = &wt[t * c..][..c];
                            for ox in ox_range.clone() {
                                let ix = ox * s + kx - p;
                                axpy(&mut dst[ix * c..][..c], dy[oy * g.ow + ox], wtap);
                            }
                        }
                    }
                },
            )
        });
    // [B, H, W, C] -> [B, C, H, W]
    let mut img = vec![0.0f32; g.b * c * hw];
    transpose_each(&xt, &mut img, hw, c);
    img
}

/// Filter gradient `[1, C*kh*kw]` = `cols [B, 1, OH, OW]` correlated with the image
/// `[B, C, H, W]`, summed over the batch. One task per tap, each summing over images, then
/// output positions, in order.
pub(crate) fn backward_filter(img: &[f32], cols: &[f32], g: &ConvGeom) -> Vec<f32> {
    let (c, hw, ohw, taps) = (g.c, g.h * g.w, g.oh * g.ow, g.kh * g.kw);
    let (s, p) = (g.stride, g.padding);
    let (rows, colr) = tap_ranges(g);
    let x = to_channels_last(img, g.b, c, hw);
    // [kh*kw, C]; task bodies in `simd` as above.
    let mut dwt = vec![0.0f32; taps * c];
    dwt.par_chunks_mut(c.max(1))
        .enumerate()
        .for_each(|(t, acc)| {
            simd(
                #[inline(always)]
                || {
                    let (ky, kx) = (t / g.kw, t % g.kw);
                    for b in 0..g.b {
                        let (x, dy) = (&x[b * hw * c..][..hw * c], &cols[b * ohw..][..ohw]);
                        for oy in rows[ky].clone() {
                            let iy = oy * s + ky - p;
                            for ox in colr[kx].clone() {
                                let ix = ox * s + kx - p;
                                axpy(acc, dy[oy * g.ow + ox], &x[(iy * g.w + ix) * c..][..c]);
                            }
                        }
                    }
                },
            )
        });
    let mut dw = vec![0.0f32; c * taps];
    transpose(&dwt, &mut dw, taps, c);
    dw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ranges_match_a_scan() {
        for (o_len, in_len, k_len, s, p) in [
            (30, 31, 4, 1, 1),
            (4, 9, 4, 2, 1),
            (5, 7, 3, 3, 2),
            (1, 1, 4, 1, 1),
        ] {
            let ranges = valid_ranges(o_len, in_len, k_len, s, p);
            for (k, r) in ranges.iter().enumerate() {
                let want: Vec<usize> = (0..o_len)
                    .filter(|&o| {
                        let i = (o * s + k) as isize - p as isize;
                        i >= 0 && i < in_len as isize
                    })
                    .collect();
                assert_eq!(
                    r.clone().collect::<Vec<_>>(),
                    want,
                    "o_len {o_len} in_len {in_len} k {k} s {s} p {p}"
                );
            }
        }
    }
}
