//! GroupDRO: Sagawa, Koh, Hashimoto & Liang, "Distributionally Robust Neural Networks for
//! Group Shifts", ICLR 2020, in DomainBed's form (Gulrajani & Lopez-Paz, ICLR 2021;
//! `domainbed/algorithms.py`, class `GroupDRO`), on the pix2pix generator (docs/METHOD.md §4).
//!
//! After the colour-discriminator update, each source domain m gets its task loss
//! `task_m` (`100 * L1 + LSGAN` on its own images), the persistent domain weights are
//! updated `q_m <- q_m * exp(eta * task_m / mean_k task_k)` and renormalised, and the
//! generator minimises `sum_m q_m task_m`. q is part of the checkpoint.
//!
//! Deviations from DomainBed's GroupDRO, and why:
//! - The task loss replaces classification cross-entropy; D scores the union once and each
//!   domain's LSGAN term is its slice.
//! - The exponent uses each domain's loss relative to the mean over the domains of the
//!   step. DomainBed's `eta` (default 1e-2, search 10^U(-3, -1)) is tuned for cross-entropies
//!   of about 1; a task loss of 10-50 would make `eta * loss` 10-50x larger, and q would
//!   saturate on the worst domain within a few steps. Relative losses are about 1, so `eta`
//!   keeps DomainBed's scale and search range.
//! - q is kept as log-weights and renormalised with log-sum-exp (the same exponentiated-
//!   gradient update, safe from overflow). q starts uniform (DomainBed starts at ones, which
//!   the first renormalisation makes uniform anyway).
//! - q has one entry per source domain of the model (`n_domains`), indexed by the batch's
//!   domain id; a domain absent from a step keeps its log-weight (DomainBed assumes every
//!   domain is in every step).

use std::collections::BTreeMap;

use candle_core::{bail, Result, Tensor};
use dgcolor_data::{BatchMode, DomainBatch};

use crate::algorithm::{scalar, trained, union, Algorithm, AlgorithmSpec, Losses};
use crate::baseline::{domain_slices, generator_vars, mean_task, per_domain_task, train_mode};
use crate::entry::AlgorithmEntry;
use crate::hparams::{spec, Dist};
use crate::optim::Adam;
use crate::pix2pix::Pix2Pix;

/// The registry entry (see [`crate::registry`]).
pub const ENTRY: AlgorithmEntry = AlgorithmEntry {
    name: "group_dro",
    summary: "pix2pix minimising an adaptively weighted sum of per-domain task losses (Sagawa et al. 2020)",
    adain: false,
    batches: BatchMode::Balanced,
    hparams: &[spec(
    "eta",
    1e-2,
    Dist::LogUniform(-3.0, -1.0),
    "step size of the exponentiated-gradient update of the domain weights q",
)],
    make: |spec| Ok(Box::new(GroupDro::new(spec)?)),
};

const RNG_DROPOUT_DISC: u64 = 0;
const RNG_DROPOUT_GEN: u64 = 1;

pub struct GroupDro {
    core: Pix2Pix,
    opt_gen: Adam,
    eta: f64,
    /// log q, one per source domain, normalised so that `sum exp(log_q) = 1`.
    log_q: Vec<f64>,
    seed: u64,
    step: u64,
}

impl GroupDro {
    pub fn new(spec: &AlgorithmSpec) -> Result<Self> {
        let (core, ()) = Pix2Pix::new(spec, |_| Ok(()))?;
        let opt_gen = Adam::new(generator_vars(&core.varmap), core.adam)?;
        let n = spec.model.n_domains;
        if n == 0 {
            bail!("group_dro: the model has no source domains")
        }
        Ok(Self {
            core,
            opt_gen,
            eta: spec.hparams.get("eta"),
            log_q: vec![-(n as f64).ln(); n],
            seed: spec.seed,
            step: 0,
        })
    }

    /// The current domain weights q (sum 1).
    pub fn q(&self) -> Vec<f64> {
        self.log_q.iter().map(|l| l.exp()).collect()
    }

    /// `log q_m += eta * loss_m / mean(loss)` for the domains present, then renormalise.
    fn update_weights(&mut self, domain_losses: &[(usize, f64)]) -> Result<()> {
        let mean = domain_losses.iter().map(|(_, l)| l).sum::<f64>() / domain_losses.len() as f64;
        for &(m, loss) in domain_losses {
            let Some(lq) = self.log_q.get_mut(m) else {
                bail!(
                    "group_dro: batch of domain {m}, but the model has {} source domains",
                    self.log_q.len()
                )
            };
            *lq += self.eta * loss / mean.max(f64::MIN_POSITIVE);
        }
        let max = self.log_q.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + self.log_q.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
        self.log_q.iter_mut().for_each(|l| *l -= lse);
        Ok(())
    }
}

impl Algorithm for GroupDro {
    fn name(&self) -> &'static str {
        ENTRY.name
    }

    fn update(&mut self, batches: &[DomainBatch]) -> Result<Losses> {
        let u = union(batches)?;
        let slices = domain_slices(batches)?;
        let d = self.core.discriminator_step(
            &u.l,
            &u.ab,
            &train_mode(self.seed, self.step, RNG_DROPOUT_DISC),
        )?;
        let mode = train_mode(self.seed, self.step, RNG_DROPOUT_GEN);
        let fake = self.core.generator.forward(&u.l, &mode)?;
        let tasks = per_domain_task(&self.core, &u.l, &fake, &u.ab, &slices)?;
        let domain_losses = slices
            .iter()
            .zip(&tasks)
            .map(|(&(m, _, _), t)| Ok((m, scalar(&t.total)? as f64)))
            .collect::<Result<Vec<_>>>()?;
        self.update_weights(&domain_losses)?;
        let q = self.q();
        let weighted = slices
            .iter()
            .zip(&tasks)
            .map(|(&(m, _, _), t)| &t.total * q[m])
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Tensor> = weighted.iter().collect();
        let total = Tensor::stack(&refs, 0)?.sum_all()?;
        self.opt_gen.step(&total.backward()?)?;
        self.step += 1;
        let mean = mean_task(&tasks)?;
        let mut out = Losses::from([
            ("d", scalar(&d)?),
            ("g", scalar(&total)?),
            ("g_l1", scalar(&mean.l1)?),
            ("g_gan", scalar(&mean.gan)?),
        ]);
        const Q_KEYS: [&str; 4] = ["q0", "q1", "q2", "q3"];
        for (m, qm) in q.iter().enumerate().take(Q_KEYS.len()) {
            out.insert(Q_KEYS[m], *qm as f32);
        }
        Ok(out)
    }
}

trained!(GroupDro, ["disc" => core.opt_disc, "gen" => opt_gen] {
    fn extra_state(&self) -> BTreeMap<String, Vec<f64>> {
        BTreeMap::from([
            ("log_q".into(), self.log_q.clone()),
            // For readers of the metadata; `log_q` is what is restored.
            ("q".into(), self.q()),
        ])
    }

    fn restore_extra_state(
        &mut self,
        extra: &BTreeMap<String, Vec<f64>>,
        _: crate::algorithm::Token,
    ) -> Result<()> {
        match extra.get("log_q") {
            Some(lq) if lq.len() == self.log_q.len() => self.log_q = lq.clone(),
            other => bail!(
                "checkpoint: group_dro needs `log_q` with {} entries, found {:?}",
                self.log_q.len(),
                other
            ),
        }
        Ok(())
    }
});
