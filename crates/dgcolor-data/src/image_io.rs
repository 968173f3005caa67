//! Decoding and resizing. Datasets mix JPEG photos, RGB-PNG sketches, the odd grayscale
//! or palette file, and files whose extension lies, so images are decoded by content and
//! always come out as RGB8. The nearest-neighbour resize reproduces PIL's index choice
//! bit for bit, because the reference preprocessing is torchvision's `Resize` with
//! `NEAREST` on PIL images and a one-pixel shift would change every training target.
//!
//! Decoding matches what a user sees and what PIL accepts:
//! - The EXIF orientation (all eight values; JPEG APP1, or a PNG `eXIf` chunk ahead of the
//!   pixel data) is applied, as `ImageOps.exif_transpose` does: a phone photo taken upright
//!   comes out upright, at its displayed size.
//! - A truncated file is a bad image, as PIL's "image file is truncated" makes it: a cut
//!   download must not train as half a picture. The PNG and BMP decoders fail on their own
//!   when the data runs out, and that end of file is reported as truncation (a PNG missing
//!   only its final `IEND` chunk fails too, where PIL reads it). The JPEG decoder instead
//!   fills the missing part in and succeeds, so a JPEG counts as truncated when no
//!   end-of-image marker (`FF D9`) follows its last scan, even when only the marker is
//!   missing. [`decode_rgb8`] refuses truncated files ([`DataError::Truncated`]);
//!   [`decode_rgb8_lenient`] returns the filled-in picture with a flag, for `colorize`.

use std::io::Cursor;
use std::path::Path;

use image::{imageops, DynamicImage, ImageDecoder, ImageError, ImageFormat, RgbImage};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// Decodes a JPEG, PNG or BMP file (by content; the extension is only a fallback hint) to
/// RGB8 in its displayed orientation: the EXIF orientation is applied, gray is replicated,
/// alpha is dropped, 16-bit channels are reduced to 8 bits. A truncated file is an error
/// ([`DataError::Truncated`]), like any other unreadable one.
pub fn decode_rgb8(path: &Path) -> Result<RgbImage> {
    let decoded = decode_rgb8_lenient(path)?;
    match decoded.truncated {
        Some(detail) => Err(DataError::Truncated {
            path: path.to_path_buf(),
            detail,
        }),
        None => Ok(decoded.rgb),
    }
}

/// What [`decode_rgb8_lenient`] returns.
#[derive(Clone, Debug)]
pub struct DecodedImage {
    /// RGB8 in the displayed orientation, as [`decode_rgb8`] makes it.
    pub rgb: RgbImage,
    /// `Some(why)` when the file is truncated and the decoder filled in the missing part
    /// (only JPEG decoders do; `why` says what is missing).
    pub truncated: Option<String>,
}

impl DecodedImage {
    pub fn is_truncated(&self) -> bool {
        self.truncated.is_some()
    }
}

/// [`decode_rgb8`] that keeps a truncated image the decoder could still fill in, flagged,
/// instead of refusing it: for colourizing single files, where half a photo is better than
/// none as long as the user is told. A file the decoder cannot read at all is still an
/// error ([`DataError::Truncated`] when it ends early, [`DataError::Decode`] otherwise).
pub fn decode_rgb8_lenient(path: &Path) -> Result<DecodedImage> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    // Truncation is only judged for a file whose content says what it is: a text file
    // named .jpg is not a truncated JPEG.
    let content = image::guess_format(&bytes).ok();
    let missing_end = match content {
        Some(ImageFormat::Jpeg) => jpeg_missing_eoi(&bytes),
        _ => None,
    };
    let format = content.or_else(|| ImageFormat::from_path(path).ok());
    match decode_oriented(&bytes, format) {
        Ok(rgb) => Ok(DecodedImage {
            rgb,
            truncated: missing_end,
        }),
        Err(source) => {
            let detail = if bytes.is_empty() {
                Some("the file is empty".to_string())
            } else {
                missing_end.or_else(|| content.and_then(|f| ends_early(&source, f)))
            };
            Err(match detail {
                Some(detail) => DataError::Truncated {
                    path: path.to_path_buf(),
                    detail,
                },
                None => DataError::Decode {
                    path: path.to_path_buf(),
                    source,
                },
            })
        }
    }
}

/// Decodes `bytes` (of `format`, when known) to RGB8 and applies the EXIF orientation.
/// The allocation limit is the one `ImageReader::decode` applies (512 MiB by default).
fn decode_oriented(bytes: &[u8], format: Option<ImageFormat>) -> image::ImageResult<RgbImage> {
    let mut reader = image::ImageReader::new(Cursor::new(bytes));
    if let Some(format) = format {
        reader.set_format(format);
    }
    let mut decoder = reader.into_decoder()?;
    let orientation = decoder.orientation()?;
    image::Limits::default().reserve(decoder.total_bytes())?;
    let mut img = DynamicImage::ImageRgb8(DynamicImage::from_decoder(decoder)?.into_rgb8());
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}

/// `Some(why)` when the decoder hit the end of the file: the PNG and BMP decoders say so
/// with an I/O `UnexpectedEof` when the pixel data (for PNG, the chunks up to `IEND`)
/// runs out.
fn ends_early(err: &ImageError, format: ImageFormat) -> Option<String> {
    match err {
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            let name = match format {
                ImageFormat::Jpeg => "JPEG",
                ImageFormat::Png => "PNG",
                ImageFormat::Bmp => "BMP",
                _ => "image",
            };
            Some(format!("the {name} data ends early: {e}"))
        }
        _ => None,
    }
}

/// `Some(why)` when a JPEG has no end-of-image marker after its last scan, i.e. the file
/// stops inside (or right after) the compressed data. Walks the marker segments from SOI
/// by their lengths, and through each scan's entropy-coded data, where a 0xFF byte is
/// always followed by 0x00 (a stuffed byte) or a restart marker, so the first other
/// marker ends the scan. Data after EOI (camera trailers, a second picture) is ignored.
fn jpeg_missing_eoi(bytes: &[u8]) -> Option<String> {
    const EOI: u8 = 0xD9;
    const SOS: u8 = 0xDA;
    let missing = || Some("the JPEG data ends before its end-of-image marker".to_string());
    let n = bytes.len();
    let mut i = 2; // past SOI
    loop {
        // The next marker: 0xFF, any number of 0xFF fill bytes, then the code. Stray bytes
        // between segments are skipped, as decoders do.
        while i < n && bytes[i] != 0xFF {
            i += 1;
        }
        while i < n && bytes[i] == 0xFF {
            i += 1;
        }
        let Some(&code) = bytes.get(i) else {
            return missing();
        };
        i += 1;
        match code {
            EOI => return None,
            // Standalone markers: TEM, RSTn (and a stuffed zero outside a scan).
            0x00 | 0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let Some(len) = bytes.get(i..i + 2) else {
            return missing();
        };
        i += usize::from(u16::from_be_bytes([len[0], len[1]]));
        if i > n {
            return missing();
        }
        if code == SOS {
            // Entropy-coded data, up to the first 0xFF that starts a real marker.
            loop {
                match bytes[i..].iter().position(|&b| b == 0xFF) {
                    Some(k) => i += k,
                    None => return missing(),
                }
                match bytes.get(i + 1) {
                    Some(0x00 | 0xD0..=0xD7) => i += 2,
                    Some(_) => break,
                    None => return missing(),
                }
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::jpeg_missing_eoi;

    /// A marker segment: FF, code, big-endian length (itself included), payload.
    fn segment(code: u8, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() + 2) as u16;
        [&[0xFF, code][..], &len.to_be_bytes(), payload].concat()
    }

    /// The marker structure of a two-scan (progressive-like) JPEG, with everything that
    /// could fool a byte search for FF D9: an end marker inside an APP1 payload (an EXIF
    /// thumbnail) and inside a table between the scans, stuffed 0xFF bytes and restart
    /// markers inside the scans, fill bytes before the end marker.
    fn stream() -> Vec<u8> {
        [
            vec![0xFF, 0xD8],
            segment(0xE1, &[b'E', b'x', 0xFF, 0xD8, 0x12, 0xFF, 0xD9, 0x00]),
            segment(0xDB, &[0; 65]),
            segment(0xC2, &[8, 0, 8, 0, 8, 1, 1, 0x11, 0]),
            segment(0xDA, &[1, 1, 0, 0, 63, 0]),
            vec![0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0x00],
            segment(0xC4, &[0x10, 0xFF, 0xD9, 0xFF, 0xD9]),
            segment(0xDA, &[1, 1, 0, 1, 63, 0]),
            vec![0xFF, 0x00, 0x78, 0xFF, 0xD7, 0x9A],
            vec![0xFF, 0xFF, 0xD9],
        ]
        .concat()
    }

    #[test]
    fn a_jpeg_is_complete_exactly_when_its_end_marker_is_there() {
        let full = stream();
        assert_eq!(jpeg_missing_eoi(&full), None);
        // Whatever follows the end marker is not looked at.
        let trailer = [&full[..], b"\xFF\xDA\x00junk\xFF"].concat();
        assert_eq!(jpeg_missing_eoi(&trailer), None);
        // Every cut is truncated, including those right after an FF D9 inside a segment.
        for n in 2..full.len() {
            assert!(jpeg_missing_eoi(&full[..n]).is_some(), "cut at {n}");
        }
    }
}
