//! The two U-Net building blocks, as the reference's `DownConv` and `UpConv`.
//!
//! The weights live in candle-nn's `Conv2d` / `ConvTranspose2d` (PyTorch names), but the
//! convolutions run through `dgcolor_kernels` (im2col/col2im + GEMM custom ops with their
//! own backward on the CPU; candle's ops on other devices).

use candle_core::{bail, Result, Tensor};
use candle_nn::{
    conv2d, conv_transpose2d, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig,
    VarBuilder,
};

use crate::batch_norm::{batch_norm2d, BatchNorm2d};
use crate::mode::Mode;

const KERNEL: usize = 4;
/// Negative slope of every LeakyReLU of the generator and discriminators.
pub const LEAKY_SLOPE: f64 = 0.2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DownConfig {
    /// LeakyReLU(0.2) before the convolution (absent at level 1).
    pub activation: bool,
    /// BatchNorm after the convolution (absent at level 1 and level D).
    pub batch_norm: bool,
    pub stride: usize,
}

impl Default for DownConfig {
    fn default() -> Self {
        Self {
            activation: true,
            batch_norm: true,
            stride: 2,
        }
    }
}

/// LeakyReLU(0.2) -> Conv 4x4 (padding 1) -> BatchNorm, each optional as configured.
#[derive(Clone, Debug)]
pub struct DownBlock {
    conv: Conv2d,
    bn: Option<BatchNorm2d>,
    activation: bool,
    in_channels: usize,
    name: String,
}

/// Parameters `conv.weight`, `conv.bias`, `bn.*` under `vb`.
pub fn down_block(
    in_channels: usize,
    out_channels: usize,
    cfg: DownConfig,
    vb: VarBuilder,
) -> Result<DownBlock> {
    let conv_cfg = Conv2dConfig {
        padding: 1,
        stride: cfg.stride,
        ..Default::default()
    };
    let conv = conv2d(in_channels, out_channels, KERNEL, conv_cfg, vb.pp("conv"))?;
    let bn = if cfg.batch_norm {
        Some(batch_norm2d(out_channels, vb.pp("bn"))?)
    } else {
        None
    };
    Ok(DownBlock {
        conv,
        bn,
        activation: cfg.activation,
        in_channels,
        name: vb.prefix(),
    })
}

impl DownBlock {
    /// This block with its parameters detached ([`BatchNorm2d::frozen`]): gradients still
    /// reach the input, none are computed for the weights.
    pub fn frozen(&self) -> Self {
        Self {
            bn: self.bn.as_ref().map(BatchNorm2d::frozen),
            ..self.with_frozen_conv()
        }
    }

    /// This block with only its convolution detached; the BatchNorm affine still gets
    /// gradients (the adversarial update of the proposed method moves only those).
    pub fn with_frozen_conv(&self) -> Self {
        let conv = Conv2d::new(
            self.conv.weight().detach(),
            self.conv.bias().map(Tensor::detach),
            *self.conv.config(),
        );
        Self {
            conv,
            ..self.clone()
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_activated(&self.activate(x)?, train)
    }

    /// The block's input activation: LeakyReLU(x) for the blocks that have one, else x.
    pub fn activate(&self, x: &Tensor) -> Result<Tensor> {
        if self.activation {
            leaky_relu(x)
        } else {
            Ok(x.clone())
        }
    }

    /// The block on an input already passed through [`Self::activate`]: convolution and
    /// BatchNorm. The U-Net's decoder reuses that activated input as its skip, so it is
    /// computed (and kept for backward) once.
    pub fn forward_activated(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match &self.bn {
            Some(bn) => bn.forward_t(&self.conv(x, None)?, train),
            None => self.conv(x, None),
        }
    }

    /// LeakyReLU(0.2) of [`Self::forward_activated`] — the next block's activated input —
    /// with the activation in the block's last op (the BatchNorm,
    /// [`BatchNorm2d::forward_leaky_relu_t`], or else the convolution,
    /// [`dgcolor_kernels::conv2d_leaky_relu`]): the block's own output is never made.
    pub fn forward_then_activate(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match &self.bn {
            Some(bn) => bn.forward_leaky_relu_t(&self.conv(x, None)?, train, LEAKY_SLOPE),
            None => self.conv(x, Some(LEAKY_SLOPE)),
        }
    }

    /// Whether the block activates its input ([`Self::activate`]).
    pub fn has_activation(&self) -> bool {
        self.activation
    }

    /// The convolution, followed by LeakyReLU(`slope`) inside the same op if set.
    fn conv(&self, x: &Tensor, slope: Option<f64>) -> Result<Tensor> {
        let (_, c, _, _) = x.dims4()?;
        if c != self.in_channels {
            bail!(
                "{}: expected {} input channels, got {:?}",
                self.name,
                self.in_channels,
                x.shape()
            )
        }
        let (cfg, w, b) = (self.conv.config(), self.conv.weight(), self.conv.bias());
        match slope {
            Some(slope) => {
                dgcolor_kernels::conv2d_leaky_relu(x, w, b, cfg.stride, cfg.padding, slope)
            }
            None => dgcolor_kernels::conv2d(x, w, b, cfg.stride, cfg.padding),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpConfig {
    /// BatchNorm after the transposed convolution (absent at the last up block).
    pub batch_norm: bool,
    /// Dropout probability at the end, in training only (the three innermost up blocks;
    /// 0 = none).
    pub dropout: f32,
}

/// ReLU -> ConvTranspose 4x4 stride 2 padding 1 -> BatchNorm -> Dropout, as configured.
#[derive(Clone, Debug)]
pub struct UpBlock {
    upconv: ConvTranspose2d,
    bn: Option<BatchNorm2d>,
    dropout: f32,
    in_channels: usize,
    /// Identifies this block's dropout stream.
    layer_id: u64,
    name: String,
}

/// Parameters `upconv.weight`, `upconv.bias`, `bn.*` under `vb`; `layer_id` keeps the
/// dropout masks of different blocks independent.
pub fn up_block(
    in_channels: usize,
    out_channels: usize,
    cfg: UpConfig,
    layer_id: u64,
    vb: VarBuilder,
) -> Result<UpBlock> {
    let conv_cfg = ConvTranspose2dConfig {
        padding: 1,
        stride: 2,
        ..Default::default()
    };
    let upconv = conv_transpose2d(in_channels, out_channels, KERNEL, conv_cfg, vb.pp("upconv"))?;
    let bn = if cfg.batch_norm {
        Some(batch_norm2d(out_channels, vb.pp("bn"))?)
    } else {
        None
    };
    Ok(UpBlock {
        upconv,
        bn,
        dropout: cfg.dropout,
        in_channels,
        layer_id,
        name: vb.prefix(),
    })
}

/// An up block's output as the next block takes it: made, or — for a block with a BatchNorm
/// and no dropout — its transposed convolution's output with the BatchNorm still to apply.
/// The next block then runs that BatchNorm, its own ReLU and the concatenation with its skip
/// as one op ([`BatchNorm2d::forward_relu_cat_t`]), and the BatchNorm output is never made
/// (candle's graph would keep it until backward beside the concatenation).
#[derive(Clone, Debug)]
pub enum UpOut<'a> {
    Made(Tensor),
    BeforeNorm {
        x: Tensor,
        bn: &'a BatchNorm2d,
        train: bool,
    },
}

impl UpOut<'_> {
    /// The block's output, made now if it was deferred.
    pub fn made(self) -> Result<Tensor> {
        match self {
            UpOut::Made(o) => Ok(o),
            UpOut::BeforeNorm { x, bn, train } => bn.forward_t(&x, train),
        }
    }

    /// `relu(cat([output, skip], 1))`, one op either way.
    fn relu_cat(self, skip: &Tensor) -> Result<Tensor> {
        match self {
            UpOut::Made(o) => dgcolor_kernels::relu_cat(&o, skip),
            UpOut::BeforeNorm { x, bn, train } => bn.forward_relu_cat_t(&x, train, skip),
        }
    }

    fn tensor(&self) -> &Tensor {
        match self {
            UpOut::Made(x) | UpOut::BeforeNorm { x, .. } => x,
        }
    }
}

impl UpBlock {
    pub fn forward(&self, x: &Tensor, mode: &Mode) -> Result<Tensor> {
        self.forward_deferred(x, mode)?.made()
    }

    /// [`UpBlock::forward`] of `cat([o, skip], 1)`, the decoder's input at every level but the
    /// innermost: the concatenation and the ReLU are one op ([`dgcolor_kernels::relu_cat`]).
    pub fn forward_cat(&self, o: &Tensor, skip: &Tensor, mode: &Mode) -> Result<Tensor> {
        self.forward_cat_deferred(UpOut::Made(o.clone()), skip, mode)?
            .made()
    }

    /// [`UpBlock::forward`] with the output possibly deferred ([`UpOut`]).
    pub fn forward_deferred(&self, x: &Tensor, mode: &Mode) -> Result<UpOut<'_>> {
        self.check_channels(x.dim(1)?, x.shape())?;
        self.forward_activated(&dgcolor_kernels::leaky_relu(x, 0.0)?, mode) // ReLU
    }

    /// [`UpBlock::forward_cat`] of the previous block's [`UpOut`], the output possibly
    /// deferred in turn.
    pub fn forward_cat_deferred(
        &self,
        o: UpOut<'_>,
        skip: &Tensor,
        mode: &Mode,
    ) -> Result<UpOut<'_>> {
        let o_shape = o.tensor().shape().clone();
        self.check_channels(o_shape.dims()[1] + skip.dim(1)?, &o_shape)?;
        self.forward_activated(&o.relu_cat(skip)?, mode)
    }

    fn check_channels(&self, c: usize, shape: &candle_core::Shape) -> Result<()> {
        if c != self.in_channels {
            bail!(
                "{}: expected {} input channels, got {c} (input {:?})",
                self.name,
                self.in_channels,
                shape
            )
        }
        Ok(())
    }

    /// ConvTranspose -> BatchNorm -> Dropout of the ReLU'd input; the BatchNorm deferred
    /// where there is no dropout ([`UpOut`]).
    fn forward_activated(&self, x: &Tensor, mode: &Mode) -> Result<UpOut<'_>> {
        let cfg = self.upconv.config();
        let x = dgcolor_kernels::conv_transpose2d(
            x,
            self.upconv.weight(),
            self.upconv.bias(),
            cfg.stride,
            cfg.padding,
        )?;
        let train = mode.is_train();
        let x = match &self.bn {
            Some(bn) if self.dropout == 0.0 => return Ok(UpOut::BeforeNorm { x, bn, train }),
            Some(bn) => bn.forward_t(&x, train)?,
            None => x,
        };
        if self.dropout == 0.0 {
            return Ok(UpOut::Made(x));
        }
        // On CUDA the mask is drawn on the device, bit-identical to the host's.
        if let Some(seed) = mode.dropout_seed(self.layer_id) {
            if let Some(y) = dgcolor_kernels::dropout(&x, &seed, self.dropout)? {
                return Ok(UpOut::Made(y));
            }
        }
        match mode.dropout_mask(self.layer_id, x.elem_count(), self.dropout) {
            Some(mask) => Ok(UpOut::Made(x.mul(&Tensor::from_vec(
                mask,
                x.shape(),
                x.device(),
            )?)?)),
            None => Ok(UpOut::Made(x)),
        }
    }
}

/// LeakyReLU(0.2) as one fused op (PyTorch's gradient, slope 0.2 for x <= 0); candle's
/// `max(x, 0.2 x)` off the CPU.
pub(crate) fn leaky_relu(x: &Tensor) -> Result<Tensor> {
    dgcolor_kernels::leaky_relu(x, LEAKY_SLOPE)
}
