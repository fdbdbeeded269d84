//! Assembling the server: shared state, the `/ws` upgrade, the HTTP API, start and shutdown.
//!
//! Owns the checks made before an upgrade (Origin, connection limit, token) and the server's
//! lifecycle. It must never answer an upgrade it has not authenticated, and never exit
//! without telling connected clients (close 1001).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio::sync::watch;

use crate::auth::{self, Authenticator, Identity, TokenSource};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::protocol::close;
use crate::registry::Registry;
use crate::runtime::Runtime;
use crate::{http_api, session};

/// Everything the handlers of requests and connections share.
pub struct AppState {
    pub config: Config,
    pub auth: Authenticator,
    pub registry: Arc<Registry>,
    pub runtime: Arc<Runtime>,
}

/// A running server.
pub struct Server {
    pub local_addr: SocketAddr,
    pub state: Arc<AppState>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Frames fed in one batch are coalesced into writes of about this size (one `sendto` for
/// many replies) instead of one write per frame.
const WRITE_COALESCE_BYTES: usize = 16 * 1024;

fn reject(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "code": -1, "errorMsg": msg.into() }))).into_response()
}

/// Browsers send `Origin`; a foreign one is cross-site WebSocket hijacking unless allowed.
fn origin_allowed(cfg: &Config, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let allowed = &cfg.ws.allowed_origins;
    if allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

async fn ws_upgrade(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let metrics = &st.registry.metrics;
    if !origin_allowed(&st.config, &headers) {
        metrics.origin_rejected_total.inc();
        return reject(StatusCode::FORBIDDEN, "origin not allowed");
    }
    if st.registry.online_clients() >= st.config.ws.max_connections {
        metrics.connection_limit_total.inc();
        return reject(StatusCode::SERVICE_UNAVAILABLE, "connection limit reached, retry later");
    }
    let (identity, source) = match auth::extract_token(&headers, query.as_deref()) {
        Some((token, source)) => match st.auth.verify(&token) {
            Ok(id) => (id, Some(source)),
            Err(e) => {
                metrics.auth_failures_total.inc();
                tracing::info!(ip = %peer.ip(), "upgrade refused: {e}");
                return reject(StatusCode::UNAUTHORIZED, e.to_string());
            }
        },
        None if st.auth.anonymous => (Identity::guest(), None),
        None => {
            metrics.auth_failures_total.inc();
            return reject(
                StatusCode::UNAUTHORIZED,
                "missing token: send Authorization: Bearer, ?token=, or the subprotocols [\"switchyard\", <token>]",
            );
        }
    };
    let ua = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let cfg = &st.config.ws;
    let mut ws = ws
        .max_message_size(cfg.max_frame_bytes)
        .max_frame_size(cfg.max_frame_bytes)
        .read_buffer_size(cfg.read_buffer_bytes)
        .write_buffer_size(WRITE_COALESCE_BYTES);
    if source == Some(TokenSource::Subprotocol) {
        ws = ws.protocols([auth::SUBPROTOCOL]);
    }
    let state = st.clone();
    ws.on_failed_upgrade(|e| tracing::debug!("upgrade failed: {e}")).on_upgrade(move |socket| async move {
        let client = state.registry.register(identity, peer.ip(), &ua, state.config.ws.outbound_queue_bytes);
        session::run(socket, state, client).await;
    })
}

impl Server {
    /// Loads the handlers, binds `config.listen` (port 0 picks one) and starts serving.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let auth = Authenticator::new(&config.auth)?;
        let registry = Arc::new(Registry::new(Arc::new(Metrics::default())));
        let runtime = {
            let (cfg, reg) = (config.runtime.clone(), registry.clone());
            tokio::task::spawn_blocking(move || Runtime::new(&cfg, reg)).await??
        };
        if config.runtime.watch {
            runtime.watch(Duration::from_millis(config.runtime.watch_debounce_ms))?;
        }
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        // Real-time traffic: a reply goes out when written, not when Nagle's algorithm says.
        // (Replies queued together are already coalesced into one write by the session.)
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("TCP_NODELAY not set: {e}");
            }
        });
        let state = Arc::new(AppState { config, auth, registry, runtime });
        let app = Router::new()
            .route("/ws", get(ws_upgrade))
            .merge(http_api::router(state.clone()))
            .with_state(state.clone());
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        });
        tracing::info!(addr = %local_addr, "listening (WebSocket at /ws)");
        Ok(Self { local_addr, state, stop, task })
    }

    /// Closes every client with 1001, waits (briefly) for them to go, and stops serving.
    pub async fn shutdown(mut self) {
        tracing::info!(clients = self.state.registry.online_clients(), "shutting down");
        self.state.registry.close_all(close::GOING_AWAY);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.state.registry.online_clients() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = self.stop.send(true);
        self.state.runtime.stop();
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        tracing::info!("stopped");
    }
}

impl Drop for Server {
    /// A server dropped without [`Server::shutdown`] still stops serving and its background
    /// threads (tests drop servers all the time).
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.state.runtime.stop();
        self.state.registry.close_all(close::GOING_AWAY);
    }
}
