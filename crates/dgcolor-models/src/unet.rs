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
    Ok(run_levels_with_inputs(blocks, x, train)?.0)
}

/// [`run_levels`], also returning each block's activated input ([`DownBlock::activate`]):
/// `(outputs, inputs)`.
pub(crate) fn run_levels_with_inputs(
    blocks: &[DownBlock],
    x: &Tensor,
    train: bool,
) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
    let mut outs: Vec<Tensor> = Vec::with_capacity(blocks.len());
    let mut inputs = Vec::with_capacity(blocks.len());
    for block in blocks {
        let input = block.activate(outs.last().unwrap_or(x))?;
        outs.push(block.forward_activated(&input, train)?);
        inputs.push(input);
    }
    Ok((outs, inputs))
}

/// An encoder pass: the features `[x_1, .., x_D]` and the decoder's skips
/// `[LeakyReLU(x_1), .., LeakyReLU(x_{D-1})]`, which are the activated inputs of encoder
/// levels 2..D (computed once, shared by both).
#[derive(Clone, Debug)]
pub struct Encoded {
    pub feats: Vec<Tensor>,
    pub skips: Vec<Tensor>,
}

impl Encoded {
    /// Joins a head pass (levels 1..3, on L) and a tail pass (levels 4..D, on z or a
    /// stand-in for it, e.g. SagNet's style-randomized z, which then is `feats[2]`), each
    /// as `(outputs, activated inputs)`.
    pub fn join(head: (Vec<Tensor>, Vec<Tensor>), tail: (Vec<Tensor>, Vec<Tensor>)) -> Self {
        let (mut feats, head_inputs) = head;
        feats.extend(tail.0);
        // Level 1's input is L itself; levels 2.. take LeakyReLU(x_{i-1}).
        let skips = head_inputs.into_iter().skip(1).chain(tail.1).collect();
        Self { feats, skips }
    }
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

    /// `([x_1, x_2, x_3], [L, LeakyReLU(x_1), LeakyReLU(x_2)])`: the outputs and each
    /// level's activated input (see [`Encoded::join`]).
    pub fn forward_levels(&self, l: &Tensor, train: bool) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
        run_levels_with_inputs(&self.levels, l, train)
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

    /// `([x_4, .., x_D], [LeakyReLU(z), .., LeakyReLU(x_{D-1})])` (see [`Encoded::join`]).
    pub fn forward_levels(&self, z: &Tensor, train: bool) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
        run_levels_with_inputs(&self.levels, z, train)
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

    /// `feats` = `[x_1, .., x_D]`; returns tanh(ab) `[B, 2, S, S]`. Computes the skips
    /// itself; [`Self::forward_encoded`] takes the encoder's.
    ///
    /// The reference's `DownConv` applies an *in-place* LeakyReLU to its input, so by the
    /// time its decoder concatenates them, every skip x_1..x_{D-1} holds LeakyReLU(x_i).
    /// We apply that activation explicitly; AdaIN therefore normalises LeakyReLU(z).
    pub fn forward(&self, feats: &[Tensor], mode: &Mode) -> Result<Tensor> {
        let skips = feats
            .iter()
            .take(feats.len().saturating_sub(1))
            .map(leaky_relu)
            .collect::<Result<Vec<_>>>()?;
        self.forward_skips(feats, &skips, mode)
    }

    /// The decoder on an encoder pass, with the activations the encoder already made as
    /// its skips (no second LeakyReLU of each level, none kept twice for backward).
    pub fn forward_encoded(&self, enc: &Encoded, mode: &Mode) -> Result<Tensor> {
        self.forward_skips(&enc.feats, &enc.skips, mode)
    }

    /// `skips[i - 1]` = LeakyReLU(x_i), i = 1..D-1.
    fn forward_skips(&self, feats: &[Tensor], skips: &[Tensor], mode: &Mode) -> Result<Tensor> {
        let d = self.ups.len();
        if feats.len() != d || skips.len() + 1 != d {
            bail!(
                "decoder: expected {d} encoder features and {} skips, got {} and {}",
                d - 1,
                feats.len(),
                skips.len()
            )
        }
        let mut o = self.ups[0].forward(&feats[d - 1], mode)?; // [B, w_{D-1}, 2, 2] at S = 2^D
        for k in 1..d {
            let skip = &skips[d - 1 - k]; // LeakyReLU(x_{D-k})
            let skip = if self.adain_index == Some(k) {
                adain(skip, &o)?
            } else {
                skip.clone()
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

    /// `[x_1, .., x_D]` and the decoder's skips for L `[B, 1, S, S]`.
    pub fn encode(&self, l: &Tensor, train: bool) -> Result<Encoded> {
        let (_, c, h, w) = l.dims4()?;
        let unit = 1usize << self.cfg.depth;
        if c != 1 || h % unit != 0 || w % unit != 0 {
            bail!(
                "generator: input must be [B, 1, H, W] with H and W multiples of {unit}, got {:?}",
                l.shape()
            )
        }
        let head = self.head.forward_levels(l, train)?;
        let tail = self.tail.forward_levels(&head.0[HEAD_LEVELS - 1], train)?;
        Ok(Encoded::join(head, tail))
    }

    /// Predicted ab in [-1, 1], `[B, 2, S, S]`.
    pub fn forward(&self, l: &Tensor, mode: &Mode) -> Result<Tensor> {
        let enc = self.encode(l, mode.is_train())?;
        self.decoder.forward_encoded(&enc, mode)
    }
}
