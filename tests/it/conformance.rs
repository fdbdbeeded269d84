//! One conformance suite, run against every language's echo and chat modules (built from
//! source by that language's build script; a missing toolchain fails the build loudly).
//! The expected behaviour is docs/HANDLERS.md.

use serde_json::{Value, json};

use crate::common::*;

fn manifest(build: &std::path::Path) -> String {
    format!(
        r#"
[modules.echo]
path = "{echo}"
prefixes = ["echo", "fail", "admin/addons/hgexample/"]

[modules.chat]
path = "{chat}"
prefixes = ["chat/"]
tags = ["chat:lobby", "chat:room-*"]

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
    TestServer::with(&manifest(&build), &[], |c| c.runtime.watch = false).await
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

pub async fn chat(script: &str) {
    let s = server(script).await;
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

macro_rules! language {
    ($lang:ident, $script:literal) => {
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
        }
    };
}

language!(rust, "handlers/build.sh");
language!(c, "examples/c/build.sh");
language!(zig, "examples/zig/build.sh");
language!(assemblyscript, "examples/assemblyscript/build.sh");
