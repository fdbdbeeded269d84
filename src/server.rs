//! Starting and stopping the server: the `/ws` upgrade, the HTTP API, and shutdown.
//!
//! Owns the checks made before an upgrade (Origin, connection limit, token), the listener and
//! the connection tasks, which it tracks so that shutdown waits for them. It must never answer
//! an upgrade it has not authenticated, and never exit without telling connected clients
//! (close 1001).

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
use tokio_util::task::TaskTracker;

use crate::app::AppState;
use crate::auth::{self, Authenticator, Identity, TokenSource};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::delivery::Delivery;
use crate::metrics::Metrics;
use crate::protocol::close;
use crate::runtime::Runtime;
use crate::{http_api, session, web};

/// A running server.
pub struct Server {
    pub local_addr: SocketAddr,
    pub state: Arc<AppState>,
    /// Every connection task, so that shutdown can wait for their goodbyes.
    sessions: TaskTracker,
    /// The Redis broker, in cluster mode.
    pub cluster: Option<Arc<Cluster>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Frames fed in one batch are coalesced into writes of about this size (one `sendto` for
/// many replies) instead of one write per frame.
const WRITE_COALESCE_BYTES: usize = 16 * 1024;
/// How long shutdown waits for clients to take their close frames.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

fn reject(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "code": -1, "errorMsg": msg.into() }))).into_response()
}

/// Browsers send `Origin`; a foreign one is cross-site WebSocket hijacking unless allowed.
fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

async fn ws_upgrade(
    State((st, sessions)): State<(Arc<AppState>, TaskTracker)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let metrics = &st.delivery.metrics;
    if !origin_allowed(&st.config.ws.allowed_origins, &headers) {
        metrics.origin_rejected_total.inc();
        return reject(StatusCode::FORBIDDEN, "origin not allowed");
    }
    if st.delivery.local().clients() >= st.config.ws.max_connections {
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
    ws.on_failed_upgrade(|e| tracing::debug!("upgrade failed: {e}")).on_upgrade(move |socket| {
        sessions.track_future(async move {
            let limit = st.config.ws.outbound_queue_bytes;
            let client = st.delivery.connect(identity, peer.ip(), &ua, limit).await;
            session::run(socket, st, client).await;
        })
    })
}

impl Server {
    /// Loads the handlers, binds `config.listen` (port 0 picks one) and starts serving. The
    /// background work (epoch ticker, file watcher) starts only once both succeeded.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let auth = Authenticator::new(&config.auth)?;
        let metrics = Arc::new(Metrics::default());
        let delivery = Arc::new(Delivery::new(metrics));
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        // The epoch ticker starts inside, once the handlers loaded; a refused start leaves no
        // thread behind (and an unused listener, closed on return).
        let runtime = {
            let (cfg, d) = (config.runtime.clone(), delivery.clone());
            tokio::task::spawn_blocking(move || Runtime::new(&cfg, d)).await??
        };
        let cluster = match &config.cluster.redis_url {
            Some(url) => Some(Cluster::start(&config.cluster, url, &delivery)?),
            None => None,
        };
        if config.runtime.watch {
            runtime.watch(Duration::from_millis(config.runtime.watch_debounce_ms))?;
        }
        // Real-time traffic: a reply goes out when written, not when Nagle's algorithm says.
        // (Replies queued together are already coalesced into one write by the session.)
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("TCP_NODELAY not set: {e}");
            }
        });
        let state = Arc::new(AppState { config, auth, delivery, runtime });
        let sessions = TaskTracker::new();
        let app = Router::new()
            .route("/ws", get(ws_upgrade))
            .with_state((state.clone(), sessions.clone()))
            .merge(http_api::router(state.clone()))
            .merge(web::router(state.clone()));
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        });
        tracing::info!(addr = %local_addr, "listening (WebSocket at /ws)");
        Ok(Self { local_addr, state, sessions, cluster, stop, task })
    }

    /// Closes every client with 1001, waits (at most [`SHUTDOWN_GRACE`]) for their connection
    /// tasks to end, and stops serving.
    pub async fn shutdown(mut self) {
        tracing::info!(clients = self.state.delivery.local().clients(), "shutting down");
        self.state.delivery.close_all(close::GOING_AWAY);
        self.sessions.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.sessions.wait()).await.is_err() {
            tracing::warn!(left = self.sessions.len(), "shutdown: some connections did not close in time");
        }
        if let Some(c) = &self.cluster {
            // Stopped first, so no heartbeat can bring the node back while it leaves.
            c.stop();
            c.leave().await;
        }
        let _ = self.stop.send(true);
        self.state.runtime.stop();
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, &mut self.task).await;
        tracing::info!("stopped");
    }
}

impl Drop for Server {
    /// A server dropped without [`Server::shutdown`] still stops serving and its background
    /// work (tests drop servers all the time).
    fn drop(&mut self) {
        if let Some(c) = &self.cluster {
            c.stop();
        }
        let _ = self.stop.send(true);
        self.state.runtime.stop();
        self.state.delivery.close_all(close::GOING_AWAY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.clone(), v.parse().unwrap())).collect()
    }

    #[test]
    fn origin_check() {
        let none: Vec<String> = vec![];
        assert!(origin_allowed(&none, &headers(&[])), "no Origin: not a browser");
        let same = headers(&[(header::ORIGIN, "http://chat.example:8080"), (header::HOST, "chat.example:8080")]);
        assert!(origin_allowed(&none, &same), "same host");
        let same_case = headers(&[(header::ORIGIN, "https://Chat.Example"), (header::HOST, "chat.example")]);
        assert!(origin_allowed(&none, &same_case));
        let foreign = headers(&[(header::ORIGIN, "https://evil.example"), (header::HOST, "chat.example")]);
        assert!(!origin_allowed(&none, &foreign), "cross-site");
        assert!(!origin_allowed(&none, &headers(&[(header::ORIGIN, "https://evil.example")])), "no Host");
        assert!(origin_allowed(&["https://evil.example".into()], &foreign), "listed");
        assert!(origin_allowed(&["HTTPS://EVIL.EXAMPLE".into()], &foreign), "listed, any case");
        assert!(origin_allowed(&["*".into()], &foreign), "wildcard");
        let port = headers(&[(header::ORIGIN, "http://chat.example:9999"), (header::HOST, "chat.example:8080")]);
        assert!(!origin_allowed(&none, &port), "another port is another origin");
    }
}
