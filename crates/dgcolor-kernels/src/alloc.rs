//! Process set-up for the binaries: this crate's settings read and checked, freed memory kept
//! in the process, candle's idle CPU threads parked instead of spinning, and the main thread
//! as a worker of the thread pool its kernels use.
//!
//! Keeping freed memory in the process. glibc's malloc serves large allocations (above an
//! adaptive threshold from 128 KiB, never above 32 MiB) with fresh mmaps, and hands freed
//! memory at the top of the heap back to the kernel, so a loop that frees and reallocates
//! the same image- and activation-sized buffers pays a page fault and a kernel page clear for
//! every page, every time: a large share of the data pipeline (decode + resize + Lab) and of
//! a training step. At 256 px (batch 4) the decoder's activations and gradients reach
//! 32 MiB, past any mmap threshold glibc accepts, so only switching mmap off altogether
//! removes those faults (measurements in bench/README.md, 'What moved it',
//! `retain_freed_memory`).

/// Tells glibc's malloc to serve every allocation from its heaps (no mmap'd chunks) and never
/// to return the top of a heap to the kernel: the process keeps its peak heap (about 1 % more
/// peak RSS in a training run) and reuses it without page faults. For binaries, first
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
/// kernels run on rayon's threads, so that spinning takes a core from them (on 2 cores, a
/// sixth of the CPU samples of a quick-preset `ours` iteration). Parking at once (0) pays a
/// wake-up for every parallel candle op instead; a short spin (2000, ~0.1 ms) is the best of
/// the three in interleaved runs of the quick preset (bench/README.md, 'Threads'). Sets that
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
/// work, a deadlock on the first batch.
///
/// Why: a rayon parallel loop started from a thread outside the pool queues its job in the
/// pool and puts the calling thread to sleep until the pool has finished it, so each of the
/// few hundred short parallel sections of a training step costs a futex sleep and a wake-up,
/// and the step runs on one thread more than there are cores. Started from a worker, the
/// worker runs its own share at once and the other workers steal the rest. That makes the
/// 64 px training steps markedly faster and leaves inference, with few and longer sections,
/// unchanged (measurements in bench/README.md, 'What moved it', the main thread as worker 0).
///
/// The training loop runs on the main thread rather than on another pool thread (candle's
/// `Device::with_context`, the same step times) because the main thread allocates from the
/// main heap, which [`retain_freed_memory`] keeps, where another thread allocates from a
/// glibc thread arena, whose 64 MiB heaps are mapped and unmapped as they fill and empty
/// (several times the page faults, with TLB shoot-downs).
///
/// The main thread then has to do the work itself: while it blocks outside rayon (joining
/// threads it spawned, say) the pool is one worker short, and loops started from those
/// other threads are back to the hand-off above. The sweep launcher
/// (`dgcolor_runs::sweep::Local`) runs jobs on the calling thread for that reason (with
/// every job on a spawned thread, a quick-preset sweep trains at about half the speed).
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
