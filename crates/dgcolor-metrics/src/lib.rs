//! Image-quality and colourfulness metrics on 8-bit sRGB images (docs/METHOD.md §6), each
//! defined once, here, in plain f64 Rust with no tensor dependency.
//!
//! - PSNR with MAX = 255 ([`psnr`]), as scikit-image's `peak_signal_noise_ratio`.
//! - SSIM, Wang, Bovik, Sheikh & Simoncelli, IEEE TIP 2004 ([`ssim`]), matching scikit-image's
//!   `structural_similarity` with Gaussian weights.
//! - Colourfulness, Hasler & Süsstrunk, SPIE 2003 ([`colourfulness`], [`colourfulness_ratio`]).
//! - CIEDE2000, Sharma, Wu & Dalal, Color Res. Appl. 2005 ([`ciede2000`], [`ciede2000_mean`]).
//!
//! Free functions give the raw values; the [`Metric`] trait, [`all_metrics`] and
//! [`evaluate_pair`] give the finite per-image values that [`MeanMetric`] aggregates, and
//! [`SetMetric`]s ([`set_metrics`]: the colourfulness ratio of means, ΔCF) are computed from
//! those means.

mod ciede2000;
mod colourfulness;
mod error;
mod lab;
mod metric;
mod psnr;
mod ssim;
mod summary;
mod view;

pub use ciede2000::{ciede2000, ciede2000_mean};
pub use colourfulness::{colourfulness, colourfulness_ratio};
pub use error::{MetricError, Result};
pub use metric::{
    all_metrics, evaluate_pair, set_metrics, Better, Ciede2000, Colourfulness, ColourfulnessRatio,
    DeltaColourfulness, Metric, Psnr, SetMetric, Ssim, COLOURFULNESS_GT,
};
pub use psnr::{psnr, PSNR_CAP_DB};
pub use ssim::ssim;
pub use summary::{MeanMetric, MetricSummary};
pub use view::RgbView;
