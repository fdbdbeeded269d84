//! Building a route table from the manifest on disk, beside the one serving.
//!
//! Owns the rules of a load, in three steps the serving table (`table.rs`) runs: [`plan`]
//! (read and hash a module file: an unchanged module, same hash and same spec, keeps its
//! compiled version), [`compile`] (a new version, slow, run per module on the blocking pool so
//! that one big module never delays another's swap), [`assemble`] (the routes over whatever
//! versions are ready; a route whose module cannot serve keeps its previous route). A module
//! that fails keeps its previous version and records the error. And the bookkeeping operators
//! see (`/admin/modules`). It must never swap the table itself: the serving table decides
//! whether a result is served (at startup, only one without errors).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::abi::HandlerExport;
use super::engine::Engines;
use super::loader::{self, LoadedModule};
use super::manifest::{InstanceMode, Manifest, ModuleSpec};
use super::state::GuestLogLimits;
use crate::config::RuntimeConfig;
use crate::metrics::Metrics;
use crate::protocol::now_secs;

/// One routed event: which module version, which export.
pub struct Route {
    pub module: Arc<LoadedModule>,
    pub export: HandlerExport,
}

/// Everything a hot swap replaces at once.
#[derive(Default)]
pub struct RouteTable {
    pub routes: HashMap<Box<str>, Arc<Route>>,
    pub modules: BTreeMap<String, Arc<LoadedModule>>,
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
    /// `module` (a core module, ABI v1) or `component` (the component ABI) for the serving
    /// version; empty until one loaded.
    pub kind: &'static str,
    /// Unix ms until which the module's calls are throttled because one ran into its deadline.
    pub penalized_until_ms: Option<u64>,
    /// Unix seconds since when a new version of the module is compiling (the serving one
    /// goes on serving meanwhile).
    pub compiling_since: Option<u64>,
    /// The last call of the serving version that trapped, timed out or hit its memory cap:
    /// what the engine said (trap, wasm backtrace; the client only got `handler trapped`).
    pub last_call_error: Option<String>,
    pub last_call_error_at: Option<u64>,
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

/// What the server's `[runtime]` settings say about loading modules.
#[derive(Debug, Clone)]
pub struct LoadPolicy {
    /// Fuel metering is on, so modules may set `limits.fuel`.
    pub fuel: bool,
    pub guest_log: GuestLogLimits,
    /// Folders besides the manifest's where module files may be (`runtime.module_dirs`).
    pub module_dirs: Vec<PathBuf>,
}

impl LoadPolicy {
    pub fn new(cfg: &RuntimeConfig) -> Self {
        let guest_log = GuestLogLimits {
            max_bytes: cfg.guest_log_max_bytes,
            per_call: cfg.guest_log_per_call,
            per_sec: cfg.guest_log_per_sec,
        };
        Self { fuel: cfg.fuel, guest_log, module_dirs: cfg.module_dirs.clone() }
    }
}

/// What a manifest needs done for one module, found by reading its file (fast: no compile).
pub enum Plan {
    /// The serving version is what the file and the manifest entry describe.
    Keep(Arc<LoadedModule>),
    /// A new version to compile, off every lock and beside other modules' compiles.
    Compile { bytes: Vec<u8>, hash: String },
    /// Cannot be loaded (unreadable, outside the allowed folders, over a size limit, ...).
    Failed(String),
}

/// The folders module files of `manifest` may be in.
pub fn roots(policy: &LoadPolicy, manifest: &Manifest) -> Vec<PathBuf> {
    loader::allowed_roots(manifest.file.parent().unwrap_or(Path::new(".")), &policy.module_dirs)
}

/// Reads module `name`'s file and says what to do with it, given its serving version `prev`.
pub fn plan(
    policy: &LoadPolicy,
    name: &str,
    spec: &ModuleSpec,
    prev: Option<&Arc<LoadedModule>>,
    roots: &[PathBuf],
) -> Plan {
    let (bytes, hash) = match loader::read(spec, roots) {
        Ok(read) => read,
        Err(msg) => return Plan::Failed(msg),
    };
    if let Some(p) = prev.filter(|p| p.hash == hash && *p.spec() == *spec) {
        return Plan::Keep(p.clone());
    }
    if spec.limits.fuel.is_some() && !policy.fuel {
        return Plan::Failed(format!(
            "modules.{name}.limits.fuel needs fuel metering: set runtime.fuel = true in the server config"
        ));
    }
    Plan::Compile { bytes, hash }
}

/// Compiles, checks and links a new version of module `name` (slow: seconds for a big one),
/// counted in `metrics.module_versions` while it lives.
pub fn compile(
    engines: &Engines,
    policy: &LoadPolicy,
    metrics: &Arc<Metrics>,
    manifest: &Manifest,
    name: &str,
    bytes: &[u8],
    hash: String,
) -> Result<Arc<LoadedModule>, String> {
    let spec = manifest.modules.get(name).ok_or_else(|| format!("module \"{name}\" left the manifest"))?;
    let exports: Vec<&str> = manifest.routes.iter().filter(|r| r.module == name).map(|r| r.export.as_str()).collect();
    let mut m = loader::load(engines, name, spec, bytes, hash, &exports, policy.guest_log)?;
    m.alive = Some(loader::VersionAlive::new(metrics));
    Ok(Arc::new(m))
}

/// What `/admin/modules` shows of module `name` under `manifest`, carried on from `old`.
pub fn status_of(manifest: &Manifest, name: &str, old: Option<&ModuleStatus>) -> ModuleStatus {
    let mut status = old.cloned().unwrap_or_default();
    status.name = name.to_string();
    if let Some(spec) = manifest.modules.get(name) {
        status.path = spec.path.display().to_string();
        status.instance = spec.instance;
    }
    status.routes = manifest.routes.iter().filter(|r| r.module == name).map(|r| r.event.clone()).collect();
    status
}

/// A new version of the module serves.
pub fn record_loaded(status: &mut ModuleStatus, m: &LoadedModule) {
    status.generation += 1;
    status.loaded_at = Some(now_secs());
    status.hash = Some(m.hash.clone());
    status.kind = m.kind();
    status.last_error = None;
    status.last_error_at = None;
    tracing::info!(module = %m.name(), hash = %&m.hash[..12], generation = status.generation, "module loaded");
}

/// A load failed; the previous version, if any, keeps serving.
pub fn record_failed(status: &mut ModuleStatus, msg: &str, keeps: bool) {
    let keeps = if keeps { ", previous version keeps serving" } else { "" };
    tracing::error!(module = %status.name, "module not loaded{keeps}: {msg}");
    status.last_error = Some(msg.to_string());
    status.last_error_at = Some(now_secs());
}

/// The route table `manifest` describes over `modules` (each module's version to serve; a
/// module missing from it has none yet). A route whose module cannot serve it keeps its route in
/// `old`. Returns the table, the route errors, and whether any route now reaches another
/// module version than in `old`.
pub fn assemble(
    manifest: &Manifest,
    modules: BTreeMap<String, Arc<LoadedModule>>,
    old: &RouteTable,
) -> (RouteTable, Vec<String>, bool) {
    let mut errors = Vec::new();
    let mut routes = HashMap::new();
    for r in &manifest.routes {
        let export = modules.get(&r.module).and_then(|m| m.handler(&r.export).map(|e| (m.clone(), e)));
        match export {
            Some((module, export)) => {
                let same = old
                    .routes
                    .get(r.event.as_str())
                    .filter(|o| Arc::ptr_eq(&o.module, &module) && o.export.slot == export.slot);
                let route = same.cloned().unwrap_or_else(|| Arc::new(Route { module, export }));
                routes.insert(r.event.clone().into_boxed_str(), route);
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
    let changed = routes.len() != old.routes.len()
        || routes.iter().any(|(k, v)| old.routes.get(k).is_none_or(|o| !Arc::ptr_eq(o, v)));
    (RouteTable { routes, modules }, errors, changed)
}
