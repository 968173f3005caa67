//! `dgcolor import-reference` and `dgcolor export-reference`: the reference code's
//! `F_<epoch>.pth` / `C_<epoch>.pth` / `D_<epoch>.pth` state dicts to and from our model
//! file (see `dgcolor_models::reference` for the key mapping).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::Args;
use dgcolor_algorithms::checkpoint::{META_ALGORITHM, META_MODEL};
use dgcolor_algorithms::{write_atomic, Checkpoint};
use dgcolor_models::reference::{export_reference, import_reference, read_state_dict, write_pth};
use dgcolor_models::{AdainSkip, ModelConfig};

use crate::model_arg::ModelArgs;
use crate::publish::generator_tensors;

/// Written beside the .pth files: the model they came from.
pub const SOURCE_FILE: &str = "source.json";

#[derive(Args)]
pub struct ImportArgs {
    /// The head encoder state dict (`F_<epoch>.pth`).
    #[arg(long)]
    pub head: PathBuf,
    /// The tail encoder state dict (`C_<epoch>.pth`).
    #[arg(long)]
    pub tail: PathBuf,
    /// The decoder state dict (`D_<epoch>.pth`).
    #[arg(long)]
    pub decoder: PathBuf,
    /// Model file to write (safetensors, readable by `dgcolor colorize --checkpoint`).
    #[arg(long)]
    pub out: PathBuf,
    /// Decoder index of the AdaIN skip, or "none" (default: the skip carrying z, which is
    /// the reference's index 5 at depth 8).
    #[arg(long)]
    pub adain_index: Option<AdainSkip>,
    /// Training image side S the model was trained at (default 2^depth, 256 for the
    /// reference: the size whose bottleneck is 1x1).
    #[arg(long)]
    pub size: Option<usize>,
    /// Number of object classes and of source domains recorded in the model config. F/C/D
    /// do not contain the class head or the style discriminator, so these only describe
    /// the run (reference PACS: 7 classes, 2 source domains).
    #[arg(long, default_value_t = 7)]
    pub n_classes: usize,
    #[arg(long, default_value_t = 2)]
    pub n_domains: usize,
}

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Directory to write F.pth, C.pth and D.pth (and source.json) into.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn import(args: &ImportArgs) -> Result<()> {
    let read = |p: &PathBuf, what: &str| {
        read_state_dict(p).with_context(|| format!("reading the {what} state dict {}", p.display()))
    };
    let head = read(&args.head, "head encoder (F)")?;
    let tail = read(&args.tail, "tail encoder (C)")?;
    let decoder = read(&args.decoder, "decoder (D)")?;
    let (nf, depth, vars) = import_reference(&head, &tail, &decoder)?;
    let size = args.size.unwrap_or(1 << depth);
    let mut cfg = ModelConfig::new(size, nf, depth, args.n_classes, args.n_domains);
    if let Some(skip) = args.adain_index {
        cfg.adain_index = skip.index(depth);
    }
    cfg.validate()?;
    let mut ckpt = Checkpoint {
        tensors: vars,
        ..Default::default()
    };
    ckpt.meta
        .insert(META_MODEL.into(), serde_json::to_string(&cfg)?);
    ckpt.meta.insert(
        "imported_from".into(),
        "Lhyejin/DG-Colorization F/C/D state dicts".into(),
    );
    ckpt.save(&args.out)?;
    eprintln!(
        "imported nf {nf}, depth {depth}, size {size}, adain index {:?}: {} tensors -> {}",
        cfg.adain_index,
        ckpt.tensors.len(),
        args.out.display()
    );
    Ok(())
}

pub fn export(args: &ExportArgs) -> Result<()> {
    let resolved = args.model.resolve()?;
    let file = &resolved.file;
    let ckpt = Checkpoint::load(file, &Device::Cpu)?;
    let cfg: ModelConfig = match (ckpt.meta.get(META_MODEL), &resolved.published) {
        (Some(json), _) => serde_json::from_str(json)
            .with_context(|| format!("{}: model config", file.display()))?,
        (None, Some(p)) => p.model.clone(),
        (None, None) => bail!("{}: no model config", file.display()),
    };
    if let Ok(alg) = ckpt.meta(META_ALGORITHM) {
        eprintln!("exporting the generator of a `{alg}` checkpoint");
    }
    let generator = generator_tensors(&ckpt);
    if cfg.adain_index != Some(cfg.z_skip_index()) {
        eprintln!(
            "warning: this model's AdaIN index is {:?}; the reference decoder is run with \
             adain_layer_idx={:?} to reproduce it (its test.py uses 5)",
            cfg.adain_index, cfg.adain_index
        );
    }
    if cfg.depth != 8 {
        eprintln!(
            "warning: depth {} — the reference modules are fixed at depth 8; these files load \
             into depth-{} versions of them",
            cfg.depth, cfg.depth
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    for (f, entries) in export_reference(&generator, cfg.nf, cfg.depth)? {
        let path = args.out.join(format!("{}.pth", f.letter()));
        if entries.is_empty() {
            bail!("nothing to write for {}", path.display());
        }
        write_pth(&path, &entries)?;
        eprintln!("{} tensors -> {}", entries.len(), path.display());
    }
    let source = args.out.join(SOURCE_FILE);
    let record = serde_json::json!({
        "checkpoint": args.model.checkpoint.to_string(),
        "model": resolved.provenance,
    });
    write_atomic(&source, serde_json::to_string_pretty(&record)?.as_bytes())
        .with_context(|| format!("writing {}", source.display()))?;
    Ok(())
}
