//! From a file to network-ready Lab planes, and evaluation in a fixed order. Everything
//! that turns pixels into training values lives here, so training, validation and test
//! images go through literally the same code.

use std::path::{Path, PathBuf};

use image::RgbImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::batch::HostBatch;
use crate::color::rgb8_to_scaled_lab_planes;
use crate::error::{DataError, Result};
use crate::folder::Sample;
use crate::image_io::{
    decode_rgb8, gather_nearest_into, pil_nearest_indices, resize_rgb8, ResizeFilter,
};

/// Geometry of the network input: every image is resized to `size x size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preprocess {
    pub size: usize,
    pub filter: ResizeFilter,
}

impl Default for Preprocess {
    /// The reference: 256 x 256, nearest neighbour.
    fn default() -> Self {
        Self {
            size: 256,
            filter: ResizeFilter::Nearest,
        }
    }
}

/// One image in the reference scaling.
#[derive(Clone, Debug, PartialEq)]
pub struct LabImage {
    pub size: usize,
    /// `L/50 - 1`, `[S*S]` row-major.
    pub l: Vec<f32>,
    /// `ab/100`, `[2*S*S]`: the a plane then the b plane.
    pub ab: Vec<f32>,
}

impl LabImage {
    /// Bytes held, for the loader's cache budget.
    pub fn bytes(&self) -> usize {
        (self.l.len() + self.ab.len()) * std::mem::size_of::<f32>()
    }

    /// Mirror left-right, in place, on all three planes.
    pub fn flip_horizontal(&mut self) {
        let s = self.size;
        for row in self
            .l
            .chunks_exact_mut(s)
            .chain(self.ab.chunks_exact_mut(s))
        {
            row.reverse();
        }
    }
}

/// Scaled Lab planes of an already square image.
pub fn lab_image(rgb: &RgbImage) -> LabImage {
    assert_eq!(
        rgb.width(),
        rgb.height(),
        "lab_image: image is {}x{}, expected a square",
        rgb.width(),
        rgb.height()
    );
    let (l, ab) = rgb8_to_scaled_lab_planes(rgb.as_raw());
    LabImage {
        size: rgb.width() as usize,
        l,
        ab,
    }
}

/// Decode, resize to `pre.size`, convert. Returns the resized RGB8 too: it is the ground
/// truth that metrics compare against.
pub fn load_lab(path: &Path, pre: &Preprocess) -> Result<(RgbImage, LabImage)> {
    let src = decode_rgb8(path)?;
    let rgb = resize_rgb8(&src, pre.size as u32, pre.size as u32, pre.filter);
    let lab = match upscaled_lab(&src, pre) {
        Some(lab) => lab,
        None => lab_image(&rgb),
    };
    Ok((rgb, lab))
}

/// [`load_lab`] without the resized RGB8 (identical Lab planes): what the training loader
/// needs, one nearest resize of three bytes per pixel cheaper.
pub fn load_lab_planes(path: &Path, pre: &Preprocess) -> Result<LabImage> {
    let src = decode_rgb8(path)?;
    Ok(match upscaled_lab(&src, pre) {
        Some(lab) => lab,
        None => lab_image(&resize_rgb8(
            &src,
            pre.size as u32,
            pre.size as u32,
            pre.filter,
        )),
    })
}

/// For a nearest resize that does not shrink: Lab is a per-pixel map, so it commutes with
/// the resize, and converting the smaller source then resizing the planes gives the same
/// planes with fewer pixels to convert (PACS: 227^2 instead of 256^2). `None` otherwise.
fn upscaled_lab(src: &RgbImage, pre: &Preprocess) -> Option<LabImage> {
    let size = pre.size as u32;
    let (w, h) = src.dimensions();
    if pre.filter != ResizeFilter::Nearest || (w as u64 * h as u64) >= (size as u64).pow(2) {
        return None;
    }
    let (l, ab) = rgb8_to_scaled_lab_planes(src.as_raw());
    let (xs, ys) = (pil_nearest_indices(w, size), pil_nearest_indices(h, size));
    let n = (w * h) as usize;
    let resize = |plane: &[f32], out: &mut Vec<f32>| {
        gather_nearest_into::<f32, 1>(plane, w as usize, &xs, &ys, out)
    };
    let (mut l_out, mut ab_out) = (Vec::new(), Vec::new());
    resize(&l, &mut l_out);
    resize(&ab[..n], &mut ab_out);
    resize(&ab[n..], &mut ab_out);
    Some(LabImage {
        size: pre.size,
        l: l_out,
        ab: ab_out,
    })
}

/// What to do with a file that cannot be decoded or is truncated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnBadImage {
    /// Stop with an error naming the file: a broken dataset should be noticed.
    #[default]
    Fail,
    /// Drop the image and report it; never substitute another image.
    Skip,
}

/// Stacks images of one domain into a batch (all images must have the same size).
pub fn host_batch(domain: usize, items: &[&LabImage], classes: &[u32]) -> HostBatch {
    assert_eq!(
        items.len(),
        classes.len(),
        "host_batch: {} images but {} class ids",
        items.len(),
        classes.len()
    );
    let size = items.first().map_or(0, |i| i.size);
    assert!(
        items.iter().all(|i| i.size == size),
        "host_batch: images of different sizes"
    );
    HostBatch {
        domain,
        size,
        l: items.iter().flat_map(|i| i.l.iter().copied()).collect(),
        ab: items.iter().flat_map(|i| i.ab.iter().copied()).collect(),
        class: classes.to_vec(),
    }
}

/// One evaluation image, with its position in the sample list so that outputs and
/// records can be keyed stably.
#[derive(Clone, Debug)]
pub struct EvalItem {
    pub index: usize,
    pub sample: Sample,
    /// The resized `S x S` ground truth.
    pub rgb: RgbImage,
    pub lab: LabImage,
}

/// One chunk of [`eval_chunks`]: the images that loaded, in order, and in `Skip` mode
/// the ones that did not.
#[derive(Debug, Default)]
pub struct EvalChunk {
    pub items: Vec<EvalItem>,
    pub skipped: Vec<(PathBuf, DataError)>,
}

/// Iterator over `chunk`-sized pieces of `samples`, decoded in parallel, in order.
pub struct EvalChunks<'a> {
    samples: &'a [Sample],
    pre: Preprocess,
    chunk: usize,
    on_bad: OnBadImage,
    next: usize,
}

/// Evaluates a (possibly large) domain without holding it all in memory. In `Fail` mode
/// the first bad file (in sample order) ends the iteration with its error.
pub fn eval_chunks<'a>(
    samples: &'a [Sample],
    pre: &Preprocess,
    chunk: usize,
    on_bad: OnBadImage,
) -> EvalChunks<'a> {
    EvalChunks {
        samples,
        pre: *pre,
        chunk: chunk.max(1),
        on_bad,
        next: 0,
    }
}

impl Iterator for EvalChunks<'_> {
    type Item = Result<EvalChunk>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.samples.len() {
            return None;
        }
        let start = self.next;
        let end = (start + self.chunk).min(self.samples.len());
        self.next = end;
        let loaded: Vec<_> = self.samples[start..end]
            .par_iter()
            .map(|s| load_lab(&s.path, &self.pre))
            .collect();
        let mut out = EvalChunk::default();
        for (offset, (sample, result)) in self.samples[start..end].iter().zip(loaded).enumerate() {
            match result {
                Ok((rgb, lab)) => out.items.push(EvalItem {
                    index: start + offset,
                    sample: sample.clone(),
                    rgb,
                    lab,
                }),
                Err(e) if self.on_bad == OnBadImage::Skip => {
                    out.skipped.push((sample.path.clone(), e))
                }
                Err(e) => {
                    self.next = self.samples.len();
                    return Some(Err(e));
                }
            }
        }
        Some(Ok(out))
    }
}

/// All of [`eval_chunks`] at once, for small sets.
pub fn eval_items(samples: &[Sample], pre: &Preprocess, on_bad: OnBadImage) -> Result<EvalChunk> {
    let mut all = EvalChunk::default();
    for chunk in eval_chunks(samples, pre, 64, on_bad) {
        let chunk = chunk?;
        all.items.extend(chunk.items);
        all.skipped.extend(chunk.skipped);
    }
    Ok(all)
}
