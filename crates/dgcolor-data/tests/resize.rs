//! Nearest-neighbour resizing against PIL, and decoding.

use dgcolor_data::{pil_nearest_indices, resize_rgb8, ResizeFilter};
use image::RgbImage;

// Generated with Pillow 13.0 (`Image.NEAREST`, what torchvision's Resize(NEAREST) calls):
// ```python
// import numpy as np
// from PIL import Image
// def index_map(w_in, h_in, w_out, h_out):
//     # encode (x, y) in the R and G channels, resize with NEAREST, read the source indices back
//     x, y = np.meshgrid(np.arange(w_in), np.arange(h_in))
//     img = np.stack([x, y, np.zeros_like(x)], -1).astype(np.uint8)
//     out = np.asarray(Image.fromarray(img).resize((w_out, h_out), Image.NEAREST))
//     return out[0, :, 0].tolist(), out[:, 0, 1].tolist()
// for case in [(7, 5, 4, 3), (3, 3, 8, 8), (227, 227, 64, 64), (2, 2, 3, 3), (6, 10, 4, 15)]:
//     xs, ys = index_map(*case)
//     print(case, "xs =", xs, "ys =", ys)
// ```
// Its output, (w_in, h_in, w_out, h_out) -> source columns, source rows. (2, 7) is a case
// where floor((i + 0.5) * in / out) would pick 1 for i = 3 but PIL, accumulating the step
// in floating point, picks 0.
/// ((w_in, h_in, w_out, h_out), source columns, source rows)
type Case = ((u32, u32, u32, u32), &'static [u32], &'static [u32]);
const CASES: &[Case] = &[
    ((7, 5, 4, 3), &[0, 2, 4, 6], &[0, 2, 4]),
    (
        (3, 3, 8, 8),
        &[0, 0, 0, 1, 1, 2, 2, 2],
        &[0, 0, 0, 1, 1, 2, 2, 2],
    ),
    ((2, 2, 3, 3), &[0, 1, 1], &[0, 1, 1]),
    (
        (6, 10, 4, 15),
        &[0, 2, 3, 5],
        &[0, 1, 1, 2, 2, 3, 4, 5, 5, 6, 7, 7, 8, 9, 9],
    ),
    ((2, 2, 7, 7), &[0, 0, 0, 0, 1, 1, 1], &[0, 0, 0, 0, 1, 1, 1]),
];
const XS_227_TO_64: [u32; 64] = [
    1, 5, 8, 12, 15, 19, 23, 26, 30, 33, 37, 40, 44, 47, 51, 54, 58, 62, 65, 69, 72, 76, 79, 83,
    86, 90, 93, 97, 101, 104, 108, 111, 115, 118, 122, 125, 129, 133, 136, 140, 143, 147, 150, 154,
    157, 161, 164, 168, 172, 175, 179, 182, 186, 189, 193, 196, 200, 203, 207, 211, 214, 218, 221,
    225,
];

/// An image whose pixel (x, y) is (x, y, 0), so a resized pixel names its source.
fn coordinate_image(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 0]))
}

#[test]
fn nearest_matches_pil() {
    let mut cases = CASES.to_vec();
    cases.push(((227, 227, 64, 64), &XS_227_TO_64, &XS_227_TO_64));
    for ((w, h, ow, oh), xs, ys) in cases {
        assert_eq!(pil_nearest_indices(w, ow), xs, "columns {w} -> {ow}");
        assert_eq!(pil_nearest_indices(h, oh), ys, "rows {h} -> {oh}");
        let out = resize_rgb8(&coordinate_image(w, h), ow, oh, ResizeFilter::Nearest);
        assert_eq!(out.dimensions(), (ow, oh));
        for (x, y, p) in out.enumerate_pixels() {
            assert_eq!(
                [p[0] as u32, p[1] as u32],
                [xs[x as usize], ys[y as usize]],
                "pixel ({x}, {y}) of {w}x{h} -> {ow}x{oh}"
            );
        }
    }
}

#[test]
fn same_size_is_a_copy_and_antialias_averages() {
    let img = coordinate_image(9, 9);
    assert_eq!(resize_rgb8(&img, 9, 9, ResizeFilter::Antialias), img);
    // A 1-pixel checkerboard averaged down by 4 is mid-gray; nearest keeps one phase.
    let checker = RgbImage::from_fn(64, 64, |x, y| {
        if (x + y) % 2 == 0 {
            image::Rgb([255; 3])
        } else {
            image::Rgb([0; 3])
        }
    });
    let aa = resize_rgb8(&checker, 16, 16, ResizeFilter::Antialias);
    assert!(
        aa.pixels().all(|p| (100..=155).contains(&p[0])),
        "antialias should average"
    );
    let nn = resize_rgb8(&checker, 16, 16, ResizeFilter::Nearest);
    assert!(nn.pixels().all(|p| p[0] == 0 || p[0] == 255));
}

/// `load_lab` converts the source before a nearest upscale (fewer pixels); the planes must be
/// exactly those of converting the resized image, for an upscale (227 -> 256, PACS) and a
/// downscale (227 -> 64, converted after), on real PACS JPEGs.
#[test]
fn load_lab_and_load_lab_planes_equal_converting_the_resized_image() {
    use dgcolor_data::{decode_rgb8, lab_image, load_lab, load_lab_planes, Preprocess};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/pacs_mini/cartoon/dog");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no images in {}", dir.display());
    for path in &files[..2] {
        for size in [256, 64, 227] {
            let pre = Preprocess {
                size,
                filter: ResizeFilter::Nearest,
            };
            let (rgb, lab) = load_lab(path, &pre).unwrap();
            let s = size as u32;
            let want_rgb = resize_rgb8(&decode_rgb8(path).unwrap(), s, s, ResizeFilter::Nearest);
            assert_eq!(rgb, want_rgb, "{} at {size}", path.display());
            let want = lab_image(&want_rgb);
            assert_eq!(lab.size, size);
            assert_eq!(lab.l, want.l, "L of {} at {size}", path.display());
            assert_eq!(lab.ab, want.ab, "ab of {} at {size}", path.display());
            let planes = load_lab_planes(path, &pre).unwrap();
            assert_eq!(
                (planes.l, planes.ab),
                (lab.l, lab.ab),
                "{} at {size}",
                path.display()
            );
        }
    }
}
