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

/// Default `limits.max_module_bytes`: 32 MiB (a Python component is about 18 MiB).
pub const DEFAULT_MAX_MODULE_BYTES: u64 = 32 * 1024 * 1024;
/// Default `limits.max_functions`: room for a Python component's interpreter (BENCHMARKS.md,
/// "Compilation bounds").
pub const DEFAULT_MAX_FUNCTIONS: u32 = 50_000;
/// Default `limits.max_function_body_bytes`: 512 KiB, room for CPython's interpreter loop, and
/// the largest body whose worst case compiles within seconds (BENCHMARKS.md, "Compilation
/// bounds").
pub const DEFAULT_MAX_FUNCTION_BODY_BYTES: u32 = 512 * 1024;

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
    /// Largest module file (and, for `.wat`, its binary), bytes. Checked before anything is
    /// read or compiled.
    pub max_module_bytes: u64,
    /// Functions a module may define (all the core modules of a component together).
    pub max_functions: u32,
    /// Largest function body, bytes: what one function costs to compile grows with it.
    pub max_function_body_bytes: u32,
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
            max_module_bytes: DEFAULT_MAX_MODULE_BYTES,
            max_functions: DEFAULT_MAX_FUNCTIONS,
            max_function_body_bytes: DEFAULT_MAX_FUNCTION_BODY_BYTES,
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
pub const RESERVED_EVENTS: &[&str] = &["ping", "join", "quit", "refresh"];

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

    /// Loads `text` as `switchyard.toml` in a fresh folder; the folder lives as long as the result.
    fn load(text: &str) -> (tempfile::TempDir, Result<Manifest, ManifestError>) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("switchyard.toml");
        std::fs::write(&file, text).unwrap();
        let m = Manifest::load(&file);
        (dir, m)
    }

    /// The message of a manifest that must be refused.
    fn refusal(text: &str) -> String {
        match load(text).1 {
            Ok(m) => panic!("accepted: {m:?}"),
            Err(e) => e.to_string(),
        }
    }

    const ECHO: &str = "[modules.echo]\npath = \"echo.wat\"\nprefixes = [\"echo\"]\n";

    fn route(event: &str, module: &str) -> String {
        format!("[[routes]]\nevent = \"{event}\"\nmodule = \"{module}\"\nexport = \"handle\"\n")
    }

    #[test]
    fn a_valid_manifest_parses_with_its_defaults() {
        let text = r#"
[modules.chat]
path = "build/chat.wasm"
tags = ["chat:*"]
capabilities = ["send_to_user", "claims"]
instance = "reuse"
[modules.chat.limits]
memory_mib = 4
fuel = 1000

[modules.echo]
path = "echo.wat"
prefixes = ["echo", "admin/addons/hgexample/"]

[[routes]]
event = "chat/send"
module = "chat"
export = "chat_send"
[[routes]]
event = "echo"
module = "echo"
export = "echo"
[[routes]]
event = "admin/addons/hgexample/testMessage"
module = "echo"
export = "echo"
"#;
        let (dir, m) = load(text);
        let m = m.unwrap();
        assert_eq!(m.file, dir.path().join("switchyard.toml"));
        assert_eq!(m.modules.keys().collect::<Vec<_>>(), ["chat", "echo"]);
        let chat = &m.modules["chat"];
        assert_eq!(chat.path, dir.path().join("build/chat.wasm"));
        assert_eq!(chat.prefixes("chat"), ["chat/"], "the default prefix is the module's name");
        assert!(chat.has(Capability::SendToUser) && chat.has(Capability::Claims) && !chat.has(Capability::SendToAll));
        assert!(chat.tag_allowed("chat:lobby") && !chat.tag_allowed("admin"));
        assert_eq!(chat.instance, InstanceMode::Reuse);
        assert_eq!(
            chat.limits,
            Limits { memory_mib: 4, fuel: Some(1000), ..Limits::default() },
            "unset limits default"
        );
        let echo = &m.modules["echo"];
        assert_eq!(echo.instance, InstanceMode::Fresh, "fresh instances by default");
        assert_eq!(echo.limits, Limits::default());
        assert!(echo.tags.is_empty() && echo.capabilities.is_empty(), "nothing granted by default");
        assert_eq!(echo.prefixes("echo"), ["echo", "admin/addons/hgexample/"]);
        let events: Vec<_> =
            m.routes.iter().map(|r| (r.event.as_str(), r.module.as_str(), r.export.as_str())).collect();
        assert_eq!(
            events,
            [
                ("chat/send", "chat", "chat_send"),
                ("echo", "echo", "echo"),
                ("admin/addons/hgexample/testMessage", "echo", "echo")
            ]
        );
    }

    #[test]
    fn an_empty_manifest_has_no_modules_and_no_routes() {
        let m = load("").1.unwrap();
        assert!(m.modules.is_empty() && m.routes.is_empty());
    }

    #[test]
    fn relative_paths_are_resolved_against_the_manifest_folder_and_absolute_ones_kept() {
        let absolute = std::env::temp_dir().join("elsewhere/abs.wasm");
        let text = format!(
            "[modules.rel]\npath = \"../up/rel.wasm\"\n[modules.abs]\npath = {:?}\n",
            absolute.display().to_string()
        );
        let (dir, m) = load(&text);
        let m = m.unwrap();
        assert_eq!(m.modules["rel"].path, dir.path().join("../up/rel.wasm"));
        assert_eq!(m.modules["abs"].path, absolute);
    }

    #[test]
    fn a_route_to_an_undeclared_module_is_refused_naming_it_and_the_fix() {
        let err = refusal(&format!("{ECHO}{}", route("shop/buy", "shop")));
        assert!(err.contains("route \"shop/buy\" names module \"shop\""), "{err}");
        assert!(err.contains("add [modules.shop]"), "{err}");
    }

    #[test]
    fn an_event_routed_twice_is_refused() {
        let err = refusal(&format!("{ECHO}{}{}", route("echo", "echo"), route("echo", "echo")));
        assert!(err.contains("event \"echo\" is routed twice"), "{err}");
    }

    #[test]
    fn a_route_outside_the_module_prefixes_is_refused_naming_them() {
        let err = refusal(&format!("{ECHO}{}", route("other/x", "echo")));
        assert!(err.contains("outside module \"echo\"'s namespace [\"echo\"]"), "{err}");
        assert!(err.contains("modules.echo.prefixes"), "{err}");
        // The default prefix is `NAME/`: `chatroom` is not under `chat/`.
        let chat = "[modules.chat]\npath = \"chat.wasm\"\n";
        assert!(load(&format!("{chat}{}", route("chat/send", "chat"))).1.is_ok());
        let err = refusal(&format!("{chat}{}", route("chatroom", "chat")));
        assert!(err.contains("[\"chat/\"]"), "{err}");
    }

    #[test]
    fn built_in_events_cannot_be_routed() {
        for event in RESERVED_EVENTS {
            let m = format!("[modules.x]\npath = \"x.wasm\"\nprefixes = [\"{event}\"]\n{}", route(event, "x"));
            let err = refusal(&m);
            assert!(err.contains(&format!("route \"{event}\" takes a built-in event")), "{err}");
        }
        let err = refusal(&format!("{ECHO}{}", route("", "echo")));
        assert!(err.contains("empty event name"), "{err}");
    }

    #[test]
    fn unknown_fields_are_refused_naming_the_field() {
        let cases = [
            ("[modules.echo]\npath = \"e.wat\"\nprefix = [\"echo\"]\n", "prefix"),
            ("[modules.echo]\npath = \"e.wat\"\n[modules.echo.limits]\nmemory_mb = 4\n", "memory_mb"),
            (
                "[modules.echo]\npath = \"e.wat\"\n[[routes]]\nevent = \"echo/x\"\nmodule = \"echo\"\nexprt = \"x\"\n",
                "exprt",
            ),
            ("[module.echo]\npath = \"e.wat\"\n", "module"),
        ];
        for (text, field) in cases {
            let (dir, m) = load(text);
            match m {
                Err(e @ ManifestError::Parse { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains(&format!("unknown field `{field}`")), "{msg}");
                    assert!(
                        msg.contains(&dir.path().join("switchyard.toml").display().to_string()),
                        "names the file: {msg}"
                    );
                }
                other => panic!("{field}: {other:?}"),
            }
        }
        let err = refusal("[modules.echo]\npath = \"e.wat\"\ncapabilities = [\"send_to_everyone\"]\n");
        assert!(err.contains("send_to_everyone"), "an unknown capability is named: {err}");
        let err = refusal("[modules.echo]\npath = \"e.wat\"\ninstance = \"pooled\"\n");
        assert!(err.contains("pooled"), "an unknown instance mode is named: {err}");
        let err = refusal("[modules.echo]\nprefixes = [\"echo\"]\n");
        assert!(err.contains("missing field `path`"), "{err}");
    }

    #[test]
    fn unsafe_module_settings_are_refused() {
        let err = refusal("[modules.echo]\npath = \"e.wat\"\nprefixes = [\"\"]\n");
        assert!(err.contains("modules.echo.prefixes: an empty prefix"), "{err}");
        let err = refusal("[modules.echo]\npath = \"e.wat\"\nlimits = { timeout_ms = 0 }\n");
        assert!(err.contains("modules.echo.limits"), "{err}");
        let err = refusal("[modules.echo]\npath = \"e.wat\"\ninstance = \"reuse\"\ncapabilities = [\"wasi\"]\n");
        assert!(err.contains("cannot be combined with the \"wasi\" capability"), "{err}");
        let overlap = "[modules.a]\npath = \"a.wat\"\nprefixes = [\"shop/\"]\n[modules.b]\npath = \"b.wat\"\nprefixes = [\"shop/cart/\"]\n";
        assert!(refusal(overlap).contains("overlapping event prefixes"));
    }

    #[test]
    fn a_missing_manifest_is_a_read_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nope.toml");
        let err = Manifest::load(&file).unwrap_err();
        assert!(matches!(err, ManifestError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains("nope.toml: cannot read"), "{err}");
    }

    #[test]
    fn tag_patterns() {
        assert!(tag_matches("chat:*", "chat:lobby"));
        assert!(!tag_matches("chat:*", "admin"));
        assert!(tag_matches("*", "anything"));
        assert!(tag_matches("exact", "exact"));
        assert!(!tag_matches("exact", "exactly"));
    }
}

/// No manifest text panics the loader, and what it accepts keeps its promises: every route's
/// module is declared, events are unique, none is built in, each lies in its module's
/// namespace, and no two modules' namespaces overlap.
#[cfg(test)]
mod props {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use toml::{Table, Value};

    use super::*;

    /// A small alphabet, so that generated names collide (duplicate events, overlapping
    /// prefixes, routes to undeclared modules).
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![4 => "[ab/]{0,3}", 1 => prop::sample::select(vec!["ping", "join", "refresh", "a/", ""]).prop_map(String::from)]
    }

    /// A limit, now and then 0 (refused).
    fn limit() -> impl Strategy<Value = u64> {
        prop_oneof![9 => 1u64..4, 1 => Just(0)]
    }

    fn module() -> impl Strategy<Value = Value> {
        (
            ".{0,8}",
            prop::option::weighted(0.25, prop::collection::vec(name(), 0..3)),
            prop::collection::vec("[a*:]{0,3}", 0..3),
            prop::collection::vec(
                prop_oneof![
                    9 => prop::sample::select(vec!["send_to_user", "claims", "wasi", "send_to_all", "send_to_client"]),
                    1 => Just("bogus"),
                ],
                0..2,
            ),
            prop::option::of((limit(), limit(), prop::option::of(0u64..5))),
            prop_oneof![9 => prop::sample::select(vec!["fresh", "reuse"]), 1 => Just("other")],
        )
            .prop_map(|(path, prefixes, tags, caps, limits, instance)| {
                let mut m = Table::new();
                m.insert("path".into(), Value::from(path));
                if let Some(p) = prefixes {
                    m.insert("prefixes".into(), Value::from(p));
                }
                m.insert("tags".into(), Value::from(tags));
                m.insert("capabilities".into(), Value::from(caps));
                if let Some((memory, timeout, fuel)) = limits {
                    let mut l = Table::new();
                    l.insert("memory_mib".into(), Value::from(memory as i64));
                    l.insert("timeout_ms".into(), Value::from(timeout as i64));
                    if let Some(f) = fuel {
                        l.insert("fuel".into(), Value::from(f as i64));
                    }
                    m.insert("limits".into(), Value::Table(l));
                }
                m.insert("instance".into(), Value::from(instance));
                Value::Table(m)
            })
    }

    fn manifest_text() -> impl Strategy<Value = String> {
        prop::collection::btree_map("[ab]{1,2}", module(), 1..4).prop_flat_map(|modules| {
            // Routes mostly to declared modules, under their default prefix; sometimes not.
            let declared: Vec<String> = modules.keys().cloned().collect();
            let names = prop_oneof![9 => prop::sample::select(declared), 1 => Just("zz".to_string())];
            let event = prop_oneof![3 => "[a-z]{0,2}".prop_map(Some), 1 => name().prop_map(|_| None)];
            let route = (names, event, name(), "[a-z]{0,3}").prop_map(|(module, suffix, other, export)| {
                let mut r = Table::new();
                let event = suffix.map_or(other, |s| format!("{module}/{s}"));
                r.insert("event".into(), Value::from(event));
                r.insert("module".into(), Value::from(module));
                r.insert("export".into(), Value::from(export));
                Value::Table(r)
            });
            prop::collection::vec(route, 0..3).prop_map(move |routes| {
                let mut t = Table::new();
                t.insert("modules".into(), Value::Table(modules.clone().into_iter().collect()));
                t.insert("routes".into(), Value::Array(routes));
                toml::to_string(&t).unwrap()
            })
        })
    }

    /// Whether the manifest was accepted (its promises then checked).
    fn check(text: &str) -> bool {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("switchyard.toml");
        std::fs::write(&file, text).unwrap();
        let Ok(m) = Manifest::load(&file) else { return false };
        let mut events = HashSet::new();
        for r in &m.routes {
            let spec = m.modules.get(&r.module).expect("a route's module is declared");
            assert!(!r.event.is_empty() && !RESERVED_EVENTS.contains(&r.event.as_str()), "{text}");
            assert!(events.insert(r.event.clone()), "event routed twice:\n{text}");
            assert!(spec.prefixes(&r.module).iter().any(|p| event_in_prefix(&r.event, p)), "{text}");
        }
        let claimed: Vec<(&String, String)> =
            m.modules.iter().flat_map(|(n, s)| s.prefixes(n).into_iter().map(move |p| (n, p))).collect();
        for (a, pa) in &claimed {
            assert!(!pa.is_empty(), "{text}");
            for (b, pb) in &claimed {
                assert!(a == b || !(pa.starts_with(pb.as_str()) || pb.starts_with(pa.as_str())), "{text}");
            }
        }
        for (n, spec) in &m.modules {
            assert!(spec.limits.memory_mib > 0 && spec.limits.timeout_ms > 0, "{n}: {text}");
            assert!(!(spec.instance == InstanceMode::Reuse && spec.has(Capability::Wasi)), "{text}");
            assert!(spec.path.starts_with(dir.path()) || spec.path.is_absolute(), "{text}");
        }
        !m.routes.is_empty()
    }

    /// The generator makes manifests the loader accepts, with routes, often enough that the
    /// property is not checked on refusals only.
    #[test]
    fn generated_manifests_are_often_accepted() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let accepted = (0..256).filter(|_| check(&manifest_text().new_tree(&mut runner).unwrap().current())).count();
        assert!(accepted >= 20, "only {accepted} of 256 generated manifests with routes were accepted");
    }

    proptest! {
        #![proptest_config(crate::proptest_config())]

        #[test]
        fn any_text(text in ".{0,200}") {
            check(&text);
        }

        #[test]
        fn generated_manifests(text in manifest_text()) {
            check(&text);
        }

        #[test]
        fn generated_manifests_cut(text in manifest_text(), at in any::<prop::sample::Index>()) {
            let cut = at.index(text.len() + 1);
            if let Some(prefix) = text.get(..cut) {
                check(prefix);
            }
        }
    }
}
