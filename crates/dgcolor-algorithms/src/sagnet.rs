//! SagNet: Nam, Lee, Park, Yoon & Yoo, "Reducing Domain Gap by Reducing Style Bias",
//! CVPR 2021 (code hyeonseobnam/sagnet), in DomainBed's three-update form (Gulrajani &
//! Lopez-Paz, ICLR 2021; `domainbed/algorithms.py`, class `SagNet`), adapted to a
//! colourization generator as docs/METHOD.md §4 describes.
//!
//! The randomization point is z = x_3, the head encoder's output (SagNet randomises a
//! mid-level feature map). One iteration, each update with a fresh forward pass:
//! 1. colour discriminator (step 1 of every method);
//! 2. content: style randomization SR(z) (own normalised content, statistics mixed
//!    `a * own + (1 - a) * partner's`, a ~ U(0, 1), partner from a random permutation)
//!    replaces z for the tail encoder *and* the decoder's z skip; the task loss
//!    `100 * L1 + LSGAN` on that prediction updates E_h, E_t and the decoder;
//! 3. style: the style head f_s (own copy of levels 4..D + MLP, [`StyleDiscriminator`])
//!    learns the source domain from content randomization CR(z) (own statistics, another
//!    image's detached normalised content), z detached: only f_s moves;
//! 4. adversarial: `w_adv * sg(task) * CE(f_s(CR(z)), uniform)` (minus the mean
//!    log-softmax, `task` being update 2's task loss) updates E_h only, pushing it to leave
//!    no domain-specific style in z.
//!
//! E_h has one Adam shared by updates 2 and 4, like DomainBed's `optimizer_f`; E_t and the
//! decoder share another (DomainBed's `optimizer_c`); f_s has its own. At inference no
//! randomization happens (eval mode is the plain generator).
//!
//! Deviations from SagNet / DomainBed, and why:
//! - The adversarial term is scaled by the task loss (see [`crate::baseline::task_scaled`]
//!   for the rule). Update 4 steps E_h's Adam alone, which by itself would make `w_adv`
//!   inert (Adam does not see a loss's scale), but that Adam is shared with update 2, so its
//!   moments mix both gradients and their ratio matters: against a task loss of 10-50
//!   instead of DomainBed's cross-entropy of about 1, DomainBed's `w_adv` would be 10-50x
//!   weaker.
//! - The content-biased network's classification loss is replaced by the colourization task
//!   loss, and the style-biased head predicts the *source domain* instead of the object class
//!   (docs/METHOD.md §4: a colourization generator has no class output, and the domain is the
//!   style label the adversarial term should erase).
//! - Randomization acts on z at every training step (SagNet's official code randomises with
//!   a probability; DomainBed always does).

use candle_core::{Device, Result, Tensor};
use dgcolor_data::{BatchMode, DomainBatch};
use dgcolor_losses as losses;
use dgcolor_models::{
    content_randomize, prefix, style_randomize, Encoded, Mode, StyleDiscriminator,
};
use rand::seq::SliceRandom;
use rand::Rng;

use crate::algorithm::{scalar, step_rng, trained, union, Algorithm, AlgorithmSpec, Losses, Union};
use crate::baseline::train_mode;
use crate::entry::AlgorithmEntry;
use crate::hparams::{spec, Dist};
use crate::optim::Adam;
use crate::params;
use crate::pix2pix::Pix2Pix;

/// The registry entry (see [`crate::registry`]).
pub const ENTRY: AlgorithmEntry = AlgorithmEntry {
    name: "sagnet",
    summary: "pix2pix with style-randomised z in the generator and an adversarial style head on content-randomised z (Nam et al. 2021)",
    adain: false,
    batches: BatchMode::Balanced,
    hparams: &[spec(
    "w_adv",
    0.1,
    Dist::LogUniform(-2.0, 1.0),
    "weight of the adversarial term pushing the style head towards uniform, relative to the task loss",
)],
    make: |spec| Ok(Box::new(SagNet::new(spec)?)),
};

const RNG_DROPOUT_DISC: u64 = 0;
const RNG_DROPOUT_GEN: u64 = 1;
const RNG_SR: u64 = 2;
const RNG_CR_STYLE: u64 = 3;
const RNG_CR_ADV: u64 = 4;

pub struct SagNet {
    core: Pix2Pix,
    style_head: StyleDiscriminator,
    opt_head: Adam,
    opt_content: Adam,
    opt_style: Adam,
    w_adv: f64,
    /// This step's task loss (update 2), the scale of update 4's adversarial term.
    task: f64,
    seed: u64,
    step: u64,
}

impl SagNet {
    pub fn new(spec: &AlgorithmSpec) -> Result<Self> {
        let (core, style_head) = Pix2Pix::new(spec, |vb| {
            StyleDiscriminator::new(&spec.model, vb.pp(prefix::STYLE_DISC))
        })?;
        let adam = core.adam;
        let content_vars = [prefix::TAIL, prefix::DECODER]
            .iter()
            .flat_map(|p| params::trainable(&core.varmap, p))
            .collect();
        Ok(Self {
            opt_head: Adam::new(params::trainable(&core.varmap, prefix::HEAD), adam)?,
            opt_content: Adam::new(content_vars, adam)?,
            opt_style: Adam::new(params::trainable(&core.varmap, prefix::STYLE_DISC), adam)?,
            core,
            style_head,
            w_adv: spec.hparams.get("w_adv"),
            task: 1.0,
            seed: spec.seed,
            step: 0,
        })
    }

    fn permutation(&self, n: usize, purpose: u64, device: &Device) -> Result<Tensor> {
        let mut perm: Vec<u32> = (0..n as u32).collect();
        perm.shuffle(&mut step_rng(self.seed, self.step, purpose));
        Tensor::from_vec(perm, n, device)
    }

    /// SR(z) with this step's permutation and mixing weights a ~ U(0, 1).
    pub fn style_randomized(&self, z: &Tensor) -> Result<Tensor> {
        let n = z.dim(0)?;
        let mut rng = step_rng(self.seed, self.step, RNG_SR);
        let mut perm: Vec<u32> = (0..n as u32).collect();
        perm.shuffle(&mut rng);
        let alpha: Vec<f32> = (0..n).map(|_| rng.random::<f32>()).collect();
        style_randomize(
            z,
            &Tensor::from_vec(perm, n, z.device())?,
            &Tensor::from_vec(alpha, n, z.device())?,
        )
    }

    /// Update 2: task loss on the prediction made from SR(z); E_h, E_t, decoder.
    pub fn content_update(&mut self, u: &Union) -> Result<Losses> {
        let mode = train_mode(self.seed, self.step, RNG_DROPOUT_GEN);
        let g = &self.core.generator;
        let mut head = g.head.forward_levels(&u.l, true)?; // [.., z], their inputs
        let sr = self.style_randomized(head.last()?)?; // [B, 4nf, S/8, S/8]
        let tail = g.tail.forward_levels(&sr, true)?; // [.., x_D], [LReLU(sr), ..]
        *head.outs.last_mut().expect("3 levels") = Some(sr);
        let enc = Encoded::join(head, tail);
        let fake = g.decoder.forward_encoded(&enc, &mode)?; // [B, 2, S, S]
        let task = self.core.task_loss(&u.l, &fake, &u.ab)?;
        let grads = task.total.backward()?;
        self.opt_head.step(&grads)?;
        self.opt_content.step(&grads)?;
        self.task = scalar(&task.total)? as f64;
        Ok(Losses::from([
            ("g", scalar(&task.total)?),
            ("g_l1", scalar(&task.l1)?),
            ("g_gan", scalar(&task.gan)?),
        ]))
    }

    fn style_logits(&self, z: &Tensor, purpose: u64) -> Result<Tensor> {
        let perm = self.permutation(z.dim(0)?, purpose, z.device())?;
        self.style_head
            .forward_t(&content_randomize(z, &perm)?, true)
    }

    fn z(&self, l: &Tensor) -> Result<Tensor> {
        self.core.generator.head.forward_t(l, true)
    }

    /// Update 3: f_s learns the domain from CR(z), z detached.
    pub fn style_update(&mut self, u: &Union) -> Result<f32> {
        let z = self.z(&u.l)?.detach();
        let ce = losses::cross_entropy(&self.style_logits(&z, RNG_CR_STYLE)?, &u.domain)?;
        self.opt_style.step(&ce.backward()?)?;
        scalar(&ce)
    }

    /// Update 4: `w_adv * task * CE(f_s(CR(z)), uniform)`, E_h only, `task` being update
    /// 2's task loss of this step (a number, no gradient).
    pub fn adversarial_update(&mut self, u: &Union) -> Result<f32> {
        let z = self.z(&u.l)?;
        let logits = self.style_logits(&z, RNG_CR_ADV)?;
        let adv = (losses::uniform_cross_entropy(&logits)? * (self.w_adv * self.task))?;
        self.opt_head.step(&adv.backward()?)?;
        scalar(&adv)
    }
}

impl Algorithm for SagNet {
    fn name(&self) -> &'static str {
        ENTRY.name
    }

    fn update(&mut self, batches: &[DomainBatch]) -> Result<Losses> {
        let u = union(batches)?;
        let mode: Mode = train_mode(self.seed, self.step, RNG_DROPOUT_DISC);
        let d = self.core.discriminator_step(&u.l, &u.ab, &mode)?;
        let mut out = self.content_update(&u)?;
        out.insert("d", scalar(&d)?);
        out.insert("style", self.style_update(&u)?);
        out.insert("adv", self.adversarial_update(&u)?);
        self.step += 1;
        Ok(out)
    }
}

trained!(
    SagNet,
    [
        "disc" => core.opt_disc,
        "head" => opt_head,
        "content" => opt_content,
        "style" => opt_style,
    ]
);
