//! Process set-up for the binaries: keeping freed memory in the process, and candle's idle
//! CPU threads parked instead of spinning.
//!
//! Keeping freed memory in the process. glibc's malloc serves large allocations (above an
//! adaptive threshold from 128 KiB, never above 32 MiB) with fresh mmaps, and hands freed
//! memory at the top of the heap back to the kernel, so a loop that frees and reallocates
//! the same image- and activation-sized buffers pays a page fault and a kernel page clear for
//! every page, every time. Measured here: 1.2 of 3.2 ms per image in the data pipeline
//! (decode + resize + Lab), 6-25 % of a training step at 64 px; at 256 px (batch 4) the
//! decoder's activations and gradients reach 32 MiB, past any mmap threshold glibc accepts,
//! and a pix2pix iteration still took 162 000 page faults (~650 MB of fresh pages) until
//! mmap was switched off altogether (then ~0 per iteration, +10 % images/s).

/// Tells glibc's malloc to serve every allocation from its heaps (no mmap'd chunks) and never
/// to return the top of a heap to the kernel: the process keeps its peak heap (a training
/// run's peak RSS moved by about 1 %) and reuses it without page faults. For binaries, first
/// thing in `main`; returns whether it applied (false off glibc, where this is not needed or
/// not known).
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; both values are in range.
        // Requests above a thread arena's heap size (64 MiB) still succeed: glibc retries them
        // in the main arena, which grows by brk.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// candle's CPU thread pool (the `candle-bp-*` threads, used by candle's own parallel ops)
/// spins up to `CANDLE_BARRIER_POOL_SPIN_LIMIT` pause instructions (25 000 by default, about
/// 1.5 ms here) waiting for the next candle op before it parks. Between candle ops our
/// kernels run on rayon's threads, so that spinning takes a core from them: on 2 cores it was
/// 17 % of all CPU samples of a quick-preset `ours` iteration. Parking at once (0) pays a
/// wake-up for every parallel candle op instead, which lost on the generator step; a short
/// spin (2000, ~0.1 ms) was best in interleaved runs of the quick preset here: G step +10 %,
/// pix2pix iteration +13 %, inference +15 % against the default (bench/README.md). Sets that
/// limit unless the environment already sets one; for binaries, first thing in `main`,
/// before any candle op creates the pool.
pub fn park_idle_candle_threads() {
    const VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(VAR).is_none() {
        std::env::set_var(VAR, "2000");
    }
}

/// [`retain_freed_memory`] and [`park_idle_candle_threads`]: what every binary here calls
/// first thing in `main`.
pub fn setup_process() {
    retain_freed_memory();
    park_idle_candle_threads();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With mmap off, requests larger than a thread arena's 64 MiB heap must still be served
    /// (glibc falls back to the main arena), from the main thread and from worker threads.
    #[test]
    fn large_allocations_succeed_after_retain_freed_memory() {
        retain_freed_memory();
        let touch = |mib: usize| {
            let mut v = vec![0u8; mib << 20];
            v[(mib << 20) - 1] = 1;
            v.iter().step_by(4096).count() + v[(mib << 20) - 1] as usize
        };
        assert_eq!(touch(200), (200 << 20) / 4096 + 1);
        let handles: Vec<_> = (0..2)
            .map(|_| std::thread::spawn(move || (touch(96), touch(1))))
            .collect();
        for h in handles {
            assert_eq!(
                h.join().expect("allocation in a thread"),
                ((96 << 20) / 4096 + 1, (1 << 20) / 4096 + 1)
            );
        }
    }
}
