//! The training loader: determinism, prefetching, batch composition, flips, bad files.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::Device;

use dgcolor_data::{
    generate_synth, load_lab, BatchMode, DataError, HostBatch, LoaderConfig, MultiDomainFolder,
    OnBadImage, Preprocess, ResizeFilter, Sample, SourceSet, SynthConfig, TrainLoader,
};

const SIZE: usize = 16;

/// Three synth domains cut to unequal sizes: 21, 14 and 7 images.
fn sources() -> (tempfile::TempDir, Vec<SourceSet>) {
    let dir = tempfile::tempdir().unwrap();
    generate_synth(
        dir.path(),
        &SynthConfig {
            size: SIZE as u32,
            per_class: 3,
            seed: 5,
            palette_shift: false,
        },
    )
    .unwrap();
    let folder = MultiDomainFolder::open(dir.path()).unwrap();
    let sets = [("photo", 21), ("cartoon", 14), ("sketch", 7)]
        .into_iter()
        .enumerate()
        .map(|(domain, (name, n))| SourceSet {
            domain,
            samples: folder.domain(name).unwrap()[..n].to_vec(),
        })
        .collect();
    (dir, sets)
}

fn config(batch_size: usize, mode: BatchMode, flip: bool) -> LoaderConfig {
    LoaderConfig {
        batch_size,
        mode,
        preprocess: Preprocess {
            size: SIZE,
            filter: ResizeFilter::Nearest,
        },
        flip,
        seed: 11,
        on_bad: OnBadImage::Fail,
        prefetch: 2,
        cache_bytes: 0,
    }
}

/// Identifies the images of a batch: L plane bits -> (domain, sample index, flipped).
struct Catalogue(HashMap<Vec<u32>, (usize, usize, bool)>);

impl Catalogue {
    fn new(sources: &[SourceSet]) -> Self {
        let pre = Preprocess {
            size: SIZE,
            filter: ResizeFilter::Nearest,
        };
        let mut map = HashMap::new();
        for src in sources {
            for (i, s) in src.samples.iter().enumerate() {
                let (_, mut lab) = load_lab(&s.path, &pre).unwrap();
                map.insert(
                    lab.l.iter().map(|v| v.to_bits()).collect(),
                    (src.domain, i, false),
                );
                lab.flip_horizontal();
                map.entry(lab.l.iter().map(|v| v.to_bits()).collect())
                    .or_insert((src.domain, i, true));
            }
        }
        Self(map)
    }

    fn identify(&self, batch: &HostBatch) -> Vec<(usize, usize, bool)> {
        batch
            .l
            .chunks(SIZE * SIZE)
            .map(|l| self.0[&l.iter().map(|v| v.to_bits()).collect::<Vec<_>>()])
            .collect()
    }
}

#[test]
fn batch_at_is_a_pure_function_of_seed_and_step() {
    let (_dir, src) = sources();
    let a = TrainLoader::new(src.clone(), config(8, BatchMode::Mixed, true)).unwrap();
    let b = TrainLoader::new(
        src.clone(),
        LoaderConfig {
            cache_bytes: 1 << 24,
            ..config(8, BatchMode::Mixed, true)
        },
    )
    .unwrap();
    // Warm b's cache and history with other steps first.
    for step in [9, 3, 0, 17] {
        b.batch_at(step).unwrap();
    }
    for step in [0, 1, 5, 6, 40] {
        let (x, y) = (a.batch_at(step).unwrap(), b.batch_at(step).unwrap());
        assert_eq!(x.step, step);
        assert_eq!(x.batches, y.batches, "step {step}");
    }
    assert_ne!(
        a.batch_at(0).unwrap().batches,
        a.batch_at(1).unwrap().batches
    );
    let other_seed = TrainLoader::new(
        src,
        LoaderConfig {
            seed: 12,
            ..config(8, BatchMode::Mixed, true)
        },
    )
    .unwrap();
    assert_ne!(
        a.batch_at(0).unwrap().batches,
        other_seed.batch_at(0).unwrap().batches
    );
}

#[test]
fn stream_yields_batch_at_in_order_and_stops_when_dropped() {
    let (_dir, src) = sources();
    let loader = TrainLoader::new(src, config(6, BatchMode::Balanced, true)).unwrap();
    let streamed: Vec<_> = loader
        .stream(4, &Device::Cpu)
        .take(6)
        .map(Result::unwrap)
        .collect();
    for (k, got) in streamed.iter().enumerate() {
        let want = loader.batch_at(4 + k as u64).unwrap();
        assert_eq!(got.step, want.step);
        assert_eq!(got.batches, want.batches);
        // The loader thread also made the device tensors, equal to the host batches.
        assert_eq!(got.tensors.len(), got.batches.len());
        for (t, h) in got.tensors.iter().zip(&got.batches) {
            assert_eq!(t.ab.flatten_all().unwrap().to_vec1::<f32>().unwrap(), h.ab);
            assert_eq!(t.domain, h.domain);
        }
    }
    // Dropping a stream that is blocked on a full channel returns (the thread exits).
    let stream = loader.stream(0, &Device::Cpu);
    std::thread::sleep(std::time::Duration::from_millis(50));
    drop(stream);
}

#[test]
fn mixed_covers_every_sample_once_per_epoch_and_groups_by_domain() {
    let (_dir, src) = sources();
    let cat = Catalogue::new(&src);
    let loader = TrainLoader::new(src, config(6, BatchMode::Mixed, false)).unwrap();
    assert_eq!(loader.steps_per_epoch(), 7);
    let mut epochs = Vec::new();
    for epoch in 0..2u64 {
        let mut seen = Vec::new();
        for step in epoch * 7..(epoch + 1) * 7 {
            let sb = loader.batch_at(step).unwrap();
            assert_eq!(sb.batches.iter().map(HostBatch::len).sum::<usize>(), 6);
            assert!(
                sb.batches.windows(2).all(|w| w[0].domain < w[1].domain),
                "domain order"
            );
            for b in &sb.batches {
                for (domain, i, flipped) in cat.identify(b) {
                    assert_eq!(domain, b.domain);
                    assert!(!flipped);
                    seen.push((domain, i));
                }
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        let all: Vec<(usize, usize)> = [21, 14, 7]
            .iter()
            .enumerate()
            .flat_map(|(d, &n)| (0..n).map(move |i| (d, i)))
            .collect();
        assert_eq!(sorted, all, "epoch {epoch} covers each sample once");
        epochs.push(seen);
    }
    assert_ne!(epochs[0], epochs[1], "each epoch has its own permutation");
}

#[test]
fn balanced_takes_equal_shares_and_cycles_small_domains() {
    let (_dir, src) = sources();
    let cat = Catalogue::new(&src);
    let loader = TrainLoader::new(src, config(6, BatchMode::Balanced, false)).unwrap();
    let mut drawn: Vec<Vec<usize>> = vec![Vec::new(); 3];
    for step in 0..21 {
        let sb = loader.batch_at(step).unwrap();
        assert_eq!(
            sb.batches
                .iter()
                .map(|b| (b.domain, b.len()))
                .collect::<Vec<_>>(),
            [(0, 2), (1, 2), (2, 2)]
        );
        for b in &sb.batches {
            drawn[b.domain].extend(cat.identify(b).into_iter().map(|(d, i, _)| {
                assert_eq!(d, b.domain);
                i
            }));
        }
    }
    // 42 draws per domain: each consecutive block of n draws is one epoch of that domain.
    for (d, n) in [21usize, 14, 7].into_iter().enumerate() {
        for block in drawn[d].chunks(n) {
            let mut b = block.to_vec();
            b.sort();
            assert_eq!(b, (0..n).collect::<Vec<_>>(), "domain {d}");
        }
    }
    assert_ne!(
        drawn[2][..7],
        drawn[2][7..14],
        "the small domain is reshuffled each epoch"
    );
}

#[test]
fn flips_mirror_about_half_the_images_consistently() {
    let (_dir, src) = sources();
    let cat = Catalogue::new(&src);
    let loader = TrainLoader::new(src.clone(), config(6, BatchMode::Mixed, true)).unwrap();
    let mut flipped = 0;
    let mut total = 0;
    for step in 0..7 {
        let sb = loader.batch_at(step).unwrap();
        for b in &sb.batches {
            for (k, (d, i, f)) in cat.identify(b).into_iter().enumerate() {
                total += 1;
                flipped += f as usize;
                // ab is flipped together with L.
                let (_, mut lab) = load_lab(
                    &src[d].samples[i].path,
                    &config(6, BatchMode::Mixed, true).preprocess,
                )
                .unwrap();
                if f {
                    lab.flip_horizontal();
                }
                let n = 2 * SIZE * SIZE;
                assert_eq!(b.ab[k * n..(k + 1) * n], lab.ab[..]);
            }
        }
    }
    assert_eq!(total, 42);
    assert!((10..=32).contains(&flipped), "{flipped} of 42 flipped");
}

#[test]
fn small_union_is_one_step_of_everything() {
    let (_dir, src) = sources();
    let loader = TrainLoader::new(src, config(100, BatchMode::Mixed, false)).unwrap();
    assert_eq!(loader.steps_per_epoch(), 1);
    assert_eq!(
        loader
            .batch_at(3)
            .unwrap()
            .batches
            .iter()
            .map(HostBatch::len)
            .sum::<usize>(),
        42
    );
}

#[test]
fn configuration_errors_say_what_is_wrong() {
    let (_dir, src) = sources();
    let err = |r: Result<TrainLoader, DataError>| r.err().expect("should be refused").to_string();
    assert!(
        err(TrainLoader::new(vec![], config(6, BatchMode::Mixed, false))).contains("no source")
    );
    assert!(err(TrainLoader::new(
        src.clone(),
        config(0, BatchMode::Mixed, false)
    ))
    .contains("batch_size is 0"));
    assert!(err(TrainLoader::new(
        src.clone(),
        config(8, BatchMode::Balanced, false)
    ))
    .contains("divisible"));
    let empty = SourceSet {
        domain: 3,
        samples: vec![],
    };
    assert!(err(TrainLoader::new(
        vec![empty],
        config(6, BatchMode::Mixed, false)
    ))
    .contains("no samples"));
}

fn with_bad_file(src: &[SourceSet], dir: &Path) -> (Vec<SourceSet>, PathBuf) {
    let bad = dir.join("broken.png");
    fs::write(&bad, b"").unwrap();
    let mut src = src.to_vec();
    src[2].samples.push(Sample {
        path: bad.clone(),
        class: 0,
    });
    (src, bad)
}

#[test]
fn bad_images_fail_with_their_path_or_are_skipped_and_reported() {
    let (dir, src) = sources();
    let (src, bad) = with_bad_file(&src, dir.path());
    // Balanced, 3 per domain: the sketch source (8 samples) meets every sample within 3 steps.
    let fail = TrainLoader::new(src.clone(), config(9, BatchMode::Balanced, true)).unwrap();
    let err = (0..3)
        .map(|s| fail.batch_at(s))
        .find_map(Result::err)
        .expect("the bad file is drawn");
    assert_eq!(err.path(), Some(bad.as_path()));
    // The stream reports the error and ends.
    let mut stream = fail.stream(0, &Device::Cpu);
    assert!(stream.by_ref().take(3).any(|r| r.is_err()));

    let skip = TrainLoader::new(
        src,
        LoaderConfig {
            on_bad: OnBadImage::Skip,
            ..config(9, BatchMode::Balanced, true)
        },
    )
    .unwrap();
    let mut reported = 0;
    for step in 0..3 {
        let sb = skip.batch_at(step).unwrap();
        let sketch = sb.batches.iter().find(|b| b.domain == 2).unwrap();
        assert_eq!(sketch.len() + sb.skipped.len(), 3, "dropped, not replaced");
        assert!(sb.skipped.iter().all(|p| *p == bad));
        reported += sb.skipped.len();
    }
    assert!(reported >= 1);
}
