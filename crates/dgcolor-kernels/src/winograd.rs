//! Winograd's minimal filtering F(2x2, 2x2) (Lavin & Gray, "Fast Algorithms for
//! Convolutional Neural Networks", CVPR 2016) for the U-Net's and the PatchGAN's 4x4,
//! stride-2, padding-1 convolutions on large planes: conv forward passes ([`conv_forward`],
//! also the transposed convs' input gradients) and the adjoint ([`conv_backward_data`]:
//! transposed-conv forward passes and the convs' input gradients), and the PatchGAN's
//! stride-1 4x4 convolution both ways ([`conv_forward_s1`], [`adjoint_s1`]). Weight
//! gradients stay on im2col.
//!
//! Why it applies: a 4x4 stride-2 convolution is a 2x2 stride-1 convolution over the four
//! stride phases of its padded input (`4C` channels), and each of the four output phases of
//! its adjoint is a 2x2 stride-1 convolution of the padded columns. F(2x2, 2x2) computes a
//! 2x2 block of such outputs from a 3x3 input tile with 9 products instead of 16, so the
//! GEMMs (where the time goes: bench/README.md) do 9/16 of im2col's work (the adjoint's
//! grid has one tile row and column more). A stride-1 4x4 convolution is the sum of four
//! 2x2 convolutions at shifts of two pixels, each reading the same transformed tiles one
//! tile further on. The transforms only add and subtract (matrix
//! entries 0 and ±1), so results differ from the direct sum by reassociation only (tests:
//! within 1e-5 relative of an f64 direct sum).
//!
//! The tiles are processed in chunks of whole tile rows of one image, in parallel: each
//! chunk transforms its inputs, runs the GEMMs on one thread and transforms back into its
//! own output rows while they are in cache, as `conv.rs`' groups do for im2col.

use rayon::prelude::*;

use crate::activation::Act;
use crate::cpu::simd;
use crate::gemm_f32::{gemm_into, num_threads, Mat, Threads};
use crate::geom::ConvGeom;
use crate::scratch::Scratch;

/// Products per tile: the 3x3 transformed tile.
const XI: usize = 9;
/// Tiles per chunk to aim for: the GEMMs' column count (a few hundred keeps the microkernel
/// off its edges, and a chunk's transformed input in L2 for the U-Net's widths).
const CHUNK_TILES: usize = 256;
/// Fewer tiles per chunk than this and im2col is faster: the caller falls back to it. Below
/// 256 tiles per chunk (the 64 px networks' planes, 64 tiles per image) the nine small GEMMs
/// per chunk and the transforms cost more than the products save; from 256 up (the 256 px
/// network's outer levels) Winograd wins (per-layer measurements in bench/README.md,
/// 'Winograd: where it pays').
const MIN_CHUNK_TILES: usize = 256;

/// How a layer's tiles are cut into chunks: `rows` tile rows of one image each.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    /// Tile grid of one image.
    th: usize,
    tw: usize,
    rows: usize,
    per_image: usize,
}

impl Plan {
    /// A plan over a `th x tw` tile grid, `rows` tile rows per chunk (clamped to the grid).
    fn with_rows((th, tw): (usize, usize), rows: usize) -> Self {
        let rows = rows.clamp(1, th);
        Self {
            th,
            tw,
            rows,
            per_image: th.div_ceil(rows),
        }
    }

    /// The 4x4, stride-2, padding-1 geometries with even `OH, OW` (the image twice the
    /// columns), whose GEMMs have at least 16 rows (`rows`) and a depth of at least 16
    /// (`4 * depth_channels`): with the first layer's single L channel the transforms cost
    /// more than the products save (bench/README.md, 'Winograd: where it pays').
    fn fits(g: &ConvGeom, rows: usize, depth_channels: usize) -> bool {
        (g.kh, g.kw, g.stride, g.padding) == (4, 4, 2, 1)
            && g.h == 2 * g.oh
            && g.w == 2 * g.ow
            && g.oh.is_multiple_of(2)
            && g.ow.is_multiple_of(2)
            && rows >= 16
            && depth_channels >= 4
            && enabled()
    }

    /// The plan of [`conv_forward`] for `g` (tiles `OH / 2 x OW / 2`), or `None` when F(2x2,
    /// 2x2) does not apply or would not pay (too few tiles per chunk).
    pub(crate) fn conv(g: &ConvGeom) -> Option<Self> {
        if !Self::fits(g, g.m, g.c) {
            return None;
        }
        Self::chunked(g.b, (g.oh / 2, g.ow / 2))
    }

    /// The plan of [`conv_backward_data`] for `g` (tiles `(OH / 2 + 1) x (OW / 2 + 1)`).
    pub(crate) fn adjoint(g: &ConvGeom) -> Option<Self> {
        if !Self::fits(g, g.c, g.m / 4) {
            return None;
        }
        Self::chunked(g.b, (g.oh / 2 + 1, g.ow / 2 + 1))
    }

    /// The plan of [`conv_forward_s1`] for `g` (4x4, stride 1, padding 1 as the PatchGAN's
    /// fourth layer or 2 as its adjoint; >= 16 filters and >= 16 channels): tiles `ceil(OH / 2) x (ceil(OW / 2)
    /// + 1)`, one spare tile per row (see there).
    pub(crate) fn conv_s1(g: &ConvGeom) -> Option<Self> {
        let fits = (g.kh, g.kw, g.stride) == (4, 4, 1)
            && (1..=2).contains(&g.padding)
            && g.m >= 16
            && g.c >= 16
            && enabled();
        if !fits {
            return None;
        }
        Self::chunked(g.b, (g.oh.div_ceil(2), g.ow.div_ceil(2) + 1))
    }

    /// As many tile rows per chunk as make CHUNK_TILES, but at least one chunk per thread;
    /// `None` below MIN_CHUNK_TILES.
    fn chunked(b: usize, (th, tw): (usize, usize)) -> Option<Self> {
        let threads = num_threads().max(1);
        let mut rows = CHUNK_TILES.div_ceil(tw).clamp(1, th);
        while rows > 1 && b * th.div_ceil(rows) < threads {
            rows = rows.div_ceil(2);
        }
        (rows * tw >= MIN_CHUNK_TILES).then(|| Self::with_rows((th, tw), rows))
    }

    fn count(&self, b: usize) -> usize {
        b * self.per_image
    }

    /// A new vector of `len` values, written by `f(out, (image, lo, hi))` for every chunk
    /// (tile rows `lo..hi` of `image`) of a batch of `b`, the chunks in parallel.
    ///
    /// # Safety
    /// Each call must write only its own chunk's outputs, and the chunks together every
    /// element.
    unsafe fn fill(
        &self,
        b: usize,
        len: usize,
        f: impl Fn(Out, (usize, usize, usize)) + Sync,
    ) -> Vec<f32> {
        let mut v = Vec::with_capacity(len);
        let out = Out(v.as_mut_ptr());
        (0..self.count(b))
            .into_par_iter()
            .with_min_len(1)
            .for_each(|i| f(out, self.chunk(i)));
        // SAFETY: the caller's chunks wrote all `len` elements.
        unsafe { v.set_len(len) };
        v
    }

    /// Image and tile rows `[lo, hi)` of chunk `i`.
    fn chunk(&self, i: usize) -> (usize, usize, usize) {
        let (bi, j) = (i / self.per_image, i % self.per_image);
        let lo = j * self.rows;
        (bi, lo, (lo + self.rows).min(self.th))
    }
}

/// `DGCOLOR_WINOGRAD=0` ([`crate::Settings::winograd`]) sends every convolution through
/// im2col, for before/after runs.
fn enabled() -> bool {
    crate::settings().winograd
}

// ---------------------------------------------------------------------------------------
// The transforms of F(2, 2): outputs `y0 = d0 g0 + d1 g1`, `y1 = d1 g0 + d2 g1` from the
// products `(d0 - d1) g0`, `d1 (g0 + g1)`, `(d2 - d1) g1`; in 2-D each axis in turn. The
// tile loops run over many tiles at once, element `(i, j)` of every tile in one stream, so
// that they vectorise; no closures or iterator adaptors inside (they must inline into the
// `simd` copies).

/// `G g G^T` of a 2x2 filter, row-major 3x3.
#[inline(always)]
fn filter_tile(g: [[f32; 2]; 2]) -> [f32; XI] {
    let mut out = [0.0; XI];
    let r = [
        [g[0][0], g[0][0] + g[0][1], g[0][1]],
        [g[1][0], g[1][0] + g[1][1], g[1][1]],
    ];
    for l in 0..3 {
        out[l] = r[0][l];
        out[3 + l] = r[0][l] + r[1][l];
        out[6 + l] = r[1][l];
    }
    out
}

/// Tiles per block of the tile loops: each block is copied into fixed-size local arrays,
/// transformed there (vectorised: the compiler cannot prove that nine output streams do not
/// alias, so a loop over them directly stays scalar) and copied out.
const BLK: usize = 16;

/// Runs `f(t0, width)` over `0..len` in blocks of [`BLK`] (the last one shorter); `f` must
/// be `#[inline(always)]` (see [`simd`]).
#[inline(always)]
fn blocks(len: usize, mut f: impl FnMut(usize, usize)) {
    let mut t0 = 0;
    while t0 < len {
        let w = BLK.min(len - t0);
        f(t0, w);
        t0 += w;
    }
}

/// `B^T d B` of tiles `0..len`: `d[i][j][t]` is element `(i, j)` of tile `t`, and element
/// `(k, l)` of its transform goes to `out[(3k + l) * slab + t]`.
#[inline(always)]
fn input_tiles(d: &[[&[f32]; 3]; 3], out: &mut [f32], slab: usize, len: usize) {
    blocks(
        len,
        #[inline(always)]
        |t0, w| {
            let mut x = [[[0.0f32; BLK]; 3]; 3];
            for i in 0..3 {
                for j in 0..3 {
                    load(&mut x[i][j], &d[i][j][t0..], w);
                }
            }
            let mut y = [[0.0f32; BLK]; XI];
            for t in 0..BLK {
                let mut r = [[0.0f32; 3]; 3];
                for i in 0..3 {
                    let (a, b, c) = (x[i][0][t], x[i][1][t], x[i][2][t]);
                    r[i] = [a - b, b, c - b];
                }
                for l in 0..3 {
                    y[l][t] = r[0][l] - r[1][l];
                    y[3 + l][t] = r[1][l];
                    y[6 + l][t] = r[2][l] - r[1][l];
                }
            }
            for (xi, y) in y.iter().enumerate() {
                store(&mut out[xi * slab + t0..], y, w);
            }
        },
    );
}

/// `dst[..w] = src[..w]`, a fixed-size vector copy for a full block (a variable-length
/// `copy_from_slice` becomes a `memmove` call per stream).
#[inline(always)]
fn load(dst: &mut [f32; BLK], src: &[f32], w: usize) {
    if w == BLK {
        *dst = src[..BLK].try_into().expect("BLK values");
    } else {
        for (d, s) in dst[..w].iter_mut().zip(src) {
            *d = *s;
        }
    }
}

/// `dst[..w] = src[..w]`, as [`load`].
#[inline(always)]
fn store(dst: &mut [f32], src: &[f32; BLK], w: usize) {
    if w == BLK {
        dst[..BLK].copy_from_slice(src);
    } else {
        for (d, s) in dst[..w].iter_mut().zip(src) {
            *d = *s;
        }
    }
}

/// `A^T m A` of product tiles `t0..t0 + w` (`w <= BLK`), `m[(3i + j) * slab + t]` element
/// `(i, j)` of tile `t`: the 2x2 outputs plus `bias`, as `[y00, y01, y10, y11][t - t0]`.
#[inline(always)]
fn output_tiles(m: &[f32], slab: usize, t0: usize, w: usize, bias: f32) -> [[f32; BLK]; 4] {
    let mut x = [[0.0f32; BLK]; XI];
    for (xi, x) in x.iter_mut().enumerate() {
        load(x, &m[xi * slab + t0..], w);
    }
    let mut y = [[0.0f32; BLK]; 4];
    for t in 0..BLK {
        let mut s = [[0.0f32; 2]; 3];
        for i in 0..3 {
            let (a, b, c) = (x[3 * i][t], x[3 * i + 1][t], x[3 * i + 2][t]);
            s[i] = [a + b, b + c];
        }
        y[0][t] = s[0][0] + s[1][0] + bias;
        y[1][t] = s[0][1] + s[1][1] + bias;
        y[2][t] = s[1][0] + s[2][0] + bias;
        y[3][t] = s[1][1] + s[2][1] + bias;
    }
    y
}

/// `src` split by index modulo 4 into four consecutive runs of `len` (`dst[r * len + i] =
/// src[4i + r]`): strided reads done once per row, so that the tile loops read unit-stride
/// streams.
#[inline(always)]
fn deinterleave4(src: &[f32], dst: &mut [f32], len: usize) {
    let (src, dst) = (&src[..4 * len], &mut dst[..4 * len]);
    let (d0, rest) = dst.split_at_mut(len);
    let (d1, rest) = rest.split_at_mut(len);
    let (d2, d3) = rest.split_at_mut(len);
    for (i, q) in src.chunks_exact(4).enumerate() {
        d0[i] = q[0];
        d1[i] = q[1];
        d2[i] = q[2];
        d3[i] = q[3];
    }
}

/// `src` split into its even and odd positions, runs of `len` (as [`deinterleave4`]).
#[inline(always)]
fn deinterleave2(src: &[f32], dst: &mut [f32], len: usize) {
    let (src, dst) = (&src[..2 * len], &mut dst[..2 * len]);
    let (even, odd) = dst.split_at_mut(len);
    for ((q, e), o) in src.chunks_exact(2).zip(even).zip(odd) {
        *e = q[0];
        *o = q[1];
    }
}

/// Rows `first ..` of `plane [h, w]` (zero outside; as many as `split` holds), each
/// zero-padded by `pad` columns on the left (and on the right up to `K * run`) and split by
/// column modulo `K` (2 or 4) into `split [rows][K][run]`: column `K i + r - pad` of the
/// plane is run `r`, index `i`.
#[inline(always)]
fn split_rows<const K: usize>(
    plane: &[f32],
    (h, w): (usize, usize),
    (first, pad): (isize, usize),
    run: usize,
    row: &mut [f32],
    split: &mut [f32],
) {
    let rs = K * run;
    for (r, dst) in split.chunks_exact_mut(rs).enumerate() {
        let y = first + r as isize;
        if (0..h as isize).contains(&y) {
            row[..pad].fill(0.0);
            row[pad..pad + w].copy_from_slice(&plane[y as usize * w..][..w]);
            row[pad + w..rs].fill(0.0);
            if K == 2 {
                deinterleave2(row, dst, run);
            } else {
                deinterleave4(row, dst, run);
            }
        } else {
            dst.fill(0.0);
        }
    }
}

// ---------------------------------------------------------------------------------------

/// A raw output pointer shared by chunks that write disjoint rows.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: each chunk writes only its own rows (disjoint), and the vector outlives the loop.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// Through a method, so that closures capture the `Sync` wrapper, not the raw field.
    #[inline(always)]
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// Four 2x2 filters cut from a 4x4 filter `f`, transformed: filter `k`'s tap `(a, b)` is
/// `f[tap(k, a, b)]` (stride phases for [`conv_forward`], output phases of the adjoint for
/// [`conv_backward_data`], two-pixel shifts for [`conv_forward_s1`]).
#[inline(always)]
fn split_filters(f: &[f32], tap: impl Fn(usize, usize, usize) -> usize) -> [[f32; XI]; 4] {
    let mut out = [[0.0; XI]; 4];
    for (k, o) in out.iter_mut().enumerate() {
        let t = |a: usize, b: usize| f[tap(k, a, b)];
        *o = filter_tile([[t(0, 0), t(0, 1)], [t(1, 0), t(1, 1)]]);
    }
    out
}

/// The transformed 2x2 filters of every 4x4 filter of `w [M, C, 4, 4]` as `u[m][xi][k][c]`
/// (see [`split_filters`]): filter `(xi, k)` is the `[M, C]` matrix at `xi * 4C + k * C`
/// with row stride `36 C`, and `(xi, 0..4)` together the `[M, 4C]` matrix at `xi * 4C`.
fn filters_by_row(
    w: &[f32],
    (m, c): (usize, usize),
    tap: impl Fn(usize, usize, usize) -> usize + Sync,
) -> Scratch {
    let mut u = Scratch::take(m * XI * 4 * c);
    u.par_chunks_mut(XI * 4 * c)
        .enumerate()
        .for_each(|(mm, u)| {
            for ch in 0..c {
                let t = split_filters(&w[(mm * c + ch) * 16..][..16], &tap);
                for (k, t) in t.iter().enumerate() {
                    for (xi, &v) in t.iter().enumerate() {
                        u[(xi * 4 + k) * c + ch] = v;
                    }
                }
            }
        });
    u
}

/// Multiplies the 9 transformed filters with the transformed inputs into `prod [9][rows][n]`,
/// on this thread, summing one GEMM per term `(uo, vo)`: filter `xi` of the term is the
/// `[rows, depth]` matrix at `u[xi * xi_stride + uo..]` with row stride `rs`, its input the
/// `[depth, n]` matrix at `v[xi * slab + vo..]` with row stride `vrs`.
fn products(
    u: &[f32],
    (xi_stride, rs): (usize, usize),
    v: &[f32],
    (slab, vrs): (usize, usize),
    prod: &mut [f32],
    (rows, depth, n): (usize, usize, usize),
    terms: &[(usize, usize)],
) {
    for (k, &(uo, vo)) in terms.iter().enumerate() {
        assert!(
            u.len() >= 8 * xi_stride + uo + (rows - 1) * rs + depth
                && v.len() >= 8 * slab + vo + (depth - 1) * vrs + n,
            "winograd: operands too short"
        );
        for xi in 0..XI {
            // SAFETY: the operands lie inside `u` and `v` (checked above); prod's slabs are
            // `[rows, n]` row-major.
            unsafe {
                gemm_into(
                    (rows, n, depth),
                    &mut prod[xi * rows * n..][..rows * n],
                    n,
                    k > 0,
                    Mat::rows(&u[xi * xi_stride + uo..], rs),
                    Mat::rows(&v[xi * slab + vo..], vrs),
                    Threads::One,
                )
            }
        }
    }
}

/// Conv forward: columns `[B, M, OH, OW]` = act(conv(`img`, `w [M, C, 4, 4]`) + bias).
pub(crate) fn conv_forward(
    img: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeom,
    act: Act,
    plan: &Plan,
) -> Vec<f32> {
    let (c, m, h, wd, oh, ow) = (g.c, g.m, g.h, g.w, g.oh, g.ow);
    let depth = 4 * c;
    // Stride phase (p, q) of input channel c is channel (2p + q) * C + c of the 2x2
    // convolution, with taps w[.., 2a + p, 2b + q].
    let u = filters_by_row(w, (m, c), |pq, a, b| (2 * a + pq / 2) * 4 + 2 * b + pq % 2);
    let tw = plan.tw;
    // A padded input row, 4 * (tw + 1) long (image columns -1 ..= 4tw + 2), split by column
    // modulo 4 into runs of tw + 1: column 4tx - 1 + r of the image is run r, index tx.
    let (rs, run) = (4 * (tw + 1), tw + 1);
    // SAFETY: the chunks' output rows cover every row of every channel of every image.
    unsafe {
        plan.fill(g.b, g.cols_len(), |out, (bi, lo, hi)| {
            let n = (hi - lo) * tw;
            let mut v = Scratch::take(XI * depth * n);
            // Image rows 4lo - 1 ..= 4hi: phase p's tile row i of tile row ty is
            // image row 4ty - 1 + p + 2i, split row 4(ty - lo) + p + 2i.
            let nrows = 4 * (hi - lo) + 2;
            let mut row = Scratch::take(rs);
            let mut split = Scratch::take(nrows * rs);
            simd(
                #[inline(always)]
                || {
                    for ch in 0..c {
                        let plane = &img[(bi * c + ch) * h * wd..][..h * wd];
                        let first = 4 * lo as isize - 1;
                        split_rows::<4>(plane, (h, wd), (first, 1), run, &mut row, &mut split);
                        for ty in lo..hi {
                            for pq in 0..4 {
                                let (p, q) = (pq / 2, pq % 2);
                                // Tile column tx of phase q reads image columns
                                // 4tx - 1 + q + 2j: runs q, q + 2, then q again one on.
                                let at = |i: usize| {
                                    let row = &split[(4 * (ty - lo) + p + 2 * i) * rs..];
                                    [
                                        &row[q * run..][..tw],
                                        &row[(q + 2) * run..][..tw],
                                        &row[q * run + 1..][..tw],
                                    ]
                                };
                                let d = [at(0), at(1), at(2)];
                                let off = (pq * c + ch) * n + (ty - lo) * tw;
                                input_tiles(&d, &mut v[off..], depth * n, tw);
                            }
                        }
                    }
                },
            );
            let mut prod = Scratch::take(XI * m * n);
            products(
                &u,
                (depth, XI * depth),
                &v,
                (depth * n, n),
                &mut prod,
                (m, depth, n),
                &[(0, 0)],
            );
            drop(v);
            simd(
                #[inline(always)]
                || {
                    for mm in 0..m {
                        let b = bias.map_or(0.0, |b| b[mm]);
                        let plane = std::slice::from_raw_parts_mut(
                            out.ptr().add((bi * m + mm) * oh * ow + 2 * lo * ow),
                            2 * (hi - lo) * ow,
                        );
                        for (r, rows) in plane.chunks_exact_mut(2 * ow).enumerate() {
                            let (r0, r1) = rows.split_at_mut(ow);
                            let mv = &prod[mm * n + r * tw..];
                            blocks(
                                tw,
                                #[inline(always)]
                                |t0, w| {
                                    let y = output_tiles(mv, m * n, t0, w, b);
                                    for t in 0..w {
                                        r0[2 * (t0 + t)] = y[0][t];
                                        r0[2 * (t0 + t) + 1] = y[1][t];
                                        r1[2 * (t0 + t)] = y[2][t];
                                        r1[2 * (t0 + t) + 1] = y[3][t];
                                    }
                                },
                            );
                        }
                        act.apply_block(plane);
                    }
                },
            );
        })
    }
}

/// Conv adjoint (conv input gradient, transposed-conv forward): image `[B, C, H, W]` =
/// act(adjoint of conv(`w [M, C, 4, 4]`) applied to `cols [B, M, OH, OW]` + bias `[C]`).
///
/// Output phase `(p, q)` (pixel `(2I + p, 2J + q)`) is the 2x2 convolution
/// `sum_ab g_pq[a][b] cols[I - 1 + p + a, J - 1 + q + b]` with `g_pq[a][b] = w[.., 3 - p -
/// 2a, 3 - q - 2b]`. One grid of 3x3 input tiles serves all four phases (transforming the
/// input once per phase costs more than the GEMMs save): tile `ti` reads columns rows
/// `2ti - 1 ..= 2ti + 1`, and its two outputs per axis are `I = 2ti + o` for phase 0 and
/// `2ti + o - 1` for phase 1, so its four phases fill pixel rows `4ti - 1 ..= 4ti + 2`
/// (columns likewise). The grid has one tile row and column more than the image needs;
/// blocks are clipped to the image.
pub(crate) fn conv_backward_data(
    cols: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeom,
    act: Act,
    plan: &Plan,
) -> Vec<f32> {
    let (c, m, h, wd, oh, ow) = (g.c, g.m, g.h, g.w, g.oh, g.ow);
    // u[c][pq][xi][m]: phase pq's filter xi is the [c, m] matrix u[.., pq, xi, ..]. Built by
    // blocks of FB x FB filters, staged so that every store is a run of FB consecutive
    // column channels: storing each filter's 36 values directly hits 36 rows 4*m bytes apart
    // (the same cache sets), which takes longer than the GEMMs.
    const FB: usize = 16;
    let mut u = Scratch::take(c * 4 * XI * m);
    u.par_chunks_mut(FB * 4 * XI * m)
        .enumerate()
        .for_each(|(cb, u)| {
            let chs = cb * FB..(cb * FB + FB).min(c);
            let mut stage = [[[0.0f32; FB]; 4 * XI]; FB];
            for m0 in (0..m).step_by(FB) {
                let mb = FB.min(m - m0);
                for j in 0..mb {
                    for (k, ch) in chs.clone().enumerate() {
                        let t = split_filters(&w[((m0 + j) * c + ch) * 16..][..16], |pq, a, b| {
                            (3 - pq / 2 - 2 * a) * 4 + 3 - pq % 2 - 2 * b
                        });
                        for (r, v) in t.iter().flatten().enumerate() {
                            stage[k][r][j] = *v;
                        }
                    }
                }
                for (k, st) in stage.iter().take(chs.len()).enumerate() {
                    for (r, st) in st.iter().enumerate() {
                        u[(k * 4 * XI + r) * m + m0..][..mb].copy_from_slice(&st[..mb]);
                    }
                }
            }
        });
    let tw = plan.tw;
    // A padded columns row, 2 * (tw + 1) long (columns -1 ..= 2tw), split into even and odd
    // positions: column 2k + r - 1 is run r, index k.
    let (rs, run) = (2 * (tw + 1), tw + 1);
    // SAFETY: every pixel lies in the block of one tile of one chunk, and the four phases
    // write all sixteen pixels of each block that fall inside the image.
    unsafe {
        plan.fill(g.b, g.image_len(), |out, (bi, lo, hi)| {
            let n = (hi - lo) * tw;
            // Columns rows 2lo - 1 ..= 2hi - 1: tile row ti's row i is split row
            // 2(ti - lo) + i.
            let nrows = 2 * (hi - lo) + 1;
            let mut row = Scratch::take(rs);
            let mut split = Scratch::take(nrows * rs);
            let mut v = Scratch::take(XI * m * n);
            simd(
                #[inline(always)]
                || {
                    for mm in 0..m {
                        let plane = &cols[(bi * m + mm) * oh * ow..][..oh * ow];
                        let first = 2 * lo as isize - 1;
                        split_rows::<2>(plane, (oh, ow), (first, 1), run, &mut row, &mut split);
                        for ti in lo..hi {
                            // Tile column tj reads columns 2tj - 1, 2tj, 2tj + 1.
                            let at = |i: usize| {
                                let row = &split[(2 * (ti - lo) + i) * rs..];
                                [&row[..tw], &row[run..][..tw], &row[1..][..tw]]
                            };
                            let d = [at(0), at(1), at(2)];
                            let off = mm * n + (ti - lo) * tw;
                            input_tiles(&d, &mut v[off..], m * n, tw);
                        }
                    }
                },
            );
            drop(split);
            let mut prod = Scratch::take(XI * c * n);
            for pq in 0..4 {
                let (p, q) = (pq / 2, pq % 2);
                products(
                    &u[pq * XI * m..],
                    (m, 4 * XI * m),
                    &v,
                    (m * n, n),
                    &mut prod,
                    (c, m, n),
                    &[(0, 0)],
                );
                simd(
                    #[inline(always)]
                    || {
                        for ch in 0..c {
                            let b = bias.map_or(0.0, |b| b[ch]);
                            let plane = out.ptr().add((bi * c + ch) * h * wd);
                            for ti in lo..hi {
                                let mv = &prod[ch * n + (ti - lo) * tw..];
                                // Pixel row 4ti + 2o - p, column 4tj + 2o' - q.
                                let row = |o: usize| {
                                    let y = (4 * ti + 2 * o) as isize - p as isize;
                                    (0..h as isize)
                                        .contains(&y)
                                        .then(|| plane.add(y as usize * wd))
                                };
                                let rows = [row(0), row(1)];
                                blocks(
                                    tw,
                                    #[inline(always)]
                                    |t0, w| {
                                        let y = output_tiles(mv, c * n, t0, w, b);
                                        for (o, row) in rows.iter().enumerate() {
                                            let Some(row) = *row else { continue };
                                            for oc in 0..2 {
                                                let ys = &y[2 * o + oc][..w];
                                                for (t, &v) in ys.iter().enumerate() {
                                                    let x = 4 * (t0 + t) + 2 * oc;
                                                    // Column x - q, inside the image.
                                                    if (q..wd + q).contains(&x) {
                                                        row.add(x - q).write(v);
                                                    }
                                                }
                                            }
                                        }
                                    },
                                );
                            }
                        }
                    },
                );
            }
            if act != Act::Identity {
                let (r0, r1) = ((4 * lo).saturating_sub(1), (4 * hi - 1).min(h));
                simd(
                    #[inline(always)]
                    || {
                        for ch in 0..c {
                            act.apply_block(std::slice::from_raw_parts_mut(
                                out.ptr().add((bi * c + ch) * h * wd + r0 * wd),
                                (r1 - r0) * wd,
                            ));
                        }
                    },
                );
            }
        })
    }
}

/// Stride-1 4x4 convolution with padding 1 or 2 (the PatchGAN's 256 -> 512 layer at 256 px,
/// most of a pix2pix iteration's discriminator time, and its adjoint, [`adjoint_s1`]):
/// columns `[B, M, OH, OW]` = act(conv(`img`, `w [M, C, 4, 4]`) + bias).
///
/// Split the kernel into four 2x2 filters at shifts `(2ka, 2kb)`: the output is the sum of
/// four 2x2 convolutions, shift `(ka, kb)`'s read one Winograd tile further down / right
/// than its output tile. So one transform of the input on a grid with one spare tile row
/// and column serves all four, each a GEMM over the same transformed input offset by `ka`
/// grid rows and `kb` tiles (the grid is flattened with the spare column, so the offset is
/// constant; outputs of the spare column are dropped). 36 products per 2x2 output block
/// instead of 64.
pub(crate) fn conv_forward_s1(
    img: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeom,
    act: Act,
    plan: &Plan,
) -> Vec<f32> {
    let (c, m, h, wd, oh, ow, pad) = (g.c, g.m, g.h, g.w, g.oh, g.ow, g.padding);
    // Shift (ka, kb) (index 2ka + kb) has taps w[.., 2ka + a, 2kb + b].
    let u = filters_by_row(w, (m, c), |s, a, b| (2 * (s / 2) + a) * 4 + 2 * (s % 2) + b);
    // Grid rows of `gw` tiles, the last one spare; tile gx reads image columns 2gx - pad ..=
    // 2gx - pad + 2 (split into even and odd positions: column 2k + r - pad is run r, index
    // k), tile row gy image rows 2gy - pad ..= 2gy - pad + 2.
    let gw = plan.tw;
    let tw = gw - 1;
    let (rs, run) = (2 * (gw + 1), gw + 1);
    let terms = [(0, 0), (c, 1), (2 * c, gw), (3 * c, gw + 1)];
    // SAFETY: the chunks' output rows cover every row of every channel of every image, and
    // each output tile (with its valid columns) every column.
    unsafe {
        plan.fill(g.b, g.cols_len(), |out, (bi, lo, hi)| {
            // Output tile rows lo..hi read grid rows lo ..= hi, plus one value past the
            // end for the last shift.
            let (n, nv) = ((hi - lo) * gw, (hi - lo + 1) * gw + 1);
            let nrows = 2 * (hi - lo + 1) + 1;
            let mut row = Scratch::take(rs);
            let mut split = Scratch::take(nrows * rs);
            let mut v = Scratch::take(XI * c * nv);
            simd(
                #[inline(always)]
                || {
                    for ch in 0..c {
                        let plane = &img[(bi * c + ch) * h * wd..][..h * wd];
                        let first = 2 * lo as isize - pad as isize;
                        split_rows::<2>(plane, (h, wd), (first, pad), run, &mut row, &mut split);
                        for gy in 0..hi - lo + 1 {
                            let at = |i: usize| {
                                let row = &split[(2 * gy + i) * rs..];
                                [&row[..gw], &row[run..][..gw], &row[1..][..gw]]
                            };
                            let d = [at(0), at(1), at(2)];
                            input_tiles(&d, &mut v[ch * nv + gy * gw..], c * nv, gw);
                        }
                        for xi in 0..XI {
                            v[(xi * c + ch) * nv + nv - 1] = 0.0;
                        }
                    }
                },
            );
            drop(split);
            let mut prod = Scratch::take(XI * m * n);
            products(
                &u,
                (4 * c, XI * 4 * c),
                &v,
                (c * nv, nv),
                &mut prod,
                (m, c, n),
                &terms,
            );
            drop(v);
            let (r0, r1) = (2 * lo, (2 * hi).min(oh));
            simd(
                #[inline(always)]
                || {
                    for mm in 0..m {
                        let b = bias.map_or(0.0, |b| b[mm]);
                        let plane = std::slice::from_raw_parts_mut(
                            out.ptr().add((bi * m + mm) * oh * ow + r0 * ow),
                            (r1 - r0) * ow,
                        );
                        for (r, orow) in plane.chunks_exact_mut(ow).enumerate() {
                            let (ty, i) = (r / 2, r % 2);
                            let mv = &prod[mm * n + ty * gw..];
                            blocks(
                                tw,
                                #[inline(always)]
                                |t0, w| {
                                    let y = output_tiles(mv, m * n, t0, w, b);
                                    for j in 0..2 {
                                        let ys = &y[2 * i + j][..w];
                                        for (t, &v) in ys.iter().enumerate() {
                                            let x = 2 * (t0 + t) + j;
                                            if x < ow {
                                                orow[x] = v;
                                            }
                                        }
                                    }
                                },
                            );
                        }
                        act.apply_block(plane);
                    }
                },
            );
        })
    }
}

/// The adjoint of a 4x4 stride-1 padding-1 convolution (its input gradient): image
/// `[B, C, H, W]` = act(adjoint(`w [M, C, 4, 4]`) applied to `cols [B, M, OH, OW]` + bias),
/// computed by [`conv_forward_s1`] as the convolution of the columns with the flipped,
/// transposed filters and padding 2; `None` where that does not apply or pay.
pub(crate) fn adjoint_s1(
    cols: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeom,
    act: Act,
) -> Option<Vec<f32>> {
    let ga = adjoint_s1_geom(g)?;
    let plan = Plan::conv_s1(&ga)?;
    Some(adjoint_s1_with(cols, w, bias, &ga, act, &plan))
}

/// The padding-2 convolution that is the adjoint of `g` (4x4, stride 1, padding 1): columns
/// `[B, M, OH, OW]` in, image `[B, C, H, W]` out.
fn adjoint_s1_geom(g: &ConvGeom) -> Option<ConvGeom> {
    if (g.kh, g.kw, g.stride, g.padding) != (4, 4, 1, 1) {
        return None;
    }
    let ga = ConvGeom::conv((g.b, g.m, g.oh, g.ow), (g.c, g.m, 4, 4), 1, 2).ok()?;
    debug_assert_eq!((ga.oh, ga.ow), (g.h, g.w));
    Some(ga)
}

/// [`adjoint_s1`] on the adjoint's geometry `ga` with a given plan.
fn adjoint_s1_with(
    cols: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    ga: &ConvGeom,
    act: Act,
    plan: &Plan,
) -> Vec<f32> {
    // flipped[c][m][ky][kx] = w[m][c][3 - ky][3 - kx] (ga: m = C filters over c = M channels).
    let (c, m) = (ga.m, ga.c);
    let mut flipped = Scratch::take(c * m * 16);
    flipped
        .par_chunks_mut(m * 16)
        .enumerate()
        .for_each(|(ch, f)| {
            for (mm, f) in f.chunks_exact_mut(16).enumerate() {
                let src = &w[(mm * c + ch) * 16..][..16];
                for (k, v) in f.iter_mut().enumerate() {
                    *v = src[15 - k];
                }
            }
        });
    conv_forward_s1(cols, &flipped, bias, ga, act, plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Direct 4x4 convolution (stride and padding of `g`) in f64: the independent reference.
    fn direct(img: &[f32], w: &[f32], bias: &[f32], g: &ConvGeom) -> Vec<f64> {
        let (s, p) = (g.stride, g.padding);
        let mut out = vec![0.0f64; g.cols_len()];
        for b in 0..g.b {
            for m in 0..g.m {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let mut acc = bias[m] as f64;
                        for c in 0..g.c {
                            for ky in 0..4 {
                                for kx in 0..4 {
                                    let (y, x) = (s * oy + ky, s * ox + kx);
                                    if (p..g.h + p).contains(&y) && (p..g.w + p).contains(&x) {
                                        let v = img[((b * g.c + c) * g.h + y - p) * g.w + x - p];
                                        acc +=
                                            v as f64 * w[((m * g.c + c) * 4 + ky) * 4 + kx] as f64;
                                    }
                                }
                            }
                        }
                        out[((b * g.m + m) * g.oh + oy) * g.ow + ox] = acc;
                    }
                }
            }
        }
        out
    }

    /// Direct adjoint (transposed convolution) in f64: pixel `(s iy - p + ky, s ix - p + kx)`
    /// gets `w[m, c, ky, kx] * cols[m, iy, ix]`.
    fn direct_adjoint(cols: &[f32], w: &[f32], bias: &[f32], g: &ConvGeom) -> Vec<f64> {
        let (s, p) = (g.stride, g.padding);
        let mut out = vec![0.0f64; g.image_len()];
        for b in 0..g.b {
            for c in 0..g.c {
                let plane = &mut out[(b * g.c + c) * g.h * g.w..][..g.h * g.w];
                plane.fill(bias[c] as f64);
                for m in 0..g.m {
                    for iy in 0..g.oh {
                        for ix in 0..g.ow {
                            let v = cols[((b * g.m + m) * g.oh + iy) * g.ow + ix] as f64;
                            for ky in 0..4 {
                                for kx in 0..4 {
                                    let (y, x) = (s * iy + ky, s * ix + kx);
                                    if (p..g.h + p).contains(&y) && (p..g.w + p).contains(&x) {
                                        let wv = w[((m * g.c + c) * 4 + ky) * 4 + kx] as f64;
                                        plane[(y - p) * g.w + x - p] += v * wv;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Random operands: an input of `n_in` values, filters `[m, c, 4, 4]` and `n_bias` biases.
    fn operands(seed: u64, n_in: usize, (m, c): (usize, usize), n_bias: usize) -> [Vec<f32>; 3] {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        [n_in, m * c * 16, n_bias].map(|n| (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect())
    }

    /// `run(plan, act)` for every plan: without activation within 1e-5 of `want` (relative
    /// to its largest magnitude); with `act` fused, exactly `act` of that result.
    fn check_chunkings(
        case: &str,
        want: &[f64],
        plans: &[Plan],
        act: Act,
        run: impl Fn(&Plan, Act) -> Vec<f32>,
    ) {
        let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        for plan in plans {
            let got = run(plan, Act::Identity);
            assert_eq!(got.len(), want.len(), "{case}");
            let err = got
                .iter()
                .zip(want)
                .fold(0.0f64, |a, (g, w)| a.max((*g as f64 - w).abs()));
            assert!(
                err <= 1e-5 * scale,
                "{case} {plan:?}: max error {err}, scale {scale}"
            );
            let mut want_act = got;
            act.apply_block(&mut want_act);
            assert_eq!(run(plan, act), want_act, "{case} {plan:?} with {act:?}");
        }
    }

    /// Plans of `rows` tile rows per chunk (and the whole image) over a tile grid.
    fn by_rows(grid: (usize, usize), rows: &[usize]) -> Vec<Plan> {
        rows.iter()
            .chain([&grid.0])
            .map(|&r| Plan::with_rows(grid, r))
            .collect()
    }

    #[test]
    fn matches_direct_convolution_for_every_chunking() {
        // (batch, channels, filters, height, width): batch 1, odd channel and filter counts,
        // a non-square image whose tile rows do not divide evenly into chunks.
        for (b, c, m, h, w) in [(1, 4, 16, 8, 8), (2, 5, 17, 12, 20), (3, 7, 33, 24, 16)] {
            let g = ConvGeom::conv((b, c, h, w), (m, c, 4, 4), 2, 1).unwrap();
            let [img, wt, bias] = operands(3, g.image_len(), (m, c), m);
            check_chunkings(
                &format!("conv {:?}", (b, c, m, h, w)),
                &direct(&img, &wt, &bias, &g),
                &by_rows((g.oh / 2, g.ow / 2), &[1, 2, 5]),
                Act::LeakyRelu(0.2),
                |plan, act| conv_forward(&img, &wt, Some(&bias), &g, act, plan),
            );
        }
    }

    #[test]
    fn adjoint_matches_direct_transposed_convolution_for_every_chunking() {
        // (batch, image channels, column channels, column height, width)
        for (b, c, m, oh, ow) in [(1, 16, 4, 2, 2), (2, 17, 5, 6, 10), (3, 19, 8, 8, 4)] {
            let g = ConvGeom::transposed((b, m, oh, ow), (m, c, 4, 4), 2, 1).unwrap();
            let [cols, wt, bias] = operands(5, g.cols_len(), (m, c), c);
            check_chunkings(
                &format!("adjoint {:?}", (b, c, m, oh, ow)),
                &direct_adjoint(&cols, &wt, &bias, &g),
                &by_rows((oh / 2 + 1, ow / 2 + 1), &[1, 2, 3]),
                Act::Relu,
                |plan, act| conv_backward_data(&cols, &wt, Some(&bias), &g, act, plan),
            );
        }
    }

    #[test]
    fn stride_one_matches_direct_convolution_for_every_chunking() {
        // Odd and even outputs (the PatchGAN's 32 -> 31), batch 1, a plane narrower than
        // tall.
        for (b, c, m, h, w) in [(1, 16, 16, 5, 5), (2, 17, 18, 8, 6), (3, 16, 20, 9, 12)] {
            let g = ConvGeom::conv((b, c, h, w), (m, c, 4, 4), 1, 1).unwrap();
            let [img, wt, bias] = operands(7, g.image_len(), (m, c), m);
            check_chunkings(
                &format!("stride 1 {:?}", (b, c, m, h, w)),
                &direct(&img, &wt, &bias, &g),
                &by_rows((g.oh.div_ceil(2), g.ow.div_ceil(2) + 1), &[1, 2]),
                Act::LeakyRelu(0.2),
                |plan, act| conv_forward_s1(&img, &wt, Some(&bias), &g, act, plan),
            );
        }
    }

    #[test]
    fn stride_one_adjoint_matches_direct_transposed_convolution() {
        // (batch, image channels, column channels, image side): the PatchGAN's 32 -> 31
        // shape at 8 px, and a batch of one.
        for (b, c, m, side) in [(2, 16, 17, 8), (1, 20, 16, 11)] {
            let g = ConvGeom::conv((b, c, side, side), (m, c, 4, 4), 1, 1).unwrap();
            let [cols, wt, bias] = operands(9, g.cols_len(), (m, c), c);
            let ga = adjoint_s1_geom(&g).unwrap();
            check_chunkings(
                &format!("stride-1 adjoint {:?}", (b, c, m, side)),
                &direct_adjoint(&cols, &wt, &bias, &g),
                &by_rows((ga.oh.div_ceil(2), ga.ow.div_ceil(2) + 1), &[1, 3]),
                Act::Relu,
                |plan, act| adjoint_s1_with(&cols, &wt, Some(&bias), &ga, act, plan),
            );
        }
    }

    #[test]
    fn applies_only_where_it_pays() {
        let geom = |c, m, s| ConvGeom::conv((4, c, s, s), (m, c, 4, 4), 2, 1).unwrap();
        if enabled() {
            assert!(Plan::conv(&geom(64, 128, 128)).is_some());
        }
        // One input channel (the generator's first layer), a single filter, a small plane
        // (8x8 output), odd output sizes, another kernel or stride.
        assert!(Plan::conv(&geom(1, 64, 256)).is_none());
        assert!(Plan::conv(&geom(64, 1, 128)).is_none());
        assert!(Plan::conv(&geom(64, 128, 16)).is_none());
        assert!(Plan::conv(&geom(32, 64, 32)).is_none()); // 64 tiles per image
        assert!(Plan::conv(&geom(64, 128, 30)).is_none());
        let g3 = ConvGeom::conv((4, 64, 128, 128), (128, 64, 3, 3), 1, 1).unwrap();
        assert!(Plan::conv(&g3).is_none());
        let g1 = ConvGeom::conv((4, 64, 128, 128), (128, 64, 4, 4), 1, 1).unwrap();
        assert!(Plan::conv(&g1).is_none());
        // The adjoint: GEMM rows are the image channels, depth the column channels.
        let t = |m, c, s| ConvGeom::transposed((4, m, s, s), (m, c, 4, 4), 2, 1).unwrap();
        if enabled() {
            assert!(Plan::adjoint(&t(256, 64, 64)).is_some());
        }
        assert!(Plan::adjoint(&t(128, 2, 128)).is_none()); // the output layer's ab channels
        assert!(Plan::adjoint(&t(1024, 256, 16)).is_none()); // 81 tiles per image

        // Stride 1: the PatchGAN's 256 -> 512 layer at 256 px, not its 512 -> 1 output.
        let s1 = |c, m, s| ConvGeom::conv((4, c, s, s), (m, c, 4, 4), 1, 1).unwrap();
        if enabled() {
            assert!(Plan::conv_s1(&s1(256, 512, 32)).is_some());
        }
        assert!(Plan::conv_s1(&s1(512, 1, 31)).is_none());
        assert!(Plan::conv_s1(&s1(128, 256, 8)).is_none()); // 64 px: 5 x 5 tiles
    }
}
