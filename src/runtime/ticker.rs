//! The engine-wide epoch ticker: the clock that lets the host interrupt a running handler.
//!
//! Owns one OS thread that calls `Engine::increment_epoch`. Every tick runs the epoch callback
//! of each call that is still running (see `Runtime::new_store`), which is where deadlines,
//! the slow lane and yields happen; so the ticker must tick every `tick` while any call is
//! slow. Almost no call is: handlers answer in microseconds. Waking every 250 µs regardless cost
//! an idle or busy server about 6% of a core (each wake of a VM's timer is ~20 µs of CPU) and
//! preempted a worker thousands of times a second. So the ticker *rests* while no call is slow:
//! it ticks once per [`REST_TICKS`] ticks (4 ms with the default 250 µs tick). A call that runs
//! into its second tick is slow, and calls [`Ticker::hurry`], which wakes the ticker and keeps it
//! at full rate until [`HOLD`] after the last slow tick. A spinning handler is therefore caught
//! within two rest periods (8 ms) instead of two ticks, and from then on is treated exactly as
//! before. (A call the OS preempted across several ticks sees them as one when it resumes, so
//! preemption alone does not make a call slow.)
//!
//! It must never take a lock or do work per tick beyond the epoch increment and its counter: it
//! runs beside the hot path on a machine the handlers share.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::Thread;
use std::time::Duration;

use wasmtime::Engine;

use crate::registry::{Registry, unix_ms};

/// While no call is slow, the ticker ticks once per this many ticks.
pub const REST_TICKS: u32 = 16;
/// How long the ticker keeps its full rate after the last tick of a slow call.
pub const HOLD: Duration = Duration::from_secs(1);

pub struct Ticker {
    thread: Thread,
    tick: Duration,
    clock: Arc<Clock>,
}

/// What the ticker thread reads on every turn.
struct Clock {
    /// Unix ms until which the ticker ticks at full rate.
    fast_until_ms: AtomicU64,
    /// Unix ms after which the ticker thread exits (`u64::MAX` while serving).
    stop_after_ms: AtomicU64,
}

impl Ticker {
    /// Starts the ticker thread for `engine`; it counts its ticks in `registry`'s metrics.
    pub fn spawn(engine: Engine, tick: Duration, registry: Arc<Registry>) -> std::io::Result<Self> {
        let clock = Arc::new(Clock { fast_until_ms: AtomicU64::new(0), stop_after_ms: AtomicU64::new(u64::MAX) });
        let c = clock.clone();
        let rest = tick * REST_TICKS;
        let handle = std::thread::Builder::new().name("switchyard-epoch".into()).spawn(move || {
            loop {
                let now = unix_ms();
                if now >= c.stop_after_ms.load(Ordering::Relaxed) {
                    return;
                }
                if now < c.fast_until_ms.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                } else {
                    // `hurry` unparks: the slow call gets its next tick at once.
                    std::thread::park_timeout(rest);
                }
                engine.increment_epoch();
                registry.metrics.epoch_ticks_total.inc();
            }
        })?;
        Ok(Self { thread: handle.thread().clone(), tick, clock })
    }

    /// The full-rate period: the deadline granularity and a slow call's time slice.
    pub fn tick(&self) -> Duration {
        self.tick
    }

    /// A call is slow: tick at full rate from now until [`HOLD`] after this.
    pub fn hurry(&self) {
        let now = unix_ms();
        let until = now + HOLD.as_millis() as u64;
        if self.clock.fast_until_ms.swap(until, Ordering::Relaxed) <= now {
            self.thread.unpark();
        }
    }

    /// Lets the thread exit once the wall clock passes `unix_ms`.
    pub fn stop_after(&self, unix_ms: u64) {
        self.clock.stop_after_ms.store(unix_ms, Ordering::Relaxed);
        self.thread.unpark();
    }
}
