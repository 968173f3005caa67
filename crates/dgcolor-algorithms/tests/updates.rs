//! The proposed model's five updates, checkpoints and resume, on tiny deterministic batches.

use std::collections::{BTreeMap, BTreeSet};

use candle_core::{Device, Result, Tensor};
use dgcolor_algorithms::*;
use dgcolor_data::DomainBatch;
use dgcolor_models::ModelConfig;

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

/// Two source domains of `b` images each at 32 px; ab is a fixed function of L (a = L/2,
/// b = -L/4) so that there is something to learn.
fn batches(b: usize, seed: u64) -> Result<Vec<DomainBatch>> {
    let dev = Device::Cpu;
    (0..2)
        .map(|d| {
            let s = seed * 10 + d as u64;
            let l = Tensor::from_vec(values(&[b, 1, 32, 32], s, 1.0), (b, 1, 32, 32), &dev)?;
            let ab = Tensor::cat(&[(&l * 0.5)?, (&l * -0.25)?], 1)?;
            Ok(DomainBatch {
                domain: d,
                l,
                ab,
                class: Tensor::from_vec(
                    (0..b as u32)
                        .map(|i| (i + d as u32) % 3)
                        .collect::<Vec<_>>(),
                    b,
                    &dev,
                )?,
            })
        })
        .collect()
}

fn spec(algorithm: &str, seed: u64) -> AlgorithmSpec {
    let mut model = ModelConfig::new(32, 4, 5, 3, 2);
    if !lookup(algorithm).unwrap().adain {
        model.adain_index = None;
    }
    AlgorithmSpec {
        model,
        hparams: HParams::defaults(lookup(algorithm).unwrap()),
        seed,
        device: Device::Cpu,
    }
}

fn snapshot(alg: &dyn Algorithm) -> BTreeMap<String, Vec<f32>> {
    let data = alg.varmap().data().lock().unwrap();
    data.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
            )
        })
        .collect()
}

/// Trainable variables whose values differ between two snapshots.
fn changed(
    before: &BTreeMap<String, Vec<f32>>,
    after: &BTreeMap<String, Vec<f32>>,
) -> BTreeSet<String> {
    before
        .iter()
        .filter(|(k, v)| params::is_trainable(k) && after[*k] != **v)
        .map(|(k, _)| k.clone())
        .collect()
}

fn trainable_where(
    snap: &BTreeMap<String, Vec<f32>>,
    keep: impl Fn(&str) -> bool,
) -> BTreeSet<String> {
    snap.keys()
        .filter(|k| params::is_trainable(k) && keep(k))
        .cloned()
        .collect()
}

#[test]
fn each_update_changes_exactly_its_parameters() -> Result<()> {
    let mut ours = Ours::new(&spec("ours", 0))?;
    let u = union(&batches(4, 1)?)?;
    let under = |prefixes: &'static [&'static str]| {
        move |k: &str| prefixes.iter().any(|p| k.starts_with(&format!("{p}.")))
    };

    let s0 = snapshot(&ours);
    ours.discriminator_update(&u)?;
    let s1 = snapshot(&ours);
    assert_eq!(
        changed(&s0, &s1),
        trainable_where(&s0, under(&["color_disc"])),
        "update 1 (colour discriminator)"
    );
    // BatchNorm running statistics of the generator move too: its forward runs in train mode.
    assert_ne!(
        s0["head.down2.bn.running_mean"],
        s1["head.down2.bn.running_mean"]
    );

    ours.class_update(&u)?;
    let s2 = snapshot(&ours);
    assert_eq!(
        changed(&s1, &s2),
        trainable_where(&s1, under(&["head", "tail", "class_head"])),
        "update 2 (class)"
    );

    ours.generator_update(&u)?;
    let s3 = snapshot(&ours);
    assert_eq!(
        changed(&s2, &s3),
        trainable_where(&s2, under(&["head", "tail", "decoder"])),
        "update 3 (generator)"
    );

    ours.style_update(&u)?;
    let s4 = snapshot(&ours);
    assert_eq!(
        changed(&s3, &s4),
        trainable_where(&s3, under(&["style_disc"])),
        "update 4 (style discriminator)"
    );

    ours.adversarial_update(&u)?;
    let s5 = snapshot(&ours);
    let head_bn = trainable_where(&s4, |k| k.starts_with("head.") && k.contains(".bn."));
    assert_eq!(head_bn.len(), 4, "down2 and down3 BatchNorm gamma and beta");
    assert_eq!(changed(&s4, &s5), head_bn, "update 5 (adversarial)");
    Ok(())
}

#[test]
fn adversarial_update_pushes_the_style_loss_up() -> Result<()> {
    // With f_s fixed, a step of update 5 should make the domain harder to tell apart. Repeated
    // on a fixed batch, the style cross-entropy measured by update 5 (reported as -w_adv * CE)
    // decreases, i.e. CE increases.
    let mut ours = Ours::new(&spec("ours", 3))?;
    let u = union(&batches(4, 2)?)?;
    let first = ours.adversarial_update(&u)?;
    let mut last = first;
    for _ in 0..5 {
        last = ours.adversarial_update(&u)?;
    }
    assert!(
        last < first,
        "adversarial loss -CE should fall: {first} -> {last}"
    );
    Ok(())
}

#[test]
fn checkpoint_round_trip_gives_identical_predictions() -> Result<()> {
    for name in ["erm", "ours"] {
        let mut alg = lookup(name).unwrap().build(&spec(name, 5))?;
        for step in 0..2 {
            alg.update(&batches(2, step)?)?;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckpt.safetensors");
        alg.checkpoint()?.save(&path)?;
        let mut fresh = lookup(name).unwrap().build(&spec(name, 99))?;
        fresh.restore(&Checkpoint::load(&path, &Device::Cpu)?)?;
        assert_eq!(fresh.steps(), 2);
        let l = union(&batches(3, 7)?)?.l;
        let a = alg.predict(&l)?.flatten_all()?.to_vec1::<f32>()?;
        let b = fresh.predict(&l)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(a, b, "{name}: predictions after a checkpoint round trip");
        // A checkpoint of another algorithm is refused by name.
        let other = if name == "erm" { "ours" } else { "erm" };
        let err = lookup(other)
            .unwrap()
            .build(&spec(other, 0))?
            .restore(&Checkpoint::load(&path, &Device::Cpu)?);
        assert!(err.is_err());
    }
    Ok(())
}

#[test]
fn resumed_training_equals_uninterrupted_training() -> Result<()> {
    for name in ["erm", "ours"] {
        let mut straight = lookup(name).unwrap().build(&spec(name, 11))?;
        for step in 0..4 {
            straight.update(&batches(2, step)?)?;
        }
        let mut first = lookup(name).unwrap().build(&spec(name, 11))?;
        for step in 0..2 {
            first.update(&batches(2, step)?)?;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckpt.safetensors");
        first.checkpoint()?.save(&path)?;
        drop(first);
        let mut resumed = lookup(name).unwrap().build(&spec(name, 11))?;
        resumed.restore(&Checkpoint::load(&path, &Device::Cpu)?)?;
        for step in 2..4 {
            resumed.update(&batches(2, step)?)?;
        }
        assert_eq!(
            snapshot(straight.as_ref()),
            snapshot(resumed.as_ref()),
            "{name}: every variable after resume"
        );
    }
    Ok(())
}

#[test]
fn training_loss_is_finite_and_decreases() -> Result<()> {
    for name in ["erm", "ours"] {
        let mut alg = lookup(name).unwrap().build(&spec(name, 2))?;
        let fixed = batches(4, 3)?;
        let mut l1 = Vec::new();
        for _ in 0..40 {
            let losses = alg.update(&fixed)?;
            assert!(losses.values().all(|v| v.is_finite()), "{name}: {losses:?}");
            l1.push(losses["g_l1"]);
        }
        let head: f32 = l1[..5].iter().sum::<f32>() / 5.0;
        let tail: f32 = l1[35..].iter().sum::<f32>() / 5.0;
        assert!(
            tail < 0.9 * head,
            "{name}: L1 should fall on a fixed batch: {head} -> {tail}"
        );
    }
    Ok(())
}

#[test]
fn adam_matches_pytorch() -> Result<()> {
    // torch 2.15.0 (CPU):
    //   p = torch.tensor([1.0, -2.0], requires_grad=True)
    //   opt = torch.optim.Adam([p], lr=0.1, betas=(0.5, 0.999))
    //   for _ in range(3):
    //       opt.zero_grad(); (p ** 2).sum().backward(); opt.step()
    //   print(p.tolist())  # [0.7069713473320007, -1.7032160758972168]
    let p = candle_core::Var::new(&[1.0f32, -2.0], &Device::Cpu)?;
    let mut opt = Adam::new(vec![("p".into(), p.clone())], AdamConfig::reference(0.1))?;
    for _ in 0..3 {
        let loss = p.as_tensor().sqr()?.sum_all()?;
        opt.step(&loss.backward()?)?;
    }
    let v = p.as_tensor().to_vec1::<f32>()?;
    assert!(
        (v[0] - 0.706_971_35).abs() < 1e-6 && (v[1] + 1.703_216_1).abs() < 1e-6,
        "{v:?}"
    );
    Ok(())
}
