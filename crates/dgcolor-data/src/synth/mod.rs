//! `synth`: a procedural, PACS-shaped colourization benchmark that ships inside the code,
//! so that every experiment, test and CI job can run end to end with no download.
//!
//! # Why it is built this way
//! Colourization is learnable only where colour is predictable from what the network
//! sees, the lightness L. So the benchmark ties colour to *shape*: seven object classes,
//! each with its own colours, shared by all four domains (the colour is "semantic"), on
//! backgrounds whose colour follows from position and texture (sky above, grass or sand
//! below, water for fish). Every object is big (70-90% of the image width, random pose,
//! scale, lean and mirroring), and its dominant colour is kept at least 18 L units away
//! from the background behind it, so its silhouette is always visible in L.
//!
//! | class  | colours (dominant first)                          | scene              |
//! |--------|---------------------------------------------------|--------------------|
//! | apple  | red body, brown stem, green leaf                  | grass or sand      |
//! | car    | blue body, pale cyan windows, black tyres, gray hubs | grass or sand   |
//! | fish   | orange body, red-orange fins, white eye           | underwater         |
//! | flower | magenta petals (5-7), yellow centre, green stem   | grass              |
//! | house  | cream walls, red roof (and chimney), brown door, blue windows | grass or sand |
//! | sun    | yellow disc, orange rays (8-12)                   | mostly sky         |
//! | tree   | green crown (round or conifer), brown trunk       | grass              |
//!
//! The domains differ the way PACS domains do, in texture and colour statistics:
//! - `photo`: smooth directional shading with darker rims, soft edges, gradients, mild
//!   sensor noise and grass texture; natural colours.
//! - `art_painting`: oriented, colour-jittered brush strokes (which respect the
//!   silhouette) over mild shading; the palette is shifted (hue +20 to +32 degrees,
//!   chroma x1.35, more lightness contrast): a different colour distribution.
//! - `cartoon`: flat fills and flat two-tone backgrounds, thick dark outlines, chroma
//!   x1.3.
//! - `sketch`: white paper, dark wobbly outlines, a pencilled horizon, hatching whose
//!   density follows the object's lightness (dark parts are densely hatched, light
//!   parts stay white); no chroma at all.
//!
//! Every image is drawn from its own ChaCha8 stream keyed by `(seed, domain, class,
//! index)`, so generation order (rayon) cannot change a pixel and the PNG files are
//! byte-identical for one seed on one platform. The manifest is written last, so an
//! interrupted generation is detected and redone by [`ensure_synth`].

mod raster;
mod scene;

use std::fs;
use std::path::{Path, PathBuf};

use image::{ImageEncoder, RgbImage};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::rng::{derived_rng, Stream};
use scene::{render, Style};

pub const SYNTH_DOMAINS: [&str; 4] = ["photo", "art_painting", "cartoon", "sketch"];
/// Sorted, so a class id is the same here and in [`crate::MultiDomainFolder`].
pub const SYNTH_CLASSES: [&str; 7] = ["apple", "car", "fish", "flower", "house", "sun", "tree"];
/// Bumped whenever the drawing changes, so [`ensure_synth`] regenerates stale copies (and
/// [`crate::DataSpec::synth_dir`] keeps each version in its own folder).
pub const SYNTH_VERSION: u32 = 2;
const MANIFEST: &str = "manifest.json";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynthConfig {
    /// Image side in pixels.
    pub size: u32,
    /// Images per class and domain.
    pub per_class: usize,
    pub seed: u64,
    /// Shift the colours of `art_painting` (hue +20 to +32 degrees, chroma x1.35) and
    /// `cartoon` (chroma x1.3) as well as their look: a palette shift no source domain shows,
    /// which no method can learn from the sources. Off by default; for studying that shift.
    #[serde(default)]
    pub palette_shift: bool,
}

impl Default for SynthConfig {
    /// 64 px, 100 images per class and domain (2800 in all), seed 0.
    fn default() -> Self {
        Self {
            size: 64,
            per_class: 100,
            seed: 0,
            palette_shift: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynthFile {
    pub domain: String,
    pub class: String,
    /// Relative to the dataset root, `/`-separated.
    pub file: String,
    /// FNV-1a 64 of the PNG bytes, hex.
    pub fnv1a64: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynthManifest {
    pub generator: String,
    pub version: u32,
    pub config: SynthConfig,
    pub domains: Vec<String>,
    pub classes: Vec<String>,
    pub files: Vec<SynthFile>,
}

impl SynthManifest {
    pub fn read(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        serde_json::from_str(&text).map_err(|source| DataError::Manifest {
            path: path.to_path_buf(),
            source,
        })
    }
}

fn check(cfg: &SynthConfig) -> Result<()> {
    if cfg.size < 16 || cfg.per_class == 0 {
        return Err(DataError::Config(format!(
            "synth needs size >= 16 and per_class >= 1 (got size {}, per_class {})",
            cfg.size, cfg.per_class
        )));
    }
    Ok(())
}

/// One synth image, exactly as [`generate_synth`] writes it.
pub fn render_synth(domain: usize, class: usize, index: usize, cfg: &SynthConfig) -> RgbImage {
    render_synth_with_mask(domain, class, index, cfg).0
}

/// [`render_synth`] plus the object's coverage in [0, 1] per pixel (row-major), for
/// figures and for checking that objects stand out from their background in L.
pub fn render_synth_with_mask(
    domain: usize,
    class: usize,
    index: usize,
    cfg: &SynthConfig,
) -> (RgbImage, Vec<f32>) {
    let key = ((domain as u64) << 32) | class as u64;
    let mut rng = derived_rng(cfg.seed, Stream::Synth, key, index as u64);
    let out = render(
        Style::ALL[domain],
        class,
        cfg.size as usize,
        cfg.palette_shift,
        &mut rng,
    );
    let rgb = RgbImage::from_raw(cfg.size, cfg.size, out.rgb)
        .expect("render returns size * size * 3 bytes");
    (rgb, out.mask)
}

fn file_name(class: usize, index: usize) -> String {
    format!("{}_{index:04}.png", SYNTH_CLASSES[class])
}

fn encode_png(img: &RgbImage, path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|source| DataError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(bytes)
}

/// Writes `out/<domain>/<class>/<class>_<index>.png` for every domain, class and index,
/// then `out/manifest.json`. Earlier synth images in those class folders are removed
/// first (only files named `<class>_*.png`), so a smaller `per_class` leaves no strays.
pub fn generate_synth(out: &Path, cfg: &SynthConfig) -> Result<SynthManifest> {
    check(cfg)?;
    let manifest_path = out.join(MANIFEST);
    fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
    if manifest_path.exists() {
        fs::remove_file(&manifest_path).map_err(|e| DataError::io(&manifest_path, e))?;
    }
    for domain in SYNTH_DOMAINS {
        for class in SYNTH_CLASSES {
            let dir = out.join(domain).join(class);
            fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
            for entry in fs::read_dir(&dir).map_err(|e| DataError::io(&dir, e))? {
                let path = entry.map_err(|e| DataError::io(&dir, e))?.path();
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if name.starts_with(&format!("{class}_")) && name.ends_with(".png") {
                    fs::remove_file(&path).map_err(|e| DataError::io(&path, e))?;
                }
            }
        }
    }

    let jobs: Vec<(usize, usize, usize)> = (0..SYNTH_DOMAINS.len())
        .flat_map(|d| {
            (0..SYNTH_CLASSES.len()).flat_map(move |c| (0..cfg.per_class).map(move |i| (d, c, i)))
        })
        .collect();
    let files = jobs
        .into_par_iter()
        .map(|(d, c, i)| {
            let rel = format!(
                "{}/{}/{}",
                SYNTH_DOMAINS[d],
                SYNTH_CLASSES[c],
                file_name(c, i)
            );
            let path = out.join(&rel);
            let bytes = encode_png(&render_synth(d, c, i, cfg), &path)?;
            fs::write(&path, &bytes).map_err(|e| DataError::io(&path, e))?;
            Ok(SynthFile {
                domain: SYNTH_DOMAINS[d].to_string(),
                class: SYNTH_CLASSES[c].to_string(),
                file: rel,
                fnv1a64: format!("{:016x}", dgcolor_kernels::stable_hash(&bytes)),
            })
        })
        .collect::<Result<Vec<_>>>()?;

    let manifest = SynthManifest {
        generator: "dgcolor-synth".to_string(),
        version: SYNTH_VERSION,
        config: *cfg,
        domains: SYNTH_DOMAINS.map(String::from).to_vec(),
        classes: SYNTH_CLASSES.map(String::from).to_vec(),
        files,
    };
    let json = serde_json::to_string_pretty(&manifest).expect("the manifest serialises");
    let tmp = out.join(format!("{MANIFEST}.tmp"));
    fs::write(&tmp, json).map_err(|e| DataError::io(&tmp, e))?;
    fs::rename(&tmp, &manifest_path).map_err(|e| DataError::io(&manifest_path, e))?;
    Ok(manifest)
}

/// Returns `dir` as a dataset root, generating the benchmark there unless a complete copy
/// made by this generator version with this configuration is already present.
pub fn ensure_synth(dir: &Path, cfg: &SynthConfig) -> Result<PathBuf> {
    let current = SynthManifest::read(&dir.join(MANIFEST))
        .ok()
        .is_some_and(|m| {
            m.version == SYNTH_VERSION
                && m.config == *cfg
                && m.files.iter().all(|f| dir.join(&f.file).is_file())
        });
    if !current {
        generate_synth(dir, cfg)?;
    }
    Ok(dir.to_path_buf())
}
