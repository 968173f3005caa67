//! The training loader. `batch_at(step)` is a pure function of `(seed, step)`: the epoch
//! permutation comes from a stream keyed by `(seed, epoch)` and the flips from one keyed
//! by `(seed, step)`, so a run resumed at step k sees exactly the batches an
//! uninterrupted run would have, and prefetching is just computing `batch_at` early on
//! another thread.
//!
//! Two batch compositions: `Mixed` shuffles the union of the sources each epoch, as the
//! reference code does; `Balanced` takes the same number of images from every source per
//! step, as DomainBed's per-domain minibatches do (small domains then repeat more often).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rand::seq::SliceRandom;
use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use candle_core::Device;

use crate::batch::{DomainBatch, HostBatch};
use crate::error::{DataError, Result};
use crate::folder::Sample;
use crate::pipeline::{host_batch, load_lab_planes, LabImage, OnBadImage, Preprocess};
use crate::rng::{derived_rng, Stream};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BatchMode {
    /// Reference: a seeded permutation of the union of all sources each epoch.
    #[default]
    Mixed,
    /// `batch_size / n_sources` images from each source domain every step.
    Balanced,
}

/// The training samples of one source domain.
#[derive(Clone, Debug)]
pub struct SourceSet {
    /// The domain label the algorithms see (index among the run's sources).
    pub domain: usize,
    pub samples: Vec<Sample>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoaderConfig {
    pub batch_size: usize,
    pub mode: BatchMode,
    pub preprocess: Preprocess,
    /// Random horizontal flip with probability 0.5 (reference: on).
    pub flip: bool,
    pub seed: u64,
    pub on_bad: OnBadImage,
    /// Batches computed ahead by [`TrainLoader::stream`].
    pub prefetch: usize,
    /// Preprocessed (unflipped) images are kept in memory up to this many bytes; images
    /// beyond the budget are decoded again each time they are drawn.
    pub cache_bytes: usize,
}

impl Default for LoaderConfig {
    /// The reference recipe (batch 128 of mixed sources, 256 px nearest, flips), with a
    /// 4-batch prefetch and no cache.
    fn default() -> Self {
        Self {
            batch_size: 128,
            mode: BatchMode::Mixed,
            preprocess: Preprocess::default(),
            flip: true,
            seed: 0,
            on_bad: OnBadImage::Fail,
            prefetch: 4,
            cache_bytes: 0,
        }
    }
}

/// The batches of one training step.
#[derive(Clone, Debug)]
pub struct StepBatches {
    pub step: u64,
    /// One per source domain present in this step, in domain order.
    pub batches: Vec<HostBatch>,
    /// Bad images dropped from this step (`Skip` mode).
    pub skipped: Vec<PathBuf>,
    /// `batches` as tensors on the stream's device, copied by the loader thread so the
    /// trainer never waits for the host-to-device transfer (empty from `batch_at`).
    pub tensors: Vec<DomainBatch>,
}

/// An image slot: (source index, sample index).
type Slot = (usize, usize);

#[derive(Default)]
struct Cache {
    images: HashMap<Slot, Arc<LabImage>>,
    bytes: usize,
}

struct Inner {
    sources: Vec<SourceSet>,
    cfg: LoaderConfig,
    steps_per_epoch: usize,
    cache: Mutex<Cache>,
}

pub struct TrainLoader {
    inner: Arc<Inner>,
}

impl TrainLoader {
    /// Checks the configuration once: no empty source, distinct domains, a positive batch
    /// and image size, and in `Balanced` mode a batch that splits evenly over sources.
    pub fn new(mut sources: Vec<SourceSet>, cfg: LoaderConfig) -> Result<Self> {
        let bad = |msg: String| Err(DataError::Config(msg));
        if sources.is_empty() {
            return bad("no source domains".into());
        }
        if cfg.batch_size == 0 {
            return bad("batch_size is 0".into());
        }
        if cfg.preprocess.size == 0 {
            return bad("image size is 0".into());
        }
        if let Some(s) = sources.iter().find(|s| s.samples.is_empty()) {
            return bad(format!("source domain {} has no samples", s.domain));
        }
        sources.sort_by_key(|s| s.domain);
        if let Some(w) = sources.windows(2).find(|w| w[0].domain == w[1].domain) {
            return bad(format!("source domain {} is given twice", w[0].domain));
        }
        if cfg.mode == BatchMode::Balanced && !cfg.batch_size.is_multiple_of(sources.len()) {
            return bad(format!(
                "balanced batches need batch_size divisible by the number of sources ({} % {} != 0)",
                cfg.batch_size,
                sources.len()
            ));
        }
        let union: usize = sources.iter().map(|s| s.samples.len()).sum();
        let steps_per_epoch = (union / cfg.batch_size).max(1);
        Ok(Self {
            inner: Arc::new(Inner {
                sources,
                cfg,
                steps_per_epoch,
                cache: Mutex::default(),
            }),
        })
    }

    /// `union / batch_size` (the incomplete last batch is dropped), at least 1. In
    /// `Balanced` mode this defines the same number of images per "epoch".
    pub fn steps_per_epoch(&self) -> usize {
        self.inner.steps_per_epoch
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.inner.cfg
    }

    /// The batches of `step`, computed now (images decoded in parallel).
    pub fn batch_at(&self, step: u64) -> Result<StepBatches> {
        self.inner.batch_at(step)
    }

    /// Batches `start_step, start_step + 1, ...` computed by a background thread, up to
    /// `prefetch` ahead and already copied to `device` (`StepBatches::tensors`). The stream
    /// ends after the first error; dropping it stops the thread (after the batch in progress).
    pub fn stream(&self, start_step: u64, device: &Device) -> BatchStream {
        let (tx, rx) = sync_channel(self.inner.cfg.prefetch.max(1));
        let inner = Arc::clone(&self.inner);
        let device = device.clone();
        let handle = std::thread::Builder::new()
            .name("dgcolor-loader".into())
            .spawn(move || {
                for step in start_step.. {
                    let batch = inner.batch_at(step).and_then(|mut b| {
                        b.tensors = b
                            .batches
                            .iter()
                            .map(|h| h.to_device(&device))
                            .collect::<candle_core::Result<_>>()?;
                        Ok(b)
                    });
                    let failed = batch.is_err();
                    if tx.send(batch).is_err() || failed {
                        break;
                    }
                }
            })
            .expect("spawning the loader thread");
        BatchStream {
            rx: Some(rx),
            handle: Some(handle),
        }
    }
}

impl Inner {
    /// The image slots of `step`, in batch order.
    fn slots(&self, step: u64) -> Vec<Slot> {
        let b = self.cfg.batch_size;
        match self.cfg.mode {
            BatchMode::Mixed => {
                let union: Vec<Slot> = self
                    .sources
                    .iter()
                    .enumerate()
                    .flat_map(|(s, src)| (0..src.samples.len()).map(move |i| (s, i)))
                    .collect();
                let spe = self.steps_per_epoch as u64;
                let (epoch, k) = (step / spe, (step % spe) as usize);
                let perm = permutation(union.len(), self.cfg.seed, epoch, u64::MAX);
                let end = ((k + 1) * b).min(union.len());
                perm[k * b..end].iter().map(|&i| union[i]).collect()
            }
            BatchMode::Balanced => {
                let per = (b / self.sources.len()) as u64;
                let mut slots = Vec::with_capacity(b);
                for (s, src) in self.sources.iter().enumerate() {
                    let n = src.samples.len() as u64;
                    let mut cached: Option<(u64, Vec<usize>)> = None;
                    for pos in step * per..(step + 1) * per {
                        let epoch = pos / n;
                        if cached.as_ref().is_none_or(|(e, _)| *e != epoch) {
                            cached = Some((
                                epoch,
                                permutation(n as usize, self.cfg.seed, epoch, src.domain as u64),
                            ));
                        }
                        let perm = &cached.as_ref().expect("just filled").1;
                        slots.push((s, perm[(pos % n) as usize]));
                    }
                }
                slots
            }
        }
    }

    fn load(&self, (s, i): Slot) -> Result<Arc<LabImage>> {
        if let Some(img) = self.cache.lock().expect("cache lock").images.get(&(s, i)) {
            return Ok(Arc::clone(img));
        }
        let lab = load_lab_planes(&self.sources[s].samples[i].path, &self.cfg.preprocess)?;
        let lab = Arc::new(lab);
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.bytes + lab.bytes() <= self.cfg.cache_bytes && !cache.images.contains_key(&(s, i))
        {
            cache.bytes += lab.bytes();
            cache.images.insert((s, i), Arc::clone(&lab));
        }
        Ok(lab)
    }

    fn batch_at(&self, step: u64) -> Result<StepBatches> {
        let slots = self.slots(step);
        // Flips are drawn for every slot before anything is dropped, so a skipped image
        // never shifts another image's flip.
        let mut flip_rng = derived_rng(self.cfg.seed, Stream::Flip, step, 0);
        let flips: Vec<bool> = slots
            .iter()
            .map(|_| self.cfg.flip && flip_rng.random_bool(0.5))
            .collect();
        let loaded: Vec<Result<Arc<LabImage>>> =
            slots.par_iter().map(|&slot| self.load(slot)).collect();

        let mut per_source: Vec<(Vec<LabImage>, Vec<u32>)> =
            vec![(Vec::new(), Vec::new()); self.sources.len()];
        let mut skipped = Vec::new();
        for ((&(s, i), flip), result) in slots.iter().zip(flips).zip(loaded) {
            let sample = &self.sources[s].samples[i];
            match result {
                Ok(img) => {
                    let mut img = Arc::unwrap_or_clone(img);
                    if flip {
                        img.flip_horizontal();
                    }
                    per_source[s].0.push(img);
                    per_source[s].1.push(sample.class as u32);
                }
                Err(_) if self.cfg.on_bad == OnBadImage::Skip => skipped.push(sample.path.clone()),
                Err(e) => return Err(e),
            }
        }
        let batches = per_source
            .iter()
            .zip(&self.sources)
            .filter(|((imgs, _), _)| !imgs.is_empty())
            .map(|((imgs, classes), src)| {
                host_batch(src.domain, &imgs.iter().collect::<Vec<_>>(), classes)
            })
            .collect();
        Ok(StepBatches {
            step,
            batches,
            skipped,
            tensors: Vec::new(),
        })
    }
}

/// A seeded permutation of `0..n`, keyed by `(seed, epoch, domain)`.
fn permutation(n: usize, seed: u64, epoch: u64, domain: u64) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(&mut derived_rng(seed, Stream::Permutation, epoch, domain));
    perm
}

/// Prefetched batches from [`TrainLoader::stream`].
pub struct BatchStream {
    rx: Option<Receiver<Result<StepBatches>>>,
    handle: Option<JoinHandle<()>>,
}

impl Iterator for BatchStream {
    type Item = Result<StepBatches>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        // Closing the channel first makes the producer's next send fail, so it exits.
        self.rx.take();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
