//! What a call's host functions can see: its module (name, grants, penalty) and the state of
//! the call itself, kept in the instance's `Store`.
//!
//! Owns the per-call budget (deadline, sends, bytes), the memory and table limiter (with a
//! component instance's pool budget), and the module-wide penalty clock. It must never reach
//! a connection except through the delivery seam, and never keep a module version alive (warm
//! instances hold a [`ModuleInfo`], not the compiled module).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::{Memory, ResourceLimiter};

use super::abi::status::{ERR_BAD_UTF8, ERR_DENIED, ERR_LIMIT};
use super::manifest::{Capability, Limits, ModuleSpec};
use super::wasi::ComponentCtx;
use crate::delivery::{ClientHandle, Delivery, unix_ms};
use crate::metrics::Metrics;
use crate::rate::TokenBucket;

/// Pool budget per component instance: core instances (a componentize-py component has 16,
/// a componentize-js one 5), memories and tables. Each component instance the pool may hold
/// (`runtime.max_component_instances`) adds this much to the core modules' slots, so components
/// never take the slots core modules are sized for.
pub const CORE_INSTANCES_PER_COMPONENT: u32 = 32;
pub const MEMORIES_PER_COMPONENT: u32 = 4;
pub const TABLES_PER_COMPONENT: u32 = 8;

/// How long a module that ran a call into its deadline stays penalized.
pub const PENALTY_MS: u64 = 10_000;

/// What a guest may log (`[runtime] guest_log_*`): the `log` host function and, for WASI
/// modules, each line written to stdout / stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestLogLimits {
    /// Longest message, bytes (after escaping); longer ones are cut and marked.
    pub max_bytes: usize,
    /// Lines one call may log.
    pub per_call: u32,
    /// Lines a module may log per second, all its calls together (with a burst of as many).
    pub per_sec: u32,
}

impl Default for GuestLogLimits {
    fn default() -> Self {
        Self { max_bytes: 1024, per_call: 10, per_sec: 100 }
    }
}

/// What a call's host functions need to know of their module: its name and grants.
#[derive(Debug)]
pub struct ModuleInfo {
    pub name: String,
    /// `name` with control characters escaped, as it starts every line the module logs.
    log_name: String,
    pub spec: ModuleSpec,
    /// Unix ms until which this version's slow calls are throttled harder (see `penalize`).
    penalized_until_ms: AtomicU64,
    log_limits: GuestLogLimits,
    /// The module version's log budget: `per_sec` lines a second, as many in a burst
    /// (`None`: no per-second limit).
    log_bucket: Mutex<Option<TokenBucket>>,
    /// Set once a line of this version was dropped (warned once, then only counted).
    log_dropped: AtomicBool,
}

impl ModuleInfo {
    pub fn new(name: &str, spec: &ModuleSpec, log_limits: GuestLogLimits) -> Self {
        let mut log_name = String::new();
        if !escape_log_text(name, 128, &mut log_name) {
            log_name.push_str("...");
        }
        Self {
            name: name.to_string(),
            log_name,
            spec: spec.clone(),
            penalized_until_ms: AtomicU64::new(0),
            log_limits,
            log_bucket: Mutex::new(TokenBucket::new(log_limits.per_sec, log_limits.per_sec, Instant::now())),
            log_dropped: AtomicBool::new(false),
        }
    }

    /// Takes one line from the module's per-second budget.
    fn take_log_token(&self) -> bool {
        let mut b = self.log_bucket.lock().unwrap_or_else(|e| e.into_inner());
        b.as_mut().is_none_or(|b| b.allow(Instant::now()))
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
    /// The `id` of the client frame being handled (raw JSON), for the handler's replies.
    pub reply_id: Option<Box<str>>,
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
    /// Lines logged by this call (the `per_call` budget).
    logs: u32,
    pub wasi: Option<wasmtime_wasi::p1::WasiP1Ctx>,
    pub wasi_out: Option<(wasmtime_wasi::p2::pipe::MemoryOutputPipe, wasmtime_wasi::p2::pipe::MemoryOutputPipe)>,
    /// A component instance's WASI context and output (`None` for a core module).
    pub component: Option<Box<ComponentCtx>>,
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
            reply_id: None,
            deadline,
            sends: 0,
            send_bytes: 0,
            memory_limit_hit: false,
            send_limit_hit: false,
            memory_cap,
            ticks: 0,
            slow_permit: None,
            logs: 0,
            wasi,
            wasi_out,
            component: None,
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
        self.logs = 0;
    }

    /// Logs one guest line at `level` (0 trace .. 4 error) through the one guest-log path: the
    /// call's and the module's budgets, the length cap, control characters escaped (a guest
    /// can never begin a log line), the module name first. `ERR_LIMIT` when a budget dropped it
    /// (counted in `guest_log_dropped_total`), `ERR_BAD_UTF8` for a message that is not UTF-8.
    pub fn guest_log(&mut self, level: i32, stream: Option<&str>, msg: &[u8]) -> Result<(), i32> {
        let limits = self.module.log_limits;
        // Only what can be shown is looked at: escaping never shortens text.
        let shown = &msg[..msg.len().min(limits.max_bytes)];
        let text = match std::str::from_utf8(shown) {
            Ok(t) => t,
            // A character cut by the cap, not a bad one.
            Err(e) if e.error_len().is_none() && shown.len() < msg.len() => {
                std::str::from_utf8(&shown[..e.valid_up_to()]).map_err(|_| ERR_BAD_UTF8)?
            }
            Err(_) => return Err(ERR_BAD_UTF8),
        };
        if self.logs >= limits.per_call || !self.module.take_log_token() {
            self.metrics().guest_log_dropped_total.inc();
            if !self.module.log_dropped.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    target: "switchyard::guest",
                    client = %self.client.id_str,
                    "{}: guest log lines dropped (limits: {} per call, {} per second; counted in switchyard_guest_log_dropped_total)",
                    self.module.log_name, limits.per_call, limits.per_sec
                );
            }
            return Err(ERR_LIMIT);
        }
        self.logs += 1;
        let mut line = String::with_capacity(self.module.log_name.len() + 2 + text.len());
        line.push_str(&self.module.log_name);
        line.push_str(": ");
        if !escape_log_text(text, limits.max_bytes, &mut line) || text.len() < msg.len() {
            let _ = write!(line, "... [truncated: {} bytes]", msg.len());
        }
        let client = &*self.client.id_str;
        let stream = stream.unwrap_or("log");
        match level {
            0 => tracing::trace!(target: "switchyard::guest", client, stream, "{line}"),
            1 => tracing::debug!(target: "switchyard::guest", client, stream, "{line}"),
            2 => tracing::info!(target: "switchyard::guest", client, stream, "{line}"),
            3 => tracing::warn!(target: "switchyard::guest", client, stream, "{line}"),
            _ => tracing::error!(target: "switchyard::guest", client, stream, "{line}"),
        }
        Ok(())
    }

    /// Logs what a WASI module printed, a line at a time, through [`HostState::guest_log`]
    /// (stdout at info, stderr at warn).
    pub fn flush_wasi_output(&mut self) {
        let Some((out, err)) = self.wasi_out.clone() else { return };
        for (stream, level, pipe) in [("stdout", 2, out), ("stderr", 3, err)] {
            let bytes = pipe.contents();
            for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                // Lines past a budget are dropped and counted, each.
                let _ = self.guest_log(level, Some(stream), String::from_utf8_lossy(line).as_bytes());
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

/// Appends `text` to `out` with every control character escaped (`\n`, `\r`, `\t`, `\u{1b}`, ...),
/// and the Unicode line separators and bidirectional overrides too, so that it can never start
/// a new log line, move a terminal's cursor or reorder what is shown. Stops before `out` would
/// grow by more than `max` bytes; false then (the text was cut).
pub fn escape_log_text(text: &str, max: usize, out: &mut String) -> bool {
    let start = out.len();
    for c in text.chars() {
        let before = out.len();
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
        if out.len() - start > max {
            out.truncate(before);
            return false;
        }
    }
    true
}

impl ResourceLimiter for HostState {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_limit_hit = true;
            return Ok(false);
        }
        self.component_memory(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= self.module.spec.limits.max_table_elements as usize)
    }

    // A core module is one instance; a component links several (the pool's per-component
    // budget, `*_PER_COMPONENT`).
    fn instances(&self) -> usize {
        if self.component.is_some() { CORE_INSTANCES_PER_COMPONENT as usize } else { 1 }
    }
    fn tables(&self) -> usize {
        if self.component.is_some() { TABLES_PER_COMPONENT as usize } else { 4 }
    }
    fn memories(&self) -> usize {
        if self.component.is_some() { MEMORIES_PER_COMPONENT as usize } else { 1 }
    }
}
