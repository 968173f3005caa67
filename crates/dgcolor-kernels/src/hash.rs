//! The workspace's one stable hash: FNV-1a 64 (the `fnv` crate). Run directory names,
//! per-name random streams (weight initialisation, hyperparameter draws, synth images) and
//! dataset fingerprints must hash the same on every platform, build and release, which
//! std's randomly keyed `DefaultHasher` does not promise.

use std::hash::Hasher;

/// The incremental form, for hashing several pieces: `write` each, then `finish`.
pub type StableHasher = fnv::FnvHasher;

/// FNV-1a 64 of `bytes`.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h = StableHasher::default();
    h.write(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    /// Published FNV-1a 64 test vectors (Fowler, Noll and Vo's reference test suite).
    #[test]
    fn matches_the_reference_vectors() {
        assert_eq!(super::stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(super::stable_hash(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
