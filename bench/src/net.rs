//! Everything that touches the network: target resolution (loopback only), WebSocket connects
//! from spread source addresses, token minting, and a minimal keep-alive HTTP/1.1 client.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

use crate::Target;
use crate::stats::{ErrKind, Errors, Frame, Hists, LocalHist};

pub type Ws = WebSocketStream<TcpStream>;

/// A `host:port` on 127.0.0.0/8 plus the rest of a URL.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub addr: SocketAddrV4,
    /// `host[:port]` as written, for the Host header / URL.
    pub authority: String,
    /// Path and query, starting with `/`.
    pub path: String,
}

/// Parses `scheme://host[:port][/path]`, accepting only an IPv4 literal in 127.0.0.0/8 or
/// `localhost` (never resolved through DNS: this tool must not be pointed anywhere else).
pub fn parse_endpoint(url: &str, scheme: &str, default_port: u16) -> Result<Endpoint> {
    let rest = url.strip_prefix(&format!("{scheme}://")).ok_or_else(|| anyhow!("{url}: expected a {scheme}:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().with_context(|| format!("{url}: bad port"))?),
        None => (authority, default_port),
    };
    let ip: Ipv4Addr = if host == "localhost" {
        Ipv4Addr::LOCALHOST
    } else {
        host.parse().with_context(|| format!("{url}: host must be an IPv4 literal in 127.0.0.0/8 or localhost"))?
    };
    if !ip.is_loopback() {
        bail!("{url}: refusing a non-loopback target ({ip}); only 127.0.0.0/8 is allowed");
    }
    Ok(Endpoint { addr: SocketAddrV4::new(ip, port), authority: authority.to_string(), path: path.to_string() })
}

/// Resolved settings shared by every scenario.
pub struct Env {
    pub target: Target,
    pub ws: Endpoint,
    pub http: Endpoint,
    pub api_key: String,
    pub key: EncodingKey,
    pub token_tags: Vec<String>,
    pub conns_per_ip: usize,
    pub connect_concurrency: usize,
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

    /// Source address for the `i`-th long-lived connection: `conns_per_ip` per address from
    /// 127.0.0.1 upward (wrapping after 127.0.0.254).
    pub fn source_for(&self, i: usize) -> Ipv4Addr {
        let k = (i / self.conns_per_ip.max(1)) % 254;
        Ipv4Addr::new(127, 0, 0, 1 + k as u8)
    }

    /// A signed HS256 token for user `bench-<i>`, valid for a day.
    pub fn mint(&self, i: usize) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let mut claims = json!({"sub": format!("bench-{i}"), "iat": now, "exp": now + 86_400});
        if !self.token_tags.is_empty() {
            claims["tags"] = json!(self.token_tags);
        }
        jsonwebtoken::encode(&Header::default(), &claims, &self.key).expect("HS256 encode")
    }

    /// Pre-minted tokens `first..first+n` (Switchyard only; peers take no token).
    pub fn mint_many(&self, first: usize, n: usize) -> Option<Arc<Vec<String>>> {
        (self.target == Target::Switchyard).then(|| Arc::new((first..first + n).map(|i| self.mint(i)).collect()))
    }

    fn ws_config() -> WebSocketConfig {
        // Small eager read buffer: 10k client sockets at the 128 KiB default would cost the bench
        // 1.3 GB of address space for nothing.
        WebSocketConfig::default().read_buffer_size(2 * 1024)
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
        let (mut ws, _resp) = client_async_with_config(self.ws_url(token), stream, Some(Self::ws_config()))
            .await
            .context("websocket upgrade")?;
        if self.target == Target::Switchyard {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => {
                        let f = Frame::parse(&t).ok_or_else(|| anyhow!("welcome: bad json: {t}"))?;
                        if f.event() != "connected" || !f.ok() {
                            bail!("expected the welcome frame, got {t}");
                        }
                        break;
                    }
                    Some(Ok(Message::Close(c))) => bail!("closed before welcome: {c:?}"),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => bail!("before welcome: {e}"),
                    None => bail!("closed before welcome"),
                }
            }
        }
        Ok(ws)
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
        if ws.close(None).await.is_err() {
            return;
        }
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// Sends one text frame (flushed).
pub async fn send_text(ws: &mut Ws, s: String) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    ws.send(Message::text(s)).await
}

/// Opens `n` connections (indices `first..first+n`) with bounded concurrency. Failures are
/// counted as connect errors. Returns (index, socket) pairs, the connect-time histogram and the
/// wall time the ramp took.
pub async fn connect_all(
    env: &Arc<Env>,
    first: usize,
    n: usize,
    tokens: Option<Arc<Vec<String>>>,
    errors: &Arc<Errors>,
) -> (Vec<(usize, Ws)>, hdrhistogram::Histogram<u64>, Duration) {
    let hists = Arc::new(Hists::new());
    let sem = Arc::new(Semaphore::new(env.connect_concurrency.max(1)));
    let start = Instant::now();
    // The whole ramp is bounded: past this, queued connects give up instead of starting.
    let phase_deadline = start + Duration::from_secs(60) + env.timeout + Duration::from_millis(20 * n as u64);
    let mut set = JoinSet::new();
    for k in 0..n {
        let (env, sem, tokens, errors, hists) =
            (env.clone(), sem.clone(), tokens.clone(), errors.clone(), hists.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.ok()?;
            if Instant::now() > phase_deadline {
                errors.one(ErrKind::Connect, || "connect phase deadline passed".into());
                return None;
            }
            let i = first + k;
            let t = Instant::now();
            match env.open(env.source_for(i), tokens.as_ref().map(|t| t[k].as_str())).await {
                Ok(ws) => {
                    LocalHist::new(&hists, k).record(t.elapsed());
                    Some((i, ws))
                }
                Err(e) => {
                    errors.one(ErrKind::Connect, || format!("{e:#}"));
                    None
                }
            }
        });
    }
    let mut out = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        if let Ok(Some(c)) = r {
            out.push(c);
        }
    }
    (out, hists.merged(), start.elapsed())
}

/// Minimal HTTP/1.1 client with keep-alive, enough for JSON POSTs to the API on loopback.
pub struct Http {
    ep: Endpoint,
    conn: Option<BufReader<TcpStream>>,
    timeout: Duration,
}

pub struct HttpResp {
    pub status: u16,
    pub body: String,
}

impl Http {
    pub fn new(ep: Endpoint, timeout: Duration) -> Self {
        Self { ep, conn: None, timeout }
    }

    /// POSTs a JSON body to `path` (appended to the base URL's path). Bounded by the timeout.
    pub async fn post(&mut self, path: &str, body: &str, api_key: Option<&str>) -> Result<HttpResp> {
        match tokio::time::timeout(self.timeout, self.post_inner(path, body, api_key)).await {
            Ok(r) => r,
            Err(_) => {
                self.conn = None;
                bail!("HTTP POST {path} timed out after {:?}", self.timeout)
            }
        }
    }

    async fn post_inner(&mut self, path: &str, body: &str, api_key: Option<&str>) -> Result<HttpResp> {
        let base = self.ep.path.trim_end_matches('/');
        let key = api_key.map(|k| format!("X-Api-Key: {k}\r\n")).unwrap_or_default();
        let req = format!(
            "POST {base}{path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{key}\r\n{body}",
            self.ep.authority,
            body.len()
        );
        // One retry, only when a reused keep-alive connection turns out to be dead before any
        // byte of the response arrived.
        for attempt in 0..2 {
            let reused = self.conn.is_some();
            if self.conn.is_none() {
                self.conn = Some(BufReader::new(tcp_connect(Ipv4Addr::LOCALHOST, self.ep.addr).await?));
            }
            let c = self.conn.as_mut().unwrap();
            let mut status_line = String::new();
            let sent = c.get_mut().write_all(req.as_bytes()).await;
            let got = match sent {
                Ok(()) => c.read_line(&mut status_line).await.map_err(anyhow::Error::from),
                Err(e) => Err(e.into()),
            };
            match got {
                Ok(n) if n > 0 => return self.finish(status_line).await,
                r => {
                    self.conn = None;
                    if reused && attempt == 0 {
                        continue;
                    }
                    return Err(match r {
                        Err(e) => e,
                        _ => anyhow!("connection closed before the response"),
                    });
                }
            }
        }
        unreachable!()
    }

    async fn finish(&mut self, status_line: String) -> Result<HttpResp> {
        let c = self.conn.as_mut().unwrap();
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
        let (mut len, mut chunked, mut close) = (None, false, status_line.starts_with("HTTP/1.0"));
        loop {
            let mut line = String::new();
            if c.read_line(&mut line).await? == 0 {
                bail!("eof in headers");
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
                match k.as_str() {
                    "content-length" => len = v.parse::<usize>().ok(),
                    "transfer-encoding" => chunked = v.contains("chunked"),
                    "connection" => close = v.contains("close"),
                    _ => {}
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let mut sz = String::new();
                c.read_line(&mut sz).await?;
                let n = usize::from_str_radix(sz.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| anyhow!("bad chunk size {sz:?}"))?;
                let mut chunk = vec![0; n + 2];
                c.read_exact(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(n) = len {
            body.resize(n, 0);
            c.read_exact(&mut body).await?;
        } else {
            c.read_to_end(&mut body).await?;
            close = true;
        }
        if close {
            self.conn = None;
        }
        Ok(HttpResp { status, body: String::from_utf8_lossy(&body).into_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_loopback_only() {
        let e = parse_endpoint("ws://127.0.0.1:9002/ws", "ws", 80).unwrap();
        assert_eq!(e.addr.port(), 9002);
        assert_eq!(e.path, "/ws");
        let e = parse_endpoint("http://localhost:8080", "http", 80).unwrap();
        assert_eq!(e.path, "/");
        assert!(parse_endpoint("ws://127.5.6.7/x?y=1", "ws", 80).is_ok());
        assert!(parse_endpoint("ws://10.0.0.1:80/ws", "ws", 80).is_err());
        assert!(parse_endpoint("ws://example.com/ws", "ws", 80).is_err());
        assert!(parse_endpoint("wss://127.0.0.1/ws", "ws", 80).is_err());
    }
}
