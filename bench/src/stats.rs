//! Counters, latency histograms, error bookkeeping, frame parsing and the result report.

use std::borrow::Cow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Histograms are sharded so thousands of connection tasks do not contend on one lock; each task
/// batches its samples locally and flushes them into its shard.
const SHARDS: usize = 16;
/// Largest recordable latency: one hour in microseconds (values above saturate).
const MAX_US: u64 = 3_600_000_000;

pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("histogram bounds")
}

pub struct Hists {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Hists {
    pub fn new() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::new(new_hist())).collect() }
    }
    pub fn record_batch(&self, shard: usize, vals: &[u64]) {
        if vals.is_empty() {
            return;
        }
        let mut h = self.shards[shard % SHARDS].lock().unwrap();
        for &v in vals {
            h.saturating_record(v.max(1));
        }
    }
    pub fn merged(&self) -> Histogram<u64> {
        let mut out = new_hist();
        for s in &self.shards {
            out.add(&*s.lock().unwrap()).expect("same bounds");
        }
        out
    }
}

/// A task-local sample buffer in front of a [`Hists`].
pub struct LocalHist<'a> {
    hists: &'a Hists,
    shard: usize,
    buf: Vec<u64>,
}

impl<'a> LocalHist<'a> {
    pub fn new(hists: &'a Hists, shard: usize) -> Self {
        Self { hists, shard, buf: Vec::new() }
    }
    pub fn record(&mut self, d: Duration) {
        self.buf.push(d.as_micros() as u64);
        if self.buf.len() >= 256 {
            self.flush();
        }
    }
    pub fn flush(&mut self) {
        self.hists.record_batch(self.shard, &self.buf);
        self.buf.clear();
    }
}

impl Drop for LocalHist<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

#[derive(Clone, Copy, Debug)]
pub enum ErrKind {
    /// A reply frame with `code != 0`.
    Frame,
    /// The connection closed (or errored) while it was expected to stay open.
    Closed,
    /// A request got no reply in time.
    Timeout,
    /// TCP connect, WebSocket upgrade, welcome frame or join failed.
    Connect,
    /// Anything else: bad JSON, HTTP API failures, a missing delivery.
    Other,
}

/// Error counters by kind, plus the first few messages as samples to print.
#[derive(Default)]
pub struct Errors {
    frame: AtomicU64,
    closed: AtomicU64,
    timeout: AtomicU64,
    connect: AtomicU64,
    other: AtomicU64,
    samples: Mutex<Vec<String>>,
}

const MAX_SAMPLES: usize = 8;

impl Errors {
    pub fn add(&self, kind: ErrKind, n: u64, msg: impl FnOnce() -> String) {
        if n == 0 {
            return;
        }
        let c = match kind {
            ErrKind::Frame => &self.frame,
            ErrKind::Closed => &self.closed,
            ErrKind::Timeout => &self.timeout,
            ErrKind::Connect => &self.connect,
            ErrKind::Other => &self.other,
        };
        let before = c.fetch_add(n, Relaxed);
        // Keep a sample of the first occurrences of each kind only.
        if before < 2 {
            let mut s = self.samples.lock().unwrap();
            if s.len() < MAX_SAMPLES {
                s.push(format!("{kind:?}: {}", msg()));
            }
        }
    }
    pub fn one(&self, kind: ErrKind, msg: impl FnOnce() -> String) {
        self.add(kind, 1, msg)
    }
    pub fn total(&self) -> u64 {
        self.frame.load(Relaxed)
            + self.closed.load(Relaxed)
            + self.timeout.load(Relaxed)
            + self.connect.load(Relaxed)
            + self.other.load(Relaxed)
    }
    pub fn json(&self) -> Value {
        json!({
            "total": self.total(),
            "frame": self.frame.load(Relaxed),
            "closed": self.closed.load(Relaxed),
            "timeout": self.timeout.load(Relaxed),
            "connect": self.connect.load(Relaxed),
            "other": self.other.load(Relaxed),
            "samples": *self.samples.lock().unwrap(),
        })
    }
    pub fn text(&self) -> String {
        format!(
            "{} (frame {}, closed {}, timeout {}, connect {}, other {})",
            self.total(),
            self.frame.load(Relaxed),
            self.closed.load(Relaxed),
            self.timeout.load(Relaxed),
            self.connect.load(Relaxed),
            self.other.load(Relaxed),
        )
    }
    pub fn samples(&self) -> Vec<String> {
        self.samples.lock().unwrap().clone()
    }
}

/// The fields of a server frame the bench looks at; everything else is skipped.
#[derive(Deserialize)]
pub struct Frame<'a> {
    #[serde(borrow, default)]
    pub event: Option<Cow<'a, str>>,
    #[serde(default)]
    pub code: Option<i64>,
}

impl Frame<'_> {
    pub fn parse(s: &str) -> Option<Frame<'_>> {
        serde_json::from_str(s).ok()
    }
    pub fn ok(&self) -> bool {
        self.code.unwrap_or(0) == 0
    }
    pub fn event(&self) -> &str {
        self.event.as_deref().unwrap_or("")
    }
}

/// Finds the first `"key":<digits>` in a raw JSON text (also `\"key\":` when the data came back
/// re-encoded as a string) and returns the number. The bench controls its payloads, so a
/// textual scan is enough and is much cheaper than a full parse of `data`.
pub fn find_num(raw: &str, key: &str) -> Option<u64> {
    let pats = [format!("\"{key}\":"), format!("\\\"{key}\\\":")];
    for p in &pats {
        if let Some(i) = raw.find(p.as_str()) {
            let rest = raw[i + p.len()..].trim_start();
            let digits: &str = &rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len())];
            if let Ok(n) = digits.parse() {
                return Some(n);
            }
        }
    }
    None
}

/// VmRSS of a process in KiB, from /proc/PID/status.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time (user + system) a process has used so far, in seconds, from /proc/PID/stat.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(ticks as f64 / hz)
}

pub fn self_rss_kib() -> Option<u64> {
    rss_kib(std::process::id())
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

pub fn lat_json(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"count": 0});
    }
    json!({
        "count": h.len(),
        "p50_us": h.value_at_quantile(0.50),
        "p99_us": h.value_at_quantile(0.99),
        "p999_us": h.value_at_quantile(0.999),
        "max_us": h.max(),
        "mean_us": (h.mean() * 10.0).round() / 10.0,
    })
}

pub fn lat_text(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    format!(
        "p50 {}  p99 {}  p999 {}  max {}  (µs, n={})",
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        h.len()
    )
}

/// The result of one scenario: a human table (label, text) and a JSON object.
pub struct Report {
    rows: Vec<(String, String)>,
    json: Map<String, Value>,
}

impl Report {
    pub fn new(scenario: &str, target: &str) -> Self {
        let mut r = Self { rows: Vec::new(), json: Map::new() };
        r.row("scenario", format!("{scenario}  (target {target})"));
        r.set("scenario", json!(scenario));
        r.set("target", json!(target));
        r
    }
    pub fn row(&mut self, label: &str, text: impl Into<String>) {
        self.rows.push((label.to_string(), text.into()));
    }
    pub fn set(&mut self, key: &str, v: Value) {
        self.json.insert(key.to_string(), v);
    }
    pub fn errors(&mut self, e: &Errors) {
        self.row("errors", e.text());
        let samples = e.samples();
        if samples.iter().any(|s| s.contains("rate_limited")) {
            self.row(
                "  hint",
                "the server's per-connection rate limit was hit: start it with SWITCHYARD_WS__RATE_PER_SEC=0",
            );
        }
        for s in samples {
            self.row("  error", s);
        }
        self.set("errors", e.json());
    }
    pub fn rss(&mut self, pid: Option<u32>, key: &str, label: &str) -> Option<u64> {
        match pid.and_then(rss_kib) {
            Some(k) => {
                self.row(label, mib(k));
                self.set(key, json!(k));
                Some(k)
            }
            None => {
                self.row(label, if pid.is_some() { "unreadable (process gone?)" } else { "n/a (no --server-pid)" });
                self.set(key, Value::Null);
                None
            }
        }
    }
    pub fn print(&self, json: bool) {
        let w = self.rows.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0);
        println!("{}", "-".repeat(72));
        for (l, t) in &self.rows {
            println!("{l:<w$}  {t}");
        }
        println!("{}", "-".repeat(72));
        if json {
            println!("{}", Value::Object(self.json.clone()));
        }
    }
}

/// Thread-safe counter shorthand.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_numbers() {
        assert_eq!(find_num(r#"{"event":"echo","code":0,"data":{"n":42},"timestamp":1}"#, "n"), Some(42));
        assert_eq!(find_num(r#"{"data":"{\"n\":7}"}"#, "n"), Some(7));
        assert_eq!(find_num(r#"{"data":{"n": 9}}"#, "n"), Some(9));
        assert_eq!(find_num(r#"{"data":{"m":1}}"#, "n"), None);
    }

    #[test]
    fn parses_frames() {
        let f = Frame::parse(r#"{"event":"echo","code":-1,"errorMsg":"boom","data":{"x":[1,2]}}"#).unwrap();
        assert_eq!(f.event(), "echo");
        assert!(!f.ok());
        let f = Frame::parse(r#"{"event":"connected","code":0,"data":{"id":"a","user":"u"},"timestamp":1}"#).unwrap();
        assert!(f.ok());
    }
}
