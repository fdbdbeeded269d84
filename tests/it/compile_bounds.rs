//! Compilation is bounded: module size, function count and function body size are checked
//! before compiling, with per-module overrides; and a slow compile delays no other module's
//! swap (modules compile in parallel, off the reload's lock).

use serde_json::json;

use crate::common::*;

/// A valid ABI v1 module whose export `handle` answers `{"v": <version>}` after running one
/// function of about `body_bytes` bytes with a basic block per step (slow to compile: about
/// 1.7 s for 256 KiB and 6 s for 512 KiB on the 2-core machine of BENCHMARKS.md).
fn module_with_a_big_function(version: u32, body_bytes: usize) -> Vec<u8> {
    let steps = body_bytes / 10;
    let mut body = String::with_capacity(steps * 48);
    for i in 0..steps {
        body.push_str(&format!("local.get $x if i32.const {} local.set $x end\n", 1000 + i % 1000));
    }
    let wat = format!(
        r#"(module
  (import "switchyard" "send_success" (func $send_success (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{{\"v\":{version}}}")
  (global $heap (mut i32) (i32.const 1024))
  (func (export "switchyard_abi_v1"))
  (func (export "alloc") (param $len i32) (result i32)
    (local $p i32) (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (local.get $len))) (local.get $p))
  (func $big (param $x i32) (result i32)
{body}    local.get $x)
  (func (export "handle") (param $p i32) (param $l i32) (result i32)
    (drop (call $big (i32.const 0)))
    (drop (call $send_success (i32.add (local.get $p) (i32.const 20)) (i32.load offset=4 (local.get $p)) (i32.const 0) (i32.const {len})))
    (i32.const 0)))"#,
        len = format!("{{\"v\":{version}}}").len()
    );
    wat::parse_str(wat).unwrap()
}

fn big_manifest(limits: &str) -> String {
    format!(
        "[modules.big]\npath = \"big.wasm\"\n[modules.big.limits]\n{limits}\n[[routes]]\nevent = \"big/x\"\nmodule = \"big\"\nexport = \"handle\"\n"
    )
}

async fn refusal_with(manifest: &str, wasm: &[u8]) -> String {
    let dir = dir_with(manifest, &[]);
    std::fs::write(dir.path().join("big.wasm"), wasm).unwrap();
    let config = test_config(dir.path());
    TestServer::try_in_dir(dir, config).await.err().expect("refused").to_string()
}

#[tokio::test]
async fn each_compile_bound_refuses_a_module_naming_the_limit() {
    let wasm = module_with_a_big_function(1, 2000);
    let err = refusal_with(&big_manifest("max_function_body_bytes = 1000"), &wasm).await;
    assert!(
        err.contains("has a function body of") && err.contains("modules.big.limits.max_function_body_bytes"),
        "{err}"
    );
    let err = refusal_with(&big_manifest("max_functions = 3"), &wasm).await;
    assert!(err.contains("functions") && err.contains("modules.big.limits.max_functions"), "{err}");
    let err = refusal_with(&big_manifest(&format!("max_module_bytes = {}", wasm.len() - 1)), &wasm).await;
    assert!(err.contains(&format!("is {} bytes", wasm.len())) && err.contains("max_module_bytes"), "{err}");
    // At the limits, it loads.
    let dir = dir_with(&big_manifest(&format!("max_functions = 4\nmax_module_bytes = {}", wasm.len())), &[]);
    std::fs::write(dir.path().join("big.wasm"), &wasm).unwrap();
    let s = TestServer::in_dir(dir, |_| {}).await;
    assert_eq!(s.connect("alice").await.request("big/x", json!(null)).await["data"], json!({"v": 1}));
}

#[tokio::test]
async fn a_function_body_over_the_default_needs_an_override() {
    // 600 KiB: over the default 512 KiB.
    let wasm = module_with_a_big_function(1, 600 * 1024);
    let err = refusal_with(&big_manifest(""), &wasm).await;
    assert!(err.contains("is limited to 524288 (modules.big.limits.max_function_body_bytes)"), "{err}");
}

#[tokio::test]
async fn a_slow_compile_delays_no_other_modules_swap() {
    let manifest = format!(
        "{}[modules.echo]\npath = \"echo.wat\"\nprefixes = [\"echo\"]\n[[routes]]\nevent = \"echo\"\nmodule = \"echo\"\nexport = \"echo\"\n",
        big_manifest("max_function_body_bytes = 1048576")
    );
    let dir = dir_with(&manifest, &[("echo.wat", &wat("echo.wat"))]);
    std::fs::write(dir.path().join("big.wasm"), module_with_a_big_function(1, 100)).unwrap();
    let s = TestServer::in_dir(dir, |_| {}).await;
    assert_eq!(s.metric("module_versions").await, 2);
    let mut c = s.connect("alice").await;
    let status = |name: &'static str| {
        let s = &s;
        async move {
            let (_, st) = s.get("/admin/modules").await;
            st["modules"].as_array().unwrap().iter().find(|m| m["name"] == name).unwrap().clone()
        }
    };
    // v2 of big takes seconds to compile; the watcher starts it.
    s.replace_file("big.wasm", &module_with_a_big_function(2, 300 * 1024));
    wait_until("big's v2 is compiling", TIMEOUT, async || status("big").await["compiling_since"].is_u64()).await;
    // Meanwhile echo changes: its v2 serves long before big's compile ends.
    s.replace_file("echo.wat", wat("echo_v2.wat").as_bytes());
    wait_until("echo's v2 serves", TIMEOUT, async || {
        c.request("echo", json!(1)).await["data"] == json!({"v": 2, "d": 1})
    })
    .await;
    let big = status("big").await;
    assert!(big["compiling_since"].is_u64() && big["generation"] == 1, "big still compiling, v1 serving: {big}");
    assert_eq!(c.request("big/x", json!(null)).await["data"], json!({"v": 1}));
    assert_eq!(status("echo").await["generation"], 2);
    // Then big's v2 serves too.
    wait_until("big's v2 serves", TIMEOUT, async || status("big").await["generation"] == 2).await;
    assert_eq!(c.request("big/x", json!(null)).await["data"], json!({"v": 2}));
    assert!(status("big").await["compiling_since"].is_null());
    assert_eq!(s.metric("reloads_total").await, 2, "one swap per module");
    assert_eq!(s.metric("module_versions").await, 2, "v1 of both was dropped once replaced");
    assert_eq!(s.metric("reload_failures_total").await, 0);
}
