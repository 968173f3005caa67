//! One entry point into the `gemm` crate (0.19, the version candle 0.11 runs on the CPU).

use gemm::{gemm, Parallelism};

/// Threads for the GEMM: candle's own rule (`RAYON_NUM_THREADS`, else every logical core).
pub fn num_threads() -> usize {
    candle_core::utils::get_num_threads()
}

/// The threads one GEMM runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Threads {
    /// The calling thread: for GEMMs that already run in parallel with each other.
    One,
    /// [`num_threads`] of rayon's pool.
    All,
}

impl Threads {
    fn parallelism(self) -> Parallelism {
        match (self, num_threads()) {
            (Threads::One, _) | (_, 0 | 1) => Parallelism::None,
            (Threads::All, n) => Parallelism::Rayon(n),
        }
    }
}

/// A strided f32 matrix operand: element (i, j) at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(crate) struct Mat {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

impl Mat {
    pub fn rows(s: &[f32], rs: usize) -> Self {
        Self {
            ptr: s.as_ptr(),
            rs: rs as isize,
            cs: 1,
        }
    }

    /// The transpose of a row-major matrix with row stride `rs`.
    pub fn rows_t(s: &[f32], rs: usize) -> Self {
        Self {
            ptr: s.as_ptr(),
            rs: 1,
            cs: rs as isize,
        }
    }
}

/// `dst[m, n] = (accumulate ? dst : 0) + lhs[m, k] @ rhs[k, n]`, `dst` row-major with row
/// stride `dst_rs` starting at `dst[0]`.
///
/// # Safety
/// `lhs` and `rhs` must address `m x k` and `k x n` valid elements through their strides,
/// and `dst` must hold `(m - 1) * dst_rs + n` elements.
pub(crate) unsafe fn gemm_into(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: Mat,
    rhs: Mat,
    threads: Threads,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        dst.len() >= (m - 1) * dst_rs + n,
        "gemm: destination too small"
    );
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                dst[i * dst_rs..i * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    gemm(
        m,
        n,
        k,
        dst.as_mut_ptr(),
        1,
        dst_rs as isize,
        accumulate,
        lhs.ptr,
        lhs.cs,
        lhs.rs,
        rhs.ptr,
        rhs.cs,
        rhs.rs,
        1.0,
        1.0,
        false,
        false,
        false,
        threads.parallelism(),
    )
}

/// `c[m, n] = a[m, k] @ b[k, n]`, all row-major and contiguous (for benchmarks and tests).
pub fn matmul_f32(a: &[f32], b: &[f32], c: &mut [f32], m: usize, n: usize, k: usize) {
    assert_eq!(a.len(), m * k, "matmul: lhs length");
    assert_eq!(b.len(), k * n, "matmul: rhs length");
    assert_eq!(c.len(), m * n, "matmul: dst length");
    // SAFETY: lengths checked above against the contiguous strides.
    unsafe {
        gemm_into(
            (m, n, k),
            c,
            n,
            false,
            Mat::rows(a, k),
            Mat::rows(b, n),
            Threads::All,
        )
    }
}
