//! Decoding as a user sees the file and as PIL accepts it: EXIF orientation applied,
//! truncated files refused by datasets and flagged for `colorize`. The fixtures and the
//! expected pictures (`*.pil.png`: Pillow's `ImageOps.exif_transpose` of the input) come
//! from `tests/fixtures/make_image_fixtures.py`.

use std::fs;
use std::path::{Path, PathBuf};

use dgcolor_data::{
    check_images, decode_rgb8, decode_rgb8_lenient, eval_items, DataError, LoaderConfig,
    OnBadImage, Preprocess, ResizeFilter, Sample, SourceSet, TrainLoader,
};
use image::RgbImage;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const PACS_MINI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/pacs_mini");

fn fixture(rel: &str) -> PathBuf {
    Path::new(FIXTURES).join(rel)
}

/// Pillow's decoding, read from the lossless PNG it wrote.
fn pil(rel: &str) -> RgbImage {
    image::open(fixture(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .into_rgb8()
}

/// The largest difference of any channel of any pixel; the images must have one size.
fn max_diff(a: &RgbImage, b: &RgbImage) -> u8 {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap()
}

#[test]
fn exif_orientation_is_applied_as_pil_exif_transpose_does() {
    // Stored 40x24; orientations 5-8 turn it a quarter and display it 24x40.
    for (orientation, size) in [
        (1, (40, 24)),
        (2, (40, 24)),
        (3, (40, 24)),
        (4, (40, 24)),
        (5, (24, 40)),
        (6, (24, 40)),
        (7, (24, 40)),
        (8, (24, 40)),
    ] {
        let name = format!("exif/orientation_{orientation}.jpg");
        let got = decode_rgb8(&fixture(&name)).unwrap();
        let want = pil(&format!("exif/orientation_{orientation}.pil.png"));
        assert_eq!(got.dimensions(), size, "{name}");
        // zune-jpeg and libjpeg-turbo may round their IDCTs differently (on these files
        // they agree exactly); a wrong orientation
        // puts 8x8 blocks of unrelated colours (30-225) on top of each other.
        let d = max_diff(&got, &want);
        assert!(d <= 3, "{name}: differs from Pillow by up to {d}");
    }
    // The same picture as PNG with an eXIf chunk: lossless, so exactly Pillow's.
    let got = decode_rgb8(&fixture("exif/orientation_6.png")).unwrap();
    assert_eq!(got, pil("exif/orientation_6_png.pil.png"));
    // The lenient decode orients too.
    let lenient = decode_rgb8_lenient(&fixture("exif/orientation_8.jpg")).unwrap();
    assert!(!lenient.is_truncated());
    assert_eq!(
        lenient.rgb,
        decode_rgb8(&fixture("exif/orientation_8.jpg")).unwrap()
    );
}

#[test]
fn a_truncated_jpeg_is_an_error_naming_the_file_and_flagged_by_the_lenient_decode() {
    let half = fixture("truncated/half.jpg");
    let err = decode_rgb8(&half).unwrap_err();
    assert!(matches!(err, DataError::Truncated { .. }), "{err}");
    assert_eq!(err.path(), Some(half.as_path()));
    let msg = err.to_string();
    assert!(
        msg.contains(half.to_str().unwrap()) && msg.contains("image file is truncated"),
        "{msg}"
    );

    // The decoder fills the missing part in: the picture has its full size, and the
    // rows before the cut are those of the whole file.
    let whole = decode_rgb8(&fixture("truncated/whole.jpg")).unwrap();
    let got = decode_rgb8_lenient(&half).unwrap();
    assert!(got.is_truncated(), "{got:?}");
    assert!(got
        .truncated
        .as_deref()
        .unwrap()
        .contains("end-of-image marker"));
    assert_eq!(got.rgb.dimensions(), (128, 96));
    let row = 128 * 3;
    assert_eq!(got.rgb.as_raw()[..16 * row], whole.as_raw()[..16 * row]);
    assert_ne!(got.rgb.as_raw(), whole.as_raw());
}

#[test]
fn a_jpeg_is_complete_with_its_end_marker_whatever_follows_it() {
    let whole = decode_rgb8(&fixture("truncated/whole.jpg")).unwrap();
    assert_eq!(whole.dimensions(), (128, 96));
    // Junk after the end-of-image marker (camera trailers) is ignored, as Pillow does.
    assert_eq!(
        decode_rgb8(&fixture("truncated/trailing.jpg")).unwrap(),
        whole
    );
    // Without the marker, the file is truncated, even though here every scan is there
    // (Pillow reads this one; see the fixture script).
    let no_eoi = fixture("truncated/no_eoi.jpg");
    let err = decode_rgb8(&no_eoi).unwrap_err();
    assert!(matches!(err, DataError::Truncated { .. }), "{err}");
    let lenient = decode_rgb8_lenient(&no_eoi).unwrap();
    assert!(lenient.is_truncated());
    assert_eq!(lenient.rgb, whole);
    // Real JPEGs (PACS, from the web and cameras) are complete.
    let mut jpegs = 0;
    for domain in fs::read_dir(PACS_MINI).unwrap() {
        for class in fs::read_dir(domain.unwrap().path()).unwrap() {
            for file in fs::read_dir(class.unwrap().path()).unwrap() {
                let path = file.unwrap().path();
                if path.extension().is_some_and(|e| e == "jpg") {
                    decode_rgb8(&path).unwrap_or_else(|e| panic!("{e}"));
                    jpegs += 1;
                }
            }
        }
    }
    assert!(jpegs >= 20, "{jpegs}");
}

#[test]
fn truncated_png_and_bmp_are_errors_in_both_decodes() {
    for name in ["truncated/half.png", "truncated/half.bmp"] {
        let path = fixture(name);
        for err in [
            decode_rgb8(&path).unwrap_err(),
            decode_rgb8_lenient(&path).unwrap_err(),
        ] {
            assert!(matches!(err, DataError::Truncated { .. }), "{err}");
            assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
        }
    }
}

#[test]
fn garbage_is_unreadable_not_truncated_and_an_empty_file_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.jpg");
    fs::write(&garbage, b"not a jpeg at all").unwrap();
    let err = decode_rgb8_lenient(&garbage).unwrap_err();
    assert!(matches!(err, DataError::Decode { .. }), "{err}");
    let empty = dir.path().join("empty.png");
    fs::write(&empty, b"").unwrap();
    let err = decode_rgb8(&empty).unwrap_err();
    assert!(
        matches!(err, DataError::Truncated { .. }) && err.to_string().contains("empty"),
        "{err}"
    );
}

/// Three good images and the truncated JPEG, as one domain.
fn samples_with_truncated() -> (Vec<Sample>, PathBuf) {
    let truncated = fixture("truncated/half.jpg");
    let samples = [
        fixture("truncated/whole.jpg"),
        truncated.clone(),
        fixture("exif/orientation_6.jpg"),
        fixture("exif/orientation_1.jpg"),
    ]
    .into_iter()
    .map(|path| Sample { path, class: 0 })
    .collect();
    (samples, truncated)
}

#[test]
fn datasets_fail_on_or_skip_and_record_a_truncated_image() {
    let (samples, truncated) = samples_with_truncated();
    let pre = Preprocess {
        size: 16,
        filter: ResizeFilter::Nearest,
    };
    let err = eval_items(&samples, &pre, OnBadImage::Fail).unwrap_err();
    assert!(matches!(err, DataError::Truncated { .. }), "{err}");
    assert_eq!(err.path(), Some(truncated.as_path()));

    let out = eval_items(&samples, &pre, OnBadImage::Skip).unwrap();
    assert_eq!(out.skipped.len(), 1);
    assert_eq!(out.skipped[0].0, truncated);
    assert!(matches!(out.skipped[0].1, DataError::Truncated { .. }));
    let kept: Vec<usize> = out.items.iter().map(|i| i.index).collect();
    assert_eq!(kept, [0, 2, 3]);

    // `dgcolor data check` reports it.
    let broken = check_images(&samples);
    assert_eq!(broken.len(), 1);
    assert_eq!(broken[0].path, truncated);

    // The training loader: one balanced batch of the whole domain, in both modes.
    let sources = vec![SourceSet {
        domain: 0,
        samples: samples.clone(),
    }];
    let config = |on_bad| LoaderConfig {
        batch_size: 4,
        mode: dgcolor_data::BatchMode::Balanced,
        preprocess: pre,
        flip: false,
        seed: 3,
        on_bad,
        prefetch: 1,
        cache_bytes: 0,
    };
    let fail = TrainLoader::new(sources.clone(), config(OnBadImage::Fail)).unwrap();
    let Err(err) = fail.batch_at(0) else {
        panic!("the truncated image is drawn and fails the batch")
    };
    assert_eq!(err.path(), Some(truncated.as_path()));
    let skip = TrainLoader::new(sources, config(OnBadImage::Skip)).unwrap();
    let step = skip.batch_at(0).unwrap();
    assert_eq!(step.skipped, [truncated]);
    assert_eq!(step.batches[0].len(), 3, "dropped, not replaced");
}
