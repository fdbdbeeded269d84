//! switchyard-bench: load generator for Switchyard and its reference peers.
//!
//! One binary, one subcommand per scenario (echo, fanout, idle, churn, swap, hostile, alternate,
//! smoke).
//! Loopback only: every target URL must be in 127.0.0.0/8. Every scenario runs under a global
//! deadline and every request loop is bounded in count and time. See bench/README.md.

mod load;
mod memprobe;
mod net;
mod rawws;
mod scenarios;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use jsonwebtoken::EncodingKey;

use crate::net::{Env, parse_endpoint};

pub const DEV_SECRET: &str = "switchyard-dev-secret-do-not-use-in-production";
pub const DEV_API_KEY: &str = "switchyard-dev-api-key";

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Switchyard: JWT in `?token=`, welcome frame, join/tag fan-out via /api/send/tag.
    Switchyard,
    /// bench/peers/axum-echo: no auth, no welcome, fan-out via POST /broadcast.
    Axum,
    /// bench/peers/node-ws: same as axum.
    Node,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Switchyard => "switchyard",
            Target::Axum => "axum",
            Target::Node => "node",
        }
    }
    fn default_url(self) -> &'static str {
        match self {
            Target::Switchyard => "ws://127.0.0.1:8080/ws",
            Target::Axum => "ws://127.0.0.1:9002/ws",
            Target::Node => "ws://127.0.0.1:9001/ws",
        }
    }
}

#[derive(Parser)]
#[command(
    name = "switchyard-bench",
    version,
    about = "WebSocket load generator for Switchyard and its reference peers (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Closed loop: N connections each keeping K `echo` requests in flight; msgs/s and latency.
    Echo(EchoArgs),
    /// N subscribers, M messages pushed through the HTTP API; deliveries/s and delivery latency.
    Fanout(FanoutArgs),
    /// Hold N idle connections (optional pings); server RSS total and per connection.
    Idle(IdleArgs),
    /// W workers connect / await welcome / close in a loop; new connections/s and connect time.
    Churn(ChurnArgs),
    /// Echo load while the module file is hot-swapped between two versions.
    Swap(SwapArgs),
    /// Echo latency while attacker connections hammer a misbehaving handler.
    Hostile(HostileArgs),
    /// Echo load on several servers in turns: all of them up with their connections open, one
    /// loaded per window while the others wait, so every server meets the same drifts of a
    /// shared host. The first server's ratio to each other one, per cycle and overall.
    Alternate(AlternateArgs),
    /// A few seconds of echo (N=4, K=2); exits non-zero unless throughput > 0 and no errors.
    Smoke(SmokeArgs),
    /// Memory latency of this machine right now (a pointer chase over a few MiB), to tell a
    /// slow spell of a shared host from a slow server. Opens no connection.
    Memprobe(MemprobeArgs),
}

#[derive(Args, Clone, Debug)]
pub struct Common {
    /// What is being measured; controls auth, the welcome frame and fan-out mechanics.
    #[arg(long, value_enum, default_value = "switchyard")]
    pub target: Target,
    /// WebSocket URL (default per target: switchyard :8080/ws, axum :9002/ws, node :9001/ws).
    #[arg(long)]
    pub url: Option<String>,
    /// Base URL of the HTTP API / broadcast route (default: same host:port as --url).
    #[arg(long)]
    pub http: Option<String>,
    /// Connections (N).
    #[arg(long, short = 'c')]
    pub connections: Option<usize>,
    /// Requests in flight per connection (K).
    #[arg(long, short = 'k')]
    pub inflight: Option<usize>,
    /// Measured duration, seconds.
    #[arg(long, short = 'd')]
    pub duration: Option<f64>,
    /// Warmup before measuring, seconds.
    #[arg(long)]
    pub warmup: Option<f64>,
    /// PID of the server, to read its RSS from /proc/PID/status.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// HS256 secret for minting tokens (switchyard).
    #[arg(long, default_value = DEV_SECRET)]
    pub secret: String,
    /// X-Api-Key for the HTTP API (switchyard).
    #[arg(long, default_value = DEV_API_KEY)]
    pub api_key: String,
    /// Also print one JSON line with the results (last line of stdout).
    #[arg(long)]
    pub json: bool,
    /// Event name of the echo requests.
    #[arg(long, default_value = "echo")]
    pub event: String,
    /// Long-lived client sockets per source address (127.0.0.1, .2, ...).
    #[arg(long, default_value_t = 5000)]
    pub conns_per_ip: usize,
    /// Connects in progress at once during a ramp. Keep it under the server's listen backlog
    /// (Rust std / tokio listeners default to 128): past it, SYNs are dropped and retried 1 s later.
    #[arg(long, default_value_t = 100)]
    pub connect_concurrency: usize,
    /// Timeout for one connect, one request or one HTTP call, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// `tags` claim for minted tokens (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub token_tags: Vec<String>,
    /// Runtime worker threads (default: number of CPUs).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl Common {
    pub fn n(&self, d: usize) -> usize {
        self.connections.unwrap_or(d)
    }
    pub fn k(&self, d: usize) -> usize {
        self.inflight.unwrap_or(d).max(1)
    }
    pub fn duration(&self, d: f64) -> Duration {
        Duration::from_secs_f64(self.duration.unwrap_or(d).max(0.0))
    }
    pub fn warmup(&self, d: f64) -> Duration {
        Duration::from_secs_f64(self.warmup.unwrap_or(d).max(0.0))
    }

    fn env(&self) -> Result<Env> {
        let url = self.url.clone().unwrap_or_else(|| self.target.default_url().to_string());
        let ws = parse_endpoint(&url, "ws", 80)?;
        let http_url = self.http.clone().unwrap_or_else(|| format!("http://{}", ws.authority));
        let http = parse_endpoint(&http_url, "http", 80)?;
        Ok(Env {
            target: self.target,
            ws,
            http,
            api_key: self.api_key.clone(),
            key: EncodingKey::from_secret(self.secret.as_bytes()),
            token_tags: self.token_tags.clone(),
            conns_per_ip: self.conns_per_ip.max(1),
            connect_concurrency: self.connect_concurrency.max(1),
            timeout: Duration::from_secs_f64(self.timeout.max(0.001)),
            server_pid: self.server_pid,
        })
    }
}

#[derive(Args, Debug)]
pub struct EchoArgs {
    #[command(flatten)]
    pub c: Common,
}

#[derive(Args, Debug)]
pub struct AlternateArgs {
    #[command(flatten)]
    pub c: Common,
    /// The first server's name in the report (default: its target).
    #[arg(long)]
    pub name: Option<String>,
    /// Another server to take turns with: NAME=TARGET,URL[,PID] (repeatable; the PID is for
    /// its CPU time and RSS).
    #[arg(long = "vs")]
    pub vs: Vec<String>,
    /// Length of one turn, seconds. The first 250 ms of each are not counted (the load moving
    /// over from the previous server).
    #[arg(long, default_value_t = 2.0)]
    pub window: f64,
}

impl AlternateArgs {
    /// Every `--vs` server's (name, environment).
    fn others(&self) -> Result<Vec<(String, Arc<Env>)>> {
        self.vs
            .iter()
            .map(|v| {
                let (name, rest) =
                    v.split_once('=').with_context(|| format!("--vs {v}: expected NAME=TARGET,URL[,PID]"))?;
                let mut parts = rest.split(',');
                let target = parts.next().unwrap_or_default();
                let target = Target::from_str(target, true).map_err(|e| anyhow::anyhow!("--vs {v}: target: {e}"))?;
                let url = parts.next().with_context(|| format!("--vs {v}: no URL"))?;
                let pid =
                    parts.next().map(|p| p.parse::<u32>()).transpose().with_context(|| format!("--vs {v}: PID"))?;
                let c = Common { target, url: Some(url.to_string()), http: None, server_pid: pid, ..self.c.clone() };
                Ok((name.to_string(), Arc::new(c.env()?)))
            })
            .collect()
    }
}

#[derive(Args, Debug)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub c: Common,
    /// Messages pushed through the API (M); each should reach all N clients.
    #[arg(long, short = 'm', default_value_t = 100)]
    pub messages: usize,
    /// Tag the clients join (switchyard).
    #[arg(long, default_value = "bench")]
    pub tag: String,
    /// Event of the pushed messages (switchyard; the peers always use `broadcast`).
    #[arg(long, default_value = "bench.fanout")]
    pub fanout_event: String,
    /// Switchyard: push with /api/send/all (no join) instead of /api/send/tag.
    #[arg(long)]
    pub send_all: bool,
    /// How long to wait for deliveries after the last send, seconds.
    #[arg(long, default_value_t = 15.0)]
    pub grace: f64,
}

#[derive(Args, Debug)]
pub struct IdleArgs {
    #[command(flatten)]
    pub c: Common,
    /// Seconds between pings on each connection (0 = never ping).
    #[arg(long, default_value_t = 10.0)]
    pub ping_interval: f64,
}

#[derive(Args, Debug)]
pub struct ChurnArgs {
    #[command(flatten)]
    pub c: Common,
    /// Concurrent connect/close loops.
    #[arg(long, short = 'w', default_value_t = 64)]
    pub workers: usize,
    /// Hard cap on connections opened (and tokens pre-minted); default 20,000 per second of
    /// warmup + duration.
    #[arg(long)]
    pub max_conns: Option<usize>,
    /// Source addresses the churned sockets rotate over (127.0.0.1..).
    #[arg(long, default_value_t = 32)]
    pub source_ips: usize,
}

#[derive(Args, Debug)]
pub struct SwapArgs {
    #[command(flatten)]
    pub c: Common,
    /// The module file the server loads (it is replaced by rename; restored at the end).
    #[arg(long)]
    pub module_path: PathBuf,
    /// Version 1 of the module.
    #[arg(long)]
    pub v1: PathBuf,
    /// Version 2 of the module.
    #[arg(long)]
    pub v2: PathBuf,
    /// A string found in v2's reply frames and not in v1's.
    #[arg(long)]
    pub v2_marker: String,
    /// Number of swaps (alternating v1->v2, v2->v1).
    #[arg(long, default_value_t = 100)]
    pub swaps: usize,
    /// Minimum time between two swaps, milliseconds.
    #[arg(long, default_value_t = 500)]
    pub swap_interval_ms: u64,
    /// Give up waiting for a swap to show after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub swap_timeout: f64,
    /// Also POST /admin/reload after each file replacement.
    #[arg(long)]
    pub admin_reload: bool,
}

#[derive(Args, Debug)]
pub struct HostileArgs {
    #[command(flatten)]
    pub c: Common,
    /// Attacker connections.
    #[arg(long, short = 'a', default_value_t = 4)]
    pub attackers: usize,
    /// Event the attackers send.
    #[arg(long, default_value = "loop")]
    pub attack_event: String,
    /// Attack requests in flight per attacker.
    #[arg(long, default_value_t = 1)]
    pub attack_inflight: usize,
    /// First half of the duration without attackers, second half with; print the ratio.
    #[arg(long)]
    pub baseline: bool,
    /// With --baseline: alternate windows of this many seconds without and with attackers
    /// (baseline first) instead of two halves, so slow drifts of the machine hit both alike.
    #[arg(long)]
    pub alternate: Option<f64>,
}

#[derive(Args, Debug)]
pub struct MemprobeArgs {
    /// Working set, MiB (bigger than one core's L2, smaller than the shared L3).
    #[arg(long, default_value_t = 8)]
    pub mib: usize,
    /// Dependent loads per repetition.
    #[arg(long, default_value_t = 2_000_000)]
    pub steps: usize,
    /// Repetitions; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Print one JSON line instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SmokeArgs {
    #[command(flatten)]
    pub c: Common,
}

fn raise_nofile() -> (u64, u64) {
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        }
        (r.rlim_cur, r.rlim_max)
    }
}

/// `memprobe`: no runtime, no connections; one line of output.
fn memprobe_main(a: &MemprobeArgs) {
    let p = memprobe::run(a.mib, a.steps, a.reps);
    if a.json {
        println!("{}", serde_json::json!({ "mem_probe": p }));
    } else {
        println!(
            "memory latency ({} MiB pointer chase): {:.1} ns/load (min {:.1}, max {:.1})",
            p.mib, p.ns_per_load, p.min_ns, p.max_ns
        );
    }
}

fn main() {
    let cli = Cli::parse();
    let (nofile, _) = raise_nofile();
    let c = match &cli.cmd {
        Cmd::Echo(a) => &a.c,
        Cmd::Fanout(a) => &a.c,
        Cmd::Idle(a) => &a.c,
        Cmd::Churn(a) => &a.c,
        Cmd::Swap(a) => &a.c,
        Cmd::Hostile(a) => &a.c,
        Cmd::Alternate(a) => &a.c,
        Cmd::Smoke(a) => &a.c,
        Cmd::Memprobe(a) => return memprobe_main(a),
    };
    // The target's environment, and for `alternate` the other servers' (named for the report).
    let envs = c.env().map(Arc::new).and_then(|env| match &cli.cmd {
        Cmd::Alternate(a) => Ok((env, a.others()?)),
        _ => Ok((env, Vec::new())),
    });
    let (env, others) = match envs {
        Ok(e) => e,
        Err(e) => {
            eprintln!("switchyard-bench: {e:#}");
            std::process::exit(2);
        }
    };
    let threads = c.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    let json = c.json;
    let res = rt.block_on(async {
        match &cli.cmd {
            Cmd::Echo(a) => scenarios::echo(env, a, nofile).await,
            Cmd::Fanout(a) => scenarios::fanout(env, a, nofile).await,
            Cmd::Idle(a) => scenarios::idle(env, a, nofile).await,
            Cmd::Churn(a) => scenarios::churn(env, a, nofile).await,
            Cmd::Swap(a) => scenarios::swap(env, a, nofile).await,
            Cmd::Hostile(a) => scenarios::hostile(env, a, nofile).await,
            Cmd::Alternate(a) => scenarios::alternate(env, others, a, nofile).await,
            Cmd::Smoke(a) => scenarios::smoke(env, a, nofile).await,
            Cmd::Memprobe(_) => Err(anyhow::anyhow!("memprobe runs before the runtime starts")),
        }
    });
    let code = match res {
        Ok(out) => {
            out.report.print(json);
            out.exit_code
        }
        Err(e) => {
            eprintln!("switchyard-bench: {e:#}");
            2
        }
    };
    // Don't wait for stragglers (every task is bounded anyway).
    rt.shutdown_timeout(Duration::from_millis(200));
    std::process::exit(code);
}
