//! The U-Net generator of pix2pix (Isola et al., CVPR 2017) split as in the paper: a head
//! encoder E_h (levels 1..3, output z = x_3), a tail encoder E_t (levels 4..D) and a decoder
//! with an optional AdaIN skip.

use candle_core::{bail, Result, Tensor};
use candle_nn::VarBuilder;

use crate::adain::adain;
use crate::blocks::{down_block, leaky_relu, up_block, DownBlock, DownConfig, UpBlock, UpConfig};
use crate::config::ModelConfig;
use crate::mode::Mode;
use crate::prefix;

/// Levels of the head encoder; z = x_3 is the feature the style discriminator judges.
pub const HEAD_LEVELS: usize = 3;

/// Config of encoder level i (1-based) of a depth-D encoder.
fn level_config(level: usize, depth: usize) -> DownConfig {
    DownConfig {
        activation: level > 1,
        batch_norm: level > 1 && level < depth,
        stride: 2,
    }
}

/// Builds `down{first}..=down{last}` under `vb`.
pub(crate) fn encoder_levels(
    cfg: &ModelConfig,
    in_channels: usize,
    levels: std::ops::RangeInclusive<usize>,
    vb: &VarBuilder,
) -> Result<Vec<DownBlock>> {
    levels
        .map(|i| {
            let c_in = if i == 1 {
                in_channels
            } else {
                cfg.width(i - 1)
            };
            down_block(
                c_in,
                cfg.width(i),
                level_config(i, cfg.depth),
                vb.pp(format!("down{i}")),
            )
        })
        .collect()
}

/// Runs the blocks in order and keeps every output.
pub(crate) fn run_levels(blocks: &[DownBlock], x: &Tensor, train: bool) -> Result<Vec<Tensor>> {
    let mut outs: Vec<Tensor> = Vec::with_capacity(blocks.len());
    for block in blocks {
        let input = outs.last().unwrap_or(x);
        let out = block.forward_t(input, train)?;
        outs.push(out);
    }
    Ok(outs)
}

/// E_h: levels 1..3 on the lightness channel. Parameters `head.down{1,2,3}.*`.
#[derive(Clone, Debug)]
pub struct HeadEncoder {
    levels: Vec<DownBlock>,
}

impl HeadEncoder {
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            levels: encoder_levels(cfg, 1, 1..=HEAD_LEVELS, &vb)?,
        })
    }

    /// `[x_1, x_2, x_3]`: `[B, nf, S/2, S/2]`, `[B, 2nf, S/4, S/4]`, `[B, 4nf, S/8, S/8]`.
    pub fn forward_t(&self, l: &Tensor, train: bool) -> Result<Vec<Tensor>> {
        run_levels(&self.levels, l, train)
    }

    /// E_h with its convolutions detached and its BatchNorm affine trainable, for an update
    /// that moves only the latter: no convolution weight gradients are computed.
    pub fn with_frozen_convs(&self) -> Self {
        Self {
            levels: self
                .levels
                .iter()
                .map(DownBlock::with_frozen_conv)
                .collect(),
        }
    }
}

/// E_t: levels 4..D on z. Parameters `tail.down{4..D}.*`.
#[derive(Clone, Debug)]
pub struct TailEncoder {
    levels: Vec<DownBlock>,
}

impl TailEncoder {
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            levels: encoder_levels(cfg, 1, HEAD_LEVELS + 1..=cfg.depth, &vb)?,
        })
    }

    /// `[x_4, .., x_D]`, the last `[B, 8nf, S/2^D, S/2^D]`.
    pub fn forward_t(&self, z: &Tensor, train: bool) -> Result<Vec<Tensor>> {
        run_levels(&self.levels, z, train)
    }
}

/// Up blocks `up1..upD`. Parameters `decoder.up{k}.*`.
#[derive(Clone, Debug)]
pub struct Decoder {
    ups: Vec<UpBlock>,
    adain_index: Option<usize>,
}

impl Decoder {
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.depth;
        let ups = (1..=d)
            .map(|k| {
                // up_1 takes x_D; up_k (k > 1) takes concat(o, skip_{k-1}) where
                // skip_{k-1} = x_{D-k+1} has the same width as o.
                let c_in = if k == 1 {
                    cfg.width(d)
                } else {
                    2 * cfg.width(d - k + 1)
                };
                let c_out = if k == d { 2 } else { cfg.width(d - k) };
                let up_cfg = UpConfig {
                    batch_norm: k < d,
                    dropout: if k <= 3 && k < d { cfg.dropout } else { 0.0 },
                };
                up_block(c_in, c_out, up_cfg, k as u64, vb.pp(format!("up{k}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            ups,
            adain_index: cfg.adain_index,
        })
    }

    /// `feats` = `[x_1, .., x_D]`; returns tanh(ab) `[B, 2, S, S]`.
    ///
    /// The reference's `DownConv` applies an *in-place* LeakyReLU to its input, so by the
    /// time its decoder concatenates them, every skip x_1..x_{D-1} holds LeakyReLU(x_i).
    /// We apply that activation explicitly; AdaIN therefore normalises LeakyReLU(z).
    pub fn forward(&self, feats: &[Tensor], mode: &Mode) -> Result<Tensor> {
        let d = self.ups.len();
        if feats.len() != d {
            bail!(
                "decoder: expected {d} encoder features, got {}",
                feats.len()
            )
        }
        let mut o = self.ups[0].forward(&feats[d - 1], mode)?; // [B, w_{D-1}, 2, 2] at S = 2^D
        for k in 1..d {
            let skip = leaky_relu(&feats[d - 1 - k])?; // x_{D-k}
            let skip = if self.adain_index == Some(k) {
                adain(&skip, &o)?
            } else {
                skip
            };
            o = self.ups[k].forward_cat(&o, &skip, mode)?;
        }
        o.tanh() // [B, 2, S, S]
    }
}

/// E_h + E_t + decoder: L -> ab.
#[derive(Clone, Debug)]
pub struct Generator {
    pub head: HeadEncoder,
    pub tail: TailEncoder,
    pub decoder: Decoder,
    cfg: ModelConfig,
}

impl Generator {
    /// Networks under `vb.pp("head")`, `vb.pp("tail")`, `vb.pp("decoder")`.
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            head: HeadEncoder::new(cfg, vb.pp(prefix::HEAD))?,
            tail: TailEncoder::new(cfg, vb.pp(prefix::TAIL))?,
            decoder: Decoder::new(cfg, vb.pp(prefix::DECODER))?,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// `[x_1, .., x_D]` for L `[B, 1, S, S]`.
    pub fn encode(&self, l: &Tensor, train: bool) -> Result<Vec<Tensor>> {
        let (_, c, h, w) = l.dims4()?;
        let unit = 1usize << self.cfg.depth;
        if c != 1 || h % unit != 0 || w % unit != 0 {
            bail!(
                "generator: input must be [B, 1, H, W] with H and W multiples of {unit}, got {:?}",
                l.shape()
            )
        }
        let mut feats = self.head.forward_t(l, train)?;
        let tail = self.tail.forward_t(&feats[HEAD_LEVELS - 1], train)?;
        feats.extend(tail);
        Ok(feats)
    }

    /// Predicted ab in [-1, 1], `[B, 2, S, S]`.
    pub fn forward(&self, l: &Tensor, mode: &Mode) -> Result<Tensor> {
        let feats = self.encode(l, mode.is_train())?;
        self.decoder.forward(&feats, mode)
    }
}
