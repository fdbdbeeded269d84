//! ABI v1, the contract between the host and a core-module handler, in one place. Reads
//! like `docs/ABI.md`: what the guest exports, the request it receives, what it may import,
//! and the statuses host functions return. Keep the two in step.
//!
//! Owns the names, the layouts and the load-time checks of exports and imports. It must never
//! compile, link or run anything: the loader calls [`check_exports`] and [`check_imports`] on a
//! compiled module, and the call writes the request with [`write_request`].

use std::collections::HashMap;

use wasmtime::{ExternType, FuncType, Module, ModuleExport, ValType};

use super::manifest::{Capability, InstanceMode, ModuleSpec};

// ---- What the guest exports ----

/// The ABI-version marker export: "I speak ABI v1". Never called.
pub const ABI_MARKER: &str = "switchyard_abi_v1";
/// The guest's linear memory.
pub const MEMORY_EXPORT: &str = "memory";
/// `(len: i32) -> i32`: where the host writes the request.
pub const ALLOC_EXPORT: &str = "alloc";
/// `() -> ()`, run between two events by a reused instance (`instance = "reuse"` only).
pub const RESET_EXPORT: &str = "switchyard_reset";

// ---- The request ----

/// The request's version field.
pub const REQUEST_VERSION: u32 = 1;
/// Version plus four field lengths, each a little-endian `u32`.
pub const REQUEST_HEADER: usize = 20;

/// Bytes the request for these fields takes.
pub fn request_len(fields: &[&[u8]; 4]) -> usize {
    REQUEST_HEADER + fields.iter().map(|f| f.len()).sum::<usize>()
}

/// Writes the request (event, data, client id, user id) into `buf`, which is exactly
/// [`request_len`] bytes.
pub fn write_request(buf: &mut [u8], fields: &[&[u8]; 4]) {
    buf[..4].copy_from_slice(&REQUEST_VERSION.to_le_bytes());
    let mut at = REQUEST_HEADER;
    for (i, f) in fields.iter().enumerate() {
        buf[4 + i * 4..8 + i * 4].copy_from_slice(&(f.len() as u32).to_le_bytes());
        buf[at..at + f.len()].copy_from_slice(f);
        at += f.len();
    }
}

// ---- What the host provides ----

/// The import namespace of every host function.
pub const NAMESPACE: &str = "switchyard";
/// The WASI preview1 import namespace (only with the `wasi` capability).
pub const WASI_NAMESPACE: &str = "wasi_snapshot_preview1";

/// Statuses host functions return to the guest (`>= 0` is success).
pub mod status {
    pub const OK: i32 = 0;
    pub const ERR_BAD_POINTER: i32 = -1;
    pub const ERR_BAD_UTF8: i32 = -2;
    pub const ERR_BAD_JSON: i32 = -3;
    pub const ERR_DENIED: i32 = -4;
    pub const ERR_LIMIT: i32 = -5;
    pub const ERR_INVALID: i32 = -6;
}

/// What allows a module to import a host function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Always,
    /// A non-empty `tags = [...]`.
    Tags,
    Cap(Capability),
}

/// Every import of ABI v1: name, parameter count (all `i32`, result `i32`), and what grants it.
pub const IMPORTS: &[(&str, usize, Grant)] = &[
    ("send_success", 4, Grant::Always),
    ("send_error", 4, Grant::Always),
    ("send_to_client", 6, Grant::Cap(Capability::SendToClient)),
    ("send_to_user", 6, Grant::Cap(Capability::SendToUser)),
    ("send_to_tag", 6, Grant::Tags),
    ("send_to_all", 4, Grant::Cap(Capability::SendToAll)),
    ("join_tag", 2, Grant::Tags),
    ("quit_tag", 2, Grant::Tags),
    ("tag_members", 4, Grant::Tags),
    ("client_id", 2, Grant::Always),
    ("user_id", 2, Grant::Always),
    ("claims", 2, Grant::Cap(Capability::Claims)),
    ("log", 3, Grant::Always),
];

pub fn cap_name(c: Capability) -> &'static str {
    match c {
        Capability::SendToUser => "send_to_user",
        Capability::SendToClient => "send_to_client",
        Capability::SendToAll => "send_to_all",
        Capability::Claims => "claims",
        Capability::Wasi => "wasi",
    }
}

// ---- Load-time checks ----

/// A handler export: where it is in the module (`None` for a component, whose one `handle`
/// export serves every handler name), and its slot in every instance's cache (for a
/// component, the name's place in its `exports()`).
#[derive(Clone, Copy)]
pub struct HandlerExport {
    pub index: Option<ModuleExport>,
    pub slot: usize,
}

/// The exports a call needs, resolved once per module version.
pub struct Exports {
    pub memory: ModuleExport,
    pub alloc: ModuleExport,
    pub reset: Option<ModuleExport>,
    /// By name: the exports the manifest routes to.
    pub handlers: HashMap<String, HandlerExport>,
}

fn sig_is(f: &FuncType, params: usize) -> bool {
    f.params().len() == params
        && f.params().all(|p| matches!(p, ValType::I32))
        && f.results().len() == 1
        && f.results().all(|r| matches!(r, ValType::I32))
}

/// Checks the exports ABI v1 requires and those `handlers` (the routes' exports) name.
pub fn check_exports(module: &Module, name: &str, spec: &ModuleSpec, handlers: &[&str]) -> Result<Exports, String> {
    if !matches!(module.get_export(ABI_MARKER), Some(ExternType::Func(_))) {
        return Err(format!(
            "no \"{ABI_MARKER}\" export: this is not a Switchyard ABI v1 module (see docs/ABI.md; the SDKs add it for you)"
        ));
    }
    let memory = match module.get_export(MEMORY_EXPORT) {
        Some(ExternType::Memory(_)) => module.get_export_index(MEMORY_EXPORT),
        _ => None,
    }
    .ok_or_else(|| format!("must export its linear memory as \"{MEMORY_EXPORT}\""))?;
    let alloc = match module.get_export(ALLOC_EXPORT) {
        Some(ExternType::Func(f)) if sig_is(&f, 1) => module.get_export_index(ALLOC_EXPORT),
        _ => None,
    }
    .ok_or_else(|| format!("must export \"{ALLOC_EXPORT}\" of type (i32) -> i32"))?;
    let reset = match module.get_export(RESET_EXPORT) {
        Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => {
            module.get_export_index(RESET_EXPORT)
        }
        Some(_) => return Err(format!("export \"{RESET_EXPORT}\" must be a function () -> ()")),
        None => None,
    };
    if spec.instance == InstanceMode::Reuse && reset.is_none() {
        return Err(format!(
            "module \"{name}\" has instance = \"reuse\" but no \"{RESET_EXPORT}\" export to run between events: export it (the Rust, C and Zig SDKs do), or use the default instance = \"fresh\""
        ));
    }
    let mut exports = HashMap::new();
    for e in handlers {
        match module.get_export(e) {
            Some(ExternType::Func(f)) if sig_is(&f, 2) => {}
            Some(_) => return Err(format!("export \"{e}\" of module \"{name}\" must be a function (i32, i32) -> i32")),
            None => {
                return Err(format!(
                    "module \"{name}\" has no export \"{e}\" that a route names: export it, or fix the route's export"
                ));
            }
        }
        let index = module.get_export_index(e).ok_or("export index")?;
        let slot = exports.len();
        exports.entry((*e).to_string()).or_insert(HandlerExport { index: Some(index), slot });
    }
    Ok(Exports { memory, alloc, reset, handlers: exports })
}

/// Denies by default: every import must be a known host function the module is granted, of
/// the right type, or WASI with the `wasi` capability.
pub fn check_imports(module: &Module, name: &str, spec: &ModuleSpec) -> Result<(), String> {
    for imp in module.imports() {
        let (ns, field) = (imp.module(), imp.name());
        if ns == WASI_NAMESPACE {
            if !spec.has(Capability::Wasi) {
                return Err(format!(
                    "imports {ns}::{field} but module \"{name}\" is not granted WASI: add \"wasi\" to modules.{name}.capabilities, or build without WASI"
                ));
            }
            continue;
        }
        let known = if ns == NAMESPACE { IMPORTS.iter().find(|(n, _, _)| *n == field) } else { None };
        let Some((_, params, grant)) = known else {
            return Err(format!(
                "imports unknown function {ns}::{field}; ABI v1 provides only \"{NAMESPACE}\" functions (docs/ABI.md)"
            ));
        };
        match imp.ty() {
            ExternType::Func(f) if f.params().len() == *params && f.params().all(|p| matches!(p, ValType::I32)) => {}
            _ => return Err(format!("import {ns}::{field} must have {params} i32 parameters and an i32 result")),
        }
        let missing = match grant {
            Grant::Always => None,
            Grant::Tags => spec.tags.is_empty().then(|| format!("tag patterns in modules.{name}.tags")),
            Grant::Cap(c) => (!spec.has(*c)).then(|| format!("\"{}\" in modules.{name}.capabilities", cap_name(*c))),
        };
        if let Some(how) = missing {
            return Err(format!("imports {ns}::{field}, which module \"{name}\" is not granted: add {how}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_the_documented_layout() {
        let fields: [&[u8]; 4] = [b"echo", b"{\"a\":1}", b"7", b""];
        let mut buf = vec![0u8; request_len(&fields)];
        assert_eq!(buf.len(), 20 + 4 + 7 + 1);
        write_request(&mut buf, &fields);
        let u32_at = |i: usize| u32::from_le_bytes(buf[i..i + 4].try_into().unwrap());
        assert_eq!([u32_at(0), u32_at(4), u32_at(8), u32_at(12), u32_at(16)], [1, 4, 7, 1, 0]);
        assert_eq!(&buf[20..], b"echo{\"a\":1}7");
    }
}

/// The request is the documented layout whatever its fields hold.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(crate::proptest_config())]

        #[test]
        fn any_fields_are_written_as_documented(
            fields in prop::array::uniform4(prop::collection::vec(any::<u8>(), 0..300)),
            slack in 0usize..8,
        ) {
            let fields: [&[u8]; 4] = [&fields[0], &fields[1], &fields[2], &fields[3]];
            let len = request_len(&fields);
            prop_assert_eq!(len, 20 + fields.iter().map(|f| f.len()).sum::<usize>());
            // Written into the exact range of a bigger buffer (guest memory), nothing else moves.
            let mut memory = vec![0xAAu8; len + slack * 2];
            write_request(&mut memory[slack..slack + len], &fields);
            let buf = &memory[slack..slack + len];
            let u32_at = |i: usize| u32::from_le_bytes(buf[i..i + 4].try_into().unwrap()) as usize;
            prop_assert_eq!(u32_at(0), 1);
            let mut at = REQUEST_HEADER;
            for (i, f) in fields.iter().enumerate() {
                prop_assert_eq!(u32_at(4 + i * 4), f.len());
                prop_assert_eq!(&buf[at..at + f.len()], *f);
                at += f.len();
            }
            prop_assert!(memory[..slack].iter().chain(&memory[slack + len..]).all(|&b| b == 0xAA));
        }
    }
}
