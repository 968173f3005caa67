//! `dgcolor data check`: decode every image of a dataset, in parallel, and report the
//! ones that fail with their paths. A 15 000-image download with one truncated JPEG
//! should fail here in a minute, not in the middle of epoch 37.

use std::path::PathBuf;

use rayon::prelude::*;

use crate::error::DataError;
use crate::folder::Sample;
use crate::image_io::decode_rgb8;

/// An image that did not decode.
#[derive(Debug)]
pub struct BrokenImage {
    pub path: PathBuf,
    pub error: DataError,
}

/// Decodes every sample (rayon, all cores); returns the broken ones sorted by path.
pub fn check_images(samples: &[Sample]) -> Vec<BrokenImage> {
    let mut broken: Vec<BrokenImage> = samples
        .par_iter()
        .filter_map(|s| {
            decode_rgb8(&s.path).err().map(|error| BrokenImage {
                path: s.path.clone(),
                error,
            })
        })
        .collect();
    broken.sort_by(|a, b| a.path.cmp(&b.path));
    broken
}
