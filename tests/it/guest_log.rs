//! Guest logs can never stall, flood or forge: one line each, module name first, control
//! characters escaped, length capped, per-call and per-second budgets (counted when dropped),
//! and a log writer that never blocks the server.

use std::process::{Command, Stdio};

use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::*;

const LOGGER_MANIFEST: &str = r#"
[modules.logger]
path = "logger.wat"

[[routes]]
event = "logger/once"
module = "logger"
export = "log_data"

[[routes]]
event = "logger/flood"
module = "logger"
export = "flood"

[[routes]]
event = "logger/forge"
module = "logger"
export = "forge"

[modules.wasilines]
path = "wasi_lines.wat"
capabilities = ["wasi"]

[[routes]]
event = "wasilines/print"
module = "wasilines"
export = "print"
"#;

async fn logger_server(tweak: impl FnOnce(&mut switchyard::config::Config)) -> TestServer {
    capture_logs();
    TestServer::with(
        LOGGER_MANIFEST,
        &[("logger.wat", &wat("logger.wat")), ("wasi_lines.wat", &wat("wasi_lines.wat"))],
        tweak,
    )
    .await
}

/// The captured log lines containing `needle`.
fn lines_with(needle: &str) -> Vec<String> {
    captured_logs().lines().filter(|l| l.contains(needle)).map(str::to_string).collect()
}

#[tokio::test]
async fn a_guest_cannot_begin_a_log_line_and_its_module_name_comes_first() {
    let s = logger_server(|_| {}).await;
    let mut c = s.connect("alice").await;
    assert_eq!(c.request("logger/forge", json!(null)).await["code"], 0);
    let lines = lines_with("forge-me");
    assert_eq!(lines.len(), 1, "one line: {lines:?}");
    let line = &lines[0];
    assert!(line.contains("switchyard::guest: logger: forge-me\\n2026-01-01T00:00:00Z  INFO switchyard: forged-line\\r\\u{1b}[2Jcleared\\u{7}\\u{2028}sep"), "{line}");
    assert!(!captured_logs().lines().any(|l| l.starts_with("2026-01-01T00:00:00Z")), "no forged line");
    assert!(!captured_logs().contains('\u{1b}'), "no escape character reaches the log");
}

#[tokio::test]
async fn a_long_message_is_cut_at_guest_log_max_bytes_and_marked() {
    let s = logger_server(|_| {}).await;
    let mut c = s.connect("alice").await;
    // 5008 bytes of data: the quotes, "cut-me", 5000 a.
    let long = format!("cut-me{}", "a".repeat(5000));
    assert_eq!(c.request("logger/once", json!(long)).await["code"], 0);
    let lines = lines_with("cut-me");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert!(line.contains(&format!("logger: \"cut-me{}... [truncated: 5008 bytes]", "a".repeat(1024 - 7))), "{line}");
    assert!(!line.contains(&"a".repeat(1024 - 6)), "no more than 1024 bytes of the message: {line}");
}

#[tokio::test]
async fn one_call_logs_at_most_guest_log_per_call_lines() {
    let s = logger_server(|_| {}).await;
    let mut c = s.connect("alice").await;
    // 50 bytes of data: 50 log calls of it.
    let data = format!("per-call{}", "b".repeat(40));
    let r = c.request("logger/flood", json!(data)).await;
    assert_eq!(r["errorMsg"], "handler failed with status 40", "40 calls answered ERR_LIMIT: {r}");
    assert_eq!(lines_with("per-call").len(), 10);
    assert_eq!(s.metric("guest_log_dropped_total").await, 40);
    // The next call has its own budget (and the module's per-second budget has 90 left).
    let r = c.request("logger/once", json!("per-call-again")).await;
    assert_eq!(r["code"], 0, "{r}");
    assert_eq!(s.metric("guest_log_dropped_total").await, 40);
}

#[tokio::test]
async fn a_module_logs_at_most_guest_log_per_sec_lines_a_second() {
    let s = logger_server(|c| c.runtime.guest_log_per_sec = 3).await;
    let mut c = s.connect("alice").await;
    // 12 log calls in one call, within microseconds: the per-second budget (3) passes 3, then
    // the per-call budget (10) would stop the 11th and 12th anyway.
    let r = c.request("logger/flood", json!("per-sec-xx")).await;
    assert_eq!(r["errorMsg"], "handler failed with status 9", "{r}");
    assert_eq!(lines_with("per-sec-xx").len(), 3);
    assert_eq!(s.metric("guest_log_dropped_total").await, 9);
    let warned = lines_with("guest log lines dropped");
    assert!(warned.iter().any(|l| l.contains("logger: guest log lines dropped")), "warned once per module: {warned:?}");
}

#[tokio::test]
async fn wasi_output_goes_through_the_same_path() {
    let s = logger_server(|_| {}).await;
    let mut c = s.connect("alice").await;
    assert_eq!(c.request("wasilines/print", json!(null)).await["code"], 0);
    let printed: Vec<String> = lines_with("wasilines: wasi-");
    assert_eq!(printed.len(), 10, "{printed:?}");
    assert!(printed[0].contains("wasilines: wasi-1\\r\\u{1b}[31mFORGED"), "{}", printed[0]);
    assert!(printed[0].contains("stream=\"stdout\""), "{}", printed[0]);
    assert!(!captured_logs().lines().any(|l| l.starts_with("[31mFORGED")));
    assert_eq!(s.metric("guest_log_dropped_total").await, 2, "lines 11 and 12");
}

/// A child process killed when dropped (a failed assertion must not leave a server behind).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free port on 127.0.0.1 (bound, then released for the child to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The server as an operator runs it, with its stdout a pipe nobody reads: once the pipe is
/// full, a synchronous log writer would block whichever thread logs (a tokio worker running a
/// handler), and the server would stop answering. The non-blocking writer drops lines instead.
#[tokio::test]
async fn a_stdout_nobody_reads_never_stalls_the_server() {
    let dir =
        dir_with(LOGGER_MANIFEST, &[("logger.wat", &wat("logger.wat")), ("wasi_lines.wat", &wat("wasi_lines.wat"))]);
    let port = free_port();
    let config = format!(
        "listen = \"127.0.0.1:{port}\"\n[runtime]\nmanifest = {:?}\ncache_dir = {:?}\nwatch = false\n\
         guest_log_per_call = 1000\nguest_log_per_sec = 100000000\n",
        dir.path().join("switchyard.toml").display().to_string(),
        dir.path().join("cache").display().to_string(),
    );
    std::fs::write(dir.path().join("server.toml"), config).unwrap();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["--config", dir.path().join("server.toml").to_str().unwrap(), "serve"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _stdout_never_read = child.0.stdout.take().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_until("the server answers /healthz", TIMEOUT, async || {
        http.get(format!("{base}/healthz")).send().await.is_ok()
    })
    .await;

    let auth = switchyard::auth::Authenticator::new(&Default::default()).unwrap();
    let token = auth.mint("alice", 600, &[], false).unwrap();
    let url = format!("ws://127.0.0.1:{port}/ws?token={token}");
    let mut c = Client::connect(url.into_client_request().unwrap()).await.unwrap();
    // 200 calls x 200 lines of 200 bytes: 40,000 lines (8 MB) of log, far past the pipe
    // (64 KiB) and the writer's queue (16,384 lines). Every call must still be answered. (Short
    // calls: each stays well inside its 100 ms deadline even on a loaded machine.)
    let line = "s".repeat(198);
    for _ in 0..200 {
        let r = c.request("logger/flood", json!(line)).await;
        assert_eq!(r["code"], 0, "{r}");
    }
    assert_eq!(c.request("ping", json!(null)).await["event"], "ping");
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    let counter = |name: &str| -> u64 {
        let prefix = format!("switchyard_{name} ");
        metrics.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok()).unwrap()
    };
    assert!(counter("log_lines_dropped_total") > 0, "lines were dropped, not waited for:\n{metrics}");
    assert_eq!(counter("guest_log_dropped_total"), 0, "every line was within the guest budgets");
}
