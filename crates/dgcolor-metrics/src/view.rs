use crate::error::{MetricError, Result};

/// A borrowed 8-bit sRGB image, interleaved `RGBRGB...`, row-major.
///
/// The fields are private so that every view in existence has passed [`RgbView::new`]:
/// metrics can then index it freely and never divide by a zero pixel count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RgbView<'a> {
    data: &'a [u8],
    width: usize,
    height: usize,
}

impl<'a> RgbView<'a> {
    pub fn new(data: &'a [u8], width: usize, height: usize) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(MetricError::Empty { width, height });
        }
        let expected = width * height * 3;
        if data.len() != expected {
            return Err(MetricError::BufferLength {
                width,
                height,
                expected,
                actual: data.len(),
            });
        }
        Ok(Self {
            data,
            width,
            height,
        })
    }

    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub fn pixel_count(&self) -> usize {
        self.width * self.height
    }

    pub fn pixels(&self) -> impl Iterator<Item = [u8; 3]> + 'a {
        self.data.chunks_exact(3).map(|p| [p[0], p[1], p[2]])
    }

    /// One channel as `f64`, row-major, for the metrics that filter planes separately.
    pub(crate) fn plane(&self, channel: usize) -> Vec<f64> {
        self.data
            .iter()
            .skip(channel)
            .step_by(3)
            .map(|&v| f64::from(v))
            .collect()
    }

    /// Full-reference metrics compare pixel by pixel, so sizes must agree exactly.
    pub(crate) fn check_same_size(metric: &'static str, pred: &Self, gt: &Self) -> Result<()> {
        if (pred.width, pred.height) != (gt.width, gt.height) {
            return Err(MetricError::SizeMismatch {
                metric,
                pred_width: pred.width,
                pred_height: pred.height,
                gt_width: gt.width,
                gt_height: gt.height,
            });
        }
        Ok(())
    }
}
