//! Process set-up for the binaries: keeping freed memory in the process, and candle's idle
//! CPU threads parked instead of spinning.
//!
//! Keeping freed memory in the process. glibc's malloc serves large allocations (above an
//! adaptive threshold from 128 KiB) with fresh mmaps and hands freed memory at the top of
//! the heap back to the kernel, so a loop that frees and reallocates the same image- and
//! activation-sized buffers pays a page fault and a kernel page clear for every page, every
//! time. Measured here: 1.2 of 3.2 ms per image in the data pipeline (decode + resize +
//! Lab), and 6-25 % of a training step; the peak RSS of a training run moved by about 1 %.

/// Largest request still served from the heap (glibc's ceiling for this setting).
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the top of the heap kept before returning any to the kernel.
const TRIM_THRESHOLD: i32 = 128 << 20;

/// Tells glibc's malloc to serve allocations up to 32 MiB from the heap and to keep up to
/// 128 MiB of freed memory. For binaries, first thing in `main`; returns whether it applied
/// (false off glibc, where this is not needed or not known).
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; both values are in range.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
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
