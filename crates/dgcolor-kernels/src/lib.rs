//! Fast CPU kernels for the U-Net's convolutions, BatchNorm and activations, as candle
//! custom ops with backward, and Adam's update in place.
//!
//! candle 0.11's CPU backend runs `conv2d` as a tiled im2col + gemm, but `conv_transpose2d`
//! is a direct scatter loop, and the input gradient of every `conv2d` goes through that loop
//! too. Here all three products of a convolution layer, for both the ordinary and the
//! transposed convolution, are one im2col or col2im pass around one call of the `gemm` crate
//! (the GEMM candle itself uses):
//!
//! | op                         | GEMM                                  | around it    |
//! |----------------------------|---------------------------------------|--------------|
//! | conv forward               | `W[M,K] @ col(x)[K,N]`                | im2col       |
//! | conv input gradient        | `W^T[K,M] @ dy[M,N]`                  | col2im       |
//! | conv weight gradient       | `dy[M,N] @ col(x)^T[N,K]`             | im2col       |
//! | transposed conv forward    | = conv input gradient (+ bias)        | col2im       |
//! | transposed conv input grad | = conv forward                        | im2col       |
//! | transposed conv weight grad| = conv weight gradient, roles swapped | im2col       |
//!
//! (`M` output channels, `K = C_in * kh * kw`, `N = B * OH * OW`.) Large scratch buffers
//! (the column matrices) are pooled and reused between calls instead of being allocated and
//! page-faulted in on every step. Every loop has a fixed reduction order, so results are
//! bit-identical run to run at a given thread count.
//!
//! On CUDA in a `cudnn` build, [`conv2d`] and [`conv_transpose2d`] run all three products
//! on cuDNN (the `cudnn` module). Anywhere else off the CPU, or at bf16 precision on the CPU
//! ([`set_precision`]), they take the [`lowered`] path: the same convolutions expressed as
//! candle copies around GEMMs (cuBLAS on CUDA), differentiable on every backend, which
//! avoids candle's naive CUDA transposed convolution but materialises every tap window.
//! BatchNorm, LeakyReLU, AdaIN, relu + concatenation, dropout, the L1 and LSGAN losses and
//! Adam run as this crate's CUDA kernels on CUDA (the `cuda` module), the same arithmetic as
//! their CPU loops. So do the training ops that end in the next layer's activation
//! ([`batch_norm_leaky_relu_train`], [`conv2d_leaky_relu`], [`batch_norm_relu_cat_train`]):
//! candle's graph keeps every op's operands until backward ends, so an activation as an op of
//! its own would keep its input alive beside its output, one activation-sized tensor per
//! layer that PyTorch's in-place activations do not keep.
//!
//! Which of these run can be switched for before/after measurements by a few `DGCOLOR_*`
//! environment variables, read once per process into [`Settings`] (see [`mod@settings`] for the
//! table; an unknown value is an error).

use candle_core::{Device, Result};

mod activation;
mod adain;
mod adam;
mod alloc;
mod batch_norm;
mod conv;
mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
#[cfg(feature = "cudnn")]
mod cudnn;
pub mod dropout;
mod gemm_f32;
mod geom;
mod hash;
mod im2col;
mod loss;
pub mod lowered;
mod one_filter;
mod scratch;
pub mod settings;
mod winograd;

pub use activation::{leaky_relu, leaky_relu_reference, relu_cat, Act};
pub use adain::adain;
pub use adam::{adam_inplace, AdamCoeffs};
pub use alloc::{
    park_idle_candle_threads, pool_on_main_thread, retain_freed_memory, setup_process,
};
pub use batch_norm::{
    batch_norm_leaky_relu_train, batch_norm_relu_cat_train, batch_norm_train,
    batch_norm_train_reference,
};
pub use conv::{
    adjoint_weight, conv2d, conv2d_act, conv2d_leaky_relu, conv2d_reference, conv_transpose2d,
    conv_transpose2d_act, conv_transpose2d_reference, fused_on, precision, set_precision,
};
pub use cpu::simd;
pub use dropout::dropout;
pub use gemm_f32::{matmul_f32, num_threads};
pub use geom::ConvGeom;
pub use hash::{stable_hash, StableHasher};
pub use im2col::{col2im, im2col};
pub use loss::{l1_loss, squared_loss_to};
pub use lowered::{conv2d_lowered, conv_transpose2d_lowered, Precision};
pub use settings::{
    init_settings, settings, KernelChoice, PoolPolicy, Settings, SettingsError, VARIABLES,
};

/// Opens CUDA device `ordinal` (as `Device::new_cuda`) and sets it up for training loops:
/// freed memory stays in its allocation pool, and cudarc's cross-stream events are off
/// (see `cuda::prepare_device`). Without the `cuda` feature this is candle's "not compiled
/// with CUDA" error.
pub fn cuda_device(ordinal: usize) -> Result<Device> {
    let device = Device::new_cuda(ordinal)?;
    #[cfg(feature = "cuda")]
    cuda::prepare_device(device.as_cuda_device()?)?;
    Ok(device)
}
