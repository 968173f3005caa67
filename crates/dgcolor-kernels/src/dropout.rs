//! Inverted dropout whose mask is a pure function of a ChaCha8 key and the element's index,
//! so that a GPU can draw it where the data is, bit-identical to the CPU.
//!
//! The model draws element `i`'s keep/drop from `rng.random::<f32>()` of a `ChaCha8Rng`
//! (rand_chacha 0.9) seeded for the layer: the i-th 32-bit word of its keystream, shifted
//! to 24 bits and scaled by 2^-24 (rand 0.9's `StandardUniform` for f32), dropped when below
//! `p` and otherwise scaled by `1 / (1 - p)`. Word `i` of ChaCha's keystream is word `i % 16`
//! of the block with counter `i / 16`, so any element's draw can be computed on its own:
//! [`mask_value`] on the CPU, the `dropout` kernel of `cuda/fused.cu` on CUDA. On the CPU
//! the model keeps drawing the mask sequentially and multiplying (the path every CPU result
//! was measured with); on CUDA [`dropout`] is one kernel per pass that neither builds the
//! mask on the host nor copies it to the device nor keeps it for the backward pass, which
//! draws it again. The tests check [`mask_value`] against `ChaCha8Rng` itself, and the
//! kernel against the CPU op.

use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use crate::cpu::f32_slice;

/// ChaCha's "expand 32-byte k".
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

#[inline(always)]
fn quarter(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(12);
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(7);
}

/// The 16 words of ChaCha8's keystream block `counter` for `key` (stream 0): what
/// `ChaCha8Rng::from_seed(seed)` returns as words `16 * counter .. 16 * counter + 16`.
pub fn chacha8_block(key: &[u32; 8], counter: u64) -> [u32; 16] {
    let mut input = [0u32; 16];
    input[..4].copy_from_slice(&SIGMA);
    input[4..12].copy_from_slice(key);
    input[12] = counter as u32;
    input[13] = (counter >> 32) as u32;
    let mut s = input;
    for _ in 0..4 {
        quarter(&mut s, 0, 4, 8, 12);
        quarter(&mut s, 1, 5, 9, 13);
        quarter(&mut s, 2, 6, 10, 14);
        quarter(&mut s, 3, 7, 11, 15);
        quarter(&mut s, 0, 5, 10, 15);
        quarter(&mut s, 1, 6, 11, 12);
        quarter(&mut s, 2, 7, 8, 13);
        quarter(&mut s, 3, 4, 9, 14);
    }
    for (w, i) in s.iter_mut().zip(input) {
        *w = w.wrapping_add(i);
    }
    s
}

/// The key words of a 32-byte ChaCha seed (`ChaCha8Rng::get_seed()`), little-endian.
pub fn chacha_key(seed: &[u8; 32]) -> [u32; 8] {
    std::array::from_fn(|i| u32::from_le_bytes(seed[4 * i..4 * i + 4].try_into().unwrap()))
}

/// rand 0.9's `f32` from a 32-bit word: its top 24 bits times 2^-24, in [0, 1).
#[inline(always)]
pub fn unit_f32(word: u32) -> f32 {
    (word >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
}

/// The mask value of a keystream word: 0 when dropped, `scale` when kept.
#[inline(always)]
pub fn mask_value(word: u32, p: f32, scale: f32) -> f32 {
    if unit_f32(word) < p {
        0.0
    } else {
        scale
    }
}

/// Inverted dropout of `x` with the mask of the ChaCha8 stream `seed` (see the module docs):
/// `x * mask`, and `grad * mask` backward. `Ok(None)` unless `x` is an f32 tensor on CUDA
/// with the fused ops on (`DGCOLOR_KERNELS=auto`): the caller then draws the mask on the host
/// and multiplies, as on the CPU.
pub fn dropout(x: &Tensor, seed: &[u8; 32], p: f32) -> Result<Option<Tensor>> {
    if !(crate::conv::fused_on(&[x]) && x.device().is_cuda()) {
        return Ok(None);
    }
    Ok(Some(x.contiguous()?.apply_op1(Dropout::new(seed, p)?)?))
}

/// The op itself, on any device (the CPU version computes each element's block on its own:
/// a reference for the tests, not a fast path).
pub fn dropout_op(x: &Tensor, seed: &[u8; 32], p: f32) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Dropout::new(seed, p)?)
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Dropout {
    pub(crate) key: [u32; 8],
    pub(crate) p: f32,
    pub(crate) scale: f32,
}

impl Dropout {
    fn new(seed: &[u8; 32], p: f32) -> Result<Self> {
        if !(0.0..1.0).contains(&p) {
            bail!("dropout: probability {p} outside [0, 1)")
        }
        Ok(Self {
            key: chacha_key(seed),
            p,
            // The same f32 expression as the host-side mask (`Mode::dropout_mask`).
            scale: 1.0 / (1.0 - p),
        })
    }
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "dgcolor-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "dropout")?;
        let out = x
            .chunks(16)
            .enumerate()
            .flat_map(|(block, xs)| {
                let words = chacha8_block(&self.key, block as u64);
                xs.iter()
                    .zip(words)
                    .map(|(&v, w)| v * mask_value(w, self.p, self.scale))
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        crate::cuda::dropout((s, l), self)
    }

    /// `y = x * mask`, so `dx = grad * mask`: the same op on the gradient.
    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(self)?))
    }
}
