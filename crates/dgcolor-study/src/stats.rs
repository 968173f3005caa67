//! The statistics of the study report, each written out here and tested against scipy /
//! statsmodels (`tests/stats_reference.py` prints the reference values that
//! `tests/stats.rs` holds):
//!
//! - [`wilson`]: the Wilson score interval of a proportion (statsmodels
//!   `proportion_confint(method="wilson")`);
//! - [`bootstrap_ratio`]: a percentile bootstrap of a ratio of sums over clusters
//!   (participants), as `scipy.stats.bootstrap(paired=True, method="percentile")` computes it;
//! - [`bradley_terry`]: maximum-likelihood Bradley–Terry strengths with standard errors
//!   (a binomial GLM on the pairs, statsmodels `GLM(family=Binomial())`);
//! - [`fleiss_kappa`]: Fleiss' kappa, generalised to items with different numbers of ratings
//!   (statsmodels `fleiss_kappa` where every item has the same number);
//! - [`binomial_test_half`] and [`holm`]: the exact two-sided sign test
//!   (`scipy.stats.binomtest(k, n, 0.5)`) and Holm's step-down adjustment (statsmodels
//!   `multipletests(method="holm")`).

// Small dense matrices (methods x methods) read best with explicit indices.
#![allow(clippy::needless_range_loop)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The standard normal quantile at 0.975: two-sided 95% intervals.
pub const Z95: f64 = 1.959_963_984_540_054;

/// The Wilson score 95% interval of `successes` out of `trials`; `None` without trials.
pub fn wilson(successes: u64, trials: u64) -> Option<(f64, f64)> {
    if trials == 0 || successes > trials {
        return None;
    }
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    Some(((center - half).max(0.0), (center + half).min(1.0)))
}

/// The `q`-th percentile (0..=100) of sorted values with linear interpolation between the
/// two nearest ranks (numpy's default, which `scipy.stats.bootstrap` uses).
pub fn percentile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

/// Median (the 50th percentile as above); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    percentile_sorted(&v, 50.0)
}

/// Percentile-bootstrap 95% interval of `Σ num / Σ den` with clusters (one `(num, den)`
/// per participant) resampled with replacement: answers of one participant are not
/// independent, so the participant is the unit that is resampled. Resamples whose
/// denominator is 0 are dropped. `None` without clusters or with a zero denominator.
pub fn bootstrap_ratio(clusters: &[(f64, f64)], resamples: usize, seed: u64) -> Option<(f64, f64)> {
    let n = clusters.len();
    if n == 0 || clusters.iter().map(|c| c.1).sum::<f64>() <= 0.0 || resamples == 0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stats = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let (mut num, mut den) = (0.0, 0.0);
        for _ in 0..n {
            let (a, b) = clusters[rng.random_range(0..n)];
            num += a;
            den += b;
        }
        if den > 0.0 {
            stats.push(num / den);
        }
    }
    stats.sort_by(f64::total_cmp);
    Some((
        percentile_sorted(&stats, 2.5)?,
        percentile_sorted(&stats, 97.5)?,
    ))
}

/// A Bradley–Terry fit: `P(i beats j) = 1 / (1 + exp(-(b_i - b_j)))`.
#[derive(Clone, Debug, PartialEq)]
pub struct BradleyTerryFit {
    /// Log-strengths `b_i`, with `b_reference = 0`.
    pub log_strength: Vec<f64>,
    /// Standard errors of `b_i` (inverse Fisher information; 0 for the reference).
    pub se: Vec<f64>,
    pub reference: usize,
    /// The maximum-likelihood estimate does not exist for these wins (some method never
    /// lost or never won against the rest: Ford's condition fails), so half a win was
    /// added each way to every compared pair before fitting.
    pub regularized: bool,
    pub iterations: usize,
}

impl BradleyTerryFit {
    /// Strengths normalised to sum to 1: `exp(b_i) / Σ exp(b_j)`.
    pub fn shares(&self) -> Vec<f64> {
        let m = self
            .log_strength
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = self.log_strength.iter().map(|b| (b - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|x| x / s).collect()
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Whether every node reaches every other along `edge(i, j)`.
fn strongly_connected(m: usize, edge: impl Fn(usize, usize) -> bool) -> bool {
    let reach_all = |forward: bool| {
        let mut seen = vec![false; m];
        let mut stack = vec![0];
        seen[0] = true;
        while let Some(i) = stack.pop() {
            for j in 0..m {
                let e = if forward { edge(i, j) } else { edge(j, i) };
                if i != j && e && !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        seen.into_iter().all(|s| s)
    };
    m == 0 || (reach_all(true) && reach_all(false))
}

/// Solves `a x = b` (a small dense symmetric positive-definite system) by Gaussian
/// elimination with partial pivoting; `None` when singular.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let piv = (col..n).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[piv][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, piv);
        b.swap(col, piv);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            if f != 0.0 {
                for k in col..n {
                    a[row][k] -= f * a[col][k];
                }
                b[row] -= f * b[col];
            }
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

/// Maximum-likelihood Bradley–Terry log-strengths from `wins[i][j]` (times `i` beat `j`),
/// `reference` fixed at 0, by Newton's method on the concave log-likelihood, with
/// standard errors from the inverse Fisher information. When the estimate does not exist
/// (the directed "beat" graph is not strongly connected), half a win is added each way to
/// every compared pair and [`BradleyTerryFit::regularized`] says so. `None` when fewer
/// than two methods, or some method was never compared with the others (disconnected).
pub fn bradley_terry(wins: &[Vec<f64>], reference: usize) -> Option<BradleyTerryFit> {
    let m = wins.len();
    if m < 2 || reference >= m || wins.iter().any(|r| r.len() != m) {
        return None;
    }
    let n = |w: &[Vec<f64>], i: usize, j: usize| w[i][j] + w[j][i];
    if !strongly_connected(m, |i, j| n(wins, i, j) > 0.0) {
        return None;
    }
    let mut w: Vec<Vec<f64>> = wins.to_vec();
    let regularized = !strongly_connected(m, |i, j| wins[i][j] > 0.0);
    if regularized {
        for i in 0..m {
            for j in 0..m {
                if i != j && n(wins, i, j) > 0.0 {
                    w[i][j] += 0.5;
                }
            }
        }
    }
    // Free parameters: every index but the reference.
    let free: Vec<usize> = (0..m).filter(|&i| i != reference).collect();
    let loglik = |b: &[f64]| -> f64 {
        let mut l = 0.0;
        for i in 0..m {
            for j in 0..m {
                if i != j && w[i][j] > 0.0 {
                    // w_ij * log sigma(b_i - b_j), computed stably.
                    let d = b[i] - b[j];
                    l -= w[i][j]
                        * (if d > 0.0 {
                            (-d).exp().ln_1p()
                        } else {
                            -d + d.exp().ln_1p()
                        });
                }
            }
        }
        l
    };
    let mut b = vec![0.0; m];
    let mut iterations = 0;
    let info = |b: &[f64]| -> (Vec<f64>, Vec<Vec<f64>>) {
        // Gradient and Fisher information (minus the Hessian) over the free parameters.
        let k = free.len();
        let mut g = vec![0.0; k];
        let mut h = vec![vec![0.0; k]; k];
        let pos: Vec<Option<usize>> = (0..m).map(|i| free.iter().position(|&f| f == i)).collect();
        for i in 0..m {
            for j in i + 1..m {
                let nij = n(&w, i, j);
                if nij == 0.0 {
                    continue;
                }
                let p = sigmoid(b[i] - b[j]);
                let v = nij * p * (1.0 - p);
                let r = w[i][j] - nij * p; // d loglik / d b_i
                if let Some(a) = pos[i] {
                    g[a] += r;
                    h[a][a] += v;
                }
                if let Some(c) = pos[j] {
                    g[c] -= r;
                    h[c][c] += v;
                }
                if let (Some(a), Some(c)) = (pos[i], pos[j]) {
                    h[a][c] -= v;
                    h[c][a] -= v;
                }
            }
        }
        (g, h)
    };
    for _ in 0..200 {
        iterations += 1;
        let (g, h) = info(&b);
        let step = solve(h, g)?;
        let before = loglik(&b);
        let mut t = 1.0;
        let mut next = b.clone();
        loop {
            for (s, &f) in step.iter().zip(&free) {
                next[f] = b[f] + t * s;
            }
            if loglik(&next) >= before - 1e-12 || t < 1e-8 {
                break;
            }
            t *= 0.5;
        }
        let moved = step.iter().map(|s| (t * s).abs()).fold(0.0, f64::max);
        b = next;
        if moved < 1e-12 {
            break;
        }
    }
    let (_, h) = info(&b);
    let k = free.len();
    let mut se = vec![0.0; m];
    for (a, &f) in free.iter().enumerate() {
        let mut e = vec![0.0; k];
        e[a] = 1.0;
        let col = solve(h.clone(), e)?;
        se[f] = col[a].max(0.0).sqrt();
    }
    Some(BradleyTerryFit {
        log_strength: b,
        se,
        reference,
        regularized,
        iterations,
    })
}

/// Fleiss' kappa of `counts[item][category]` (how many raters put the item in the
/// category). Items with fewer than two ratings carry no agreement and are left out; items
/// may have different numbers of ratings (the per-item agreement uses the item's own count,
/// the category shares pool all ratings), which is Fleiss' kappa when every item has the
/// same number. `None` with no usable item or when every rating is in one category.
pub fn fleiss_kappa(counts: &[Vec<u64>]) -> Option<FleissKappa> {
    let rows: Vec<&Vec<u64>> = counts
        .iter()
        .filter(|r| r.iter().sum::<u64>() >= 2)
        .collect();
    let k = rows.first()?.len();
    if rows.iter().any(|r| r.len() != k) {
        return None;
    }
    let total: f64 = rows.iter().flat_map(|r| r.iter()).map(|&x| x as f64).sum();
    let mut p_bar = 0.0;
    for r in &rows {
        let ni: f64 = r.iter().map(|&x| x as f64).sum();
        let agree: f64 = r.iter().map(|&x| (x as f64) * (x as f64 - 1.0)).sum();
        p_bar += agree / (ni * (ni - 1.0));
    }
    p_bar /= rows.len() as f64;
    let p_e: f64 = (0..k)
        .map(|j| {
            let pj = rows.iter().map(|r| r[j] as f64).sum::<f64>() / total;
            pj * pj
        })
        .sum();
    if (1.0 - p_e).abs() < 1e-15 {
        return None;
    }
    Some(FleissKappa {
        kappa: (p_bar - p_e) / (1.0 - p_e),
        items: rows.len(),
        ratings: total as u64,
        observed: p_bar,
        expected: p_e,
    })
}

/// What [`fleiss_kappa`] returns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FleissKappa {
    pub kappa: f64,
    /// Items with at least two ratings.
    pub items: usize,
    pub ratings: u64,
    /// Mean observed agreement (P-bar) and agreement expected by chance (P_e).
    pub observed: f64,
    pub expected: f64,
}

/// The exact two-sided binomial test of `k` successes in `n` trials against p = 1/2: the
/// probability of an outcome at most as likely as `k` (scipy's `binomtest`). 1 when `n`
/// is 0.
pub fn binomial_test_half(k: u64, n: u64) -> f64 {
    if n == 0 || 2 * k == n {
        return 1.0;
    }
    let m = k.min(n - k);
    // log C(n, i) - n log 2 for i = 0..=m, summed relative to the largest term (i = m).
    let mut log_c = 0.0;
    let mut logs = Vec::with_capacity(m as usize + 1);
    for i in 0..=m {
        if i > 0 {
            log_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        logs.push(log_c - n as f64 * std::f64::consts::LN_2);
    }
    let top = logs[m as usize];
    let tail = top.exp() * logs.iter().map(|l| (l - top).exp()).sum::<f64>();
    (2.0 * tail).min(1.0)
}

/// Holm's step-down adjustment of p-values (same order as given).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        let adj = ((m - rank) as f64 * p[i]).min(1.0);
        running = running.max(adj);
        out[i] = running;
    }
    out
}
