//! The graph-free, BatchNorm-folded inference generator against `Generator::forward` in
//! eval mode: same outputs within 1e-4, with non-trivial BatchNorm statistics and affine
//! parameters, AdaIN on and off, batch 1 and more.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use dgcolor_models::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn uniform(rng: &mut ChaCha8Rng, shape: &[usize], lo: f32, hi: f32) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
}

fn check(cfg: &ModelConfig, batch: usize, seed: u64) -> Result<()> {
    let varmap = VarMap::new();
    let generator = Generator::new(
        cfg,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )?;
    init_weights(&varmap, seed)?;
    // Give every BatchNorm statistics and an affine map far from the identity.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Sorted, so every run draws the same values for the same variables.
    let data = varmap.data().lock().unwrap();
    let mut vars: Vec<_> = data.iter().collect();
    vars.sort_by(|a, b| a.0.cmp(b.0));
    for (name, var) in vars {
        let dims = var.dims().to_vec();
        let t = if name.ends_with("running_var") {
            uniform(&mut rng, &dims, 0.2, 3.0)?
        } else if name.ends_with("running_mean") || name.ends_with("bn.bias") {
            uniform(&mut rng, &dims, -0.5, 0.5)?
        } else if name.ends_with("bn.weight") {
            uniform(&mut rng, &dims, 0.5, 1.5)?
        } else if name.ends_with("conv.bias") {
            uniform(&mut rng, &dims, -0.1, 0.1)?
        } else {
            continue;
        };
        var.set(&t)?;
    }
    drop(data);
    let fast = InferenceGenerator::from_generator(&generator, &varmap)?;
    let l = uniform(&mut rng, &[batch, 1, cfg.size, cfg.size], -1.0, 1.0)?;
    let want = generator.forward(&l, &Mode::Eval)?;
    let got = fast.forward(&l)?;
    assert!(
        !got.track_op(),
        "the inference path must not record a graph"
    );
    assert_eq!(got.dims(), want.dims());
    let err = (&got - &want)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()?;
    let spread = want.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    eprintln!("{cfg:?} batch {batch}: output spread {spread}, max abs diff {err}");
    assert!(
        spread > 0.05,
        "degenerate test: outputs all near 0 ({spread})"
    );
    assert!(err < 1e-4, "{cfg:?} batch {batch}: max abs diff {err}");
    // Through the trait as well.
    let via_trait = AbPredictor::predict_ab(&fast, &l)?;
    assert_eq!(
        via_trait.flatten_all()?.to_vec1::<f32>()?,
        got.flatten_all()?.to_vec1::<f32>()?
    );
    Ok(())
}

#[test]
fn inference_generator_matches_eval_forward() -> Result<()> {
    check(&ModelConfig::new(64, 8, 6, 7, 2), 3, 1)?;
    check(&ModelConfig::new(32, 4, 5, 7, 2), 1, 2)?;
    let mut plain = ModelConfig::new(32, 6, 4, 7, 2);
    plain.adain_index = None;
    check(&plain, 2, 3)?;
    Ok(())
}

#[test]
fn inference_generator_is_a_snapshot() -> Result<()> {
    let cfg = ModelConfig::new(32, 4, 5, 7, 2);
    let varmap = VarMap::new();
    let generator = Generator::new(
        &cfg,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )?;
    init_weights(&varmap, 0)?;
    let fast = InferenceGenerator::from_generator(&generator, &varmap)?;
    let l = Tensor::ones((1, 1, 32, 32), DType::F32, &Device::Cpu)?;
    let before = fast.forward(&l)?.flatten_all()?.to_vec1::<f32>()?;
    init_weights(&varmap, 99)?; // the training weights move on
    let after = fast.forward(&l)?.flatten_all()?.to_vec1::<f32>()?;
    assert_eq!(before, after);
    Ok(())
}
