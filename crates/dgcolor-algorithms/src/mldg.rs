//! MLDG: Li, Yang, Song & Hospedales, "Learning to Generalize: Meta-Learning for Domain
//! Generalization", AAAI 2018, first-order, in DomainBed's form (Gulrajani & Lopez-Paz,
//! ICLR 2021; `domainbed/algorithms.py`, class `MLDG`), on the pix2pix generator
//! (docs/METHOD.md §4).
//!
//! After the colour-discriminator update, the source batches are put in a random order and
//! each is paired with the next, cyclically (DomainBed's `random_pairs_of_minibatches`): one
//! meta-train and one meta-test domain per pair (n_meta_test = 1; with two sources a larger
//! meta-test set would leave nothing to meta-train on). For every pair (i, j), starting from
//! the current generator theta:
//! 1. G_i = grad of task_i at theta; one step of a *fresh* Adam gives theta';
//! 2. G_j = grad of task_j at theta';
//! 3. the pair contributes `(G_i + beta * G_j) / n_pairs`.
//!
//! Then theta is restored, and after all pairs the generator's own Adam takes one step with
//! the accumulated gradient ([`mldg_gradients`], testable on any set of variables).
//!
//! Deviations from MLDG / DomainBed:
//! - First order only (as DomainBed): the gradient of G_j through the inner step would need
//!   second-order gradients, which candle does not have.
//! - Instead of deep-copying the network, the inner step is taken on the generator's own
//!   variables and undone afterwards (same arithmetic). BatchNorm running statistics are *not*
//!   undone: DomainBed never runs its real network in training, so with BatchNorm in train
//!   mode its running statistics would stay at their initial values; here they follow the
//!   inner passes' batches, which eval-mode prediction needs.
//! - The task loss replaces classification cross-entropy. Unequal batches are used whole
//!   (DomainBed truncates each pair to the shorter one, which is irrelevant for a per-batch
//!   mean). With a single domain in a step it is paired with itself, as in DomainBed.

use candle_core::{Result, Tensor, Var};
use dgcolor_data::{BatchMode, DomainBatch};

use crate::algorithm::{scalar, step_rng, trained, union, Algorithm, AlgorithmSpec, Losses};
use crate::baseline::{generator_vars, grad_store, random_pairs, restore, snapshot, train_mode};
use crate::entry::AlgorithmEntry;
use crate::hparams::{spec, Dist};
use crate::optim::{Adam, AdamConfig};
use crate::pix2pix::Pix2Pix;

/// The registry entry (see [`crate::registry`]).
pub const ENTRY: AlgorithmEntry = AlgorithmEntry {
    name: "mldg",
    summary: "pix2pix with first-order meta-learning: meta-train step on one domain, meta-test on another (Li et al. 2018)",
    adain: false,
    batches: BatchMode::Balanced,
    hparams: &[spec(
    "beta",
    1.0,
    Dist::LogUniform(-1.0, 1.0),
    "weight of the meta-test gradient (first order)",
)],
    make: |spec| Ok(Box::new(Mldg::new(spec)?)),
};

const RNG_DROPOUT_DISC: u64 = 0;
const RNG_PAIRS: u64 = 1;
/// Dropout purposes of the inner passes start here (one per forward).
const RNG_DROPOUT_INNER: u64 = 16;

/// The first-order MLDG gradient of one step and its objective.
pub struct MldgGradients {
    /// One gradient per variable, in the order of `vars`.
    pub grads: Vec<Tensor>,
    /// `mean over pairs of (loss_i(theta) + beta * loss_j(theta'))`.
    pub objective: f64,
}

/// First-order MLDG over `pairs` of (meta-train, meta-test) batch indices:
/// `sum_pairs (G_i(theta) + beta * G_j(theta'_i)) / n_pairs`, where `theta'_i` is one step
/// of a fresh Adam (`inner`) on `loss(i)` from theta. `loss(k, call)` evaluates batch k at
/// the variables' current values (`call` counts forward passes, for dropout seeds). The
/// variables hold theta again on return; variables without a gradient get zeros.
pub fn mldg_gradients(
    vars: &[(String, Var)],
    pairs: &[(usize, usize)],
    mut loss: impl FnMut(usize, u64) -> Result<Tensor>,
    inner: AdamConfig,
    beta: f64,
) -> Result<MldgGradients> {
    if pairs.is_empty() {
        candle_core::bail!("mldg: no (meta-train, meta-test) pairs")
    }
    let theta = snapshot(vars)?;
    let n = pairs.len() as f64;
    let mut acc: Vec<Tensor> = theta
        .iter()
        .map(|t| t.zeros_like())
        .collect::<Result<_>>()?;
    let mut objective = 0.0;
    let mut call = 0u64;
    let grads_of = |store: &candle_core::backprop::GradStore| -> Result<Vec<Tensor>> {
        vars.iter()
            .map(|(_, v)| match store.get(v.as_tensor()) {
                Some(g) => Ok(g.clone()),
                None => v.as_tensor().zeros_like(),
            })
            .collect()
    };
    for &(i, j) in pairs {
        let loss_i = loss(i, call)?;
        call += 1;
        let store_i = loss_i.backward()?;
        let g_i = grads_of(&store_i)?;
        let mut inner_opt = Adam::new(vars.to_vec(), inner)?;
        inner_opt.step(&store_i)?;
        let loss_j = loss(j, call)?;
        call += 1;
        let g_j = grads_of(&loss_j.backward()?)?;
        for (a, (gi, gj)) in acc.iter_mut().zip(g_i.iter().zip(&g_j)) {
            *a = (&*a + ((gi + (gj * beta)?)? / n)?)?;
        }
        objective += (scalar(&loss_i)? as f64 + beta * scalar(&loss_j)? as f64) / n;
        restore(vars, &theta)?;
    }
    Ok(MldgGradients {
        grads: acc,
        objective,
    })
}

pub struct Mldg {
    core: Pix2Pix,
    gen_vars: Vec<(String, Var)>,
    opt_gen: Adam,
    beta: f64,
    seed: u64,
    step: u64,
}

impl Mldg {
    pub fn new(spec: &AlgorithmSpec) -> Result<Self> {
        let (core, ()) = Pix2Pix::new(spec, |_| Ok(()))?;
        let gen_vars = generator_vars(&core.varmap);
        let opt_gen = Adam::new(gen_vars.clone(), core.adam)?;
        Ok(Self {
            core,
            gen_vars,
            opt_gen,
            beta: spec.hparams.get("beta"),
            seed: spec.seed,
            step: 0,
        })
    }
}

impl Algorithm for Mldg {
    fn name(&self) -> &'static str {
        ENTRY.name
    }

    fn update(&mut self, batches: &[DomainBatch]) -> Result<Losses> {
        let u = union(batches)?;
        let d = self.core.discriminator_step(
            &u.l,
            &u.ab,
            &train_mode(self.seed, self.step, RNG_DROPOUT_DISC),
        )?;
        let pairs = random_pairs(
            batches.len(),
            &mut step_rng(self.seed, self.step, RNG_PAIRS),
        );
        let (core, seed, step) = (&self.core, self.seed, self.step);
        let meta = mldg_gradients(
            &self.gen_vars,
            &pairs,
            |k, call| {
                let b = &batches[k];
                let mode = train_mode(seed, step, RNG_DROPOUT_INNER + call);
                let fake = core.generator.forward(&b.l, &mode)?;
                Ok(core.task_loss(&b.l, &fake, &b.ab)?.total)
            },
            self.core.adam,
            self.beta,
        )?;
        self.opt_gen
            .step(&grad_store(&self.gen_vars, &meta.grads)?)?;
        self.step += 1;
        Ok(Losses::from([
            ("d", scalar(&d)?),
            ("g", meta.objective as f32),
        ]))
    }
}

trained!(Mldg, ["disc" => core.opt_disc, "gen" => opt_gen]);
