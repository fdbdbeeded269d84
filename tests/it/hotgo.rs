//! hotgo compatibility: what a hotgo deployment and its browser client need on day one.

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::*;

/// Reads frames until the close; returns the frames before it and the close code.
async fn frames_until_close(c: &mut Client) -> (Vec<Value>, Option<u16>) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::protocol::Message;
    let mut frames = Vec::new();
    loop {
        match tokio::time::timeout(TIMEOUT, c.ws.next()).await.expect("server closes in time") {
            Some(Ok(Message::Text(t))) => frames.push(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(f))) => return (frames, f.map(|f| u16::from(f.code))),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (frames, None),
        }
    }
}

fn hs256(claims: &Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(switchyard::config::DEV_SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), claims, &key).unwrap()
}

#[tokio::test]
async fn a_kicked_client_gets_a_kick_frame_then_4001() {
    let s = TestServer::start().await;
    let mut a = s.connect("alice").await;
    let (status, _) = s.api(reqwest::Method::DELETE, &format!("/api/clients/{}", a.id), None).await;
    assert_eq!(status, 200);
    let (frames, code) = frames_until_close(&mut a).await;
    assert_eq!(code, Some(4001));
    let last = frames.last().expect("a frame before the close");
    assert_eq!((last["event"].as_str(), last["code"].as_i64()), (Some("kick"), Some(0)), "{frames:?}");
    assert_eq!(last["data"], json!({"reason": "kicked"}));
}

#[tokio::test]
async fn every_connection_of_a_kicked_user_gets_a_kick_frame_then_4001() {
    let s = TestServer::start().await;
    let mut a1 = s.connect("alice").await;
    let mut a2 = s.connect("alice").await;
    let mut b = s.connect("bob").await;
    let (status, r) = s.api(reqwest::Method::DELETE, "/api/users/alice", None).await;
    assert_eq!((status, r["closed_here"].as_u64()), (200, Some(2)));
    for c in [&mut a1, &mut a2] {
        let (frames, code) = frames_until_close(c).await;
        assert_eq!(code, Some(4001));
        assert_eq!(frames.last().map(|f| f["event"].clone()), Some(json!("kick")), "{frames:?}");
    }
    assert_eq!(b.request("ping", json!(null)).await["event"], "ping", "bob is not kicked");
}

#[tokio::test]
async fn a_token_without_exp_is_refused_unless_require_exp_is_off() {
    let claims = json!({"id": 7, "username": "admin"});
    let s =
        TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], |c| c.auth.user_claim = "id".into()).await;
    let url = format!("{}?authorization={}", s.ws_url(), hs256(&claims));
    match tokio_tungstenite::connect_async(url.into_client_request().unwrap()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 401),
        other => panic!("expected a 401 refusal, got {:?}", other.map(|_| ())),
    }
    assert_eq!(s.metric("auth_failures_total").await, 1);

    let s = TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], |c| {
        c.auth.user_claim = "id".into();
        c.auth.require_exp = false;
    })
    .await;
    let url = format!("{}?authorization={}", s.ws_url(), hs256(&claims));
    let mut c = Client::connect(url.into_client_request().unwrap()).await.unwrap();
    assert_eq!(c.request("echo", json!("hi")).await["data"], "hi");
    let (_, info) = s.get(&format!("/api/clients/{}", c.id)).await;
    assert_eq!(info["user"], "7", "a numeric user claim is the user id");
    assert_eq!(s.metric("auth_failures_total").await, 0);
}

#[tokio::test]
async fn join_and_quit_accept_a_numeric_tag_id() {
    let s = TestServer::start().await;
    let mut a = s.connect("alice").await;
    assert_eq!(a.request("join", json!({"id": 42})).await["data"], json!(["42"]));
    let (_, r) = s.post("/api/send/tag", json!({"tag": "42", "event": "news", "data": 1})).await;
    assert_eq!(r["delivered"], 1);
    assert_eq!(a.recv().await["event"], "news");
    assert_eq!(a.request("quit", json!({"id": 42})).await["data"], json!([]));
    let r = a.request("join", json!({"id": true})).await;
    assert_eq!((r["code"].as_i64(), r["kind"].as_str()), (Some(-1), Some("bad_request")));
}
