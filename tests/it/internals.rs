//! Clients get messages, not internals: a failed call answers its kind (`handler trapped`, ...)
//! without the engine's text or a wasm backtrace, which go to the log and `/admin/modules`. And
//! the edges docs/ABI.md describes: `memory.grow` past the cap, a bad `alloc`, start functions.

use serde_json::json;

use crate::common::*;

/// A module with `alloc` returning `alloc_result` (-1: a bump allocator), an optional start
/// function, and an export `handle` with this body (the request at `$p`).
fn module(alloc_result: i32, start: &str, handle: &str) -> String {
    let alloc = if alloc_result == -1 {
        "(local $p i32) (local.set $p (global.get $heap)) (global.set $heap (i32.add (local.get $p) (local.get $len))) (local.get $p)".to_string()
    } else {
        format!("(i32.const {alloc_result})")
    };
    format!(
        r#"(module
  (import "switchyard" "send_success" (func $send_success (param i32 i32 i32 i32) (result i32)))
  (import "switchyard" "log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "hello")
  (global $heap (mut i32) (i32.const 1024))
  (global $from_start (mut i32) (i32.const 1000))
  (func (export "switchyard_abi_v1"))
  (func (export "alloc") (param $len i32) (result i32) {alloc})
  {start}
  (func (export "handle") (param $p i32) (param $l i32) (result i32) {handle}))"#
    )
}

fn manifest() -> &'static str {
    "[modules.edge]\npath = \"edge.wat\"\n[modules.edge.limits]\nmemory_mib = 1\n\
     [[routes]]\nevent = \"edge/call\"\nmodule = \"edge\"\nexport = \"handle\"\n"
}

async fn call(wat: &str) -> (TestServer, serde_json::Value) {
    capture_logs();
    let s = TestServer::with(manifest(), &[("edge.wat", wat)], |_| {}).await;
    let mut c = s.connect("alice").await;
    let r = c.request("edge/call", json!(null)).await;
    (s, r)
}

async fn module_status(s: &TestServer) -> serde_json::Value {
    s.get("/admin/modules").await.1["modules"][0].clone()
}

#[tokio::test]
async fn a_trap_answers_handler_trapped_and_the_details_go_to_the_log_and_admin_modules() {
    let (s, r) = call(&module(-1, "", "(call $deep) (i32.const 0)) (func $deep unreachable")).await;
    assert_eq!((r["kind"].as_str(), r["errorMsg"].as_str()), (Some("handler_trapped"), Some("handler trapped")), "{r}");
    assert!(!r.to_string().contains("wasm"), "no engine text for the client: {r}");
    let m = module_status(&s).await;
    let details = m["last_call_error"].as_str().expect("last_call_error");
    assert!(details.contains("unreachable") && details.contains("wasm backtrace"), "{details}");
    assert!(!details.contains('\n'), "one line: {details}");
    assert!(m["last_call_error_at"].as_u64().unwrap() > 1_700_000_000);
    let logged = captured_logs();
    assert!(logged.lines().any(|l| l.contains("edge/call") && l.contains("unreachable")), "logged");
    assert_eq!(s.metric("handler_traps_total").await, 1);
}

#[tokio::test]
async fn a_stack_overflow_is_handler_trapped_too() {
    let (s, r) = call(&module(-1, "", "(call $r) (i32.const 0)) (func $r (call $r)")).await;
    assert_eq!((r["kind"].as_str(), r["errorMsg"].as_str()), (Some("handler_trapped"), Some("handler trapped")), "{r}");
    assert_eq!(module_status(&s).await["last_call_error"], "handler trapped: stack overflow");
}

#[tokio::test]
async fn memory_grow_past_the_cap_returns_minus_one_and_is_no_error_unless_the_guest_then_fails() {
    // 1 MiB cap, 1 page now: growing by 100 pages is refused with -1; the handler goes on.
    let handled = "(if (i32.eq (memory.grow (i32.const 100)) (i32.const -1)) \
                     (then (drop (call $send_success (i32.const 0) (i32.const 5) (i32.const 0) (i32.const 0))))) (i32.const 0)";
    let (s, r) = call(&module(-1, "", handled)).await;
    assert_eq!((r["event"].as_str(), r["code"].as_i64()), (Some("hello"), Some(0)), "{r}");
    assert_eq!(s.metric("handler_memory_limit_total").await, 0);
    // A trap after a refused grow is reported as the memory limit.
    let (s, r) = call(&module(-1, "", "(drop (memory.grow (i32.const 100))) unreachable")).await;
    assert_eq!((r["kind"].as_str(), r["errorMsg"].as_str()), (Some("memory_limit"), Some("memory limit")), "{r}");
    assert_eq!(s.metric("handler_memory_limit_total").await, 1);
}

#[tokio::test]
async fn an_alloc_that_returns_zero_or_a_pointer_outside_memory_is_the_memory_limit() {
    for bad in [0, 65_530, -65_536] {
        let (s, r) = call(&module(bad, "", "(i32.const 0)")).await;
        assert_eq!(
            (r["kind"].as_str(), r["errorMsg"].as_str()),
            (Some("memory_limit"), Some("memory limit")),
            "alloc -> {bad}: {r}"
        );
        assert_eq!(s.metric("handler_memory_limit_total").await, 1);
    }
}

#[tokio::test]
async fn a_start_function_runs_at_every_instantiation_without_guest_memory() {
    // The start function's log call: the host does not know the guest's memory yet.
    let start =
        "(func $start (global.set $from_start (call $log (i32.const 2) (i32.const 0) (i32.const 5)))) (start $start)";
    let (_s, r) = call(&module(-1, start, "(i32.sub (i32.const 100) (global.get $from_start))")).await;
    assert_eq!(r["errorMsg"], "handler failed with status 101", "log returned ERR_BAD_POINTER (-1): {r}");
    // A start function that traps fails every event with handler_trapped.
    let start = "(func $start unreachable) (start $start)";
    let (s, r) = call(&module(-1, start, "(i32.const 0)")).await;
    assert_eq!((r["kind"].as_str(), r["errorMsg"].as_str()), (Some("handler_trapped"), Some("handler trapped")), "{r}");
    let mut c = s.connect("bob").await;
    assert_eq!(c.request("edge/call", json!(null)).await["kind"], "handler_trapped", "at every event");
    assert_eq!(s.metric("handler_traps_total").await, 2);
}
