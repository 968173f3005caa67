//! Decoding and resizing. Datasets mix JPEG photos, RGB-PNG sketches, the odd grayscale
//! or palette file, and files whose extension lies, so images are decoded by content and
//! always come out as RGB8. The nearest-neighbour resize reproduces PIL's index choice
//! bit for bit, because the reference preprocessing is torchvision's `Resize` with
//! `NEAREST` on PIL images and a one-pixel shift would change every training target.

use std::path::Path;

use image::{imageops, RgbImage};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// Decodes a JPEG, PNG or BMP file (by content; the extension is only a fallback hint) to
/// RGB8: gray is replicated, alpha is dropped, 16-bit channels are reduced to 8 bits.
pub fn decode_rgb8(path: &Path) -> Result<RgbImage> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| DataError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    let img = reader.decode().map_err(|source| DataError::Decode {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(img.into_rgb8())
}

/// How images are brought to the training size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ResizeFilter {
    /// The reference: PIL `Image.NEAREST`, aliasing included.
    #[default]
    Nearest,
    /// Our option: a triangle (bilinear) filter whose support widens with the reduction
    /// factor, i.e. an area-weighted downscale as PIL's antialiased `BILINEAR` does.
    Antialias,
}

/// Resizes to `width x height`; the same size returns a copy.
pub fn resize_rgb8(img: &RgbImage, width: u32, height: u32, filter: ResizeFilter) -> RgbImage {
    if img.dimensions() == (width, height) {
        return img.clone();
    }
    match filter {
        ResizeFilter::Nearest => resize_nearest(img, width, height),
        ResizeFilter::Antialias => {
            imageops::resize(img, width, height, imageops::FilterType::Triangle)
        }
    }
}

/// PIL's nearest source indices along one axis. PIL (`ImagingScaleAffine`) starts at half
/// a step and accumulates the step in double precision, so we do the same rather than
/// compute `floor((i + 0.5) * in / out)` directly: the two can differ by one ulp exactly
/// where a sample lands on a pixel boundary.
pub fn pil_nearest_indices(input: u32, output: u32) -> Vec<u32> {
    let step = input as f64 / output as f64;
    let mut pos = step * 0.5;
    (0..output)
        .map(|_| {
            let i = (pos.max(0.0) as u32).min(input - 1);
            pos += step;
            i
        })
        .collect()
}

fn resize_nearest(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let xs = pil_nearest_indices(img.width(), width);
    let ys = pil_nearest_indices(img.height(), height);
    let mut raw = Vec::new();
    gather_nearest_into::<u8, 3>(img.as_raw(), img.width() as usize, &xs, &ys, &mut raw);
    RgbImage::from_raw(width, height, raw).expect("resize_nearest: buffer matches its size")
}

/// Appends `out[y, x] = src[ys[y], xs[x]]` to `out`, for pixels of `CH` values in rows of
/// `src_width` pixels: the nearest resize of an RGB8 image or of one plane. An upscale repeats
/// source rows (227 -> 256: 29 of 256), and a repeated row is copied from the output row
/// before it instead of being gathered again; nothing is zero-filled first.
pub(crate) fn gather_nearest_into<T: Copy, const CH: usize>(
    src: &[T],
    src_width: usize,
    xs: &[u32],
    ys: &[u32],
    out: &mut Vec<T>,
) {
    let row_len = xs.len() * CH;
    assert!(
        xs.iter().all(|&x| (x as usize) < src_width)
            && ys
                .iter()
                .all(|&y| (y as usize + 1) * src_width * CH <= src.len()),
        "gather_nearest_into: an index lies outside the {src_width}-pixel-wide source of {} values",
        src.len()
    );
    out.reserve(ys.len() * row_len);
    let mut prev_y = None;
    for &y in ys {
        let start = out.len();
        if prev_y == Some(y) {
            out.extend_from_within(start - row_len..start);
            continue;
        }
        prev_y = Some(y);
        let row = &src[y as usize * src_width * CH..][..src_width * CH];
        let dst = &mut out.spare_capacity_mut()[..row_len];
        dgcolor_kernels::simd(
            #[inline(always)]
            || {
                for (&x, d) in xs.iter().zip(dst.chunks_exact_mut(CH)) {
                    for (c, d) in d.iter_mut().enumerate() {
                        // SAFETY: x < src_width (asserted above), so x * CH + c < row.len().
                        d.write(unsafe { *row.get_unchecked(x as usize * CH + c) });
                    }
                }
            },
        );
        // SAFETY: the row_len values after `start` were all written just above (xs has
        // row_len / CH entries, each writing CH values), within the reserved capacity.
        unsafe { out.set_len(start + row_len) };
    }
}
