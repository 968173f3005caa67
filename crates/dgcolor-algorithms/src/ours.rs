//! The proposed model of Lee et al., "Bridging the Domain Gap Towards Generalization in
//! Automatic Colorization" (ECCV 2022; reference code Lhyejin/DG-Colorization).
//!
//! The head encoder is made content-biased: a style discriminator learns the source domain
//! from content-randomised z, and an adversarial update of the head's BatchNorm affine
//! parameters alone makes that impossible; a class head keeps semantics in the bottleneck;
//! the decoder gets colour statistics back through the AdaIN skip (set in the model config).
//!
//! One iteration is five updates in the reference's order, each with a fresh forward pass:
//! 1. colour discriminator; 2. class (E_h, E_t, f_c); 3. generator (E_h, E_t, decoder);
//! 4. style discriminator f_s on CR(z); 5. adversarial `-w_adv * CE` on E_h's BN affine.
//!
//! Every network has its own Adam (lr, betas 0.5/0.999), as in the reference, so step counts
//! and moments match it update for update. One consequence, shared with the reference:
//! `w_adv` is inert. Update 5 steps its own Adam on the adversarial loss alone, and Adam's
//! step does not change when a loss is scaled (up to its epsilon), so any positive `w_adv`
//! trains the same network; it is kept as a reference-compatible setting (and its sign
//! matters). The search space does not vary it.
//!
//! Ablation switches (hyperparameters `use_class`, `use_adv`, `use_cr`) skip update 2, skip
//! updates 4-5, or feed z to f_s without content randomization.

use candle_core::{Result, Tensor};
use dgcolor_data::{BatchMode, DomainBatch};
use dgcolor_losses as losses;
use dgcolor_models::{content_randomize, prefix, ClassHead, Mode, StyleDiscriminator};
use rand::seq::SliceRandom;
use rand::RngCore;

use crate::algorithm::{scalar, step_rng, trained, union, Algorithm, AlgorithmSpec, Losses, Union};
use crate::entry::AlgorithmEntry;
use crate::hparams::{spec, Dist};
use crate::optim::Adam;
use crate::params;
use crate::pix2pix::Pix2Pix;

/// The registry entry (see [`crate::registry`]).
pub const ENTRY: AlgorithmEntry = AlgorithmEntry {
    name: "ours",
    summary: "the proposed model: CR + style discriminator + BN-only adversarial update, class head, AdaIN skip",
    adain: true,
    batches: BatchMode::Mixed,
    hparams: &[
    spec(
        "w_adv",
        1.0,
        Dist::Choice(&[0.1, 0.3, 1.0, 3.0]),
        "weight of the adversarial style loss (reference CLI 1.0; its yaml's 0.1 is never read); inert: update 5's own Adam does not see the loss's scale",
    ),
    spec(
        "use_class",
        1.0,
        Dist::Choice(&[1.0]),
        "1 = run the class-head update (2), 0 = skip it (ablation)",
    ),
    spec(
        "use_adv",
        1.0,
        Dist::Choice(&[1.0]),
        "1 = run the style updates (4, 5), 0 = skip them (ablation)",
    ),
    spec(
        "use_cr",
        1.0,
        Dist::Choice(&[1.0]),
        "1 = content-randomise z before the style discriminator, 0 = feed z as is (ablation)",
    ),
],
    make: |spec| Ok(Box::new(Ours::new(spec)?)),
};

/// RNG purposes within one step.
const RNG_DROPOUT_DISC: u64 = 0;
const RNG_DROPOUT_GEN: u64 = 1;
const RNG_PERM_STYLE: u64 = 2;
const RNG_PERM_ADV: u64 = 3;

pub struct Ours {
    core: Pix2Pix,
    class_head: ClassHead,
    style_disc: StyleDiscriminator,
    opt_head: Adam,
    opt_tail: Adam,
    opt_decoder: Adam,
    opt_class: Adam,
    opt_style: Adam,
    opt_head_bn: Adam,
    w_adv: f64,
    use_class: bool,
    use_adv: bool,
    use_cr: bool,
    seed: u64,
    step: u64,
}

impl Ours {
    pub fn new(spec: &AlgorithmSpec) -> Result<Self> {
        let (core, (class_head, style_disc)) = Pix2Pix::new(spec, |vb| {
            Ok((
                ClassHead::new(&spec.model, vb.pp(prefix::CLASS_HEAD))?,
                StyleDiscriminator::new(&spec.model, vb.pp(prefix::STYLE_DISC))?,
            ))
        })?;
        let adam = core.adam;
        let opt = |p: &str| Adam::new(params::trainable(&core.varmap, p), adam);
        let h = &spec.hparams;
        Ok(Self {
            opt_head: opt(prefix::HEAD)?,
            opt_tail: opt(prefix::TAIL)?,
            opt_decoder: opt(prefix::DECODER)?,
            opt_class: opt(prefix::CLASS_HEAD)?,
            opt_style: opt(prefix::STYLE_DISC)?,
            opt_head_bn: Adam::new(params::batch_norm_affine(&core.varmap, prefix::HEAD), adam)?,
            core,
            class_head,
            style_disc,
            w_adv: h.get("w_adv"),
            use_class: h.flag("use_class"),
            use_adv: h.flag("use_adv"),
            use_cr: h.flag("use_cr"),
            seed: spec.seed,
            step: 0,
        })
    }

    /// Training mode with this step's dropout stream for one purpose.
    fn train_mode(&self, purpose: u64) -> Mode {
        Mode::Train {
            dropout_seed: step_rng(self.seed, self.step, purpose).next_u64(),
        }
    }

    /// Update 1: the colour discriminator.
    pub fn discriminator_update(&mut self, u: &Union) -> Result<f32> {
        let mode = self.train_mode(RNG_DROPOUT_DISC);
        scalar(&self.core.discriminator_step(&u.l, &u.ab, &mode)?)
    }

    /// Update 2: `CE(f_c(E_t(E_h(L))), y)` moves E_h, E_t and f_c.
    pub fn class_update(&mut self, u: &Union) -> Result<f32> {
        let enc = self.core.generator.encode(&u.l, true, &[])?;
        let logits = self.class_head.forward(enc.innermost()?)?; // [B, n_classes]
        let ce = losses::cross_entropy(&logits, &u.class)?;
        let grads = ce.backward()?;
        self.opt_head.step(&grads)?;
        self.opt_tail.step(&grads)?;
        self.opt_class.step(&grads)?;
        scalar(&ce)
    }

    /// Update 3: `100 * L1 + LSGAN` moves E_h, E_t and the decoder.
    pub fn generator_update(&mut self, u: &Union) -> Result<Losses> {
        let fake = self
            .core
            .generator
            .forward(&u.l, &self.train_mode(RNG_DROPOUT_GEN))?;
        let task = self.core.task_loss(&u.l, &fake, &u.ab)?;
        let grads = task.total.backward()?;
        self.opt_head.step(&grads)?;
        self.opt_tail.step(&grads)?;
        self.opt_decoder.step(&grads)?;
        Ok(Losses::from([
            ("g", scalar(&task.total)?),
            ("g_l1", scalar(&task.l1)?),
            ("g_gan", scalar(&task.gan)?),
        ]))
    }

    /// Update 4: f_s learns the source domain from CR(z); z is detached since only f_s
    /// learns here.
    pub fn style_update(&mut self, u: &Union) -> Result<f32> {
        let perm = self.permutation(u.l.dim(0)?, RNG_PERM_STYLE, u.l.device())?;
        self.style_update_with_perm(u, &perm)
    }

    /// Update 4 with a given CR permutation (`[B]` u32; sample i takes the content of
    /// `perm[i]`), e.g. to compare with a reference run that drew its own.
    pub fn style_update_with_perm(&mut self, u: &Union, perm: &Tensor) -> Result<f32> {
        let z = self.core.generator.head.forward_t(&u.l, true)?; // [B, 4nf, S/8, S/8]
        let logits = self.style_logits(&self.style_disc, &z.detach(), perm)?;
        let ce = losses::cross_entropy(&logits, &u.domain)?;
        self.opt_style.step(&ce.backward()?)?;
        scalar(&ce)
    }

    /// Update 5: `-w_adv * CE(f_s(CR(z)), domain)`; only E_h's BatchNorm gamma and beta move.
    pub fn adversarial_update(&mut self, u: &Union) -> Result<f32> {
        let perm = self.permutation(u.l.dim(0)?, RNG_PERM_ADV, u.l.device())?;
        self.adversarial_update_with_perm(u, &perm)
    }

    /// Update 5 with a given CR permutation (see [`Ours::style_update_with_perm`]). E_h's
    /// convolutions and f_s run frozen: their weight gradients would be thrown away.
    pub fn adversarial_update_with_perm(&mut self, u: &Union, perm: &Tensor) -> Result<f32> {
        let z = self
            .core
            .generator
            .head
            .with_frozen_convs()
            .forward_t(&u.l, true)?;
        let logits = self.style_logits(&self.style_disc.frozen(), &z, perm)?;
        let ce = losses::cross_entropy(&logits, &u.domain)?;
        let adv = (ce * (-self.w_adv))?;
        self.opt_head_bn.step(&adv.backward()?)?;
        scalar(&adv)
    }

    /// A random permutation of the batch for content randomization.
    fn permutation(&self, n: usize, purpose: u64, device: &candle_core::Device) -> Result<Tensor> {
        let mut perm: Vec<u32> = (0..n as u32).collect();
        perm.shuffle(&mut step_rng(self.seed, self.step, purpose));
        Tensor::from_vec(perm, n, device)
    }

    /// f_s's (`style_disc`, live or frozen) domain logits for z: through CR with permutation
    /// `perm` unless ablated.
    fn style_logits(
        &self,
        style_disc: &StyleDiscriminator,
        z: &Tensor,
        perm: &Tensor,
    ) -> Result<Tensor> {
        let z = if self.use_cr {
            content_randomize(z, perm)?
        } else {
            z.clone()
        };
        style_disc.forward_t(&z, true)
    }
}

impl Algorithm for Ours {
    fn name(&self) -> &'static str {
        ENTRY.name
    }

    fn update(&mut self, batches: &[DomainBatch]) -> Result<Losses> {
        let u = union(batches)?;
        let mut losses = Losses::new();
        losses.insert("d", self.discriminator_update(&u)?);
        if self.use_class {
            losses.insert("class", self.class_update(&u)?);
        }
        losses.extend(self.generator_update(&u)?);
        if self.use_adv {
            losses.insert("style", self.style_update(&u)?);
            losses.insert("adv", self.adversarial_update(&u)?);
        }
        self.step += 1;
        Ok(losses)
    }
}

trained!(
    Ours,
    [
        "disc" => core.opt_disc,
        "head" => opt_head,
        "tail" => opt_tail,
        "decoder" => opt_decoder,
        "class" => opt_class,
        "style" => opt_style,
        "head_bn" => opt_head_bn,
    ]
);
