//! Pieces the DG baselines share on top of [`Pix2Pix`](crate::Pix2Pix): the generator's
//! optimizer variables, one generator forward that also yields the DG feature f (at
//! [`AlignAt`]: the globally average-pooled bottleneck x_D of docs/METHOD.md §4, or E_h's
//! output z where the proposed model acts), the scaling of a DG penalty to the colorization
//! task loss ([`task_scaled`]), per-domain slices of a union batch, and DomainBed's
//! `random_pairs_of_minibatches`.

use candle_core::{Result, Tensor, Var, D};
use dgcolor_data::DomainBatch;
use dgcolor_models::{prefix, Generator, Mode, ModelConfig};
use rand::seq::SliceRandom;
use rand::RngCore;

use crate::algorithm::step_rng;
use crate::hparams::{spec, Dist, HParamSpec};
use crate::params;

/// Trainable variables of E_h, E_t and the decoder: what the task loss updates.
pub fn generator_vars(varmap: &candle_nn::VarMap) -> Vec<(String, Var)> {
    [prefix::HEAD, prefix::TAIL, prefix::DECODER]
        .iter()
        .flat_map(|p| params::trainable(varmap, p))
        .collect()
}

/// Training mode whose dropout masks come from `(seed, step, purpose)`.
pub fn train_mode(seed: u64, step: u64, purpose: u64) -> Mode {
    Mode::Train {
        dropout_seed: step_rng(seed, step, purpose).next_u64(),
    }
}

/// Where a DG method reads its feature f (hyperparameter `align_at`).
///
/// DomainBed's methods align the featurizer's output. In the U-Net that is ambiguous: the
/// bottleneck x_D (`0`, docs/METHOD.md §4) is the deepest feature, but the skips carry
/// everything above it past it to the decoder, so aligning x_D alone leaves most of what the
/// decoder sees untouched; E_h's output z = x_3 (`1`) is where the proposed model and SagNet
/// act, and it feeds both the tail and a skip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlignAt {
    Bottleneck,
    Z,
}

impl AlignAt {
    /// From the `align_at` hyperparameter: 0 = bottleneck, 1 = z.
    pub fn from_hparam(value: f64) -> Result<Self> {
        match value {
            0.0 => Ok(AlignAt::Bottleneck),
            1.0 => Ok(AlignAt::Z),
            v => candle_core::bail!("align_at must be 0 (bottleneck x_D) or 1 (z), got {v}"),
        }
    }

    /// The encoder level it reads (1-based): D for the bottleneck, 3 for z.
    pub fn level(self, model: &ModelConfig) -> usize {
        match self {
            AlignAt::Bottleneck => model.depth,
            AlignAt::Z => 3,
        }
    }

    /// Channels of the feature (the input width of an MLP head on it).
    pub fn width(self, model: &ModelConfig) -> usize {
        model.width(self.level(model))
    }
}

/// The `align_at` entry shared by the methods that have it (dann, coral, mmd, jigsaw).
///
/// The default stays the bottleneck because z measured no better: on synth (quick preset,
/// 200 steps, the three paper settings, one seed, `scripts/study_synth.sh`), z against the
/// bottleneck changed the validation-selected test PSNR by -0.15 (coral), +0.11 (dann), +0.03
/// (jigsaw) and -0.00 dB (mmd), each with per-target differences of both signs (±0.2–0.7 dB,
/// within seed noise); `docs/study-synth/README.md` has the table. Random search draws both.
pub(crate) const ALIGN_AT: HParamSpec = spec(
    "align_at",
    0.0,
    Dist::Choice(&[0.0, 1.0]),
    "where the DG feature f is read: 0 = the pooled bottleneck x_D, 1 = the pooled z (E_h's output)",
);

/// f: a feature map `[B, C, h, w]` averaged over space, `[B, C]`.
pub fn pooled(x: &Tensor) -> Result<Tensor> {
    x.mean(D::Minus1)?.mean(D::Minus1)
}

/// One generator forward: predicted ab `[B, 2, S, S]` and the feature map at `at`
/// (`[B, C, h, w]`; f = [`pooled`] of it; the MLP heads pool it themselves).
pub fn forward_with_feature(
    gen: &Generator,
    l: &Tensor,
    mode: &Mode,
    at: AlignAt,
) -> Result<(Tensor, Tensor)> {
    let level = at.level(gen.config());
    let enc = gen.encode(l, mode.is_train(), &[level])?; // x_level, x_D and the skips
    let feature = enc.feature(level)?.clone();
    let fake = gen.decoder.forward_encoded(&enc, mode)?; // [B, 2, S, S]
    Ok((fake, feature))
}

/// `task + weight * sg(task) * penalty`: a DG penalty scaled to the colorization task loss.
///
/// DomainBed's penalty weights (and their search ranges) are tuned against a classification
/// cross-entropy of about 1; the generator's task loss `100 L1 + LSGAN` is 10 to 50, so the
/// same weight would make every penalty 10-50x weaker relative to the task here. Scaling the
/// penalty by the current task loss (a constant in the gradient) restores DomainBed's
/// meaning of the weight: the penalty's gradient in proportion to the task's, whatever the
/// task's scale, and as the task loss falls during training the penalty follows it, as a
/// falling cross-entropy would leave a fixed penalty relatively stronger.
pub fn task_scaled(task: &Tensor, weight: f64, penalty: &Tensor) -> Result<Tensor> {
    let scale = weight * task.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
    task + (penalty * scale)?
}

/// `(domain, start, len)` of each batch inside the union of `batches`, in batch order.
pub fn domain_slices(batches: &[DomainBatch]) -> Result<Vec<(usize, usize, usize)>> {
    let mut start = 0;
    batches
        .iter()
        .map(|b| {
            let n = b.l.dim(0)?;
            let s = (b.domain, start, n);
            start += n;
            Ok(s)
        })
        .collect()
}

/// DomainBed's `random_pairs_of_minibatches`: a random order of the batches and each one
/// paired with the next, cyclically: `(perm[i], perm[i + 1 mod n])`. Every batch is first
/// once and second once; a single batch is paired with itself.
pub fn random_pairs(n: usize, rng: &mut impl rand::Rng) -> Vec<(usize, usize)> {
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(rng);
    (0..n).map(|i| (perm[i], perm[(i + 1) % n])).collect()
}

/// Copies of the current values of `vars` (independent storage, unlike `Tensor::clone`).
pub fn snapshot(vars: &[(String, Var)]) -> Result<Vec<Tensor>> {
    vars.iter().map(|(_, v)| v.as_tensor().copy()).collect()
}

/// Writes a [`snapshot`] back.
pub fn restore(vars: &[(String, Var)], saved: &[Tensor]) -> Result<()> {
    for ((_, v), t) in vars.iter().zip(saved) {
        v.set(t)?;
    }
    Ok(())
}

/// A gradient store holding exactly `grads` for `vars` (candle's `GradStore::new` is
/// private: the backward pass of a constant yields a store with no variable in it).
pub fn grad_store(
    vars: &[(String, Var)],
    grads: &[Tensor],
) -> Result<candle_core::backprop::GradStore> {
    let Some((_, first)) = vars.first() else {
        candle_core::bail!("grad_store: no variables")
    };
    let mut store = Tensor::zeros((), first.dtype(), first.device())?.backward()?;
    for ((_, v), g) in vars.iter().zip(grads) {
        store.insert(v.as_tensor(), g.clone());
    }
    Ok(store)
}

/// Per-domain task losses of one generator forward on the union: D scores the union once (so
/// its BatchNorm sees the same batch as in every other method; frozen, as in
/// [`crate::pix2pix::Pix2Pix::task_loss`]) and each domain's `100 * L1 + LSGAN` is taken over
/// its own slice.
pub fn per_domain_task(
    core: &crate::pix2pix::Pix2Pix,
    l: &Tensor,
    fake: &Tensor,
    ab: &Tensor,
    slices: &[(usize, usize, usize)],
) -> Result<Vec<crate::pix2pix::TaskLoss>> {
    let scores = core.disc.frozen().forward_t(l, fake, true)?; // [B, 1, h, w]
    slices
        .iter()
        .map(|&(_, start, len)| {
            let (total, l1, gan) = dgcolor_losses::pix2pix_generator(
                &fake.narrow(0, start, len)?,
                &ab.narrow(0, start, len)?,
                &scores.narrow(0, start, len)?,
            )?;
            Ok(crate::pix2pix::TaskLoss { total, l1, gan })
        })
        .collect()
}

/// The per-domain task losses averaged over domains (ERM's objective on balanced batches and
/// what every per-domain method reports).
pub fn mean_task(tasks: &[crate::pix2pix::TaskLoss]) -> Result<crate::pix2pix::TaskLoss> {
    let mean = |f: fn(&crate::pix2pix::TaskLoss) -> &Tensor| {
        mean_of(&tasks.iter().map(|t| f(t).clone()).collect::<Vec<_>>())
    };
    Ok(crate::pix2pix::TaskLoss {
        total: mean(|t| &t.total)?,
        l1: mean(|t| &t.l1)?,
        gan: mean(|t| &t.gan)?,
    })
}

/// Mean of scalar tensors.
fn mean_of(values: &[Tensor]) -> Result<Tensor> {
    let refs: Vec<&Tensor> = values.iter().collect();
    Tensor::stack(&refs, 0)?.mean_all()
}
