//! The protocol: built-in events, and errors that never go silent.

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::Message;

use crate::common::*;

#[tokio::test]
async fn welcome_frame_carries_the_client_id() {
    let s = TestServer::start().await;
    let c = s.connect("alice").await;
    assert!(!c.id.is_empty());
}

#[tokio::test]
async fn ping_is_answered_with_ping_code_0() {
    let s = TestServer::start().await;
    let mut c = s.connect("alice").await;
    let r = c.request("ping", json!(null)).await;
    assert_eq!(r["event"], "ping");
    assert_eq!(r["code"], 0);
    assert!(r["timestamp"].as_u64().unwrap() > 1_700_000_000);
}

#[tokio::test]
async fn malformed_json_gets_an_error_frame_and_the_connection_stays_usable() {
    let s = TestServer::start().await;
    let mut c = s.connect("alice").await;
    c.send_raw("{not json").await;
    let r = c.recv().await;
    assert_eq!(r["code"], -1);
    assert_eq!(r["kind"], "bad_json");
    assert!(r["errorMsg"].as_str().unwrap().contains("malformed JSON"));
    assert_eq!(c.request("echo", json!("still here")).await["data"], "still here");
}

#[tokio::test]
async fn missing_event_gets_an_error_frame() {
    let s = TestServer::start().await;
    let mut c = s.connect("alice").await;
    c.send_raw(r#"{"data": 1}"#).await;
    let r = c.recv().await;
    assert_eq!((r["code"].as_i64(), r["kind"].as_str()), (Some(-1), Some("missing_event")));
    assert_eq!(c.request("ping", json!(null)).await["code"], 0);
}

#[tokio::test]
async fn unknown_event_gets_an_error_frame_naming_it() {
    let s = TestServer::start().await;
    let mut c = s.connect("alice").await;
    let r = c.request("no/such/event", json!({})).await;
    assert_eq!(r["event"], "no/such/event");
    assert_eq!(r["code"], -1);
    assert_eq!(r["kind"], "unknown_event");
    assert_eq!(c.request("echo", json!(2)).await["data"], 2);
}

#[tokio::test]
async fn binary_frames_get_an_error_frame() {
    let s = TestServer::start().await;
    let mut c = s.connect("alice").await;
    c.ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    let r = c.recv().await;
    assert_eq!(r["kind"], "binary_frame");
    assert_eq!(c.request("echo", json!(3)).await["data"], 3);
}

#[tokio::test]
async fn a_frame_over_the_limit_closes_with_1009() {
    let s = TestServer::start().await;
    let mut c = s.connect("alice").await;
    let big = "x".repeat(70 * 1024);
    c.send("echo", json!(big)).await;
    assert_eq!(c.expect_close().await, Some(1009));
}

#[tokio::test]
async fn a_client_over_the_rate_is_told_and_disconnected_with_1008() {
    let s = TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], |c| {
        c.ws.rate_per_sec = 5;
        c.ws.rate_burst = 5;
    })
    .await;
    let mut c = s.connect("alice").await;
    for _ in 0..20 {
        c.send("ping", json!(null)).await;
    }
    let mut saw_rate_error = false;
    let code = loop {
        match c.ws.next_frame().await {
            Some(Message::Text(t)) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                saw_rate_error |= v["kind"] == "rate_limited";
            }
            Some(Message::Close(f)) => break f.map(|f| u16::from(f.code)),
            Some(_) => {}
            None => break None,
        }
    };
    assert!(saw_rate_error, "the client is told before it is cut off");
    assert_eq!(code, Some(1008));
}

/// Small helper trait so tests can read raw frames.
trait NextFrame {
    async fn next_frame(&mut self) -> Option<Message>;
}

impl NextFrame for tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    async fn next_frame(&mut self) -> Option<Message> {
        use futures_util::StreamExt;
        tokio::time::timeout(TIMEOUT, self.next()).await.expect("frame in time")?.ok()
    }
}

/// `request` in the browser client matches replies by the frame's optional `id`.
#[tokio::test]
async fn an_id_on_a_frame_comes_back_on_every_reply_and_error_for_it() {
    let s = TestServer::start().await;
    let mut c = s.connect("ida").await;
    let cases = [
        (r#"{"event":"echo","data":1,"id":"1"}"#, "echo", 0, json!("1")),
        (r#"{"event":"no/such/event","id":"2"}"#, "no/such/event", -1, json!("2")),
        (r#"{"event":"join","data":{"id":"room"},"id":"3"}"#, "join", 0, json!("3")),
        (r#"{"event":"quit","data":{"id":"room"},"id":4}"#, "quit", 0, json!(4)),
        (r#"{"event":"ping","id":"5"}"#, "ping", 0, json!("5")),
        (r#"{"event":"fail","id":"6"}"#, "fail", -1, json!("6")),
        (r#"{"event":"echo","data":2}"#, "echo", 0, Value::Null),
    ];
    for (frame, event, code, id) in cases {
        c.send_raw(frame).await;
        let r = c.recv().await;
        assert_eq!(
            (r["event"].as_str(), r["code"].as_i64(), &r["id"]),
            (Some(event), Some(code), &id),
            "{frame} -> {r}"
        );
    }
    c.send_raw(r#"{"event":"echo","id":{"no":1}}"#).await;
    let r = c.recv().await;
    assert_eq!((r["kind"].as_str(), &r["id"]), (Some("bad_request"), &Value::Null), "{r}");
    c.assert_nothing_queued("one reply per frame").await;
}
