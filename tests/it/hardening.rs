//! Production hardening (issue #15): bounded parsing, guests that are not one user, writes
//! that always have a deadline.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde_json::json;

use crate::common::*;

// ---- Bounded parsing ----

fn nested(depth: usize) -> serde_json::Value {
    (0..depth).fold(json!(1), |v, _| json!([v]))
}

#[tokio::test]
async fn data_nested_deeper_than_max_json_depth_is_bad_json_and_the_connection_stays() {
    let s = TestServer::start().await;
    let mut c = s.connect("alice").await;
    // serde_json's own recursion limit is 128: build the text by hand to go past it too.
    for depth in [65, 1000] {
        let text = format!(r#"{{"event":"echo","data":{}1{}}}"#, "[".repeat(depth), "]".repeat(depth));
        c.send_raw(&text).await;
        let r = c.recv().await;
        assert_eq!(
            (r["event"].as_str(), r["code"].as_i64(), r["kind"].as_str()),
            (Some("error"), Some(-1), Some("bad_json"))
        );
        assert!(r["errorMsg"].as_str().unwrap().contains("deeper than 64"), "{r}");
    }
    let r = c.request("echo", nested(64)).await;
    assert_eq!((r["code"].as_i64(), &r["data"]), (Some(0), &nested(64)), "64 levels are fine");
    let brackets = "[{".repeat(5000);
    assert_eq!(c.request("echo", json!(brackets)).await["data"], json!(brackets), "brackets in a string do not nest");
    assert_eq!(s.metric("protocol_errors_total").await, 2);
}

#[tokio::test]
async fn max_json_depth_is_a_setting() {
    let s = TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], |c| c.ws.max_json_depth = 3).await;
    let mut c = s.connect("alice").await;
    assert_eq!(c.request("echo", nested(3)).await["code"], 0);
    let r = c.request("echo", nested(4)).await;
    assert_eq!(r["kind"], "bad_json");
    assert!(r["errorMsg"].as_str().unwrap().contains("deeper than 3"), "{r}");
}

// ---- Guests are not one user ----

const TARGETS_MANIFEST: &str = r#"
[modules.targets]
path = "targets.wat"
prefixes = ["targets/"]
capabilities = ["send_to_user", "send_to_client"]

[[routes]]
event = "targets/user"
module = "targets"
export = "to_empty_user"

[[routes]]
event = "targets/client"
module = "targets"
export = "to_empty_client"
"#;

#[tokio::test]
async fn a_send_to_the_empty_user_or_client_is_err_invalid_and_reaches_no_guest() {
    let s =
        TestServer::with(TARGETS_MANIFEST, &[("targets.wat", &wat("targets.wat"))], |c| c.auth.anonymous = true).await;
    let guest_url =
        || tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(s.ws_url()).unwrap();
    let mut g1 = Client::connect(guest_url()).await.unwrap();
    let mut g2 = Client::connect(guest_url()).await.unwrap();
    let mut alice = s.connect("alice").await;
    let (_, online) = s.get("/api/online").await;
    assert_eq!((online["clients"].as_u64(), online["users"].as_u64()), (Some(3), Some(1)), "guests are no user");
    for event in ["targets/user", "targets/client"] {
        let r = alice.request(event, json!(null)).await;
        assert_eq!(r["kind"], "handler_failed", "{r}");
        assert_eq!(r["errorMsg"], "handler failed with status 6", "the host answered ERR_INVALID (-6): {r}");
    }
    g1.assert_nothing_queued("guest 1").await;
    g2.assert_nothing_queued("guest 2").await;
    // 3 welcomes, alice's 2 error frames, the guests' 2 pings: nothing else was queued.
    assert_eq!(s.metric("frames_out_total").await, 7);
}

#[tokio::test]
async fn the_http_api_refuses_an_empty_user_or_client_with_400() {
    let s = TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], |c| c.auth.anonymous = true).await;
    let guest = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(s.ws_url()).unwrap();
    let mut g = Client::connect(guest).await.unwrap();
    for (path, body) in [
        ("/api/send/user", json!({"user": "", "event": "leak", "data": 1})),
        ("/api/send/client", json!({"client": "", "event": "leak", "data": 1})),
    ] {
        let (status, r) = s.post(path, body).await;
        assert_eq!(status, 400, "{path}: {r}");
        assert!(r["error"].as_str().unwrap().contains("empty"), "{r}");
    }
    g.assert_nothing_queued("the guest").await;
    assert_eq!(s.metric("frames_out_total").await, 2, "the welcome and the ping");
}

// ---- Every write has a deadline ----

/// A WebSocket client over a TCP socket with a 4 KiB receive buffer that reads its welcome
/// frame and then never reads again. Returns the socket (kept open) and the client id.
async fn stalled_client(
    s: &TestServer,
    sub: &str,
) -> (tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, String) {
    use futures_util::StreamExt;
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(s.addr).await.unwrap();
    let url = format!("{}?token={}", s.ws_url(), s.token(sub));
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    let welcome = match ws.next().await {
        Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
            serde_json::from_str::<serde_json::Value>(&t).unwrap()
        }
        other => panic!("expected the welcome frame, got {other:?}"),
    };
    let id = welcome["data"]["id"].as_str().unwrap().to_string();
    (ws, id)
}

/// Pushes 8 MiB to the client through `POST /api/send/client` (more than the kernel's socket
/// buffers on both sides hold: at most 4 MiB + 4 KiB here), stopping early if it is closed.
async fn push_8_mib(s: &TestServer, id: &str) {
    let payload = "x".repeat(16 * 1024);
    for i in 0..512 {
        let (status, r) =
            s.post("/api/send/client", json!({"client": id, "event": "fill", "data": {"i": i, "p": payload}})).await;
        assert_eq!(status, 200);
        if r["delivered"] == 0 {
            break;
        }
    }
}

/// Outbound queue large enough never to be the reason for a close.
fn stalling(c: &mut switchyard::config::Config, write_timeout_ms: u64) {
    c.ws.outbound_queue_bytes = 64 << 20;
    c.ws.write_timeout_ms = write_timeout_ms;
    c.ws.ping_interval_secs = 1;
    c.ws.heartbeat_timeout_secs = 600;
}

async fn online_clients(s: &TestServer) -> u64 {
    s.get("/api/online").await.1["clients"].as_u64().unwrap()
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_within_the_write_timeout_plus_a_ping_interval() {
    let s = TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], |c| stalling(c, 1000)).await;
    let (_socket, id) = stalled_client(&s, "stalled").await;
    let mut healthy = s.connect("healthy").await;
    push_8_mib(&s, &id).await;
    // The write that blocked began before the last push; the close is due one write timeout
    // after it (a frame), or after the next ping (1 s) plus one write timeout (the ping).
    let pushed = tokio::time::Instant::now();
    s.wait_metric("slow_consumers_total", 1).await;
    wait_until("the stalled client is gone", TIMEOUT, async || online_clients(&s).await == 1).await;
    let took = pushed.elapsed();
    assert!(took <= Duration::from_millis(1000 + 1000 + 500), "closed {took:?} after the last push");
    assert_eq!(healthy.request("echo", json!("fine")).await["data"], "fine");
}

#[tokio::test]
async fn a_kick_reaches_a_client_that_stopped_reading_long_before_its_write_timeout() {
    let s = TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], |c| stalling(c, 60_000)).await;
    let (_socket, id) = stalled_client(&s, "stalled").await;
    push_8_mib(&s, &id).await;
    let kicked = tokio::time::Instant::now();
    let (status, _) = s.api(reqwest::Method::DELETE, &format!("/api/clients/{id}"), None).await;
    assert_eq!(status, 200);
    wait_until("the kicked client is gone", TIMEOUT, async || online_clients(&s).await == 0).await;
    // It gets a second (CLOSE_GRACE) to take its goodbye, which it never reads.
    assert!(kicked.elapsed() < Duration::from_secs(3), "kick took {:?}", kicked.elapsed());
    assert_eq!(s.metric("slow_consumers_total").await, 0, "kicked, not timed out");
    assert_eq!(s.metric("connections").await, 0);
}

#[tokio::test]
async fn shutdown_reaches_a_client_that_stopped_reading() {
    let s = TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], |c| stalling(c, 60_000)).await;
    let (_socket, id) = stalled_client(&s, "stalled").await;
    push_8_mib(&s, &id).await;
    let state = s.server.as_ref().unwrap().state.clone();
    let stopping = tokio::time::Instant::now();
    s.stop().await;
    // Shutdown waits at most 5 s for connection tasks; this one ends after its 1 s goodbye.
    assert!(stopping.elapsed() < Duration::from_secs(3), "shutdown took {:?}", stopping.elapsed());
    assert_eq!(state.delivery.local().clients(), 0);
    assert_eq!(state.delivery.metrics.connections.get(), 0);
}

/// A peer that stopped reading, one level up from TCP: what the server writes goes into a
/// channel of one message nobody reads, so the welcome frame fills it and every later write
/// blocks, as one into a full TCP window does. Unlike a socket, it says when a write blocked,
/// and no frame need be queued for it to: the heartbeat ping is the write that blocks.
struct StalledPeer {
    out: tokio_util::sync::PollSender<Message>,
    blocked: Arc<tokio::sync::Notify>,
}

type Message = axum::extract::ws::Message;

impl futures_util::Stream for StalledPeer {
    type Item = Result<Message, axum::Error>;
    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Pending
    }
}

impl futures_util::Sink<Message> for StalledPeer {
    type Error = axum::Error;
    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let ready = self.out.poll_reserve(cx).map_err(axum::Error::new);
        if ready.is_pending() {
            self.blocked.notify_one();
        }
        ready
    }
    fn start_send(mut self: Pin<&mut Self>, m: Message) -> Result<(), Self::Error> {
        self.out.send_item(m).map_err(axum::Error::new)
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

/// Runs a connection of user `stalled` over a [`StalledPeer`] on `s`'s server and waits until
/// its heartbeat ping is blocked (no frame was queued after the welcome). Returns the session
/// task, the client id, and what the peer holds.
async fn blocked_on_its_ping(
    s: &TestServer,
) -> (tokio::task::JoinHandle<()>, String, tokio::sync::mpsc::Receiver<Message>) {
    let state = s.server.as_ref().unwrap().state.clone();
    let identity = switchyard::auth::Identity { user: "stalled".into(), ..switchyard::auth::Identity::guest() };
    let limit = state.config.ws.outbound_queue_bytes;
    let client = state.delivery.connect(identity, [127, 0, 0, 1].into(), "stalled-peer", limit).await;
    let id = client.id_str.to_string();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let blocked = Arc::new(tokio::sync::Notify::new());
    let peer = StalledPeer { out: tokio_util::sync::PollSender::new(tx), blocked: blocked.clone() };
    let session = tokio::spawn(switchyard::session::run(peer, state, client));
    tokio::time::timeout(TIMEOUT, blocked.notified()).await.expect("the ping's write never blocked");
    (session, id, rx)
}

/// What the peer got: only the welcome frame (the ping that blocked never went out).
fn only_the_welcome(mut rx: tokio::sync::mpsc::Receiver<Message>) {
    match rx.try_recv() {
        Ok(Message::Text(t)) => assert!(t.contains(r#""event":"connected""#), "{t}"),
        other => panic!("expected the welcome frame, got {other:?}"),
    }
    assert!(rx.try_recv().is_err(), "nothing past the welcome went out");
}

#[tokio::test]
async fn a_blocked_ping_ends_the_connection_at_the_write_deadline() {
    let s = TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], |c| stalling(c, 1000)).await;
    let started = tokio::time::Instant::now();
    let (session, _id, rx) = blocked_on_its_ping(&s).await;
    s.wait_metric("slow_consumers_total", 1).await;
    // The ping is due after one interval (1 s), then has one write timeout (1 s).
    let took = started.elapsed();
    assert!(took <= Duration::from_millis(1000 + 1000 + 500), "closed {took:?} after connecting");
    assert_eq!(s.metric("connections").await, 0);
    // Then its goodbye has a second (CLOSE_GRACE), blocked too.
    tokio::time::timeout(TIMEOUT, session).await.expect("the connection task never ended").unwrap();
    only_the_welcome(rx);
}

#[tokio::test]
async fn a_kick_reaches_a_connection_whose_ping_is_blocked() {
    let s = TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], |c| stalling(c, 60_000)).await;
    let (session, id, rx) = blocked_on_its_ping(&s).await;
    let (status, _) = s.api(reqwest::Method::DELETE, &format!("/api/clients/{id}"), None).await;
    assert_eq!(status, 200);
    // Its goodbye blocks too, for at most a second (CLOSE_GRACE); the ping's 60 s are not waited.
    tokio::time::timeout(TIMEOUT, session).await.expect("the kick never reached it").unwrap();
    assert_eq!(s.metric("slow_consumers_total").await, 0, "kicked, not timed out");
    assert_eq!(s.metric("connections").await, 0);
    only_the_welcome(rx);
}

#[tokio::test]
async fn shutdown_reaches_a_connection_whose_ping_is_blocked() {
    let s = TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], |c| stalling(c, 60_000)).await;
    let (session, _id, rx) = blocked_on_its_ping(&s).await;
    s.stop().await;
    tokio::time::timeout(TIMEOUT, session).await.expect("the shutdown never reached it").unwrap();
    only_the_welcome(rx);
}
