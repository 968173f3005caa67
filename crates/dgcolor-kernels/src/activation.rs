//! LeakyReLU (and ReLU, slope 0) as one custom op with a one-pass backward. As candle ops,
//! `max(x, 0.2 x)` is two passes forward and about eight backward (the `maximum` gradient
//! builds two equality masks); it runs on every encoder level, every skip and every
//! discriminator layer.
//!
//! The gradient is PyTorch's: `grad * (x > 0 ? 1 : slope)`, also at x == 0 (where
//! candle's `maximum` would split the gradient between both arguments).

use crate::cpu::{f32_slice, for_chunks, map2, write_items};
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

/// The forward map, shared by the op and by [`Act::LeakyRelu`] so the two agree bit for bit.
#[inline(always)]
fn leaky(v: f32, slope: f32) -> f32 {
    if v > 0.0 {
        v
    } else {
        v * slope
    }
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
            move |v, _| leaky(v, slope),
        );
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        crate::cuda::leaky_relu((s, l), None, self.slope)
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(leaky_relu_grad(arg, grad, self.slope)?))
    }
}

/// `grad * (x > 0 ? 1 : slope)`, LeakyReLU's input gradient (no graph). `x` may be the
/// activation's input or its output: for `slope >= 0` both have the same sign test, so an op
/// with the activation fused in can mask its gradient with the output it already has.
pub(crate) fn leaky_relu_grad(x: &Tensor, grad: &Tensor, slope: f32) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2_no_bwd(&grad.contiguous()?, &LeakyReluGrad { slope })
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

/// An activation applied to a convolution's output inside the convolution, while each
/// group's block is still in cache ([`crate::conv2d_act`], [`crate::conv_transpose2d_act`]):
/// one memory pass fewer per layer on the inference path, which has no backward.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    Identity,
    Relu,
    /// `x > 0 ? x : slope * x`.
    LeakyRelu(f32),
    /// Within 3e-7 of libm's `tanhf` (absolute; [`tanh_fast`]).
    Tanh,
}

impl Act {
    /// The same activation as candle ops (plus [`leaky_relu`]): the path for tensors that
    /// record a graph or live off the CPU, and the reference in tests.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Act::Identity => Ok(x.clone()),
            Act::Relu => x.relu(),
            Act::LeakyRelu(slope) => leaky_relu(x, slope as f64),
            Act::Tanh => x.tanh(),
        }
    }

    /// The gradient at this activation's input from `grad`, the gradient at its output
    /// `out`, for an op that applied it inside (no graph): LeakyReLU and ReLU mask by the
    /// output's sign, which is the input's for `slope >= 0` ([`leaky_relu_grad`]).
    pub(crate) fn input_grad(self, out: &Tensor, grad: &Tensor) -> Result<Tensor> {
        match self {
            Act::Identity => grad.contiguous(),
            Act::LeakyRelu(slope) => leaky_relu_grad(out, grad, slope),
            Act::Relu => leaky_relu_grad(out, grad, 0.0),
            Act::Tanh => bail!("no backward for a tanh inside an op (the inference path only)"),
        }
    }

    /// In place on a block of one task; the caller runs it inside [`crate::simd`].
    #[inline(always)]
    pub(crate) fn apply_block(self, v: &mut [f32]) {
        match self {
            Act::Identity => {}
            Act::Relu => v.iter_mut().for_each(|x| *x = x.max(0.0)),
            Act::LeakyRelu(slope) => v.iter_mut().for_each(|x| *x = leaky(*x, slope)),
            Act::Tanh => v.iter_mut().for_each(|x| *x = tanh_fast(*x)),
        }
    }

    /// In place on a whole output, in parallel chunks when it is large.
    pub(crate) fn apply_slice(self, v: &mut [f32]) {
        if self != Act::Identity {
            for_chunks(
                v,
                #[inline(always)]
                |_, c| self.apply_block(c),
            );
        }
    }
}

/// `tanh(x) = 1 - 2 / (e^{2x} + 1)` with `e^{2x}` from a degree-7 polynomial and an
/// exponent built from bits, so that a loop of it vectorises (libm's `tanhf` is a scalar
/// call, ~8 ns per value). Absolute error below 3e-7 (cancellation near 0 bounds the
/// relative error, which the generator's output, compared in absolute terms, never needs).
#[inline(always)]
pub(crate) fn tanh_fast(x: f32) -> f32 {
    // Past |x| = 10, tanh rounds to +-1 in f32 (and so does this formula at 10).
    let y = 2.0 * x.clamp(-10.0, 10.0);
    // y = n ln2 + r, |r| <= ln2 / 2; n rounded with the 1.5 * 2^23 trick (no libm call).
    const MAGIC: f32 = 12_582_912.0;
    let n = (y * std::f32::consts::LOG2_E + MAGIC) - MAGIC;
    let r = y - n * std::f32::consts::LN_2;
    let mut p = 1.0 / 5040.0;
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    let e = p * f32::from_bits(((n as i32 + 127) as u32) << 23);
    1.0 - 2.0 / (e + 1.0)
}

/// `relu(cat([a, b], 1))` in one pass: the decoder's input at every level (upsampled
/// features and skip). Differentiable: its backward is one pass per operand,
/// `grad[:, part] * (out[:, part] > 0)` (the ReLU gradient of [`leaky_relu`] at slope 0, so
/// the same values as cat + ReLU), one graph node instead of cat + ReLU's two, whose
/// gradients candle would each accumulate and copy and which would keep both the
/// concatenation and its ReLU alive until the backward pass. On CUDA (`cuda` builds) the same two passes
/// run as the `relu_cat` kernels of `cuda/fused.cu`. Candle ops when the fused ops are off
/// for the operands.
pub fn relu_cat(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !crate::conv::fused_on(&[a, b]) {
        return Tensor::cat(&[a, b], 1)?.relu();
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, ReluCat)
}

struct ReluCat;

impl CustomOp2 for ReluCat {
    fn name(&self) -> &'static str {
        "dgcolor-relu-cat"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (ad, bd) = (
            crate::conv::dims4(l1, "relu_cat")?,
            crate::conv::dims4(l2, "relu_cat")?,
        );
        if (ad.0, ad.2, ad.3) != (bd.0, bd.2, bd.3) {
            bail!("relu_cat: {ad:?} and {bd:?} differ outside dim 1")
        }
        let (a, b) = (
            f32_slice(s1, l1, "relu_cat")?,
            f32_slice(s2, l2, "relu_cat")?,
        );
        let (na, nb) = (ad.1 * ad.2 * ad.3, bd.1 * bd.2 * bd.3);
        // SAFETY: each image's item is written in full: na values of a, then nb of b.
        let out = unsafe {
            write_items(
                ad.0,
                na + nb,
                #[inline(always)]
                |i, o| {
                    let (oa, ob) = o.split_at_mut(na);
                    for (o, &x) in oa.iter_mut().zip(&a[i * na..][..na]) {
                        o.write(x.max(0.0));
                    }
                    for (o, &x) in ob.iter_mut().zip(&b[i * nb..][..nb]) {
                        o.write(x.max(0.0));
                    }
                },
            )
        };
        Ok((CpuStorage::F32(out), (ad.0, ad.1 + bd.1, ad.2, ad.3).into()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        crate::cuda::relu_cat((s1, l1), (s2, l2))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (ca, cb) = (a.dim(1)?, b.dim(1)?);
        let part = |t: &Tensor, channels| {
            t.track_op()
                .then(|| relu_cat_part_grad(res, &grad, channels))
                .transpose()
        };
        Ok((part(a, (0, ca))?, part(b, (ca, ca + cb))?))
    }
}

/// `grad[:, c0..c1] * (out[:, c0..c1] > 0)` for `channels = (c0, c1)`: one operand's share
/// of the gradient of [`relu_cat`] (or of an op that ends in it), from its output `out`.
pub(crate) fn relu_cat_part_grad(
    out: &Tensor,
    grad: &Tensor,
    channels: (usize, usize),
) -> Result<Tensor> {
    out.apply_op2_no_bwd(grad, &ReluCatGrad { channels })
}

/// `(out, grad) -> grad[:, c0..c1] * (out[:, c0..c1] > 0)`.
struct ReluCatGrad {
    channels: (usize, usize),
}

impl CustomOp2 for ReluCatGrad {
    fn name(&self) -> &'static str {
        "dgcolor-relu-cat-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = crate::conv::dims4(l1, "relu_cat backward")?;
        if l2.dims() != [b, c, h, w] {
            bail!(
                "relu_cat backward: output {:?} vs gradient {:?}",
                l1.dims(),
                l2.dims()
            )
        }
        let (out, grad) = (
            f32_slice(s1, l1, "relu_cat backward")?,
            f32_slice(s2, l2, "relu_cat backward")?,
        );
        let (c0, c1) = self.channels;
        let (hw, np) = (h * w, (c1 - c0) * h * w);
        // SAFETY: each image's item is written in full (np values).
        let dx = unsafe {
            write_items(
                b,
                np,
                #[inline(always)]
                |i, d| {
                    let at = (i * c + c0) * hw;
                    let (o, g) = (&out[at..][..np], &grad[at..][..np]);
                    for ((d, &o), &g) in d.iter_mut().zip(o).zip(g) {
                        d.write(if o > 0.0 { g } else { 0.0 });
                    }
                },
            )
        };
        Ok((CpuStorage::F32(dx), (b, c1 - c0, h, w).into()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        crate::cuda::relu_cat_grad((s1, l1), (s2, l2), self.channels)
    }
}

#[cfg(test)]
mod tests {
    /// Against libm's `tanhf` on a dense grid over [-12, 12] (both saturated ends, the
    /// cancellation zone near 0, every exponent segment), saturating to exactly +-1.
    #[test]
    fn tanh_fast_is_within_3e7_of_libm() {
        let mut worst = 0.0f32;
        for i in -1_200_000..=1_200_000 {
            let x = i as f32 * 1e-5;
            let got = super::tanh_fast(x);
            worst = worst.max((got - x.tanh()).abs());
            assert!((-1.0..=1.0).contains(&got), "tanh_fast({x}) = {got}");
        }
        assert!(worst < 3e-7, "worst absolute error {worst:e}");
        assert_eq!(super::tanh_fast(0.0), 0.0);
        assert_eq!(super::tanh_fast(20.0), 1.0);
        assert_eq!(super::tanh_fast(-20.0), -1.0);
    }
}
