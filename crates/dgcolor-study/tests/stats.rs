//! The report's statistics against scipy / statsmodels. Every expected number below is
//! printed by `stats_reference.py` beside this file (scipy 1.17.1, statsmodels 0.15.0).

use dgcolor_study::stats::{
    binomial_test_half, bootstrap_ratio, bradley_terry, fleiss_kappa, holm, median, wilson,
};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn wilson_matches_statsmodels() {
    // statsmodels.stats.proportion.proportion_confint(k, n, alpha=0.05, method="wilson")
    let cases = [
        (0, 10, 0.0, 0.27753279986288926),
        (1, 10, 0.017876213095072924, 0.40415002679523854),
        (5, 10, 0.23659309051256394, 0.7634069094874361),
        (10, 10, 0.7224672001371106, 1.0),
        (37, 120, 0.23272736988916298, 0.39582997723800684),
        (3, 7, 0.15821985525146964, 0.7495416354723428),
        (999, 1000, 0.9943574414020421, 0.9998234536293739),
    ];
    for (k, n, lo, hi) in cases {
        let (a, b) = wilson(k, n).unwrap();
        assert!(
            close(a, lo, 1e-12) && close(b, hi, 1e-12),
            "{k}/{n}: {a} {b} vs {lo} {hi}"
        );
    }
    assert_eq!(wilson(0, 0), None);
    assert_eq!(wilson(3, 2), None);
}

#[test]
fn cluster_bootstrap_matches_scipy_percentile_bootstrap() {
    // scipy.stats.bootstrap((wins, shown), lambda w, s: w.sum() / s.sum(), paired=True,
    //     method="percentile", n_resamples=200_000): [0.39, 0.53] and, for the second set,
    //     [0.22727272727272727, 0.47058823529411764]. Different generators, so the Monte
    //     Carlo error of both (well under 0.01 at these resample counts) is the tolerance.
    let wins = [
        3, 5, 2, 6, 4, 4, 1, 5, 3, 2, 6, 5, 4, 3, 2, 5, 4, 6, 3, 1, 4, 5, 2, 3, 4,
    ];
    let clusters: Vec<(f64, f64)> = wins.iter().map(|&w| (w as f64, 8.0)).collect();
    let (lo, hi) = bootstrap_ratio(&clusters, 50_000, 7).unwrap();
    assert!(
        (lo - 0.39).abs() <= 0.011 && (hi - 0.53).abs() <= 0.011,
        "{lo} {hi}"
    );

    let wins2 = [1, 0, 2, 1, 3, 0, 1, 2, 0, 1];
    let shown2 = [3, 2, 4, 3, 5, 2, 3, 4, 1, 3];
    let clusters2: Vec<(f64, f64)> = wins2
        .iter()
        .zip(shown2)
        .map(|(&w, s)| (w as f64, s as f64))
        .collect();
    let (lo, hi) = bootstrap_ratio(&clusters2, 50_000, 7).unwrap();
    assert!(
        (lo - 0.22727272727272727).abs() <= 0.01 && (hi - 0.47058823529411764).abs() <= 0.01,
        "{lo} {hi}"
    );
    // Seeded: the same seed gives the same interval.
    assert_eq!(
        bootstrap_ratio(&clusters2, 2000, 3),
        bootstrap_ratio(&clusters2, 2000, 3)
    );
    assert_eq!(bootstrap_ratio(&[], 100, 0), None);
    assert_eq!(bootstrap_ratio(&[(0.0, 0.0)], 100, 0), None);
}

#[test]
fn bradley_terry_matches_a_binomial_glm() {
    // statsmodels GLM(Binomial) on rows e_i - e_j (reference column dropped), endog
    // (wins_ij, wins_ji) per pair. Its standard errors come from the IRLS weights of its
    // last iteration, so they agree to about 1e-9 relative, the estimates to 1e-12.
    let w4 = vec![
        vec![0.0, 12.0, 9.0, 15.0],
        vec![8.0, 0.0, 7.0, 11.0],
        vec![11.0, 13.0, 0.0, 14.0],
        vec![5.0, 9.0, 6.0, 0.0],
    ];
    let fit = bradley_terry(&w4, 0).unwrap();
    let b = [
        0.0,
        -0.5216889922929471,
        0.10687626763373467,
        -0.8432584462435373,
    ];
    let se = [
        0.0,
        0.3276387029930096,
        0.32713473499190177,
        0.33656227194185073,
    ];
    for i in 0..4 {
        assert!(close(fit.log_strength[i], b[i], 1e-9), "{:?}", fit);
        assert!(close(fit.se[i], se[i], 1e-7), "{:?}", fit);
    }
    assert!(!fit.regularized);
    let shares = fit.shares();
    assert!(close(shares.iter().sum::<f64>(), 1.0, 1e-12));
    assert!(shares[2] > shares[0] && shares[0] > shares[1] && shares[1] > shares[3]);

    let w3 = vec![
        vec![0.0, 30.0, 4.0],
        vec![10.0, 0.0, 2.0],
        vec![16.0, 18.0, 0.0],
    ];
    let fit = bradley_terry(&w3, 1).unwrap();
    let b = [1.061728540627316, 0.0, 2.3629558582856998];
    let se = [0.3388505368851395, 0.0, 0.5058538920754632];
    for i in 0..3 {
        assert!(close(fit.log_strength[i], b[i], 1e-9), "{:?}", fit);
        assert!(close(fit.se[i], se[i], 1e-7), "{:?}", fit);
    }
}

#[test]
fn bradley_terry_without_an_mle_is_regularized_and_disconnected_is_none() {
    // Method 0 never loses: no maximum-likelihood estimate. The fit adds half a win each
    // way to every compared pair; statsmodels on those counts gives these values.
    let bad = vec![
        vec![0.0, 5.0, 3.0],
        vec![0.0, 0.0, 4.0],
        vec![0.0, 2.0, 0.0],
    ];
    let fit = bradley_terry(&bad, 0).unwrap();
    assert!(fit.regularized);
    let b = [0.0, -2.030680528537211, -2.498386989889353];
    let se = [0.0, 1.0811754261987558, 1.1707614195347387];
    for i in 0..3 {
        assert!(close(fit.log_strength[i], b[i], 1e-9), "{:?}", fit);
        assert!(close(fit.se[i], se[i], 1e-7), "{:?}", fit);
    }
    // Methods 0-1 and 2-3 were never compared across: no joint scale.
    let split = vec![
        vec![0.0, 3.0, 0.0, 0.0],
        vec![2.0, 0.0, 0.0, 0.0],
        vec![0.0, 0.0, 0.0, 1.0],
        vec![0.0, 0.0, 4.0, 0.0],
    ];
    assert_eq!(bradley_terry(&split, 0), None);
    assert_eq!(bradley_terry(&[vec![0.0]], 0), None);
}

#[test]
fn fleiss_kappa_matches_statsmodels() {
    // statsmodels.stats.inter_rater.fleiss_kappa
    let t: Vec<Vec<u64>> = [
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
    .iter()
    .map(|r| r.to_vec())
    .collect();
    let k = fleiss_kappa(&t).unwrap();
    assert!(close(k.kappa, 0.3489583333333332, 1e-12), "{k:?}");
    assert_eq!((k.items, k.ratings), (10, 50));
    // The worked example of Fleiss (1971), five categories, 14 raters.
    let t3: Vec<Vec<u64>> = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    .iter()
    .map(|r| r.to_vec())
    .collect();
    assert!(close(
        fleiss_kappa(&t3).unwrap().kappa,
        0.20993070442195522,
        1e-12
    ));
}

#[test]
fn fleiss_kappa_with_unequal_raters_follows_the_generalised_formula() {
    // numpy, per-item agreement with the item's own count (stats_reference.py); the item
    // with a single rating ([1, 0]) is left out.
    let u: Vec<Vec<u64>> = [[3, 1], [2, 0], [0, 4], [1, 1], [5, 2], [1, 0], [2, 3]]
        .iter()
        .map(|r| r.to_vec())
        .collect();
    let k = fleiss_kappa(&u).unwrap();
    assert!(close(k.kappa, 0.13526473526473543, 1e-12), "{k:?}");
    assert_eq!(k.items, 6);
    // Every rating in one category: chance agreement is 1, kappa undefined.
    assert_eq!(fleiss_kappa(&[vec![3, 0], vec![2, 0]]), None);
    assert_eq!(fleiss_kappa(&[vec![1, 0]]), None);
}

#[test]
fn binomial_test_matches_scipy_binomtest() {
    // scipy.stats.binomtest(k, n, 0.5).pvalue
    let cases = [
        (3, 20, 0.0025768280029296875),
        (10, 20, 1.0),
        (0, 5, 0.0625),
        (15, 18, 0.007537841796875),
        (47, 120, 0.022082715809704237),
        (480, 1000, 0.2174482932041415),
        (2, 1000, 9.341987486489591e-296),
        (7, 9, 0.1796875),
    ];
    for (k, n, p) in cases {
        let got = binomial_test_half(k, n);
        assert!(
            close(got, p, 1e-10) || (got - p).abs() < 1e-300,
            "{k}/{n}: {got} vs {p}"
        );
    }
    assert_eq!(binomial_test_half(0, 0), 1.0);
}

#[test]
fn holm_matches_statsmodels() {
    // statsmodels.stats.multitest.multipletests(p, method="holm")[1]
    let p = [0.01, 0.04, 0.03, 0.005, 0.5, 0.04];
    let want = [0.05, 0.12, 0.12, 0.03, 0.5, 0.12];
    for (g, w) in holm(&p).iter().zip(want) {
        assert!(close(*g, w, 1e-12), "{:?}", holm(&p));
    }
    assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), Some(2.5));
    assert_eq!(median(&[]), None);
}
