//! Data for dgcolor: sRGB <-> CIE Lab, the embedded `synth` benchmark, multi-domain image
//! folders with the reference split, and a prefetching batch pipeline.
//!
//! The path reads one way: files ([`MultiDomainFolder`], [`generate_synth`]) -> decoded
//! RGB8 ([`decode_rgb8`], [`resize_rgb8`]) -> scaled Lab planes ([`load_lab`]) ->
//! per-domain [`HostBatch`]es ([`TrainLoader`], [`eval_chunks`]) -> [`DomainBatch`]
//! tensors on a device.

mod batch;
mod color;
mod error;
mod folder;
mod image_io;
mod loader;
mod pipeline;
mod rng;
mod synth;

pub use batch::{DomainBatch, HostBatch};
pub use color::{
    lab_planes_to_rgb8, lab_to_srgb, rgb8_to_lab_planes, scale_ab, scale_l, srgb_to_lab,
    unscale_ab, unscale_l,
};
pub use error::{DataError, Result};
pub use folder::{reference_split, MultiDomainFolder, Sample, Split, IMAGE_EXTENSIONS};
pub use image_io::{decode_rgb8, pil_nearest_indices, resize_rgb8, ResizeFilter};
pub use loader::{BatchMode, BatchStream, LoaderConfig, SourceSet, StepBatches, TrainLoader};
pub use pipeline::{
    eval_chunks, eval_items, host_batch, lab_image, load_lab, EvalChunk, EvalChunks, EvalItem,
    LabImage, OnBadImage, Preprocess,
};
pub use synth::{
    ensure_synth, generate_synth, render_synth, render_synth_with_mask, SynthConfig, SynthFile,
    SynthManifest, SYNTH_CLASSES, SYNTH_DOMAINS, SYNTH_VERSION,
};
