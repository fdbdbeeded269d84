//! One WebSocket connection from upgrade to close: the hot path.
//!
//! Owns the connection task: read a frame, parse it once, answer built-ins (`ping`, `join`,
//! `quit`) or call the handler, and write queued frames in batches. It also enforces the
//! per-connection rate limit, the frame size limit, the write deadline and the heartbeat.
//! It must never hold a lock across an `.await` and never block: handler calls are async and
//! every send goes through the client's bounded queue.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::Deserialize;
use tokio::time::Instant;

use crate::app::AppState;
use crate::auth::AuthError;
use crate::delivery::{ClientHandle, unix_ms};
use crate::metrics::Metrics;
use crate::protocol::{self, ErrorKind, close};
use crate::rate::TokenBucket;
use crate::runtime::CallError;

/// How long the goodbye (queued frames + close frame) may take.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// The `data` of the `kick` frame sent before a 4001 close.
const KICK_DATA: &str = r#"{"reason":"kicked"}"#;

/// The lifetime of the connection's token: `token_expiring` before `exp`, the close (4002)
/// after `exp` + leeway, both moved by a `refresh`.
struct Expiry {
    /// The token's `exp`, Unix seconds; `None`: never expires (a guest, or a token without one).
    exp: Option<u64>,
    /// `token_expiring` was sent for this `exp`.
    warned: bool,
    warning_secs: u64,
    leeway_secs: u64,
    /// A refresh moved `exp`: the timer must be set again.
    changed: bool,
}

/// What the token timer found due.
#[derive(Debug, PartialEq, Eq)]
enum TokenDue {
    Nothing,
    /// Send `token_expiring`; `exp` is this many seconds away.
    Warn(u64),
    Expired,
}

impl Expiry {
    /// Unix ms of the next thing due (the warning, then the close), if any.
    fn next_due_ms(&self) -> Option<u64> {
        let exp = self.exp?;
        let secs =
            if self.warned { exp.saturating_add(self.leeway_secs) } else { exp.saturating_sub(self.warning_secs) };
        Some(secs.saturating_mul(1000))
    }

    /// What is due at `now_ms` (Unix ms); a warning is given once per token.
    fn due(&mut self, now_ms: u64) -> TokenDue {
        let Some(exp) = self.exp else { return TokenDue::Nothing };
        if now_ms > exp.saturating_add(self.leeway_secs).saturating_mul(1000) {
            return TokenDue::Expired;
        }
        if !self.warned && now_ms >= exp.saturating_sub(self.warning_secs).saturating_mul(1000) {
            self.warned = true;
            return TokenDue::Warn(exp.saturating_sub(now_ms / 1000));
        }
        TokenDue::Nothing
    }

    /// The tokio instant of [`Expiry::next_due_ms`]. Far-off deadlines are cut to a day (the timer
    /// then finds nothing due and is set again), and a wall-clock jump moves it at the next check.
    fn next_instant(&self) -> Instant {
        const FAR: Duration = Duration::from_secs(86_400);
        let now = Instant::now();
        let Some(due_ms) = self.next_due_ms() else { return now + FAR };
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        // One millisecond late, so the check at the timer's turn sees "past" and not "just at".
        now + Duration::from_millis(due_ms.saturating_sub(now_ms).saturating_add(1)).min(FAR)
    }
}

/// Why a connection ended, for the disconnect log line.
enum End {
    /// We close with this code.
    Close(u16, &'static str),
    /// The peer went away (close frame, EOF or I/O error).
    Peer(String),
}

/// What a connection runs over: messages read and written. The server's is axum's
/// `WebSocket`; a test may give a peer whose writes block, to see every write's deadline hold.
pub trait Transport:
    Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin + Send
{
}

impl<T> Transport for T where
    T: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin + Send
{
}

/// Runs a connection until it ends, then removes the client from every index.
pub async fn run(mut socket: impl Transport, state: Arc<AppState>, client: Arc<ClientHandle>) {
    let ws = &state.config.ws;
    let metrics = &state.delivery.metrics;
    tracing::info!(client = %client.id_str, user = %client.identity.user, ip = %client.ip, "connected");
    let welcome = serde_json::json!({"id": &*client.id_str, "user": &*client.identity.user}).to_string();
    client.send(protocol::success_frame("connected", Some(&welcome)));

    let timeout = Duration::from_secs(ws.heartbeat_timeout_secs.max(1));
    let ping_every = Duration::from_secs(ws.ping_interval_secs.max(1));
    let check_every = (timeout / 4).clamp(Duration::from_millis(50), ping_every);
    let mut heartbeat = tokio::time::interval(check_every);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_ping = Instant::now();
    // Heartbeat on the monotonic clock: a wall-clock jump neither kills nor spares anyone.
    let mut last_seen = Instant::now();
    let write_timeout = Duration::from_millis(ws.write_timeout_ms.max(1));
    let mut rate = TokenBucket::new(ws.rate_per_sec, ws.rate_burst, std::time::Instant::now());
    let auth = &state.config.auth;
    let mut expiry = Expiry {
        exp: client.identity.exp,
        warned: false,
        warning_secs: auth.expiry_warning_secs,
        leeway_secs: auth.leeway_secs,
        changed: false,
    };
    let token_timer = tokio::time::sleep_until(expiry.next_instant());
    tokio::pin!(token_timer);
    // Frames taken from the client's queue, written in one flush.
    let mut batch = VecDeque::new();

    // One long-lived future: polling it only re-registers the task's waker.
    let closed = client.closed();
    tokio::pin!(closed);

    let end = loop {
        tokio::select! {
            biased;
            code = &mut closed => break End::Close(code, close_reason(code)),
            msg = socket.next() => {
                let msg = match msg {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        if is_too_big(&e) {
                            metrics.oversized_frames_total.inc();
                            break End::Close(close::TOO_BIG, "frame too large");
                        }
                        break End::Peer(format!("read error: {e}"));
                    }
                    None => break End::Peer("connection closed".into()),
                };
                client.touch();
                last_seen = Instant::now();
                match msg {
                    Message::Text(text) => {
                        metrics.frames_in_total.inc();
                        if let Some(r) = rate.as_mut() && !r.allow(std::time::Instant::now()) {
                            metrics.rate_limited_total.inc();
                            let msg = format!("rate limit exceeded: at most {} frames/s", r.rate());
                            client.send(protocol::error_frame("error", ErrorKind::RateLimited, &msg));
                            break End::Close(close::POLICY, "rate limit exceeded");
                        }
                        // Replies queue up without waking this task: the next turn of the loop
                        // reads any frame already received first, then writes every reply in
                        // one flush (one syscall for a pipelined burst).
                        client.begin_handling();
                        handle_text(&state, &client, &text, &mut expiry).await;
                        client.end_handling();
                        if std::mem::take(&mut expiry.changed) {
                            token_timer.as_mut().reset(expiry.next_instant());
                        }
                    }
                    Message::Binary(_) => {
                        metrics.protocol_errors_total.inc();
                        client.send(protocol::error_frame(
                            "error",
                            ErrorKind::BinaryFrame,
                            "binary frames are not supported; send JSON text frames",
                        ));
                    }
                    Message::Close(_) => break End::Peer("client closed".into()),
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            () = client.next_batch(&mut batch) => {
                if let Err(end) = write_batch(&mut socket, &client, &mut batch, write_timeout, closed.as_mut(), metrics).await {
                    break end;
                }
            }
            () = &mut token_timer, if expiry.exp.is_some() => {
                match expiry.due(unix_ms()) {
                    TokenDue::Expired => {
                        metrics.tokens_expired_total.inc();
                        break End::Close(close::TOKEN_EXPIRED, "token expired");
                    }
                    TokenDue::Warn(in_secs) => {
                        let data = serde_json::json!({"exp": expiry.exp, "in_secs": in_secs}).to_string();
                        client.send(protocol::success_frame("token_expiring", Some(&data)));
                    }
                    TokenDue::Nothing => {}
                }
                token_timer.as_mut().reset(expiry.next_instant());
            }
            _ = heartbeat.tick() => {
                if last_seen.elapsed() > timeout {
                    metrics.heartbeat_timeouts_total.inc();
                    break End::Close(close::HEARTBEAT_TIMEOUT, "heartbeat timeout");
                }
                if last_ping.elapsed() >= ping_every {
                    last_ping = Instant::now();
                    let ping = socket.send(Message::Ping(Default::default()));
                    if let Err(end) = within_deadline(ping, write_timeout, closed.as_mut(), metrics).await {
                        break end;
                    }
                }
            }
        }
    };

    // Remove first so nothing new is queued to a closing client.
    state.delivery.disconnect(&client);
    let reason = match &end {
        End::Close(code, reason) => {
            let goodbye = async {
                // Deliver what was queued (an error frame explaining the close, say), then close.
                client.take_queued(&mut batch);
                if *code == close::KICKED {
                    // hotgo's browser client logs out (and does not reconnect) on this frame only.
                    batch.push_back(protocol::success_frame("kick", Some(KICK_DATA)));
                }
                while let Some(f) = batch.pop_front() {
                    socket.feed(Message::Text(f)).await?;
                }
                let frame = CloseFrame { code: *code, reason: Utf8Bytes::from_static(reason) };
                socket.send(Message::Close(Some(frame))).await
            };
            let _ = tokio::time::timeout(CLOSE_GRACE, goodbye).await;
            format!("{reason} ({code})")
        }
        End::Peer(why) => why.clone(),
    };
    tracing::info!(client = %client.id_str, user = %client.identity.user, reason = %reason, "disconnected");
}

fn close_reason(code: u16) -> &'static str {
    match code {
        close::GOING_AWAY => "server shutting down",
        close::TRY_AGAIN_LATER => "outbound queue full",
        close::KICKED => "kicked",
        close::TOKEN_EXPIRED => "token expired",
        close::POLICY => "policy violation",
        _ => "closed by server",
    }
}

fn is_too_big(e: &axum::Error) -> bool {
    use std::error::Error as _;
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(t) = s.downcast_ref::<tokio_tungstenite::tungstenite::Error>() {
            return matches!(t, tokio_tungstenite::tungstenite::Error::Capacity(_));
        }
        src = s.source();
    }
    false
}

/// Writes the batch (everything that was queued) and flushes once, within the write deadline.
async fn write_batch(
    socket: &mut impl Transport,
    client: &ClientHandle,
    batch: &mut VecDeque<Utf8Bytes>,
    write_timeout: Duration,
    closed: Pin<&mut impl Future<Output = u16>>,
    metrics: &Metrics,
) -> Result<(), End> {
    let write = async {
        let mut bytes = 0;
        while let Some(f) = batch.pop_front() {
            bytes += f.len();
            socket.feed(Message::Text(f)).await?;
        }
        socket.flush().await?;
        client.dequeued(bytes);
        Ok(())
    };
    within_deadline(write, write_timeout, closed, metrics).await
}

/// Runs one write (frames or a ping) under the write deadline, given up at a close request: a
/// peer that stopped reading with a full TCP window must not freeze the connection, nor keep its
/// kick or the shutdown from reaching it. A reader too slow to take the write in time, a write
/// error or a close request ends the connection.
async fn within_deadline(
    write: impl Future<Output = Result<(), axum::Error>>,
    write_timeout: Duration,
    closed: Pin<&mut impl Future<Output = u16>>,
    metrics: &Metrics,
) -> Result<(), End> {
    tokio::select! {
        r = tokio::time::timeout(write_timeout, write) => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(End::Peer(format!("write error: {e}"))),
            Err(_) => {
                metrics.slow_consumers_total.inc();
                Err(End::Close(close::POLICY, "write timeout"))
            }
        },
        code = closed => Err(End::Close(code, close_reason(code))),
    }
}

#[derive(Deserialize)]
struct TagRequest<'a> {
    #[serde(borrow)]
    id: Option<TagId<'a>>,
}

/// A tag id: a string, or a number as hotgo's clients send (`{"id": 42}` is tag `"42"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum TagId<'a> {
    Str(#[serde(borrow)] std::borrow::Cow<'a, str>),
    Num(serde_json::Number),
}

impl<'a> TagId<'a> {
    fn into_tag(self) -> std::borrow::Cow<'a, str> {
        match self {
            TagId::Str(s) => s,
            TagId::Num(n) => std::borrow::Cow::Owned(n.to_string()),
        }
    }
}

#[derive(Deserialize)]
struct RefreshRequest<'a> {
    #[serde(borrow)]
    token: Option<std::borrow::Cow<'a, str>>,
}

/// `refresh`: a new token for the same user moves the connection's expiry.
fn refresh(state: &AppState, client: &ClientHandle, data: &str, id: Option<&str>, expiry: &mut Expiry) {
    let metrics = &state.delivery.metrics;
    let token = serde_json::from_str::<RefreshRequest<'_>>(data).ok().and_then(|r| r.token).filter(|t| !t.is_empty());
    let Some(token) = token else {
        client.send(protocol::error_reply(
            "refresh",
            ErrorKind::BadRequest,
            "expected data {\"token\": \"<jwt>\"}",
            id,
        ));
        return;
    };
    let refused = match state.auth.verify(crate::auth::bearer(&token)) {
        Ok(who) if who.user == client.identity.user => {
            metrics.token_refreshes_total.inc();
            *expiry = Expiry { exp: who.exp, warned: false, changed: true, ..*expiry };
            let data = serde_json::json!({"exp": who.exp}).to_string();
            client.send(protocol::reply("refresh", Some(&data), id));
            return;
        }
        Ok(_) => "the token is for another user".to_string(),
        Err(AuthError::Invalid(e)) => format!("invalid token: {e}"),
        Err(e) => e.to_string(),
    };
    metrics.token_refresh_refused_total.inc();
    tracing::info!(client = %client.id_str, user = %client.identity.user, "refresh refused: {refused}");
    client.send(protocol::error_reply("refresh", ErrorKind::InvalidToken, &refused, id));
}

/// One client frame: built-in events here, everything else to the handler.
async fn handle_text(state: &AppState, client: &Arc<ClientHandle>, text: &str, expiry: &mut Expiry) {
    let metrics = &state.delivery.metrics;
    let (event, data, id) = match protocol::parse_client_frame(text, state.config.ws.max_json_depth) {
        Ok(r) => (r.event, r.data, r.id),
        Err(e) => {
            metrics.protocol_errors_total.inc();
            client.send(protocol::error_frame("error", e.kind(), &e.to_string()));
            return;
        }
    };
    match &*event {
        "ping" => {
            client.send(protocol::reply("ping", None, id));
        }
        "refresh" => refresh(state, client, data, id, expiry),
        "join" | "quit" => {
            let tag = serde_json::from_str::<TagRequest<'_>>(data)
                .ok()
                .and_then(|r| r.id)
                .map(TagId::into_tag)
                .filter(|t| !t.is_empty());
            let Some(tag) = tag else {
                client.send(protocol::error_reply(
                    &event,
                    ErrorKind::BadRequest,
                    "expected data {\"id\": \"<tag>\"} (a string or a number)",
                    id,
                ));
                return;
            };
            if event == "join" {
                if !state.config.ws.client_join.iter().any(|p| crate::runtime::manifest::tag_matches(p, &tag)) {
                    client.send(protocol::error_reply(
                        &event,
                        ErrorKind::BadRequest,
                        "this tag cannot be joined by clients",
                        id,
                    ));
                    return;
                }
                if let Err(e) = state.delivery.join(client, &tag).await {
                    client.send(protocol::error_reply(&event, ErrorKind::BadRequest, &e.to_string(), id));
                    return;
                }
            } else {
                state.delivery.quit(client, &tag);
            }
            let tags = serde_json::to_string(&client.tags()).unwrap_or_else(|_| "[]".into());
            client.send(protocol::reply(&event, Some(&tags), id));
        }
        // Boxed: the call's future is large, and keeping it out of the connection task's
        // state keeps every idle connection small. `Runtime::call` keeps that future small
        // enough for glibc's per-thread cache (tcache, up to 1,032 bytes); a bigger block
        // would take the allocator's shared arena lock on every event.
        _ => match Box::pin(state.runtime.call(client, &event, data, id)).await {
            Ok(()) => {}
            Err(CallError::UnknownEvent) => {
                metrics.protocol_errors_total.inc();
                let msg = format!("unknown event \"{event}\"");
                client.send(protocol::error_reply(&event, ErrorKind::UnknownEvent, &msg, id));
            }
            Err(e) => {
                client.send(protocol::error_reply(&event, e.kind(), &e.client_message(), id));
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_warned_once_then_expires_after_its_leeway() {
        let mut e = Expiry { exp: Some(100), warned: false, warning_secs: 60, leeway_secs: 5, changed: false };
        assert_eq!(e.next_due_ms(), Some(40_000), "the warning first");
        assert_eq!(e.due(39_999), TokenDue::Nothing);
        assert_eq!(e.due(40_000), TokenDue::Warn(60));
        assert_eq!(e.due(41_000), TokenDue::Nothing, "once");
        assert_eq!(e.next_due_ms(), Some(105_000), "then the close, after the leeway");
        assert_eq!(e.due(105_000), TokenDue::Nothing, "valid up to exp + leeway");
        assert_eq!(e.due(105_001), TokenDue::Expired);
        let mut late = Expiry { exp: Some(100), warned: false, warning_secs: 60, leeway_secs: 0, changed: false };
        assert_eq!(late.due(200_000), TokenDue::Expired, "past exp, no warning first");
        let mut never = Expiry { exp: None, warned: false, warning_secs: 60, leeway_secs: 5, changed: false };
        assert_eq!((never.next_due_ms(), never.due(u64::MAX)), (None, TokenDue::Nothing));
        let mut huge =
            Expiry { exp: Some(u64::MAX), warned: true, warning_secs: u64::MAX, leeway_secs: u64::MAX, changed: false };
        assert_eq!(huge.due(u64::MAX), TokenDue::Nothing, "no overflow");
        assert!(huge.next_instant() > Instant::now());
    }
}
