//! The pages the binary serves itself: the demo chat at `/`, the admin page at `/admin`, their
//! assets and the browser client bundle under `/assets/`, and the development-only token
//! endpoint the demo logs in with.
//!
//! Owns the embedded files (`web/`, and `client/dist/index.js` built and committed by the
//! client package) and `GET /dev/token`. It must never serve a file from disk at run time (no
//! CDN, no path from the request reaches the file system) and never mint a token unless the
//! public development secret is in force: `/dev/token` answers 404 otherwise. The admin page is
//! a static shell: everything it shows comes from the admin API, behind the API key or an
//! admin JWT.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;

#[derive(RustEmbed)]
#[folder = "web/"]
struct Pages;

#[derive(RustEmbed)]
#[folder = "client/dist/"]
#[include = "index.js"]
struct ClientBundle;

/// Lifetime of a development token, seconds.
const DEV_TOKEN_TTL: u64 = 3600;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(|| async { page("demo/index.html") }))
        .route("/admin", get(|| async { page("admin/index.html") }))
        .route("/assets/{file}", get(asset))
        .route("/dev/token", get(dev_token))
        .with_state(state)
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

fn file(name: &str, bytes: Option<std::borrow::Cow<'static, [u8]>>) -> Response {
    match bytes {
        Some(b) => {
            ([(header::CONTENT_TYPE, content_type(name)), (header::CACHE_CONTROL, "no-cache")], b).into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

fn page(path: &str) -> Response {
    file(path, Pages::get(path).map(|f| f.data))
}

/// `/assets/switchyard-client.js` is the client bundle; any other name is a file of the demo
/// or the admin page (names are looked up in the embedded set, never on disk).
async fn asset(Path(name): Path<String>) -> Response {
    if name == "switchyard-client.js" {
        return file(&name, ClientBundle::get("index.js").map(|f| f.data));
    }
    let found = ["demo", "admin"].iter().find_map(|dir| Pages::get(&format!("{dir}/{name}")));
    file(&name, found.map(|f| f.data))
}

#[derive(Deserialize)]
struct TokenQuery {
    user: Option<String>,
}

/// A token for any user name, signed with the public dev secret: for the demo only.
async fn dev_token(State(st): State<Arc<AppState>>, Query(q): Query<TokenQuery>) -> Response {
    if !st.config.uses_dev_secret() {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    let user = q.user.unwrap_or_default();
    let user = user.trim();
    if user.is_empty() || user.len() > 64 || user.chars().any(char::is_control) {
        let msg = "user must be 1 to 64 characters, no control characters";
        return (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": msg }))).into_response();
    }
    match st.auth.mint(user, DEV_TOKEN_TTL, &[], false) {
        Ok(token) => axum::Json(json!({ "token": token })).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({ "error": e.to_string() }))).into_response(),
    }
}
