//! Everything that touches the network: target resolution (loopback only), WebSocket connects
//! from spread source addresses, token minting, and a minimal keep-alive HTTP/1.1 client.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

use crate::Target;
use crate::stats::{Errors, Frame};

pub type Ws = WebSocketStream<TcpStream>;

/// Long-lived client sockets per source address (127.0.0.1, .2, ...): 10,000 idle connections
/// to one port from one address would run out of ephemeral ports.
const CONNS_PER_IP: usize = 5000;
/// Connects in progress at once during a ramp: under the server's listen backlog (128 for Rust
/// std / tokio listeners), past which SYNs are dropped and retried a second later.
const CONNECT_CONCURRENCY: usize = 100;

/// A `host:port` on 127.0.0.0/8 plus the rest of a URL.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub addr: SocketAddrV4,
    /// `host[:port]` as written, for the Host header / URL.
    pub authority: String,
    /// Path and query, starting with `/`.
    pub path: String,
}

/// Parses `ws://host[:port][/path]`, accepting only an IPv4 literal in 127.0.0.0/8 or
/// `localhost` (never resolved through DNS: this tool must not be pointed anywhere else).
pub fn parse_endpoint(url: &str) -> Result<Endpoint> {
    let rest = url.strip_prefix("ws://").ok_or_else(|| anyhow!("{url}: expected a ws:// URL"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().with_context(|| format!("{url}: bad port"))?),
        None => (authority, 80),
    };
    let ip: Ipv4Addr = if host == "localhost" {
        Ipv4Addr::LOCALHOST
    } else {
        host.parse().with_context(|| format!("{url}: host must be an IPv4 literal in 127.0.0.0/8 or localhost"))?
    };
    if !ip.is_loopback() {
        bail!("{url}: refusing a non-loopback target ({ip}); only 127.0.0.0/8 is allowed");
    }
    let path = if path.is_empty() { "/" } else { path };
    Ok(Endpoint { addr: SocketAddrV4::new(ip, port), authority: authority.to_string(), path: path.to_string() })
}

/// Resolved settings shared by every scenario.
pub struct Env {
    pub target: Target,
    pub ws: Endpoint,
    pub api_key: String,
    pub key: EncodingKey,
    pub timeout: Duration,
    pub server_pid: Option<u32>,
}

impl Env {
    /// The WebSocket URL, with `token=` appended for Switchyard.
    pub fn ws_url(&self, token: Option<&str>) -> String {
        let base = format!("ws://{}{}", self.ws.authority, self.ws.path);
        match token {
            Some(t) => format!("{base}{}token={t}", if base.contains('?') { '&' } else { '?' }),
            None => base,
        }
    }

    /// Source address of the `i`-th long-lived connection (wrapping after 127.0.0.254).
    pub fn source_for(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 0, 1 + (i / CONNS_PER_IP % 254) as u8)
    }

    /// A signed HS256 token for user `bench-<i>`, valid for a day.
    pub fn mint(&self, i: usize) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let claims = json!({"sub": format!("bench-{i}"), "iat": now, "exp": now + 86_400});
        jsonwebtoken::encode(&Header::default(), &claims, &self.key).expect("HS256 encode")
    }

    /// Pre-minted tokens `first..first+n` (Switchyard only; the peers take no token).
    pub fn mint_many(&self, first: usize, n: usize) -> Option<Arc<Vec<String>>> {
        (self.target == Target::Switchyard).then(|| Arc::new((first..first + n).map(|i| self.mint(i)).collect()))
    }

    /// TCP connect from `src`, WebSocket upgrade and, for Switchyard, the welcome frame.
    /// Bounded by `self.timeout`.
    pub async fn open(&self, src: Ipv4Addr, token: Option<&str>) -> Result<Ws> {
        tokio::time::timeout(self.timeout, self.open_inner(src, token))
            .await
            .map_err(|_| anyhow!("connect timed out after {:?}", self.timeout))?
    }

    async fn open_inner(&self, src: Ipv4Addr, token: Option<&str>) -> Result<Ws> {
        let stream = tcp_connect(src, self.ws.addr).await?;
        // A small eager read buffer: 10k client sockets at the 128 KiB default would cost the
        // bench 1.3 GB of address space for nothing.
        let config = WebSocketConfig::default().read_buffer_size(2 * 1024);
        let (mut ws, _) =
            client_async_with_config(self.ws_url(token), stream, Some(config)).await.context("websocket upgrade")?;
        match self.target {
            Target::Switchyard => {}
            Target::Socketio => return sio_connect(ws).await,
            Target::Axum | Target::Node => return Ok(ws),
        }
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => match Frame::parse(&t) {
                    Some(f) if f.event() == "connected" && f.ok() => return Ok(ws),
                    _ => bail!("expected the welcome frame, got {t}"),
                },
                Some(Ok(Message::Close(c))) => bail!("closed before welcome: {c:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => bail!("before welcome: {e}"),
                None => bail!("closed before welcome"),
            }
        }
    }
}

/// Engine.IO v4 on a WebSocket: the open packet `0{..}`, then `40` (connect to the main
/// namespace), answered `40{"sid":..}`. A ping (`2`) meanwhile is answered `3`.
async fn sio_connect(mut ws: Ws) -> Result<Ws> {
    let mut opened = false;
    loop {
        let Some(t) = text_of(ws.next().await).map_err(|e| anyhow!("socket.io handshake: {e}"))? else { continue };
        match (opened, t.as_str()) {
            (false, t) if t.starts_with("0{") => {
                send_text(&mut ws, "40".into()).await?;
                opened = true;
            }
            (true, t) if t.starts_with("40") => return Ok(ws),
            (true, "2") => send_text(&mut ws, "3".into()).await?,
            _ => bail!("socket.io handshake: unexpected packet {t}"),
        }
    }
}

pub async fn tcp_connect(src: Ipv4Addr, dst: SocketAddrV4) -> Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    // Defer the ephemeral port choice to connect(), so ports are only unique per 4-tuple.
    let one: libc::c_int = 1;
    // SAFETY: plain setsockopt on a socket we own, with a correctly sized int option.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    sock.bind(SocketAddr::new(src.into(), 0)).with_context(|| format!("bind {src}"))?;
    let s = sock.connect(dst.into()).await.with_context(|| format!("connect {dst} from {src}"))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Closes politely: close frame, then wait (bounded) for the server to end the stream.
pub async fn close_ws(mut ws: Ws, wait: Duration) {
    let _ = tokio::time::timeout(wait, async {
        if ws.close(None).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
}

/// A frame's text: `None` for a control or binary frame, an error once the connection is closed
/// or broken.
pub fn text_of(m: Option<Result<Message, WsError>>) -> Result<Option<Utf8Bytes>, String> {
    match m {
        Some(Ok(Message::Text(t))) => Ok(Some(t)),
        Some(Ok(Message::Close(c))) => Err(format!("close frame: {c:?}")),
        Some(Ok(_)) => Ok(None),
        Some(Err(e)) => Err(format!("read: {e}")),
        None => Err("closed by the server".into()),
    }
}

pub async fn send_text(ws: &mut Ws, s: String) -> Result<(), WsError> {
    ws.send(Message::text(s)).await
}

/// Opens `n` connections (indices and tokens `first..first+n`) with bounded concurrency;
/// failures count as errors. Returns the (index, socket) pairs and the ramp's JSON.
pub async fn connect_all(env: &Arc<Env>, first: usize, n: usize, errors: &Arc<Errors>) -> (Vec<(usize, Ws)>, Value) {
    let tokens = env.mint_many(first, n);
    let sem = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let start = Instant::now();
    // The whole ramp is bounded: past this, queued connects give up instead of starting.
    let deadline = start + Duration::from_secs(60) + env.timeout + Duration::from_millis(20 * n as u64);
    let mut set = JoinSet::new();
    for k in 0..n {
        let (env, sem, tokens, errors) = (env.clone(), sem.clone(), tokens.clone(), errors.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.ok()?;
            if Instant::now() > deadline {
                errors.one(|| "connect: the ramp's deadline passed".into());
                return None;
            }
            let i = first + k;
            let r = env.open(env.source_for(i), tokens.as_ref().map(|t| t[k].as_str())).await;
            r.map(|ws| (i, ws)).map_err(|e| errors.one(|| format!("connect: {e:#}"))).ok()
        });
    }
    let mut out = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        out.extend(r.ok().flatten());
    }
    let ramp = json!({"open": out.len(), "wanted": n, "ramp_s": start.elapsed().as_secs_f64()});
    (out, ramp)
}

/// A keep-alive HTTP/1.1 client for JSON POSTs on loopback. It reads responses by their
/// Content-Length, which both Switchyard's API and the peers send.
pub struct Http {
    ep: Endpoint,
    conn: Option<BufReader<TcpStream>>,
    timeout: Duration,
}

impl Http {
    pub fn new(ep: Endpoint, timeout: Duration) -> Self {
        Self { ep, conn: None, timeout }
    }

    /// POSTs `body` to `path`; returns the status and the body. Bounded by the timeout.
    pub async fn post(&mut self, path: &str, body: &str, api_key: Option<&str>) -> Result<(u16, String)> {
        let r = tokio::time::timeout(self.timeout, self.post_inner(path, body, api_key)).await;
        let r = r.unwrap_or_else(|_| Err(anyhow!("POST {path} timed out after {:?}", self.timeout)));
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    async fn post_inner(&mut self, path: &str, body: &str, api_key: Option<&str>) -> Result<(u16, String)> {
        if self.conn.is_none() {
            self.conn = Some(BufReader::new(tcp_connect(Ipv4Addr::LOCALHOST, self.ep.addr).await?));
        }
        let c = self.conn.as_mut().unwrap();
        let key = api_key.map(|k| format!("X-Api-Key: {k}\r\n")).unwrap_or_default();
        let (host, len) = (&self.ep.authority, body.len());
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n{key}\r\n{body}"
        );
        c.get_mut().write_all(req.as_bytes()).await?;
        let mut line = String::new();
        c.read_line(&mut line).await?;
        let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        let status = status.ok_or_else(|| anyhow!("bad status line {line:?}"))?;
        let (mut len, mut close) = (None, false);
        loop {
            line.clear();
            if c.read_line(&mut line).await? == 0 {
                bail!("connection closed in the response headers");
            }
            let l = line.trim_end().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.strip_prefix("content-length:") {
                len = v.trim().parse().ok();
            }
            close |= l.starts_with("connection:") && l.contains("close");
        }
        let mut body = vec![0; len.context("a response without Content-Length")?];
        c.read_exact(&mut body).await?;
        if close {
            self.conn = None;
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_loopback_only() {
        let e = parse_endpoint("ws://127.0.0.1:9002/ws").unwrap();
        assert_eq!((e.addr.port(), e.path.as_str()), (9002, "/ws"));
        assert_eq!(parse_endpoint("ws://localhost:8080").unwrap().path, "/");
        assert!(parse_endpoint("ws://127.5.6.7/x?y=1").is_ok());
        assert!(parse_endpoint("ws://10.0.0.1:80/ws").is_err());
        assert!(parse_endpoint("ws://example.com/ws").is_err());
        assert!(parse_endpoint("wss://127.0.0.1/ws").is_err());
    }
}
