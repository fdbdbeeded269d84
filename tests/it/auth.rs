//! Connect and auth: where tokens are accepted from, and every way a token is refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::common::*;

/// Tries an upgrade; returns the HTTP status and JSON body of a refusal, or 101.
async fn status_of(req: tokio_tungstenite::tungstenite::handshake::client::Request) -> (u16, Value) {
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => (101, Value::Null),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp.body().as_deref().map(|b| serde_json::from_slice(b).expect("refusal body is JSON"));
            (resp.status().as_u16(), body.unwrap_or(Value::Null))
        }
        Err(e) => panic!("unexpected handshake error: {e}"),
    }
}

fn with_query(s: &TestServer, token: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    format!("{}?token={token}", s.ws_url()).into_client_request().unwrap()
}

fn claims(extra: Value) -> Value {
    let now = switchyard::protocol::now_secs();
    let mut c = json!({"sub": "mallory", "iat": now, "exp": now + 600});
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

fn hs256(secret: &[u8], claims: &Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(secret);
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), claims, &key).unwrap()
}

#[tokio::test]
async fn token_in_authorization_header_is_accepted() {
    let s = TestServer::start().await;
    let mut req = s.ws_url().into_client_request().unwrap();
    req.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {}", s.token("alice"))).unwrap());
    let mut c = Client::connect(req).await.unwrap();
    assert_eq!(c.request("echo", json!(1)).await["data"], 1);
}

#[tokio::test]
async fn token_in_query_is_accepted_as_token_and_as_hotgo_authorization() {
    let s = TestServer::start().await;
    Client::connect(with_query(&s, &s.token("alice"))).await.unwrap();
    let url = format!("{}?authorization={}", s.ws_url(), s.token("bob"));
    Client::connect(url.into_client_request().unwrap()).await.unwrap();
}

#[tokio::test]
async fn token_in_subprotocol_is_accepted_and_switchyard_is_selected() {
    let s = TestServer::start().await;
    let mut req = s.ws_url().into_client_request().unwrap();
    let protocols = format!("switchyard, {}", s.token("alice"));
    req.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_str(&protocols).unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "switchyard");
    drop(ws);
}

#[tokio::test]
async fn missing_token_is_refused_with_401_json() {
    let s = TestServer::start().await;
    let (status, body) = status_of(s.ws_url().into_client_request().unwrap()).await;
    assert_eq!(status, 401);
    assert!(body["errorMsg"].as_str().unwrap().contains("missing token"), "{body}");
}

#[tokio::test]
async fn bad_signature_is_refused() {
    let s = TestServer::start().await;
    let forged = hs256(b"not-the-secret", &claims(json!({})));
    assert_eq!(status_of(with_query(&s, &forged)).await.0, 401);
}

#[tokio::test]
async fn expired_token_is_refused() {
    let s = TestServer::start().await;
    let now = switchyard::protocol::now_secs();
    let t = hs256(switchyard::config::DEV_SECRET.as_bytes(), &json!({"sub": "a", "exp": now - 3600}));
    let (status, body) = status_of(with_query(&s, &t)).await;
    assert_eq!(status, 401);
    assert!(body["errorMsg"].as_str().unwrap().to_lowercase().contains("expired"), "{body}");
}

#[tokio::test]
async fn alg_none_is_refused() {
    let s = TestServer::start().await;
    let header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = B64.encode(claims(json!({})).to_string());
    assert_eq!(status_of(with_query(&s, &format!("{header}.{body}."))).await.0, 401);
}

fn rsa_server_config(c: &mut switchyard::config::Config) {
    c.auth.public_key_file = Some(repo().join("tests/keys/rsa_public.pem"));
    c.auth.private_key_file = Some(repo().join("tests/keys/rsa_private.pem"));
    c.auth.algorithms = vec!["RS256".into()];
}

#[tokio::test]
async fn rs256_tokens_are_accepted_with_a_public_key() {
    let s = TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], rsa_server_config).await;
    Client::connect(with_query(&s, &s.token("alice"))).await.unwrap();
}

#[tokio::test]
async fn hs256_token_signed_with_the_rs256_public_key_is_refused() {
    let s = TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], rsa_server_config).await;
    let public_pem = std::fs::read(repo().join("tests/keys/rsa_public.pem")).unwrap();
    let confused = hs256(&public_pem, &claims(json!({})));
    assert_eq!(status_of(with_query(&s, &confused)).await.0, 401);
}

#[tokio::test]
async fn wrong_audience_is_refused_and_right_one_accepted() {
    let s = TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], |c| {
        c.auth.audience = Some("switchyard-app".into());
        c.auth.issuer = Some("https://auth.example".into());
    })
    .await;
    let secret = switchyard::config::DEV_SECRET.as_bytes();
    let wrong = hs256(secret, &claims(json!({"aud": "other-app", "iss": "https://auth.example"})));
    assert_eq!(status_of(with_query(&s, &wrong)).await.0, 401);
    let wrong_iss = hs256(secret, &claims(json!({"aud": "switchyard-app", "iss": "https://evil.example"})));
    assert_eq!(status_of(with_query(&s, &wrong_iss)).await.0, 401);
    let right = hs256(secret, &claims(json!({"aud": "switchyard-app", "iss": "https://auth.example"})));
    assert_eq!(status_of(with_query(&s, &right)).await.0, 101);
}

#[tokio::test]
async fn foreign_origin_is_refused_and_allowed_origin_accepted() {
    let s = TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], |c| {
        c.ws.allowed_origins = vec!["https://app.example".into()];
    })
    .await;
    let mut req = with_query(&s, &s.token("alice"));
    req.headers_mut().insert("origin", HeaderValue::from_static("https://evil.example"));
    assert_eq!(status_of(req).await.0, 403);
    let mut req = with_query(&s, &s.token("alice"));
    req.headers_mut().insert("origin", HeaderValue::from_static("https://app.example"));
    assert_eq!(status_of(req).await.0, 101);
}

#[tokio::test]
async fn guests_need_the_anonymous_option() {
    let s = TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], |c| c.auth.anonymous = true).await;
    let mut c = Client::connect(s.ws_url().into_client_request().unwrap()).await.unwrap();
    assert_eq!(c.request("echo", json!("hi")).await["data"], "hi");
}

#[tokio::test]
async fn connections_past_the_limit_get_503() {
    let s = TestServer::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], |c| c.ws.max_connections = 1).await;
    let _first = s.connect("alice").await;
    assert_eq!(status_of(with_query(&s, &s.token("bob"))).await.0, 503);
}

#[test]
fn token_command_mints_a_token_the_zero_config_server_accepts() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["token", "--sub", "alice", "--tags", "a,b"])
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    let auth = switchyard::auth::Authenticator::new(&Default::default()).unwrap();
    let id = auth.verify(token.trim()).unwrap();
    assert_eq!(&*id.user, "alice");
    assert_eq!(id.tags, vec!["a", "b"]);
}
