//! What a call's host functions can see: its module (name, grants, penalty) and the state of
//! the call itself, kept in the instance's `Store`.
//!
//! Owns the per-call budget (deadline, sends, bytes), the memory and table limiter, and the
//! module-wide penalty clock. It must never reach a connection except through the delivery
//! seam, and never keep a module version alive (warm instances hold a [`ModuleInfo`], not the
//! compiled module).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use wasmtime::{Memory, ResourceLimiter};

use super::abi::status::{ERR_DENIED, ERR_LIMIT};
use super::manifest::{Capability, Limits, ModuleSpec};
use crate::delivery::{ClientHandle, Delivery, unix_ms};
use crate::metrics::Metrics;

/// How long a module that ran a call into its deadline stays penalized.
pub const PENALTY_MS: u64 = 10_000;

/// What a call's host functions need to know of their module: its name and grants.
#[derive(Debug)]
pub struct ModuleInfo {
    pub name: String,
    pub spec: ModuleSpec,
    /// Unix ms until which this version's slow calls are throttled harder (see `penalize`).
    penalized_until_ms: AtomicU64,
}

impl ModuleInfo {
    pub fn new(name: &str, spec: &ModuleSpec) -> Self {
        Self { name: name.to_string(), spec: spec.clone(), penalized_until_ms: AtomicU64::new(0) }
    }

    /// Called when one of the module's calls ran into its deadline: for [`PENALTY_MS`] its
    /// calls count as slow from their first epoch tick and get a smaller share of the CPU, so a
    /// module that keeps spinning costs its neighbours less.
    pub fn penalize(&self) {
        self.penalized_until_ms.store(unix_ms() + PENALTY_MS, Ordering::Relaxed);
    }

    /// Unix ms until which the module is penalized, if it is now.
    pub fn penalized_until_ms(&self) -> Option<u64> {
        Some(self.penalized_until_ms.load(Ordering::Relaxed)).filter(|&t| t > unix_ms())
    }

    pub fn penalized(&self) -> bool {
        self.penalized_until_ms().is_some()
    }
}

/// When a call starting now must end.
fn deadline_from_now(limits: &Limits) -> Instant {
    Instant::now() + std::time::Duration::from_millis(limits.timeout_ms)
}

/// State of one handler call, kept in its `Store`: dropped with the instance after the event,
/// or (`instance = "reuse"`) reset by [`HostState::begin_call`] for the next one.
pub struct HostState {
    pub client: Arc<ClientHandle>,
    pub delivery: Arc<Delivery>,
    pub module: Arc<ModuleInfo>,
    pub memory: Option<Memory>,
    pub deadline: Instant,
    sends: u32,
    send_bytes: u64,
    /// Set when `memory.grow` was refused by the cap: a later trap is reported as "memory limit".
    pub memory_limit_hit: bool,
    /// Set when a send was refused by the call's budget: the call ends with "send limit".
    pub send_limit_hit: bool,
    memory_cap: usize,
    /// Epoch ticks this call has run through.
    pub ticks: u32,
    /// Set once the call is slow: holds its slow-lane permit until the call ends.
    pub slow_permit: Option<Arc<std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>>>,
    pub wasi: Option<wasmtime_wasi::p1::WasiP1Ctx>,
    pub wasi_out: Option<(wasmtime_wasi::p2::pipe::MemoryOutputPipe, wasmtime_wasi::p2::pipe::MemoryOutputPipe)>,
}

impl HostState {
    pub fn new(client: Arc<ClientHandle>, delivery: Arc<Delivery>, module: Arc<ModuleInfo>) -> Self {
        let limits = &module.spec.limits;
        let deadline = deadline_from_now(limits);
        let memory_cap = (limits.memory_mib as usize).saturating_mul(1024 * 1024);
        let (wasi, wasi_out) = if module.spec.has(Capability::Wasi) {
            let out = wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(64 * 1024);
            let err = wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(64 * 1024);
            // No preopened dirs, no env, no args, no network: only clocks, random and output.
            let ctx = wasmtime_wasi::WasiCtxBuilder::new().stdout(out.clone()).stderr(err.clone()).build_p1();
            (Some(ctx), Some((out, err)))
        } else {
            (None, None)
        };
        Self {
            client,
            delivery,
            module,
            memory: None,
            deadline,
            sends: 0,
            send_bytes: 0,
            memory_limit_hit: false,
            send_limit_hit: false,
            memory_cap,
            ticks: 0,
            slow_permit: None,
            wasi,
            wasi_out,
        }
    }

    /// Readies a kept instance's state for the next event: its caller, a new deadline, a new
    /// send budget, no flags.
    pub fn begin_call(&mut self, client: &Arc<ClientHandle>) {
        if !Arc::ptr_eq(&self.client, client) {
            self.client = client.clone();
        }
        self.deadline = deadline_from_now(&self.module.spec.limits);
        self.sends = 0;
        self.send_bytes = 0;
        self.memory_limit_hit = false;
        self.send_limit_hit = false;
        self.ticks = 0;
        self.slow_permit = None;
    }

    /// Logs what a WASI module printed, prefixed with its name.
    pub fn flush_wasi_output(&self) {
        if let Some((out, err)) = &self.wasi_out {
            for (stream, pipe) in [("stdout", out), ("stderr", err)] {
                let bytes = pipe.contents();
                for line in String::from_utf8_lossy(&bytes).lines().filter(|l| !l.is_empty()) {
                    tracing::info!(target: "switchyard::guest", module = %self.module.name, stream, "{line}");
                }
            }
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.delivery.metrics
    }

    /// Charges one message of `bytes` to the call's budget.
    pub fn charge(&mut self, bytes: usize) -> Result<(), i32> {
        let l = &self.module.spec.limits;
        if self.sends >= l.max_sends || self.send_bytes + bytes as u64 > l.max_send_bytes {
            if !self.send_limit_hit {
                self.send_limit_hit = true;
                self.metrics().send_limit_total.inc();
                tracing::warn!(module = %self.module.name, client = %self.client.id_str, "send budget of one call exhausted");
            }
            return Err(ERR_LIMIT);
        }
        self.sends += 1;
        self.send_bytes += bytes as u64;
        Ok(())
    }

    /// Counts and logs a capability refusal; the status for the guest.
    pub fn deny(&self, what: &str, target: &str) -> i32 {
        self.metrics().capability_denied_total.inc();
        tracing::warn!(module = %self.module.name, client = %self.client.id_str, what, target, "capability denied");
        ERR_DENIED
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_limit_hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= self.module.spec.limits.max_table_elements as usize)
    }

    fn instances(&self) -> usize {
        1
    }
    fn tables(&self) -> usize {
        4
    }
    fn memories(&self) -> usize {
        1
    }
}
