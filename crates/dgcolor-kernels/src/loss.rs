//! The pix2pix losses as one op each with its backward: L1, `mean(|pred - target|)`, and the
//! least-squares GAN loss, `mean((scores - label)^2)`. As candle ops each is a subtraction,
//! an `abs` or `sqr` and a mean, three graph nodes whose full-size intermediates the graph
//! keeps until backward and whose backward is five more ops (and a gradient for the target,
//! which nobody asks for); here the forward is one reducing pass and the backward one
//! element-wise pass per operand that records a graph.
//!
//! Sums are in f64 over fixed chunks of [`CHUNK`] elements, added in order, so the value does
//! not depend on the thread count (on CUDA: one partial per block of a grid whose size
//! depends only on the length, added in order by one thread).

use crate::cpu::{f32_slice, map2};
#[cfg(feature = "cuda")]
use candle_core::CudaStorage;
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per partial sum on the CPU.
const CHUNK: usize = 1 << 14;

/// Which loss; its value is `mean(f(pred, target))`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Loss {
    /// `|pred - target|`; derivative `sign(pred - target)`, 0 where equal (as PyTorch's
    /// `abs`; candle's gives 1 there).
    L1,
    /// `(pred - label)^2` against a constant; derivative `2 (pred - label)`.
    SquaredTo(f32),
}

impl Loss {
    fn name(self) -> &'static str {
        match self {
            Loss::L1 => "dgcolor-l1",
            Loss::SquaredTo(_) => "dgcolor-lsgan",
        }
    }

    fn grad_name(self) -> &'static str {
        match self {
            Loss::L1 => "dgcolor-l1-grad",
            Loss::SquaredTo(_) => "dgcolor-lsgan-grad",
        }
    }

    #[inline(always)]
    fn value(self, p: f32, t: f32) -> f64 {
        match self {
            Loss::L1 => (p as f64 - t as f64).abs(),
            Loss::SquaredTo(label) => {
                let d = p as f64 - label as f64;
                d * d
            }
        }
    }

    /// d value / d pred.
    #[inline(always)]
    fn derivative(self, p: f32, t: f32) -> f32 {
        match self {
            Loss::L1 => {
                if p > t {
                    1.0
                } else if p < t {
                    -1.0
                } else {
                    0.0
                }
            }
            Loss::SquaredTo(label) => 2.0 * (p - label),
        }
    }

    #[cfg(feature = "cuda")]
    pub(crate) fn code(self) -> (i32, f32) {
        match self {
            Loss::L1 => (0, 0.0),
            Loss::SquaredTo(label) => (1, label),
        }
    }
}

/// `mean(|pred - target|)`, a scalar; differentiable in both operands (a gradient only for
/// an operand that records a graph). f32 on the CPU, and on CUDA in a `cuda` build.
pub fn l1_loss(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    if pred.dims() != target.dims() {
        bail!(
            "l1: prediction {:?} and target {:?} differ in shape",
            pred.shape(),
            target.shape()
        )
    }
    pred.contiguous()?
        .apply_op2(&target.contiguous()?, LossOp(Loss::L1))
}

/// `mean((scores - label)^2)`, a scalar, differentiable in `scores`.
pub fn squared_loss_to(scores: &Tensor, label: f32) -> Result<Tensor> {
    scores
        .contiguous()?
        .apply_op1(LossOp(Loss::SquaredTo(label)))
}

struct LossOp(Loss);

fn check_len(len: usize, what: &str) -> Result<()> {
    if len == 0 {
        bail!("{what}: the mean of an empty tensor")
    }
    Ok(())
}

fn cpu_mean(p: &[f32], t: &[f32], loss: Loss) -> f64 {
    let partial: Vec<f64> = p
        .par_chunks(CHUNK)
        .enumerate()
        .map(|(i, pc)| {
            let tc = if t.is_empty() {
                pc
            } else {
                &t[i * CHUNK..][..pc.len()]
            };
            let mut acc = [0f64; 8];
            for (k, (&p, &t)) in pc.iter().zip(tc).enumerate() {
                acc[k % 8] += loss.value(p, t);
            }
            acc.iter().sum::<f64>()
        })
        .collect();
    partial.iter().sum::<f64>() / p.len() as f64
}

/// `sign * g * d loss / d pred / n` for every element: one operand's gradient (`t` empty
/// for [`Loss::SquaredTo`]).
fn cpu_grad(p: &[f32], t: &[f32], g: f32, loss: Loss, sign: f32) -> Vec<f32> {
    let k = sign * g / p.len() as f32;
    let t = if t.is_empty() { p } else { t };
    map2(p, t, move |p, t| k * loss.derivative(p, t))
}

impl CustomOp1 for LossOp {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let p = f32_slice(s, l, "lsgan")?;
        check_len(p.len(), "lsgan")?;
        let mean = cpu_mean(p, &[], self.0) as f32;
        Ok((CpuStorage::F32(vec![mean]), Shape::from(())))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        check_len(l.shape().elem_count(), "lsgan")?;
        crate::cuda::loss_mean((s, l), None, self.0)
    }

    fn bwd(&self, scores: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(scores.apply_op2_no_bwd(
            &grad.contiguous()?,
            &LossGrad {
                loss: self.0,
                sign: 1.0,
            },
        )?))
    }
}

impl CustomOp2 for LossOp {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (p, t) = (f32_slice(s1, l1, "l1")?, f32_slice(s2, l2, "l1")?);
        if p.len() != t.len() {
            bail!("l1: prediction {:?} vs target {:?}", l1.dims(), l2.dims())
        }
        check_len(p.len(), "l1")?;
        let mean = cpu_mean(p, t, self.0) as f32;
        Ok((CpuStorage::F32(vec![mean]), Shape::from(())))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        if l1.dims() != l2.dims() {
            bail!("l1: prediction {:?} vs target {:?}", l1.dims(), l2.dims())
        }
        check_len(l1.shape().elem_count(), "l1")?;
        crate::cuda::loss_mean((s1, l1), Some((s2, l2)), self.0)
    }

    fn bwd(
        &self,
        pred: &Tensor,
        target: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let part = |t: &Tensor, sign: f32| {
            t.track_op()
                .then(|| pred.apply_op3_no_bwd(target, &grad, &LossGrad { loss: self.0, sign }))
                .transpose()
        };
        Ok((part(pred, 1.0)?, part(target, -1.0)?))
    }
}

/// The gradient of a [`LossOp`] for one operand: `(pred, [target,] grad) -> sign * grad *
/// d loss / d pred / n`, pred-shaped (`grad` is the scalar upstream gradient).
struct LossGrad {
    loss: Loss,
    sign: f32,
}

fn upstream(s: &CpuStorage, l: &Layout) -> Result<f32> {
    let g = f32_slice(s, l, "loss backward")?;
    match g {
        [g] => Ok(*g),
        _ => bail!(
            "loss backward: expected a scalar gradient, got {:?}",
            l.dims()
        ),
    }
}

impl CustomOp2 for LossGrad {
    fn name(&self) -> &'static str {
        self.loss.grad_name()
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let p = f32_slice(s1, l1, "lsgan backward")?;
        let g = upstream(s2, l2)?;
        let dx = cpu_grad(p, &[], g, self.loss, self.sign);
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        crate::cuda::loss_grad((s1, l1), None, (s2, l2), self.loss, self.sign)
    }
}

impl candle_core::CustomOp3 for LossGrad {
    fn name(&self) -> &'static str {
        self.loss.grad_name()
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
        let (p, t) = (
            f32_slice(s1, l1, "l1 backward")?,
            f32_slice(s2, l2, "l1 backward")?,
        );
        if p.len() != t.len() {
            bail!(
                "l1 backward: prediction {:?} vs target {:?}",
                l1.dims(),
                l2.dims()
            )
        }
        let g = upstream(s3, l3)?;
        let dx = cpu_grad(p, t, g, self.loss, self.sign);
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
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
        crate::cuda::loss_grad((s1, l1), Some((s2, l2)), (s3, l3), self.loss, self.sign)
    }
}
