//! Turning a manifest entry into a ready-to-instantiate module.
//!
//! Owns compilation (through the engine's on-disk cache), the load-time checks of ABI v1
//! (version marker, `memory`, `alloc`, handler signatures), capability checks on imports,
//! the refusal of modules that declare more memory, table or data than their limits, and
//! linking into an `InstancePre`. It must never run guest code.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_utils::CachePadded;
use sha2::{Digest, Sha256};
use wasmtime::{
    Engine, ExternType, Instance, InstancePre, Linker, Memory, Module, ModuleExport, Store, TypedFunc, ValType,
};

use super::host::{Grant, HostState, IMPORTS, NAMESPACE};
use super::manifest::{Capability, InstanceMode, ModuleSpec};
use crate::shard::SHARDS;

/// The ABI-version marker export.
pub const ABI_MARKER: &str = "switchyard_abi_v1";
/// The export a reused instance runs between two events (`instance = "reuse"` only).
pub const RESET_EXPORT: &str = "switchyard_reset";
/// The WASI preview1 import module.
pub const WASI_NAMESPACE: &str = "wasi_snapshot_preview1";
/// Largest module file accepted.
pub const MAX_MODULE_BYTES: usize = 64 * 1024 * 1024;
const WASM_PAGE: u64 = 64 * 1024;

/// What a call's host functions need to know of their module: its name and grants. Kept
/// apart from [`LoadedModule`] so that warm instances (whose `Store` holds this) never keep
/// their own module version alive.
#[derive(Debug)]
pub struct ModuleInfo {
    pub name: String,
    pub spec: ModuleSpec,
    /// Unix ms until which this version's slow calls are throttled harder (see `penalize`).
    penalized_until_ms: AtomicU64,
}

/// How long a module that ran a call into its deadline stays penalized.
pub const PENALTY_MS: u64 = 10_000;

impl ModuleInfo {
    pub fn new(name: &str, spec: &ModuleSpec) -> Self {
        Self { name: name.to_string(), spec: spec.clone(), penalized_until_ms: AtomicU64::new(0) }
    }

    /// Called when one of the module's calls ran into its deadline: for [`PENALTY_MS`] its
    /// calls count as slow from their first epoch tick and get a smaller share of the CPU, so a
    /// module that keeps spinning costs its neighbours less.
    pub fn penalize(&self) {
        self.penalized_until_ms.store(crate::registry::unix_ms() + PENALTY_MS, Ordering::Relaxed);
    }

    /// Unix ms until which the module is penalized, if it is now.
    pub fn penalized_until_ms(&self) -> Option<u64> {
        Some(self.penalized_until_ms.load(Ordering::Relaxed)).filter(|&t| t > crate::registry::unix_ms())
    }

    pub fn penalized(&self) -> bool {
        self.penalized_until_ms().is_some()
    }
}

/// A compiled, validated, linked module version.
pub struct LoadedModule {
    pub info: Arc<ModuleInfo>,
    /// sha256 of the file, hex.
    pub hash: String,
    pub pre: InstancePre<HostState>,
    pub memory: ModuleExport,
    pub alloc: ModuleExport,
    /// `switchyard_reset`, required with `instance = "reuse"`.
    pub reset: Option<ModuleExport>,
    /// Handler exports by name, pre-resolved so a call does no string lookup.
    pub exports: HashMap<String, HandlerExport>,
    /// Idle instances of this version (`instance = "reuse"` only), one pool per thread shard
    /// so that two workers do not take turns on one lock ([`crate::shard`]); dropped with
    /// the version, so a hot swap retires them as soon as the last call on the old version ends.
    pub warm: WarmPool,
}

/// Idle instances kept for reuse, split per thread shard.
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

/// A handler export: where it is in the module, and its slot in every instance's
/// [`HandlerInstance::handlers`].
#[derive(Clone, Copy)]
pub struct HandlerExport {
    pub index: ModuleExport,
    pub slot: usize,
}

/// An instance with what a call needs of it resolved once: used for one event, or kept
/// between events with `instance = "reuse"`.
pub struct HandlerInstance {
    pub store: Store<HostState>,
    pub instance: Instance,
    pub memory: Memory,
    pub alloc: TypedFunc<i32, i32>,
    /// `switchyard_reset`, when the module exports it.
    pub reset: Option<TypedFunc<(), ()>>,
    /// Handler functions by [`HandlerExport::slot`], type-checked on an instance's first call
    /// of each: checking means a look into the engine's shared type registry (a lock and a
    /// reference count), which a warm instance then skips on every later event. Empty for a
    /// fresh instance, which has no later event.
    pub handlers: Vec<Option<TypedFunc<(i32, i32), i32>>>,
    /// Memory pages right after instantiation: an instance that grew much past them is retired.
    pub initial_pages: u64,
    /// Events this instance has served.
    pub events: u32,
}

impl LoadedModule {
    pub fn name(&self) -> &str {
        &self.info.name
    }

    pub fn spec(&self) -> &ModuleSpec {
        &self.info.spec
    }
}

/// Reads a module file and hashes it.
pub fn read(spec: &ModuleSpec) -> Result<(Vec<u8>, String), String> {
    let bytes = std::fs::read(&spec.path).map_err(|e| format!("cannot read {}: {e}", spec.path.display()))?;
    if bytes.len() > MAX_MODULE_BYTES {
        return Err(format!("{} is {} bytes; the limit is {MAX_MODULE_BYTES}", spec.path.display(), bytes.len()));
    }
    let hash = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    Ok((bytes, hash))
}

/// Compiles and checks one module against ABI v1, its grants and its limits, then links it.
/// `handler_exports` are the exports the manifest routes to it.
pub fn load(
    engine: &Engine,
    linker: &Linker<HostState>,
    name: &str,
    spec: &ModuleSpec,
    bytes: &[u8],
    hash: String,
    handler_exports: &[&str],
) -> Result<LoadedModule, String> {
    let path = spec.path.display().to_string();
    let is_text = Path::new(&spec.path).extension().is_some_and(|e| e == "wat");
    let binary;
    let wasm: &[u8] = if is_text {
        binary = wat::parse_bytes(bytes).map_err(|e| format!("{path}: invalid WAT: {e}"))?;
        &binary
    } else {
        bytes
    };
    check_sizes(name, spec, wasm).map_err(|e| format!("{path}: {e}"))?;
    let module = Module::new(engine, wasm).map_err(|e| format!("{path}: does not compile: {e:#}"))?;

    // ABI v1 exports.
    if !matches!(module.get_export(ABI_MARKER), Some(ExternType::Func(_))) {
        return Err(format!(
            "{path}: no \"{ABI_MARKER}\" export: this is not a Switchyard ABI v1 module (see docs/ABI.md; the SDKs add it for you)"
        ));
    }
    if !matches!(module.get_export("memory"), Some(ExternType::Memory(_))) {
        return Err(format!("{path}: must export its linear memory as \"memory\""));
    }
    match module.get_export("alloc") {
        Some(ExternType::Func(f)) if sig_is(&f, 1) => {}
        _ => return Err(format!("{path}: must export \"alloc\" of type (i32) -> i32")),
    }
    let reset = match module.get_export(RESET_EXPORT) {
        Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => {
            module.get_export_index(RESET_EXPORT)
        }
        Some(_) => return Err(format!("{path}: export \"{RESET_EXPORT}\" must be a function () -> ()")),
        None => None,
    };
    if spec.instance == InstanceMode::Reuse && reset.is_none() {
        return Err(format!(
            "{path}: module \"{name}\" has instance = \"reuse\" but no \"{RESET_EXPORT}\" export to run between events: export it (the Rust, C and Zig SDKs do), or use the default instance = \"fresh\""
        ));
    }
    let mut exports = HashMap::new();
    for e in handler_exports {
        match module.get_export(e) {
            Some(ExternType::Func(f)) if sig_is(&f, 2) => {}
            Some(_) => {
                return Err(format!(
                    "{path}: export \"{e}\" of module \"{name}\" must be a function (i32, i32) -> i32"
                ));
            }
            None => {
                return Err(format!(
                    "{path}: module \"{name}\" has no export \"{e}\" that a route names: export it, or fix the route's export"
                ));
            }
        }
        let index = module.get_export_index(e).ok_or("export index")?;
        let slot = exports.len();
        exports.entry((*e).to_string()).or_insert(HandlerExport { index, slot });
    }

    // Imports: deny by default.
    for imp in module.imports() {
        let (ns, field) = (imp.module(), imp.name());
        if ns == WASI_NAMESPACE {
            if !spec.has(Capability::Wasi) {
                return Err(format!(
                    "{path}: imports {ns}::{field} but module \"{name}\" is not granted WASI: add \"wasi\" to modules.{name}.capabilities, or build without WASI"
                ));
            }
            continue;
        }
        let known = if ns == NAMESPACE { IMPORTS.iter().find(|(n, _, _)| *n == field) } else { None };
        let Some((_, params, grant)) = known else {
            return Err(format!(
                "{path}: imports unknown function {ns}::{field}; ABI v1 provides only \"{NAMESPACE}\" functions (docs/ABI.md)"
            ));
        };
        match imp.ty() {
            ExternType::Func(f) if f.params().len() == *params && f.params().all(|p| matches!(p, ValType::I32)) => {}
            _ => {
                return Err(format!(
                    "{path}: import {ns}::{field} must have {params} i32 parameters and an i32 result"
                ));
            }
        }
        let granted = match grant {
            Grant::Always => true,
            Grant::Tags => !spec.tags.is_empty(),
            Grant::Cap(c) => spec.has(*c),
        };
        if !granted {
            let how = match grant {
                Grant::Tags => format!("tag patterns in modules.{name}.tags"),
                Grant::Cap(c) => format!("\"{}\" in modules.{name}.capabilities", cap_name(*c)),
                Grant::Always => unreachable!(),
            };
            return Err(format!("{path}: imports {ns}::{field}, which module \"{name}\" is not granted: add {how}"));
        }
    }

    let pre = linker.instantiate_pre(&module).map_err(|e| format!("{path}: cannot link: {e:#}"))?;
    Ok(LoadedModule {
        info: Arc::new(ModuleInfo::new(name, spec)),
        hash,
        pre,
        memory: module.get_export_index("memory").ok_or("memory index")?,
        alloc: module.get_export_index("alloc").ok_or("alloc index")?,
        reset,
        exports,
        warm: WarmPool::default(),
    })
}

fn cap_name(c: Capability) -> &'static str {
    match c {
        Capability::SendToUser => "send_to_user",
        Capability::SendToClient => "send_to_client",
        Capability::SendToAll => "send_to_all",
        Capability::Claims => "claims",
        Capability::Wasi => "wasi",
    }
}

fn sig_is(f: &wasmtime::FuncType, params: usize) -> bool {
    f.params().len() == params
        && f.params().all(|p| matches!(p, ValType::I32))
        && f.results().len() == 1
        && f.results().all(|r| matches!(r, ValType::I32))
}

/// Refuses, before compiling, modules whose declared memory, tables or data exceed the limits,
/// so nothing is reserved for them.
fn check_sizes(name: &str, spec: &ModuleSpec, wasm: &[u8]) -> Result<(), String> {
    use wasmtime::wasmparser::{Parser, Payload};
    let cap = spec.limits.memory_mib * 1024 * 1024;
    let mut data_bytes: u64 = 0;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| format!("invalid module: {e}"))? {
            Payload::MemorySection(r) => {
                for m in r {
                    let m = m.map_err(|e| format!("invalid memory section: {e}"))?;
                    if m.memory64 || m.shared {
                        return Err("64-bit and shared memories are not supported".into());
                    }
                    let initial = m.initial.saturating_mul(WASM_PAGE);
                    if initial > cap {
                        return Err(format!(
                            "declares {} MiB of initial memory; module \"{name}\" is limited to {} MiB (modules.{name}.limits.memory_mib)",
                            initial / (1024 * 1024),
                            spec.limits.memory_mib
                        ));
                    }
                }
            }
            Payload::TableSection(r) => {
                for t in r {
                    let t = t.map_err(|e| format!("invalid table section: {e}"))?;
                    if t.ty.initial > u64::from(spec.limits.max_table_elements) {
                        return Err(format!(
                            "declares a table of {} elements; the limit is {} (modules.{name}.limits.max_table_elements)",
                            t.ty.initial, spec.limits.max_table_elements
                        ));
                    }
                }
            }
            Payload::DataSection(r) => {
                for d in r {
                    let d = d.map_err(|e| format!("invalid data section: {e}"))?;
                    data_bytes += d.data.len() as u64;
                }
                if data_bytes > cap {
                    return Err(format!(
                        "carries {data_bytes} bytes of data segments, more than its {} MiB memory limit",
                        spec.limits.memory_mib
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}
