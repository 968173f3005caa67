use thiserror::Error;

/// Why a metric could not be computed for an image or a pair of images.
///
/// Sizes are written `WxH` so a message points straight at the offending file pair.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MetricError {
    #[error("rgb view: {width}x{height} RGB needs {expected} bytes, got {actual}")]
    BufferLength {
        width: usize,
        height: usize,
        expected: usize,
        actual: usize,
    },
    #[error("rgb view: empty image ({width}x{height})")]
    Empty { width: usize, height: usize },
    #[error("{metric}: image sizes differ (pred {pred_width}x{pred_height} vs gt {gt_width}x{gt_height})")]
    SizeMismatch {
        metric: &'static str,
        pred_width: usize,
        pred_height: usize,
        gt_width: usize,
        gt_height: usize,
    },
    #[error("{metric}: {width}x{height} is smaller than the {min}x{min} window")]
    TooSmall {
        metric: &'static str,
        width: usize,
        height: usize,
        min: usize,
    },
    /// A grayscale reference has zero colourfulness, so a ratio against it means nothing;
    /// reporting it as infinity would silently dominate any average.
    #[error("{metric}: ground truth has zero colourfulness (grayscale), the ratio is undefined")]
    ZeroReference { metric: &'static str },
}

pub type Result<T, E = MetricError> = std::result::Result<T, E>;
