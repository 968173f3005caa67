//! What every method shares (docs/METHOD.md §4): the U-Net generator, the PatchGAN colour
//! discriminator with its least-squares update, and the task loss `100 * L1 + LSGAN`.

use candle_core::{DType, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use dgcolor_losses as losses;
use dgcolor_models::{init_weights, prefix, ColorDiscriminator, Generator, Mode};

use crate::algorithm::AlgorithmSpec;
use crate::checkpoint::{Checkpoint, META_MODEL};
use crate::optim::{Adam, AdamConfig};
use crate::params;

/// Generator + colour discriminator in one VarMap, with D's optimizer.
pub struct Pix2Pix {
    pub varmap: VarMap,
    pub generator: Generator,
    pub disc: ColorDiscriminator,
    pub opt_disc: Adam,
    pub adam: AdamConfig,
}

/// The task loss of one generator forward, with its parts for the records.
pub struct TaskLoss {
    pub total: Tensor,
    pub l1: Tensor,
    pub gan: Tensor,
}

impl Pix2Pix {
    /// Builds the networks, lets `extra` add more networks to the same VarMap (heads,
    /// discriminators), then initialises every variable from the seed.
    pub fn new<T>(
        spec: &AlgorithmSpec,
        extra: impl FnOnce(&VarBuilder) -> Result<T>,
    ) -> Result<(Self, T)> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &spec.device);
        let generator = Generator::new(&spec.model, vb.clone())?;
        let disc = ColorDiscriminator::new(&spec.model, vb.pp(prefix::COLOR_DISC))?;
        let more = extra(&vb)?;
        init_weights(&varmap, spec.seed)?;
        let adam = AdamConfig::reference(spec.hparams.get("lr"));
        let opt_disc = Adam::new(params::trainable(&varmap, prefix::COLOR_DISC), adam)?;
        Ok((
            Self {
                varmap,
                generator,
                disc,
                opt_disc,
                adam,
            },
            more,
        ))
    }

    /// Update 1: `0.5 * (mse(D(L, G(L)), 0) + mse(D(L, ab), 1))`, D only. G runs in train
    /// mode like the reference (its BatchNorm statistics move); its output is detached
    /// because D's update never needs G's gradient.
    pub fn discriminator_step(&mut self, l: &Tensor, ab: &Tensor, mode: &Mode) -> Result<Tensor> {
        let fake = self.generator.forward(l, mode)?.detach();
        let fake_scores = self.disc.forward_t(l, &fake, true)?;
        let real_scores = self.disc.forward_t(l, ab, true)?;
        let loss = losses::pix2pix_discriminator(&fake_scores, &real_scores)?;
        self.opt_disc.step(&loss.backward()?)?;
        Ok(loss)
    }

    /// `100 * L1(G(L), ab) + mse(D(L, G(L)), 1)` for a prediction already made. D is frozen
    /// (its weight gradients are not computed; only the D step moves D).
    pub fn task_loss(&self, l: &Tensor, fake: &Tensor, ab: &Tensor) -> Result<TaskLoss> {
        let scores = self.disc.frozen().forward_t(l, fake, true)?;
        let (total, l1, gan) = losses::pix2pix_generator(fake, ab, &scores)?;
        Ok(TaskLoss { total, l1, gan })
    }

    /// Every variable plus the model config: the part of a checkpoint all methods share.
    pub fn checkpoint_base(&self) -> Result<Checkpoint> {
        let mut ckpt = Checkpoint::default();
        ckpt.add_varmap(&self.varmap);
        let cfg =
            serde_json::to_string(self.generator.config()).map_err(candle_core::Error::wrap)?;
        ckpt.meta.insert(META_MODEL.into(), cfg);
        Ok(ckpt)
    }
}
