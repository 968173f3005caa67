"""Reference values for crates/dgcolor-study/tests/stats.rs, computed with scipy and statsmodels.

Run: python3 crates/dgcolor-study/tests/stats_reference.py
(generated with scipy 1.17.1, statsmodels 0.15.0, numpy 2.x; the tests do not need Python).
Every data set here is written out literally in stats.rs as well.
"""

import numpy as np
import scipy.stats
import statsmodels.api as sm
from statsmodels.stats.inter_rater import fleiss_kappa
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

np.set_printoptions(precision=17)

print("# Wilson 95% intervals: (successes, trials) -> (low, high)")
for k, n in [(0, 10), (1, 10), (5, 10), (10, 10), (37, 120), (3, 7), (999, 1000)]:
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    print(f"({k}, {n}, {lo!r}, {hi!r}),")

print("\n# Percentile bootstrap of sum(wins) / sum(shown), participants resampled")
wins = np.array([3, 5, 2, 6, 4, 4, 1, 5, 3, 2, 6, 5, 4, 3, 2, 5, 4, 6, 3, 1, 4, 5, 2, 3, 4])
shown = np.array([8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8])
res = scipy.stats.bootstrap(
    (wins, shown),
    lambda w, s: w.sum() / s.sum(),
    paired=True,
    vectorized=False,
    n_resamples=200_000,
    method="percentile",
    confidence_level=0.95,
    random_state=np.random.default_rng(0),
)
print("point", wins.sum() / shown.sum())
print("ci", float(res.confidence_interval.low), float(res.confidence_interval.high))
wins2 = np.array([1, 0, 2, 1, 3, 0, 1, 2, 0, 1])
shown2 = np.array([3, 2, 4, 3, 5, 2, 3, 4, 1, 3])
res2 = scipy.stats.bootstrap(
    (wins2, shown2),
    lambda w, s: w.sum() / s.sum(),
    paired=True,
    vectorized=False,
    n_resamples=200_000,
    method="percentile",
    random_state=np.random.default_rng(1),
)
print("unequal ci", float(res2.confidence_interval.low), float(res2.confidence_interval.high))


def bradley_terry(W, ref=0):
    m = len(W)
    rows, endog = [], []
    for i in range(m):
        for j in range(i + 1, m):
            if W[i][j] + W[j][i] == 0:
                continue
            x = np.zeros(m)
            x[i], x[j] = 1.0, -1.0
            rows.append(np.delete(x, ref))
            endog.append([W[i][j], W[j][i]])
    fit = sm.GLM(np.array(endog, float), np.array(rows), family=sm.families.Binomial()).fit(tol=1e-14)
    return np.insert(fit.params, ref, 0.0), np.insert(fit.bse, ref, 0.0)


print("\n# Bradley-Terry (binomial GLM on the pairs): log-strengths and standard errors")
W4 = [[0, 12, 9, 15], [8, 0, 7, 11], [11, 13, 0, 14], [5, 9, 6, 0]]
b, se = bradley_terry(W4)
print("W4 b", [float(x) for x in b])
print("W4 se", [float(x) for x in se])
W3 = [[0, 30, 4], [10, 0, 2], [16, 18, 0]]
b, se = bradley_terry(W3, ref=1)
print("W3 (ref 1) b", [float(x) for x in b])
print("W3 (ref 1) se", [float(x) for x in se])
# Ford's condition fails here (method 0 never loses); the regularized fit adds half a win
# each way to every compared pair.
W_bad = [[0, 5, 3], [0, 0, 4], [0, 2, 0]]
W_reg = [[0, 5.5, 3.5], [0.5, 0, 4.5], [0.5, 2.5, 0]]
b, se = bradley_terry(W_reg)
print("W_bad regularized b", [float(x) for x in b])
print("W_bad regularized se", [float(x) for x in se])

print("\n# Fleiss' kappa")
T = np.array(
    [
        [5, 0],
        [4, 1],
        [3, 2],
        [5, 0],
        [1, 4],
        [0, 5],
        [2, 3],
        [4, 1],
        [5, 0],
        [3, 2],
    ]
)
print("equal yes/no", float(fleiss_kappa(T)))
T3 = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
               [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
print("Fleiss 1971 table", float(fleiss_kappa(T3)))


def kappa_unequal(counts):
    counts = np.array([r for r in counts if sum(r) >= 2], float)
    n = counts.sum(1)
    p_i = (counts * (counts - 1)).sum(1) / (n * (n - 1))
    p_j = counts.sum(0) / counts.sum()
    pe = (p_j**2).sum()
    return (p_i.mean() - pe) / (1 - pe)


U = [[3, 1], [2, 0], [0, 4], [1, 1], [5, 2], [1, 0], [2, 3]]
print("unequal (numpy formula)", float(kappa_unequal(U)))

print("\n# Exact two-sided binomial tests against 1/2: (k, n) -> p")
for k, n in [(3, 20), (10, 20), (0, 5), (15, 18), (47, 120), (480, 1000), (2, 1000), (7, 9)]:
    print(f"({k}, {n}, {float(scipy.stats.binomtest(k, n, 0.5).pvalue)!r}),")

print("\n# Holm")
p = [0.01, 0.04, 0.03, 0.005, 0.5, 0.04]
print([float(x) for x in multipletests(p, method="holm")[1]])
