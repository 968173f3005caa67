//! The qualitative figure in the layout of the paper's main comparison: rows are the
//! grayscale input, each method (its first seed's final model) and the ground truth;
//! columns are a fixed, seeded choice of target images for each setting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Device;
use dgcolor_data::{lab_planes_to_rgb8, load_lab, unscale_l, LabImage};
use image::{imageops, RgbImage};
use plotters::prelude::*;
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{ReportError, Result};
use crate::plots::register_fonts;
use crate::RunResult;
use dgcolor_eval::load_generator;
use dgcolor_eval::predict_rgb;
use dgcolor_runs::Select;

/// Target images shown per setting.
pub const FIGURE_IMAGES_PER_SETTING: usize = 3;
/// Seed of the image choice, so every report of a dataset shows the same images.
const FIGURE_SEED: u64 = 2022;

/// Where every panel goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FigureLayout {
    pub settings: usize,
    pub per_setting: usize,
    /// Input, one per method, ground truth.
    pub rows: usize,
    pub tile: u32,
    pub label_width: u32,
    pub header_height: u32,
    pub gap: u32,
}

impl FigureLayout {
    pub fn new(settings: usize, methods: usize, image_size: usize) -> Self {
        Self {
            settings,
            per_setting: FIGURE_IMAGES_PER_SETTING,
            rows: methods + 2,
            tile: (image_size as u32).max(96),
            label_width: 130,
            header_height: 30,
            gap: 10,
        }
    }

    pub fn size(&self) -> (u32, u32) {
        let block = self.per_setting as u32 * self.tile;
        let w = self.label_width
            + self.settings as u32 * block
            + self.settings.saturating_sub(1) as u32 * self.gap;
        (w, self.header_height + self.rows as u32 * self.tile)
    }

    /// Top-left corner of the panel at (row, setting, image).
    pub fn origin(&self, row: usize, setting: usize, k: usize) -> (u32, u32) {
        let block = self.per_setting as u32 * self.tile;
        let x = self.label_width + setting as u32 * (block + self.gap) + k as u32 * self.tile;
        (x, self.header_height + row as u32 * self.tile)
    }

    pub fn panels(&self) -> usize {
        self.rows * self.settings * self.per_setting
    }
}

/// Draws the figure of one dataset; returns its path (`figure_<dataset>.png`).
pub(super) fn write_figure(
    dataset: &str,
    runs: &[&RunResult],
    data_root: &Path,
    device: &Device,
    dir: &Path,
) -> Result<PathBuf> {
    register_fonts();
    // Settings (targets) and methods in table order; each method's first seed per target.
    let mut settings: Vec<&str> = runs.iter().map(|r| r.config.target.as_str()).collect();
    settings.sort();
    settings.dedup();
    let mut methods: Vec<(usize, String)> = runs
        .iter()
        .map(|r| (r.job.order, r.job.label.clone()))
        .collect();
    methods.sort();
    methods.dedup();
    // The first trial of each method, its hyperparameter draw chosen by training-domain
    // validation, drawn with the checkpoint that selection kept.
    let pick = |target: &str, label: &str| {
        let group: Vec<&RunResult> = runs
            .iter()
            .filter(|r| r.config.target == target && r.job.label == label)
            .copied()
            .collect();
        let first = group.iter().map(|r| r.config.seed).min()?;
        let trial: Vec<&RunResult> = group
            .into_iter()
            .filter(|r| r.config.seed == first)
            .collect();
        crate::select(crate::Selection::TrainingDomainValidation, &trial).map(|s| s.run)
    };
    let Some(first) = runs.first() else {
        return Err(ReportError::format(dir, "no runs for the figure"));
    };
    let size = first.config.preprocess.size;
    let layout = FigureLayout::new(settings.len(), methods.len(), size);
    let (w, h) = layout.size();
    let mut canvas = RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    let folder = first
        .config
        .data
        .open(data_root, &first.config.synth.unwrap_or_default())?;
    let mut generators = BTreeMap::new();
    for (s, target) in settings.iter().enumerate() {
        let samples = folder.domain(target)?;
        let mut rng = ChaCha8Rng::seed_from_u64(
            FIGURE_SEED ^ dgcolor_kernels::stable_hash(target.as_bytes()),
        );
        let k = FIGURE_IMAGES_PER_SETTING.min(samples.len());
        let mut chosen: Vec<usize> = sample(&mut rng, samples.len(), k).into_vec();
        chosen.sort();
        let loaded: Vec<(RgbImage, LabImage)> = chosen
            .iter()
            .map(|&i| load_lab(&samples[i].path, &first.config.preprocess))
            .collect::<std::result::Result<_, _>>()?;
        let labs: Vec<&LabImage> = loaded.iter().map(|(_, l)| l).collect();
        let mut rows: Vec<Vec<RgbImage>> = Vec::new();
        rows.push(labs.iter().map(|l| to_image(&gray(l), size)).collect());
        for (_, label) in &methods {
            let Some(run) = pick(target, label) else {
                rows.push(Vec::new());
                continue;
            };
            if !generators.contains_key(&run.job.dir) {
                // Runs without source-validation images keep no `val` checkpoint.
                let file = dgcolor_runs::checkpoint_file(&run.job.dir, Select::Val)
                    .or_else(|_| dgcolor_runs::checkpoint_file(&run.job.dir, Select::Last))?;
                generators.insert(run.job.dir.clone(), load_generator(&file, device)?);
            }
            let preds = predict_rgb(&generators[&run.job.dir], &labs, device)?;
            rows.push(preds.iter().map(|p| to_image(p, size)).collect());
        }
        rows.push(loaded.iter().map(|(rgb, _)| rgb.clone()).collect());
        for (row, images) in rows.iter().enumerate() {
            for (i, img) in images.iter().enumerate() {
                let tile =
                    imageops::resize(img, layout.tile, layout.tile, imageops::FilterType::Nearest);
                let (x, y) = layout.origin(row, s, i);
                imageops::replace(&mut canvas, &tile, x as i64, y as i64);
            }
        }
    }
    let mut labels: Vec<String> = vec!["input (L)".into()];
    labels.extend(methods.iter().map(|(_, l)| l.clone()));
    labels.push("ground truth".into());
    draw_labels(&mut canvas, &layout, &labels, &settings, runs)?;
    let path = dir.join(format!("figure_{dataset}.png"));
    canvas
        .save(&path)
        .map_err(|e| ReportError::format(&path, e))?;
    Ok(path)
}

fn draw_labels(
    canvas: &mut RgbImage,
    layout: &FigureLayout,
    rows: &[String],
    settings: &[&str],
    runs: &[&RunResult],
) -> Result<()> {
    let (w, h) = canvas.dimensions();
    let buf: &mut [u8] = canvas.as_mut();
    let root = BitMapBackend::with_buffer(buf, (w, h)).into_drawing_area();
    let font = ("sans-serif", 15).into_font().color(&BLACK);
    let fail = |e: String| ReportError::Draw(format!("figure labels: {e}"));
    for (r, label) in rows.iter().enumerate() {
        let (_, y) = layout.origin(r, 0, 0);
        root.draw(&Text::new(
            label.clone(),
            (6, (y + layout.tile / 2) as i32 - 8),
            font.clone(),
        ))
        .map_err(|e| fail(format!("{e:?}")))?;
    }
    for (s, target) in settings.iter().enumerate() {
        let sources = runs
            .iter()
            .find(|r| r.config.target == *target)
            .map(|r| r.config.sources.join("+"))
            .unwrap_or_default();
        let (x, _) = layout.origin(0, s, 0);
        root.draw(&Text::new(
            format!("{sources} → {target}"),
            (x as i32 + 4, 7),
            font.clone(),
        ))
        .map_err(|e| fail(format!("{e:?}")))?;
    }
    root.present().map_err(|e| fail(format!("{e:?}")))
}

/// The network's input as an image: L with no colour.
fn gray(lab: &LabImage) -> Vec<u8> {
    let l: Vec<f32> = lab.l.iter().map(|&x| unscale_l(x)).collect();
    lab_planes_to_rgb8(&l, &vec![0.0; 2 * l.len()])
}

fn to_image(rgb: &[u8], size: usize) -> RgbImage {
    RgbImage::from_raw(size as u32, size as u32, rgb.to_vec()).expect("S x S x 3 bytes")
}
