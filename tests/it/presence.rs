//! Presence and tags: join/quit, tag sends, multi-login, heartbeat, slow readers, shutdown.

use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::*;

#[tokio::test]
async fn join_and_quit_answer_with_the_tag_list_and_tag_sends_follow_them() {
    let s = TestServer::start().await;
    let mut a = s.connect("alice").await;
    let mut b = s.connect("bob").await;
    assert_eq!(a.request("join", json!({"id": "room1"})).await["data"], json!(["room1"]));
    assert_eq!(b.request("join", json!({"id": "room1"})).await["data"], json!(["room1"]));
    let (_, r) = s.post("/api/send/tag", json!({"tag": "room1", "event": "news", "data": {"n": 1}})).await;
    assert_eq!(r["delivered"], 2);
    assert_eq!(a.recv().await["data"]["n"], 1);
    assert_eq!(b.recv().await["data"]["n"], 1);

    assert_eq!(b.request("quit", json!({"id": "room1"})).await["data"], json!([]));
    let (_, r) = s.post("/api/send/tag", json!({"tag": "room1", "event": "news", "data": {"n": 2}})).await;
    assert_eq!(r["delivered"], 1);
    assert_eq!(a.recv().await["data"]["n"], 2);
    b.assert_nothing_queued("a tag send after quit").await;
}

#[tokio::test]
async fn join_without_an_id_is_an_error() {
    let s = TestServer::start().await;
    let mut a = s.connect("alice").await;
    let r = a.request("join", json!({})).await;
    assert_eq!((r["code"].as_i64(), r["kind"].as_str()), (Some(-1), Some("bad_request")));
}

#[tokio::test]
async fn tags_claim_in_the_token_joins_those_tags() {
    let s = TestServer::start().await;
    let token = s.auth.mint("carol", 600, &["ops".to_string()], false).unwrap();
    let mut c = Client::connect(format!("{}?token={token}", s.ws_url()).into_client_request().unwrap()).await.unwrap();
    let (_, r) = s.post("/api/send/tag", json!({"tag": "ops", "event": "alert", "data": "disk"})).await;
    assert_eq!(r["delivered"], 1);
    assert_eq!(c.recv().await["data"], "disk");
}

#[tokio::test]
async fn a_user_on_two_connections_receives_a_user_send_on_both() {
    let s = TestServer::start().await;
    let mut a1 = s.connect("alice").await;
    let mut a2 = s.connect("alice").await;
    let mut b = s.connect("bob").await;
    let (_, r) = s.post("/api/send/user", json!({"user": "alice", "event": "dm", "data": "hi"})).await;
    assert_eq!(r["delivered"], 2);
    assert_eq!(a1.recv().await["data"], "hi");
    assert_eq!(a2.recv().await["data"], "hi");
    b.assert_nothing_queued("another user's send").await;
}

#[tokio::test]
async fn heartbeat_timeout_closes_and_removes_the_client_from_every_index() {
    let s = TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], |c| {
        c.ws.heartbeat_timeout_secs = 1;
        c.ws.ping_interval_secs = 10;
    })
    .await;
    let mut silent = s.connect("ghost").await;
    let last_frame = std::time::Instant::now();
    silent.request("join", json!({"id": "haunt"})).await;
    let (_, online) = s.get("/api/online").await;
    assert_eq!(
        (online["clients"].as_u64(), online["users"].as_u64(), online["tags"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    // Say nothing, and wait for the server to close the connection.
    assert_eq!(silent.expect_close().await, Some(4000));
    assert!(last_frame.elapsed() >= Duration::from_secs(1), "not before the timeout: {:?}", last_frame.elapsed());
    assert_eq!(s.metric("heartbeat_timeouts_total").await, 1);
    // The client is removed from every index before its close frame is sent.
    let (_, online) = s.get("/api/online").await;
    assert_eq!(
        (online["clients"].as_u64(), online["users"].as_u64(), online["tags"].as_u64()),
        (Some(0), Some(0), Some(0))
    );
}

#[tokio::test]
async fn a_client_that_pings_stays_online_past_the_timeout() {
    let s =
        TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], |c| c.ws.heartbeat_timeout_secs = 1).await;
    let mut c = s.connect("alice").await;
    // Time passing is the behaviour under test: 1.8 s of pings 300 ms apart, past the 1 s
    // timeout (the smallest the config allows).
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(c.request("ping", json!(null)).await["event"], "ping");
    }
    assert_eq!(s.metric("heartbeat_timeouts_total").await, 0);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_while_others_keep_receiving() {
    let s = TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], |c| {
        c.ws.outbound_queue_bytes = 256 * 1024;
        c.ws.write_timeout_ms = 2000;
    })
    .await;
    let mut stalled = s.connect("slow").await;
    let mut healthy = s.connect("fast").await;
    stalled.request("join", json!({"id": "firehose"})).await;
    healthy.request("join", json!({"id": "firehose"})).await;
    let payload = "y".repeat(16 * 1024);
    let reader = tokio::spawn(async move {
        let mut got = 0;
        while got < 600 {
            let f = healthy.recv().await;
            assert_eq!(f["event"], "fire");
            got += 1;
        }
        (got, healthy)
    });
    // 600 x 16 KiB = ~10 MiB: far past the stalled client's socket buffers and queue bound.
    for i in 0..600 {
        s.post("/api/send/tag", json!({"tag": "firehose", "event": "fire", "data": {"i": i, "p": payload}})).await;
    }
    let (got, _healthy) = reader.await.unwrap();
    assert_eq!(got, 600, "the healthy client received everything");
    // The stalled client was cut off: its frames end with a close (or a reset).
    wait_until("the stalled client is offline", TIMEOUT, async || s.get("/api/online").await.1["clients"] == 1).await;
    assert_eq!(s.metric("slow_consumers_total").await, 1);
    drop(stalled);
}

#[tokio::test]
async fn shutdown_closes_every_client_with_1001() {
    let s = TestServer::start().await;
    let mut a = s.connect("alice").await;
    let mut b = s.connect("bob").await;
    let stop = tokio::spawn(s.stop());
    assert_eq!(a.expect_close().await, Some(1001));
    assert_eq!(b.expect_close().await, Some(1001));
    stop.await.unwrap();
}
