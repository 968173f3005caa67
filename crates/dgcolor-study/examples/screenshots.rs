//! Screenshots of a study's pages in headless Chromium (the README's pictures):
//!
//! ```sh
//! cargo run --release -p dgcolor-study --example screenshots -- STUDY OUT_DIR
//! ```
//!
//! Serves a copy of STUDY's manifest and images (so the study's own answers are not
//! touched), consents, and writes `study-consent.png`, `study-naturalness.png` (the first
//! naturalness question that shows a colourization, not a control) and
//! `study-best-of-n.png` (the first best-of-N question) into OUT_DIR, answering "yes" to
//! the naturalness questions on the way. Needs Debian's `chromium` and `chromium-driver`.
//!
//! The README's pictures come from a quick-preset sweep (about two minutes on two cores):
//!
//! ```sh
//! dgcolor compare --preset quick --algorithms erm,dann,ours \
//!     --settings photo+cartoon:art_painting --results /tmp/shots --sweep quick
//! dgcolor study build --sweep /tmp/shots/quick --images 20
//! cargo run --release -p dgcolor-study --example screenshots -- /tmp/shots/quick/study docs
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::browser::Browser;
use common::{field, serve};
use dgcolor_study::manifest::{ImageKind, ItemRef, IMAGES, MANIFEST};
use fantoccini::Locator;

fn copy_study(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join(IMAGES)).unwrap();
    std::fs::copy(from.join(MANIFEST), to.join(MANIFEST)).unwrap();
    for e in std::fs::read_dir(from.join(IMAGES)).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(IMAGES).join(p.file_name().unwrap())).unwrap();
    }
}

async fn shot(b: &Browser, path: PathBuf) {
    // Let the images finish decoding.
    for _ in 0..50 {
        let done = b
            .c()
            .execute(
                "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)",
                vec![],
            )
            .await
            .unwrap();
        if done == serde_json::Value::Bool(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(&path, b.c().screenshot().await.unwrap()).unwrap();
    println!("{}", path.display());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(study), Some(out)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: screenshots STUDY OUT_DIR");
        std::process::exit(2);
    };
    common::browser::available().expect("headless Chromium");
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    copy_study(Path::new(study), tmp.path());
    let (rt, server) = serve(tmp.path());
    let base = format!("http://{}", server.addr);
    rt.block_on(async {
        // 1000 x 900 leaves a viewport of about 1000 x 760: the question, the picture
        // and the answer buttons.
        let b = Browser::start(1000, 900).await;
        let c = b.c();
        c.goto(&format!("{base}/")).await.unwrap();
        shot(&b, out.join("study-consent.png")).await;
        c.find(Locator::Css("input[name=consent]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.find(Locator::Css("button.primary"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let (mut naturalness, mut best) = (false, false);
        let mut last = String::new();
        for _ in 0..1000 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let html = c.source().await.unwrap();
            let Some(item) = field(&html, "item").filter(|i| *i != last) else {
                continue;
            };
            last = item.clone();
            match server.study().item(&item) {
                Some(ItemRef::Naturalness(i)) => {
                    let study = server.study();
                    let image = &study.manifest.naturalness[i].image;
                    let colorized = study
                        .image(image)
                        .is_some_and(|img| img.kind == ImageKind::Colorized);
                    if !naturalness && colorized {
                        shot(&b, out.join("study-naturalness.png")).await;
                        naturalness = true;
                    }
                    c.find(Locator::Css("button[value=yes]"))
                        .await
                        .unwrap()
                        .click()
                        .await
                        .unwrap();
                }
                Some(ItemRef::BestOf(_)) => {
                    shot(&b, out.join("study-best-of-n.png")).await;
                    best = true;
                }
                None => panic!("unknown item on the page"),
            }
            if best {
                break;
            }
        }
        assert!(naturalness && best, "did not reach both protocols");
        b.close().await;
    });
    rt.block_on(server.shutdown()).unwrap();
}
