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

/// Runs `f(offset, chunk)` over consecutive chunks of `out`, in parallel when it is large.
pub(crate) fn for_chunks(out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
    if out.len() < PAR_MIN {
        f(0, out);
    } else {
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(i, c)| f(i * CHUNK, c));
    }
}
