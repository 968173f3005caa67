//! BatchNorm2d with PyTorch's training semantics, written out because the running-statistic
//! update must match the reference exactly (momentum 0.1, running variance from the
//! *unbiased* batch variance, normalisation with the biased one).

use candle_core::{bail, DType, Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};

const EPS: f64 = 1e-5;
const MOMENTUM: f64 = 0.1;

#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    name: String,
}

/// Fetches `weight`, `bias`, `running_mean`, `running_var` under `vb` (the names of
/// `torch.nn.BatchNorm2d`). The running statistics are variables so they are checkpointed;
/// optimizers skip them by name.
pub fn batch_norm2d(channels: usize, vb: VarBuilder) -> Result<BatchNorm2d> {
    let weight = vb.get_with_hints(channels, "weight", Init::Const(1.0))?;
    let bias = vb.get_with_hints(channels, "bias", Init::Const(0.0))?;
    let running_mean = vb.get_with_hints(channels, "running_mean", Init::Const(0.0))?;
    let running_var = vb.get_with_hints(channels, "running_var", Init::Const(1.0))?;
    Ok(BatchNorm2d {
        weight,
        bias,
        running_mean: Var::from_tensor(&running_mean)?,
        running_var: Var::from_tensor(&running_var)?,
        name: vb.prefix(),
    })
}

/// What runs inside the BatchNorm's op after it (see the `forward_*` methods).
#[derive(Clone, Copy)]
enum After<'a> {
    Nothing,
    LeakyRelu(f64),
    /// `relu(cat([y, skip], 1))`.
    ReluCat(&'a Tensor),
}

impl BatchNorm2d {
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_then(x, train, After::Nothing)
    }

    /// LeakyReLU(`slope`) of [`Self::forward_t`], the BatchNorm and the activation as one op
    /// in training ([`dgcolor_kernels::batch_norm_leaky_relu_train`]): the same values, and
    /// no BatchNorm output kept for backward beside the activation's.
    pub fn forward_leaky_relu_t(&self, x: &Tensor, train: bool, slope: f64) -> Result<Tensor> {
        self.forward_then(x, train, After::LeakyRelu(slope))
    }

    /// `relu(cat([forward_t(x), skip], 1))`, as one op in training
    /// ([`dgcolor_kernels::batch_norm_relu_cat_train`]): the same values, and no BatchNorm
    /// output kept for backward beside the concatenation.
    pub fn forward_relu_cat_t(&self, x: &Tensor, train: bool, skip: &Tensor) -> Result<Tensor> {
        self.forward_then(x, train, After::ReluCat(skip))
    }

    fn forward_then(&self, x: &Tensor, train: bool, after: After) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if c != self.weight.dim(0)? {
            bail!(
                "{}: expected {} channels, got input {:?}",
                self.name,
                self.weight.dim(0)?,
                x.shape()
            )
        }
        if !train {
            let (scale, shift) = self.eval_affine()?;
            let y = x
                .broadcast_mul(&scale.reshape((1, c, 1, 1))?)?
                .broadcast_add(&shift.reshape((1, c, 1, 1))?)?;
            return match after {
                After::Nothing => Ok(y),
                After::LeakyRelu(slope) => dgcolor_kernels::leaky_relu(&y, slope),
                After::ReluCat(skip) => dgcolor_kernels::relu_cat(&y, skip),
            };
        }
        let n = b * h * w;
        if n < 2 {
            bail!(
                "{}: batch statistics need more than one value per channel, got {:?}",
                self.name,
                x.shape()
            )
        }
        // One fused op on the CPU and CUDA (dgcolor-kernels); it hands back the detached batch
        // statistics for the running averages.
        let (weight, bias) = (&self.weight, &self.bias);
        let (y, mean, var) = match after {
            After::Nothing => dgcolor_kernels::batch_norm_train(x, weight, bias, EPS)?,
            After::LeakyRelu(slope) => {
                dgcolor_kernels::batch_norm_leaky_relu_train(x, weight, bias, EPS, slope)?
            }
            After::ReluCat(skip) => {
                dgcolor_kernels::batch_norm_relu_cat_train(x, weight, bias, EPS, skip)?
            }
        };
        let unbiased = (var * (n as f64 / (n - 1) as f64))?;
        let rm = ((self.running_mean.as_tensor() * (1.0 - MOMENTUM))? + (mean * MOMENTUM)?)?;
        let rv = ((self.running_var.as_tensor() * (1.0 - MOMENTUM))? + (unbiased * MOMENTUM)?)?;
        self.running_mean.set(&rm)?;
        self.running_var.set(&rv)?;
        Ok(y)
    }

    /// The same layer with `weight` and `bias` detached, so that a backward pass through it
    /// computes no gradient for them; the running statistics are shared (same variables) and
    /// still move in train mode, as in PyTorch with `requires_grad` off.
    pub fn frozen(&self) -> Self {
        Self {
            weight: self.weight.detach(),
            bias: self.bias.detach(),
            ..self.clone()
        }
    }

    /// Per-channel (scale, shift) of eval mode, for folding into a preceding convolution.
    pub fn eval_affine(&self) -> Result<(Tensor, Tensor)> {
        let inv_std = (self.running_var.as_tensor() + EPS)?.sqrt()?.recip()?;
        let scale = (&self.weight * inv_std)?;
        let shift = (&self.bias - (self.running_mean.as_tensor() * &scale)?)?;
        Ok((scale, shift))
    }

    pub fn dtype(&self) -> DType {
        self.weight.dtype()
    }
}
