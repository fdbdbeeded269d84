//! Building a route table from the manifest on disk, beside the one serving.
//!
//! Owns the rules of a load: an unchanged module (same hash, same spec) keeps its compiled
//! version; a module that fails keeps its previous version and records the error; a route
//! whose module cannot serve keeps its previous route. And the bookkeeping operators see
//! (`/admin/modules`). It must never swap the table itself: the runtime decides whether a
//! result is served (at startup, only one without errors).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::abi::HandlerExport;
use super::engine::Engines;
use super::loader::{self, LoadedModule};
use super::manifest::{InstanceMode, Manifest};
use super::state::GuestLogLimits;
use crate::config::RuntimeConfig;
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

/// A table built from a manifest, with what operators see of it.
pub struct Built {
    pub table: RouteTable,
    pub modules: Vec<ModuleStatus>,
    /// Each module or route that could not be served as the manifest says.
    pub errors: Vec<String>,
    /// Modules that failed to load (the reload-failure counter).
    pub failed_modules: u64,
    /// Whether any route now reaches another module version than in `old`.
    pub changed: bool,
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

/// Builds the table `manifest` describes, reusing what `old` already compiled.
pub fn build(
    engines: &Engines,
    policy: &LoadPolicy,
    manifest: &Manifest,
    old: &RouteTable,
    old_status: &[ModuleStatus],
) -> Built {
    let mut old_status: HashMap<&str, &ModuleStatus> = old_status.iter().map(|m| (m.name.as_str(), m)).collect();
    let mut errors = Vec::new();
    let mut modules = BTreeMap::new();
    let mut statuses = Vec::new();
    let mut failed_modules = 0;
    let roots = loader::allowed_roots(manifest.file.parent().unwrap_or(Path::new(".")), &policy.module_dirs);
    for (name, spec) in &manifest.modules {
        let routes = manifest.routes.iter().filter(|r| &r.module == name);
        let exports: Vec<&str> = routes.clone().map(|r| r.export.as_str()).collect();
        let mut status = old_status.remove(name.as_str()).cloned().unwrap_or_default();
        status.name = name.clone();
        status.path = spec.path.display().to_string();
        status.routes = routes.map(|r| r.event.clone()).collect();
        status.instance = spec.instance;
        let prev = old.modules.get(name);
        let loaded = loader::read(spec, &roots).and_then(|(bytes, hash)| {
            if let Some(p) = prev.filter(|p| p.hash == hash && *p.spec() == *spec) {
                return Ok(p.clone());
            }
            if spec.limits.fuel.is_some() && !policy.fuel {
                return Err(format!(
                    "modules.{name}.limits.fuel needs fuel metering: set runtime.fuel = true in the server config"
                ));
            }
            loader::load(engines, name, spec, &bytes, hash, &exports, policy.guest_log).map(Arc::new)
        });
        match loaded {
            Ok(m) => {
                if prev.is_none_or(|p| !Arc::ptr_eq(p, &m)) {
                    status.generation += 1;
                    status.loaded_at = Some(now_secs());
                    status.hash = Some(m.hash.clone());
                    status.kind = m.kind();
                    status.last_error = None;
                    status.last_error_at = None;
                    tracing::info!(module = %name, hash = %&m.hash[..12], generation = status.generation, "module loaded");
                }
                modules.insert(name.clone(), m);
            }
            Err(msg) => {
                let keeps = if prev.is_some() { ", previous version keeps serving" } else { "" };
                tracing::error!(module = %name, "module not loaded{keeps}: {msg}");
                status.last_error = Some(msg.clone());
                status.last_error_at = Some(now_secs());
                errors.push(msg);
                failed_modules += 1;
                if let Some(p) = prev {
                    modules.insert(name.clone(), p.clone());
                }
            }
        }
        statuses.push(status);
    }

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
    Built { table: RouteTable { routes, modules }, modules: statuses, errors, failed_modules, changed }
}
