//! Shapes, parameter names, seeded initialisation and the feature-statistics operations.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use dgcolor_models::*;

fn random(shape: &[usize], seed: u64) -> Result<Tensor> {
    // A tiny LCG keeps inputs deterministic without candle's unseedable CPU RNG.
    let n: usize = shape.iter().product();
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu)
}

/// Each parameter's gradient as bits, by name.
type NamedBits = Vec<(String, Vec<u32>)>;

/// The values' bit patterns, for exact comparisons.
fn bits(t: &Tensor) -> Result<Vec<u32>> {
    Ok(t.flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .map(|v| v.to_bits())
        .collect())
}

/// The gradient `grads` holds for each variable of `varmap` that has one, by name, sorted.
fn grad_bits(varmap: &VarMap, grads: &candle_core::backprop::GradStore) -> Result<NamedBits> {
    let data = varmap.data().lock().unwrap();
    let mut out = data
        .iter()
        .filter_map(|(name, v)| Some(bits(grads.get(v.as_tensor())?).map(|b| (name.clone(), b))))
        .collect::<Result<NamedBits>>()?;
    out.sort();
    Ok(out)
}

struct Nets {
    varmap: VarMap,
    generator: Generator,
    class_head: ClassHead,
    style: StyleDiscriminator,
    color: ColorDiscriminator,
}

fn build(cfg: &ModelConfig, seed: u64) -> Result<Nets> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let nets = Nets {
        generator: Generator::new(cfg, vb.clone())?,
        class_head: ClassHead::new(cfg, vb.pp(prefix::CLASS_HEAD))?,
        style: StyleDiscriminator::new(cfg, vb.pp(prefix::STYLE_DISC))?,
        color: ColorDiscriminator::new(cfg, vb.pp(prefix::COLOR_DISC))?,
        varmap,
    };
    init_weights(&nets.varmap, seed)?;
    Ok(nets)
}

#[test]
fn shapes_at_several_depths() -> Result<()> {
    for (size, depth) in [(32, 4), (32, 5), (64, 6), (128, 7)] {
        let cfg = ModelConfig::new(size, 4, depth, 7, 2);
        let nets = build(&cfg, 0)?;
        let b = 3;
        let l = random(&[b, 1, size, size], 1)?;
        let all: Vec<usize> = (1..=depth).collect();
        let enc = nets.generator.encode(&l, true, &all)?;
        let feats = (1..=depth)
            .map(|k| enc.feature(k).cloned())
            .collect::<Result<Vec<_>>>()?;
        assert_eq!(feats.len(), depth);
        for (i, f) in feats.iter().enumerate() {
            let side = size >> (i + 1);
            assert_eq!(
                f.dims(),
                &[b, cfg.width(i + 1), side, side],
                "level {} at depth {depth}",
                i + 1
            );
        }
        for mode in [Mode::Train { dropout_seed: 3 }, Mode::Eval] {
            let ab = nets.generator.forward(&l, &mode)?;
            assert_eq!(ab.dims(), &[b, 2, size, size]);
            let max = ab.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(max <= 1.0, "tanh output exceeds 1: {max}");
        }
        assert_eq!(nets.class_head.forward(&feats[depth - 1])?.dims(), &[b, 7]);
        assert_eq!(nets.style.forward_t(&feats[2], true)?.dims(), &[b, 2]);
        let ab = random(&[b, 2, size, size], 2)?;
        assert_eq!(
            nets.color.forward_t(&l, &ab, true)?.dims(),
            &[b, 1, size / 8 - 2, size / 8 - 2]
        );
    }
    Ok(())
}

#[test]
fn parameter_names_follow_the_reference_modules() -> Result<()> {
    let nets = build(&ModelConfig::paper(7, 2), 0)?;
    let data = nets.varmap.data().lock().unwrap();
    let shape = |n: &str| {
        data.get(n)
            .map(|v| v.dims().to_vec())
            .unwrap_or_else(|| panic!("missing {n}"))
    };
    assert_eq!(shape("head.down1.conv.weight"), [64, 1, 4, 4]);
    assert_eq!(shape("head.down3.bn.running_var"), [256]);
    assert_eq!(shape("tail.down4.conv.weight"), [512, 256, 4, 4]);
    assert_eq!(shape("decoder.up1.upconv.weight"), [512, 512, 4, 4]);
    assert_eq!(shape("decoder.up5.upconv.weight"), [1024, 256, 4, 4]);
    assert_eq!(shape("decoder.up8.upconv.weight"), [128, 2, 4, 4]);
    assert_eq!(shape("class_head.layer.4.weight"), [7, 128]);
    assert_eq!(shape("style_disc.down8.conv.weight"), [512, 512, 4, 4]);
    assert_eq!(shape("style_disc.linear_layer.0.weight"), [256, 512]);
    assert_eq!(shape("color_disc.conv4.conv.weight"), [512, 256, 4, 4]);
    // Level 1 and level D have no BatchNorm; nor does the last up block.
    for absent in [
        "head.down1.bn.weight",
        "tail.down8.bn.weight",
        "decoder.up8.bn.weight",
        "color_disc.conv5.bn.weight",
    ] {
        assert!(!data.contains_key(absent), "{absent} should not exist");
    }
    // The head holds only levels 1..3, the tail only 4..D.
    assert!(!data
        .keys()
        .any(|k| k.starts_with("head.down4") || k.starts_with("tail.down3")));
    Ok(())
}

#[test]
fn initialisation_is_seeded_and_follows_the_reference() -> Result<()> {
    let cfg = ModelConfig::new(32, 8, 5, 7, 2);
    let get = |nets: &Nets, name: &str| {
        nets.varmap.data().lock().unwrap()[name]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let a = build(&cfg, 1)?;
    let b = build(&cfg, 1)?;
    let c = build(&cfg, 2)?;
    let w = get(&a, "tail.down4.conv.weight");
    assert_eq!(w, get(&b, "tail.down4.conv.weight"));
    assert_ne!(w, get(&c, "tail.down4.conv.weight"));
    let n = w.len() as f32;
    let mean = w.iter().sum::<f32>() / n;
    let std = (w.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n).sqrt();
    assert!(
        mean.abs() < 0.002 && (std - 0.02).abs() < 0.002,
        "N(0, 0.02) expected, got mean {mean} std {std}"
    );
    // Conv biases keep PyTorch's default U(+-1/sqrt(fan_in)), fan_in = weight.size(1) * 16:
    // the input channels of a conv, the output channels of a transposed conv (bounds as
    // `nn.Conv2d(64, 128, 4).bias` / `nn.ConvTranspose2d(128, 64, 4).bias` draw them).
    for (bias, fan_in) in [
        ("tail.down4.conv.bias", cfg.width(3) * 16),
        ("decoder.up2.upconv.bias", cfg.width(cfg.depth - 2) * 16),
    ] {
        let b = get(&a, bias);
        let bound = 1.0 / (fan_in as f32).sqrt();
        assert!(
            b.iter().all(|x| x.abs() <= bound) && b.iter().any(|x| x.abs() > bound / 2.0),
            "{bias}: expected U(+-{bound}), got {b:?}"
        );
        assert_ne!(b, get(&c, bias), "{bias} follows the seed");
    }
    assert!(get(&a, "head.down2.bn.weight").iter().all(|&x| x == 1.0));
    let lin = get(&a, "class_head.layer.0.weight");
    let bound = 1.0 / (cfg.width(5) as f32).sqrt();
    assert!(lin.iter().all(|x| x.abs() <= bound) && lin.iter().any(|x| x.abs() > bound / 2.0));
    Ok(())
}

/// The encoder hands the decoder its skips, LeakyReLU(x_1..x_{D-1}), made once: they are
/// those activations bit for bit, and the generator's output is the decoder's on the bare
/// features (which activates them itself), with and without the AdaIN skip. Where a level's
/// output is not asked for, its BatchNorm and the next LeakyReLU run as one op: the skips,
/// the output and every parameter's gradient are the same bits as with all levels kept.
#[test]
fn encoder_skips_are_the_activated_features() -> Result<()> {
    for adain_on in [true, false] {
        let mut cfg = ModelConfig::new(32, 4, 5, 7, 2);
        if !adain_on {
            cfg.adain_index = None;
        }
        let nets = build(&cfg, 0)?;
        let l = random(&[2, 1, 32, 32], 4)?;
        let all = [1, 2, 3, 4, 5];
        let enc = nets.generator.encode(&l, true, &all)?;
        assert_eq!((enc.depth(), enc.skips.len()), (5, 4));
        let feats = all
            .iter()
            .map(|&k| enc.feature(k).cloned())
            .collect::<Result<Vec<_>>>()?;
        for (i, (x, skip)) in feats.iter().zip(&enc.skips).enumerate() {
            let want = x.maximum(&(x * LEAKY_SLOPE)?)?;
            assert_eq!(bits(skip)?, bits(&want)?, "skip of level {}", i + 1);
        }
        let mode = Mode::Eval;
        let shared = nets.generator.decoder.forward_encoded(&enc, &mode)?;
        let own = nets.generator.decoder.forward(&feats, &mode)?;
        assert_eq!(bits(&shared)?, bits(&own)?, "adain {adain_on}");

        // Fused (nothing kept) against unfused (every level kept), forward and backward.
        let fused = nets.generator.encode(&l, true, &[])?;
        for (i, (a, b)) in fused.skips.iter().zip(&enc.skips).enumerate() {
            assert_eq!(bits(a)?, bits(b)?, "fused skip of level {}", i + 1);
        }
        let err = fused.feature(2).unwrap_err().to_string();
        assert!(err.contains("level 2 was not kept"), "{err}");
        assert_eq!(bits(fused.innermost()?)?, bits(&feats[4])?);
        let up = random(&[2, 2, 32, 32], 5)?;
        let mode = Mode::Train { dropout_seed: 6 };
        let grads = |enc: &dgcolor_models::Encoded| -> Result<NamedBits> {
            let ab = nets.generator.decoder.forward_encoded(enc, &mode)?;
            grad_bits(&nets.varmap, &(ab * &up)?.sum_all()?.backward()?)
        };
        let (g_fused, g_kept) = (grads(&fused)?, grads(&enc)?);
        assert!(g_fused.len() > 30, "{} gradients", g_fused.len());
        assert!(g_fused.iter().any(|(n, _)| n.contains("down2.bn.weight")));
        assert_eq!(g_fused, g_kept, "adain {adain_on}: gradients fused vs kept");
    }
    let nets = build(&ModelConfig::new(32, 4, 5, 7, 2), 0)?;
    let l = random(&[2, 1, 32, 32], 4)?;
    for bad in [0, 6] {
        let err = nets.generator.encode(&l, true, &[bad]).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("cannot keep level {bad}")),
            "{err}"
        );
    }
    Ok(())
}

/// Up blocks whose BatchNorm is deferred into the next block's ReLU + concatenation
/// ([`UpOut`]) give the same output and gradients, bit for bit, as blocks that make every
/// output, in training (with a dropout block in the chain) and in eval mode.
#[test]
fn deferred_up_blocks_match_made_outputs() -> Result<()> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let cfg = |dropout| UpConfig {
        batch_norm: true,
        dropout,
    };
    // 8 -> 6 (dropout) -> 4 -> 3 -> 2 (no BatchNorm), skips of the outputs' widths.
    let blocks = [
        up_block(8, 6, cfg(0.5), 1, vb.pp("up1"))?,
        up_block(12, 4, cfg(0.0), 2, vb.pp("up2"))?,
        up_block(8, 3, cfg(0.0), 3, vb.pp("up3"))?,
        up_block(
            6,
            2,
            UpConfig {
                batch_norm: false,
                dropout: 0.0,
            },
            4,
            vb.pp("up4"),
        )?,
    ];
    init_weights(&varmap, 3)?;
    let x = random(&[2, 8, 2, 2], 1)?;
    let skips = [
        random(&[2, 6, 4, 4], 2)?,
        random(&[2, 4, 8, 8], 3)?,
        random(&[2, 3, 16, 16], 4)?,
    ];
    let up = random(&[2, 2, 32, 32], 5)?;
    for mode in [Mode::Train { dropout_seed: 7 }, Mode::Eval] {
        let run = |deferred: bool| -> Result<(Vec<u32>, NamedBits)> {
            let y = if deferred {
                let mut o = blocks[0].forward_deferred(&x, &mode)?;
                for (block, skip) in blocks[1..].iter().zip(&skips) {
                    o = block.forward_cat_deferred(o, skip, &mode)?;
                }
                o.made()?
            } else {
                let mut o = blocks[0].forward(&x, &mode)?;
                for (block, skip) in blocks[1..].iter().zip(&skips) {
                    o = block.forward_cat(&o, skip, &mode)?;
                }
                o
            };
            let grads = grad_bits(&varmap, &(&y * &up)?.sum_all()?.backward()?)?;
            Ok((bits(&y)?, grads))
        };
        let (deferred, made) = (run(true)?, run(false)?);
        assert_eq!(deferred.0, made.0, "{mode:?}: output");
        assert_eq!(deferred.1, made.1, "{mode:?}: gradients");
        if mode.is_train() {
            assert!(deferred.1.iter().any(|(n, _)| n == "up2.bn.weight"));
        }
    }
    Ok(())
}

#[test]
fn adain_output_has_the_style_statistics() -> Result<()> {
    let content = random(&[2, 3, 5, 4], 1)?;
    let style = ((random(&[2, 3, 2, 2], 2)? * 3.0)? + 0.7)?;
    let out = adain(&content, &style)?;
    let (o, s) = (channel_stats(&out)?, channel_stats(&style)?);
    let diff = |a: &Tensor, b: &Tensor| -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    assert!(diff(&o.mean, &s.mean) < 1e-5);
    // var(out) = var(style) + eps up to the content's own eps: equal within 1e-4 relative.
    assert!(diff(&o.var, &s.var) < 1e-4 * (1.0 + s.var.max_all()?.to_scalar::<f32>()?));
    let err = adain(&content, &random(&[2, 4, 2, 2], 3)?)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("adain") && err.contains("[2, 3, 5, 4]"),
        "{err}"
    );
    Ok(())
}

#[test]
fn content_randomization_keeps_each_samples_statistics_and_swaps_content() -> Result<()> {
    let x = ((random(&[3, 2, 4, 4], 5)? * 2.0)?
        + random(&[3, 2, 1, 1], 6)?.broadcast_as((3, 2, 4, 4))?)?;
    let perm = Tensor::new(&[2u32, 0, 1], &Device::Cpu)?;
    let out = content_randomize(&x, &perm)?;
    let (sx, so) = (channel_stats(&x)?, channel_stats(&out)?);
    let max_diff = |a: &Tensor, b: &Tensor| -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    assert!(max_diff(&sx.mean, &so.mean) < 1e-5);
    assert!(max_diff(&sx.var, &so.var) < 1e-4);
    // Normalised content of out[0] is that of x[2].
    let norm = |t: &Tensor| -> Tensor {
        let s = channel_stats(t).unwrap();
        t.broadcast_sub(&s.mean)
            .unwrap()
            .broadcast_div(&(s.var + 1e-5).unwrap().sqrt().unwrap())
            .unwrap()
    };
    assert!(max_diff(&norm(&out).get(0)?, &norm(&x).get(2)?) < 1e-4);
    Ok(())
}

/// At f32 AdaIN and content randomization run as the fused op of dgcolor-kernels; at f64
/// as candle ops. Both give the same outputs and input gradients (CR's only through the
/// statistics), within f32 rounding.
#[test]
fn fused_adain_and_content_randomization_match_the_candle_ops() -> Result<()> {
    let x = ((random(&[3, 4, 6, 5], 11)? * 2.0)? + 0.4)?;
    let style = random(&[3, 4, 3, 3], 12)?;
    let up = random(&[3, 4, 6, 5], 13)?;
    let perm = Tensor::new(&[1u32, 2, 0], &Device::Cpu)?;
    type Op<'a> = Box<dyn Fn(&Tensor) -> Result<Tensor> + 'a>;
    let ops: [(&str, Op); 2] = [
        (
            "adain",
            Box::new(|x: &Tensor| adain(x, &style.to_dtype(x.dtype())?)),
        ),
        (
            "content_randomize",
            Box::new(|x: &Tensor| content_randomize(x, &perm)),
        ),
    ];
    for (name, op) in ops {
        let run = |dtype: DType| -> Result<(Vec<f32>, Vec<f32>)> {
            let v = candle_core::Var::from_tensor(&x.to_dtype(dtype)?)?;
            let out = op(&v)?;
            let g = (&out * up.to_dtype(dtype)?)?.sum_all()?.backward()?;
            let flat = |t: &Tensor| t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>();
            Ok((flat(&out)?, flat(g.get(&v).expect("a gradient"))?))
        };
        let (fused, reference) = (run(DType::F32)?, run(DType::F64)?);
        for (what, a, r) in [
            ("output", &fused.0, &reference.0),
            ("gradient", &fused.1, &reference.1),
        ] {
            let scale = r.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = a.iter().zip(r).fold(0f32, |m, (a, r)| m.max((a - r).abs()));
            assert!(err <= 1e-5 * scale, "{name} {what}: {err} of {scale}");
        }
    }
    Ok(())
}

#[test]
fn style_randomization_mixes_statistics() -> Result<()> {
    let x = ((random(&[2, 2, 4, 4], 7)? * 2.0)?
        + random(&[2, 2, 1, 1], 8)?.broadcast_as((2, 2, 4, 4))?)?;
    let perm = Tensor::new(&[1u32, 0], &Device::Cpu)?;
    let sx = channel_stats(&x)?;
    let max_diff = |a: &Tensor, b: &Tensor| -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    // alpha = 1 keeps own statistics, alpha = 0 takes the partner's.
    let own = channel_stats(&style_randomize(
        &x,
        &perm,
        &Tensor::new(&[1f32, 1.0], &Device::Cpu)?,
    )?)?;
    assert!(max_diff(&own.mean, &sx.mean) < 1e-5 && max_diff(&own.var, &sx.var) < 1e-4);
    let swapped = channel_stats(&style_randomize(
        &x,
        &perm,
        &Tensor::new(&[0f32, 0.0], &Device::Cpu)?,
    )?)?;
    assert!(max_diff(&swapped.mean, &sx.mean.index_select(&perm, 0)?) < 1e-5);
    // alpha = 0.25: mean is the convex combination.
    let mixed = channel_stats(&style_randomize(
        &x,
        &perm,
        &Tensor::new(&[0.25f32, 0.25], &Device::Cpu)?,
    )?)?;
    let want = ((&sx.mean * 0.25)? + (sx.mean.index_select(&perm, 0)? * 0.75)?)?;
    assert!(max_diff(&mixed.mean, &want) < 1e-5);
    Ok(())
}

#[test]
fn batch_norm_matches_pytorch_training_semantics() -> Result<()> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let bn = batch_norm2d(2, vb.pp("bn"))?;
    // Channel 0 holds 1..=8, channel 1 holds 2 * (1..=8), batch 2 x 2x2.
    let v: Vec<f32> = (0..16)
        .map(|i| {
            let (b, c, p) = (i / 8, (i / 4) % 2, i % 4);
            let k = (b * 4 + p + 1) as f32;
            if c == 0 {
                k
            } else {
                2.0 * k
            }
        })
        .collect();
    let x = Tensor::from_vec(v, (2, 2, 2, 2), &Device::Cpu)?;
    let y = bn.forward_t(&x, true)?;
    // Normalised with the biased variance (mean 4.5, var 5.25 for channel 0).
    let y0: Vec<f32> = y.get(0)?.get(0)?.flatten_all()?.to_vec1()?;
    assert!((y0[0] - (1.0 - 4.5) / (5.25f32 + 1e-5).sqrt()).abs() < 1e-5);
    // Running stats: 0.9 * init + 0.1 * batch, with the unbiased variance (6.0 for 1..=8).
    let data = varmap.data().lock().unwrap();
    let rm: Vec<f32> = data["bn.running_mean"].as_tensor().to_vec1()?;
    let rv: Vec<f32> = data["bn.running_var"].as_tensor().to_vec1()?;
    assert!(
        (rm[0] - 0.45).abs() < 1e-6 && (rm[1] - 0.9).abs() < 1e-6,
        "{rm:?}"
    );
    assert!(
        (rv[0] - (0.9 + 0.6)).abs() < 1e-5 && (rv[1] - (0.9 + 2.4)).abs() < 1e-5,
        "{rv:?}"
    );
    drop(data);
    // Eval mode uses the running statistics.
    let e = bn
        .forward_t(&x, false)?
        .get(0)?
        .get(0)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    assert!((e[0] - (1.0 - 0.45) / (1.5f32 + 1e-5).sqrt()).abs() < 1e-5);
    Ok(())
}

#[test]
fn invalid_configs_are_rejected_with_reasons() {
    let mut cfg = ModelConfig::new(64, 8, 6, 7, 2);
    cfg.adain_index = Some(6);
    assert!(cfg
        .validate()
        .unwrap_err()
        .to_string()
        .contains("adain index 6"));
    assert!(ModelConfig::new(48, 8, 6, 7, 2)
        .validate()
        .unwrap_err()
        .to_string()
        .contains("not divisible"));
    assert!(ModelConfig::new(64, 8, 3, 7, 2)
        .validate()
        .unwrap_err()
        .to_string()
        .contains("depth 3"));
    assert_eq!(
        ModelConfig::paper(7, 2).adain_index,
        Some(5),
        "reference AdaIN index"
    );
    assert_eq!(ModelConfig::new(64, 8, 6, 7, 2).z_skip_index(), 3);
}

#[test]
fn dropout_is_seeded_and_off_in_eval() -> Result<()> {
    let cfg = ModelConfig::new(32, 4, 5, 7, 2);
    let nets = build(&cfg, 0)?;
    let l = random(&[2, 1, 32, 32], 9)?;
    let run = |m: Mode| {
        nets.generator
            .forward(&l, &m)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(
        run(Mode::Train { dropout_seed: 1 }),
        run(Mode::Train { dropout_seed: 1 })
    );
    assert_ne!(
        run(Mode::Train { dropout_seed: 1 }),
        run(Mode::Train { dropout_seed: 2 })
    );
    assert_eq!(run(Mode::Eval), run(Mode::Eval));
    Ok(())
}

/// The frozen colour discriminator (used in the generator's loss) passes the same gradient to
/// its input as the trainable one, computes none for its own parameters, and still moves its
/// BatchNorm running statistics in train mode.
#[test]
fn frozen_discriminator_gives_the_input_gradient_and_no_weight_gradients() -> Result<()> {
    let cfg = ModelConfig::new(64, 4, 6, 7, 2);
    let run = |frozen: bool| -> Result<(Tensor, usize, Vec<f32>)> {
        let nets = build(&cfg, 5)?;
        let l = random(&[2, 1, 64, 64], 6)?;
        let ab = candle_core::Var::from_tensor(&random(&[2, 2, 64, 64], 7)?)?;
        let disc = if frozen {
            nets.color.frozen()
        } else {
            nets.color.clone()
        };
        let scores = disc.forward_t(&l, ab.as_tensor(), true)?;
        let grads = (scores.sqr()?.mean_all()?).backward()?;
        let data = nets.varmap.data().lock().unwrap();
        let with_grad = data
            .iter()
            .filter(|(name, _)| name.starts_with(prefix::COLOR_DISC))
            .filter(|(_, v)| grads.get(v.as_tensor()).is_some())
            .count();
        let running = data[&format!("{}.conv2.bn.running_mean", prefix::COLOR_DISC)]
            .as_tensor()
            .to_vec1::<f32>()?;
        let d_ab = grads.get(ab.as_tensor()).expect("input gradient").clone();
        Ok((d_ab, with_grad, running))
    };
    let (d_live, n_live, rm_live) = run(false)?;
    let (d_frozen, n_frozen, rm_frozen) = run(true)?;
    // conv1..conv5 weight + bias, BatchNorm weight + bias on conv2..conv4.
    assert_eq!(n_live, 16);
    assert_eq!(n_frozen, 0);
    let diff = (d_live - d_frozen)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert_eq!(diff, 0.0, "input gradients differ");
    assert_eq!(rm_live, rm_frozen);
    assert!(
        rm_frozen.iter().any(|&v| v != 0.0),
        "running mean did not move"
    );
    Ok(())
}

/// The adversarial update's frozen networks: E_h with frozen convolutions and a frozen f_s
/// leave gradients only on E_h's BatchNorm affine, equal to those of the live networks.
#[test]
fn frozen_head_convs_and_style_disc_leave_only_batch_norm_gradients() -> Result<()> {
    let cfg = ModelConfig::new(64, 4, 6, 7, 2);
    let run = |frozen: bool| -> Result<Vec<(String, Vec<f32>)>> {
        let nets = build(&cfg, 8)?;
        let l = random(&[4, 1, 64, 64], 9)?;
        let (head, style) = if frozen {
            (nets.generator.head.with_frozen_convs(), nets.style.frozen())
        } else {
            (nets.generator.head.clone(), nets.style.clone())
        };
        let z = head.forward_t(&l, true)?;
        let grads = style.forward_t(&z, true)?.sqr()?.mean_all()?.backward()?;
        let data = nets.varmap.data().lock().unwrap();
        let mut with_grad: Vec<(String, Vec<f32>)> = data
            .iter()
            .filter_map(|(name, v)| {
                let g = grads.get(v.as_tensor())?;
                Some((name.clone(), g.flatten_all().ok()?.to_vec1::<f32>().ok()?))
            })
            .collect();
        with_grad.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(with_grad)
    };
    let live = run(false)?;
    let frozen = run(true)?;
    let names: Vec<&str> = frozen.iter().map(|(n, _)| n.as_str()).collect();
    let head = prefix::HEAD;
    assert_eq!(
        names,
        [
            format!("{head}.down2.bn.bias"),
            format!("{head}.down2.bn.weight"),
            format!("{head}.down3.bn.bias"),
            format!("{head}.down3.bn.weight"),
        ]
    );
    assert!(
        live.len() > 10,
        "the live networks give every parameter a gradient"
    );
    for (name, g) in &frozen {
        let (_, want) = live.iter().find(|(n, _)| n == name).expect("live gradient");
        assert_eq!(g, want, "{name}");
    }
    Ok(())
}
