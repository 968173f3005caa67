//! The two data-movement halves of a convolution. Both are parallel over disjoint output
//! slices (rows of the column matrix, planes of the image), each summed in a fixed order,
//! so the result does not depend on the thread count or scheduling.

use rayon::prelude::*;

use crate::geom::ConvGeom;

/// `col[(c, ki, kj), (b, oh, ow)] = img[b, c, oh*s + ki - p, ow*s + kj - p]` (0 outside).
/// `img` is `[B, C, H, W]` contiguous, `col` is `[C*kh*kw, B*OH*OW]` row-major.
pub fn im2col(img: &[f32], g: &ConvGeom, col: &mut [f32]) {
    let n = g.n();
    assert_eq!(img.len(), g.image_len(), "im2col: image length");
    assert_eq!(col.len(), g.k() * n, "im2col: column length");
    if n == 0 {
        return;
    }
    let (ohw, hw) = (g.oh * g.ow, g.h * g.w);
    col.par_chunks_mut(n).enumerate().for_each(|(row, dst)| {
        let c = row / (g.kh * g.kw);
        let ki = (row / g.kw) % g.kh;
        let kj = row % g.kw;
        let (oh_lo, oh_hi) = g.valid_range(ki, g.h, g.oh);
        let (ow_lo, ow_hi) = g.valid_range(kj, g.w, g.ow);
        for b in 0..g.b {
            let plane = &img[(b * g.c + c) * hw..][..hw];
            let out = &mut dst[b * ohw..][..ohw];
            out[..oh_lo * g.ow].fill(0.0);
            out[oh_hi * g.ow..].fill(0.0);
            for oh in oh_lo..oh_hi {
                let ih = oh * g.stride + ki - g.padding;
                let src = &plane[ih * g.w..][..g.w];
                let seg = &mut out[oh * g.ow..][..g.ow];
                seg[..ow_lo].fill(0.0);
                seg[ow_hi..].fill(0.0);
                if ow_hi > ow_lo {
                    let iw0 = ow_lo * g.stride + kj - g.padding;
                    if g.stride == 1 {
                        seg[ow_lo..ow_hi].copy_from_slice(&src[iw0..iw0 + (ow_hi - ow_lo)]);
                    } else {
                        for (d, s) in seg[ow_lo..ow_hi]
                            .iter_mut()
                            .zip(src[iw0..].iter().step_by(g.stride))
                        {
                            *d = *s;
                        }
                    }
                }
            }
        }
    });
}

/// The adjoint of [`im2col`]: `img[b, c, ih, iw] += col[(c, ki, kj), (b, oh, ow)]` over every
/// (ki, kj, oh, ow) that lands on (ih, iw). Accumulates into `img` (zero it first, or
/// pre-fill it with a bias).
pub fn col2im(col: &[f32], g: &ConvGeom, img: &mut [f32]) {
    let n = g.n();
    assert_eq!(img.len(), g.image_len(), "col2im: image length");
    assert_eq!(col.len(), g.k() * n, "col2im: column length");
    let (ohw, hw) = (g.oh * g.ow, g.h * g.w);
    if hw == 0 {
        return;
    }
    img.par_chunks_mut(hw).enumerate().for_each(|(bc, plane)| {
        let (b, c) = (bc / g.c, bc % g.c);
        for ki in 0..g.kh {
            let (oh_lo, oh_hi) = g.valid_range(ki, g.h, g.oh);
            for kj in 0..g.kw {
                let (ow_lo, ow_hi) = g.valid_range(kj, g.w, g.ow);
                if ow_hi == ow_lo {
                    continue;
                }
                let row = (c * g.kh + ki) * g.kw + kj;
                let src = &col[row * n + b * ohw..][..ohw];
                for oh in oh_lo..oh_hi {
                    let ih = oh * g.stride + ki - g.padding;
                    let s = &src[oh * g.ow + ow_lo..oh * g.ow + ow_hi];
                    let iw0 = ow_lo * g.stride + kj - g.padding;
                    let d = &mut plane[ih * g.w..][..g.w];
                    if g.stride == 1 {
                        for (d, s) in d[iw0..iw0 + s.len()].iter_mut().zip(s) {
                            *d += *s;
                        }
                    } else {
                        for (d, s) in d[iw0..].iter_mut().step_by(g.stride).zip(s) {
                            *d += *s;
                        }
                    }
                }
            }
        }
    });
}
