//! Seeded initialisation. candle draws `Init::Randn` from an unseedable CPU generator, so
//! every variable is overwritten here from a ChaCha stream keyed by (seed, variable name):
//! the same seed gives the same network whatever order variables were created in.

use candle_core::{Result, Tensor};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// The reference's rules (docs/METHOD.md §2): every convolution and transposed-convolution weight
/// N(0, 0.02); BatchNorm weight 1, bias 0, running mean 0, variance 1. The reference
/// re-initialises only `.weight` (`normal_weight_init` in its `model.py`), so conv biases and
/// linear layers keep PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)), where fan_in is
/// the weight's `size(1)` times its kernel area: the input channels of a convolution, the
/// *output* channels of a transposed convolution (PyTorch stores both as `[d0, d1, kh, kw]`
/// and reads fan_in from `d1`).
pub fn init_weights(varmap: &VarMap, seed: u64) -> Result<()> {
    let data = varmap.data().lock().expect("varmap lock poisoned");
    for (name, var) in data.iter() {
        let shape = var.shape().clone();
        let n = shape.elem_count();
        let mut rng =
            ChaCha8Rng::seed_from_u64(seed ^ dgcolor_kernels::stable_hash(name.as_bytes()));
        let values: Vec<f32> = if name.ends_with("conv.weight") {
            let normal = Normal::new(0.0f32, 0.02).expect("valid normal");
            (0..n).map(|_| normal.sample(&mut rng)).collect()
        } else if name.ends_with("bn.bias") || name.ends_with("running_mean") {
            vec![0.0; n]
        } else if name.ends_with("bn.weight") || name.ends_with("running_var") {
            vec![1.0; n]
        } else {
            // Conv biases and linear layers: weight [out, in] (or [d0, d1, kh, kw]) and bias
            // share the bound of fan_in.
            let fan_in = if shape.rank() >= 2 {
                shape.dims()[1..].iter().product()
            } else {
                weight_fan_in(&data, name)
            };
            let bound = 1.0 / (fan_in as f32).sqrt();
            (0..n).map(|_| rng.random_range(-bound..bound)).collect()
        };
        var.set(&Tensor::from_vec(values, shape, var.device())?.to_dtype(var.dtype())?)?;
    }
    Ok(())
}

/// The fan-in of a bias is its weight's: `size(1)` times the kernel area.
fn weight_fan_in(
    data: &std::collections::HashMap<String, candle_core::Var>,
    bias_name: &str,
) -> usize {
    let weight = bias_name.trim_end_matches("bias").to_string() + "weight";
    data.get(&weight)
        .map(|w| w.dims()[1..].iter().product())
        .unwrap_or(1)
}
