//! Per-sample, per-channel feature statistics and the three operations built on them:
//! AdaIN (Huang & Belongie 2017) for the decoder skip, and SagNet's content and style
//! randomization (Nam et al., CVPR 2021) for the style discriminator.
//!
//! All three use the *unbiased* variance over space and eps 1e-5, like the reference
//! (`Tensor.var` in PyTorch is unbiased by default). AdaIN and content randomization run as
//! one op with its backward ([`dgcolor_kernels::adain`]) where the fused ops run, candle
//! ops otherwise (the same values up to f32 rounding: the tests compare both).

use candle_core::{bail, Result, Tensor, D};

/// The eps added to the (unbiased) variance before the square root.
pub const ADAIN_EPS: f64 = 1e-5;
const EPS: f64 = ADAIN_EPS;

/// Mean and unbiased variance over space, both `[B, C, 1, 1]`.
#[derive(Clone, Debug)]
pub struct ChannelStats {
    pub mean: Tensor,
    pub var: Tensor,
}

impl ChannelStats {
    /// `sqrt(var + eps)`, the scale AdaIN and CR restore.
    fn std(&self) -> Result<Tensor> {
        (&self.var + EPS)?.sqrt()
    }
}

pub fn channel_stats(x: &Tensor) -> Result<ChannelStats> {
    let (b, c, h, w) = x.dims4()?;
    let n = h * w;
    if n < 2 {
        bail!(
            "channel_stats: the unbiased variance needs at least 2 positions, got {:?}",
            x.shape()
        )
    }
    let flat = x.reshape((b, c, n))?;
    let mean = flat.mean_keepdim(D::Minus1)?; // [B, C, 1]
    let var = (flat.broadcast_sub(&mean)?.sqr()?.sum_keepdim(D::Minus1)? / (n - 1) as f64)?;
    Ok(ChannelStats {
        mean: mean.reshape((b, c, 1, 1))?,
        var: var.reshape((b, c, 1, 1))?,
    })
}

/// `(x - mean) / sqrt(var + eps)` with its statistics.
fn normalize(x: &Tensor) -> Result<(Tensor, ChannelStats)> {
    let stats = channel_stats(x)?;
    let normed = x.broadcast_sub(&stats.mean)?.broadcast_div(&stats.std()?)?;
    Ok((normed, stats))
}

/// Renormalises `content` to the per-sample, per-channel mean and standard deviation of
/// `style`, which must have the same batch and channel counts (spatial sizes may differ).
pub fn adain(content: &Tensor, style: &Tensor) -> Result<Tensor> {
    let (cb, cc, _, _) = content.dims4()?;
    let (sb, sc, _, _) = style.dims4()?;
    if (cb, cc) != (sb, sc) {
        bail!(
            "adain: content {:?} and style {:?} differ in batch or channels",
            content.shape(),
            style.shape()
        )
    }
    if dgcolor_kernels::fused_on(&[content, style]) {
        return dgcolor_kernels::adain(content, style, EPS);
    }
    let (normed, _) = normalize(content)?;
    let target = channel_stats(style)?;
    normed
        .broadcast_mul(&target.std()?)?
        .broadcast_add(&target.mean)
}

/// Content randomization CR: sample i keeps its own statistics but takes the normalised,
/// *detached* content of sample `perm[i]`, so gradients reach only the statistics — what
/// makes the style discriminator see style and nothing else. That is AdaIN with the
/// partner's detached features as content and the sample's own as style.
pub fn content_randomize(x: &Tensor, perm: &Tensor) -> Result<Tensor> {
    check_perm("content_randomize", x, perm)?;
    adain(&x.index_select(perm, 0)?.detach(), x)
}

/// Style randomization SR: own content, statistics mixed `a * own + (1 - a) * partner's`
/// with one `a` per sample (`alpha`, `[B]`), partner `perm[i]`.
pub fn style_randomize(x: &Tensor, perm: &Tensor, alpha: &Tensor) -> Result<Tensor> {
    check_perm("style_randomize", x, perm)?;
    let b = x.dim(0)?;
    if alpha.dims() != [b] {
        bail!("style_randomize: alpha {:?} must be [{b}]", alpha.shape())
    }
    let (normed, stats) = normalize(x)?;
    let a = alpha.reshape((b, 1, 1, 1))?;
    let one_minus = (1.0 - &a)?;
    let mix = |own: &Tensor| -> Result<Tensor> {
        own.broadcast_mul(&a)?
            .add(&own.index_select(perm, 0)?.broadcast_mul(&one_minus)?)
    };
    let mean = mix(&stats.mean)?;
    let var = mix(&stats.var)?;
    normed
        .broadcast_mul(&(var + EPS)?.sqrt()?)?
        .broadcast_add(&mean)
}

fn check_perm(op: &str, x: &Tensor, perm: &Tensor) -> Result<()> {
    let b = x.dim(0)?;
    if perm.dims() != [b] {
        bail!(
            "{op}: permutation {:?} must be [{b}] for input {:?}",
            perm.shape(),
            x.shape()
        )
    }
    Ok(())
}
