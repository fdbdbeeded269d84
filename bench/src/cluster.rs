//! `cluster`: nodes sharing sends through one Redis (Switchyard's cluster mode, or Socket.IO with
//! its Redis adapter), in two phases. User send at low load: one client of one user on node 2,
//! `--user-sends` sends paced to node 1's API, latency from the POST to the receipt. Fan-out: N
//! clients spread evenly over the nodes in tag (room) `bench`, M sends POSTed one after the
//! other to node 1; deliveries/s from the first send to the last delivery, and every client
//! checked for every message exactly once. Redis's `INFO commandstats` before and after each
//! phase gives its commands per send.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::StreamExt;
use futures_util::future::join_all as join_futures;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until};

use crate::net::{Endpoint, Env, Http, Ws, close_ws, connect_all, parse_endpoint, send_text, tcp_connect, text_of};
use crate::scenarios::{Outcome, deadline, join_all, join_tag, ms, rate, result, with_deadline};
use crate::stats::{Counter, Errors, Frame, Hist, LocalHist, cpu_secs, find_num, lat_json};
use crate::{ClusterArgs, Target};

/// User sends left out of the latency histogram: they open the API connection, warm the path.
const WARM_SENDS: usize = 10;
/// How long the fan-out's deliveries are awaited after the last send.
const GRACE: Duration = Duration::from_secs(15);

/// One phase's receivers: which of the phase's M messages each client got, and when.
struct Phase {
    sio: bool,
    event: &'static str,
    m: usize,
    /// Messages below this are not in the histogram.
    skip: usize,
    join: Option<&'static str>,
    base: Instant,
    /// When message `i` was handed to the API, ns after `base` (0 = not yet).
    send_ns: Vec<AtomicU64>,
    hist: Hist,
    timeout: Duration,
    ready: Counter,
    not_ready: Counter,
    /// Clients that have every message.
    complete: Counter,
    received: Counter,
    duplicates: Counter,
    /// The latest first receipt of a message, ns after `base`.
    last_ns: AtomicU64,
    errors: Arc<Errors>,
}

impl Phase {
    fn new(env: &Env, event: &'static str, m: usize, skip: usize, errors: &Arc<Errors>) -> Self {
        let sio = env.target == Target::Socketio;
        Self {
            sio,
            event,
            m,
            skip,
            join: (!sio && event == "fan").then_some("bench"),
            base: Instant::now(),
            send_ns: (0..m).map(|_| AtomicU64::new(0)).collect(),
            hist: Hist::new(),
            timeout: env.timeout,
            ready: Counter::default(),
            not_ready: Counter::default(),
            complete: Counter::default(),
            received: Counter::default(),
            duplicates: Counter::default(),
            last_ns: AtomicU64::new(0),
            errors: errors.clone(),
        }
    }

    /// The sequence number of one of this phase's messages; `None` for any other frame.
    /// Switchyard: `{"event":E,"code":0,"data":{"m":i},..}`; Socket.IO: `42["E",{"m":i}]`.
    fn seq(&self, t: &str) -> Option<usize> {
        let i = if self.sio {
            find_num(t.strip_prefix("42[\"")?.strip_prefix(self.event)?.strip_prefix("\",")?, "m")
        } else {
            let f = Frame::parse(t)?;
            if !f.ok() {
                self.errors.one(|| t.to_string());
            }
            if !f.ok() || f.event() != self.event {
                return None;
            }
            find_num(t, "m")
        };
        i.map(|i| i as usize).filter(|&i| i < self.m)
    }

    fn missing(&self, sent: u64) -> u64 {
        let missing = (self.ready.get() * sent).saturating_sub(self.received.get());
        self.errors.add(missing, || format!("{} {missing} deliveries missing", self.event));
        let dups = self.duplicates.get();
        self.errors.add(dups, || format!("{} {dups} duplicate deliveries", self.event));
        missing
    }

    /// Until every ready client has every message, or `until`.
    async fn await_complete(&self, until: Instant) {
        while self.complete.get() < self.ready.get() && Instant::now() < until {
            sleep(Duration::from_millis(2)).await;
        }
    }
}

/// One client: joins (Switchyard's fan-out), then marks the phase's messages off as they come
/// (answering Engine.IO pings), until `stop`: it stays connected after its last message, so that
/// no disconnect reaches Redis inside the phase.
async fn receiver(mut ws: Ws, px: Arc<Phase>, mut stop: watch::Receiver<bool>) {
    if let Some(tag) = px.join {
        let joined = tokio::time::timeout(px.timeout, join_tag(&mut ws, tag)).await;
        if let Err(e) = joined.unwrap_or_else(|_| Err("join: no reply".into())) {
            px.errors.one(|| e);
            px.not_ready.add(1);
            return close_ws(ws, Duration::from_secs(2)).await;
        }
    }
    px.ready.add(1);
    let (mut seen, mut got, mut last) = (vec![false; px.m], 0, 0);
    let mut hist = LocalHist::new(&px.hist);
    loop {
        let t = tokio::select! {
            r = ws.next() => match text_of(r) {
                Ok(Some(t)) => t,
                Ok(None) => continue,
                Err(e) => { px.errors.one(|| e); break }
            },
            _ = stop.changed() => break,
        };
        let now = Instant::now();
        if px.sio && (t.starts_with("41") || t.starts_with("44")) {
            px.errors.one(|| format!("socket.io: {t}"));
            break;
        }
        if px.sio && t == "2" {
            match send_text(&mut ws, "3".into()).await {
                Ok(()) => continue,
                Err(e) => {
                    px.errors.one(|| format!("pong: {e}"));
                    break;
                }
            }
        }
        let Some(i) = px.seq(&t) else { continue };
        if std::mem::replace(&mut seen[i], true) {
            px.duplicates.add(1);
            continue;
        }
        got += 1;
        last = now.saturating_duration_since(px.base).as_nanos() as u64;
        let sent = px.send_ns[i].load(Relaxed);
        if sent > 0 && i >= px.skip {
            hist.record(Duration::from_nanos(last.saturating_sub(sent)));
        }
        if got == px.m {
            px.complete.add(1);
        }
    }
    drop(hist);
    px.received.add(got as u64);
    px.last_ns.fetch_max(last, Relaxed);
    close_ws(ws, Duration::from_secs(2)).await;
}

/// POSTs the phase's messages to `target` (a JSON member: the tag, user or room) through node
/// 1's API on one keep-alive connection, each after the answer to the one before and message `i`
/// not before `i * pace`; returns how many were answered 200.
async fn send_all(env: &Env, px: &Phase, target: &str, pace: Duration, cap: Duration) -> u64 {
    let (path, key) = match env.target {
        Target::Socketio => ("/send", None),
        _ => (if px.event == "fan" { "/api/send/tag" } else { "/api/send/user" }, Some(env.api_key.as_str())),
    };
    let mut http = Http::new(env.ws.clone(), env.timeout);
    let (t0, mut ok) = (Instant::now(), 0);
    for i in 0..px.m {
        if !pace.is_zero() {
            sleep_until((t0 + pace * i as u32).into()).await;
        }
        if t0.elapsed() > cap {
            px.errors.add((px.m - i) as u64, || format!("send cap {cap:?} reached, {} not sent", px.m - i));
            break;
        }
        let body = format!("{{{target},\"event\":\"{}\",\"data\":{{\"m\":{i}}}}}", px.event);
        px.send_ns[i].store(px.base.elapsed().as_nanos().max(1) as u64, Relaxed);
        match http.post(path, &body, key).await {
            Ok((200, _)) => ok += 1,
            Ok((status, b)) => px.errors.one(|| format!("POST {path}: HTTP {status} {b}")),
            Err(e) => px.errors.one(|| format!("POST {path}: {e:#}")),
        }
    }
    ok
}

/// [`send_all`] on a thread of its own, so that a send's answer is not read only after the
/// receivers this process woke meanwhile: the send rate is the API's, not the generator's.
async fn send_apart(env: &Arc<Env>, px: &Arc<Phase>, target: String, pace: Duration, cap: Duration) -> u64 {
    let (env, px) = (env.clone(), px.clone());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    tokio::task::spawn_blocking(move || rt.block_on(send_all(&env, &px, &target, pace, cap))).await.unwrap_or(0)
}

/// Calls per command, and Redis's CPU seconds (user + system).
struct RedisInfo(HashMap<String, u64>, f64);

/// `INFO commandstats cpu` (inline protocol, one connection) of the Redis at `addr`.
async fn redis_info(addr: SocketAddrV4, timeout: Duration) -> Result<RedisInfo> {
    let text = tokio::time::timeout(timeout, async {
        let mut s = BufReader::new(tcp_connect(Ipv4Addr::LOCALHOST, addr).await?);
        s.get_mut().write_all(b"INFO commandstats cpu\r\n").await?;
        let mut line = String::new();
        s.read_line(&mut line).await?;
        let len = line.trim_end().strip_prefix('$').and_then(|n| n.parse().ok());
        let mut body = vec![0; len.ok_or_else(|| anyhow!("redis INFO: {line:?}"))?];
        s.read_exact(&mut body).await?;
        Ok::<_, anyhow::Error>(String::from_utf8_lossy(&body).into_owned())
    })
    .await
    .map_err(|_| anyhow!("redis INFO timed out"))??;
    let mut info = RedisInfo(HashMap::new(), 0.0);
    for l in text.lines() {
        if let Some((cmd, rest)) = l.strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) {
            let calls = rest.strip_prefix("calls=").and_then(|r| r.split(',').next()?.parse().ok());
            info.0.insert(cmd.to_string(), calls.unwrap_or(0));
        } else if let Some(v) = l.strip_prefix("used_cpu_sys:").or_else(|| l.strip_prefix("used_cpu_user:")) {
            info.1 += v.trim().parse::<f64>().unwrap_or(0.0);
        }
    }
    Ok(info)
}

/// Waits (at most 5 s) until Redis is quiet, at most a heartbeat's few commands in 200 ms, so
/// that presence writes still queued from connects and joins do not count as the sends'.
async fn settle(redis: SocketAddrV4, timeout: Duration) -> Duration {
    let t0 = Instant::now();
    let calls =
        async || redis_info(redis, timeout).await.ok().map(|i| i.0.iter().filter(|c| c.0 != "info").map(|c| c.1).sum());
    let mut prev: Option<u64> = calls().await;
    while t0.elapsed() < Duration::from_secs(5) {
        sleep(Duration::from_millis(200)).await;
        let now = calls().await;
        if prev.zip(now).is_some_and(|(a, b)| b.saturating_sub(a) <= 8) {
            break;
        }
        prev = now;
    }
    t0.elapsed()
}

/// What Redis did between two readings: PUBLISH calls and all calls (but INFO) per send, the
/// calls by command, its CPU seconds.
fn redis_delta(a: &Option<RedisInfo>, b: &Option<RedisInfo>, sends: u64) -> Value {
    let (Some(a), Some(b)) = (a, b) else { return Value::Null };
    let d = |cmd: &str| b.0.get(cmd).unwrap_or(&0).saturating_sub(*a.0.get(cmd).unwrap_or(&0));
    let calls: serde_json::Map<String, Value> =
        b.0.keys().filter(|c| *c != "info" && d(c) > 0).map(|c| (c.clone(), d(c).into())).collect();
    let total: u64 = calls.values().filter_map(Value::as_u64).sum();
    let per = |n: u64| (sends > 0).then(|| (n as f64 / sends as f64 * 1000.0).round() / 1000.0);
    json!({"publish_per_send": per(d("publish")), "calls_per_send": per(total), "calls": calls,
        "cpu_s": ((b.1 - a.1) * 1000.0).round() / 1000.0})
}

/// Node `ep`'s settings; Socket.IO clients join `room` through the URL.
fn node_env(env: &Env, ep: &Endpoint, room: &str) -> Arc<Env> {
    let mut ws = ep.clone();
    if env.target == Target::Socketio {
        ws.path = format!("{}{}room={room}", ws.path, if ws.path.contains('?') { '&' } else { '?' });
    }
    let (api_key, key, timeout) = (env.api_key.clone(), env.key.clone(), env.timeout);
    Arc::new(Env { target: env.target, ws, api_key, key, timeout, server_pid: None })
}

pub async fn run(env: Arc<Env>, a: &ClusterArgs) -> Result<Outcome> {
    if !matches!(env.target, Target::Switchyard | Target::Socketio) {
        bail!("cluster: --target switchyard or socketio");
    }
    let redis = parse_endpoint(&format!("ws://{}", a.redis)).context("--redis")?.addr;
    let mut eps = vec![env.ws.clone()];
    for u in &a.nodes {
        eps.push(parse_endpoint(u)?);
    }
    let n = a.c.shape(5000, 1, 0.0, 0.0).0;
    let user_span = Duration::from_secs_f64(a.user_sends as f64 / a.user_rate.max(1.0));
    let send_cap = Duration::from_secs(60) + Duration::from_millis(10 * a.messages as u64);
    with_deadline(deadline(&env, n + 1, user_span * 2 + send_cap + GRACE * 2), "cluster", async {
        let errors = Arc::new(Errors::default());
        let info = async || redis_info(redis, env.timeout).await.map_err(|e| errors.one(|| format!("{e:#}"))).ok();

        // Phase 1: one client of one user on node 2, sends paced to node 1.
        let mut user = Value::Null;
        if a.user_sends > 0 {
            let (idx, node) = (1_000_000, eps.get(1).unwrap_or(&eps[0]));
            let name = format!("bench-{idx}"); // Env::mint's user
            let uenv = node_env(&env, node, &format!("user-{name}"));
            let token = (env.target == Target::Switchyard).then(|| uenv.mint(idx));
            let ws = uenv.open(uenv.source_for(0), token.as_deref()).await.context("the user-send client")?;
            let px = Arc::new(Phase::new(&env, "lat", a.user_sends, WARM_SENDS, &errors));
            let (stop_tx, stop_rx) = watch::channel(false);
            let task = tokio::spawn(receiver(ws, px.clone(), stop_rx.clone()));
            let target = match env.target {
                Target::Socketio => format!("\"room\":\"user-{name}\""),
                _ => format!("\"user\":\"{name}\""),
            };
            let pace = Duration::from_secs_f64(1.0 / a.user_rate.max(1.0));
            settle(redis, env.timeout).await;
            let r0 = info().await;
            let sent = send_apart(&env, &px, target, pace, user_span + Duration::from_secs(30)).await;
            px.await_complete(Instant::now() + Duration::from_secs(2)).await;
            let r1 = info().await;
            let _ = stop_tx.send(true);
            let _ = task.await;
            user = json!({"sends": a.user_sends, "rate_per_s": a.user_rate, "sent_ok": sent,
                "cross_node": eps.len() > 1, "received": px.received.get(), "missing": px.missing(sent),
                "duplicates": px.duplicates.get(), "latency": lat_json(&px.hist.merged()),
                "redis": redis_delta(&r0, &r1, sent)});
        }

        // Phase 2: N clients spread evenly over the nodes, M sends to node 1.
        let k = eps.len();
        let counts: Vec<usize> = (0..k).map(|j| (n + k - 1 - j) / k).collect();
        let envs: Vec<Arc<Env>> = eps.iter().map(|ep| node_env(&env, ep, "bench")).collect();
        let ramps = join_futures(envs.iter().enumerate().map(|(j, e)| {
            let first: usize = counts[..j].iter().sum();
            connect_all(e, first, counts[j], &errors)
        }))
        .await;
        let px = Arc::new(Phase::new(&env, "fan", a.messages, 0, &errors));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut set = JoinSet::new();
        let mut connect = Vec::new();
        for (conns, ramp) in ramps {
            connect.push(ramp);
            for (_, ws) in conns {
                set.spawn(receiver(ws, px.clone(), stop_rx.clone()));
            }
        }
        let live = set.len() as u64;
        let ready_by = Instant::now() + env.timeout + Duration::from_secs(5);
        while px.ready.get() + px.not_ready.get() < live && Instant::now() < ready_by {
            sleep(Duration::from_millis(20)).await;
        }
        let pids: Vec<u32> = env.server_pid.into_iter().chain(a.node_pids.iter().copied()).collect();
        let me = std::process::id();
        let quiet = settle(redis, env.timeout).await;
        let cpu = || (pids.iter().map(|&p| cpu_secs(p)).collect::<Vec<_>>(), cpu_secs(me));
        let (r0, (cpu0, gen0)) = (info().await, cpu());
        let t_send = Instant::now();
        let to = if px.sio { "\"room\":\"bench\"" } else { "\"tag\":\"bench\"" };
        let sent = send_apart(&env, &px, to.into(), Duration::ZERO, send_cap).await;
        let send_time = t_send.elapsed();
        px.await_complete(Instant::now() + GRACE).await;
        let (r1, (cpu1, gen1)) = (info().await, cpu());
        let _ = stop_tx.send(true);
        join_all(&mut set).await;
        let missing = px.missing(sent);
        let sent_at = |i: usize| px.send_ns.get(i).map_or(0, |t| t.load(Relaxed));
        let last = px.last_ns.load(Relaxed);
        let span = Duration::from_nanos(last.saturating_sub(sent_at(0)));
        let tail = Duration::from_nanos(last.saturating_sub(sent_at(a.messages.saturating_sub(1))));
        let secs = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| ((b - a) * 1000.0).round() / 1000.0);
        let nodes_cpu: Vec<Option<f64>> = cpu0.iter().zip(&cpu1).map(|(a, b)| secs(*a, *b)).collect();
        let fan = json!({"deliveries_per_s": rate(px.received.get(), span).round(),
            "time_to_last_ms": ms(span), "last_after_last_send_ms": ms(tail), "connect": connect,
            "subscribed": px.ready.get(),
            "deliveries": {"received": px.received.get(), "expected": px.ready.get() * sent,
                "missing": missing, "duplicates": px.duplicates.get()},
            "api": {"sent_ok": sent, "req_per_s": rate(sent, send_time).round()},
            "latency": lat_json(&px.hist.merged()), "redis": redis_delta(&r0, &r1, sent),
            "redis_settle_ms": ms(quiet), "cpu_s": {"nodes": nodes_cpu, "generator": secs(gen0, gen1)}});
        let urls: Vec<String> = envs.iter().map(|e| e.ws_url(None)).collect();
        let body = json!({"nodes": k, "n": n, "m": a.messages, "urls": urls, "user_send": user, "fanout": fan});
        Ok((result("cluster", &env, &errors, body), if live > 0 { 0 } else { 1 }))
    })
    .await
}
