//! `dgcolor export-onnx` checked against onnxruntime: a trained smoke model (AdaIN skip on)
//! is exported, run by `onnx_runtime.py` (beside this file) in onnxruntime on real fixture
//! images, and compared with dgcolor's own prediction: max |ab| difference <= 1e-4 at
//! batch 1, with `--dynamic-batch` at batch 1 and 3, and at another `--size`.
//!
//! Needs `python3` with `numpy` and `onnxruntime` (`.ci/run` installs them). Without them
//! the test fails under CI (`CI` set) and is skipped with a message otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};
use dgcolor_data::{decode_rgb8, lab_image, resize_rgb8, ResizeFilter};
use dgcolor_eval::load_generator;

const TOLERANCE: f64 = 1e-4;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn dgcolor(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dgcolor"))
        .args(args)
        .output()
        .expect("run dgcolor");
    assert!(
        out.status.success(),
        "dgcolor {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Whether python3 with numpy and onnxruntime is there; under CI its absence is a failure.
fn onnxruntime_available() -> bool {
    let probe = Command::new("python3")
        .args(["-c", "import numpy, onnxruntime"])
        .output();
    let why = match probe {
        Ok(o) if o.status.success() => return true,
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
        Err(e) => format!("python3: {e}"),
    };
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        !ci,
        "CI: the ONNX test needs python3 with numpy and onnxruntime (.ci/run installs them): {why}"
    );
    eprintln!(
        "SKIPPED: python3 with numpy and onnxruntime is not available ({why}); \
         `python3 -m pip install numpy onnxruntime` to run this test"
    );
    false
}

/// A little-endian float32 C-order `.npy` (format 1.0).
fn write_npy(path: &Path, t: &Tensor) {
    let shape: Vec<String> = t.dims().iter().map(|d| d.to_string()).collect();
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        shape.join(", ")
    );
    // Magic (6) + version (2) + length (2) + header + '\n', a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    let values: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

/// The first image of every class folder of every domain, in a fixed order.
fn fixture_images() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pacs_mini");
    let mut out = Vec::new();
    for domain in ["photo", "art_painting", "cartoon", "sketch"] {
        let mut classes: Vec<PathBuf> = std::fs::read_dir(root.join(domain))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        classes.sort();
        for class in classes {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&class)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            out.push(files[0].clone());
        }
    }
    out
}

/// L `[n, 1, size, size]` of `files`, preprocessed as `colorize` does.
fn lightness(files: &[PathBuf], size: usize) -> Tensor {
    let mut l = Vec::new();
    for f in files {
        let rgb = resize_rgb8(
            &decode_rgb8(f).unwrap(),
            size as u32,
            size as u32,
            ResizeFilter::Antialias,
        );
        l.extend(lab_image(&rgb).l);
    }
    Tensor::from_vec(l, (files.len(), 1, size, size), &Device::Cpu).unwrap()
}

/// Runs `model` in onnxruntime on `l` and returns the script's report.
fn onnxruntime(dir: &Path, model: &Path, l: &Tensor, ab: &Tensor, tag: &str) -> serde_json::Value {
    let (l_path, ab_path) = (
        dir.join(format!("{tag}-L.npy")),
        dir.join(format!("{tag}-ab.npy")),
    );
    write_npy(&l_path, l);
    write_npy(&ab_path, ab);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx_runtime.py");
    let out = Command::new("python3")
        .args([s(&script), s(model), s(&l_path), s(&ab_path)])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "onnx_runtime.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn onnx_export_matches_dgcolor_in_onnxruntime() {
    if !onnxruntime_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    dgcolor(&[
        "train",
        "--algorithm",
        "ours",
        "--preset",
        "smoke",
        "--quiet",
        "--data-root",
        s(tmp.path()),
        "--out",
        s(&run),
    ]);
    let generator = load_generator(&run.join("checkpoint.safetensors"), &Device::Cpu).unwrap();
    let cfg = generator.config().clone();
    assert!(
        cfg.adain_index.is_some(),
        "the smoke `ours` model has the AdaIN skip"
    );
    let images = fixture_images();
    assert!(images.len() >= 13, "{}", images.len());

    // (file, export flags, size, batches run)
    let fixed = tmp.path().join("fixed.onnx");
    let dynamic = tmp.path().join("dynamic.onnx");
    let larger = tmp.path().join("larger.onnx");
    let big = (2 * cfg.size).to_string();
    let cases: [(&Path, Vec<&str>, usize, Vec<usize>); 3] = [
        (&fixed, vec![], cfg.size, vec![1, 5]),
        (&dynamic, vec!["--dynamic-batch"], cfg.size, vec![1, 3]),
        (
            &larger,
            vec!["--dynamic-batch", "--size", &big],
            2 * cfg.size,
            vec![3],
        ),
    ];
    let mut worst = 0.0f64;
    for (file, flags, size, batches) in &cases {
        let mut args = vec!["export-onnx", "--checkpoint", s(&run), "--out", s(file)];
        args.extend(flags.iter().copied());
        let summary: serde_json::Value = serde_json::from_str(&dgcolor(&args)).unwrap();
        assert_eq!(summary["size"], *size);
        let mut start = 0;
        for &n in batches {
            let files = &images[start..start + n];
            start += n;
            let l = lightness(files, *size);
            let ab = generator.forward(&l).unwrap();
            let tag = format!("{}-{n}", file.file_stem().unwrap().to_str().unwrap());
            let report = onnxruntime(tmp.path(), file, &l, &ab, &tag);
            assert_eq!(report["input"], "L");
            assert_eq!(report["output"], "ab");
            assert_eq!(
                report["output_shape"],
                serde_json::json!([n, 2, size, size]),
                "{report}"
            );
            let batch_dim = &report["input_shape"][0];
            if flags.contains(&"--dynamic-batch") {
                assert_eq!(batch_dim, "N", "{report}");
            } else {
                assert_eq!(batch_dim, 1, "{report}");
            }
            let meta = &report["metadata"];
            assert!(
                meta["dgcolor.input"]
                    .as_str()
                    .unwrap()
                    .contains("L / 50 - 1")
                    && meta["dgcolor.output"]
                        .as_str()
                        .unwrap()
                        .contains("ab / 100"),
                "{meta}"
            );
            // A run directory gives the checkpoint `--select val` picks by default.
            assert!(meta["dgcolor.source"]
                .as_str()
                .unwrap()
                .contains("checkpoint-val.safetensors"));
            let diff = report["max_abs_diff"].as_f64().unwrap();
            eprintln!(
                "{tag}: onnxruntime {} vs dgcolor, batch {n} at {size} px: max |ab| diff {diff:.3e}",
                report["onnxruntime"]
            );
            assert!(
                diff <= TOLERANCE,
                "{tag}: max abs diff {diff} > {TOLERANCE}"
            );
            worst = worst.max(diff);
        }
    }
    eprintln!("worst max |ab| difference (network scale, ab / 100): {worst:.3e}");

    // A size the network cannot take is refused with the reason.
    let out = Command::new(env!("CARGO_BIN_EXE_dgcolor"))
        .args(["export-onnx", "--checkpoint", s(&run), "--out", s(&fixed)])
        .args(["--size", &(cfg.size + 8).to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("multiple of 2^depth"));
}
