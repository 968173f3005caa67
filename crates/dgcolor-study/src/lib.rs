//! The paper's headline evaluation, a user study, as one command each: build a study folder
//! from a sweep ([`build_study`]), serve it as a web app with durable answers
//! ([`server::start`], [`store::Store`]), export the answers ([`export`]) and compute the
//! statistics a reviewer asks for ([`report::analyze`], [`stats`]).
//!
//! The two protocols of the paper: *naturalness* (one image at a time, "does this look like
//! a natural colour photograph / painting?", with ground-truth and hue-inverted
//! ground-truth images mixed in as controls) and *best of N* (one input colourized by N
//! methods, positions shuffled per participant, "pick the most natural"). The browser only
//! ever sees opaque random ids; which method made an image is in the study's
//! `manifest.json`, which is never served.

pub mod build;
mod error;
pub mod export;
pub mod ids;
pub mod manifest;
pub mod report;
pub mod server;
pub mod stats;
pub mod store;

pub use build::{build_study, hue_invert, selected_checkpoint, BuildOptions};
pub use error::{Result, StudyError};
pub use export::{answer_rows, read_csv, write_csv, AnswerRow};
pub use manifest::{Design, Study, StudyMeta, StudyWriter};
pub use report::{analyze, write_report, Analysis, ReportOptions};
pub use server::{start, RunningServer, ServeOptions};
pub use store::Store;
