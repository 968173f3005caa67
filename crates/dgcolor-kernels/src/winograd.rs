//! Winograd's minimal filtering F(2x2, 2x2) (Lavin & Gray, "Fast Algorithms for
//! Convolutional Neural Networks", CVPR 2016) for the U-Net's 4x4, stride-2, padding-1
//! convolutions: the forward pass of a conv and the input gradient of a transposed conv.
//!
//! Why it applies: a 4x4 stride-2 convolution is a 2x2 stride-1 convolution over the four
//! stride phases of its padded input (`4C` channels). F(2x2, 2x2) computes each 2x2 block of
//! its outputs from a 3x3 input tile with 9 products instead of 16, so the GEMMs (where the
//! time goes: bench/README.md) do 9/16 of im2col's work. The transforms only add and
//! subtract (matrix entries 0 and ±1), so results differ from the direct sum by
//! reassociation only (tests: within 1e-5 relative of an f64 direct sum).
//!
//! Not used for the adjoint (conv input gradient, transposed-conv forward): each of its
//! four output phases is a 2x2 convolution too, but transforming the (2-4x wider) input once
//! per phase cost more than the GEMMs saved (measured per U-Net layer at 256 px: 1.0-1.3x
//! slower), so those stay on im2col/col2im, as do the weight gradients.
//!
//! The tiles are processed in chunks of whole tile rows of one image, in parallel: each
//! chunk transforms its inputs, runs the 9 GEMMs on one thread and transforms back into its
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
/// Fewer tiles per chunk than this and im2col is faster: the caller falls back to it. Per
/// layer, 2 threads (2026-11-27): at 256 px, batch 4, 64 -> 128 at 128x128 input (1024
/// tiles per image) 29-36 -> 17-21 ms, 64 -> 256 42-62 -> 28-32 ms, 128 -> 256 at 64x64
/// (256 tiles) 17-30 -> 13-20 ms; at 64 px, batch 16, 32 -> 64 at 32x32 (64 tiles per
/// image) 1.5-1.6 -> 1.9-2.4 ms, 16 -> 32 0.5 -> 1.0 ms: the nine small GEMMs per chunk and
/// the transforms then cost more than the products save.
const MIN_CHUNK_TILES: usize = 256;

/// How a layer's tiles are cut into chunks: `rows` tile rows of one image each.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    /// Tile grid of one image: `OH / 2 x OW / 2` (the columns side of the geometry).
    th: usize,
    tw: usize,
    rows: usize,
    per_image: usize,
}

impl Plan {
    /// The plan for `g`, `rows` tile rows per chunk (clamped to the image).
    fn with_rows(g: &ConvGeom, rows: usize) -> Self {
        let (th, tw) = (g.oh / 2, g.ow / 2);
        let rows = rows.clamp(1, th);
        Self {
            th,
            tw,
            rows,
            per_image: th.div_ceil(rows),
        }
    }

    /// The plan for `g`, or `None` when F(2x2, 2x2) does not apply (another kernel, stride
    /// or padding, odd sizes) or would not pay (too few tiles per chunk).
    pub(crate) fn new(g: &ConvGeom) -> Option<Self> {
        // At least 16 filters and 4 input channels (a GEMM depth of 16): the first layer's
        // single L channel made the transforms cost more than the products (2.6 -> 3.9 ms).
        let shape_fits = (g.kh, g.kw, g.stride, g.padding) == (4, 4, 2, 1)
            && g.h == 2 * g.oh
            && g.w == 2 * g.ow
            && g.oh.is_multiple_of(2)
            && g.ow.is_multiple_of(2)
            && g.m >= 16
            && g.c >= 4;
        if !shape_fits || !enabled() {
            return None;
        }
        let (th, tw) = (g.oh / 2, g.ow / 2);
        let threads = num_threads().max(1);
        // As many tile rows as make CHUNK_TILES, but at least one chunk per thread.
        let mut rows = CHUNK_TILES.div_ceil(tw).clamp(1, th);
        while rows > 1 && g.b * th.div_ceil(rows) < threads {
            rows = rows.div_ceil(2);
        }
        (rows * tw >= MIN_CHUNK_TILES).then(|| Self::with_rows(g, rows))
    }

    fn count(&self, b: usize) -> usize {
        b * self.per_image
    }

    /// Image and tile rows `[lo, hi)` of chunk `i`.
    fn chunk(&self, i: usize) -> (usize, usize, usize) {
        let (bi, j) = (i / self.per_image, i % self.per_image);
        let lo = j * self.rows;
        (bi, lo, (lo + self.rows).min(self.th))
    }
}

/// `DGCOLOR_WINOGRAD=0` sends every convolution through im2col, for before/after runs.
fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("DGCOLOR_WINOGRAD").map_or(true, |v| v != "0"))
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

/// Rows `first ..` of `plane [h, w]` (zero outside; as many as `split` holds), each
/// zero-padded by one column on the left (and on the right up to `4 * run`) and split by
/// column modulo 4 into `split [rows][4][run]`: column `4i + r - 1` of the plane is run
/// `r`, index `i`.
#[inline(always)]
fn split_rows(
    plane: &[f32],
    (h, w): (usize, usize),
    first: isize,
    run: usize,
    row: &mut [f32],
    split: &mut [f32],
) {
    let rs = 4 * run;
    for (r, dst) in split.chunks_exact_mut(rs).enumerate() {
        let y = first + r as isize;
        if (0..h as isize).contains(&y) {
            row[0] = 0.0;
            row[1..w + 1].copy_from_slice(&plane[y as usize * w..][..w]);
            row[w + 1..rs].fill(0.0);
            deinterleave4(row, dst, run);
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

/// A vector of `len` f32s that `f(out)` writes in full through the raw pointer.
///
/// # Safety
/// `f` must write every element before returning.
unsafe fn filled(len: usize, f: impl FnOnce(Out)) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    f(Out(v.as_mut_ptr()));
    // SAFETY: the caller's `f` wrote all `len` elements.
    unsafe { v.set_len(len) };
    v
}

/// The four 2x2 stride-phase filters of a 4x4 filter `f`, transformed: phase `(p, q)`
/// (index `2p + q`) has taps `f[2a + p][2b + q]`.
#[inline(always)]
fn phase_filters(f: &[f32]) -> [[f32; XI]; 4] {
    let mut out = [[0.0; XI]; 4];
    for (pq, o) in out.iter_mut().enumerate() {
        let (p, q) = (pq / 2, pq % 2);
        let tap = |a: usize, b: usize| f[(2 * a + p) * 4 + 2 * b + q];
        *o = filter_tile([[tap(0, 0), tap(0, 1)], [tap(1, 0), tap(1, 1)]]);
    }
    out
}

/// Multiplies the 9 transformed filters (filter `xi` is the `[rows, depth]` matrix at
/// `u[xi * xi_stride..]` with row stride `rs`) with the transformed inputs `v [9][depth][n]`
/// into `prod [9][rows][n]`, on this thread.
fn products(
    u: &[f32],
    (xi_stride, rs): (usize, usize),
    v: &[f32],
    prod: &mut [f32],
    (rows, depth, n): (usize, usize, usize),
) {
    assert!(
        u.len() >= 8 * xi_stride + (rows - 1) * rs + depth,
        "winograd: filters too short"
    );
    for xi in 0..XI {
        // SAFETY: filter xi is `[rows, depth]` with row stride rs inside `u` (checked above);
        // v's and prod's slabs are `[depth, n]` and `[rows, n]` row-major.
        unsafe {
            gemm_into(
                (rows, n, depth),
                &mut prod[xi * rows * n..][..rows * n],
                n,
                false,
                Mat::rows(&u[xi * xi_stride..], rs),
                Mat::rows(&v[xi * depth * n..][..depth * n], n),
                Threads::One,
            )
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
    // u[m][xi][c * 4 + p * 2 + q]: stride phase (p, q) of input channel c is a channel of
    // the 2x2 convolution, with taps w[.., 2a + p, 2b + q]; filter xi is u[.., xi, ..].
    let mut u = Scratch::take(m * XI * depth);
    u.par_chunks_mut(XI * depth)
        .enumerate()
        .for_each(|(mm, u)| {
            for ch in 0..c {
                let t = phase_filters(&w[(mm * c + ch) * 16..][..16]);
                for (pq, t) in t.iter().enumerate() {
                    for (xi, &v) in t.iter().enumerate() {
                        u[xi * depth + ch * 4 + pq] = v;
                    }
                }
            }
        });
    let tw = plan.tw;
    // A padded input row, 4 * (tw + 1) long (image columns -1 ..= 4tw + 2), split by column
    // modulo 4 into runs of tw + 1: column 4tx - 1 + r of the image is run r, index tx.
    let (rs, run) = (4 * (tw + 1), tw + 1);
    // SAFETY: the chunks' output rows cover every row of every channel of every image.
    unsafe {
        filled(g.cols_len(), |out| {
            (0..plan.count(g.b))
                .into_par_iter()
                .with_min_len(1)
                .for_each(|ci| {
                    let (bi, lo, hi) = plan.chunk(ci);
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
                                split_rows(plane, (h, wd), first, run, &mut row, &mut split);
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
                                        let off = (ch * 4 + pq) * n + (ty - lo) * tw;
                                        input_tiles(&d, &mut v[off..], depth * n, tw);
                                    }
                                }
                            }
                        },
                    );
                    let mut prod = Scratch::take(XI * m * n);
                    products(&u, (depth, XI * depth), &v, &mut prod, (m, depth, n));
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
                });
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Direct 4x4 stride-2 padding-1 convolution in f64: the independent reference.
    fn direct(img: &[f32], w: &[f32], bias: &[f32], g: &ConvGeom) -> Vec<f64> {
        let mut out = vec![0.0f64; g.cols_len()];
        for b in 0..g.b {
            for m in 0..g.m {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let mut acc = bias[m] as f64;
                        for c in 0..g.c {
                            for ky in 0..4 {
                                for kx in 0..4 {
                                    let (y, x) = (2 * oy + ky, 2 * ox + kx);
                                    if (1..=g.h).contains(&y) && (1..=g.w).contains(&x) {
                                        let v = img[((b * g.c + c) * g.h + y - 1) * g.w + x - 1];
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

    fn random(n: usize, rng: &mut impl Rng) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    #[test]
    fn matches_direct_convolution_for_every_chunking() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        // (batch, channels, filters, height, width): batch 1, odd channel and filter counts,
        // a non-square image whose tile rows do not divide evenly into chunks.
        for (b, c, m, h, w) in [(1, 4, 16, 8, 8), (2, 5, 17, 12, 20), (3, 7, 33, 24, 16)] {
            let g = ConvGeom::conv((b, c, h, w), (m, c, 4, 4), 2, 1).unwrap();
            let (img, wt, bias) = (
                random(g.image_len(), &mut rng),
                random(m * c * 16, &mut rng),
                random(m, &mut rng),
            );
            let want = direct(&img, &wt, &bias, &g);
            let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            for rows in [1, 2, 5, g.oh / 2] {
                let plan = Plan::with_rows(&g, rows);
                let got = conv_forward(&img, &wt, Some(&bias), &g, Act::Identity, &plan);
                let err = got
                    .iter()
                    .zip(&want)
                    .fold(0.0f64, |a, (g, w)| a.max((*g as f64 - w).abs()));
                assert!(
                    err <= 1e-5 * scale,
                    "{:?} rows {rows}: max error {err}, scale {scale}",
                    (b, c, m, h, w)
                );
                // The fused activation is the activation of the same values.
                let act = Act::LeakyRelu(0.2);
                let mut want_act = got.clone();
                act.apply_block(&mut want_act);
                assert_eq!(
                    conv_forward(&img, &wt, Some(&bias), &g, act, &plan),
                    want_act
                );
            }
        }
    }

    #[test]
    fn applies_only_where_it_pays() {
        let geom = |c, m, s| ConvGeom::conv((4, c, s, s), (m, c, 4, 4), 2, 1).unwrap();
        if enabled() {
            assert!(Plan::new(&geom(64, 128, 128)).is_some());
        }
        // One input channel (the generator's first layer), a single filter, a small plane
        // (8x8 output), odd output sizes, another kernel or stride.
        assert!(Plan::new(&geom(1, 64, 256)).is_none());
        assert!(Plan::new(&geom(64, 1, 128)).is_none());
        assert!(Plan::new(&geom(64, 128, 16)).is_none());
        assert!(Plan::new(&geom(32, 64, 32)).is_none()); // 64 tiles per image

        assert!(Plan::new(&geom(64, 128, 30)).is_none());
        let g3 = ConvGeom::conv((4, 64, 128, 128), (128, 64, 3, 3), 1, 1).unwrap();
        assert!(Plan::new(&g3).is_none());
        let g1 = ConvGeom::conv((4, 64, 128, 128), (128, 64, 4, 4), 1, 1).unwrap();
        assert!(Plan::new(&g1).is_none());
    }
}
