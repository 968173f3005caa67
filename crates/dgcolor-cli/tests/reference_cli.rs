//! `import-reference` / `export-reference` through the binary, on the genuine `torch.save`
//! files of the parity fixtures (reference architecture, nf 1, depth 8).

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::Device;
use dgcolor_algorithms::Checkpoint;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../dgcolor-algorithms/tests/parity/reference_nf1")
        .join(name)
}

fn dgcolor(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dgcolor"))
        .args(args)
        .output()
        .unwrap()
}

fn tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    Checkpoint::load(path, &Device::Cpu)
        .unwrap()
        .tensors
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            )
        })
        .collect()
}

#[test]
fn import_colorize_export_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model.safetensors");
    let (f, c, d) = (fixture("F.pth"), fixture("C.pth"), fixture("D.pth"));
    let out = dgcolor(&[
        "import-reference",
        "--head",
        f.to_str().unwrap(),
        "--tail",
        c.to_str().unwrap(),
        "--decoder",
        d.to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let input = tmp.path().join("in.png");
    image::RgbImage::from_fn(300, 200, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    })
    .save(&input)
    .unwrap();
    let colorized = tmp.path().join("out");
    let out = dgcolor(&[
        "colorize",
        "--checkpoint",
        model.to_str().unwrap(),
        "--resize",
        "nearest",
        input.to_str().unwrap(),
        "--out",
        colorized.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let img = image::open(colorized.join("in.png")).unwrap();
    assert_eq!((img.width(), img.height()), (300, 200));

    let exported = tmp.path().join("exported");
    let out = dgcolor(&[
        "export-reference",
        "--checkpoint",
        model.to_str().unwrap(),
        "--out",
        exported.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = tmp.path().join("again.safetensors");
    let p = |n: &str| exported.join(n).to_str().unwrap().to_string();
    let out = dgcolor(&[
        "import-reference",
        "--head",
        &p("F.pth"),
        "--tail",
        &p("C.pth"),
        "--decoder",
        &p("D.pth"),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        tensors(&model),
        tensors(&again),
        "export then import is the identity"
    );

    // Files swapped: the error names what does not fit.
    let out = dgcolor(&[
        "import-reference",
        "--head",
        d.to_str().unwrap(),
        "--tail",
        c.to_str().unwrap(),
        "--decoder",
        f.to_str().unwrap(),
        "--out",
        tmp.path().join("bad.safetensors").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("down1.conv.weight") || err.contains("missing"),
        "{err}"
    );
}
