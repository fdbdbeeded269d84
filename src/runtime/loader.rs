//! Turning a manifest entry into a ready-to-instantiate module version.
//!
//! Owns reading and hashing the file, the pre-compile size checks, compilation (through the
//! engine's on-disk cache), the ABI v1 checks ([`super::abi`]) and linking into an
//! `InstancePre`. It must never run guest code.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::Module;

use super::abi::{self, HandlerExport};
use super::component;
use super::engine::Engines;
use super::instance::{Code, WarmPool};
use super::manifest::{Capability, ModuleSpec};
use super::state::{GuestLogLimits, ModuleInfo};

const WASM_PAGE: u64 = 64 * 1024;

/// A compiled, validated, linked module version.
pub struct LoadedModule {
    pub info: Arc<ModuleInfo>,
    /// sha256 of the file, hex.
    pub hash: String,
    pub code: Code,
    /// Idle instances of this version (`instance = "reuse"` only).
    pub warm: WarmPool,
    /// Counts this version in `module_versions` while it is alive.
    pub(super) alive: Option<VersionAlive>,
    /// The last call of this version that trapped, timed out or hit its memory cap: the
    /// details (escaped, one line) and when (Unix seconds), for `/admin/modules`.
    pub last_call_error: std::sync::Mutex<Option<(String, u64)>>,
}

/// One module version in the `module_versions` gauge, until dropped.
pub struct VersionAlive(Arc<crate::metrics::Metrics>);

impl VersionAlive {
    pub fn new(metrics: &Arc<crate::metrics::Metrics>) -> Self {
        metrics.module_versions.inc();
        Self(metrics.clone())
    }
}

impl Drop for VersionAlive {
    fn drop(&mut self) {
        self.0.module_versions.sub(1);
    }
}

impl LoadedModule {
    /// The handler a route's `export` names.
    pub fn handler(&self, export: &str) -> Option<HandlerExport> {
        match &self.code {
            Code::Core { exports, .. } => exports.handlers.get(export).copied(),
            Code::Component { handlers, .. } => handlers.get(export).copied(),
        }
    }

    /// `module` or `component`, for `/admin/modules`.
    pub fn kind(&self) -> &'static str {
        match self.code {
            Code::Core { .. } => "module",
            Code::Component { .. } => "component",
        }
    }

    pub fn name(&self) -> &str {
        &self.info.name
    }

    pub fn spec(&self) -> &ModuleSpec {
        &self.info.spec
    }
}

/// The folders module files may be in, symlinks resolved: the manifest's, and the operator's
/// `runtime.module_dirs`. A folder that does not exist is left out (logged).
pub fn allowed_roots(manifest_dir: &Path, module_dirs: &[PathBuf]) -> Vec<PathBuf> {
    std::iter::once(manifest_dir)
        .chain(module_dirs.iter().map(PathBuf::as_path))
        .filter_map(|d| {
            let d = if d.as_os_str().is_empty() { Path::new(".") } else { d };
            std::fs::canonicalize(d)
                .inspect_err(|e| tracing::warn!(dir = %d.display(), "module folder not usable: {e}"))
                .ok()
        })
        .collect()
}

/// Where a module file really is (symlinks resolved), if it lies under one of `roots`.
fn resolve(path: &Path, roots: &[PathBuf]) -> Result<PathBuf, String> {
    let real = std::fs::canonicalize(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !roots.iter().any(|r| real.starts_with(r)) {
        return Err(format!(
            "{} resolves to {}, outside the manifest's folder{}: module files must lie there, or in a folder listed in runtime.module_dirs",
            path.display(),
            real.display(),
            if roots.len() > 1 { " and runtime.module_dirs" } else { "" },
        ));
    }
    Ok(real)
}

/// Reads a module file, which must lie under one of `roots` once symlinks are resolved, and
/// hashes it.
pub fn read(spec: &ModuleSpec, roots: &[PathBuf]) -> Result<(Vec<u8>, String), String> {
    let real = resolve(&spec.path, roots)?;
    let too_big = |len: u64| {
        Err(format!(
            "{} is {len} bytes; the limit is {} (limits.max_module_bytes)",
            spec.path.display(),
            spec.limits.max_module_bytes
        ))
    };
    // Before reading: a huge file costs nothing to refuse.
    let len = std::fs::metadata(&real).map_err(|e| format!("cannot read {}: {e}", spec.path.display()))?.len();
    if len > spec.limits.max_module_bytes {
        return too_big(len);
    }
    let bytes = std::fs::read(&real).map_err(|e| format!("cannot read {}: {e}", spec.path.display()))?;
    if bytes.len() as u64 > spec.limits.max_module_bytes {
        return too_big(bytes.len() as u64);
    }
    let hash = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    Ok((bytes, hash))
}

/// Compiles and checks one module against ABI v1 (or a component against the component ABI),
/// its grants and its limits, then links it. `handler_exports` are the exports the manifest
/// routes to it. A component's `exports()` runs once here ([`component::load`]).
pub fn load(
    engines: &Engines,
    name: &str,
    spec: &ModuleSpec,
    bytes: &[u8],
    hash: String,
    handler_exports: &[&str],
    log_limits: GuestLogLimits,
) -> Result<LoadedModule, String> {
    let path = spec.path.display().to_string();
    let is_text = Path::new(&spec.path).extension().is_some_and(|e| e == "wat");
    let binary;
    let wasm: &[u8] = if is_text {
        binary = wat::parse_bytes(bytes).map_err(|e| format!("{path}: {}", wat_error(&e)))?;
        &binary
    } else {
        bytes
    };
    check_sizes(name, spec, wasm).map_err(|e| format!("{path}: {e}"))?;
    let info = Arc::new(ModuleInfo::new(name, spec, log_limits));
    if component::is_component(wasm) {
        let (code, handlers) =
            component::load(&engines.component_engine, &engines.component_linker, name, spec, wasm, handler_exports)
                .map_err(|e| format!("{path}: {e}"))?;
        let code = Code::Component { code, handlers };
        let warm = WarmPool::default();
        return Ok(LoadedModule { info, hash, code, warm, alive: None, last_call_error: Default::default() });
    }
    let linker = if spec.has(Capability::Wasi) { &engines.wasi_linker } else { &engines.linker };
    let module = Module::new(&engines.engine, wasm).map_err(|e| format!("{path}: does not compile: {e:#}"))?;
    let exports = abi::check_exports(&module, name, spec, handler_exports).map_err(|e| format!("{path}: {e}"))?;
    abi::check_imports(&module, name, spec).map_err(|e| format!("{path}: {e}"))?;
    let pre = linker.instantiate_pre(&module).map_err(|e| format!("{path}: cannot link: {e:#}"))?;
    let code = Code::Core { pre, exports };
    Ok(LoadedModule { info, hash, code, warm: WarmPool::default(), alive: None, last_call_error: Default::default() })
}

/// A WAT error without the text it quotes (the offending line: a module path pointing at some
/// other file must not put that file's contents into logs and `/admin/modules`): where it is.
fn wat_error(e: &wat::Error) -> String {
    // wast renders `<message>\n     --> <file>:<line>:<col>\n ... <the line> ...`.
    let at = e.to_string().lines().find_map(|l| {
        let loc = l.trim_start().strip_prefix("--> ")?;
        let mut parts = loc.rsplitn(3, ':');
        let col: usize = parts.next()?.parse().ok()?;
        let line: usize = parts.next()?.parse().ok()?;
        Some((line, col))
    });
    match at {
        Some((line, col)) => format!("invalid WAT at line {line}, column {col}"),
        None => "invalid WAT (not UTF-8 text, or not the WebAssembly text format)".into(),
    }
}

/// Refuses, before compiling, modules whose declared memory, tables or data exceed the limits,
/// so nothing is reserved for them, and modules that would cost too much to compile: more
/// bytes, functions or bytes in one function body than the limits allow. One pass of
/// wasmparser over the sections, without validating function bodies.
fn check_sizes(name: &str, spec: &ModuleSpec, wasm: &[u8]) -> Result<(), String> {
    use wasmtime::wasmparser::{Parser, Payload};
    let limits = &spec.limits;
    if wasm.len() as u64 > limits.max_module_bytes {
        return Err(format!(
            "is {} bytes of WebAssembly; module \"{name}\" is limited to {} (modules.{name}.limits.max_module_bytes)",
            wasm.len(),
            limits.max_module_bytes
        ));
    }
    // Saturating: a huge memory_mib must not wrap into a tiny cap (or panic in a debug build).
    let cap = spec.limits.memory_mib.saturating_mul(1024 * 1024);
    let mut data_bytes: u64 = 0;
    let mut functions: u64 = 0;
    // wasmparser's error for a bad header quotes the file's first bytes.
    if !wasm.starts_with(b"\0asm") {
        return Err("not a WebAssembly binary (no \\0asm header) nor WAT text".into());
    }
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
            Payload::FunctionSection(r) => {
                functions += u64::from(r.count());
                if functions > u64::from(limits.max_functions) {
                    return Err(format!(
                        "defines {functions} functions or more; module \"{name}\" is limited to {} (modules.{name}.limits.max_functions)",
                        limits.max_functions
                    ));
                }
            }
            Payload::CodeSectionEntry(body) => {
                let len = body.range().len();
                if len > limits.max_function_body_bytes as usize {
                    return Err(format!(
                        "has a function body of {len} bytes; module \"{name}\" is limited to {} (modules.{name}.limits.max_function_body_bytes)",
                        limits.max_function_body_bytes
                    ));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuntimeConfig;

    /// Which WebAssembly proposals a module may use: wasmtime 48's defaults, built without its
    /// `gc` and `threads` features, in a pooling allocator of one memory per instance, and what
    /// `check_sizes` refuses. docs/ABI.md lists the same.
    #[test]
    fn the_engine_accepts_the_proposals_abi_md_lists() {
        let cfg = RuntimeConfig { max_instances: 2, max_component_instances: 1, cache_dir: None, ..Default::default() };
        let engines = super::super::engine::build(&cfg).unwrap();
        let cases: &[(&str, &str, bool)] = &[
            ("multi-value", "(func (result i32 i32) i32.const 1 i32.const 2)", true),
            ("bulk-memory", "(memory 1) (func (memory.copy (i32.const 0) (i32.const 1) (i32.const 1)))", true),
            ("reference-types (funcref)", "(table 1 funcref) (func (drop (ref.null func)))", true),
            ("reference-types (externref: needs gc)", "(table 1 externref)", false),
            ("simd", "(func (drop (v128.const i32x4 1 2 3 4)))", true),
            ("relaxed-simd", "(func (drop (i32x4.relaxed_trunc_f32x4_s (v128.const i32x4 0 0 0 0))))", true),
            ("tail-call", "(func $f (return_call $f))", true),
            ("extended-const", "(global i32 (i32.add (i32.const 1) (i32.const 2)))", true),
            ("multi-memory (one memory per pooled instance)", "(memory 1) (memory 1)", false),
            ("memory64 (refused by check_sizes)", "(memory i64 1)", false),
            ("function-references", "(type $t (func)) (func (param (ref $t)))", true),
            ("threads", "(memory 1 1 shared) (func (drop (i32.atomic.load (i32.const 0))))", false),
            ("gc", "(type (struct (field i32)))", false),
            ("exceptions", "(tag $e) (func (throw $e))", false),
            (
                "wide-arithmetic",
                "(func (drop (drop (i64.add128 (i64.const 0) (i64.const 0) (i64.const 0) (i64.const 0)))))",
                false,
            ),
            ("custom-page-sizes", "(memory 1 (pagesize 1))", false),
        ];
        let mut wrong = Vec::new();
        for (name, body, expected) in cases {
            let wasm = wat::parse_str(format!("(module {body})")).unwrap_or_else(|e| panic!("{name}: {e}"));
            let spec: ModuleSpec = toml::from_str("path = \"x.wasm\"").unwrap();
            let ok = check_sizes("x", &spec, &wasm)
                .map_err(anyhow::Error::msg)
                .and_then(|()| Module::new(&engines.engine, &wasm).map_err(|e| anyhow::anyhow!("{e:#}")));
            if ok.is_ok() != *expected {
                wrong.push(format!("{name}: expected {}, got {:?}", if *expected { "on" } else { "off" }, ok.err()));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }
}

/// The size checks hold for any limits: a module within every limit loads, one past a limit is
/// refused naming it, and no limit value (however large) overflows into a wrong answer.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;
    use crate::runtime::manifest::Limits;

    /// One page of memory, a table of 2, 10 bytes of data, 3 functions, the largest body
    /// `BODY` bytes.
    const MODULE: &str = r#"(module (memory 1) (table 2 funcref) (data (i32.const 0) "0123456789")
        (func) (func) (func (drop (i32.add (i32.const 1) (i32.const 2)))))"#;
    const BODY: u32 = 8;

    fn limit<T>(small: std::ops::Range<T>, edges: Vec<T>) -> impl Strategy<Value = T>
    where
        std::ops::Range<T>: Strategy<Value = T>,
        T: prop::arbitrary::Arbitrary + Copy + std::fmt::Debug + 'static,
    {
        prop_oneof![small, any::<T>(), prop::sample::select(edges)]
    }

    proptest! {
        #![proptest_config(crate::proptest_config())]

        #[test]
        fn any_limits(
            memory_mib in limit(1u64..3, vec![1, u64::MAX, 1 << 44, (1 << 44) - 1]),
            max_table_elements in limit(0u32..4, vec![u32::MAX]),
            max_module_bytes in limit(0u64..200, vec![u64::MAX]),
            max_functions in limit(0u32..5, vec![u32::MAX]),
            max_function_body_bytes in limit(0u32..12, vec![u32::MAX]),
        ) {
            let wasm = wat::parse_str(MODULE).unwrap();
            let mut spec: ModuleSpec = toml::from_str("path = \"x.wasm\"").unwrap();
            spec.limits = Limits {
                memory_mib,
                max_table_elements,
                max_module_bytes,
                max_functions,
                max_function_body_bytes,
                ..Limits::default()
            };
            let fits = max_table_elements >= 2
                && max_module_bytes >= wasm.len() as u64
                && max_functions >= 3
                && max_function_body_bytes >= BODY;
            match check_sizes("x", &spec, &wasm) {
                Ok(()) => prop_assert!(fits, "accepted past a limit: {:?}", spec.limits),
                Err(e) => {
                    prop_assert!(!fits, "refused within its limits ({:?}): {e}", spec.limits);
                    prop_assert!(e.contains("modules.x.limits."), "names the limit: {e}");
                }
            }
        }
    }
}
