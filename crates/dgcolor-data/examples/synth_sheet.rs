//! Renders a contact sheet of the synth benchmark (rows: domains; columns: classes, two
//! images each), the quickest way to see what the models are asked to learn.
//!
//! `cargo run -p dgcolor-data --example synth_sheet -- sheet.png [size] [seed]`

use dgcolor_data::{render_synth, SynthConfig, SYNTH_CLASSES, SYNTH_DOMAINS};
use image::{imageops, RgbImage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args.next().unwrap_or_else(|| "synth_sheet.png".into());
    let size: u32 = args.next().map_or(Ok(64), |s| s.parse())?;
    let seed: u64 = args.next().map_or(Ok(0), |s| s.parse())?;
    let cfg = SynthConfig {
        size,
        per_class: 2,
        seed,
    };
    let per_class = 2;
    let cols = (SYNTH_CLASSES.len() * per_class) as u32;
    let mut sheet = RgbImage::new(cols * size, SYNTH_DOMAINS.len() as u32 * size);
    for d in 0..SYNTH_DOMAINS.len() {
        for c in 0..SYNTH_CLASSES.len() {
            for i in 0..per_class {
                let img = render_synth(d, c, i, &cfg);
                let x = (c * per_class + i) as u32 * size;
                imageops::replace(&mut sheet, &img, x as i64, d as i64 * size as i64);
            }
        }
    }
    sheet.save(&out)?;
    println!("wrote {out}");
    Ok(())
}
