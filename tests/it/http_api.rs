//! The HTTP API reaches WebSocket clients, and refuses callers without the key.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn send_to_client_reaches_only_that_connection() {
    let s = TestServer::start().await;
    let mut a1 = s.connect("alice").await;
    let mut a2 = s.connect("alice").await;
    let (status, r) = s.post("/api/send/client", json!({"client": a1.id, "event": "note", "data": {"x": 1}})).await;
    assert_eq!((status, r["delivered"].as_u64()), (200, Some(1)));
    let f = a1.recv().await;
    assert_eq!((f["event"].as_str(), f["code"].as_i64(), f["data"]["x"].as_i64()), (Some("note"), Some(0), Some(1)));
    a2.assert_nothing_queued("a send to the other connection").await;
}

#[tokio::test]
async fn send_to_all_reaches_everyone() {
    let s = TestServer::start().await;
    let mut cs = vec![s.connect("a").await, s.connect("b").await, s.connect("c").await];
    let (_, r) = s.post("/api/send/all", json!({"event": "hello", "data": null})).await;
    assert_eq!(r["delivered"], 3);
    for c in &mut cs {
        assert_eq!(c.recv().await["event"], "hello");
    }
}

#[tokio::test]
async fn online_count_list_and_info_describe_clients() {
    let s = TestServer::start().await;
    let mut a = s.connect("alice").await;
    let _b = s.connect("bob").await;
    a.request("join", json!({"id": "t1"})).await;
    let (_, online) = s.get("/api/online").await;
    assert_eq!(online["clients"], 2);
    let (_, page) = s.get("/api/clients?page=1&per_page=1").await;
    assert_eq!(page["total"], 2);
    assert_eq!(page["clients"].as_array().unwrap().len(), 1);
    let (_, page2) = s.get("/api/clients?page=2&per_page=1").await;
    assert_eq!(page2["clients"][0]["user"], "bob");
    let (status, info) = s.get(&format!("/api/clients/{}", a.id)).await;
    assert_eq!(status, 200);
    assert_eq!(info["user"], "alice");
    assert_eq!(info["ip"], "127.0.0.1");
    assert_eq!(info["tags"], json!(["t1"]));
    assert!(info["connected_at"].as_u64().unwrap() > 0);
    assert_eq!(s.get("/api/clients/999999").await.0, 404);
}

#[tokio::test]
async fn kick_closes_the_client_with_4001() {
    let s = TestServer::start().await;
    let mut a = s.connect("alice").await;
    let (status, _) = s.api(reqwest::Method::DELETE, &format!("/api/clients/{}", a.id), None).await;
    assert_eq!(status, 200);
    assert_eq!(a.expect_close().await, Some(4001));
}

#[tokio::test]
async fn a_wrong_or_missing_key_is_refused_with_401() {
    let s = TestServer::start().await;
    for path in ["/api/send/all", "/api/online", "/admin/modules", "/admin/reload"] {
        let r =
            s.http.post(s.url(path)).header("x-api-key", "wrong").json(&json!({"event": "x"})).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("API key"));
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path} without a key");
    }
}

#[tokio::test]
async fn an_admin_jwt_is_accepted_and_a_user_jwt_is_not() {
    let s = TestServer::start().await;
    let admin = s.auth.mint("root", 600, &[], true).unwrap();
    let user = s.token("alice");
    let call = |t: String| s.http.get(s.url("/api/online")).bearer_auth(t).send();
    assert_eq!(call(admin).await.unwrap().status().as_u16(), 200);
    assert_eq!(call(user).await.unwrap().status().as_u16(), 401);
}

#[tokio::test]
async fn bad_send_bodies_get_400_with_a_reason() {
    let s = TestServer::start().await;
    let (status, r) = s.post("/api/send/tag", json!({"event": "x"})).await;
    assert_eq!(status, 400);
    assert!(r["error"].as_str().unwrap().contains("tag"));
    let (status, _) = s.post("/api/send/all", json!({"data": 1})).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn healthz_and_metrics_are_public() {
    let s = TestServer::start().await;
    let _a = s.connect("alice").await;
    let h: serde_json::Value = reqwest::get(s.url("/healthz")).await.unwrap().json().await.unwrap();
    assert_eq!(h["status"], "ok");
    assert_eq!(s.metric("connections").await, 1);
    assert_eq!(s.metric("connections_total").await, 1);
}
