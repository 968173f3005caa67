//! The generator for inference: eval mode (BatchNorm running statistics, no dropout) with
//! every BatchNorm folded into the convolution before it at load time, and weights held as
//! plain tensors, so a forward pass records no autograd graph and runs one op per block
//! (the convolution, its activation fused in; plus the decoder's concatenation) instead of
//! nine.
//!
//! Folding: eval BatchNorm is `y = x * s + t` per channel with `s = gamma / sqrt(var + eps)`
//! and `t = beta - mean * s`; for a conv `x -> W * x + b` that is `W' = s W` (scaling output
//! channel o, dim 0 of a conv weight, dim 1 of a transposed-conv weight) and `b' = s b + t`.

use candle_core::{bail, Result, Tensor};
use candle_nn::VarMap;
use dgcolor_kernels::{adjoint_weight, conv2d_act, conv_transpose2d_act, relu_cat, Act};

use crate::adain::adain;
use crate::blocks::LEAKY_SLOPE;
use crate::config::ModelConfig;
use crate::mode::Mode;
use crate::prefix;
use crate::unet::{Generator, HEAD_LEVELS};

const BN_EPS: f64 = 1e-5;
const PADDING: usize = 1;
const STRIDE: usize = 2;

/// Anything that predicts ab `[B, 2, S, S]` in [-1, 1] from L `[B, 1, S, S]` in eval mode:
/// the training [`Generator`] (graph-recording, BatchNorm unfolded) or the
/// [`InferenceGenerator`].
pub trait AbPredictor {
    fn config(&self) -> &ModelConfig;
    fn predict_ab(&self, l: &Tensor) -> Result<Tensor>;
}

impl AbPredictor for Generator {
    fn config(&self) -> &ModelConfig {
        Generator::config(self)
    }

    fn predict_ab(&self, l: &Tensor) -> Result<Tensor> {
        self.forward(l, &Mode::Eval)
    }
}

/// One convolution with its BatchNorm (if any) folded in.
#[derive(Clone, Debug)]
struct FoldedConv {
    weight: Tensor,
    bias: Tensor,
    /// For a transposed conv, its weight in the layout its GEMM reads fastest
    /// ([`adjoint_weight`]), made once here instead of read strided in every call.
    adjoint: Option<Tensor>,
}

impl FoldedConv {
    /// With, for a transposed conv on the CPU, its [`adjoint_weight`] (our CPU kernels read
    /// it; cuDNN picks its own layouts).
    fn new(weight: Tensor, bias: Tensor, transposed: bool) -> Result<Self> {
        let adjoint = (transposed && weight.device().is_cpu())
            .then(|| adjoint_weight(&weight))
            .transpose()?;
        Ok(Self {
            weight,
            bias,
            adjoint,
        })
    }

    /// The 2x2 taps at the centre of this 4x4 filter (padding 1, stride 2), as a 2x2 filter
    /// for padding 0. Where the innermost plane is 1x1 (an input of exactly 2^D pixels, as
    /// in the paper's 256 px network and the 64 px presets), the last conv maps 2x2 -> 1x1
    /// and the first transposed conv 1x1 -> 2x2, and every other tap of their filters only
    /// ever meets padding (or lands outside the output): three quarters of their products,
    /// and of the 4-8 MiB weights those layers read from memory at every pass.
    fn centre(&self, transposed: bool) -> Result<Self> {
        let weight = self.weight.narrow(2, 1, 2)?.narrow(3, 1, 2)?.contiguous()?;
        Self::new(weight, self.bias.clone(), transposed)
    }
}

/// E_h + E_t + decoder in eval mode, BatchNorm folded, no variables.
#[derive(Clone, Debug)]
pub struct InferenceGenerator {
    /// Levels 1..D.
    downs: Vec<FoldedConv>,
    /// Up blocks 1..D.
    ups: Vec<FoldedConv>,
    /// [`FoldedConv::centre`] of level D and of up block 1, used at a 1x1 innermost plane.
    centres: [FoldedConv; 2],
    cfg: ModelConfig,
}

impl InferenceGenerator {
    /// A snapshot of the generator's weights in `varmap` (names `head.down{i}.*`,
    /// `tail.down{i}.*`, `decoder.up{k}.*`); later training does not change it.
    pub fn new(cfg: &ModelConfig, varmap: &VarMap) -> Result<Self> {
        cfg.validate()?;
        let data = varmap.data().lock().expect("varmap lock poisoned");
        let get = |name: &str| -> Result<Option<Tensor>> {
            // detach + copy: a plain tensor with its own storage.
            data.get(name)
                .map(|v| v.as_tensor().detach().copy())
                .transpose()
        };
        let need = |name: &str| -> Result<Tensor> {
            match get(name)? {
                Some(t) => Ok(t),
                None => bail!("inference generator: `{name}` is missing from the varmap"),
            }
        };
        let fold = |block: &str, conv: &str, out_dim: usize| -> Result<FoldedConv> {
            let weight = need(&format!("{block}.{conv}.weight"))?;
            let bias = need(&format!("{block}.{conv}.bias"))?;
            let transposed = out_dim == 1;
            let Some(gamma) = get(&format!("{block}.bn.weight"))? else {
                return FoldedConv::new(weight, bias, transposed);
            };
            let beta = need(&format!("{block}.bn.bias"))?;
            let mean = need(&format!("{block}.bn.running_mean"))?;
            let var = need(&format!("{block}.bn.running_var"))?;
            let scale = (gamma / (var + BN_EPS)?.sqrt()?)?; // [C_out]
            let shift = (beta - (mean * &scale)?)?;
            let mut dims = [1usize; 4];
            dims[out_dim] = scale.elem_count();
            FoldedConv::new(
                weight.broadcast_mul(&scale.reshape(dims.as_slice())?)?,
                ((bias * &scale)? + shift)?,
                transposed,
            )
        };
        let downs = (1..=cfg.depth)
            .map(|i| {
                let net = if i <= HEAD_LEVELS {
                    prefix::HEAD
                } else {
                    prefix::TAIL
                };
                fold(&format!("{net}.down{i}"), "conv", 0)
            })
            .collect::<Result<Vec<_>>>()?;
        let ups = (1..=cfg.depth)
            .map(|k| fold(&format!("{}.up{k}", prefix::DECODER), "upconv", 1))
            .collect::<Result<Vec<_>>>()?;
        let centres = [downs[cfg.depth - 1].centre(false)?, ups[0].centre(true)?];
        Ok(Self {
            downs,
            ups,
            centres,
            cfg: cfg.clone(),
        })
    }

    /// From a generator and the VarMap that holds its weights.
    pub fn from_generator(generator: &Generator, varmap: &VarMap) -> Result<Self> {
        Self::new(generator.config(), varmap)
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The folded (weight, bias) of encoder levels 1..D: 4x4 convolutions, stride 2,
    /// padding 1, weights `[C_out, C_in, 4, 4]`. For exporters (ONNX); the centre-tap
    /// copies used at a 1x1 innermost plane are not included (the full filters give the same
    /// result there).
    pub fn encoder_layers(&self) -> impl Iterator<Item = (&Tensor, &Tensor)> {
        self.downs.iter().map(|c| (&c.weight, &c.bias))
    }

    /// The folded (weight, bias) of up blocks 1..D: 4x4 transposed convolutions, stride 2,
    /// padding 1, weights `[C_in, C_out, 4, 4]` (PyTorch's layout).
    pub fn decoder_layers(&self) -> impl Iterator<Item = (&Tensor, &Tensor)> {
        self.ups.iter().map(|c| (&c.weight, &c.bias))
    }

    /// Predicted ab in [-1, 1], `[B, 2, S, S]`, for L `[B, 1, S, S]`; equal to
    /// `Generator::forward(l, &Mode::Eval)` up to float rounding.
    pub fn forward(&self, l: &Tensor) -> Result<Tensor> {
        let (_, c, h, w) = l.dims4()?;
        let unit = 1usize << self.cfg.depth;
        if c != 1 || h % unit != 0 || w % unit != 0 {
            bail!(
                "inference generator: input must be [B, 1, H, W] with H and W multiples of {unit}, got {:?}",
                l.shape()
            )
        }
        let l = l.detach();
        let d = self.cfg.depth;
        // At a 1x1 innermost plane the level-D conv and the first transposed conv run on
        // their filters' central 2x2 taps (`FoldedConv::centre`): the same sums without the
        // terms that are zero.
        let centre = h == unit && w == unit;
        // Each activation runs inside the convolution that produces its input
        // (`conv2d_act`): acts[i] = LeakyReLU(x_{i+1}) is the next level's input and the
        // decoder's skip (the reference's in-place activation); the innermost level is only
        // ever read through the decoder's ReLU, so it gets that ReLU instead.
        let mut acts: Vec<Tensor> = Vec::with_capacity(d);
        let mut x_d = l.clone();
        for (i, conv) in self.downs.iter().enumerate() {
            let input = if i == 0 { &l } else { &acts[i - 1] };
            let act = if i + 1 < d {
                Act::LeakyRelu(LEAKY_SLOPE as f32)
            } else {
                Act::Relu
            };
            let (conv, padding) = if centre && i + 1 == d {
                (&self.centres[0], 0)
            } else {
                (conv, PADDING)
            };
            let x = conv2d_act(input, &conv.weight, Some(&conv.bias), STRIDE, padding, act)?;
            if i + 1 < d {
                acts.push(x);
            } else {
                x_d = x; // ReLU(x_D) [B, 8nf, S/2^D, S/2^D]
            }
        }
        // The decoder's input ReLU is `relu_cat` (one pass with the concatenation), and the
        // output's tanh runs inside the last transposed convolution.
        let up = |k: usize, x: &Tensor| -> Result<Tensor> {
            let (conv, padding) = match k {
                0 if centre => (&self.centres[1], 0),
                _ => (&self.ups[k], PADDING),
            };
            let act = if k + 1 == d { Act::Tanh } else { Act::Identity };
            conv_transpose2d_act(
                x,
                &conv.weight,
                conv.adjoint.as_ref(),
                Some(&conv.bias),
                STRIDE,
                padding,
                act,
            )
        };
        let mut o = up(0, &x_d)?;
        for k in 1..d {
            let skip = &acts[d - 1 - k]; // LeakyReLU(x_{D-k})
            let skip = if self.cfg.adain_index == Some(k) {
                adain(skip, &o)?
            } else {
                skip.clone()
            };
            o = up(k, &relu_cat(&o, &skip)?)?;
        }
        Ok(o) // tanh(...) [B, 2, S, S]
    }
}

impl AbPredictor for InferenceGenerator {
    fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    fn predict_ab(&self, l: &Tensor) -> Result<Tensor> {
        self.forward(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn uniform(rng: &mut ChaCha8Rng, dims: &[usize]) -> Result<Tensor> {
        let v: Vec<f32> = (0..dims.iter().product())
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        Tensor::from_vec(v, dims, &Device::Cpu)
    }

    fn max_rel_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        let diff = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        Ok(diff / b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
    }

    /// The innermost conv (2x2 -> 1x1) and the first transposed conv (1x1 -> 2x2) on their
    /// filters' central taps with padding 0 give the full 4x4 filters' result with padding 1
    /// (the dropped terms are products with padding, or land outside the output).
    #[test]
    fn centre_taps_give_the_full_filters_result_at_a_1x1_plane() -> Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for transposed in [false, true] {
            let conv = FoldedConv::new(
                uniform(&mut rng, &[24, 20, 4, 4])?,
                uniform(&mut rng, &[if transposed { 20 } else { 24 }])?,
                transposed,
            )?;
            let (x, out) = if transposed {
                (uniform(&mut rng, &[3, 24, 1, 1])?, [3, 20, 2, 2])
            } else {
                (uniform(&mut rng, &[3, 20, 2, 2])?, [3, 24, 1, 1])
            };
            let run = |c: &FoldedConv, padding: usize| {
                let b = Some(&c.bias);
                if transposed {
                    let a = c.adjoint.as_ref();
                    conv_transpose2d_act(&x, &c.weight, a, b, STRIDE, padding, Act::Relu)
                } else {
                    conv2d_act(&x, &c.weight, b, STRIDE, padding, Act::Relu)
                }
            };
            let full = run(&conv, PADDING)?;
            let centre = conv.centre(transposed)?;
            assert_eq!(centre.weight.dims(), [24, 20, 2, 2]);
            assert_eq!(centre.adjoint.is_some(), transposed);
            let got = run(&centre, 0)?;
            assert_eq!(got.dims(), out);
            assert!(max_rel_diff(&got, &full)? < 1e-6, "transposed {transposed}");
        }
        Ok(())
    }
}
