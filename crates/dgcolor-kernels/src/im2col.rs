//! The two data-movement halves of a convolution. Both are parallel over disjoint output
//! slices, each summed in a fixed order, so the result does not depend on the thread count
//! or scheduling.
//!
//! A strided convolution reads (and its adjoint writes) every `stride`-th pixel, which done
//! directly is a scalar gather (scatter-add) repeated for each of the `kh * kw` taps, with
//! edge cases at every border. Both halves first split an image plane into its
//! `stride x stride` phases (pixel `(s*i + r, s*j + q)` goes to phase `(r, q)` at `(i, j)`),
//! each with a zero border: every tap then reads (writes) one window of one phase with unit
//! stride, so the per-tap loops are plain row copies and vector adds, and the strided access
//! happens once per plane instead of once per tap. With stride 1 the plane is its own single
//! (padded) phase.

use rayon::prelude::*;

use crate::cpu::simd;
use crate::geom::ConvGeom;

/// An image plane `[h, w]` split into `s * s` phases, each stored zero-padded as `[hp, wp]`
/// with the plane's pixels from row and column `lo`: wide enough that every tap's window of
/// `OH x OW` positions lies inside it, so that the per-tap loops have no edge cases (what
/// falls outside the image reads or writes the zero border).
struct Phases {
    s: usize,
    lo: usize,
    hp: usize,
    wp: usize,
}

impl Phases {
    fn new(g: &ConvGeom) -> Self {
        let (s, p) = (g.stride, g.padding);
        // Tap 0 reaches `ceil(p / s)` phase positions before the plane, the last tap
        // `floor((k - 1 - p) / s)` past output position `OH - 1`.
        let lo = p.div_ceil(s);
        let extent = |size: usize, out: usize, k: usize| {
            let last = (out as isize - 1) + (k as isize - 1 - p as isize).div_euclid(s as isize);
            (size.div_ceil(s) + lo).max((last + 1 + lo as isize).max(0) as usize)
        };
        Self {
            s,
            lo,
            hp: extent(g.h, g.oh, g.kh),
            wp: extent(g.w, g.ow, g.kw),
        }
    }

    fn len(&self) -> usize {
        self.s * self.s * self.hp * self.wp
    }

    /// Where tap `k` (of an axis with padding `p`) reads: the phase along that axis and the
    /// padded phase index of output position 0 (`o * s + k - p = s * (o + off - lo) + phase`).
    fn tap(&self, k: usize, p: usize) -> (usize, usize) {
        let (d, s) = (k as isize - p as isize, self.s as isize);
        let r = d.rem_euclid(s);
        (r as usize, ((d - r) / s + self.lo as isize) as usize)
    }

    /// The `[hp, wp]` phase `(r, q)` of a buffer of `len()` elements.
    #[inline(always)]
    fn phase<'a>(&self, buf: &'a [f32], r: usize, q: usize) -> &'a [f32] {
        &buf[(r * self.s + q) * self.hp * self.wp..][..self.hp * self.wp]
    }

    #[inline(always)]
    fn phase_mut<'a>(&self, buf: &'a mut [f32], r: usize, q: usize) -> &'a mut [f32] {
        &mut buf[(r * self.s + q) * self.hp * self.wp..][..self.hp * self.wp]
    }

    /// Row `i` of phases `(r, 0)` and `(r, 1)` of a stride-2 split, from the pixels on.
    #[inline(always)]
    fn pair<'a>(&self, buf: &'a [f32], r: usize, i: usize) -> (&'a [f32], &'a [f32]) {
        let at = |q| &self.phase(buf, r, q)[(i + self.lo) * self.wp + self.lo..];
        (at(0), at(1))
    }

    #[inline(always)]
    fn pair_mut<'a>(
        &self,
        buf: &'a mut [f32],
        r: usize,
        i: usize,
    ) -> (&'a mut [f32], &'a mut [f32]) {
        let len = self.hp * self.wp;
        let at = (i + self.lo) * self.wp + self.lo;
        let (even, odd) = buf[2 * r * len..][..2 * len].split_at_mut(len);
        (&mut even[at..], &mut odd[at..])
    }

    /// `buf[phase (r, q)][lo + i, lo + j] = plane[s*i + r, s*j + q]`, zero elsewhere.
    #[inline(always)]
    fn split(&self, plane: &[f32], w: usize, buf: &mut [f32]) {
        let s = self.s;
        buf.fill(0.0);
        for (ih, row) in plane.chunks_exact(w).enumerate() {
            let (r, i) = (ih % s, ih / s);
            if s == 2 {
                // The U-Net's case, as pairs so that the compiler vectorises the deinterleave.
                let (even, odd) = self.pair_mut(buf, r, i);
                let pairs = row.chunks_exact(2);
                if let Some(&last) = pairs.remainder().first() {
                    even[w / 2] = last;
                }
                for ((e, o), p) in even.iter_mut().zip(odd.iter_mut()).zip(pairs) {
                    (*e, *o) = (p[0], p[1]);
                }
                continue;
            }
            for q in 0..s {
                let at = (i + self.lo) * self.wp + self.lo;
                let dst = &mut self.phase_mut(buf, r, q)[at..];
                for (d, v) in dst.iter_mut().zip(row.iter().skip(q).step_by(s)) {
                    *d = *v;
                }
            }
        }
    }

    /// `plane[s*i + r, s*j + q] += buf[phase (r, q)][lo + i, lo + j]`.
    #[inline(always)]
    fn merge_add(&self, buf: &[f32], w: usize, plane: &mut [f32]) {
        let s = self.s;
        for (ih, row) in plane.chunks_exact_mut(w).enumerate() {
            let (r, i) = (ih % s, ih / s);
            if s == 2 {
                let (even, odd) = self.pair(buf, r, i);
                let mut pairs = row.chunks_exact_mut(2);
                for ((p, e), o) in pairs.by_ref().zip(even).zip(odd) {
                    p[0] += *e;
                    p[1] += *o;
                }
                if let Some(last) = pairs.into_remainder().first_mut() {
                    *last += even[w / 2];
                }
                continue;
            }
            for q in 0..s {
                let src = &self.phase(buf, r, q)[(i + self.lo) * self.wp + self.lo..];
                for (d, v) in row.iter_mut().skip(q).step_by(s).zip(src) {
                    *d += *v;
                }
            }
        }
    }
}

/// `d = s[..d.len()]`. The U-Net's inner levels have rows of 1 to 8 values, where a call to
/// `memcpy` per row costs more than the copy: those lengths get inline fixed-size copies.
#[inline(always)]
fn copy_row(d: &mut [f32], s: &[f32]) {
    #[inline(always)]
    fn fixed<const N: usize>(d: &mut [f32], s: &[f32]) {
        d[..N].copy_from_slice(&s[..N]);
    }
    match d.len() {
        1 => fixed::<1>(d, s),
        2 => fixed::<2>(d, s),
        4 => fixed::<4>(d, s),
        8 => fixed::<8>(d, s),
        n => d.copy_from_slice(&s[..n]),
    }
}

/// `d += s[..d.len()]`, with the same fixed-size cases as [`copy_row`].
#[inline(always)]
fn add_row(d: &mut [f32], s: &[f32]) {
    #[inline(always)]
    fn fixed<const N: usize>(d: &mut [f32], s: &[f32]) {
        let (d, s) = (&mut d[..N], &s[..N]);
        for i in 0..N {
            d[i] += s[i];
        }
    }
    match d.len() {
        1 => fixed::<1>(d, s),
        2 => fixed::<2>(d, s),
        4 => fixed::<4>(d, s),
        8 => fixed::<8>(d, s),
        n => {
            for (d, s) in d.iter_mut().zip(&s[..n]) {
                *d += *s;
            }
        }
    }
}

/// Output rows of at most this many values take the table path (if the table is at most
/// [`TABLE_MAX`] entries): measured on the U-Net's layers, the phase path's row copies win
/// from 32 values per row, the table's indexed loads up to 16.
const TABLE_MAX_ROW: usize = 16;
const TABLE_MAX: usize = 1 << 14;
/// A parallel task handles whole planes, at least this many column elements of them: the
/// U-Net's inner levels have planes of 1 to 64 outputs, far too little work for a task each.
const TASK_MIN: usize = 1 << 13;

/// For small planes, where the phase path's per-row and per-tap bookkeeping costs more than
/// the copies of short rows: for each tap `t = ki * kw + kj` and output position `o`, the
/// plane index tap `t` reads at `o`, or `hw` (a zero slot after the plane) where it falls in
/// the padding. One table serves every plane of every image (it does not depend on the
/// batch), so each plane is `kh * kw * OH * OW` indexed loads (stores).
pub(crate) struct TapTable {
    idx: Vec<u32>,
    ohw: usize,
    hw: usize,
}

impl TapTable {
    /// The table for `g`'s planes, if they take the table path.
    pub(crate) fn new(g: &ConvGeom) -> Option<Self> {
        (g.ow <= TABLE_MAX_ROW && g.kh * g.kw * g.oh * g.ow <= TABLE_MAX).then(|| Self::build(g))
    }

    fn build(g: &ConvGeom) -> Self {
        let (ohw, hw) = (g.oh * g.ow, g.h * g.w);
        let mut idx = Vec::with_capacity(g.kh * g.kw * ohw);
        let at = |o: usize, k: usize, size: usize| {
            (o * g.stride + k)
                .checked_sub(g.padding)
                .filter(|&i| i < size)
        };
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                for oh in 0..g.oh {
                    for ow in 0..g.ow {
                        let i = match (at(oh, ki, g.h), at(ow, kj, g.w)) {
                            (Some(ih), Some(iw)) => ih * g.w + iw,
                            _ => hw,
                        };
                        idx.push(i as u32);
                    }
                }
            }
        }
        Self { idx, ohw, hw }
    }

    /// Tap `t`'s indices: each `<= hw`, so they are in bounds of a `hw + 1` buffer.
    #[inline(always)]
    fn tap(&self, t: usize) -> &[u32] {
        &self.idx[t * self.ohw..][..self.ohw]
    }

    /// `dst[o] = buf[idx[t][o]]` for a `buf` of the plane followed by a zero.
    #[inline(always)]
    fn gather(&self, t: usize, buf: &[f32], dst: &mut [f32]) {
        assert_eq!(buf.len(), self.hw + 1);
        for (d, &i) in dst.iter_mut().zip(self.tap(t)) {
            // SAFETY: every index is <= hw (built so), and buf has hw + 1 elements.
            *d = unsafe { *buf.get_unchecked(i as usize) };
        }
    }

    /// `buf[idx[t][o]] += src[o]`: the adjoint of [`TapTable::gather`] (the zero slot
    /// collects what lands in the padding).
    #[inline(always)]
    fn scatter_add(&self, t: usize, src: &[f32], buf: &mut [f32]) {
        assert_eq!(buf.len(), self.hw + 1);
        for (v, &i) in src.iter().zip(self.tap(t)) {
            // SAFETY: as in `gather`.
            unsafe { *buf.get_unchecked_mut(i as usize) += *v };
        }
    }
}

/// How many planes one parallel task takes so that it has at least [`TASK_MIN`] elements.
fn planes_per_task(g: &ConvGeom) -> usize {
    TASK_MIN.div_ceil(g.kh * g.kw * g.oh * g.ow).max(1)
}

/// A raw pointer that rayon tasks may share because each writes a disjoint set of elements.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: used only by `im2col`, whose tasks write pairwise disjoint ranges.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// Through a method, so closures capture the whole (Sync) wrapper, not the raw field.
    fn at(&self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// `col[(c, ki, kj), (b, oh, ow)] = img[b, c, oh*s + ki - p, ow*s + kj - p]` (0 outside).
/// `img` is `[B, C, H, W]` contiguous, `col` is `[C*kh*kw, B*OH*OW]` row-major.
pub fn im2col(img: &[f32], g: &ConvGeom, col: &mut [f32]) {
    im2col_via(img, g, col, TapTable::new(g).as_ref())
}

/// [`im2col`] with the table path's table (`TapTable::new(g)`) built by the caller, who can
/// then reuse it for every group of images of one convolution.
pub(crate) fn im2col_via(img: &[f32], g: &ConvGeom, col: &mut [f32], table: Option<&TapTable>) {
    let n = g.n();
    assert_eq!(img.len(), g.image_len(), "im2col: image length");
    assert_eq!(col.len(), g.k() * n, "im2col: column length");
    if n == 0 {
        return;
    }
    let (ohw, hw, taps) = (g.oh * g.ow, g.h * g.w, g.kh * g.kw);
    let out = SharedMut(col.as_mut_ptr());
    // SAFETY (both paths): the task of plane (b, c) writes columns b*ohw..(b+1)*ohw of rows
    // (c, *, *) of `col` and nothing else, so tasks never write the same element.
    let dst = |c: usize, t: usize, b: usize| unsafe {
        std::slice::from_raw_parts_mut(out.at((c * taps + t) * n + b * ohw), ohw)
    };
    if let Some(table) = table {
        (0..g.b * g.c)
            .into_par_iter()
            .with_min_len(planes_per_task(g))
            .for_each_init(
                || vec![0.0f32; hw + 1],
                |buf, bc| {
                    simd(
                        #[inline(always)]
                        || {
                            buf[..hw].copy_from_slice(&img[bc * hw..][..hw]);
                            for t in 0..taps {
                                table.gather(t, buf, dst(bc % g.c, t, bc / g.c));
                            }
                        },
                    )
                },
            );
        return;
    }
    let ph = Phases::new(g);
    (0..g.b * g.c).into_par_iter().for_each_init(
        || vec![0.0f32; ph.len()],
        |buf, bc| {
            simd(
                #[inline(always)]
                || {
                    ph.split(&img[bc * hw..][..hw], g.w, buf);
                    for ki in 0..g.kh {
                        let (r, oi) = ph.tap(ki, g.padding);
                        for kj in 0..g.kw {
                            let (q, oj) = ph.tap(kj, g.padding);
                            let src = &ph.phase(buf, r, q)[oi * ph.wp + oj..];
                            let dst = dst(bc % g.c, ki * g.kw + kj, bc / g.c);
                            for oh in 0..g.oh {
                                copy_row(&mut dst[oh * g.ow..][..g.ow], &src[oh * ph.wp..]);
                            }
                        }
                    }
                },
            )
        },
    );
}

/// The adjoint of [`im2col`]: `img[b, c, ih, iw] += col[(c, ki, kj), (b, oh, ow)]` over every
/// (ki, kj, oh, ow) that lands on (ih, iw). Accumulates into `img` (zero it first, or
/// pre-fill it with a bias).
pub fn col2im(col: &[f32], g: &ConvGeom, img: &mut [f32]) {
    col2im_via(col, g, img, TapTable::new(g).as_ref())
}

/// [`col2im`] with a caller-built table, as [`im2col_via`].
pub(crate) fn col2im_via(col: &[f32], g: &ConvGeom, img: &mut [f32], table: Option<&TapTable>) {
    let n = g.n();
    assert_eq!(img.len(), g.image_len(), "col2im: image length");
    assert_eq!(col.len(), g.k() * n, "col2im: column length");
    let (ohw, hw) = (g.oh * g.ow, g.h * g.w);
    if hw == 0 || n == 0 {
        return;
    }
    let taps = g.kh * g.kw;
    let src = |c: usize, t: usize, b: usize| &col[(c * taps + t) * n + b * ohw..][..ohw];
    if let Some(table) = table {
        img.par_chunks_mut(hw)
            .enumerate()
            .with_min_len(planes_per_task(g))
            .for_each_init(
                || vec![0.0f32; hw + 1],
                |buf, (bc, plane)| {
                    simd(
                        #[inline(always)]
                        || {
                            buf.fill(0.0);
                            for t in 0..taps {
                                table.scatter_add(t, src(bc % g.c, t, bc / g.c), buf);
                            }
                            for (p, v) in plane.iter_mut().zip(buf.iter()) {
                                *p += *v;
                            }
                        },
                    )
                },
            );
        return;
    }
    let ph = Phases::new(g);
    img.par_chunks_mut(hw).enumerate().for_each_init(
        || vec![0.0f32; ph.len()],
        |buf, (bc, plane)| {
            simd(
                #[inline(always)]
                || {
                    buf.fill(0.0);
                    for ki in 0..g.kh {
                        let (r, oi) = ph.tap(ki, g.padding);
                        for kj in 0..g.kw {
                            let (q, oj) = ph.tap(kj, g.padding);
                            let src = src(bc % g.c, ki * g.kw + kj, bc / g.c);
                            let dst = &mut ph.phase_mut(buf, r, q)[oi * ph.wp + oj..];
                            for oh in 0..g.oh {
                                add_row(&mut dst[oh * ph.wp..][..g.ow], &src[oh * g.ow..]);
                            }
                        }
                    }
                    ph.merge_add(buf, g.w, plane);
                },
            )
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one element at a time.
    fn naive_im2col(img: &[f32], g: &ConvGeom) -> Vec<f32> {
        let n = g.n();
        let mut col = vec![0.0; g.k() * n];
        for c in 0..g.c {
            for ki in 0..g.kh {
                for kj in 0..g.kw {
                    let row = (c * g.kh + ki) * g.kw + kj;
                    for b in 0..g.b {
                        for oh in 0..g.oh {
                            for ow in 0..g.ow {
                                let ih = (oh * g.stride + ki) as isize - g.padding as isize;
                                let iw = (ow * g.stride + kj) as isize - g.padding as isize;
                                if (0..g.h as isize).contains(&ih)
                                    && (0..g.w as isize).contains(&iw)
                                {
                                    col[row * n + (b * g.oh + oh) * g.ow + ow] = img
                                        [((b * g.c + c) * g.h + ih as usize) * g.w + iw as usize];
                                }
                            }
                        }
                    }
                }
            }
        }
        col
    }

    fn geometries() -> Vec<ConvGeom> {
        let mut out = Vec::new();
        for (x, (m, kh, kw), s, p) in [
            ((2, 3, 7, 9), (2, 4, 4), 2, 1),
            ((1, 2, 8, 8), (3, 4, 4), 2, 1),
            ((2, 2, 11, 10), (1, 5, 4), 3, 2),
            ((1, 3, 6, 5), (2, 3, 3), 1, 1),
            ((3, 1, 2, 2), (1, 4, 4), 2, 1),
            ((1, 2, 5, 7), (2, 2, 3), 2, 0),
            // rows past TABLE_MAX_ROW: the public functions take the phase path
            ((2, 2, 80, 70), (2, 4, 4), 2, 1),
        ] {
            out.push(ConvGeom::conv(x, (m, x.1, kh, kw), s, p).unwrap());
        }
        out
    }

    fn ramp(len: usize) -> Vec<f32> {
        (0..len).map(|i| ((i * 37) % 101) as f32 - 50.0).collect()
    }

    /// Both paths for every geometry (the table path forced past its size limit too).
    fn paths(g: &ConvGeom) -> [Option<TapTable>; 2] {
        [Some(TapTable::build(g)), None]
    }

    #[test]
    fn im2col_matches_the_definition() {
        for g in geometries() {
            let img = ramp(g.image_len());
            let want = naive_im2col(&img, &g);
            let mut col = vec![f32::NAN; g.k() * g.n()];
            im2col(&img, &g, &mut col);
            assert_eq!(col, want, "{g:?}");
            for (path, table) in paths(&g).into_iter().enumerate() {
                let mut col = vec![f32::NAN; g.k() * g.n()];
                im2col_via(&img, &g, &mut col, table.as_ref());
                assert_eq!(col, want, "{g:?}, path {path}");
            }
        }
    }

    /// `<im2col(x), y> == <x, col2im(y)>` for every geometry: col2im is the adjoint.
    #[test]
    fn col2im_is_the_adjoint() {
        for g in geometries() {
            let x = ramp(g.image_len());
            let y: Vec<f32> = ramp(g.k() * g.n()).iter().map(|v| v * 0.5 + 1.0).collect();
            let mut cx = vec![0.0; y.len()];
            im2col(&x, &g, &mut cx);
            let lhs: f64 = cx.iter().zip(&y).map(|(a, b)| (a * b) as f64).sum();
            let mut ay = vec![1.0; x.len()]; // accumulates onto a pre-fill
            col2im(&y, &g, &mut ay);
            let mut by_path = vec![ay];
            for table in paths(&g) {
                let mut ay = vec![1.0; x.len()];
                col2im_via(&y, &g, &mut ay, table.as_ref());
                by_path.push(ay);
            }
            for (path, ay) in by_path.iter().enumerate() {
                let rhs: f64 = x.iter().zip(ay).map(|(a, b)| (a * (b - 1.0)) as f64).sum();
                assert!(
                    (lhs - rhs).abs() <= 1e-9 * lhs.abs().max(1.0),
                    "{g:?}, path {path}: {lhs} vs {rhs}"
                );
            }
        }
    }
}
