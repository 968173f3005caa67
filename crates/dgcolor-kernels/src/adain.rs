//! AdaIN (Huang & Belongie 2017) as one op with its backward: the per-sample, per-channel
//! mean and unbiased variance of both operands and the renormalisation in one pass per
//! plane, instead of the ~12 candle ops (reshape, mean, broadcast subtract, square, sum,
//! divide, sqrt, ... for each operand) whose intermediates the graph keeps until backward.
//!
//! With `n` positions per content plane, `m`, `v` its mean and unbiased variance,
//! `s = sqrt(v + eps)`, `xhat = (x - m) / s`, and `M`, `V`, `S` those of the style plane
//! (`n'` positions):
//!
//! ```text
//! out     = xhat * S + M
//! dx      = (S / s) * (g - sum(g) / n - xhat * sum(g * xhat) / (n - 1))
//! dstyle  = sum(g) / n' + (sum(g * xhat) / S) * (y - M) / (n' - 1)
//! ```
//!
//! Sums are accumulated in f64 (eight lanes on the CPU, a block reduction on CUDA), so the
//! result does not depend on the plane's size the way an f32 running sum does. Content
//! randomization is the same op: `adain(x[perm].detach(), x)`.

use crate::cpu::{f32_slice, write_items};
#[cfg(feature = "cuda")]
use candle_core::CudaStorage;
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// `content` renormalised to the per-sample, per-channel mean and standard deviation
/// (`sqrt(unbiased variance + eps)`) of `style`: both `[B, C, *, *]` with the same `B` and
/// `C`, spatial sizes free (at least 2 positions each). Differentiable in both operands;
/// a gradient is computed only for an operand that records a graph. f32 on the CPU, and on
/// CUDA in a `cuda` build (the `adain_plane` kernel of `cuda/fused.cu`).
pub fn adain(content: &Tensor, style: &Tensor, eps: f64) -> Result<Tensor> {
    content
        .contiguous()?
        .apply_op2(&style.contiguous()?, Adain { eps })
}

/// `(B*C, n, n')`: the planes and their sizes, checked.
fn planes(cl: &Layout, sl: &Layout, what: &str) -> Result<(usize, usize, usize)> {
    let (cb, cc, ch, cw) = crate::conv::dims4(cl, what)?;
    let (sb, sc, sh, sw) = crate::conv::dims4(sl, what)?;
    if (cb, cc) != (sb, sc) {
        bail!(
            "{what}: content {:?} and style {:?} differ in batch or channels",
            cl.dims(),
            sl.dims()
        )
    }
    let (n, ns) = (ch * cw, sh * sw);
    if n < 2 || ns < 2 {
        bail!(
            "{what}: the unbiased variance needs at least 2 positions per plane, got content {:?} and style {:?}",
            cl.dims(),
            sl.dims()
        )
    }
    Ok((cb * cc, n, ns))
}

/// [`planes`] for the backward, with the gradient's shape checked too.
fn grad_planes(cl: &Layout, sl: &Layout, gl: &Layout) -> Result<(usize, usize, usize)> {
    let what = "adain backward";
    let dims = planes(cl, sl, what)?;
    if gl.dims() != cl.dims() {
        bail!(
            "{what}: gradient {:?} vs content {:?}",
            gl.dims(),
            cl.dims()
        )
    }
    Ok(dims)
}

type CpuArg<'a> = (&'a CpuStorage, &'a Layout);

/// One pass over the planes on the CPU (see [`AdainPass`]); `grad` is `Some` exactly for
/// the gradient passes.
fn cpu_pass(
    content: CpuArg,
    style: CpuArg,
    grad: Option<CpuArg>,
    eps: f64,
    pass: AdainPass,
) -> Result<(CpuStorage, Shape)> {
    let what = if pass == AdainPass::Forward {
        "adain"
    } else {
        "adain backward"
    };
    let (planes, n, ns) = match grad {
        Some((_, gl)) => grad_planes(content.1, style.1, gl)?,
        None => planes(content.1, style.1, what)?,
    };
    let x = f32_slice(content.0, content.1, what)?;
    let y = f32_slice(style.0, style.1, what)?;
    let g = match (grad, pass) {
        (None, AdainPass::Forward) => &[][..],
        (Some((gs, gl)), AdainPass::Content | AdainPass::Style) => f32_slice(gs, gl, what)?,
        _ => bail!("{what}: pass {pass:?} with gradient {}", grad.is_some()),
    };
    let len = if pass == AdainPass::Style { ns } else { n };
    // SAFETY: each plane is written in full (len values).
    let out = unsafe {
        write_items(
            planes,
            len,
            #[inline(always)]
            |i, o| {
                let (xp, yp) = (&x[i * n..][..n], &y[i * ns..][..ns]);
                let (m, v) = mean_var(xp);
                let (mm, vv) = mean_var(yp);
                let (s, ss) = ((v + eps).sqrt(), (vv + eps).sqrt());
                if pass == AdainPass::Forward {
                    let scale = (ss / s) as f32;
                    let (m, mm) = (m as f32, mm as f32);
                    for (o, &x) in o.iter_mut().zip(xp) {
                        o.write((x - m) * scale + mm);
                    }
                    return;
                }
                let gp = &g[i * n..][..n];
                let (sg, sgx) = grad_sums(xp, gp, m, s);
                if pass == AdainPass::Style {
                    let a = (sg / ns as f64) as f32;
                    let b = (sgx / ss / (ns - 1) as f64) as f32;
                    let mm = mm as f32;
                    for (o, &y) in o.iter_mut().zip(yp) {
                        o.write(a + b * (y - mm));
                    }
                } else {
                    let k = (ss / s) as f32;
                    let mg = (sg / n as f64) as f32;
                    let c = (sgx / (n - 1) as f64) as f32;
                    let (m, inv) = (m as f32, (1.0 / s) as f32);
                    for ((o, &x), &g) in o.iter_mut().zip(xp).zip(gp) {
                        o.write(k * (g - mg - (x - m) * inv * c));
                    }
                }
            },
        )
    };
    let shape = if pass == AdainPass::Style {
        style.1
    } else {
        content.1
    };
    Ok((CpuStorage::F32(out), shape.shape().clone()))
}

/// Mean and unbiased variance of one plane, two passes in f64.
#[inline(always)]
fn mean_var(p: &[f32]) -> (f64, f64) {
    let n = p.len() as f64;
    let mean = sum8(p, |x| x as f64) / n;
    let var = sum8(p, |x| {
        let d = x as f64 - mean;
        d * d
    }) / (n - 1.0);
    (mean, var)
}

/// `sum(f(p[i]))` in f64 over eight independent lanes (so the adds pipeline and vectorise).
#[inline(always)]
fn sum8(p: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = p.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f(x);
        }
    }
    let mut total = acc.iter().sum::<f64>();
    for &x in tail {
        total += f(x);
    }
    total
}

/// `sum(g)` and `sum(g * xhat)` of one plane, `xhat = (x - m) / s`.
#[inline(always)]
fn grad_sums(x: &[f32], g: &[f32], m: f64, s: f64) -> (f64, f64) {
    let mut acc = [[0f64; 2]; 8];
    let (xc, gc) = (x.chunks_exact(8), g.chunks_exact(8));
    let (xt, gt) = (xc.remainder(), gc.remainder());
    for (xs, gs) in xc.zip(gc) {
        for ((a, &x), &g) in acc.iter_mut().zip(xs).zip(gs) {
            a[0] += g as f64;
            a[1] += g as f64 * (x as f64 - m);
        }
    }
    let (mut sg, mut sgx) = acc
        .iter()
        .fold((0.0, 0.0), |(p, q), a| (p + a[0], q + a[1]));
    for (&x, &g) in xt.iter().zip(gt) {
        sg += g as f64;
        sgx += g as f64 * (x as f64 - m);
    }
    (sg, sgx / s)
}

struct Adain {
    eps: f64,
}

impl CustomOp2 for Adain {
    fn name(&self) -> &'static str {
        "dgcolor-adain"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        cpu_pass((s1, l1), (s2, l2), None, self.eps, AdainPass::Forward)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (planes, n, ns) = planes(l1, l2, "adain")?;
        crate::cuda::adain_plane(
            (s1, l1),
            (s2, l2),
            None,
            (planes, n, ns),
            self.eps,
            AdainPass::Forward,
        )
    }

    fn bwd(
        &self,
        content: &Tensor,
        style: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let part = |t: &Tensor, pass| {
            t.track_op()
                .then(|| {
                    content.apply_op3_no_bwd(
                        style,
                        &grad,
                        &AdainGrad {
                            eps: self.eps,
                            pass,
                        },
                    )
                })
                .transpose()
        };
        Ok((
            part(content, AdainPass::Content)?,
            part(style, AdainPass::Style)?,
        ))
    }
}

/// What one pass over the planes writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AdainPass {
    /// The output, content-shaped.
    Forward,
    /// The content's gradient.
    Content,
    /// The style's gradient, style-shaped.
    Style,
}

impl AdainPass {
    #[cfg(feature = "cuda")]
    pub(crate) fn code(self) -> i32 {
        match self {
            AdainPass::Forward => 0,
            AdainPass::Content => 1,
            AdainPass::Style => 2,
        }
    }
}

/// `(content, style, grad) -> dcontent` or `dstyle` of [`adain`].
struct AdainGrad {
    eps: f64,
    pass: AdainPass,
}

impl CustomOp3 for AdainGrad {
    fn name(&self) -> &'static str {
        "dgcolor-adain-grad"
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
        cpu_pass((s1, l1), (s2, l2), Some((s3, l3)), self.eps, self.pass)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dims = grad_planes(l1, l2, l3)?;
        crate::cuda::adain_plane(
            (s1, l1),
            (s2, l2),
            Some((s3, l3)),
            dims,
            self.eps,
            self.pass,
        )
    }
}
