//! Deterministic frame data for tests and benchmarks, here and in the crates
//! that carry kernels to a GPU machine.

/// `len` pseudo-random bytes from a xorshift generator: the same `seed` gives
/// the same bytes on every machine, so failures reproduce.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
