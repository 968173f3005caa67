//! Metrics of a generator on a set of images: eval-mode prediction at the model size, the
//! output built as `lab2rgb(L_input, 100 * ab_pred)` rounded to 8 bits, every metric against
//! the resized ground truth before anything lossy is written. Each image's values are kept
//! ([`ImageResult`]) for paired statistics between methods; the set metrics are computed
//! from their means.

use std::collections::BTreeMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use dgcolor_data::{
    eval_chunks, host_batch, lab_planes_to_rgb8, unscale_ab, unscale_l, LabImage, OnBadImage,
    Preprocess, Sample,
};
use dgcolor_metrics::{evaluate_pair, set_metrics, MeanMetric, MetricSummary, RgbView};
use dgcolor_models::AbPredictor;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Images evaluated per forward pass.
pub const EVAL_BATCH: usize = 32;

/// Metrics of a model on a set of images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DomainMetrics {
    pub images: usize,
    pub skipped: Vec<String>,
    /// Per-image metrics (and the ground truth's colourfulness) summarised over the images.
    pub metrics: BTreeMap<String, MetricSummary>,
    /// Metrics of the whole set ([`dgcolor_metrics::set_metrics`]).
    #[serde(default)]
    pub set: BTreeMap<String, f64>,
}

impl DomainMetrics {
    /// Mean of each per-image metric.
    pub fn means(&self) -> BTreeMap<String, f64> {
        self.metrics
            .iter()
            .map(|(k, v)| (k.clone(), v.mean))
            .collect()
    }

    /// The value a table shows for `metric`: the mean of a per-image metric, or a set metric.
    pub fn value(&self, metric: &str) -> Option<f64> {
        self.metrics
            .get(metric)
            .map(|m| m.mean)
            .or_else(|| self.set.get(metric).copied())
    }
}

/// One image's metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageResult {
    pub path: PathBuf,
    pub class: usize,
    pub values: BTreeMap<&'static str, f64>,
}

/// Everything an evaluation measured: the summary and each image's values.
#[derive(Clone, Debug)]
pub struct Evaluated {
    pub metrics: DomainMetrics,
    pub images: Vec<ImageResult>,
}

/// Predicted RGB8 images (interleaved, S x S) for scaled Lab inputs. `generator` is
/// normally an `InferenceGenerator` (BatchNorm folded, no graph); a training `Generator`
/// also works (eval mode).
pub fn predict_rgb<G: AbPredictor + ?Sized>(
    generator: &G,
    images: &[&LabImage],
    device: &Device,
) -> Result<Vec<Vec<u8>>> {
    let Some(first) = images.first() else {
        return Ok(Vec::new());
    };
    let s = first.size;
    let batch = host_batch(0, images, &vec![0; images.len()]);
    let l = Tensor::from_slice(&batch.l, (images.len(), 1, s, s), device)?;
    let ab = generator.predict_ab(&l)?; // [B, 2, S, S]
    let ab: Vec<f32> = ab.flatten_all()?.to_vec1()?;
    let plane = s * s;
    Ok(images
        .iter()
        .enumerate()
        .map(|(i, img)| {
            let l: Vec<f32> = img.l.iter().map(|&x| unscale_l(x)).collect();
            let ab: Vec<f32> = ab[i * 2 * plane..(i + 1) * 2 * plane]
                .iter()
                .map(|&x| unscale_ab(x))
                .collect();
            lab_planes_to_rgb8(&l, &ab)
        })
        .collect())
}

/// Every registered metric over `samples`: per image, their means and the set metrics.
pub fn evaluate<G: AbPredictor + ?Sized>(
    generator: &G,
    samples: &[Sample],
    pre: &Preprocess,
    on_bad: OnBadImage,
    device: &Device,
) -> Result<Evaluated> {
    evaluate_with(samples, pre, on_bad, |labs| {
        predict_rgb(generator, labs, device)
    })
}

/// The metrics of predicting no colour at all (ab = 0): the floor every model must beat.
pub fn evaluate_gray(
    samples: &[Sample],
    pre: &Preprocess,
    on_bad: OnBadImage,
) -> Result<Evaluated> {
    evaluate_with(samples, pre, on_bad, |labs| {
        Ok(labs
            .iter()
            .map(|img| {
                let l: Vec<f32> = img.l.iter().map(|&x| unscale_l(x)).collect();
                lab_planes_to_rgb8(&l, &vec![0.0; 2 * l.len()])
            })
            .collect())
    })
}

/// Metrics of any colouriser given as "scaled Lab inputs -> RGB8 outputs".
fn evaluate_with(
    samples: &[Sample],
    pre: &Preprocess,
    on_bad: OnBadImage,
    predict: impl Fn(&[&LabImage]) -> Result<Vec<Vec<u8>>>,
) -> Result<Evaluated> {
    let mut acc: BTreeMap<String, MeanMetric> = BTreeMap::new();
    let mut out = DomainMetrics {
        images: 0,
        skipped: Vec::new(),
        metrics: BTreeMap::new(),
        set: BTreeMap::new(),
    };
    let mut images = Vec::new();
    for chunk in eval_chunks(samples, pre, EVAL_BATCH, on_bad) {
        let chunk = chunk?;
        out.skipped
            .extend(chunk.skipped.iter().map(|(p, _)| p.display().to_string()));
        let labs: Vec<&LabImage> = chunk.items.iter().map(|it| &it.lab).collect();
        let preds = predict(&labs)?;
        for (item, pred) in chunk.items.iter().zip(&preds) {
            let s = item.lab.size;
            let values = evaluate_pair(
                RgbView::new(pred, s, s)?,
                RgbView::new(item.rgb.as_raw(), s, s)?,
            )?;
            for (name, v) in &values {
                acc.entry(name.to_string()).or_default().update(*v);
            }
            out.images += 1;
            images.push(ImageResult {
                path: item.sample.path.clone(),
                class: item.sample.class,
                values,
            });
        }
    }
    out.metrics = acc
        .into_iter()
        .filter_map(|(k, m)| m.summary().map(|s| (k, s)))
        .collect();
    let means = out.means();
    out.set = set_metrics()
        .iter()
        .filter_map(|m| Some((m.name().to_string(), m.compute(&means)?)))
        .collect();
    Ok(Evaluated {
        metrics: out,
        images,
    })
}
