//! Batches as the algorithms see them: one batch per source domain, so that DG methods
//! which need per-domain statistics get them without re-grouping, and methods that train
//! on the union simply concatenate.

use candle_core::{Device, Result, Tensor};

/// Images of one source domain, in the reference scaling (`L/50 - 1`, `ab/100`).
#[derive(Debug, Clone)]
pub struct DomainBatch {
    /// Index of the domain among the run's source domains (0-based), used as the label of
    /// domain classifiers.
    pub domain: usize,
    /// Lightness, `[B, 1, S, S]`, f32 in [-1, 1].
    pub l: Tensor,
    /// Chrominance, `[B, 2, S, S]`, f32 in about [-1, 1].
    pub ab: Tensor,
    /// Object class ids, `[B]`, u32.
    pub class: Tensor,
}

/// The host-side form of a [`DomainBatch`], filled by the loader threads and moved to a
/// device only when the trainer takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    pub domain: usize,
    pub size: usize,
    /// `B * S * S` values, row-major per image.
    pub l: Vec<f32>,
    /// `B * 2 * S * S` values (a plane then b plane per image).
    pub ab: Vec<f32>,
    pub class: Vec<u32>,
}

impl HostBatch {
    pub fn len(&self) -> usize {
        self.class.len()
    }

    pub fn is_empty(&self) -> bool {
        self.class.is_empty()
    }

    pub fn to_device(&self, device: &Device) -> Result<DomainBatch> {
        let (b, s) = (self.len(), self.size);
        Ok(DomainBatch {
            domain: self.domain,
            l: Tensor::from_slice(&self.l, (b, 1, s, s), device)?,
            ab: Tensor::from_slice(&self.ab, (b, 2, s, s), device)?,
            class: Tensor::from_slice(&self.class, b, device)?,
        })
    }
}
