//! WebAssembly components: handlers of the WIT package `switchyard:handler@1.0.0`
//! (`wit/handler.wit`, docs/ABI.md "The component ABI"), beside core modules.
//!
//! Owns the bindings of the world `full`, the component linker (the host interfaces and the
//! WASI preview 2 subset), the load-time checks (imports against grants, the handler export,
//! the route names `exports()` lists), and an instance's call. The host interfaces are the
//! core ABI's host functions over `string`s: the same checks, frames, budget and delivery
//! seam ([`HostState`]). WASI gives a component clocks, random and stdout/stderr (to the
//! guest log, a line at a time), and nothing else: no preopened directory, no environment,
//! every socket refused (the context itself is [`super::wasi`]'s). It must never hand a
//! component anything its manifest entry does not grant: what it may import is decided here,
//! at load.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::abi::HandlerExport;
use super::abi::status::*;
use super::manifest::{Capability, ModuleSpec};
use super::state::HostState;
use super::wasi::{ComponentCtx, empty_wasi};
use crate::delivery::MAX_TAG_LEN;
use crate::protocol::{self, ErrorKind};

wasmtime::component::bindgen!({
    path: "wit",
    world: "full",
    imports: {
        // These two may wait on the cluster (delivery's join and tag_members are async).
        "switchyard:handler/tags.join-tag": async,
        "switchyard:handler/tags.tag-members": async,
    },
    exports: { default: async },
    ownership: Borrowing { duplicate_if_necessary: true },
});

use exports::switchyard::handler::handler::Guest;
use switchyard::handler::types::{Level, Request, Status};

/// The interface a handler component must export (its version is the ABI marker).
pub const HANDLER_EXPORT: &str = "switchyard:handler/handler@1.0.0";

/// Bytes a reused component instance may grow its largest memory by before it is retired: half
/// the room between its size after instantiation and the `memory_mib` cap, at most this. A
/// language runtime's heap settles after its first events (CPython keeps its arenas, a
/// JavaScript collector grows before it collects), so this is larger than a core module's
/// 1 MiB, and the half leaves the next event room to run before the cap.
const REUSE_MAX_GROWTH_BYTES: usize = 8 * 1024 * 1024;
/// Events one reused instance serves before it is replaced by a fresh one.
const REUSE_MAX_EVENTS: u32 = 100_000;
/// How long a component's call (with its instantiation, for a fresh instance) runs before the
/// epoch policy counts it as slow (a core module's call is slow from its second tick): a
/// language runtime instantiates for longer than a core module, and a kept componentize-js
/// instance collects its garbage now and then inside a call. A spinning component is still
/// caught after this, then throttled and stopped at its deadline like any other
/// (BENCHMARKS.md, "Component handlers", has the pauses measured).
pub const SLOW_AFTER: Duration = Duration::from_millis(20);

/// The WASI interfaces a component may import (any 0.2.x): what componentize-py and
/// componentize-js need. Everything else (`wasi:http`, ...) is refused at load.
const WASI_INTERFACES: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/ip-name-lookup",
];

/// Whether `wasm` (a binary, after WAT parsing) is a component rather than a core module.
pub fn is_component(wasm: &[u8]) -> bool {
    wasmtime::wasmparser::Parser::is_component(wasm)
}

/// The linker every component is linked with: the host interfaces and WASI preview 2 (whose
/// context, built per instance by [`ComponentCtx::new`], opens nothing).
pub fn linker(engine: &Engine) -> anyhow::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Full::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// A compiled, checked, linked component version.
pub struct ComponentCode {
    pre: FullPre<HostState>,
    /// What `exports()` returned at load, by [`HandlerExport::slot`].
    names: Arc<[String]>,
}

/// Compiles and checks a component against the component ABI, its grants and the route
/// names, then links it. Runs the component's `exports()` once, in a store of its own with
/// every import trapping and a deadline, so nothing it does reaches a client or an event.
pub fn load(
    engine: &Engine,
    linker: &Linker<HostState>,
    name: &str,
    spec: &ModuleSpec,
    wasm: &[u8],
    handler_exports: &[&str],
) -> Result<(ComponentCode, HashMap<String, HandlerExport>), String> {
    // Before compiling (seconds for a language runtime): a refusal costs nothing.
    check_imports(&import_names(wasm)?, name, spec)?;
    let component = Component::new(engine, wasm).map_err(|e| format!("does not compile: {e:#}"))?;
    let pre = linker.instantiate_pre(&component).map_err(|e| format!("cannot link: {e:#}"))?;
    let pre = FullPre::new(pre).map_err(|e| {
        format!("is a component but does not export {HANDLER_EXPORT} (exports, handle) as wit/handler.wit says: {e:#}")
    })?;
    let names = handler_names(engine, &component, spec)?;
    let mut handlers = HashMap::new();
    for e in handler_exports {
        let Some(slot) = names.iter().position(|n| n == e) else {
            return Err(format!(
                "component \"{name}\" has no handler \"{e}\" that a route names (its exports() lists {names:?}): add it, or fix the route's export"
            ));
        };
        handlers.insert((*e).to_string(), HandlerExport { index: None, slot });
    }
    Ok((ComponentCode { pre, names: names.into() }, handlers))
}

/// The names the component itself imports (not its nested modules and components).
fn import_names(wasm: &[u8]) -> Result<Vec<String>, String> {
    use wasmtime::wasmparser::{Parser, Payload};
    let (mut depth, mut names) = (0u32, Vec::new());
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| format!("invalid component: {e}"))? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(imports) if depth == 1 => {
                for import in imports {
                    names.push(import.map_err(|e| format!("invalid component import: {e}"))?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(names)
}

/// What a component imports decides what it must be granted: one interface per grant.
fn check_imports(imports: &[String], name: &str, spec: &ModuleSpec) -> Result<(), String> {
    for import in imports {
        let import = import.as_str();
        let (iface, version) = import.split_once('@').unwrap_or((import, ""));
        let missing = match iface.strip_prefix("switchyard:handler/") {
            Some(_) if !version.starts_with("1.") => {
                return Err(format!(
                    "imports {import}; this host provides switchyard:handler version 1 (wit/handler.wit)"
                ));
            }
            Some("types" | "host") => None,
            Some("tags") => spec.tags.is_empty().then(|| format!("tag patterns in modules.{name}.tags")),
            Some(other) => {
                let cap = match other {
                    "send-to-user" => Capability::SendToUser,
                    "send-to-client" => Capability::SendToClient,
                    "send-to-all" => Capability::SendToAll,
                    "claims" => Capability::Claims,
                    _ => {
                        return Err(format!(
                            "imports {import}, which switchyard:handler@1.0.0 does not have (wit/handler.wit)"
                        ));
                    }
                };
                (!spec.has(cap)).then(|| format!("\"{}\" in modules.{name}.capabilities", super::abi::cap_name(cap)))
            }
            None if WASI_INTERFACES.contains(&iface) && version.starts_with("0.2.") => None,
            None => {
                return Err(format!(
                    "imports {import}, which a handler component cannot have: only switchyard:handler and the WASI 0.2 clocks, random, io, cli, filesystem and sockets interfaces are linked (docs/ABI.md){}",
                    if iface.starts_with("wasi:http/") {
                        "; build with componentize-js --disable http fetch-event"
                    } else {
                        ""
                    }
                ));
            }
        };
        if let Some(how) = missing {
            return Err(format!("imports {import}, which module \"{name}\" is not granted: add {how}"));
        }
    }
    Ok(())
}

/// The load-time store: the same empty WASI context as an event's (language runtimes read
/// their environment on their first call), and no host interface.
struct LoadCtx {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for LoadCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Calls `exports()` once in a throwaway instance whose host interfaces all trap (WASI is the
/// events' empty one, its output dropped), within a deadline.
fn handler_names(engine: &Engine, component: &Component, spec: &ModuleSpec) -> Result<Vec<String>, String> {
    let link = |e: wasmtime::Error| format!("cannot link: {e:#}");
    let mut linker = Linker::<LoadCtx>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
    for (import, item) in component.component_type().imports(engine) {
        let (true, ComponentItem::ComponentInstance(ty)) = (import.starts_with("switchyard:handler/"), item.ty) else {
            continue;
        };
        let mut instance = linker.instance(import).map_err(link)?;
        for (func, item) in ty.exports(engine) {
            if let ComponentItem::ComponentFunc(_) = item.ty {
                instance
                    .func_new(func, |_, _, _, _| Err(wasmtime::format_err!("host interfaces cannot be called at load")))
                    .map_err(link)?;
            }
        }
    }
    let pre = linker.instantiate_pre(component).map_err(link)?;
    let pre = FullPre::new(pre).map_err(|e| format!("does not export {HANDLER_EXPORT}: {e:#}"))?;
    let mut store = Store::new(engine, LoadCtx { wasi: empty_wasi().build(), table: ResourceTable::new() });
    // The epoch may not be ticking yet (the server is starting): a watchdog ticks it while
    // this runs, and the callback ends the call once the deadline has passed.
    let deadline = Instant::now() + Duration::from_millis(spec.limits.timeout_ms.max(1000));
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Err(wasmtime::Trap::Interrupt.into())
        } else {
            Ok(wasmtime::UpdateDeadline::Continue(1))
        }
    });
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (engine, done) = (engine.clone(), done.clone());
        std::thread::Builder::new().name("switchyard-load".into()).spawn(move || {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
                engine.increment_epoch();
            }
        })
    };
    let result = block_on(async {
        let instance = pre.instantiate_async(&mut store).await?;
        instance.switchyard_handler_handler().call_exports(&mut store).await
    });
    done.store(true, Ordering::Relaxed);
    if let Ok(w) = watchdog {
        let _ = w.join();
    }
    result.map_err(|e| {
        format!("its exports() (called once at load to list its handlers; host interfaces trap there) failed: {e:#}")
    })
}

/// Runs a future on this thread (the blocking load thread, or startup) to completion.
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => std::thread::park(),
        }
    }
}

// ---- Instances ----

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let c = self.component.as_deref_mut().expect("a component's store has its context");
        WasiCtxView { ctx: &mut c.wasi, table: &mut c.table }
    }
}

/// A component instance, with its handler export resolved.
pub struct ComponentInstance {
    guest: Guest,
    names: Arc<[String]>,
    events: u32,
    /// Its largest memory grown past this size, bytes, it is retired instead of reused.
    retire_at: usize,
}

/// Instantiates a component version in `store`.
pub async fn instantiate(store: &mut Store<HostState>, code: &ComponentCode) -> wasmtime::Result<ComponentInstance> {
    store.data_mut().component = Some(Box::new(ComponentCtx::new()));
    // The store reads its instance, memory and table limits when the limiter is installed:
    // again, now that they are a component's.
    store.limiter(|s| s);
    let full = code.pre.instantiate_async(&mut *store).await?;
    let st = store.data();
    let initial = st.component.as_ref().map_or(0, |c| c.memory_peak);
    let cap = usize::try_from(st.module.spec.limits.memory_mib).unwrap_or(usize::MAX).saturating_mul(1024 * 1024);
    let retire_at = initial + (cap.saturating_sub(initial) / 2).min(REUSE_MAX_GROWTH_BYTES);
    Ok(ComponentInstance {
        guest: full.switchyard_handler_handler().clone(),
        names: code.names.clone(),
        events: 0,
        retire_at,
    })
}

impl ComponentInstance {
    /// Calls `handle(name, request)`; `Err(n)` is the handler's `err(n)`. What the instance
    /// printed goes to the guest log afterwards.
    pub async fn invoke(
        &self,
        store: &mut Store<HostState>,
        export: HandlerExport,
        fields: &[&[u8]; 4],
    ) -> wasmtime::Result<Result<(), i32>> {
        let name = self.names.get(export.slot).map_or("", String::as_str);
        fn text(b: &[u8]) -> wasmtime::Result<&str> {
            std::str::from_utf8(b).map_err(|_| wasmtime::format_err!("request field is not UTF-8"))
        }
        let req = Request {
            event: text(fields[0])?,
            data: text(fields[1])?,
            client_id: text(fields[2])?,
            user_id: text(fields[3])?,
        };
        let result = self.guest.call_handle(&mut *store, name, req).await;
        store.data_mut().flush_component_output();
        result
    }

    /// After an event whose `handle` returned: false when the instance must be retired
    /// instead of kept (it grew its memory too much, or served enough events). A component
    /// needs no reset export: its language runtime frees its own memory.
    pub fn reset_for_reuse(&mut self, store: &mut Store<HostState>) -> bool {
        self.events += 1;
        let st = store.data_mut();
        st.slow_permit = None;
        let peak = st.component.as_ref().map_or(0, |c| c.memory_peak);
        self.events < REUSE_MAX_EVENTS && peak <= self.retire_at
    }
}

impl HostState {
    /// Logs what a component printed during the call, a line at a time, through the guest log
    /// (stdout at info, stderr at warn).
    fn flush_component_output(&mut self) {
        let Some(c) = &self.component else { return };
        let (out, err) = (c.stdout.take(), c.stderr.take());
        for (stream, level, bytes) in [("stdout", 2, out), ("stderr", 3, err)] {
            for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let line = String::from_utf8_lossy(line);
                if self.guest_log(level, Some(stream), line.as_bytes()) == Err(ERR_LIMIT) {
                    return;
                }
            }
        }
    }

    /// Whether this is a component's call still within [`SLOW_AFTER`] of its start.
    pub(super) fn component_within_grace(&self) -> bool {
        if self.component.is_none() {
            return false;
        }
        let timeout = Duration::from_millis(self.module.spec.limits.timeout_ms);
        let started = self.deadline.checked_sub(timeout).unwrap_or(self.deadline);
        started.elapsed() < SLOW_AFTER
    }

    /// Notes a component's memory reaching `size` bytes (the limiter, when it allows a memory's
    /// creation or growth).
    pub(super) fn component_memory(&mut self, size: usize) {
        if let Some(c) = &mut self.component {
            c.memory_peak = c.memory_peak.max(size);
        }
    }
}

// ---- Host interfaces: ABI v1's host functions over strings ----

/// An ABI v1 status as the WIT `status` (case i is code -(i + 1)).
fn status(code: i32) -> Status {
    match code {
        ERR_BAD_POINTER => Status::BadPointer,
        ERR_BAD_UTF8 => Status::BadUtf8,
        ERR_BAD_JSON => Status::BadJson,
        ERR_DENIED => Status::Denied,
        ERR_LIMIT => Status::Limit,
        _ => Status::Invalid,
    }
}

/// `data` as the frame's data: `""` omits it; otherwise it must be one JSON value.
fn json(data: &str) -> Result<Option<&str>, i32> {
    if data.is_empty() {
        return Ok(None);
    }
    serde_json::from_str::<serde::de::IgnoredAny>(data).map_err(|_| ERR_BAD_JSON)?;
    Ok(Some(data))
}

/// A tag the module's `tags` patterns grant; `ERR_INVALID` when empty or too long, else
/// `ERR_DENIED`, logged.
fn granted_tag<'t>(st: &HostState, tag: &'t str, what: &str) -> Result<&'t str, i32> {
    if tag.is_empty() || tag.len() > MAX_TAG_LEN {
        return Err(ERR_INVALID);
    }
    if !st.module.spec.tag_allowed(tag) {
        return Err(st.deny(what, tag));
    }
    Ok(tag)
}

impl HostState {
    /// A success frame, charged to the call's budget: a reply to the caller carries the `id`
    /// of the frame being handled, a send to others none.
    fn success(&mut self, event: &str, data: &str, reply: bool) -> Result<Utf8Bytes, i32> {
        let data = json(data)?;
        let id = if reply { self.reply_id.as_deref() } else { None };
        let frame = protocol::reply(event, data, id);
        self.charge(frame.len())?;
        Ok(frame)
    }

    /// `send_to_user` / `send_to_client`: one frame to one target. The grant was checked at
    /// load (the interface is imported only when granted), and is again here.
    fn send_to_one(&mut self, target: &str, event: &str, data: &str, user: bool) -> Result<u32, Status> {
        let (cap, what) =
            if user { (Capability::SendToUser, "send_to_user") } else { (Capability::SendToClient, "send_to_client") };
        if !self.module.spec.has(cap) {
            return Err(status(self.deny(what, target)));
        }
        // Nobody is addressed by an empty id: guests have no user id, and are not one user.
        if target.is_empty() {
            return Err(Status::Invalid);
        }
        let frame = self.success(event, data, false).map_err(status)?;
        let n = if user {
            self.delivery.send_to_user(target, &frame)
        } else {
            self.delivery.send_to_client(target, &frame)
        };
        Ok(count(n))
    }
}

impl HostState {
    fn spec_has(&self, cap: Capability) -> bool {
        self.module.spec.has(cap)
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl switchyard::handler::types::Host for HostState {}

impl switchyard::handler::host::Host for HostState {
    fn send_success(&mut self, event: String, data: String) -> Result<(), Status> {
        let frame = self.success(&event, &data, true).map_err(status)?;
        self.client.send(frame);
        Ok(())
    }

    fn send_error(&mut self, event: String, msg: String) -> Result<(), Status> {
        let frame = protocol::error_reply(&event, ErrorKind::Handler, &msg, self.reply_id.as_deref());
        self.charge(frame.len()).map_err(status)?;
        self.client.send(frame);
        Ok(())
    }

    fn client_id(&mut self) -> String {
        self.client.id_str.to_string()
    }

    fn user_id(&mut self) -> String {
        self.client.identity.user.to_string()
    }

    fn log(&mut self, level: Level, msg: String) {
        let level = match level {
            Level::Trace => 0,
            Level::Debug => 1,
            Level::Info => 2,
            Level::Warn => 3,
            Level::Error => 4,
        };
        // A line over the budget is dropped and counted; `log` cannot fail in WIT.
        let _ = self.guest_log(level, None, msg.as_bytes());
    }
}

impl switchyard::handler::tags::Host for HostState {
    async fn join_tag(&mut self, tag: String) -> Result<(), Status> {
        granted_tag(self, &tag, "join_tag").map_err(status)?;
        let (delivery, client) = (self.delivery.clone(), self.client.clone());
        delivery.join(&client, &tag).await.map_err(|_| Status::Limit)
    }

    fn quit_tag(&mut self, tag: String) -> Result<(), Status> {
        granted_tag(self, &tag, "quit_tag").map_err(status)?;
        self.delivery.quit(&self.client, &tag);
        Ok(())
    }

    fn send_to_tag(&mut self, tag: String, event: String, data: String) -> Result<u32, Status> {
        granted_tag(self, &tag, "send_to_tag").map_err(status)?;
        let frame = self.success(&event, &data, false).map_err(status)?;
        Ok(count(self.delivery.send_to_tag(&tag, &frame)))
    }

    async fn tag_members(&mut self, tag: String) -> Result<String, Status> {
        granted_tag(self, &tag, "tag_members").map_err(status)?;
        let delivery = self.delivery.clone();
        let members = delivery.tag_members(&tag).await;
        serde_json::to_string(&members).map_err(|_| Status::Invalid)
    }
}

impl switchyard::handler::send_to_user::Host for HostState {
    fn send_to_user(&mut self, user_id: String, event: String, data: String) -> Result<u32, Status> {
        self.send_to_one(&user_id, &event, &data, true)
    }
}

impl switchyard::handler::send_to_client::Host for HostState {
    fn send_to_client(&mut self, client_id: String, event: String, data: String) -> Result<u32, Status> {
        self.send_to_one(&client_id, &event, &data, false)
    }
}

impl switchyard::handler::send_to_all::Host for HostState {
    fn send_to_all(&mut self, event: String, data: String) -> Result<u32, Status> {
        if !self.spec_has(Capability::SendToAll) {
            return Err(status(self.deny("send_to_all", "*")));
        }
        let frame = self.success(&event, &data, false).map_err(status)?;
        Ok(count(self.delivery.send_to_all(&frame)))
    }
}

impl switchyard::handler::claims::Host for HostState {
    fn claims(&mut self) -> String {
        if !self.spec_has(Capability::Claims) {
            self.deny("claims", "");
            return "{}".into();
        }
        self.client.identity.claims.to_string()
    }
}
