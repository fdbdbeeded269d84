//! Sandboxed addons: hostile modules hit their limits and capabilities, get an error frame,
//! and never slow, crash or see past the host: another client's ping and echo are answered
//! while each attack runs.

use std::time::Duration;

use serde_json::json;

use crate::common::*;

const HOSTILE_MANIFEST: &str = r#"
[modules.hostile]
path = "hostile.wat"
prefixes = ["admin/addons/hostile/"]
tags = ["chat:*"]
capabilities = ["send_to_user", "send_to_client", "send_to_all", "claims"]
[modules.hostile.limits]
memory_mib = 2
timeout_ms = 400
max_sends = 50

[modules.echo]
path = "echo.wat"
prefixes = ["echo"]

[[routes]]
event = "echo"
module = "echo"
export = "echo"
"#;

fn hostile_manifest() -> String {
    let mut m = HOSTILE_MANIFEST.to_string();
    for e in ["echo", "spin", "tell_admin_and_spin", "bomb", "recurse", "flood", "denied_tag", "badptr"] {
        m.push_str(&format!(
            "[[routes]]\nevent = \"admin/addons/hostile/{e}\"\nmodule = \"hostile\"\nexport = \"{e}\"\n"
        ));
    }
    m
}

async fn hostile_server() -> TestServer {
    TestServer::with(
        &hostile_manifest(),
        &[("hostile.wat", &wat("hostile.wat")), ("echo.wat", &wat("echo.wat"))],
        |_| {},
    )
    .await
}

/// Starts `attack` on one client, checks a bystander's ping and echo are answered before the
/// attack ends, and returns the attacker's error frame.
async fn attack(s: &TestServer, export: &str) -> serde_json::Value {
    let mut attacker = s.connect("mallory").await;
    let mut bystander = s.connect("alice").await;
    attacker.send(&format!("admin/addons/hostile/{export}"), json!({})).await;
    assert_eq!(bystander.request("ping", json!(null)).await["event"], "ping");
    assert_eq!(bystander.request("echo", json!("unaffected")).await["data"], "unaffected");
    let reply = attacker.recv().await;
    // The attacker's own connection survives its failed call.
    assert_eq!(attacker.request("ping", json!(null)).await["code"], 0);
    assert_eq!(attacker.request("admin/addons/hostile/echo", json!(null)).await["code"], 0);
    reply
}

#[tokio::test]
async fn an_infinite_loop_ends_at_the_deadline_with_handler_timeout() {
    let s = hostile_server().await;
    let r = attack(&s, "spin").await;
    assert_eq!((r["code"].as_i64(), r["kind"].as_str()), (Some(-1), Some("handler_timeout")));
    assert_eq!(r["errorMsg"], "handler timeout");
    assert_eq!(s.metric("handler_timeouts_total").await, 1);
}

#[tokio::test]
async fn an_idle_server_rests_its_epoch_ticker() {
    let s = hostile_server().await;
    let before = s.metric("epoch_ticks_total").await;
    // A rate takes a while to measure: this sleep is the behaviour under test. (The ticker is
    // an OS thread on the wall clock; tokio's paused time does not reach it.)
    let t0 = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ticks = s.metric("epoch_ticks_total").await - before;
    let secs = t0.elapsed().as_secs_f64();
    // At rest: one tick per 4 ms (250 a second), not one per 250 µs (4,000).
    assert!(ticks as f64 <= 600.0 * secs, "{ticks} ticks in an idle {secs:.2} s");
}

#[tokio::test]
async fn a_spinning_call_wakes_the_epoch_ticker_to_full_rate() {
    let s = hostile_server().await;
    let before = s.metric("epoch_ticks_total").await;
    let t0 = std::time::Instant::now();
    assert_eq!(attack(&s, "spin").await["kind"], "handler_timeout");
    // The ticker keeps its full rate for a second after the last slow tick: measure the rate
    // over part of that second too (a measuring window, the behaviour under test).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ticks = s.metric("epoch_ticks_total").await - before;
    let at_rest = t0.elapsed().as_millis() as u64 / 4;
    assert!(ticks > 2 * at_rest, "{ticks} ticks, against {at_rest} at rest");
}

#[tokio::test]
async fn a_module_that_ran_into_its_deadline_is_penalized_and_shows_it_in_admin_modules() {
    let s = hostile_server().await;
    let (_, before) = s.get("/admin/modules").await;
    assert!(before["modules"].as_array().unwrap().iter().all(|m| m["penalized_until_ms"].is_null()), "{before}");
    assert_eq!(attack(&s, "spin").await["kind"], "handler_timeout");
    let (_, after) = s.get("/admin/modules").await;
    let modules = after["modules"].as_array().unwrap();
    let hostile = modules.iter().find(|m| m["name"] == "hostile").unwrap();
    let until = hostile["penalized_until_ms"].as_u64().expect("penalized");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(until > now && until <= now + 10_000, "{hostile}");
    let echo = modules.iter().find(|m| m["name"] == "echo").unwrap();
    assert!(echo["penalized_until_ms"].is_null(), "only the module that timed out: {echo}");
}

#[tokio::test]
async fn a_memory_bomb_stops_at_the_cap_with_memory_limit() {
    let s = hostile_server().await;
    let r = attack(&s, "bomb").await;
    assert_eq!((r["kind"].as_str(), r["errorMsg"].as_str()), (Some("memory_limit"), Some("memory limit")));
}

#[tokio::test]
async fn deep_recursion_is_a_stack_overflow_trap() {
    let s = hostile_server().await;
    let r = attack(&s, "recurse").await;
    assert_eq!((r["kind"].as_str(), r["errorMsg"].as_str()), (Some("handler_trapped"), Some("handler trapped")), "{r}");
}

#[tokio::test]
async fn bad_pointers_to_every_host_function_are_refused_without_harm() {
    let s = hostile_server().await;
    let r = attack(&s, "badptr").await;
    assert_eq!(r["errorMsg"], "all refused", "every host function answered ERR_BAD_POINTER: {r}");
}

#[tokio::test]
async fn a_flood_of_sends_from_one_call_stops_at_the_budget_with_send_limit() {
    let s = hostile_server().await;
    let mut attacker = s.connect("mallory").await;
    let mut bystander = s.connect("alice").await;
    attacker.send("admin/addons/hostile/flood", json!({})).await;
    assert_eq!(bystander.request("ping", json!(null)).await["event"], "ping");
    assert_eq!(bystander.request("echo", json!(1)).await["data"], 1);
    for _ in 0..50 {
        assert_eq!(attacker.recv().await["code"], 0);
    }
    let r = attacker.recv().await;
    assert_eq!((r["code"].as_i64(), r["kind"].as_str()), (Some(-1), Some("send_limit")), "{r}");
    attacker.assert_nothing_queued("no more than max_sends").await;
    assert_eq!(s.metric("send_limit_total").await, 1);
}

#[tokio::test]
async fn an_ungranted_tag_send_is_denied_at_run_time() {
    let s = hostile_server().await;
    let mut admin = s.connect("root").await;
    admin.request("join", json!({"id": "admin"})).await;
    let r = attack(&s, "denied_tag").await;
    assert_eq!(r["errorMsg"], "handler failed with status 4", "ERR_DENIED reached the guest: {r}");
    admin.assert_nothing_queued("nothing reached the tag").await;
}

#[tokio::test]
async fn an_ungranted_import_is_refused_at_load() {
    let manifest = "[modules.hostile]\npath = \"hostile.wat\"\ntags = [\"chat:*\"]\n";
    let err = TestServer::refusal(manifest, &[("hostile.wat", &wat("hostile.wat"))]).await;
    assert!(err.contains("send_to_client") && err.contains("capabilities"), "{err}");
}

#[tokio::test]
async fn a_route_outside_the_module_prefix_is_rejected() {
    let manifest = "[modules.echo]\npath = \"echo.wat\"\nprefixes = [\"admin/addons/echo/\"]\n\
        [[routes]]\nevent = \"admin/addons/other/take\"\nmodule = \"echo\"\nexport = \"echo\"\n";
    let err = TestServer::refusal(manifest, &[("echo.wat", &wat("echo.wat"))]).await;
    assert!(err.contains("outside module \"echo\"'s namespace"), "{err}");
}

#[tokio::test]
async fn overlapping_module_namespaces_are_rejected() {
    let manifest = "[modules.a]\npath = \"echo.wat\"\nprefixes = [\"shop/\"]\n\
        [modules.b]\npath = \"echo.wat\"\nprefixes = [\"shop/cart/\"]\n";
    let err = TestServer::refusal(manifest, &[("echo.wat", &wat("echo.wat"))]).await;
    assert!(err.contains("overlapping"), "{err}");
}

#[tokio::test]
async fn huge_memories_tables_and_data_are_refused_at_load() {
    let m = |body: &str| {
        format!(
            "(module (memory (export \"memory\") {body}) (func (export \"switchyard_abi_v1\")) \
             (func (export \"alloc\") (param i32) (result i32) (i32.const 0)))"
        )
    };
    let manifest = "[modules.big]\npath = \"big.wat\"\n";
    let err = TestServer::refusal(manifest, &[("big.wat", &m("1000"))]).await;
    assert!(err.contains("initial memory"), "{err}");

    let table = "(module (memory (export \"memory\") 1) (table 100000 funcref) (func (export \"switchyard_abi_v1\")) \
        (func (export \"alloc\") (param i32) (result i32) (i32.const 0)))";
    let err = TestServer::refusal(manifest, &[("big.wat", table)]).await;
    assert!(err.contains("table of 100000"), "{err}");

    let data = format!("1) (data (i32.const 0) \"{}\"", "a".repeat(1024 * 1024 + 1));
    let manifest_1mib = "[modules.big]\npath = \"big.wat\"\n[modules.big.limits]\nmemory_mib = 1\n";
    let err = TestServer::refusal(manifest_1mib, &[("big.wat", &m(&data))]).await;
    assert!(err.contains("data segments"), "{err}");
}

#[tokio::test]
async fn wasi_output_reaches_the_log_only_when_granted() {
    capture_logs();
    let manifest = "[modules.wasiprinter]\npath = \"wasi_hello.wat\"\ncapabilities = [\"wasi\"]\n\
        [[routes]]\nevent = \"wasiprinter/hello\"\nmodule = \"wasiprinter\"\nexport = \"hello\"\n";
    let s = TestServer::with(manifest, &[("wasi_hello.wat", &wat("wasi_hello.wat"))], |_| {}).await;
    let mut c = s.connect("alice").await;
    assert_eq!(c.request("wasiprinter/hello", json!(null)).await["code"], 0);
    let logs = captured_logs();
    let line = logs.lines().find(|l| l.contains("hello from wasi guest")).expect("guest stdout logged");
    assert!(line.contains("wasiprinter"), "prefixed with the module name: {line}");

    let ungranted = manifest.replace("capabilities = [\"wasi\"]\n", "");
    let err = TestServer::refusal(&ungranted, &[("wasi_hello.wat", &wat("wasi_hello.wat"))]).await;
    assert!(err.contains("not granted WASI"), "{err}");
}

#[tokio::test]
async fn with_every_instance_slot_taken_a_call_is_answered_busy() {
    // A longer deadline than the other attacks': the busy answer must come while it spins.
    let manifest = hostile_manifest().replace("timeout_ms = 400", "timeout_ms = 1000");
    let s = TestServer::with(&manifest, &[("hostile.wat", &wat("hostile.wat")), ("echo.wat", &wat("echo.wat"))], |c| {
        c.runtime.max_instances = 1
    })
    .await;
    let mut attacker = s.connect("mallory").await;
    let mut other = s.connect("alice").await;
    let mut admin = s.connect("admin").await;
    attacker.send("admin/addons/hostile/tell_admin_and_spin", json!({})).await;
    // The call tells "admin" it runs (its own replies go out when it ends): from then until its
    // deadline, it holds the only instance slot.
    assert_eq!(admin.recv().await["event"], "admin/addons/hostile/tell_admin_and_spin");
    let r = other.request("echo", json!(1)).await;
    assert_eq!((r["code"].as_i64(), r["kind"].as_str()), (Some(-1), Some("busy")), "{r}");
    assert_eq!(attacker.recv().await["kind"], "handler_timeout");
    assert_eq!(other.request("echo", json!(2)).await["data"], 2, "the slot is free again");
}
