//! The three convolution kernels for a geometry with a single column channel (`M = 1`: the
//! PatchGAN's last layer, 8nf -> 1 filter), computed directly from the image instead of through
//! the columns. With one filter the GEMM is a matrix-vector product over a column matrix
//! `kh * kw` times the size of the image, so building the columns costs far more than the
//! arithmetic: at 256 px (512 channels, 31 x 31, batch 4) the lowered layer took 22-28 ms
//! forward and ~82 ms forward + backward against PyTorch's 8 and 25 ms.
//!
//! Every output element is summed in a fixed order (channel, then kernel row, then kernel
//! column), so results do not depend on the thread count.

use rayon::prelude::*;

use crate::cpu::simd;
use crate::geom::ConvGeom;

/// The output indices `o` in `0..o_len` whose input index `o * s + k - p` lies in
/// `0..in_len`, as a range.
fn valid(o_len: usize, in_len: usize, k: usize, s: usize, p: usize) -> std::ops::Range<usize> {
    let lo = p.saturating_sub(k).div_ceil(s);
    let hi = if in_len + p > k {
        o_len.min((in_len - 1 + p - k) / s + 1)
    } else {
        0
    };
    lo.min(hi)..hi
}

/// `acc[o] += v * src[o * s + off]` for `o` in `range` (`off` may be negative as long as
/// every index is in bounds): a contiguous slice update when `s == 1`.
fn axpy_strided(
    acc: &mut [f32],
    src: &[f32],
    v: f32,
    range: std::ops::Range<usize>,
    s: usize,
    off: isize,
) {
    if range.is_empty() {
        return;
    }
    let first = (range.start * s) as isize + off;
    if s == 1 {
        let src = &src[first as usize..][..range.len()];
        for (a, &x) in acc[range].iter_mut().zip(src) {
            *a += v * x;
        }
    } else {
        for (i, a) in acc[range].iter_mut().enumerate() {
            *a += v * src[first as usize + i * s];
        }
    }
}

/// `out [B, 1, OH, OW]` = conv(image `[B, C, H, W]`, `w [1, C*kh*kw]`) + bias. One task per
/// output row.
pub(crate) fn forward(img: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeom) -> Vec<f32> {
    debug_assert_eq!(g.m, 1);
    let (hw, taps, s, p) = (g.h * g.w, g.kh * g.kw, g.stride, g.padding);
    let b0 = bias.map_or(0.0, |b| b[0]);
    let mut out = vec![b0; g.b * g.oh * g.ow];
    simd(|| {
        out.par_chunks_mut(g.ow.max(1))
            .enumerate()
            .for_each(|(row, acc)| {
                let (b, oy) = (row / g.oh, row % g.oh);
                let img = &img[b * g.c * hw..][..g.c * hw];
                for c in 0..g.c {
                    for ky in valid_taps(oy, g.h, g.kh, s, p) {
                        let iy = oy * s + ky - p;
                        let src = &img[c * hw + iy * g.w..][..g.w];
                        for kx in 0..g.kw {
                            let v = w[c * taps + ky * g.kw + kx];
                            let range = valid(g.ow, g.w, kx, s, p);
                            axpy_strided(acc, src, v, range, s, kx as isize - p as isize);
                        }
                    }
                }
            })
    });
    out
}

/// The kernel rows `ky` for which output row `oy` reads an input row inside `0..h`.
fn valid_taps(oy: usize, h: usize, kh: usize, s: usize, p: usize) -> std::ops::Range<usize> {
    // oy * s + ky - p in 0..h  <=>  ky in (p - oy*s)..(h + p - oy*s)
    let base = oy * s;
    let lo = p.saturating_sub(base);
    let hi = (h + p).saturating_sub(base).min(kh);
    lo.min(hi)..hi
}

/// `img [B, C, H, W]` = adjoint of conv (`w [1, C*kh*kw]`) applied to `cols [B, 1, OH, OW]`,
/// + `bias [C]`. One task per image plane.
pub(crate) fn backward_data(
    cols: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeom,
) -> Vec<f32> {
    debug_assert_eq!(g.m, 1);
    let (hw, ohw, taps, s, p) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw, g.stride, g.padding);
    let mut img = vec![0.0f32; g.b * g.c * hw];
    simd(|| {
        img.par_chunks_mut(hw.max(1))
            .enumerate()
            .for_each(|(plane, out)| {
                let (b, c) = (plane / g.c, plane % g.c);
                if let Some(bias) = bias {
                    out.fill(bias[c]);
                }
                let dy = &cols[b * ohw..][..ohw];
                for oy in 0..g.oh {
                    let dy_row = &dy[oy * g.ow..][..g.ow];
                    for ky in valid_taps(oy, g.h, g.kh, s, p) {
                        let iy = oy * s + ky - p;
                        let dst = &mut out[iy * g.w..][..g.w];
                        for kx in 0..g.kw {
                            let v = w[c * taps + ky * g.kw + kx];
                            let range = valid(g.ow, g.w, kx, s, p);
                            scatter_strided(dst, dy_row, v, range, s, kx as isize - p as isize);
                        }
                    }
                }
            })
    });
    img
}

/// `dst[o * s + off] += v * src[o]` for `o` in `range`.
fn scatter_strided(
    dst: &mut [f32],
    src: &[f32],
    v: f32,
    range: std::ops::Range<usize>,
    s: usize,
    off: isize,
) {
    if range.is_empty() {
        return;
    }
    let first = (range.start * s) as isize + off;
    if s == 1 {
        let dst = &mut dst[first as usize..][..range.len()];
        for (d, &x) in dst.iter_mut().zip(&src[range]) {
            *d += v * x;
        }
    } else {
        for (i, &x) in src[range].iter().enumerate() {
            dst[first as usize + i * s] += v * x;
        }
    }
}

/// Filter gradient `[1, C*kh*kw]` = `cols [B, 1, OH, OW]` correlated with the image
/// `[B, C, H, W]`, summed over the batch. One task per channel; each tap's sum runs over
/// images, then rows, in order.
pub(crate) fn backward_filter(img: &[f32], cols: &[f32], g: &ConvGeom) -> Vec<f32> {
    debug_assert_eq!(g.m, 1);
    let (hw, ohw, taps, s, p) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw, g.stride, g.padding);
    let mut dw = vec![0.0f32; g.c * taps];
    simd(|| {
        dw.par_chunks_mut(taps.max(1))
            .enumerate()
            .for_each(|(c, dw)| {
                for b in 0..g.b {
                    let plane = &img[(b * g.c + c) * hw..][..hw];
                    let dy = &cols[b * ohw..][..ohw];
                    for oy in 0..g.oh {
                        let dy_row = &dy[oy * g.ow..][..g.ow];
                        for ky in valid_taps(oy, g.h, g.kh, s, p) {
                            let iy = oy * s + ky - p;
                            let src = &plane[iy * g.w..][..g.w];
                            for kx in 0..g.kw {
                                let range = valid(g.ow, g.w, kx, s, p);
                                dw[ky * g.kw + kx] +=
                                    dot_strided(dy_row, src, range, s, kx as isize - p as isize);
                            }
                        }
                    }
                }
            })
    });
    dw
}

/// `sum(a[o] * x[o * s + off])` over `o` in `range`, in index order (8 running partial sums,
/// added in a fixed order, so that the loop vectorises and stays deterministic).
fn dot_strided(a: &[f32], x: &[f32], range: std::ops::Range<usize>, s: usize, off: isize) -> f32 {
    if range.is_empty() {
        return 0.0;
    }
    let first = ((range.start * s) as isize + off) as usize;
    let a = &a[range.clone()];
    if s == 1 {
        let x = &x[first..][..a.len()];
        let mut acc = [0.0f32; 8];
        let (a8, a_rest) = a.split_at(a.len() / 8 * 8);
        let (x8, x_rest) = x.split_at(a8.len());
        for (ac, xc) in a8.chunks_exact(8).zip(x8.chunks_exact(8)) {
            for i in 0..8 {
                acc[i] += ac[i] * xc[i];
            }
        }
        let mut sum =
            ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (&av, &xv) in a_rest.iter().zip(x_rest) {
            sum += av * xv;
        }
        sum
    } else {
        a.iter()
            .enumerate()
            .map(|(i, &av)| av * x[first + i * s])
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ranges_match_a_scan() {
        for (o_len, in_len, k, s, p) in [
            (30, 31, 0, 1, 1),
            (30, 31, 3, 1, 1),
            (4, 9, 2, 2, 1),
            (5, 7, 0, 3, 2),
            (1, 1, 3, 1, 1),
        ] {
            let want: Vec<usize> = (0..o_len)
                .filter(|&o| {
                    let i = (o * s + k) as isize - p as isize;
                    i >= 0 && i < in_len as isize
                })
                .collect();
            let got: Vec<usize> = valid(o_len, in_len, k, s, p).collect();
            assert_eq!(got, want, "o_len {o_len} in_len {in_len} k {k} s {s} p {p}");
        }
        for (oy, h, kh, s, p) in [
            (0, 31, 4, 1, 1),
            (29, 31, 4, 1, 1),
            (0, 2, 4, 2, 1),
            (3, 9, 5, 2, 2),
        ] {
            let want: Vec<usize> = (0..kh)
                .filter(|&ky| {
                    let i = (oy * s + ky) as isize - p as isize;
                    i >= 0 && i < h as isize
                })
                .collect();
            assert_eq!(valid_taps(oy, h, kh, s, p).collect::<Vec<_>>(), want);
        }
    }
}
