"""Reference values for crates/dgcolor-report/tests/stats.rs (scipy / statsmodels).

Run: python3 crates/dgcolor-report/tests/stats/make_reference.py > crates/dgcolor-report/tests/stats/reference.json
Generated with scipy 1.17.1, statsmodels 0.15.0, numpy 2.4.
"""
import json

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

cases = {
    # Small, no ties, no zeros: scipy's exact distribution.
    "exact_small": [0.7, -1.3, 2.1, 0.4, -0.2, 1.9, 0.8, 1.1, -0.6, 2.5],
    "exact_one_sided_looking": [1.5, 2.25, 0.5, 3.0, 1.0, 0.75, 2.0],
    # Ties and zeros: the normal approximation with the tie correction (zeros dropped).
    "ties_and_zeros": [1, 1, -1, 2, 2, 2, 0, 0, -3, 1, 4, -2, 2, 1, 1, 0, 3, -1, 2, 5,
                       1, 1, 2, -2, 3, 4, 1, -1, 2, 2, 0, 1, 3, 1, -1, 2, 2, 1, 4, 1,
                       2, -1, 1, 3, 2, 1, 1, 2, -2, 1, 1, 2, 3],
    # Large and continuous: the normal approximation.
    "large": list(np.round(np.random.default_rng(7).normal(0.15, 1.0, 400), 6)),
}
out = {"wilcoxon": {}, "holm": {}}
# dgcolor uses the exact null distribution without ties or zeros up to n = 50 and the normal
# approximation (no continuity correction, tie correction, zeros dropped) otherwise; scipy's
# method is named to match, and "auto" (scipy 1.17: exact at any n without ties) is kept
# beside the large case to show how close the two are.
methods = {"exact_small": "exact", "exact_one_sided_looking": "exact",
           "ties_and_zeros": "asymptotic", "large": "asymptotic"}
for name, d in cases.items():
    res = stats.wilcoxon(d, method=methods[name])
    out["wilcoxon"][name] = {"d": [float(x) for x in d], "statistic": float(res.statistic),
                             "pvalue": float(res.pvalue),
                             "pvalue_scipy_auto": float(stats.wilcoxon(d).pvalue)}
holm_cases = {
    "mixed": [0.01, 0.04, 0.03, 0.005, 0.2, 0.049],
    "ties": [0.02, 0.02, 0.5, 0.001],
    "saturating": [0.4, 0.6, 0.3],
}
for name, p in holm_cases.items():
    _, adj, _, _ = multipletests(p, method="holm")
    out["holm"][name] = {"p": p, "adjusted": [float(x) for x in adj]}
print(json.dumps(out, indent=1))
