//! The WebAssembly runtime: the live route table and the handler call.
//!
//! Read in lifecycle order, as wasmtime's types go: [`engine`] (one `Engine`, its linkers),
//! [`loader`] (a `Module` checked against [`abi`] and linked into an `InstancePre` per module
//! version), [`reload`] (the route table a manifest describes), [`instance`] (a `Store` and
//! instance per event, or kept warm), [`host`] and [`state`] (what a call may do), [`ticker`]
//! (the epoch and its policy: deadlines, the slow lane). This file owns the table that hot swaps
//! replace atomically and the call itself. It must never block a tokio worker: calls are async
//! wasmtime calls that yield at epoch ticks, and compilation runs on the blocking pool.

pub mod abi;
mod component;
mod engine;
mod error;
pub mod host;
mod instance;
pub mod loader;
pub mod manifest;
mod reload;
pub mod state;
mod ticker;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;
use wasmtime::Store;

use crate::config::RuntimeConfig;
use crate::delivery::{ClientHandle, Delivery, unix_ms};
pub use error::CallError;
use manifest::{InstanceMode, Manifest};
use reload::{LoadPolicy, Plan, RouteTable};
pub use reload::{ModuleStatus, RuntimeStatus};
use state::HostState;
use ticker::Ticker;

/// Longest `last_call_error` kept and logged, bytes.
const MAX_CALL_ERROR_BYTES: usize = 2048;

pub struct Runtime {
    engines: engine::Engines,
    table: ArcSwap<RouteTable>,
    status: Mutex<RuntimeStatus>,
    /// Held while a reload plans or a compile's result is swapped in (never while compiling).
    reloading: Mutex<Reloading>,
    /// Compiles running at once (at least 2: one slow compile leaves room for another).
    compile_slots: Arc<Semaphore>,
    delivery: Arc<Delivery>,
    manifest_path: PathBuf,
    policy: LoadPolicy,
    /// Permits for calls running past their first epoch tick (see [`ticker::install_policy`]).
    slow_lane: Arc<Semaphore>,
    ticker: Arc<Ticker>,
    /// Tells the file watcher to stop; dropped with the runtime, which stops it too.
    stop_signal: tokio::sync::watch::Sender<bool>,
}

/// The reloads in progress: the latest manifest, and the compiles running for it.
#[derive(Default)]
struct Reloading {
    manifest: Option<Arc<Manifest>>,
    /// By module: the version being compiled. A later reload that wants the same version waits
    /// for it; one that wants another replaces it, and the older result is dropped.
    compiles: HashMap<String, Compile>,
    next_id: u64,
}

struct Compile {
    id: u64,
    hash: String,
    spec: manifest::ModuleSpec,
    done: tokio::sync::watch::Receiver<bool>,
}

impl Runtime {
    /// Builds the engine and loads the manifest, compiling its modules in parallel; then, and
    /// only then, starts the epoch ticker. Any error is fatal and names the file, the route and
    /// the fix.
    pub fn new(cfg: &RuntimeConfig, delivery: Arc<Delivery>) -> anyhow::Result<Arc<Self>> {
        let engines = engine::build(cfg)?;
        let manifest = Manifest::load(&cfg.manifest).map_err(|e| anyhow::anyhow!("cannot load handlers:\n  {e}"))?;
        let policy = LoadPolicy::new(cfg);
        let roots = reload::roots(&policy, &manifest);
        let mut errors = Vec::new();
        let mut statuses = Vec::new();
        let mut modules = BTreeMap::new();
        let plans: Vec<(&String, Plan)> = manifest
            .modules
            .iter()
            .map(|(name, spec)| (name, reload::plan(&policy, name, spec, None, &roots)))
            .collect();
        let compiled: Vec<(&String, Result<Arc<loader::LoadedModule>, String>)> = std::thread::scope(|scope| {
            let jobs: Vec<_> = plans
                .into_iter()
                .map(|(name, plan)| match plan {
                    Plan::Compile { bytes, hash } => {
                        let (engines, policy, manifest, metrics) = (&engines, &policy, &manifest, &delivery.metrics);
                        let compile = move || reload::compile(engines, policy, metrics, manifest, name, &bytes, hash);
                        (name, Ok(scope.spawn(compile)))
                    }
                    Plan::Keep(m) => (name, Err(Ok(m))),
                    Plan::Failed(msg) => (name, Err(Err(msg))),
                })
                .collect();
            jobs.into_iter()
                .map(|(name, job)| {
                    let result = match job {
                        Ok(handle) => handle.join().unwrap_or_else(|_| Err("the compile panicked".into())),
                        Err(done) => done,
                    };
                    (name, result)
                })
                .collect()
        });
        for (name, result) in compiled {
            let mut status = reload::status_of(&manifest, name, None);
            match result {
                Ok(m) => {
                    reload::record_loaded(&mut status, &m);
                    modules.insert(name.clone(), m);
                }
                Err(msg) => {
                    reload::record_failed(&mut status, &msg, false);
                    errors.push(msg);
                }
            }
            statuses.push(status);
        }
        let (table, route_errors, _) = reload::assemble(&manifest, modules, &RouteTable::default());
        errors.extend(route_errors);
        if !errors.is_empty() {
            anyhow::bail!("cannot load handlers:\n  {}", errors.join("\n  "));
        }
        let tick = Duration::from_micros(cfg.epoch_tick_us.max(50));
        let ticker = Arc::new(Ticker::spawn(engines.all(), tick, delivery.metrics.clone())?);
        let status =
            RuntimeStatus { manifest: cfg.manifest.display().to_string(), manifest_error: None, modules: statuses };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Arc::new(Self {
            engines,
            table: ArcSwap::from_pointee(table),
            status: Mutex::new(status),
            reloading: Mutex::new(Reloading { manifest: Some(Arc::new(manifest)), ..Reloading::default() }),
            compile_slots: Arc::new(Semaphore::new(cores.max(2))),
            delivery,
            manifest_path: cfg.manifest.clone(),
            policy,
            slow_lane: Arc::new(Semaphore::new(cfg.slow_lane.max(1))),
            ticker,
            stop_signal: tokio::sync::watch::channel(false).0,
        }))
    }

    /// Watches the manifest and modules; on change, reloads off the hot path.
    pub fn watch(self: &Arc<Self>, debounce: Duration) -> anyhow::Result<()> {
        watch::spawn(self, debounce)
    }

    /// Stops the background work: the file watcher at once, the epoch ticker once every call
    /// that may still be running has passed its deadline (so none can spin forever). Dropping
    /// the runtime stops both at once.
    pub fn stop(&self) {
        let longest = self.table.load().modules.values().map(|m| m.spec().limits.timeout_ms).max().unwrap_or(0);
        self.ticker.stop_after(unix_ms() + longest + 1000);
        self.stop_signal.send_replace(true);
    }

    pub(crate) fn stop_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop_signal.subscribe()
    }

    pub fn manifest_path(&self) -> &Path {
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

    /// Reloads the manifest and changed modules. The route table is swapped atomically at
    /// once for what needs no compile (a removed module, a changed route, a failed load), then
    /// again as each changed module's compile ends: modules compile in parallel, each on its own
    /// blocking thread and off every lock, so a slow compile delays no other module's swap
    /// (nor another reload). Events already running finish on the old version. Returns the
    /// status once this reload's compiles are done.
    pub async fn reload(self: &Arc<Self>) -> RuntimeStatus {
        for mut done in self.begin_reload().await {
            let _ = done.wait_for(|d| *d).await;
        }
        self.status()
    }

    /// Starts a reload: plans it, starts its compiles and swaps in what needs none. Returns
    /// then, with what to wait for to see its compiles done (the file watcher does not wait:
    /// the next change must not wait for a slow compile either).
    pub(crate) async fn begin_reload(self: &Arc<Self>) -> Vec<tokio::sync::watch::Receiver<bool>> {
        let rt = self.clone();
        tokio::task::spawn_blocking(move || rt.start_reload()).await.unwrap_or_else(|e| {
            tracing::error!("reload task failed: {e}");
            Vec::new()
        })
    }

    pub fn status(&self) -> RuntimeStatus {
        let mut st = self.status.lock().map(|s| s.clone()).unwrap_or_default();
        let table = self.table.load();
        for m in &mut st.modules {
            let serving = table.modules.get(&m.name);
            m.penalized_until_ms = serving.and_then(|l| l.info.penalized_until_ms());
            let last = serving.and_then(|l| l.last_call_error.lock().ok().and_then(|e| e.clone()));
            (m.last_call_error, m.last_call_error_at) = last.map_or((None, None), |(e, at)| (Some(e), Some(at)));
        }
        st
    }

    /// Plans a reload (reads the manifest and the module files), starts the compiles it needs
    /// and swaps in what needs none. What fails keeps serving its previous version (a bad
    /// manifest, the whole table). Returns what to wait for: the compiles this reload wants.
    fn start_reload(self: &Arc<Self>) -> Vec<tokio::sync::watch::Receiver<bool>> {
        let metrics = &self.delivery.metrics;
        metrics.reload_checks_total.inc();
        let manifest = match Manifest::load(&self.manifest_path) {
            Ok(m) => Arc::new(m),
            Err(e) => {
                tracing::error!("manifest not loaded, previous handlers keep serving: {e}");
                if let Ok(mut st) = self.status.lock() {
                    st.manifest_error = Some(e.to_string());
                }
                metrics.reload_failures_total.inc();
                return Vec::new();
            }
        };
        let mut reloading = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let table = self.table.load_full();
        let old_status: HashMap<String, ModuleStatus> = self
            .status
            .lock()
            .map(|s| s.modules.iter().map(|m| (m.name.clone(), m.clone())).collect())
            .unwrap_or_default();
        let roots = reload::roots(&self.policy, &manifest);
        // A compile for a module the manifest no longer has is dropped when it ends.
        reloading.compiles.retain(|name, _| manifest.modules.contains_key(name));
        let (mut serving, mut statuses, mut waits) = (BTreeMap::new(), Vec::new(), Vec::new());
        for (name, spec) in &manifest.modules {
            let mut status = reload::status_of(&manifest, name, old_status.get(name));
            let prev = table.modules.get(name);
            // Until a new version is ready, the serving one (if any) goes on serving.
            if let Some(p) = prev {
                serving.insert(name.clone(), p.clone());
            }
            match reload::plan(&self.policy, name, spec, prev, &roots) {
                Plan::Keep(_) => {
                    reloading.compiles.remove(name);
                    status.compiling_since = None;
                }
                Plan::Failed(msg) => {
                    reloading.compiles.remove(name);
                    status.compiling_since = None;
                    reload::record_failed(&mut status, &msg, prev.is_some());
                    metrics.reload_failures_total.inc();
                }
                Plan::Compile { bytes, hash } => match reloading.compiles.get(name) {
                    Some(c) if c.hash == hash && c.spec == *spec => waits.push(c.done.clone()),
                    _ => {
                        let (tx, rx) = tokio::sync::watch::channel(false);
                        reloading.next_id += 1;
                        let id = reloading.next_id;
                        let compile = Compile { id, hash: hash.clone(), spec: spec.clone(), done: rx.clone() };
                        reloading.compiles.insert(name.clone(), compile);
                        status.compiling_since = Some(crate::protocol::now_secs());
                        waits.push(rx);
                        let (rt, manifest, name) = (self.clone(), manifest.clone(), name.clone());
                        let slots = self.compile_slots.clone();
                        tokio::spawn(async move {
                            let slot = slots.acquire_owned().await;
                            let _ = tokio::task::spawn_blocking(move || {
                                let metrics = &rt.delivery.metrics;
                                let result =
                                    reload::compile(&rt.engines, &rt.policy, metrics, &manifest, &name, &bytes, hash);
                                drop(slot);
                                rt.finish_compile(&name, id, result);
                            })
                            .await;
                            let _ = tx.send(true);
                        });
                    }
                },
            }
            statuses.push(status);
        }
        if let Ok(mut st) = self.status.lock() {
            st.manifest_error = None;
            st.modules = statuses;
        }
        self.swap(&manifest, serving, &table);
        reloading.manifest = Some(manifest);
        waits
    }

    /// Swaps in (or records the failure of) a compile, if it is still the one wanted: a later
    /// reload may have asked for another version of the module, or dropped it.
    fn finish_compile(&self, name: &str, id: u64, result: Result<Arc<loader::LoadedModule>, String>) {
        let mut reloading = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        if reloading.compiles.get(name).is_none_or(|c| c.id != id) {
            return;
        }
        reloading.compiles.remove(name);
        let Some(manifest) = reloading.manifest.clone() else { return };
        let table = self.table.load_full();
        let mut serving: BTreeMap<String, Arc<loader::LoadedModule>> = table
            .modules
            .iter()
            .filter(|(n, _)| manifest.modules.contains_key(*n))
            .map(|(n, m)| (n.clone(), m.clone()))
            .collect();
        let record = |f: &mut dyn FnMut(&mut ModuleStatus)| {
            if let Ok(mut st) = self.status.lock()
                && let Some(status) = st.modules.iter_mut().find(|m| m.name == name)
            {
                f(status);
            }
        };
        record(&mut |s| s.compiling_since = None);
        match result {
            Ok(m) => {
                record(&mut |s| reload::record_loaded(s, &m));
                serving.insert(name.to_string(), m);
            }
            Err(msg) => {
                record(&mut |s| reload::record_failed(s, &msg, table.modules.contains_key(name)));
                self.delivery.metrics.reload_failures_total.inc();
                return;
            }
        }
        self.swap(&manifest, serving, &table);
    }

    /// Builds the route table over `serving` and swaps it in. Called with `reloading` held, so
    /// swaps never race.
    fn swap(&self, manifest: &Manifest, serving: BTreeMap<String, Arc<loader::LoadedModule>>, old: &RouteTable) {
        let (table, _route_errors, changed) = reload::assemble(manifest, serving, old);
        self.table.store(Arc::new(table));
        if changed {
            self.delivery.metrics.reloads_total.inc();
            tracing::info!("handlers swapped");
        }
    }

    /// The hot path: one event, one instance (fresh, or warm for `instance = "reuse"`), one
    /// call. Replies go straight to the client's queue from the host functions.
    pub async fn call(
        &self,
        client: &Arc<ClientHandle>,
        event: &str,
        data: &str,
        id: Option<&str>,
    ) -> Result<(), CallError> {
        // The route is taken out of the table (one reference count) and the table's guard
        // dropped before any await: a swap meanwhile only retires the old version afterwards.
        let Some(route) = self.table.load().routes.get(event).cloned() else {
            return Err(CallError::UnknownEvent);
        };
        let metrics = &self.delivery.metrics;
        metrics.handler_calls_total.inc();
        let module = &route.module;
        let reuse = module.spec().instance == InstanceMode::Reuse;

        let warm = if reuse { module.warm.take() } else { None };
        let mut inst = match warm {
            Some(mut w) => {
                w.store.data_mut().begin_call(client);
                w
            }
            // Boxed: instantiation's future is the largest part of this one, and without it
            // the boxed call (see `session`) fits glibc's per-thread cache, so a warm call
            // allocates without taking the allocator's shared arena lock.
            None => match Box::pin(instance::instantiate(self.new_store(client, module), &module.code, reuse)).await {
                Ok(inst) => inst,
                Err(err) => return Err(self.failed(err, module, event, client)),
            },
        };
        // Only a frame with an id costs an allocation here.
        inst.store.data_mut().reply_id = id.map(Box::from);
        inst.store.set_epoch_deadline(1);
        if let Some(fuel) = module.spec().limits.fuel {
            let _ = inst.store.set_fuel(fuel);
        }

        let fields: [&[u8]; 4] =
            [event.as_bytes(), data.as_bytes(), client.id_str.as_bytes(), client.identity.user.as_bytes()];
        let result = inst.invoke(route.export, &fields).await;
        inst.store.data_mut().flush_wasi_output();
        let outcome = match result {
            Ok(Ok(())) if inst.store.data().send_limit_hit => {
                let l = &module.spec().limits;
                Err(CallError::SendLimit(l.max_sends, l.max_send_bytes))
            }
            Ok(Ok(())) => Ok(()),
            Ok(Err(status)) => {
                metrics.handler_failures_total.inc();
                Err(CallError::Failed(status))
            }
            Err(e) => Err(instance::classify(&e, inst.store.data())),
        };
        // A trapped, interrupted or limited instance is never reused: its state is suspect.
        if reuse && matches!(outcome, Ok(()) | Err(CallError::Failed(_))) && inst.reset_for_reuse(module.name()).await {
            module.warm.put(inst);
        }
        outcome.map_err(|err| self.failed(err, module, event, client))
    }

    /// A `Store` for one instance: its state, the memory/table limiter and the epoch policy.
    fn new_store(&self, client: &Arc<ClientHandle>, module: &loader::LoadedModule) -> Store<HostState> {
        let state = HostState::new(client.clone(), self.delivery.clone(), module.info.clone());
        let engine = match module.code {
            loader::Code::Core { .. } => &self.engines.engine,
            loader::Code::Component { .. } => &self.engines.component_engine,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| s);
        ticker::install_policy(&mut store, &self.ticker, &self.slow_lane);
        store
    }

    /// Counts and logs a failed call; returns its error for the error frame.
    fn failed(&self, err: CallError, module: &loader::LoadedModule, event: &str, client: &ClientHandle) -> CallError {
        let metrics = &self.delivery.metrics;
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
        // The details may quote the module's name section (function names in a backtrace):
        // one escaped line, so a module cannot forge log lines through them either.
        let mut details = String::new();
        if !state::escape_log_text(&err.to_string(), MAX_CALL_ERROR_BYTES, &mut details) {
            details.push_str("...");
        }
        tracing::warn!(module = %module.name(), event, client = %client.id_str, "{details}");
        if matches!(err, CallError::Trapped(_) | CallError::Timeout | CallError::Fuel | CallError::MemoryLimit)
            && let Ok(mut last) = module.last_call_error.lock()
        {
            *last = Some((details, crate::protocol::now_secs()));
        }
        err
    }
}
