//! switchyard-bench: load generator for Switchyard and its reference peers, one subcommand per
//! scenario, plus `report` (the summary of a `scripts/bench-all.sh` run). Loopback only: every
//! target URL must be in 127.0.0.0/8. Every scenario runs under a global deadline and every
//! request loop is bounded in count and time. See bench/README.md.

mod cluster;
mod load;
mod net;
mod rawws;
mod report;
mod scenarios;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use jsonwebtoken::EncodingKey;
use switchyard::config::{DEV_API_KEY, DEV_SECRET};

use crate::net::{Env, parse_endpoint};

#[derive(ValueEnum, serde::Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Switchyard: JWT in `?token=`, welcome frame, join/tag fan-out via /api/send/tag.
    Switchyard,
    /// bench/peers/axum-echo: no auth, no welcome, fan-out via POST /broadcast.
    Axum,
    /// bench/peers/node-ws: same as axum.
    Node,
    /// bench/peers/socketio (the cluster scenario only): Engine.IO v4 handshake, the room from
    /// the URL's `?room=`, sends through its POST /send.
    Socketio,
}

#[derive(Parser)]
#[command(
    name = "switchyard-bench",
    version,
    about = "WebSocket load generator for Switchyard and its peers (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Closed loop: N connections each keeping K `echo` requests in flight; msgs/s and latency.
    Echo(Common),
    /// N subscribers, M messages pushed through the HTTP API; deliveries/s and delivery latency.
    Fanout(FanoutArgs),
    /// Hold N idle connections (optional pings); server RSS per connection.
    Idle(IdleArgs),
    /// W workers connect / await welcome / close in a loop; new connections/s and connect time.
    Churn(ChurnArgs),
    /// Echo load while the module file is hot-swapped between two versions.
    Swap(SwapArgs),
    /// Echo latency in windows alternating without and with attackers calling a handler that
    /// never returns.
    Hostile(HostileArgs),
    /// Nodes sharing sends through one Redis: cross-node user-send latency at low load, then N
    /// clients spread over the nodes in one tag (room), M sends to node 1; deliveries/s, time to
    /// the last delivery, Redis commands per send.
    Cluster(ClusterArgs),
    /// A few seconds of echo (N=4, K=2); exits non-zero unless throughput > 0 and no errors.
    Smoke(Common),
    /// The summary of a bench-all.sh run, from its JSON lines: per scenario each server's number
    /// and p99, the ratios to the peers within each round, and the targets.
    Report {
        /// The .jsonl file the run wrote.
        file: PathBuf,
    },
}

#[derive(Args, Clone, Debug)]
pub struct Common {
    /// What is being measured; controls auth, the welcome frame and fan-out mechanics.
    #[arg(long, value_enum, default_value = "switchyard")]
    pub target: Target,
    /// WebSocket URL (the HTTP API / broadcast route is on the same host:port).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub url: String,
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
    /// PID of the server, for its CPU time and RSS (from /proc).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// HS256 secret for minting tokens (switchyard).
    #[arg(long, default_value = DEV_SECRET)]
    pub secret: String,
    /// X-Api-Key for the HTTP API (switchyard).
    #[arg(long, default_value = DEV_API_KEY)]
    pub api_key: String,
    /// Timeout for one connect, one request or one HTTP call, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Print the result as one JSON line instead of indented.
    #[arg(long)]
    pub json: bool,
}

impl Common {
    /// (N, K, warmup, duration): the flags, or these defaults.
    pub fn shape(&self, n: usize, k: usize, warmup: f64, duration: f64) -> (usize, usize, Duration, Duration) {
        let secs = |v: Option<f64>, d: f64| Duration::from_secs_f64(v.unwrap_or(d).max(0.0));
        let (n, k) = (self.connections.unwrap_or(n), self.inflight.unwrap_or(k).max(1));
        (n, k, secs(self.warmup, warmup), secs(self.duration, duration))
    }
    fn env(&self) -> Result<Env> {
        Ok(Env {
            target: self.target,
            ws: parse_endpoint(&self.url)?,
            api_key: self.api_key.clone(),
            key: EncodingKey::from_secret(self.secret.as_bytes()),
            timeout: Duration::from_secs_f64(self.timeout.max(0.001)),
            server_pid: self.server_pid,
        })
    }
}

#[derive(Args, Debug)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub c: Common,
    /// Messages pushed through the API (M); each should reach all N clients.
    #[arg(long, short = 'm', default_value_t = 100)]
    pub messages: usize,
}

#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// `--url` is node 1 (the API calls go there; Socket.IO:
    /// `ws://H:P/socket.io/?EIO=4&transport=websocket`, the bench adds `&room=`).
    #[command(flatten)]
    pub c: Common,
    /// Another node's WebSocket URL, repeatable; the first is node 2 (the user-send client's).
    #[arg(long = "node")]
    pub nodes: Vec<String>,
    /// The other nodes' PIDs, for their CPU time (`--server-pid` is node 1's).
    #[arg(long = "node-pid")]
    pub node_pids: Vec<u32>,
    /// The Redis the nodes share, `host:port` on loopback: its INFO commandstats and cpu.
    #[arg(long)]
    pub redis: String,
    /// Fan-out messages (M) sent to the tag (room) through node 1's API.
    #[arg(long, short = 'm', default_value_t = 100)]
    pub messages: usize,
    /// Cross-node user sends (0 = skip that phase), paced at `--user-rate` per second.
    #[arg(long, default_value_t = 1000)]
    pub user_sends: usize,
    /// User sends per second.
    #[arg(long, default_value_t = 200.0)]
    pub user_rate: f64,
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
    /// Concurrent connect/close loops (`-c N`: background connections held open meanwhile).
    #[arg(long, short = 'w', default_value_t = 64)]
    pub workers: usize,
    /// Cap on connections opened (tokens are pre-minted); default 20,000 per second of run.
    #[arg(long)]
    pub max_conns: Option<usize>,
}

#[derive(Args, Debug)]
pub struct SwapArgs {
    #[command(flatten)]
    pub c: Common,
    /// The module file the server loads: version 1 (replaced by rename; put back at the end).
    #[arg(long)]
    pub module_path: PathBuf,
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
}

#[derive(Args, Debug)]
pub struct HostileArgs {
    #[command(flatten)]
    pub c: Common,
    /// Attacker connections (one attack call in flight each).
    #[arg(long, short = 'a', default_value_t = 4)]
    pub attackers: usize,
    /// Event the attackers send.
    #[arg(long, default_value = "loop")]
    pub attack_event: String,
    /// Length of the alternating baseline / attack windows, seconds (the first 250 ms of each
    /// are not counted).
    #[arg(long, default_value_t = 1.0)]
    pub window: f64,
}

fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let c = match &cli.cmd {
        Cmd::Echo(c) | Cmd::Smoke(c) => c,
        Cmd::Fanout(a) => &a.c,
        Cmd::Cluster(a) => &a.c,
        Cmd::Idle(a) => &a.c,
        Cmd::Churn(a) => &a.c,
        Cmd::Swap(a) => &a.c,
        Cmd::Hostile(a) => &a.c,
        Cmd::Report { file } => match report::print(file) {
            Ok(()) => return,
            Err(e) => fail(e),
        },
    };
    if c.target == Target::Socketio && !matches!(cli.cmd, Cmd::Cluster(_)) {
        fail(anyhow::anyhow!("--target socketio: the cluster scenario only"));
    }
    let env = Arc::new(c.env().unwrap_or_else(|e| fail(e)));
    raise_nofile();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let res = rt.block_on(async {
        match &cli.cmd {
            Cmd::Echo(_) => scenarios::echo(env, c, false).await,
            Cmd::Smoke(_) => scenarios::echo(env, c, true).await,
            Cmd::Fanout(a) => scenarios::fanout(env, a).await,
            Cmd::Cluster(a) => cluster::run(env, a).await,
            Cmd::Idle(a) => scenarios::idle(env, a).await,
            Cmd::Churn(a) => scenarios::churn(env, a).await,
            Cmd::Swap(a) => scenarios::swap(env, a).await,
            Cmd::Hostile(a) => scenarios::hostile(env, a).await,
            Cmd::Report { .. } => unreachable!(),
        }
    });
    let (out, code) = res.unwrap_or_else(|e| fail(e));
    match c.json {
        true => println!("{out}"),
        false => println!("{out:#}"),
    }
    // Don't wait for stragglers (every task is bounded anyway).
    rt.shutdown_timeout(Duration::from_millis(200));
    std::process::exit(code);
}

fn fail(e: anyhow::Error) -> ! {
    eprintln!("switchyard-bench: {e:#}");
    std::process::exit(2)
}
