//! Multi-domain folders on real PACS files and on deliberately broken trees; decoding of
//! unusual PNG kinds; the reference split.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use dgcolor_data::{
    decode_rgb8, eval_chunks, eval_items, reference_split, DataError, MultiDomainFolder,
    OnBadImage, Preprocess, ResizeFilter, Sample,
};
use image::{ImageBuffer, Luma, LumaA, Rgb, RgbImage, Rgba};

const PACS_MINI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/pacs_mini");
const PACS_CLASSES: [&str; 7] = [
    "dog", "elephant", "giraffe", "guitar", "horse", "house", "person",
];

#[test]
fn pacs_mini_layout_classes_and_decoding() {
    let folder = MultiDomainFolder::open(Path::new(PACS_MINI)).expect("fixtures/pacs_mini");
    assert_eq!(
        folder.domains,
        ["art_painting", "cartoon", "photo", "sketch"]
    );
    // Every domain lacks some class; ids still index the sorted union.
    assert_eq!(folder.classes, PACS_CLASSES);
    let counts: Vec<Vec<usize>> = folder
        .domains
        .iter()
        .map(|d| folder.class_counts(d).unwrap())
        .collect();
    assert_eq!(counts[0], [2, 1, 1, 2, 1, 0, 3]); // art_painting: no house
    assert_eq!(counts[1], [3, 1, 2, 0, 1, 1, 2]); // cartoon: no guitar
    assert_eq!(counts[2], [1, 1, 0, 1, 1, 4, 2]); // photo: no giraffe
    assert_eq!(counts[3], [3, 2, 1, 2, 1, 1, 0]); // sketch: no person
    for d in &folder.domains {
        for s in folder.domain(d).unwrap() {
            let class_dir = s
                .path
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap();
            assert_eq!(folder.classes[s.class], class_dir);
        }
    }
    let sketch = folder.domain("sketch").unwrap();
    let paths: Vec<&PathBuf> = sketch.iter().map(|s| &s.path).collect();
    assert!(
        paths.windows(2).all(|w| w[0] < w[1]),
        "samples are sorted by path"
    );
    for s in sketch.iter().chain(folder.domain("photo").unwrap()) {
        let img = decode_rgb8(&s.path).unwrap();
        assert_eq!(img.dimensions(), (227, 227), "{}", s.path.display());
    }
    // Sketches are RGB PNGs of near-gray strokes on white.
    let sketch_img = decode_rgb8(&sketch[0].path).unwrap();
    let max_spread = sketch_img
        .pixels()
        .map(|p| p[0].max(p[1]).max(p[2]) - p[0].min(p[1]).min(p[2]))
        .max()
        .unwrap();
    assert!(max_spread < 40, "sketch chroma spread {max_spread}");

    let pre = Preprocess {
        size: 64,
        filter: ResizeFilter::Nearest,
    };
    let all = eval_items(folder.domain("photo").unwrap(), &pre, OnBadImage::Fail).unwrap();
    assert_eq!(all.items.len(), 10);
    assert!(all.skipped.is_empty());
    for (k, item) in all.items.iter().enumerate() {
        assert_eq!(item.index, k);
        assert_eq!(item.rgb.dimensions(), (64, 64));
        assert_eq!(item.lab.l.len(), 64 * 64);
        assert_eq!(item.lab.ab.len(), 2 * 64 * 64);
        assert!(item.lab.l.iter().all(|v| (-1.0..=1.0).contains(v)));
    }
}

#[test]
fn unknown_and_missing() {
    let folder = MultiDomainFolder::open(Path::new(PACS_MINI)).unwrap();
    let err = folder.domain("Real World").unwrap_err().to_string();
    assert!(
        err.contains("art_painting, cartoon, photo, sketch"),
        "{err}"
    );
    let missing = Path::new("/nonexistent/dgcolor/data");
    let err = MultiDomainFolder::open(missing).err().unwrap();
    assert!(matches!(err, DataError::MissingRoot { .. }));
    assert!(
        err.to_string().contains("/nonexistent/dgcolor/data"),
        "{err}"
    );
    let empty = tempfile::tempdir().unwrap();
    let err = MultiDomainFolder::open(empty.path()).err().unwrap();
    assert!(matches!(err, DataError::NoDomains { .. }), "{err}");
}

fn write_png<P: image::PixelWithColorType>(img: &ImageBuffer<P, Vec<P::Subpixel>>, path: &Path)
where
    [P::Subpixel]: image::EncodableLayout,
{
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save(path).unwrap();
}

/// A tree with good files, broken ones, an empty domain and a stray text file:
/// `good/a` (valid jpg, 16-bit PNG, gray PNG, gray+alpha PNG, RGBA PNG), `good/b`
/// (truncated jpg, zero-byte png, text named .jpg, a PNG named .jpg), `empty/a` (nothing).
fn broken_tree() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("good/a");
    let b = dir.path().join("good/b");
    fs::create_dir_all(dir.path().join("empty/a")).unwrap();
    fs::create_dir_all(&b).unwrap();
    let rgb = RgbImage::from_fn(20, 12, |x, y| Rgb([(x * 12) as u8, (y * 20) as u8, 90]));
    write_png(&rgb, &a.join("ok.png"));
    rgb.save(a.join("ok.jpg")).unwrap();
    write_png(
        &ImageBuffer::from_fn(8, 8, |x, _| Rgb([x as u16 * 8000, 65535, 0])),
        &a.join("deep.png"),
    );
    write_png(
        &ImageBuffer::from_fn(8, 8, |x, _| Luma([x as u8 * 30])),
        &a.join("gray.png"),
    );
    write_png(
        &ImageBuffer::from_fn(8, 8, |x, _| LumaA([x as u8 * 30, 7])),
        &a.join("graya.png"),
    );
    write_png(
        &ImageBuffer::from_fn(8, 8, |_, _| Rgba([10u8, 20, 30, 0])),
        &a.join("rgba.png"),
    );
    let jpeg = fs::read(a.join("ok.jpg")).unwrap();
    fs::write(b.join("truncated.jpg"), &jpeg[..jpeg.len() / 3]).unwrap();
    fs::write(b.join("zero.png"), b"").unwrap();
    fs::write(b.join("text.jpg"), b"this is not an image\n").unwrap();
    fs::copy(a.join("ok.png"), b.join("png_named.JPG")).unwrap();
    fs::write(b.join("notes.txt"), b"ignored").unwrap();
    fs::write(b.join(".DS_Store"), b"hidden").unwrap();
    let bad = ["png_named.JPG", "text.jpg", "truncated.jpg", "zero.png"]
        .map(|n| b.join(n))
        .to_vec();
    (dir, bad)
}

#[test]
fn unusual_pngs_decode_to_rgb8() {
    let (dir, _) = broken_tree();
    let a = dir.path().join("good/a");
    let deep = decode_rgb8(&a.join("deep.png")).unwrap();
    assert_eq!(deep.get_pixel(1, 0).0, [31, 255, 0]); // 8000 / 257 = 31.1
    let gray = decode_rgb8(&a.join("gray.png")).unwrap();
    assert_eq!(gray.get_pixel(3, 0).0, [90, 90, 90]);
    let graya = decode_rgb8(&a.join("graya.png")).unwrap();
    assert_eq!(graya.get_pixel(3, 0).0, [90, 90, 90]);
    // Alpha is dropped, not composited.
    assert_eq!(
        decode_rgb8(&a.join("rgba.png")).unwrap().get_pixel(0, 0).0,
        [10, 20, 30]
    );
    // Content wins over the extension.
    assert_eq!(
        decode_rgb8(&dir.path().join("good/b/png_named.JPG"))
            .unwrap()
            .dimensions(),
        (20, 12)
    );
}

#[test]
fn broken_files_fail_or_skip_by_name() {
    let (dir, bad) = broken_tree();
    let folder = MultiDomainFolder::open(dir.path()).unwrap();
    assert_eq!(folder.domains, ["empty", "good"]);
    assert_eq!(folder.classes, ["a", "b"]);
    assert_eq!(folder.ignored(), [dir.path().join("good/b/notes.txt")]);
    let err = folder.domain("empty").unwrap_err();
    assert!(
        matches!(err, DataError::EmptyDomain { .. }) && err.to_string().contains("empty"),
        "{err}"
    );

    let samples = folder.domain("good").unwrap();
    assert_eq!(samples.len(), 10);
    let pre = Preprocess {
        size: 16,
        filter: ResizeFilter::Nearest,
    };
    let truly_bad: Vec<&PathBuf> = bad
        .iter()
        .filter(|p| !p.ends_with("png_named.JPG"))
        .collect();

    // Fail: the first bad file in sample order, named in the message.
    let err = eval_items(samples, &pre, OnBadImage::Fail).unwrap_err();
    assert_eq!(err.path(), Some(truly_bad[0].as_path()));
    assert!(
        err.to_string().contains(truly_bad[0].to_str().unwrap()),
        "{err}"
    );
    let mut chunks = eval_chunks(samples, &pre, 3, OnBadImage::Fail);
    assert!(chunks.next().unwrap().is_ok()); // a/deep, a/gray, a/graya
    assert!(chunks.next().unwrap().is_ok()); // a/ok.jpg, a/ok.png, a/rgba
    assert!(chunks.next().unwrap().is_err()); // b/png_named (fine), b/text (bad)
    assert!(chunks.next().is_none(), "iteration stops after an error");

    // Skip: the three broken files are reported, everything else is kept in order.
    let out = eval_items(samples, &pre, OnBadImage::Skip).unwrap();
    let skipped: Vec<&PathBuf> = out.skipped.iter().map(|(p, _)| p).collect();
    assert_eq!(skipped, truly_bad);
    for (p, e) in &out.skipped {
        assert_eq!(e.path(), Some(p.as_path()));
    }
    assert_eq!(out.items.len(), 7);
    let idx: Vec<usize> = out.items.iter().map(|i| i.index).collect();
    assert_eq!(idx, [0, 1, 2, 3, 4, 5, 6]);
}

fn fake_samples(per_class: &[usize]) -> Vec<Sample> {
    per_class
        .iter()
        .enumerate()
        .flat_map(|(class, &n)| {
            (0..n).map(move |i| Sample {
                path: format!("d/{class}/{i:03}.png").into(),
                class,
            })
        })
        .collect()
}

#[test]
fn reference_split_is_seeded_disjoint_covering_and_per_class() {
    let samples = fake_samples(&[100, 37, 5, 2, 1]);
    let a = reference_split(&samples, 0.1, 7);
    let b = reference_split(&samples, 0.1, 7);
    assert_eq!((&a.train, &a.val), (&b.train, &b.val), "deterministic");
    let c = reference_split(&samples, 0.1, 8);
    assert_ne!(a.val, c.val, "the seed matters");

    let train: HashSet<&PathBuf> = a.train.iter().map(|s| &s.path).collect();
    let val: HashSet<&PathBuf> = a.val.iter().map(|s| &s.path).collect();
    assert!(train.is_disjoint(&val));
    assert_eq!(train.len() + val.len(), samples.len());

    let val_per_class: Vec<usize> = (0..5)
        .map(|c| a.val.iter().filter(|s| s.class == c).count())
        .collect();
    // round(10) = 10, round(3.7) = 4, round(0.5) -> at least 1, 2 images -> 1, 1 image -> 0.
    assert_eq!(val_per_class, [10, 4, 1, 1, 0]);
    assert!(
        a.train.windows(2).all(|w| w[0].path < w[1].path),
        "input order is kept"
    );
    assert!(reference_split(&samples, 0.0, 7).val.is_empty());
}
