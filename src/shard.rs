//! Per-thread shards for state that every worker touches on every event.
//!
//! Two workers writing one cache line take turns owning it, and every turn is a transfer
//! between cores; a counter or a pool split in one part per thread stays in the writing
//! core's cache. This module only hands out the shard index of the current thread; it must
//! never hold state of its own beyond that index.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Shards per sharded value: more than the worker threads of a typical node, so that each
/// worker usually has its own (threads take indexes round-robin; a collision only shares a
/// line, it is never wrong).
pub const SHARDS: usize = 8;

/// The current thread's shard, in `0..SHARDS`, fixed for the thread's life.
#[inline]
pub fn current() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_keeps_its_shard_and_threads_spread_over_them() {
        let mine = current();
        assert_eq!(mine, current());
        let others: Vec<usize> = (0..4).map(|_| std::thread::spawn(current).join().unwrap()).collect();
        assert!(others.iter().all(|s| *s < SHARDS));
        assert!(others.iter().any(|s| *s != mine), "{mine} {others:?}");
    }
}
