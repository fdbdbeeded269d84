//! The route table that serves, and the hot swaps that replace it.
//!
//! Owns the table calls read (one atomic pointer), the status operators see, and the reloads in
//! progress: [`reload`](super::reload)'s steps run here, each changed module's compile on its
//! own blocking thread and off every lock, so a slow compile delays no other module's swap (nor
//! another reload). It must never run a handler, and never hold a lock while compiling.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::{Semaphore, watch};

use super::engine::Engines;
use super::loader::LoadedModule;
use super::manifest::{Manifest, ModuleSpec};
use super::reload::{self, LoadPolicy, ModuleStatus, Plan, Route, RouteTable, RuntimeStatus};
use crate::config::RuntimeConfig;
use crate::metrics::Metrics;

type Compiled = Result<Arc<LoadedModule>, String>;

pub struct Table {
    pub engines: Engines,
    serving: ArcSwap<RouteTable>,
    status: Mutex<RuntimeStatus>,
    /// Held while a reload plans or a compile's result is swapped in (never while compiling).
    reloading: Mutex<Reloading>,
    /// Compiles running at once (at least 2: one slow compile leaves room for another).
    compile_slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    manifest_path: PathBuf,
    policy: LoadPolicy,
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
    spec: ModuleSpec,
    done: watch::Receiver<bool>,
}

impl Table {
    /// Loads the manifest, compiling its modules in parallel. Any error is fatal (nothing
    /// serves yet) and names the file, the route and the fix.
    pub fn load(cfg: &RuntimeConfig, engines: Engines, metrics: Arc<Metrics>) -> anyhow::Result<Arc<Self>> {
        let manifest = Manifest::load(&cfg.manifest).map_err(|e| anyhow::anyhow!("cannot load handlers:\n  {e}"))?;
        let policy = LoadPolicy::new(cfg);
        let roots = reload::roots(&policy, &manifest);
        let compiled: Vec<(&String, Compiled)> = std::thread::scope(|scope| {
            let jobs: Vec<_> = manifest
                .modules
                .iter()
                .map(|(name, spec)| match reload::plan(&policy, name, spec, None, &roots) {
                    Plan::Compile { bytes, hash } => {
                        let (engines, policy, manifest, metrics) = (&engines, &policy, &manifest, &metrics);
                        let compile = move || reload::compile(engines, policy, metrics, manifest, name, &bytes, hash);
                        (name, Ok(scope.spawn(compile)))
                    }
                    Plan::Keep(m) => (name, Err(Ok(m))),
                    Plan::Failed(msg) => (name, Err(Err(msg))),
                })
                .collect();
            let join = |job: Result<std::thread::ScopedJoinHandle<'_, Compiled>, Compiled>| match job {
                Ok(handle) => handle.join().unwrap_or_else(|_| Err("the compile panicked".into())),
                Err(done) => done,
            };
            jobs.into_iter().map(|(name, job)| (name, join(job))).collect()
        });
        let (mut errors, mut statuses, mut modules) = (Vec::new(), Vec::new(), BTreeMap::new());
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
        let (serving, route_errors, _) = reload::assemble(&manifest, modules, &RouteTable::default());
        errors.extend(route_errors);
        if !errors.is_empty() {
            anyhow::bail!("cannot load handlers:\n  {}", errors.join("\n  "));
        }
        let status =
            RuntimeStatus { manifest: cfg.manifest.display().to_string(), manifest_error: None, modules: statuses };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Arc::new(Self {
            engines,
            serving: ArcSwap::from_pointee(serving),
            status: Mutex::new(status),
            reloading: Mutex::new(Reloading { manifest: Some(Arc::new(manifest)), ..Reloading::default() }),
            compile_slots: Arc::new(Semaphore::new(cores.max(2))),
            metrics,
            manifest_path: cfg.manifest.clone(),
            policy,
        }))
    }

    /// The route of `event`, taken out of the table (one reference count, no guard kept: a
    /// swap meanwhile only retires the old version once the caller drops it).
    pub fn route(&self, event: &str) -> Option<Arc<Route>> {
        self.serving.load().routes.get(event).cloned()
    }

    /// The longest call deadline of the modules serving, ms.
    pub fn longest_timeout_ms(&self) -> u64 {
        self.serving.load().modules.values().map(|m| m.spec().limits.timeout_ms).max().unwrap_or(0)
    }

    /// Files whose change triggers a reload: the manifest and every module file.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.manifest_path.clone()];
        if let Ok(st) = self.status.lock() {
            files.extend(st.modules.iter().map(|m| PathBuf::from(&m.path)));
        }
        files
    }

    pub fn status(&self) -> RuntimeStatus {
        let mut st = self.status.lock().map(|s| s.clone()).unwrap_or_default();
        let serving = self.serving.load();
        for m in &mut st.modules {
            let version = serving.modules.get(&m.name);
            m.penalized_until_ms = version.and_then(|l| l.info.penalized_until_ms());
            let last = version.and_then(|l| l.last_call_error.lock().ok().and_then(|e| e.clone()));
            (m.last_call_error, m.last_call_error_at) = last.map_or((None, None), |(e, at)| (Some(e), Some(at)));
        }
        st
    }

    /// Starts a reload on the blocking pool: plans it, starts its compiles and swaps in what
    /// needs none. Returns then, with what to wait for to see its compiles done (the file
    /// watcher does not wait: the next change must not wait for a slow compile either).
    pub async fn begin_reload(self: &Arc<Self>) -> Vec<watch::Receiver<bool>> {
        let table = self.clone();
        tokio::task::spawn_blocking(move || table.start_reload()).await.unwrap_or_else(|e| {
            tracing::error!("reload task failed: {e}");
            Vec::new()
        })
    }

    /// Plans a reload (reads the manifest and the module files), starts the compiles it needs
    /// and swaps in what needs none. What fails keeps serving its previous version (a bad
    /// manifest, the whole table).
    fn start_reload(self: &Arc<Self>) -> Vec<watch::Receiver<bool>> {
        self.metrics.reload_checks_total.inc();
        let manifest = match Manifest::load(&self.manifest_path) {
            Ok(m) => Arc::new(m),
            Err(e) => {
                tracing::error!("manifest not loaded, previous handlers keep serving: {e}");
                if let Ok(mut st) = self.status.lock() {
                    st.manifest_error = Some(e.to_string());
                }
                self.metrics.reload_failures_total.inc();
                return Vec::new();
            }
        };
        let mut reloading = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let table = self.serving.load_full();
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
                    self.metrics.reload_failures_total.inc();
                }
                Plan::Compile { bytes, hash } => match reloading.compiles.get(name) {
                    Some(c) if c.hash == hash && c.spec == *spec => waits.push(c.done.clone()),
                    _ => {
                        reloading.next_id += 1;
                        let id = reloading.next_id;
                        let done = self.spawn_compile(&manifest, name, id, bytes, hash.clone());
                        let compile = Compile { id, hash, spec: spec.clone(), done: done.clone() };
                        reloading.compiles.insert(name.clone(), compile);
                        status.compiling_since = Some(crate::protocol::now_secs());
                        waits.push(done);
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

    /// Compiles a new version of module `name` on the blocking pool, once a compile slot is
    /// free; the receiver turns true when its result was swapped in or dropped.
    fn spawn_compile(
        self: &Arc<Self>,
        manifest: &Arc<Manifest>,
        name: &str,
        id: u64,
        bytes: Vec<u8>,
        hash: String,
    ) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        let (table, manifest, name) = (self.clone(), manifest.clone(), name.to_string());
        tokio::spawn(async move {
            let slot = table.compile_slots.clone().acquire_owned().await;
            let _ = tokio::task::spawn_blocking(move || {
                let (engines, policy, metrics) = (&table.engines, &table.policy, &table.metrics);
                let result = reload::compile(engines, policy, metrics, &manifest, &name, &bytes, hash);
                drop(slot);
                table.finish_compile(&name, id, result);
            })
            .await;
            let _ = tx.send(true);
        });
        rx
    }

    /// Swaps in (or records the failure of) a compile, if it is still the one wanted: a later
    /// reload may have asked for another version of the module, or dropped it.
    fn finish_compile(&self, name: &str, id: u64, result: Compiled) {
        let mut reloading = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        if reloading.compiles.get(name).is_none_or(|c| c.id != id) {
            return;
        }
        reloading.compiles.remove(name);
        let Some(manifest) = reloading.manifest.clone() else { return };
        let table = self.serving.load_full();
        let mut serving: BTreeMap<String, Arc<LoadedModule>> = table
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
                self.metrics.reload_failures_total.inc();
                return;
            }
        }
        self.swap(&manifest, serving, &table);
    }

    /// Builds the route table over `serving` and swaps it in. Called with `reloading` held, so
    /// swaps never race.
    fn swap(&self, manifest: &Manifest, serving: BTreeMap<String, Arc<LoadedModule>>, old: &RouteTable) {
        let (table, _route_errors, changed) = reload::assemble(manifest, serving, old);
        self.serving.store(Arc::new(table));
        if changed {
            self.metrics.reloads_total.inc();
            tracing::info!("handlers swapped");
        }
    }
}
