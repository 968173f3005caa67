//! `dgcolor publish`: a finished run as a folder ready for `huggingface-cli upload`:
//! `model.safetensors` (the generator only), `config.json` (`dgcolor_eval::PublishedConfig`),
//! `README.md` (a Hugging Face model card whose `model-index` holds the run's final
//! target-domain metrics) and the run's qualitative figure when there is one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use clap::Args;
use dgcolor_algorithms::checkpoint::{META_ALGORITHM, META_MODEL, META_STATE};
use dgcolor_algorithms::{write_atomic, Checkpoint, TrainState};
use dgcolor_eval::{PublishedConfig, TrainingSummary, CONFIG_FILE, MODEL_FILE};
use dgcolor_metrics::{all_metrics, set_metrics, Better};
use dgcolor_models::{prefix, ModelConfig};
use dgcolor_runs::{EvalSplit, Evaluation, Record, RunDir, Select, TrainConfig, CONFIG, DONE};

use crate::model_arg::SelectArg;

/// The model card.
pub const CARD_FILE: &str = "README.md";
/// The qualitative figure, when the run has one.
pub const FIGURE_FILE: &str = "figure.png";

#[derive(Args)]
pub struct PublishArgs {
    /// A finished run directory (with its `done` marker).
    #[arg(long)]
    pub checkpoint: PathBuf,
    #[command(flatten)]
    pub select: SelectArg,
    /// The folder to write (created; files of the same names are replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// The Hub repository it will be uploaded to, OWNER/NAME: used in the card's examples
    /// and as the model's name (default: the folder's name under a placeholder owner).
    #[arg(long)]
    pub repo: Option<String>,
    /// The licence of the weights, as a Hugging Face licence id.
    #[arg(long, default_value = "mit")]
    pub license: String,
}

/// Which checkpoint of a run is published, and why.
#[derive(Clone, Debug)]
pub struct SelectedCheckpoint {
    pub file: PathBuf,
    /// Its training step.
    pub step: u64,
    /// `last` (the rule that chose it).
    pub selection: &'static str,
    /// The run's target-test evaluation of exactly these weights.
    pub evaluation: Evaluation,
}

/// Which of a run's checkpoints is published: the one `select` picks (default `val`, the
/// checkpoint the trainer kept at the evaluation point with the best mean source-validation
/// PSNR), with that point's target test evaluation for the model card. A run without
/// source-validation images keeps no `val` checkpoint; `--select val` then refuses and says
/// to use `--select last`.
pub fn checkpoint_to_publish(
    run: &RunDir,
    records: &[Record],
    select: Select,
) -> Result<SelectedCheckpoint> {
    let file = dgcolor_runs::checkpoint_file(&run.path, select)?;
    let step = match select {
        Select::Last => records.iter().rev().find_map(|r| match r {
            Record::Final(e) => Some(e.step),
            _ => None,
        }),
        Select::Val => records.iter().rev().find_map(|r| match r {
            Record::Kept {
                step, selection, ..
            } if *selection == Select::Val.to_string() => Some(*step),
            _ => None,
        }),
    }
    .with_context(|| {
        format!(
            "{}: the records name no step for --select {select}",
            run.path.display()
        )
    })?;
    let evaluation = records
        .iter()
        .find_map(|r| match r {
            Record::Eval(e) if e.step == step && e.split == EvalSplit::Test => Some(e.clone()),
            _ => None,
        })
        .with_context(|| {
            format!(
                "{}: no target test evaluation at step {step}",
                run.path.display()
            )
        })?;
    Ok(SelectedCheckpoint {
        file,
        step,
        selection: match select {
            Select::Val => "val",
            Select::Last => "last",
        },
        evaluation,
    })
}

/// The generator's tensors (E_h, E_t, decoder, BatchNorm statistics included) of a
/// checkpoint, under their dgcolor names.
pub fn generator_tensors(ckpt: &Checkpoint) -> BTreeMap<String, Tensor> {
    ckpt.tensors
        .iter()
        .filter(|(k, _)| {
            [prefix::HEAD, prefix::TAIL, prefix::DECODER]
                .iter()
                .any(|p| k.starts_with(&format!("{p}.")))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The run's qualitative figure: `figure*.png` in the run directory, else the figure of its
/// dataset in the report of the sweep it belongs to (`<sweep>/runs/<run>` ->
/// `<sweep>/report/figure_<dataset>.png`).
fn find_figure(run: &Path, dataset: &str) -> Option<PathBuf> {
    let mut own: Vec<PathBuf> = std::fs::read_dir(run)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("figure") && n.ends_with(".png"))
        })
        .collect();
    own.sort();
    if let Some(f) = own.into_iter().next() {
        return Some(f);
    }
    let runs = run.parent()?;
    if runs.file_name()? != "runs" {
        return None;
    }
    let sweep_figure = runs
        .parent()?
        .join("report")
        .join(format!("figure_{dataset}.png"));
    sweep_figure.is_file().then_some(sweep_figure)
}

/// The training step a checkpoint holds, from its header alone (`state` metadata).
fn checkpoint_step(file: &Path) -> Option<u64> {
    use std::io::Read;
    let mut f = std::fs::File::open(file).ok()?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).ok()?;
    let len = usize::try_from(u64::from_le_bytes(len)).ok()?;
    if len > 100 << 20 {
        return None;
    }
    let mut header = vec![0u8; len];
    f.read_exact(&mut header).ok()?;
    let header: serde_json::Value = serde_json::from_slice(&header).ok()?;
    let state: TrainState =
        serde_json::from_str(header["__metadata__"][META_STATE].as_str()?).ok()?;
    Some(state.step)
}

fn read_config(run: &RunDir) -> Result<TrainConfig> {
    let path = run.file(CONFIG);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: not a run directory (no {CONFIG})", run.path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

pub fn run(args: &PublishArgs) -> Result<()> {
    if args
        .checkpoint
        .to_string_lossy()
        .starts_with(dgcolor_runs::HF_PREFIX)
    {
        bail!("publish takes a local run directory, not a Hub model");
    }
    let run = RunDir::new(&args.checkpoint);
    if !run.path.is_dir() {
        bail!("{}: no such run directory", run.path.display());
    }
    let cfg = read_config(&run)?;
    let records = run.records()?;
    if !run.is_done() {
        let reached = run
            .checkpoint()
            .and_then(|f| checkpoint_step(&f))
            .unwrap_or(0)
            .max(records.iter().map(Record::step).max().unwrap_or(0));
        bail!(
            "{}: the run is not finished (no `{DONE}` marker; trained to step {reached} of \
             {}); finish it by running its `dgcolor train` command again (it resumes), then \
             publish",
            run.path.display(),
            cfg.steps
        );
    }
    let selected = checkpoint_to_publish(&run, &records, args.select.select)?;
    let ckpt = Checkpoint::load(&selected.file, &Device::Cpu)?;
    let saved: ModelConfig = serde_json::from_str(ckpt.meta(META_MODEL)?)
        .with_context(|| format!("{}: model config", selected.file.display()))?;
    if saved != cfg.model {
        bail!(
            "{}: the checkpoint's model config differs from the run's {CONFIG}",
            selected.file.display()
        );
    }
    let tensors = generator_tensors(&ckpt);
    if tensors.is_empty() {
        bail!("{}: no generator tensors", selected.file.display());
    }

    let name = match &args.repo {
        Some(repo) => {
            let parsed: dgcolor_runs::CheckpointRef = format!("hf:{repo}")
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--repo {repo}: {e}"))?;
            let dgcolor_runs::CheckpointRef::Hub(m) = parsed else {
                unreachable!("hf: parses as a Hub reference")
            };
            if m.revision.is_some() {
                bail!("--repo {repo}: give OWNER/NAME without a revision");
            }
            repo.clone()
        }
        None => {
            let folder = args
                .out
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| !n.is_empty())
                .unwrap_or("dgcolor-model");
            format!("OWNER/{folder}")
        }
    };

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut weights = Checkpoint {
        tensors,
        ..Default::default()
    };
    weights
        .meta
        .insert(META_ALGORITHM.into(), cfg.algorithm.name.into());
    weights.meta.insert(
        "contents".into(),
        format!("dgcolor generator (E_h, E_t, decoder); its configuration is {CONFIG_FILE}"),
    );
    weights
        .meta
        .insert("step".into(), selected.step.to_string());
    weights.save(&args.out.join(MODEL_FILE))?;

    let summary = TrainingSummary {
        algorithm: cfg.algorithm.name.into(),
        preset: cfg.preset.to_string(),
        dataset: cfg.dataset_name().into(),
        dataset_hub_id: cfg.data.benchmark().map(|b| b.hub_repo().to_string()),
        sources: cfg.sources.clone(),
        target: cfg.target.clone(),
        seed: cfg.seed,
        steps: cfg.steps,
        batch_size: cfg.batch_size,
        step: selected.step,
        selection: selected.selection.into(),
        synth: cfg.synth,
    };
    let published = PublishedConfig::new(cfg.model.clone(), cfg.preprocess.filter, Some(summary));
    let config_path = args.out.join(CONFIG_FILE);
    write_atomic(&config_path, published.to_json().as_bytes())
        .with_context(|| format!("writing {}", config_path.display()))?;

    let figure = match find_figure(&run.path, cfg.dataset_name()) {
        Some(src) => {
            let dst = args.out.join(FIGURE_FILE);
            std::fs::copy(&src, &dst)
                .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
            eprintln!("figure {} -> {}", src.display(), dst.display());
            true
        }
        None => false,
    };
    let card = model_card(&CardInput {
        name: &name,
        license: &args.license,
        cfg: &cfg,
        published: &published,
        selected: &selected,
        figure,
    });
    let card_path = args.out.join(CARD_FILE);
    write_atomic(&card_path, card.as_bytes())
        .with_context(|| format!("writing {}", card_path.display()))?;
    eprintln!(
        "published {} (step {}, {}) -> {}\nupload it with: huggingface-cli upload {name} {} .",
        run.path.display(),
        selected.step,
        selected.selection,
        args.out.display(),
        args.out.display()
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "out": args.out,
            "repo": name,
            "step": selected.step,
            "selection": selected.selection,
            "files": std::iter::once(MODEL_FILE)
                .chain([CONFIG_FILE, CARD_FILE])
                .chain(figure.then_some(FIGURE_FILE))
                .collect::<Vec<_>>(),
        }))?
    );
    Ok(())
}

struct CardInput<'a> {
    name: &'a str,
    license: &'a str,
    cfg: &'a TrainConfig,
    published: &'a PublishedConfig,
    selected: &'a SelectedCheckpoint,
    figure: bool,
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// A float as YAML reads it back to the same f64 (Rust's shortest round-trip form).
fn yaml_float(v: f64) -> String {
    if v.is_finite() {
        let s = format!("{v:?}");
        if s.contains(['.', 'e', 'E']) {
            s
        } else {
            format!("{s}.0")
        }
    } else if v.is_nan() {
        ".nan".into()
    } else if v > 0.0 {
        ".inf".into()
    } else {
        "-.inf".into()
    }
}

fn better_text(b: Better) -> &'static str {
    match b {
        Better::Higher => "higher is better",
        Better::Lower => "lower is better",
        Better::CloserToOne => "closer to 1 is better",
    }
}

fn metric_label(name: &str, unit: &str) -> String {
    let base = match name {
        "psnr" => "PSNR",
        "ssim" => "SSIM",
        "colourfulness" => "Colourfulness",
        "colourfulness_ratio" => "Colourfulness ratio (prediction / ground truth)",
        "ciede2000" => "CIEDE2000",
        other => other,
    };
    if unit.is_empty() {
        base.to_string()
    } else {
        format!("{base} ({unit})")
    }
}

/// The model card: YAML front matter (`library_name`, `license`, `tags`, `datasets`,
/// `pipeline_tag`, `model-index` with the target-domain metrics of the published weights)
/// and the body.
fn model_card(c: &CardInput) -> String {
    let cfg = c.cfg;
    let model = &c.published.model;
    let summary = c.published.training.as_ref().expect("publish sets it");
    let dataset_id = summary
        .dataset_hub_id
        .clone()
        .unwrap_or_else(|| summary.dataset.clone());
    let result = &c.selected.evaluation.result;
    let per_image = all_metrics()
        .into_iter()
        .map(|m| (m.name(), m.unit(), m.better()));
    let set = set_metrics()
        .into_iter()
        .map(|m| (m.name(), m.unit(), m.better()));
    let metrics: Vec<(String, String, Better, f64)> = per_image
        .chain(set)
        .filter_map(|(name, unit, better)| {
            let v = result.value(name)?;
            Some((name.to_string(), metric_label(name, unit), better, v))
        })
        .collect();
    let sources = cfg.sources.join(", ");
    let mut y = String::from("---\n");
    let _ = writeln!(y, "library_name: dgcolor");
    let _ = writeln!(y, "license: {}", q(c.license));
    let _ = writeln!(y, "pipeline_tag: image-to-image");
    y.push_str("tags:\n");
    for tag in [
        "dgcolor",
        "colorization",
        "image-colorization",
        "domain-generalization",
        "pix2pix",
        "candle",
        cfg.algorithm.name,
        cfg.dataset_name(),
    ] {
        let _ = writeln!(y, "- {}", q(tag));
    }
    y.push_str("datasets:\n");
    let _ = writeln!(y, "- {}", q(&dataset_id));
    y.push_str("model-index:\n");
    let _ = writeln!(y, "- name: {}", q(c.name));
    y.push_str("  results:\n");
    y.push_str("  - task:\n      type: image-to-image\n");
    let _ = writeln!(y, "      name: {}", q("Automatic colorization"));
    y.push_str("    dataset:\n");
    let _ = writeln!(
        y,
        "      name: {}",
        q(&format!(
            "{} target domain {} (unseen in training; sources {sources})",
            summary.dataset, cfg.target
        ))
    );
    let _ = writeln!(y, "      type: {}", q(&dataset_id));
    let _ = writeln!(y, "      split: {}", q(&cfg.target));
    y.push_str("    metrics:\n");
    for (key, label, _, v) in &metrics {
        let _ = writeln!(y, "    - type: {}", q(key));
        let _ = writeln!(y, "      name: {}", q(label));
        let _ = writeln!(y, "      value: {}", yaml_float(*v));
    }
    y.push_str("---\n\n");

    let repo = c.name;
    let mut b = String::new();
    let _ = writeln!(b, "# {}\n", repo.rsplit('/').next().unwrap_or(repo));
    let _ = writeln!(
        b,
        "An automatic colorizer trained with [dgcolor](https://example.invalid/dgcolor), a Rust \
         reimplementation (on candle) of \"Bridging the Domain Gap Towards Generalization in \
         Automatic Colorization\" (Lee et al., ECCV 2022). Given the lightness L of an image it \
         predicts the colour channels a*, b* of CIE Lab; the output keeps the input's own \
         lightness.\n"
    );
    let _ = writeln!(
        b,
        "This model was trained with `{}` ({}) on the source domain(s) **{sources}** of \
         `{}` and evaluated on the target domain **{}**, which it never saw in training.\n",
        cfg.algorithm.name, cfg.algorithm.summary, summary.dataset, cfg.target
    );
    if c.figure {
        let _ = writeln!(
            b,
            "![Qualitative results: grayscale input, predictions, ground truth]({FIGURE_FILE})\n"
        );
    }
    b.push_str("## Results on the unseen target domain\n\n");
    let _ = writeln!(
        b,
        "{} test images of `{}`, at step {} of {} (weights of the {} step; the run's final \
         evaluation record).\n",
        c.selected.evaluation.result.images,
        cfg.target,
        c.selected.step,
        cfg.steps,
        c.selected.selection
    );
    b.push_str("| metric | value | |\n|---|---|---|\n");
    for (_, label, better, v) in &metrics {
        let _ = writeln!(b, "| {label} | {v:.4} | {} |", better_text(*better));
    }
    b.push_str("\n## Training data and settings\n\n| setting | value |\n|---|---|\n");
    let adain = match model.adain_index {
        Some(k) if k == model.z_skip_index() => format!("on the skip carrying z (index {k})"),
        Some(k) => format!("decoder index {k}"),
        None => "none (a plain U-Net)".into(),
    };
    let rows: Vec<(&str, String)> = vec![
        ("algorithm", format!("`{}`", cfg.algorithm.name)),
        ("preset", format!("`{}`", cfg.preset)),
        (
            "dataset",
            match &summary.dataset_hub_id {
                Some(id) => format!(
                    "`{}` ([{id}](https://huggingface.co/datasets/{id}))",
                    summary.dataset
                ),
                None => format!("`{}`", summary.dataset),
            },
        ),
        ("source domains", sources.clone()),
        ("target domain (held out)", cfg.target.clone()),
        ("split", format!("`{:?}`", cfg.split).to_lowercase()),
        ("steps", cfg.steps.to_string()),
        (
            "batch size",
            format!("{} ({:?} batches)", cfg.batch_size, cfg.batch_mode).to_lowercase(),
        ),
        ("image size", format!("{0} x {0} px", model.size)),
        (
            "resize filter",
            format!("`{:?}`", cfg.preprocess.filter).to_lowercase(),
        ),
        ("horizontal flips", cfg.flip.to_string()),
        (
            "network",
            format!("U-Net, base width {}, depth {}", model.nf, model.depth),
        ),
        ("AdaIN skip", adain),
        ("precision", format!("`{:?}`", cfg.precision).to_lowercase()),
        ("seed", cfg.seed.to_string()),
        (
            "hyperparameters",
            cfg.hparams
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(b, "| {k} | {v} |");
    }
    if summary.dataset == "synth" {
        b.push_str(
            "\n`synth` is dgcolor's generated benchmark: PACS-named domains of simple scenes \
             (seven object classes with characteristic colours over sky, grass, sand or water) \
             with shifted textures and palettes. It holds no photographs.\n",
        );
    }
    b.push_str(
        "\n## Intended use\n\n\
         Research on domain generalization for colorization: colourizing grayscale images of \
         domains like the ones above, comparing methods, and reproducing the paper's protocol. \
         It is not meant for restoring historical photographs of real people or places, where \
         invented colours can mislead.\n",
    );
    let _ = writeln!(
        b,
        "\n## Limitations\n\n\
         - **Domain gap.** The model learned colour from {sources} only. On other domains \
         (here `{target}`, and any image unlike the training data) it tends to paint the \
         sources' palette and saturation: expect lower target metrics than a model trained on \
         the target itself, and check its output on your domain before relying on it.\n\
         - Colorization is ambiguous: many colourings fit one gray image. The model predicts \
         plausible, often muted, colours; the metrics compare with one ground truth.\n\
         - It runs at {size} x {size} px: inputs are resized to that size and the predicted \
         colour is upsampled to the input's resolution (the output keeps the input's full-\
         resolution lightness), so small coloured details blur.\n\
         - Trained for {steps} steps with the `{preset}` preset; one seed.",
        target = cfg.target,
        size = model.size,
        steps = cfg.steps,
        preset = cfg.preset,
    );
    if summary.dataset == "synth" {
        b.push_str(
            "- Trained on synthetic scenes only: a demonstration of the pipeline, not a \
             general-purpose colorizer.\n",
        );
    }
    let _ = writeln!(
        b,
        "\n## How to use it\n\n\
         With [dgcolor](https://example.invalid/dgcolor) (`cargo build --release`), by name: the \
         files are fetched into the Hugging Face cache (`HF_HOME`) and found there offline \
         with `HF_HUB_OFFLINE=1`:\n\n\
         ```sh\n\
         dgcolor colorize --checkpoint hf:{repo} photo.jpg drawings/ --out colorized/\n\
         dgcolor eval --checkpoint hf:{repo} --data synth --domain {target}\n\
         dgcolor export-onnx --checkpoint hf:{repo} --out model.onnx --dynamic-batch\n\
         ```\n\n\
         Pin a revision with `hf:{repo}@REVISION` (a branch, tag or commit); `colorize` records \
         the commit it used in `colorize.json` beside its outputs.\n\n\
         The network takes L `[N, 1, {size}, {size}]` scaled as `L / 50 - 1` (CIE L* of the \
         sRGB image, D65) and returns ab `[N, 2, {size}, {size}]` scaled as `ab / 100`; \
         `config.json` records these scalings, the architecture and the resize filter \
         (`{filter}`). The ONNX export runs in onnxruntime (`pip install onnxruntime pillow \
         scikit-image`):\n\n\
         ```python\n\
         import numpy as np, onnxruntime as ort; from PIL import Image; from skimage.color import rgb2lab, lab2rgb\n\
         sess = ort.InferenceSession(\"model.onnx\"); S = sess.get_inputs()[0].shape[-1]\n\
         lab = rgb2lab(np.asarray(Image.open(\"photo.jpg\").convert(\"RGB\").resize((S, S))) / 255.0)\n\
         ab = sess.run(None, {{\"L\": (lab[None, None, :, :, 0] / 50 - 1).astype(np.float32)}})[0][0] * 100\n\
         Image.fromarray((lab2rgb(np.dstack([lab[..., 0], ab.transpose(1, 2, 0)])) * 255).round().astype(np.uint8)).save(\"out.png\")\n\
         ```\n\n\
         ## Files\n\n\
         - `{MODEL_FILE}`: the generator's weights (head encoder, tail encoder, decoder, with \
         their BatchNorm statistics) under dgcolor's parameter names, which follow the \
         reference PyTorch code's (`dgcolor export-reference` writes its F/C/D `.pth` files).\n\
         - `{CONFIG_FILE}`: everything needed to rebuild the network and feed it.\n\
         - `{CARD_FILE}`: this card.{figure_line}\n\n\
         ## Citation\n\n\
         ```bibtex\n\
         @inproceedings{{lee2022bridging,\n  \
           title     = {{Bridging the Domain Gap Towards Generalization in Automatic Colorization}},\n  \
           author    = {{Lee, Hyejin and Kim, Daehee and Lee, Daeun and Kim, Jinkyu and Lee, Jaekoo}},\n  \
           booktitle = {{European Conference on Computer Vision (ECCV)}},\n  \
           year      = {{2022}}\n\
         }}\n\
         ```",
        target = cfg.target,
        size = model.size,
        filter = format!("{:?}", c.published.resize_filter).to_lowercase(),
        figure_line = if c.figure {
            format!("\n- `{FIGURE_FILE}`: the qualitative figure of the run.")
        } else {
            String::new()
        },
    );
    y + &b
}

#[cfg(test)]
mod tests {
    use super::yaml_float;

    #[test]
    fn floats_keep_their_value() {
        for v in [15.0, 0.1 + 0.2, 1e-12, 13.323456789012345, -2.5e20] {
            let s = yaml_float(v);
            assert_eq!(s.parse::<f64>().unwrap(), v, "{s}");
            assert!(s.contains(['.', 'e']), "{s}");
        }
    }
}
