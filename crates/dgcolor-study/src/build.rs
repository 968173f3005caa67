//! `dgcolor study build`: a study folder from a finished sweep.
//!
//! Target-domain test images are sampled per setting (sources -> target) and, within a
//! setting, round-robin over its classes in a seeded order, each class's images in a
//! seeded order: the study images first, then the control images from what is left, so
//! controls never show a study image's scene. Every chosen method's run of the setting
//! colourizes every study image at the image's own resolution (`dgcolor colorize`'s path:
//! the model's ab upsampled onto the input's L); with several seeds, image k of a setting
//! uses each method's k-th run (mod their number), the same seed index for every method.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::Device;
use dgcolor_data::{
    decode_rgb8, lab_planes_to_rgb8, rgb8_to_lab_planes, MultiDomainFolder, Sample,
};
use dgcolor_eval::{colorize_rgb, load_generator};
use dgcolor_runs::sweep::read_jobs;
use dgcolor_runs::{RunDir, Select, TrainConfig, CONFIG};
use image::RgbImage;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Result, StudyError};
use crate::manifest::{
    Design, ImageKind, Input, InputRole, Provenance, Study, StudyMeta, StudyWriter,
};

/// The checkpoint of a run that the study shows: the one `select` picks (`val`: the one
/// kept at the best source-validation point, what the report's validation tables show).
/// Every checkpoint the study uses is resolved here and nowhere else.
pub fn selected_checkpoint(run_dir: &Path, select: Select) -> Result<PathBuf> {
    Ok(dgcolor_runs::checkpoint_file(run_dir, select)?)
}

#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub sweep: PathBuf,
    pub out: PathBuf,
    /// Where `synth` is generated and parquet copies are extracted (as for training).
    pub data_root: PathBuf,
    /// Study images (inputs colourized by every method), over all settings.
    pub images: usize,
    /// Methods (sweep labels) to show; empty: every method of the sweep.
    pub methods: Vec<String>,
    pub seed: u64,
    /// Which checkpoint of each run colourizes the study images.
    pub select: Select,
    /// Ground-truth images shown as positive controls, over all settings.
    pub controls: usize,
    /// Hue-inverted ground-truth images shown as negative controls, over all settings.
    pub negative_controls: usize,
    pub design: Design,
    pub title: String,
}

/// A run the study can use.
struct UsableRun {
    dir: PathBuf,
    config: TrainConfig,
}

/// `src1+src2:target`.
fn setting_name(c: &TrainConfig) -> String {
    format!("{}:{}", c.sources.join("+"), c.target)
}

/// Mean Lab chroma of an image: a hue inversion of a nearly gray image changes nothing.
fn chroma(rgb: &RgbImage) -> f64 {
    let (_, ab) = rgb8_to_lab_planes(rgb.as_raw());
    let n = ab.len() / 2;
    if n == 0 {
        return 0.0;
    }
    (0..n)
        .map(|i| ((ab[i] as f64).powi(2) + (ab[n + i] as f64).powi(2)).sqrt())
        .sum::<f64>()
        / n as f64
}

/// The image with its hue turned by 180 degrees: Lab a and b negated, L kept.
pub fn hue_invert(rgb: &RgbImage) -> RgbImage {
    let (l, ab) = rgb8_to_lab_planes(rgb.as_raw());
    let neg: Vec<f32> = ab.iter().map(|x| -x).collect();
    RgbImage::from_raw(rgb.width(), rgb.height(), lab_planes_to_rgb8(&l, &neg)).expect("same size")
}

/// `total` split over `parts` as evenly as possible (the first ones get the remainder).
fn share(total: usize, parts: usize, i: usize) -> usize {
    total / parts + usize::from(i < total % parts)
}

/// Samples of a domain in stratified order: classes in a seeded order, round-robin, each
/// class's samples in a seeded order.
fn stratified(samples: &[Sample], rng: &mut ChaCha8Rng) -> Vec<Sample> {
    let mut by_class: BTreeMap<usize, Vec<Sample>> = BTreeMap::new();
    for s in samples {
        by_class.entry(s.class).or_default().push(s.clone());
    }
    let mut classes: Vec<Vec<Sample>> = by_class.into_values().collect();
    for c in &mut classes {
        c.sort_by(|a, b| a.path.cmp(&b.path));
        c.shuffle(rng);
    }
    classes.shuffle(rng);
    let mut out = Vec::with_capacity(samples.len());
    let mut k = 0;
    while out.len() < samples.len() {
        for c in &classes {
            if let Some(s) = c.get(k) {
                out.push(s.clone());
            }
        }
        k += 1;
    }
    out
}

/// Builds the study folder `opts.out` from the sweep; `progress` hears what is done.
pub fn build_study(
    opts: &BuildOptions,
    device: &Device,
    mut progress: impl FnMut(&str),
) -> Result<Study> {
    if opts.images == 0 {
        return Err(StudyError::Config("--images must be at least 1".into()));
    }
    // Finished runs by setting and method, in the sweep's table order.
    let mut labels: Vec<(usize, String)> = Vec::new();
    let mut runs: BTreeMap<String, BTreeMap<String, Vec<UsableRun>>> = BTreeMap::new();
    let mut setting_order: Vec<String> = Vec::new();
    let mut unfinished = 0;
    for job in read_jobs(&opts.sweep)? {
        // A sweep folder that was moved still finds its runs.
        let moved = job.dir.file_name().map(|n| opts.sweep.join("runs").join(n));
        let dir = moved.filter(|d| d.is_dir()).unwrap_or(job.dir.clone());
        if !RunDir::new(&dir).is_done() {
            unfinished += 1;
            continue;
        }
        let path = dir.join(CONFIG);
        let text = std::fs::read_to_string(&path).map_err(StudyError::io(&path))?;
        let config: TrainConfig =
            toml::from_str(&text).map_err(|e| StudyError::format(&path, e))?;
        if !labels.iter().any(|(_, l)| *l == job.label) {
            labels.push((job.order, job.label.clone()));
        }
        let setting = setting_name(&config);
        if !setting_order.contains(&setting) {
            setting_order.push(setting.clone());
        }
        runs.entry(setting)
            .or_default()
            .entry(job.label.clone())
            .or_default()
            .push(UsableRun { dir, config });
    }
    if unfinished > 0 {
        progress(&format!(
            "{unfinished} unfinished runs of the sweep are left out"
        ));
    }
    labels.sort();
    let all: Vec<String> = labels.into_iter().map(|(_, l)| l).collect();
    if all.is_empty() {
        return Err(StudyError::Config(format!(
            "{}: no finished runs (run the sweep first)",
            opts.sweep.display()
        )));
    }
    let methods: Vec<String> = if opts.methods.is_empty() {
        all.clone()
    } else {
        for m in &opts.methods {
            if !all.contains(m) {
                return Err(StudyError::Config(format!(
                    "--methods: `{m}` has no finished run in the sweep (it has: {})",
                    all.join(", ")
                )));
            }
        }
        all.iter()
            .filter(|m| opts.methods.contains(m))
            .cloned()
            .collect()
    };
    if let Some(m) = methods.iter().find(|m| m.contains('|') || m.is_empty()) {
        return Err(StudyError::Config(format!(
            "method label `{m}` cannot be used in a study (empty or containing `|`)"
        )));
    }
    let settings: Vec<String> = setting_order
        .into_iter()
        .filter(|s| methods.iter().any(|m| runs[s].contains_key(m)))
        .collect();
    for s in &settings {
        for v in runs.get_mut(s).expect("setting").values_mut() {
            v.sort_by_key(|r| r.config.seed);
        }
    }

    let writer = StudyWriter::create(&opts.out)?;
    let built = write_images(
        opts,
        device,
        writer,
        &methods,
        &settings,
        &runs,
        &mut progress,
    );
    if built.is_err() {
        // Leave no half-built study behind (the folder was empty or absent before).
        let _ = std::fs::remove_dir_all(&opts.out);
    }
    built
}

fn write_images(
    opts: &BuildOptions,
    device: &Device,
    mut writer: StudyWriter,
    methods: &[String],
    settings: &[String],
    runs: &BTreeMap<String, BTreeMap<String, Vec<UsableRun>>>,
    progress: &mut impl FnMut(&str),
) -> Result<Study> {
    let mut folders: HashMap<String, MultiDomainFolder> = HashMap::new();
    for (si, setting) in settings.iter().enumerate() {
        let by_method = &runs[setting];
        let first = by_method
            .values()
            .flatten()
            .next()
            .expect("a setting has a run");
        let cfg = &first.config;
        let key = format!("{}|{:?}", cfg.data, cfg.synth);
        if !folders.contains_key(&key) {
            let folder = cfg
                .data
                .open(&opts.data_root, &cfg.synth.unwrap_or_default())?;
            folders.insert(key.clone(), folder);
        }
        let folder = &folders[&key];
        let samples = folder.domain(&cfg.target)?;
        let mut rng = ChaCha8Rng::seed_from_u64(dgcolor_kernels::stable_hash(
            format!("dgcolor-study/sample/{}/{setting}", opts.seed).as_bytes(),
        ));
        let order = stratified(samples, &mut rng);
        let n_study = share(opts.images, settings.len(), si);
        let n_pos = share(opts.controls, settings.len(), si);
        let n_neg = share(opts.negative_controls, settings.len(), si);
        if order.len() < n_study + n_pos + n_neg {
            return Err(StudyError::Config(format!(
                "{setting}: the target domain has {} images, fewer than the {} study and control images asked for",
                order.len(),
                n_study + n_pos + n_neg
            )));
        }
        let input_of = |s: &Sample, role| Input {
            role,
            setting: setting.clone(),
            target: cfg.target.clone(),
            class: folder.classes[s.class].clone(),
            source: s.path.clone(),
        };
        // Study images.
        let study: Vec<(usize, RgbImage)> = order[..n_study]
            .iter()
            .map(|s| {
                Ok((
                    writer.add_input(input_of(s, InputRole::Study)),
                    decode_rgb8(&s.path)?,
                ))
            })
            .collect::<Result<_>>()?;
        for method in methods {
            let Some(method_runs) = by_method.get(method) else {
                progress(&format!("{setting}: no finished run of {method}"));
                continue;
            };
            for (ri, run) in method_runs.iter().enumerate() {
                let mine: Vec<&(usize, RgbImage)> = study
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| k % method_runs.len() == ri)
                    .map(|(_, x)| x)
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                let checkpoint = selected_checkpoint(&run.dir, opts.select)?;
                let generator = load_generator(&checkpoint, device)?;
                for (input, rgb) in mine {
                    let out = colorize_rgb(&generator, rgb, run.config.preprocess.filter, device)?;
                    writer.add_image(
                        *input,
                        ImageKind::Colorized,
                        Some(method.clone()),
                        Some(Provenance {
                            run: run.dir.clone(),
                            checkpoint: checkpoint.clone(),
                            seed: run.config.seed,
                        }),
                        &out,
                    )?;
                }
            }
            progress(&format!("{setting}: {method} colourized {n_study} images"));
        }
        // Controls, from the images after the study's.
        let mut rest = order[n_study..].iter();
        for s in rest.by_ref().take(n_pos) {
            let rgb = decode_rgb8(&s.path)?;
            let input = writer.add_input(input_of(s, InputRole::Control));
            writer.add_image(input, ImageKind::GroundTruth, None, None, &rgb)?;
        }
        let mut negatives = 0;
        for s in rest {
            if negatives == n_neg {
                break;
            }
            let rgb = decode_rgb8(&s.path)?;
            // A nearly gray image looks the same hue-inverted: not a control.
            if chroma(&rgb) < 8.0 {
                continue;
            }
            let input = writer.add_input(input_of(s, InputRole::Control));
            writer.add_image(input, ImageKind::HueInverted, None, None, &hue_invert(&rgb))?;
            negatives += 1;
        }
        if negatives < n_neg {
            progress(&format!(
                "{setting}: only {negatives} of {n_neg} negative controls (too few colourful images left)"
            ));
        }
        progress(&format!(
            "{setting}: {n_study} study images, {n_pos} + {negatives} controls"
        ));
    }
    let sweep = std::fs::canonicalize(&opts.sweep).unwrap_or(opts.sweep.clone());
    writer.finish(StudyMeta {
        title: opts.title.clone(),
        seed: opts.seed,
        sweep: Some(sweep),
        design: opts.design,
        methods: methods.to_vec(),
    })
}
