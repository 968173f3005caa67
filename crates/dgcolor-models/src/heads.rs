//! The three discriminating networks: the class head f_c on the bottleneck, the style
//! discriminator f_s on (content-randomised) z, and the PatchGAN colour discriminator D.

use candle_core::{Result, Tensor, D};
use candle_nn::{linear, Linear, Module, VarBuilder};

use crate::blocks::{down_block, leaky_relu, DownBlock, DownConfig};
use crate::config::ModelConfig;
use crate::unet::{encoder_levels, run_levels, HEAD_LEVELS};

/// Global average pool -> Linear(in, 256) -> LeakyReLU -> Linear(256, 128) -> LeakyReLU ->
/// Linear(128, n). Parameters `{name}.0`, `{name}.2`, `{name}.4` as in the reference's
/// `nn.Sequential`.
#[derive(Clone, Debug)]
pub struct MlpHead {
    layers: [Linear; 3],
}

impl MlpHead {
    pub fn new(in_dim: usize, n_out: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            layers: [
                linear(in_dim, 256, vb.pp("0"))?,
                linear(256, 128, vb.pp("2"))?,
                linear(128, n_out, vb.pp("4"))?,
            ],
        })
    }

    /// The same head with its weights detached (gradients reach only the input).
    pub fn frozen(&self) -> Self {
        Self {
            layers: self.layers.clone().map(|layer| {
                Linear::new(layer.weight().detach(), layer.bias().map(Tensor::detach))
            }),
        }
    }

    /// `[B, C, H, W]` -> logits `[B, n]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let pooled = x.mean(D::Minus1)?.mean(D::Minus1)?; // [B, C]
        let h = leaky_relu(&self.layers[0].forward(&pooled)?)?;
        let h = leaky_relu(&self.layers[1].forward(&h)?)?;
        self.layers[2].forward(&h)
    }
}

/// f_c: object class from the bottleneck x_D. Parameters `class_head.layer.{0,2,4}.*`
/// (the reference's `ClassificationModel`).
#[derive(Clone, Debug)]
pub struct ClassHead {
    mlp: MlpHead,
}

impl ClassHead {
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            mlp: MlpHead::new(cfg.width(cfg.depth), cfg.n_classes, vb.pp("layer"))?,
        })
    }

    /// x_D `[B, 8nf, h, w]` -> class logits `[B, n_classes]`.
    pub fn forward(&self, x_d: &Tensor) -> Result<Tensor> {
        self.mlp.forward(x_d)
    }
}

/// f_s: its own levels 4..D applied to a z-shaped feature, then the MLP head over source
/// domains. Parameters `style_disc.down{4..D}.*`, `style_disc.linear_layer.{0,2,4}.*`.
#[derive(Clone, Debug)]
pub struct StyleDiscriminator {
    levels: Vec<DownBlock>,
    mlp: MlpHead,
}

impl StyleDiscriminator {
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            levels: encoder_levels(cfg, 1, HEAD_LEVELS + 1..=cfg.depth, &vb)?,
            mlp: MlpHead::new(cfg.width(cfg.depth), cfg.n_domains, vb.pp("linear_layer"))?,
        })
    }

    /// The same discriminator with every parameter detached, for the encoder's adversarial
    /// update (which moves only E_h): no weight gradients for f_s. BatchNorm running
    /// statistics are shared and still move in train mode.
    pub fn frozen(&self) -> Self {
        Self {
            levels: self.levels.iter().map(DownBlock::frozen).collect(),
            mlp: self.mlp.frozen(),
        }
    }

    /// z-shaped `[B, 4nf, S/8, S/8]` -> domain logits `[B, n_domains]`.
    pub fn forward_t(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        let levels = run_levels(&self.levels, z, train, |_| false)?;
        self.mlp.forward(levels.last()?)
    }
}

/// PatchGAN on Lab (least-squares GAN, so no sigmoid). Parameters `color_disc.conv{1..5}.*`.
#[derive(Clone, Debug)]
pub struct ColorDiscriminator {
    convs: Vec<DownBlock>,
}

impl ColorDiscriminator {
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let nf = cfg.nf;
        // (in, out, activation, batch norm, stride) of conv1..conv5.
        let spec = [
            (3, nf, false, false, 2),
            (nf, 2 * nf, true, true, 2),
            (2 * nf, 4 * nf, true, true, 2),
            (4 * nf, 8 * nf, true, true, 1),
            (8 * nf, 1, true, false, 1),
        ];
        let convs = spec
            .iter()
            .enumerate()
            .map(|(i, &(c_in, c_out, activation, batch_norm, stride))| {
                let cfg = DownConfig {
                    activation,
                    batch_norm,
                    stride,
                };
                down_block(c_in, c_out, cfg, vb.pp(format!("conv{}", i + 1)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { convs })
    }

    /// The same discriminator with its parameters detached, for the generator's loss: the
    /// gradient reaches the generator through the input, and D's own weight gradients (which
    /// that update throws away) are not computed, as pix2pix's `set_requires_grad(netD, False)`
    /// does. BatchNorm running statistics are shared and still move in train mode.
    pub fn frozen(&self) -> Self {
        Self {
            convs: self.convs.iter().map(DownBlock::frozen).collect(),
        }
    }

    /// L `[B, 1, S, S]` and ab `[B, 2, S, S]` -> patch scores `[B, 1, S/8 - 2, S/8 - 2]`.
    pub fn forward_t(&self, l: &Tensor, ab: &Tensor, train: bool) -> Result<Tensor> {
        let lab = Tensor::cat(&[l, ab], 1)?;
        Ok(run_levels(&self.convs, &lab, train, |_| false)?
            .last()?
            .clone())
    }
}
