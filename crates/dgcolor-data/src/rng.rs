//! Counter-based randomness: every random decision draws from a ChaCha8 stream keyed by
//! `(seed, purpose, a, b)` (say, `(seed, Permutation, epoch, domain)`), never from a
//! long-lived generator. The result of a draw then depends only on its coordinates, so a
//! resumed run sees the same batches as an uninterrupted one and rayon's scheduling can
//! not change a generated image.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a stream is for; part of the key so that two purposes never share draws.
#[derive(Clone, Copy, Debug)]
#[repr(u64)]
pub(crate) enum Stream {
    Split = 1,
    Permutation = 2,
    Flip = 3,
    Synth = 4,
    Oracle = 5,
}

pub(crate) fn derived_rng(seed: u64, stream: Stream, a: u64, b: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (chunk, word) in key.chunks_exact_mut(8).zip([seed, stream as u64, a, b]) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}
