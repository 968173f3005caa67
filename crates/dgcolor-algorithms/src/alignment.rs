//! The update CORAL and MMD share (DomainBed's `AbstractMMD`): one generator forward on the
//! union of the per-domain batches, the mean of the per-domain task losses, and a
//! feature-alignment penalty averaged over every pair of domains, weighted by `gamma` relative
//! to the task loss ([`crate::baseline::task_scaled`]) on the feature at `align_at`. CORAL (`coral.rs`) and
//! MMD (`mmd.rs`) are this struct with their own penalty and name.

use candle_core::{Result, Tensor};
use dgcolor_data::DomainBatch;

use crate::algorithm::{scalar, trained, union, Algorithm, AlgorithmSpec, Losses};
use crate::baseline::{
    domain_slices, forward_with_feature, generator_vars, mean_task, per_domain_task, pooled,
    task_scaled, train_mode, AlignAt,
};
use crate::optim::Adam;
use crate::pix2pix::Pix2Pix;

const RNG_DROPOUT_DISC: u64 = 0;
const RNG_DROPOUT_GEN: u64 = 1;

/// A pairwise penalty on features `[N, K]`, `[M, K]`.
pub type Penalty = fn(&Tensor, &Tensor) -> Result<Tensor>;

pub struct AlignedPix2Pix {
    /// `coral` or `mmd`: the registry name, under which the checkpoint keeps its state.
    name: &'static str,
    pub core: Pix2Pix,
    opt_gen: Adam,
    gamma: f64,
    align_at: AlignAt,
    penalty: Penalty,
    /// Least rows a domain needs to enter the penalty (2 for CORAL's unbiased covariance).
    min_rows: usize,
    seed: u64,
    step: u64,
}

impl AlignedPix2Pix {
    pub fn new(
        spec: &AlgorithmSpec,
        name: &'static str,
        penalty: Penalty,
        min_rows: usize,
    ) -> Result<Self> {
        let (core, ()) = Pix2Pix::new(spec, |_| Ok(()))?;
        let opt_gen = Adam::new(generator_vars(&core.varmap), core.adam)?;
        Ok(Self {
            name,
            core,
            opt_gen,
            gamma: spec.hparams.get("gamma"),
            align_at: AlignAt::from_hparam(spec.hparams.get("align_at"))?,
            penalty,
            min_rows,
            seed: spec.seed,
            step: 0,
        })
    }

    /// The mean penalty over every pair of domains among `features` (one `[N_i, K]` per
    /// domain); domains with fewer than `min_rows` rows are left out.
    pub fn penalty(&self, features: &[Tensor]) -> Result<Tensor> {
        let kept: Vec<Tensor> = features
            .iter()
            .filter(|f| f.dim(0).is_ok_and(|n| n >= self.min_rows))
            .cloned()
            .collect();
        if kept.is_empty() {
            let dev = features.first().map(|f| f.device().clone());
            return Tensor::zeros(
                (),
                candle_core::DType::F32,
                &dev.unwrap_or(candle_core::Device::Cpu),
            );
        }
        dgcolor_losses::pairwise_mean(&kept, self.penalty)
    }
}

impl Algorithm for AlignedPix2Pix {
    fn name(&self) -> &'static str {
        self.name
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
        let (fake, feature) =
            forward_with_feature(&self.core.generator, &u.l, &mode, self.align_at)?;
        let f = pooled(&feature)?; // [B, C]
        let tasks = per_domain_task(&self.core, &u.l, &fake, &u.ab, &slices)?;
        let features = slices
            .iter()
            .map(|&(_, start, len)| f.narrow(0, start, len))
            .collect::<Result<Vec<_>>>()?;
        let mean = mean_task(&tasks)?;
        let task = mean.total;
        let penalty = self.penalty(&features)?;
        let total = task_scaled(&task, self.gamma, &penalty)?;
        self.opt_gen.step(&total.backward()?)?;
        self.step += 1;
        Ok(Losses::from([
            ("d", scalar(&d)?),
            ("g", scalar(&total)?),
            ("g_task", scalar(&task)?),
            ("g_l1", scalar(&mean.l1)?),
            ("g_gan", scalar(&mean.gan)?),
            ("penalty", scalar(&penalty)?),
        ]))
    }
}

trained!(AlignedPix2Pix, ["disc" => core.opt_disc, "gen" => opt_gen]);
