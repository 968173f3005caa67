//! JiGen: Carlucci, D'Innocente, Bucci, Caputo & Tommasi, "Domain Generalization by Solving
//! Jigsaw Puzzles", CVPR 2019 (code fmcarlucci/JigenDG), on the pix2pix generator
//! (docs/METHOD.md §4).
//!
//! Each training image is cut into a 3x3 grid of tiles. With probability `bias_whole_image`
//! (beta) it stays whole (jigsaw class 0); otherwise it is shuffled with row k of the fixed
//! 30-permutation table (class k + 1): output tile t (row-major) is input tile `perm[t]`, as
//! in JiGen's `tiles[permutations[order - 1][t]]`. L and ab get the same permutation, so the
//! colour target moves with its tile. A jigsaw head (31 classes, [`MlpHead`] on the pooled
//! feature f at `align_at`) learns the class; the generator and the head minimise
//! `task + jig_weight * sg(task) * CE(jigsaw head(f), class)`, and the colour
//! discriminator's update sees the same (partly shuffled) real pairs.
//!
//! The table is `assets/jigsaw_permutations_30.npy` (see `assets/README.md` for its origin),
//! embedded at build time and parsed by [`crate::npy`].
//!
//! Sizes not divisible by 3: the top-left `3*floor(H/3) x 3*floor(W/3)` region is tiled and
//! the remaining bottom rows and right columns stay where they are.
//!
//! Deviations from JiGen, and why:
//! - The jigsaw term is scaled by the task loss, `sg(task)`
//!   ([`crate::baseline::task_scaled`]): JiGen weighs it against a classification loss of
//!   about 1, the colourization task loss is 10-50. Its search range is 10^U(-1.5, 0.5)
//!   (JiGen's 0.1..1, widened both ways).
//! - `align_at` chooses the feature ([`crate::baseline::AlignAt`]): x_D is bypassed by the
//!   U-Net's skips.
//! - JiGen's object classifier sees only unshuffled images; here the colourization task loss
//!   uses every image, shuffled ones included (their colour target is permuted with them,
//!   so it is still a correct colourization target, just with seams).
//! - Beta is the exact probability of keeping an image whole (docs/METHOD.md); JiGen's code
//!   first draws a class from 0..=30 and then forces 0 with probability beta, so its
//!   P(whole) is `beta + (1 - beta) / 31`.
//! - Tiles are not resized or individually normalised (JiGen's tile transforms), and there is
//!   no gap between tiles: the generator's input keeps its size.

use candle_core::{bail, Result, Tensor};
use dgcolor_data::{BatchMode, DomainBatch};
use dgcolor_losses as losses;
use dgcolor_models::MlpHead;
use rand::Rng;

use crate::algorithm::{scalar, step_rng, trained, union, Algorithm, AlgorithmSpec, Losses};
use crate::baseline::{
    forward_with_feature, generator_vars, task_scaled, train_mode, AlignAt, ALIGN_AT,
};
use crate::entry::AlgorithmEntry;
use crate::hparams::{spec, Dist};
use crate::npy;
use crate::optim::Adam;
use crate::params;
use crate::pix2pix::Pix2Pix;

/// The registry entry (see [`crate::registry`]).
pub const ENTRY: AlgorithmEntry = AlgorithmEntry {
    name: "jigsaw",
    summary: "pix2pix on 3x3-tile-shuffled images (L and ab alike) + a jigsaw-permutation head (JiGen, Carlucci et al. 2019)",
    adain: false,
    batches: BatchMode::Mixed,
    hparams: &[
    spec(
        "jig_weight",
        0.7,
        Dist::LogUniform(-1.5, 0.5),
        "weight of the jigsaw cross-entropy relative to the task loss (JiGen alpha; its paper searches 0.1..1)",
    ),
    spec(
        "bias_whole_image",
        0.9,
        Dist::Uniform(0.6, 0.95),
        "probability that an image is left whole (JiGen beta; its paper uses 0.6..0.9)",
    ),
    ALIGN_AT,
],
    make: |spec| Ok(Box::new(Jigsaw::new(spec)?)),
};

/// VarMap prefix of the jigsaw head.
pub const JIGSAW_HEAD: &str = "jigsaw_head";

/// The JiGen table shipped with the crate.
pub const PERMUTATIONS_NPY: &[u8] = include_bytes!("../assets/jigsaw_permutations_30.npy");

const RNG_ORDERS: u64 = 0;
const RNG_DROPOUT_DISC: u64 = 1;
const RNG_DROPOUT_GEN: u64 = 2;

/// A table of permutations of the 9 tiles (row-major tile indices, 0-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permutations(Vec<[usize; 9]>);

impl Permutations {
    /// The embedded 30-permutation table.
    pub fn embedded() -> Result<Self> {
        Self::from_npy(PERMUTATIONS_NPY)
    }

    /// A `[n, 9]` `<i8` array whose rows are permutations of 0..9.
    pub fn from_npy(bytes: &[u8]) -> Result<Self> {
        let arr = npy::parse_i64(bytes).map_err(candle_core::Error::wrap)?;
        if arr.shape.len() != 2 || arr.shape[1] != 9 || arr.shape[0] == 0 {
            bail!(
                "jigsaw permutations: expected shape [n, 9], got {:?}",
                arr.shape
            )
        }
        let rows = arr
            .data
            .chunks_exact(9)
            .enumerate()
            .map(|(k, row)| {
                let mut perm = [0usize; 9];
                let mut seen = [false; 9];
                for (t, &v) in row.iter().enumerate() {
                    if !(0..9).contains(&v) || seen[v as usize] {
                        bail!("jigsaw permutations: row {k} {row:?} is not a permutation of 0..9")
                    }
                    seen[v as usize] = true;
                    perm[t] = v as usize;
                }
                Ok(perm)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self(rows))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn row(&self, k: usize) -> &[usize; 9] {
        &self.0[k]
    }

    /// Jigsaw classes: 0 = whole, k + 1 = row k.
    pub fn n_classes(&self) -> usize {
        self.len() + 1
    }

    /// Per-image classes: 0 with probability `keep_whole`, else uniform over 1..=len.
    pub fn draw_orders(&self, n: usize, keep_whole: f64, rng: &mut impl Rng) -> Vec<usize> {
        (0..n)
            .map(|_| {
                if rng.random::<f64>() < keep_whole {
                    0
                } else {
                    1 + rng.random_range(0..self.len())
                }
            })
            .collect()
    }

    /// Shuffles the tiles of every image of `x` `[B, C, H, W]` by its class in `orders`
    /// (0 leaves it whole). Every channel gets the same permutation.
    pub fn shuffle(&self, x: &Tensor, orders: &[usize]) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if orders.len() != b {
            bail!(
                "jigsaw: {} orders for a batch of {b} ({:?})",
                orders.len(),
                x.shape()
            )
        }
        let (th, tw) = (h / 3, w / 3);
        if th == 0 || tw == 0 {
            bail!("jigsaw: images {:?} are smaller than 3x3", x.shape())
        }
        let mut index = Vec::with_capacity(b * c * h * w);
        for &order in orders {
            if order > self.len() {
                bail!("jigsaw: class {order} is out of range 0..={}", self.len())
            }
            let perm = (order > 0).then(|| self.row(order - 1));
            let mut map = Vec::with_capacity(h * w);
            for r in 0..h {
                for col in 0..w {
                    let src = match perm {
                        Some(p) if r < 3 * th && col < 3 * tw => {
                            let src_tile = p[(r / th) * 3 + col / tw];
                            let sr = (src_tile / 3) * th + r % th;
                            let sc = (src_tile % 3) * tw + col % tw;
                            sr * w + sc
                        }
                        _ => r * w + col,
                    };
                    map.push(src as u32);
                }
            }
            for _ in 0..c {
                index.extend_from_slice(&map);
            }
        }
        let index = Tensor::from_vec(index, (b, c, h * w), x.device())?;
        x.reshape((b, c, h * w))?
            .contiguous()?
            .gather(&index, 2)?
            .reshape((b, c, h, w))
    }
}

pub struct Jigsaw {
    core: Pix2Pix,
    head: MlpHead,
    perms: Permutations,
    opt_gen: Adam,
    opt_jig: Adam,
    jig_weight: f64,
    keep_whole: f64,
    align_at: AlignAt,
    seed: u64,
    step: u64,
}

impl Jigsaw {
    pub fn new(spec: &AlgorithmSpec) -> Result<Self> {
        let perms = Permutations::embedded()?;
        let m = &spec.model;
        let h = &spec.hparams;
        let align_at = AlignAt::from_hparam(h.get("align_at"))?;
        let (core, head) = Pix2Pix::new(spec, |vb| {
            MlpHead::new(align_at.width(m), perms.n_classes(), vb.pp(JIGSAW_HEAD))
        })?;
        let keep_whole = h.get("bias_whole_image");
        if !(0.0..=1.0).contains(&keep_whole) {
            bail!("jigsaw: bias_whole_image must be in [0, 1], got {keep_whole}")
        }
        Ok(Self {
            opt_gen: Adam::new(generator_vars(&core.varmap), core.adam)?,
            opt_jig: Adam::new(params::trainable(&core.varmap, JIGSAW_HEAD), core.adam)?,
            core,
            head,
            perms,
            jig_weight: h.get("jig_weight"),
            keep_whole,
            align_at,
            seed: spec.seed,
            step: 0,
        })
    }
}

impl Algorithm for Jigsaw {
    fn name(&self) -> &'static str {
        ENTRY.name
    }

    fn update(&mut self, batches: &[DomainBatch]) -> Result<Losses> {
        let u = union(batches)?;
        let n = u.l.dim(0)?;
        let orders = self.perms.draw_orders(
            n,
            self.keep_whole,
            &mut step_rng(self.seed, self.step, RNG_ORDERS),
        );
        let l = self.perms.shuffle(&u.l, &orders)?; // [B, 1, S, S]
        let ab = self.perms.shuffle(&u.ab, &orders)?; // [B, 2, S, S]
        let labels = Tensor::from_vec(
            orders.iter().map(|&o| o as u32).collect::<Vec<_>>(),
            n,
            l.device(),
        )?;
        let d = self.core.discriminator_step(
            &l,
            &ab,
            &train_mode(self.seed, self.step, RNG_DROPOUT_DISC),
        )?;
        let mode = train_mode(self.seed, self.step, RNG_DROPOUT_GEN);
        let (fake, feature) = forward_with_feature(&self.core.generator, &l, &mode, self.align_at)?;
        let task = self.core.task_loss(&l, &fake, &ab)?;
        let jig = losses::cross_entropy(&self.head.forward(&feature)?, &labels)?;
        let total = task_scaled(&task.total, self.jig_weight, &jig)?;
        let grads = total.backward()?;
        self.opt_gen.step(&grads)?;
        self.opt_jig.step(&grads)?;
        self.step += 1;
        Ok(Losses::from([
            ("d", scalar(&d)?),
            ("g", scalar(&total)?),
            ("g_task", scalar(&task.total)?),
            ("g_l1", scalar(&task.l1)?),
            ("g_gan", scalar(&task.gan)?),
            ("jigsaw", scalar(&jig)?),
        ]))
    }
}

trained!(Jigsaw, ["disc" => core.opt_disc, "gen" => opt_gen, "jigsaw" => opt_jig]);
