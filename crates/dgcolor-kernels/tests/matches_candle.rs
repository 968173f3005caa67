//! The custom ops and the lowered (GEMM + copies) path against candle's own `conv2d` /
//! `conv_transpose2d` (+ bias): outputs and all three gradients within 1e-4 relative, on
//! random shapes with odd sizes, batch 1, stride 1 and 2, and a 1x1 input as at the U-Net
//! bottleneck; the lowered path at bf16 within bfloat16's rounding.

use candle_core::{Device, Result, Tensor, Var};
use dgcolor_kernels::{
    conv2d, conv2d_lowered, conv2d_reference, conv_transpose2d, conv_transpose2d_lowered,
    conv_transpose2d_reference, Precision,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TOL: f32 = 1e-4;

fn randn(rng: &mut ChaCha8Rng, dims: &[usize]) -> Result<Tensor> {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(v, dims, &Device::Cpu)
}

/// max |a - b| / max |b|.
fn rel_err(a: &Tensor, b: &Tensor) -> Result<f32> {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let diff = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    let scale = b
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()?
        .max(1e-6);
    Ok(diff / scale)
}

/// The values' bit patterns, for exact comparisons.
fn bits(t: &Tensor) -> Result<Vec<u32>> {
    Ok(t.flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .map(|v| v.to_bits())
        .collect())
}

/// `f` on the operands (as variables on `dev`): its outputs (the first the one
/// differentiated, against upstream gradient `up`), then each operand's gradient; on the CPU.
fn outputs_and_grads<const N: usize>(
    operands: [&Tensor; N],
    up: &Tensor,
    dev: &Device,
    f: impl FnOnce(&[Var; N]) -> Result<Vec<Tensor>>,
) -> Result<Vec<Tensor>> {
    let vars = operands.map(|t| Var::from_tensor(&t.to_device(dev).unwrap()).unwrap());
    let mut out = f(&vars)?;
    let g = (&out[0] * up.to_device(dev)?)?.sum_all()?.backward()?;
    for v in &vars {
        out.push(g.get(v).expect("gradient").clone());
    }
    out.iter().map(|t| t.to_device(&Device::Cpu)).collect()
}

/// A fused op against the ops it replaces, on the CPU: `run(fused)` gives the outputs and
/// gradients named by `names`, which must be the same bits either way.
fn fused_is_unfused(
    case: &str,
    names: &[&str],
    run: impl Fn(bool) -> Result<Vec<Tensor>>,
) -> Result<Vec<Tensor>> {
    let (fused, apart) = (run(true)?, run(false)?);
    for (name, (a, r)) in names.iter().zip(fused.iter().zip(&apart)) {
        assert_eq!(bits(a)?, bits(r)?, "{case}: {name}");
    }
    Ok(fused)
}

/// Asserts that about half of `y`'s values are <= 0, so both sides of an activation are tested.
fn both_signs(case: &str, y: &Tensor) -> Result<()> {
    let share = y
        .le(0.0)?
        .to_dtype(candle_core::DType::F32)?
        .mean_all()?
        .to_scalar::<f32>()?;
    assert!(
        (0.2..0.8).contains(&share),
        "{case}: {share} of the outputs <= 0"
    );
    Ok(())
}

type Op = fn(&Tensor, &Tensor, Option<&Tensor>, usize, usize) -> Result<Tensor>;

fn conv2d_low(x: &Tensor, w: &Tensor, b: Option<&Tensor>, s: usize, p: usize) -> Result<Tensor> {
    conv2d_lowered(x, w, b, s, p, Precision::F32)
}

fn conv_t_low(x: &Tensor, w: &Tensor, b: Option<&Tensor>, s: usize, p: usize) -> Result<Tensor> {
    conv_transpose2d_lowered(x, w, b, s, p, Precision::F32)
}

fn conv2d_bf16(x: &Tensor, w: &Tensor, b: Option<&Tensor>, s: usize, p: usize) -> Result<Tensor> {
    conv2d_lowered(x, w, b, s, p, Precision::Bf16)
}

fn conv_t_bf16(x: &Tensor, w: &Tensor, b: Option<&Tensor>, s: usize, p: usize) -> Result<Tensor> {
    conv_transpose2d_lowered(x, w, b, s, p, Precision::Bf16)
}

/// Runs `fast` and `reference` on the same operands with a random upstream gradient and
/// compares the output and the gradients of input, weight and bias.
#[allow(clippy::too_many_arguments)] // one row of a case table
fn check(
    case: &str,
    fast: Op,
    reference: Op,
    x: &[usize],
    w: &[usize],
    nb: usize,
    s: usize,
    p: usize,
    seed: u64,
    tol: f32,
) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Var::from_tensor(&randn(&mut rng, x)?)?;
    let w = Var::from_tensor(&(randn(&mut rng, w)? * 0.5)?)?;
    let b = Var::from_tensor(&randn(&mut rng, &[nb])?)?;
    let y_ref = reference(&x, &w, Some(&b), s, p)?;
    let y = fast(&x, &w, Some(&b), s, p)?;
    let up = randn(&mut rng, y_ref.dims())?;
    let g_ref = (&y_ref * &up)?.sum_all()?.backward()?;
    let g = (&y * &up)?.sum_all()?.backward()?;
    let e = rel_err(&y, &y_ref)?;
    assert_eq!(y.dtype(), y_ref.dtype(), "{case}: output dtype");
    assert!(e < tol, "{case}: output rel err {e}");
    for (name, v) in [("input", &x), ("weight", &w), ("bias", &b)] {
        let a = g
            .get(v)
            .unwrap_or_else(|| panic!("{case}: no {name} gradient"));
        let r = g_ref.get(v).expect("reference gradient");
        let e = rel_err(a, r)?;
        assert!(e < tol, "{case}: {name} gradient rel err {e}");
    }
    Ok(())
}

#[test]
fn conv2d_matches_candle() -> Result<()> {
    // (b, c, h, w), (m, kh, kw), stride, padding
    let cases: &[([usize; 4], [usize; 3], usize, usize)] = &[
        ([1, 1, 7, 9], [3, 4, 4], 2, 1),
        ([2, 3, 8, 8], [5, 4, 4], 2, 1),
        ([3, 4, 9, 5], [2, 3, 3], 1, 1),
        ([1, 6, 16, 16], [4, 4, 4], 1, 0),
        ([4, 5, 13, 11], [7, 4, 4], 2, 1),
        ([2, 7, 33, 35], [6, 4, 4], 1, 1), // per-image GEMM path (OH*OW >= 256)
        ([2, 16, 32, 32], [8, 4, 4], 2, 1),
        // Winograd F(2x2, 2x2) (winograd.rs): 4x4 stride 2 with >= 16 filters on a plane
        // large enough; batch 1 and odd channel / filter counts
        ([2, 8, 64, 64], [16, 4, 4], 2, 1),
        ([1, 5, 64, 128], [19, 4, 4], 2, 1),
        ([2, 16, 64, 64], [20, 4, 4], 2, 1), // input gradient by Winograd too
        ([2, 16, 32, 32], [17, 4, 4], 1, 1), // stride 1 (PatchGAN), both ways by Winograd
        ([1, 3, 3, 3], [2, 4, 4], 1, 1),
        ([5, 4, 2, 2], [3, 4, 4], 2, 1), // 2x2 -> 1x1, the bottleneck
        ([2, 3, 10, 10], [4, 3, 5], 2, 2),
        ([2, 3, 11, 10], [4, 5, 4], 3, 2), // stride 3: three phases per axis
        // one filter (direct kernels, no columns): the PatchGAN's last layer and odd cases
        ([2, 24, 9, 9], [1, 4, 4], 1, 1),
        ([1, 5, 7, 9], [1, 4, 4], 2, 1),
        ([3, 4, 8, 11], [1, 3, 5], 1, 2),
        ([2, 3, 10, 10], [1, 4, 4], 3, 0),
        ([1, 2, 2, 2], [1, 4, 4], 1, 1),
    ];
    // bf16 keeps 8 significant bits: a relative error of a few 2^-8 on sums of ~100 terms.
    let paths: [(&str, Op, f32); 3] = [
        ("custom", conv2d, TOL),
        ("lowered", conv2d_low, TOL),
        ("lowered bf16", conv2d_bf16, 3e-2),
    ];
    for (path, op, tol) in paths {
        for (i, &(x, [m, kh, kw], s, p)) in cases.iter().enumerate() {
            let case = format!(
                "{path} conv2d {x:?} w [{m}, {}, {kh}, {kw}] s {s} p {p}",
                x[1]
            );
            let w = [m, x[1], kh, kw];
            check(&case, op, conv2d_reference, &x, &w, m, s, p, i as u64, tol)?;
        }
    }
    Ok(())
}

#[test]
fn conv_transpose2d_matches_candle() -> Result<()> {
    // (b, m, ih, iw), (c, kh, kw), stride, padding
    let cases: &[([usize; 4], [usize; 3], usize, usize)] = &[
        ([1, 3, 4, 4], [2, 4, 4], 2, 1),
        ([2, 5, 3, 7], [4, 4, 4], 2, 1),
        ([3, 4, 5, 5], [6, 3, 3], 1, 1),
        ([1, 8, 1, 1], [4, 4, 4], 2, 1), // 1x1 bottleneck -> 2x2
        ([4, 8, 1, 1], [3, 4, 4], 2, 1),
        ([2, 6, 16, 17], [3, 4, 4], 2, 1),   // per-image path
        ([2, 17, 32, 32], [5, 4, 4], 2, 1),  // input gradient by Winograd (a conv 5 -> 17)
        ([2, 16, 32, 32], [17, 4, 4], 2, 1), // forward by Winograd (the adjoint's)
        ([2, 3, 6, 6], [5, 4, 4], 1, 0),
        ([1, 2, 9, 5], [2, 4, 4], 2, 1),
        ([2, 3, 4, 5], [2, 5, 5], 3, 1),
        // one input channel (the one-filter kernels' geometry)
        ([2, 1, 7, 8], [5, 4, 4], 2, 1),
        ([1, 1, 6, 5], [3, 3, 3], 1, 1),
    ];
    let paths: [(&str, Op, f32); 3] = [
        ("custom", conv_transpose2d, TOL),
        ("lowered", conv_t_low, TOL),
        ("lowered bf16", conv_t_bf16, 3e-2),
    ];
    for (path, op, tol) in paths {
        for (i, &(x, [c, kh, kw], s, p)) in cases.iter().enumerate() {
            let case = format!(
                "{path} conv_transpose2d {x:?} w [{}, {c}, {kh}, {kw}] s {s} p {p}",
                x[1]
            );
            let (w, seed) = ([x[1], c, kh, kw], 100 + i as u64);
            check(
                &case,
                op,
                conv_transpose2d_reference,
                &x,
                &w,
                c,
                s,
                p,
                seed,
                tol,
            )?;
        }
    }
    Ok(())
}

#[test]
fn non_contiguous_input_and_no_bias() -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x = randn(&mut rng, &[3, 2, 8, 6])?.transpose(0, 1)?; // [2, 3, 8, 6], strided
    let w = randn(&mut rng, &[4, 3, 4, 4])?;
    let e = rel_err(
        &conv2d(&x, &w, None, 2, 1)?,
        &conv2d_reference(&x, &w, None, 2, 1)?,
    )?;
    assert!(e < TOL, "conv2d strided input: {e}");
    let wt = randn(&mut rng, &[3, 5, 4, 4])?;
    let e = rel_err(
        &conv_transpose2d(&x, &wt, None, 2, 1)?,
        &conv_transpose2d_reference(&x, &wt, None, 2, 1)?,
    )?;
    assert!(e < TOL, "conv_transpose2d strided input: {e}");
    let e = rel_err(
        &conv2d_low(&x, &w, None, 2, 1)?,
        &conv2d_reference(&x, &w, None, 2, 1)?,
    )?;
    assert!(e < TOL, "lowered conv2d strided input: {e}");
    let e = rel_err(
        &conv_t_low(&x, &wt, None, 2, 1)?,
        &conv_transpose2d_reference(&x, &wt, None, 2, 1)?,
    )?;
    assert!(e < TOL, "lowered conv_transpose2d strided input: {e}");
    Ok(())
}

#[test]
fn bit_identical_run_to_run() -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let x = Var::from_tensor(&randn(&mut rng, &[4, 16, 32, 32])?)?;
    let w = Var::from_tensor(&randn(&mut rng, &[32, 16, 4, 4])?)?;
    let b = Var::from_tensor(&randn(&mut rng, &[32])?)?;
    let wt = Var::from_tensor(&randn(&mut rng, &[32, 8, 4, 4])?)?;
    let run = || -> Result<Vec<Vec<f32>>> {
        let y = conv2d(&x, &w, Some(&b), 2, 1)?;
        let z = conv_transpose2d(&y, &wt, None, 2, 1)?;
        let g = z.sqr()?.sum_all()?.backward()?;
        [
            z.clone(),
            g.get(&x).unwrap().clone(),
            g.get(&w).unwrap().clone(),
            g.get(&wt).unwrap().clone(),
        ]
        .iter()
        .map(|t| t.flatten_all()?.to_vec1::<f32>())
        .collect()
    };
    let a = run()?;
    let b2 = run()?;
    assert!(a
        .iter()
        .zip(&b2)
        .all(|(x, y)| x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())));
    Ok(())
}

#[test]
fn leaky_relu_matches_candle() -> Result<()> {
    use dgcolor_kernels::{leaky_relu, leaky_relu_reference};
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for (dims, slope) in [
        (vec![3usize, 5, 7, 9], 0.2),
        (vec![2, 64, 32, 32], 0.2),
        (vec![1, 3, 1, 1], 0.0),
        (vec![4, 16, 33, 31], 0.0),
    ] {
        let x = Var::from_tensor(&randn(&mut rng, &dims)?)?;
        let up = randn(&mut rng, &dims)?;
        let y = leaky_relu(&x, slope)?;
        let y_ref = leaky_relu_reference(&x, slope)?;
        assert!(rel_err(&y, &y_ref)? < TOL, "{dims:?} forward");
        let g = (&y * &up)?.sum_all()?.backward()?;
        let g_ref = (&y_ref * &up)?.sum_all()?.backward()?;
        let e = rel_err(g.get(&x).unwrap(), g_ref.get(&x).unwrap())?;
        assert!(e < TOL, "{dims:?} slope {slope}: gradient rel err {e}");
    }
    Ok(())
}

/// A transposed conv given its weight's adjoint layout (`adjoint_weight`, what the inference
/// generator keeps) computes the same products in the same order as from the weight itself:
/// identical outputs, through the im2col path (few positions: the decoder's innermost levels,
/// one image, several groups) and the Winograd path (a 32x32 input) alike; candle's op
/// within the usual tolerance. A wrong layout is refused with both shapes named.
#[test]
fn adjoint_weight_gives_the_same_transposed_conv() -> Result<()> {
    use dgcolor_kernels::{adjoint_weight, conv_transpose2d_act, Act};
    let mut rng = ChaCha8Rng::seed_from_u64(32);
    for (x_dims, w_dims) in [
        ([16usize, 64, 1, 1], [64usize, 48, 4, 4]),
        ([16, 64, 2, 2], [64, 32, 4, 4]),
        ([1, 24, 5, 3], [24, 20, 4, 4]),
        ([4, 32, 8, 8], [32, 16, 4, 4]),
        ([2, 32, 32, 32], [32, 16, 4, 4]),
    ] {
        let x = randn(&mut rng, &x_dims)?;
        let w = randn(&mut rng, &w_dims)?;
        let b = randn(&mut rng, &[w_dims[1]])?;
        let a = adjoint_weight(&w)?;
        assert_eq!(a.dims(), [w_dims[1] * 16, w_dims[0]]);
        for act in [Act::Identity, Act::Relu] {
            let plain = conv_transpose2d_act(&x, &w, None, Some(&b), 2, 1, act)?;
            let fast = conv_transpose2d_act(&x, &w, Some(&a), Some(&b), 2, 1, act)?;
            assert_eq!(
                plain.flatten_all()?.to_vec1::<f32>()?,
                fast.flatten_all()?.to_vec1::<f32>()?,
                "{x_dims:?} {w_dims:?} {act:?}"
            );
        }
        let want = conv_transpose2d_reference(&x, &w, Some(&b), 2, 1)?;
        let got = conv_transpose2d_act(&x, &w, Some(&a), Some(&b), 2, 1, Act::Identity)?;
        assert!(rel_err(&got, &want)? < TOL, "{x_dims:?} {w_dims:?}");
    }
    let w = randn(&mut rng, &[8, 4, 4, 4])?;
    let x = randn(&mut rng, &[1, 8, 3, 3])?;
    let err = conv_transpose2d_act(&x, &w, Some(&w), None, 2, 1, Act::Identity)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[8, 4, 4, 4]") && err.contains("[64, 8]"),
        "unexpected error: {err}"
    );
    Ok(())
}

/// The inference path's fused activations: `conv2d_act` / `conv_transpose2d_act` give
/// exactly the unfused conv followed by the activation for ReLU and LeakyReLU (the same
/// arithmetic, applied per block) and candle's `tanh` within 3e-7; several groups per
/// batch (b = 8 at 8x8 output), one image, and a single-filter layer (its own kernels).
/// With a graph-recording operand they fall back to the differentiable composition.
#[test]
fn fused_activations_match_unfused() -> Result<()> {
    use dgcolor_kernels::{conv2d_act, conv_transpose2d_act, Act};
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let acts = [Act::Identity, Act::Relu, Act::LeakyRelu(0.2), Act::Tanh];
    for (transposed, x_dims, w_dims) in [
        (false, [8usize, 3, 16, 16], [5usize, 3, 4, 4]),
        (false, [1, 4, 9, 7], [6, 4, 4, 4]),
        (false, [2, 5, 8, 8], [1, 5, 4, 4]),
        (true, [8, 6, 8, 8], [6, 3, 4, 4]),
        (true, [1, 4, 5, 3], [4, 2, 4, 4]),
    ] {
        let x = randn(&mut rng, &x_dims)?;
        let w = randn(&mut rng, &w_dims)?;
        let b = randn(&mut rng, &[w_dims[usize::from(transposed)]])?;
        let base = if transposed {
            conv_transpose2d(&x, &w, Some(&b), 2, 1)?
        } else {
            conv2d(&x, &w, Some(&b), 2, 1)?
        };
        for act in acts {
            let got = if transposed {
                conv_transpose2d_act(&x, &w, None, Some(&b), 2, 1, act)?
            } else {
                conv2d_act(&x, &w, Some(&b), 2, 1, act)?
            };
            let want = act.apply(&base)?;
            let diff = (&got - &want)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?;
            let tol = if act == Act::Tanh { 3e-7 } else { 0.0 };
            assert!(
                diff <= tol,
                "{x_dims:?} {w_dims:?} transposed {transposed} {act:?}: max diff {diff}"
            );
        }
    }
    // A weight that records a graph: the composition, with gradients.
    let x = randn(&mut rng, &[2, 3, 8, 8])?;
    let w = Var::from_tensor(&randn(&mut rng, &[4, 3, 4, 4])?)?;
    let y = conv2d_act(&x, &w, None, 2, 1, Act::Tanh)?;
    let g = y.sum_all()?.backward()?;
    let y_ref = conv2d_reference(&x, &w, None, 2, 1)?.tanh()?;
    let g_ref = y_ref.sum_all()?.backward()?;
    assert!(rel_err(&y, &y_ref)? < TOL);
    assert!(rel_err(g.get(&w).unwrap(), g_ref.get(&w).unwrap())? < TOL);
    Ok(())
}

/// `relu_cat` is `relu(cat([a, b], 1))` exactly, output and both gradients, for one image
/// and several (enough values to split over threads); with only one operand recording a
/// graph only that one gets a gradient. It rejects operands that differ outside the channel
/// dimension.
#[test]
fn relu_cat_matches_cat_then_relu() -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(32);
    let values = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
    for (b, ca, cb, h, w) in [(1, 3, 5, 7, 9), (16, 64, 32, 16, 16), (4, 1, 1, 1, 1)] {
        let case = (b, ca, cb, h, w);
        let x = Var::from_tensor(&randn(&mut rng, &[b, ca, h, w])?)?;
        let y = Var::from_tensor(&randn(&mut rng, &[b, cb, h, w])?)?;
        let up = randn(&mut rng, &[b, ca + cb, h, w])?;
        let got = dgcolor_kernels::relu_cat(&x, &y)?;
        let want = Tensor::cat(&[x.as_tensor(), y.as_tensor()], 1)?.relu()?;
        assert_eq!(got.dims(), want.dims());
        assert_eq!(values(&got)?, values(&want)?, "{case:?}");
        let g = (&got * &up)?.sum_all()?.backward()?;
        let g_ref = (&want * &up)?.sum_all()?.backward()?;
        for v in [&x, &y] {
            let (a, r) = (g.get(v).unwrap(), g_ref.get(v).unwrap());
            assert_eq!(a.dims(), r.dims());
            // (`0 * g` in the reference may be -0.0; compare values, not bits.)
            assert!(
                values(a)?.iter().zip(values(r)?).all(|(a, r)| *a == r),
                "{case:?}: gradient"
            );
        }
        let got = dgcolor_kernels::relu_cat(&x.detach(), &y)?;
        let g = (&got * &up)?.sum_all()?.backward()?;
        assert!(g.get(&y).is_some());
        assert_eq!(values(g.get(&y).unwrap())?, values(g_ref.get(&y).unwrap())?);
    }
    let err = dgcolor_kernels::relu_cat(
        &randn(&mut rng, &[2, 3, 4, 4])?,
        &randn(&mut rng, &[2, 3, 4, 5])?,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("relu_cat") && err.contains("differ outside dim 1"),
        "{err}"
    );
    Ok(())
}

/// AdaIN written out in f64 candle ops (the formula of Huang & Belongie with the unbiased
/// variance, as the reference model's `calc_mean_std`): the independent reference for
/// [`dgcolor_kernels::adain`].
fn adain_f64(content: &Tensor, style: &Tensor, eps: f64) -> Result<Tensor> {
    let (m, s) = mean_std_f64(content, eps)?;
    let (mm, ss) = mean_std_f64(style, eps)?;
    content
        .broadcast_sub(&m)?
        .broadcast_div(&s)?
        .broadcast_mul(&ss)?
        .broadcast_add(&mm)
}

/// Per-plane mean and `sqrt(unbiased variance + eps)`, `[B, C, 1, 1]` each.
fn mean_std_f64(t: &Tensor, eps: f64) -> Result<(Tensor, Tensor)> {
    let (b, c, h, w) = t.dims4()?;
    let flat = t.reshape((b, c, h * w))?;
    let mean = flat.mean_keepdim(2)?;
    let var = (flat.broadcast_sub(&mean)?.sqr()?.sum_keepdim(2)? / (h * w - 1) as f64)?;
    let std = (var + eps)?.sqrt()?;
    Ok((mean.reshape((b, c, 1, 1))?, std.reshape((b, c, 1, 1))?))
}

/// The fused AdaIN gives the f64 formula's output and both gradients within f32 rounding,
/// for content and style of different spatial sizes, planes of 2 positions, planes larger
/// than a parallel task, and features far from zero mean (where a one-pass variance would
/// cancel); an operand without a graph gets no gradient; bad shapes are refused by name.
#[test]
fn adain_matches_the_f64_formula() -> Result<()> {
    const EPS: f64 = 1e-5;
    let mut rng = ChaCha8Rng::seed_from_u64(33);
    let f64_of = |t: &Tensor| t.to_dtype(candle_core::DType::F64);
    for (c_dims, s_dims, offset) in [
        ([2, 3, 5, 7], [2, 3, 4, 3], 0.0),
        ([16, 64, 16, 16], [16, 64, 16, 16], 0.0),
        ([4, 8, 2, 1], [4, 8, 1, 2], 0.0),
        ([2, 4, 64, 64], [2, 4, 3, 5], 100.0),
    ] {
        let case = format!("content {c_dims:?}, style {s_dims:?}, offset {offset}");
        let x = Var::from_tensor(&randn(&mut rng, &c_dims)?.affine(2.0, offset)?)?;
        let y = Var::from_tensor(&randn(&mut rng, &s_dims)?.affine(0.5, -0.3)?)?;
        let up = randn(&mut rng, &c_dims)?;
        let got = dgcolor_kernels::adain(&x, &y, EPS)?;
        let (x64, y64) = (
            Var::from_tensor(&f64_of(&x)?)?,
            Var::from_tensor(&f64_of(&y)?)?,
        );
        let want = adain_f64(&x64, &y64, EPS)?;
        let f32_of = |t: &Tensor| t.to_dtype(candle_core::DType::F32);
        // (At offset 100, `x - mean` in f32 alone costs ulp(100) / 2 against a std of 2.)
        let e = rel_err(&got, &f32_of(&want)?)?;
        assert!(e < 5e-6, "{case}: output rel err {e}");
        let g = (&got * &up)?.sum_all()?.backward()?;
        let g64 = (&want * f64_of(&up)?)?.sum_all()?.backward()?;
        // The content's gradient is `S/s * (g - mean(g) - xhat * ..)`, whose terms cancel
        // (exactly, for 2 positions and eps -> 0): its error is measured against the size of
        // those terms, max |S/s * g|.
        let ratio = (mean_std_f64(&y64, EPS)?.1 / mean_std_f64(&x64, EPS)?.1)?;
        let terms = f32_of(&f64_of(&up)?.broadcast_mul(&ratio)?.abs()?)?;
        let term_scale = terms.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        for (name, v, v64, scale) in [("content", &x, &x64, term_scale), ("style", &y, &y64, 0.0)] {
            let (a, r) = (g.get(v).unwrap(), f32_of(g64.get(v64).unwrap())?);
            let diff = (a - &r)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
            let size = r
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?
                .max(scale);
            let e = diff / size;
            assert!(e < 1e-5, "{case}: {name} gradient error {e} of {size}");
        }
        // Content detached (content randomization): only the style's gradient, the same.
        let got = dgcolor_kernels::adain(&x.detach(), &y, EPS)?;
        let g2 = (&got * &up)?.sum_all()?.backward()?;
        assert!(g2.get(&x).is_none(), "{case}");
        assert_eq!(
            g2.get(&y).unwrap().flatten_all()?.to_vec1::<f32>()?,
            g.get(&y).unwrap().flatten_all()?.to_vec1::<f32>()?
        );
    }
    for (c, st, msg) in [
        ([2, 3, 4, 4], [2, 4, 4, 4], "differ in batch or channels"),
        ([2, 3, 4, 4], [3, 3, 4, 4], "differ in batch or channels"),
        ([2, 3, 1, 1], [2, 3, 4, 4], "at least 2 positions"),
        ([2, 3, 4, 4], [2, 3, 1, 1], "at least 2 positions"),
    ] {
        let err = dgcolor_kernels::adain(&randn(&mut rng, &c)?, &randn(&mut rng, &st)?, EPS)
            .unwrap_err()
            .to_string();
        assert!(err.contains("adain") && err.contains(msg), "{err}");
    }
    Ok(())
}

/// The fused L1 and LSGAN losses give the f64 formulas' values and gradients (both operands
/// of L1, with the target's the negative of the prediction's), on lengths below, at and far
/// past one partial-sum chunk; an exact tie has derivative 0 (PyTorch's `abs`); a target
/// without a graph gets no gradient; mismatched shapes and empty tensors are refused.
#[test]
fn l1_and_lsgan_match_the_f64_formulas() -> Result<()> {
    use candle_core::DType;
    let mut rng = ChaCha8Rng::seed_from_u64(35);
    for dims in [
        vec![3usize],
        vec![2, 2, 7, 5],
        vec![1, 1, 128, 128],
        vec![4, 2, 96, 100],
    ] {
        let p = Var::from_tensor(&randn(&mut rng, &dims)?)?;
        let t = Var::from_tensor(&randn(&mut rng, &dims)?)?;
        let up = 0.7f64;
        let (p64, t64) = (
            Var::from_tensor(&p.to_dtype(DType::F64)?)?,
            Var::from_tensor(&t.to_dtype(DType::F64)?)?,
        );
        let close = |a: &Tensor, r: &Tensor, what: &str| -> Result<()> {
            let e = rel_err(a, &r.to_dtype(DType::F32)?)?;
            assert!(e < 1e-6, "{dims:?} {what}: rel err {e}");
            Ok(())
        };
        // L1
        let got = dgcolor_kernels::l1_loss(&p, &t)?;
        let want = (p64.as_tensor() - t64.as_tensor())?.abs()?.mean_all()?;
        assert_eq!(got.dims(), &[] as &[usize]);
        close(&got, &want, "l1")?;
        let g = (&got * up)?.backward()?;
        let g64 = (&want * up)?.backward()?;
        close(g.get(&p).unwrap(), g64.get(&p64).unwrap(), "l1 grad pred")?;
        close(g.get(&t).unwrap(), g64.get(&t64).unwrap(), "l1 grad target")?;
        let g = dgcolor_kernels::l1_loss(&p, &t.detach())?.backward()?;
        assert!(g.get(&t).is_none() && g.get(&p).is_some());
        // LSGAN against both labels
        for label in [0.0f32, 1.0] {
            let got = dgcolor_kernels::squared_loss_to(&p, label)?;
            let want = (p64.as_tensor() - label as f64)?.sqr()?.mean_all()?;
            close(&got, &want, "lsgan")?;
            let g = (&got * up)?.backward()?;
            let g64 = (&want * up)?.backward()?;
            close(g.get(&p).unwrap(), g64.get(&p64).unwrap(), "lsgan grad")?;
        }
    }
    let x = Var::from_tensor(&Tensor::new(&[1.0f32, 2.0, 3.0, 4.0], &Device::Cpu)?)?;
    let y = Tensor::new(&[0.0f32, 2.0, 5.0, 4.0], &Device::Cpu)?;
    let g = dgcolor_kernels::l1_loss(&x, &y)?.backward()?;
    assert_eq!(
        g.get(&x).unwrap().to_vec1::<f32>()?,
        [0.25, 0.0, -0.25, 0.0]
    );
    let err = dgcolor_kernels::l1_loss(&x, &y.reshape((2, 2))?)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("l1") && err.contains("differ in shape"),
        "{err}"
    );
    let empty = Tensor::zeros((0,), candle_core::DType::F32, &Device::Cpu)?;
    let err = dgcolor_kernels::squared_loss_to(&empty, 1.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty"), "{err}");
    Ok(())
}

/// The counter-based dropout mask is `ChaCha8Rng`'s stream: word `i` is word `i % 16` of
/// block `i / 16` (also past 2^32 blocks), drawn as rand's f32; the op is `x * mask` with the
/// mask the model draws sequentially, bit for bit, and its gradient is `grad * mask`.
#[test]
fn dropout_mask_is_the_chacha8_stream() -> Result<()> {
    use dgcolor_kernels::dropout::{chacha8_block, chacha_key, dropout_op, unit_f32};
    use rand::RngCore;
    for seed in [0u64, 1, 0xdead_beef, u64::MAX] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let key = chacha_key(&rng.get_seed());
        for block in 0..70u64 {
            for (i, w) in chacha8_block(&key, block).into_iter().enumerate() {
                assert_eq!(rng.next_u32(), w, "seed {seed}, block {block}, word {i}");
            }
        }
        let far = 1u64 << 32 | 3;
        rng.set_word_pos(16 * far as u128 + 5);
        assert_eq!(
            rng.next_u32(),
            chacha8_block(&key, far)[5],
            "block 2^32 + 3"
        );
    }
    let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(9), ChaCha8Rng::seed_from_u64(9));
    for _ in 0..10_000 {
        assert_eq!(a.random::<f32>(), unit_f32(b.next_u32()));
    }

    // The op against the model's host path (`Mode::dropout_mask` + mul), odd length.
    let mut r = ChaCha8Rng::seed_from_u64(4);
    for (dims, p) in [
        ([2usize, 3, 5, 7], 0.5f32),
        ([1, 1, 1, 1], 0.5),
        ([3, 8, 4, 4], 0.2),
    ] {
        let x = Var::from_tensor(&randn(&mut r, &dims)?)?;
        let up = randn(&mut r, &dims)?;
        let mut m = ChaCha8Rng::seed_from_u64(77);
        let seed = m.get_seed();
        let scale = 1.0 / (1.0 - p);
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| if m.random::<f32>() < p { 0.0 } else { scale })
            .collect();
        let mask = Tensor::from_vec(mask, &dims[..], &Device::Cpu)?;
        let want = x.as_tensor().mul(&mask)?;
        let got = dropout_op(&x, &seed, p)?;
        assert_eq!(bits(&got)?, bits(&want)?, "{dims:?} p {p}: forward");
        let g = (&got * &up)?.sum_all()?.backward()?;
        let g_ref = (&want * &up)?.sum_all()?.backward()?;
        assert_eq!(
            bits(g.get(&x).unwrap())?,
            bits(g_ref.get(&x).unwrap())?,
            "{dims:?} p {p}: gradient"
        );
    }
    // On the CPU the model keeps its host mask: the fused entry point declines.
    let x = randn(&mut r, &[2, 2, 2, 2])?;
    assert!(dgcolor_kernels::dropout(&x, &[0; 32], 0.5)?.is_none());
    assert!(dropout_op(&x, &[0; 32], 1.0).is_err());
    Ok(())
}

/// The GPU path against the CPU one: convolutions at the U-Net's layer shapes on CUDA (cuDNN
/// in a `cudnn` build, the lowered path on cuBLAS otherwise), BatchNorm, LeakyReLU and Adam
/// (the kernels of fused.cu) give the CPU custom ops' outputs and gradients. Needs a CUDA
/// device; `scripts/gpu-check.sh` runs them on the GPU machine.
#[cfg(feature = "cuda")]
mod cuda {
    use super::*;

    fn gpu() -> Device {
        dgcolor_kernels::cuda_device(0).expect("these tests need CUDA device 0")
    }

    /// Output and gradients of `op` on the CPU and on the GPU, compared.
    fn same_on_gpu(case: &str, op: Op, x: &[usize], w: &[usize], nb: usize, prec: Precision) {
        let tol = match prec {
            Precision::F32 => TOL,
            Precision::Tf32 => 5e-3,
            Precision::Bf16 => 3e-2,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(x.iter().sum::<usize>() as u64);
        let x = randn(&mut rng, x).unwrap();
        let w = (randn(&mut rng, w).unwrap() * 0.1).unwrap();
        let b = randn(&mut rng, &[nb]).unwrap();
        let run = |dev: &Device, prec: Precision| -> Result<Vec<Tensor>> {
            dgcolor_kernels::set_precision(prec);
            let vars = [&x, &w, &b].map(|t| Var::from_tensor(&t.to_device(dev).unwrap()).unwrap());
            let y = op(&vars[0], &vars[1], Some(&vars[2]), 2, 1)?;
            let up = y.ones_like()?.affine(0.5, 0.25)?;
            let g = (&y * &up)?.sum_all()?.backward()?;
            let mut out = vec![y.to_device(&Device::Cpu)?];
            for v in &vars {
                out.push(g.get(v).expect("gradient").to_device(&Device::Cpu)?);
            }
            Ok(out)
        };
        // The reference is the CPU at f32 (the custom ops), whatever the GPU's precision.
        let cpu = run(&Device::Cpu, Precision::F32).unwrap();
        let gpu = run(&gpu(), prec).unwrap();
        dgcolor_kernels::set_precision(Precision::F32);
        for (name, (a, r)) in ["output", "input grad", "weight grad", "bias grad"]
            .iter()
            .zip(gpu.iter().zip(&cpu))
        {
            let e = rel_err(a, r).unwrap();
            assert!(e < tol, "{case}: {name} rel err {e} (tolerance {tol})");
        }
    }

    /// Encoder and decoder layers of the 256 px, nf 64 U-Net at batch 2.
    #[test]
    fn unet_layers_match_cpu() {
        for prec in [Precision::F32, Precision::Tf32, Precision::Bf16] {
            for (x, m) in [
                ([2, 1, 256, 256], 64),
                ([2, 64, 128, 128], 128),
                ([2, 512, 2, 2], 512),
            ] {
                let case = format!("{prec:?} conv2d {x:?} -> {m}");
                same_on_gpu(&case, conv2d, &x, &[m, x[1], 4, 4], m, prec);
            }
            for (x, c) in [
                ([2, 512, 1, 1], 512),
                ([2, 256, 32, 32], 64),
                ([2, 128, 128, 128], 2),
            ] {
                let case = format!("{prec:?} conv_transpose2d {x:?} -> {c}");
                same_on_gpu(&case, conv_transpose2d, &x, &[x[1], c, 4, 4], c, prec);
            }
        }
    }

    /// relu_cat's kernels: the CPU op's values, forward and both gradients.
    #[test]
    fn relu_cat_matches_cpu() {
        let mut rng = ChaCha8Rng::seed_from_u64(15);
        for (b, ca, cb, h, w) in [(1, 3, 5, 7, 9), (16, 64, 32, 16, 16), (4, 1, 1, 1, 1)] {
            let x = randn(&mut rng, &[b, ca, h, w]).unwrap();
            let y = randn(&mut rng, &[b, cb, h, w]).unwrap();
            let up = randn(&mut rng, &[b, ca + cb, h, w]).unwrap();
            let run = |dev: &Device| -> Result<Vec<Vec<f32>>> {
                let (x, y) = (
                    Var::from_tensor(&x.to_device(dev)?)?,
                    Var::from_tensor(&y.to_device(dev)?)?,
                );
                let out = dgcolor_kernels::relu_cat(&x, &y)?;
                let g = (&out * up.to_device(dev)?)?.sum_all()?.backward()?;
                [&out, g.get(&x).unwrap(), g.get(&y).unwrap()]
                    .iter()
                    .map(|t| t.flatten_all()?.to_vec1::<f32>())
                    .collect()
            };
            let (cpu, gpu) = (run(&Device::Cpu).unwrap(), run(&gpu()).unwrap());
            for (name, (a, r)) in ["output", "grad a", "grad b"]
                .iter()
                .zip(gpu.iter().zip(&cpu))
            {
                // Values, not bits: a ReLU'd -0.0 may be either zero on the CPU.
                assert!(a == r, "{:?}: {name}", (b, ca, cb, h, w));
            }
        }
    }

    /// The AdaIN kernel: the CPU op's output and both gradients (f64 sums in another
    /// order, so within a few f32 roundings), for planes smaller than, about and much
    /// larger than a block, and different content and style sizes.
    #[test]
    fn adain_matches_cpu() {
        let mut rng = ChaCha8Rng::seed_from_u64(34);
        for (c_dims, s_dims) in [
            ([2usize, 3, 5, 7], [2usize, 3, 4, 3]),
            ([4, 8, 2, 1], [4, 8, 1, 2]),
            ([16, 64, 16, 16], [16, 64, 16, 16]),
            ([2, 4, 128, 128], [2, 4, 64, 64]),
        ] {
            let x = randn(&mut rng, &c_dims).unwrap().affine(2.0, 3.0).unwrap();
            let y = randn(&mut rng, &s_dims).unwrap();
            let up = randn(&mut rng, &c_dims).unwrap();
            let run = |dev: &Device| -> Result<Vec<Tensor>> {
                let (x, y) = (
                    Var::from_tensor(&x.to_device(dev)?)?,
                    Var::from_tensor(&y.to_device(dev)?)?,
                );
                let out = dgcolor_kernels::adain(&x, &y, 1e-5)?;
                let g = (&out * up.to_device(dev)?)?.sum_all()?.backward()?;
                [&out, g.get(&x).unwrap(), g.get(&y).unwrap()]
                    .iter()
                    .map(|t| t.to_device(&Device::Cpu))
                    .collect()
            };
            let (cpu, gpu) = (run(&Device::Cpu).unwrap(), run(&gpu()).unwrap());
            for (name, (a, r)) in ["output", "grad content", "grad style"]
                .iter()
                .zip(gpu.iter().zip(&cpu))
            {
                let e = rel_err(a, r).unwrap();
                assert!(e < 1e-6, "{c_dims:?} / {s_dims:?}: {name} rel err {e}");
            }
        }
    }

    /// The loss kernels: the CPU ops' values (f64 partial sums split differently) and
    /// gradients (the same f32 arithmetic: bit for bit), on lengths of one element, below
    /// one block and past a full grid of partial sums.
    #[test]
    fn losses_match_cpu() {
        let mut rng = ChaCha8Rng::seed_from_u64(36);
        for dims in [vec![1usize], vec![2, 1, 7, 5], vec![128, 2, 64, 64]] {
            let p = randn(&mut rng, &dims).unwrap();
            let t = randn(&mut rng, &dims).unwrap();
            let run = |dev: &Device| -> Result<Vec<Tensor>> {
                let (p, t) = (
                    Var::from_tensor(&p.to_device(dev)?)?,
                    Var::from_tensor(&t.to_device(dev)?)?,
                );
                let l1 = dgcolor_kernels::l1_loss(&p, &t)?;
                let gl = (&l1 * 0.5)?.backward()?;
                let ls = dgcolor_kernels::squared_loss_to(&p, 1.0)?;
                let gs = (&ls * 0.5)?.backward()?;
                [
                    &l1,
                    gl.get(&p).unwrap(),
                    gl.get(&t).unwrap(),
                    &ls,
                    gs.get(&p).unwrap(),
                ]
                .iter()
                .map(|t| t.to_device(&Device::Cpu))
                .collect()
            };
            let (cpu, gpu) = (run(&Device::Cpu).unwrap(), run(&gpu()).unwrap());
            let names = [
                "l1",
                "l1 grad pred",
                "l1 grad target",
                "lsgan",
                "lsgan grad",
            ];
            for (name, (a, r)) in names.iter().zip(gpu.iter().zip(&cpu)) {
                if name.contains("grad") {
                    let (a, r) = (
                        a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                        r.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    );
                    assert!(a == r, "{dims:?}: {name}");
                } else {
                    let e = rel_err(a, r).unwrap();
                    assert!(e < 1e-6, "{dims:?}: {name} rel err {e}");
                }
            }
        }
    }

    /// The dropout kernel draws the CPU's mask: output and gradient bit for bit, on lengths
    /// that are not multiples of a block, one element, and more than one grid of blocks.
    #[test]
    fn dropout_matches_cpu() {
        use dgcolor_kernels::dropout::dropout_op;
        let mut rng = ChaCha8Rng::seed_from_u64(16);
        for (dims, p) in [
            (vec![2usize, 3, 5, 7], 0.5f32),
            (vec![1, 1, 1, 1], 0.5),
            (vec![4, 512, 8, 8], 0.5),
            (vec![3, 4097, 1, 1], 0.3),
        ] {
            let x = randn(&mut rng, &dims).unwrap();
            let up = randn(&mut rng, &dims).unwrap();
            let seed = ChaCha8Rng::seed_from_u64(dims.iter().sum::<usize>() as u64).get_seed();
            let run = |dev: &Device| -> Result<Vec<Vec<u32>>> {
                let x = Var::from_tensor(&x.to_device(dev)?)?;
                let y = if dev.is_cuda() {
                    dgcolor_kernels::dropout(&x, &seed, p)?.expect("fused dropout on CUDA")
                } else {
                    dropout_op(&x, &seed, p)?
                };
                let g = (&y * up.to_device(dev)?)?.sum_all()?.backward()?;
                [&y, g.get(&x).unwrap()]
                    .iter()
                    .map(|t| {
                        let v = t.flatten_all()?.to_vec1::<f32>()?;
                        Ok(v.iter().map(|v| v.to_bits()).collect())
                    })
                    .collect()
            };
            let (cpu, gpu) = (run(&Device::Cpu).unwrap(), run(&gpu()).unwrap());
            assert_eq!(gpu[0], cpu[0], "{dims:?}: output");
            assert_eq!(gpu[1], cpu[1], "{dims:?}: gradient");
        }
    }

    /// Forward and gradient, LeakyReLU and ReLU, an odd shape.
    #[test]
    fn leaky_relu_matches_cpu() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let x = randn(&mut rng, &[2, 8, 33, 31]).unwrap();
        let up = randn(&mut rng, &[2, 8, 33, 31]).unwrap();
        for slope in [0.2, 0.0] {
            let run = |dev: &Device| -> Result<[Tensor; 2]> {
                let x = Var::from_tensor(&x.to_device(dev)?)?;
                let y = dgcolor_kernels::leaky_relu(&x, slope)?;
                let g = (&y * up.to_device(dev)?)?.sum_all()?.backward()?;
                let dx = g.get(&x).expect("gradient").to_device(&Device::Cpu)?;
                Ok([y.to_device(&Device::Cpu)?, dx])
            };
            let (cpu, gpu) = (run(&Device::Cpu).unwrap(), run(&gpu()).unwrap());
            for (name, (a, r)) in ["output", "gradient"].iter().zip(gpu.iter().zip(&cpu)) {
                let e = rel_err(a, r).unwrap();
                assert!(e < TOL, "slope {slope}: {name} rel err {e}");
            }
        }
    }

    /// The CUDA BatchNorm kernels against the CPU op: output, batch statistics and the three
    /// gradients, on odd sizes, 1x1 planes and a U-Net-sized plane (several partial sums per
    /// channel); and bit-identical on the GPU from run to run.
    #[test]
    fn batch_norm_matches_cpu() {
        let mut rng = ChaCha8Rng::seed_from_u64(33);
        for dims in [
            [4usize, 3, 5, 7],
            [3, 5, 1, 1],
            [16, 32, 16, 16],
            [2, 64, 128, 128],
        ] {
            let x = randn(&mut rng, &dims).unwrap().affine(3.0, 1.5).unwrap();
            let w = randn(&mut rng, &[dims[1]]).unwrap();
            let b = randn(&mut rng, &[dims[1]]).unwrap();
            let up = randn(&mut rng, &dims).unwrap();
            let run = |dev: &Device| -> Result<Vec<Tensor>> {
                let vars =
                    [&x, &w, &b].map(|t| Var::from_tensor(&t.to_device(dev).unwrap()).unwrap());
                let (y, mean, var) =
                    dgcolor_kernels::batch_norm_train(&vars[0], &vars[1], &vars[2], 1e-5)?;
                let g = (&y * up.to_device(dev)?)?.sum_all()?.backward()?;
                let mut out = vec![y, mean, var];
                for v in &vars {
                    out.push(g.get(v).expect("gradient").clone());
                }
                out.iter().map(|t| t.to_device(&Device::Cpu)).collect()
            };
            let dev = gpu();
            let cpu = run(&Device::Cpu).unwrap();
            let first = run(&dev).unwrap();
            let names = [
                "output",
                "mean",
                "var",
                "input grad",
                "weight grad",
                "bias grad",
            ];
            for (name, (a, r)) in names.iter().zip(first.iter().zip(&cpu)) {
                let e = rel_err(a, r).unwrap();
                assert!(e < TOL, "{dims:?} {name} rel err {e}");
            }
            let again = run(&dev).unwrap();
            for (name, (a, r)) in names.iter().zip(first.iter().zip(&again)) {
                let diff = (a - r).unwrap().abs().unwrap().max_all().unwrap();
                assert_eq!(
                    diff.to_scalar::<f32>().unwrap(),
                    0.0,
                    "{dims:?} {name}: GPU run to run"
                );
            }
        }
    }

    /// A fused op on the GPU against the same op on the CPU (within TOL) and against the
    /// GPU ops it replaces (bit for bit): `run(fused, device)` gives the outputs and
    /// gradients named by `names`.
    fn fused_matches_on_gpu(
        case: &str,
        names: &[&str],
        run: impl Fn(bool, &Device) -> Result<Vec<Tensor>>,
    ) {
        let dev = gpu();
        let cpu = run(true, &Device::Cpu).unwrap();
        let (fused, apart) = (run(true, &dev).unwrap(), run(false, &dev).unwrap());
        for (i, name) in names.iter().enumerate() {
            let e = rel_err(&fused[i], &cpu[i]).unwrap();
            assert!(e < TOL, "{case} {name} rel err {e}");
            assert_eq!(
                bits(&fused[i]).unwrap(),
                bits(&apart[i]).unwrap(),
                "{case} {name}: fused vs the separate ops on the GPU"
            );
        }
    }

    /// BatchNorm + LeakyReLU, at a U-Net-sized plane (several partial sums per channel)
    /// and at 2x2 planes.
    #[test]
    fn batch_norm_leaky_relu_matches_cpu() {
        let mut rng = ChaCha8Rng::seed_from_u64(39);
        for dims in [[4usize, 3, 5, 7], [3, 64, 2, 2], [2, 64, 128, 128]] {
            let [x, w, b, up] = bn_leaky_case(&mut rng, dims).unwrap();
            for slope in [0.2, 0.0] {
                let run = |fused, dev: &Device| bn_leaky_run([&x, &w, &b], &up, slope, fused, dev);
                fused_matches_on_gpu(&format!("{dims:?} slope {slope}"), &BN_OUTPUTS, run);
            }
        }
    }

    /// BatchNorm + ReLU + concatenation with the skip.
    #[test]
    fn batch_norm_relu_cat_matches_cpu() {
        let mut rng = ChaCha8Rng::seed_from_u64(61);
        for (dims, cs) in [
            ([4usize, 3, 5, 7], 3),
            ([3, 64, 2, 2], 64),
            ([2, 64, 128, 128], 64),
        ] {
            let [x, w, b, skip, up] = bn_relu_cat_case(&mut rng, dims, cs).unwrap();
            let run = |fused, dev: &Device| bn_relu_cat_run([&x, &w, &b, &skip], &up, fused, dev);
            fused_matches_on_gpu(&format!("{dims:?}"), &BN_CAT_OUTPUTS, run);
        }
    }

    /// LeakyReLU inside the cuDNN convolution (in place after the bias; at f32).
    #[test]
    fn conv2d_leaky_relu_matches_cpu() {
        let mut rng = ChaCha8Rng::seed_from_u64(57);
        for (x_dims, w_dims, stride) in [
            ([4usize, 1, 64, 64], [16usize, 1, 4, 4], 2),
            ([4, 3, 64, 64], [16, 3, 4, 4], 2),
        ] {
            let [x, w, b, up] = conv_leaky_case(&mut rng, x_dims, w_dims, stride).unwrap();
            let run = |fused, dev: &Device| {
                conv_leaky_run([&x, &w, &b], &up, (stride, 1), 0.2, fused, dev)
            };
            fused_matches_on_gpu(&format!("{x_dims:?}"), &CONV_OUTPUTS, run);
        }
    }

    /// Adam in place on the GPU: the kernels do the CPU loops' f32 operations in the same
    /// order (fused.cu is compiled without multiply-add contraction), so three steps give
    /// bit-identical moments and weights.
    #[test]
    fn adam_inplace_is_bit_identical_to_cpu() {
        use dgcolor_kernels::{adam_inplace, AdamCoeffs};
        let mut rng = ChaCha8Rng::seed_from_u64(43);
        let n = 100_003;
        let p0 = randn(&mut rng, &[n]).unwrap();
        let grads: Vec<Tensor> = (0..3).map(|_| randn(&mut rng, &[n]).unwrap()).collect();
        let run = |dev: &Device| -> Result<Vec<Vec<u32>>> {
            // (a copy: on the CPU `to_device` would share p0's storage, updated in place)
            let p = p0.to_device(dev)?.copy()?;
            let (m, v) = (p.zeros_like()?, p.zeros_like()?);
            for (t, g) in (1..).zip(&grads) {
                let c = AdamCoeffs {
                    beta1: 0.5,
                    beta2: 0.999,
                    eps: 1e-8,
                    step_size: 1e-3 / (1.0 - f64::powi(0.5, t)),
                    bias2: 1.0 - f64::powi(0.999, t),
                };
                assert!(
                    adam_inplace(&p, &m, &v, &g.to_device(dev)?, c)?,
                    "fused path not taken on {dev:?}"
                );
            }
            [m, v, p]
                .iter()
                .map(|t| Ok(t.to_vec1::<f32>()?.iter().map(|x| x.to_bits()).collect()))
                .collect()
        };
        let (cpu, gpu) = (run(&Device::Cpu).unwrap(), run(&gpu()).unwrap());
        for (name, (a, r)) in ["first moment", "second moment", "parameters"]
            .iter()
            .zip(gpu.iter().zip(&cpu))
        {
            let differ = a.iter().zip(r).filter(|(a, r)| a != r).count();
            assert_eq!(
                differ, 0,
                "{name}: {differ} of {n} values differ from the CPU's"
            );
        }
    }
}

#[test]
fn batch_norm_matches_candle() -> Result<()> {
    use dgcolor_kernels::{batch_norm_train, batch_norm_train_reference};
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    for dims in [
        [4usize, 3, 5, 7],
        [1, 8, 3, 3],
        [16, 32, 16, 16],
        [3, 5, 1, 1], // (two values per channel make the input gradient exactly 0)
        [3, 64, 2, 2],
    ] {
        // An offset mean, as real activations have, so centring matters.
        let x = Var::from_tensor(&randn(&mut rng, &dims)?.affine(3.0, 1.5)?)?;
        let w = Var::from_tensor(&randn(&mut rng, &[dims[1]])?)?;
        let b = Var::from_tensor(&randn(&mut rng, &[dims[1]])?)?;
        let up = randn(&mut rng, &dims)?;
        let (y, mean, var) = batch_norm_train(&x, &w, &b, 1e-5)?;
        let (y_ref, mean_ref, var_ref) = batch_norm_train_reference(&x, &w, &b, 1e-5)?;
        for (name, a, r) in [
            ("output", &y, &y_ref),
            ("mean", &mean, &mean_ref),
            ("var", &var, &var_ref),
        ] {
            let e = rel_err(a, r)?;
            assert!(e < TOL, "{dims:?} {name} rel err {e}");
        }
        let g = (&y * &up)?.sum_all()?.backward()?;
        let g_ref = (&y_ref * &up)?.sum_all()?.backward()?;
        for (name, v) in [("input", &x), ("weight", &w), ("bias", &b)] {
            let e = rel_err(g.get(v).unwrap(), g_ref.get(v).unwrap())?;
            assert!(e < TOL, "{dims:?} {name} gradient rel err {e}");
        }
    }
    Ok(())
}

/// `(output, mean, var, d input, d weight, d bias)` of BatchNorm + LeakyReLU on `(x, w, b)`
/// with upstream gradient `up`: as one op (`fused`) or as `batch_norm_train` then
/// `leaky_relu`.
fn bn_leaky_run(
    xwb: [&Tensor; 3],
    up: &Tensor,
    slope: f64,
    fused: bool,
    dev: &Device,
) -> Result<Vec<Tensor>> {
    use dgcolor_kernels::{batch_norm_leaky_relu_train, batch_norm_train, leaky_relu};
    outputs_and_grads(xwb, up, dev, |[x, w, b]| {
        let (y, mean, var) = if fused {
            batch_norm_leaky_relu_train(x, w, b, 1e-5, slope)?
        } else {
            let (y, mean, var) = batch_norm_train(x, w, b, 1e-5)?;
            (leaky_relu(&y, slope)?, mean, var)
        };
        Ok(vec![y, mean, var])
    })
}

/// `(x, weight, bias, up)` for a BatchNorm of `dims`: an offset mean, weights of both signs
/// and biases that put about half of each channel below 0.
fn bn_leaky_case(rng: &mut ChaCha8Rng, dims: [usize; 4]) -> Result<[Tensor; 4]> {
    let x = randn(rng, &dims)?.affine(3.0, 1.5)?;
    let w = randn(rng, &[dims[1]])?;
    let b = (randn(rng, &[dims[1]])? * 0.3)?;
    Ok([x, w, b, randn(rng, &dims)?])
}

const CONV_OUTPUTS: [&str; 4] = ["output", "input grad", "weight grad", "bias grad"];

const BN_OUTPUTS: [&str; 6] = [
    "output",
    "mean",
    "var",
    "input grad",
    "weight grad",
    "bias grad",
];

/// BatchNorm + LeakyReLU as one op is the two ops in sequence bit for bit: output, batch
/// statistics and the input, weight and bias gradients (the backward recomputes the
/// pre-activation sign from the input and must pick the same side as the separate
/// activation's backward), for the encoders' slope 0.2 and for ReLU.
#[test]
fn batch_norm_leaky_relu_is_batch_norm_then_leaky_relu() -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(37);
    for dims in [
        [4usize, 3, 5, 7],
        [3, 5, 1, 1],
        [16, 32, 16, 16],
        [3, 64, 2, 2],
    ] {
        let [x, w, b, up] = bn_leaky_case(&mut rng, dims)?;
        for slope in [0.2, 0.0] {
            let case = format!("{dims:?} slope {slope}");
            let run = |fused| bn_leaky_run([&x, &w, &b], &up, slope, fused, &Device::Cpu);
            let out = fused_is_unfused(&case, &BN_OUTPUTS, run)?;
            if slope > 0.0 && dims.iter().product::<usize>() > 100 {
                both_signs(&case, &out[0])?;
            }
        }
    }
    Ok(())
}

/// `(output, mean, var, d input, d weight, d bias, d skip)` of relu(cat([BatchNorm(x),
/// skip], 1)) with upstream gradient `up`: as one op (`fused`) or as `batch_norm_train`
/// then `relu_cat`.
fn bn_relu_cat_run(
    xwbs: [&Tensor; 4],
    up: &Tensor,
    fused: bool,
    dev: &Device,
) -> Result<Vec<Tensor>> {
    use dgcolor_kernels::{batch_norm_relu_cat_train, batch_norm_train, relu_cat};
    outputs_and_grads(xwbs, up, dev, |[x, w, b, skip]| {
        let (y, mean, var) = if fused {
            batch_norm_relu_cat_train(x, w, b, 1e-5, skip)?
        } else {
            let (y, mean, var) = batch_norm_train(x, w, b, 1e-5)?;
            (relu_cat(&y, skip)?, mean, var)
        };
        Ok(vec![y, mean, var])
    })
}

const BN_CAT_OUTPUTS: [&str; 7] = [
    "output",
    "mean",
    "var",
    "input grad",
    "weight grad",
    "bias grad",
    "skip grad",
];

/// `(x, weight, bias, skip, up)` for an up block's output of `dims` and a skip of `cs`
/// channels.
fn bn_relu_cat_case(rng: &mut ChaCha8Rng, dims: [usize; 4], cs: usize) -> Result<[Tensor; 5]> {
    let [x, w, b, _] = bn_leaky_case(rng, dims)?;
    let skip = randn(rng, &[dims[0], cs, dims[2], dims[3]])?;
    let up = randn(rng, &[dims[0], dims[1] + cs, dims[2], dims[3]])?;
    Ok([x, w, b, skip, up])
}

/// BatchNorm + ReLU + concatenation with the skip as one op is `batch_norm_train` then
/// `relu_cat`, bit for bit: output, statistics and the gradients of input, weight, bias
/// and skip, on odd sizes, 1x1 planes and a skip of another width.
#[test]
fn batch_norm_relu_cat_is_batch_norm_then_relu_cat() -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(59);
    for (dims, cs) in [
        ([4usize, 3, 5, 7], 3),
        ([3, 5, 1, 1], 2),
        ([8, 16, 16, 16], 16),
    ] {
        let [x, w, b, skip, up] = bn_relu_cat_case(&mut rng, dims, cs)?;
        let case = format!("{dims:?}");
        let run = |fused| bn_relu_cat_run([&x, &w, &b, &skip], &up, fused, &Device::Cpu);
        let out = fused_is_unfused(&case, &BN_CAT_OUTPUTS, run)?;
        both_signs(&case, &out[0])?;
    }
    Ok(())
}

/// `(output, d input, d weight, d bias)` of LeakyReLU(conv2d) with upstream gradient `up`:
/// as one op (`fused`) or as `conv2d` then `leaky_relu`.
#[allow(clippy::too_many_arguments)]
fn conv_leaky_run(
    xwb: [&Tensor; 3],
    up: &Tensor,
    (stride, padding): (usize, usize),
    slope: f64,
    fused: bool,
    dev: &Device,
) -> Result<Vec<Tensor>> {
    use dgcolor_kernels::{conv2d_leaky_relu, leaky_relu};
    outputs_and_grads(xwb, up, dev, |[x, w, b]| {
        let b = Some(b.as_tensor());
        Ok(vec![if fused {
            conv2d_leaky_relu(x, w, b, stride, padding, slope)?
        } else {
            leaky_relu(&conv2d(x, w, b, stride, padding)?, slope)?
        }])
    })
}

/// `(x, weight, bias, up)` for a conv of `x_dims` by `w_dims` at `stride` (padding 1).
fn conv_leaky_case(
    rng: &mut ChaCha8Rng,
    x_dims: [usize; 4],
    w_dims: [usize; 4],
    stride: usize,
) -> Result<[Tensor; 4]> {
    let (x, w, b) = (
        randn(rng, &x_dims)?,
        randn(rng, &w_dims)?,
        (randn(rng, &[w_dims[0]])? * 0.1)?,
    );
    let out = |n: usize| (n + 2 - w_dims[2]) / stride + 1;
    let up = randn(rng, &[x_dims[0], w_dims[0], out(x_dims[2]), out(x_dims[3])])?;
    Ok([x, w, b, up])
}

/// LeakyReLU inside the training convolution is the convolution then the activation, bit
/// for bit: output and the input, weight and bias gradients (its backward masks with its
/// output), at the shapes of the U-Net's first level (1 channel, stride 2) and the
/// PatchGAN's first layer (3 channels), a stride-1 layer, and for ReLU.
#[test]
fn conv2d_leaky_relu_is_conv2d_then_leaky_relu() -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(53);
    for (x_dims, w_dims, stride) in [
        ([2usize, 1, 32, 32], [8usize, 1, 4, 4], 2),
        ([2, 3, 32, 32], [8, 3, 4, 4], 2),
        ([1, 5, 9, 7], [6, 5, 4, 4], 1),
    ] {
        let [x, w, b, up] = conv_leaky_case(&mut rng, x_dims, w_dims, stride)?;
        for slope in [0.2, 0.0] {
            let case = format!("{x_dims:?} slope {slope}");
            let run =
                |fused| conv_leaky_run([&x, &w, &b], &up, (stride, 1), slope, fused, &Device::Cpu);
            let out = fused_is_unfused(&case, &CONV_OUTPUTS, run)?;
            both_signs(&case, &out[0])?;
        }
    }
    Ok(())
}

#[test]
fn adam_inplace_is_bit_identical_to_candle_ops() -> Result<()> {
    use dgcolor_kernels::{adam_inplace, AdamCoeffs};
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    for n in [7usize, 100_003] {
        // (the second size takes the multi-threaded path)
        let p0 = randn(&mut rng, &[n])?;
        let (p, m, v) = (p0.copy()?, p0.zeros_like()?, p0.zeros_like()?);
        let (mut p_ref, mut m_ref, mut v_ref) = (p0.clone(), p0.zeros_like()?, p0.zeros_like()?);
        let (b1, b2, eps, lr) = (0.5, 0.999, 1e-8, 1e-3);
        for t in 1..=3 {
            let g = randn(&mut rng, &[n])?;
            let c = AdamCoeffs {
                beta1: b1,
                beta2: b2,
                eps,
                step_size: lr / (1.0 - f64::powi(b1, t)),
                bias2: 1.0 - f64::powi(b2, t),
            };
            assert!(adam_inplace(&p, &m, &v, &g, c)?, "fast path not taken");
            m_ref = ((&m_ref * b1)? + (&g * (1.0 - b1))?)?;
            v_ref = ((&v_ref * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let denom = ((v_ref.sqrt()? / c.bias2.sqrt())? + eps)?;
            p_ref = (&p_ref - ((&m_ref / denom)? * c.step_size)?)?;
        }
        assert_eq!(bits(&m)?, bits(&m_ref)?, "n {n}: first moment");
        assert_eq!(bits(&v)?, bits(&v_ref)?, "n {n}: second moment");
        assert_eq!(bits(&p)?, bits(&p_ref)?, "n {n}: parameters");
    }
    // A strided parameter is left alone for the caller's candle-ops path.
    let w = randn(&mut rng, &[4, 6])?.t()?;
    let z = w.zeros_like()?.contiguous()?;
    let c = AdamCoeffs {
        beta1: 0.5,
        beta2: 0.999,
        eps: 1e-8,
        step_size: 1e-3,
        bias2: 1e-3,
    };
    assert!(!adam_inplace(&w, &z, &z.copy()?, &z, c)?);
    Ok(())
}

#[test]
fn constant_input_still_gets_weight_and_bias_gradients() -> Result<()> {
    // The network's input records no graph, so the ops skip its gradient; the weight and
    // bias gradients must be unaffected.
    let mut rng = ChaCha8Rng::seed_from_u64(51);
    let x = randn(&mut rng, &[2, 3, 8, 8])?;
    let cases: [(Op, Op, [usize; 4], usize); 2] = [
        (conv2d, conv2d_reference, [5, 3, 4, 4], 5),
        (
            conv_transpose2d,
            conv_transpose2d_reference,
            [3, 4, 4, 4],
            4,
        ),
    ];
    for (fast, reference, wdims, nb) in cases {
        let w = Var::from_tensor(&randn(&mut rng, &wdims)?)?;
        let b = Var::from_tensor(&randn(&mut rng, &[nb])?)?;
        let g = fast(&x, &w, Some(&b), 2, 1)?.sqr()?.sum_all()?.backward()?;
        let g_ref = reference(&x, &w, Some(&b), 2, 1)?
            .sqr()?
            .sum_all()?
            .backward()?;
        assert!(g.get(&x).is_none());
        for v in [&w, &b] {
            assert!(rel_err(g.get(v).unwrap(), g_ref.get(v).unwrap())? < TOL);
        }
    }
    Ok(())
}
