//! The study folder and its manifest.
//!
//! ```text
//! STUDY/
//!   manifest.json    what every id means: image -> (method, input image, setting), the items
//!                    of both protocols. Private: the server reads it, never serves it.
//!   images/<id>.png  the only files the server sends, named by opaque random ids
//!   study.sqlite     the answers (created by the first `study serve`; WAL files beside it)
//!   serve.lock       held by the running server
//!   report/          `study report`'s tables, plots and HTML section
//! ```
//!
//! Images are re-encoded PNGs written by us (no metadata, no original file names), written
//! with random ids and given one common modification time, so neither their names, their
//! order on disk nor their times say which method made them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dgcolor_algorithms::write_atomic;
use image::RgbImage;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StudyError};
use crate::ids::{is_id, random_id};

pub const MANIFEST: &str = "manifest.json";
pub const IMAGES: &str = "images";
pub const DATABASE: &str = "study.sqlite";
pub const SERVE_LOCK: &str = "serve.lock";
pub const REPORT: &str = "report";
/// Version of the manifest format; a study of another version is refused.
pub const MANIFEST_VERSION: u32 = 1;

/// How the naturalness items of the study images are shared out among participants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Design {
    /// Each participant judges every input image once, colourized by one method; the
    /// method rotates with the participant's number, so every (image, method) pair is
    /// covered once by each run of as many participants as there are methods, and nobody
    /// sees the same scene twice in the naturalness part.
    #[default]
    Rotate,
    /// Every participant judges every colourized image.
    All,
}

impl std::str::FromStr for Design {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "rotate" => Ok(Design::Rotate),
            "all" => Ok(Design::All),
            _ => Err(format!("--design `{s}`: expected rotate or all")),
        }
    }
}

/// Why an input image is in the study.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputRole {
    /// Colourized by every method: naturalness and best-of-N items.
    Study,
    /// Shown as ground truth (or hue-inverted ground truth): a control item.
    Control,
}

/// A target-domain test image the study uses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Input {
    pub role: InputRole,
    /// `src1+src2:target`.
    pub setting: String,
    pub target: String,
    pub class: String,
    /// The dataset file it was read from.
    pub source: PathBuf,
}

/// What a served image shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageKind {
    /// A method's colourization of the input's grayscale version.
    Colorized,
    /// The input itself: a positive control (the expected answer is "natural").
    GroundTruth,
    /// The input with its hue turned by 180 degrees in Lab (a and b negated, L kept): a
    /// negative control (expected "not natural"), which catches participants who answer
    /// "yes" to everything.
    HueInverted,
}

impl ImageKind {
    pub fn name(&self) -> &'static str {
        match self {
            ImageKind::Colorized => "colorized",
            ImageKind::GroundTruth => "ground_truth",
            ImageKind::HueInverted => "hue_inverted",
        }
    }

    /// The answer a control expects (`Some(natural)`); `None` for colourizations.
    pub fn expected(&self) -> Option<bool> {
        match self {
            ImageKind::Colorized => None,
            ImageKind::GroundTruth => Some(true),
            ImageKind::HueInverted => Some(false),
        }
    }
}

/// Where a colourization came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub run: PathBuf,
    pub checkpoint: PathBuf,
    pub seed: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageEntry {
    /// Opaque id; the file is `images/<id>.png`.
    pub id: String,
    /// Index into [`Manifest::inputs`].
    pub input: usize,
    pub kind: ImageKind,
    /// The method (sweep label) for a colourization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    pub width: u32,
    pub height: u32,
}

/// One image, "does this look natural?".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NaturalnessItem {
    pub id: String,
    pub image: String,
}

/// One input colourized by several methods, "which looks the most natural?".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BestOfItem {
    pub id: String,
    pub input: usize,
    /// Image ids, in method order (each participant sees them in their own shuffled order).
    pub options: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// Random id of this build; the answer store is tied to it.
    pub uid: String,
    pub created_ms: u64,
    pub title: String,
    /// Seed of the image sampling and of every participant's order.
    pub seed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<PathBuf>,
    pub design: Design,
    /// Methods in table order.
    pub methods: Vec<String>,
    pub inputs: Vec<Input>,
    pub images: Vec<ImageEntry>,
    pub naturalness: Vec<NaturalnessItem>,
    pub best_of: Vec<BestOfItem>,
}

/// Which protocol an item belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Naturalness,
    BestOf,
}

impl Protocol {
    pub fn name(&self) -> &'static str {
        match self {
            Protocol::Naturalness => "naturalness",
            Protocol::BestOf => "best_of_n",
        }
    }
}

/// An item id resolved against the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemRef {
    Naturalness(usize),
    BestOf(usize),
}

impl ItemRef {
    pub fn protocol(&self) -> Protocol {
        match self {
            ItemRef::Naturalness(_) => Protocol::Naturalness,
            ItemRef::BestOf(_) => Protocol::BestOf,
        }
    }
}

/// One step of a participant's plan: an item and, for best-of-N, the order its options
/// are shown in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanEntry {
    pub item: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// A study folder, opened: the manifest and its indexes.
#[derive(Debug)]
pub struct Study {
    pub dir: PathBuf,
    pub manifest: Manifest,
    images: HashMap<String, usize>,
    items: HashMap<String, ItemRef>,
}

impl Study {
    /// Opens a study folder and checks its manifest: version, well-formed unique ids,
    /// references that resolve, and every image file present.
    pub fn open(dir: &Path) -> Result<Study> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(StudyError::io(&path))?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| StudyError::format(&path, e))?;
        if manifest.version != MANIFEST_VERSION {
            return Err(StudyError::format(
                &path,
                format!(
                    "manifest version {} (this dgcolor reads version {MANIFEST_VERSION}); rebuild the study",
                    manifest.version
                ),
            ));
        }
        Study::from_manifest(dir, manifest)
    }

    pub fn from_manifest(dir: &Path, manifest: Manifest) -> Result<Study> {
        let path = dir.join(MANIFEST);
        let bad = |m: String| StudyError::format(&path, m);
        let mut images = HashMap::new();
        for (i, img) in manifest.images.iter().enumerate() {
            if !is_id(&img.id) || images.insert(img.id.clone(), i).is_some() {
                return Err(bad(format!(
                    "image id `{}` is malformed or repeated",
                    img.id
                )));
            }
            if img.input >= manifest.inputs.len() {
                return Err(bad(format!("image {} names input {}", img.id, img.input)));
            }
            let file = dir.join(IMAGES).join(format!("{}.png", img.id));
            if !file.is_file() {
                return Err(bad(format!("{} is missing", file.display())));
            }
        }
        let mut items = HashMap::new();
        for (i, it) in manifest.naturalness.iter().enumerate() {
            if !is_id(&it.id)
                || items
                    .insert(it.id.clone(), ItemRef::Naturalness(i))
                    .is_some()
            {
                return Err(bad(format!("item id `{}` is malformed or repeated", it.id)));
            }
            if !images.contains_key(&it.image) {
                return Err(bad(format!(
                    "item {} shows unknown image {}",
                    it.id, it.image
                )));
            }
        }
        for (i, it) in manifest.best_of.iter().enumerate() {
            if !is_id(&it.id) || items.insert(it.id.clone(), ItemRef::BestOf(i)).is_some() {
                return Err(bad(format!("item id `{}` is malformed or repeated", it.id)));
            }
            if it.options.len() < 2 || it.options.iter().any(|o| !images.contains_key(o)) {
                return Err(bad(format!("best-of item {} has bad options", it.id)));
            }
        }
        Ok(Study {
            dir: dir.to_path_buf(),
            manifest,
            images,
            items,
        })
    }

    pub fn image(&self, id: &str) -> Option<&ImageEntry> {
        self.images.get(id).map(|&i| &self.manifest.images[i])
    }

    /// The file of a known image id; `None` for anything else. The path is built from the
    /// manifest's id, never from what a request said.
    pub fn image_file(&self, id: &str) -> Option<PathBuf> {
        let img = self.image(id)?;
        Some(self.dir.join(IMAGES).join(format!("{}.png", img.id)))
    }

    pub fn item(&self, id: &str) -> Option<ItemRef> {
        self.items.get(id).copied()
    }

    pub fn input_of_image(&self, id: &str) -> Option<&Input> {
        self.image(id).map(|img| &self.manifest.inputs[img.input])
    }

    /// The noun of the naturalness question for an image's target domain.
    pub fn noun(&self, image: &str) -> &'static str {
        self.input_of_image(image)
            .map_or("image", |i| domain_noun(&i.target))
    }

    /// The plan of the participant with number `ordinal` (0, 1, 2, ... in order of
    /// arrival): the naturalness items (the design's share of the study images, every
    /// control), shuffled, then every best-of-N item, shuffled, each with its options in
    /// a shuffled order. Seeded by the study seed and the ordinal alone.
    pub fn plan(&self, ordinal: u64) -> Vec<PlanEntry> {
        let m = &self.manifest;
        let method_rank = |img: &ImageEntry| {
            img.method
                .as_ref()
                .and_then(|x| m.methods.iter().position(|y| y == x))
                .unwrap_or(usize::MAX)
        };
        // Naturalness items of study images, grouped by input in input order, each group
        // in method order.
        let mut groups: Vec<Vec<(usize, &NaturalnessItem)>> = vec![Vec::new(); m.inputs.len()];
        let mut controls = Vec::new();
        for it in &m.naturalness {
            let img = self.image(&it.image).expect("checked at open");
            if img.kind == ImageKind::Colorized {
                groups[img.input].push((method_rank(img), it));
            } else {
                controls.push(it);
            }
        }
        let mut chosen: Vec<&NaturalnessItem> = Vec::new();
        for (g, group) in groups.iter_mut().filter(|g| !g.is_empty()).enumerate() {
            group.sort_by_key(|(rank, it)| (*rank, it.id.clone()));
            match m.design {
                Design::All => chosen.extend(group.iter().map(|(_, it)| *it)),
                Design::Rotate => {
                    chosen.push(group[((ordinal + g as u64) % group.len() as u64) as usize].1)
                }
            }
        }
        chosen.extend(controls);
        let seed = |part: &str| {
            ChaCha8Rng::seed_from_u64(dgcolor_kernels::stable_hash(
                format!("dgcolor-study/{}/{ordinal}/{part}", m.seed).as_bytes(),
            ))
        };
        let mut rng = seed("naturalness");
        chosen.sort_by(|a, b| a.id.cmp(&b.id));
        chosen.shuffle(&mut rng);
        let mut plan: Vec<PlanEntry> = chosen
            .into_iter()
            .map(|it| PlanEntry {
                item: it.id.clone(),
                options: Vec::new(),
            })
            .collect();
        let mut rng = seed("best_of");
        let mut best: Vec<&BestOfItem> = m.best_of.iter().collect();
        best.sort_by(|a, b| a.id.cmp(&b.id));
        best.shuffle(&mut rng);
        for it in best {
            let mut options = it.options.clone();
            options.shuffle(&mut rng);
            plan.push(PlanEntry {
                item: it.id.clone(),
                options,
            });
        }
        plan
    }
}

/// The naturalness question's noun for a target domain: "Does this look like a natural
/// colour photograph?".
pub fn domain_noun(target: &str) -> &'static str {
    let t = dgcolor_data::normalize_name(target);
    if t.contains("photo") || t.contains("real") || t.contains("product") {
        "photograph"
    } else if t.contains("paint") || t.contains("art") {
        "painting"
    } else if t.contains("cartoon") || t.contains("clipart") {
        "cartoon"
    } else if t.contains("sketch") {
        "drawing"
    } else {
        "image"
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What the study is, besides its images: given to [`StudyWriter::finish`].
#[derive(Clone, Debug)]
pub struct StudyMeta {
    pub title: String,
    pub seed: u64,
    pub sweep: Option<PathBuf>,
    pub design: Design,
    /// Methods in table order; every colourization's method must be one of them.
    pub methods: Vec<String>,
}

/// Writes a study folder image by image; [`StudyWriter::finish`] derives the items and
/// writes the manifest last, so a folder with a manifest is complete.
pub struct StudyWriter {
    dir: PathBuf,
    inputs: Vec<Input>,
    images: Vec<ImageEntry>,
}

impl StudyWriter {
    /// Starts a study in `dir`, which must not hold a study yet.
    pub fn create(dir: &Path) -> Result<StudyWriter> {
        let occupied = match std::fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_some(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(StudyError::io(dir)(e)),
        };
        if occupied {
            return Err(StudyError::Config(format!(
                "{} exists and is not empty{}; choose another --out or delete it",
                dir.display(),
                if dir.join(MANIFEST).exists() {
                    " (it holds a study)"
                } else {
                    ""
                }
            )));
        }
        let images = dir.join(IMAGES);
        std::fs::create_dir_all(&images).map_err(StudyError::io(&images))?;
        Ok(StudyWriter {
            dir: dir.to_path_buf(),
            inputs: Vec::new(),
            images: Vec::new(),
        })
    }

    pub fn add_input(&mut self, input: Input) -> usize {
        self.inputs.push(input);
        self.inputs.len() - 1
    }

    /// Writes one image under a fresh random id; returns the id.
    pub fn add_image(
        &mut self,
        input: usize,
        kind: ImageKind,
        method: Option<String>,
        provenance: Option<Provenance>,
        rgb: &RgbImage,
    ) -> Result<String> {
        if input >= self.inputs.len() {
            return Err(StudyError::Config(format!("no input {input}")));
        }
        if (kind == ImageKind::Colorized) != method.is_some() {
            return Err(StudyError::Config(
                "a colourization needs its method, and only a colourization has one".into(),
            ));
        }
        let id = random_id();
        let path = self.dir.join(IMAGES).join(format!("{id}.png"));
        let mut png = Vec::new();
        rgb.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| StudyError::format(&path, format!("encoding the PNG: {e}")))?;
        write_atomic(&path, &png).map_err(StudyError::io(&path))?;
        self.images.push(ImageEntry {
            id: id.clone(),
            input,
            kind,
            method,
            provenance,
            width: rgb.width(),
            height: rgb.height(),
        });
        Ok(id)
    }

    /// Derives the items (a naturalness item per image; a best-of-N item per study input
    /// with at least two colourizations), gives every image file the same modification
    /// time, and writes the manifest.
    pub fn finish(self, meta: StudyMeta) -> Result<Study> {
        for img in &self.images {
            if let Some(m) = &img.method {
                if !meta.methods.contains(m) {
                    return Err(StudyError::Config(format!("method `{m}` is not listed")));
                }
            }
        }
        let naturalness: Vec<NaturalnessItem> = self
            .images
            .iter()
            .map(|img| NaturalnessItem {
                id: random_id(),
                image: img.id.clone(),
            })
            .collect();
        let mut best_of = Vec::new();
        for (i, input) in self.inputs.iter().enumerate() {
            if input.role != InputRole::Study {
                continue;
            }
            let mut options: Vec<(usize, String)> = self
                .images
                .iter()
                .filter(|img| img.input == i && img.kind == ImageKind::Colorized)
                .map(|img| {
                    let m = img.method.as_ref().expect("colourizations have a method");
                    let rank = meta.methods.iter().position(|x| x == m).unwrap_or(0);
                    (rank, img.id.clone())
                })
                .collect();
            options.sort();
            if options.len() >= 2 {
                best_of.push(BestOfItem {
                    id: random_id(),
                    input: i,
                    options: options.into_iter().map(|(_, id)| id).collect(),
                });
            }
        }
        // One modification time for every image: the order they were written in (method
        // by method) is not left in the file system.
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
        for img in &self.images {
            let path = self.dir.join(IMAGES).join(format!("{}.png", img.id));
            let f = std::fs::File::options()
                .write(true)
                .open(&path)
                .map_err(StudyError::io(&path))?;
            f.set_modified(when).map_err(StudyError::io(&path))?;
        }
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            uid: random_id(),
            created_ms: now_ms(),
            title: meta.title,
            seed: meta.seed,
            sweep: meta.sweep,
            design: meta.design,
            methods: meta.methods,
            inputs: self.inputs,
            images: self.images,
            naturalness,
            best_of,
        };
        let path = self.dir.join(MANIFEST);
        let text =
            serde_json::to_string_pretty(&manifest).map_err(|e| StudyError::format(&path, e))?;
        write_atomic(&path, text.as_bytes()).map_err(StudyError::io(&path))?;
        Study::from_manifest(&self.dir, manifest)
    }
}
