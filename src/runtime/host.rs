//! Host functions: the `switchyard` import namespace of ABI v1, and the per-call state behind it.
//!
//! Owns bounds-checked access to guest memory, capability checks at call time, and the
//! per-call send budget. It must never trap the host on guest input: every bad pointer,
//! length, string or JSON becomes a negative status returned to the guest.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::{Caller, Extern, Linker, Memory, ResourceLimiter};

use super::loader::ModuleInfo;
use super::manifest::Capability;
use crate::metrics::Metrics;
use crate::protocol::{self, ErrorKind};
use crate::registry::{ClientHandle, Registry};

/// Status codes returned to the guest (see `docs/ABI.md`).
pub mod status {
    pub const OK: i32 = 0;
    pub const ERR_BAD_POINTER: i32 = -1;
    pub const ERR_BAD_UTF8: i32 = -2;
    pub const ERR_BAD_JSON: i32 = -3;
    pub const ERR_DENIED: i32 = -4;
    pub const ERR_LIMIT: i32 = -5;
    pub const ERR_INVALID: i32 = -6;
}
use status::*;

/// The import namespace.
pub const NAMESPACE: &str = "switchyard";

/// Every import of ABI v1: name, parameter count (all `i32`, result `i32`), and what grants it.
pub const IMPORTS: &[(&str, usize, Grant)] = &[
    ("send_success", 4, Grant::Always),
    ("send_error", 4, Grant::Always),
    ("send_to_client", 6, Grant::Cap(Capability::SendToClient)),
    ("send_to_user", 6, Grant::Cap(Capability::SendToUser)),
    ("send_to_tag", 6, Grant::Tags),
    ("send_to_all", 4, Grant::Cap(Capability::SendToAll)),
    ("join_tag", 2, Grant::Tags),
    ("quit_tag", 2, Grant::Tags),
    ("tag_members", 4, Grant::Tags),
    ("client_id", 2, Grant::Always),
    ("user_id", 2, Grant::Always),
    ("claims", 2, Grant::Cap(Capability::Claims)),
    ("log", 3, Grant::Always),
];

/// What allows a module to import a host function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Always,
    /// A non-empty `tags = [...]`.
    Tags,
    Cap(Capability),
}

/// When a call starting now must end.
fn deadline_from_now(limits: &super::manifest::Limits) -> Instant {
    Instant::now() + std::time::Duration::from_millis(limits.timeout_ms)
}

/// State of one handler call, kept in its `Store`: dropped with the instance after the event,
/// or (`instance = "reuse"`) reset by [`HostState::begin_call`] for the next one.
pub struct HostState {
    pub client: Arc<ClientHandle>,
    pub registry: Arc<Registry>,
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
    pub fn new(client: Arc<ClientHandle>, registry: Arc<Registry>, module: Arc<ModuleInfo>) -> Self {
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
            registry,
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

    fn metrics(&self) -> &Metrics {
        &self.registry.metrics
    }

    /// Charges one message of `bytes` to the call's budget.
    fn charge(&mut self, bytes: usize) -> Result<(), i32> {
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

    fn deny(&self, what: &str, target: &str) -> i32 {
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

/// Bounds-checked view of guest bytes: `ptr` and `len` are unsigned 32-bit, overflow-checked.
fn slice(mem: &[u8], ptr: i32, len: i32) -> Result<&[u8], i32> {
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    if len == 0 {
        return Ok(&[]);
    }
    let end = ptr.checked_add(len).ok_or(ERR_BAD_POINTER)?;
    mem.get(ptr..end).ok_or(ERR_BAD_POINTER)
}

fn string(mem: &[u8], ptr: i32, len: i32) -> Result<&str, i32> {
    std::str::from_utf8(slice(mem, ptr, len)?).map_err(|_| ERR_BAD_UTF8)
}

/// Optional JSON data: `len == 0` means none; otherwise it must parse.
fn json(mem: &[u8], ptr: i32, len: i32) -> Result<Option<&str>, i32> {
    if len == 0 {
        return Ok(None);
    }
    let s = string(mem, ptr, len).map_err(|e| if e == ERR_BAD_UTF8 { ERR_BAD_JSON } else { e })?;
    serde_json::from_str::<serde::de::IgnoredAny>(s).map_err(|_| ERR_BAD_JSON)?;
    Ok(Some(s))
}

fn tag(mem: &[u8], ptr: i32, len: i32) -> Result<&str, i32> {
    let t = string(mem, ptr, len)?;
    if t.is_empty() || t.len() > crate::registry::MAX_TAG_LEN {
        return Err(ERR_INVALID);
    }
    Ok(t)
}

/// A tag argument the module's `tags` patterns grant; otherwise `ERR_DENIED`, logged.
fn granted_tag<'m>(mem: &'m [u8], st: &HostState, ptr: i32, len: i32, what: &str) -> Result<&'m str, i32> {
    let t = tag(mem, ptr, len)?;
    if !st.module.spec.tag_allowed(t) {
        return Err(st.deny(what, t));
    }
    Ok(t)
}

/// Runs `f` over guest memory and host state; any `Err(status)` is returned to the guest.
fn with_mem(caller: &mut Caller<'_, HostState>, f: impl FnOnce(&mut [u8], &mut HostState) -> Result<i32, i32>) -> i32 {
    let Some(mem) = caller.data().memory else { return ERR_BAD_POINTER };
    let (bytes, state) = mem.data_and_store_mut(caller);
    f(bytes, state).unwrap_or_else(|e| e)
}

/// Writes `value` to a guest buffer if it fits; returns its full length either way.
/// The whole buffer `(buf, cap)` must lie in guest memory, whatever the value's length.
fn write_out(mem: &mut [u8], buf: i32, cap: i32, value: &[u8]) -> Result<i32, i32> {
    let len = i32::try_from(value.len()).map_err(|_| ERR_INVALID)?;
    let (p, c) = (buf as u32 as usize, cap as u32 as usize);
    let end = p.checked_add(c).ok_or(ERR_BAD_POINTER)?;
    let out = mem.get_mut(p..end).ok_or(ERR_BAD_POINTER)?;
    if value.len() <= c {
        out[..value.len()].copy_from_slice(value);
    }
    Ok(len)
}

/// Builds a frame for a send to others, charging the budget.
fn outbound(
    mem: &[u8],
    st: &mut HostState,
    ev: (i32, i32),
    data: (i32, i32),
) -> Result<axum::extract::ws::Utf8Bytes, i32> {
    let event = string(mem, ev.0, ev.1)?;
    let data = json(mem, data.0, data.1)?;
    let frame = protocol::success_frame(event, data);
    st.charge(frame.len())?;
    Ok(frame)
}

fn count(n: usize) -> Result<i32, i32> {
    Ok(i32::try_from(n).unwrap_or(i32::MAX))
}

/// `send_to_client` / `send_to_user`: capability check, one frame, one registry send.
fn send_to_one_target(
    c: &mut Caller<'_, HostState>,
    cap: Capability,
    target: (i32, i32),
    ev: (i32, i32),
    data: (i32, i32),
    send: fn(&Registry, &str, &axum::extract::ws::Utf8Bytes) -> usize,
) -> i32 {
    with_mem(c, |m, st| {
        let target = string(m, target.0, target.1)?;
        if !st.module.spec.has(cap) {
            return Err(st.deny(if cap == Capability::SendToUser { "send_to_user" } else { "send_to_client" }, target));
        }
        let frame = outbound(m, st, ev, data)?;
        count(send(&st.registry, target, &frame))
    })
}

/// Defines every host function in `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    let ns = NAMESPACE;
    linker.func_wrap(ns, "send_success", |mut c: Caller<'_, HostState>, ep: i32, el: i32, dp: i32, dl: i32| {
        with_mem(&mut c, |m, st| {
            let frame = outbound(m, st, (ep, el), (dp, dl))?;
            st.client.send(frame);
            Ok(OK)
        })
    })?;
    linker.func_wrap(ns, "send_error", |mut c: Caller<'_, HostState>, ep: i32, el: i32, mp: i32, ml: i32| {
        with_mem(&mut c, |m, st| {
            let event = string(m, ep, el)?;
            let msg = string(m, mp, ml)?;
            let frame = protocol::error_frame(event, ErrorKind::Handler, msg);
            st.charge(frame.len())?;
            st.client.send(frame);
            Ok(OK)
        })
    })?;
    linker.func_wrap(
        ns,
        "send_to_client",
        |mut c: Caller<'_, HostState>, tp: i32, tl: i32, ep: i32, el: i32, dp: i32, dl: i32| {
            send_to_one_target(&mut c, Capability::SendToClient, (tp, tl), (ep, el), (dp, dl), Registry::send_to_client)
        },
    )?;
    linker.func_wrap(
        ns,
        "send_to_user",
        |mut c: Caller<'_, HostState>, tp: i32, tl: i32, ep: i32, el: i32, dp: i32, dl: i32| {
            send_to_one_target(&mut c, Capability::SendToUser, (tp, tl), (ep, el), (dp, dl), Registry::send_to_user)
        },
    )?;
    linker.func_wrap(
        ns,
        "send_to_tag",
        |mut c: Caller<'_, HostState>, tp: i32, tl: i32, ep: i32, el: i32, dp: i32, dl: i32| {
            with_mem(&mut c, |m, st| {
                let t = granted_tag(m, st, tp, tl, "send_to_tag")?;
                let frame = outbound(m, st, (ep, el), (dp, dl))?;
                count(st.registry.send_to_tag(t, &frame))
            })
        },
    )?;
    linker.func_wrap(ns, "send_to_all", |mut c: Caller<'_, HostState>, ep: i32, el: i32, dp: i32, dl: i32| {
        with_mem(&mut c, |m, st| {
            if !st.module.spec.has(Capability::SendToAll) {
                return Err(st.deny("send_to_all", "*"));
            }
            let frame = outbound(m, st, (ep, el), (dp, dl))?;
            count(st.registry.send_to_all(&frame))
        })
    })?;
    linker.func_wrap(ns, "join_tag", |mut c: Caller<'_, HostState>, tp: i32, tl: i32| {
        with_mem(&mut c, |m, st| {
            let t = granted_tag(m, st, tp, tl, "join_tag")?;
            st.registry.join(&st.client, t).map_err(|_| ERR_LIMIT)?;
            Ok(OK)
        })
    })?;
    linker.func_wrap(ns, "quit_tag", |mut c: Caller<'_, HostState>, tp: i32, tl: i32| {
        with_mem(&mut c, |m, st| {
            let t = granted_tag(m, st, tp, tl, "quit_tag")?;
            st.registry.quit(&st.client, t);
            Ok(OK)
        })
    })?;
    linker.func_wrap(ns, "tag_members", |mut c: Caller<'_, HostState>, tp: i32, tl: i32, bp: i32, bc: i32| {
        with_mem(&mut c, |m, st| {
            let t = granted_tag(m, st, tp, tl, "tag_members")?;
            let members = st.registry.tag_members(t);
            let members: Vec<&str> = members.iter().map(|m| &**m).collect();
            let json = serde_json::to_vec(&members).map_err(|_| ERR_INVALID)?;
            write_out(m, bp, bc, &json)
        })
    })?;
    linker.func_wrap(ns, "client_id", |mut c: Caller<'_, HostState>, bp: i32, bc: i32| {
        with_mem(&mut c, |m, st| {
            let id = st.client.id_str.clone();
            write_out(m, bp, bc, id.as_bytes())
        })
    })?;
    linker.func_wrap(ns, "user_id", |mut c: Caller<'_, HostState>, bp: i32, bc: i32| {
        with_mem(&mut c, |m, st| {
            let user = st.client.identity.user.clone();
            write_out(m, bp, bc, user.as_bytes())
        })
    })?;
    linker.func_wrap(ns, "claims", |mut c: Caller<'_, HostState>, bp: i32, bc: i32| {
        with_mem(&mut c, |m, st| {
            if !st.module.spec.has(Capability::Claims) {
                return Err(st.deny("claims", ""));
            }
            let claims = st.client.identity.claims.clone();
            write_out(m, bp, bc, claims.as_bytes())
        })
    })?;
    linker.func_wrap(ns, "log", |mut c: Caller<'_, HostState>, level: i32, mp: i32, ml: i32| {
        with_mem(&mut c, |m, st| {
            let msg = string(m, mp, ml)?;
            let (module, client) = (&*st.module.name, &*st.client.id_str);
            match level {
                0 => tracing::trace!(target: "switchyard::guest", module, client, "{msg}"),
                1 => tracing::debug!(target: "switchyard::guest", module, client, "{msg}"),
                2 => tracing::info!(target: "switchyard::guest", module, client, "{msg}"),
                3 => tracing::warn!(target: "switchyard::guest", module, client, "{msg}"),
                4 => tracing::error!(target: "switchyard::guest", module, client, "{msg}"),
                _ => return Err(ERR_INVALID),
            }
            Ok(OK)
        })
    })?;
    Ok(())
}

/// Looks up the guest's exported memory once per call (host functions reuse it).
pub fn memory_of(ext: Option<Extern>) -> Option<Memory> {
    ext.and_then(Extern::into_memory)
}
