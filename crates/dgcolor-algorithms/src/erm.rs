//! ERM: plain pix2pix (Isola et al., "Image-to-Image Translation with Conditional
//! Adversarial Networks", CVPR 2017) on the union of the source domains — the paper's
//! "None" baseline. One iteration: the colour-discriminator update, then one generator
//! update on `100 * L1 + LSGAN`.

use candle_core::Result;
use dgcolor_data::{BatchMode, DomainBatch};
use dgcolor_models::{prefix, Mode};
use rand::RngCore;

use crate::algorithm::{scalar, step_rng, trained, union, Algorithm, AlgorithmSpec, Losses};
use crate::entry::AlgorithmEntry;
use crate::optim::Adam;
use crate::params;
use crate::pix2pix::Pix2Pix;

/// The registry entry (see [`crate::registry`]).
pub const ENTRY: AlgorithmEntry = AlgorithmEntry {
    name: "erm",
    summary: "pix2pix on the union of the sources (the paper's 'None' baseline)",
    adain: false,
    batches: BatchMode::Mixed,
    hparams: &[],
    make: |spec| Ok(Box::new(Erm::new(spec)?)),
};

pub struct Erm {
    core: Pix2Pix,
    opt_gen: Adam,
    seed: u64,
    step: u64,
}

impl Erm {
    pub fn new(spec: &AlgorithmSpec) -> Result<Self> {
        let (core, ()) = Pix2Pix::new(spec, |_| Ok(()))?;
        let gen_vars = [prefix::HEAD, prefix::TAIL, prefix::DECODER]
            .iter()
            .flat_map(|p| params::trainable(&core.varmap, p))
            .collect();
        let opt_gen = Adam::new(gen_vars, core.adam)?;
        Ok(Self {
            core,
            opt_gen,
            seed: spec.seed,
            step: 0,
        })
    }
}

impl Algorithm for Erm {
    fn name(&self) -> &'static str {
        ENTRY.name
    }

    fn update(&mut self, batches: &[DomainBatch]) -> Result<Losses> {
        let u = union(batches)?;
        let mut rng = step_rng(self.seed, self.step, 0);
        let d = self.core.discriminator_step(
            &u.l,
            &u.ab,
            &Mode::Train {
                dropout_seed: rng.next_u64(),
            },
        )?;
        let fake = self.core.generator.forward(
            &u.l,
            &Mode::Train {
                dropout_seed: rng.next_u64(),
            },
        )?;
        let task = self.core.task_loss(&u.l, &fake, &u.ab)?;
        self.opt_gen.step(&task.total.backward()?)?;
        self.step += 1;
        Ok(Losses::from([
            ("d", scalar(&d)?),
            ("g", scalar(&task.total)?),
            ("g_l1", scalar(&task.l1)?),
            ("g_gan", scalar(&task.gan)?),
        ]))
    }
}

trained!(Erm, ["disc" => core.opt_disc, "gen" => opt_gen]);
