//! Process set-up for the binaries: this crate's settings read and checked, freed memory kept
//! in the process, candle's idle CPU threads parked instead of spinning, and the main thread
//! as a worker of the thread pool its kernels use.
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

/// Makes the calling thread (a binary's main thread) worker 0 of rayon's global pool, which
/// runs our kernels, the GEMMs and candle's rayon loops, with `num_threads() - 1` more
/// workers. Returns false, changing nothing, if the global pool already existed or with a
/// single thread: the main thread would then be the pool's only worker, and work queued from
/// other threads (the loader thread's decoding) would wait for it while it waits for that
/// work (a one-thread training run hung on its first batch).
///
/// Why: a rayon parallel loop started from a thread outside the pool queues its job in the
/// pool and puts the calling thread to sleep until the pool has finished it, so each of the
/// few hundred short parallel sections of a training step cost a futex sleep and a wake-up
/// (8 % of a 64 px generator step's CPU samples were the kernel's scheduler and futex
/// paths, and the step ran on three threads for two cores). Started from a worker, the
/// worker runs its own share at once and the other workers steal the rest. Measured on 2
/// cores: s64 generator step 113-157 -> 188-190 images/s, pix2pix iteration 59-66 -> 90-92;
/// the quick preset's `erm` + `ours` sweep (`compare`, with its loader) 51 -> 45 s, its
/// training records identical; inference, with few and longer sections, unchanged.
///
/// Running the loop on a pool thread other than the main thread (candle's
/// `Device::with_context`) gave the same step times in the benchmark, but then every tensor
/// was allocated from a glibc thread arena, whose 64 MiB heaps are mapped and unmapped as
/// they fill and empty (4.5x the page faults of an `ours` iteration, with TLB shoot-downs);
/// the main thread allocates from the main heap, which [`retain_freed_memory`] keeps.
///
/// The main thread then has to do the work itself: while it blocks outside rayon (joining
/// threads it spawned, say) the pool is one worker short, and loops started from those
/// other threads are back to the hand-off above. The sweep launcher
/// (`dgcolor_eval::sweep::Local`) runs jobs on the calling thread for that reason (with
/// every job on a spawned thread, the quick sweep above trained at half the speed).
pub fn pool_on_main_thread() -> bool {
    if crate::num_threads() < 2 {
        return false;
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(crate::num_threads())
        .use_current_thread()
        .build_global()
        .is_ok()
}

/// What every binary here calls first thing in `main`, on its main thread: reads and
/// validates this crate's environment switches ([`crate::init_settings`]), then
/// [`retain_freed_memory`], [`park_idle_candle_threads`] and [`pool_on_main_thread`].
/// Returns the settings in force (for the run's record), or, changing nothing, the error
/// for an invalid `DGCOLOR_*` value, which the binary should report and exit with:
/// `dgcolor_kernels::setup_process()?;`.
pub fn setup_process() -> Result<&'static crate::Settings, crate::SettingsError> {
    let settings = crate::init_settings()?;
    retain_freed_memory();
    park_idle_candle_threads();
    pool_on_main_thread();
    Ok(settings)
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
