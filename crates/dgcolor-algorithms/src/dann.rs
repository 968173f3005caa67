//! DANN: Ganin et al., "Domain-Adversarial Training of Neural Networks", JMLR 2016, in
//! DomainBed's alternating form (Gulrajani & Lopez-Paz, "In Search of Lost Domain
//! Generalization", ICLR 2021; `domainbed/algorithms.py`, class `AbstractDANN`), on the
//! pix2pix generator (docs/METHOD.md §4).
//!
//! Every iteration starts with the colour-discriminator update (step 1 of every method).
//! Then, like DomainBed, an update counter decides the phase: for `d_steps_per_g` iterations
//! out of every `d_steps_per_g + 1` the domain discriminator (an MLP on the pooled feature f
//! at `align_at`) learns the source domain, `CE(disc(f), domain)`, updating only itself; in
//! the remaining one the generator minimises `task - lambda * sg(task) * CE(disc(f),
//! domain)`, updating E_h, E_t and the decoder only. So with DomainBed's default
//! `d_steps_per_g = 1` the generator is updated in every second iteration only, and with `k`
//! in one of `k + 1`: a run of N steps gives the generator N / (k + 1) updates, fewer than
//! every other method gets. `d_steps_per_g = 0` updates both in every iteration (the
//! discriminator first, as a gradient-reversal layer would in one backward pass), for a
//! comparison at an equal number of generator updates.
//!
//! Deviations from DomainBed's DANN, and why:
//! - The confusion term is scaled by the task loss, `sg(task)`
//!   ([`crate::baseline::task_scaled`]): the task loss is 10-50 here instead of about 1, so
//!   DomainBed's `lambda` would otherwise be 10-50x weaker than DomainBed meant; its search
//!   range is 10^U(-2, 1).
//! - `align_at` chooses the feature ([`crate::baseline::AlignAt`]): x_D, DomainBed's
//!   featurizer output, is bypassed by the U-Net's skips.
//! - No gradient penalty on the discriminator input (DomainBed `grad_penalty`, whose default
//!   is 0 anyway): it needs second-order gradients, which candle does not have.
//! - The discriminator is our [`MlpHead`] (Linear C->256, 256->128, 128->n_domains, LeakyReLU
//!   0.2, C the feature's channels) instead of DomainBed's MLP (width 256, ReLU, dropout); no weight decay, since our
//!   Adam (the reference's, betas 0.5/0.999) has none; its learning rate is `lr_d`.
//! - The task loss replaces classification cross-entropy, and the generator runs once per
//!   iteration on the union of the per-domain batches (as DomainBed concatenates them).
//! - No conditional variant (CDANN): colourization has no class-conditional output.

use std::collections::BTreeMap;

use candle_core::Result;
use dgcolor_data::{BatchMode, DomainBatch};
use dgcolor_losses as losses;
use dgcolor_models::MlpHead;

use crate::algorithm::{scalar, trained, union, Algorithm, AlgorithmSpec, Losses, Union};
use crate::baseline::{
    forward_with_feature, generator_vars, task_scaled, train_mode, AlignAt, ALIGN_AT,
};
use crate::entry::AlgorithmEntry;
use crate::hparams::{spec, Dist};
use crate::optim::{Adam, AdamConfig};
use crate::params;
use crate::pix2pix::Pix2Pix;

/// The registry entry (see [`crate::registry`]).
pub const ENTRY: AlgorithmEntry = AlgorithmEntry {
    name: "dann",
    summary: "pix2pix + domain-adversarial MLP on the pooled bottleneck (or z), alternating D and G steps (Ganin et al. 2016)",
    adain: false,
    batches: BatchMode::Balanced,
    hparams: &[
        spec(
            "lambda",
            1.0,
            Dist::LogUniform(-2.0, 1.0),
            "weight of the domain-confusion term relative to the task loss: G minimises task - lambda * sg(task) * CE_domain",
        ),
        spec(
            "d_steps_per_g",
            1.0,
            Dist::Choice(&[0.0, 1.0, 2.0, 4.0]),
            "domain-discriminator iterations per generator iteration (DomainBed 2^U{0..3}); 0 = both every iteration",
        ),
        spec(
            "lr_d",
            1e-3,
            Dist::LogUniform(-4.5, -2.5),
            "Adam learning rate of the domain discriminator",
        ),
        ALIGN_AT,
    ],
    make: |spec| Ok(Box::new(Dann::new(spec)?)),
};

/// VarMap prefix of the domain discriminator.
pub const DOMAIN_DISC: &str = "domain_disc";

const RNG_DROPOUT_DISC: u64 = 0;
const RNG_DROPOUT_GEN: u64 = 1;

/// Which networks the second update of an iteration trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    DomainDiscriminator,
    Generator,
    /// `d_steps_per_g = 0`: the discriminator, then the generator.
    Both,
}

pub struct Dann {
    core: Pix2Pix,
    domain_disc: MlpHead,
    opt_gen: Adam,
    opt_domain: Adam,
    lambda: f64,
    d_steps_per_g: u64,
    align_at: AlignAt,
    /// DomainBed's `update_count`: iterations completed, checkpointed.
    update_count: u64,
    seed: u64,
    step: u64,
}

impl Dann {
    pub fn new(spec: &AlgorithmSpec) -> Result<Self> {
        let m = &spec.model;
        let h = &spec.hparams;
        let align_at = AlignAt::from_hparam(h.get("align_at"))?;
        let (core, domain_disc) = Pix2Pix::new(spec, |vb| {
            MlpHead::new(align_at.width(m), m.n_domains, vb.pp(DOMAIN_DISC))
        })?;
        let d_steps = h.get("d_steps_per_g");
        if !(d_steps >= 0.0 && d_steps.fract() == 0.0) {
            candle_core::bail!("dann: d_steps_per_g must be a non-negative integer, got {d_steps}")
        }
        let opt_gen = Adam::new(generator_vars(&core.varmap), core.adam)?;
        let opt_domain = Adam::new(
            params::trainable(&core.varmap, DOMAIN_DISC),
            AdamConfig::reference(h.get("lr_d")),
        )?;
        Ok(Self {
            core,
            domain_disc,
            opt_gen,
            opt_domain,
            lambda: h.get("lambda"),
            d_steps_per_g: d_steps as u64,
            align_at,
            update_count: 0,
            seed: spec.seed,
            step: 0,
        })
    }

    /// The phase of the next iteration (DomainBed: `update_count % (1 + d_steps) < d_steps`
    /// trains the discriminator).
    pub fn phase(&self) -> Phase {
        if self.d_steps_per_g == 0 {
            Phase::Both
        } else if self.update_count % (1 + self.d_steps_per_g) < self.d_steps_per_g {
            Phase::DomainDiscriminator
        } else {
            Phase::Generator
        }
    }

    /// The feature map at `align_at` (train-mode BatchNorm).
    fn feature(&self, u: &Union) -> Result<candle_core::Tensor> {
        let level = self.align_at.level(self.core.generator.config());
        let enc = self.core.generator.encode(&u.l, true, &[level])?;
        Ok(enc.feature(level)?.clone())
    }

    /// `CE(disc(f), domain)` on the current networks (train-mode BatchNorm), for probes.
    pub fn domain_loss(&self, u: &Union) -> Result<f32> {
        let logits = self.domain_disc.forward(&self.feature(u)?)?;
        scalar(&losses::cross_entropy(&logits, &u.domain)?)
    }

    /// The domain discriminator's update on detached features.
    pub fn discriminator_update(&mut self, u: &Union) -> Result<f32> {
        let f = self.feature(u)?.detach(); // [B, C, h, w]
        let ce = losses::cross_entropy(&self.domain_disc.forward(&f)?, &u.domain)?;
        self.opt_domain.step(&ce.backward()?)?;
        scalar(&ce)
    }

    /// The generator's update on `task - lambda * sg(task) * CE(disc(f), domain)`.
    pub fn generator_update(&mut self, u: &Union) -> Result<Losses> {
        let mode = train_mode(self.seed, self.step, RNG_DROPOUT_GEN);
        let (fake, feature) =
            forward_with_feature(&self.core.generator, &u.l, &mode, self.align_at)?;
        let task = self.core.task_loss(&u.l, &fake, &u.ab)?;
        // The MLP head pools the feature map itself: its input is f.
        let ce = losses::cross_entropy(&self.domain_disc.forward(&feature)?, &u.domain)?;
        let total = task_scaled(&task.total, -self.lambda, &ce)?;
        self.opt_gen.step(&total.backward()?)?;
        Ok(Losses::from([
            ("g", scalar(&total)?),
            ("g_task", scalar(&task.total)?),
            ("g_l1", scalar(&task.l1)?),
            ("g_gan", scalar(&task.gan)?),
            ("domain", scalar(&ce)?),
        ]))
    }
}

impl Algorithm for Dann {
    fn name(&self) -> &'static str {
        ENTRY.name
    }

    fn update(&mut self, batches: &[DomainBatch]) -> Result<Losses> {
        let u = union(batches)?;
        let mode = train_mode(self.seed, self.step, RNG_DROPOUT_DISC);
        let d = self.core.discriminator_step(&u.l, &u.ab, &mode)?;
        let mut out = match self.phase() {
            Phase::DomainDiscriminator => Losses::from([("disc", self.discriminator_update(&u)?)]),
            Phase::Generator => self.generator_update(&u)?,
            Phase::Both => {
                let disc = self.discriminator_update(&u)?;
                let mut out = self.generator_update(&u)?;
                out.insert("disc", disc);
                out
            }
        };
        out.insert("d", scalar(&d)?);
        self.update_count += 1;
        self.step += 1;
        Ok(out)
    }
}

trained!(Dann, ["disc" => core.opt_disc, "gen" => opt_gen, "domain" => opt_domain] {
    fn extra_state(&self) -> BTreeMap<String, Vec<f64>> {
        BTreeMap::from([("update_count".into(), vec![self.update_count as f64])])
    }

    fn restore_extra_state(
        &mut self,
        extra: &BTreeMap<String, Vec<f64>>,
        _: crate::algorithm::Token,
    ) -> Result<()> {
        self.update_count = match extra.get("update_count").map(Vec::as_slice) {
            Some([c]) => *c as u64,
            _ => candle_core::bail!("checkpoint: dann state lacks `update_count`"),
        };
        Ok(())
    }
});

impl Dann {
    /// DomainBed's update counter (iterations done), for tests and logs.
    pub fn update_count(&self) -> u64 {
        self.update_count
    }
}
