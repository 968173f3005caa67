//! Data for dgcolor: sRGB <-> CIE Lab, the embedded `synth` benchmark, multi-domain image
//! folders with the reference split, and a prefetching batch pipeline.
//!
//! The path reads one way: files ([`MultiDomainFolder`], [`generate_synth`]) -> decoded
//! RGB8 ([`decode_rgb8`], [`resize_rgb8`]) -> scaled Lab planes ([`load_lab`]) ->
//! per-domain [`HostBatch`]es ([`TrainLoader`], [`eval_chunks`]) -> [`DomainBatch`]
//! tensors on a device.
//!
//! The real benchmarks (PACS, Office-Home) open from the layouts people download
//! ([`open_pacs`], [`open_office_home`]), from Hugging Face parquet copies
//! ([`extract_parquet`], the `hub` module behind the `hub` feature), with the official PACS
//! split files checked line by line ([`kfold`]); [`paper_settings`] lists the paper's
//! source/target settings. [`DataSpec`], [`SplitChoice`] and [`ResizeFilter`] are the typed
//! `--data`, `--split` and `--resize` options, and [`make_splits`] the splits of one run.

mod batch;
mod benchmark;
mod benchmark_error;
mod benchmark_tree;
mod check;
mod color;
mod error;
mod folder;
#[cfg(feature = "hub")]
pub mod hub;
mod image_io;
pub mod kfold;
mod loader;
pub mod parquet;
mod pipeline;
mod rng;
mod spec;
mod synth;

pub use batch::{DomainBatch, HostBatch};
pub use benchmark::{
    leave_one_out_settings, normalize_name, paper_settings, Benchmark, Setting,
    OFFICE_HOME_CLASSES, OFFICE_HOME_COUNTS, OFFICE_HOME_DOMAINS, PACS_CLASSES, PACS_COUNTS,
    PACS_DOMAINS,
};
pub use benchmark_error::BenchmarkError;
pub use benchmark_tree::{
    benchmark_layout, locate_tree, open_office_home, open_pacs, open_tree, same_domain,
};
pub use check::{check_images, BrokenImage};
pub use color::{
    lab_planes_to_rgb8, lab_to_srgb, rgb8_to_lab_planes, scale_ab, scale_l, srgb_to_lab,
    unscale_ab, unscale_l,
};
pub use error::{DataError, Result};
pub use folder::{
    oracle_split, reference_split, FolderLayout, MultiDomainFolder, Sample, Split, IMAGE_EXTENSIONS,
};
pub use image_io::{
    decode_rgb8, decode_rgb8_lenient, pil_nearest_indices, resize_rgb8, DecodedImage, ResizeFilter,
};
pub use kfold::{
    find_split_dir, official_split, read_split_list, LineProblem, LineProblemKind, MissingPolicy,
    OfficialSplit, SplitList, SplitPart,
};
pub use loader::{BatchMode, BatchStream, LoaderConfig, SourceSet, StepBatches, TrainLoader};
pub use parquet::{extract_parquet, parquet_files, write_hf_parquet, HfImageRow};
pub use pipeline::{
    eval_chunks, eval_items, host_batch, lab_image, load_lab, load_lab_planes, EvalChunk,
    EvalChunks, EvalItem, LabImage, OnBadImage, Preprocess,
};
pub use spec::{make_splits, DataSpec, SplitChoice, Splits, ORACLE_FRACTION, VAL_FRACTION};
pub use synth::{
    ensure_synth, generate_synth, render_synth, render_synth_with_mask, SynthConfig, SynthFile,
    SynthManifest, SYNTH_CLASSES, SYNTH_DOMAINS, SYNTH_VERSION,
};
