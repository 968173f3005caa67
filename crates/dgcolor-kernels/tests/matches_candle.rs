//! The custom ops against candle's own `conv2d` / `conv_transpose2d` (+ bias): outputs and
//! all three gradients within 1e-4 relative, on random shapes with odd sizes, batch 1,
//! stride 1 and 2, and a 1x1 input as at the U-Net bottleneck.

use candle_core::{Device, Result, Tensor, Var};
use dgcolor_kernels::{conv2d, conv2d_reference, conv_transpose2d, conv_transpose2d_reference};
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

type Op = fn(&Tensor, &Tensor, Option<&Tensor>, usize, usize) -> Result<Tensor>;

/// Runs `fast` and `reference` on the same operands with a random upstream gradient and
/// compares the output and the gradients of input, weight and bias.
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
    assert!(e < TOL, "{case}: output rel err {e}");
    for (name, v) in [("input", &x), ("weight", &w), ("bias", &b)] {
        let a = g
            .get(v)
            .unwrap_or_else(|| panic!("{case}: no {name} gradient"));
        let r = g_ref.get(v).expect("reference gradient");
        let e = rel_err(a, r)?;
        assert!(e < TOL, "{case}: {name} gradient rel err {e}");
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
        ([1, 3, 3, 3], [2, 4, 4], 1, 1),
        ([5, 4, 2, 2], [3, 4, 4], 2, 1), // 2x2 -> 1x1, the bottleneck
        ([2, 3, 10, 10], [4, 3, 5], 2, 2),
    ];
    for (i, &(x, [m, kh, kw], s, p)) in cases.iter().enumerate() {
        let case = format!("conv2d {x:?} w [{m}, {}, {kh}, {kw}] s {s} p {p}", x[1]);
        check(
            &case,
            conv2d,
            conv2d_reference,
            &x,
            &[m, x[1], kh, kw],
            m,
            s,
            p,
            i as u64,
        )?;
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
        ([2, 6, 16, 17], [3, 4, 4], 2, 1), // per-image path
        ([2, 3, 6, 6], [5, 4, 4], 1, 0),
        ([1, 2, 9, 5], [2, 4, 4], 2, 1),
    ];
    for (i, &(x, [c, kh, kw], s, p)) in cases.iter().enumerate() {
        let case = format!(
            "conv_transpose2d {x:?} w [{}, {c}, {kh}, {kw}] s {s} p {p}",
            x[1]
        );
        check(
            &case,
            conv_transpose2d,
            conv_transpose2d_reference,
            &x,
            &[x[1], c, kh, kw],
            c,
            s,
            p,
            100 + i as u64,
        )?;
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
