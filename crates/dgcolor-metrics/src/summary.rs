//! Running aggregation of per-image values into the mean ± standard error that the result
//! tables report (DomainBed's `mean_std` convention, with the sample standard deviation).

use serde::{Deserialize, Serialize};

/// Accumulates one metric over a test set in one pass (Welford's update), so an evaluation
/// loop never holds every per-image value.
#[derive(Debug, Clone, Default)]
pub struct MeanMetric {
    count: usize,
    mean: f64,
    /// Sum of squared deviations from the running mean.
    m2: f64,
    min: f64,
    max: f64,
}

/// The reportable state of a [`MeanMetric`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    pub count: usize,
    pub mean: f64,
    /// Sample standard deviation over `sqrt(count)`; `None` for a single value, where the
    /// spread is unknown rather than zero.
    pub std_err: Option<f64>,
    pub min: f64,
    pub max: f64,
}

impl MeanMetric {
    pub fn new() -> Self {
        Self::default()
    }

    /// # Panics
    /// On a non-finite value: one NaN or infinity would silently corrupt every statistic.
    /// [`crate::Metric`] implementations only return finite values.
    pub fn update(&mut self, value: f64) {
        assert!(value.is_finite(), "MeanMetric: non-finite value {value}");
        if self.count == 0 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.count += 1;
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (value - self.mean);
    }

    /// `None` before the first value: the mean of nothing is undefined.
    pub fn summary(&self) -> Option<MetricSummary> {
        (self.count > 0).then(|| {
            let n = self.count as f64;
            MetricSummary {
                count: self.count,
                mean: self.mean,
                std_err: (self.count > 1).then(|| (self.m2 / (n - 1.0)).sqrt() / n.sqrt()),
                min: self.min,
                max: self.max,
            }
        })
    }

    pub fn reset(&mut self) {
        *self = Self::default();
    }
}
