//! Convolutions lowered to copies around matrix products, built only from candle ops that
//! have a backward pass and run on every backend (`narrow`, `pad_with_zeros`, `cat`,
//! `reshape`, `matmul`). This is the path off the CPU: on CUDA candle's transposed
//! convolution is a naive one-thread-per-output kernel and every `conv2d` input gradient goes
//! through it, whereas here the forward pass and both gradients are cuBLAS GEMMs plus
//! memory-bound copies. It is also where reduced precision happens ([`Precision::Bf16`]).
//!
//! Layout: tensors are moved to channel-major `[C, B, H, W]` so that one GEMM covers the
//! whole batch. A stride-`s` input is split once into its `s * s` phases (rows and columns
//! with the same remainder mod `s`); every kernel tap is then a plain window of one phase.
//!
//! * conv: `y[M, B*OH*OW] = W[M, T*C] @ cols[T*C, B*OH*OW]`, `cols` the `T = kh*kw` tap
//!   windows stacked (im2col with copies).
//! * transposed conv: one GEMM per tap, `W_t^T[C, M] @ x[M, B*IH*IW]`, each added at its
//!   offset into the output phase it lands on (col2im with pads), phases interleaved.
//!
//! Narrowing a large tensor is avoided where autograd would pay for it: candle's `narrow`
//! backward materialises a zero tensor of the full source size, so taps are narrowed from a
//! phase (a quarter of the input at stride 2), never from the stacked columns.

use candle_core::{DType, Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::geom::ConvGeom;

/// The arithmetic of the convolutions' matrix products. `Tf32` keeps f32 operands but lets
/// cuBLAS use TF32 tensor cores (10-bit mantissa products, f32 sums), which is what PyTorch
/// does for cuDNN convolutions by default (`torch.backends.cudnn.allow_tf32`); on the CPU it
/// is f32. `Bf16` is autocast in PyTorch's sense: operands are rounded to bfloat16 for the
/// GEMM (f32 accumulation), everything outside it stays f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Tf32,
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = String;

    /// `f32`, `tf32` or `bf16` (`--precision`).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        [Self::F32, Self::Tf32, Self::Bf16]
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("--precision `{s}`: expected f32, tf32 or bf16"))
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Precision {
    pub fn is_f32(&self) -> bool {
        *self == Self::F32
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Tf32 => "tf32",
            Self::Bf16 => "bf16",
        }
    }

    fn gemm_dtype(self) -> DType {
        match self {
            Self::F32 | Self::Tf32 => DType::F32,
            Self::Bf16 => DType::BF16,
        }
    }
}

/// `conv2d` (PyTorch semantics, as [`crate::conv2d`]) lowered to one GEMM.
pub fn conv2d_lowered(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    precision: Precision,
) -> Result<Tensor> {
    let g = ConvGeom::conv(x.dims4()?, weight.dims4()?, stride, padding)?;
    let (s, p) = (stride, padding);
    let dt = precision.gemm_dtype();
    // Pad to cover every tap window, rounded up to a multiple of the stride.
    let hp = round_up((g.h + 2 * p).max(g.kh + s * (g.oh - 1)), s);
    let wp = round_up((g.w + 2 * p).max(g.kw + s * (g.ow - 1)), s);
    let xc = x
        .to_dtype(dt)?
        .transpose(0, 1)? // [C, B, H, W]
        .contiguous()?
        .pad_with_zeros(2, p, hp - g.h - p)?
        .pad_with_zeros(3, p, wp - g.w - p)?; // [C, B, Hp, Wp]
    let phases = split_phases(&xc, s)?; // s*s x [C, B, Hp/s, Wp/s]
    let mut taps = Vec::with_capacity(g.kh * g.kw);
    for ky in 0..g.kh {
        for kx in 0..g.kw {
            taps.push(
                phases[(ky % s) * s + kx % s]
                    .narrow(2, ky / s, g.oh)?
                    .narrow(3, kx / s, g.ow)?, // [C, B, OH, OW]
            );
        }
    }
    let cols = Tensor::stack(&taps, 0)?.reshape((g.kh * g.kw * g.c, g.n()))?; // [T*C, N]
                                                                              // Weight columns in the same (tap, channel) order: [M, kh, kw, C] -> [M, T*C].
    let wmat = weight
        .to_dtype(dt)?
        .permute((0, 2, 3, 1))?
        .contiguous()?
        .reshape((g.m, g.k()))?;
    let y = wmat.matmul(&cols)?.to_dtype(DType::F32)?; // [M, N]
    let y = match bias {
        Some(b) => y.broadcast_add(&b.reshape((g.m, 1))?)?,
        None => y,
    };
    y.reshape((g.m, g.b, g.oh, g.ow))?
        .transpose(0, 1)? // [B, M, OH, OW]
        .contiguous()
}

/// `conv_transpose2d` (PyTorch semantics, as [`crate::conv_transpose2d`]) lowered to one
/// GEMM per kernel tap.
pub fn conv_transpose2d_lowered(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    precision: Precision,
) -> Result<Tensor> {
    // The output is the geometry's image [B, C, H, W]; the input its columns [B, M, IH, IW].
    let g = ConvGeom::transposed(x.dims4()?, weight.dims4()?, stride, padding)?;
    let (s, p) = (stride, padding);
    let dt = precision.gemm_dtype();
    let xm = x
        .to_dtype(dt)?
        .transpose(0, 1)?
        .contiguous()?
        .reshape((g.m, g.n()))?; // [M, B*IH*IW]
    let w = weight.to_dtype(dt)?;
    // Output rows Y = oy + p (the uncropped output) satisfy Y = s * (iy + ky / s) + ky % s:
    // tap (ky, kx) adds its product at offset (ky / s, kx / s) of phase (ky % s, kx % s).
    let (u, v) = ((g.h + 2 * p).div_ceil(s), (g.w + 2 * p).div_ceil(s));
    let mut phases: Vec<Option<Tensor>> = vec![None; s * s];
    for ky in 0..g.kh {
        for kx in 0..g.kw {
            let wt = w
                .narrow(2, ky, 1)?
                .narrow(3, kx, 1)?
                .reshape((g.m, g.c))?
                .t()?; // [C, M]
            let (qy, qx) = (ky / s, kx / s);
            let contribution = wt
                .matmul(&xm)? // [C, B*IH*IW]
                .to_dtype(DType::F32)?
                .reshape((g.c, g.b, g.oh, g.ow))?
                .pad_with_zeros(2, qy, u - qy - g.oh)?
                .pad_with_zeros(3, qx, v - qx - g.ow)?; // [C, B, U, V]
            let slot = &mut phases[(ky % s) * s + kx % s];
            *slot = Some(match slot.take() {
                Some(acc) => (acc + contribution)?,
                None => contribution,
            });
        }
    }
    let phases = phases
        .into_iter()
        .map(|ph| match ph {
            Some(t) => Ok(t),
            None => Tensor::zeros((g.c, g.b, u, v), DType::F32, x.device()),
        })
        .collect::<Result<Vec<_>>>()?;
    let y = interleave_phases(&phases, s)? // [C, B, U*s, V*s]
        .narrow(2, p, g.h)?
        .narrow(3, p, g.w)?; // [C, B, H, W]
    let y = match bias {
        Some(b) => y.broadcast_add(&b.reshape((g.c, 1, 1, 1))?)?,
        None => y,
    };
    y.transpose(0, 1)?.contiguous() // [B, C, H, W]
}

/// `[C, B, Hp, Wp]` (Hp, Wp multiples of s) -> the s*s phases `[C, B, Hp/s, Wp/s]`, phase
/// `ry * s + rx` holding rows `= ry` and columns `= rx` mod s.
fn split_phases(x: &Tensor, s: usize) -> Result<Vec<Tensor>> {
    if s == 1 {
        return Ok(vec![x.clone()]);
    }
    let (c, b, hp, wp) = x.dims4()?;
    let x6 = x.reshape((c, b, hp / s, s, wp / s, s))?;
    let mut out = Vec::with_capacity(s * s);
    for ry in 0..s {
        for rx in 0..s {
            out.push(
                x6.narrow(3, ry, 1)?
                    .narrow(5, rx, 1)?
                    .squeeze(5)?
                    .squeeze(3)?,
            );
        }
    }
    Ok(out)
}

/// The inverse of [`split_phases`]: s*s x `[C, B, U, V]` -> `[C, B, U*s, V*s]`.
fn interleave_phases(phases: &[Tensor], s: usize) -> Result<Tensor> {
    if s == 1 {
        return Ok(phases[0].clone());
    }
    let (c, b, u, v) = phases[0].dims4()?;
    let rows = phases
        .chunks(s)
        .map(|row| Tensor::stack(row, 4)?.reshape((c, b, u, v * s))) // [C, B, U, V*s]
        .collect::<Result<Vec<_>>>()?;
    Tensor::stack(&rows, 3)?.reshape((c, b, u * s, v * s))
}

fn round_up(n: usize, s: usize) -> usize {
    n.div_ceil(s) * s
}
