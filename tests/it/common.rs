//! Test harness: a real server on an ephemeral port, real WebSocket and HTTP clients, real
//! wasm modules (WAT written here, or built from source by the languages' build scripts).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchyard::auth::Authenticator;
use switchyard::config::{Config, DEV_API_KEY};
use switchyard::server::Server;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const TIMEOUT: Duration = Duration::from_secs(10);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// WAT test modules live in `tests/wat/`.
pub fn wat(name: &str) -> String {
    std::fs::read_to_string(repo().join("tests/wat").join(name)).unwrap_or_else(|e| panic!("tests/wat/{name}: {e}"))
}

/// Runs a build script once per test run (e.g. `handlers/build.sh`), failing loudly.
pub fn build_once(script: &str) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<std::collections::HashMap<String, bool>>> = OnceLock::new();
    let map = BUILT.get_or_init(Default::default);
    let mut done = map.lock().unwrap_or_else(|e| e.into_inner());
    let path = repo().join(script);
    if !done.contains_key(script) {
        let out = std::process::Command::new("bash").arg(&path).output().expect("running build script");
        assert!(
            out.status.success(),
            "{script} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        done.insert(script.to_string(), true);
    }
    path.parent().unwrap().join("build")
}

/// The echo module of ABI.md plus a failing export, used by the host tests.
pub const ECHO_MANIFEST: &str = r#"
[modules.echo]
path = "echo.wat"
prefixes = ["echo", "fail"]

[[routes]]
event = "echo"
module = "echo"
export = "echo"

[[routes]]
event = "fail"
module = "echo"
export = "fail"
"#;

/// A temporary folder holding `switchyard.toml` (this manifest) and these files.
pub fn dir_with(manifest: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("switchyard.toml"), manifest).unwrap();
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    dir
}

/// Polls `cond` (every 10 ms) until it holds; panics naming `what` if it does not `within`.
/// For states a test cannot be told about directly: a counter, an HTTP endpoint, a file.
pub async fn wait_until(what: &str, within: Duration, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {within:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub struct TestServer {
    pub server: Option<Server>,
    pub addr: std::net::SocketAddr,
    pub dir: tempfile::TempDir,
    pub auth: Authenticator,
    pub http: reqwest::Client,
}

/// Defaults for tests: ephemeral port, no rate limit unless a test sets one.
pub fn test_config(dir: &Path) -> Config {
    let mut c = Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() };
    c.ws.rate_per_sec = 0;
    c.runtime.manifest = dir.join("switchyard.toml");
    c.runtime.cache_dir = Some(dir.join("cache"));
    c.runtime.watch_debounce_ms = 20;
    c.runtime.max_instances = 100;
    // The conformance suite serves modules built in the repository (handlers/build, examples/*/build).
    c.runtime.module_dirs = vec![repo()];
    c
}

impl TestServer {
    /// A server routing `echo` and `fail` to the WAT echo module.
    pub async fn start() -> Self {
        Self::with(ECHO_MANIFEST, &[("echo.wat", &wat("echo.wat"))], |_| {}).await
    }

    /// A server with this manifest, these files beside it, and config tweaks.
    pub async fn with(manifest: &str, files: &[(&str, &str)], tweak: impl FnOnce(&mut Config)) -> Self {
        Self::in_dir(dir_with(manifest, files), tweak).await
    }

    /// Starts a server on this manifest and these files, which must refuse to start; returns
    /// why (the error `switchyard` prints before exiting).
    pub async fn refusal(manifest: &str, files: &[(&str, &str)]) -> String {
        let dir = dir_with(manifest, files);
        let config = test_config(dir.path());
        match Self::try_in_dir(dir, config).await {
            Ok(_) => panic!("the server started; expected the manifest to be refused:\n{manifest}"),
            Err(e) => e.to_string(),
        }
    }

    pub async fn in_dir(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config(dir.path());
        tweak(&mut config);
        Self::try_in_dir(dir, config).await.expect("server starts")
    }

    pub async fn try_in_dir(dir: tempfile::TempDir, config: Config) -> anyhow::Result<Self> {
        let auth = Authenticator::new(&config.auth).unwrap();
        let server = Server::start(config).await?;
        Ok(Self { addr: server.local_addr, server: Some(server), dir, auth, http: reqwest::Client::new() })
    }

    pub fn token(&self, sub: &str) -> String {
        self.auth.mint(sub, 3600, &[], false).unwrap()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Connects as `sub` with `?token=` and reads the welcome frame.
    pub async fn connect(&self, sub: &str) -> Client {
        let url = format!("{}?token={}", self.ws_url(), self.token(sub));
        Client::connect(url.into_client_request().unwrap()).await.expect("connects")
    }

    pub async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).header("x-api-key", DEV_API_KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.api(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.api(reqwest::Method::GET, path, None).await
    }

    /// One counter from `/metrics`, by its name without the `switchyard_` prefix.
    pub async fn metric(&self, name: &str) -> u64 {
        let m = reqwest::get(self.url("/metrics")).await.unwrap().text().await.unwrap();
        let prefix = format!("switchyard_{name} ");
        m.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics:\n{m}"))
    }

    /// Waits until counter `name` reaches `value`, then asserts it is exactly `value` (not past it).
    pub async fn wait_metric(&self, name: &str, value: u64) {
        wait_until(&format!("{name} reaches {value}"), TIMEOUT, async || self.metric(name).await >= value).await;
        assert_eq!(self.metric(name).await, value, "{name}");
    }

    /// Replaces a file beside the manifest atomically (write + rename), as operators should.
    pub fn replace_file(&self, name: &str, body: &[u8]) {
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, body).unwrap();
        std::fs::rename(&tmp, self.dir.path().join(name)).unwrap();
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The client id from the welcome frame.
    pub id: String,
}

impl Client {
    pub async fn connect(
        req: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let (ws, _) =
            tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(req)).await.expect("connect timed out")?;
        let mut c = Client { ws, id: String::new() };
        let welcome = c.recv().await;
        assert_eq!(welcome["event"], "connected", "welcome frame: {welcome}");
        c.id = welcome["data"]["id"].as_str().unwrap().to_string();
        Ok(c)
    }

    pub async fn send(&mut self, event: &str, data: Value) {
        self.send_raw(&json!({"event": event, "data": data}).to_string()).await;
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next text frame as JSON (pings and pongs skipped).
    pub async fn recv(&mut self) -> Value {
        self.try_recv(TIMEOUT).await.expect("a frame in time")
    }

    pub async fn try_recv(&mut self, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next()).await.ok()??;
            match msg {
                Ok(Message::Text(t)) => return Some(serde_json::from_str(&t).expect("server frames are JSON")),
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Proves nothing is queued to this client: frames to one client arrive in the order they
    /// were queued, so if the answer to a ping sent now is the next frame, nothing was before it.
    /// (Instead of waiting a while for a frame that should not come.)
    pub async fn assert_nothing_queued(&mut self, what: &str) {
        let r = self.request("ping", Value::Null).await;
        assert_eq!(r["event"], "ping", "{what}: got {r}");
    }

    /// Sends and returns the next frame.
    pub async fn request(&mut self, event: &str, data: Value) -> Value {
        self.send(event, data).await;
        self.recv().await
    }

    /// Reads until the server closes; returns the close code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await.expect("server closes in time") {
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }
}

/// Everything the server logs during the test run (all tests share one subscriber).
pub fn captured_logs() -> String {
    let buf = log_buffer();
    let b = buf.lock().unwrap_or_else(|e| e.into_inner());
    String::from_utf8_lossy(&b).into_owned()
}

fn log_buffer() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    static BUF: OnceLock<std::sync::Arc<std::sync::Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let w = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_env_filter("info,cranelift=warn,wasmtime=warn")
            .with_writer(move || LogWriter(w.clone()))
            .try_init();
        buf
    })
    .clone()
}

/// Starts capturing logs (call before starting the server whose logs a test reads).
pub fn capture_logs() {
    let _ = log_buffer();
}

struct LogWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
