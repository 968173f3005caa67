//! The U-Net generator of pix2pix (Isola et al., CVPR 2017) split as in the paper: a head
//! encoder E_h (levels 1..3, output z = x_3), a tail encoder E_t (levels 4..D) and a decoder
//! with an optional AdaIN skip.

use candle_core::{bail, Result, Tensor};
use candle_nn::VarBuilder;

use crate::adain::adain;
use crate::blocks::{
    down_block, leaky_relu, up_block, DownBlock, DownConfig, UpBlock, UpConfig, UpOut,
};
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

/// What a run of encoder levels ([`run_levels`]) leaves.
#[derive(Clone, Debug)]
pub struct Levels {
    /// Each level's output, `None` where it was never made: a level followed by the next
    /// level's LeakyReLU runs that activation inside its last op
    /// ([`DownBlock::forward_then_activate`]), which saves keeping one activation-sized
    /// tensor per level for backward. The last level's output is always made.
    pub outs: Vec<Option<Tensor>>,
    /// Each level's activated input ([`DownBlock::activate`]).
    pub inputs: Vec<Tensor>,
}

impl Levels {
    /// The last level's output.
    pub fn last(&self) -> Result<&Tensor> {
        match self.outs.last() {
            Some(Some(out)) => Ok(out),
            _ => bail!("encoder: an empty run of levels has no output"),
        }
    }
}

/// Runs the blocks in order. A level's output is made where `keep(i)` (`i` the 0-based
/// position in the run), for the last block, and where the next block does not activate
/// its input; elsewhere see [`Levels::outs`].
pub(crate) fn run_levels<'a>(
    blocks: impl IntoIterator<Item = &'a DownBlock>,
    x: &Tensor,
    train: bool,
    keep: impl Fn(usize) -> bool,
) -> Result<Levels> {
    let mut blocks = blocks.into_iter().peekable();
    let (mut outs, mut inputs) = (Vec::new(), Vec::new());
    let mut prev = x.clone();
    // The next block's activated input, where this one already made it.
    let mut activated: Option<Tensor> = None;
    for i in 0.. {
        let Some(block) = blocks.next() else { break };
        let input = match activated.take() {
            Some(input) => input,
            None => block.activate(&prev)?,
        };
        let fuse = !keep(i) && blocks.peek().is_some_and(|next| next.has_activation());
        if fuse {
            activated = Some(block.forward_then_activate(&input, train)?);
            outs.push(None);
        } else {
            prev = block.forward_activated(&input, train)?;
            outs.push(Some(prev.clone()));
        }
        inputs.push(input);
    }
    Ok(Levels { outs, inputs })
}

/// An encoder pass: the features `[x_1, .., x_D]` where made (see [`Levels::outs`];
/// [`Generator::encode`] names the levels to keep) and the decoder's skips
/// `[LeakyReLU(x_1), .., LeakyReLU(x_{D-1})]`, which are the activated inputs of encoder
/// levels 2..D (computed once, shared by both).
#[derive(Clone, Debug)]
pub struct Encoded {
    feats: Vec<Option<Tensor>>,
    pub skips: Vec<Tensor>,
}

impl Encoded {
    /// Joins a head pass (levels 1..3, on L) and a tail pass (levels 4..D, on z or a
    /// stand-in for it, e.g. SagNet's style-randomized z, which then is level 3's output).
    pub fn join(head: Levels, tail: Levels) -> Self {
        let (mut outs, mut inputs) = (head.outs, head.inputs);
        outs.extend(tail.outs);
        inputs.extend(tail.inputs);
        Self::from_levels(Levels { outs, inputs })
    }

    /// A run of all D levels on L.
    fn from_levels(levels: Levels) -> Self {
        // Level 1's input is L itself; levels 2.. take LeakyReLU(x_{i-1}).
        let skips = levels.inputs.into_iter().skip(1).collect();
        Self {
            feats: levels.outs,
            skips,
        }
    }

    /// D, the number of levels.
    pub fn depth(&self) -> usize {
        self.feats.len()
    }

    /// x_level (1-based), if the pass made it.
    pub fn feature(&self, level: usize) -> Result<&Tensor> {
        match self.feats.get(level.wrapping_sub(1)) {
            Some(Some(x)) => Ok(x),
            Some(None) => bail!(
                "encoder: the output of level {level} was not kept (name it in Generator::encode's `keep`)"
            ),
            None => bail!(
                "encoder: no level {level} in a depth-{} encoder",
                self.depth()
            ),
        }
    }

    /// x_D, the innermost feature (always made).
    pub fn innermost(&self) -> Result<&Tensor> {
        self.feature(self.depth())
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

    /// z = x_3 `[B, 4nf, S/8, S/8]` for L `[B, 1, S, S]`.
    pub fn forward_t(&self, l: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.forward_levels(l, train)?.last()?.clone())
    }

    /// Outputs `[x_1, x_2, x_3]` (z always made) and inputs `[L, LeakyReLU(x_1),
    /// LeakyReLU(x_2)]` (see [`Encoded::join`]).
    pub fn forward_levels(&self, l: &Tensor, train: bool) -> Result<Levels> {
        run_levels(&self.levels, l, train, |_| false)
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

    /// x_D `[B, 8nf, S/2^D, S/2^D]` for z.
    pub fn forward_t(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.forward_levels(z, train)?.last()?.clone())
    }

    /// Outputs `[x_4, .., x_D]` (x_D always made) and inputs `[LeakyReLU(z), ..,
    /// LeakyReLU(x_{D-1})]` (see [`Encoded::join`]).
    pub fn forward_levels(&self, z: &Tensor, train: bool) -> Result<Levels> {
        run_levels(&self.levels, z, train, |_| false)
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
        let Some((innermost, rest)) = feats.split_last() else {
            bail!(
                "decoder: expected {} encoder features, got none",
                self.ups.len()
            )
        };
        let skips = rest.iter().map(leaky_relu).collect::<Result<Vec<_>>>()?;
        self.forward_skips(innermost, &skips, mode)
    }

    /// The decoder on an encoder pass, with the activations the encoder already made as
    /// its skips (no second LeakyReLU of each level, none kept twice for backward).
    pub fn forward_encoded(&self, enc: &Encoded, mode: &Mode) -> Result<Tensor> {
        self.forward_skips(enc.innermost()?, &enc.skips, mode)
    }

    /// `innermost` = x_D, `skips[i - 1]` = LeakyReLU(x_i), i = 1..D-1.
    fn forward_skips(&self, innermost: &Tensor, skips: &[Tensor], mode: &Mode) -> Result<Tensor> {
        let d = self.ups.len();
        if skips.len() + 1 != d {
            bail!(
                "decoder: expected {d} encoder levels ({} skips), got {}",
                d - 1,
                skips.len() + 1
            )
        }
        // Each block's output may stay deferred until the next block's ReLU + concatenation
        // ([`UpOut`]); AdaIN needs it made.
        let mut o = self.ups[0].forward_deferred(innermost, mode)?; // [B, w_{D-1}, 2, 2] at S = 2^D
        for k in 1..d {
            let skip = &skips[d - 1 - k]; // LeakyReLU(x_{D-k})
            o = if self.adain_index == Some(k) {
                let o = o.made()?;
                let skip = adain(skip, &o)?;
                self.ups[k].forward_cat_deferred(UpOut::Made(o), &skip, mode)?
            } else {
                self.ups[k].forward_cat_deferred(o, skip, mode)?
            };
        }
        o.made()?.tanh() // [B, 2, S, S]
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

    /// The encoder pass on L `[B, 1, S, S]`: the decoder's skips and x_D, plus x_k for each
    /// level k (1-based) in `keep`. The other levels' outputs are not made (see
    /// [`Levels::outs`]); E_h and E_t run as one chain, so z = x_3 is among them unless kept.
    pub fn encode(&self, l: &Tensor, train: bool, keep: &[usize]) -> Result<Encoded> {
        let (_, c, h, w) = l.dims4()?;
        let unit = 1usize << self.cfg.depth;
        if c != 1 || h % unit != 0 || w % unit != 0 {
            bail!(
                "generator: input must be [B, 1, H, W] with H and W multiples of {unit}, got {:?}",
                l.shape()
            )
        }
        if let Some(&k) = keep.iter().find(|&&k| k == 0 || k > self.cfg.depth) {
            bail!(
                "generator: cannot keep level {k} of a depth-{} encoder (levels are 1..={})",
                self.cfg.depth,
                self.cfg.depth
            )
        }
        let blocks = self.head.levels.iter().chain(&self.tail.levels);
        let levels = run_levels(blocks, l, train, |i| keep.contains(&(i + 1)))?;
        Ok(Encoded::from_levels(levels))
    }

    /// Predicted ab in [-1, 1], `[B, 2, S, S]`.
    pub fn forward(&self, l: &Tensor, mode: &Mode) -> Result<Tensor> {
        let enc = self.encode(l, mode.is_train(), &[])?;
        self.decoder.forward_encoded(&enc, mode)
    }
}
