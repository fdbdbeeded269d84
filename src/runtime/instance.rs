//! The instance lifecycle: instantiate a module version into a `Store`, write a request and
//! call a handler, reset a kept instance for the next event, and keep idle ones warm.
//!
//! Owns [`Code`] (what a version is instantiated from), [`HandlerInstance`] (an instance with
//! what a call needs resolved once: a core module's here, a component's in
//! [`super::component`]) and the [`WarmPool`] of idle instances of one version. It must
//! never decide routing or policy: the runtime says which module, export and mode; this only
//! runs what it is given.

use std::collections::HashMap;
use std::sync::Mutex;

use crossbeam_utils::CachePadded;
use wasmtime::{Instance, InstancePre, Memory, Store, Trap, TypedFunc};

use super::abi::{self, Exports, HandlerExport};
use super::component::{ComponentCode, ComponentInstance};
use super::error::CallError;
use super::host;
use super::state::HostState;
use crate::shard::SHARDS;

/// Events one reused instance serves before it is replaced by a fresh one.
const REUSE_MAX_EVENTS: u32 = 100_000;
/// Wasm pages (64 KiB) a reused instance may grow past its initial memory before it is retired.
const REUSE_MAX_GROWTH: u64 = 16;

/// What a version is instantiated from: a core module (ABI v1) or a component.
pub enum Code {
    Core { pre: InstancePre<HostState>, exports: Exports },
    Component { code: ComponentCode, handlers: HashMap<String, HandlerExport> },
}

/// An instance with what a call needs of it resolved once: used for one event, or kept
/// between events with `instance = "reuse"`.
pub struct HandlerInstance {
    pub store: Store<HostState>,
    kind: Kind,
}

enum Kind {
    Core(CoreInstance),
    Component(ComponentInstance),
}

/// A core module's instance.
struct CoreInstance {
    instance: Instance,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    /// `switchyard_reset`, when the module exports it.
    reset: Option<TypedFunc<(), ()>>,
    /// Handler functions by [`HandlerExport::slot`], type-checked on an instance's first call
    /// of each: checking looks into the engine's shared type registry (a lock and a reference
    /// count), which a warm instance then skips on every later event. Empty for a fresh
    /// instance, which has no later event.
    handlers: Vec<Option<TypedFunc<(i32, i32), i32>>>,
    /// Memory pages right after instantiation: an instance that grew much past them is retired.
    initial_pages: u64,
    /// Events this instance has served.
    events: u32,
}

/// Idle instances of one module version kept for reuse, split per thread shard so that two
/// workers do not take turns on one lock ([`crate::shard`]). Dropped with the version, so a
/// hot swap retires them as soon as the last call on the old version ends.
pub struct WarmPool([CachePadded<Mutex<Vec<HandlerInstance>>>; SHARDS]);

impl Default for WarmPool {
    fn default() -> Self {
        Self(std::array::from_fn(|_| CachePadded::new(Mutex::new(Vec::new()))))
    }
}

impl WarmPool {
    /// Idle instances kept per thread shard (a worker runs one call at a time unless calls
    /// yield, so a few cover it).
    const MAX_IDLE_PER_SHARD: usize = 4;

    /// An idle instance: this thread's shard first, then any other.
    pub fn take(&self) -> Option<HandlerInstance> {
        let mine = crate::shard::current();
        (0..SHARDS).find_map(|i| self.0[(mine + i) % SHARDS].lock().ok()?.pop())
    }

    /// Keeps an instance in this thread's shard, unless [`WarmPool::MAX_IDLE_PER_SHARD`] are
    /// idle there already (then it is dropped: retired).
    pub fn put(&self, inst: HandlerInstance) {
        if let Ok(mut idle) = self.0[crate::shard::current()].lock()
            && idle.len() < Self::MAX_IDLE_PER_SHARD
        {
            idle.push(inst);
        }
    }
}

/// What a trap or an instantiation failure means for the caller.
pub fn classify(e: &wasmtime::Error, state: &HostState) -> CallError {
    let trap = e.downcast_ref::<Trap>().copied();
    if state.memory_limit_hit {
        CallError::MemoryLimit
    } else if trap == Some(Trap::Interrupt) {
        CallError::Timeout
    } else if trap == Some(Trap::OutOfFuel) {
        CallError::Fuel
    } else if trap == Some(Trap::StackOverflow) {
        CallError::Trapped("stack overflow".into())
    } else if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() {
        CallError::Busy
    } else {
        // With the wasm backtrace: for the log and `/admin/modules`, never the client.
        CallError::Trapped(format!("{e:#}"))
    }
}

/// Instantiates a module version (`code`) in `store` and resolves what every call needs; an
/// instance that will be `kept` for later events also gets a slot per handler to cache them in.
pub async fn instantiate(mut store: Store<HostState>, code: &Code, kept: bool) -> Result<HandlerInstance, CallError> {
    let (pre, exports) = match code {
        Code::Core { pre, exports } => (pre, exports),
        Code::Component { code, .. } => {
            return match super::component::instantiate(&mut store, code).await {
                Ok(c) => Ok(HandlerInstance { store, kind: Kind::Component(c) }),
                Err(e) => Err(classify(&e, store.data())),
            };
        }
    };
    instantiate_core(store, pre, exports, kept).await
}

async fn instantiate_core(
    mut store: Store<HostState>,
    pre: &InstancePre<HostState>,
    exports: &Exports,
    kept: bool,
) -> Result<HandlerInstance, CallError> {
    let resolved = async {
        let instance = pre.instantiate_async(&mut store).await?;
        let memory = host::memory_of(instance.get_module_export(&mut store, &exports.memory))
            .ok_or_else(|| wasmtime::format_err!("no memory export"))?;
        store.data_mut().memory = Some(memory);
        let alloc = instance
            .get_module_export(&mut store, &exports.alloc)
            .and_then(|e| e.into_func())
            .ok_or_else(|| wasmtime::format_err!("no alloc export"))?
            .typed::<i32, i32>(&store)?;
        let reset = match &exports.reset {
            Some(r) => instance.get_module_export(&mut store, r).and_then(|e| e.into_func()).map(|f| f.typed(&store)),
            None => None,
        }
        .transpose()?;
        wasmtime::Result::Ok((instance, memory, alloc, reset))
    }
    .await;
    match resolved {
        Ok((instance, memory, alloc, reset)) => {
            let initial_pages = memory.size(&store);
            let handlers = if kept { vec![None; exports.handlers.len()] } else { Vec::new() };
            let core = CoreInstance { instance, memory, alloc, reset, handlers, initial_pages, events: 0 };
            Ok(HandlerInstance { store, kind: Kind::Core(core) })
        }
        Err(e) => Err(classify(&e, store.data())),
    }
}

impl HandlerInstance {
    /// Calls the handler: `Ok(Err(n))` when it returned status `n` (a component's `err(n)`).
    pub async fn invoke(&mut self, export: HandlerExport, fields: &[&[u8]; 4]) -> wasmtime::Result<Result<(), i32>> {
        match &mut self.kind {
            Kind::Core(core) => {
                core.invoke(&mut self.store, export, fields).await.map(|s| if s == 0 { Ok(()) } else { Err(s) })
            }
            Kind::Component(c) => c.invoke(&mut self.store, export, fields).await,
        }
    }

    /// After an event whose handler returned: readies the instance for the next one. False
    /// when it must be retired instead of kept. (By reference, so that the call's future stays
    /// small.)
    pub async fn reset_for_reuse(&mut self, module: &str) -> bool {
        match &mut self.kind {
            Kind::Core(core) => core.reset_for_reuse(&mut self.store, module).await,
            Kind::Component(c) => c.reset_for_reuse(&mut self.store),
        }
    }
}

impl CoreInstance {
    /// Writes the request into the instance with one copy and calls the handler export.
    async fn invoke(
        &mut self,
        store: &mut Store<HostState>,
        export: HandlerExport,
        fields: &[&[u8]; 4],
    ) -> wasmtime::Result<i32> {
        let handler = match self.handlers.get_mut(export.slot) {
            Some(Some(h)) => h.clone(),
            slot => {
                let index = export.index.ok_or_else(|| wasmtime::format_err!("no handler export"))?;
                let h = self
                    .instance
                    .get_module_export(&mut *store, &index)
                    .and_then(|e| e.into_func())
                    .ok_or_else(|| wasmtime::format_err!("no handler export"))?
                    .typed::<(i32, i32), i32>(&*store)?;
                if let Some(slot) = slot {
                    *slot = Some(h.clone());
                }
                h
            }
        };
        let len = abi::request_len(fields);
        let len_i32 = i32::try_from(len).map_err(|_| wasmtime::format_err!("request too large"))?;
        let ptr = self.alloc.call_async(&mut *store, len_i32).await?;
        let start = ptr as u32 as usize;
        let buf = start
            .checked_add(len)
            .and_then(|end| self.memory.data_mut(&mut *store).get_mut(start..end))
            .filter(|_| ptr != 0);
        let Some(buf) = buf else {
            // alloc could not provide the bytes: the guest is out of memory.
            store.data_mut().memory_limit_hit = true;
            wasmtime::bail!("alloc({len}) returned no usable memory");
        };
        abi::write_request(buf, fields);
        handler.call_async(&mut *store, (ptr, len_i32)).await
    }

    /// Runs the module's `switchyard_reset` after an event. False when the instance must be
    /// retired instead of kept: the reset failed, the instance has grown its memory by more
    /// than [`REUSE_MAX_GROWTH`] pages, or it has served [`REUSE_MAX_EVENTS`] events.
    async fn reset_for_reuse(&mut self, store: &mut Store<HostState>, module: &str) -> bool {
        self.events += 1;
        // The loader refuses a reuse module without the export.
        let Some(reset) = &self.reset else { return false };
        if let Err(e) = reset.call_async(&mut *store, ()).await {
            tracing::warn!(module, "switchyard_reset failed, instance retired: {e:#}");
            return false;
        }
        store.data_mut().slow_permit = None;
        self.events < REUSE_MAX_EVENTS && self.memory.size(&*store) <= self.initial_pages + REUSE_MAX_GROWTH
    }
}
