//! The statistics of the comparison tables: a paired bootstrap confidence interval of a mean
//! difference, the Wilcoxon signed-rank test, and Holm's correction for several comparisons.
//! Tested against scipy / statsmodels (`tests/stats/make_reference.py`).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Mean of `d` with a percentile bootstrap confidence interval at `level` (0.95): `resamples`
/// resamples of the pairs with replacement from a ChaCha stream seeded by `seed`; quantiles
/// interpolated linearly between order statistics (numpy's default).
pub fn bootstrap_mean_ci(d: &[f64], level: f64, resamples: usize, seed: u64) -> (f64, f64, f64) {
    let n = d.len();
    let mean = d.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, mean, mean);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| d[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    (mean, quantile(&means, tail), quantile(&means, 1.0 - tail))
}

/// The `q` quantile of sorted values, linear between order statistics.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
    if lo + 1 >= sorted.len() {
        return sorted[sorted.len() - 1];
    }
    sorted[lo] + (sorted[lo + 1] - sorted[lo]) * frac
}

/// The result of [`wilcoxon`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Wilcoxon {
    /// min(W+, W-), scipy's two-sided statistic.
    pub statistic: f64,
    /// Two-sided p-value.
    pub pvalue: f64,
    /// Non-zero differences the test used.
    pub n: usize,
}

/// The two-sided Wilcoxon signed-rank test of `d` (paired differences) against a median of
/// zero. Zero differences are dropped (scipy's `zero_method="wilcox"`), tied magnitudes get
/// their mean rank. With neither ties nor zeros and at most 50 differences the p-value comes
/// from the exact null distribution of W+; otherwise from the normal approximation with the
/// tie correction of the variance and no continuity correction (scipy's defaults). scipy 1.17's
/// `"auto"` differs in two corners: without ties it stays exact at any n (where the two agree
/// closely), and with ties at n <= 13 it runs a permutation test.
pub fn wilcoxon(d: &[f64]) -> Wilcoxon {
    let mut nz: Vec<f64> = d.iter().copied().filter(|&x| x != 0.0).collect();
    let had_zeros = nz.len() < d.len();
    let n = nz.len();
    if n == 0 {
        return Wilcoxon {
            statistic: 0.0,
            pvalue: 1.0,
            n: 0,
        };
    }
    nz.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    // Mean ranks of tied magnitudes; tie group sizes for the variance correction.
    let mut ranks = vec![0.0; n];
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && nz[j + 1].abs() == nz[i].abs() {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        ranks[i..=j].iter_mut().for_each(|r| *r = rank);
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    let w_plus: f64 = nz
        .iter()
        .zip(&ranks)
        .filter(|(x, _)| **x > 0.0)
        .map(|(_, r)| r)
        .sum();
    let total = (n * (n + 1)) as f64 / 2.0;
    let w_minus = total - w_plus;
    let statistic = w_plus.min(w_minus);
    let pvalue = if tie_term == 0.0 && !had_zeros && n <= 50 {
        exact_two_sided(n, w_plus as u64)
    } else {
        let nf = n as f64;
        let mean = nf * (nf + 1.0) / 4.0;
        let var = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - tie_term / 48.0;
        let z = (w_plus - mean) / var.sqrt();
        (2.0 * normal_sf(z.abs())).min(1.0)
    };
    Wilcoxon {
        statistic,
        pvalue,
        n,
    }
}

/// `2 min(P(W+ <= w), P(W+ >= w))` under the exact null distribution of W+ for `n` ranks.
fn exact_two_sided(n: usize, w: u64) -> f64 {
    let max = n * (n + 1) / 2;
    // counts[s]: subsets of {1..n} with rank sum s (f64: 2^50 fits exactly).
    let mut counts = vec![0.0f64; max + 1];
    counts[0] = 1.0;
    for k in 1..=n {
        for s in (k..=max).rev() {
            counts[s] += counts[s - k];
        }
    }
    let all = 2f64.powi(n as i32);
    let w = w as usize;
    let cdf: f64 = counts[..=w].iter().sum::<f64>() / all;
    let sf: f64 = counts[w..].iter().sum::<f64>() / all;
    (2.0 * cdf.min(sf)).min(1.0)
}

/// The standard normal survival function, `erfc(z / sqrt 2) / 2` (musl's erfc via `libm`).
fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// Holm's step-down adjustment of p-values (statsmodels' `multipletests(method="holm")`):
/// sorted ascending, the i-th (0-based) is multiplied by `m - i`, made monotone, capped at 1;
/// returned in the input order.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (i, &k) in order.iter().enumerate() {
        running = running.max(((m - i) as f64 * p[k]).min(1.0));
        adjusted[k] = running;
    }
    adjusted
}
