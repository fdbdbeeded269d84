//! The HTTP API: sends, presence queries, kicks, and handler administration.
//!
//! Owns request parsing, the API-key / admin-JWT check and JSON answers (errors included).
//! It must never reach into connections directly: everything goes through the delivery
//! seam and the runtime's reload, exactly as a handler would.

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

use crate::app::AppState;
use crate::auth;
use crate::delivery::Target;
use crate::protocol::{self, close};

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

pub fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route("/api/send/client", post(send_client))
        .route("/api/send/user", post(send_user))
        .route("/api/send/tag", post(send_tag))
        .route("/api/send/all", post(send_all))
        .route("/api/online", get(online))
        .route("/api/clients", get(clients))
        .route("/api/clients/{id}", get(client_info).delete(kick))
        .route("/api/users/{id}", axum::routing::delete(kick_user))
        .route("/admin/modules", get(modules))
        .route("/admin/reload", post(reload))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Router::new().route("/healthz", get(healthz)).route("/metrics", get(metrics)).merge(protected).with_state(state)
}

/// Constant-time comparison, so the key cannot be guessed byte by byte from timings.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Admits the API key (`X-Api-Key` or `Authorization: Bearer KEY`) or a JWT with `"admin": true`.
async fn require_key(State(st): State<Arc<AppState>>, headers: HeaderMap, req: Request, next: Next) -> Response {
    let key = st.config.api_key().as_bytes();
    let given_key = headers.get("x-api-key").map(|v| v.as_bytes());
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(auth::bearer);
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

enum To {
    Client,
    User,
    Tag,
    All,
}

/// A target field that must be there and non-empty.
fn need<'b>(v: &'b Option<std::borrow::Cow<'_, str>>, name: &str) -> Result<&'b str, ApiError> {
    v.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| ApiError::BadRequest(format!("missing or empty \"{name}\"")))
}

/// Parses a send body and sends one frame, serialised once.
fn send(st: &AppState, body: &[u8], target: To) -> Result<Json<serde_json::Value>, ApiError> {
    let b: SendBody<'_> =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let event = b.event.filter(|e| !e.is_empty()).ok_or_else(|| ApiError::BadRequest("missing \"event\"".into()))?;
    let to = match target {
        To::Client => Target::Client(need(&b.client, "client")?),
        To::User => Target::User(need(&b.user, "user")?),
        To::Tag => Target::Tag(need(&b.tag, "tag")?),
        To::All => Target::All,
    };
    let frame = protocol::success_frame(&event, b.data.map(RawValue::get));
    let delivered = st.delivery.send(to, &frame);
    Ok(Json(json!({ "delivered": delivered })))
}

async fn send_client(State(st): State<Arc<AppState>>, body: Bytes) -> Result<Json<serde_json::Value>, ApiError> {
    send(&st, &body, To::Client)
}
async fn send_user(State(st): State<Arc<AppState>>, body: Bytes) -> Result<Json<serde_json::Value>, ApiError> {
    send(&st, &body, To::User)
}
async fn send_tag(State(st): State<Arc<AppState>>, body: Bytes) -> Result<Json<serde_json::Value>, ApiError> {
    send(&st, &body, To::Tag)
}
async fn send_all(State(st): State<Arc<AppState>>, body: Bytes) -> Result<Json<serde_json::Value>, ApiError> {
    send(&st, &body, To::All)
}

async fn online(State(st): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!(st.delivery.online().await))
}

#[derive(Deserialize)]
struct Page {
    page: Option<usize>,
    per_page: Option<usize>,
}

async fn clients(State(st): State<Arc<AppState>>, Query(p): Query<Page>) -> Json<serde_json::Value> {
    let page = p.page.unwrap_or(1).max(1);
    let per_page = p.per_page.unwrap_or(50).clamp(1, 1000);
    let (total, list) = st.delivery.clients(page, per_page).await;
    Json(json!({ "total": total, "page": page, "per_page": per_page, "clients": list }))
}

async fn client_info(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = st.delivery.client(&id).await.ok_or_else(|| ApiError::NotFound(format!("no client {id}")))?;
    Ok(Json(json!(c)))
}

async fn kick(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    st.delivery.client(&id).await.ok_or_else(|| ApiError::NotFound(format!("no client {id}")))?;
    st.delivery.kick(Target::Client(&id), close::KICKED);
    Ok(Json(json!({ "kicked": id })))
}

/// Closes every connection of a user, on every node (revocation).
async fn kick_user(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if id.is_empty() {
        return Err(ApiError::BadRequest("empty user id".into()));
    }
    let local = st.delivery.kick(Target::User(&id), close::KICKED);
    Ok(Json(json!({ "user": id, "closed_here": local })))
}

async fn modules(State(st): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!(st.runtime.status()))
}

async fn reload(State(st): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!(st.runtime.reload().await))
}

async fn healthz(State(st): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let mut body = json!({ "status": "ok", "clients": st.delivery.local().clients() });
    if let Some(health) = st.delivery.cluster_health() {
        body["cluster"] = json!(health);
    }
    Json(body)
}

async fn metrics(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], st.delivery.metrics.render())
}
