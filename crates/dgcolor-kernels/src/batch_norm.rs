//! Training-mode BatchNorm2d as one custom op. As candle ops, normalising with batch
//! statistics is about eight full passes over the activation forward (a transposed copy,
//! mean, centring, square, sum, then subtract, scale, shift) and twice that backward, each
//! with its own allocation; here it is one statistics pass and one normalising pass forward,
//! and two passes backward using the closed-form gradient
//! `dx = w * inv / N * (N * dy - sum(dy) - x_hat * sum(dy * x_hat))`.
//! Per-channel sums are accumulated in f64 in a fixed order, so results are deterministic.

use std::sync::Arc;

#[cfg(feature = "cuda")]
use candle_core::CudaStorage;
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu::{f32_slice, min_items, simd, write_items};

/// `(x - mean) / sqrt(var + eps) * weight + bias` over `x [B, C, H, W]` with the batch's
/// per-channel mean and biased variance, differentiable in `x`, `weight` and `bias`.
/// Returns the output and the (detached) batch mean and biased variance `[C]`, from which
/// the caller updates its running statistics.
pub fn batch_norm_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    if !crate::conv::fused_on(&[x, weight, bias]) {
        return batch_norm_train_reference(x, weight, bias, eps);
    }
    let (_, c, _, _) = x.dims4()?;
    if weight.elem_count() != c || bias.elem_count() != c {
        bail!(
            "batch_norm: input {:?} has {c} channels, weight {:?} and bias {:?}",
            x.shape(),
            weight.shape(),
            bias.shape()
        )
    }
    let x = x.contiguous()?;
    let stats = x.apply_op1_no_bwd(&ChannelStats)?; // [2, C]: mean, biased var
    let affine = Tensor::cat(&[weight.flatten_all()?, bias.flatten_all()?], 0)?; // [2C]
    let y = x.apply_op3_arc(&affine, &stats, Arc::new(Box::new(BatchNormOp { eps })))?;
    Ok((y, stats.get(0)?, stats.get(1)?))
}

/// The same with candle ops: the path off the CPU and the reference in tests.
pub fn batch_norm_train_reference(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (b, c, h, w) = x.dims4()?;
    let n = b * h * w;
    let flat = x.transpose(0, 1)?.reshape((c, n))?; // [C, B*H*W]
    let mean = flat.mean_keepdim(1)?; // [C, 1]
    let var = (flat.broadcast_sub(&mean)?.sqr()?.sum_keepdim(1)? / n as f64)?;
    let as4 = |t: &Tensor| t.reshape((1, c, 1, 1));
    let scale = (&var + eps)?
        .sqrt()?
        .recip()?
        .reshape((c,))?
        .mul(&weight.flatten_all()?)?;
    let y = x
        .broadcast_sub(&as4(&mean)?)?
        .broadcast_mul(&as4(&scale)?)?
        .broadcast_add(&as4(bias)?)?;
    Ok((y, mean.flatten_all()?.detach(), var.flatten_all()?.detach()))
}

/// `sum_i f(a[i], b[i])` in f64 over 8 interleaved partial sums, so that the loop vectorises
/// (a single running sum is one dependent add per element); the order is fixed, so the
/// result does not depend on the machine.
#[inline(always)]
fn sum_wide(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f64) -> f64 {
    const LANES: usize = 8;
    simd(
        #[inline(always)]
        || {
            let mut acc = [0.0f64; LANES];
            let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
            let (ra, rb) = (ca.remainder(), cb.remainder());
            for (ca, cb) in ca.zip(cb) {
                for i in 0..LANES {
                    acc[i] += f(ca[i], cb[i]);
                }
            }
            let mut total = acc.iter().sum::<f64>();
            for (&x, &y) in ra.iter().zip(rb) {
                total += f(x, y);
            }
            total
        },
    )
}

/// The planes `[H*W]` of channel `ch` in a contiguous `[B, C, H, W]` buffer.
fn planes<'a>(x: &'a [f32], dims: &[usize], ch: usize) -> impl Iterator<Item = &'a [f32]> {
    let (c, hw) = (dims[1], dims[2] * dims[3]);
    (0..dims[0]).map(move |b| &x[(b * c + ch) * hw..(b * c + ch + 1) * hw])
}

/// Per channel: mean and biased variance (two-pass, f64 sums) -> `[2, C]`.
struct ChannelStats;

impl CustomOp1 for ChannelStats {
    fn name(&self) -> &'static str {
        "dgcolor-bn-stats"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "batch_norm input")?;
        let dims = l.dims();
        let c = dims[1];
        let n = (dims[0] * dims[2] * dims[3]) as f64;
        let per: Vec<(f32, f32)> = (0..c)
            .into_par_iter()
            .with_min_len(min_items(x.len() / c.max(1)))
            .map(|ch| {
                let sum: f64 = planes(x, dims, ch)
                    .map(|p| {
                        sum_wide(
                            p,
                            p,
                            #[inline(always)]
                            |v, _| v as f64,
                        )
                    })
                    .sum();
                let mean = sum / n;
                let sq: f64 = planes(x, dims, ch)
                    .map(|p| {
                        sum_wide(
                            p,
                            p,
                            #[inline(always)]
                            |v, _| (v as f64 - mean).powi(2),
                        )
                    })
                    .sum();
                (mean as f32, (sq / n) as f32)
            })
            .collect();
        let out = per
            .iter()
            .map(|p| p.0)
            .chain(per.iter().map(|p| p.1))
            .collect();
        Ok((CpuStorage::F32(out), Shape::from((2, c))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        crate::cuda::channel_sums((s, l), crate::cuda::Sums::Stats)
    }
}

/// Per-channel `(mean, 1 / sqrt(var + eps))` from a `[2, C]` statistics slice.
fn mean_inv(stats: &[f32], eps: f64) -> Vec<(f32, f32)> {
    let c = stats.len() / 2;
    (0..c)
        .map(|ch| {
            let inv = 1.0 / (stats[c + ch] as f64 + eps).sqrt();
            (stats[ch], inv as f32)
        })
        .collect()
}

/// `(x, [weight; bias], [mean; var]) -> y`.
struct BatchNormOp {
    eps: f64,
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "dgcolor-batch-norm"
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
        let (x, affine) = (
            f32_slice(s1, l1, "batch_norm input")?,
            f32_slice(s2, l2, "batch_norm affine")?,
        );
        let mi = mean_inv(f32_slice(s3, l3, "batch_norm statistics")?, self.eps);
        let dims = l1.dims();
        let (c, hw) = (dims[1], dims[2] * dims[3]);
        // SAFETY: each plane's item is written in full (hw values).
        let y = unsafe {
            write_items(
                x.len() / hw.max(1),
                hw,
                #[inline(always)]
                |p, y| {
                    let ch = p % c;
                    let (mean, inv) = mi[ch];
                    let scale = inv * affine[ch];
                    let shift = affine[c + ch] - mean * scale;
                    for (y, &x) in y.iter_mut().zip(&x[p * hw..][..hw]) {
                        y.write(x * scale + shift);
                    }
                },
            )
        };
        Ok((CpuStorage::F32(y), l1.shape().clone()))
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
        crate::cuda::batch_norm_elementwise((s1, l1), (s2, l2), (s3, l3), self.eps, false)
    }

    fn bwd(
        &self,
        x: &Tensor,
        affine: &Tensor,
        stats: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let sums = x.apply_op3_no_bwd(&dy, stats, &GradSums { eps: self.eps })?; // [2, C]
        let aux = Tensor::cat(
            &[stats.flatten_all()?, affine.clone(), sums.flatten_all()?],
            0,
        )?;
        let dx = x.apply_op3_no_bwd(&dy, &aux, &GradInput { eps: self.eps })?;
        // d weight = sum(dy * x_hat), d bias = sum(dy)
        let d_affine = Tensor::cat(&[sums.get(1)?, sums.get(0)?], 0)?;
        Ok((Some(dx), Some(d_affine), None))
    }
}

/// `(x, dy, [mean; var]) -> [sum(dy); sum(dy * x_hat)]` per channel.
struct GradSums {
    eps: f64,
}

impl CustomOp3 for GradSums {
    fn name(&self) -> &'static str {
        "dgcolor-bn-grad-sums"
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
        let (x, dy) = (
            f32_slice(s1, l1, "batch_norm input")?,
            f32_slice(s2, l2, "batch_norm gradient")?,
        );
        let mi = mean_inv(f32_slice(s3, l3, "batch_norm statistics")?, self.eps);
        let dims = l1.dims();
        let per: Vec<(f32, f32)> = (0..dims[1])
            .into_par_iter()
            .with_min_len(min_items(x.len() / dims[1].max(1)))
            .map(|ch| {
                let (mean, inv) = mi[ch];
                let (mut sdy, mut sdyx) = (0.0f64, 0.0f64);
                for (xp, gp) in planes(x, dims, ch).zip(planes(dy, dims, ch)) {
                    sdy += sum_wide(
                        gp,
                        gp,
                        #[inline(always)]
                        |g, _| g as f64,
                    );
                    sdyx += sum_wide(
                        xp,
                        gp,
                        #[inline(always)]
                        |x, g| (g * (x - mean) * inv) as f64,
                    );
                }
                (sdy as f32, sdyx as f32)
            })
            .collect();
        let out = per
            .iter()
            .map(|p| p.0)
            .chain(per.iter().map(|p| p.1))
            .collect();
        Ok((CpuStorage::F32(out), Shape::from((2, dims[1]))))
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
        crate::cuda::channel_sums(
            (s1, l1),
            crate::cuda::Sums::Grad((s2, l2), (s3, l3), self.eps),
        )
    }
}

/// `(x, dy, [mean; var; weight; bias; sum(dy); sum(dy * x_hat)]) -> dx`.
struct GradInput {
    eps: f64,
}

impl CustomOp3 for GradInput {
    fn name(&self) -> &'static str {
        "dgcolor-bn-grad-input"
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
        let (x, dy, aux) = (
            f32_slice(s1, l1, "batch_norm input")?,
            f32_slice(s2, l2, "batch_norm gradient")?,
            f32_slice(s3, l3, "batch_norm aux")?,
        );
        let dims = l1.dims();
        let (c, hw) = (dims[1], dims[2] * dims[3]);
        let n = (dims[0] * hw) as f32;
        let mi = mean_inv(&aux[..2 * c], self.eps);
        let (weight, sdy, sdyx) = (&aux[2 * c..3 * c], &aux[4 * c..5 * c], &aux[5 * c..]);
        // SAFETY: each plane's item is written in full (hw values).
        let dx = unsafe {
            write_items(
                x.len() / hw.max(1),
                hw,
                #[inline(always)]
                |p, dx| {
                    let ch = p % c;
                    let (mean, inv) = mi[ch];
                    let k = weight[ch] * inv / n;
                    let (sum_dy, sum_dyx) = (sdy[ch], sdyx[ch]);
                    let (x, dy) = (&x[p * hw..][..hw], &dy[p * hw..][..hw]);
                    for ((dx, &x), &g) in dx.iter_mut().zip(x).zip(dy) {
                        let x_hat = (x - mean) * inv;
                        dx.write(k * (n * g - sum_dy - x_hat * sum_dyx));
                    }
                },
            )
        };
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
        crate::cuda::batch_norm_elementwise((s1, l1), (s2, l2), (s3, l3), self.eps, true)
    }
}
