//! Training-mode BatchNorm2d as one custom op. As candle ops, normalising with batch
//! statistics is about eight full passes over the activation forward (a transposed copy,
//! mean, centring, square, sum, then subtract, scale, shift) and twice that backward, each
//! with its own allocation; here it is one statistics pass and one normalising pass forward,
//! and two passes backward using the closed-form gradient
//! `dx = w * inv / N * (N * dy - sum(dy) - x_hat * sum(dy * x_hat))`.
//! Per-channel sums are accumulated in f64 in a fixed order, so results are deterministic.
//!
//! [`batch_norm_leaky_relu_train`] is the same op with the LeakyReLU that follows every
//! BatchNorm of the encoders and discriminators applied inside it. Besides a pass, that saves
//! memory in training: candle's graph keeps every op's operands until backward ends, so a
//! separate activation keeps the BatchNorm output alive beside its own output and the
//! convolution's (PyTorch's in-place LeakyReLU overwrites it). The fused op's backward
//! recomputes the pre-activation value from the input it keeps anyway.

use std::sync::Arc;

#[cfg(feature = "cuda")]
use candle_core::CudaStorage;
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::conv::dims4;
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
    batch_norm_act_train(x, weight, bias, eps, None)
}

/// [`batch_norm_train`] followed by LeakyReLU with negative slope `slope` (0: ReLU), as one
/// op: the output is `leaky_relu(batch_norm(x))` bit for bit, with the same gradients, and
/// the BatchNorm output is never made (see the module doc). Candle ops where
/// [`crate::fused_on`] says no.
pub fn batch_norm_leaky_relu_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    slope: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    batch_norm_act_train(x, weight, bias, eps, Some(slope))
}

fn batch_norm_act_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    slope: Option<f64>,
) -> Result<(Tensor, Tensor, Tensor)> {
    if !crate::conv::fused_on(&[x, weight, bias]) {
        let (y, mean, var) = batch_norm_train_reference(x, weight, bias, eps)?;
        let y = match slope {
            Some(slope) => crate::leaky_relu_reference(&y, slope)?,
            None => y,
        };
        return Ok((y, mean, var));
    }
    check_affine(x, weight, bias)?;
    let x = x.contiguous()?;
    let stats = x.apply_op1_no_bwd(&ChannelStats)?; // [2, C]: mean, biased var
    let affine = Tensor::cat(&[weight.flatten_all()?, bias.flatten_all()?], 0)?; // [2C]
    let op = BatchNormOp {
        eps,
        slope: slope.map(|s| s as f32),
    };
    let y = x.apply_op3_arc(&affine, &stats, Arc::new(Box::new(op)))?;
    Ok((y, stats.get(0)?, stats.get(1)?))
}

/// `relu(cat([batch_norm(x), skip], 1))` as one op (the U-Net decoder's input: an up block's
/// BatchNorm output and the encoder's skip): the same values and gradients as
/// [`batch_norm_train`] then [`crate::relu_cat`], and the BatchNorm output is never made, so
/// candle's graph does not keep it beside the concatenation (PyTorch keeps neither).
/// Returns the output and the detached batch mean and biased variance, as
/// [`batch_norm_train`]. Candle ops where [`crate::fused_on`] says no.
pub fn batch_norm_relu_cat_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    skip: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    if !crate::conv::fused_on(&[x, weight, bias, skip]) {
        let (y, mean, var) = batch_norm_train_reference(x, weight, bias, eps)?;
        return Ok((crate::relu_cat(&y, skip)?, mean, var));
    }
    check_affine(x, weight, bias)?;
    let x = x.contiguous()?;
    let stats = x.apply_op1_no_bwd(&ChannelStats)?; // [2, C]: mean, biased var
    let norm = Tensor::cat(
        &[
            stats.flatten_all()?,
            weight.flatten_all()?,
            bias.flatten_all()?,
        ],
        0,
    )?; // [4C]
    let y = x.apply_op3_arc(
        &norm,
        &skip.contiguous()?,
        Arc::new(Box::new(BatchNormReluCat { eps })),
    )?;
    Ok((y, stats.get(0)?, stats.get(1)?))
}

fn check_affine(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<()> {
    let (_, c, _, _) = x.dims4()?;
    if weight.elem_count() != c || bias.elem_count() != c {
        bail!(
            "batch_norm: input {:?} has {c} channels, weight {:?} and bias {:?}",
            x.shape(),
            weight.shape(),
            bias.shape()
        )
    }
    Ok(())
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

/// Two such sums in one pass, `f` giving both terms of an element: each sum has its own
/// eight lanes in the same order as [`sum_wide`], so each equals what a pass of its own gives.
#[inline(always)]
fn sum_wide2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> (f64, f64)) -> (f64, f64) {
    const LANES: usize = 8;
    simd(
        #[inline(always)]
        || {
            let (mut acc0, mut acc1) = ([0.0f64; LANES], [0.0f64; LANES]);
            let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
            let (ra, rb) = (ca.remainder(), cb.remainder());
            for (ca, cb) in ca.zip(cb) {
                for i in 0..LANES {
                    let (t0, t1) = f(ca[i], cb[i]);
                    acc0[i] += t0;
                    acc1[i] += t1;
                }
            }
            let (mut s0, mut s1) = (acc0.iter().sum::<f64>(), acc1.iter().sum::<f64>());
            for (&x, &y) in ra.iter().zip(rb) {
                let (t0, t1) = f(x, y);
                s0 += t0;
                s1 += t1;
            }
            (s0, s1)
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

/// One channel's normalisation: `x_hat = (x - mean) * inv`, `y = x * scale + shift`.
#[derive(Clone, Copy)]
struct Norm {
    mean: f32,
    inv: f32,
    scale: f32,
    shift: f32,
}

/// Per-channel [`Norm`] from `[mean; var]` and `[weight; bias]`, each `[C]`; the CUDA kernels
/// (`inv_std` in fused.cu) make the same f32 values.
fn norms(stats: &[f32], affine: &[f32], eps: f64) -> Vec<Norm> {
    let c = stats.len() / 2;
    (0..c)
        .map(|ch| {
            let mean = stats[ch];
            let inv = (1.0 / (stats[c + ch] as f64 + eps).sqrt()) as f32;
            let scale = inv * affine[ch];
            Norm {
                mean,
                inv,
                scale,
                shift: affine[c + ch] - mean * scale,
            }
        })
        .collect()
}

/// The gradient reaching the BatchNorm output through LeakyReLU(`slope`):
/// `dy * (y > 0 ? 1 : slope)` with `y` recomputed exactly as the forward made it (as
/// `leaky_relu`'s gradient, NaN takes the slope).
/// Written as a product with a selected factor (`dy * 1.0` is `dy` exactly), which
/// vectorises; a branch between `dy` and `dy * slope` kept the sums scalar.
#[inline(always)]
fn through_leaky(n: Norm, x: f32, dy: f32, slope: f32) -> f32 {
    dy * if x * n.scale + n.shift > 0.0 {
        1.0
    } else {
        slope
    }
}

/// `(x, [weight; bias], [mean; var]) -> y`, then LeakyReLU(`slope`) if set.
struct BatchNormOp {
    eps: f64,
    slope: Option<f32>,
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
        let norms = norms(
            f32_slice(s3, l3, "batch_norm statistics")?,
            affine,
            self.eps,
        );
        let dims = l1.dims();
        let (c, hw) = (dims[1], dims[2] * dims[3]);
        let slope = self.slope;
        // SAFETY: each plane's item is written in full (hw values).
        let y = unsafe {
            write_items(
                x.len() / hw.max(1),
                hw,
                #[inline(always)]
                |p, y| {
                    let Norm { scale, shift, .. } = norms[p % c];
                    let x = &x[p * hw..][..hw];
                    match slope {
                        None => {
                            for (y, &x) in y.iter_mut().zip(x) {
                                y.write(x * scale + shift);
                            }
                        }
                        Some(slope) => {
                            // (`v * 1.0` is `v`: the select vectorises, a branch would not)
                            for (y, &x) in y.iter_mut().zip(x) {
                                let v = x * scale + shift;
                                y.write(v * if v > 0.0 { 1.0 } else { slope });
                            }
                        }
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
        crate::cuda::batch_norm_elementwise(
            (s1, l1),
            (s2, l2),
            (s3, l3),
            self.eps,
            self.slope,
            false,
        )
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
        let (eps, slope) = (self.eps, self.slope);
        let norm = Tensor::cat(&[stats.flatten_all()?, affine.clone()], 0)?; // [4C]
        let sums = x.apply_op3_no_bwd(&dy, &norm, &GradSums { eps, slope })?; // [2, C]
        let aux = Tensor::cat(&[norm, sums.flatten_all()?], 0)?;
        let dx = x.apply_op3_no_bwd(&dy, &aux, &GradInput { eps, slope })?;
        // d weight = sum(dy * x_hat), d bias = sum(dy)
        let d_affine = Tensor::cat(&[sums.get(1)?, sums.get(0)?], 0)?;
        Ok((Some(dx), Some(d_affine), None))
    }
}

/// The two terms of [`GradSums`] for one element: `g` and `g * x_hat`.
#[inline(always)]
fn grad_terms(n: Norm, x: f32, g: f32) -> (f64, f64) {
    (g as f64, (g * (x - n.mean) * n.inv) as f64)
}

/// `(x, dy, [mean; var; weight; bias]) -> [sum(g); sum(g * x_hat)]` per channel, `g` the
/// gradient at the BatchNorm output (`dy`, or [`through_leaky`] with a slope).
struct GradSums {
    eps: f64,
    slope: Option<f32>,
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
        let dims = l1.dims();
        let norm = f32_slice(s3, l3, "batch_norm statistics")?;
        let norms = norms(&norm[..2 * dims[1]], &norm[2 * dims[1]..], self.eps);
        let slope = self.slope;
        let per: Vec<(f32, f32)> = (0..dims[1])
            .into_par_iter()
            .with_min_len(min_items(x.len() / dims[1].max(1)))
            .map(|ch| {
                let n = norms[ch];
                let (mut sdy, mut sdyx) = (0.0f64, 0.0f64);
                // (the activation's case chosen once per channel, outside the loop)
                for (xp, gp) in planes(x, dims, ch).zip(planes(dy, dims, ch)) {
                    let (a, b) = match slope {
                        None => sum_wide2(
                            xp,
                            gp,
                            #[inline(always)]
                            move |x, g| grad_terms(n, x, g),
                        ),
                        Some(slope) => sum_wide2(
                            xp,
                            gp,
                            #[inline(always)]
                            move |x, g| grad_terms(n, x, through_leaky(n, x, g, slope)),
                        ),
                    };
                    sdy += a;
                    sdyx += b;
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
            crate::cuda::Sums::Grad((s2, l2), (s3, l3), self.eps, self.slope),
        )
    }
}

/// One element of BatchNorm's input gradient, `k * (N * g - sum(g) - x_hat * sum(g * x_hat))`
/// with `(k, N, sum(g), sum(g * x_hat))` = `c` and `k = weight * inv / N`.
#[inline(always)]
fn input_grad(n: Norm, c: (f32, f32, f32, f32), x: f32, g: f32) -> f32 {
    let (k, count, sum_g, sum_gx) = c;
    k * (count * g - sum_g - (x - n.mean) * n.inv * sum_gx)
}

/// `(x, dy, [mean; var; weight; bias; sum(g); sum(g * x_hat)]) -> dx`, `g` as in [`GradSums`].
struct GradInput {
    eps: f64,
    slope: Option<f32>,
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
        let norms = norms(&aux[..2 * c], &aux[2 * c..4 * c], self.eps);
        let (weight, sdy, sdyx) = (&aux[2 * c..3 * c], &aux[4 * c..5 * c], &aux[5 * c..]);
        let slope = self.slope;
        // SAFETY: each plane's item is written in full (hw values).
        let dx = unsafe {
            write_items(
                x.len() / hw.max(1),
                hw,
                #[inline(always)]
                |p, dx| {
                    let ch = p % c;
                    let norm = norms[ch];
                    let k = weight[ch] * norm.inv / n;
                    let (sum_dy, sum_dyx) = (sdy[ch], sdyx[ch]);
                    let (x, dy) = (&x[p * hw..][..hw], &dy[p * hw..][..hw]);
                    let pairs = dx.iter_mut().zip(x).zip(dy);
                    let dx_of = (k, n, sum_dy, sum_dyx);
                    match slope {
                        None => {
                            for ((dx, &x), &g) in pairs {
                                dx.write(input_grad(norm, dx_of, x, g));
                            }
                        }
                        Some(slope) => {
                            for ((dx, &x), &g) in pairs {
                                let g = through_leaky(norm, x, g, slope);
                                dx.write(input_grad(norm, dx_of, x, g));
                            }
                        }
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
        crate::cuda::batch_norm_elementwise(
            (s1, l1),
            (s2, l2),
            (s3, l3),
            self.eps,
            self.slope,
            true,
        )
    }
}

/// `(x [B, C, H, W], [mean; var; weight; bias], skip [B, Cs, H, W]) ->
/// relu(cat([x * scale + shift, skip], 1))`; see [`batch_norm_relu_cat_train`].
struct BatchNormReluCat {
    eps: f64,
}

impl CustomOp3 for BatchNormReluCat {
    fn name(&self) -> &'static str {
        "dgcolor-batch-norm-relu-cat"
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
        let what = "batch_norm_relu_cat";
        let (xd, sd) = (dims4(l1, what)?, dims4(l3, what)?);
        if (xd.0, xd.2, xd.3) != (sd.0, sd.2, sd.3) {
            bail!("{what}: input {xd:?} and skip {sd:?} differ outside dim 1")
        }
        let (x, norm, skip) = (
            f32_slice(s1, l1, what)?,
            f32_slice(s2, l2, what)?,
            f32_slice(s3, l3, what)?,
        );
        let c = xd.1;
        let norms = norms(&norm[..2 * c], &norm[2 * c..], self.eps);
        let hw = xd.2 * xd.3;
        let (nx, ns) = (c * hw, sd.1 * hw);
        // SAFETY: each image's item is written in full: nx normalised values, then ns of skip.
        let out = unsafe {
            write_items(
                xd.0,
                nx + ns,
                #[inline(always)]
                |i, o| {
                    let (ox, os) = o.split_at_mut(nx);
                    for ((ch, o), x) in ox
                        .chunks_mut(hw)
                        .enumerate()
                        .zip(x[i * nx..][..nx].chunks(hw))
                    {
                        let Norm { scale, shift, .. } = norms[ch];
                        for (o, &x) in o.iter_mut().zip(x) {
                            o.write((x * scale + shift).max(0.0));
                        }
                    }
                    for (o, &v) in os.iter_mut().zip(&skip[i * ns..][..ns]) {
                        o.write(v.max(0.0));
                    }
                },
            )
        };
        Ok((CpuStorage::F32(out), (xd.0, c + sd.1, xd.2, xd.3).into()))
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
        crate::cuda::batch_norm_relu_cat((s1, l1), (s2, l2), (s3, l3), self.eps)
    }

    fn bwd(
        &self,
        x: &Tensor,
        norm: &Tensor,
        skip: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (c, cs) = (x.dim(1)?, skip.dim(1)?);
        // The gradient at the BatchNorm output, then BatchNorm's backward on it.
        let g = crate::activation::relu_cat_part_grad(res, &grad, (0, c))?;
        let eps = self.eps;
        let sums = x.apply_op3_no_bwd(&g, norm, &GradSums { eps, slope: None })?; // [2, C]
        let dx = x
            .track_op()
            .then(|| {
                let aux = Tensor::cat(&[norm.clone(), sums.flatten_all()?], 0)?;
                x.apply_op3_no_bwd(&g, &aux, &GradInput { eps, slope: None })
            })
            .transpose()?;
        // d weight = sum(g * x_hat), d bias = sum(g); none for the (detached) statistics.
        let d_norm = Tensor::cat(
            &[
                sums.zeros_like()?.flatten_all()?,
                sums.get(1)?,
                sums.get(0)?,
            ],
            0,
        )?;
        let d_skip = skip
            .track_op()
            .then(|| crate::activation::relu_cat_part_grad(res, &grad, (c, c + cs)))
            .transpose()?;
        Ok((dx, Some(d_norm), d_skip))
    }
}
