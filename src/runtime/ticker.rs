//! The epoch: the engine-wide ticker that lets the host interrupt a running handler, and the
//! policy each call's epoch callback applies (deadline, slow lane, penalty).
//!
//! Owns one OS thread that calls `Engine::increment_epoch`, started with the runtime after its
//! handlers loaded and joined when the runtime is dropped. Every tick runs the epoch callback
//! of each call that is still running ([`install_policy`]), which is where deadlines, the slow
//! lane and yields happen; so the ticker must tick every `tick` while any call is slow. Almost
//! no call is: handlers answer in microseconds, and waking at full rate regardless costs an
//! idle server CPU and preempts busy workers (BENCHMARKS.md). So the ticker *rests* while no call is slow:
//! it ticks once per [`REST_TICKS`] ticks (4 ms with the default 250 µs tick). A call that runs
//! into its second tick is slow, and calls [`Ticker::hurry`], which wakes the ticker and keeps it
//! at full rate until [`HOLD`] after the last slow tick. A spinning handler is therefore caught
//! within two rest periods (8 ms) instead of two ticks, and from then on is treated exactly as
//! before. (A call the OS preempted across several ticks sees them as one when it resumes, so
//! preemption alone does not make a call slow.)
//!
//! It must never take a lock or do work per tick beyond the epoch increment and its counter: it
//! runs beside the hot path on a machine the handlers share.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use tokio::sync::Semaphore;
use wasmtime::{Engine, Store, UpdateDeadline};

use super::state::HostState;
use crate::delivery::unix_ms;
use crate::metrics::Metrics;

/// While no call is slow, the ticker ticks once per this many ticks.
pub const REST_TICKS: u32 = 16;
/// How long the ticker keeps its full rate after the last tick of a slow call.
pub const HOLD: Duration = Duration::from_secs(1);

/// Ticks a penalized module's slow call sleeps after each tick of work.
const PENALTY_SLEEP_TICKS: u32 = 4;

pub struct Ticker {
    thread: Thread,
    handle: Option<JoinHandle<()>>,
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
    /// Starts the ticker thread for `engines` (core modules' and components'); it counts its
    /// ticks in `metrics`. Returns once the thread runs (and so carries its name), so a server
    /// that started has its ticker, not a ticker about to be.
    pub fn spawn(engines: Vec<Engine>, tick: Duration, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let clock = Arc::new(Clock { fast_until_ms: AtomicU64::new(0), stop_after_ms: AtomicU64::new(u64::MAX) });
        let c = clock.clone();
        let rest = tick * REST_TICKS;
        let (running, started) = std::sync::mpsc::sync_channel(0);
        let handle = std::thread::Builder::new().name("switchyard-epoch".into()).spawn(move || {
            let _ = running.send(());
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
                for engine in &engines {
                    engine.increment_epoch();
                }
                metrics.epoch_ticks_total.inc();
            }
        })?;
        let _ = started.recv();
        Ok(Self { thread: handle.thread().clone(), handle: Some(handle), tick, clock })
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

impl Drop for Ticker {
    /// Nothing can call into the engine any more: stop the thread now and wait for it.
    fn drop(&mut self) {
        self.stop_after(0);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Installs the epoch policy on a call's store. Most calls end before an epoch tick and never
/// get here. A call still running at its second tick is slow: from then on it must hold a
/// "slow lane" permit and it pauses one tick after every tick of work, so slow or hostile calls
/// share at most half of `slow_lane` cores and the rest keep serving fast events. At its
/// deadline the call is stopped. While no call is slow the ticker rests; a slow one wakes it.
pub fn install_policy(store: &mut Store<HostState>, ticker: &Arc<Ticker>, slow_lane: &Arc<Semaphore>) {
    let (ticker, lane) = (ticker.clone(), slow_lane.clone());
    store.epoch_deadline_callback(move |mut ctx| {
        if std::time::Instant::now() >= ctx.data().deadline {
            return Ok(UpdateDeadline::Interrupt);
        }
        ctx.data_mut().ticks += 1;
        // A module that recently ran a call into its deadline is throttled from its first
        // tick: it sleeps PENALTY_SLEEP_TICKS ticks after every tick of work.
        let penalized = ctx.data().module.penalized();
        // A fast call that merely straddles one tick boundary is not slow: let it finish.
        // (Nor is one the OS preempted across ticks: it sees them as one, on resuming.) A
        // component's call is not slow within its grace period either: a language runtime's
        // fresh instance takes a millisecond or so (`component::SLOW_AFTER`).
        if !penalized && (ctx.data().ticks == 1 || ctx.data().component_within_grace()) {
            return Ok(UpdateDeadline::Continue(1));
        }
        ticker.hurry();
        let tick = ticker.tick();
        if ctx.data().slow_permit.is_some() {
            // Sleep one tick between ticks of work: a slow call gets at most about half of
            // one core, whatever it does (a penalized one, a fifth).
            let pause = if penalized { tick * PENALTY_SLEEP_TICKS } else { tick };
            return Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::time::sleep(pause))));
        }
        let slot = Arc::new(Mutex::new(None));
        ctx.data_mut().slow_permit = Some(slot.clone());
        let lane = lane.clone();
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(async move {
                if let Ok(permit) = lane.acquire_owned().await {
                    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(permit);
                }
            }),
        ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_ticker_has_stopped_its_thread() {
        let engine = Engine::default();
        let metrics = Arc::new(Metrics::default());
        let ticker = Ticker::spawn(vec![engine], Duration::from_micros(250), metrics.clone()).unwrap();
        let thread = ticker.thread.clone();
        drop(ticker);
        // join() returned in drop: the thread has exited, and no tick follows.
        let ticks = metrics.epoch_ticks_total.get();
        thread.unpark();
        std::thread::yield_now();
        assert_eq!(metrics.epoch_ticks_total.get(), ticks);
    }
}
