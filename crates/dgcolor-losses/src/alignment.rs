//! Feature-alignment penalties of the DG baselines, in DomainBed's form
//! (`domainbed/algorithms.py`, class `AbstractMMD`): CORAL (Sun & Saenko, "Deep CORAL",
//! ECCV-W 2016) and Gaussian-kernel MMD (Li et al., "Domain Generalization with Adversarial
//! Feature Learning", CVPR 2018), plus the cross-entropy to the uniform distribution that
//! SagNet's adversarial term minimises.
//!
//! Features are `[N, K]` (one row per image). Penalties over several domains average the
//! pairwise penalty over every pair `i < j`, as DomainBed does.

use candle_core::{bail, DType, Result, Tensor, D};

/// DomainBed's kernel bandwidths `gamma` of `exp(-gamma * ||x - y||^2)`.
pub const MMD_GAMMAS: [f64; 7] = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0];

/// Squared Euclidean distances `[N, M]` between the rows of `x [N, K]` and `y [M, K]`,
/// computed as `|x|^2 + |y|^2 - 2 x.y` and clamped at 1e-30 like DomainBed's `my_cdist`.
pub fn squared_distances(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    check_features("squared_distances", x, y)?;
    let xx = x.sqr()?.sum_keepdim(1)?; // [N, 1]
    let yy = y.sqr()?.sum_keepdim(1)?.t()?; // [1, M]
    let xy = x.matmul(&y.t()?)?; // [N, M]
    xx.broadcast_add(&yy)?
        .sub(&(xy * 2.0)?)?
        .clamp(1e-30, f64::INFINITY)
}

/// `sum_g exp(-g * ||x_n - y_m||^2)`, `[N, M]`.
pub fn gaussian_kernel(x: &Tensor, y: &Tensor, gammas: &[f64]) -> Result<Tensor> {
    let d = squared_distances(x, y)?;
    let mut k = d.zeros_like()?;
    for &g in gammas {
        k = (k + (&d * -g)?.exp()?)?;
    }
    Ok(k)
}

/// Biased MMD^2 estimate `mean K(x, x) + mean K(y, y) - 2 mean K(x, y)` with the Gaussian
/// kernel sum over `gammas` (DomainBed's `mmd` with `kernel_type = "gaussian"`).
pub fn mmd(x: &Tensor, y: &Tensor, gammas: &[f64]) -> Result<Tensor> {
    let kxx = gaussian_kernel(x, x, gammas)?.mean_all()?;
    let kyy = gaussian_kernel(y, y, gammas)?.mean_all()?;
    let kxy = gaussian_kernel(x, y, gammas)?.mean_all()?;
    (kxx + kyy)? - (kxy * 2.0)?
}

/// Unbiased covariance `[K, K]` of the rows of `x [N, K]` (N >= 2) and their mean `[1, K]`.
pub fn mean_and_covariance(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let (n, _) = x.dims2()?;
    if n < 2 {
        bail!(
            "covariance: the unbiased covariance needs at least 2 rows, got {:?}",
            x.shape()
        )
    }
    let mean = x.mean_keepdim(0)?; // [1, K]
    let centred = x.broadcast_sub(&mean)?;
    let cov = (centred.t()?.matmul(&centred)? / (n - 1) as f64)?;
    Ok((mean, cov))
}

/// DomainBed's CORAL penalty `mean((mu_x - mu_y)^2) + mean((C_x - C_y)^2)`.
pub fn coral(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    check_features("coral", x, y)?;
    let (mx, cx) = mean_and_covariance(x)?;
    let (my, cy) = mean_and_covariance(y)?;
    let mean_diff = (mx - my)?.sqr()?.mean_all()?;
    let cova_diff = (cx - cy)?.sqr()?.mean_all()?;
    mean_diff + cova_diff
}

/// Mean of `penalty(f_i, f_j)` over every pair `i < j` of per-domain features; 0 when there
/// are fewer than two domains.
pub fn pairwise_mean(
    features: &[Tensor],
    penalty: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let Some(first) = features.first() else {
        bail!("pairwise_mean: no features")
    };
    let mut total = Tensor::zeros((), DType::F32, first.device())?;
    let mut pairs = 0usize;
    for i in 0..features.len() {
        for j in i + 1..features.len() {
            total = (total + penalty(&features[i], &features[j])?.to_dtype(DType::F32)?)?;
            pairs += 1;
        }
    }
    if pairs == 0 {
        return Ok(total);
    }
    total / pairs as f64
}

/// Cross-entropy of logits `[B, C]` against the uniform distribution,
/// `-mean_b mean_c log_softmax(logits)_{b,c}`: SagNet's adversarial loss, smallest when the
/// head cannot prefer any class.
pub fn uniform_cross_entropy(logits: &Tensor) -> Result<Tensor> {
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    log_p.mean_all()?.neg()
}

fn check_features(op: &str, x: &Tensor, y: &Tensor) -> Result<()> {
    let (_, kx) = x.dims2()?;
    let (_, ky) = y.dims2()?;
    if kx != ky {
        bail!(
            "{op}: features {:?} and {:?} differ in width",
            x.shape(),
            y.shape()
        )
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t<const N: usize>(rows: &[[f32; 2]; N]) -> Tensor {
        Tensor::new(rows, &Device::Cpu).unwrap()
    }

    fn value(t: &Tensor) -> f64 {
        t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
    }

    #[test]
    fn identical_domains_have_no_penalty() -> Result<()> {
        let x = t(&[[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]]);
        assert!(value(&coral(&x, &x)?).abs() < 1e-9);
        assert!(value(&mmd(&x, &x, &MMD_GAMMAS)?).abs() < 1e-5);
        let p = pairwise_mean(&[x.clone(), x.clone(), x], coral)?;
        assert!(value(&p).abs() < 1e-9);
        Ok(())
    }

    #[test]
    fn coral_matches_hand_computation() -> Result<()> {
        // x = [[0, 0], [2, 0]]: mean (1, 0); centred rows (-1, 0), (1, 0);
        //   C_x = [[2, 0], [0, 0]] / (2 - 1) = [[2, 0], [0, 0]].
        // y = [[0, 1], [0, 3]]: mean (0, 2); centred (0, -1), (0, 1); C_y = [[0, 0], [0, 2]].
        // mean((mu_x - mu_y)^2) = (1 + 4) / 2 = 2.5
        // mean((C_x - C_y)^2)  = (4 + 0 + 0 + 4) / 4 = 2
        let x = t(&[[0.0, 0.0], [2.0, 0.0]]);
        let y = t(&[[0.0, 1.0], [0.0, 3.0]]);
        assert!((value(&coral(&x, &y)?) - 4.5).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn mmd_matches_hand_computation() -> Result<()> {
        // One point per domain, x = (0, 0), y = (1, 0), so ||x - y||^2 = 1 and
        // K(x,x) = K(y,y) = sum_g exp(0) = 7, K(x,y) = sum_g exp(-g).
        // MMD = 7 + 7 - 2 * sum_g exp(-g).
        let x = t(&[[0.0, 0.0]]);
        let y = t(&[[1.0, 0.0]]);
        let expected = 14.0 - 2.0 * MMD_GAMMAS.iter().map(|g| (-g).exp()).sum::<f64>();
        assert!((value(&mmd(&x, &y, &MMD_GAMMAS)?) - expected).abs() < 1e-5);
        // Two points each, gamma 1 only: x = {0, 1}, y = {0, 2} on a line.
        //   Kxx = [[1, e^-1], [e^-1, 1]]          mean (2 + 2e^-1) / 4
        //   Kyy = [[1, e^-4], [e^-4, 1]]          mean (2 + 2e^-4) / 4
        //   Kxy = [[1, e^-4], [e^-1, e^-1]]       mean (1 + e^-4 + 2e^-1) / 4
        //   MMD = (2 + 2e^-1 + 2 + 2e^-4 - 2 - 2e^-4 - 4e^-1) / 4 = (2 - 2e^-1) / 4
        let x = t(&[[0.0, 0.0], [1.0, 0.0]]);
        let y = t(&[[0.0, 0.0], [2.0, 0.0]]);
        let e1 = (-1f64).exp();
        assert!((value(&mmd(&x, &y, &[1.0])?) - (2.0 - 2.0 * e1) / 4.0).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn pairwise_mean_averages_over_pairs() -> Result<()> {
        // Three domains, penalty = squared distance of the first rows' first entries:
        // pairs (0,1): 1, (0,2): 4, (1,2): 1 -> mean 2.
        let f = [t(&[[0.0, 0.0]]), t(&[[1.0, 0.0]]), t(&[[2.0, 0.0]])];
        let p = pairwise_mean(&f, |a, b| (a - b)?.sqr()?.sum_all())?;
        assert!((value(&p) - 2.0).abs() < 1e-6);
        assert_eq!(value(&pairwise_mean(&f[..1], coral)?), 0.0);
        Ok(())
    }

    #[test]
    fn uniform_cross_entropy_is_log_c_at_uniform_logits() -> Result<()> {
        let logits = Tensor::zeros((2, 4), DType::F32, &Device::Cpu)?;
        assert!((value(&uniform_cross_entropy(&logits)?) - 4f64.ln()).abs() < 1e-6);
        Ok(())
    }
}
