//! `conv2d` and `conv_transpose2d` as candle custom ops: f32 CPU kernels for the forward pass
//! and for the input, weight and bias gradients; the lowered GEMM path everywhere else.

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor,
};

use crate::cpu::f32_slice;
use crate::gemm_f32::{gemm_into, Mat};
use crate::geom::ConvGeom;
use crate::im2col::{col2im, im2col};
use crate::lowered::{conv2d_lowered, conv_transpose2d_lowered, Precision};
use crate::scratch::Scratch;

/// Below this many output positions per image, one GEMM over the whole batch (and a
/// transpose of the result) beats one GEMM per image.
const PER_IMAGE_MIN: usize = 256;

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
        Backend::Cudnn(p) => return crate::cudnn::conv(x, weight, bias, stride, padding, false, p),
        Backend::CpuOps => {}
    }
    let x = x.contiguous()?;
    let weight = weight.contiguous()?;
    let bias = bias_or_zeros(bias, weight.dim(0)?, &x)?;
    x.apply_op3_arc(
        &weight,
        &bias,
        std::sync::Arc::new(Box::new(ConvOp {
            stride,
            padding,
            transposed: false,
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
        Backend::Cudnn(p) => return crate::cudnn::conv(x, weight, bias, stride, padding, true, p),
        Backend::CpuOps => {}
    }
    let x = x.contiguous()?;
    let weight = weight.contiguous()?;
    let bias = bias_or_zeros(bias, weight.dim(1)?, &x)?;
    x.apply_op3_arc(
        &weight,
        &bias,
        std::sync::Arc::new(Box::new(ConvOp {
            stride,
            padding,
            transposed: true,
        })),
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

/// `DGCOLOR_KERNELS` overrides the choice for before/after benchmarks: `candle` (candle's own
/// ops everywhere, f32), `lowered` (the lowered path everywhere, also on the CPU); unset or
/// `auto` picks the CPU ops for f32 on the CPU, cuDNN on CUDA when built with `cudnn`, and
/// the lowered path otherwise.
fn backend(ts: &[Option<&Tensor>]) -> Backend {
    static CHOICE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let choice = CHOICE.get_or_init(|| std::env::var("DGCOLOR_KERNELS").unwrap_or_default());
    let precision = precision();
    match choice.as_str() {
        "candle" => Backend::Candle,
        "lowered" => Backend::Lowered(precision),
        _ if precision != Precision::Bf16
            && ts
                .iter()
                .flatten()
                .all(|t| t.device().is_cpu() && t.dtype() == DType::F32) =>
        {
            Backend::CpuOps
        }
        #[cfg(feature = "cudnn")]
        _ if ts.iter().flatten().all(|t| t.device().is_cuda()) => Backend::Cudnn(precision),
        _ => Backend::Lowered(precision),
    }
}

/// True when `DGCOLOR_KERNELS=candle` turns every custom op off.
pub(crate) fn disabled() -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OFF.get_or_init(|| std::env::var("DGCOLOR_KERNELS").is_ok_and(|v| v == "candle"))
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

/// Columns `[B, M, OH, OW]` = conv(image, `w [M, K]`) + `bias [M]`.
pub(crate) fn conv_forward(img: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeom) -> Vec<f32> {
    let (k, n, ohw, m) = (g.k(), g.n(), g.oh * g.ow, g.m);
    let mut col = Scratch::take(k * n);
    im2col(img, g, &mut col);
    let mut out = vec![0.0f32; g.cols_len()];
    if g.b == 1 || ohw >= PER_IMAGE_MIN {
        for (b, out_b) in out.chunks_mut(m * ohw).enumerate() {
            if let Some(bias) = bias {
                for (row, &v) in out_b.chunks_mut(ohw).zip(bias) {
                    row.fill(v);
                }
            }
            // SAFETY: w is [m, k]; columns b*ohw.. of col are [k, ohw] with row stride n.
            unsafe {
                gemm_into(
                    (m, ohw, k),
                    out_b,
                    ohw,
                    bias.is_some(),
                    Mat::rows(w, k),
                    Mat::rows(&col[b * ohw..], n),
                )
            }
        }
    } else {
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
            )
        }
        unpermute(&tmp, g.b, m, ohw, bias, &mut out);
    }
    out
}

/// Image `[B, C, H, W]` = adjoint of conv (`w [M, K]`) applied to columns `[B, M, OH, OW]`,
/// + `bias [C]`: the input gradient of a conv, the forward pass of a transposed conv.
pub(crate) fn conv_backward_data(
    cols: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeom,
) -> Vec<f32> {
    let (k, n, ohw, m) = (g.k(), g.n(), g.oh * g.ow, g.m);
    let mut dcol = Scratch::take(k * n);
    if g.b == 1 || ohw >= PER_IMAGE_MIN {
        for b in 0..g.b {
            // SAFETY: w^T is [k, m]; cols_b is [m, ohw]; dcol columns b*ohw.. with stride n.
            unsafe {
                gemm_into(
                    (k, ohw, m),
                    &mut dcol[b * ohw..],
                    n,
                    false,
                    Mat::rows_t(w, k),
                    Mat::rows(&cols[b * m * ohw..], ohw),
                )
            }
        }
    } else {
        let mut colsp = Scratch::take(m * n);
        permute(cols, g.b, m, ohw, &mut colsp);
        // SAFETY: [k, m] @ [m, n] into [k, n].
        unsafe {
            gemm_into(
                (k, n, m),
                &mut dcol,
                n,
                false,
                Mat::rows_t(w, k),
                Mat::rows(&colsp, n),
            )
        }
    }
    let hw = g.h * g.w;
    let mut img = vec![0.0f32; g.image_len()];
    if let Some(bias) = bias {
        for (bc, plane) in img.chunks_mut(hw).enumerate() {
            plane.fill(bias[bc % g.c]);
        }
    }
    col2im(&dcol, g, &mut img);
    img
}

/// Filter gradient `[M, K]` = columns `[B, M, OH, OW]` @ im2col(image)^T: the weight gradient
/// of a conv (image = input, columns = output gradient) and of a transposed conv (image =
/// output gradient, columns = input).
pub(crate) fn conv_backward_filter(img: &[f32], cols: &[f32], g: &ConvGeom) -> Vec<f32> {
    let (k, n, ohw, m) = (g.k(), g.n(), g.oh * g.ow, g.m);
    let mut col = Scratch::take(k * n);
    im2col(img, g, &mut col);
    let mut dw = vec![0.0f32; m * k];
    if g.b == 1 || ohw >= PER_IMAGE_MIN {
        for b in 0..g.b {
            // SAFETY: cols_b is [m, ohw]; (col_b)^T is [ohw, k] (element (j, kk) at kk*n + j).
            unsafe {
                gemm_into(
                    (m, k, ohw),
                    &mut dw,
                    k,
                    b > 0,
                    Mat::rows(&cols[b * m * ohw..], ohw),
                    Mat::rows_t(&col[b * ohw..], n),
                )
            }
        }
    } else {
        let mut colsp = Scratch::take(m * n);
        permute(cols, g.b, m, ohw, &mut colsp);
        // SAFETY: [m, n] @ [n, k] into [m, k].
        unsafe {
            gemm_into(
                (m, k, n),
                &mut dw,
                k,
                false,
                Mat::rows(&colsp, n),
                Mat::rows_t(&col, n),
            )
        }
    }
    dw
}

/// `[B, M, S]` -> `[M, B*S]`.
fn permute(src: &[f32], b: usize, m: usize, s: usize, dst: &mut [f32]) {
    for bi in 0..b {
        for mi in 0..m {
            dst[mi * b * s + bi * s..][..s].copy_from_slice(&src[(bi * m + mi) * s..][..s]);
        }
    }
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
            let out = conv_backward_data(x, w, Some(b), &g);
            Ok((CpuStorage::F32(out), (g.b, g.c, g.h, g.w).into()))
        } else {
            let g = ConvGeom::conv(xd, wd, self.stride, self.padding)?;
            let out = conv_forward(x, w, Some(b), &g);
            Ok((CpuStorage::F32(out), (g.b, g.m, g.oh, g.ow).into()))
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
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
        // The filter gradient pairs the image side with the columns side.
        let (image, cols) = if self.transposed {
            (&grad, x)
        } else {
            (x, &grad)
        };
        let dw = image.apply_op2_no_bwd(
            cols,
            &BackwardFilter {
                stride,
                padding,
                kernel: (w.dim(2)?, w.dim(3)?),
                transposed: self.transposed,
            },
        )?;
        let db = grad.apply_op1_no_bwd(&ChannelSum)?;
        Ok((dx, Some(dw), Some(db)))
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
            &g,
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
