//! Inter-domain Mixup (Yan et al., "Improve Unsupervised Domain Adaptation with Mixup
//! Training", arXiv 2001.00677, 2020; Xu et al., "Adversarial Domain Adaptation with Domain
//! Mixup", AAAI 2020; Wang et al., "Heterogeneous Domain Generalization via Domain Mixup",
//! ICASSP 2020; after Zhang et al., "mixup", ICLR 2018), in DomainBed's form (Gulrajani &
//! Lopez-Paz, ICLR 2021; `domainbed/algorithms.py`, class `Mixup`), on the pix2pix
//! generator (docs/METHOD.md §4).
//!
//! The source batches are put in a random order and each is paired with the next,
//! cyclically (DomainBed's `random_pairs_of_minibatches`). For each pair (i, j) one
//! `lam ~ Beta(alpha, alpha)` mixes inputs *and* targets: `L = lam L_i + (1 - lam) L_j`,
//! `ab = lam ab_i + (1 - lam) ab_j` (Lab mixes linearly per channel, so the mixed target is
//! the colour of the mixed input under the same convex combination). The colour
//! discriminator's update sees the mixed real pairs, and the generator minimises the mean
//! over pairs of the task loss against the mixed target.
//!
//! Deviations from DomainBed's Mixup:
//! - DomainBed mixes the two classification losses with lam
//!   (`lam CE(y_i) + (1 - lam) CE(y_j)`); a regression target can be mixed directly, which for
//!   the L1 term is the natural (and for MSE the equivalent-up-to-a-constant) choice.
//! - All pairs go through the generator as one batch (one BatchNorm batch, like the union in
//!   every other method) and each pair's loss is the mean over its slice; DomainBed runs one
//!   forward per pair.
//! - As in DomainBed, each pair is truncated to its shorter batch; a single domain in a step
//!   is paired with itself, which makes the mixture the identity.

use candle_core::{bail, Result, Tensor};
use dgcolor_data::{BatchMode, DomainBatch};
use rand_distr::{Beta, Distribution};

use crate::algorithm::{scalar, step_rng, trained, Algorithm, AlgorithmSpec, Losses};
use crate::baseline::{generator_vars, mean_task, per_domain_task, random_pairs, train_mode};
use crate::entry::AlgorithmEntry;
use crate::hparams::{spec, Dist};
use crate::optim::Adam;
use crate::pix2pix::Pix2Pix;

/// The registry entry (see [`crate::registry`]).
pub const ENTRY: AlgorithmEntry = AlgorithmEntry {
    name: "mixup",
    summary: "pix2pix on inter-domain mixtures of L and ab with lam ~ Beta(alpha, alpha) (Yan et al. 2020)",
    adain: false,
    batches: BatchMode::Balanced,
    hparams: &[spec(
    "alpha",
    0.2,
    Dist::LogUniform(-1.0, 1.0),
    "lam ~ Beta(alpha, alpha) mixes each pair of domains",
)],
    make: |spec| Ok(Box::new(Mixup::new(spec)?)),
};

const RNG_PAIRS: u64 = 0;
const RNG_LAMBDA: u64 = 1;
const RNG_DROPOUT_DISC: u64 = 2;
const RNG_DROPOUT_GEN: u64 = 3;

/// Mixed pairs concatenated along the batch.
pub struct Mixed {
    /// `[N, 1, S, S]`.
    pub l: Tensor,
    /// `[N, 2, S, S]`.
    pub ab: Tensor,
    /// `(pair, start, len)` of each pair's slice.
    pub slices: Vec<(usize, usize, usize)>,
}

/// Mixes pair k = (i, j) of `batches` with `lams[k]`: the first `min(n_i, n_j)` images of each.
pub fn mix_pairs(batches: &[DomainBatch], pairs: &[(usize, usize)], lams: &[f64]) -> Result<Mixed> {
    if pairs.is_empty() || pairs.len() != lams.len() {
        bail!(
            "mixup: {} pairs and {} mixing weights",
            pairs.len(),
            lams.len()
        )
    }
    let mut ls = Vec::with_capacity(pairs.len());
    let mut abs = Vec::with_capacity(pairs.len());
    let mut slices = Vec::with_capacity(pairs.len());
    let mut start = 0;
    for (k, (&(i, j), &lam)) in pairs.iter().zip(lams).enumerate() {
        let (bi, bj) = (&batches[i], &batches[j]);
        let n = bi.l.dim(0)?.min(bj.l.dim(0)?);
        let mix = |a: &Tensor, b: &Tensor| -> Result<Tensor> {
            (a.narrow(0, 0, n)? * lam)? + (b.narrow(0, 0, n)? * (1.0 - lam))?
        };
        ls.push(mix(&bi.l, &bj.l)?);
        abs.push(mix(&bi.ab, &bj.ab)?);
        slices.push((k, start, n));
        start += n;
    }
    Ok(Mixed {
        l: Tensor::cat(&ls, 0)?,
        ab: Tensor::cat(&abs, 0)?,
        slices,
    })
}

pub struct Mixup {
    core: Pix2Pix,
    opt_gen: Adam,
    beta: Beta<f64>,
    seed: u64,
    step: u64,
}

impl Mixup {
    pub fn new(spec: &AlgorithmSpec) -> Result<Self> {
        let alpha = spec.hparams.get("alpha");
        let beta = Beta::new(alpha, alpha)
            .map_err(|e| candle_core::Error::Msg(format!("mixup: alpha {alpha}: {e}")))?;
        let (core, ()) = Pix2Pix::new(spec, |_| Ok(()))?;
        Ok(Self {
            opt_gen: Adam::new(generator_vars(&core.varmap), core.adam)?,
            core,
            beta,
            seed: spec.seed,
            step: 0,
        })
    }

    /// This step's pairs and mixing weights.
    pub fn draw(&self, n_batches: usize) -> (Vec<(usize, usize)>, Vec<f64>) {
        let pairs = random_pairs(n_batches, &mut step_rng(self.seed, self.step, RNG_PAIRS));
        let mut rng = step_rng(self.seed, self.step, RNG_LAMBDA);
        let lams = pairs.iter().map(|_| self.beta.sample(&mut rng)).collect();
        (pairs, lams)
    }
}

impl Algorithm for Mixup {
    fn name(&self) -> &'static str {
        ENTRY.name
    }

    fn update(&mut self, batches: &[DomainBatch]) -> Result<Losses> {
        if batches.is_empty() {
            bail!("update: no batches")
        }
        let (pairs, lams) = self.draw(batches.len());
        let m = mix_pairs(batches, &pairs, &lams)?;
        let d = self.core.discriminator_step(
            &m.l,
            &m.ab,
            &train_mode(self.seed, self.step, RNG_DROPOUT_DISC),
        )?;
        let mode = train_mode(self.seed, self.step, RNG_DROPOUT_GEN);
        let fake = self.core.generator.forward(&m.l, &mode)?;
        let tasks = per_domain_task(&self.core, &m.l, &fake, &m.ab, &m.slices)?;
        let mean = mean_task(&tasks)?;
        let total = mean.total;
        self.opt_gen.step(&total.backward()?)?;
        self.step += 1;
        Ok(Losses::from([
            ("d", scalar(&d)?),
            ("g", scalar(&total)?),
            ("g_l1", scalar(&mean.l1)?),
            ("g_gan", scalar(&mean.gan)?),
            ("lam", (lams.iter().sum::<f64>() / lams.len() as f64) as f32),
        ]))
    }
}

trained!(Mixup, ["disc" => core.opt_disc, "gen" => opt_gen]);
