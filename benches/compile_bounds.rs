//! What a module costs before it runs, and what the compile bounds (`limits.max_module_bytes`,
//! `max_functions`, `max_function_body_bytes`) save: `cargo bench --bench compile_bounds`.
//!
//! Each case runs in a child process of its own (this binary again), so that its peak RSS
//! (`VmHWM`) is its own: a valid module with one huge function, loaded through the real
//! `Runtime` (manifest, size checks, compile, link) with the function-body limit raised above
//! it ("before": it compiles) and at its default ("after": refused before compiling). Then RSS
//! across repeated hot swaps of a big module, to see whether memory ratchets up.

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use switchyard::config::RuntimeConfig;
use switchyard::delivery::Delivery;
use switchyard::metrics::Metrics;
use switchyard::runtime::Runtime;

/// `VmRSS` and `VmHWM` of this process, KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A valid ABI v1 module whose export `big` is one function of about `body_bytes` bytes.
/// `straight`: one local updated again and again; `branches`: a basic block per step;
/// `pressure`: 64 values live at once, then summed (register pressure). `salt` changes a
/// constant, so that two modules differ (a hot swap).
fn module(pattern: &str, body_bytes: usize, salt: u32) -> String {
    let (unit, unit_bytes): (&dyn Fn(usize) -> String, usize) = match pattern {
        "straight" => (&|i| format!("local.get $x i32.const {} i32.add local.set $x\n", 1000 + i % 1000), 8),
        "branches" => (&|i| format!("local.get $x if i32.const {} local.set $x end\n", 1000 + i % 1000), 10),
        "pressure" => (
            &|i| {
                let mut s = String::new();
                for k in 0..64 {
                    s.push_str(&format!("i32.const {} ", 1000 + (i + k) % 1000));
                }
                s.push_str(&"i32.add ".repeat(63));
                s.push_str("local.get $x i32.add local.set $x\n");
                s
            },
            64 * 3 + 63 + 6,
        ),
        other => panic!("unknown pattern {other}"),
    };
    let mut body = String::with_capacity(body_bytes * 4);
    for i in 0..body_bytes / unit_bytes {
        body.push_str(&unit(i));
    }
    format!(
        r#"(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "switchyard_abi_v1"))
  (func (export "alloc") (param i32) (result i32) (global.get $heap))
  (func (export "big") (param $p i32) (param $l i32) (result i32) (local $x i32)
    i32.const {salt} local.set $x
{body}    local.get $x))"#
    )
}

/// A manifest routing `big/x` to `big.wasm` with this function-body limit (`None`: default).
fn manifest(body_limit: Option<u64>) -> String {
    let limit = body_limit.map_or(String::new(), |l| format!("[modules.big.limits]\nmax_function_body_bytes = {l}\n"));
    format!(
        "[modules.big]\npath = \"big.wasm\"\n{limit}[[routes]]\nevent = \"big/x\"\nmodule = \"big\"\nexport = \"big\"\n"
    )
}

fn config(dir: &std::path::Path) -> RuntimeConfig {
    RuntimeConfig {
        manifest: dir.join("switchyard.toml"),
        cache_dir: None,
        watch: false,
        max_instances: 10,
        max_component_instances: 1,
        ..RuntimeConfig::default()
    }
}

fn delivery() -> Arc<Delivery> {
    Arc::new(Delivery::new(Arc::new(Metrics::default())))
}

/// Child: load one module of `body_bytes`, with the limit raised (`before`) or at its default.
fn compile_case(pattern: &str, body_bytes: usize, before: bool) {
    let dir = tempfile::tempdir().unwrap();
    let wasm = wat::parse_str(module(pattern, body_bytes, 1)).unwrap();
    std::fs::write(dir.path().join("big.wasm"), &wasm).unwrap();
    std::fs::write(dir.path().join("switchyard.toml"), manifest(before.then_some(u64::from(u32::MAX)))).unwrap();
    // Reset the peak (VmHWM) to the current RSS: what generating the module cost is not counted.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (rss0, _) = rss_kib();
    let t = Instant::now();
    let outcome = match Runtime::new(&config(dir.path()), delivery()) {
        Ok(_) => "compiled".to_string(),
        Err(e) => format!("refused: {}", e.to_string().lines().last().unwrap_or("").trim()),
    };
    let took = t.elapsed();
    let (_, hwm) = rss_kib();
    println!(
        "| {pattern} | {:.0} KiB | {} | {:.3} s | {} MiB | {outcome} |",
        wasm.len() as f64 / 1024.0,
        if before { "raised" } else { "default (512 KiB)" },
        took.as_secs_f64(),
        hwm.saturating_sub(rss0) / 1024,
    );
}

/// Child: `swaps` hot swaps of a module of `body_bytes`; RSS after some of them.
fn swap_case(body_bytes: usize, swaps: u32) {
    let dir = tempfile::tempdir().unwrap();
    let write = |salt| {
        let wasm = wat::parse_str(module("straight", body_bytes, salt)).unwrap();
        let tmp = dir.path().join(".big.tmp");
        std::fs::write(&tmp, &wasm).unwrap();
        std::fs::rename(&tmp, dir.path().join("big.wasm")).unwrap();
        wasm.len()
    };
    let size = write(0);
    std::fs::write(dir.path().join("switchyard.toml"), manifest(Some(u64::from(u32::MAX)))).unwrap();
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    tokio.block_on(async {
        let (before, _) = rss_kib();
        let metrics = Arc::new(Metrics::default());
        let rt = {
            let (cfg, d) = (config(dir.path()), Arc::new(Delivery::new(metrics.clone())));
            tokio::task::spawn_blocking(move || Runtime::new(&cfg, d)).await.unwrap().unwrap()
        };
        let (loaded, _) = rss_kib();
        let mut line = format!(
            "| {:.0} KiB | {} MiB before | {} MiB loaded |",
            size as f64 / 1024.0,
            before / 1024,
            loaded / 1024
        );
        for n in 1..=swaps {
            write(n);
            let st = rt.reload().await;
            assert_eq!(st.modules[0].generation, u64::from(n) + 1, "{:?}", st.modules[0].last_error);
            if [1, 5, 10].contains(&n) || n % 25 == 0 || n == swaps {
                let versions = metrics.module_versions.get();
                line.push_str(&format!(" {} MiB after {n} ({versions} alive) |", rss_kib().0 / 1024));
            }
        }
        println!("{line}");
    });
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["compile", pattern, bytes, mode] => compile_case(pattern, bytes.parse().unwrap(), *mode == "before"),
        ["swap", bytes, n] => swap_case(bytes.parse().unwrap(), n.parse().unwrap()),
        _ => {
            let me = std::env::current_exe().unwrap();
            let run = |args: &[&str]| {
                let out = Command::new(&me).args(args).output().unwrap();
                print!("{}", String::from_utf8_lossy(&out.stdout));
                if !out.status.success() {
                    eprintln!("{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
                }
            };
            let sizes: Vec<String> = std::env::var("SIZES")
                .unwrap_or_else(|_| "262144 524288 1048576 4194304".into())
                .split_whitespace()
                .map(str::to_string)
                .collect();
            println!(
                "| pattern | function body | body limit | load time | peak RSS added | outcome |\n|---|---|---|---|---|---|"
            );
            for pattern in ["straight", "branches", "pressure"] {
                for size in &sizes {
                    let bytes: u64 = size.parse().unwrap();
                    // Superlinear: 4 MiB of basic blocks would take minutes to compile.
                    if !(pattern == "branches" && bytes > 1024 * 1024) {
                        run(&["compile", pattern, size, "before"]);
                    }
                    if bytes > 512 * 1024 {
                        run(&["compile", pattern, size, "after"]);
                    }
                }
            }
            let swaps = std::env::var("SWAPS").unwrap_or_else(|_| "50".into());
            println!("\n| module | RSS | | after swaps |\n|---|---|---|---|");
            run(&["swap", "1048576", &swaps]);
        }
    }
}
