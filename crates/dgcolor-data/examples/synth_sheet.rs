//! Renders a contact sheet of the synth benchmark: per domain, a row of images (columns:
//! classes, two images each) and below it the same images as the network sees them (their
//! lightness only). The quickest way to see what the models are asked to learn, and that
//! the domains share their colours while their inputs look different.
//!
//! `cargo run --release -p dgcolor-data --example synth_sheet -- sheet.png [size] [seed] [palette-shift]`

use dgcolor_data::{
    lab_planes_to_rgb8, render_synth, rgb8_to_lab_planes, SynthConfig, SYNTH_CLASSES, SYNTH_DOMAINS,
};
use image::{imageops, RgbImage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args.next().unwrap_or_else(|| "synth_sheet.png".into());
    let size: u32 = args.next().map_or(Ok(64), |s| s.parse())?;
    let seed: u64 = args.next().map_or(Ok(0), |s| s.parse())?;
    let palette_shift = args.next().is_some_and(|a| a == "palette-shift");
    let cfg = SynthConfig {
        size,
        per_class: 2,
        seed,
        palette_shift,
    };
    let per_class = 2;
    let cols = (SYNTH_CLASSES.len() * per_class) as u32;
    let rows = 2 * SYNTH_DOMAINS.len() as u32;
    let mut sheet = RgbImage::new(cols * size, rows * size);
    for d in 0..SYNTH_DOMAINS.len() {
        for c in 0..SYNTH_CLASSES.len() {
            for i in 0..per_class {
                let img = render_synth(d, c, i, &cfg);
                let (l, _) = rgb8_to_lab_planes(img.as_raw());
                let gray =
                    RgbImage::from_raw(size, size, lab_planes_to_rgb8(&l, &vec![0.0; 2 * l.len()]))
                        .expect("size x size x 3 bytes");
                let x = (c * per_class + i) as i64 * size as i64;
                imageops::replace(&mut sheet, &img, x, 2 * d as i64 * size as i64);
                imageops::replace(&mut sheet, &gray, x, (2 * d + 1) as i64 * size as i64);
            }
        }
    }
    sheet.save(&out)?;
    println!("wrote {out}");
    Ok(())
}
