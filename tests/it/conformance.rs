//! One conformance suite, run against every language's echo and chat modules (built from
//! source by that language's build script; a missing toolchain fails the build loudly).
//! The expected behaviour is docs/HANDLERS.md. The `with_instance_reuse_*` scenarios serve
//! the modules with `instance = "reuse"`, so every event after the first runs in a kept
//! instance after the module's `switchyard_reset` (a component's, as it is). Python and
//! JavaScript build WebAssembly components (docs/ABI.md, the component ABI), served from the
//! same manifest as the core modules.

use serde_json::{Value, json};

use crate::common::*;

/// `module_extra` is added to both module tables.
fn manifest(build: &std::path::Path, module_extra: &str) -> String {
    format!(
        r#"
[modules.echo]
path = "{echo}"
prefixes = ["echo", "fail", "admin/addons/hgexample/"]
{module_extra}

[modules.chat]
path = "{chat}"
prefixes = ["chat/"]
tags = ["chat:lobby", "chat:room-*"]
{module_extra}

[[routes]]
event = "echo"
module = "echo"
export = "echo"
[[routes]]
event = "admin/addons/hgexample/testMessage"
module = "echo"
export = "echo"
[[routes]]
event = "fail"
module = "echo"
export = "fail"
[[routes]]
event = "chat/join"
module = "chat"
export = "chat_join"
[[routes]]
event = "chat/send"
module = "chat"
export = "chat_send"
[[routes]]
event = "chat/online"
module = "chat"
export = "chat_online"
"#,
        echo = build.join("echo.wasm").display(),
        chat = build.join("chat.wasm").display()
    )
}

pub async fn server(script: &str) -> TestServer {
    let build = build_once(script);
    start(&build, "").await
}

/// The modules in `reuse_dir` (relative to the build script's folder) with `instance = "reuse"`.
/// Memory is capped at 1 MiB for core modules: an instance whose `switchyard_reset` frees
/// nothing runs out of it within a few dozen 20 KiB requests (well before the host would
/// retire it for growing). A component's language runtime starts at 9 to 13 MiB: its cap is
/// the default 16 MiB, which a runtime that kept every request would also run out of.
pub async fn reuse_server(script: &str, reuse_dir: &str) -> TestServer {
    let build = build_once(script).parent().unwrap().join(reuse_dir);
    let memory_mib = if is_component(&build.join("echo.wasm")) { 16 } else { 1 };
    start(&build, &format!("instance = \"reuse\"\nlimits = {{ memory_mib = {memory_mib} }}")).await
}

/// Whether a built module is a component (its header's version field), not a core module.
fn is_component(path: &std::path::Path) -> bool {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes.get(4..8).is_some_and(|v| v != [1, 0, 0, 0])
}

/// A server for the modules in `build`. Components take seconds to compile: their servers
/// share one compiled-module cache beside the build and start one at a time, so only the first
/// compiles.
async fn start(build: &std::path::Path, module_extra: &str) -> TestServer {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let manifest = manifest(build, module_extra);
    if !is_component(&build.join("echo.wasm")) {
        return TestServer::with(&manifest, &[], |c| c.runtime.watch = false).await;
    }
    let cache = build.join(".conformance-cache");
    let _one = ONE_AT_A_TIME.lock().await;
    TestServer::with(&manifest, &[], |c| {
        c.runtime.watch = false;
        c.runtime.cache_dir = Some(cache);
    })
    .await
}

pub async fn echo(script: &str) {
    let s = server(script).await;
    let mut c = s.connect("alice").await;
    for data in [json!({"a": [1, "two", {"3": null}]}), json!("héllo \"w\""), json!(42), Value::Null] {
        let r = c.request("echo", data.clone()).await;
        assert_eq!((r["event"].as_str(), r["code"].as_i64()), (Some("echo"), Some(0)), "{r}");
        assert_eq!(r["data"], data);
    }
    let r = c.request("admin/addons/hgexample/testMessage", json!({"msg": "消息内容"})).await;
    assert_eq!(r["event"], "admin/addons/hgexample/testMessage");
    assert_eq!(r["data"], json!({"msg": "消息内容"}));
}

/// 300 sequential events from two users through one kept instance: every 3rd echoes a
/// ~20 KiB string (different each time, so a reset that frees too much or too little shows),
/// every 25th is `fail` (a non-zero status also keeps the instance).
pub async fn echo_reuse(script: &str, reuse_dir: &str) {
    let s = reuse_server(script, reuse_dir).await;
    let mut users = [s.connect("alice").await, s.connect("bob").await];
    for i in 0..300usize {
        let c = &mut users[i % 2];
        if i % 25 == 24 {
            let r = c.request("fail", json!({"i": i})).await;
            assert_eq!(r["errorMsg"], "handler failed with status 3", "request {i}: {r}");
            continue;
        }
        let data = match i % 3 {
            0 => {
                let pattern = ["abcé✓", "é✓abc", "✓abcé"][i / 3 % 3]; // 8 bytes of UTF-8
                json!(format!("{i:05}:{}", pattern.repeat(20 * 1024 / 8)))
            }
            1 => json!({"i": i, "list": [i, "x".repeat(i), {"nested": i % 7 == 0}]}),
            _ => json!(i),
        };
        let r = c.request("echo", data.clone()).await;
        assert_eq!((r["event"].as_str(), r["code"].as_i64()), (Some("echo"), Some(0)), "request {i}: {r}");
        assert!(r["data"] == data, "request {i}: echoed data differs");
    }
}

pub async fn chat(script: &str) {
    chat_scenario(server(script).await).await
}

/// The chat scenario, then more rounds, all through kept instances.
pub async fn chat_reuse(script: &str, reuse_dir: &str) {
    let s = reuse_server(script, reuse_dir).await;
    let (mut a, mut b) = (s.connect("alice").await, s.connect("bob").await);
    for round in 0..20 {
        let room = format!("room-{round}");
        let r = a.request("chat/join", json!({"room": room})).await;
        assert_eq!(r["data"], json!({"room": room, "users": ["alice"]}), "round {round}: {r}");
        let r = b.request("chat/join", json!({"room": room})).await;
        assert_eq!(r["data"], json!({"room": room, "users": ["alice", "bob"]}), "round {round}: {r}");
        let text = format!("round {round} ✓ {}", "t".repeat(round * 100));
        a.send("chat/send", json!({"room": room, "text": text})).await;
        let expected = json!({"room": room, "from": "alice", "text": text});
        let m = b.recv().await;
        assert_eq!((m["event"].as_str(), &m["data"]), (Some("chat/message"), &expected), "round {round}");
        let mut own = [a.recv().await, a.recv().await];
        own.sort_by_key(|f| f["event"].as_str().unwrap().to_string());
        assert_eq!(own[0]["data"], expected, "round {round}");
        assert_eq!(own[1]["data"], json!({"delivered": 2}), "round {round}");
        let r = a.request("chat/online", json!({"room": room})).await;
        assert_eq!(r["data"], json!({"room": room, "users": ["alice", "bob"]}), "round {round}: {r}");
        let r = b.request("chat/join", json!({"room": "no spaces"})).await;
        assert_eq!(r["errorMsg"], "invalid room", "round {round}: {r}");
    }
    drop((a, b));
    chat_scenario(s).await
}

async fn chat_scenario(s: TestServer) {
    let mut a = s.connect("alice").await;
    let mut b = s.connect("bob").await;
    let r = a.request("chat/join", json!({"room": "lobby"})).await;
    assert_eq!((r["event"].as_str(), r["code"].as_i64()), (Some("chat/join"), Some(0)), "{r}");
    assert_eq!(r["data"], json!({"room": "lobby", "users": ["alice"]}));
    let r = b.request("chat/join", json!({"room": "lobby"})).await;
    assert_eq!(r["data"], json!({"room": "lobby", "users": ["alice", "bob"]}));
    let r = b.request("chat/online", json!({"room": "lobby"})).await;
    assert_eq!(r["data"], json!({"room": "lobby", "users": ["alice", "bob"]}));

    b.send("chat/send", json!({"room": "lobby", "text": "hi \"there\" ✓"})).await;
    let expected = json!({"room": "lobby", "from": "bob", "text": "hi \"there\" ✓"});
    let m = a.recv().await;
    assert_eq!((m["event"].as_str(), &m["data"]), (Some("chat/message"), &expected));
    let mut own = [b.recv().await, b.recv().await];
    own.sort_by_key(|f| f["event"].as_str().unwrap().to_string());
    assert_eq!(own[0]["data"], expected);
    assert_eq!((own[1]["event"].as_str(), &own[1]["data"]), (Some("chat/send"), &json!({"delivered": 2})));

    for bad in [json!({"room": "no spaces"}), json!({}), json!("lobby"), json!({"room": "x".repeat(65)})] {
        let r = a.request("chat/join", bad).await;
        assert_eq!((r["code"].as_i64(), r["errorMsg"].as_str()), (Some(-1), Some("invalid room")), "{r}");
    }
    let r = a.request("chat/send", json!({"room": "lobby", "text": 5})).await;
    assert_eq!(r["errorMsg"], "invalid text");
}

pub async fn error_status(script: &str) {
    let s = server(script).await;
    let mut c = s.connect("alice").await;
    let r = c.request("fail", json!({})).await;
    assert_eq!((r["event"].as_str(), r["code"].as_i64()), (Some("fail"), Some(-1)));
    assert_eq!(r["errorMsg"], "handler failed with status 3");
    assert_eq!(c.request("echo", json!(1)).await["data"], 1);
}

pub async fn denied_capability(script: &str) {
    let s = server(script).await;
    let mut c = s.connect("alice").await;
    // chat:vip is outside the granted patterns chat:lobby and chat:room-*.
    let r = c.request("chat/join", json!({"room": "vip"})).await;
    assert_eq!(
        (r["event"].as_str(), r["code"].as_i64(), r["errorMsg"].as_str()),
        (Some("chat/join"), Some(-1), Some("denied"))
    );
    let r = c.request("chat/join", json!({"room": "room-7"})).await;
    assert_eq!(r["data"], json!({"room": "room-7", "users": ["alice"]}));
}

/// `$reuse_dir`: the folder, next to the build script, of the modules to serve with
/// `instance = "reuse"` (they must export `switchyard_reset`).
macro_rules! language {
    ($lang:ident, $script:literal, reuse: $reuse_dir:literal) => {
        mod $lang {
            #[tokio::test]
            async fn echo_replies_with_the_same_data() {
                super::echo($script).await
            }
            #[tokio::test]
            async fn chat_joins_sends_and_lists_the_room() {
                super::chat($script).await
            }
            #[tokio::test]
            async fn a_non_zero_status_becomes_an_error_frame() {
                super::error_status($script).await
            }
            #[tokio::test]
            async fn an_ungranted_tag_is_denied() {
                super::denied_capability($script).await
            }
            #[tokio::test]
            async fn with_instance_reuse_echo_answers_300_sequential_requests() {
                super::echo_reuse($script, $reuse_dir).await
            }
            #[tokio::test]
            async fn with_instance_reuse_chat_joins_sends_and_lists_the_room() {
                super::chat_reuse($script, $reuse_dir).await
            }
        }
    };
}

language!(rust, "handlers/build.sh", reuse: "build");
language!(c, "examples/c/build.sh", reuse: "build");
language!(zig, "examples/zig/build.sh", reuse: "build");
// The default AssemblyScript builds use --runtime stub, which cannot be reset; build.sh also
// builds them with --runtime minimal and switchyard_reset into build/reuse.
language!(assemblyscript, "examples/assemblyscript/build.sh", reuse: "build/reuse");
// Components (componentize-py, componentize-js): the same files serve both instance modes.
language!(python, "examples/python/build.sh", reuse: "build");
language!(javascript, "examples/javascript/build.sh", reuse: "build");

/// A component's imports decide its grants at load, one interface per grant: chat imports
/// `switchyard:handler/tags`, so without `tags` in its manifest entry it is refused, naming
/// the interface and the fix.
#[tokio::test]
async fn a_component_importing_an_ungranted_interface_is_refused_at_load() {
    for script in ["examples/python/build.sh", "examples/javascript/build.sh"] {
        let chat = build_once(script).join("chat.wasm");
        let manifest = format!(
            "[modules.chat]\npath = \"{}\"\n[[routes]]\nevent = \"chat/join\"\nmodule = \"chat\"\nexport = \"chat_join\"\n",
            chat.display()
        );
        let err = TestServer::refusal(&manifest, &[]).await;
        assert!(
            err.contains("imports switchyard:handler/tags@1.0.0, which module \"chat\" is not granted")
                && err.contains("modules.chat.tags"),
            "{script}: {err}"
        );
    }
}

/// A component swapped for a core module under load, and back: across each swap every request
/// is answered exactly once and every connection moves to the new version for good. The
/// component is JavaScript's echo; the core module echo_v2.wat, whose answers are marked.
#[tokio::test]
async fn a_component_hot_swaps_under_load_for_a_core_module_and_back() {
    use crate::handlers::{marked, plain, swap_under_load};
    let build = build_once("examples/javascript/build.sh");
    let component = std::fs::read(build.join("echo.wasm")).unwrap();
    let core = wat::parse_str(wat("echo_v2.wat")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("switchyard.toml"), ECHO_MANIFEST.replace("echo.wat", "echo.wasm")).unwrap();
    std::fs::write(dir.path().join("echo.wasm"), &component).unwrap();
    // The component's compile is cached, so swapping back to it takes no second compile.
    let s = TestServer::in_dir(dir, |c| c.runtime.cache_dir = Some(build.join(".conformance-cache"))).await;
    swap_under_load(&s, "echo.wasm", &core, plain, marked, 1).await;
    swap_under_load(&s, "echo.wasm", &component, marked, plain, 2).await;
    let (_, st) = s.get("/admin/modules").await;
    assert_eq!(
        (st["modules"][0]["generation"].as_u64(), st["modules"][0]["kind"].as_str()),
        (Some(3), Some("component"))
    );
}
