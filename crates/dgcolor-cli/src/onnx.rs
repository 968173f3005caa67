//! `dgcolor export-onnx`: the inference network (BatchNorm folded) as an ONNX graph of
//! standard operators (`dgcolor_onnx`), `L` in and `ab` out in the reference's scaling,
//! which the model's metadata states along with where the weights came from.

use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::Device;
use clap::Args;
use dgcolor_algorithms::write_atomic;
use dgcolor_eval::load_generator;
use dgcolor_onnx::{export, to_bytes, ExportOptions};

use crate::model_arg::ModelArgs;

#[derive(Args)]
pub struct OnnxArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The .onnx file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Side S of the graph's input [N, 1, S, S] (default: the model's training size); a
    /// multiple of 2^depth.
    #[arg(long)]
    pub size: Option<usize>,
    /// Any batch size (the batch dimension is the symbol `N`) instead of 1.
    #[arg(long)]
    pub dynamic_batch: bool,
}

pub fn run(args: &OnnxArgs) -> Result<()> {
    let resolved = args.model.resolve()?;
    let generator = load_generator(&resolved.file, &Device::Cpu)?;
    let mut metadata = vec![
        (
            "dgcolor.checkpoint".to_string(),
            args.model.checkpoint.to_string(),
        ),
        (
            "dgcolor.source".to_string(),
            serde_json::to_string(&resolved.provenance)?,
        ),
    ];
    if let Some(filter) = resolved.resize_filter()? {
        metadata.push((
            "dgcolor.resize_filter".into(),
            serde_json::to_value(filter)?
                .as_str()
                .unwrap_or_default()
                .into(),
        ));
    }
    let opts = ExportOptions {
        size: args.size.unwrap_or(generator.config().size),
        dynamic_batch: args.dynamic_batch,
        metadata,
    };
    let model = export(&generator, &opts)?;
    let bytes = to_bytes(&model);
    write_atomic(&args.out, &bytes).with_context(|| format!("writing {}", args.out.display()))?;
    let graph = model.graph.as_ref().expect("export builds a graph");
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "out": args.out,
            "size": opts.size,
            "dynamic_batch": opts.dynamic_batch,
            "opset": dgcolor_onnx::OPSET,
            "nodes": graph.node.len(),
            "initializers": graph.initializer.len(),
            "bytes": bytes.len(),
            "model": resolved.provenance,
        }))?
    );
    Ok(())
}
