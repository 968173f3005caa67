//! Stopping runs early and cleanly. A scheduler ends a job with SIGTERM (cancellation,
//! preemption, `scontrol requeue`, the time limit) and can warn it before its time limit with
//! another signal (`sbatch --signal=B:USR1@120`). A [`StopFlag`] registered for SIGTERM and
//! SIGUSR1 turns either into a request the trainer sees at its next step boundary: it writes
//! a checkpoint, records the steps since its last training record, releases the run
//! directory's lock and returns, and `dgcolor train` exits with [`EXIT_STOPPED`]. Re-running
//! the same command resumes the run and ends with the weights of an uninterrupted one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The exit status of `dgcolor train` (and of a local sweep) stopped by a signal after
/// checkpointing: BSD's EX_TEMPFAIL, "try again later". Batch scripts tell it apart from a
/// failure: the run resumes when the same command runs again.
pub const EXIT_STOPPED: i32 = 75;

/// A stop request shared by the signal handlers and the trainer(s): 0 while none came, the
/// signal's number once one did. Clones share the flag. The default flag is never set by a
/// signal (only by [`StopFlag::request`]).
#[derive(Clone, Debug, Default)]
pub struct StopFlag(Arc<AtomicUsize>);

impl StopFlag {
    /// A flag that SIGTERM and SIGUSR1 set from now on, for the rest of the process (replacing
    /// their default action, which ends the process at once). The handlers only store the
    /// signal's number into an atomic (through `signal-hook`, which installs them with
    /// `sigaction` and keeps any handler registered before), so they are async-signal-safe;
    /// a repeated signal sets the flag again and nothing more.
    pub fn on_signals() -> std::io::Result<Self> {
        let flag = Self::default();
        #[cfg(unix)]
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGUSR1] {
            signal_hook::flag::register_usize(signal, Arc::clone(&flag.0), signal as usize)?;
        }
        Ok(flag)
    }

    /// Asks for a stop as if `signal` had arrived.
    pub fn request(&self, signal: i32) {
        self.0.store(signal as usize, Ordering::SeqCst);
    }

    /// The signal that asked for a stop, if one did.
    pub fn signal(&self) -> Option<i32> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s as i32),
        }
    }
}

/// `SIGTERM`, `SIGUSR1`, ... (the number itself for signals without a name here).
pub fn signal_name(signal: i32) -> String {
    #[cfg(unix)]
    if let Some(name) = signal_hook::low_level::signal_name(signal) {
        return name.to_string();
    }
    format!("signal {signal}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_seen_by_every_clone() {
        let flag = StopFlag::default();
        let seen = flag.clone();
        assert_eq!(seen.signal(), None);
        flag.request(15);
        assert_eq!(seen.signal(), Some(15));
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(10), "SIGUSR1");
    }
}
