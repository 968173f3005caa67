//! Shared pieces of the side-by-side benchmark (`bench` binary) and the criterion
//! micro-benchmarks: the benchmark configurations, synthetic batches, and analytic
//! convolution FLOP counts for efficiency figures.

pub mod gradcheck;

use candle_core::{Device, Result, Tensor};
use dgcolor_data::DomainBatch;
use dgcolor_models::ModelConfig;

/// One row group of the table: image size, base width, depth, batch size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchConfig {
    pub name: &'static str,
    pub size: usize,
    pub nf: usize,
    pub depth: usize,
    pub batch: usize,
}

/// The two CPU configurations of the side-by-side table (64 px, nf 32, depth 6, batch 16;
/// the paper's network, 256 px, nf 64, depth 8, at batch 4), the quick preset (64 px, nf 16,
/// depth 6, batch 16), and the paper's scale for the GPU (256 px, nf 64, depth 8, batch 16
/// and 128).
pub const CONFIGS: &[BenchConfig] = &[
    BenchConfig {
        name: "s64-nf32-d6-b16",
        size: 64,
        nf: 32,
        depth: 6,
        batch: 16,
    },
    BenchConfig {
        name: "s256-nf64-d8-b4",
        size: 256,
        nf: 64,
        depth: 8,
        batch: 4,
    },
    BenchConfig {
        name: "quick",
        size: 64,
        nf: 16,
        depth: 6,
        batch: 16,
    },
    BenchConfig {
        name: "s256-nf64-d8-b16",
        size: 256,
        nf: 64,
        depth: 8,
        batch: 16,
    },
    BenchConfig {
        name: "s256-nf64-d8-b128",
        size: 256,
        nf: 64,
        depth: 8,
        batch: 128,
    },
];

pub const N_CLASSES: usize = 7;
pub const N_DOMAINS: usize = 2;

impl BenchConfig {
    pub fn get(name: &str) -> Option<Self> {
        CONFIGS.iter().copied().find(|c| c.name == name)
    }

    pub fn model(&self) -> ModelConfig {
        ModelConfig::new(self.size, self.nf, self.depth, N_CLASSES, N_DOMAINS)
    }
}

/// Deterministic values in [-1, 1) (a small LCG; candle's CPU RNG is unseedable).
pub fn uniform(shape: &[usize], seed: u64, device: &Device) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(values, shape, device)
}

/// `batch` images split evenly over the two source domains.
pub fn domain_batches(cfg: &BenchConfig, seed: u64, device: &Device) -> Result<Vec<DomainBatch>> {
    let per = cfg.batch / N_DOMAINS;
    (0..N_DOMAINS)
        .map(|d| {
            let s = cfg.size;
            let class: Vec<u32> = (0..per).map(|i| ((i + d) % N_CLASSES) as u32).collect();
            Ok(DomainBatch {
                domain: d,
                l: uniform(&[per, 1, s, s], seed + 2 * d as u64, device)?,
                ab: (uniform(&[per, 2, s, s], seed + 2 * d as u64 + 1, device)? * 0.5)?,
                class: Tensor::from_vec(class, per, device)?,
            })
        })
        .collect()
}

/// Multiply-add FLOPs (2 per MAC) of the generator's convolutions, forward only.
pub fn generator_conv_flops(cfg: &BenchConfig) -> f64 {
    let m = cfg.model();
    let (b, d) = (cfg.batch as f64, cfg.depth);
    let mut flops = 0.0;
    for i in 1..=d {
        let c_in = if i == 1 { 1 } else { m.width(i - 1) };
        let side = (cfg.size >> i) as f64;
        flops += 2.0 * b * side * side * m.width(i) as f64 * (c_in * 16) as f64;
    }
    for k in 1..=d {
        let c_in = if k == 1 {
            m.width(d)
        } else {
            2 * m.width(d - k + 1)
        };
        let c_out = if k == d { 2 } else { m.width(d - k) };
        let side_in = (cfg.size >> (d - k + 1)) as f64;
        flops += 2.0 * b * side_in * side_in * c_in as f64 * (c_out * 16) as f64;
    }
    flops
}
