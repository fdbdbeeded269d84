//! WASM handlers: the default Rust handlers built from source, WAT written from docs/ABI.md,
//! errors reaching the client, hot swap under load, and broken modules.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

/// The shipped manifest and handlers, built from source by handlers/build.sh.
async fn default_server() -> TestServer {
    build_once("handlers/build.sh");
    TestServer::with("", &[], |c| {
        c.runtime.manifest = repo().join("handlers/switchyard.toml");
        c.runtime.watch = false;
    })
    .await
}

#[tokio::test]
async fn default_echo_answers_echo_and_the_hotgo_test_message() {
    let s = default_server().await;
    let mut c = s.connect("alice").await;
    let r = c.request("echo", json!({"hello": ["w", 1]})).await;
    assert_eq!((r["event"].as_str(), r["code"].as_i64()), (Some("echo"), Some(0)));
    assert_eq!(r["data"], json!({"hello": ["w", 1]}));
    let r = c.request("admin/addons/hgexample/testMessage", json!("消息内容")).await;
    assert_eq!(r["event"], "admin/addons/hgexample/testMessage");
    assert_eq!(r["data"], "消息内容");
}

#[tokio::test]
async fn default_chat_joins_sends_to_the_room_and_lists_who_is_online() {
    let s = default_server().await;
    let mut a = s.connect("alice").await;
    let mut b = s.connect("bob").await;
    let r = a.request("chat/join", json!({"room": "lobby"})).await;
    assert_eq!(r["data"], json!({"room": "lobby", "users": ["alice"]}));
    let r = b.request("chat/join", json!({"room": "lobby"})).await;
    assert_eq!(r["data"], json!({"room": "lobby", "users": ["alice", "bob"]}));
    let r = a.request("chat/online", json!({"room": "lobby"})).await;
    assert_eq!(r["data"]["users"], json!(["alice", "bob"]));

    a.send("chat/send", json!({"room": "lobby", "text": "hi \"all\""})).await;
    let mut got = [a.recv().await, a.recv().await];
    got.sort_by_key(|f| f["event"].as_str().unwrap().to_string());
    assert_eq!(got[0]["event"], "chat/message");
    assert_eq!(got[1]["data"], json!({"delivered": 2}));
    let m = b.recv().await;
    assert_eq!(m["event"], "chat/message");
    assert_eq!(m["data"], json!({"room": "lobby", "from": "alice", "text": "hi \"all\""}));

    let r = a.request("chat/join", json!({"room": "bad room!"})).await;
    assert_eq!((r["code"].as_i64(), r["errorMsg"].as_str()), (Some(-1), Some("invalid room")));
}

#[tokio::test]
async fn the_shipped_handlers_run_in_reused_instances_and_serve_many_users() {
    let s = default_server().await;
    let (_, st) = s.get("/admin/modules").await;
    for m in st["modules"].as_array().unwrap() {
        assert_eq!(m["instance"], "reuse", "{st}");
    }
    // Warm instances go from user to user: each still gets only its own reply.
    let (mut a, mut b) = (s.connect("alice").await, s.connect("bob").await);
    for i in 0..50 {
        let r = a.request("echo", json!({"from": "alice", "i": i})).await;
        assert_eq!(r["data"], json!({"from": "alice", "i": i}));
        let r = b.request("chat/online", json!({"room": format!("r{i}")})).await;
        assert_eq!(r["data"], json!({"room": format!("r{i}"), "users": []}));
    }
}

#[tokio::test]
async fn a_wat_handler_written_from_the_abi_doc_echoes() {
    let s = TestServer::start().await;
    let mut c = s.connect("alice").await;
    let r = c.request("echo", json!({"a": [1, 2, 3]})).await;
    assert_eq!(r["data"], json!({"a": [1, 2, 3]}));
    assert_eq!(c.request("echo", Value::Null).await["data"], Value::Null);
}

#[tokio::test]
async fn events_from_one_connection_are_answered_in_the_order_sent() {
    let s = TestServer::start().await;
    let mut c = s.connect("alice").await;
    // Pipelined: all sent before any reply is read.
    for n in 0..200 {
        c.send("echo", json!({"n": n})).await;
    }
    for n in 0..200 {
        assert_eq!(c.recv().await["data"], json!({"n": n}));
    }
}

#[tokio::test]
async fn a_non_zero_status_is_an_error_frame_and_the_connection_stays() {
    let s = TestServer::start().await;
    let mut c = s.connect("alice").await;
    let r = c.request("fail", json!({})).await;
    assert_eq!(r["event"], "fail");
    assert_eq!(r["code"], -1);
    assert_eq!(r["kind"], "handler_failed");
    assert_eq!(r["errorMsg"], "handler failed with status 3");
    assert_eq!(c.request("echo", json!(1)).await["data"], 1);
}

const TRAP_MANIFEST: &str = r#"
[modules.trap]
path = "trap.wat"
[[routes]]
event = "trap/boom"
module = "trap"
export = "boom"
[modules.echo]
path = "echo.wat"
[[routes]]
event = "echo/x"
module = "echo"
export = "echo"
"#;

#[tokio::test]
async fn a_trapping_handler_gives_an_error_frame_and_everything_stays_up() {
    let s = TestServer::with(TRAP_MANIFEST, &[("trap.wat", &wat("trap.wat")), ("echo.wat", &wat("echo.wat"))], |_| {})
        .await;
    let mut c = s.connect("alice").await;
    let r = c.request("trap/boom", json!({})).await;
    assert_eq!((r["code"].as_i64(), r["kind"].as_str()), (Some(-1), Some("handler_trapped")));
    assert!(r["errorMsg"].as_str().unwrap().starts_with("handler trapped"));
    assert_eq!(c.request("echo/x", json!("ok")).await["data"], "ok");
    let mut other = s.connect("bob").await;
    assert_eq!(other.request("echo/x", json!("ok")).await["data"], "ok");
}

#[tokio::test]
async fn hot_swap_under_load_answers_every_request_exactly_once_and_switches_to_v2() {
    hot_swap_under_load(TestServer::start().await).await;
}

/// ECHO_MANIFEST with `instance = "reuse"` and `extra` lines in the echo module's entry.
fn reuse_echo_manifest(extra: &str) -> String {
    let prefixes = "prefixes = [\"echo\", \"fail\"]";
    ECHO_MANIFEST.replace(prefixes, &format!("{prefixes}\ninstance = \"reuse\"{extra}"))
}

#[tokio::test]
async fn hot_swap_of_a_reused_module_switches_every_later_event_to_v2() {
    let manifest = reuse_echo_manifest("");
    hot_swap_under_load(TestServer::with(&manifest, &[("echo.wat", &wat("echo.wat"))], |_| {}).await).await;
}

async fn hot_swap_under_load(s: TestServer) {
    swap_under_load(&s, "echo.wat", wat("echo_v2.wat").as_bytes(), plain, marked, 1).await;
    let (_, st) = s.get("/admin/modules").await;
    assert_eq!(st["modules"][0]["generation"], 2, "{st}");
}

/// What echo.wat (and every language's echo) answers to `data`.
pub fn plain(data: Value) -> Value {
    data
}

/// What echo_v2.wat answers to `data`.
pub fn marked(data: Value) -> Value {
    json!({"v": 2, "d": data})
}

/// Four clients send continuously while `file` is replaced by `new`; `old` and `new_reply` say
/// what the serving and the new version answer. The file is replaced once every client has had
/// an answer from the serving version, and the clients stop once the swap is counted
/// (`reloads_total` reaches `reloads`), each after its first answer from the new one: every
/// request is answered exactly once, and no connection goes back to the old version.
pub async fn swap_under_load(
    s: &TestServer,
    file: &str,
    new: &[u8],
    old: fn(Value) -> Value,
    new_reply: fn(Value) -> Value,
    reloads: u64,
) {
    const CLIENTS: u64 = 4;
    let stop = Arc::new(AtomicBool::new(false));
    let served_by_old = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let mut c = s.connect(&format!("user{i}")).await;
        let (stop, served_by_old) = (stop.clone(), served_by_old.clone());
        tasks.push(tokio::spawn(async move {
            let (mut sent, mut by_old, mut by_new) = (0u64, 0u64, 0u64);
            while !stop.load(Ordering::Relaxed) || by_new == 0 {
                let r = c.request("echo", json!({"n": sent})).await;
                assert_eq!(r["code"], 0, "every request succeeds across the swap: {r}");
                if r["data"] == old(json!({"n": sent})) {
                    assert_eq!(by_new, 0, "no answer from the old version after one from the new");
                    if by_old == 0 {
                        served_by_old.fetch_add(1, Ordering::Relaxed);
                    }
                    by_old += 1;
                } else {
                    assert_eq!(r["data"], new_reply(json!({"n": sent})));
                    by_new += 1;
                }
                sent += 1;
                assert!(sent < 1_000_000);
            }
            c.assert_nothing_queued("exactly one reply per request").await;
            (sent, by_old, by_new)
        }));
    }
    wait_until("every client was answered by the serving version", TIMEOUT, async || {
        served_by_old.load(Ordering::Relaxed) == CLIENTS
    })
    .await;
    s.replace_file(file, new);
    s.wait_metric("reloads_total", reloads).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let (sent, by_old, by_new) = t.await.unwrap();
        assert_eq!(sent, by_old + by_new);
        assert!(by_old > 0 && by_new > 0, "served by both versions: old={by_old} new={by_new}");
    }
}

/// How long a test watches a server for something that must not happen: 15 of the tests'
/// 20 ms debounce periods (`watch_debounce_ms`), long enough for a reload loop to show.
const QUIET: Duration = Duration::from_millis(300);

#[tokio::test]
async fn an_idle_server_does_not_reload_until_a_file_changes() {
    let s = TestServer::start().await;
    // Reloading reads the files; reading must not count as a change, or each reload would
    // trigger the next. That something does not happen takes a while to see: this sleep is
    // the behaviour under test, not a synchronisation.
    for f in ["switchyard.toml", "echo.wat"] {
        std::fs::read(s.dir.path().join(f)).unwrap();
    }
    tokio::time::sleep(QUIET).await;
    assert_eq!(s.metric("reload_checks_total").await, 0, "reading files is no change");
    s.replace_file("echo.wat", wat("echo_v2.wat").as_bytes());
    s.wait_metric("reloads_total", 1).await;
    // The reload read the files: watch for the loop that reading would start.
    tokio::time::sleep(QUIET).await;
    let checks = s.metric("reload_checks_total").await;
    assert!((1..=2).contains(&checks), "one write, at most a couple of reloads, not a loop: {checks}");
    assert_eq!(s.metric("reloads_total").await, 1, "one swap");
}

#[tokio::test]
async fn a_broken_module_leaves_the_good_one_serving_and_shows_in_admin_modules() {
    let s = TestServer::start().await;
    let mut c = s.connect("alice").await;
    let (_, before) = s.get("/admin/modules").await;
    let hash = before["modules"][0]["hash"].clone();
    s.replace_file("echo.wat", b"(module this is not wat");
    wait_until("the reload error is reported", TIMEOUT, async || {
        !s.get("/admin/modules").await.1["modules"][0]["last_error"].is_null()
    })
    .await;
    let (_, status) = s.get("/admin/modules").await;
    let m = &status["modules"][0];
    assert!(m["last_error"].as_str().unwrap().contains("echo.wat"), "{m}");
    assert_eq!(m["hash"], hash);
    assert_eq!(m["generation"], 1);
    assert_eq!(c.request("echo", json!("still v1")).await["data"], "still v1");
    // An explicit reload reports the same.
    let (_, r) = s.post("/admin/reload", json!({})).await;
    assert!(r["modules"][0]["last_error"].is_string());
}

#[tokio::test]
async fn a_manifest_routing_to_a_missing_export_is_refused_naming_file_route_and_fix() {
    let manifest =
        "[modules.echo]\npath = \"echo.wat\"\n[[routes]]\nevent = \"echo/x\"\nmodule = \"echo\"\nexport = \"nope\"\n";
    let err = TestServer::refusal(manifest, &[("echo.wat", &wat("echo.wat"))]).await;
    assert!(err.contains("echo.wat") && err.contains("\"nope\"") && err.contains("export it"), "{err}");
}

#[tokio::test]
async fn compiled_modules_are_cached_on_disk() {
    let s = TestServer::start().await;
    let cache = s.dir.path().join("cache");
    // Wasmtime writes its cache in the background: wait for the file, not for a while.
    wait_until(&format!("a module is cached in {}", cache.display()), TIMEOUT, async || walk(&cache) > 0).await;
}

fn walk(p: &std::path::Path) -> usize {
    std::fs::read_dir(p).map_or(0, |rd| rd.flatten().map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum())
}

fn counter_manifest(instance: &str) -> String {
    format!(
        "[modules.counter]\npath = \"counter.wat\"\ninstance = \"{instance}\"\n\
         [[routes]]\nevent = \"counter/count\"\nmodule = \"counter\"\nexport = \"count\"\n\
         [[routes]]\nevent = \"counter/boom\"\nmodule = \"counter\"\nexport = \"boom\"\n"
    )
}

async fn counter_server(instance: &str) -> TestServer {
    TestServer::with(&counter_manifest(instance), &[("counter.wat", &wat("counter.wat"))], |_| {}).await
}

/// One `counter/count` event: the count its instance has reached.
async fn count(c: &mut Client) -> Value {
    c.request("counter/count", json!(null)).await["data"].clone()
}

#[tokio::test]
async fn by_default_every_event_runs_in_a_fresh_instance() {
    let s = counter_server("fresh").await;
    let (mut a, mut b) = (s.connect("alice").await, s.connect("bob").await);
    assert_eq!(count(&mut a).await, 1);
    assert_eq!(count(&mut b).await, 1);
    assert_eq!(count(&mut a).await, 1);
}

#[tokio::test]
async fn with_instance_reuse_later_events_run_in_the_same_warm_instance() {
    let s = counter_server("reuse").await;
    let (mut a, mut b) = (s.connect("alice").await, s.connect("bob").await);
    // One call at a time: the one warm instance serves every event, whoever sends it.
    assert_eq!(count(&mut a).await, 1);
    assert_eq!(count(&mut a).await, 2);
    assert_eq!(count(&mut b).await, 3);
    let (_, st) = s.get("/admin/modules").await;
    assert_eq!(st["modules"][0]["instance"], "reuse", "{st}");
}

#[tokio::test]
async fn with_instance_reuse_a_trapped_instance_is_never_reused() {
    let s = counter_server("reuse").await;
    let mut a = s.connect("alice").await;
    assert_eq!(count(&mut a).await, 1);
    let r = a.request("counter/boom", json!(null)).await;
    assert_eq!(r["kind"], "handler_trapped");
    assert_eq!(count(&mut a).await, 1, "a fresh instance after the trap");
}

#[tokio::test]
async fn instance_reuse_without_a_reset_export_is_refused_naming_the_fix() {
    let no_reset = wat("echo.wat").replace("(func (export \"switchyard_reset\")", "(func");
    let err = TestServer::refusal(&reuse_echo_manifest(""), &[("echo.wat", &no_reset)]).await;
    assert!(
        err.contains("echo.wat") && err.contains("switchyard_reset") && err.contains("instance = \"fresh\""),
        "{err}"
    );
}

#[tokio::test]
async fn instance_reuse_with_wasi_is_refused() {
    let manifest = reuse_echo_manifest("\ncapabilities = [\"wasi\"]");
    let err = TestServer::refusal(&manifest, &[("echo.wat", &wat("echo.wat"))]).await;
    assert!(err.contains("modules.echo") && err.contains("wasi"), "{err}");
}
