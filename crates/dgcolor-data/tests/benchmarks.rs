//! PACS and Office-Home layouts, the official PACS split files, and the parquet copies,
//! on the real images of `fixtures/pacs_mini` (10 per domain, several classes
//! absent from some domains), the full-dataset split files of `fixtures/pacs_split`
//! (most of whose images are absent here), and synthetic trees built in temp dirs.

use std::fs;
use std::path::{Path, PathBuf};

use dgcolor_data::{
    check_images, extract_parquet, find_split_dir, load_lab, official_split, open_office_home,
    open_pacs, open_tree, paper_settings, parquet_files, read_split_list, write_hf_parquet,
    Benchmark, DataError, HfImageRow, LineProblemKind, MissingPolicy, Preprocess, ResizeFilter,
    SplitPart, OFFICE_HOME_CLASSES, PACS_CLASSES,
};

const PACS_MINI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/pacs_mini");
const PACS_SPLIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/pacs_split");

fn mini() -> PathBuf {
    PathBuf::from(PACS_MINI)
}

/// Copies pacs_mini (40 files, ~1 MB) to `dest`.
fn copy_tree(src: &Path, dest: &Path) {
    fs::create_dir_all(dest).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        let to = dest.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &to);
        } else {
            fs::copy(&p, &to).unwrap();
        }
    }
}

fn counts(folder: &dgcolor_data::MultiDomainFolder) -> Vec<(String, Vec<usize>)> {
    folder
        .domains
        .iter()
        .map(|d| (d.clone(), folder.class_counts(d).unwrap()))
        .collect()
}

#[test]
fn pacs_mini_opens_with_the_official_class_order() {
    let f = open_pacs(&mini()).unwrap();
    assert_eq!(f.domains, ["art_painting", "cartoon", "photo", "sketch"]);
    assert_eq!(f.classes, PACS_CLASSES);
    // Absent classes keep their ids: art_painting has no house, sketch no person.
    assert_eq!(f.class_counts("art_painting").unwrap()[5], 0);
    assert_eq!(f.class_counts("sketch").unwrap()[6], 0);
    for d in &f.domains {
        assert_eq!(f.domain(d).unwrap().len(), 10);
        for s in f.domain(d).unwrap() {
            let class_dir = s.path.parent().unwrap().file_name().unwrap();
            assert_eq!(class_dir.to_str().unwrap(), PACS_CLASSES[s.class]);
        }
    }
    // One domain alone still numbers classes officially (a plain folder would not).
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&mini().join("photo"), &tmp.path().join("photo"));
    let one = open_pacs(tmp.path()).unwrap();
    assert_eq!(one.classes, PACS_CLASSES);
    assert!(check_images(one.domain("photo").unwrap()).is_empty());
}

#[test]
fn pacs_is_found_under_kfold_pacs_or_bare_and_stray_entries_are_ignored() {
    let reference = counts(&open_pacs(&mini()).unwrap());
    let tmp = tempfile::tempdir().unwrap();
    for sub in ["kfold", "PACS", "pacs/kfold"] {
        let root = tmp.path().join(sub.replace('/', "_"));
        copy_tree(&mini(), &root.join(sub));
        // Beside the tree: split lists and a readme, as the official release has.
        fs::create_dir_all(root.join("pacs_label")).unwrap();
        fs::write(root.join("README.txt"), "x").unwrap();
        let f = open_pacs(&root).unwrap();
        assert_eq!(f.root, root.join(sub), "{sub}");
        assert_eq!(counts(&f), reference, "{sub}");
    }
    // Bare, with a `splits/` folder beside the domains: not a domain.
    let bare = tmp.path().join("bare");
    copy_tree(&mini(), &bare);
    fs::create_dir_all(bare.join("splits")).unwrap();
    fs::write(bare.join("photo/dog/notes.txt"), "x").unwrap();
    let f = open_pacs(&bare).unwrap();
    assert_eq!(f.domains.len(), 4);
    assert!(f.ignored().contains(&bare.join("splits")));
    assert!(f.ignored().contains(&bare.join("photo/dog/notes.txt")));
    assert_eq!(counts(&f), reference);
}

#[test]
fn pacs_refuses_unknown_classes_and_missing_trees_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&mini().join("cartoon"), &tmp.path().join("cartoon"));
    let bad = tmp.path().join("cartoon/zebra");
    fs::create_dir_all(&bad).unwrap();
    fs::copy(mini().join("cartoon/dog/pic_219.jpg"), bad.join("z.jpg")).unwrap();
    let err = open_pacs(tmp.path()).err().unwrap().to_string();
    assert!(
        err.contains("zebra") && err.contains(&bad.display().to_string()),
        "{err}"
    );

    let empty = tempfile::tempdir().unwrap();
    fs::create_dir_all(empty.path().join("something")).unwrap();
    let err = open_pacs(empty.path()).err().unwrap().to_string();
    assert!(
        err.contains("no PACS image tree") && err.contains("kfold/"),
        "{err}"
    );
}

#[test]
fn split_dir_is_found_beside_the_image_tree() {
    assert_eq!(
        find_split_dir(&mini(), None).unwrap(),
        mini().parent().unwrap().join("pacs_split")
    );
    let explicit = PathBuf::from(PACS_SPLIT);
    assert_eq!(
        find_split_dir(Path::new("/nonexistent"), Some(&explicit)).unwrap(),
        explicit
    );
    let tmp = tempfile::tempdir().unwrap();
    let err = find_split_dir(tmp.path(), None).unwrap_err().to_string();
    assert!(err.contains("pacs_label"), "{err}");
}

#[test]
fn official_split_on_the_full_lists_counts_missing_files_and_reports_the_quirks() {
    let f = open_pacs(&mini()).unwrap();
    let dir = PathBuf::from(PACS_SPLIT);
    // Default policy: fail, saying how many are missing and where.
    let err = official_split(&f, &dir, "art_painting", MissingPolicy::Fail)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("1830 of 1840 files listed in")
            && err.contains("art_painting_train_kfold.txt"),
        "{err}"
    );
    // Skip: train on what exists, with the count.
    let s = official_split(&f, &dir, "art_painting", MissingPolicy::Skip).unwrap();
    assert_eq!(s.train.samples.len(), 10);
    assert_eq!(s.train.listed, 1840);
    assert_eq!(s.train.missing.len(), 1830);
    assert!(s
        .train
        .missing_summary()
        .unwrap()
        .starts_with("1830 of 1840 files listed in "));
    for sample in &s.train.samples {
        assert!(sample.path.is_file());
    }
    // The copy's known quirks, each with file and line.
    let crossval = &s.val;
    assert_eq!(crossval.listed, 208);
    let zero = crossval
        .problems
        .iter()
        .find(|p| p.kind == LineProblemKind::LabelZero)
        .expect("label 0 reported");
    assert_eq!(zero.line, 1);
    assert!(zero.file.ends_with("art_painting_crossval_kfold.txt"));
    assert!(zero
        .to_string()
        .contains("art_painting_crossval_kfold.txt:1: label 0"));
    let dup = crossval
        .problems
        .iter()
        .find(|p| matches!(p.kind, LineProblemKind::Duplicate { .. }))
        .expect("duplicate reported");
    assert!(dup.text.starts_with("art_painting/dog/pic_248.jpg"));
    assert_eq!(dup.kind, LineProblemKind::Duplicate { first_line: 2 });
    assert_eq!(dup.line, 17);
    assert_eq!(crossval.problems.len(), 2, "{:?}", crossval.problems);
    // The other domains' lists are clean.
    for d in ["cartoon", "photo", "sketch"] {
        for part in SplitPart::ALL {
            let l = read_split_list(&f, &dir, d, part).unwrap();
            assert!(l.problems.is_empty(), "{d} {part:?}: {:?}", l.problems);
        }
    }
}

#[test]
fn split_lines_with_bad_labels_domains_or_classes_are_reported_by_line() {
    let f = open_pacs(&mini()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let lines = [
        "photo/dog/n02103406_1011.jpg 1", // fine
        "photo/house/pic_218.jpg 9",      // out of range
        "photo/house/pic_110.jpg 2",      // mismatch: house is 6
        "photo/zebra/z.jpg 1",            // unknown class
        "cartoon/dog/pic_219.jpg 1",      // wrong domain
        "garbage",                        // malformed
        "",                               // blank: not counted
        "photo/horse/105_0223.jpg 5",     // fine
        "photo/horse/absent.jpg 5",       // missing
    ];
    fs::write(tmp.path().join("photo_train_kfold.txt"), lines.join("\n")).unwrap();
    let l = read_split_list(&f, tmp.path(), "photo", SplitPart::Train).unwrap();
    let by_line: Vec<(usize, &LineProblemKind)> =
        l.problems.iter().map(|p| (p.line, &p.kind)).collect();
    assert_eq!(
        by_line,
        vec![
            (
                2,
                &LineProblemKind::LabelOutOfRange {
                    label: 9,
                    classes: 7
                }
            ),
            (
                3,
                &LineProblemKind::LabelMismatch {
                    label: 2,
                    folder_class: "house".into()
                }
            ),
            (
                4,
                &LineProblemKind::UnknownClass {
                    name: "zebra".into()
                }
            ),
            (
                5,
                &LineProblemKind::WrongDomain {
                    found: "cartoon".into()
                }
            ),
            (6, &LineProblemKind::Malformed),
        ]
    );
    assert_eq!(l.listed, 8);
    // Label problems keep the image with its folder's class.
    assert_eq!(l.samples.len(), 4);
    assert_eq!(l.samples[1].class, 5);
    assert_eq!(l.missing.len(), 1);
    assert_eq!(l.missing[0].0, 9);
    let err = l.check(MissingPolicy::Fail).unwrap_err().to_string();
    assert!(
        err.contains("1 of 8 files listed in") && err.contains("line 9"),
        "{err}"
    );
    assert!(l.check(MissingPolicy::Skip).is_ok());
    // A list naming nothing that exists cannot train.
    fs::write(
        tmp.path().join("photo_crossval_kfold.txt"),
        "photo/dog/x.jpg 1\n",
    )
    .unwrap();
    fs::write(
        tmp.path().join("photo_train_kfold.txt"),
        "photo/dog/x.jpg 1\n",
    )
    .unwrap();
    let err = official_split(&f, tmp.path(), "photo", MissingPolicy::Skip)
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("none of the 1 listed files exist"),
        "{err}"
    );
}

/// An Office-Home-shaped tree: 4 domains (one with a space), 3 classes, mixed sizes.
fn office_home_tree(root: &Path, real_world_dir: &str) {
    let domains = ["Art", "Clipart", "Product", real_world_dir];
    for (i, d) in domains.iter().enumerate() {
        for (k, class) in ["Alarm_Clock", "TV", "Table"].iter().enumerate() {
            let dir = root.join(d).join(class);
            fs::create_dir_all(&dir).unwrap();
            for n in 0..=i % 2 {
                let (w, h) = (40 + 13 * k as u32 + n as u32, 30 + 7 * i as u32);
                let img = image::RgbImage::from_fn(w, h, |x, y| {
                    image::Rgb([(x * 5) as u8, (y * 7) as u8, (k * 80) as u8])
                });
                img.save(dir.join(format!("{:05}.jpg", n + 1))).unwrap();
            }
        }
    }
    fs::write(root.join("ImageInfo.csv"), "x").unwrap();
    fs::write(root.join("Art/TV/Thumbs.db"), "x").unwrap();
}

#[test]
fn office_home_release_and_renames_open_with_canonical_domains() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("OfficeHomeDataset_10072016", "Real World"),
        ("office_home", "Real World"),
        ("OfficeHomeDataset_10072016", "Real_World"),
        ("", "Real_World"),
    ];
    for (i, (sub, rw)) in cases.iter().enumerate() {
        let root = tmp.path().join(format!("case{i}"));
        let tree = if sub.is_empty() {
            root.clone()
        } else {
            root.join(sub)
        };
        office_home_tree(&tree, rw);
        let f = open_office_home(&root).unwrap();
        assert_eq!(f.root, tree);
        assert_eq!(
            f.domains,
            ["Art", "Clipart", "Product", "Real World"],
            "{sub} {rw}"
        );
        assert_eq!(f.classes.len(), 65);
        assert_eq!(f.classes, OFFICE_HOME_CLASSES);
        assert!(
            f.classes.iter().position(|c| c == "TV") < f.classes.iter().position(|c| c == "Table")
        );
        // Users may type the domain either way.
        for typed in ["Real World", "Real_World", "realworld"] {
            assert_eq!(f.domain(typed).unwrap().len(), 6, "{typed}");
            assert_eq!(f.domain_name(typed).unwrap(), "Real World");
        }
        assert_eq!(f.domain("Art").unwrap().len(), 3);
        assert!(f.ignored().iter().any(|p| p.ends_with("ImageInfo.csv")));
        assert!(f.ignored().iter().any(|p| p.ends_with("Thumbs.db")));
        assert!(f.domain_dir("Real World").unwrap().ends_with(rw));
    }
    // Mixed sizes all decode and resize to the training size.
    let f = open_office_home(&tmp.path().join("case0")).unwrap();
    let pre = Preprocess {
        size: 32,
        filter: ResizeFilter::Nearest,
    };
    for d in &f.domains {
        assert!(check_images(f.domain(d).unwrap()).is_empty());
        for s in f.domain(d).unwrap() {
            let (rgb, _) = load_lab(&s.path, &pre).unwrap();
            assert_eq!(rgb.dimensions(), (32, 32));
        }
    }
}

#[test]
fn check_lists_broken_images_with_their_paths() {
    let tmp = tempfile::tempdir().unwrap();
    office_home_tree(tmp.path(), "Real World");
    let broken = tmp.path().join("Real World/TV/broken.jpg");
    fs::write(&broken, b"\xff\xd8\xff not a jpeg").unwrap();
    let f = open_office_home(tmp.path()).unwrap();
    let bad = check_images(f.domain("Real World").unwrap());
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].path, broken);
    assert!(bad[0].error.to_string().contains("broken.jpg"));
}

fn pacs_mini_rows(keep_paths: bool) -> Vec<HfImageRow> {
    let f = open_pacs(&mini()).unwrap();
    let mut rows = Vec::new();
    for d in &f.domains {
        for s in f.domain(d).unwrap() {
            rows.push(HfImageRow {
                bytes: fs::read(&s.path).unwrap(),
                path: keep_paths
                    .then(|| s.path.file_name().unwrap().to_string_lossy().into_owned()),
                domain: d.clone(),
                label: s.class as i64,
            });
        }
    }
    rows
}

#[test]
fn parquet_copy_extracts_once_into_the_same_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let pq_dir = tmp.path().join("hub/data");
    fs::create_dir_all(&pq_dir).unwrap();
    let rows = pacs_mini_rows(true);
    // Two shards, as the Hub splits large sets; metadata with the ClassLabel names.
    write_hf_parquet(
        &pq_dir.join("train-00000-of-00002.parquet"),
        &rows[..25],
        Some(&PACS_CLASSES),
    )
    .unwrap();
    write_hf_parquet(
        &pq_dir.join("train-00001-of-00002.parquet"),
        &rows[25..],
        Some(&PACS_CLASSES),
    )
    .unwrap();
    let files = parquet_files(&tmp.path().join("hub")).unwrap();
    assert_eq!(files.len(), 2);
    let cache = tmp.path().join("cache");
    let tree = extract_parquet(&files, Benchmark::Pacs, &cache).unwrap();
    assert!(tree.join("manifest.json").is_file());
    let from_parquet = open_tree(&tree, Benchmark::Pacs).unwrap();
    assert_eq!(counts(&from_parquet), counts(&open_pacs(&mini()).unwrap()));
    // Original names and bytes are kept.
    let copy = tree.join("photo/house/pic_218.jpg");
    assert_eq!(
        fs::read(&copy).unwrap(),
        fs::read(mini().join("photo/house/pic_218.jpg")).unwrap()
    );
    // Once: a second call reuses the tree; no temporary directory is left behind.
    let mtime = fs::metadata(&copy).unwrap().modified().unwrap();
    assert_eq!(
        extract_parquet(&files, Benchmark::Pacs, &cache).unwrap(),
        tree
    );
    assert_eq!(fs::metadata(&copy).unwrap().modified().unwrap(), mtime);
    assert_eq!(fs::read_dir(&cache).unwrap().count(), 1);
    // The official split works on the extracted copy too (same file names).
    let s = official_split(
        &from_parquet,
        Path::new(PACS_SPLIT),
        "sketch",
        MissingPolicy::Skip,
    )
    .unwrap();
    assert_eq!(s.train.samples.len(), 10);
}

#[test]
fn parquet_without_names_or_metadata_falls_back_and_bad_labels_name_the_row() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("pacs.parquet");
    write_hf_parquet(&file, &pacs_mini_rows(false), None).unwrap();
    let tree = extract_parquet(
        std::slice::from_ref(&file),
        Benchmark::Pacs,
        &tmp.path().join("c"),
    )
    .unwrap();
    let f = open_tree(&tree, Benchmark::Pacs).unwrap();
    assert_eq!(counts(&f), counts(&open_pacs(&mini()).unwrap()));
    assert!(tree.join("sketch/house").read_dir().unwrap().all(|e| {
        let n = e.unwrap().file_name().into_string().unwrap();
        n.starts_with("row") && n.ends_with(".png")
    }));
    assert!(check_images(f.domain("sketch").unwrap()).is_empty());

    let mut rows = pacs_mini_rows(true);
    rows[3].label = 7;
    let bad = tmp.path().join("bad.parquet");
    write_hf_parquet(&bad, &rows, None).unwrap();
    let err = extract_parquet(&[bad], Benchmark::Pacs, &tmp.path().join("c")).unwrap_err();
    assert!(matches!(err, DataError::Benchmark(_)));
    assert!(
        err.to_string().contains("bad.parquet: row 3: label 7"),
        "{err}"
    );
    let err = extract_parquet(
        &[tmp.path().join("nope.parquet")],
        Benchmark::Pacs,
        tmp.path(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("nope.parquet"), "{err}");
}

#[test]
fn paper_settings_follow_method_section_5() {
    let pacs = paper_settings("pacs");
    assert_eq!(pacs.len(), 3);
    assert_eq!(pacs[0], (vec!["art_painting", "cartoon"], "photo"));
    assert_eq!(paper_settings("synth"), pacs);
    let oh = paper_settings("office-home");
    assert_eq!(oh[0], (vec!["Art", "Real World"], "Clipart"));
    assert_eq!(oh[2], (vec!["Clipart", "Art"], "Real World"));
    for (sources, target) in pacs.iter().chain(&oh) {
        assert_eq!(sources.len(), 2);
        assert!(!sources.contains(target));
    }
    assert!(paper_settings("mnist").is_empty());
    assert_eq!(
        Benchmark::OfficeHome.published_count("Real_World"),
        Some(4357)
    );
    assert_eq!(Benchmark::Pacs.published_count("sketch"), Some(3929));
}
