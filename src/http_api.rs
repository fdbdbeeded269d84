//! The HTTP API: sends, presence queries, kicks, and handler administration.
//!
//! Owns request parsing, the API-key / admin-JWT check and JSON answers (errors included).
//! It must never reach into connections directly: everything goes through the registry's
//! send API and the runtime's reload, exactly as a handler would.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use crate::protocol::{self, close};
use crate::server::AppState;

/// An API failure, answered as `{"error": "..."}` with a status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong API key (X-Api-Key, or Authorization: Bearer <key or admin JWT>)")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let protected = Router::new()
        .route("/api/send/client", post(send_client))
        .route("/api/send/user", post(send_user))
        .route("/api/send/tag", post(send_tag))
        .route("/api/send/all", post(send_all))
        .route("/api/online", get(online))
        .route("/api/clients", get(clients))
        .route("/api/clients/{id}", get(client_info).delete(kick))
        .route("/admin/modules", get(modules))
        .route("/admin/reload", post(reload))
        .route_layer(middleware::from_fn_with_state(state, require_key));
    Router::new().route("/healthz", get(healthz)).route("/metrics", get(metrics)).merge(protected)
}

/// Constant-time comparison, so the key cannot be guessed byte by byte from timings.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Admits the API key (`X-Api-Key` or `Authorization: Bearer KEY`) or a JWT with `"admin": true`.
async fn require_key(State(st): State<Arc<AppState>>, headers: HeaderMap, req: Request, next: Next) -> Response {
    let key = st.config.api_key().as_bytes();
    let given_key = headers.get("x-api-key").map(|v| v.as_bytes());
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let ok = given_key.is_some_and(|k| same(k, key))
        || bearer.is_some_and(|b| same(b.as_bytes(), key) || st.auth.verify(b).is_ok_and(|id| id.admin));
    if ok { next.run(req).await } else { ApiError::Unauthorized.into_response() }
}

#[derive(Deserialize)]
struct SendBody<'a> {
    #[serde(borrow, default)]
    client: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    user: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    tag: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    event: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

enum Target {
    Client,
    User,
    Tag,
    All,
}

/// Parses a send body and sends one frame, serialised once.
fn send(st: &AppState, body: &[u8], target: Target) -> Result<Json<serde_json::Value>, ApiError> {
    let b: SendBody<'_> =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let event = b.event.filter(|e| !e.is_empty()).ok_or_else(|| ApiError::BadRequest("missing \"event\"".into()))?;
    let need = |v: Option<std::borrow::Cow<'_, str>>, name: &str| {
        v.map(|s| s.into_owned()).ok_or_else(|| ApiError::BadRequest(format!("missing \"{name}\"")))
    };
    let frame = protocol::success_frame(&event, b.data.map(RawValue::get));
    let r = &st.registry;
    let delivered = match target {
        Target::Client => r.send_to_client(&need(b.client, "client")?, &frame),
        Target::User => r.send_to_user(&need(b.user, "user")?, &frame),
        Target::Tag => r.send_to_tag(&need(b.tag, "tag")?, &frame),
        Target::All => r.send_to_all(&frame),
    };
    Ok(Json(json!({ "delivered": delivered })))
}

async fn send_client(State(st): State<Arc<AppState>>, body: Bytes) -> Result<Json<serde_json::Value>, ApiError> {
    send(&st, &body, Target::Client)
}
async fn send_user(State(st): State<Arc<AppState>>, body: Bytes) -> Result<Json<serde_json::Value>, ApiError> {
    send(&st, &body, Target::User)
}
async fn send_tag(State(st): State<Arc<AppState>>, body: Bytes) -> Result<Json<serde_json::Value>, ApiError> {
    send(&st, &body, Target::Tag)
}
async fn send_all(State(st): State<Arc<AppState>>, body: Bytes) -> Result<Json<serde_json::Value>, ApiError> {
    send(&st, &body, Target::All)
}

async fn online(State(st): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let r = &st.registry;
    Json(json!({ "clients": r.online_clients(), "users": r.online_users(), "tags": r.tag_count() }))
}

#[derive(Deserialize)]
struct Page {
    page: Option<usize>,
    per_page: Option<usize>,
}

async fn clients(State(st): State<Arc<AppState>>, Query(p): Query<Page>) -> Json<serde_json::Value> {
    let page = p.page.unwrap_or(1).max(1);
    let per_page = p.per_page.unwrap_or(50).clamp(1, 1000);
    let list = st.registry.list(page, per_page);
    Json(json!({ "total": st.registry.online_clients(), "page": page, "per_page": per_page, "clients": list }))
}

async fn client_info(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = st.registry.get(&id).ok_or_else(|| ApiError::NotFound(format!("no client {id}")))?;
    Ok(Json(json!(c.info())))
}

async fn kick(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    let c = st.registry.get(&id).ok_or_else(|| ApiError::NotFound(format!("no client {id}")))?;
    c.close(close::KICKED);
    Ok(Json(json!({ "kicked": id })))
}

async fn modules(State(st): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!(st.runtime.status()))
}

async fn reload(State(st): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!(st.runtime.reload().await))
}

async fn healthz(State(st): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "clients": st.registry.online_clients() }))
}

async fn metrics(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], st.registry.metrics.render())
}
