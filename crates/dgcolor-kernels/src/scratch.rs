//! A small pool of reusable f32 buffers for the column matrices. Large allocations go
//! straight to mmap in glibc (unless [`crate::retain_freed_memory`] is in force), so a fresh
//! 64 MiB column buffer per layer per step would be page-faulted in (and zeroed by the
//! kernel) every time; pooled ones are already mapped.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());
/// Buffers kept between calls: a conv op's groups hold up to three each (columns, a
/// permuted copy, a partial weight gradient), two or more groups at once.
const KEEP: usize = 8;

/// A buffer of at least `len` elements with unspecified contents; returned to the pool on
/// drop. Callers write every element they read.
pub(crate) struct Scratch {
    buf: Vec<f32>,
    len: usize,
}

impl Scratch {
    pub fn take(len: usize) -> Self {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        // The smallest buffer that is large enough, else the largest one (grown).
        let pick = pool
            .iter()
            .enumerate()
            .filter(|(_, b)| b.len() >= len)
            .min_by_key(|(_, b)| b.len())
            .or_else(|| pool.iter().enumerate().max_by_key(|(_, b)| b.len()))
            .map(|(i, _)| i);
        let mut buf = pick.map(|i| pool.swap_remove(i)).unwrap_or_default();
        drop(pool);
        if buf.len() < len {
            // Growing: a fresh zeroed allocation (calloc maps zero pages lazily).
            buf = vec![0.0; len];
        }
        Self { buf, len }
    }
}

impl Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[..self.len]
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[..self.len]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        pool.push(buf);
        if pool.len() > KEEP {
            // Drop the smallest.
            if let Some((i, _)) = pool.iter().enumerate().min_by_key(|(_, b)| b.len()) {
                pool.swap_remove(i);
            }
        }
    }
}
