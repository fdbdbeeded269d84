//! Counters, latency histograms, error counts, frame parsing and /proc readings.

use std::borrow::Cow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Deserialize;
use serde_json::{Value, json};

/// A latency histogram (µs, 1 µs to one hour, 3 significant digits) shared by many tasks, each
/// batching its samples in a [`LocalHist`].
pub struct Hist(Mutex<Histogram<u64>>);

impl Hist {
    pub fn new() -> Self {
        Self(Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")))
    }
    pub fn merged(&self) -> Histogram<u64> {
        self.0.lock().unwrap().clone()
    }
}

pub struct LocalHist<'a>(&'a Hist, Vec<u64>);

impl<'a> LocalHist<'a> {
    pub fn new(hist: &'a Hist) -> Self {
        Self(hist, Vec::with_capacity(256))
    }
    pub fn record(&mut self, d: Duration) {
        self.1.push(d.as_micros() as u64);
        if self.1.len() >= 256 {
            self.flush();
        }
    }
    fn flush(&mut self) {
        if !self.1.is_empty() {
            let mut h = self.0.0.lock().unwrap();
            self.1.drain(..).for_each(|v| h.saturating_record(v.max(1)));
        }
    }
}

impl Drop for LocalHist<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

pub fn lat_json(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"count": 0});
    }
    let q = |q| h.value_at_quantile(q);
    json!({"count": h.len(), "p50_us": q(0.5), "p99_us": q(0.99), "p999_us": q(0.999), "max_us": h.max()})
}

/// Errors (a reply with `code != 0`, a close, a timeout, a failed connect, bad JSON, an HTTP
/// failure, a missing delivery), with the first few messages as samples.
#[derive(Default)]
pub struct Errors {
    total: AtomicU64,
    samples: Mutex<Vec<String>>,
}

impl Errors {
    pub fn add(&self, n: u64, msg: impl FnOnce() -> String) {
        if n > 0 && self.total.fetch_add(n, Relaxed) < 8 {
            self.samples.lock().unwrap().push(msg());
        }
    }
    pub fn one(&self, msg: impl FnOnce() -> String) {
        self.add(1, msg)
    }
    pub fn total(&self) -> u64 {
        self.total.load(Relaxed)
    }
    pub fn json(&self) -> Value {
        let samples = self.samples.lock().unwrap().clone();
        let hint = samples
            .iter()
            .any(|s| s.contains("rate_limited"))
            .then_some("the server's per-connection rate limit was hit: start it with SWITCHYARD_WS__RATE_PER_SEC=0");
        json!({"total": self.total(), "samples": samples, "hint": hint})
    }
}

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

/// The fields of a server frame the bench looks at; everything else is skipped.
#[derive(Deserialize)]
pub struct Frame<'a> {
    #[serde(borrow, default)]
    event: Option<Cow<'a, str>>,
    #[serde(default)]
    code: Option<i64>,
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

/// The number after the first `"key":` in a raw JSON text (also `\"key\":`, when the data came
/// back re-encoded as a string). The bench controls its payloads, so a textual scan is enough
/// and much cheaper than parsing `data`.
pub fn find_num(raw: &str, key: &str) -> Option<u64> {
    [format!("\"{key}\":"), format!("\\\"{key}\\\":")].iter().find_map(|p| {
        let rest = raw[raw.find(p.as_str())? + p.len()..].trim_start();
        rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len())].parse().ok()
    })
}

/// VmRSS of a process in KiB, from /proc/PID/status.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time (user + system) a process has used so far, in seconds, from /proc/PID/stat.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (which may hold spaces): utime and stime are fields 14 and 15.
    let f: Vec<&str> = s[s.rfind(')')? + 1..].split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    Some(ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64)
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
