//! Adam's per-tensor update in place. As candle ops one update is eleven element-wise passes
//! and three fresh allocations per parameter tensor (new m, v and weights); in place it is
//! three passes and no allocation. Each element sees exactly the f32 operations, in the same
//! order, that those candle ops perform (candle's scalar `*`, `/`, `+` are `affine` with the
//! scalar rounded to f32), so both paths give bit-identical weights.

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor};

use crate::cpu::{f32_slice, f32_slice_mut, for_chunks};

/// The scalars of one Adam step (PyTorch's formulation, no weight decay).
#[derive(Clone, Copy, Debug)]
pub struct AdamCoeffs {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// `lr / (1 - beta1^t)`.
    pub step_size: f64,
    /// `1 - beta2^t`.
    pub bias2: f64,
}

/// `m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
/// param -= step_size * m / (sqrt(v) / sqrt(bias2) + eps)`, all three updated in place.
/// Returns `Ok(false)` and changes nothing unless every tensor is a contiguous f32 tensor of
/// the same size on the CPU or (in a `cuda` build) on CUDA, where the same three passes run
/// as kernels; the caller then uses candle ops (also under `DGCOLOR_KERNELS=candle|convs`).
pub fn adam_inplace(
    param: &Tensor,
    m: &Tensor,
    v: &Tensor,
    grad: &Tensor,
    c: AdamCoeffs,
) -> Result<bool> {
    let n = param.elem_count();
    let usable = crate::conv::fused_on(&[param, m, v, grad])
        && [param, m, v, grad].iter().all(|t| t.elem_count() == n)
        && [param, m, v].iter().all(|t| t.is_contiguous());
    if !usable {
        return Ok(false);
    }
    let g = grad.contiguous()?;
    m.inplace_op2(&g, &Moment::new(c.beta1, false))?;
    v.inplace_op2(&g, &Moment::new(c.beta2, true))?;
    param.inplace_op3(
        m,
        v,
        &Apply {
            inv_sqrt_bias2: (1.0 / c.bias2.sqrt()) as f32,
            eps: c.eps as f32,
            step_size: c.step_size as f32,
        },
    )?;
    Ok(true)
}

/// `moment = decay * moment + (1 - decay) * (g or g^2)`.
struct Moment {
    decay: f32,
    scale: f32,
    square: bool,
}

impl Moment {
    fn new(beta: f64, square: bool) -> Self {
        Self {
            decay: beta as f32,
            scale: (1.0 - beta) as f32,
            square,
        }
    }
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "dgcolor-adam-moment"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let g = f32_slice(s2, l2, "adam gradient")?;
        let (decay, scale, square) = (self.decay, self.scale, self.square);
        for_chunks(
            f32_slice_mut(s1, l1, "adam moment")?,
            #[inline(always)]
            move |off, m| {
                for (m, &g) in m.iter_mut().zip(&g[off..]) {
                    let g = if square { g * g } else { g };
                    *m = *m * decay + g * scale;
                }
            },
        );
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<()> {
        crate::cuda::adam_moment((s1, l1), (s2, l2), self.decay, self.scale, self.square)
    }
}

/// `param -= step_size * m / (sqrt(v) * inv_sqrt_bias2 + eps)`.
#[derive(Clone, Copy)]
struct Apply {
    inv_sqrt_bias2: f32,
    eps: f32,
    step_size: f32,
}

impl InplaceOp3 for Apply {
    fn name(&self) -> &'static str {
        "dgcolor-adam-apply"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        let (m, v) = (f32_slice(s2, l2, "adam m")?, f32_slice(s3, l3, "adam v")?);
        let Apply {
            inv_sqrt_bias2,
            eps,
            step_size,
        } = *self;
        for_chunks(
            f32_slice_mut(s1, l1, "adam parameters")?,
            #[inline(always)]
            move |off, p| {
                for ((p, &m), &v) in p.iter_mut().zip(&m[off..]).zip(&v[off..]) {
                    let denom = v.sqrt() * inv_sqrt_bias2 + eps;
                    *p -= m / denom * step_size;
                }
            },
        );
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<()> {
        let c = [self.inv_sqrt_bias2, self.eps, self.step_size];
        crate::cuda::adam_apply((s1, l1), (s2, l2), (s3, l3), c)
    }
}
