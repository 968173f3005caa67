//! The CUDA side of the fused custom ops (`--features cuda`): BatchNorm2d in training mode,
//! LeakyReLU and Adam's in-place update run as the kernels of `cuda/fused.cu` (compiled to
//! PTX by build.rs) with the same arithmetic as the CPU loops. As candle ops on CUDA each is
//! many full passes with a fresh allocation per pass; at the paper's batch of 128 those
//! intermediates take tens of GB (bench/README.md, 'GPU (CUDA)').

use candle_core::cuda::cudarc::driver::{
    result, sys, CudaSlice, CudaView, CudaViewMut, LaunchArgs, LaunchConfig, PushKernelArg,
};
use candle_core::cuda::WrapErr;
use candle_core::{
    bail, CpuStorage, CudaDevice, CudaStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor,
};

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/fused.ptx"));
const BLOCK: u32 = 256;

/// An operand of a custom op: its storage and layout.
pub(crate) type Arg<'a> = (&'a CudaStorage, &'a Layout);

const MODULE: &str = "dgcolor_fused";

/// The contiguous f32 elements of an operand; `what` names it in errors.
fn view<'a>((s, l): Arg<'a>, what: &str) -> Result<CudaView<'a, f32>> {
    let Some((lo, hi)) = l.contiguous_offsets() else {
        bail!("{what}: operand must be contiguous")
    };
    Ok(s.as_cuda_slice::<f32>()?.slice(lo..hi))
}

fn view_mut<'a>(s: &'a mut CudaStorage, l: &Layout, what: &str) -> Result<CudaViewMut<'a, f32>> {
    let Some((lo, hi)) = l.contiguous_offsets() else {
        bail!("{what}: updated tensor must be contiguous")
    };
    Ok(s.as_cuda_slice_mut::<f32>()?.slice_mut(lo..hi))
}

/// A null device pointer, for an absent operand (the kernels test for `nullptr`).
static NULL: u64 = 0;

/// Pushes an optional operand, or [`NULL`] where it is absent.
fn arg_or_null<'a, 'b: 'a, 'c: 'b>(call: &mut LaunchArgs<'a>, v: &'b Option<CudaView<'c, f32>>) {
    match v {
        Some(v) => call.arg(v),
        None => call.arg(&NULL),
    };
}

fn storage(out: CudaSlice<f32>, dev: &CudaDevice) -> CudaStorage {
    CudaStorage::wrap_cuda_slice(out, dev.clone())
}

/// A grid-stride launch over `len` elements.
fn flat(len: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (len.div_ceil(BLOCK as usize).clamp(1, 1 << 16) as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `[B, C, H, W]` as (B, C, H*W), checked against the kernels' grid limits.
fn bchw(l: &Layout, what: &str) -> Result<(u32, u32, u32)> {
    let &[b, c, h, w] = l.dims() else {
        bail!("{what}: expected [B, C, H, W], got {:?}", l.shape())
    };
    if b > 65535 || c > 65535 || h * w > u32::MAX as usize {
        bail!(
            "{what}: {:?} is past the CUDA kernel's grid limits",
            l.shape()
        )
    }
    Ok((b as u32, c as u32, (h * w) as u32))
}

/// One thread per element; the block's (y, z) are the channel and the image, so the kernels
/// need no index division.
fn planes(b: u32, c: u32, hw: u32) -> LaunchConfig {
    let threads = hw.next_multiple_of(32).clamp(32, BLOCK);
    LaunchConfig {
        grid_dim: (hw.div_ceil(threads), c, b),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// What [`channel_sums`] adds up per channel of `x [B, C, H, W]`, into `[2, C]` f32.
#[derive(Clone, Copy)]
pub(crate) enum Sums<'a> {
    /// The batch mean and biased variance.
    Stats,
    /// `sum(x)` and `sum(x^2)`.
    Plain,
    /// BatchNorm's gradient sums `sum(g)` and `sum(g * x_hat)`, given
    /// `(dy, [mean; var; weight; bias], eps, slope)`: `g = dy`, or with a LeakyReLU after the
    /// BatchNorm (`slope`), `dy` through it.
    Grad(Arg<'a>, Arg<'a>, f64, Option<f32>),
}

/// Per-channel sums in f64 (see [`Sums`]); the split into partial sums depends only on the
/// shape, so the result is the same from run to run.
pub(crate) fn channel_sums(x: Arg, what: Sums) -> Result<(CudaStorage, Shape)> {
    let dev = &x.0.device;
    let (b, c, hw) = bchw(x.1, "channel sums")?;
    let n = b as usize * hw as usize;
    let parts = 1024usize.div_ceil(c as usize).min(n.div_ceil(1024)).max(1) as u32;
    let xs = view(x, "channel sums input")?;
    let partial = unsafe { dev.alloc::<f64>(2 * c as usize * parts as usize) }?;
    let f = dev.get_or_load_custom_func("channel_partials", MODULE, PTX)?;
    let mut call = f.builder();
    call.arg(&xs);
    let (dy, norm, eps, slope) = match what {
        Sums::Grad(dy, norm, eps, slope) => (
            Some(view(dy, "batch_norm gradient")?),
            Some(view(norm, "batch_norm statistics")?),
            eps as f32,
            slope,
        ),
        Sums::Stats | Sums::Plain => (None, None, 0.0f32, None),
    };
    let (act, slope) = act_args(slope);
    arg_or_null(&mut call, &dy);
    arg_or_null(&mut call, &norm);
    call.arg(&eps)
        .arg(&act)
        .arg(&slope)
        .arg(&b)
        .arg(&c)
        .arg(&hw)
        .arg(&partial);
    let cfg = LaunchConfig {
        grid_dim: (parts, c, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    unsafe { call.launch(cfg) }.w()?;

    let out = unsafe { dev.alloc::<f32>(2 * c as usize) }?;
    let f = dev.get_or_load_custom_func("channel_finish", MODULE, PTX)?;
    let (nf, stats) = (n as f64, matches!(what, Sums::Stats) as i32);
    let mut call = f.builder();
    call.arg(&partial)
        .arg(&c)
        .arg(&parts)
        .arg(&nf)
        .arg(&stats)
        .arg(&out);
    unsafe { call.launch(LaunchConfig::for_num_elems(c)) }.w()?;
    Ok((storage(out, dev), Shape::from((2, c as usize))))
}

/// `x [B, C, H, W] + bias [C]` broadcast over channels, differentiable in both; the bias
/// gradient is one channel-sum pass over the output gradient (as candle ops it is a strided
/// reduction with one thread block per channel: two blocks for the U-Net's last layer).
pub(crate) fn bias_add(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&bias.flatten_all()?.contiguous()?, BiasAdd)
}

struct BiasAdd;

impl CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "dgcolor-bias-add"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        bail!("dgcolor-bias-add: CUDA op called on CPU tensors")
    }

    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = &s1.device;
        let (b, c, hw) = bchw(l1, "bias_add input")?;
        if l2.shape().elem_count() != c as usize {
            bail!(
                "bias_add: input {:?} has {c} channels, bias {:?}",
                l1.shape(),
                l2.shape()
            )
        }
        let (xs, bs) = (view((s1, l1), "bias_add input")?, view((s2, l2), "bias")?);
        let out = unsafe { dev.alloc::<f32>(xs.len()) }?;
        let f = dev.get_or_load_custom_func("bias_add", MODULE, PTX)?;
        let mut call = f.builder();
        call.arg(&xs).arg(&bs).arg(&hw).arg(&out);
        unsafe { call.launch(planes(b, c, hw)) }.w()?;
        Ok((storage(out, dev), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(grad.clone()), Some(bias_grad(grad, bias)?)))
    }
}

/// `y[:, c] += bias[c]` in place on a convolution's fresh output `y` (`shape`, contiguous),
/// then with `slope` LeakyReLU(slope) in place.
pub(crate) fn bias_add_inplace(
    y: &mut CudaStorage,
    shape: &Shape,
    bias: Arg,
    slope: Option<f32>,
) -> Result<()> {
    let dev = y.device.clone();
    let layout = Layout::contiguous(shape);
    let (b, c, hw) = bchw(&layout, "bias_add input")?;
    if bias.1.shape().elem_count() != c as usize {
        bail!(
            "bias_add: input {shape:?} has {c} channels, bias {:?}",
            bias.1.shape()
        )
    }
    let bs = view(bias, "bias")?;
    let mut ys = view_mut(y, &layout, "bias_add output")?;
    let f = dev.get_or_load_custom_func("bias_add_inplace", MODULE, PTX)?;
    let mut call = f.builder();
    let (act, slope) = act_args(slope);
    call.arg(&mut ys).arg(&bs).arg(&act).arg(&slope).arg(&hw);
    unsafe { call.launch(planes(b, c, hw)) }.w()?;
    Ok(())
}

/// The gradient of a per-channel bias: the channel sums of the output gradient.
pub(crate) fn bias_grad(grad: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let sums = grad.contiguous()?.apply_op1_no_bwd(&ChannelSum)?; // [2, C]
    sums.get(0)?.reshape(bias.shape())
}

/// `[B, C, H, W] -> [sum(x); sum(x^2)]` per channel.
struct ChannelSum;

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "dgcolor-channel-sum"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        bail!("dgcolor-channel-sum: CUDA op called on CPU tensors")
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        channel_sums((s, l), Sums::Plain)
    }
}

/// The kernels' `(act, slope)` arguments for an optional LeakyReLU after a BatchNorm.
fn act_args(slope: Option<f32>) -> (i32, f32) {
    (slope.is_some() as i32, slope.unwrap_or(0.0))
}

/// BatchNorm's forward `(x, [weight; bias], [mean; var]) -> y`, or with `grad_input` its input
/// gradient `(x, dy, aux) -> dx` (see `bn_grad_input` in fused.cu for `aux`); with `slope`,
/// a LeakyReLU after the BatchNorm is part of the op.
pub(crate) fn batch_norm_elementwise(
    x: Arg,
    second: Arg,
    third: Arg,
    eps: f64,
    slope: Option<f32>,
    grad_input: bool,
) -> Result<(CudaStorage, Shape)> {
    let dev = &x.0.device;
    let (b, c, hw) = bchw(x.1, "batch_norm input")?;
    let xs = view(x, "batch_norm input")?;
    let out = unsafe { dev.alloc::<f32>(xs.len()) }?;
    let (s2, s3) = (
        view(second, "batch_norm operand")?,
        view(third, "batch_norm aux")?,
    );
    let eps = eps as f32;
    let name = if grad_input {
        "bn_grad_input"
    } else {
        "bn_forward"
    };
    let f = dev.get_or_load_custom_func(name, MODULE, PTX)?;
    let mut call = f.builder();
    let (act, slope) = act_args(slope);
    call.arg(&xs)
        .arg(&s2)
        .arg(&s3)
        .arg(&eps)
        .arg(&act)
        .arg(&slope)
        .arg(&hw)
        .arg(&out);
    unsafe { call.launch(planes(b, c, hw)) }.w()?;
    Ok((storage(out, dev), x.1.shape().clone()))
}

/// LeakyReLU forward (`grad = None`) or its gradient with respect to `x` given `grad`.
pub(crate) fn leaky_relu(x: Arg, grad: Option<Arg>, slope: f32) -> Result<(CudaStorage, Shape)> {
    let dev = &x.0.device;
    let xs = view(x, "leaky_relu input")?;
    let len = xs.len() as u64;
    let out = unsafe { dev.alloc::<f32>(xs.len()) }?;
    let gs = grad.map(|g| view(g, "leaky_relu gradient")).transpose()?;
    let name = if gs.is_some() {
        "leaky_relu_grad"
    } else {
        "leaky_relu"
    };
    let f = dev.get_or_load_custom_func(name, MODULE, PTX)?;
    let mut call = f.builder();
    call.arg(&xs);
    if let Some(g) = &gs {
        if g.len() != xs.len() {
            bail!(
                "leaky_relu backward: {:?} vs {:?}",
                x.1.shape(),
                grad.unwrap().1.shape()
            )
        }
        call.arg(g);
    }
    call.arg(&slope).arg(&len).arg(&out);
    unsafe { call.launch(flat(xs.len())) }.w()?;
    Ok((storage(out, dev), x.1.shape().clone()))
}

/// Adam's moment update in place: `m = m * decay + (g or g^2) * scale`.
pub(crate) fn adam_moment(
    m: (&mut CudaStorage, &Layout),
    g: Arg,
    decay: f32,
    scale: f32,
    square: bool,
) -> Result<()> {
    let dev = m.0.device.clone();
    let gs = view(g, "adam gradient")?;
    let mut ms = view_mut(m.0, m.1, "adam moment")?;
    if gs.len() != ms.len() {
        bail!(
            "adam: moment {:?} vs gradient {:?}",
            m.1.shape(),
            g.1.shape()
        )
    }
    let (len, square) = (ms.len() as u64, square as i32);
    let f = dev.get_or_load_custom_func("adam_moment", MODULE, PTX)?;
    let mut call = f.builder();
    call.arg(&mut ms)
        .arg(&gs)
        .arg(&decay)
        .arg(&scale)
        .arg(&square)
        .arg(&len);
    unsafe { call.launch(flat(len as usize)) }.w()?;
    Ok(())
}

/// Adam's parameter update in place: `p -= m / (sqrt(v) * inv_sqrt_bias2 + eps) * step_size`.
pub(crate) fn adam_apply(
    p: (&mut CudaStorage, &Layout),
    m: Arg,
    v: Arg,
    [inv_sqrt_bias2, eps, step_size]: [f32; 3],
) -> Result<()> {
    let dev = p.0.device.clone();
    let (ms, vs) = (view(m, "adam m")?, view(v, "adam v")?);
    let mut ps = view_mut(p.0, p.1, "adam parameters")?;
    if ms.len() != ps.len() || vs.len() != ps.len() {
        bail!(
            "adam: parameters {:?}, m {:?}, v {:?}",
            p.1.shape(),
            m.1.shape(),
            v.1.shape()
        )
    }
    let len = ps.len() as u64;
    let f = dev.get_or_load_custom_func("adam_apply", MODULE, PTX)?;
    let mut call = f.builder();
    call.arg(&mut ps)
        .arg(&ms)
        .arg(&vs)
        .arg(&inv_sqrt_bias2)
        .arg(&eps)
        .arg(&step_size)
        .arg(&len);
    unsafe { call.launch(flat(len as usize)) }.w()?;
    Ok(())
}

/// `relu(cat([a, b], 1))` of `a [B, Ca, H, W]` and `b [B, Cb, H, W]` (shapes checked by the
/// caller, `ReluCat::cpu_fwd`'s rules).
pub(crate) fn relu_cat(a: Arg, b: Arg) -> Result<(CudaStorage, Shape)> {
    let dev = &a.0.device;
    let (ad, bd) = (a.1.dims(), b.1.dims());
    let (&[n, ca, h, w], &[nb_, cb, hb, wb]) = (ad, bd) else {
        bail!("relu_cat: expected [B, C, H, W] operands, got {ad:?} and {bd:?}")
    };
    if (n, h, w) != (nb_, hb, wb) {
        bail!("relu_cat: {ad:?} and {bd:?} differ outside dim 1")
    }
    let (xa, xb) = (view(a, "relu_cat")?, view(b, "relu_cat")?);
    let (na, nb) = ((ca * h * w) as u64, (cb * h * w) as u64);
    let len = n as u64 * (na + nb);
    let out = unsafe { dev.alloc::<f32>(len as usize) }?;
    let f = dev.get_or_load_custom_func("relu_cat", MODULE, PTX)?;
    let mut call = f.builder();
    call.arg(&xa).arg(&xb).arg(&na).arg(&nb).arg(&len).arg(&out);
    unsafe { call.launch(flat(len as usize)) }.w()?;
    Ok((storage(out, dev), Shape::from((n, ca + cb, h, w))))
}

/// `relu(cat([x * scale + shift, skip], 1))` of `x [B, C, H, W]`, `norm = [mean; var;
/// weight; bias]` (each `[C]`) and `skip [B, Cs, H, W]`.
pub(crate) fn batch_norm_relu_cat(
    x: Arg,
    norm: Arg,
    skip: Arg,
    eps: f64,
) -> Result<(CudaStorage, Shape)> {
    let dev = &x.0.device;
    let (b, c, hw) = bchw(x.1, "batch_norm_relu_cat input")?;
    let (sb, cs, shw) = bchw(skip.1, "batch_norm_relu_cat skip")?;
    if (b, hw) != (sb, shw) || x.1.dims()[2..] != skip.1.dims()[2..] {
        bail!(
            "batch_norm_relu_cat: input {:?} and skip {:?} differ outside dim 1",
            x.1.shape(),
            skip.1.shape()
        )
    }
    let (xs, ns, ss) = (
        view(x, "batch_norm_relu_cat input")?,
        view(norm, "batch_norm_relu_cat statistics")?,
        view(skip, "batch_norm_relu_cat skip")?,
    );
    let out = unsafe { dev.alloc::<f32>(xs.len() + ss.len()) }?;
    let f = dev.get_or_load_custom_func("bn_relu_cat", MODULE, PTX)?;
    let mut call = f.builder();
    let eps = eps as f32;
    call.arg(&xs)
        .arg(&ns)
        .arg(&ss)
        .arg(&eps)
        .arg(&c)
        .arg(&hw)
        .arg(&out);
    unsafe { call.launch(planes(b, c + cs, hw)) }.w()?;
    let d = x.1.dims();
    Ok((
        storage(out, dev),
        Shape::from((d[0], d[1] + cs as usize, d[2], d[3])),
    ))
}

/// `grad[:, c0..c1] * (out[:, c0..c1] > 0)` for `out` and `grad` `[B, C, H, W]`.
pub(crate) fn relu_cat_grad(
    out: Arg,
    grad: Arg,
    (c0, c1): (usize, usize),
) -> Result<(CudaStorage, Shape)> {
    let dev = &out.0.device;
    let &[b, c, h, w] = out.1.dims() else {
        bail!(
            "relu_cat backward: expected [B, C, H, W], got {:?}",
            out.1.shape()
        )
    };
    if grad.1.dims() != out.1.dims() || c0 > c1 || c1 > c {
        bail!(
            "relu_cat backward: output {:?}, gradient {:?}, channels {c0}..{c1}",
            out.1.shape(),
            grad.1.shape()
        )
    }
    let (os, gs) = (
        view(out, "relu_cat backward")?,
        view(grad, "relu_cat backward")?,
    );
    let hw = (h * w) as u64;
    let (n, off, np) = (c as u64 * hw, c0 as u64 * hw, (c1 - c0) as u64 * hw);
    let len = b as u64 * np;
    let dx = unsafe { dev.alloc::<f32>(len as usize) }?;
    let f = dev.get_or_load_custom_func("relu_cat_grad", MODULE, PTX)?;
    let mut call = f.builder();
    call.arg(&os)
        .arg(&gs)
        .arg(&n)
        .arg(&off)
        .arg(&np)
        .arg(&len)
        .arg(&dx);
    unsafe { call.launch(flat(len as usize)) }.w()?;
    Ok((storage(dx, dev), Shape::from((b, c1 - c0, h, w))))
}

/// One pass of [`crate::adain`] over `planes` planes of `n` content and `ns` style values
/// (shapes checked by the caller): the output (`grad` None) or one operand's gradient.
pub(crate) fn adain_plane(
    content: Arg,
    style: Arg,
    grad: Option<Arg>,
    (planes, n, ns): (usize, usize, usize),
    eps: f64,
    pass: crate::adain::AdainPass,
) -> Result<(CudaStorage, Shape)> {
    use crate::adain::AdainPass;
    let dev = &content.0.device;
    if planes > i32::MAX as usize {
        bail!("adain: {planes} planes are past the CUDA kernel's grid limit")
    }
    if (pass == AdainPass::Forward) != grad.is_none() {
        bail!("adain: pass {pass:?} with gradient {}", grad.is_some())
    }
    let (x, y) = (view(content, "adain content")?, view(style, "adain style")?);
    let g = grad.map(|g| view(g, "adain gradient")).transpose()?;
    let (len, shape) = match pass {
        AdainPass::Style => (planes * ns, style.1.shape().clone()),
        _ => (planes * n, content.1.shape().clone()),
    };
    let out = unsafe { dev.alloc::<f32>(len) }?;
    let f = dev.get_or_load_custom_func("adain_plane", MODULE, PTX)?;
    let mut call = f.builder();
    call.arg(&x).arg(&y);
    arg_or_null(&mut call, &g);
    let (n, ns, code) = (n as u64, ns as u64, pass.code());
    call.arg(&n).arg(&ns).arg(&eps).arg(&code).arg(&out);
    let cfg = LaunchConfig {
        grid_dim: (planes as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    unsafe { call.launch(cfg) }.w()?;
    Ok((storage(out, dev), shape))
}

/// The mean of a [`crate::loss`] over `pred` (and `target` for L1), a scalar: partial
/// sums per block of a grid whose size depends only on the length, then one thread adds them
/// in order.
pub(crate) fn loss_mean(
    pred: Arg,
    target: Option<Arg>,
    loss: crate::loss::Loss,
) -> Result<(CudaStorage, Shape)> {
    let dev = &pred.0.device;
    let len = pred.1.shape().elem_count() as u64;
    let p = view(pred, "loss prediction")?;
    let t = target.map(|t| view(t, "loss target")).transpose()?;
    let parts = len.div_ceil(4 * BLOCK as u64).clamp(1, 1024) as u32;
    let partial = unsafe { dev.alloc::<f64>(parts as usize) }?;
    let (kind, label) = loss.code();
    let f = dev.get_or_load_custom_func("loss_partials", MODULE, PTX)?;
    let mut call = f.builder();
    call.arg(&p);
    arg_or_null(&mut call, &t);
    call.arg(&kind).arg(&label).arg(&len).arg(&partial);
    let cfg = LaunchConfig {
        grid_dim: (parts, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    unsafe { call.launch(cfg) }.w()?;
    let out = unsafe { dev.alloc::<f32>(1) }?;
    let f = dev.get_or_load_custom_func("loss_finish", MODULE, PTX)?;
    let mut call = f.builder();
    call.arg(&partial).arg(&parts).arg(&len).arg(&out);
    unsafe { call.launch(LaunchConfig::for_num_elems(1)) }.w()?;
    Ok((storage(out, dev), Shape::from(())))
}

/// One operand's gradient of a [`crate::loss`]: `sign * grad * d loss / d pred / n`, with
/// `grad` the scalar upstream gradient (on the device).
pub(crate) fn loss_grad(
    pred: Arg,
    target: Option<Arg>,
    grad: Arg,
    loss: crate::loss::Loss,
    sign: f32,
) -> Result<(CudaStorage, Shape)> {
    let dev = &pred.0.device;
    if grad.1.shape().elem_count() != 1 {
        bail!(
            "loss backward: expected a scalar gradient, got {:?}",
            grad.1.dims()
        )
    }
    if let Some(t) = target {
        if t.1.dims() != pred.1.dims() {
            bail!(
                "loss backward: prediction {:?} vs target {:?}",
                pred.1.dims(),
                t.1.dims()
            )
        }
    }
    let len = pred.1.shape().elem_count() as u64;
    let p = view(pred, "loss prediction")?;
    let t = target.map(|t| view(t, "loss target")).transpose()?;
    let g = view(grad, "loss gradient")?;
    let (kind, label) = loss.code();
    let dx = unsafe { dev.alloc::<f32>(len as usize) }?;
    let f = dev.get_or_load_custom_func("loss_grad", MODULE, PTX)?;
    let mut call = f.builder();
    call.arg(&p);
    arg_or_null(&mut call, &t);
    call.arg(&g)
        .arg(&kind)
        .arg(&label)
        .arg(&sign)
        .arg(&len)
        .arg(&dx);
    unsafe { call.launch(flat(len as usize)) }.w()?;
    Ok((storage(dx, dev), pred.1.shape().clone()))
}

/// `x * mask` with the mask of [`crate::dropout`] drawn on the device (see the `dropout`
/// kernel): 16 elements per thread, one block of `BLOCK` threads per `16 * BLOCK` elements.
pub(crate) fn dropout(x: Arg, d: &crate::dropout::Dropout) -> Result<(CudaStorage, Shape)> {
    let dev = &x.0.device;
    let xs = view(x, "dropout input")?;
    let len = xs.len() as u64;
    let out = unsafe { dev.alloc::<f32>(xs.len()) }?;
    let f = dev.get_or_load_custom_func("dropout", MODULE, PTX)?;
    let mut call = f.builder();
    call.arg(&xs);
    for k in &d.key {
        call.arg(k);
    }
    call.arg(&d.p).arg(&d.scale).arg(&len).arg(&out);
    let cfg = LaunchConfig {
        grid_dim: (
            xs.len().div_ceil(16 * BLOCK as usize).clamp(1, 1 << 16) as u32,
            1,
            1,
        ),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    unsafe { call.launch(cfg) }.w()?;
    Ok((storage(out, dev), x.1.shape().clone()))
}

/// Sets a freshly opened CUDA device up for training loops:
///
/// - Freed device memory stays in the device's default memory pool for reuse. candle
///   allocates with `cuMemAllocAsync` from that pool, whose release threshold is 0 by default:
///   at every synchronisation (each loss read back to the host) the pool hands all free memory
///   back to the driver, and the next iteration maps every buffer again. PyTorch's caching
///   allocator keeps it; so does this (`DGCOLOR_CUDA_POOL=trim`, [`crate::Settings::cuda_pool`],
///   keeps CUDA's default).
/// - cudarc's per-allocation CUDA events are turned off (`DGCOLOR_CUDA_EVENTS=1`,
///   [`crate::Settings::cuda_events`], keeps them).
///   They order buffers between streams, and only ever act once a context has a second
///   stream; candle runs everything on one stream, so they are two event creations and
///   destructions of host time per tensor and nothing else. (A caller that creates more
///   streams on this device must order them itself.)
pub(crate) fn prepare_device(dev: &CudaDevice) -> Result<()> {
    let settings = crate::settings();
    if !settings.cuda_events {
        // SAFETY: see above; this device's work all goes to its one stream.
        unsafe { dev.disable_event_tracking() };
    }
    if settings.cuda_pool == crate::PoolPolicy::Trim {
        return Ok(());
    }
    let cu_device = dev.cuda_stream().context().cu_device();
    let mut threshold = u64::MAX;
    unsafe {
        let pool = result::device::get_default_mem_pool(cu_device).w()?;
        result::mem_pool::set_attribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        )
        .w()?;
    }
    Ok(())
}
