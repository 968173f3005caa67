use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How a forward pass runs. Training carries a seed for dropout because candle's CPU random
/// generator cannot be seeded: masks drawn from our own counter-based RNG make a resumed run
/// bit-identical to an uninterrupted one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Batch statistics (and running-stat updates) in BatchNorm, dropout on.
    Train { dropout_seed: u64 },
    /// Running statistics, no dropout: the reference's test-time behaviour.
    Eval,
}

impl Mode {
    pub fn is_train(&self) -> bool {
        matches!(self, Mode::Train { .. })
    }

    /// The generator of one layer's dropout mask in training.
    fn dropout_rng(&self, layer: u64) -> Option<ChaCha8Rng> {
        let Mode::Train { dropout_seed } = *self else {
            return None;
        };
        Some(ChaCha8Rng::seed_from_u64(
            dropout_seed ^ layer.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        ))
    }

    /// The 32-byte ChaCha seed of that generator, from which `dgcolor_kernels::dropout` draws
    /// the same mask on the GPU.
    pub(crate) fn dropout_seed(&self, layer: u64) -> Option<[u8; 32]> {
        self.dropout_rng(layer).map(|rng| rng.get_seed())
    }

    /// A keep-mask scaled by 1/(1-p) (PyTorch's inverted dropout), drawn for one layer.
    pub(crate) fn dropout_mask(&self, layer: u64, len: usize, p: f32) -> Option<Vec<f32>> {
        let mut rng = self.dropout_rng(layer)?;
        let scale = 1.0 / (1.0 - p);
        Some(
            (0..len)
                .map(|_| if rng.random::<f32>() < p { 0.0 } else { scale })
                .collect(),
        )
    }
}
