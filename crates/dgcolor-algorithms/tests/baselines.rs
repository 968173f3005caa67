//! The DG baselines (METHOD.md §4): each one's mechanism on tiny inputs, and the
//! DomainBed-style smoke test over every registered algorithm at smoke size.

use std::collections::{BTreeMap, BTreeSet};

use candle_core::{DType, Device, Result, Tensor, Var};
use dgcolor_algorithms::dann::Phase;
use dgcolor_algorithms::jigsaw::{Permutations, PERMUTATIONS_NPY};
use dgcolor_algorithms::mixup::mix_pairs;
use dgcolor_algorithms::mldg::mldg_gradients;
use dgcolor_algorithms::*;
use dgcolor_data::DomainBatch;
use dgcolor_models::ModelConfig;

// ---------------------------------------------------------------------------------------
// Fixtures (as in tests/updates.rs: 32 px, nf 4, depth 5).

fn values(shape: &[usize], seed: u64, scale: f32) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let mut state = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn domain_batch(domain: usize, b: usize, seed: u64) -> Result<DomainBatch> {
    let dev = Device::Cpu;
    let l = Tensor::from_vec(values(&[b, 1, 32, 32], seed, 1.0), (b, 1, 32, 32), &dev)?;
    let ab = Tensor::cat(&[(&l * 0.5)?, (&l * -0.25)?], 1)?;
    let class = (0..b as u32)
        .map(|i| (i + domain as u32) % 3)
        .collect::<Vec<_>>();
    Ok(DomainBatch {
        domain,
        l,
        ab,
        class: Tensor::from_vec(class, b, &dev)?,
    })
}

/// One batch per source domain with the given sizes.
fn batches_of(sizes: &[usize], seed: u64) -> Result<Vec<DomainBatch>> {
    sizes
        .iter()
        .enumerate()
        .map(|(d, &b)| domain_batch(d, b, seed * 10 + d as u64))
        .collect()
}

fn spec_with(algorithm: &str, seed: u64, overrides: &[&str]) -> AlgorithmSpec {
    let mut model = ModelConfig::new(32, 4, 5, 3, 2);
    if !lookup(algorithm).unwrap().adain {
        model.adain_index = None;
    }
    let mut hparams = HParams::defaults(lookup(algorithm).unwrap());
    let overrides: Vec<HParamOverride> = overrides.iter().map(|s| s.parse().unwrap()).collect();
    hparams.set(lookup(algorithm).unwrap(), &overrides).unwrap();
    AlgorithmSpec {
        model,
        hparams,
        seed,
        device: Device::Cpu,
    }
}

fn spec(algorithm: &str, seed: u64) -> AlgorithmSpec {
    spec_with(algorithm, seed, &[])
}

fn snapshot(alg: &dyn Algorithm) -> BTreeMap<String, Vec<f32>> {
    let data = alg.varmap().data().lock().unwrap();
    data.iter()
        .map(|(k, v)| {
            let t = v.as_tensor().flatten_all().unwrap();
            (k.clone(), t.to_vec1::<f32>().unwrap())
        })
        .collect()
}

/// Top-level prefixes of the trainable variables that differ between two snapshots.
fn changed_prefixes(
    before: &BTreeMap<String, Vec<f32>>,
    after: &BTreeMap<String, Vec<f32>>,
) -> BTreeSet<String> {
    before
        .iter()
        .filter(|(k, v)| params::is_trainable(k) && after[*k] != **v)
        .map(|(k, _)| k.split('.').next().unwrap().to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn to_vec(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn value(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

// ---------------------------------------------------------------------------------------
// Registries.

#[test]
fn registry_lists_every_method_in_table_order() {
    let names: Vec<&str> = ALGORITHMS.iter().map(|a| a.name).collect();
    assert_eq!(
        names,
        [
            "erm",
            "dann",
            "coral",
            "mmd",
            "group_dro",
            "sagnet",
            "mldg",
            "jigsaw",
            "mixup",
            "ours"
        ]
    );
    for a in ALGORITHMS {
        assert!(
            !a.summary.is_empty() && !a.summary.contains('\n'),
            "{}",
            a.name
        );
        assert_eq!(
            a.adain,
            a.name == "ours",
            "{}: only ours uses AdaIN",
            a.name
        );
    }
    let balanced: Vec<&str> = ALGORITHMS
        .iter()
        .filter(|a| a.batches == dgcolor_data::BatchMode::Balanced)
        .map(|a| a.name)
        .collect();
    assert_eq!(
        balanced,
        [
            "dann",
            "coral",
            "mmd",
            "group_dro",
            "sagnet",
            "mldg",
            "mixup"
        ]
    );
}

#[test]
fn every_algorithm_has_its_hyperparameters() {
    /// 0: the bottleneck, DomainBed's featurizer output (see `baseline::AlignAt`).
    const ALIGN_AT_DEFAULT: f64 = 0.0;
    let expected: &[(&str, &[(&str, f64)])] = &[
        ("erm", &[]),
        (
            "dann",
            &[
                ("lambda", 1.0),
                ("d_steps_per_g", 1.0),
                ("lr_d", 1e-3),
                ("align_at", ALIGN_AT_DEFAULT),
            ],
        ),
        ("coral", &[("gamma", 1.0), ("align_at", ALIGN_AT_DEFAULT)]),
        ("mmd", &[("gamma", 1.0), ("align_at", ALIGN_AT_DEFAULT)]),
        ("group_dro", &[("eta", 0.01)]),
        ("sagnet", &[("w_adv", 0.1)]),
        ("mldg", &[("beta", 1.0)]),
        (
            "jigsaw",
            &[
                ("jig_weight", 0.7),
                ("bias_whole_image", 0.9),
                ("align_at", ALIGN_AT_DEFAULT),
            ],
        ),
        ("mixup", &[("alpha", 0.2)]),
    ];
    for (name, params) in expected {
        let specs = hparams::specs(lookup(name).unwrap());
        let names: Vec<&str> = specs.iter().map(|s| s.name).collect();
        let unique: BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(
            unique.len(),
            names.len(),
            "{name}: duplicate names {names:?}"
        );
        assert_eq!(names[0], "lr", "{name}: lr comes first");
        assert_eq!(names.len(), 1 + params.len(), "{name}: {names:?}");
        let defaults = HParams::defaults(lookup(name).unwrap());
        for (p, v) in *params {
            assert_eq!(defaults.get(p), *v, "{name}.{p}");
        }
        // A random draw is reproducible, and every algorithm builds with it.
        let a = HParams::random(lookup(name).unwrap(), 3);
        assert_eq!(a, HParams::random(lookup(name).unwrap(), 3));
        assert_eq!(
            a.get("lr"),
            HParams::random(lookup("erm").unwrap(), 3).get("lr")
        );
        let mut s = spec(name, 0);
        s.hparams = a;
        lookup(name)
            .unwrap()
            .build(&s)
            .unwrap_or_else(|e| panic!("{name} with a random draw: {e}"));
    }
}

// ---------------------------------------------------------------------------------------
// CORAL and MMD.

#[test]
fn coral_and_mmd_penalties_vanish_for_identical_domains_and_match_hand_values() -> Result<()> {
    let coral = coral::new(&spec("coral", 0))?;
    let mmd = mmd::new(&spec("mmd", 0))?;
    let dev = Device::Cpu;
    let x = Tensor::new(&[[1.0f32, 2.0], [0.5, -1.0], [3.0, 0.0]], &dev)?;
    assert!(value(&coral.penalty(&[x.clone(), x.clone()])?).abs() < 1e-9);
    assert!(value(&mmd.penalty(&[x.clone(), x.clone()])?).abs() < 1e-5);

    // CORAL: x = [[0,0],[2,0]] has mean (1,0) and unbiased covariance [[2,0],[0,0]];
    // y = [[0,1],[0,3]] has mean (0,2) and covariance [[0,0],[0,2]].
    // mean((mu_x - mu_y)^2) = (1 + 4)/2 = 2.5; mean((C_x - C_y)^2) = (4 + 4)/4 = 2 -> 4.5.
    let x = Tensor::new(&[[0.0f32, 0.0], [2.0, 0.0]], &dev)?;
    let y = Tensor::new(&[[0.0f32, 1.0], [0.0, 3.0]], &dev)?;
    assert!((value(&coral.penalty(&[x.clone(), y.clone()])?) - 4.5).abs() < 1e-6);
    // A third domain with one image has no unbiased covariance and is left out.
    let single = Tensor::new(&[[5.0f32, 5.0]], &dev)?;
    assert!((value(&coral.penalty(&[x.clone(), y.clone(), single])?) - 4.5).abs() < 1e-6);

    // MMD with one point per domain, (0,0) and (1,0): ||x-y||^2 = 1, so
    // K(x,x) = K(y,y) = 7 (one exp(0) per bandwidth) and K(x,y) = sum_g exp(-g):
    // MMD = 14 - 2 * sum_g exp(-g), g in {1e-3, .., 1e3}.
    let x = Tensor::new(&[[0.0f32, 0.0]], &dev)?;
    let y = Tensor::new(&[[1.0f32, 0.0]], &dev)?;
    let expected = 14.0
        - 2.0
            * [0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]
                .iter()
                .map(|g: &f64| (-g).exp())
                .sum::<f64>();
    assert!((value(&mmd.penalty(&[x, y])?) - expected).abs() < 1e-5);
    Ok(())
}

#[test]
fn coral_and_mmd_updates_report_zero_penalty_for_identical_domains() -> Result<()> {
    for name in ["coral", "mmd"] {
        let mut alg = lookup(name).unwrap().build(&spec(name, 1))?;
        let mut same = batches_of(&[3, 3], 4)?;
        same[1].l = same[0].l.clone();
        same[1].ab = same[0].ab.clone();
        let losses = alg.update(&same)?;
        assert!(losses["penalty"].abs() < 1e-5, "{name}: {losses:?}");
        let losses = alg.update(&batches_of(&[3, 3], 5)?)?;
        assert!(losses["penalty"] > 0.0, "{name}: {losses:?}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// GroupDRO.

/// Domain 0's target is what an untrained generator predicts (about 0); domain 1's is far.
fn unequal_difficulty(seed: u64) -> Result<Vec<DomainBatch>> {
    let mut b = batches_of(&[3, 3], seed)?;
    b[0].ab = b[0].ab.zeros_like()?;
    b[1].ab = (b[1].ab.ones_like()? * 0.8)?;
    Ok(b)
}

#[test]
fn group_dro_weights_move_toward_the_harder_domain_and_survive_resume() -> Result<()> {
    let mut dro = GroupDro::new(&spec("group_dro", 2))?;
    assert_eq!(dro.q(), vec![0.5, 0.5]);
    let mut last = 0.5;
    for step in 0..3 {
        let losses = dro.update(&unequal_difficulty(step)?)?;
        let q = dro.q();
        assert!((q.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(q[1] > last, "step {step}: q = {q:?}");
        assert!((losses["q1"] as f64 - q[1]).abs() < 1e-6);
        last = q[1];
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    dro.checkpoint()?.save(&path)?;
    let mut resumed = GroupDro::new(&spec("group_dro", 2))?;
    resumed.restore(&Checkpoint::load(&path, &Device::Cpu)?)?;
    assert_eq!(resumed.q(), dro.q(), "q is restored bit for bit");
    assert_eq!(resumed.steps(), 3);
    dro.update(&unequal_difficulty(3)?)?;
    resumed.update(&unequal_difficulty(3)?)?;
    assert_eq!(resumed.q(), dro.q());
    assert_eq!(snapshot(&resumed), snapshot(&dro));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// MLDG.

#[test]
fn mldg_gradient_is_meta_train_plus_beta_meta_test_gradient() -> Result<()> {
    // A linear model w (2 weights), loss_k(w) = (x_k . w - y_k)^2, so
    // grad_k(w) = 2 (x_k . w - y_k) x_k. One fresh-Adam step from w gives
    // w' = w - lr * g / (|g| + eps) per coordinate (m_hat = g, v_hat = g^2 at step 1).
    let dev = Device::Cpu;
    let w0 = [0.5f64, -1.0];
    let xs = [[1.0f64, 2.0], [-1.0, 0.5]];
    let ys = [1.0f64, 2.0];
    let (lr, beta, eps) = (0.1, 0.7, 1e-8);
    let w = Var::new(&[w0[0] as f32, w0[1] as f32], &dev)?;
    let vars = vec![("w".to_string(), w.clone())];
    let loss = |k: usize, _call: u64| -> Result<Tensor> {
        let x = Tensor::new(&[xs[k][0] as f32, xs[k][1] as f32], &dev)?;
        ((w.as_tensor() * &x)?.sum_all()? - ys[k])?.sqr()
    };
    let grad = |w: [f64; 2], k: usize| -> [f64; 2] {
        let r = xs[k][0] * w[0] + xs[k][1] * w[1] - ys[k];
        [2.0 * r * xs[k][0], 2.0 * r * xs[k][1]]
    };
    // Hand computation for the single pair (meta-train 0, meta-test 1):
    // w0 = (0.5, -1): r_0 = 0.5 - 2 - 1 = -2.5, G_0 = (-5, -10);
    // w' = w0 - 0.1 * sign(G_0) = (0.6, -0.9);
    // r_1 = -0.6 - 0.45 - 2 = -3.05, G_1(w') = (6.1, -3.05);
    // combined = G_0 + 0.7 * G_1 = (-5 + 4.27, -10 - 2.135) = (-0.73, -12.135).
    let g_i = grad(w0, 0);
    let w1 = [
        w0[0] - lr * g_i[0] / (g_i[0].abs() + eps),
        w0[1] - lr * g_i[1] / (g_i[1].abs() + eps),
    ];
    let g_j = grad(w1, 1);
    let expected = [g_i[0] + beta * g_j[0], g_i[1] + beta * g_j[1]];
    assert!((expected[0] + 0.73).abs() < 1e-6 && (expected[1] + 12.135).abs() < 1e-6);

    let cfg = AdamConfig::reference(lr);
    let got = mldg_gradients(&vars, &[(0, 1)], loss, cfg, beta)?;
    let g = to_vec(&got.grads[0]);
    assert!(
        (g[0] as f64 - expected[0]).abs() < 1e-4 && (g[1] as f64 - expected[1]).abs() < 1e-4,
        "{g:?} vs {expected:?}"
    );
    // The objective is loss_0(w0) + beta * loss_1(w'), and w is back at w0.
    let obj = 2.5f64.powi(2) + beta * 3.05f64.powi(2);
    assert!((got.objective - obj).abs() < 1e-4, "{}", got.objective);
    assert_eq!(to_vec(w.as_tensor()), vec![0.5, -1.0]);

    // Two pairs: the mean of each pair's combination.
    let both = mldg_gradients(&vars, &[(0, 1), (1, 0)], loss, cfg, beta)?;
    let g_i2 = grad(w0, 1);
    let w2 = [
        w0[0] - lr * g_i2[0] / (g_i2[0].abs() + eps),
        w0[1] - lr * g_i2[1] / (g_i2[1].abs() + eps),
    ];
    let g_j2 = grad(w2, 0);
    let g = to_vec(&both.grads[0]);
    for c in 0..2 {
        let e = (expected[c] + g_i2[c] + beta * g_j2[c]) / 2.0;
        assert!(
            (g[c] as f64 - e).abs() < 1e-4,
            "coordinate {c}: {} vs {e}",
            g[c]
        );
    }
    Ok(())
}

#[test]
fn mldg_updates_only_the_generator_after_the_discriminator() -> Result<()> {
    let mut mldg = Mldg::new(&spec("mldg", 3))?;
    let s0 = snapshot(&mldg);
    mldg.update(&batches_of(&[2, 2], 1)?)?;
    let s1 = snapshot(&mldg);
    assert_eq!(
        changed_prefixes(&s0, &s1),
        set(&["color_disc", "decoder", "head", "tail"])
    );
    // BatchNorm running statistics follow the inner passes (not reset with the weights).
    assert_ne!(
        s0["head.down2.bn.running_mean"],
        s1["head.down2.bn.running_mean"]
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// DANN.

#[test]
fn dann_alternates_discriminator_and_generator_updates() -> Result<()> {
    let mut dann = Dann::new(&spec("dann", 4))?;
    let mut phases = Vec::new();
    for step in 0..4 {
        let phase = dann.phase();
        phases.push(phase);
        let before = snapshot(&dann);
        let losses = dann.update(&batches_of(&[2, 2], step)?)?;
        let moved = changed_prefixes(&before, &snapshot(&dann));
        match phase {
            Phase::DomainDiscriminator => {
                assert_eq!(moved, set(&["color_disc", "domain_disc"]), "step {step}");
                assert!(losses.contains_key("disc") && !losses.contains_key("g"));
            }
            Phase::Generator => {
                assert_eq!(
                    moved,
                    set(&["color_disc", "decoder", "head", "tail"]),
                    "step {step}"
                );
                assert!(losses.contains_key("domain") && losses.contains_key("g_l1"));
            }
            Phase::Both => unreachable!("d_steps_per_g = 1 alternates"),
        }
    }
    use Phase::*;
    assert_eq!(
        phases,
        [
            DomainDiscriminator,
            Generator,
            DomainDiscriminator,
            Generator
        ]
    );

    // d_steps_per_g = 2: D, D, G, D, D, G; the counter survives a checkpoint.
    let mut dann = Dann::new(&spec_with("dann", 4, &["d_steps_per_g=2"]))?;
    let mut phases = Vec::new();
    for step in 0..2 {
        phases.push(dann.phase());
        dann.update(&batches_of(&[2, 2], step)?)?;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    dann.checkpoint()?.save(&path)?;
    let mut resumed = Dann::new(&spec_with("dann", 4, &["d_steps_per_g=2"]))?;
    resumed.restore(&Checkpoint::load(&path, &Device::Cpu)?)?;
    assert_eq!(resumed.update_count(), 2);
    for step in 2..6 {
        phases.push(resumed.phase());
        resumed.update(&batches_of(&[2, 2], step)?)?;
    }
    assert_eq!(
        phases,
        [
            DomainDiscriminator,
            DomainDiscriminator,
            Generator,
            DomainDiscriminator,
            DomainDiscriminator,
            Generator
        ]
    );

    // d_steps_per_g = 0: both networks move in every iteration.
    let mut dann = Dann::new(&spec_with("dann", 4, &["d_steps_per_g=0"]))?;
    for step in 0..2 {
        assert_eq!(dann.phase(), Both);
        let before = snapshot(&dann);
        let losses = dann.update(&batches_of(&[2, 2], step)?)?;
        assert_eq!(
            changed_prefixes(&before, &snapshot(&dann)),
            set(&["color_disc", "decoder", "domain_disc", "head", "tail"])
        );
        assert!(losses.contains_key("disc") && losses.contains_key("g_l1"));
    }
    Ok(())
}

/// The DG terms are weighted relative to the task loss: `task + w * sg(task) * penalty`
/// has the task's gradient plus `w * task` times the penalty's, and its value is
/// `task * (1 + w * penalty)`.
#[test]
fn penalties_are_scaled_by_the_task_loss() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::new(&[1.5f32, -0.5], &dev)?;
    let task = (x.as_tensor().sqr()?.sum_all()? * 10.0)?; // 25
    let penalty = x.as_tensor().sum_all()?; // 1
    let total = dgcolor_algorithms::baseline::task_scaled(&task, 0.1, &penalty)?;
    assert!((value(&total) - 25.0 * 1.1).abs() < 1e-4);
    let g = total
        .backward()?
        .get(x.as_tensor())
        .unwrap()
        .to_vec1::<f32>()?;
    // d task / dx = 20 x; d penalty / dx = 1, times 0.1 * 25.
    assert!(
        (g[0] - (30.0 + 2.5)).abs() < 1e-4 && (g[1] - (-10.0 + 2.5)).abs() < 1e-4,
        "{g:?}"
    );
    Ok(())
}

#[test]
fn align_at_picks_the_feature_and_sizes_the_heads() -> Result<()> {
    for name in ["dann", "coral", "mmd", "jigsaw"] {
        for at in ["0", "1"] {
            let mut alg =
                lookup(name)
                    .unwrap()
                    .build(&spec_with(name, 2, &[&format!("align_at={at}")]))?;
            let losses = alg.update(&batches_of(&[2, 2], 1)?)?;
            assert!(
                losses.values().all(|v| v.is_finite()),
                "{name} align_at={at}: {losses:?}"
            );
        }
        assert!(lookup(name)
            .unwrap()
            .build(&spec_with(name, 2, &["align_at=2"]))
            .err()
            .unwrap()
            .to_string()
            .contains("align_at must be 0"));
    }
    // The z feature has the head encoder's width (4nf), the bottleneck 8nf.
    let m = dgcolor_models::ModelConfig::new(32, 4, 5, 3, 2);
    use dgcolor_algorithms::baseline::AlignAt;
    assert_eq!(
        (AlignAt::Z.width(&m), AlignAt::Bottleneck.width(&m)),
        (16, 32)
    );
    Ok(())
}

#[test]
fn dann_generator_update_pushes_the_domain_loss_up() -> Result<()> {
    // With the domain discriminator fixed and lambda large, generator updates on a fixed
    // batch make the domains harder to tell apart: the domain cross-entropy rises.
    let mut dann = Dann::new(&spec_with("dann", 5, &["lambda=1000"]))?;
    let u = union(&batches_of(&[3, 3], 2)?)?;
    // A few discriminator updates first, so the domain loss starts below chance.
    for _ in 0..5 {
        dann.discriminator_update(&u)?;
    }
    let before = dann.domain_loss(&u)?;
    for _ in 0..5 {
        dann.generator_update(&u)?;
    }
    let after = dann.domain_loss(&u)?;
    assert!(after > before, "domain CE should rise: {before} -> {after}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// SagNet.

fn stats(x: &Tensor) -> (Vec<f32>, Vec<f32>) {
    let s = dgcolor_models::channel_stats(x).unwrap();
    (to_vec(&s.mean), to_vec(&s.var))
}

fn normalized(x: &Tensor) -> Tensor {
    let s = dgcolor_models::channel_stats(x).unwrap();
    x.broadcast_sub(&s.mean)
        .unwrap()
        .broadcast_div(&(&s.var + 1e-5).unwrap().sqrt().unwrap())
        .unwrap()
}

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
}

#[test]
fn sagnet_randomizations_preserve_the_right_statistics() -> Result<()> {
    let dev = Device::Cpu;
    let z = Tensor::from_vec(values(&[3, 2, 4, 4], 9, 2.0), (3, 2, 4, 4), &dev)?;
    let z = (z + Tensor::new(&[[[[0.5f32]], [[-1.0]]]], &dev)?.broadcast_as((3, 2, 4, 4))?)?;
    let perm = Tensor::new(&[2u32, 0, 1], &dev)?;
    let (mean, var) = stats(&z);

    // CR: own statistics, partner's normalised content.
    let cr = dgcolor_models::content_randomize(&z, &perm)?;
    let (cr_mean, cr_var) = stats(&cr);
    assert!(close(&cr_mean, &mean, 1e-5));
    assert!(close(&cr_var, &var, 1e-4));
    assert!(close(
        &to_vec(&normalized(&cr)),
        &to_vec(&normalized(&z).index_select(&perm, 0)?),
        1e-3
    ));

    // SR: own normalised content, statistics a * own + (1 - a) * partner's.
    let alpha = [0.25f32, 1.0, 0.6];
    let sr = dgcolor_models::style_randomize(&z, &perm, &Tensor::new(&alpha, &dev)?)?;
    assert!(close(
        &to_vec(&normalized(&sr)),
        &to_vec(&normalized(&z)),
        1e-3
    ));
    let (sr_mean, sr_var) = stats(&sr);
    let p = [2usize, 0, 1];
    for i in 0..3 {
        for c in 0..2 {
            let a = alpha[i];
            let m = a * mean[i * 2 + c] + (1.0 - a) * mean[p[i] * 2 + c];
            let v = a * var[i * 2 + c] + (1.0 - a) * var[p[i] * 2 + c];
            assert!((sr_mean[i * 2 + c] - m).abs() < 1e-4, "mean {i},{c}");
            assert!(
                (sr_var[i * 2 + c] - v).abs() < 1e-3 * (1.0 + v),
                "var {i},{c}"
            );
        }
    }
    // Sample 1 has a = 1: SR leaves it as it is.
    assert!(close(&to_vec(&sr.get(1)?), &to_vec(&z.get(1)?), 1e-4));

    // SagNet's own SR draw keeps every sample's content and mixes statistics within the
    // batch's range.
    let sag = SagNet::new(&spec("sagnet", 0))?;
    let sr = sag.style_randomized(&z)?;
    assert!(close(
        &to_vec(&normalized(&sr)),
        &to_vec(&normalized(&z)),
        1e-3
    ));
    let (sr_mean, _) = stats(&sr);
    for c in 0..2 {
        let col: Vec<f32> = (0..3).map(|i| mean[i * 2 + c]).collect();
        let (lo, hi) = col
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        for i in 0..3 {
            assert!((lo - 1e-5..=hi + 1e-5).contains(&sr_mean[i * 2 + c]));
        }
    }
    Ok(())
}

#[test]
fn sagnet_updates_change_exactly_their_networks() -> Result<()> {
    let mut sag = SagNet::new(&spec("sagnet", 6))?;
    let u = union(&batches_of(&[2, 2], 3)?)?;
    let s0 = snapshot(&sag);
    sag.content_update(&u)?;
    let s1 = snapshot(&sag);
    assert_eq!(
        changed_prefixes(&s0, &s1),
        set(&["decoder", "head", "tail"])
    );
    sag.style_update(&u)?;
    let s2 = snapshot(&sag);
    assert_eq!(changed_prefixes(&s1, &s2), set(&["style_disc"]));
    // The adversarial term moves E_h only, and lowers the style head's confidence.
    let first = sag.adversarial_update(&u)?;
    let s3 = snapshot(&sag);
    assert_eq!(changed_prefixes(&s2, &s3), set(&["head"]));
    let mut last = first;
    for _ in 0..4 {
        last = sag.adversarial_update(&u)?;
    }
    assert!(
        last <= first + 1e-6,
        "cross-entropy to uniform should fall: {first} -> {last}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Mixup.

#[test]
fn mixup_mixes_input_and_target_with_the_same_lambda() -> Result<()> {
    // Unequal sizes: the pair uses the shorter batch's count.
    let b = batches_of(&[3, 2], 7)?;
    let lams = [0.3, 0.9];
    let pairs = [(0, 1), (1, 0)];
    let m = mix_pairs(&b, &pairs, &lams)?;
    assert_eq!(m.slices, vec![(0, 0, 2), (1, 2, 2)]);
    assert_eq!(m.l.dims(), [4, 1, 32, 32]);
    for (k, &(i, j)) in pairs.iter().enumerate() {
        let lam = lams[k];
        type Field = fn(&DomainBatch) -> Tensor;
        let fields: [(&Tensor, Field); 2] = [(&m.l, |x| x.l.clone()), (&m.ab, |x| x.ab.clone())];
        for (mixed, of) in fields {
            let got = to_vec(&mixed.narrow(0, 2 * k, 2)?);
            let want = to_vec(
                &((of(&b[i]).narrow(0, 0, 2)? * lam)?
                    + (of(&b[j]).narrow(0, 0, 2)? * (1.0 - lam))?)?,
            );
            assert!(close(&got, &want, 1e-6), "pair {k}");
        }
        // The target is the same convex combination of the two domains' targets.
        let a0 = to_vec(&b[i].ab.narrow(0, 0, 2)?);
        let a1 = to_vec(&b[j].ab.narrow(0, 0, 2)?);
        let got = to_vec(&m.ab.narrow(0, 2 * k, 2)?);
        for n in 0..got.len() {
            let expected = lam as f32 * a0[n] + (1.0 - lam as f32) * a1[n];
            assert!((got[n] - expected).abs() < 1e-6);
        }
    }

    // The draws: every domain once first and once second, lam in [0, 1], reproducible.
    let mix = Mixup::new(&spec("mixup", 8))?;
    let (pairs, lams) = mix.draw(3);
    let firsts: BTreeSet<usize> = pairs.iter().map(|p| p.0).collect();
    let seconds: BTreeSet<usize> = pairs.iter().map(|p| p.1).collect();
    assert_eq!(firsts, BTreeSet::from([0, 1, 2]));
    assert_eq!(seconds, BTreeSet::from([0, 1, 2]));
    assert!(pairs.iter().all(|(i, j)| i != j));
    assert!(lams.iter().all(|l| (0.0..=1.0).contains(l)));
    assert_eq!(mix.draw(3), (pairs, lams));
    Ok(())
}

#[test]
fn mixup_lambda_follows_beta_alpha_alpha() {
    // Beta(0.2, 0.2) is U-shaped: most mass near 0 and 1. Over many steps the mean is 1/2.
    // One draw of two pairs per seed: each seed is an independent counter-based stream.
    let mut lams = Vec::new();
    for seed in 0..200 {
        lams.extend(Mixup::new(&spec("mixup", seed)).unwrap().draw(2).1);
    }
    let mean = lams.iter().sum::<f64>() / lams.len() as f64;
    let extreme = lams.iter().filter(|l| **l < 0.1 || **l > 0.9).count() as f64 / lams.len() as f64;
    assert!((mean - 0.5).abs() < 0.05, "mean {mean}");
    // P(lam < 0.1 or lam > 0.9) is about 0.62 for Beta(0.2, 0.2).
    assert!(extreme > 0.5, "share near the ends {extreme}");
}

// ---------------------------------------------------------------------------------------
// Jigsaw and the npy reader.

#[test]
fn npy_reader_reads_the_jigsaw_table_and_rejects_bad_headers() {
    let arr = npy::parse_i64(PERMUTATIONS_NPY).unwrap();
    assert_eq!(arr.shape, vec![30, 9]);
    // The first two rows as numpy prints them.
    assert_eq!(&arr.data[..9], &[7, 2, 0, 1, 5, 6, 3, 4, 8]);
    assert_eq!(&arr.data[9..18], &[0, 1, 2, 3, 4, 5, 6, 8, 7]);
    assert_eq!(&arr.data[261..], &[2, 3, 0, 1, 6, 5, 4, 7, 8]);
    let perms = Permutations::embedded().unwrap();
    assert_eq!(perms.len(), 30);
    assert_eq!(perms.n_classes(), 31);

    // Version 2.0 of the same array (4-byte header length) reads the same.
    let header_len = u16::from_le_bytes([PERMUTATIONS_NPY[8], PERMUTATIONS_NPY[9]]) as usize;
    let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
    v2.extend_from_slice(&(header_len as u32 - 2).to_le_bytes());
    let header = &PERMUTATIONS_NPY[10..10 + header_len];
    v2.extend_from_slice(&header[..header_len - 3]); // drop 2 padding spaces, keep '\n'
    v2.push(b'\n');
    v2.extend_from_slice(&PERMUTATIONS_NPY[10 + header_len..]);
    assert_eq!(npy::parse_i64(&v2).unwrap(), arr);

    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let replace = |from: &str, to: &str| -> Vec<u8> {
        assert_eq!(from.len(), to.len(), "keep the header length");
        let h = text(&PERMUTATIONS_NPY[10..10 + header_len]);
        assert!(h.contains(from), "{from}");
        let mut out = PERMUTATIONS_NPY[..10].to_vec();
        out.extend_from_slice(h.replacen(from, to, 1).as_bytes());
        out.extend_from_slice(&PERMUTATIONS_NPY[10 + header_len..]);
        out
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"\x93NUMPX\x01\x00".to_vec(), "magic"),
        (
            {
                let mut b = PERMUTATIONS_NPY.to_vec();
                b[6] = 9;
                b
            },
            "version 9",
        ),
        (replace("'<i8'", "'<f8'"), "dtype"),
        (replace("False", "True "), "fortran_order True"),
        (replace("(30, 9)", "(31, 9)"), "data bytes"),
        (replace("'shape'", "'shapf'"), "lacks `shape`"),
        (
            PERMUTATIONS_NPY[..PERMUTATIONS_NPY.len() - 3].to_vec(),
            "data bytes",
        ),
        (PERMUTATIONS_NPY[..40].to_vec(), "runs past the end"),
    ];
    for (bytes, expected) in cases {
        let err = npy::parse_i64(&bytes).unwrap_err().to_string();
        assert!(err.contains(expected), "expected `{expected}` in `{err}`");
    }
    // A table whose row is not a permutation is refused by the jigsaw loader.
    let mut bad = PERMUTATIONS_NPY.to_vec();
    let at = 10 + header_len; // first entry of row 0 (7) becomes 2, duplicating the next one
    bad[at] = 2;
    let err = Permutations::from_npy(&bad).unwrap_err().to_string();
    assert!(err.contains("row 0"), "{err}");
}

/// Tile-wise expected shuffle, written independently of the index map: the 3x3 grid of
/// `t x t`-pixel tiles (top-left 3t x 3t region) has output tile k = input tile perm[k].
fn expected_shuffle(img: &[Vec<f32>], perm: &[usize; 9], th: usize, tw: usize) -> Vec<Vec<f32>> {
    let mut out = img.to_vec();
    for (k, &src) in perm.iter().enumerate() {
        let (dr, dc) = ((k / 3) * th, (k % 3) * tw);
        let (sr, sc) = ((src / 3) * th, (src % 3) * tw);
        for r in 0..th {
            for c in 0..tw {
                out[dr + r][dc + c] = img[sr + r][sc + c];
            }
        }
    }
    out
}

#[test]
fn jigsaw_tiles_land_where_the_permutation_says_for_l_and_ab() -> Result<()> {
    let perms = Permutations::embedded()?;
    let dev = Device::Cpu;
    // 6x6 (tiles of 2) and 7x8 (tiled region 6x6, last row and last two columns untouched).
    for (h, w) in [(6usize, 6usize), (7, 8)] {
        let img = |offset: f32| -> Vec<Vec<f32>> {
            (0..h)
                .map(|r| (0..w).map(|c| offset + (r * 100 + c) as f32).collect())
                .collect()
        };
        let flat = |rows: &[Vec<f32>]| rows.concat();
        let orders = [0usize, 1, 30, 5];
        let b = orders.len();
        // L: one channel; ab: two channels with different contents.
        let l: Vec<f32> = (0..b).flat_map(|i| flat(&img(1000.0 * i as f32))).collect();
        let ab: Vec<f32> = (0..b)
            .flat_map(|i| {
                let mut v = flat(&img(1000.0 * i as f32 + 10_000.0));
                v.extend(flat(&img(1000.0 * i as f32 + 20_000.0)));
                v
            })
            .collect();
        let l = Tensor::from_vec(l, (b, 1, h, w), &dev)?;
        let ab = Tensor::from_vec(ab, (b, 2, h, w), &dev)?;
        let l_s = perms.shuffle(&l, &orders)?;
        let ab_s = perms.shuffle(&ab, &orders)?;
        assert_eq!(l_s.dims(), [b, 1, h, w]);
        assert_eq!(ab_s.dims(), [b, 2, h, w]);
        let (th, tw) = (h / 3, w / 3);
        for (i, &order) in orders.iter().enumerate() {
            for (x, xs, offsets) in [
                (&l, &l_s, vec![0.0]),
                (&ab, &ab_s, vec![10_000.0, 20_000.0]),
            ] {
                for (c, off) in offsets.iter().enumerate() {
                    let got: Vec<f32> = to_vec(&xs.get(i)?.get(c)?);
                    let input = img(1000.0 * i as f32 + off);
                    assert_eq!(to_vec(&x.get(i)?.get(c)?), flat(&input));
                    let want = if order == 0 {
                        input.clone()
                    } else {
                        expected_shuffle(&input, perms.row(order - 1), th, tw)
                    };
                    assert_eq!(
                        got,
                        flat(&want),
                        "{h}x{w} image {i} order {order} channel {c}"
                    );
                    if order > 0 {
                        assert_ne!(got, flat(&input), "a real permutation moves tiles");
                    }
                }
            }
        }
        // Spot check against the table: in the 6x6 image with order 1 (row 0 = [7,2,0,...]),
        // the top-left tile is input tile 7 (rows 4..6, cols 2..4), so pixel (0,0) = 402.
        if (h, w) == (6, 6) {
            assert_eq!(to_vec(&l_s.get(1)?.get(0)?)[0], 1000.0 + 402.0);
        }
        // Border rows/columns outside the tiled region are untouched.
        if (h, w) == (7, 8) {
            let got = to_vec(&l_s.get(2)?.get(0)?);
            for c in 0..w {
                assert_eq!(got[6 * w + c], 2000.0 + (600 + c) as f32);
            }
            for r in 0..h {
                assert_eq!(got[r * w + 6], 2000.0 + (r * 100 + 6) as f32);
                assert_eq!(got[r * w + 7], 2000.0 + (r * 100 + 7) as f32);
            }
        }
    }
    Ok(())
}

#[test]
fn jigsaw_orders_keep_whole_with_probability_beta() {
    let perms = Permutations::embedded().unwrap();
    let mut rng = step_rng(0, 0, 0);
    let orders = perms.draw_orders(20_000, 0.9, &mut rng);
    let whole = orders.iter().filter(|&&o| o == 0).count() as f64 / orders.len() as f64;
    assert!((whole - 0.9).abs() < 0.01, "{whole}");
    assert!(orders.iter().all(|&o| o <= 30));
    let used: BTreeSet<usize> = orders.iter().copied().filter(|&o| o > 0).collect();
    assert_eq!(used.len(), 30, "every permutation is drawn");
    assert!(perms
        .draw_orders(100, 1.0, &mut rng)
        .iter()
        .all(|&o| o == 0));
    assert!(perms.draw_orders(100, 0.0, &mut rng).iter().all(|&o| o > 0));
}

// ---------------------------------------------------------------------------------------
// The every-algorithm smoke test.

#[test]
fn every_algorithm_trains_predicts_and_round_trips() -> Result<()> {
    for a in ALGORITHMS {
        let name = a.name;
        let mut alg = lookup(name).unwrap().build(&spec(name, 5))?;
        assert_eq!(alg.name(), name);
        // Balanced, unequal, and single-domain steps.
        for (step, sizes) in [vec![2, 2], vec![3, 1], vec![2]].iter().enumerate() {
            let losses = alg.update(&batches_of(sizes, step as u64)?)?;
            assert!(!losses.is_empty());
            assert!(
                losses.values().all(|v| v.is_finite()),
                "{name} step {step}: {losses:?}"
            );
        }
        assert_eq!(alg.steps(), 3);
        let l = union(&batches_of(&[2, 1], 9)?)?.l;
        let pred = alg.predict(&l)?;
        assert_eq!(pred.dims(), [3, 2, 32, 32], "{name}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckpt.safetensors");
        alg.checkpoint()?.save(&path)?;
        // Same spec (the seed keys the per-step RNG streams); weights come from the file.
        let mut fresh = lookup(name).unwrap().build(&spec(name, 5))?;
        assert_ne!(
            to_vec(&fresh.predict(&l)?),
            to_vec(&pred),
            "{name}: untrained differs"
        );
        fresh.restore(&Checkpoint::load(&path, &Device::Cpu)?)?;
        assert_eq!(fresh.steps(), 3, "{name}");
        assert_eq!(
            to_vec(&fresh.predict(&l)?),
            to_vec(&pred),
            "{name}: predictions"
        );

        // Resuming equals not stopping: one more step on both.
        let next = batches_of(&[2, 2], 3)?;
        let a_losses = alg.update(&next)?;
        let b_losses = fresh.update(&next)?;
        assert_eq!(a_losses, b_losses, "{name}: losses after resume");
        assert_eq!(
            snapshot(alg.as_ref()),
            snapshot(fresh.as_ref()),
            "{name}: variables"
        );
    }
    Ok(())
}
