//! Access to CPU storage shared by every custom op here: the ops only take contiguous f32
//! operands (their wrappers make them so), and element-wise loops split over rayon only when
//! the work is large enough to pay for it.

use candle_core::{bail, CpuStorage, Layout, Result};
use rayon::prelude::*;

/// Below this many elements an element-wise loop stays on one thread.
const PAR_MIN: usize = 1 << 15;
const CHUNK: usize = 1 << 13;

/// The contiguous f32 data of an operand; `what` names it in errors.
pub(crate) fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!("{what}: expected f32 storage")
    };
    if !l.is_contiguous() {
        bail!("{what}: operand must be contiguous")
    }
    Ok(&v[l.start_offset()..l.start_offset() + l.shape().elem_count()])
}

/// The same, writable, for in-place ops.
pub(crate) fn f32_slice_mut<'a>(
    s: &'a mut CpuStorage,
    l: &Layout,
    what: &str,
) -> Result<&'a mut [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!("{what}: expected f32 storage")
    };
    if !l.is_contiguous() {
        bail!("{what}: updated tensor must be contiguous")
    }
    Ok(&mut v[l.start_offset()..l.start_offset() + l.shape().elem_count()])
}

/// Items per parallel task for a loop over items of `item_len` elements each, so that a
/// small tensor's loop stays on one thread (a task per 1-pixel plane of the U-Net's
/// innermost level would cost more to schedule than to run).
pub(crate) fn min_items(item_len: usize) -> usize {
    PAR_MIN.div_ceil(item_len.max(1))
}

/// A new vector of `items` consecutive items of `item_len` values each, item `i` written by
/// `f(i, item)`: in parallel (several small items per task, [`min_items`]), each call
/// compiled for the widest vector unit ([`simd`]; `f` must be `#[inline(always)]`), and
/// without zero-filling the vector first.
///
/// # Safety
/// `f` must write every element of the item it is given.
pub(crate) unsafe fn write_items(
    items: usize,
    item_len: usize,
    f: impl Fn(usize, &mut [std::mem::MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let len = items * item_len;
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(item_len.max(1))
        .with_min_len(min_items(item_len))
        .enumerate()
        .for_each(|(i, item)| {
            simd(
                #[inline(always)]
                || f(i, item),
            )
        });
    // SAFETY: the items cover 0..len, and the caller's `f` wrote each of them in full.
    unsafe { out.set_len(len) };
    out
}

/// `f(a[i], b[i])` for every i into a new vector, chunked as [`for_chunks`]; the vector is
/// written once (no zero-fill first, which would cost as much as the op itself).
pub(crate) fn map2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "map2: operand lengths");
    let mut out = Vec::with_capacity(a.len());
    for_chunks(
        &mut out.spare_capacity_mut()[..a.len()],
        #[inline(always)]
        |off, o| {
            for ((o, &x), &y) in o.iter_mut().zip(&a[off..]).zip(&b[off..]) {
                o.write(f(x, y));
            }
        },
    );
    // SAFETY: the chunks cover 0..len and the loop wrote every element of each (a and b
    // are len long, so the zip never ends early).
    unsafe { out.set_len(a.len()) };
    out
}

/// Runs `f(offset, chunk)` over consecutive chunks of `out`, in parallel when it is large,
/// each chunk compiled for the widest vector unit the CPU has (see [`simd`]).
pub(crate) fn for_chunks<T: Send>(out: &mut [T], f: impl Fn(usize, &mut [T]) + Sync) {
    if out.len() < PAR_MIN {
        simd(
            #[inline(always)]
            || f(0, out),
        );
    } else {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, c)| {
            simd(
                #[inline(always)]
                || f(i * CHUNK, c),
            )
        });
    }
}

/// Runs `f` inlined into a copy compiled for AVX-512 (or AVX2) when the CPU has it.
///
/// The crate is built for baseline x86-64 (SSE2) so that one binary runs anywhere, which
/// leaves our element-wise loops at 4 lanes; the GEMM dispatches at run time on its own. A
/// loop inside `f` is vectorised for the wider unit only once `f` is inlined into each copy,
/// so `f`, and every closure or helper its loops call, must be `#[inline(always)]` (called
/// from three copies, it would otherwise stay one baseline function). Wrap each parallel
/// task's body, not the parallel loop: rayon runs task bodies elsewhere. The results are
/// identical on every path: no fused multiply-add is enabled (Rust never contracts `a * b +
/// c` on its own) and nothing is reassociated.
#[inline(always)]
pub fn simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features this copy is compiled for.
            return unsafe { with_avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { with_avx2(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,avx")]
unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}
