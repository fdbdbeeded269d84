//! The WebAssembly runtime: one `Engine`, the live route table, and the handler call.
//!
//! Owns the wasmtime lifecycle (`Engine` once, `Module` + `InstancePre` per module version,
//! a `Store` and instance per event), the epoch ticker that enforces deadlines, and the
//! atomic route table that hot swaps replace. It must never block a tokio worker: calls run
//! as async wasmtime calls that yield at every epoch tick, and compilation runs on the
//! blocking pool.

pub mod host;
pub mod loader;
pub mod manifest;
mod ticker;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Serialize;
use wasmtime::{Engine, InstanceAllocationStrategy, Linker, PoolingAllocationConfig, Store, Trap, UpdateDeadline};

use crate::config::RuntimeConfig;
use crate::protocol::ErrorKind;
use crate::registry::{ClientHandle, Registry};
use host::HostState;
use loader::{HandlerExport, HandlerInstance, LoadedModule};
use manifest::{InstanceMode, Manifest};
use ticker::Ticker;

/// One routed event: which module version, which export.
#[derive(Clone)]
struct Route {
    module: Arc<LoadedModule>,
    export: HandlerExport,
}

/// Everything a hot swap replaces at once.
#[derive(Default)]
struct RouteTable {
    routes: HashMap<Box<str>, Route>,
    modules: BTreeMap<String, Arc<LoadedModule>>,
}

/// What `GET /admin/modules` shows of a module.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ModuleStatus {
    pub name: String,
    pub path: String,
    /// sha256 of the serving version.
    pub hash: Option<String>,
    /// Increments at every new version swapped in.
    pub generation: u64,
    /// Unix seconds when the serving version was loaded.
    pub loaded_at: Option<u64>,
    /// The last failed load; the previous version keeps serving.
    pub last_error: Option<String>,
    pub last_error_at: Option<u64>,
    pub routes: Vec<String>,
    /// `fresh` (an instance per event) or `reuse` (warm instances kept between events).
    pub instance: InstanceMode,
    /// Unix ms until which the module's calls are throttled because one ran into its deadline.
    pub penalized_until_ms: Option<u64>,
}

/// What `GET /admin/modules` and `POST /admin/reload` return.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RuntimeStatus {
    pub manifest: String,
    /// The last manifest-level error (parse, unknown module, namespace); the previous table
    /// keeps serving.
    pub manifest_error: Option<String>,
    pub modules: Vec<ModuleStatus>,
}

/// How a handler call ended badly; each becomes an error frame for the caller.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("unknown event")]
    UnknownEvent,
    #[error("handler failed with status {0}")]
    Failed(i32),
    #[error("handler trapped: {0}")]
    Trapped(String),
    #[error("handler timeout")]
    Timeout,
    #[error("handler fuel exhausted")]
    Fuel,
    #[error("memory limit")]
    MemoryLimit,
    #[error("send limit: one call may send {0} messages and {1} bytes")]
    SendLimit(u32, u64),
    #[error("server busy: no handler instance available")]
    Busy,
}

impl CallError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CallError::UnknownEvent => ErrorKind::UnknownEvent,
            CallError::Failed(_) => ErrorKind::HandlerFailed,
            CallError::Trapped(_) => ErrorKind::HandlerTrapped,
            CallError::Timeout | CallError::Fuel => ErrorKind::HandlerTimeout,
            CallError::MemoryLimit => ErrorKind::MemoryLimit,
            CallError::SendLimit(..) => ErrorKind::SendLimit,
            CallError::Busy => ErrorKind::Busy,
        }
    }
}

pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    wasi_linker: Linker<HostState>,
    table: ArcSwap<RouteTable>,
    status: Mutex<RuntimeStatus>,
    reload_lock: tokio::sync::Mutex<()>,
    registry: Arc<Registry>,
    manifest_path: PathBuf,
    fuel: bool,
    /// Permits for calls running past their first epoch tick (see `call`).
    slow_lane: Arc<tokio::sync::Semaphore>,
    /// The epoch ticker: deadlines and the slow lane's time slices.
    ticker: Arc<Ticker>,
    stop_signal: tokio::sync::watch::Sender<bool>,
}

fn unix_now() -> u64 {
    crate::protocol::now_secs()
}

impl Runtime {
    /// Builds the engine and loads the manifest. Any error at startup is fatal and names the
    /// file, the route and the fix.
    pub fn new(cfg: &RuntimeConfig, registry: Arc<Registry>) -> anyhow::Result<Arc<Self>> {
        let mut wcfg = wasmtime::Config::new();
        wcfg.epoch_interruption(true);
        wcfg.consume_fuel(cfg.fuel);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(cfg.max_instances)
            .total_memories(cfg.max_instances)
            .total_tables(cfg.max_instances)
            .total_stacks(cfg.max_instances)
            .max_memory_size((cfg.max_memory_mib as usize) * 1024 * 1024)
            // Reset the start of memory (data, small stacks, the first allocations) with
            // memset and keep it resident, instead of madvise + page faults on every event.
            .pagemap_scan(if cfg.pagemap_scan { wasmtime::Enabled::Auto } else { wasmtime::Enabled::No })
            .linear_memory_keep_resident(cfg.keep_resident_kib * 1024)
            .table_keep_resident(64 * 1024)
            .async_stack_keep_resident(64 * 1024)
            .decommit_batch_size(32);
        wcfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if let Some(dir) = &cfg.cache_dir {
            let dir = std::path::absolute(dir)?;
            let mut cc = wasmtime::CacheConfig::new();
            cc.with_directory(&dir);
            match wasmtime::Cache::new(cc) {
                Ok(cache) => {
                    wcfg.cache(Some(cache));
                }
                Err(e) => tracing::warn!(dir = %dir.display(), "compiled-module cache disabled: {e:#}"),
            }
        }
        let engine = Engine::new(&wcfg)?;

        let mut linker = Linker::new(&engine);
        host::add_to_linker(&mut linker)?;
        let mut wasi_linker = linker.clone();
        wasmtime_wasi::p1::add_to_linker_async(&mut wasi_linker, |s: &mut HostState| {
            s.wasi.as_mut().expect("WASI context exists for every module linked with WASI")
        })?;

        let ticker = Arc::new(Ticker::spawn(
            engine.clone(),
            Duration::from_micros(cfg.epoch_tick_us.max(50)),
            registry.clone(),
        )?);

        let rt = Arc::new(Self {
            engine,
            linker,
            wasi_linker,
            table: ArcSwap::from_pointee(RouteTable::default()),
            status: Mutex::new(RuntimeStatus::default()),
            reload_lock: tokio::sync::Mutex::new(()),
            registry,
            manifest_path: cfg.manifest.clone(),
            fuel: cfg.fuel,
            slow_lane: Arc::new(tokio::sync::Semaphore::new(cfg.slow_lane.max(1))),
            ticker,
            stop_signal: tokio::sync::watch::channel(false).0,
        });
        let errors = rt.load_blocking(true);
        if !errors.is_empty() {
            anyhow::bail!("cannot load handlers:\n  {}", errors.join("\n  "));
        }
        Ok(rt)
    }

    /// Watches the manifest and modules; on change, reloads off the hot path.
    pub fn watch(self: &Arc<Self>, debounce: Duration) -> anyhow::Result<()> {
        watch::spawn(self.clone(), debounce)
    }

    /// Stops the background work: the file watcher at once, the epoch ticker once every call
    /// that may still be running has passed its deadline (so none can spin forever).
    pub fn stop(&self) {
        let longest = self.table.load().modules.values().map(|m| m.spec().limits.timeout_ms).max().unwrap_or(0);
        let until = crate::registry::unix_ms() + longest + 1000;
        self.ticker.stop_after(until);
        self.stop_signal.send_replace(true);
    }

    pub(crate) fn stop_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop_signal.subscribe()
    }

    pub fn manifest_path(&self) -> &std::path::Path {
        &self.manifest_path
    }

    /// Files whose change triggers a reload: the manifest and every module file.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.manifest_path.clone()];
        if let Ok(st) = self.status.lock() {
            files.extend(st.modules.iter().map(|m| PathBuf::from(&m.path)));
        }
        files
    }

    /// Reloads the manifest and changed modules, then swaps the route table atomically.
    /// Events already running finish on the old version. Returns the status afterwards.
    pub async fn reload(self: &Arc<Self>) -> RuntimeStatus {
        let _serial = self.reload_lock.lock().await;
        let rt = self.clone();
        match tokio::task::spawn_blocking(move || rt.load_blocking(false)).await {
            Ok(_) => {}
            Err(e) => tracing::error!("reload task failed: {e}"),
        }
        self.status()
    }

    pub fn status(&self) -> RuntimeStatus {
        let mut st = self.status.lock().map(|s| s.clone()).unwrap_or_default();
        let table = self.table.load();
        for m in &mut st.modules {
            m.penalized_until_ms = table.modules.get(&m.name).and_then(|l| l.info.penalized_until_ms());
        }
        st
    }

    /// Loads everything; returns the errors. At startup any error is fatal; on reload each
    /// failing module keeps its previous version and a failing manifest keeps the whole table.
    fn load_blocking(&self, startup: bool) -> Vec<String> {
        let metrics = &self.registry.metrics;
        if !startup {
            metrics.reload_checks_total.inc();
        }
        let manifest = match Manifest::load(&self.manifest_path) {
            Ok(m) => m,
            Err(e) => {
                let msg = e.to_string();
                tracing::error!("manifest not loaded, previous handlers keep serving: {msg}");
                if let Ok(mut st) = self.status.lock() {
                    st.manifest = self.manifest_path.display().to_string();
                    st.manifest_error = Some(msg.clone());
                }
                metrics.reload_failures_total.inc();
                return vec![msg];
            }
        };
        let old = self.table.load_full();
        let mut old_status: HashMap<String, ModuleStatus> = self
            .status
            .lock()
            .map(|s| s.modules.iter().map(|m| (m.name.clone(), m.clone())).collect())
            .unwrap_or_default();

        let mut errors = Vec::new();
        let mut modules = BTreeMap::new();
        let mut statuses = Vec::new();
        let mut changed = false;
        for (name, spec) in &manifest.modules {
            let exports: Vec<&str> =
                manifest.routes.iter().filter(|r| &r.module == name).map(|r| r.export.as_str()).collect();
            let mut status = old_status.remove(name).unwrap_or_default();
            status.name = name.clone();
            status.path = spec.path.display().to_string();
            status.routes = manifest.routes.iter().filter(|r| &r.module == name).map(|r| r.event.clone()).collect();
            status.instance = spec.instance;
            let prev = old.modules.get(name);
            let loaded = loader::read(spec).and_then(|(bytes, hash)| {
                if let Some(p) = prev.filter(|p| p.hash == hash && *p.spec() == *spec) {
                    return Ok(p.clone());
                }
                if spec.limits.fuel.is_some() && !self.fuel {
                    return Err(format!(
                        "modules.{name}.limits.fuel needs fuel metering: set runtime.fuel = true in the server config"
                    ));
                }
                let linker = if spec.has(manifest::Capability::Wasi) { &self.wasi_linker } else { &self.linker };
                loader::load(&self.engine, linker, name, spec, &bytes, hash, &exports).map(Arc::new)
            });
            match loaded {
                Ok(m) => {
                    if prev.is_none_or(|p| !Arc::ptr_eq(p, &m)) {
                        changed = true;
                        status.generation += 1;
                        status.loaded_at = Some(unix_now());
                        status.hash = Some(m.hash.clone());
                        status.last_error = None;
                        status.last_error_at = None;
                        tracing::info!(module = %name, hash = %&m.hash[..12], generation = status.generation, "module loaded");
                    }
                    modules.insert(name.clone(), m);
                }
                Err(msg) => {
                    tracing::error!(module = %name, "module not loaded{}: {msg}", if prev.is_some() { ", previous version keeps serving" } else { "" });
                    metrics.reload_failures_total.inc();
                    status.last_error = Some(msg.clone());
                    status.last_error_at = Some(unix_now());
                    errors.push(msg);
                    if let Some(p) = prev {
                        modules.insert(name.clone(), p.clone());
                    }
                }
            }
            statuses.push(status);
        }

        let mut routes = HashMap::new();
        for r in &manifest.routes {
            let export = modules.get(&r.module).and_then(|m| m.exports.get(&r.export).map(|e| (m.clone(), *e)));
            match export {
                Some((module, export)) => {
                    routes.insert(r.event.clone().into_boxed_str(), Route { module, export });
                }
                None => {
                    if let Some(prev) = old.routes.get(r.event.as_str()) {
                        routes.insert(r.event.clone().into_boxed_str(), prev.clone());
                    }
                    if modules.contains_key(&r.module) {
                        let msg = format!(
                            "route \"{}\": the serving version of module \"{}\" has no export \"{}\"",
                            r.event, r.module, r.export
                        );
                        tracing::error!("{msg}");
                        errors.push(msg);
                    }
                }
            }
        }
        if startup && !errors.is_empty() {
            return errors;
        }
        changed |= routes.len() != old.routes.len()
            || routes.iter().any(|(k, v)| old.routes.get(k).is_none_or(|o| !Arc::ptr_eq(&o.module, &v.module)));
        self.table.store(Arc::new(RouteTable { routes, modules }));
        if let Ok(mut st) = self.status.lock() {
            st.manifest = self.manifest_path.display().to_string();
            st.manifest_error = None;
            st.modules = statuses;
        }
        if changed && !startup {
            metrics.reloads_total.inc();
            tracing::info!("handlers swapped");
        }
        errors
    }

    /// Whether an event has a route (used to answer unknown events without a call).
    pub fn has_route(&self, event: &str) -> bool {
        self.table.load().routes.contains_key(event)
    }

    /// The hot path: one event, one instance (fresh, or warm for `instance = "reuse"`), one
    /// call. Replies go straight to the client's queue from the host functions.
    pub async fn call(&self, client: &Arc<ClientHandle>, event: &str, data: &str) -> Result<(), CallError> {
        // The table's guard is held for the call instead of cloning the route: a clone is a
        // reference count on the module that every worker bumps on every event. (A hot swap
        // meanwhile is not delayed: arc-swap turns a guard still held into a full reference.)
        let table = self.table.load();
        let Some(route) = table.routes.get(event) else {
            return Err(CallError::UnknownEvent);
        };
        self.registry.metrics.handler_calls_total.inc();
        let module = &route.module;
        let reuse = module.spec().instance == InstanceMode::Reuse;

        let warm = if reuse { module.warm.take() } else { None };
        let mut inst = match warm {
            Some(mut w) => {
                w.store.data_mut().begin_call(client);
                w
            }
            // Boxed: instantiation's future is the largest part of this one, and without it
            // the boxed call (see `session`) fits glibc's per-thread cache (< 1 KiB), so a
            // warm call allocates without taking the allocator's shared arena lock.
            None => match Box::pin(instantiate(self.new_store(client, module), module, reuse)).await {
                Ok(inst) => inst,
                Err(err) => return Err(self.failed(err, module, event, client)),
            },
        };
        inst.store.set_epoch_deadline(1);
        if let Some(fuel) = module.spec().limits.fuel {
            let _ = inst.store.set_fuel(fuel);
        }

        let result = invoke(&mut inst, route, event, data, client).await;
        inst.store.data().flush_wasi_output();
        let outcome = match result {
            Ok(0) if inst.store.data().send_limit_hit => {
                let l = &module.spec().limits;
                Err(CallError::SendLimit(l.max_sends, l.max_send_bytes))
            }
            Ok(0) => Ok(()),
            Ok(status) => {
                self.registry.metrics.handler_failures_total.inc();
                Err(CallError::Failed(status))
            }
            Err(e) => Err(classify(&e, inst.store.data())),
        };
        // A trapped, interrupted or limited instance is never reused: its state is suspect.
        if reuse && matches!(outcome, Ok(()) | Err(CallError::Failed(_))) && reset_for_reuse(module, &mut inst).await {
            module.warm.put(inst);
        }
        outcome.map_err(|err| self.failed(err, module, event, client))
    }

    /// A `Store` for one instance: its state, the memory/table limiter and the epoch policy.
    fn new_store(&self, client: &Arc<ClientHandle>, module: &LoadedModule) -> Store<HostState> {
        let state = HostState::new(client.clone(), self.registry.clone(), module.info.clone());
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| s);
        // Most calls end before an epoch tick and never get here. A call still running at its
        // second tick is slow: from then on it must hold a "slow lane" permit and it pauses one
        // tick after every tick of work, so slow or hostile calls share at most half of
        // `slow_lane` cores and the rest keep serving fast events. At its deadline the call is
        // stopped. While no call is slow the ticker rests (see `ticker`); a slow one wakes it.
        let lane = self.slow_lane.clone();
        let ticker = self.ticker.clone();
        store.epoch_deadline_callback(move |mut ctx| {
            if std::time::Instant::now() >= ctx.data().deadline {
                return Ok(UpdateDeadline::Interrupt);
            }
            ctx.data_mut().ticks += 1;
            // A module that recently ran a call into its deadline is throttled from its first
            // tick: it sleeps PENALTY_SLEEP_TICKS ticks after every tick of work.
            let penalized = ctx.data().module.penalized();
            // A fast call that merely straddles one tick boundary is not slow: let it finish.
            // (Nor is one the OS preempted across ticks: it sees them as one, on resuming.)
            if ctx.data().ticks == 1 && !penalized {
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
        store
    }

    /// Counts and logs a failed call; returns its error for the error frame.
    fn failed(&self, err: CallError, module: &LoadedModule, event: &str, client: &ClientHandle) -> CallError {
        let metrics = &self.registry.metrics;
        match &err {
            CallError::MemoryLimit => metrics.handler_memory_limit_total.inc(),
            CallError::Timeout => {
                metrics.handler_timeouts_total.inc();
                module.info.penalize();
            }
            CallError::Fuel => metrics.handler_timeouts_total.inc(),
            CallError::Trapped(_) => metrics.handler_traps_total.inc(),
            _ => {}
        }
        tracing::warn!(module = %module.name(), event, client = %client.id_str, "{err}");
        err
    }
}

/// Ticks a penalized module's slow call sleeps after each tick of work.
const PENALTY_SLEEP_TICKS: u32 = 4;
/// Events one reused instance serves before it is replaced by a fresh one.
const REUSE_MAX_EVENTS: u32 = 100_000;
/// Wasm pages (64 KiB) a reused instance may grow past its initial memory before it is retired.
const REUSE_MAX_GROWTH: u64 = 16;

/// Runs the module's `switchyard_reset` after an event. False when the instance must be
/// retired instead of parked: the reset failed, the instance has grown its memory by more than
/// [`REUSE_MAX_GROWTH`] pages, or it has served [`REUSE_MAX_EVENTS`] events. (It takes the
/// instance by reference so that its future stays small: see `instantiate` in `call`.)
async fn reset_for_reuse(module: &LoadedModule, inst: &mut HandlerInstance) -> bool {
    inst.events += 1;
    // The loader refuses a reuse module without the export.
    let Some(reset) = &inst.reset else { return false };
    if let Err(e) = reset.call_async(&mut inst.store, ()).await {
        tracing::warn!(module = %module.name(), "switchyard_reset failed, instance retired: {e:#}");
        return false;
    }
    inst.store.data_mut().slow_permit = None;
    inst.events < REUSE_MAX_EVENTS && inst.memory.size(&inst.store) <= inst.initial_pages + REUSE_MAX_GROWTH
}

/// What a trap or an instantiation failure means for the caller.
fn classify(e: &wasmtime::Error, state: &HostState) -> CallError {
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
        CallError::Trapped(trap.map_or_else(|| format!("{e:#}"), |t| t.to_string()))
    }
}

/// Instantiates a module version in `store` and resolves what every call needs; an instance
/// that will be `kept` for later events also gets a slot per handler to cache them in.
async fn instantiate(mut store: Store<HostState>, m: &LoadedModule, kept: bool) -> Result<HandlerInstance, CallError> {
    let resolved = async {
        let instance = m.pre.instantiate_async(&mut store).await?;
        let memory = host::memory_of(instance.get_module_export(&mut store, &m.memory))
            .ok_or_else(|| wasmtime::format_err!("no memory export"))?;
        store.data_mut().memory = Some(memory);
        let alloc = instance
            .get_module_export(&mut store, &m.alloc)
            .and_then(|e| e.into_func())
            .ok_or_else(|| wasmtime::format_err!("no alloc export"))?
            .typed::<i32, i32>(&store)?;
        let reset = match &m.reset {
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
            // Only an instance that is kept has later calls to cache its handlers for.
            let handlers = if kept { vec![None; m.exports.len()] } else { Vec::new() };
            Ok(HandlerInstance { store, instance, memory, alloc, reset, handlers, initial_pages, events: 0 })
        }
        Err(e) => Err(classify(&e, store.data())),
    }
}

/// Writes the request into the instance with one copy and calls the route's export.
async fn invoke(
    inst: &mut HandlerInstance,
    route: &Route,
    event: &str,
    data: &str,
    client: &ClientHandle,
) -> wasmtime::Result<i32> {
    let store = &mut inst.store;
    let handler = match inst.handlers.get_mut(route.export.slot) {
        Some(Some(h)) => h.clone(),
        slot => {
            let h = inst
                .instance
                .get_module_export(&mut *store, &route.export.index)
                .and_then(|e| e.into_func())
                .ok_or_else(|| wasmtime::format_err!("no handler export"))?
                .typed::<(i32, i32), i32>(&*store)?;
            if let Some(slot) = slot {
                *slot = Some(h.clone());
            }
            h
        }
    };

    let (client_id, user) = (client.id_str.as_bytes(), client.identity.user.as_bytes());
    let fields: [&[u8]; 4] = [event.as_bytes(), data.as_bytes(), client_id, user];
    let len: usize = 20 + fields.iter().map(|f| f.len()).sum::<usize>();
    let len_i32 = i32::try_from(len).map_err(|_| wasmtime::format_err!("request too large"))?;
    let ptr = inst.alloc.call_async(&mut *store, len_i32).await?;
    let start = ptr as u32 as usize;
    let buf = start
        .checked_add(len)
        .and_then(|end| inst.memory.data_mut(&mut *store).get_mut(start..end))
        .filter(|_| ptr != 0);
    let Some(buf) = buf else {
        // alloc could not provide the bytes: the guest is out of memory.
        store.data_mut().memory_limit_hit = true;
        wasmtime::bail!("alloc({len}) returned no usable memory");
    };
    buf[..4].copy_from_slice(&1u32.to_le_bytes());
    let mut at = 20;
    for (i, f) in fields.iter().enumerate() {
        buf[4 + i * 4..8 + i * 4].copy_from_slice(&(f.len() as u32).to_le_bytes());
        buf[at..at + f.len()].copy_from_slice(f);
        at += f.len();
    }
    handler.call_async(&mut *store, (ptr, len_i32)).await
}
