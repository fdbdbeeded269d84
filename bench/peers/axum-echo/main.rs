//! Peer: a native axum WebSocket server answering the JSON protocol in Rust, no WASM: the
//! ceiling for a WASM-handled echo on the same stack (a bin of switchyard-bench, so it is built
//! with the server's own axum and tokio). Copied from shared/peers/axum-echo, echo path
//! unchanged; plus `POST /broadcast` for fan-out: a JSON body D goes to every client as
//! `{"event":"broadcast","code":0,"data":D,"timestamp":T}` (serialised once), answer
//! `{"delivered":n}`.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::{
    Json, Router,
    extract::{
        State,
        ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade},
    },
    routing::{get, post},
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Every connected client's outbound queue, for /broadcast.
#[derive(Default)]
struct Hub {
    next_id: AtomicU64,
    clients: Mutex<HashMap<u64, mpsc::UnboundedSender<Utf8Bytes>>>,
}

async fn handle(mut ws: WebSocket, hub: Arc<Hub>) {
    let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel();
    hub.clients.lock().unwrap().insert(id, tx);
    loop {
        tokio::select! {
            msg = ws.recv() => {
                // The original echo loop body, unchanged.
                let Some(Ok(msg)) = msg else { break };
                if let Message::Text(t) = msg {
                    let reply = match serde_json::from_str::<Value>(&t) {
                        Ok(v) => json!({"event": v["event"], "code": 0, "data": v["data"], "timestamp": 0}),
                        Err(_) => json!({"event": "error", "code": 1, "errorMsg": "bad json"}),
                    };
                    if ws.send(Message::Text(reply.to_string().into())).await.is_err() { break; }
                }
            }
            Some(frame) = rx.recv() => {
                if ws.send(Message::Text(frame)).await.is_err() { break; }
            }
        }
    }
    hub.clients.lock().unwrap().remove(&id);
}

async fn broadcast(State(hub): State<Arc<Hub>>, Json(data): Json<Value>) -> Json<Value> {
    let ts = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // Serialised once; each client gets a cheap clone of the same bytes.
    let frame: Utf8Bytes = json!({"event": "broadcast", "code": 0, "data": data, "timestamp": ts}).to_string().into();
    let delivered = hub.clients.lock().unwrap().values().filter(|tx| tx.send(frame.clone()).is_ok()).count();
    Json(json!({ "delivered": delivered }))
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(9002);
    let hub = Arc::new(Hub::default());
    let app =
        Router::new()
            .route(
                "/ws",
                get(|State(hub): State<Arc<Hub>>, ws: WebSocketUpgrade| async move {
                    ws.on_upgrade(move |s| handle(s, hub))
                }),
            )
            .route("/broadcast", post(broadcast))
            .with_state(hub);
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    println!("listening {port}");
    axum::serve(l, app).await.unwrap();
}
