//! LeakyReLU (and ReLU, slope 0) as one custom op with a one-pass backward. As candle ops,
//! `max(x, 0.2 x)` is two passes forward and about eight backward (the `maximum` gradient
//! builds two equality masks); it runs on every encoder level, every skip and every
//! discriminator layer.
//!
//! The gradient is PyTorch's: `grad * (x > 0 ? 1 : slope)`, also at x == 0 (where
//! candle's `maximum` would split the gradient between both arguments).

use crate::cpu::{f32_slice, map2};
#[cfg(feature = "cuda")]
use candle_core::CudaStorage;
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

/// `x > 0 ? x : slope * x`, differentiable; candle ops where [`crate::conv::fused_on`] says no.
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    if !crate::conv::fused_on(&[x]) {
        return leaky_relu_reference(x, slope);
    }
    x.contiguous()?.apply_op1(LeakyRelu {
        slope: slope as f32,
    })
}

/// `max(x, slope * x)` with candle ops (slope < 1): the fallback and the test reference.
pub fn leaky_relu_reference(x: &Tensor, slope: f64) -> Result<Tensor> {
    if slope == 0.0 {
        x.relu()
    } else {
        x.maximum(&(x * slope)?)
    }
}

struct LeakyRelu {
    slope: f32,
}

impl CustomOp1 for LeakyRelu {
    fn name(&self) -> &'static str {
        "dgcolor-leaky-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "leaky_relu")?;
        let slope = self.slope;
        let out = map2(
            x,
            x,
            #[inline(always)]
            move |v, _| if v > 0.0 { v } else { v * slope },
        );
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        crate::cuda::leaky_relu((s, l), None, self.slope)
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(
            &grad.contiguous()?,
            &LeakyReluGrad { slope: self.slope },
        )?))
    }
}

/// (x, grad) -> grad * (x > 0 ? 1 : slope).
struct LeakyReluGrad {
    slope: f32,
}

impl CustomOp2 for LeakyReluGrad {
    fn name(&self) -> &'static str {
        "dgcolor-leaky-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, g) = (
            f32_slice(s1, l1, "leaky_relu backward")?,
            f32_slice(s2, l2, "leaky_relu backward")?,
        );
        if x.len() != g.len() {
            bail!("leaky_relu backward: {:?} vs {:?}", l1.shape(), l2.shape())
        }
        let slope = self.slope;
        let out = map2(
            x,
            g,
            #[inline(always)]
            move |v, g| if v > 0.0 { g } else { g * slope },
        );
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        crate::cuda::leaky_relu((s1, l1), Some((s2, l2)), self.slope)
    }
}
