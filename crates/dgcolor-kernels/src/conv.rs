//! `conv2d` and `conv_transpose2d` as candle custom ops: f32 CPU kernels for the forward pass
//! and for the input, weight and bias gradients; the lowered GEMM path everywhere else.

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor,
};

use crate::activation::Act;
use crate::cpu::{f32_slice, simd};
use rayon::prelude::*;

use crate::gemm_f32::{gemm_into, num_threads, Mat, Threads};
use crate::geom::ConvGeom;
use crate::im2col::{col2im_via, im2col_via, TapTable};
use crate::lowered::{conv2d_lowered, conv_transpose2d_lowered, Precision};
use crate::one_filter;
use crate::scratch::Scratch;
use crate::settings::KernelChoice;
use crate::winograd;

/// `x [B, C, H, W]` conv `weight [M, C, kh, kw]` (+ `bias [M]`), stride and padding on both
/// axes, dilation 1, one group: PyTorch's `F.conv2d`. Differentiable in all three.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    match backend(&[Some(x), Some(weight), bias]) {
        Backend::Candle => return conv2d_reference(x, weight, bias, stride, padding),
        Backend::Lowered(p) => return conv2d_lowered(x, weight, bias, stride, padding, p),
        #[cfg(feature = "cudnn")]
        Backend::Cudnn(p) => {
            return crate::cudnn::conv(x, weight, bias, (stride, padding), false, p, None)
        }
        Backend::CpuOps => {}
    }
    conv_op(
        x,
        weight,
        bias,
        (stride, padding),
        (false, None),
        Act::Identity,
    )
}

/// `leaky_relu(conv2d(x, weight, bias), slope)`, differentiable, with the activation inside
/// the convolution on the CPU ops and on cuDNN (f32 with a bias); elsewhere the two ops.
///
/// Why: candle's graph keeps every op's operands until backward ends, so a separate
/// activation keeps the convolution's output alive beside its own (PyTorch's in-place
/// LeakyReLU overwrites it). The fused op's backward masks the gradient with its output,
/// whose sign test is the input's for `slope >= 0`.
pub fn conv2d_leaky_relu(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    slope: f64,
) -> Result<Tensor> {
    let act = Act::LeakyRelu(slope as f32);
    match backend(&[Some(x), Some(weight), bias]) {
        Backend::CpuOps => conv_op(x, weight, bias, (stride, padding), (false, None), act),
        #[cfg(feature = "cudnn")]
        Backend::Cudnn(p) => {
            crate::cudnn::conv(x, weight, bias, (stride, padding), false, p, Some(slope))
        }
        _ => crate::leaky_relu(&conv2d(x, weight, bias, stride, padding)?, slope),
    }
}

/// `act(conv2d(x, weight, bias))` for the inference path: the activation runs inside the
/// convolution on each group's output block while it is in cache. Without a backward:
/// when any operand records a graph (or off the CPU ops) it is [`conv2d`] then
/// [`Act::apply`], differentiable.
pub fn conv2d_act(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    act: Act,
) -> Result<Tensor> {
    conv_act(x, weight, bias, (stride, padding), (false, None), act)
}

/// `act(conv_transpose2d(x, weight, bias))`, as [`conv2d_act`]. `adjoint` is an optional
/// copy of `weight` in the layout [`adjoint_weight`] makes, for a weight used many times.
pub fn conv_transpose2d_act(
    x: &Tensor,
    weight: &Tensor,
    adjoint: Option<&Tensor>,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    act: Act,
) -> Result<Tensor> {
    if let Some(a) = adjoint {
        let m = weight.dim(0)?;
        let rest = weight.elem_count() / m.max(1);
        if a.dims() != [rest, m] {
            bail!(
                "conv_transpose2d_act: adjoint weight {:?} is not the [C*kh*kw, M] = [{rest}, {m}] layout of weight {:?}",
                a.shape(),
                weight.shape()
            )
        }
    }
    conv_act(x, weight, bias, (stride, padding), (true, adjoint), act)
}

/// A transposed convolution's weight `[M, C, kh, kw]` as the contiguous `[C * kh * kw, M]`
/// matrix its forward GEMM multiplies (the adjoint of a conv with that weight), for
/// [`conv_transpose2d_act`] to reuse across calls.
///
/// Why: read in place, that matrix is `weight` transposed, and where the GEMM has few
/// columns (the decoder's innermost levels, a few positions per image) the `gemm` crate
/// multiplies it without packing, one strided row of `weight` per step of the reduction;
/// from this layout the same product takes about half the time (the 512 -> 256 transposed
/// conv at 2x2, batch 16), for a second copy of the decoder's weights (measurements in
/// bench/README.md, 'What moved it', the inference weight layout). Training weights change
/// every step, and a copy per call costs about what it saves there, so only the inference
/// path keeps one.
pub fn adjoint_weight(weight: &Tensor) -> Result<Tensor> {
    let m = weight.dim(0)?;
    weight
        .reshape((m, weight.elem_count() / m.max(1)))?
        .t()?
        .contiguous()
}

/// `adjoint`: a transposed conv's [`adjoint_weight`], if the caller keeps one.
fn conv_act(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    (stride, padding): (usize, usize),
    (transposed, adjoint): (bool, Option<&Tensor>),
    act: Act,
) -> Result<Tensor> {
    if fused_act_on(&[Some(x), Some(weight), bias, adjoint]) {
        return conv_op(
            x,
            weight,
            bias,
            (stride, padding),
            (transposed, adjoint),
            act,
        );
    }
    let y = if transposed {
        conv_transpose2d(x, weight, bias, stride, padding)?
    } else {
        conv2d(x, weight, bias, stride, padding)?
    };
    act.apply(&y)
}

/// The CPU ops apply, and no operand records a graph (a fused activation has no backward).
fn fused_act_on(ts: &[Option<&Tensor>]) -> bool {
    matches!(backend(ts), Backend::CpuOps) && ts.iter().flatten().all(|t| !t.track_op())
}

/// The CPU custom op (bias as zeros when absent); `adjoint` as in [`conv_act`].
fn conv_op(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    (stride, padding): (usize, usize),
    (transposed, adjoint): (bool, Option<&Tensor>),
    act: Act,
) -> Result<Tensor> {
    let x = x.contiguous()?;
    let weight = weight.contiguous()?;
    let out_channels = weight.dim(usize::from(transposed))?;
    let bias = bias_or_zeros(bias, out_channels, &x)?;
    x.apply_op3_arc(
        &weight,
        &bias,
        std::sync::Arc::new(Box::new(ConvOp {
            stride,
            padding,
            transposed,
            adjoint: adjoint.cloned(),
            act,
        })),
    )
}

/// `x [B, M, H, W]` transposed-conv `weight [M, C, kh, kw]` (+ `bias [C]`), no output
/// padding, dilation 1: PyTorch's `F.conv_transpose2d`. Differentiable in all three.
pub fn conv_transpose2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    match backend(&[Some(x), Some(weight), bias]) {
        Backend::Candle => return conv_transpose2d_reference(x, weight, bias, stride, padding),
        Backend::Lowered(p) => {
            return conv_transpose2d_lowered(x, weight, bias, stride, padding, p)
        }
        #[cfg(feature = "cudnn")]
        Backend::Cudnn(p) => {
            return crate::cudnn::conv(x, weight, bias, (stride, padding), true, p, None)
        }
        Backend::CpuOps => {}
    }
    conv_op(
        x,
        weight,
        bias,
        (stride, padding),
        (true, None),
        Act::Identity,
    )
}

/// candle's `conv2d` + bias: the fallback off the CPU and the reference in tests.
pub fn conv2d_reference(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let y = x.conv2d(weight, padding, stride, 1, 1)?;
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?),
        None => Ok(y),
    }
}

/// candle's `conv_transpose2d` + bias: the fallback off the CPU and the reference in tests.
pub fn conv_transpose2d_reference(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let y = x.conv_transpose2d(weight, padding, 0, stride, 1)?;
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?),
        None => Ok(y),
    }
}

/// Which implementation runs a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    /// This crate's f32 CPU custom ops.
    CpuOps,
    /// [`crate::lowered`]: GEMMs and copies on any device, at the given precision.
    Lowered(Precision),
    /// cuDNN's three convolution products on CUDA (`--features cudnn`).
    #[cfg(feature = "cudnn")]
    Cudnn(Precision),
    /// candle's own `conv2d` / `conv_transpose2d`.
    Candle,
}

/// [`backend_for`] of the process's `DGCOLOR_KERNELS` ([`crate::settings()`]) and this
/// thread's [`precision`].
fn backend(ts: &[Option<&Tensor>]) -> Backend {
    backend_for(crate::settings().kernels, precision(), ts)
}

/// The implementation for operands `ts`: with `auto` or `convs` (see [`fused_on_for`]), the
/// CPU ops for f32 on the CPU (unless the precision is bf16), cuDNN on CUDA when built with
/// `cudnn`, and the lowered path otherwise; `candle` (candle's own ops everywhere, f32) and
/// `lowered` (the lowered path everywhere, also on the CPU) override that for before/after
/// benchmarks.
fn backend_for(kernels: KernelChoice, precision: Precision, ts: &[Option<&Tensor>]) -> Backend {
    match kernels {
        KernelChoice::Candle => Backend::Candle,
        KernelChoice::Lowered => Backend::Lowered(precision),
        KernelChoice::Auto | KernelChoice::Convs
            if precision != Precision::Bf16
                && ts
                    .iter()
                    .flatten()
                    .all(|t| t.device().is_cpu() && t.dtype() == DType::F32) =>
        {
            Backend::CpuOps
        }
        #[cfg(feature = "cudnn")]
        KernelChoice::Auto | KernelChoice::Convs
            if ts.iter().flatten().all(|t| t.device().is_cuda()) =>
        {
            Backend::Cudnn(precision)
        }
        KernelChoice::Auto | KernelChoice::Convs => Backend::Lowered(precision),
    }
}

/// True when the fused ops (BatchNorm, activations, AdaIN, the losses, Adam) can run on all
/// of `ts`: [`fused_on_for`] of the process's `DGCOLOR_KERNELS`. Callers that keep their own
/// candle-ops path (AdaIN, the losses) ask this first.
pub fn fused_on(ts: &[&Tensor]) -> bool {
    fused_on_for(crate::settings().kernels, ts)
}

/// True when the fused ops can run on all of `ts`: f32 tensors on the CPU, or on CUDA in a
/// `cuda` build (the kernels of the `cuda` module). `candle` (every custom op off) and
/// `convs` (only the convolutions on) send them to candle ops instead, for before/after
/// measurements.
fn fused_on_for(kernels: KernelChoice, ts: &[&Tensor]) -> bool {
    kernels.fused_ops()
        && ts.iter().all(|t| {
            t.dtype() == DType::F32
                && (t.device().is_cpu() || cfg!(feature = "cuda") && t.device().is_cuda())
        })
}

thread_local! {
    static PRECISION: std::cell::Cell<Precision> = const { std::cell::Cell::new(Precision::F32) };
}

/// Sets the precision of the matrix products of every convolution this thread runs from now
/// on (autocast; per thread, as `torch.autocast`): `Bf16` routes convolutions through the
/// lowered path with bf16 GEMM operands. `Tf32` switches candle's process-wide cuBLAS flag
/// for f32 GEMMs (so it also covers linear layers, as PyTorch's `allow_tf32` would).
pub fn set_precision(p: Precision) {
    PRECISION.with(|c| c.set(p));
    candle_core::cuda::set_gemm_reduced_precision_f32(p == Precision::Tf32);
}

/// This thread's precision set by [`set_precision`] (f32 unless changed).
pub fn precision() -> Precision {
    PRECISION.with(|c| c.get())
}

fn bias_or_zeros(bias: Option<&Tensor>, n: usize, like: &Tensor) -> Result<Tensor> {
    match bias {
        Some(b) => {
            if b.elem_count() != n {
                bail!("conv: bias has {} elements, expected {n}", b.elem_count())
            }
            b.flatten_all()?.contiguous()
        }
        None => Tensor::zeros(n, DType::F32, like.device()),
    }
}

// ---------------------------------------------------------------------------------------
// The three kernels, on the image/columns geometry of `ConvGeom`.

/// How a convolution's batch is cut into groups of consecutive images, each group one task
/// that lowers its images into a column block of `K x (images * OH * OW)`, multiplies it and
/// (for the adjoint) folds it back. Per group, the block stays in cache between the im2col
/// and the GEMM that reads it, where a whole-batch block (up to 64 MiB) would not.
///
/// With at least as many groups as threads, the groups run in parallel and each runs its
/// GEMM on one thread: the U-Net's GEMMs are small (a few MFLOP), and splitting each of them
/// over the threads costs more in synchronisation than it saves (measured in isolation:
/// bench/README.md, 'What moved it', convolutions by groups of images). With fewer groups
/// (a single image, or a batch smaller than the thread count) the groups run one after
/// another, each GEMM on every thread.
#[derive(Clone, Copy, Debug)]
struct Groups {
    /// Images per group (the last group may have fewer).
    per: usize,
    count: usize,
    parallel: bool,
}

impl Groups {
    fn new(g: &ConvGeom) -> Self {
        let threads = num_threads().max(1);
        // Enough output positions per group for the GEMM microkernel to pay (PER_GEMM_MIN),
        // and a whole number of rounds of `threads` groups, so that no thread idles while
        // another runs a last group (3 groups on 2 threads would take as long as 4).
        let per_min = PER_GEMM_MIN.div_ceil((g.oh * g.ow).max(1));
        if g.b < threads * per_min {
            // Too few positions to give every thread a full GEMM: one GEMM over the batch on
            // every thread, which also reads the weights once instead of once per group (at
            // 1 x 1 positions the GEMM is a matrix times a few vectors, bound by that read).
            return Self {
                per: g.b.max(1),
                count: 1,
                parallel: false,
            };
        }
        let rounds = g.b / (threads * per_min);
        let per = g.b.div_ceil(threads * rounds).max(1);
        let count = g.b.div_ceil(per);
        Self {
            per,
            count,
            parallel: count >= threads && threads > 1,
        }
    }

    /// The GEMM threads inside one group.
    fn gemm_threads(&self) -> Threads {
        if self.parallel {
            Threads::One
        } else {
            Threads::All
        }
    }

    /// Rayon's minimum task length for a loop over the groups: one group per task when the
    /// groups run in parallel, all of them in the calling thread otherwise.
    fn min_len(&self) -> usize {
        if self.parallel {
            1
        } else {
            usize::MAX
        }
    }

    /// The geometry of a group of `nb` images.
    fn geom(g: &ConvGeom, nb: usize) -> ConvGeom {
        ConvGeom { b: nb, ..*g }
    }
}

/// Output positions per GEMM below which a group takes several images (a GEMM over a few
/// dozen columns runs the microkernel mostly on its edges).
const PER_GEMM_MIN: usize = 256;

/// Columns `[B, M, OH, OW]` = act(conv(image, `w [M, K]`) + `bias [M]`).
pub(crate) fn conv_forward(
    img: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeom,
    act: Act,
) -> Vec<f32> {
    if g.m == 1 {
        let mut out = one_filter::forward(img, w, bias, g);
        act.apply_slice(&mut out);
        return out;
    }
    if let Some(plan) = winograd::Plan::conv(g) {
        return winograd::conv_forward(img, w, bias, g, act, &plan);
    }
    if let Some(plan) = winograd::Plan::conv_s1(g) {
        return winograd::conv_forward_s1(img, w, bias, g, act, &plan);
    }
    let (k, m, ohw, chw) = (g.k(), g.m, g.oh * g.ow, g.c * g.h * g.w);
    let (grp, table) = (Groups::new(g), TapTable::new(g));
    let mut out = vec![0.0f32; g.cols_len()];
    out.par_chunks_mut(grp.per * m * ohw)
        .with_min_len(grp.min_len())
        .enumerate()
        .for_each(|(i, out)| {
            let nb = out.len() / (m * ohw);
            let gg = Groups::geom(g, nb);
            let mut col = Scratch::take(k * nb * ohw);
            im2col_via(
                &img[i * grp.per * chw..][..nb * chw],
                &gg,
                &mut col,
                table.as_ref(),
            );
            if nb == 1 {
                if let Some(bias) = bias {
                    for (row, &v) in out.chunks_mut(ohw).zip(bias) {
                        row.fill(v);
                    }
                }
                // SAFETY: w is [m, k], col is [k, ohw], out is [m, ohw].
                unsafe {
                    gemm_into(
                        (m, ohw, k),
                        out,
                        ohw,
                        bias.is_some(),
                        Mat::rows(w, k),
                        Mat::rows(&col, ohw),
                        grp.gemm_threads(),
                    )
                }
            } else {
                let n = nb * ohw;
                let mut tmp = Scratch::take(m * n);
                // SAFETY: [m, k] @ [k, n] into [m, n].
                unsafe {
                    gemm_into(
                        (m, n, k),
                        &mut tmp,
                        n,
                        false,
                        Mat::rows(w, k),
                        Mat::rows(&col, n),
                        grp.gemm_threads(),
                    )
                }
                unpermute(&tmp, nb, m, ohw, bias, out);
            }
            simd(
                #[inline(always)]
                || act.apply_block(out),
            );
        });
    out
}

/// Image `[B, C, H, W]` = act(adjoint of conv (`w [M, K]`) applied to columns
/// `[B, M, OH, OW]`, + `bias [C]`): the input gradient of a conv, the forward pass of a
/// transposed conv. `wt`, if given, is `w` transposed (`[K, M]`, [`adjoint_weight`]), which
/// the GEMM then reads instead.
pub(crate) fn conv_backward_data(
    cols: &[f32],
    w: &[f32],
    wt: Option<&[f32]>,
    bias: Option<&[f32]>,
    g: &ConvGeom,
    act: Act,
) -> Vec<f32> {
    if g.m == 1 {
        let mut img = one_filter::backward_data(cols, w, bias, g);
        act.apply_slice(&mut img);
        return img;
    }
    if let Some(plan) = winograd::Plan::adjoint(g) {
        return winograd::conv_backward_data(cols, w, bias, g, act, &plan);
    }
    if let Some(img) = winograd::adjoint_s1(cols, w, bias, g, act) {
        return img;
    }
    let (k, m, ohw, hw) = (g.k(), g.m, g.oh * g.ow, g.h * g.w);
    let (grp, table) = (Groups::new(g), TapTable::new(g));
    let mut img = vec![0.0f32; g.image_len()];
    img.par_chunks_mut(grp.per * g.c * hw)
        .with_min_len(grp.min_len())
        .enumerate()
        .for_each(|(i, img)| {
            let nb = img.len() / (g.c * hw);
            let (n, cols) = (nb * ohw, &cols[i * grp.per * m * ohw..][..nb * m * ohw]);
            let mut dcol = Scratch::take(k * n);
            let mut buf = None;
            let cols = as_matrix(cols, nb, m, ohw, &mut buf);
            let w_t = match wt {
                Some(wt) => Mat::rows(wt, m),
                None => Mat::rows_t(w, k),
            };
            // SAFETY: w^T is [k, m]; cols is [m, n] (one image, or the group's permuted).
            unsafe {
                gemm_into(
                    (k, n, m),
                    &mut dcol,
                    n,
                    false,
                    w_t,
                    Mat::rows(cols, n),
                    grp.gemm_threads(),
                )
            }
            if let Some(bias) = bias {
                for (bc, plane) in img.chunks_mut(hw).enumerate() {
                    plane.fill(bias[bc % g.c]);
                }
            }
            col2im_via(&dcol, &Groups::geom(g, nb), img, table.as_ref());
            simd(
                #[inline(always)]
                || act.apply_block(img),
            );
        });
    img
}

/// Filter gradient `[M, K]` = columns `[B, M, OH, OW]` @ im2col(image)^T: the weight gradient
/// of a conv (image = input, columns = output gradient) and of a transposed conv (image =
/// output gradient, columns = input).
///
/// A sum over the batch: with parallel groups, each thread sums a fixed, contiguous share of
/// them into its own `[M, K]` buffer, and the buffers are added in thread order, so the result
/// is the same run to run at a given thread count.
pub(crate) fn conv_backward_filter(img: &[f32], cols: &[f32], g: &ConvGeom) -> Vec<f32> {
    if g.m == 1 {
        return one_filter::backward_filter(img, cols, g);
    }
    let (k, m, ohw, chw) = (g.k(), g.m, g.oh * g.ow, g.c * g.h * g.w);
    let (grp, table) = (Groups::new(g), TapTable::new(g));
    // Adds group `i`'s share into `dw` (overwriting it when `fresh`).
    let group = |i: usize, dw: &mut [f32], fresh: bool| {
        let b0 = i * grp.per;
        let nb = grp.per.min(g.b - b0);
        let n = nb * ohw;
        let mut col = Scratch::take(k * n);
        let gg = Groups::geom(g, nb);
        im2col_via(&img[b0 * chw..][..nb * chw], &gg, &mut col, table.as_ref());
        let mut buf = None;
        let cols = as_matrix(&cols[b0 * m * ohw..][..nb * m * ohw], nb, m, ohw, &mut buf);
        // SAFETY: cols is [m, n]; col^T is [n, k] (element (j, kk) at kk*n + j).
        unsafe {
            gemm_into(
                (m, k, n),
                dw,
                k,
                !fresh,
                Mat::rows(cols, n),
                Mat::rows_t(&col, n),
                grp.gemm_threads(),
            )
        }
    };
    let mut dw = vec![0.0f32; m * k];
    if !grp.parallel {
        for i in 0..grp.count {
            group(i, &mut dw, i == 0);
        }
        return dw;
    }
    let shares = num_threads().min(grp.count);
    let partial: Vec<Scratch> = (0..shares)
        .into_par_iter()
        .with_min_len(1)
        .map(|t| {
            let mut acc = Scratch::take(m * k);
            let (lo, hi) = (t * grp.count / shares, (t + 1) * grp.count / shares);
            for i in lo..hi {
                group(i, &mut acc, i == lo);
            }
            acc
        })
        .collect();
    for p in &partial {
        for (d, v) in dw.iter_mut().zip(p.iter()) {
            *d += *v;
        }
    }
    dw
}

/// A group's columns `[B, M, S]` as one `[M, B*S]` matrix: the slice itself for one image,
/// else a permuted copy kept in `buf`.
fn as_matrix<'a>(
    src: &'a [f32],
    b: usize,
    m: usize,
    s: usize,
    buf: &'a mut Option<Scratch>,
) -> &'a [f32] {
    if b == 1 {
        return src;
    }
    let dst = buf.insert(Scratch::take(m * b * s));
    for bi in 0..b {
        for mi in 0..m {
            dst[mi * b * s + bi * s..][..s].copy_from_slice(&src[(bi * m + mi) * s..][..s]);
        }
    }
    dst
}

/// `[M, B*S]` -> `[B, M, S]`, adding a per-M bias.
fn unpermute(src: &[f32], b: usize, m: usize, s: usize, bias: Option<&[f32]>, dst: &mut [f32]) {
    for bi in 0..b {
        for mi in 0..m {
            let d = &mut dst[(bi * m + mi) * s..][..s];
            let sr = &src[mi * b * s + bi * s..][..s];
            match bias {
                Some(bias) => {
                    let v = bias[mi];
                    for (d, s) in d.iter_mut().zip(sr) {
                        *d = s + v;
                    }
                }
                None => d.copy_from_slice(sr),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Custom ops.

pub(crate) fn dims4(l: &Layout, what: &str) -> Result<(usize, usize, usize, usize)> {
    match l.shape().dims() {
        &[a, b, c, d] => Ok((a, b, c, d)),
        d => bail!("{what}: expected a rank-4 tensor, got shape {d:?}"),
    }
}

/// `conv2d` (`transposed: false`) or `conv_transpose2d` (`true`) + bias: the same geometry
/// read in the two directions, so the two ops share one implementation.
struct ConvOp {
    stride: usize,
    padding: usize,
    transposed: bool,
    /// [`adjoint_weight`] of the weight, for a transposed conv on the inference path.
    adjoint: Option<Tensor>,
    /// Applied to the output inside the op: any on the inference path ([`conv2d_act`]), which
    /// records no graph; LeakyReLU in training ([`conv2d_leaky_relu`]).
    act: Act,
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        if self.transposed {
            "dgcolor-conv-transpose2d"
        } else {
            "dgcolor-conv2d"
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = self.name();
        let (xd, wd) = (dims4(l1, op)?, dims4(l2, op)?);
        let x = f32_slice(s1, l1, op)?;
        let w = f32_slice(s2, l2, op)?;
        let b = f32_slice(s3, l3, op)?;
        if self.transposed {
            let g = ConvGeom::transposed(xd, wd, self.stride, self.padding)?;
            let adjoint = self.adjoint.as_ref().map(|a| a.storage_and_layout());
            let wt = match &adjoint {
                Some((storage, layout)) => match &**storage {
                    candle_core::Storage::Cpu(s) => Some(f32_slice(s, layout, op)?),
                    _ => bail!("{op}: the adjoint weight is not on the CPU"),
                },
                None => None,
            };
            let out = conv_backward_data(x, w, wt, Some(b), &g, self.act);
            Ok((CpuStorage::F32(out), (g.b, g.c, g.h, g.w).into()))
        } else {
            let g = ConvGeom::conv(xd, wd, self.stride, self.padding)?;
            let out = conv_forward(x, w, Some(b), &g, self.act);
            Ok((CpuStorage::F32(out), (g.b, g.m, g.oh, g.ow).into()))
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // The gradient at the pre-activation output, masked with the op's output.
        let grad = self.act.input_grad(res, grad)?;
        let (stride, padding) = (self.stride, self.padding);
        // No input gradient for an input that records no graph (the network's L input, a
        // detached fake): its GEMM and col2im would be thrown away. The input gradient of a
        // conv is the adjoint (col2im side); that of a transposed conv is the ordinary conv of
        // the output gradient with the same weight.
        let dx = x
            .track_op()
            .then(|| {
                if self.transposed {
                    grad.apply_op2_no_bwd(w, &Forward { stride, padding })
                } else {
                    let (_, _, h, wd) = x.dims4()?;
                    let image_hw = (h, wd);
                    grad.apply_op2_no_bwd(
                        w,
                        &BackwardData {
                            stride,
                            padding,
                            image_hw,
                        },
                    )
                }
            })
            .transpose()?;
        // The same for weights that record no graph (a network frozen for this update, like
        // the colour discriminator inside the generator's loss). The filter gradient pairs
        // the image side with the columns side.
        let (image, cols) = if self.transposed {
            (&grad, x)
        } else {
            (x, &grad)
        };
        let dw = w
            .track_op()
            .then(|| {
                image.apply_op2_no_bwd(
                    cols,
                    &BackwardFilter {
                        stride,
                        padding,
                        kernel: (w.dim(2)?, w.dim(3)?),
                        transposed: self.transposed,
                    },
                )
            })
            .transpose()?;
        let db = b
            .track_op()
            .then(|| grad.apply_op1_no_bwd(&ChannelSum))
            .transpose()?;
        Ok((dx, dw, db))
    }
}

/// (image, weight) -> columns, no bias.
struct Forward {
    stride: usize,
    padding: usize,
}

impl CustomOp2 for Forward {
    fn name(&self) -> &'static str {
        "dgcolor-conv2d-forward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = ConvGeom::conv(
            dims4(l1, "conv image")?,
            dims4(l2, "conv weight")?,
            self.stride,
            self.padding,
        )?;
        let out = conv_forward(
            f32_slice(s1, l1, "conv image")?,
            f32_slice(s2, l2, "conv weight")?,
            None,
            &g,
            Act::Identity,
        );
        Ok((CpuStorage::F32(out), (g.b, g.m, g.oh, g.ow).into()))
    }
}

/// (columns, weight) -> image of the given size, no bias.
struct BackwardData {
    stride: usize,
    padding: usize,
    image_hw: (usize, usize),
}

impl CustomOp2 for BackwardData {
    fn name(&self) -> &'static str {
        "dgcolor-conv2d-backward-data"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, m, oh, ow) = dims4(l1, "conv columns")?;
        let (wm, c, kh, kw) = dims4(l2, "conv weight")?;
        if wm != m {
            bail!("conv backward: gradient has {m} channels, weight {wm}")
        }
        let (h, w) = self.image_hw;
        let g = ConvGeom::conv((b, c, h, w), (m, c, kh, kw), self.stride, self.padding)?;
        if (g.oh, g.ow) != (oh, ow) {
            bail!(
                "conv backward: gradient is {oh}x{ow}, geometry gives {}x{}",
                g.oh,
                g.ow
            )
        }
        let out = conv_backward_data(
            f32_slice(s1, l1, "conv columns")?,
            f32_slice(s2, l2, "conv weight")?,
            None,
            None,
            &g,
            Act::Identity,
        );
        Ok((CpuStorage::F32(out), (b, c, h, w).into()))
    }
}

/// (image, columns) -> filter gradient `[M, C, kh, kw]`. For a conv the image is its input
/// and the columns its output gradient; for a transposed conv (`transposed`) the first
/// operand is its output gradient (the image) and the second its input (the columns).
struct BackwardFilter {
    stride: usize,
    padding: usize,
    kernel: (usize, usize),
    transposed: bool,
}

impl CustomOp2 for BackwardFilter {
    fn name(&self) -> &'static str {
        "dgcolor-conv2d-backward-filter"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = dims4(l1, "filter-gradient image")?;
        let (cb, m, oh, ow) = dims4(l2, "filter-gradient columns")?;
        let (kh, kw) = self.kernel;
        let g = ConvGeom::conv((b, c, h, w), (m, c, kh, kw), self.stride, self.padding)?;
        if cb != b || (g.oh, g.ow) != (oh, ow) {
            bail!(
                "conv filter gradient: image {:?} and columns {:?} do not fit (transposed: {})",
                (b, c, h, w),
                (cb, m, oh, ow),
                self.transposed
            )
        }
        let out = conv_backward_filter(
            f32_slice(s1, l1, "filter-gradient image")?,
            f32_slice(s2, l2, "filter-gradient columns")?,
            &g,
        );
        Ok((CpuStorage::F32(out), (m, c, kh, kw).into()))
    }
}

/// `[B, C, H, W]` -> `[C]`, the sum over everything but the channel: a bias gradient.
struct ChannelSum;

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "dgcolor-channel-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = dims4(l, "channel sum")?;
        let x = f32_slice(s, l, "channel sum")?;
        let hw = h * w;
        let mut out = vec![0.0f32; c];
        for bi in 0..b {
            for (ci, o) in out.iter_mut().enumerate() {
                // Pairwise-ish: sum each plane in f64 for a bias gradient that does not drift
                // with the plane size.
                let plane = &x[(bi * c + ci) * hw..][..hw];
                *o += plane.iter().map(|&v| v as f64).sum::<f64>() as f32;
            }
        }
        Ok((CpuStorage::F32(out), c.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The implementation follows the `kernels` setting passed in (the process's own is read
    /// once from the environment, so it is not changed here).
    #[test]
    fn backend_follows_the_kernels_setting() {
        let x = Tensor::zeros((1, 2, 4, 4), DType::F32, &Device::Cpu).unwrap();
        let w = Tensor::zeros((3, 2, 3, 3), DType::F32, &Device::Cpu).unwrap();
        let x64 = x.to_dtype(DType::F64).unwrap();
        let ts = [Some(&x), Some(&w), None];
        let f32_ = Precision::F32;
        let bf16 = Precision::Bf16;
        let cases = [
            (KernelChoice::Auto, f32_, Backend::CpuOps),
            (KernelChoice::Convs, f32_, Backend::CpuOps),
            (KernelChoice::Lowered, f32_, Backend::Lowered(f32_)),
            (KernelChoice::Candle, f32_, Backend::Candle),
            (KernelChoice::Auto, bf16, Backend::Lowered(bf16)),
            (KernelChoice::Convs, bf16, Backend::Lowered(bf16)),
            (KernelChoice::Lowered, bf16, Backend::Lowered(bf16)),
            (KernelChoice::Candle, bf16, Backend::Candle),
        ];
        for (k, p, want) in cases {
            assert_eq!(backend_for(k, p, &ts), want, "{k:?} at {p:?}");
        }
        // Not f32: the lowered path, unless candle's own ops were asked for.
        let ts64 = [Some(&x64), Some(&w), None];
        assert_eq!(
            backend_for(KernelChoice::Auto, f32_, &ts64),
            Backend::Lowered(f32_)
        );
        assert_eq!(
            backend_for(KernelChoice::Candle, f32_, &ts64),
            Backend::Candle
        );

        assert!(fused_on_for(KernelChoice::Auto, &[&x, &w]));
        assert!(fused_on_for(KernelChoice::Lowered, &[&x, &w]));
        assert!(!fused_on_for(KernelChoice::Convs, &[&x, &w]));
        assert!(!fused_on_for(KernelChoice::Candle, &[&x, &w]));
        assert!(!fused_on_for(KernelChoice::Auto, &[&x64, &w]));
    }
}
