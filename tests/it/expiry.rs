//! Token lifetime on live connections: `token_expiring` before `exp`, `refresh` to move it,
//! close 4002 after it (Centrifugo's practice).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::*;

/// Tokens warned 2 s before `exp`, closed right at it (no leeway).
async fn short_lived_server() -> TestServer {
    TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], |c| {
        c.auth.expiry_warning_secs = 2;
        c.auth.leeway_secs = 0;
    })
    .await
}

async fn connect_with(s: &TestServer, token: &str) -> Client {
    Client::connect(format!("{}?token={token}", s.ws_url()).into_client_request().unwrap()).await.unwrap()
}

fn exp_of(s: &TestServer, token: &str) -> u64 {
    s.auth.verify(token).unwrap().exp.unwrap()
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn is(frame: &Value, event: &str, code: i64) -> bool {
    frame["event"] == event && frame["code"] == code
}

#[tokio::test]
async fn a_token_about_to_expire_is_warned_then_closed_with_4002() {
    let s = short_lived_server().await;
    let token = s.auth.mint("alice", 3, &[], false).unwrap();
    let exp = exp_of(&s, &token);
    let mut c = connect_with(&s, &token).await;
    let warning = c.recv().await;
    assert!(is(&warning, "token_expiring", 0), "{warning}");
    assert_eq!(warning["data"]["exp"], exp);
    let in_secs = warning["data"]["in_secs"].as_u64().unwrap();
    assert!((1..=2).contains(&in_secs), "{warning}");
    assert_eq!(c.expect_close().await, Some(4002));
    assert!(unix_ms() >= exp * 1000, "not closed before exp");
    assert_eq!(s.metric("tokens_expired_total").await, 1);
    let (_, online) = s.get("/api/online").await;
    assert_eq!(online["clients"], 0);
}

#[tokio::test]
async fn a_refresh_for_the_same_user_keeps_the_connection_past_the_old_exp() {
    let s = short_lived_server().await;
    let token = s.auth.mint("alice", 3, &[], false).unwrap();
    let old_exp = exp_of(&s, &token);
    let mut c = connect_with(&s, &token).await;
    assert!(is(&c.recv().await, "token_expiring", 0));

    // Another user's token, and a token that does not verify, are refused; the connection stays.
    let r = c.request("refresh", json!({"token": s.auth.mint("mallory", 600, &[], false).unwrap()})).await;
    assert_eq!(
        (r["event"].as_str(), r["code"].as_i64(), r["kind"].as_str()),
        (Some("refresh"), Some(-1), Some("invalid_token"))
    );
    assert!(r["errorMsg"].as_str().unwrap().contains("another user"), "{r}");
    let r = c.request("refresh", json!({"token": "not.a.jwt"})).await;
    assert_eq!(r["kind"], "invalid_token");
    let r = c.request("refresh", json!({})).await;
    assert_eq!(r["kind"], "bad_request");

    // 6 s against the old 3: its warning (2 s before its exp) comes after the old exp.
    let fresh = s.auth.mint("alice", 6, &[], false).unwrap();
    let new_exp = exp_of(&s, &fresh);
    let r = c.request("refresh", json!({"token": fresh})).await;
    assert!(is(&r, "refresh", 0), "{r}");
    assert_eq!(r["data"]["exp"], new_exp);

    // The new token is warned about in its turn, past the old exp, and then expires too.
    let warning = c.recv().await;
    assert!(is(&warning, "token_expiring", 0), "{warning}");
    assert_eq!(warning["data"]["exp"], new_exp);
    assert!(unix_ms() > old_exp * 1000, "warned before the old exp");
    assert!(is(&c.request("ping", json!(null)).await, "ping", 0), "alive past the old exp");
    assert_eq!(c.expect_close().await, Some(4002));
    assert!(unix_ms() >= new_exp * 1000);
    assert_eq!(s.metric("token_refreshes_total").await, 1);
    assert_eq!(s.metric("token_refresh_refused_total").await, 2);
    assert_eq!(s.metric("tokens_expired_total").await, 1);
}

#[tokio::test]
async fn a_token_without_exp_is_never_warned_nor_expired() {
    let s = TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], |c| {
        c.auth.require_exp = false;
        // Any token with an exp would be warned at once.
        c.auth.expiry_warning_secs = 1 << 40;
    })
    .await;
    let key = jsonwebtoken::EncodingKey::from_secret(switchyard::config::DEV_SECRET.as_bytes());
    let no_exp = jsonwebtoken::encode(&Default::default(), &json!({"sub": "hotgo-user"}), &key).unwrap();
    let mut c = connect_with(&s, &no_exp).await;
    assert!(is(&c.request("ping", json!(null)).await, "ping", 0), "no token_expiring before the ping's answer");
    let with_exp = s.auth.mint("alice", 600, &[], false).unwrap();
    let mut d = connect_with(&s, &with_exp).await;
    assert!(is(&d.recv().await, "token_expiring", 0), "the same server warns a token with an exp");
}
