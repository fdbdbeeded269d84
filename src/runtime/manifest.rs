//! The handler manifest: which modules exist, what each may do, and which event goes where.
//!
//! Owns parsing and the checks that need no compiled module (unknown modules, duplicate
//! events, routes outside a module's prefixes). It must never compile or instantiate
//! anything; module-level checks live in `runtime::loader`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A grant in `capabilities = [...]`. Tags are granted by `tags = [...]` patterns instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    SendToUser,
    SendToClient,
    SendToAll,
    Claims,
    Wasi,
}

/// Per-module limits. Every field has a safe default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Linear memory cap, MiB.
    pub memory_mib: u64,
    /// Wall-clock deadline per call, milliseconds.
    pub timeout_ms: u64,
    /// Messages one call may send (replies included).
    pub max_sends: u32,
    /// Bytes one call may send (replies included).
    pub max_send_bytes: u64,
    /// Optional deterministic instruction budget (needs `runtime.fuel = true`).
    pub fuel: Option<u64>,
    /// Table elements (function pointers) a module may have.
    pub max_table_elements: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_mib: 16,
            timeout_ms: 100,
            max_sends: 1000,
            max_send_bytes: 1024 * 1024,
            fuel: None,
            max_table_elements: 10_000,
        }
    }
}

/// How a module's instances are used across events (`instance = "..."`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceMode {
    /// A fresh instance per event, discarded afterwards: nothing an event leaves in memory or
    /// globals is seen by any later event or user. The default, and the only safe choice for
    /// third-party addons.
    #[default]
    Fresh,
    /// Instances are kept warm and reused by later events (from any client), after the
    /// module's `switchyard_reset` export has run. Faster (no instantiation or memory reset per
    /// event), but whatever the module keeps in memory is visible to later events and users:
    /// only for modules you trust to be stateless. An instance that trapped, timed out or hit
    /// a limit is never reused.
    Reuse,
}

/// `[modules.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleSpec {
    /// `.wasm` or `.wat`, relative to the manifest's folder.
    pub path: PathBuf,
    /// Events this module may own. Default: `["NAME/"]`.
    #[serde(default)]
    pub prefixes: Option<Vec<String>>,
    /// Tag patterns it may join, quit, send to and list (`"chat:*"`).
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    #[serde(default)]
    pub limits: Limits,
    /// Fresh instance per event (default) or warm instances reused across events.
    #[serde(default)]
    pub instance: InstanceMode,
}

/// `[[routes]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub event: String,
    pub module: String,
    pub export: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    #[serde(default)]
    modules: BTreeMap<String, ModuleSpec>,
    #[serde(default)]
    routes: Vec<RouteSpec>,
}

/// A parsed, cross-checked manifest. Module paths are resolved against its folder.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub file: PathBuf,
    pub modules: BTreeMap<String, ModuleSpec>,
    pub routes: Vec<RouteSpec>,
}

/// Built-in events the host answers itself; no route may take them.
pub const RESERVED_EVENTS: &[&str] = &["ping", "join", "quit"];

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{file}: cannot read: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{file}: {source}")]
    Parse { file: String, source: Box<toml::de::Error> },
    #[error("{file}: {msg}")]
    Invalid { file: String, msg: String },
}

impl ModuleSpec {
    /// The prefixes in force (the declared ones, or `NAME/`).
    pub fn prefixes(&self, name: &str) -> Vec<String> {
        self.prefixes.clone().unwrap_or_else(|| vec![format!("{name}/")])
    }

    pub fn has(&self, cap: Capability) -> bool {
        self.capabilities.contains(&cap)
    }

    /// Whether a tag matches one of the module's patterns.
    pub fn tag_allowed(&self, tag: &str) -> bool {
        self.tags.iter().any(|p| tag_matches(p, tag))
    }
}

/// `"chat:*"` matches tags starting with `chat:`; `"*"` matches all; anything else is exact.
pub fn tag_matches(pattern: &str, tag: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => tag.starts_with(prefix),
        None => pattern == tag,
    }
}

fn event_in_prefix(event: &str, prefix: &str) -> bool {
    event == prefix || event.starts_with(prefix)
}

impl Manifest {
    pub fn load(file: &Path) -> Result<Self, ManifestError> {
        let name = file.display().to_string();
        let text =
            std::fs::read_to_string(file).map_err(|source| ManifestError::Read { file: name.clone(), source })?;
        let parsed: ManifestFile =
            toml::from_str(&text).map_err(|e| ManifestError::Parse { file: name.clone(), source: Box::new(e) })?;
        let base = file.parent().unwrap_or(Path::new("."));
        let invalid = |msg: String| ManifestError::Invalid { file: name.clone(), msg };

        let mut modules = parsed.modules;
        for (mname, spec) in modules.iter_mut() {
            if spec.path.is_relative() {
                spec.path = base.join(&spec.path);
            }
            if spec.limits.memory_mib == 0 || spec.limits.timeout_ms == 0 {
                return Err(invalid(format!(
                    "modules.{mname}.limits: memory_mib and timeout_ms must be greater than 0"
                )));
            }
            if spec.instance == InstanceMode::Reuse && spec.has(Capability::Wasi) {
                return Err(invalid(format!(
                    "modules.{mname}: instance = \"reuse\" cannot be combined with the \"wasi\" capability (WASI state lives in the instance): remove one of them"
                )));
            }
            if spec.prefixes(mname).iter().any(String::is_empty) {
                return Err(invalid(format!(
                    "modules.{mname}.prefixes: an empty prefix would let the module own every event; name its events' prefix"
                )));
            }
        }
        // Namespaces must not overlap, or one addon could take over another's events.
        let claimed: Vec<(String, String)> =
            modules.iter().flat_map(|(m, s)| s.prefixes(m).into_iter().map(move |p| (m.clone(), p))).collect();
        for (i, (ma, pa)) in claimed.iter().enumerate() {
            for (mb, pb) in &claimed[i + 1..] {
                if ma != mb && (pa.starts_with(pb.as_str()) || pb.starts_with(pa.as_str())) {
                    return Err(invalid(format!(
                        "modules \"{ma}\" ({pa:?}) and \"{mb}\" ({pb:?}) claim overlapping event prefixes: give each module its own namespace"
                    )));
                }
            }
        }
        let mut seen = HashSet::new();
        for r in &parsed.routes {
            let Some(spec) = modules.get(&r.module) else {
                return Err(invalid(format!(
                    "route \"{}\" names module \"{}\", which is not declared: add [modules.{}] or fix the route",
                    r.event, r.module, r.module
                )));
            };
            if r.event.is_empty() {
                return Err(invalid("a route has an empty event name".into()));
            }
            if RESERVED_EVENTS.contains(&r.event.as_str()) {
                return Err(invalid(format!(
                    "route \"{}\" takes a built-in event the host answers itself; pick another name",
                    r.event
                )));
            }
            if !seen.insert(r.event.as_str()) {
                return Err(invalid(format!("event \"{}\" is routed twice; keep one route", r.event)));
            }
            let prefixes = spec.prefixes(&r.module);
            if !prefixes.iter().any(|p| event_in_prefix(&r.event, p)) {
                return Err(invalid(format!(
                    "route \"{}\" is outside module \"{}\"'s namespace {:?}: rename the event under one of them, or add its prefix to modules.{}.prefixes",
                    r.event, r.module, prefixes, r.module
                )));
            }
        }
        Ok(Self { file: file.to_path_buf(), modules, routes: parsed.routes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_patterns() {
        assert!(tag_matches("chat:*", "chat:lobby"));
        assert!(!tag_matches("chat:*", "admin"));
        assert!(tag_matches("*", "anything"));
        assert!(tag_matches("exact", "exact"));
        assert!(!tag_matches("exact", "exactly"));
    }
}
